#!/usr/bin/env bash
# Builds gossipchain's container image: a static binary, built here with
# the machine's Go, in an image of its own (deploy/container/Containerfile:
# FROM scratch, so nothing is pulled from a registry).
#
#   scripts/image.sh [--tag NAME] [--runtime podman|docker]
#
# The tag defaults to gossipchain:latest, the runtime to podman, or docker
# if there is no podman. The image is labelled with the binary's version
# (gossipchain version); in a git clone the binary records its commit.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

tag=gossipchain:latest
runtime=""
while [ $# -gt 0 ]; do
	case "$1" in
	--tag) [ $# -ge 2 ] || { echo "image.sh: --tag needs a name" >&2; exit 2; }; tag="$2"; shift 2 ;;
	--runtime) [ $# -ge 2 ] || { echo "image.sh: --runtime needs podman or docker" >&2; exit 2; }; runtime="$2"; shift 2 ;;
	-h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "image.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
done
if [ -z "$runtime" ]; then
	if command -v podman >/dev/null; then runtime=podman; elif command -v docker >/dev/null; then runtime=docker; else
		echo "image.sh: no podman or docker here (apt-get install podman)" >&2; exit 1
	fi
fi

ctx="$(mktemp -d "${TMPDIR:-/tmp}/gossipchain-image.XXXXXX")"
trap 'rm -rf "$ctx"' EXIT
# Static (no cgo), so it runs with no libc; -buildvcs=auto records the
# commit where git can tell it, whatever GOFLAGS says.
(cd "$root" && CGO_ENABLED=0 go build -trimpath -buildvcs=auto -ldflags='-s -w' -o "$ctx/gossipchain" .)
mkdir "$ctx/data"
# The first line of gossipchain version, "gossipchain VERSION" (read whole:
# a pipe closed early would kill the binary with SIGPIPE).
version="$("$ctx/gossipchain" version)"
version="${version%%$'\n'*}"
version="${version#gossipchain }"
"$runtime" build --quiet -f "$root/deploy/container/Containerfile" --build-arg "VERSION=$version" -t "$tag" "$ctx" >/dev/null
echo "$tag gossipchain $version"
