#!/usr/bin/env bash
# How often the regression gate cries wolf, and how often it misses a real
# slowdown, on this machine, with the gate docs/ci.md recommends: a
# baseline of BASE_RUNS runs (default 3) of the unchanged build and a
# candidate of CAND_RUNS runs (default 3), alternated, as a CI job does
# that builds both commits, and `poolbench compare BASE... CANDIDATE...
# --candidate-runs CAND_RUNS` with the recommended thresholds.
#
# First the injected slowdown is found (unless SLOW_SQL names it): on one
# embedded server, short runs of the unchanged query alternated with runs
# of SLOW_FAMILY at each K of SLOW_KS; the K whose slowdown is SLOWDOWN
# percent (default 15) is interpolated from the medians, since how much a
# query's extra work costs depends on the machine and on what else it runs.
# Then N times: a baseline of BASE_RUNS unchanged runs, a candidate of
# CAND_RUNS unchanged runs and one of CAND_RUNS runs of the slowed query,
# alternated run by run (as a CI job alternates the base commit's build
# and the candidate's), each candidate compared with that baseline.
# Prints each verdict, the false alarms (unchanged candidates that
# failed), the misses (slowed candidates that passed), the slowdown the
# slowed runs actually showed (median slowed against median unchanged, and
# each slowed run against the unchanged rerun beside it: the slowdown the
# misses are counted at), and what
# compare's power line and the spread between runs predict for N runs.
#
# Usage: scripts/gate-calibration.sh N   (N = 0: find the slowed query only)
# Environment (all optional):
#   SCENARIO=scenarios/select1.toml   the scenario (its first query is slowed)
#   ONLY=pool-8        the strategy gated (a pooled one: a 15% slower query
#                      is 15% of a pooled request, not of a fresh one, whose
#                      time is the connection's)
#   ROUNDS=4 DURATION=2s WARMUP=1s    each run's rounds, as CI would run them
#   BASE_RUNS=3        the runs a baseline pools
#   CAND_RUNS=3        the runs a candidate pools
#   GATES="--max-regression throughput=5% --max-regression p99=25%"
#   SLOWDOWN=15        the throughput slowdown to inject, percent
#   SLOW_FAMILY="SELECT count(*) FROM generate_series(1, {K})"
#   SLOW_KS="1 8 16 32"  the K tried ({K} is replaced in SLOW_FAMILY)
#   TUNE_PASSES=4      pairs of short runs per K
#   SLOW_SQL=...       the slowed runs' query, given: no search
# Each run of the calibration starts its own embedded server, as a CI job
# does. Release build.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $# -eq 1 && $1 =~ ^[0-9]+$ ]] || { sed -n '/^# Usage:/p' "$0" | sed 's/^# //' >&2; exit 2; }
n=$1
scenario=${SCENARIO:-scenarios/select1.toml}
only=${ONLY:-pool-8}
rounds=${ROUNDS:-4}
duration=${DURATION:-2s}
warmup=${WARMUP:-1s}
base_runs=${BASE_RUNS:-3}
[[ $base_runs =~ ^[1-9][0-9]*$ ]] || { echo "BASE_RUNS must be a positive integer" >&2; exit 2; }
cand_runs=${CAND_RUNS:-3}
[[ $cand_runs =~ ^[1-9][0-9]*$ ]] || { echo "CAND_RUNS must be a positive integer" >&2; exit 2; }
read -r -a gates <<<"${GATES:---max-regression throughput=5% --max-regression p99=25%}"
target=${SLOWDOWN:-15}
family=${SLOW_FAMILY:-"SELECT count(*) FROM generate_series(1, {K})"}
read -r -a ks <<<"${SLOW_KS:-1 8 16 32}"
passes=${TUNE_PASSES:-4}
slow_sql=${SLOW_SQL:-}

command -v jq >/dev/null || { echo "jq not found (apt-get install jq)" >&2; exit 3; }
cargo build --release --quiet || exit 3
bin=${CARGO_TARGET_DIR:-target}/release/poolbench
work=$(mktemp -d)
server_pid=""
trap '[[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null; rm -rf "$work"' EXIT
started=$SECONDS

# slowed SQL OUT: the scenario with its first query's SQL replaced.
slowed() {
  awk -v sql="$1" '
    !done && /^sql *= */ { gsub(/"/, "\\\"", sql); print "sql = \"" sql "\""; done = 1; next }
    { print }' "$scenario" >"$2"
  if cmp -s "$scenario" "$2"; then echo "$scenario has no sql = line to slow down" >&2; exit 2; fi
}

# rps RUN: the gated strategy's throughput, mean of its rounds (one round:
# its requests over its measured seconds).
rps() { jq -r --arg s "$only" '.strategies[] | select(.name == $s) | if (.rounds // []) == [] then .requests / .measured_s else [.rounds[].throughput_rps] | add / length end | floor' "$1/report.json"; }

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "nan"; else print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# The slowed query: SLOW_SQL, or SLOW_FAMILY at the K measured to slow the
# gated strategy by SLOWDOWN percent.
if [[ -z $slow_sql ]]; then
  [[ $family == *"{K}"* ]] || { echo "SLOW_FAMILY has no {K} to vary" >&2; exit 2; }
  [[ $passes =~ ^[1-9][0-9]*$ ]] || { echo "TUNE_PASSES must be a positive integer" >&2; exit 2; }
  "$bin" server >"$work/server.env" 2>"$work/server.log" &
  server_pid=$!
  for _ in $(seq 300); do grep -q '^PGSSLMODE=' "$work/server.env" 2>/dev/null && break; sleep 0.1; done
  grep -q '^PGSSLMODE=' "$work/server.env" || { cat "$work/server.log" >&2; exit 3; }
  dsn=$(head -n1 "$work/server.env")
  tune() { # tune SCENARIO: one short run on the shared server, its req/s
    "$bin" run "$1" --dsn "$dsn" --only "$only" --duration 2s --warmup 1s --quiet --no-html \
        --out "$work/tune" --force >"$work/run.log" 2>&1 || { cat "$work/run.log" >&2; exit 3; }
    rps "$work/tune"
  }
  echo "finding the slowed query: $family, K in ${ks[*]}, for a ${target}% slowdown ($passes pairs of 2 s runs per K, one server)"
  : >"$work/curve"
  for k in "${ks[@]}"; do
    [[ $k =~ ^[0-9]+$ ]] || { echo "SLOW_KS: '$k' is not a whole number" >&2; exit 2; }
    slowed "${family//"{K}"/$k}" "$work/k-$k.toml"
  done
  for p in $(seq "$passes"); do
    # Each K right after an unchanged run: drift hits both alike.
    for k in "${ks[@]}"; do
      a=$(tune "$scenario")
      b=$(tune "$work/k-$k.toml")
      awk -v k="$k" -v a="$a" -v b="$b" 'BEGIN { printf "%d %.2f\n", k, (b / a - 1) * -100 }' >>"$work/curve"
    done
  done
  : >"$work/medians"
  for k in "${ks[@]}"; do
    m=$(awk -v k="$k" '$1 == k { print $2 }' "$work/curve" | median)
    echo "$k $m" >>"$work/medians"
    printf '  K = %-5s slowdown %5.1f%% (median of %s: %s)\n' "$k" "$m" "$passes" \
        "$(awk -v k="$k" '$1 == k { printf "%s%.1f", sep, $2; sep = ", " }' "$work/curve")"
  done
  kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null || true
  server_pid=""
  # The K of the target on the straight line fitted (least squares) to the
  # medians: the extra work grows with K, and a line through every K
  # weighs less on one noisy median than the two K around the target
  # would. Within the K tried; without a rising line, the K whose median
  # is nearest the target.
  k=$(awk -v t="$target" '
    { k[NR] = $1; s[NR] = $2; sk += $1; ss += $2; skk += $1 * $1; sks += $1 * $2
      if (NR == 1 || $1 < lo) lo = $1; if (NR == 1 || $1 > hi) hi = $1 }
    END {
      d = NR * skk - sk * sk; b = d > 0 ? (NR * sks - sk * ss) / d : 0; a = (ss - b * sk) / NR
      if (b > 0) { x = (t - a) / b; if (x < lo) x = lo; if (x > hi) x = hi }
      else { best = 1; for (i = 2; i <= NR; i++) if ((s[i] - t) ^ 2 < (s[best] - t) ^ 2) best = i; x = k[best] }
      printf "%d\n", x + 0.5
      printf "  fitted: slowdown %.1f%% + %.2f%% per K\n", a, b > "/dev/stderr"
    }' "$work/medians")
  slow_sql=${family//"{K}"/$k}
  echo "slowed query: $slow_sql"
  awk -v t="$target" 'NR == 1 && $2 > t + 2 { print "warning: the smallest K already slows by more than " t + 2 "%: set SLOW_FAMILY to a lighter query" }
    { last = $2 } END { if (last < t - 2) print "warning: the largest K slows by less than " t - 2 "%: add a larger K to SLOW_KS" }' \
    "$work/medians" >&2
  echo "(the slowdown the calibration below measures is the one its misses are counted at)"
fi
[[ $n -eq 0 ]] && exit 0

slow=$work/slow.toml
slowed "$slow_sql" "$slow"

run() { # run SCENARIO OUT
  "$bin" run "$1" --only "$only" --rounds "$rounds" --duration "$duration" \
      --warmup "$warmup" --quiet --no-html --out "$2" >"$work/run.log" 2>&1 \
    || { cat "$work/run.log" >&2; exit 3; }
}

# judge NAME [FLAGS...]: compares the runs in cands (the candidate) with
# the runs in base (the baseline); prints one line and appends "code
# throughput_change p99_change throughput_detectable throughput_threshold
# rounds_for" to $work/NAME.
judge() {
  local name=$1 code=0
  shift
  "$bin" compare "${base[@]}" "${cands[@]}" --candidate-runs "${#cands[@]}" "${gates[@]}" "$@" \
      --format json >"$work/cmp.json" 2>"$work/cmp.err" || code=$?
  if [[ $code -ge 2 ]]; then cat "$work/cmp.err" >&2; exit 3; fi
  local metric='.strategies[0].metrics[] | select(.metric == $m)'
  jq -r --arg m throughput --arg code "$code" \
      '[$code, (.strategies[0].metrics[] | select(.metric == "throughput") | .change_pct, (.detectable_change_pct // "nan"), (.threshold // "nan"), (.rounds_for_threshold // "nan")), (.strategies[0].metrics[] | select(.metric == "p99") | .change_pct)] | "\(.[0]) \(.[1]) \(.[5]) \(.[2]) \(.[3]) \(.[4])"' \
      "$work/cmp.json" >>"$work/$name"
  printf '%-10s exit %s  throughput %+6.1f%% (%s)  p99 %+6.1f%% (%s)\n' "$name" "$code" \
      "$(jq -r --arg m throughput "$metric | .change_pct" "$work/cmp.json")" \
      "$(jq -r --arg m throughput "$metric | \"CI \\(.ci_low | floor)..\\(.ci_high | ceil)%, \\(.verdict)\"" "$work/cmp.json")" \
      "$(jq -r --arg m p99 "$metric | .change_pct" "$work/cmp.json")" \
      "$(jq -r --arg m p99 "$metric | \"CI \\(.ci_low | floor)..\\(.ci_high | ceil)%, \\(.verdict)\"" "$work/cmp.json")"
}

echo "gates: ${gates[*]}; $only, $rounds rounds of $duration (warm-up $warmup); baseline: $base_runs unchanged runs, candidate: $cand_runs runs, alternated; slowed: $slow_sql"
: >"$work/rps_same"
: >"$work/rps_slowed"
: >"$work/pairs"
: >"$work/same"
: >"$work/slowed"
for i in $(seq "$n"); do
  # One baseline and two candidates, an unchanged one and a slowed one,
  # alternated run by run as a CI job alternates its two builds: so that
  # drift on a shared machine hits all three alike. Which candidate runs
  # right after the baseline's run alternates from one i to the next.
  base=() same=() slowed=()
  for j in $(seq $(( base_runs > cand_runs ? base_runs : cand_runs ))); do
    if [[ $j -le $base_runs ]]; then
      run "$scenario" "$work/base-$i-$j"
      base+=("$work/base-$i-$j")
    fi
    [[ $j -le $cand_runs ]] || continue
    for kind in $( (( i % 2 )) && echo "same slowed" || echo "slowed same"); do
      if [[ $kind == same ]]; then
        run "$scenario" "$work/same-$i-$j"
        a=$(rps "$work/same-$i-$j")
        echo "$a" >>"$work/rps_same"
        same+=("$work/same-$i-$j")
      else
        run "$slow" "$work/slowed-$i-$j"
        b=$(rps "$work/slowed-$i-$j")
        echo "$b" >>"$work/rps_slowed"
        slowed+=("$work/slowed-$i-$j")
      fi
    done
    awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f\n", (b / a - 1) * 100 }' >>"$work/pairs"
  done
  [[ $i -eq 1 ]] && echo "placement: $(jq -r '.conditions.placement // "unrecorded"' "${base[0]}/report.json")"
  cands=("${same[@]}")
  judge same
  # The slowed scenario is another file (another sha256): that difference
  # is the injected change, so it is allowed.
  cands=("${slowed[@]}")
  judge slowed --allow-different
  rm -rf "${base[@]}" "${same[@]}" "${slowed[@]}"
done
false_alarms=$(awk '$1 == 1' "$work/same" | wc -l)
misses=$(awk '$1 == 0' "$work/slowed" | wc -l)
mean() { awk -v c="$2" '{ s += $c } END { printf "%+.1f", s / NR }' "$work/$1"; }
spread() { sort -g "$1" | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.3f (%d .. %d)", hi / lo, lo, hi }'; }
# quartiles FILE: "lower quartile .. upper quartile" and "min .. max".
quartiles() { sort -g "$1" | awk '{ a[NR] = $1 } END { q = int((NR + 2) / 4); if (q < 1) q = 1; printf "middle half %+.1f .. %+.1f%%, all %+.1f .. %+.1f%%", a[q], a[NR + 1 - q], a[1], a[NR] }'; }
echo "false alarms: $false_alarms of $n unchanged candidates (mean change: throughput $(mean same 2)%, p99 $(mean same 3)%)"
echo "misses: $misses of $n slowed candidates (mean change: throughput $(mean slowed 2)%, p99 $(mean slowed 3)%)"
ms=$(median <"$work/rps_slowed")
mu=$(median <"$work/rps_same")
measured=$(awk -v a="$ms" -v b="$mu" 'BEGIN { printf "%+.1f", (a / b - 1) * 100 }')
echo "the injected slowdown: median throughput of the slowed runs $ms req/s against $mu for the unchanged reruns (${measured}%; target -${target}%)"
echo "  each slowed run against the unchanged rerun just before it: median $(median <"$work/pairs" | awk '{ printf "%+.1f", $1 }')%, $(quartiles "$work/pairs")"
echo "run-to-run spread of the unchanged reruns' throughput, max/min: $(spread "$work/rps_same")"
# What the power line and the spread between runs predict. A throughput
# change fails when its whole interval lies past the threshold: about when
# the change is past the threshold by compare's detectable margin. The
# unchanged candidates' changes against their baseline spread as runs do
# (SD sd_d = sd_run * sqrt(1/BASE_RUNS + 1/CAND_RUNS)); with changes normal around
# their mean, the expected false alarms and misses in N follow, and, for a
# baseline of B runs and a candidate of C runs pooled,
# sd_run * sqrt(1/B + 1/C) gives what such a gate would do.
awk -v n="$n" -v t="$target" -v br="$base_runs" -v cr="$cand_runs" -v fa="$false_alarms" -v mi="$misses" '
  function phi(x,   z, u, p) {
    z = x < 0 ? -x : x; u = 1 / (1 + 0.2316419 * z)
    p = 1 - exp(-z * z / 2) / 2.5066282746 * u * (0.319381530 + u * (-0.356563782 + u * (1.781477937 + u * (-1.821255978 + u * 1.330274429))))
    return x < 0 ? 1 - p : p
  }
  function med(a, k,   i, j, x) {
    for (i = 2; i <= k; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
    return (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
  }
  FILENAME ~ /same$/ { ns++; sc += $2; sc2 += $2 * $2; h[ns] = $4; thr = $5; r[ns] = $6 }
  FILENAME ~ /slowed$/ { nw++; wc += $2; wc2 += $2 * $2 }
  END {
    if (ns < 2) exit
    m = sc / ns; sd = sqrt((sc2 - ns * m * m) / (ns - 1))
    mw = wc / nw; sdw = nw > 1 ? sqrt((wc2 - nw * mw * mw) / (nw - 1)) : 0
    hm = med(h, ns); rm = med(r, ns); b = -thr + hm
    printf "compare'\''s power line (median of the unchanged comparisons): throughput +-%.1f%% detectable, %d rounds for %g%%: a change fails past about %.1f%%\n", hm, rm, thr, -b
    printf "the unchanged candidates'\'' changes: mean %+.1f%%, SD %.1f%% (between runs, which the rounds of one run do not see: %.1f%% a run)\n", m, sd, sd / sqrt(1 / cr + 1 / br)
    printf "predicted in %d (normal model): false alarms %.1f (measured %d); misses at the measured slowdown (mean %+.1f%%, SD %.1f%%) %.1f (measured %d), at -%g%% %.1f\n", \
      n, n * phi((-b - m) / sd), fa, mw, sdw, n * (1 - phi((-b - mw) / (sdw > 0 ? sdw : sd))), mi, t, n * (1 - phi((-b + t) / sd))
    run = sd / sqrt(1 / cr + 1 / br)
    printf "predicted for other gates, per %d unchanged / -%g%% runs (threshold %g%%, margin %.1f%%):", n, t, thr, hm
    split("3 1,5 1,3 2,3 3,5 3,5 5", g, ",")
    for (i = 1; i <= 6; i++) {
      split(g[i], bc, " "); d = run * sqrt(1 / bc[1] + 1 / bc[2])
      printf "%s %d baseline + %d candidate runs: %.1f false alarms, %.1f misses", (i > 1 ? ";" : ""), bc[1], bc[2], n * phi((-b - m) / d), n * (1 - phi((-b + t) / d))
    }
    print ""
  }' "$work/same" "$work/slowed"
echo "targets (issue 31, for N = 20 and a 15% slowdown): at most 1 false alarm in 20, at least 19 of 20 caught"
echo "took $(( (SECONDS - started) / 60 )) min $(( (SECONDS - started) % 60 )) s"
