#!/usr/bin/env bash
# What `poolbench watch` adds per statement: pgbench -M prepared -S against
# one embedded server (TLS, SCRAM) directly and through `poolbench watch
# --to` it (TLS on both legs), alternately, ROUNDS times:
#   one client:  p50 of pgbench's per-transaction latencies (one statement
#                each), direct and through the proxy: the added latency;
#   8 clients:   throughput through the proxy over direct, and the proxy's
#                CPU (utime + stime from /proc) per statement it relayed.
# Usage: scripts/bench-watch-overhead.sh [SECONDS] [ROUNDS]   (defaults: 10 3)
# POOLBENCH_BIN names a poolbench to use instead of building the release one.
# Needs pgbench and psql (apt-get install postgresql-client).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
rounds=${2:-3}
command -v pgbench >/dev/null || { echo "pgbench not found (apt-get install postgresql-client)" >&2; exit 3; }
if [ -z "${POOLBENCH_BIN:-}" ]; then
  cargo build --release --quiet
fi
bin=${POOLBENCH_BIN:-${CARGO_TARGET_DIR:-target}/release/poolbench}
. scripts/lib/server.sh
start_server
for_pgbench
pgbench -i -q -s 1 >/dev/null 2>&1

"$bin" watch --to "$dsn" --out "$work/watch" >"$work/watch.lines" 2>"$work/watch.log" &
watch_pid=$!
trap 'kill -INT $watch_pid 2>/dev/null; wait $watch_pid 2>/dev/null; kill $server_pid 2>/dev/null; wait $server_pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 300); do grep -q '^PGCHANNELBINDING=' "$work/watch.lines" 2>/dev/null && break; sleep 0.1; done
grep -q '^PGCHANNELBINDING=' "$work/watch.lines" || { cat "$work/watch.log" >&2; exit 3; }
proxy_port=$(sed -n 's/^PGPORT=//p' "$work/watch.lines")
proxy_ca=$(sed -n 's/^PGSSLROOTCERT=//p' "$work/watch.lines")
ticks=$(getconf CLK_TCK)

# p50_us ARGS...: one client for $secs s; the median of its transactions' latencies.
p50_us() {
  rm -f "$work"/lat.*
  pgbench -n -S -M prepared -c 1 -T "$secs" -l --log-prefix="$work/lat" "$@" >"$work/p50.out" 2>&1 || { cat "$work/p50.out" >&2; exit 3; }
  cat "$work"/lat.* | awk '{print $3}' | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'
}
# tps: 8 clients for $secs s; "TPS TRANSACTIONS".
tps() {
  pgbench -n -S -M prepared -c 8 -j 2 -T "$secs" 2>/dev/null |
    awk '/^number of transactions actually processed/ {n=$NF} /^tps/ {t=$3} END {print t, n}'
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$watch_pid/stat"; }

printf '%-6s %12s %12s %10s %12s %12s %7s %14s\n' round p50_direct p50_watch added_us tps_direct tps_watch ratio cpu_us/stmt
for r in $(seq "$rounds"); do
  d1=$(p50_us)
  w1=$(PGPORT=$proxy_port PGSSLROOTCERT=$proxy_ca PGCHANNELBINDING=disable p50_us)
  read -r d8 _ < <(tps)
  c0=$(cpu_ticks)
  read -r w8 n8 < <(PGPORT=$proxy_port PGSSLROOTCERT=$proxy_ca PGCHANNELBINDING=disable tps)
  c1=$(cpu_ticks)
  awk -v r="$r" -v d1="$d1" -v w1="$w1" -v d8="$d8" -v w8="$w8" -v n="$n8" -v c=$((c1 - c0)) -v hz="$ticks" \
    'BEGIN {printf "%-6s %12d %12d %10d %12.0f %12.0f %7.2f %14.1f\n", r, d1, w1, w1 - d1, d8, w8, w8 / d8, c / hz * 1e6 / n}'
done
