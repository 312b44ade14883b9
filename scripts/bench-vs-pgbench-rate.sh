#!/usr/bin/env bash
# Open loop against pgbench -R on the same embedded server, same work
# (SELECT 1, same auth and TLS), release build, tools alternated every round
# so drift on a shared machine hits both; prints medians over the rounds.
#   poolbench run select1.toml --only pool-8 --rate R  (Poisson arrivals,
#     request_timeout 5 s)
#   pgbench -n -M prepared -c 8 -j 2 -R R                       (Poisson schedule)
# For each rate: the achieved rate, p50/p99 latency from the intended start
# (poolbench's `total`; pgbench's per-transaction log, whose time runs from
# the scheduled start under -R), client CPU per request (user + system of
# the process, from its own rusage via /usr/bin/time, start-up included, as
# in bench-vs-pgbench.sh), poolbench's generator lag p99 and whether it
# called itself saturated, and pgbench's average schedule lag.
# Usage: scripts/bench-vs-pgbench-rate.sh [SECONDS] [ROUNDS] [RATES]
#   (defaults: 6 3 "45000 60000 70000 80000")
# BASELINE_BIN=path/to/other/poolbench adds that build to every round;
# POOLBENCH_BIN=path/to/poolbench measures that build instead of building.
# PGBENCH=0 leaves pgbench out (an A/B of two builds in half the time).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-6}
rounds=${2:-3}
rates=${3:-45000 60000 70000 80000}
clients=8
pg_threads=2

command -v pgbench >/dev/null || { echo "pgbench not found (apt-get install postgresql-client)" >&2; exit 3; }
command -v jq >/dev/null || { echo "jq not found (apt-get install jq)" >&2; exit 3; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time not found (apt-get install time)" >&2; exit 3; }
if [ -n "${POOLBENCH_BIN:-}" ]; then
  bin=$POOLBENCH_BIN
else
  cargo build --release --quiet
  bin=${CARGO_TARGET_DIR:-target}/release/poolbench
fi
baseline=${BASELINE_BIN:-}
. scripts/lib/server.sh
start_server --max-connections 100
for_pgbench
# scenarios/select1.toml's pool-8 with a 5 s request_timeout (a build
# before issue 36 refuses rate × request_timeout over 1,000,000).
sed -e 's/^seed = 1$/seed = 1\nrequest_timeout = "5s"/' scenarios/select1.toml >"$work/rate.toml"

# timed OUT CMD...: runs CMD, its stdout+stderr to OUT, and prints the CPU
# seconds (user + system) of the process.
timed() {
  local out=$1; shift
  /usr/bin/time -f '%U %S' -o "$work/time" "$@" >"$out" 2>&1 || true
  # (The last line: a command that fails gets a line saying so first.)
  tail -n1 "$work/time" | awk '{printf "%.3f", $1 + $2}'
}

declare -A ach p50 p99 cpu lag sat
# add KEY ACHIEVED P50_MS P99_MS CPU_US LAG SATURATED
add() { ach[$1]+="$2 "; p50[$1]+="$3 "; p99[$1]+="$4 "; cpu[$1]+="$5 "; lag[$1]+="$6 "; sat[$1]+="$7 "; }

# poolbench KEY RATE BIN: one open-loop run of pool-8, no warm-up, no HTML.
poolbench() {
  local key=$1 rate=$2 b=$3 c
  rm -rf "$work/pb"
  c=$(timed "$work/pb.log" "$b" run "$work/rate.toml" --dsn "$dsn" --quiet --only pool-8 \
      --rate "$rate" --duration "${seconds}s" --warmup 0s --no-html --out "$work/pb" --force)
  local s='.strategies[0]'
  [ -f "$work/pb/report.json" ] || { echo "$b at $rate/s wrote no report:" >&2; cat "$work/pb.log" >&2; return; }
  read -r n a q50 q99 l g < <(jq -r "$s | [.requests, .achieved_rate, .phases.total.p50_us,
      .phases.total.p99_us, (.phases.lag.p99_us // 0), (.generator_saturated // false)] | @tsv" \
      "$work/pb/report.json")
  add "$key" "$a" "$(awk -v x="$q50" 'BEGIN {printf "%.3f", x / 1000}')" \
      "$(awk -v x="$q99" 'BEGIN {printf "%.3f", x / 1000}')" \
      "$(awk -v c="$c" -v n="$n" 'BEGIN {printf "%.2f", c * 1e6 / n}')" \
      "$(awk -v x="$l" 'BEGIN {printf "%.3f", x / 1000}')" "$g"
}

# pgbench KEY RATE
pgbench_rate() {
  local key=$1 rate=$2 c
  rm -f "$work"/pglog*
  c=$(timed "$work/pg.out" pgbench -n -M prepared -c $clients -j $pg_threads -R "$rate" \
      -T "$seconds" -f "$work/select1.sql" -l --log-prefix="$work/pglog")
  local n
  n=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$work/pg.out")
  # Each log line: client, transaction, time (µs, from the scheduled start
  # under -R), script, epoch, µs, schedule lag (µs).
  cat "$work"/pglog* | awk '{print $3}' | sort -n >"$work/pg.lat"
  local q50 q99
  q50=$(awk '{a[NR]=$1} END {printf "%.3f", a[int(NR * 0.5) + 1] / 1000}' "$work/pg.lat")
  q99=$(awk '{a[NR]=$1} END {i = int(NR * 0.99) + 1; if (i > NR) i = NR; printf "%.3f", a[i] / 1000}' "$work/pg.lat")
  local l
  l=$(sed -n 's/^rate limit schedule lag: avg \([0-9.]*\).*/\1/p' "$work/pg.out")
  add "$key" "$(awk -v n="$n" -v s="$seconds" 'BEGIN {printf "%.1f", n / s}')" "$q50" "$q99" \
      "$(awk -v c="$c" -v n="$n" 'BEGIN {printf "%.2f", c * 1e6 / n}')" "${l:-0}" "-"
}

for r in $(seq "$rounds"); do
  for rate in $rates; do
    if [ "${PGBENCH:-1}" != 0 ]; then pgbench_rate "pg $rate" "$rate"; fi
    # With a baseline, the two builds take turns going first.
    if [ -n "$baseline" ] && [ $((r % 2)) = 0 ]; then
      poolbench "base $rate" "$rate" "$baseline"
      poolbench "pb $rate" "$rate" "$bin"
    else
      poolbench "pb $rate" "$rate" "$bin"
      if [ -n "$baseline" ]; then poolbench "base $rate" "$rate" "$baseline"; fi
    fi
    printf 'round %s, %s/s:' "$r" "$rate"
    if [ -n "${ach[pg $rate]:-}" ]; then
      printf ' pgbench %s/s p99 %s ms,' \
          "$(awk '{print $NF}' <<<"${ach[pg $rate]}")" "$(awk '{print $NF}' <<<"${p99[pg $rate]}")"
    fi
    printf ' poolbench %s/s p99 %s ms %s us' \
        "$(awk '{print $NF}' <<<"${ach[pb $rate]}")" "$(awk '{print $NF}' <<<"${p99[pb $rate]}")" \
        "$(awk '{print $NF}' <<<"${cpu[pb $rate]}")"
    if [ -n "$baseline" ]; then
      printf ', baseline %s/s p99 %s ms %s us' \
          "$(awk '{print $NF}' <<<"${ach[base $rate]}")" "$(awk '{print $NF}' <<<"${p99[base $rate]}")" \
          "$(awk '{print $NF}' <<<"${cpu[base $rate]}")"
    fi
    echo " ($(cut -d' ' -f1 /proc/loadavg) load)"
  done
done

median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }
echo
echo "SELECT 1, pool of 8 / -c $clients -j $pg_threads, ${seconds}s x $rounds rounds (medians), $(grep -o '(.*)' "$work/server.log" | head -n1), $(nproc) CPUs"
printf '| %-9s | %-9s | %10s | %8s | %8s | %8s | %-22s |\n' rate tool achieved "p50 ms" "p99 ms" "CPU us" "lag (p99 / pg avg) ms"
printf '|%s|%s|%s|%s|%s|%s|%s|\n' ----------- ----------- ------------ ---------- ---------- ---------- ------------------------
for rate in $rates; do
  for tool in pg pb base; do
    key="$tool $rate"
    [ -n "${ach[$key]:-}" ] || continue
    name=$(case $tool in pg) echo pgbench;; pb) echo poolbench;; base) echo baseline;; esac)
    extra=""
    if [ "$tool" != pg ]; then
      extra=" (saturated $(tr ' ' '\n' <<<"${sat[$key]}" | grep -c true || true)/$rounds)"
    fi
    printf '| %-9s | %-9s | %10s | %8s | %8s | %8s | %-22s |\n' "$rate" "$name" \
        "$(median "${ach[$key]}")" "$(median "${p50[$key]}")" "$(median "${p99[$key]}")" \
        "$(median "${cpu[$key]}")" "$(median "${lag[$key]}")$extra"
  done
done
