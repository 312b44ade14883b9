#!/usr/bin/env bash
# Measures poolbench against pgbench on the same embedded server, same work
# (SELECT 1, same auth and TLS), release build, tools alternated every round
# so drift on a shared machine hits both; prints medians over the rounds.
#   pooled: poolbench pool-8, 8 workers     vs  pgbench -M prepared -c 8 -j NPROC
#           and tokio-postgres alone (benches/driver_floor.rs, no poolbench: the
#           driver poolbench's queries ran through before wire.rs)
#   fresh:  poolbench per-request, 64 workers  vs  pgbench -C -c 64 -j 64
# For each: throughput, client CPU per request (user + system of the
# process, from its own rusage via /usr/bin/time) and peak RSS; for pooled,
# also the server's CPU per request (every postgres process's, from /proc). Pooled runs
# also count the machine's cross-CPU interrupts (rescheduling and function
# calls, /proc/interrupts) per request: how often a wake-up had to reach the
# other CPU, the mark of the slow mode described in docs/performance.md (a server
# backend running on another CPU than the client thread it answers).
# Usage: scripts/bench-vs-pgbench.sh [SECONDS] [ROUNDS]   (defaults: 10 3)
# BASELINE_BIN=path/to/other/poolbench adds that build to every round (same
# server, same alternation), to measure a change before/after.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
rounds=${2:-3}
clients=8
fresh_clients=64
threads=$(nproc)

command -v pgbench >/dev/null || { echo "pgbench not found (apt-get install postgresql-client)" >&2; exit 3; }
command -v jq >/dev/null || { echo "jq not found (apt-get install jq)" >&2; exit 3; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time not found (apt-get install time)" >&2; exit 3; }
cargo build --release --quiet
cargo bench --bench driver_floor --no-run --quiet 2>/dev/null
bin=${CARGO_TARGET_DIR:-target}/release/poolbench
floor=$(ls -t "${CARGO_TARGET_DIR:-target}"/release/deps/driver_floor-* | grep -v '\.d$' | head -n1)
baseline=${BASELINE_BIN:-}
# Room for the fresh clients, the monitor and pgbench's connections.
. scripts/lib/server.sh
start_server --max-connections 200
for_pgbench

# The server's CPU so far, in clock ticks: the postmaster's and its
# children's, alive and reaped (the postmaster's cutime + cstime).
postmaster=$(pgrep -P "$server_pid" -x postgres | head -n1)
[ -n "$postmaster" ] || { echo "no postmaster under the server ($server_pid)" >&2; exit 3; }
hz=$(getconf CLK_TCK)
srvticks() {
  { cat /proc/"$postmaster"/stat $(pgrep -P "$postmaster" | sed 's|.*|/proc/&/stat|') 2>/dev/null || true; } |
    awk -v pm="$postmaster" '{s += $14 + $15; if ($1 == pm) s += $16 + $17} END {print s + 0}'
}
# server NAME BEFORE REQUESTS: the server's CPU (µs) per request since BEFORE.
server() { srv[$1]+="$(awk -v d="$(( $(srvticks) - $2 ))" -v n="$3" -v hz="$hz" 'BEGIN {printf "%.2f", d * 1e6 / hz / n}') "; }

# timed OUT CMD...: runs CMD, its stdout+stderr to OUT, and prints
# "CPU_SECONDS MAXRSS_KB" (user + system, peak resident set) of the process.
timed() {
  local out=$1; shift
  /usr/bin/time -f '%U %S %M' -o "$work/time" "$@" >"$out" 2>&1
  awk '{printf "%.3f %d", $1 + $2, $3}' "$work/time"
}

# poolbench OUT STRATEGY CONCURRENCY [BIN]: one strategy, no warm-up (so the
# process's CPU is the measured requests' plus start-up), no HTML.
poolbench() {
  local out=$1 strategy=$2 conc=$3 b=${4:-$bin}
  timed "$work/pb.log" "$b" run scenarios/select1.toml --dsn "$dsn" --quiet --duration "${seconds}s" \
      --warmup 0s --only "$strategy" --concurrency "$conc" --no-html --out "$out" --force
}

# The machine's rescheduling and function-call interrupts so far, all CPUs.
ipis() { awk '/^ *(RES|CAL):/ {for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i} END {print s + 0}' /proc/interrupts; }

declare -A rps cpu rss ipi srv
add() { rps[$1]+="$2 "; cpu[$1]+="$3 "; rss[$1]+="$4 "; }
# record NAME REQUESTS SECONDS "CPU RSS"
record() {
  local name=$1 n=$2 s=$3; read -r c m <<<"$4"
  add "$name" "$(awk -v n="$n" -v s="$s" 'BEGIN {printf "%.1f", n / s}')" \
      "$(awk -v c="$c" -v n="$n" 'BEGIN {printf "%.2f", c * 1e6 / n}')" "$((m / 1024))"
}

# cross NAME BEFORE REQUESTS: cross-CPU interrupts per request since BEFORE.
cross() { ipi[$1]+="$(awk -v d="$(( $(ipis) - $2 ))" -v n="$3" 'BEGIN {printf "%.3f", d / n}') "; }

for r in $(seq "$rounds"); do
  i=$(ipis); c=$(srvticks)
  t=$(timed "$work/pg.out" pgbench -n -M prepared -c $clients -j "$threads" -T "$seconds" -f "$work/select1.sql")
  n=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$work/pg.out")
  cross pg_pooled "$i" "$n"
  server pg_pooled "$c" "$n"
  record pg_pooled "$n" "$seconds" "$t"

  t=$(timed "$work/floor.out" "$floor" "$dsn" $clients "$threads" "$seconds")
  read -r _ n _ s _ _ _ c <"$work/floor.out"
  # Its own window's CPU (it excludes connecting); RSS of the process.
  add floor "$(awk -v n="$n" -v s="$s" 'BEGIN {printf "%.1f", n / s}')" "$c" "$(( $(cut -d' ' -f2 <<<"$t") / 1024 ))"

  i=$(ipis); c=$(srvticks)
  t=$(poolbench "$work/pb" pool-8 $clients)
  cross pb_pooled "$i" "$(jq '.strategies[0].requests' "$work/pb/report.json")"
  server pb_pooled "$c" "$(jq '.strategies[0].requests' "$work/pb/report.json")"
  record pb_pooled "$(jq '.strategies[0].requests' "$work/pb/report.json")" \
      "$(jq '.strategies[0].measured_s' "$work/pb/report.json")" "$t"

  t=$(timed "$work/pgc.out" pgbench -n -C -c $fresh_clients -j $fresh_clients -T "$seconds" -f "$work/select1.sql")
  record pg_fresh "$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$work/pgc.out")" "$seconds" "$t"

  t=$(poolbench "$work/pbf" per-request $fresh_clients)
  record pb_fresh "$(jq '.strategies[0].requests' "$work/pbf/report.json")" \
      "$(jq '.strategies[0].measured_s' "$work/pbf/report.json")" "$t"

  if [ -n "$baseline" ]; then
    t=$(poolbench "$work/base" pool-8 $clients "$baseline")
    record base_pooled "$(jq '.strategies[0].requests' "$work/base/report.json")" \
        "$(jq '.strategies[0].measured_s' "$work/base/report.json")" "$t"
    t=$(poolbench "$work/basef" per-request $fresh_clients "$baseline")
    record base_fresh "$(jq '.strategies[0].requests' "$work/basef/report.json")" \
        "$(jq '.strategies[0].measured_s' "$work/basef/report.json")" "$t"
  fi
  printf 'round %s: pooled pgbench %s tokio-postgres %s poolbench %s (cross-CPU interrupts/request %s, %s); fresh pgbench -C %s poolbench %s req/s\n' "$r" \
      "$(awk '{print $NF}' <<<"${rps[pg_pooled]}")" "$(awk '{print $NF}' <<<"${rps[floor]}")" \
      "$(awk '{print $NF}' <<<"${rps[pb_pooled]}")" "$(awk '{print $NF}' <<<"${ipi[pg_pooled]}")" \
      "$(awk '{print $NF}' <<<"${ipi[pb_pooled]}")" "$(awk '{print $NF}' <<<"${rps[pg_fresh]}")" \
      "$(awk '{print $NF}' <<<"${rps[pb_fresh]}")"
done

median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a/b; else printf "-"}'; }
row() { # LABEL A B TARGET
  printf '| %-40s | %12s | %12s | %6s | %-8s |\n' "$1" "$2" "$3" "$(ratio "$2" "$3")" "$4"
}
m() { median "${!1}"; }

echo
echo "SELECT 1, ${seconds}s x $rounds rounds (medians), $(grep -o '(.*)' "$work/server.log" | head -n1), $threads threads, $(nproc) CPUs"
printf '| %-40s | %12s | %12s | %6s | %-8s |\n' "measure" "poolbench" "pgbench" "ratio" "target"
printf '|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..42})" "--------------" "--------------" "--------" "----------"
row "pooled req/s ($clients clients, -M prepared)" "$(median "${rps[pb_pooled]}")" "$(median "${rps[pg_pooled]}")" ">= 1.00"
row "pooled CPU us/request" "$(median "${cpu[pb_pooled]}")" "$(median "${cpu[pg_pooled]}")" "<= 1.00"
row "pooled server CPU us/request" "$(median "${srv[pb_pooled]}")" "$(median "${srv[pg_pooled]}")" ""
row "pooled peak RSS (MB)" "$(median "${rss[pb_pooled]}")" "$(median "${rss[pg_pooled]}")" ""
row "pooled cross-CPU interrupts/request" "$(median "${ipi[pb_pooled]}")" "$(median "${ipi[pg_pooled]}")" ""
row "tokio-postgres alone req/s" "$(median "${rps[floor]}")" "$(median "${rps[pg_pooled]}")" ""
row "tokio-postgres alone CPU us/request" "$(median "${cpu[floor]}")" "$(median "${cpu[pg_pooled]}")" ""
row "fresh req/s ($fresh_clients clients, -C)" "$(median "${rps[pb_fresh]}")" "$(median "${rps[pg_fresh]}")" ">= 1.00"
row "fresh CPU us/connection" "$(median "${cpu[pb_fresh]}")" "$(median "${cpu[pg_fresh]}")" "< 1.00"
row "fresh peak RSS (MB)" "$(median "${rss[pb_fresh]}")" "$(median "${rss[pg_fresh]}")" ""
# The rounds in which the kernel kept every backend on its client's CPU.
read -r -a pb_rps <<<"${rps[pb_pooled]}"
read -r -a pb_ipi <<<"${ipi[pb_pooled]}"
fast=""
for k in "${!pb_rps[@]}"; do
  awk -v x="${pb_ipi[$k]}" 'BEGIN {exit !(x < 0.02)}' && fast+="${pb_rps[$k]} "
done
if [ -n "$fast" ]; then
  row "pooled req/s, rounds < 0.02 interrupts" "$(median "$fast")" "$(median "${rps[pg_pooled]}")" ""
fi
echo "poolbench rounds with fewer than 0.02 cross-CPU interrupts per request: $(wc -w <<<"$fast") of $rounds"
# How much the rounds of one build agree (max/min of pooled throughput), and
# in how many rounds poolbench was at or above pgbench's round before it.
spread() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%.3f (%s .. %s)", hi / lo, lo, hi}'; }
echo "poolbench pooled req/s max/min over $rounds rounds: $(spread "${rps[pb_pooled]}")"
read -r -a pg_rps <<<"${rps[pg_pooled]}"
above=0
for k in "${!pb_rps[@]}"; do
  awk -v a="${pb_rps[$k]}" -v b="${pg_rps[$k]}" 'BEGIN {exit !(a >= b)}' && above=$((above + 1))
done
echo "rounds with poolbench pooled at or above pgbench's: $above of $rounds"
# What the machine's drift does to both: pgbench's own spread, and
# poolbench's round divided by pgbench's round just before it (the drift
# they share divided out; what is left is poolbench's own).
echo "pgbench pooled req/s max/min over $rounds rounds: $(spread "${rps[pg_pooled]}")"
per_round=""
for k in "${!pb_rps[@]}"; do
  per_round+="$(awk -v a="${pb_rps[$k]}" -v b="${pg_rps[$k]}" 'BEGIN {printf "%.4f", a / b}') "
done
echo "poolbench/pgbench per round, max/min over $rounds rounds: $(spread "$per_round")"
if [ -n "$baseline" ]; then
  echo "baseline pooled req/s max/min over $rounds rounds: $(spread "${rps[base_pooled]}")"
fi
if [ -n "$baseline" ]; then
  row "pooled req/s: this build vs baseline" "$(median "${rps[pb_pooled]}")" "$(median "${rps[base_pooled]}")" ""
  row "pooled CPU us/req: this vs baseline" "$(median "${cpu[pb_pooled]}")" "$(median "${cpu[base_pooled]}")" ""
  row "fresh req/s: this build vs baseline" "$(median "${rps[pb_fresh]}")" "$(median "${rps[base_fresh]}")" ""
fi
