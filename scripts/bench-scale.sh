#!/usr/bin/env bash
# poolbench's own cost as the load grows and as runs get longer, on one
# embedded server, release build (SELECT 1, a pool of 10, SCRAM + TLS):
#   workers: 100, 1,000 and 10,000 closed-loop workers for SECONDS each:
#            throughput (and its ratio to 100 workers'), peak RSS, client
#            CPU per request, wall time beyond the measured duration;
#   length:  peak RSS of a SECONDS run against a LONG run, closed loop
#            (100 workers) and open loop (RATE req/s): memory must not grow
#            with the run's length. A single run's peak varies by ±1.5 MB
#            on a shared machine (more in open loop, when a stall piles
#            requests up in flight), so each is the median of three runs,
#            short and long alternating.
# Usage: scripts/bench-scale.sh [SECONDS] [LONG] [RATE]   (defaults: 10 60 5000)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
long=${2:-60}
rate=${3:-5000}

command -v jq >/dev/null || { echo "jq not found (apt-get install jq)" >&2; exit 3; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time not found (apt-get install time)" >&2; exit 3; }
cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-target}/release/poolbench
. scripts/lib/server.sh
start_server

cat >"$work/scale.toml" <<'EOF'
name = "scale"
description = "SELECT 1 on a pool of 10, for poolbench's own cost at scale"
[run]
duration = "10s"
warmup = "0s"
concurrency = 100
seed = 1
[[strategy]]
name = "pool-10"
kind = "pool"
max_size = 10
min_size = 10
[[query]]
name = "select1"
sql = "SELECT 1"
EOF

# run SECONDS FLAGS...: prints "RPS RSS_MB CPU_US_PER_REQUEST WALL_OVER_S"
run() {
  local s=$1; shift
  /usr/bin/time -f '%U %S %M %e' -o "$work/time" "$bin" run "$work/scale.toml" --dsn "$dsn" \
      --quiet --no-html --duration "${s}s" --out "$work/out" --force "$@" >"$work/run.log" 2>&1 \
      || { cat "$work/run.log" >&2; exit 1; }
  local n rps
  n=$(jq '.strategies[0].requests' "$work/out/report.json")
  rps=$(jq '.strategies[0].throughput_rps' "$work/out/report.json")
  awk -v n="$n" -v rps="$rps" -v s="$s" '{printf "%s %.1f %.2f %.2f", rps, $3 / 1024, ($1 + $2) * 1e6 / n, $4 - s}' "$work/time"
}

# median A B C
median() { printf '%s\n' "$@" | sort -n | sed -n 2p; }

echo "SELECT 1 on a pool of 10, $(grep -o '(.*)' "$work/server.log" | head -n1), $(nproc) CPUs"
echo
echo "| workers | req/s | vs 100 | peak RSS (MB) | CPU us/request | wall beyond ${seconds}s |"
echo "|---:|---:|---:|---:|---:|---:|"
base=
for w in 100 1000 10000; do
  read -r rps mb cpu over <<<"$(run "$seconds" --concurrency "$w")"
  base=${base:-$rps}
  printf '| %s | %s | %s | %s | %s | %ss |\n' "$w" "$rps" \
      "$(awk -v a="$rps" -v b="$base" 'BEGIN {printf "%.2f", a/b}')" "$mb" "$cpu" "$over"
done
echo
echo "| load | peak RSS ${seconds}s (MB) | peak RSS ${long}s (MB) | ratio |"
echo "|---|---:|---:|---:|"
for load in "closed loop, 100 workers" "open loop, $rate req/s"; do
  flags=(--concurrency 100)
  [[ $load == open* ]] && flags=(--rate "$rate")
  shorts=() longs=()
  for _ in 1 2 3; do
    read -r _ mb _ _ <<<"$(run "$seconds" "${flags[@]}")"
    shorts+=("$mb")
    read -r _ mb _ _ <<<"$(run "$long" "${flags[@]}")"
    longs+=("$mb")
  done
  short=$(median "${shorts[@]}")
  longmb=$(median "${longs[@]}")
  printf '| %s | %s | %s | %s |\n' "$load" "$short" "$longmb" \
      "$(awk -v a="$longmb" -v b="$short" 'BEGIN {printf "%.2f", a/b}')"
done
