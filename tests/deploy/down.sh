#!/usr/bin/env bash
# Stop this checkout's test registry (tests/deploy/registry.sh) and forget its env file; its storage
# and the pushed images stay in tests/.fleet-deploy/, so the next registry.sh only starts it again.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd "$HERE/../.." && pwd -P)"
DIR="$ROOT/tests/.fleet-deploy"
pid="$(cat "$DIR/registry.pid" 2>/dev/null || true)"
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    echo "==> Stopping the test registry (pid $pid)"
    kill "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
else
    echo "==> No test registry running in $DIR."
fi
rm -f "$ROOT/tests/.fleet.deploy.env"
