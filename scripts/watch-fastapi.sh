#!/usr/bin/env bash
# `poolbench watch` on the seeds' kind of service: FastAPI + asyncpg
# (scripts/watch-fastapi/app.py), run twice behind the proxy — a connection
# per request, then a pool made in the lifespan handler — each driven with
# REQUESTS HTTP requests, CONCURRENCY at a time (curl), and what watch
# reports for each: connections per transaction, setup's share, the pool
# that would have held the peak.
# Usage: scripts/watch-fastapi.sh [REQUESTS] [CONCURRENCY] [POOL_SIZE]   (defaults: 400 8 4)
# Makes a virtualenv in target/watch-fastapi-venv (fastapi, uvicorn,
# asyncpg from PyPI) unless VENV names one that has them; POOLBENCH_BIN
# names a poolbench to use instead of building the release one. Needs curl.
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-400}
concurrency=${2:-8}
pool=${3:-4}
venv=${VENV:-target/watch-fastapi-venv}
http_port=${HTTP_PORT:-8765}

command -v curl >/dev/null || { echo "curl not found (apt-get install curl)" >&2; exit 3; }
if ! "$venv/bin/python" -c 'import fastapi, uvicorn, asyncpg' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check fastapi uvicorn asyncpg
fi
if [ -z "${POOLBENCH_BIN:-}" ]; then
  cargo build --release --quiet
fi
bin=${POOLBENCH_BIN:-${CARGO_TARGET_DIR:-target}/release/poolbench}
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"' EXIT

# one MODE POOL: watch, the service behind it, the requests, the verdict.
one() {
  local mode=$1 size=$2 out="$work/$1"
  "$bin" watch --out "$out" >"$work/$mode.lines" 2>"$work/$mode.log" &
  local watch_pid=$!
  pids+=("$watch_pid")
  for _ in $(seq 300); do grep -q '^PGSSLROOTCERT=' "$work/$mode.lines" 2>/dev/null && break; sleep 0.1; done
  grep -q '^PGSSLROOTCERT=' "$work/$mode.lines" || { cat "$work/$mode.log" >&2; exit 3; }
  (cd scripts/watch-fastapi && DATABASE_URL=$(head -n1 "$work/$mode.lines") POOL=$size \
    exec "../../$venv/bin/python" -m uvicorn app:app --port "$http_port" --log-level warning) &
  local app_pid=$!
  pids+=("$app_pid")
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$http_port/users/0" && break; sleep 0.1; done
  local started=$SECONDS
  seq "$requests" | xargs -P "$concurrency" -I{} curl -s -f -o /dev/null "http://127.0.0.1:$http_port/users/{}"
  echo "== $mode: $requests requests, $concurrency at a time, in $((SECONDS - started)) s"
  kill -INT "$app_pid"; wait "$app_pid" 2>/dev/null || true
  kill -INT "$watch_pid"; wait "$watch_pid" 2>/dev/null || true
  sed "1,/^PGCHANNELBINDING=/d; /^report:/d" "$work/$mode.lines"
}

one per-request 0
one pool "$pool"
