#!/usr/bin/env bash
# How often the regression gate cries wolf, and how often it misses a real
# slowdown, on this machine, with the gate docs/ci.md recommends: a
# baseline of BASE_RUNS runs (default 3) of the unchanged build made just
# before the candidate, as a CI job does that makes its baseline from the
# base commit, and `poolbench compare BASE... CANDIDATE` with the
# recommended thresholds. The script first makes BASE_RUNS unchanged runs,
# then N unchanged reruns and N runs with a known injected slowdown,
# alternated; each is compared with the BASE_RUNS unchanged runs made
# before it (a rolling baseline: the latest ones, as a job's baseline is
# made minutes before its candidate). Prints each verdict, then the false
# alarms (unchanged reruns that failed) and the misses (slowed runs that
# passed), and the slowdown the slowed runs showed against the unchanged
# ones (medians), which is the slowdown the misses are counted at.
#
# Usage: scripts/gate-calibration.sh N
# Environment (all optional):
#   SCENARIO=scenarios/select1.toml   the scenario (its first query is slowed)
#   ONLY=pool-8        the strategy gated (a pooled one: a 15% slower query
#                      is 15% of a pooled request, not of a fresh one, whose
#                      time is the connection's)
#   ROUNDS=8 DURATION=2s WARMUP=1s    each run's rounds, as CI would run them
#   BASE_RUNS=3        the runs a baseline pools
#   GATES="--max-regression throughput=5% --max-regression p99=25%"
#   SLOW_SQL="SELECT count(*) FROM generate_series(1, 35)"
#                      the slowed runs' query: more work per request on the
#                      server (about 15% of a pooled SELECT 1 on a quiet
#                      2-CPU machine; the summary says what it measured, so
#                      tune it to the slowdown you want to catch)
# Each run starts its own embedded server, as a CI job does. Release build.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $# -eq 1 && $1 =~ ^[1-9][0-9]*$ ]] || { sed -n '16p' "$0" | sed 's/^# //' >&2; exit 2; }
n=$1
scenario=${SCENARIO:-scenarios/select1.toml}
only=${ONLY:-pool-8}
rounds=${ROUNDS:-8}
duration=${DURATION:-2s}
warmup=${WARMUP:-1s}
base_runs=${BASE_RUNS:-3}
[[ $base_runs =~ ^[1-9][0-9]*$ ]] || { echo "BASE_RUNS must be a positive integer" >&2; exit 2; }
read -r -a gates <<<"${GATES:---max-regression throughput=5% --max-regression p99=25%}"
slow_sql=${SLOW_SQL:-SELECT count(*) FROM generate_series(1, 35)}

command -v jq >/dev/null || { echo "jq not found (apt-get install jq)" >&2; exit 3; }
cargo build --release --quiet || exit 3
bin=${CARGO_TARGET_DIR:-target}/release/poolbench
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The slowed scenario: the same file with its first query's SQL replaced.
slow=$work/slow.toml
awk -v sql="$slow_sql" '
  !done && /^sql *= */ { gsub(/"/, "\\\"", sql); print "sql = \"" sql "\""; done = 1; next }
  { print }' "$scenario" >"$slow"
cmp -s "$scenario" "$slow" && { echo "$scenario has no sql = line to slow down" >&2; exit 2; }

run() { # run SCENARIO OUT
  "$bin" run "$1" --only "$only" --rounds "$rounds" --duration "$duration" \
      --warmup "$warmup" --quiet --no-html --out "$2" >"$work/run.log" 2>&1 \
    || { cat "$work/run.log" >&2; exit 3; }
}

# judge NAME RUN [FLAGS...]: compares RUN with the latest $base_runs
# unchanged runs; prints one line and appends "code throughput_change
# p99_change" to $work/NAME.
judge() {
  local name=$1 dir=$2 code=0
  shift 2
  local base=("${unchanged[@]: -$base_runs}")
  "$bin" compare "${base[@]}" "$dir" "${gates[@]}" "$@" --format json \
      >"$work/cmp.json" 2>"$work/cmp.err" || code=$?
  if [[ $code -ge 2 ]]; then cat "$work/cmp.err" >&2; exit 3; fi
  local metric='.strategies[0].metrics[] | select(.metric == $m)'
  local t p
  t=$(jq -r --arg m throughput "$metric | .change_pct" "$work/cmp.json")
  p=$(jq -r --arg m p99 "$metric | .change_pct" "$work/cmp.json")
  echo "$code $t $p" >>"$work/$name"
  printf '%-10s exit %s  throughput %+6.1f%% (%s)  p99 %+6.1f%% (%s)\n' "$name" "$code" \
      "$t" "$(jq -r --arg m throughput "$metric | \"CI \\(.ci_low | floor)..\\(.ci_high | ceil)%, \\(.verdict)\"" "$work/cmp.json")" \
      "$p" "$(jq -r --arg m p99 "$metric | \"CI \\(.ci_low | floor)..\\(.ci_high | ceil)%, \\(.verdict)\"" "$work/cmp.json")"
}

# rps RUN: the gated strategy's throughput, mean of its rounds.
rps() { jq -r --arg s "$only" '.strategies[] | select(.name == $s) | [.rounds[].throughput_rps] | add / length | floor' "$1/report.json"; }

echo "gates: ${gates[*]}; $only, $rounds rounds of $duration (warm-up $warmup); baseline: the latest $base_runs unchanged runs; slowed: $slow_sql"
unchanged=()
: >"$work/rps_same"
: >"$work/rps_slowed"
for i in $(seq "$base_runs"); do
  run "$scenario" "$work/base-$i"
  unchanged+=("$work/base-$i")
  echo "baseline run $i: $(rps "$work/base-$i") req/s, placement $(jq -r '.conditions.placement // "unrecorded"' "$work/base-$i/report.json")"
done
: >"$work/same"
: >"$work/slowed"
for i in $(seq "$n"); do
  # Alternated, so that drift on a shared machine hits both kinds alike.
  run "$scenario" "$work/same-$i"
  judge same "$work/same-$i"
  rps "$work/same-$i" >>"$work/rps_same"
  # Now a baseline run for the runs after it.
  unchanged+=("$work/same-$i")
  run "$slow" "$work/slowed-$i"
  # The slowed scenario is another file (another sha256): that difference
  # is the injected change, so it is allowed.
  judge slowed "$work/slowed-$i" --allow-different
  rps "$work/slowed-$i" >>"$work/rps_slowed"
  rm -rf "$work/slowed-$i"
  # Only the latest unchanged runs are a baseline again.
  if [[ ${#unchanged[@]} -gt $base_runs ]]; then
    rm -rf "${unchanged[0]}"
    unchanged=("${unchanged[@]:1}")
  fi
done
false_alarms=$(awk '$1 == 1' "$work/same" | wc -l)
misses=$(awk '$1 == 0' "$work/slowed" | wc -l)
mean() { awk -v c="$2" '{ s += $c } END { printf "%+.1f", s / NR }' "$work/$1"; }
median() { sort -g "$1" | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
spread() { sort -g "$1" | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.3f (%d .. %d)", hi / lo, lo, hi }'; }
echo "false alarms: $false_alarms of $n unchanged reruns (mean change: throughput $(mean same 2)%, p99 $(mean same 3)%)"
echo "misses: $misses of $n slowed runs (mean change: throughput $(mean slowed 2)%, p99 $(mean slowed 3)%)"
echo "the injected slowdown: median throughput of the slowed runs $(median "$work/rps_slowed") req/s against $(median "$work/rps_same") for the unchanged reruns ($(awk -v a="$(median "$work/rps_slowed")" -v b="$(median "$work/rps_same")" 'BEGIN { printf "%+.1f%%", (a / b - 1) * 100 }'))"
echo "run-to-run spread of the unchanged reruns' throughput, max/min: $(spread "$work/rps_same")"
