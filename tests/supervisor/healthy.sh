#!/bin/sh
# A healthy program: prints a line a second, forever. Its first lines carry a secret (redacted by /logs)
# and an ERROR line (found by --grep), on stdout and stderr.
echo "healthy: starting"
echo "healthy: config DATABASE_URL=postgres://app:superv1s0r-s3cret@db/app"
echo "ERROR healthy: cache warmup failed (simulated)" >&2
n=0
while :; do
    n=$((n + 1))
    echo "healthy: tick $n"
    sleep 1
done
