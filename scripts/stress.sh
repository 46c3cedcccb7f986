#!/usr/bin/env bash
# stress.sh runs the whole test suite N times (default 5) with the machine's
# other cores kept busy, and reports the runs that failed and which tests
# failed in them. It exits non-zero if any run failed.
#
#   scripts/stress.sh [N]
#
# The load is one busy loop per CPU but one, started here and stopped when
# the script ends (also on Ctrl-C). Each run is `go test -race -count=1 ./...`;
# the output of a failed run is kept in .stress/run-K.log.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs=${1:-5}
case "$runs" in
'' | *[!0-9]*) echo "stress: N must be a positive number, not '$runs'" >&2; exit 2 ;;
esac
[ "$runs" -ge 1 ] || { echo "stress: N must be at least 1" >&2; exit 2; }

cpus=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
load=$((cpus > 1 ? cpus - 1 : 1))
pids=()
stop_load() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap stop_load EXIT
trap 'exit 130' INT TERM
for _ in $(seq "$load"); do
	( while :; do :; done ) &
	pids+=($!)
done

logs="$root/.stress"
mkdir -p "$logs"
rm -f "$logs"/run-*.log
cd "$root"
echo "stress: $runs runs of go test -race -count=1 ./... with $load busy loop(s) on $cpus CPUs"
echo "stress: building the tests first"
go test -race -count=1 -run '^$' ./... >/dev/null
failed=0
declare -A tests=()
start=$SECONDS
for i in $(seq "$runs"); do
	t0=$SECONDS
	log="$logs/run-$i.log"
	if go test -race -count=1 ./... >"$log" 2>&1; then
		echo "stress: run $i/$runs ok ($((SECONDS - t0)) s)"
		rm -f "$log"
	else
		failed=$((failed + 1))
		names=$(grep -oE -- '--- FAIL: [^ ]+' "$log" | awk '{print $3}' | sort -u | tr '\n' ' ' || true)
		for n in $names; do tests[$n]=$((${tests[$n]:-0} + 1)); done
		[ -n "$names" ] || names="(no test named: a build failure, panic or timeout; see the log)"
		echo "stress: run $i/$runs FAILED ($((SECONDS - t0)) s): $names-> ${log#"$root"/}"
	fi
done
echo "stress: $failed of $runs runs failed, $((SECONDS - start)) s in all"
for n in "${!tests[@]}"; do echo "stress:   $n failed in ${tests[$n]} run(s)"; done
[ "$failed" -eq 0 ]
