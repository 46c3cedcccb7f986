#!/usr/bin/env bash
# netlab.sh runs gossipchain across several "machines" on one host: each node
# in its own network namespace with its own address, joined by veth pairs to
# a bridge (itself in a namespace of its own: the host's network is not
# touched). Root only (network namespaces).
#
#   scripts/netlab.sh up [N]          create N machines (default 4) and start a node on each
#   scripts/netlab.sh lan-up [N]      the same, N default 2, with no --peer: the nodes
#                                     find each other on the LAN (mDNS)
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
#   scripts/netlab.sh long-cut-demo [SECONDS]
#                                     up 4, cut machine 4 off for SECONDS (default
#                                     30), 5 lines a second typed on each side, far
#                                     past the finality depth; restore: one chain,
#                                     every line once; tear everything down
#
#   scripts/netlab.sh nat-up [H] [quic]
#                                     a public node and H homes (default 2), each
#                                     behind its own NAT router, given only the
#                                     public node's address: its first (TCP), or
#                                     with quic its QUIC one
#   scripts/netlab.sh links [--direct SECONDS]
#                                     each node's reachability and how it is
#                                     connected to the others (direct, hole-punched,
#                                     relayed); --direct waits until every home is
#                                     directly connected to every other
#   scripts/netlab.sh nat-demo        nat-up 2, wait for the homes to connect
#                                     directly, type at each, kill the public node,
#                                     type at each home again, then tear down
#   scripts/netlab.sh api NAME PATH   GET PATH from a node's API (NAME: 3, pub, h1...)
#   scripts/netlab.sh kill NAME       SIGKILL a node
#
# Machine k is namespace PREFIX-k with address 10.77.0.k/24 on eth0; node k
# listens on 10.77.0.k:3001 and serves its API on 127.0.0.1:8001 inside its
# namespace. Nodes k>1 are given node 1 as their only bootstrap peer.
#
# The NAT lab's internet is 11.0.0.0/24 (an address range libp2p counts as
# public: it leaves documentation and benchmark ranges alone), a bridge in
# namespace PREFIX-inet. The public node (namespace PREFIX-pub) is
# 11.0.0.1. Home k is a router (PREFIX-rk: 11.0.0.(10+k) on the internet,
# 192.168.k.1 at home) and a machine behind it (PREFIX-hk, 192.168.k.2,
# its node on port 3001). Each router masquerades, and filters as a home
# router does: nothing is let in unless it answers something that went out,
# and what is not let in is dropped without a word (no RST, no ICMP, no
# state kept), which is what lets a hole punch through. Needs nftables.
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

nodes() { ls "$state"/node-*.pid 2>/dev/null | sed -n 's/.*node-\([a-z0-9]*\)\.pid$/\1/p' | sort -V; }
ns_of() { echo "$prefix-$1"; }
addr_of() { echo "10.77.0.$1"; }
in_ns() { local k=$1; shift; ip netns exec "$(ns_of "$k")" "$@"; }
api_get() { in_ns "$1" curl -sf --max-time 3 "http://127.0.0.1:$api$2"; }

# up N [lan]: N machines, nodes k>1 given node 1's address; with lan, given
# nothing (they find each other by mDNS).
up() {
	local n=${1:-4} lan=${2:-}
	[[ "$n" =~ ^[1-9][0-9]*$ ]] && [ "$n" -le 200 ] || die "up: N must be 1..200, got '$n'"
	ip netns list | grep -q "^$br\b" && die "a lab named $prefix is up already (scripts/netlab.sh down first)"
	mkdir -p "$state"
	rm -rf "$state"/node-*
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
		[ -n "$boot" ] && [ -z "$lan" ] && args+=(--peer "$boot")
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
	for k in $(nodes); do
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
	[[ "${1:-}" =~ ^[a-z0-9]+$ ]] && [ -f "$state/node-$1.pid" ] || die "no machine '${1:-}' in the lab"
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
	for k in $(nodes); do
		pids+=("$(cat "$state/node-$k.pid")")
	done
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do
		for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null || true
	done
	rm -f "$state"/node-*.pid
	for ns in $(ip netns list | awk '{print $1}' | grep -E "^$prefix-(br|[0-9]+|inet|pub|[rh][0-9]+)$" || true); do
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

# long_cut_demo [SECONDS]: machine 4 cut off for SECONDS (default 30: past
# the settle time and, at 5 lines a second a side, the finality depth),
# typing on both sides; on restore the halves become one chain, every line
# once (the members' deep fork: docs/PROTOCOL.md).
long_cut_demo() {
	local secs=${1:-30}
	[[ "$secs" =~ ^[0-9]+$ ]] || die "long-cut-demo: SECONDS must be a number, got '$secs'"
	trap down EXIT
	up 4
	for k in 1 2 3 4; do send "$k" "hello from machine $k" >/dev/null; done
	status --wait 30
	cut 4
	echo "machine 4 cut off for ${secs}s; typing 5 lines a second on machine 1 and on machine 4"
	local end=$((SECONDS + secs)) i=0
	while [ "$SECONDS" -lt "$end" ]; do
		send 1 "side 1-3, line $i" >/dev/null
		send 4 "side 4, line $i" >/dev/null
		i=$((i + 1))
		[ $((i % 25)) -eq 0 ] && echo "  $i lines a side"
		sleep 0.2
	done
	status || true
	local healed=$SECONDS
	restore 4
	status --wait 120
	echo "one chain $((SECONDS - healed))s after the restore"
	local lines dups
	lines=$(api_get 1 "/blocks?from=1&limit=1000" | grep -o '"data":"[^"]*"')
	dups=$(echo "$lines" | sort | uniq -d | wc -l)
	echo "$(echo "$lines" | grep -c 'line ') of the $((2 * i)) lines typed apart are on machine 1's chain; $dups twice"
	[ "$dups" -eq 0 ] && [ "$(echo "$lines" | grep -c 'line ')" -eq $((2 * i)) ] || die "lines lost or doubled"
}

# The NAT lab.

nat_wan() { echo "11.0.0.$((10 + $1))"; }

# start_node NAME LISTEN [ARGS...]: a node in namespace PREFIX-NAME,
# listening on LISTEN:3001, its API on 127.0.0.1:8001 there.
start_node() {
	local name=$1 listen=$2
	shift 2
	local data="$state/node-$name"
	ip netns exec "$(ns_of "$name")" nohup "$bin" --listen "$listen" --port "$port" --data "$data" \
		--api "127.0.0.1:$api" --ready-file "$data.ready" "$@" </dev/null >"$data.out" 2>"$data.log" &
	echo $! >"$data.pid"
	disown $! # killing it (kill NAME) is no news for this shell to report
}

wait_ready() {
	local name=$1
	for _ in $(seq 1 100); do
		[ -f "$state/node-$name.ready" ] && api_get "$name" /status >/dev/null 2>&1 && return
		kill -0 "$(cat "$state/node-$name.pid")" 2>/dev/null || { tail -n 5 "$state/node-$name.log" >&2; die "node $name failed to start"; }
		sleep 0.1
	done
	die "node $name not ready within 10s; see $state/node-$name.log"
}

nat_up() {
	local h=${1:-2} via=${2:-tcp}
	[[ "$h" =~ ^[1-9][0-9]?$ ]] && [ "$h" -le 20 ] || die "nat-up: H must be 1..20, got '$h'"
	[[ "$via" =~ ^(tcp|quic)$ ]] || die "nat-up: give the homes the public node's tcp or quic address, not '$via'"
	command -v nft >/dev/null || die "needs nftables (the nft command): apt-get install nftables"
	ip netns list | grep -q "^$prefix-inet\b" && die "a NAT lab named $prefix is up already (scripts/netlab.sh down first)"
	mkdir -p "$state"
	rm -rf "$state"/node-*
	echo "building gossipchain..."
	(cd "$root" && go build -o "$bin" .) || die "build failed"
	local inet="$prefix-inet" pub="$prefix-pub"
	ip netns add "$inet"
	ip -n "$inet" link set lo up
	ip -n "$inet" link add br0 type bridge
	ip -n "$inet" link set br0 up
	ip netns add "$pub"
	ip -n "$pub" link set lo up
	ip -n "$inet" link add vpub type veth peer name eth0 netns "$pub"
	ip -n "$inet" link set vpub master br0 up
	ip -n "$pub" addr add 11.0.0.1/24 dev eth0
	ip -n "$pub" link set eth0 up
	for k in $(seq 1 "$h"); do
		local r="$prefix-r$k" home="$prefix-h$k"
		ip netns add "$r"
		ip netns add "$home"
		ip -n "$r" link set lo up
		ip -n "$home" link set lo up
		ip -n "$inet" link add "vr$k" type veth peer name wan0 netns "$r"
		ip -n "$inet" link set "vr$k" master br0 up
		ip -n "$r" addr add "$(nat_wan "$k")/24" dev wan0
		ip -n "$r" link set wan0 up
		ip -n "$r" link add lan0 type veth peer name eth0 netns "$home"
		ip -n "$r" addr add "192.168.$k.1/24" dev lan0
		ip -n "$r" link set lan0 up
		ip -n "$home" addr add "192.168.$k.2/24" dev eth0
		ip -n "$home" link set eth0 up
		ip -n "$home" route add default via "192.168.$k.1"
		ip netns exec "$r" sysctl -qw net.ipv4.ip_forward=1
		ip netns exec "$r" nft -f - <<-'EOF'
			table inet home {
				chain input {
					type filter hook input priority filter; policy drop;
					iif "lo" accept
					iifname "lan0" accept
					ct state established,related accept
				}
				chain forward {
					type filter hook forward priority filter; policy drop;
					iifname "lan0" oifname "wan0" accept
					iifname "wan0" oifname "lan0" ct state established,related accept
				}
			}
			table ip nat {
				chain postrouting {
					type nat hook postrouting priority srcnat; policy accept;
					oifname "wan0" masquerade
				}
			}
		EOF
	done
	start_node pub 11.0.0.1
	wait_ready pub
	local boot
	if [ "$via" = quic ]; then
		boot="$(grep -o '"/ip4/[^"]*/quic-v1/p2p/[^"]*"' "$state/node-pub.ready" | head -n 1 | tr -d '"')"
	else
		boot="$(sed -n 's#.*"addrs":\["\([^"]*\)".*#\1#p' "$state/node-pub.ready")"
	fi
	[ -n "$boot" ] || die "no address in the public node's ready file"
	for k in $(seq 1 "$h"); do
		start_node "h$k" "192.168.$k.2" --peer "$boot"
	done
	for k in $(seq 1 "$h"); do
		wait_ready "h$k"
	done
	printf '%-6s %-14s %-22s %s\n' NODE NAMESPACE ADDRESS LOG
	printf '%-6s %-14s %-22s %s\n' pub "$pub" "11.0.0.1" "$state/node-pub.log"
	for k in $(seq 1 "$h"); do
		printf '%-6s %-14s %-22s %s\n' "h$k" "$prefix-h$k" "192.168.$k.2 via $(nat_wan "$k")" "$state/node-h$k.log"
	done
	echo "homes were given only the public node's address: $boot"
}

# links prints, for every node, its reachability and each peer with the
# kinds of its connections; it returns 0 if every home has a direct
# connection to every other.
links() {
	local all=0 homes=() n
	for n in $(nodes); do [[ "$n" == h* ]] && homes+=("$n"); done
	declare -A names=()
	for n in $(nodes); do
		local id
		id="$(sed -n 's/.*"id":"\([^"]*\)".*/\1/p' "$state/node-$n.ready" 2>/dev/null)"
		[ -n "$id" ] && names[$id]=$n
	done
	for n in $(nodes); do
		local s
		if ! s="$(api_get "$n" /status)"; then
			printf '%-4s (no answer)\n' "$n"
			[[ "$n" == h* ]] && all=1
			continue
		fi
		printf '%-4s reachability %s\n' "$n" "$(echo "$s" | json_field reachability)"
		local peers direct=()
		peers="$(api_get "$n" /peers || true)"
		while read -r line; do
			local id kinds
			id="$(echo "$line" | sed -n 's/^"id":"\([^"]*\)".*/\1/p')"
			[ -n "$id" ] || continue
			kinds="$(echo "$line" | grep -o '"kind":"[a-z]*","transport":"[a-z]*"\(,"hole_punched":true\)\{0,1\}' |
				sed 's/"kind":"\([a-z]*\)","transport":"\([a-z]*\)"/\1 \2/; s/,"hole_punched":true/ hole-punched/' | paste -sd, -)"
			printf '       -> %-4s %s\n' "${names[$id]:-${id: -6}}" "$kinds"
			case "$kinds" in *direct*) direct+=("${names[$id]:-}") ;; esac
		done < <(echo "$peers" | sed 's/{"id":/\n"id":/g')
		if [[ "$n" == h* ]]; then
			local o
			for o in "${homes[@]}"; do
				[ "$o" = "$n" ] && continue
				[[ " ${direct[*]} " == *" $o "* ]] || all=1
			done
		fi
	done
	return $all
}

links_cmd() {
	if [ "${1:-}" != --direct ]; then
		links
		return
	fi
	local secs=${2:-60} out start=$SECONDS
	[[ "$secs" =~ ^[0-9]+$ ]] || die "links --direct: SECONDS must be a number, got '$secs'"
	until out="$(links)"; do
		if [ $((SECONDS - start)) -ge "$secs" ]; then
			echo "$out"
			die "homes not directly connected after ${secs}s"
		fi
		sleep 0.25
	done
	echo "$out"
	echo "every home is directly connected to every other (after $((SECONDS - start))s of waiting)"
}

api_cmd() {
	[ $# -eq 2 ] || die "usage: api NAME PATH"
	machine_arg "$1"
	api_get "$1" "$2"
	echo
}

kill_cmd() {
	machine_arg "$@"
	kill -KILL "$(cat "$state/node-$1.pid")" 2>/dev/null || true
	echo "node $1 killed"
}

lines_of() { api_get "$1" "/blocks?from=1&limit=1000" | grep -o '"data":"[^"]*"' | sed 's/"data":"\(.*\)"/  \1/'; }

nat_demo() {
	trap down EXIT
	nat_up 2
	echo
	echo "waiting for the homes to find out they are behind NAT, reserve a relay"
	echo "slot on the public node, and hole punch to each other..."
	links_cmd --direct 90
	send h1 "hello from home 1" >/dev/null
	send h2 "hello from home 2" >/dev/null
	status --wait 30
	echo
	echo "killing the public node"
	kill_cmd pub
	send h1 "home 1, after the public node left" >/dev/null
	send h2 "home 2, after the public node left" >/dev/null
	local start=$SECONDS
	until [ "$(lines_of h1 | sort)" = "$(lines_of h2 | sort)" ] && [ "$(lines_of h1 | wc -l)" = 4 ]; do
		[ $((SECONDS - start)) -lt 30 ] || { links; die "the homes did not exchange lines without the public node"; }
		sleep 0.25
	done
	links || true
	echo "lines on home 1's chain:"
	lines_of h1
	echo "lines on home 2's chain:"
	lines_of h2
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
up | status | send | chain | cut | restore | down | demo)
	need_root "$cmd"
	"$cmd" "$@"
	;;
long-cut-demo)
	need_root "$cmd"
	long_cut_demo "$@"
	;;
lan-up | nat-up | nat-demo | links | api | kill)
	need_root "$cmd"
	case "$cmd" in
	lan-up) up "${1:-2}" lan ;;
	nat-up) nat_up "$@" ;;
	nat-demo) nat_demo "$@" ;;
	links) links_cmd "$@" ;;
	api) api_cmd "$@" ;;
	kill) kill_cmd "$@" ;;
	esac
	;;
*)
	awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0" | sed 's/^# \{0,1\}//'
	[ -z "$cmd" ] || exit 2
	;;
esac
