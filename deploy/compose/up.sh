#!/usr/bin/env bash
# Starts the compose network (compose.yaml beside this script): node 1's
# identity first, so that every other node can be told its address, then
# everything. Run scripts/image.sh before, once per change of the code.
#
#   deploy/compose/up.sh [COMPOSE...]
#
# COMPOSE is the compose command: by default podman-compose, docker
# compose or podman compose, whichever is here. It writes .env beside
# compose.yaml (BOOTSTRAP_ID, and GOSSIPCHAIN_API_TOKEN unless set) and
# leaves it: "COMPOSE down" stops the network, "COMPOSE up -d" starts it
# again with the same identities and chains.
set -euo pipefail
cd "$(dirname "$0")"

if [ $# -gt 0 ]; then
	compose=("$@")
elif command -v podman-compose >/dev/null; then
	compose=(podman-compose)
elif docker compose version >/dev/null 2>&1; then
	compose=(docker compose)
elif podman compose version >/dev/null 2>&1; then
	compose=(podman compose)
else
	echo "up.sh: no compose command here (apt-get install podman-compose)" >&2
	exit 1
fi

token="${GOSSIPCHAIN_API_TOKEN:-}"
if [ -z "$token" ] && [ -f .env ]; then
	token="$(sed -n 's/^GOSSIPCHAIN_API_TOKEN=//p' .env)"
fi
if [ -z "$token" ]; then
	token="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
fi
# Compose wants every variable set even to run one service.
printf 'BOOTSTRAP_ID=pending\nGOSSIPCHAIN_API_TOKEN=%s\n' "$token" >.env
# gossipchain id creates node 1's key in its volume and prints its peer ID.
id="$("${compose[@]}" run --rm --no-deps node1 id | grep -o '12D3Koo[1-9A-HJ-NP-Za-km-z]*' | tail -n 1)"
if [ -z "$id" ]; then
	echo "up.sh: could not read node 1's peer ID" >&2
	exit 1
fi
printf 'BOOTSTRAP_ID=%s\nGOSSIPCHAIN_API_TOKEN=%s\n' "$id" "$token" >.env
"${compose[@]}" up -d
echo "node 1 is $id; dashboards on http://127.0.0.1:8001/ to :8005/ (token in $(pwd)/.env), Prometheus on http://127.0.0.1:9090/"
