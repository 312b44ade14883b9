#!/usr/bin/env bash
# Measures what the link emulator itself costs: the pooled SELECT 1 of
# scripts/bench-vs-pgbench.sh (8 workers, pool of 8, SCRAM + TLS, release
# build) with poolbench connecting directly, and with every connection
# relayed by the emulator at --rtt 0ms, alternating round by round on one
# embedded server so drift on a shared machine hits both alike.
# Usage: scripts/bench-link-overhead.sh [SECONDS] [ROUNDS]   (defaults: 10 5)
# Prints the median throughput and total p50 of each, and their difference.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
rounds=${2:-5}

command -v jq >/dev/null || { echo "jq not found (apt-get install jq)" >&2; exit 3; }
cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-target}/release/poolbench
. scripts/lib/server.sh
start_server

direct_rps=(); direct_p50=(); linked_rps=(); linked_p50=()
measure() { # NAME [FLAGS...]: one run of the pool strategy; prints "rps p50_us"
  local name=$1; shift
  "$bin" run scenarios/select1.toml --dsn "$dsn" --only pool-8 --quiet \
      --duration "${seconds}s" --out "$work/$name" "$@" >/dev/null
  jq -r '.strategies[0] | "\(.throughput_rps) \(.phases.total.p50_us)"' "$work/$name/report.json"
}
for r in $(seq "$rounds"); do
  # Alternate which goes first, so neither always follows the other.
  if (( r % 2 )); then order="direct linked"; else order="linked direct"; fi
  for which in $order; do
    if [ "$which" = direct ]; then
      read -r rps p50 < <(measure "direct-$r")
      direct_rps+=("$rps"); direct_p50+=("$p50")
    else
      read -r rps p50 < <(measure "linked-$r" --rtt 0ms)
      linked_rps+=("$rps"); linked_p50+=("$p50")
    fi
  done
  echo "round $r: direct ${direct_rps[-1]} req/s p50 ${direct_p50[-1]} µs; " \
       "--rtt 0ms ${linked_rps[-1]} req/s p50 ${linked_p50[-1]} µs"
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
a=$(median "${direct_rps[@]}"); b=$(median "${linked_rps[@]}")
c=$(median "${direct_p50[@]}"); d=$(median "${linked_p50[@]}")
echo
echo "pooled SELECT 1, 8 workers, ${seconds}s x $rounds rounds, $(grep -o '(.*)' "$work/server.log" | head -n1), medians"
printf '%-28s %12s %12s %12s  %s\n' "measure" "direct" "--rtt 0ms" "change" "target"
printf '%-28s %12s %12s %12s  %s\n' "throughput (req/s)" "$a" "$b" \
    "$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%+.1f%%", (b/a-1)*100}')" ">= -10%"
printf '%-28s %12s %12s %12s  %s\n' "total p50 (µs)" "$c" "$d" \
    "$(awk -v c="$c" -v d="$d" 'BEGIN {printf "%+d µs", d-c}')" "<= +50 µs"
