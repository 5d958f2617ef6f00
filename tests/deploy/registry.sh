#!/usr/bin/env bash
# Start this checkout's Docker registry (Debian's docker-registry package) and push the deploy test
# images, idempotently (scripts/test-env.sh calls it). State lives in tests/.fleet-deploy/ (git-ignored):
# the rendered config, the pid, the log, the registry's storage and the port.
# The port is per checkout (from a hash of its path, 17000-17999, skipping ports in use), so two clones
# on one host never share a registry. The Engine trusts 127.0.0.0/8 registries over plain HTTP.
# Images (built once from the local busybox test image, reused while their recipe is unchanged):
#   127.0.0.1:PORT/opsbot-test/app:v1, :v2   /cgi-bin/health answers 200 {"status":"healthy","version":...}
#   127.0.0.1:PORT/opsbot-test/app:v3-broken /cgi-bin/health answers 500 and the log has an ERROR line with a secret
# Each serves httpd on 127.0.0.1:$PORT (default 8080) and /version with its APP_VERSION, and ships
# /bin/migrate (tests/deploy/migrate.sh) with its own release baked in.
# Writes KEY=VALUE lines for the tests to $1 (tests/.fleet.deploy.env).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd "$HERE/../.." && pwd -P)"
OUT="${1:-$ROOT/tests/.fleet.deploy.env}"
DIR="$ROOT/tests/.fleet-deploy"
BASE_IMAGE="${OPSBOT_FLEET_IMAGE:-opsbot-test/busybox:1}"

tcp_open() { timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null; }
running() { local pid; pid="$(cat "$DIR/registry.pid" 2>/dev/null || true)"; [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }
answers() { [ "$(curl -s -o /dev/null -w '%{http_code}' -m 2 "http://127.0.0.1:$PORT/v2/" 2>/dev/null)" = 200 ]; }

command -v docker-registry >/dev/null 2>&1 || { echo "registry.sh: docker-registry is missing: install Debian's docker-registry package" >&2; exit 1; }
mkdir -p "$DIR/data"

PORT="$(cat "$DIR/port" 2>/dev/null || true)"
if ! [[ "$PORT" =~ ^[0-9]+$ ]] || { ! running && tcp_open 127.0.0.1 "$PORT"; }; then
    hash="$(printf '%s' "$ROOT" | sha256sum | cut -c1-8)"
    PORT=""
    for ((i = 0; i < 200; i++)); do
        candidate=$((17000 + (16#$hash + i) % 1000))
        tcp_open 127.0.0.1 "$candidate" || { PORT="$candidate"; break; }
    done
    [ -n "$PORT" ] || { echo "registry.sh: no free port in 17000-17999 for the registry" >&2; exit 1; }
    printf '%s\n' "$PORT" >"$DIR/port"
fi

cat >"$DIR/config.yml.new" <<CONF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $DIR/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$PORT
CONF
if running && cmp -s "$DIR/config.yml" "$DIR/config.yml.new" && answers; then
    rm -f "$DIR/config.yml.new"
    echo "registry: running (pid $(cat "$DIR/registry.pid"), 127.0.0.1:$PORT)"
else
    if running; then
        kill "$(cat "$DIR/registry.pid")" || true
        for _ in $(seq 1 40); do running || break; sleep 0.25; done
    fi
    mv -f "$DIR/config.yml.new" "$DIR/config.yml"
    setsid -f sh -c 'echo $$ >"$1"; exec docker-registry serve "$2" >>"$3" 2>&1 </dev/null' _ \
        "$DIR/registry.pid" "$DIR/config.yml" "$DIR/registry.log"
    for _ in $(seq 1 60); do answers && break; sleep 0.25; done
    answers || { tail -n 15 "$DIR/registry.log" >&2; echo "registry.sh: the registry did not answer on 127.0.0.1:$PORT" >&2; exit 1; }
    echo "registry: started (127.0.0.1:$PORT, log $DIR/registry.log)"
fi

REPO="127.0.0.1:$PORT/opsbot-test/app"
BASE_ID="$(docker image inspect -f '{{.Id}}' "$BASE_IMAGE")"

# build_and_push VERSION HEALTH_STATUS: the image, built only when its recipe changed, pushed when the registry lacks it.
build_and_push() {
    local version="$1" status="$2" rev ctx
    rev="$(printf '%s\n' "$BASE_ID" "$version" "$status" "$(sha256sum "$HERE/serve.sh")" "$(sha256sum "$HERE/migrate.sh")" | sha256sum | cut -c1-16)"
    local_rev() { docker image inspect -f '{{index .Config.Labels "opsbot.test.rev"}}' "$REPO:$version" 2>/dev/null || true; }
    # A test may remove a local tag (a rollback needs no registry): the pushed image comes back from the registry.
    if [ "$(local_rev)" != "$rev" ] && [ "$(cat "$DIR/pushed.$version" 2>/dev/null || true)" = "$rev" ]; then
        docker pull -q "$REPO:$version" >/dev/null 2>&1 || true
    fi
    if [ "$(local_rev)" != "$rev" ]; then
        ctx="$(mktemp -d /tmp/opsbot-deploy-image.XXXXXX)"
        cp "$HERE/serve.sh" "$ctx/serve"
        sed "s/__RELEASE__/$version/" "$HERE/migrate.sh" >"$ctx/migrate"
        chmod 755 "$ctx/serve" "$ctx/migrate"
        cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $BASE_IMAGE
ENV APP_VERSION=$version HEALTH_STATUS=$status
LABEL opsbot.test=1 opsbot.test.rev=$rev opsbot.test.app.version=$version
COPY serve /bin/serve
COPY migrate /bin/migrate
CMD ["/bin/serve"]
DOCKERFILE
        DOCKER_BUILDKIT=0 docker build -q --network host -t "$REPO:$version" "$ctx" >/dev/null 2>"$DIR/build.log" ||
            { cat "$DIR/build.log" >&2; exit 1; }
        rm -rf "$ctx"
        echo "registry: built $REPO:$version"
    fi
    local remote
    remote="$(curl -s -m 5 -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
        -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/v2/opsbot-test/app/manifests/$version")"
    local pushed_rev
    pushed_rev="$(cat "$DIR/pushed.$version" 2>/dev/null || true)"
    if [ "$remote" != 200 ] || [ "$pushed_rev" != "$rev" ]; then
        docker push -q "$REPO:$version" >/dev/null
        printf '%s\n' "$rev" >"$DIR/pushed.$version"
        echo "registry: pushed $REPO:$version"
    else
        echo "registry: $REPO:$version present"
    fi
}

build_and_push v1 200
build_and_push v2 200
build_and_push v3-broken 500

tmp="$OUT.tmp.$$"
cat >"$tmp" <<ENV
# Written by tests/deploy/registry.sh; the deploy tests' registry and images.
OPSBOT_DEPLOY_REGISTRY=127.0.0.1:$PORT
OPSBOT_DEPLOY_REPOSITORY=$REPO
ENV
mv -f "$tmp" "$OUT"
