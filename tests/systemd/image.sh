#!/usr/bin/env bash
# Build (or reuse) the image tests/systemd/up.sh boots: Debian bookworm with systemd 252 as PID 1
# and dbus, made with mmdebstrap and `docker import` (Docker Hub is unreachable here). Run as root.
# Built once: an image whose label matches this script and its package list is reused. The test
# units are not in it (up.sh bind-mounts tests/systemd/units), so editing a unit never rebuilds it;
# the image only holds the link that makes multi-user.target want opsbot-test.target, and the user
# opsbot (uid 1000) the polkit rule is tested with.
#   tests/systemd/image.sh    prints the image name
set -euo pipefail

IMAGE="${OPSBOT_SYSTEMD_IMAGE:-opsbot-test/systemd:252}"
SUITE=bookworm
MIRROR="${OPSBOT_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# systemd-sysv: /sbin/init; dbus: the system bus the bot talks to; polkitd: judges manage-units calls of
# users other than root, for the test of deploy/systemd/50-opsbot.rules; procps: `ps` when debugging by hand.
PACKAGES=systemd,systemd-sysv,dbus,polkitd,procps
LOG=/tmp/opsbot-systemd-image.log

die() { printf 'systemd-image: ERROR: %s\n' "$*" >&2; exit 1; }
info() { printf '    %s\n' "$*" >&2; }

REV="$( { sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1; printf '%s\n' "$PACKAGES" "$MIRROR"; } | sha256sum | cut -c1-16)"
if [ "$(docker image inspect -f '{{index .Config.Labels "opsbot.test.rev"}}' "$IMAGE" 2>/dev/null || true)" = "$REV" ]; then
    info "$IMAGE: present (rev $REV)"
    printf '%s\n' "$IMAGE"
    exit 0
fi
[ "$(id -u)" = 0 ] || die "mmdebstrap needs root here; run as root."
command -v mmdebstrap >/dev/null 2>&1 || die "mmdebstrap is missing (scripts/test-env.sh installs it)."

info "$IMAGE: building with mmdebstrap ($SUITE, minbase, $PACKAGES; log: $LOG)"
# In a container: no getty, no udev triggers, no time sync or networkd: only what the tests use.
# /var/log/journal exists, so journald keeps the journal there (persistent), where up.sh bind-mounts
# a host directory the bot reads with `journalctl --directory=`.
mmdebstrap --variant=minbase --format=tar --include="$PACKAGES" \
    --aptopt='Acquire::Retries "3"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook='mkdir -p "$1/var/log/journal" "$1/etc/systemd/system/multi-user.target.wants"' \
    --customize-hook='ln -sf /usr/local/lib/systemd/system/opsbot-test.target "$1/etc/systemd/system/multi-user.target.wants/opsbot-test.target"' \
    --customize-hook='for u in getty.target systemd-udevd.service systemd-udev-trigger.service systemd-timesyncd.service systemd-networkd.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer; do ln -sf /dev/null "$1/etc/systemd/system/$u"; done' \
    --customize-hook='echo opsbot-systemd >"$1/etc/hostname"; : >"$1/etc/machine-id"' \
    --customize-hook='chroot "$1" useradd --uid 1000 --no-create-home --shell /usr/sbin/nologin opsbot' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
    "$SUITE" - "deb $MIRROR $SUITE main" 2>"$LOG" |
    docker import \
        --change 'ENV container=docker' \
        --change 'CMD ["/sbin/init"]' \
        --change "LABEL opsbot.test=1 opsbot.test.rev=$REV" \
        - "$IMAGE" >/dev/null ||
    { tail -n 20 "$LOG" >&2; die "mmdebstrap or docker import failed (see $LOG)."; }
info "$IMAGE: built (rev $REV)"
printf '%s\n' "$IMAGE"
