#!/usr/bin/env bash
# Remove this checkout's opsbot test fleet started by scripts/test-env.sh: the
# containers labelled opsbot.test.prefix=PREFIX, where PREFIX is the one
# test-env.sh derives ($OPSBOT_TEST_PREFIX, else opsbot-test-<hash of this
# checkout's path>-) and, unless OPSBOT_TEST_PREFIX is set, also the one recorded
# in tests/.fleet.env. tests/.fleet.env goes when the fleet it describes goes.
# Other checkouts' fleets and containers the tests made are left alone.
# The Docker Engine, PostgreSQL and Redis are left running; this checkout's test
# supervisord (tests/supervisor/up.sh) and registry (tests/deploy/registry.sh) are stopped.
#
#   --all    remove every container labelled opsbot.test=1 instead: every
#            checkout's fleet, leftovers of crashed test runs, and the old
#            fixed-name fleet (opsbot-test-web, ...). Other runs on this host lose theirs.
#   --image  remove the opsbot-test/busybox:1 image too (kept while any container uses it).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
FLEET_ENV="$ROOT/tests/.fleet.env"
OOM_MARKER="$ROOT/tests/.fleet.oom-not-enforced"
IMAGE="opsbot-test/busybox:1"
LABEL="opsbot.test=1"
FLEET_NAMES=(web web500 exited restarting oom)
REMOVE_IMAGE=0 ALL=0
for arg in "$@"; do
    case "$arg" in
        --image) REMOVE_IMAGE=1 ;;
        --all) ALL=1 ;;
        *) echo "usage: $0 [--all] [--image]" >&2; exit 2 ;;
    esac
done

# The prefix comes from test-env.sh itself, so the two scripts cannot disagree.
PREFIX="$("$ROOT/scripts/test-env.sh" --plan | sed -n 's/^OPSBOT_FLEET_PREFIX=//p')"
[ -n "$PREFIX" ] || { echo "test-env-down: ERROR: scripts/test-env.sh --plan named no prefix." >&2; exit 1; }
RECORDED=""
[ -f "$FLEET_ENV" ] && RECORDED="$(sed -n 's/^OPSBOT_FLEET_PREFIX=//p' "$FLEET_ENV" | tail -n 1)"
PREFIXES=("$PREFIX")
# Without an explicit OPSBOT_TEST_PREFIX, the fleet tests/.fleet.env describes is this checkout's too.
if [ -z "${OPSBOT_TEST_PREFIX:-}" ] && [ -n "$RECORDED" ] && [ "$RECORDED" != "$PREFIX" ]; then
    PREFIXES+=("$RECORDED")
fi

# forget_fleet_env: tests/.fleet.env describes a fleet that is gone now.
forget_fleet_env() {
    if [ "$ALL" = 1 ] || [ -z "$RECORDED" ] || [[ " ${PREFIXES[*]} " == *" $RECORDED "* ]]; then
        rm -f "$FLEET_ENV" "$OOM_MARKER" "$ROOT/tests/.fleet.systemd.env"  # the systemd container goes with the fleet (its prefix label)
    fi
}

if ! docker info >/dev/null 2>&1; then
    echo "==> Docker Engine is not reachable; no test containers to remove."
    forget_fleet_env
    exit 0
fi

mapfile -t ids < <(
    if [ "$ALL" = 1 ]; then
        docker ps -aq --filter "label=$LABEL"
    else
        for prefix in "${PREFIXES[@]}"; do
            docker ps -aq --filter "label=opsbot.test.prefix=$prefix"
            # a fleet made before containers carried the prefix label: exact names only
            for n in "${FLEET_NAMES[@]}"; do
                if [ "$(docker inspect -f '{{index .Config.Labels "opsbot.test"}}' "$prefix$n" 2>/dev/null || true)" = 1 ]; then
                    docker inspect -f '{{.Id}}' "$prefix$n" | cut -c1-12
                fi
            done
        done
    fi | sort -u
)
if [ "${#ids[@]}" -gt 0 ]; then
    echo "==> Removing ${#ids[@]} test container(s):" \
        "$(docker inspect -f '{{.Name}}' "${ids[@]}" | sed 's#^/##' | sort | tr '\n' ' ')"
    docker rm -f "${ids[@]}" >/dev/null
elif [ "$ALL" = 1 ]; then
    echo "==> No containers labelled $LABEL to remove."
else
    echo "==> No ${PREFIXES[*]/%/*} containers to remove."
fi

if [ "$REMOVE_IMAGE" = 1 ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
    users="$(docker ps -aq --filter "ancestor=$IMAGE" | wc -l)"
    if [ "$users" -gt 0 ]; then
        echo "==> Keeping image $IMAGE: $users container(s) of other fleets or test runs still use it (--all removes them)."
    else
        echo "==> Removing image $IMAGE"
        docker rmi "$IMAGE" >/dev/null
    fi
fi

forget_fleet_env
"$ROOT/tests/supervisor/down.sh"
"$ROOT/tests/deploy/down.sh"
echo "==> Test fleet removed (Docker Engine left running)."
