#!/usr/bin/env bash
# The server's CPU per connection three ways (docs/measuring.md, "Whose CPU
# a connection costs"): scenarios/select1.toml's per-request strategy, one
# worker, SECONDS per run (default 5), on
#   1. the embedded PostgreSQL (the distribution's, 15),
#   2. the same build started by `poolbench server` and given by --dsn (a
#      local server: each backend found by its pid and client port),
#   3. the embedded PostgreSQL 18 (npm's, scripts/install-pg18.sh), whose
#      log gives each setup's fork and authentication times.
# Prints each run's cpu line and the medians (µs) of setup_cpu's parts.
# Release build, built here.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds=${1:-5}
cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-target}/release/poolbench
scripts/install-pg18.sh target/pg18 >/dev/null
. scripts/lib/server.sh
out=$(mktemp -d)
run() { # NAME PG_BIN [FLAGS...] (PG_BIN empty: the distribution's)
  local name=$1 pg_bin=$2
  shift 2
  echo "== $name"
  env ${pg_bin:+POOLBENCH_PG_BIN="$pg_bin"} "$bin" run scenarios/select1.toml --only per-request --concurrency 1 \
    --duration "${seconds}s" --warmup 1s --no-html --out "$out/$name" "$@" |
    grep '^  cpu '
  jq -r '.strategies[0] | "connections \(.connections_opened); p50 µs: client \(.setup_cpu.client_us.p50_us), server \(.setup_cpu.server_us.p50_us // "absent"), fork \(.setup_cpu.server_fork_us.p50_us // "absent"), auth \(.setup_cpu.server_auth_us.p50_us // "absent"); connect p50 \(.phases.connect.p50_us)"' \
    "$out/$name/report.json"
}
unset POOLBENCH_PG_BIN
run embedded-15 ""
start_server --max-connections 20
run local-by-dsn "" --dsn "$dsn"
run embedded-18 "$PWD/target/pg18/bin"
rm -rf "$out"
