#!/usr/bin/env bash
# Measures poolbench against pgbench on the same embedded server, same work
# (SELECT 1, 8 clients, same auth and TLS), release build:
#   pooled:  poolbench pool-8 throughput  vs  pgbench -M prepared
#   fresh:   poolbench per-request rate   vs  pgbench -C (reconnect per transaction)
#   connect: poolbench fresh connect mean vs  pgbench -C average connection time
# Usage: scripts/bench-vs-pgbench.sh [SECONDS] [ROUNDS]   (defaults: 10 2)
# Rounds alternate the two tools so drift on a shared machine hits both.
# BASELINE_BIN=path/to/other/poolbench adds that build to every round (same
# server, same alternation), to measure a change before/after.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
rounds=${2:-2}
clients=8
threads=$(nproc)

command -v pgbench >/dev/null || { echo "pgbench not found (apt-get install postgresql-client)" >&2; exit 3; }
command -v jq >/dev/null || { echo "jq not found (apt-get install jq)" >&2; exit 3; }
cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-target}/release/poolbench
baseline=${BASELINE_BIN:-}
work=$(mktemp -d)
trap 'kill $server_pid 2>/dev/null; wait $server_pid 2>/dev/null; rm -rf "$work"' EXIT

"$bin" server >"$work/server.env" 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 100); do grep -q '^PGSSLMODE=' "$work/server.env" 2>/dev/null && break; sleep 0.1; done
grep -q '^PGSSLMODE=' "$work/server.env" || { cat "$work/server.log" >&2; exit 3; }
set -a; . <(grep '^PG' "$work/server.env"); set +a
dsn=$(head -n1 "$work/server.env")
echo "SELECT 1;" >"$work/select1.sql"

pg_prepared=(); pg_fresh=(); pg_conn=(); pb_pool=(); pb_fresh=(); pb_conn=(); base_pool=(); base_fresh=()
for r in $(seq "$rounds"); do
  out=$(pgbench -n -M prepared -c $clients -j "$threads" -T "$seconds" -f "$work/select1.sql" 2>&1)
  pg_prepared+=("$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out")")
  # One thread per client: pgbench connects synchronously per thread, so
  # this gives it the same number of connection attempts in flight as
  # poolbench's 8 workers.
  out=$(pgbench -n -C -c $clients -j $clients -T "$seconds" -f "$work/select1.sql" 2>&1)
  pg_fresh+=("$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out")")
  pg_conn+=("$(sed -n 's/^average connection time = \([0-9.]*\) ms/\1/p' <<<"$out")")
  "$bin" run scenarios/select1.toml --dsn "$dsn" --quiet --duration "${seconds}s" \
      --out "$work/pb-$r" >/dev/null
  rep="$work/pb-$r/report.json"
  pb_pool+=("$(jq '.strategies[] | select(.kind=="pool") | .throughput_rps' "$rep")")
  pb_fresh+=("$(jq '.strategies[] | select(.kind=="fresh") | .throughput_rps' "$rep")")
  pb_conn+=("$(jq '.strategies[] | select(.kind=="fresh") | .phases.connect.mean_us / 1000' "$rep")")
  if [ -n "$baseline" ]; then
    "$baseline" run scenarios/select1.toml --dsn "$dsn" --quiet --duration "${seconds}s" \
        --out "$work/base-$r" >/dev/null
    rep="$work/base-$r/report.json"
    base_pool+=("$(jq '.strategies[] | select(.kind=="pool") | .throughput_rps' "$rep")")
    base_fresh+=("$(jq '.strategies[] | select(.kind=="fresh") | .throughput_rps' "$rep")")
    echo "round $r: baseline build pool ${base_pool[-1]} rps, fresh ${base_fresh[-1]} rps"
  fi
  echo "round $r: pgbench prepared ${pg_prepared[-1]} tps, -C ${pg_fresh[-1]} tps (${pg_conn[-1]} ms/connect);" \
       "poolbench pool ${pb_pool[-1]} rps, fresh ${pb_fresh[-1]} rps (${pb_conn[-1]} ms/connect)"
done

mean() { printf '%s\n' "$@" | awk '{s+=$1} END {printf "%.2f", s/NR}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a/b}'; }
a=$(mean "${pb_pool[@]}"); b=$(mean "${pg_prepared[@]}")
c=$(mean "${pb_fresh[@]}"); d=$(mean "${pg_fresh[@]}")
e=$(mean "${pb_conn[@]}"); f=$(mean "${pg_conn[@]}")
echo
echo "SELECT 1, $clients clients, ${seconds}s x $rounds rounds, $(grep -o '(.*)' "$work/server.log" | head -n1), $threads threads"
printf '%-34s %12s %12s %8s  %s\n' "measure" "poolbench" "pgbench" "ratio" "target"
printf '%-34s %12s %12s %8s  %s\n' "pooled throughput (req/s)" "$a" "$b" "$(ratio "$a" "$b")" ">= 1.00"
printf '%-34s %12s %12s %8s  %s\n' "fresh connections (req/s)" "$c" "$d" "$(ratio "$c" "$d")" ">= 1.00"
printf '%-34s %12s %12s %8s  %s\n' "fresh connect mean (ms)" "$e" "$f" "$(ratio "$e" "$f")" "0.85-1.15"
if [ -n "$baseline" ]; then
  g=$(mean "${base_pool[@]}"); h=$(mean "${base_fresh[@]}")
  printf '%-34s %12s %12s %8s\n' "pooled: this build vs baseline" "$a" "$g" "$(ratio "$a" "$g")"
  printf '%-34s %12s %12s %8s\n' "fresh: this build vs baseline" "$c" "$h" "$(ratio "$c" "$h")"
fi
