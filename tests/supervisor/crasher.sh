#!/bin/sh
# Exits at once: supervisord retries (BACKOFF) and gives up (FATAL).
echo "crasher: missing config, exiting"
exit 3
