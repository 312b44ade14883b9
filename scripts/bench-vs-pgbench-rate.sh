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
# called itself saturated, and pgbench's average schedule lag; and for each
# run what else the machine ran meanwhile ("others": its busy CPU time from
# /proc/stat less the client's and the server's, which includes the kernel's
# threads and anything else running; and the time the hypervisor took, steal),
# so that a quiet rerun can tell a disturbed round from the tool's own tail.
# Usage: scripts/bench-vs-pgbench-rate.sh [SECONDS] [ROUNDS] [RATES]
#   (defaults: 6 3 "45000 60000 70000 80000")
# BASELINE_BIN=path/to/other/poolbench adds that build to every round;
# POOLBENCH_BIN=path/to/poolbench measures that build instead of building.
# PGBENCH=0 leaves pgbench out (an A/B of two builds in half the time).
# PERF=1 (root, perf and python3) adds, after the rounds, one more run of
# poolbench per rate under `perf sched record` (not in the medians: perf
# itself keeps the workers waiting) and prints what kept its worker threads
# off their CPUs (scripts/lib/sched-waits.py).
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

# The postmaster, whose own CPU and its children's (alive, and reaped: the
# run's backends when they exit) is the server's.
postmaster=$(pgrep -P "$server_pid" -x postgres | head -n1)
[ -n "$postmaster" ] || { echo "no postmaster under the server ($server_pid)" >&2; exit 3; }
ticks_ms=$(awk -v t="$(getconf CLK_TCK)" 'BEGIN {print 1000 / t}')
ncpu=$(nproc)
# cpu_marks: the time (ms), the machine's idle (idle + iowait) and steal
# clock ticks, and the server's CPU ticks. (Busy is the time less idle and
# steal: the kernel measures idle time exactly, while its busy counters are
# sampled at each tick, which misses short runs.)
cpu_marks() {
  local now idle steal server
  now=$(date +%s%3N)
  read -r idle steal < <(awk '/^cpu / {print $5 + $6, $9}' /proc/stat)
  # (A child may exit between the listing and the read: it is then counted
  # in the postmaster's reaped time, or missed once, a few ticks.)
  # shellcheck disable=SC2046
  server=$( { cat /proc/"$postmaster"/stat $(pgrep -P "$postmaster" | sed 's|.*|/proc/&/stat|') \
      2>/dev/null || true; } |
      awk -v pm="$postmaster" '{s += $14 + $15; if ($1 == pm) s += $16 + $17} END {print s + 0}')
  echo "$now $idle $steal $server"
}
# settle: waits (2 s at most) until the last run's backends have exited and
# been reaped, so that each is counted on one side of a mark only.
settle() {
  local p left
  for _ in $(seq 40); do
    left=0
    for p in $(pgrep -P "$postmaster" || true); do
      if grep -q '^State:.*Z' /proc/"$p"/status 2>/dev/null ||
          tr '\0' ' ' 2>/dev/null </proc/"$p"/cmdline | grep -q '127\.0\.0\.1('; then
        left=1
      fi
    done
    [ "$left" = 0 ] && return
    sleep 0.05
  done
}
# others_ms MARKS_BEFORE MARKS_AFTER CLIENT_CPU_S: "OTHERS_MS STEAL_MS".
others_ms() {
  awk -v a="$1" -v b="$2" -v c="$3" -v t="$ticks_ms" -v n="$ncpu" 'BEGIN {
    split(a, x, " "); split(b, y, " ");
    busy = n * (y[1] - x[1]) - (y[2] - x[2] + y[3] - x[3]) * t;
    o = busy - (y[4] - x[4]) * t - c * 1000; if (o < 0) o = 0;
    printf "%.0f %.0f", o, (y[3] - x[3]) * t }'
}

# timed OUT CMD...: runs CMD, its stdout+stderr to OUT, and prints the CPU
# seconds (user + system) of the process.
timed() {
  local out=$1; shift
  /usr/bin/time -f '%U %S' -o "$work/time" "$@" >"$out" 2>&1 || true
  # (The last line: a command that fails gets a line saying so first.)
  tail -n1 "$work/time" | awk '{printf "%.3f", $1 + $2}'
}

declare -A ach p50 p99 cpu lag sat oth stl
# add KEY ACHIEVED P50_MS P99_MS CPU_US LAG SATURATED "OTHERS_MS STEAL_MS"
add() {
  ach[$1]+="$2 "; p50[$1]+="$3 "; p99[$1]+="$4 "; cpu[$1]+="$5 "; lag[$1]+="$6 "; sat[$1]+="$7 "
  oth[$1]+="${8% *} "; stl[$1]+="${8#* } "
}

# poolbench KEY RATE BIN: one open-loop run of pool-8, no warm-up, no HTML.
poolbench() {
  local key=$1 rate=$2 b=$3 c m0
  rm -rf "$work/pb"
  settle
  m0=$(cpu_marks)
  c=$(timed "$work/pb.log" "$b" run "$work/rate.toml" --dsn "$dsn" --quiet --only pool-8 \
      --rate "$rate" --duration "${seconds}s" --warmup 0s --no-html --out "$work/pb" --force)
  local others
  settle
  others=$(others_ms "$m0" "$(cpu_marks)" "$c")
  local s='.strategies[0]'
  [ -f "$work/pb/report.json" ] || { echo "$b at $rate/s wrote no report:" >&2; cat "$work/pb.log" >&2; return; }
  read -r n a q50 q99 l g < <(jq -r "$s | [.requests, .achieved_rate, .phases.total.p50_us,
      .phases.total.p99_us, (.phases.lag.p99_us // 0), (.generator_saturated // false)] | @tsv" \
      "$work/pb/report.json")
  add "$key" "$a" "$(awk -v x="$q50" 'BEGIN {printf "%.3f", x / 1000}')" \
      "$(awk -v x="$q99" 'BEGIN {printf "%.3f", x / 1000}')" \
      "$(awk -v c="$c" -v n="$n" 'BEGIN {printf "%.2f", c * 1e6 / n}')" \
      "$(awk -v x="$l" 'BEGIN {printf "%.3f", x / 1000}')" "$g" "$others"
}

# pgbench KEY RATE
pgbench_rate() {
  local key=$1 rate=$2 c m0
  rm -f "$work"/pglog*
  settle
  m0=$(cpu_marks)
  c=$(timed "$work/pg.out" pgbench -n -M prepared -c $clients -j $pg_threads -R "$rate" \
      -T "$seconds" -f "$work/select1.sql" -l --log-prefix="$work/pglog")
  local others
  settle
  others=$(others_ms "$m0" "$(cpu_marks)" "$c")
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
      "$(awk -v c="$c" -v n="$n" 'BEGIN {printf "%.2f", c * 1e6 / n}')" "${l:-0}" "-" "$others"
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
      printf ' pgbench %s/s p99 %s ms (others %s ms),' \
          "$(awk '{print $NF}' <<<"${ach[pg $rate]}")" "$(awk '{print $NF}' <<<"${p99[pg $rate]}")" \
          "$(awk '{print $NF}' <<<"${oth[pg $rate]}")"
    fi
    printf ' poolbench %s/s p99 %s ms %s us (others %s ms, steal %s ms)' \
        "$(awk '{print $NF}' <<<"${ach[pb $rate]}")" "$(awk '{print $NF}' <<<"${p99[pb $rate]}")" \
        "$(awk '{print $NF}' <<<"${cpu[pb $rate]}")" "$(awk '{print $NF}' <<<"${oth[pb $rate]}")" \
        "$(awk '{print $NF}' <<<"${stl[pb $rate]}")"
    if [ -n "$baseline" ]; then
      printf ', baseline %s/s p99 %s ms %s us (others %s ms)' \
          "$(awk '{print $NF}' <<<"${ach[base $rate]}")" "$(awk '{print $NF}' <<<"${p99[base $rate]}")" \
          "$(awk '{print $NF}' <<<"${cpu[base $rate]}")" "$(awk '{print $NF}' <<<"${oth[base $rate]}")"
    fi
    echo " ($(cut -d' ' -f1 /proc/loadavg) load)"
  done
done

# sched_waits RATE: one more run of poolbench under perf sched, from its
# second second to one before its end, and what kept its workers waiting.
sched_waits() {
  local rate=$1 pid tids srv from len
  rm -rf "$work/pbp"
  "$bin" run "$work/rate.toml" --dsn "$dsn" --quiet --only pool-8 --rate "$rate" \
      --duration "${seconds}s" --warmup 0s --no-html --out "$work/pbp" --force >"$work/pbp.log" 2>&1 &
  pid=$!
  from=$((seconds >= 4 ? 2 : 1))
  len=$((seconds - from - 1 > 1 ? seconds - from - 1 : 1))
  sleep "$from"
  # Its threads (the main one first) and the server's processes, as they are now.
  tids="$pid,$(ls /proc/"$pid"/task 2>/dev/null | grep -vx "$pid" | paste -sd, || true)"
  srv=$(pgrep -P "$postmaster" | paste -sd, || true)
  perf sched record -o "$work/sched.data" -- sleep "$len" >"$work/perf.log" 2>&1 || true
  wait "$pid" || true
  echo "$rate/s: one more run of poolbench under perf sched, ${len} s from its second $from (not in the medians):"
  perf script -i "$work/sched.data" 2>/dev/null | python3 scripts/lib/sched-waits.py "$tids" "$srv" ||
      { echo "  (no perf data:" >&2; cat "$work/perf.log" >&2; }
}

median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }
echo
echo "SELECT 1, pool of 8 / -c $clients -j $pg_threads, ${seconds}s x $rounds rounds (medians), $(grep -o '(.*)' "$work/server.log" | head -n1), $(nproc) CPUs"
printf '| %-9s | %-9s | %10s | %8s | %8s | %8s | %-22s | %-16s |\n' rate tool achieved "p50 ms" "p99 ms" "CPU us" "lag (p99 / pg avg) ms" "p99 per round"
printf '|%s|%s|%s|%s|%s|%s|%s|%s|\n' ----------- ----------- ------------ ---------- ---------- ---------- ------------------------ ------------------
for rate in $rates; do
  for tool in pg pb base; do
    key="$tool $rate"
    [ -n "${ach[$key]:-}" ] || continue
    name=$(case $tool in pg) echo pgbench;; pb) echo poolbench;; base) echo baseline;; esac)
    extra=""
    if [ "$tool" != pg ]; then
      extra=" (saturated $(tr ' ' '\n' <<<"${sat[$key]}" | grep -c true || true)/$rounds)"
    fi
    printf '| %-9s | %-9s | %10s | %8s | %8s | %8s | %-22s | %-16s |\n' "$rate" "$name" \
        "$(median "${ach[$key]}")" "$(median "${p50[$key]}")" "$(median "${p99[$key]}")" \
        "$(median "${cpu[$key]}")" "$(median "${lag[$key]}")$extra" "$(xargs <<<"${p99[$key]}")"
  done
done
echo
echo "Besides the tool and the server, the machine ran (per run, ms of CPU; steal: taken by the hypervisor):"
for rate in $rates; do
  for tool in pg pb base; do
    key="$tool $rate"
    [ -n "${oth[$key]:-}" ] || continue
    printf '  %s/s %-9s others %s; steal %s\n' "$rate" "$tool" "$(xargs <<<"${oth[$key]}")" "$(xargs <<<"${stl[$key]}")"
  done
done
if [ "${PERF:-0}" = 1 ]; then
  echo
  for rate in $rates; do sched_waits "$rate"; done
fi
