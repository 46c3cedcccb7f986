#!/usr/bin/env bash
# pipejoin.sh: a chain made the way users make it, synced by a late joiner.
# It pipes N lines into one node's console (the lines are stamped as they
# are appended), waits until that node holds them all, waits DELAY seconds,
# then starts a second node with the first as --peer and times it until it
# holds the whole chain. Both run without an author budget
# (--author-rate 0), as a piped file needs. docs/BENCHMARKS.md, "Sync".
#
#   scripts/pipejoin.sh [N [DELAY]]        # default 200000 lines, joined at once
#   BIN=/path/to/gossipchain scripts/pipejoin.sh 200000 120
#
# PORT (default 4101) and PORT+1 are the nodes' p2p ports, API_PORT (8101)
# and API_PORT+1 their APIs. Prints the append rate, the joiner's blocks/s
# and the CPU time each process used.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
n=${1:-200000} delay=${2:-0}
port=${PORT:-4101} api=${API_PORT:-8101}
work="$(mktemp -d)"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
bin=${BIN:-}
if [ -z "$bin" ]; then
	bin="$work/gossipchain"
	(cd "$root" && go build -o "$bin" .)
fi
height() {
	curl -fsS "http://127.0.0.1:$1/status" 2>/dev/null | sed -n 's/.*"height":\([0-9]*\).*/\1/p'
}
wait_height() { # api port, height
	until [ "$(height "$1")" = "$2" ]; do sleep 0.02; done
}
now() { date +%s.%N; }

seq 1 "$n" | sed 's/^/line &, padded to a typical line: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx/' >"$work/lines"
mkfifo "$work/more"
# The source's console: the lines, then an input that stays open (end of
# input would not stop the node, but a closed pipe is not what a user has).
sleep 1000000 >"$work/more" &
pids+=($!)
t0=$(now)
cat "$work/lines" "$work/more" | "$bin" --port "$port" --api "127.0.0.1:$api" --data "$work/src" \
	--author-rate 0 --ready-file "$work/src.ready" --log warn >/dev/null 2>"$work/src.log" &
src=$!
pids+=($src)
wait_height "$api" "$n"
t1=$(now)
sleep "$delay"
addr=$(sed -n 's/.*"addrs":\["\([^"]*\)".*/\1/p' "$work/src.ready")
t2=$(now)
"$bin" --port $((port + 1)) --api "127.0.0.1:$((api + 1))" --data "$work/joiner" \
	--author-rate 0 --peer "$addr" --log info >/dev/null 2>"$work/joiner.log" &
joiner=$!
pids+=($joiner)
wait_height $((api + 1)) "$n"
t3=$(now)
cpu() { # user + system seconds of a running process
	awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"
}
echo "appended: $n lines at $(echo "$n / ($t1 - $t0)" | bc) lines/s"
echo "joiner (started ${delay}s after): $(echo "$n / ($t3 - $t2)" | bc) blocks/s; CPU s: joiner $(cpu "$joiner"), source $(cpu "$src")"
grep -c "ahead of this node's clock" "$work/joiner.log" | sed 's/^/syncs stopped by a block from the future: /' || true
