#!/usr/bin/env bash
# Bring up everything the opsbot test suite needs on a Debian 12 machine
# (run as root). Idempotent: a second run only checks and is quick.
#
#   1. PostgreSQL 127.0.0.1:5432 (trust auth, database "test") and
#      Redis 127.0.0.1:6379: checked, started if down.
#   2. Docker Engine: docker.io + busybox-static installed if missing, dockerd
#      started in the background (vfs, no bridge, no iptables) if not running.
#   3. Image opsbot-test/busybox:1, built locally from the static busybox
#      (Docker Hub is not reachable).
#   4. The test fleet of this checkout (all --network host), named after a
#      per-checkout prefix so that two clones (two CI jobs) on one host never
#      share container names or ports:
#        PREFIX = $OPSBOT_TEST_PREFIX if set, else
#                 opsbot-test-<first 8 hex of sha256(checkout's absolute path)>-
#        ${PREFIX}web         running, healthy, httpd 127.0.0.1:WEB_PORT
#        ${PREFIX}web500      running, httpd 127.0.0.1:WEB500_PORT, /cgi-bin/health -> 500
#        ${PREFIX}exited      exited, code 3
#        ${PREFIX}restarting  restart policy always, exits 1 after 1 s
#        ${PREFIX}oom         16 MiB limit, OOMKilled (if the kernel enforces it)
#        ${PREFIX}pgclient    running, image opsbot-test/pgclient:1 (pg_dump/pg_restore/psql
#                             of the host's postgresql-client, installed if missing), for
#                             backups through the Docker exec API
#      Every container carries the labels opsbot.test=1 and
#      opsbot.test.prefix=$PREFIX (test-env-down.sh removes by the latter); the
#      two web containers also carry opsbot.test.port=<their port>.
#      Ports: $OPSBOT_TEST_WEB_PORT / $OPSBOT_TEST_WEB500_PORT if set; else the
#      ports an existing fleet of this prefix already uses (so a second run reuses
#      a healthy fleet); else the first free pair at or after a start derived from
#      the prefix's hash, in 20000-31999 (below the kernel's ephemeral range),
#      skipping ports in use and ports another opsbot fleet's containers claim.
#   5. tests/.fleet.env with what the tests may rely on: the prefix, every
#      container name, port and URL, OPSBOT_FLEET_OOM...
#
# scripts/test-env.sh --plan prints the prefix, names and ports this run would
# use (KEY=VALUE lines, as in tests/.fleet.env) and changes nothing.
# The old fixed-name fleet (opsbot-test-web on 18080, ...) that app.yaml's demo
# expects is: OPSBOT_TEST_PREFIX=opsbot-test- OPSBOT_TEST_WEB_PORT=18080 \
#             OPSBOT_TEST_WEB500_PORT=18081 OPSBOT_TEST_REGISTRY_PORT=15000 scripts/test-env.sh
# (`make fleet`); OPSBOT_TEST_REGISTRY_PORT puts the registry where app.yaml's deploy of web pulls from.
#
# Tear the fleet down with scripts/test-env-down.sh.
set -euo pipefail

PLAN=0
case "${1:-}" in
    "") ;;
    --plan) PLAN=1 ;;
    *) echo "usage: $0 [--plan]" >&2; exit 2 ;;
esac

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
FLEET_ENV="$ROOT/tests/.fleet.env"
OOM_MARKER="$ROOT/tests/.fleet.oom-not-enforced"
IMAGE="opsbot-test/busybox:1"
ROOT_HASH="$(printf '%s' "$ROOT" | sha256sum | cut -c1-8)"
PREFIX="${OPSBOT_TEST_PREFIX:-opsbot-test-$ROOT_HASH-}"
LABEL="opsbot.test=1"
PREFIX_LABEL="opsbot.test.prefix=$PREFIX"
PORT_LABEL_KEY="opsbot.test.port"
PORT_RANGE_START=20000 PORT_RANGE_SIZE=12000   # 20000-31999: below the ephemeral ports
DOCKERD_LOG="/tmp/opsbot-dockerd.log"
APT_LOG="/tmp/opsbot-test-env-apt.log"
PG_HOST=127.0.0.1 PG_PORT=5432 PG_DB=test PG_USER="${PGUSER:-postgres}"
REDIS_HOST=127.0.0.1 REDIS_PORT=6379
WEB_PORT="" WEB500_PORT=""      # chosen by choose_ports
WEB_URL="" WEB500_URL=""

START_SECONDS=$SECONDS

step() { printf '==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
die()  { printf 'test-env: ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- helpers

# tcp_open HOST PORT: true if something accepts TCP connections there.
tcp_open() {
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# wait_for SECONDS CMD...: retry CMD every 0.5 s until it succeeds or time runs out.
wait_for() {
    local deadline=$((SECONDS + $1)); shift
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.5
    done
}

# http_get URL BODYFILE: print the HTTP status code (000 if no answer).
http_get() {
    local url="$1" body="$2" code=""
    : >"$body"
    if command -v curl >/dev/null 2>&1; then
        code="$(curl -sS -m 5 -o "$body" -w '%{http_code}' "$url" 2>/dev/null || true)"
    elif [ -x /bin/busybox ]; then
        # (busybox 1.35-static wget segfaults with -T, so time it out with timeout)
        code="$( { timeout 5 /bin/busybox wget -S -O "$body" "$url" 2>&1 || true; } |
            sed -n 's#.*HTTP/1\.[01] \([0-9][0-9][0-9]\).*#\1#p' | tail -n 1)"
    fi
    printf '%s\n' "${code:-000}"
}

need_root() {
    [ "$(id -u)" = 0 ] || die "$1 needs root; run this script as root (sudo $0)."
}

# apt_install PKG...: install, waiting for a dpkg/apt lock held by another
# apt-get (retries for several minutes); 'apt-get update' only if install fails.
apt_install() {
    need_root "Installing $*"
    local attempt updated=0
    for attempt in 1 2 3 4 5 6; do
        info "apt-get install $* (attempt $attempt; waits for the dpkg lock if another apt-get runs; log: $APT_LOG)"
        if DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=60 \
            install -y "$@" >>"$APT_LOG" 2>&1; then
            return 0
        fi
        if tail -n 20 "$APT_LOG" | grep -q 'dpkg --configure -a'; then
            info "dpkg was interrupted; running dpkg --configure -a"
            DEBIAN_FRONTEND=noninteractive dpkg --configure -a >>"$APT_LOG" 2>&1 || true
        fi
        if [ "$updated" = 0 ]; then
            info "apt-get update (install failed; refreshing package lists)"
            DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=60 \
                update >>"$APT_LOG" 2>&1 && updated=1 || true
        else
            sleep 10
        fi
    done
    tail -n 15 "$APT_LOG" >&2 || true
    die "could not install $* with apt-get (see $APT_LOG)."
}

pkg_installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

# ------------------------------------------------- 0. prefix and ports

check_prefix() {
    [[ "$PREFIX" =~ ^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,40}$ ]] ||
        die "OPSBOT_TEST_PREFIX='$PREFIX' cannot start a container name: use letters, digits, '_', '.', '-' (at most 41, starting with a letter or digit)."
}

docker_ok() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }

# claimed_ports: ports that other opsbot fleets' containers (another prefix) are labelled with.
claimed_ports() {
    docker_ok || return 0
    docker ps -a --filter "label=$LABEL" --filter "label=$PORT_LABEL_KEY" \
        --format "{{.Label \"$PORT_LABEL_KEY\"}} {{.Label \"opsbot.test.prefix\"}}" 2>/dev/null |
        while read -r port prefix; do
            [ "$prefix" = "$PREFIX" ] || printf '%s\n' "$port"
        done
}

# existing_port NAME: the port this prefix's container NAME was created with, if it
# still can have it (it is running, or nothing else listens there); '' otherwise.
existing_port() {
    docker_ok || return 0
    local name="$1" port
    [ "$(ctr_field "$name" '{{index .Config.Labels "opsbot.test.prefix"}}')" = "$PREFIX" ] || return 0
    port="$(ctr_field "$name" "{{index .Config.Labels \"$PORT_LABEL_KEY\"}}")"
    [[ "$port" =~ ^[0-9]+$ ]] || return 0
    if [ "$(ctr_field "$name" '{{.State.Running}}')" = true ] || ! tcp_open 127.0.0.1 "$port"; then
        printf '%s\n' "$port"
    fi
}

# pick_port START EXCLUDED...: the first port at or after START (wrapping inside the
# range) that nothing listens on and that is neither EXCLUDED nor claimed by another fleet.
pick_port() {
    local start="$1"; shift
    local taken=" $* $(claimed_ports | tr '\n' ' ') " i port
    for ((i = 0; i < 200; i++)); do
        port=$((PORT_RANGE_START + (start - PORT_RANGE_START + i) % PORT_RANGE_SIZE))
        [[ "$taken" == *" $port "* ]] && continue
        tcp_open 127.0.0.1 "$port" && continue
        printf '%s\n' "$port"
        return 0
    done
    die "no free port for the test fleet after 200 tries from $start; set OPSBOT_TEST_WEB_PORT and OPSBOT_TEST_WEB500_PORT."
}

choose_ports() {
    local hash start
    hash="$(printf '%s' "$PREFIX" | sha256sum | cut -c1-8)"
    start=$((PORT_RANGE_START + (16#$hash % (PORT_RANGE_SIZE / 2)) * 2))
    WEB_PORT="${OPSBOT_TEST_WEB_PORT:-$(existing_port "${PREFIX}web")}"
    [ -n "$WEB_PORT" ] || WEB_PORT="$(pick_port "$start")"
    WEB500_PORT="${OPSBOT_TEST_WEB500_PORT:-$(existing_port "${PREFIX}web500")}"
    if [ -z "$WEB500_PORT" ] || { [ -z "${OPSBOT_TEST_WEB500_PORT:-}" ] && [ "$WEB500_PORT" = "$WEB_PORT" ]; }; then
        WEB500_PORT="$(pick_port "$((start + 1))" "$WEB_PORT")"
    fi
    [[ "$WEB_PORT" =~ ^[0-9]+$ && "$WEB500_PORT" =~ ^[0-9]+$ && "$WEB_PORT" != "$WEB500_PORT" ]] ||
        die "the web ports must be two different numbers (web $WEB_PORT, web500 $WEB500_PORT)."
    WEB_URL="http://127.0.0.1:$WEB_PORT"
    WEB500_URL="http://127.0.0.1:$WEB500_PORT/cgi-bin/health"
}

# ------------------------------------------------------ 1. postgres, redis

pg_up() {
    if command -v pg_isready >/dev/null 2>&1; then
        pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 2
    else
        tcp_open "$PG_HOST" "$PG_PORT"
    fi
}

redis_up() {
    if command -v redis-cli >/dev/null 2>&1; then
        [ "$(timeout 3 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]
    else
        tcp_open "$REDIS_HOST" "$REDIS_PORT"
    fi
}

PG_START_HINT="pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql) main start"
REDIS_START_HINT="redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save \"\" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log"

ensure_postgres() {
    step "PostgreSQL at $PG_HOST:$PG_PORT"
    if pg_up; then
        info "reachable"
    else
        info "not reachable; starting it: $PG_START_HINT"
        if [ -d /etc/postgresql ] && command -v pg_ctlcluster >/dev/null 2>&1; then
            # shellcheck disable=SC2046
            pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start || true
        fi
        wait_for 30 pg_up ||
            die "PostgreSQL is not reachable at $PG_HOST:$PG_PORT; start it with: $PG_START_HINT"
        info "started"
    fi
    if command -v psql >/dev/null 2>&1; then
        local q=(env PGCONNECT_TIMEOUT=5 psql -w -X -q -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -At)
        if ! "${q[@]}" -d "$PG_DB" -c 'select 1' >/dev/null 2>&1; then
            "${q[@]}" -d postgres -c 'select 1' >/dev/null 2>&1 ||
                die "PostgreSQL at $PG_HOST:$PG_PORT does not let user $PG_USER in without a password; add 'host all all 127.0.0.1/32 trust' to pg_hba.conf."
            info "database $PG_DB missing; creating it"
            "${q[@]}" -d postgres -c "CREATE DATABASE \"$PG_DB\"" >/dev/null ||
                die "PostgreSQL database $PG_DB does not exist and could not be created."
        fi
        info "database $PG_DB: ok (user $PG_USER, trust auth)"
    fi
}

ensure_redis() {
    step "Redis at $REDIS_HOST:$REDIS_PORT"
    if redis_up; then
        info "reachable"
        return
    fi
    info "not reachable; starting it: $REDIS_START_HINT"
    if command -v redis-server >/dev/null 2>&1; then
        mkdir -p /var/lib/redis /var/log/redis
        redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
            --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
    fi
    wait_for 15 redis_up ||
        die "Redis is not reachable at $REDIS_HOST:$REDIS_PORT; start it with: $REDIS_START_HINT"
    info "started"
}

# ----------------------------------------------------------- 2. docker

docker_up() { docker info >/dev/null 2>&1; }

dockerd_running() {
    local pid
    pid="$(cat /var/run/docker.pid 2>/dev/null || true)"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

ensure_packages() {
    local missing=()
    { pkg_installed docker.io || command -v dockerd >/dev/null 2>&1; } || missing+=(docker.io)
    pkg_installed busybox-static || missing+=(busybox-static)
    if [ "${#missing[@]}" -gt 0 ]; then
        step "Installing ${missing[*]}"
        apt_install "${missing[@]}"
    fi
    command -v dockerd >/dev/null 2>&1 || die "dockerd is missing even after installing docker.io."
    command -v docker >/dev/null 2>&1 || die "the docker client is missing even after installing docker.io."
}

ensure_docker() {
    step "Docker Engine"
    if docker_up; then
        info "running ($(docker version -f 'server {{.Server.Version}}' 2>/dev/null || echo '?'))"
        return
    fi
    ensure_packages
    if docker_up; then
        info "running"
        return
    fi
    need_root "Starting dockerd"
    if dockerd_running; then
        info "dockerd (pid $(cat /var/run/docker.pid)) is starting; waiting for it"
    else
        info "starting dockerd --iptables=false --bridge=none --storage-driver=vfs (log: $DOCKERD_LOG)"
        setsid -f nohup dockerd --iptables=false --bridge=none --storage-driver=vfs \
            >>"$DOCKERD_LOG" 2>&1 </dev/null
    fi
    if ! wait_for 60 docker_up; then
        tail -n 15 "$DOCKERD_LOG" >&2 || true
        die "Docker Engine did not come up within 60 s (docker info fails; see $DOCKERD_LOG)."
    fi
    info "running ($(docker version -f 'server {{.Server.Version}}' 2>/dev/null || echo '?'))"
}

# ------------------------------------------------------------ 3. image

APPLETS=(sh httpd sleep cat echo printf dd head tail true false wget nc env date
         mkdir chmod ls ps kill grep)

ensure_image() {
    step "Image $IMAGE"
    pkg_installed busybox-static || apt_install busybox-static
    [ -x /bin/busybox ] || die "/bin/busybox is missing; install busybox-static."
    if ldd /bin/busybox >/dev/null 2>&1; then
        die "/bin/busybox is dynamically linked; install busybox-static (it replaces busybox)."
    fi
    local rev
    rev="$( { sha256sum /bin/busybox; printf '%s\n' "${APPLETS[@]}"; } | sha256sum | cut -c1-16)"
    if [ "$(docker image inspect -f '{{index .Config.Labels "opsbot.test.rev"}}' "$IMAGE" 2>/dev/null || true)" = "$rev" ]; then
        info "present ($(docker image inspect -f '{{.Id}}' "$IMAGE" | cut -c1-19))"
        return
    fi
    info "building from /bin/busybox ($(/bin/busybox 2>&1 | head -n 1 | cut -d' ' -f1-2))"
    local dir
    dir="$(mktemp -d /tmp/opsbot-rootfs.XXXXXX)"
    # shellcheck disable=SC2064
    trap "rm -rf '$dir'" EXIT
    mkdir -p "$dir"/{bin,etc,tmp,root,www,proc,sys,dev}
    chmod 1777 "$dir/tmp"
    cp /bin/busybox "$dir/bin/busybox"
    local a
    for a in "${APPLETS[@]}"; do ln -s busybox "$dir/bin/$a"; done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$dir/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$dir/etc/group"
    tar -C "$dir" --numeric-owner --owner=0 --group=0 -c . |
        docker import \
            --change 'ENV PATH=/bin' \
            --change 'CMD ["/bin/sh"]' \
            --change "LABEL opsbot.test=1 opsbot.test.rev=$rev" \
            - "$IMAGE" >/dev/null
    rm -rf "$dir"
    trap - EXIT
    info "built ($(docker image inspect -f '{{.Id}}' "$IMAGE" | cut -c1-19))"
}


# ------------------------------------------- 3b. PostgreSQL client image

PG_IMAGE="opsbot-test/pgclient:1"
PG_TOOLS=(pg_dump pg_restore psql)
PG_BIN=""

ensure_pg_client() {
    step "PostgreSQL client (pg_dump, pg_restore)"
    PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/pg_dump" ] || [ ! -x "$PG_BIN/pg_restore" ] || ! command -v pg_dump >/dev/null 2>&1; then
        apt_install postgresql-client
        PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    fi
    [ -n "$PG_BIN" ] && [ -x "$PG_BIN/pg_dump" ] && [ -x "$PG_BIN/pg_restore" ] ||
        die "pg_dump/pg_restore are missing even after installing postgresql-client."
    info "$("$PG_BIN/pg_dump" --version) in $PG_BIN"
}

# tests/test_metrics.py starts its own Prometheus server (the Debian package's binary).
ensure_prometheus() {
    step "Prometheus (for metric thresholds)"
    command -v prometheus >/dev/null 2>&1 || apt_install prometheus
    command -v prometheus >/dev/null 2>&1 || die "prometheus is missing even after installing the prometheus package."
    info "$(prometheus --version 2>&1 | head -n 1)"
}

# tests/test_image.py and tests/test_compose.py: the opsbot image is built from a local Debian
# base (mmdebstrap; Docker Hub is unreachable) and deploy/compose/ runs under Debian's
# docker-compose 1.29. scripts/base-image.sh reuses the base while its label matches.
ensure_image_tools() {
    step "Image tools (mmdebstrap, docker-compose) and the local base image"
    local missing=() pkg
    for pkg in mmdebstrap docker-compose; do pkg_installed "$pkg" || missing+=("$pkg"); done
    [ "${#missing[@]}" = 0 ] || apt_install "${missing[@]}"
    info "$(docker-compose version --short 2>/dev/null || echo '?') docker-compose, mmdebstrap $(mmdebstrap --version 2>/dev/null | awk '{print $2}')"
    "$ROOT/scripts/base-image.sh" >/dev/null || die "scripts/base-image.sh could not make the local base image."
}

# tests/test_alerts_alertmanager.py starts its own Alertmanager (Debian's binary, on a free port, its
# own config and data directory) next to its own Prometheus: nothing runs here, the binary is installed.
ensure_alertmanager() {
    step "Alertmanager (alerts in)"
    command -v prometheus-alertmanager >/dev/null 2>&1 || apt_install prometheus-alertmanager
    command -v prometheus-alertmanager >/dev/null 2>&1 || die "prometheus-alertmanager is missing even after installing the prometheus-alertmanager package."
    info "$(prometheus-alertmanager --version 2>&1 | head -n 1)"
}

# tests/test_kubernetes_manifests.py renders deploy/kubernetes with `kubectl kustomize`. kubectl comes
# preinstalled on the CI machines; Debian's own (kubernetes-client 1.20) bundles a kustomize too old for
# components, so it is checked, not installed.
ensure_kubectl() {
    step "kubectl (renders deploy/kubernetes)"
    kubectl version --client >/dev/null 2>&1 || die "kubectl is missing (kubectl version --client fails); install kubectl, which tests/test_kubernetes_manifests.py uses to render deploy/kubernetes."
    info "$(kubectl version --client 2>/dev/null | head -n 1)"
}

# tests/test_supervisor_target.py talks to a real supervisord (Debian's supervisor package), one
# it starts for itself with tests/supervisor/up.sh. This starts the checkout's own with the same
# script (idempotent; its port comes from the checkout's path) for bench/supervisor_rpc.py and
# manual tries, and writes tests/.fleet.supervisor.env.
ensure_supervisor() {
    step "supervisord (supervisor targets)"
    command -v supervisord >/dev/null 2>&1 || apt_install supervisor
    command -v supervisord >/dev/null 2>&1 || die "supervisord is missing even after installing the supervisor package."
    "$ROOT/tests/supervisor/up.sh" "$ROOT/tests/.fleet.supervisor.env" | sed 's/^/    /'
}

# tests/test_deploy*.py deploy images from a real registry (Debian's docker-registry package): this
# checkout's own, on its own port (OPSBOT_TEST_REGISTRY_PORT, from the environment, fixes it: `make fleet`
# passes 15000), started by tests/deploy/registry.sh (idempotent), which builds and pushes the app images
# v1, v2 and v3-broken and the demo web's v1 and v2 once and writes tests/.fleet.deploy.env.
ensure_registry() {
    step "Docker registry (deploys)"
    command -v docker-registry >/dev/null 2>&1 || apt_install docker-registry
    command -v docker-registry >/dev/null 2>&1 || die "docker-registry is missing even after installing the docker-registry package."
    OPSBOT_FLEET_IMAGE="$IMAGE" "$ROOT/tests/deploy/registry.sh" "$ROOT/tests/.fleet.deploy.env" | sed 's/^/    /'
}

# tests/test_systemd_target.py talks to a real systemd 252, booted as PID 1 in the container
# ${PREFIX}systemd (tests/systemd/up.sh, idempotent; its image is built once with mmdebstrap by
# tests/systemd/image.sh), over its system bus socket; journalctl reads the units' journal.
ensure_systemd() {
    step "systemd (systemd targets)"
    command -v mmdebstrap >/dev/null 2>&1 || apt_install mmdebstrap
    command -v journalctl >/dev/null 2>&1 || apt_install systemd
    "$ROOT/tests/systemd/up.sh" "$PREFIX" "$ROOT/tests/.fleet.systemd.env" | sed 's/^/    /'
}

# The binaries plus every library ldd lists (and the loader), busybox for sh and sleep.
ensure_pg_image() {
    step "Image $PG_IMAGE"
    local libs rev tool
    libs="$(for tool in "${PG_TOOLS[@]}"; do ldd "$PG_BIN/$tool"; done |
        sed -n 's#.*=> \(/[^ ]*\) .*#\1#p; s#^[[:space:]]*\(/[^ ]*\) (.*#\1#p' | sort -u)"
    rev="$( { for tool in "${PG_TOOLS[@]}"; do sha256sum "$PG_BIN/$tool"; done; sha256sum /bin/busybox;
              printf '%s\n' "$libs" | xargs -r sha256sum; } | sha256sum | cut -c1-16)"
    if [ "$(docker image inspect -f '{{index .Config.Labels "opsbot.test.rev"}}' "$PG_IMAGE" 2>/dev/null || true)" = "$rev" ]; then
        info "present ($(docker image inspect -f '{{.Id}}' "$PG_IMAGE" | cut -c1-19))"
        return
    fi
    info "building from $PG_BIN (${PG_TOOLS[*]}) and $(printf '%s\n' "$libs" | wc -l) libraries"
    local dir lib
    dir="$(mktemp -d /tmp/opsbot-pgroot.XXXXXX)"
    # shellcheck disable=SC2064
    trap "rm -rf '$dir'" EXIT
    mkdir -p "$dir"/{bin,etc,tmp,root,proc,sys,dev}
    chmod 1777 "$dir/tmp"
    cp /bin/busybox "$dir/bin/busybox"
    for tool in sh sleep cat ls; do ln -s busybox "$dir/bin/$tool"; done
    for tool in "${PG_TOOLS[@]}"; do cp "$PG_BIN/$tool" "$dir/bin/$tool"; done
    while IFS= read -r lib; do
        [ -n "$lib" ] || continue
        mkdir -p "$dir$(dirname "$lib")"
        cp -L "$lib" "$dir$lib"
    done <<<"$libs"
    # /lib64 -> usr/lib64 and friends: the loader path baked into the binaries must resolve.
    [ -e "$dir/lib64" ] || { [ -d "$dir/usr/lib64" ] && ln -s usr/lib64 "$dir/lib64"; } || true
    printf 'root:x:0:0:root:/root:/bin/sh\npostgres:x:999:999:postgres:/tmp:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$dir/etc/passwd"
    printf 'root:x:0:\npostgres:x:999:\nnogroup:x:65534:\n' >"$dir/etc/group"
    tar -C "$dir" --numeric-owner --owner=0 --group=0 -c . |
        docker import \
            --change 'ENV PATH=/bin' \
            --change 'CMD ["/bin/sh"]' \
            --change "LABEL opsbot.test=1 opsbot.test.rev=$rev" \
            - "$PG_IMAGE" >/dev/null
    rm -rf "$dir"
    trap - EXIT
    docker run --rm --network host "$PG_IMAGE" pg_dump --version >/dev/null 2>&1 ||
        die "$PG_IMAGE was built but pg_dump does not run in it (a library ldd did not list?)."
    info "built ($(docker image inspect -f '{{.Id}}' "$PG_IMAGE" | cut -c1-19))"
}

# ------------------------------------------------------------ 4. fleet

IMAGE_ID=""

# ctr_field NAME GO-TEMPLATE: inspect a field ('' if the container is absent).
ctr_field() { docker inspect -f "$2" "$1" 2>/dev/null || true; }

# ensure_container NAME OK-FN SETTLE-FN DOCKER-RUN-ARGS...
# Keeps NAME if it was created from the same spec and image for this prefix and
# OK-FN says its state is as expected; otherwise (re)creates it and runs SETTLE-FN on it.
ensure_container() {
    local name="$1" ok_fn="$2" settle_fn="$3"; shift 3
    local spec
    spec="$(printf '%s\0' "$IMAGE_ID" "$@" | sha256sum | cut -c1-16)"
    if [ "$(ctr_field "$name" '{{index .Config.Labels "opsbot.test.spec"}}')" = "$spec" ] &&
        [ "$(ctr_field "$name" '{{index .Config.Labels "opsbot.test.prefix"}}')" = "$PREFIX" ] &&
        [ "$(ctr_field "$name" '{{.Image}}')" = "$IMAGE_ID" ] && "$ok_fn" "$name"; then
        info "$name: up to date ($(ctr_state "$name"))"
        return
    fi
    if docker inspect "$name" >/dev/null 2>&1; then
        if [ "$(ctr_field "$name" '{{index .Config.Labels "opsbot.test.spec"}}')" != "$spec" ] ||
            [ "$(ctr_field "$name" '{{index .Config.Labels "opsbot.test.prefix"}}')" != "$PREFIX" ] ||
            [ "$(ctr_field "$name" '{{.Image}}')" != "$IMAGE_ID" ]; then
            info "$name: created from another spec or image; recreating"
        else
            info "$name: not in the expected state ($(ctr_state "$name")); recreating"
        fi
        docker rm -f "$name" >/dev/null
    else
        info "$name: creating"
    fi
    docker run -d --name "$name" --label "$LABEL" --label "$PREFIX_LABEL" --label "opsbot.test.spec=$spec" \
        --network host "$@" >/dev/null
    "$settle_fn" "$name"
    info "$name: $(ctr_state "$name")"
}

ctr_state() {
    ctr_field "$1" '{{.State.Status}} exit={{.State.ExitCode}} restarts={{.RestartCount}} oomkilled={{.State.OOMKilled}}{{if .State.Health}} health={{.State.Health.Status}}{{end}}'
}

# A port the container is about to bind must not be taken by something else.
port_free_for() {
    local name="$1" port="$2"
    if [ "$(ctr_field "$name" '{{.State.Running}}')" != true ] && tcp_open 127.0.0.1 "$port"; then
        die "port 127.0.0.1:$port is already in use by another process, so $name cannot listen there."
    fi
}

# The web containers serve like a real service: stopped on SIGTERM. As PID 1, busybox httpd (or
# sh) ignores SIGTERM unless it traps it, so each stop or /restart waited out the whole grace
# period and ended in SIGKILL (exit 137); trapped, a stop takes about a second and exits 0.
# @SERVE@ in the scripts below is replaced with this (a changed script changes the spec label,
# so an existing fleet is recreated by ensure_container).
SERVE_HTTPD=$(cat <<'EOF'
trap 'kill "$httpd" 2>/dev/null; exit 0' TERM INT
httpd -f -p 127.0.0.1:@PORT@ -h /www &
httpd=$!
wait "$httpd"
EOF
)

# --- ${PREFIX}web (@PORT@ is replaced with WEB_PORT)
WEB_SCRIPT=$(cat <<'EOF'
echo "web: starting opsbot test web server"
echo "web: config DATABASE_URL=postgres://app:s3cr3t@db/app"
echo "ERROR cache warmup failed: connection refused (simulated)"
mkdir -p /www
printf '%s\n' '{"status":"healthy","checks":{"database":{"status":"healthy","latency":"2ms"},"cache":{"status":"healthy"}}}' >/www/health
printf '%s\n' '{"status":"unhealthy","checks":{"database":{"status":"healthy","latency":"2ms"},"cache":{"status":"healthy"},"migrations":{"status":"unhealthy","message":"migration pending"}}}' >/www/ready
echo "web: listening on 127.0.0.1:@PORT@"
@SERVE@
EOF
)
web_ok() {
    [ "$(ctr_field "$1" '{{.State.Status}}')" = running ] &&
        [ "$(ctr_field "$1" '{{if .State.Health}}{{.State.Health.Status}}{{end}}')" != unhealthy ]
}
web_settle() { :; }

# --- ${PREFIX}web500 (@PORT@ is replaced with WEB500_PORT)
WEB500_SCRIPT=$(cat <<'EOF'
echo "web500: starting"
mkdir -p /www/cgi-bin
cat >/www/cgi-bin/health <<'CGI'
#!/bin/sh
printf 'Status: 500 Internal Server Error\r\n'
printf 'Content-Type: application/json\r\n\r\n'
printf '%s\n' '{"status":"unhealthy","error":"internal server error"}'
CGI
chmod 755 /www/cgi-bin/health
echo "web500: listening on 127.0.0.1:@PORT@"
@SERVE@
EOF
)
running_ok() { [ "$(ctr_field "$1" '{{.State.Status}}')" = running ]; }

# web_script SCRIPT PORT: the script with its serving lines and port filled in ("..." around the
# replacement: bash 5.2 would otherwise read the & in SERVE_HTTPD as the matched text).
web_script() {
    local script="${1//@SERVE@/"$SERVE_HTTPD"}"
    printf '%s' "${script//@PORT@/$2}"
}

# --- ${PREFIX}exited
exited_ok() {
    [ "$(ctr_field "$1" '{{.State.Status}} {{.State.ExitCode}}')" = "exited 3" ]
}
exited_settle() {
    timeout 30 docker wait "$1" >/dev/null || die "$1 did not exit within 30 s."
}

# --- ${PREFIX}restarting
restarting_ok() {
    case "$(ctr_field "$1" '{{.State.Status}}')" in running | restarting) ;; *) return 1 ;; esac
    [ "$(ctr_field "$1" '{{.RestartCount}}')" -gt 0 ] 2>/dev/null
}
restarting_settle() {
    wait_for 30 restarting_ok "$1" || die "$1 did not restart within 30 s (restart policy not working)."
}

# --- ${PREFIX}oom
# dd allocates one 64 MiB buffer and fills it: over the 16 MiB limit it is
# OOM-killed; if the limit is not enforced it simply finishes with exit 0
# (bounded, so an unenforced limit cannot eat the machine).
# exec: dd becomes the container's main process, so an OOM kill ends the
# container with exit 137 and State.OOMKilled=true, like a real OOM.
OOM_SCRIPT='echo "oom: allocating 64 MiB with a 16 MiB memory limit"; exec dd if=/dev/zero of=/dev/null bs=64M count=2'
oom_ok() { [ "$(ctr_field "$1" '{{.State.Status}}')" = exited ]; }
oom_settle() {
    timeout 60 docker wait "$1" >/dev/null || die "$1 did not finish within 60 s."
}

ensure_fleet() {
    step "Test fleet (${PREFIX}*, --network host, labels $LABEL $PREFIX_LABEL)"
    info "ports: web $WEB_PORT, web500 $WEB500_PORT"
    IMAGE_ID="$(docker image inspect -f '{{.Id}}' "$IMAGE")"

    port_free_for "${PREFIX}web" "$WEB_PORT"
    ensure_container "${PREFIX}web" web_ok web_settle \
        --restart unless-stopped --label "$PORT_LABEL_KEY=$WEB_PORT" \
        --health-cmd "wget -q -O /dev/null http://127.0.0.1:$WEB_PORT/health" \
        --health-interval 2s --health-timeout 2s --health-retries 3 \
        "$IMAGE" sh -c "$(web_script "$WEB_SCRIPT" "$WEB_PORT")"

    port_free_for "${PREFIX}web500" "$WEB500_PORT"
    ensure_container "${PREFIX}web500" running_ok web_settle \
        --restart unless-stopped --label "$PORT_LABEL_KEY=$WEB500_PORT" \
        "$IMAGE" sh -c "$(web_script "$WEB500_SCRIPT" "$WEB500_PORT")"

    ensure_container "${PREFIX}exited" exited_ok exited_settle \
        "$IMAGE" sh -c 'echo starting; echo ERROR fatal: config missing; exit 3'

    ensure_container "${PREFIX}restarting" restarting_ok restarting_settle \
        --restart always \
        "$IMAGE" sh -c 'echo "restarting: boot at $(date +%T)"; echo "ERROR worker crashed: connection refused"; sleep 1; exit 1'

    ensure_container "${PREFIX}oom" oom_ok oom_settle \
        --memory 16m --memory-swap 16m \
        "$IMAGE" sh -c "$OOM_SCRIPT"

    # The PostgreSQL client container: pg_dump/pg_restore through the Docker exec API.
    local busybox_id="$IMAGE_ID"
    IMAGE_ID="$(docker image inspect -f '{{.Id}}' "$PG_IMAGE")"
    ensure_container "${PREFIX}pgclient" running_ok web_settle \
        --restart unless-stopped \
        "$PG_IMAGE" sleep 2147483647
    IMAGE_ID="$busybox_id"
}

# ----------------------------------------------------- verify and report

http_200() { [ "$(http_get "$1" /dev/null)" = 200 ]; }
web_healthy() { [ "$(ctr_field "${PREFIX}web" '{{.State.Health.Status}}')" = healthy ]; }

verify_fleet() {
    step "Verifying the fleet"
    local body code
    body="$(mktemp)"

    wait_for 30 http_200 "$WEB_URL/health" || true
    code="$(http_get "$WEB_URL/health" "$body")"
    [ "$code" = 200 ] && grep -q '"healthy"' "$body" ||
        die "$WEB_URL/health answered HTTP $code instead of 200 with the healthy JSON (docker logs ${PREFIX}web)."
    info "$WEB_URL/health -> 200 $(head -c 60 "$body")..."
    code="$(http_get "$WEB_URL/ready" "$body")"
    [ "$code" = 200 ] && grep -q 'migration pending' "$body" ||
        die "$WEB_URL/ready answered HTTP $code instead of 200 with the readiness JSON."
    info "$WEB_URL/ready  -> 200 (checks.migrations unhealthy: migration pending)"
    wait_for 30 web_healthy ||
        die "${PREFIX}web does not report Docker health 'healthy' after 30 s ($(ctr_state "${PREFIX}web"))."
    info "${PREFIX}web docker health: healthy"

    wait_for 30 tcp_open 127.0.0.1 "$WEB500_PORT" || true
    code="$(http_get "$WEB500_URL" "$body")"
    [ "$code" = 500 ] ||
        die "$WEB500_URL answered HTTP $code instead of 500 (docker logs ${PREFIX}web500)."
    info "$WEB500_URL -> 500"
    rm -f "$body"

    OOM_ENFORCED=0
    local oom exitcode
    oom="$(ctr_field "${PREFIX}oom" '{{.State.OOMKilled}}')"
    exitcode="$(ctr_field "${PREFIX}oom" '{{.State.ExitCode}}')"
    if [ "$oom" = true ]; then
        OOM_ENFORCED=1
        rm -f "$OOM_MARKER"
        info "OOM: enforced (${PREFIX}oom OOMKilled=true, exit $exitcode)"
    else
        info "OOM: not enforced here (${PREFIX}oom OOMKilled=$oom, exit $exitcode)"
        mkdir -p "$(dirname "$OOM_MARKER")"
        printf 'OOMKilled=%s exit=%s\n' "$oom" "$exitcode" >"$OOM_MARKER"
    fi
}

# fleet_env_lines: the KEY=VALUE lines tests/.fleet.env holds (--plan prints them too).
fleet_env_lines() {
    cat <<EOF
OPSBOT_FLEET_OOM=$OOM_ENFORCED
OPSBOT_FLEET_IMAGE=$IMAGE
OPSBOT_FLEET_PREFIX=$PREFIX
OPSBOT_FLEET_LABEL=$LABEL
OPSBOT_FLEET_PREFIX_LABEL=$PREFIX_LABEL
OPSBOT_FLEET_WEB=${PREFIX}web
OPSBOT_FLEET_WEB_PORT=$WEB_PORT
OPSBOT_FLEET_WEB_URL=$WEB_URL
OPSBOT_FLEET_WEB_HEALTH_URL=$WEB_URL/health
OPSBOT_FLEET_WEB_READY_URL=$WEB_URL/ready
OPSBOT_FLEET_WEB500=${PREFIX}web500
OPSBOT_FLEET_WEB500_PORT=$WEB500_PORT
OPSBOT_FLEET_WEB500_URL=$WEB500_URL
OPSBOT_FLEET_EXITED=${PREFIX}exited
OPSBOT_FLEET_RESTARTING=${PREFIX}restarting
OPSBOT_FLEET_OOM_CONTAINER=${PREFIX}oom
OPSBOT_FLEET_PGCLIENT=${PREFIX}pgclient
OPSBOT_FLEET_PGCLIENT_IMAGE=$PG_IMAGE
OPSBOT_TEST_POSTGRES_DSN=postgresql://$PG_USER@$PG_HOST:$PG_PORT/$PG_DB
OPSBOT_TEST_REDIS_URL=redis://$REDIS_HOST:$REDIS_PORT/0
EOF
}

write_fleet_env() {
    mkdir -p "$(dirname "$FLEET_ENV")"
    local tmp="$FLEET_ENV.tmp.$$"
    {
        echo "# Written by scripts/test-env.sh; describes the local test fleet."
        fleet_env_lines
    } >"$tmp"
    mv -f "$tmp" "$FLEET_ENV"
}

summary() {
    step "Summary"
    docker ps -a --filter "label=$LABEL" --filter "label=$PREFIX_LABEL" \
        --format '{{.Names}}\t{{.Status}}' | sort | while IFS=$'\t' read -r n s; do
        printf '    %-36s %-42s %s\n' "$n" "$s" "$(ctr_state "$n")"
    done
    info "web:    $WEB_URL/health (200 healthy), $WEB_URL/ready (200, one check unhealthy)"
    info "web500: $WEB500_URL (500)"
    info "postgres: $PG_HOST:$PG_PORT/$PG_DB   redis: $REDIS_HOST:$REDIS_PORT"
    if [ "$OOM_ENFORCED" = 1 ]; then info "OOM: enforced"; else info "OOM: not enforced here (marker: $OOM_MARKER)"; fi
    info "wrote $FLEET_ENV"
    printf '==> test environment ready in %ss\n' "$((SECONDS - START_SECONDS))"
}

check_prefix
if [ "$PLAN" = 1 ]; then
    choose_ports
    OOM_ENFORCED=""   # only known once the fleet ran
    fleet_env_lines
    exit 0
fi
ensure_postgres
ensure_redis
ensure_docker
ensure_image
ensure_pg_client
ensure_prometheus
ensure_alertmanager
ensure_kubectl
ensure_pg_image
ensure_image_tools
choose_ports
ensure_fleet
verify_fleet
write_fleet_env
ensure_supervisor
ensure_systemd
ensure_registry
summary
