#!/usr/bin/env bash
# Runs the C host twice: draining its stream threads by hand, then serving
# until a real SIGTERM arrives mid-stream.
set -euo pipefail
host=$1

echo "== 1. drain by hand: 4 stream threads, set_draining(true), wait_for_streams"
"$host" drain 4 800
echo
echo "== 2. serve, then SIGTERM mid-stream (drain delay 1 s, streams of 2.5 s)"
GS_DRAIN_DELAY_SECONDS=1 GS_SHUTDOWN_TIMEOUT_SECONDS=10 GS_CLOSE_NOTICE_SECONDS=2 \
  "$host" serve 3 2500 &
pid=$!
sleep 0.5
echo "-- sending SIGTERM to $pid"
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
echo "-- c_host exited with status $status"
exit "$status"
