#!/bin/sh
# PiCloud as a server of ../shared/bench/peers (its --add option): the harness runs
# this with STATE_DIR (fresh, empty) in the environment and wants, on loopback,
# GET .../execute/hello -> {"message": "hello", "ok": true} and
# GET .../execute/counter -> {"count": N}. Starts `picloud serve` on
# 127.0.0.1:$BENCH_PICLOUD_PORT (default 8400), deploys both scripts, then waits on
# the daemon so the harness's SIGTERM stops it.
set -eu
root="$(cd "$(dirname "$0")/.." && pwd)"
py="$root/.venv/bin/python"
port="${BENCH_PICLOUD_PORT:-8400}"
cd "$root"
PICLOUD_BIND="127.0.0.1:$port" PICLOUD_STATE_DIR="$STATE_DIR/picloud" \
  PICLOUD_ADMIN_TOKEN="bench-admin-token-0123456789abcdef" PICLOUD_LOG_LEVEL=warning \
  "$py" -m picloud serve &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null || true' TERM INT
if ! "$py" -m bench.peer_deploy "http://127.0.0.1:$port"; then
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" || true
  exit 1
fi
wait "$pid" || true
wait "$pid" 2>/dev/null || true
