#!/usr/bin/env bash
# Start this checkout's Docker registry (Debian's docker-registry package) and push the deploy test
# images, idempotently (scripts/test-env.sh calls it). State lives in tests/.fleet-deploy/ (git-ignored):
# the rendered config, the pid, the log, the registry's storage and the port.
# The port is per checkout (from a hash of its path, 17000-17999, skipping ports in use), so two clones
# on one host never share a registry; OPSBOT_TEST_REGISTRY_PORT fixes it instead (`make fleet` passes
# 15000, the port the bundled app.yaml's deploy names). Like the fleet's web ports, a later run without
# it keeps the port the running registry has. The Engine trusts 127.0.0.0/8 registries over plain HTTP.
# Images (built once from the local busybox test image, reused while their recipe is unchanged):
#   127.0.0.1:PORT/opsbot-test/app:v1, :v2   /cgi-bin/health answers 200 {"status":"healthy","version":...}
#   127.0.0.1:PORT/opsbot-test/app:v3-broken /cgi-bin/health answers 500 and the log has an ERROR line with a secret
# Each serves httpd on 127.0.0.1:$PORT (default 8080) and /version with its APP_VERSION, and ships
# /bin/migrate (tests/deploy/migrate.sh) with its own release baked in.
#   127.0.0.1:PORT/opsbot-test/web:v1, :v2   the demo web's releases, for the bundled app.yaml's `/deploy web`:
# the busybox image plus /www/version (and APP_VERSION). The demo web container keeps its own command
# through a deploy (it writes /www/health and /www/ready and serves /www), so after `/deploy web v2` its
# /version answers v2.
# Writes KEY=VALUE lines for the tests to $1 (tests/.fleet.deploy.env).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd "$HERE/../.." && pwd -P)"
OUT="${1:-$ROOT/tests/.fleet.deploy.env}"
DIR="$ROOT/tests/.fleet-deploy"
BASE_IMAGE="${OPSBOT_FLEET_IMAGE:-opsbot-test/busybox:1}"
FIXED_PORT="${OPSBOT_TEST_REGISTRY_PORT:-}"

die() { echo "registry.sh: $*" >&2; exit 1; }
tcp_open() { timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null; }
running() { local pid; pid="$(cat "$DIR/registry.pid" 2>/dev/null || true)"; [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }
answers() { [ "$(curl -s -o /dev/null -w '%{http_code}' -m 2 "http://127.0.0.1:$PORT/v2/" 2>/dev/null)" = 200 ]; }

command -v docker-registry >/dev/null 2>&1 || die "docker-registry is missing: install Debian's docker-registry package"
mkdir -p "$DIR/data"

PORT="$(cat "$DIR/port" 2>/dev/null || true)"
if [ -n "$FIXED_PORT" ]; then
    [[ "$FIXED_PORT" =~ ^[0-9]{1,5}$ ]] && ((FIXED_PORT >= 1 && FIXED_PORT <= 65535)) ||
        die "OPSBOT_TEST_REGISTRY_PORT='$FIXED_PORT' is not a port number"
    # Ours already, or free: anything else there (another checkout's fixed-port registry) is said, not fought.
    if ! { [ "$PORT" = "$FIXED_PORT" ] && running; } && tcp_open 127.0.0.1 "$FIXED_PORT"; then
        die "127.0.0.1:$FIXED_PORT (OPSBOT_TEST_REGISTRY_PORT) is in use by another process; stop it, or choose another port"
    fi
    PORT="$FIXED_PORT"
    printf '%s\n' "$PORT" >"$DIR/port"
elif ! [[ "$PORT" =~ ^[0-9]+$ ]] || { ! running && tcp_open 127.0.0.1 "$PORT"; }; then
    hash="$(printf '%s' "$ROOT" | sha256sum | cut -c1-8)"
    PORT=""
    for ((i = 0; i < 200; i++)); do
        candidate=$((17000 + (16#$hash + i) % 1000))
        tcp_open 127.0.0.1 "$candidate" || { PORT="$candidate"; break; }
    done
    [ -n "$PORT" ] || die "no free port in 17000-17999 for the registry"
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
    # The daemon keeps no descriptor of its caller's beyond 0-2: one inherited from `flock LOCK scripts/test-env.sh`
    # would hold that lock for as long as the registry runs, and every later flocked run would wait forever.
    setsid -f bash -c 'for fd in /proc/$$/fd/*; do fd="${fd##*/}"; [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done 2>/dev/null
        echo $$ >"$1"; exec docker-registry serve "$2" >>"$3" 2>&1 </dev/null' _ \
        "$DIR/registry.pid" "$DIR/config.yml" "$DIR/registry.log"
    for _ in $(seq 1 60); do answers && break; sleep 0.25; done
    answers || { tail -n 15 "$DIR/registry.log" >&2; die "the registry did not answer on 127.0.0.1:$PORT"; }
    echo "registry: started (127.0.0.1:$PORT, log $DIR/registry.log)"
fi

REGISTRY="127.0.0.1:$PORT"
BASE_ID="$(docker image inspect -f '{{.Id}}' "$BASE_IMAGE")"

# app_context DIR VERSION HEALTH_STATUS: the deploy test application's build context.
app_context() {
    local ctx="$1" version="$2" status="$3"
    cp "$HERE/serve.sh" "$ctx/serve"
    sed "s/__RELEASE__/$version/" "$HERE/migrate.sh" >"$ctx/migrate"
    chmod 755 "$ctx/serve" "$ctx/migrate"
    cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $BASE_IMAGE
ENV APP_VERSION=$version HEALTH_STATUS=$status
LABEL opsbot.test=1 opsbot.test.rev=__REV__ opsbot.test.app.version=$version
COPY serve /bin/serve
COPY migrate /bin/migrate
CMD ["/bin/serve"]
DOCKERFILE
}

# web_context DIR VERSION: a release of the demo web. Its own CMD serves /www on 127.0.0.1:8080 (the demo
# web container overrides it with the fleet's script, which keeps /www/version).
web_context() {
    local ctx="$1" version="$2"
    mkdir -p "$ctx/www"
    printf '%s\n' "$version" >"$ctx/www/version"
    printf '{"status":"healthy","version":"%s"}\n' "$version" >"$ctx/www/health"
    cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $BASE_IMAGE
ENV APP_VERSION=$version
LABEL opsbot.test=1 opsbot.test.rev=__REV__ opsbot.test.web.version=$version
COPY www /www
CMD ["httpd", "-f", "-p", "127.0.0.1:8080", "-h", "/www"]
DOCKERFILE
}

# build_and_push NAME VERSION CONTEXT-FN [ARGS...]: $REGISTRY/opsbot-test/NAME:VERSION, built only when its
# recipe (the base image, the context function and its arguments, the scripts the app images copy) changed,
# pushed when the registry lacks it.
build_and_push() {
    local name="$1" version="$2" context_fn="$3"; shift 3
    local ref="$REGISTRY/opsbot-test/$name:$version" state="$DIR/pushed.$name.$version" rev ctx
    [ "$name" = app ] && state="$DIR/pushed.$version"  # the app images' state files predate the web ones
    local copied=()
    [ "$name" = app ] && copied=("$(sha256sum "$HERE/serve.sh")" "$(sha256sum "$HERE/migrate.sh")")
    rev="$(printf '%s\n' "$BASE_ID" "$name" "$version" "$@" "$(declare -f "$context_fn")" "${copied[@]}" |
        sha256sum | cut -c1-16)"
    local_rev() { docker image inspect -f '{{index .Config.Labels "opsbot.test.rev"}}' "$ref" 2>/dev/null || true; }
    # A test may remove a local tag (a rollback needs no registry): the pushed image comes back from the registry.
    if [ "$(local_rev)" != "$rev" ] && [ "$(cat "$state" 2>/dev/null || true)" = "$rev" ]; then
        docker pull -q "$ref" >/dev/null 2>&1 || true
    fi
    if [ "$(local_rev)" != "$rev" ]; then
        ctx="$(mktemp -d /tmp/opsbot-deploy-image.XXXXXX)"
        "$context_fn" "$ctx" "$version" "$@"
        sed -i "s/__REV__/$rev/" "$ctx/Dockerfile"
        DOCKER_BUILDKIT=0 docker build -q --network host -t "$ref" "$ctx" >/dev/null 2>"$DIR/build.log" ||
            { cat "$DIR/build.log" >&2; rm -rf "$ctx"; exit 1; }
        rm -rf "$ctx"
        echo "registry: built $ref"
    fi
    local remote
    remote="$(curl -s -m 5 -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
        -o /dev/null -w '%{http_code}' "http://$REGISTRY/v2/opsbot-test/$name/manifests/$version")"
    if [ "$remote" != 200 ] || [ "$(cat "$state" 2>/dev/null || true)" != "$rev" ]; then
        docker push -q "$ref" >/dev/null
        printf '%s\n' "$rev" >"$state"
        echo "registry: pushed $ref"
    else
        echo "registry: $ref present"
    fi
}

build_and_push app v1 app_context 200
build_and_push app v2 app_context 200
build_and_push app v3-broken app_context 500
build_and_push web v1 web_context
build_and_push web v2 web_context

tmp="$OUT.tmp.$$"
cat >"$tmp" <<ENV
# Written by tests/deploy/registry.sh; the deploy tests' registry and images.
OPSBOT_DEPLOY_REGISTRY=$REGISTRY
OPSBOT_DEPLOY_REPOSITORY=$REGISTRY/opsbot-test/app
OPSBOT_DEPLOY_WEB_REPOSITORY=$REGISTRY/opsbot-test/web
ENV
mv -f "$tmp" "$OUT"
