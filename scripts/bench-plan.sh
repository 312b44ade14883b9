#!/usr/bin/env bash
# Plans by measurement, checked (issue 29's "Done when"): for each scenario,
# the best throughput its pool reaches (closed loop, 16 workers, the
# scenario's pool of 8), then `poolbench plan` at 20%, 50% and 80% of it, and
# the recommended max_size and one connection fewer each run again 3 times
# from scratch (`run --rate R`, a new embedded server each time, the pool
# with max_size = min_size = N, max_in_flight 100,000 like plan's), p99 from
# the intended arrival against the target.
# Prints one line per plan and per rerun; the plan's JSON is kept in $out.
# Usage: scripts/bench-plan.sh [OUT] (default /tmp/bench-plan)
#   env: SCENARIOS ("sizing:10ms plan-cpu:10ms plan-tail:80ms"),
#        FRACTIONS ("0.2 0.5 0.8"), DURATION (3s), WARMUP (1s)
# POOLBENCH_BIN=path/to/poolbench measures that build instead of building.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/bench-plan}
scenarios=${SCENARIOS:-sizing:10ms plan-cpu:10ms plan-tail:80ms}
fractions=${FRACTIONS:-0.2 0.5 0.8}
duration=${DURATION:-3s}
warmup=${WARMUP:-1s}
command -v jq >/dev/null || { echo "jq not found (apt-get install jq)" >&2; exit 3; }
if [ -n "${POOLBENCH_BIN:-}" ]; then
  bin=$POOLBENCH_BIN
else
  cargo build --release --quiet
  bin=${CARGO_TARGET_DIR:-target}/release/poolbench
fi
mkdir -p "$out"
echo "load: $(uptime)"

# The scenario's pool strategy as a pool of N, open loop with no handler
# limit (plan's conditions).
sized() { # scenario N file
  sed -e "s/^max_size = .*/max_size = $2/" -e "s/^min_size = .*/min_size = $2/" \
      -e "s/^\[run\]/[run]\nmax_in_flight = 100000/" "scenarios/$1.toml" >"$3"
}
pool_name() { grep -B2 '^kind = "pool"' "scenarios/$1.toml" | sed -n 's/^name = "\(.*\)"/\1/p' | head -n1; }

for item in $scenarios; do
  scen=${item%%:*}; target=${item#*:}
  target_ms=$(echo "$target" | sed 's/ms$//')
  pool=$(pool_name "$scen")
  "$bin" run "scenarios/$scen.toml" --only "$pool" --concurrency 16 --duration 5s --warmup 1s \
    --out "$out/$scen-capacity" --quiet --force --no-html >/dev/null
  cap=$(jq '.strategies[0].throughput_rps' "$out/$scen-capacity/report.json")
  printf '%s: capacity %.0f req/s (closed loop, pool 8, 16 workers); target p99 %s\n' "$scen" "$cap" "$target"
  for f in $fractions; do
    rate=$(echo "$cap * $f" | bc -l | xargs printf '%.0f')
    json="$out/$scen-$f.json"
    start=$(date +%s)
    set +e
    "$bin" plan "scenarios/$scen.toml" --rps "$rate" --p99 "$target" --duration "$duration" \
      --warmup "$warmup" --format json >"$json" 2>"$out/$scen-$f.err"
    code=$?
    set -e
    took=$(( $(date +%s) - start ))
    max=$(jq -r '.recommended.max_size // "none"' "$json")
    printf '  %s x capacity = %s req/s: plan exit %s in %ss, max_size %s; %s\n' "$f" "$rate" "$code" "$took" "$max" \
      "$(jq -r '.reason' "$json")"
    jq -r '.points[] | "    measured pool \(.pool_size): p99 \(.p99_ms|.*1000|round/1000) ms, model \(.predicted_p99_ms // "unbounded"|if type=="number" then (.*1000|round/1000) else . end) ms, ratio \(.model_ratio // "-"|if type=="number" then (.*100|round/100) else . end), ρ \(.predicted_utilisation*100|round/100), met \(.met)"' "$json"
    [ "$max" = none ] && continue
    for n in "$max" $((max - 1)); do
      [ "$n" -ge 1 ] || continue
      toml="$out/$scen-$n.toml"
      sized "$scen" "$n" "$toml"
      met=0; line=""
      for i in 1 2 3; do
        dir="$out/$scen-$f-pool$n-$i"
        "$bin" run "$toml" --only "$pool" --rate "$rate" --duration "$duration" --warmup "$warmup" \
          --rounds 1 --out "$dir" --quiet --force --no-html >/dev/null 2>&1 || true
        p99=$(jq '.strategies[0].phases.total.p99_us / 1000' "$dir/report.json")
        ach=$(jq '.strategies[0].achieved_rate' "$dir/report.json")
        off=$(jq '.strategies[0].offered_rate' "$dir/report.json")
        ok=$(echo "$p99 <= $target_ms && $ach >= 0.98 * $off" | bc -l)
        met=$((met + ok))
        line="$line $(printf '%.2f' "$p99")ms"
      done
      printf '    rerun pool %s x3: p99%s; met %s of 3\n' "$n" "$line" "$met"
    done
  done
done
echo "load: $(uptime)"
