#!/usr/bin/env bash
# The CI regression gate: run SCENARIO in rounds, compare the report with the
# committed baseline, write the markdown for a pull-request comment, print the
# table, and exit with compare's code.
#
# Usage: scripts/ci-regression.sh SCENARIO [BASELINE_DIR]
#   BASELINE_DIR holds the baseline: its runs' directories run-1/, run-2/, …
#   (each a report.json; pooled by compare), or one report.json (default:
#   results/baseline).
#
# Environment (all optional):
#   ROUNDS=5             rounds per strategy (3 or more for the noise test)
#   ONLY                 the one strategy to run and gate (e.g. pool-8)
#   DURATION, WARMUP     override the scenario's [run] duration / warmup; use
#                        the values the baseline was made with
#   OUT                  the run's directory (default: results/ci-<UTC time>)
#   COMPARE_MD           where the markdown goes (default: compare.md)
#   COMPARE_FLAGS        more compare flags, e.g. "--max-regression p99=15%"
#   UPDATE_BASELINE=1    refresh: make BASE_RUNS runs into BASELINE_DIR/run-N
#                        instead of comparing
#   BASE_RUNS=3          the runs a new baseline is made of (docs/ci.md)
#
# Exit code: 0 no regression, 1 regression, 2 unreadable or incompatible
# reports (or bad flags), 3 environment (no PostgreSQL, build failed).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $# -lt 1 || $# -gt 2 ]]; then
  sed -n '6,7p' "$0" | sed 's/^# //' >&2
  exit 2
fi
scenario=$1
baseline=${2:-results/baseline}
rounds=${ROUNDS:-5}
out=${OUT:-results/ci-$(date -u +%Y%m%dT%H%M%SZ)}
markdown=${COMPARE_MD:-compare.md}

cargo build --release --quiet || exit 3
bin=${CARGO_TARGET_DIR:-target}/release/poolbench

if [[ ${UPDATE_BASELINE:-} == 1 ]]; then
  base_runs=${BASE_RUNS:-3}
  [[ $base_runs =~ ^[1-9][0-9]*$ ]] || { echo "BASE_RUNS must be a positive integer" >&2; exit 2; }
  base_flags=(--rounds "$rounds" --quiet --no-html --force)
  [[ -n ${ONLY:-} ]] && base_flags+=(--only "$ONLY")
  [[ -n ${DURATION:-} ]] && base_flags+=(--duration "$DURATION")
  [[ -n ${WARMUP:-} ]] && base_flags+=(--warmup "$WARMUP")
  mkdir -p "$baseline"
  # The old baseline's reports only (a single report.json, or runs).
  rm -rf "$baseline"/run-* "$baseline"/report.json "$baseline"/summary.csv "$baseline"/timeline.csv
  for i in $(seq "$base_runs"); do
    status=0
    "$bin" run "$scenario" "${base_flags[@]}" --out "$baseline/run-$i" || status=$?
    [[ $status -le 1 ]] || exit "$status"
  done
  echo "baseline updated: $base_runs runs in $baseline/run-*/ (commit it)"
  exit 0
fi
# The baseline's runs, or its one report.json.
baseline_reports=()
for d in "$baseline"/run-*/; do
  [[ -f $d/report.json ]] && baseline_reports+=("$d/report.json")
done
[[ ${#baseline_reports[@]} -gt 0 ]] || baseline_reports=("$baseline/report.json")

run_flags=(--rounds "$rounds" --out "$out" --quiet)
[[ -n ${ONLY:-} ]] && run_flags+=(--only "$ONLY")
[[ -n ${DURATION:-} ]] && run_flags+=(--duration "$DURATION")
[[ -n ${WARMUP:-} ]] && run_flags+=(--warmup "$WARMUP")
# A run that breached a scenario threshold (exit 1) still wrote its report:
# compare it, then fail. Anything else is final.
run_status=0
"$bin" run "$scenario" "${run_flags[@]}" || run_status=$?
if [[ $run_status -gt 1 ]]; then
  exit "$run_status"
fi

# Word splitting of COMPARE_FLAGS is intended: it holds several flags.
# shellcheck disable=SC2206
flags=(${COMPARE_FLAGS:-})
status=0
"$bin" compare "${baseline_reports[@]}" "$out/report.json" --format markdown "${flags[@]}" \
  >"$markdown" || status=$?
if [[ $status -le 1 ]]; then
  "$bin" compare "${baseline_reports[@]}" "$out/report.json" "${flags[@]}" 2>/dev/null || true
else
  # Bad or incompatible reports: the error is on stderr already; say it in
  # the comment too.
  printf '### poolbench compare\n\nThe comparison could not be made (exit %s): see the job log.\n' \
    "$status" >"$markdown"
fi
if [[ $status -eq 0 ]]; then
  status=$run_status
fi
exit "$status"
