#!/usr/bin/env bash
# How often the regression gate cries wolf, and how often it misses a real
# slowdown, on this machine: one baseline run, then N unchanged reruns and N
# runs with a known injected slowdown, each compared with the baseline by
# `poolbench compare` with the gates docs/ci.md recommends. Prints each
# verdict, then the false alarms (unchanged reruns that failed) and the
# misses (slowed runs that passed), and the slowdown the slowed runs showed.
#
# Usage: scripts/gate-calibration.sh N
# Environment (all optional):
#   SCENARIO=scenarios/select1.toml   the scenario (its first query is slowed)
#   ONLY=pool-8        the strategy gated (a pooled one: a 15% slower query
#                      is 15% of a pooled request, not of a fresh one, whose
#                      time is the connection's)
#   ROUNDS=8 DURATION=2s WARMUP=1s    each run's rounds, as CI would run them
#   GATES="--max-regression throughput=5% --max-regression p99=25%"
#   SLOW_SQL="SELECT count(*) FROM generate_series(1, 60)"
#                      the slowed runs' query: more work per request on the
#                      server (tune it to the slowdown you want to catch;
#                      the summary says what it measured)
# Each run starts its own embedded server, as a CI job does. Release build.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $# -eq 1 && $1 =~ ^[1-9][0-9]*$ ]] || { sed -n '9p' "$0" | sed 's/^# //' >&2; exit 2; }
n=$1
scenario=${SCENARIO:-scenarios/select1.toml}
only=${ONLY:-pool-8}
rounds=${ROUNDS:-8}
duration=${DURATION:-2s}
warmup=${WARMUP:-1s}
read -r -a gates <<<"${GATES:---max-regression throughput=5% --max-regression p99=25%}"
slow_sql=${SLOW_SQL:-SELECT count(*) FROM generate_series(1, 60)}

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

# judge NAME RUN [FLAGS...]: compares RUN with the baseline; prints one line
# and appends "code throughput_change p99_change" to $work/NAME.
judge() {
  local name=$1 dir=$2 code=0
  shift 2
  "$bin" compare "$work/base" "$dir" "${gates[@]}" "$@" --format json \
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

echo "gates: ${gates[*]}; $only, $rounds rounds of $duration (warm-up $warmup); slowed: $slow_sql"
run "$scenario" "$work/base"
echo "baseline: $(jq -r --arg s "$only" '.strategies[] | select(.name == $s) | .throughput_rps | floor' "$work/base/report.json") req/s, placement $(jq -r '.conditions.placement // "unrecorded"' "$work/base/report.json")"
: >"$work/same"
: >"$work/slowed"
for i in $(seq "$n"); do
  # Alternated, so that drift on a shared machine hits both kinds alike.
  rm -rf "$work/run"
  run "$scenario" "$work/run"
  judge same "$work/run"
  rm -rf "$work/run"
  run "$slow" "$work/run"
  # The slowed scenario is another file (another sha256): that difference
  # is the injected change, so it is allowed.
  judge slowed "$work/run" --allow-different
done
false_alarms=$(awk '$1 == 1' "$work/same" | wc -l)
misses=$(awk '$1 == 0' "$work/slowed" | wc -l)
mean() { awk -v c="$2" '{ s += $c } END { printf "%+.1f", s / NR }' "$work/$1"; }
echo "false alarms: $false_alarms of $n unchanged reruns (mean change: throughput $(mean same 2)%, p99 $(mean same 3)%)"
echo "misses: $misses of $n slowed runs (mean change: throughput $(mean slowed 2)%, p99 $(mean slowed 3)%)"
