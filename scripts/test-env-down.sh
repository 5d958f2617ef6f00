#!/usr/bin/env bash
# Remove the opsbot test fleet started by scripts/test-env.sh (the
# opsbot-test-* containers). The Docker Engine, PostgreSQL and Redis are left
# running. With --image, the opsbot-test/busybox:1 image is removed too.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="opsbot-test-"
IMAGE="opsbot-test/busybox:1"
REMOVE_IMAGE=0
case "${1:-}" in
    "") ;;
    --image) REMOVE_IMAGE=1 ;;
    *) echo "usage: $0 [--image]" >&2; exit 2 ;;
esac

if ! docker info >/dev/null 2>&1; then
    echo "==> Docker Engine is not reachable; no test containers to remove."
    rm -f "$ROOT/tests/.fleet.env" "$ROOT/tests/.fleet.oom-not-enforced"
    exit 0
fi

# Containers named opsbot-test-* or labelled opsbot.test=1.
mapfile -t ids < <(
    {
        docker ps -aq --filter "name=^$PREFIX"
        docker ps -aq --filter "label=opsbot.test=1"
    } | sort -u
)
if [ "${#ids[@]}" -gt 0 ]; then
    echo "==> Removing ${#ids[@]} test container(s):" \
        "$(docker inspect -f '{{.Name}}' "${ids[@]}" | sed 's#^/##' | sort | tr '\n' ' ')"
    docker rm -f "${ids[@]}" >/dev/null
else
    echo "==> No ${PREFIX}* containers to remove."
fi

if [ "$REMOVE_IMAGE" = 1 ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "==> Removing image $IMAGE"
    docker rmi "$IMAGE" >/dev/null
fi

rm -f "$ROOT/tests/.fleet.env" "$ROOT/tests/.fleet.oom-not-enforced"
echo "==> Test fleet removed (Docker Engine left running)."
