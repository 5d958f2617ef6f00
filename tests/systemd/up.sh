#!/usr/bin/env bash
# Boot this checkout's test systemd, idempotently (scripts/test-env.sh calls it, as root):
#   tests/systemd/up.sh PREFIX OUT_ENV
# A container ${PREFIX}systemd of tests/systemd/image.sh's image runs systemd 252 as PID 1. Booting
# systemd in a container works here with SYS_ADMIN, no seccomp filter, the host's cgroup namespace
# and /sys/fs/cgroup read-write (--privileged does not: systemd then fights the host's devices).
# /run is a tmpfs, as systemd wants, and the host directory tests/.fleet-systemd/dbus is mounted
# at /run/dbus over it, so the system bus socket is reachable from the host: the bot connects as
# root, and the bus's EXTERNAL auth sees uid 0 on both sides (no user namespace). The journal is
# kept in tests/.fleet-systemd/journal, mounted at /var/log/journal, for `journalctl --directory=`.
# deploy/systemd/50-opsbot.rules is installed in it (polkitd) with the unit list opsbot-web.service,
# for the test that user opsbot (uid 1000) may restart that unit and no other.
# The test units (tests/systemd/units) are mounted read-only where systemd looks for local units;
# opsbot-test.target starts them at boot:
#   opsbot-web       running, a line a second, a secret and an ERROR line at start
#   opsbot-failing   a oneshot that exits 3: failed, Result=exit-code
#   opsbot-oom       dd over a 16 MiB MemoryMax: killed by the kernel's OOM killer
#   opsbot-flaky     exits 1 after a second, Restart=always: NRestarts grows
# The container carries the labels opsbot.test=1 and opsbot.test.prefix=PREFIX, so
# scripts/test-env-down.sh removes it. Writes KEY=VALUE lines for the tests to OUT_ENV.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd "$HERE/../.." && pwd -P)"
PREFIX="${1:?usage: up.sh PREFIX OUT_ENV}"
OUT="${2:-$ROOT/tests/.fleet.systemd.env}"
DIR="$ROOT/tests/.fleet-systemd"
NAME="${PREFIX}systemd"

field() { docker inspect -f "$2" "$1" 2>/dev/null || true; }
booted() {
    local state
    state="$(timeout 5 docker exec "$NAME" systemctl is-system-running 2>/dev/null || true)"
    [ "$state" = running ] || [ "$state" = degraded ]
}

IMAGE="$("$HERE/image.sh")"
IMAGE_ID="$(docker image inspect -f '{{.Id}}' "$IMAGE")"
mkdir -p "$DIR/dbus" "$DIR/journal" "$DIR/polkit"
chmod 711 "$DIR"  # the polkit test connects as uid 1000: it must reach dbus/system_bus_socket
# deploy/systemd/50-opsbot.rules as shipped, with the test's unit list: only opsbot-web may be managed by opsbot.
sed 's/^    var UNITS = .*/    var UNITS = ["opsbot-web.service"];/' "$ROOT/deploy/systemd/50-opsbot.rules" >"$DIR/polkit/50-opsbot.rules"
grep -q '"opsbot-web.service"' "$DIR/polkit/50-opsbot.rules" || { echo "up.sh: could not set the unit list in 50-opsbot.rules" >&2; exit 1; }
RUN_ARGS=(
    --cap-add SYS_ADMIN --security-opt seccomp=unconfined --cgroupns=host
    -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run --tmpfs /run/lock --tmpfs /tmp
    -v "$DIR/dbus:/run/dbus" -v "$DIR/journal:/var/log/journal"
    -v "$HERE/units:/usr/local/lib/systemd/system:ro"
    -v "$DIR/polkit/50-opsbot.rules:/etc/polkit-1/rules.d/50-opsbot.rules:ro"
    --network none --hostname opsbot-systemd
)
SPEC="$( { printf '%s\0' "$IMAGE_ID" "${RUN_ARGS[@]}"; cat "$HERE"/units/* "$DIR/polkit/50-opsbot.rules"; } | sha256sum | cut -c1-16)"

if [ "$(field "$NAME" '{{index .Config.Labels "opsbot.test.spec"}}')" = "$SPEC" ] &&
    [ "$(field "$NAME" '{{.State.Running}}')" = true ] && booted; then
    echo "systemd: ${NAME} up to date"
else
    if docker inspect "$NAME" >/dev/null 2>&1; then
        echo "systemd: ${NAME} stale or stopped; recreating"
        docker rm -f "$NAME" >/dev/null
    fi
    # A new boot: no journal or bus socket of the last one.
    rm -rf "${DIR:?}/journal/"* "${DIR:?}/dbus/"*
    docker run -d --name "$NAME" --label opsbot.test=1 --label "opsbot.test.prefix=$PREFIX" \
        --label "opsbot.test.spec=$SPEC" "${RUN_ARGS[@]}" "$IMAGE" >/dev/null
    echo "systemd: ${NAME} started"
fi

for _ in $(seq 1 120); do booted && break; sleep 0.5; done
booted || { docker logs --tail 30 "$NAME" >&2 || true; echo "up.sh: systemd in $NAME did not finish booting within 60 s" >&2; exit 1; }
[ -S "$DIR/dbus/system_bus_socket" ] || { echo "up.sh: no system bus socket at $DIR/dbus/system_bus_socket" >&2; exit 1; }
# The OOM unit must have been killed and the flaky one restarted at least once before tests read them.
for _ in $(seq 1 60); do
    result="$(docker exec "$NAME" systemctl show -p Result --value opsbot-oom.service)"
    restarts="$(docker exec "$NAME" systemctl show -p NRestarts --value opsbot-flaky.service)"
    [ "$result" != success ] && [ "${restarts:-0}" -gt 0 ] && break
    sleep 0.5
done
for unit in opsbot-web opsbot-failing opsbot-oom opsbot-flaky; do
    echo "systemd: $unit $(docker exec "$NAME" systemctl show -p ActiveState -p SubState -p Result -p NRestarts "$unit.service" | paste -sd' ')"
done

tmp="$OUT.tmp.$$"
cat >"$tmp" <<ENV
# Written by tests/systemd/up.sh; describes this checkout's test systemd.
OPSBOT_FLEET_SYSTEMD_CONTAINER=$NAME
OPSBOT_FLEET_SYSTEMD_BUS=unix:path=$DIR/dbus/system_bus_socket
OPSBOT_FLEET_SYSTEMD_JOURNAL=$DIR/journal
OPSBOT_FLEET_SYSTEMD_POLKIT_UID=1000
ENV
mv -f "$tmp" "$OUT"
