#!/usr/bin/env bash
# netlab.sh runs gossipchain across several "machines" on one host: each node
# in its own network namespace with its own address, joined by veth pairs to
# a bridge (itself in a namespace of its own: the host's network is not
# touched). Root only (network namespaces).
#
#   scripts/netlab.sh up [N]          create N machines (default 4) and start a node on each
#   scripts/netlab.sh status          height and head of every node; exit 1 unless all agree
#   scripts/netlab.sh status --wait [SECONDS]
#                                     wait (default 60s) until they agree; exit 1 on timeout
#   scripts/netlab.sh send K TEXT     add a block on node K (through its API)
#   scripts/netlab.sh chain K         node K's main chain, as JSON (first 1,000 blocks)
#   scripts/netlab.sh cut K           take machine K's link down: it is cut off
#   scripts/netlab.sh restore K       bring machine K's link back up
#   scripts/netlab.sh down            stop every node and delete every namespace
#   scripts/netlab.sh demo            up 4, type on each, cut one off, type on
#                                     both sides, restore, wait until they agree,
#                                     and tear everything down (also on failure)
#
# Machine k is namespace PREFIX-k with address 10.77.0.k/24 on eth0; node k
# listens on 10.77.0.k:3001 and serves its API on 127.0.0.1:8001 inside its
# namespace. Nodes k>1 are given node 1 as their only bootstrap peer.
# Environment: GOSSIPCHAIN_NETLAB_PREFIX (namespace prefix, default gclab),
# GOSSIPCHAIN_NETLAB_DIR (state, default .netlab at the repository root).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix="${GOSSIPCHAIN_NETLAB_PREFIX:-gclab}"
state="${GOSSIPCHAIN_NETLAB_DIR:-$root/.netlab}"
bin="$state/gossipchain"
br="$prefix-br"
port=3001
api=8001

die() { echo "netlab: $*" >&2; exit 1; }

need_root() {
	[ "$(id -u)" = 0 ] || die "needs root: it creates network namespaces (try: sudo $0 $*)"
	command -v ip >/dev/null || die "needs iproute2 (the ip command)"
	command -v curl >/dev/null || die "needs curl"
}

machines() { ls "$state"/node-*.pid 2>/dev/null | sed 's/.*node-\([0-9]*\)\.pid/\1/' | sort -n; }
ns_of() { echo "$prefix-$1"; }
addr_of() { echo "10.77.0.$1"; }
in_ns() { local k=$1; shift; ip netns exec "$(ns_of "$k")" "$@"; }
api_get() { in_ns "$1" curl -sf --max-time 3 "http://127.0.0.1:$api$2"; }

up() {
	local n=${1:-4}
	[[ "$n" =~ ^[1-9][0-9]*$ ]] && [ "$n" -le 200 ] || die "up: N must be 1..200, got '$n'"
	ip netns list | grep -q "^$br\b" && die "a lab named $prefix is up already (scripts/netlab.sh down first)"
	mkdir -p "$state"
	rm -f "$state"/node-*
	echo "building gossipchain..."
	(cd "$root" && go build -o "$bin" .) || die "build failed"
	ip netns add "$br"
	ip -n "$br" link set lo up
	ip -n "$br" link add br0 type bridge
	ip -n "$br" link set br0 up
	for k in $(seq 1 "$n"); do
		local ns
		ns="$(ns_of "$k")"
		ip netns add "$ns"
		ip -n "$ns" link set lo up
		ip -n "$br" link add "v$k" type veth peer name eth0 netns "$ns"
		ip -n "$br" link set "v$k" master br0 up
		ip -n "$ns" addr add "$(addr_of "$k")/24" dev eth0
		ip -n "$ns" link set eth0 up
	done
	local boot=""
	for k in $(seq 1 "$n"); do
		local data="$state/node-$k"
		local id
		id="$("$bin" id --data "$data")"
		local args=(--listen "$(addr_of "$k")" --port "$port" --data "$data" --api "127.0.0.1:$api")
		[ -n "$boot" ] && args+=(--peer "$boot")
		# Not through in_ns: a function run in the background is a subshell,
		# and $! would be that shell, not the node (ip and nohup exec).
		ip netns exec "$(ns_of "$k")" nohup "$bin" "${args[@]}" </dev/null >"$state/node-$k.out" 2>"$state/node-$k.log" &
		echo $! >"$state/node-$k.pid"
		[ -z "$boot" ] && boot="/ip4/$(addr_of 1)/tcp/$port/p2p/$id"
	done
	for k in $(seq 1 "$n"); do
		for _ in $(seq 1 100); do
			api_get "$k" /status >/dev/null 2>&1 && break
			kill -0 "$(cat "$state/node-$k.pid")" 2>/dev/null || { tail -n 5 "$state/node-$k.log" >&2; die "node $k failed to start"; }
			sleep 0.1
		done
		api_get "$k" /status >/dev/null || die "node $k did not answer within 10s; see $state/node-$k.log"
	done
	printf '%-8s %-12s %-14s %s\n' MACHINE NAMESPACE ADDRESS LOG
	for k in $(seq 1 "$n"); do
		printf '%-8s %-12s %-14s %s\n' "$k" "$(ns_of "$k")" "$(addr_of "$k")" "$state/node-$k.log"
	done
}

json_field() { sed -n "s/.*\"$1\":\"\{0,1\}\([^\",]*\).*/\1/p"; }

check() {
	local heads="" any=0
	printf '%-8s %-7s %-6s %s\n' MACHINE HEIGHT PEERS HEAD
	for k in $(machines); do
		any=1
		local s
		s="$(api_get "$k" /status || true)"
		if [ -z "$s" ]; then
			printf '%-8s %s\n' "$k" "no answer"
			heads="$heads(none)"$'\n'
			continue
		fi
		local head
		head="$(echo "$s" | json_field head)"
		# Lines still to be re-appended after a reorg: not settled yet.
		[ "$(echo "$s" | json_field pending)" = 0 ] || head="$head (pending)"
		printf '%-8s %-7s %-6s %s\n' "$k" "$(echo "$s" | json_field height)" "$(echo "$s" | json_field peers)" "$head"
		heads="$heads$head"$'\n'
	done
	[ "$any" = 1 ] || die "no lab is up (scripts/netlab.sh up first)"
	if [ "$(printf '%s' "$heads" | sort -u | wc -l)" = 1 ]; then
		echo "converged: all nodes have the same head, nothing pending"
	else
		echo "not converged"
		return 1
	fi
}

status() {
	if [ "${1:-}" != --wait ]; then
		check
		return
	fi
	local secs=${2:-60} out
	[[ "$secs" =~ ^[0-9]+$ ]] || die "status --wait: SECONDS must be a number, got '$secs'"
	local deadline=$((SECONDS + secs))
	until out="$(check)"; do
		if [ "$SECONDS" -ge "$deadline" ]; then
			echo "$out"
			die "not converged after ${secs}s"
		fi
		sleep 0.3
	done
	echo "$out"
}

machine_arg() {
	[[ "${1:-}" =~ ^[1-9][0-9]*$ ]] && [ -f "$state/node-$1.pid" ] || die "no machine '${1:-}' in the lab"
}

send() {
	[ $# -ge 2 ] || die "usage: send K TEXT"
	machine_arg "$1"
	local k=$1
	shift
	local text="$*"
	text="${text//\\/\\\\}"
	text="${text//\"/\\\"}"
	text="$(printf '%s' "$text" | tr -d '\000-\037')"
	in_ns "$k" curl -sS --max-time 10 -H 'Content-Type: application/json' -X POST \
		--data "{\"data\":\"$text\"}" "http://127.0.0.1:$api/blocks" || die "send to node $k failed"
	echo
}

chain() {
	machine_arg "$@"
	api_get "$1" "/blocks?from=0&limit=1000"
	echo
}

cut() {
	machine_arg "$@"
	ip -n "$br" link set "v$1" down
	echo "machine $1 cut off"
}

restore() {
	machine_arg "$@"
	ip -n "$br" link set "v$1" up
	echo "machine $1 connected again"
}

down() {
	local pids=() k
	for k in $(machines); do
		pids+=("$(cat "$state/node-$k.pid")")
	done
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do
		for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null || true
	done
	rm -f "$state"/node-*.pid
	for ns in $(ip netns list | awk '{print $1}' | grep -E "^$prefix-(br|[0-9]+)$" || true); do
		ip netns del "$ns"
	done
	echo "lab $prefix down (${#pids[@]} nodes stopped)"
}

demo() {
	trap down EXIT
	up 4
	for k in 1 2 3 4; do send "$k" "hello from machine $k" >/dev/null; done
	status --wait 30
	cut 4
	send 1 "typed while 4 is cut off" >/dev/null
	send 4 "typed on 4, alone" >/dev/null
	sleep 1 # let each side settle on its own branch
	status || true
	restore 4
	status --wait 60
	echo "lines on machine 1's chain:"
	api_get 1 "/blocks?from=1&limit=1000" | grep -o '"data":"[^"]*"'
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
up | status | send | chain | cut | restore | down | demo)
	need_root "$cmd"
	"$cmd" "$@"
	;;
*)
	sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'
	[ -z "$cmd" ] || exit 2
	;;
esac
