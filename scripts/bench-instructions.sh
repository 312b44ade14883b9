#!/usr/bin/env bash
# User-space instructions per pooled request, poolbench against pgbench, by
# callgrind: deterministic where wall-clock rounds on a shared machine are
# not, so a small change to the request path can be measured before/after.
# Each tool runs twice under valgrind (SHORT and LONG seconds) on one
# embedded server; the cost per request is the difference in instructions
# over the difference in requests, so start-up (TLS, SCRAM) cancels out.
# Per-second work (the timeline's histograms) does not quite cancel: under
# valgrind a second holds ~20x fewer requests than at full speed, so it
# weighs ~20x more per request than it does for real (a few thousand
# instructions here).
#   pooled: poolbench pool-8, 8 workers  vs  pgbench -M prepared -c 8 -j NPROC
# Usage: scripts/bench-instructions.sh [SHORT] [LONG]   (defaults: 5 15)
# BASELINE_BIN=path/to/other/poolbench measures that build too.
# Needs valgrind (apt-get install valgrind) and jq.
set -euo pipefail
cd "$(dirname "$0")/.."
short=${1:-5}
long=${2:-15}
threads=$(nproc)

command -v valgrind >/dev/null || { echo "valgrind not found (apt-get install valgrind)" >&2; exit 3; }
command -v jq >/dev/null || { echo "jq not found (apt-get install jq)" >&2; exit 3; }
# The binary itself, not Debian's wrapper script (valgrind would measure perl).
pgbench_bin=$(ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | tail -n1)
[ -x "$pgbench_bin" ] || { echo "pgbench not found (apt-get install postgresql-client)" >&2; exit 3; }
cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-target}/release/poolbench
. scripts/lib/server.sh
start_server
for_pgbench

# instructions CMD...: runs CMD under callgrind, prints its total.
instructions() {
  valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" "$@" >"$work/out" 2>"$work/err"
  sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$work/err"
}

# poolbench_point BIN SECONDS: "INSTRUCTIONS REQUESTS"
poolbench_point() {
  local b=$1 s=$2 n
  n=$(instructions "$b" run scenarios/select1.toml --dsn "$dsn" --quiet --duration "${s}s" \
        --warmup 0s --only pool-8 --concurrency 8 --no-html --out "$work/pb" --force)
  echo "$n $(jq '.strategies[0].requests' "$work/pb/report.json")"
}

pgbench_point() {
  local s=$1 n
  n=$(instructions "$pgbench_bin" -n -M prepared -c 8 -j "$threads" -T "$s" -f "$work/select1.sql")
  echo "$n $(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$work/out")"
}

# per_request "I1 N1" "I2 N2"
per_request() {
  read -r i1 n1 <<<"$1"; read -r i2 n2 <<<"$2"
  awk -v i1="$i1" -v n1="$n1" -v i2="$i2" -v n2="$n2" 'BEGIN {printf "%.0f", (i2 - i1) / (n2 - n1)}'
}

printf '| %-22s | %22s |\n' "pooled SELECT 1" "instructions/request"
printf '|%s|%s|\n' "------------------------" "------------------------"
pg=$(per_request "$(pgbench_point "$short")" "$(pgbench_point "$long")")
printf '| %-22s | %22s |\n' "pgbench -M prepared" "$pg"
pb=$(per_request "$(poolbench_point "$bin" "$short")" "$(poolbench_point "$bin" "$long")")
printf '| %-22s | %22s |\n' "poolbench" "$pb"
if [ -n "${BASELINE_BIN:-}" ]; then
  base=$(per_request "$(poolbench_point "$BASELINE_BIN" "$short")" "$(poolbench_point "$BASELINE_BIN" "$long")")
  printf '| %-22s | %22s |\n' "baseline" "$base"
fi
awk -v a="$pb" -v b="$pg" 'BEGIN {printf "poolbench / pgbench: %.2f\n", a / b}'
