#!/usr/bin/env bash
# cluster.sh runs a local gossipchain cluster on loopback.
#
#   scripts/cluster.sh start [N]     build once, start N nodes (default 3)
#   scripts/cluster.sh status        height and head of every node; exit 1 unless
#                                    every running node has the same head
#   scripts/cluster.sh status --wait [SECONDS]
#                                    wait (default 60s) until they do; exit 1 on timeout
#   scripts/cluster.sh send K TEXT   add a block with TEXT on node K
#   scripts/cluster.sh kill K        SIGKILL node K (a crash)
#   scripts/cluster.sh restart K     stop node K if running, start it again on
#                                    its port and data dir (it catches up)
#   scripts/cluster.sh pause K       SIGSTOP node K (frozen: connections stay up)
#   scripts/cluster.sh resume K      SIGCONT node K
#   scripts/cluster.sh add           start one more node (a late joiner)
#   scripts/cluster.sh trace K|HASH  how block K (or HASH) spread: a tree from its
#                                    author, with times, hops and duplicates
#   scripts/cluster.sh chaos [--seed S] [--duration 60s] [--nodes 5]
#                                    a cluster of its own (temporary dir), lines
#                                    typed on random nodes under a seeded schedule
#                                    of kills, freezes, cuts and joins, then a check
#                                    of every node's chain; exit 1 on a violation
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

paused() { [ -f "$state/node-$1.paused" ]; }

# node_arg K: check that K names a node of the cluster.
node_arg() {
	[[ "${1:-}" =~ ^[1-9][0-9]*$ ]] || die "expected a node number, got '${1:-}'"
	[ -f "$state/node-$1.pid" ] || die "node $1 is not part of the cluster in $state"
}

nodes() { ls "$state"/node-*.pid 2>/dev/null | sed 's/.*node-\([0-9]*\)\.pid/\1/' | sort -n; }

api_of() { cat "$state/node-$1.api" 2>/dev/null || die "node $1 is not part of the cluster"; }

# wait_ready K: wait until node K wrote its ready file (--ready-file: one
# line of JSON, {"id":...,"addrs":["/ip4/..."],"api":"http://..."}), then
# keep its first address and its API, or fail.
wait_ready() {
	local k=$1 ready="$state/node-$1.ready"
	for _ in $(seq 1 150); do
		if [ -f "$ready" ]; then
			sed -n 's#.*"addrs":\["\([^"]*\)".*#\1#p' "$ready" >"$state/node-$k.addr"
			sed -n 's#.*"api":"http://\([^"]*\)".*#\1#p' "$ready" >"$state/node-$k.api"
			[ -s "$state/node-$k.addr" ] && [ -s "$state/node-$k.api" ] && return 0
			echo "cluster: node $k wrote an unreadable ready file: $ready" >&2
			return 1
		fi
		if ! alive "$k"; then
			echo "cluster: node $k failed to start:" >&2
			tail -n 5 "$state/node-$k.log" >&2 || true
			return 1
		fi
		sleep 0.1
	done
	echo "cluster: node $k did not become ready in 15s; see $state/node-$k.log" >&2
	return 1
}

# launch K PORT API_PORT [PEER]: start node K in the background and wait
# until it is ready.
launch() {
	local k=$1 port=$2 api=$3 peer=${4:-}
	local args=(--port "$port" --data "$state/node-$k" --api "127.0.0.1:$api" --ready-file "$state/node-$k.ready")
	[ -n "$peer" ] && args+=(--peer "$peer")
	rm -f "$state/node-$k.paused" "$state/node-$k.ready"
	nohup "$bin" "${args[@]}" </dev/null >"$state/node-$k.out" 2>>"$state/node-$k.log" &
	echo $! >"$state/node-$k.pid"
	wait_ready "$k"
}

# peer_for K: the address node K should dial: node 1's, or the first other
# running node's if node 1 is down.
peer_for() {
	local k
	for k in 1 $(nodes); do
		if [ "$k" != "$1" ] && alive "$k" && [ -f "$state/node-$k.addr" ]; then
			cat "$state/node-$k.addr"
			return
		fi
	done
}

start() {
	local n=${1:-3}
	[[ "$n" =~ ^[1-9][0-9]*$ ]] || die "start: N must be a positive number, got '$n'"
	for k in $(nodes); do alive "$k" && die "a cluster is already running in $state (scripts/cluster.sh stop first)"; done
	mkdir -p "$state"
	rm -f "$state"/node-*.pid "$state"/node-*.addr "$state"/node-*.api "$state"/node-*.ready "$state"/node-*.out "$state"/node-*.paused
	echo "building gossipchain..."
	(cd "$root" && go build -o "$bin" .) || die "build failed"
	for k in $(seq 1 "$n"); do
		if ! launch "$k" "$(port_for "$base" "$k")" "$(port_for "$api_base" "$k")" "$(peer_for "$k")"; then
			stop >/dev/null
			exit 1
		fi
	done
	table
}

table() {
	printf '%-5s %-80s %-27s %s\n' NODE ADDRESS 'DASHBOARD AND API' LOG
	for k in $(nodes); do
		printf '%-5s %-80s %-27s %s\n' "$k" "$(cat "$state/node-$k.addr")" "http://$(api_of "$k")" "$state/node-$k.log"
	done
}

# The port part of node K's address and API, to restart it where it was.
port_of() { sed -n 's#.*/tcp/\([0-9]*\)/.*#\1#p' "$state/node-$1.addr"; }
api_port_of() { sed 's/.*://' "$state/node-$1.api"; }

kill_node() {
	node_arg "$@"
	alive "$1" || die "node $1 is not running"
	local pid
	pid="$(cat "$state/node-$1.pid")"
	kill -KILL "$pid"
	for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	rm -f "$state/node-$1.paused"
	echo "killed node $1"
}

restart() {
	node_arg "$@"
	local k=$1
	if alive "$k"; then
		paused "$k" && kill -CONT "$(cat "$state/node-$k.pid")"
		stop_pids "$(cat "$state/node-$k.pid")"
	fi
	launch "$k" "$(port_of "$k")" "$(api_port_of "$k")" "$(peer_for "$k")" || exit 1
	echo "restarted node $k: $(cat "$state/node-$k.addr")"
}

pause() {
	node_arg "$@"
	alive "$1" || die "node $1 is not running"
	kill -STOP "$(cat "$state/node-$1.pid")"
	touch "$state/node-$1.paused"
	echo "paused node $1"
}

resume() {
	node_arg "$@"
	paused "$1" || die "node $1 is not paused"
	kill -CONT "$(cat "$state/node-$1.pid")"
	rm -f "$state/node-$1.paused"
	echo "resumed node $1"
}

add() {
	local last k
	last="$(nodes | tail -n 1)"
	[ -n "$last" ] || die "no cluster in $state (scripts/cluster.sh start first)"
	[ -x "$bin" ] || die "no binary in $state (scripts/cluster.sh start first)"
	k=$((last + 1))
	launch "$k" "$(port_for "$base" "$k")" "$(port_for "$api_base" "$k")" "$(peer_for "$k")" || exit 1
	echo "added node $k: $(cat "$state/node-$k.addr")"
}

json_field() { sed -n "s/.*\"$1\":\"\{0,1\}\([^\",]*\).*/\1/p"; }

# check: print every node's state; succeed if every running node has the
# same head.
check() {
	local heads="" running=0 any=0 others=""
	printf '%-5s %-8s %-7s %-6s %s\n' NODE STATE HEIGHT PEERS HEAD
	for k in $(nodes); do
		any=1
		if ! alive "$k"; then
			printf '%-5s %-8s\n' "$k" down
			others="$others, $k down"
			continue
		fi
		if paused "$k"; then
			printf '%-5s %-8s\n' "$k" paused
			others="$others, $k paused"
			continue
		fi
		local s head
		s="$(curl -sf --max-time 3 "http://$(api_of "$k")/status" || true)"
		if [ -z "$s" ]; then
			printf '%-5s %-8s\n' "$k" silent
			heads="$heads"$'(no answer)\n'
			running=$((running + 1))
			continue
		fi
		head="$(echo "$s" | json_field head)"
		# Lines still to be re-appended after a reorg: not settled yet.
		[ "$(echo "$s" | json_field pending)" = 0 ] || head="$head (pending)"
		printf '%-5s %-8s %-7s %-6s %s\n' "$k" up "$(echo "$s" | json_field height)" "$(echo "$s" | json_field peers)" "$head"
		heads="$heads$head"$'\n'
		running=$((running + 1))
	done
	[ "$any" = 1 ] || die "no cluster in $state (scripts/cluster.sh start first)"
	if [ "$running" -gt 0 ] && [ "$(printf '%s' "$heads" | sort -u | wc -l)" = 1 ]; then
		echo "converged: all $running running nodes have the same head, nothing pending${others}"
	else
		echo "not converged${others}"
		return 1
	fi
}

status() {
	if [ "${1:-}" != --wait ]; then
		check
		return
	fi
	local secs=${2:-60}
	[[ "$secs" =~ ^[0-9]+$ ]] || die "status --wait: SECONDS must be a number, got '$secs'"
	local deadline=$((SECONDS + secs)) out
	while :; do
		if out="$(check)"; then
			echo "$out"
			return 0
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			echo "$out"
			echo "cluster: not converged after ${secs}s" >&2
			return 1
		fi
		sleep 0.2
	done
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

# stop_pids PID...: SIGTERM each, wait up to 10s, then SIGKILL.
stop_pids() {
	local p
	for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "$@"; do
		for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		if kill -0 "$p" 2>/dev/null; then
			echo "cluster: process $p did not stop in 10s; killing it" >&2
			kill -KILL "$p" 2>/dev/null || true
		fi
	done
}

stop() {
	local pids=()
	for k in $(nodes); do
		if alive "$k"; then
			paused "$k" && kill -CONT "$(cat "$state/node-$k.pid")"
			pids+=("$(cat "$state/node-$k.pid")")
		fi
	done
	[ ${#pids[@]} -eq 0 ] || stop_pids "${pids[@]}"
	rm -f "$state"/node-*.pid "$state"/node-*.paused
	echo "stopped ${#pids[@]} nodes"
}

# trace BLOCK: every running node's record of BLOCK, drawn as a tree.
trace() {
	[ $# -eq 1 ] || die "usage: trace K|HASH (a block index or hash)"
	[ -x "$bin" ] || die "no cluster binary; run start first"
	local args=()
	for k in $(nodes); do
		alive "$k" && ! paused "$k" && args+=(--api "$k=http://$(api_of "$k")")
	done
	[ ${#args[@]} -gt 0 ] || die "no running node"
	"$bin" trace "${args[@]}" "$1"
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
start) start "$@" ;;
status) status "$@" ;;
send) send "$@" ;;
kill) kill_node "$@" ;;
restart) restart "$@" ;;
pause) pause "$@" ;;
resume) resume "$@" ;;
add) add ;;
trace) trace "$@" ;;
chaos)
	mkdir -p "$state"
	echo "building gossipchain..."
	(cd "$root" && go build -o "$bin" .) || die "build failed"
	exec "$bin" chaos "$@"
	;;
stop) stop ;;
*)
	sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'
	[ -z "$cmd" ] || exit 2
	;;
esac
