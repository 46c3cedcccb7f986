#!/usr/bin/env bash
# cluster.sh runs a local gossipchain cluster on loopback.
#
#   scripts/cluster.sh start [N]     build once, start N nodes (default 3)
#   scripts/cluster.sh status        height and head of every node; exit 1 unless all agree
#   scripts/cluster.sh send K TEXT   add a block with TEXT on node K
#   scripts/cluster.sh stop          stop every node and wait for it to exit
#
# Node k listens on port BASE+k-1 (3001..) with its API on API_BASE+k-1
# (8001..); node k>1 peers with node 1. State, data dirs and logs live in
# .cluster/ at the repository root. Environment overrides:
#   GOSSIPCHAIN_CLUSTER_DIR  state directory
#   GOSSIPCHAIN_BASE_PORT    first p2p port (0: any free port for every node)
#   GOSSIPCHAIN_API_BASE     first API port (0: any free port for every node)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state="${GOSSIPCHAIN_CLUSTER_DIR:-$root/.cluster}"
base="${GOSSIPCHAIN_BASE_PORT:-3001}"
api_base="${GOSSIPCHAIN_API_BASE:-8001}"
bin="$state/gossipchain"

die() { echo "cluster: $*" >&2; exit 1; }

port_for() { if [ "$1" = 0 ]; then echo 0; else echo $(($1 + $2 - 1)); fi; }

alive() { [ -f "$state/node-$1.pid" ] && kill -0 "$(cat "$state/node-$1.pid")" 2>/dev/null; }

nodes() { ls "$state"/node-*.pid 2>/dev/null | sed 's/.*node-\([0-9]*\)\.pid/\1/' | sort -n; }

api_of() { cat "$state/node-$1.api" 2>/dev/null || die "node $1 is not part of the cluster"; }

# wait_ready K: wait until node K printed its address and API, or fail.
wait_ready() {
	local k=$1 out="$state/node-$1.out"
	for _ in $(seq 1 150); do
		if ! alive "$k"; then
			echo "cluster: node $k failed to start:" >&2
			tail -n 5 "$state/node-$k.log" >&2 || true
			return 1
		fi
		if grep -q '^/ip4/' "$out" 2>/dev/null && grep -q '^api: ' "$out"; then
			grep -m1 '^/ip4/' "$out" >"$state/node-$k.addr"
			grep -m1 '^api: ' "$out" | sed 's#^api: http://##' >"$state/node-$k.api"
			return 0
		fi
		sleep 0.1
	done
	echo "cluster: node $k did not become ready in 15s; see $state/node-$k.log" >&2
	return 1
}

start() {
	local n=${1:-3}
	[[ "$n" =~ ^[1-9][0-9]*$ ]] || die "start: N must be a positive number, got '$n'"
	for k in $(nodes); do alive "$k" && die "a cluster is already running in $state (scripts/cluster.sh stop first)"; done
	mkdir -p "$state"
	rm -f "$state"/node-*.pid "$state"/node-*.addr "$state"/node-*.api "$state"/node-*.out
	echo "building gossipchain..."
	(cd "$root" && go build -o "$bin" .) || die "build failed"
	local first=""
	for k in $(seq 1 "$n"); do
		local args=(--port "$(port_for "$base" "$k")" --data "$state/node-$k" --api "127.0.0.1:$(port_for "$api_base" "$k")")
		[ -n "$first" ] && args+=(--peer "$first")
		nohup "$bin" "${args[@]}" </dev/null >"$state/node-$k.out" 2>"$state/node-$k.log" &
		echo $! >"$state/node-$k.pid"
		if ! wait_ready "$k"; then
			stop >/dev/null
			exit 1
		fi
		[ -z "$first" ] && first="$(cat "$state/node-1.addr")"
	done
	printf '%-5s %-80s %-27s %s\n' NODE ADDRESS API LOG
	for k in $(nodes); do
		printf '%-5s %-80s %-27s %s\n' "$k" "$(cat "$state/node-$k.addr")" "http://$(api_of "$k")" "$state/node-$k.log"
	done
}

json_field() { sed -n "s/.*\"$1\":\"\{0,1\}\([^\",]*\).*/\1/p"; }

status() {
	local heads="" agree=0 any=0
	printf '%-5s %-8s %-7s %-6s %s\n' NODE STATE HEIGHT PEERS HEAD
	for k in $(nodes); do
		any=1
		local s=""
		if alive "$k"; then s="$(curl -sf --max-time 3 "http://$(api_of "$k")/status" || true)"; fi
		if [ -z "$s" ]; then
			printf '%-5s %-8s\n' "$k" down
			agree=1
			continue
		fi
		local head
		head="$(echo "$s" | json_field head)"
		printf '%-5s %-8s %-7s %-6s %s\n' "$k" up "$(echo "$s" | json_field height)" "$(echo "$s" | json_field peers)" "$head"
		heads="$heads$head"$'\n'
	done
	[ "$any" = 1 ] || die "no cluster in $state (scripts/cluster.sh start first)"
	if [ "$agree" = 0 ] && [ "$(printf '%s' "$heads" | sort -u | wc -l)" = 1 ]; then
		echo "converged: all nodes have the same head"
	else
		echo "not converged"
		return 1
	fi
}

send() {
	[ $# -ge 2 ] || die "usage: send K TEXT"
	local k=$1
	shift
	local text="$*"
	text="${text//\\/\\\\}"
	text="${text//\"/\\\"}"
	text="$(printf '%s' "$text" | tr -d '\000-\037')"
	alive "$k" || die "node $k is not running"
	curl -sS --max-time 10 -H 'Content-Type: application/json' -X POST \
		--data "{\"data\":\"$text\"}" "http://$(api_of "$k")/blocks" || die "send to node $k failed"
	echo
}

stop() {
	local pids=()
	for k in $(nodes); do
		if alive "$k"; then
			kill -TERM "$(cat "$state/node-$k.pid")" 2>/dev/null || true
			pids+=("$(cat "$state/node-$k.pid")")
		fi
	done
	for p in "${pids[@]}"; do
		for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		if kill -0 "$p" 2>/dev/null; then
			echo "cluster: process $p did not stop in 10s; killing it" >&2
			kill -KILL "$p" 2>/dev/null || true
		fi
	done
	rm -f "$state"/node-*.pid
	echo "stopped ${#pids[@]} nodes"
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
start) start "$@" ;;
status) status ;;
send) send "$@" ;;
stop) stop ;;
*)
	sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
	[ -z "$cmd" ] || exit 2
	;;
esac
