#!/usr/bin/env bash
# sim.sh runs the simulator: N real gossipchain nodes on go-libp2p's
# simulated QUIC network, on Go's testing/synctest virtual clock, through
# the scenarios propagation, churn, partition and latejoin. It prints
# progress, one JSON line per scenario, and writes them with a CDF of the
# arrival times (PNG) to --out. docs/SIMULATION.md explains the model and
# the figures.
#
#   scripts/sim.sh [--nodes N] [--seed S] [--scenario all|NAME[,NAME...]]
#                  [--latency regions|flat:MS] [--loss PCT] [--blocks B]
#                  [--interval-ms MS] [--cut S] [--check-us US] [--d D]
#                  [--dlo N] [--dhi N] [--dlazy N] [--gossip-factor PCT]
#                  [--heartbeat-ms MS] [--history-gossip N]
#                  [--idontwant BYTES] [--flood on|off] [--out DIR] [--quick]
#
# Defaults: 1,000 nodes, seed 1, all scenarios, the eight-region latency
# table, no loss, 10 blocks 500 ms apart, a 30 s partition, 100 us
# modelled per block checked and stored, the node's own GossipSub
# parameters (node/gossip.go gossipParams; --d D alone gives Dlo D-1 and
# Dhi 2D), flood publishing on, results in .sim/. --quick is 100 nodes
# (well under a minute; CI runs it). A 1,000-node run takes about 4.5
# minutes and 3.3 GB (GOMEMLIMIT is set to 3400MiB unless already set).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
nodes=1000 out="$root/.sim"
envs=()
need() { [ $# -ge 2 ] || { echo "sim: $1 needs a value" >&2; exit 2; }; }
number() {
	case "$2" in '' | *[!0-9]*) echo "sim: $1 wants a whole number, not '$2'" >&2; exit 2 ;; esac
}
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) nodes=100; shift; continue ;;
	--nodes) need "$@"; number "$1" "$2"; nodes=$2 ;;
	--seed) need "$@"; number "$1" "$2"; envs+=("GOSSIPCHAIN_SIM_SEED=$2") ;;
	--scenario) need "$@"; envs+=("GOSSIPCHAIN_SIM_SCENARIO=$2") ;;
	--latency) need "$@"; envs+=("GOSSIPCHAIN_SIM_LATENCY=$2") ;;
	--loss) need "$@"; envs+=("GOSSIPCHAIN_SIM_LOSS=$2") ;;
	--blocks) need "$@"; number "$1" "$2"; envs+=("GOSSIPCHAIN_SIM_BLOCKS=$2") ;;
	--interval-ms) need "$@"; number "$1" "$2"; envs+=("GOSSIPCHAIN_SIM_INTERVAL_MS=$2") ;;
	--cut) need "$@"; number "$1" "$2"; envs+=("GOSSIPCHAIN_SIM_CUT_S=$2") ;;
	--check-us) need "$@"; number "$1" "$2"; envs+=("GOSSIPCHAIN_SIM_CHECK_US=$2") ;;
	--d) need "$@"; number "$1" "$2"; envs+=("GOSSIPCHAIN_SIM_D=$2") ;;
	--dlo) need "$@"; number "$1" "$2"; envs+=("GOSSIPCHAIN_SIM_DLO=$2") ;;
	--dhi) need "$@"; number "$1" "$2"; envs+=("GOSSIPCHAIN_SIM_DHI=$2") ;;
	--dlazy) need "$@"; number "$1" "$2"; envs+=("GOSSIPCHAIN_SIM_DLAZY=$2") ;;
	--gossip-factor) need "$@"; number "$1" "$2"; envs+=("GOSSIPCHAIN_SIM_GOSSIP_PCT=$2") ;;
	--heartbeat-ms) need "$@"; number "$1" "$2"; envs+=("GOSSIPCHAIN_SIM_HEARTBEAT_MS=$2") ;;
	--history-gossip) need "$@"; number "$1" "$2"; envs+=("GOSSIPCHAIN_SIM_HISTORY_GOSSIP=$2") ;;
	--idontwant) need "$@"; number "$1" "$2"; envs+=("GOSSIPCHAIN_SIM_IDONTWANT=$2") ;;
	--flood)
		need "$@"
		case "$2" in on) envs+=("GOSSIPCHAIN_SIM_FLOOD=1") ;; off) envs+=("GOSSIPCHAIN_SIM_FLOOD=0") ;;
		*) echo "sim: --flood is on or off, not '$2'" >&2; exit 2 ;; esac ;;
	--out) need "$@"; out=$2 ;;
	-h | --help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "sim: unknown argument '$1' (see scripts/sim.sh --help)" >&2; exit 2 ;;
	esac
	shift 2
done
[ "$nodes" -ge 2 ] || { echo "sim: --nodes must be at least 2" >&2; exit 2; }
mkdir -p "$out"
rm -f "$out/results.jsonl" "$out/cdf.png"
out="$(cd "$out" && pwd)"
cd "$root"
echo "sim: building the simulator (go test -c ./node)"
bin="$out/node.test"
go test -c -o "$bin" ./node
echo "sim: $nodes nodes; results in $out"
# The test binary runs from the package directory, as go test would; -v
# prints the progress and the JSON lines as they come (the rest of go
# test's chatter is dropped).
status=0
# A soft memory limit for the Go runtime (unless one is set): the garbage
# collector works harder only near it, so a 1,000-node run stays under
# 4 GB where it would otherwise grow to about that.
export GOMEMLIMIT="${GOMEMLIMIT:-3400MiB}"
(cd node && env GOSSIPCHAIN_SIM_NODES="$nodes" GOSSIPCHAIN_SIM_OUT="$out" "${envs[@]}" \
	"$bin" -test.run '^TestSimulatedNetwork$' -test.v -test.timeout 90m -test.count 1) |
	grep --line-buffered -v '^=== \|^--- PASS\|^PASS$' || status=$?
rm -f "$bin"
[ -s "$out/results.jsonl" ] || { echo "sim: no results (see the output above)" >&2; exit 1; }
exit "$status"
