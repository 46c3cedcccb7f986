#!/usr/bin/env bash
# bench.sh runs gossipchain's benchmark suite on loopback and prints a table:
# gossipchain against gossipsub-tuned (the library configured as gossipchain
# configures it, gossipchain-sized messages, nothing checked or stored),
# gossipsub-bare (the library with defaults), seed-dial (a TCP dial per block
# per peer: the design gossipchain replaces) and floor (one persistent
# libp2p stream); then gossipchain's figures over gossipsub-tuned's.
#
#   scripts/bench.sh [--quick] [--json] [--only SCENARIO[,SCENARIO...]]
#   scripts/bench.sh --processes [--quick] [--json] [--only propagation,burst and/or gossipchain,gossipsub-tuned,gossipsub-bare]
#
# --processes: the propagation and burst scenarios with every node its own
# process (the built binary, lines on the origin's stdin, arrivals read
# from every console; gossipsub-tuned as processes too), gossipchain and
# gossipsub-tuned side by side (node/benchproc_test.go, TestBenchProcesses),
# on two wirings: each node given 8 random earlier nodes, and 3 (a network
# grown from a few bootstrap addresses; the PEERS column). After each
# gossipchain run it reads every node's traces and prints where blocks
# spent their time (a "stages" progress line; in --json, the result's
# "stages"). GOSSIPCHAIN_BENCH_WIRING=3 (or 8) runs one wiring,
# GOSSIPCHAIN_BENCH_SIZES=25 one size, GOSSIPCHAIN_BENCH_RATE=N paces
# propagation at N blocks/s instead of 100.
# --quick: fewer nodes and blocks (well under 2 minutes); --json: one JSON
# object per line instead of the table; --only: just these scenarios
# (propagation, burst, sync, scale, footprint, chainlen) and/or systems
# (gossipchain, gossipsub-tuned, gossipsub-bare, seed-dial), e.g. --only burst,gossipchain. The suite is node/benchsuite_test.go
# (TestBenchSuite); the sync and flood benchmarks are go test -bench (see
# docs/BENCHMARKS.md).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mode=full json=0 only= processes=0
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) mode=quick ;;
	--processes) processes=1 ;;
	--json) json=1 ;;
	--only)
		[ $# -ge 2 ] || { echo "bench: --only needs a list of scenarios" >&2; exit 2; }
		only=$2
		shift
		for s in ${only//,/ }; do
			case "$s" in
			propagation | burst | sync | scale | footprint | chainlen | gossipchain | gossipsub-tuned | gossipsub-bare | seed-dial) ;;
			*) echo "bench: unknown scenario or system '$s'" >&2; exit 2 ;;
			esac
		done
		;;
	*) echo "bench: unknown argument '$1' (use --quick, --processes, --json, --only LIST)" >&2; exit 2 ;;
	esac
	shift
done
# Progress lines go to stderr as they come; the rest is kept for the table
# (and shown if the suite fails).
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
if [ "$processes" = 1 ]; then
	suite=(env GOSSIPCHAIN_BENCH_PROCESSES="$mode" GOSSIPCHAIN_BENCH_ONLY="$only" go test -run '^TestBenchProcesses$')
	echo "bench: process mode: every node its own process" >&2
else
	suite=(env GOSSIPCHAIN_BENCH="$mode" GOSSIPCHAIN_BENCH_ONLY="$only" go test -run '^TestBenchSuite$')
fi
(cd "$root" && "${suite[@]}" -count=1 -timeout 30m -v ./node 2>&1) |
	while IFS= read -r l; do
		case "$l" in
		"PROGRESS "*) echo "bench: ${l#PROGRESS }" >&2 ;;
		*) echo "$l" >>"$log" ;;
		esac
	done
status=${PIPESTATUS[0]}
set -e
if [ "$status" != 0 ]; then
	tail -n 30 "$log" >&2
	echo "bench: the suite failed" >&2
	exit 1
fi
out="$(cat "$log")"
lines="$(echo "$out" | sed -n 's/^BENCH //p')"
ratios="$(echo "$out" | sed -n 's/^RATIO //p')"
if [ "$json" = 1 ]; then
	echo "$lines"
	[ -z "$ratios" ] || echo "$ratios" | sed 's/^{/{"ratio":"gossipchain\/gossipsub-tuned",/'
	exit 0
fi
fmt='%-12s %-15s %5s %5s %7s %7s %8s %8s %8s %9s %12s %11s %8s %9s %10s %7s %7s\n'
printf "$fmt" SCENARIO SYSTEM NODES PEERS BLOCKS DELIV% P50_MS P99_MS MAX_MS BLOCKS/S ORIGIN_B/BLK CPU_MS/BLK RSS_MIB HEAP/HOST RESTART_MS B/BLOCK API_MS
echo "$lines" | while IFS= read -r l; do
	f() {
		local v
		v=$(echo "$l" | sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p")
		echo "${v:--}"
	}
	printf "$fmt" "$(f scenario)" "$(f system)" "$(f nodes)" "$(f peers_each)" "$(f blocks)" "$(f delivered_pct)" "$(f p50_ms)" "$(f p99_ms)" "$(f max_ms)" \
		"$(f blocks_per_s)" "$(f origin_bytes_per_block)" "$(f cpu_ms_per_block)" "$(f rss_mib)" "$(f heap_mib_per_host)" \
		"$(f restart_ms)" "$(f bytes_per_block)" "$(f api_ms)"
done
if [ -n "$ratios" ]; then
	echo
	echo "gossipchain / gossipsub-tuned (lower is better but for BLOCKS/S):"
	rfmt='%-12s %5s %5s %7s %7s %9s %8s %9s\n'
	printf "$rfmt" SCENARIO NODES PEERS P50 P99 BLOCKS/S CPU ORIGIN_B
	echo "$ratios" | while IFS= read -r l; do
		f() {
			local v
			v=$(echo "$l" | sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p")
			echo "${v:+${v}x}"
		}
		printf "$rfmt" "$(echo "$l" | sed -n 's/.*"scenario":"\([^"]*\)".*/\1/p')" "$(echo "$l" | sed -n 's/.*"nodes":\([0-9]*\).*/\1/p')" \
			"$(echo "$l" | sed -n 's/.*"peers_each":\([0-9]*\).*/\1/p')" \
			"$(f p50_x)" "$(f p99_x)" "$(f blocks_per_s_x)" "$(f cpu_x)" "$(f origin_bytes_x)"
	done
fi
