#!/bin/sh
# A queue worker (runbook 004's laravel-worker); two run as the group worker:*.
# $1: the supervisord state directory (see supervisord.conf.in); $2: the process number.
echo "worker $2: processing jobs"
while :; do
    sleep 2
    echo "worker $2: job done"
done
