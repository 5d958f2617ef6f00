#!/usr/bin/env bash
# Stop a test supervisord started by tests/supervisor/up.sh, and forget its env file.
#   down.sh [ENV_OUT [STATE_DIR]]   (defaults: this checkout's, as test-env.sh starts it)
# Only the supervisord whose pid file is in STATE_DIR is stopped; its programs stop with it.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd "$HERE/../.." && pwd -P)"
OUT="${1:-$ROOT/tests/.fleet.supervisor.env}"
DIR="${2:-$ROOT/tests/.fleet-supervisor}"
pid="$(cat "$DIR/supervisord.pid" 2>/dev/null || true)"
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    echo "==> Stopping the test supervisord (pid $pid)"
    kill "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
else
    echo "==> No test supervisord running in $DIR."
fi
rm -f "$OUT"
