#!/usr/bin/env bash
# What a connection costs in CPU and what each lever of the embedded
# server saves (docs/levers.md): PostgreSQL 18 from npm (installed into
# target/pg18 by scripts/install-pg18.sh), then `sweep --levers` of
# scenarios/select1.toml's per-request strategy at RTT (default 20ms), one
# worker so that nothing queues, SECONDS per point (default 5).
# Release build, built here.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds=${1:-5}
rtt=${2:-20ms}
cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-target}/release/poolbench
scripts/install-pg18.sh target/pg18 >/dev/null
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "== the CPU split, no emulated link (PostgreSQL 18)"
POOLBENCH_PG_BIN="$PWD/target/pg18/bin" "$bin" run scenarios/select1.toml --only per-request \
    --concurrency 1 --duration "${seconds}s" --warmup 1s --no-html --out "$out/run" \
    | sed -n '/^where/,/^$/p'
echo "== sweep --levers at $rtt (PostgreSQL 18)"
POOLBENCH_PG_BIN="$PWD/target/pg18/bin" "$bin" sweep scenarios/select1.toml --levers --rtt "$rtt" \
    --concurrency 1 --duration "${seconds}s" --warmup 1s --no-html --quiet --out "$out/sweep"
