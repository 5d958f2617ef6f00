#!/bin/sh
# The deploy test application's migrations, as a release ships them: RELEASE is baked in when its
# image is built (tests/deploy/registry.sh), so output from another image's copy would show.
# `migrate --plan` says what it would apply; `migrate` appends it to /data/migrations.log.
# MIGRATE_SLEEP (seconds, from the container's environment) makes it slow, for an interrupted deploy.
RELEASE=__RELEASE__
echo "release $RELEASE: FOO=${FOO:-unset}"
echo "release $RELEASE: DATABASE_URL=postgres://app:hunter2secret@db/app"
if [ "$1" = "--plan" ]; then
    echo "release $RELEASE: would apply 0002_${RELEASE}_marker"
    exit 0
fi
[ -n "$MIGRATE_SLEEP" ] && sleep "$MIGRATE_SLEEP"
echo "release $RELEASE applied 0002_${RELEASE}_marker" >>/data/migrations.log
echo "release $RELEASE: applied 0002_${RELEASE}_marker"
