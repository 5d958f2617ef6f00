#!/usr/bin/env bash
# Build a local Python 3.11 base image from Debian's packages, for machines that cannot
# pull python:3.11-slim from Docker Hub (this one, CI). Run as root. Idempotent: an image
# whose label matches this script, its package list and the CA certificates is reused.
#
#   scripts/base-image.sh            builds (or reuses) $OPSBOT_BASE_IMAGE and prints its name
#   docker build --build-arg BASE="$(scripts/base-image.sh)" .
#
# What goes in, and why:
#   - mmdebstrap --variant=minbase: Essential plus apt, the smallest root file system that
#     still has useradd (passwd) and a shell for the Dockerfile's RUN steps.
#   - python3, python3-venv: Debian's interpreter (bookworm: 3.11) and ensurepip, so the
#     Dockerfile installs opsbot into a virtual environment (Debian's Python refuses
#     `pip install` into the system, PEP 668).
#   - ca-certificates plus every certificate this machine trusts locally
#     (/usr/local/share/ca-certificates): pip inside the build reaches PyPI through what
#     the host reaches it through, including an intercepting proxy's CA where there is one.
#   - tzdata: zoneinfo for rotations and calendars.
#   - postgresql-client: pg_dump/pg_restore for backups. apt inside `docker build` cannot
#     be relied on here (no bridge network, apt's sources need the host's view), so the
#     client comes in with the base; the Dockerfile installs it with apt only when the base
#     lacks it (python:3.11-slim).
set -euo pipefail

IMAGE="${OPSBOT_BASE_IMAGE:-opsbot-local/python:3.11-bookworm}"
SUITE=bookworm
MIRROR="${OPSBOT_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${OPSBOT_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
PACKAGES=python3,python3-venv,ca-certificates,tzdata,postgresql-client
LOCAL_CAS=/usr/local/share/ca-certificates
LOG=/tmp/opsbot-base-image.log

die() { printf 'base-image: ERROR: %s\n' "$*" >&2; exit 1; }
info() { printf '    %s\n' "$*" >&2; }

[ "$(id -u)" = 0 ] || die "mmdebstrap needs root here; run this script as root."
command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 ||
    die "the Docker Engine is not running (scripts/test-env.sh starts it)."
command -v mmdebstrap >/dev/null 2>&1 ||
    die "mmdebstrap is missing (apt-get install mmdebstrap; scripts/test-env.sh installs it)."

local_cas() { find "$LOCAL_CAS" -type f -name '*.crt' 2>/dev/null | sort; }

# The revision: what this script does and which certificates go in. Debian point releases
# are not part of it on purpose: a rebuild per security update is for CI images, not tests.
REV="$( { sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1
          printf '%s\n' "$PACKAGES" "$MIRROR" "$SECURITY_MIRROR"
          local_cas | xargs -r sha256sum; } | sha256sum | cut -c1-16)"

if [ "$(docker image inspect -f '{{index .Config.Labels "opsbot.base.rev"}}' "$IMAGE" 2>/dev/null || true)" = "$REV" ]; then
    info "$IMAGE: present (rev $REV)"
    printf '%s\n' "$IMAGE"
    exit 0
fi

info "$IMAGE: building with mmdebstrap ($SUITE, minbase, $PACKAGES; log: $LOG)"
HOOKS=()
while IFS= read -r ca; do
    [ -n "$ca" ] || continue
    HOOKS+=(--customize-hook="mkdir -p \"\$1$LOCAL_CAS\" && cp '$ca' \"\$1$LOCAL_CAS/\"")
done < <(local_cas)
HOOKS+=(--customize-hook='chroot "$1" update-ca-certificates >/dev/null')

# No apt lists or caches in the image: the Dockerfile's apt path (for other bases) updates first.
mmdebstrap --variant=minbase --format=tar --include="$PACKAGES" \
    --aptopt='Acquire::Retries "3"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    "${HOOKS[@]}" \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
    "$SUITE" - \
    "deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" "deb $SECURITY_MIRROR $SUITE-security main" \
    2>"$LOG" |
    docker import \
        --change 'ENV LANG=C.UTF-8' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
        --change 'CMD ["python3"]' \
        --change "LABEL opsbot.base.rev=$REV org.opencontainers.image.description=\"Debian $SUITE minbase with python3 (scripts/base-image.sh)\"" \
        - "$IMAGE" >/dev/null ||
    { tail -n 20 "$LOG" >&2; die "mmdebstrap or docker import failed (see $LOG)."; }

docker run --rm --network host "$IMAGE" sh -c 'python3 -c "import venv, zoneinfo, ssl; zoneinfo.ZoneInfo(\"Europe/Berlin\")" && pg_dump --version >/dev/null' ||
    die "$IMAGE was built but python3, tzdata or pg_dump does not work in it (see $LOG)."
info "$IMAGE: built (rev $REV, $(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"
printf '%s\n' "$IMAGE"
