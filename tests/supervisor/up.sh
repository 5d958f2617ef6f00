#!/usr/bin/env bash
# Start a test supervisord, idempotently (Debian's `supervisor` package must be installed).
#   up.sh [ENV_OUT [STATE_DIR [PORT]]]
# scripts/test-env.sh starts this checkout's own: state in tests/.fleet-supervisor/ (git-ignored),
# the XML-RPC port from a hash of the checkout's path (19000-19999, skipping ports in use), so two
# clones on one host never share one. tests/test_supervisor_target.py starts a private one per
# test session (a temp STATE_DIR and a free PORT), so concurrent test runs never restart each
# other's programs. STATE_DIR holds the rendered config, the pid, the unix socket, the logs and
# a password made on first run. Programs (tests/supervisor/*.sh):
#   healthy     RUNNING, a line a second, a secret and an ERROR line at start
#   crasher     exits at once: BACKOFF, then FATAL
#   worker:*    the group worker, two processes (numprocs=2)
# Writes KEY=VALUE lines for the tests to $1 (tests/.fleet.supervisor.env).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd "$HERE/../.." && pwd -P)"
OUT="${1:-$ROOT/tests/.fleet.supervisor.env}"
DIR="${2:-$ROOT/tests/.fleet-supervisor}"
FIXED_PORT="${3:-}"
CONF="$DIR/supervisord.conf"

tcp_open() { timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null; }
# Alive and not a zombie (a supervisord killed hard can linger as one until it is reaped).
running() {
    local pid state
    pid="$(cat "$DIR/supervisord.pid" 2>/dev/null || true)"
    [ -n "$pid" ] && state="$(ps -o stat= -p "$pid" 2>/dev/null)" && [ -n "$state" ] && [[ "$state" != Z* ]]
}
# Programs a supervisord that died without stopping them left running: those of this STATE_DIR only
# (each program's first argument is it).
stop_orphans() {
    local pids
    pids="$(ps -eo pid=,args= | awk -v here="$HERE/" -v dir="$DIR" '$2 == "/bin/sh" && index($3, here) == 1 && $4 == dir { print $1 }')"
    [ -z "$pids" ] || { echo "supervisord: stopping programs left by a supervisord that died: $(echo $pids)"; kill $pids 2>/dev/null || true; }
}
ctl() { supervisorctl -c "$CONF" "$@"; }
state_of() { ctl status "$1" 2>/dev/null | awk '{print $2}'; }

command -v supervisord >/dev/null 2>&1 || { echo "up.sh: supervisord is missing: install Debian's supervisor package" >&2; exit 1; }
mkdir -p "$DIR/logs"
chmod 700 "$DIR"

[ -s "$DIR/password" ] || { head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24 >"$DIR/password"; chmod 600 "$DIR/password"; }
PASSWORD="$(cat "$DIR/password")"

PORT="${FIXED_PORT:-$(cat "$DIR/port" 2>/dev/null || true)}"
if [ -z "$FIXED_PORT" ] && { ! [[ "$PORT" =~ ^[0-9]+$ ]] || { ! running && tcp_open 127.0.0.1 "$PORT"; }; }; then
    hash="$(printf '%s' "$ROOT" | sha256sum | cut -c1-8)"
    PORT=""
    for ((i = 0; i < 200; i++)); do
        candidate=$((19000 + (16#$hash + i) % 1000))
        tcp_open 127.0.0.1 "$candidate" || { PORT="$candidate"; break; }
    done
    [ -n "$PORT" ] || { echo "up.sh: no free port in 19000-19999 for supervisord" >&2; exit 1; }
    printf '%s\n' "$PORT" >"$DIR/port"
fi

sed -e "s#@DIR@#$DIR#g" -e "s#@HERE@#$HERE#g" -e "s#@PORT@#$PORT#g" -e "s#@PASSWORD@#$PASSWORD#g" \
    "$HERE/supervisord.conf.in" >"$CONF.new"
chmod 600 "$CONF.new"
if running && cmp -s "$CONF" "$CONF.new"; then
    rm -f "$CONF.new"
    echo "supervisord: running (pid $(cat "$DIR/supervisord.pid"), port $PORT)"
else
    if running; then
        echo "supervisord: config changed; restarting it"
        kill "$(cat "$DIR/supervisord.pid")"
        for _ in $(seq 1 40); do running || break; sleep 0.25; done
    fi
    mv -f "$CONF.new" "$CONF"
    stop_orphans
    supervisord -c "$CONF"
    echo "supervisord: started (port $PORT, socket $DIR/supervisor.sock)"
fi

# Wait until the programs are where the tests expect them to start from.
for _ in $(seq 1 60); do
    if [ "$(state_of healthy)" = RUNNING ] && [ "$(state_of crasher)" = FATAL ] &&
        [ "$(state_of worker:worker_00)" = RUNNING ] && [ "$(state_of worker:worker_01)" = RUNNING ]; then
        break
    fi
    sleep 0.5
done
ctl status | sed 's/^/supervisord: /' || true
[ "$(state_of healthy)" = RUNNING ] || { echo "up.sh: program healthy is not RUNNING (see $DIR/supervisord.log)" >&2; exit 1; }

tmp="$OUT.tmp.$$"
cat >"$tmp" <<ENV
# Written by tests/supervisor/up.sh; describes this checkout's test supervisord.
OPSBOT_FLEET_SUPERVISOR_URL=http://127.0.0.1:$PORT/RPC2
OPSBOT_FLEET_SUPERVISOR_SOCKET=unix://$DIR/supervisor.sock
OPSBOT_FLEET_SUPERVISOR_USER=opsbot
OPSBOT_FLEET_SUPERVISOR_PASSWORD=$PASSWORD
OPSBOT_FLEET_SUPERVISOR_CONF=$CONF
ENV
chmod 600 "$tmp"
mv -f "$tmp" "$OUT"
