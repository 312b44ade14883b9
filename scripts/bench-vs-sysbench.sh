#!/usr/bin/env bash
# Measures poolbench against sysbench oltp_point_select on the same embedded
# MariaDB (`poolbench server --engine mariadb --no-tls`: TLS off for both),
# the same table (sysbench's sbtest1, made by `sysbench prepare`), the same
# statement (SELECT c FROM sbtest1 WHERE id = ?, ids uniform over the
# table, prepared: sysbench --db-ps-mode=auto, poolbench's statement cache),
# the same 8 clients (sysbench --threads=8; poolbench pool-8, 8 workers on
# one thread per CPU). The tools alternate every round so drift on a shared
# machine hits both; prints each round and the medians of throughput and
# client CPU per request (user + system of the whole process, from its own
# rusage via /usr/bin/time: both include connecting and start-up, neither
# has a warm-up), the machine's cross-CPU interrupts per request, and
# where poolbench's server threads ran (report.json's placement: "pinned"
# on its own server here, each on its client thread's CPU; every thread
# is given all CPUs again after each poolbench round).
# Usage: scripts/bench-vs-sysbench.sh [SECONDS] [ROUNDS]   (defaults: 10 5)
# POOLBENCH_BIN=path uses that build instead of building target/release.
# BASELINE_BIN=path runs another build too, every round after poolbench's
# (same scenario and server), for a before/after.
# TABLE_SIZE (default 10000) and CLIENTS (default 8) change the work.
# Run it at normal priority (not under nice): the server shares the CPUs.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
rounds=${2:-5}
clients=${CLIENTS:-8}
table_size=${TABLE_SIZE:-10000}

command -v sysbench >/dev/null || { echo "sysbench not found (apt-get install --no-install-recommends sysbench)" >&2; exit 3; }
command -v jq >/dev/null || { echo "jq not found (apt-get install jq)" >&2; exit 3; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time not found (apt-get install time)" >&2; exit 3; }
if [ -z "${POOLBENCH_BIN:-}" ]; then
  cargo build --release --quiet
fi
bin=${POOLBENCH_BIN:-${CARGO_TARGET_DIR:-target}/release/poolbench}

. scripts/lib/mariadb.sh
start_mariadb
work=$mwork
dsn=$mysql_dsn

# timed OUT CMD...: runs CMD, its stdout+stderr to OUT, and prints the CPU
# seconds (user + system) of the process.
timed() {
  local out=$1; shift
  /usr/bin/time -f '%U %S' -o "$work/time" "$@" >"$out" 2>&1
  awk '{printf "%.3f", $1 + $2}' "$work/time"
}

# The machine's rescheduling and function-call interrupts so far, all CPUs:
# per request, how often a wake-up had to reach another CPU (a round's
# placement of client and server threads, as in bench-vs-pgbench.sh).
ipis() { awk '/^ *(RES|CAL):/ {for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i} END {print s + 0}' /proc/interrupts; }

declare -A rps cpu ipi
# record NAME REQUESTS SECONDS CPU_SECONDS INTERRUPTS
record() {
  rps[$1]+="$(awk -v n="$2" -v s="$3" 'BEGIN {printf "%.1f", n / s}') "
  cpu[$1]+="$(awk -v c="$4" -v n="$2" 'BEGIN {printf "%.2f", c * 1e6 / n}') "
  ipi[$1]+="$(awk -v d="$5" -v n="$2" 'BEGIN {printf "%.3f", d / n}') "
}
last() { awk '{print $NF}' <<<"$1"; }
# poolbench keeps each connection thread of its own server on the CPU of
# the worker thread that opened the connection (`placement`, as it does a
# PostgreSQL backend), and MariaDB keeps a closed connection's thread for
# the next connection: after each poolbench round every thread of the
# server may run on every CPU again, so the next round of either tool
# starts from a server placed by the kernel alone.
server=$(pgrep -P "$mysql_pid" -x mariadbd || pgrep -f "mariadbd --no-defaults.*$mwork" | head -n1 || true)
unpin_server() {
  [ -n "$server" ] && taskset -a -p -c "$(awk '/^Cpus_allowed_list/ {print $2}' /proc/self/status)" "$server" >/dev/null 2>&1 || true
}
# pooled NAME BIN: one round of BIN's pool on the point select, recorded
# as NAME, and where its server threads ran (report.json's
# conditions.placement: "pinned" once poolbench pinned them).
declare -A placed
pooled() {
  local c i
  i=$(ipis)
  c=$(timed "$work/$1.log" "$2" run "$work/point-select.toml" --dsn "$dsn" --quiet \
      --duration "${seconds}s" --warmup 0s --no-html --out "$work/$1" --force)
  unpin_server
  record "$1" "$(jq '.strategies[0].requests' "$work/$1/report.json")" \
      "$(jq '.strategies[0].measured_s' "$work/$1/report.json")" "$c" "$(( $(ipis) - i ))"
  placed[$1]=$(jq -r '.conditions.placement // "-"' "$work/$1/report.json")
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a/b; else printf "-"}'; }

for r in $(seq "$rounds"); do
  i=$(ipis)
  c=$(timed "$work/sb.out" "${sb[@]}" --time="$seconds" --report-interval=0 run)
  n=$(awk '/^ *read:/ {print $2; exit}' "$work/sb.out")
  s=$(awk '/^ *total time:/ {sub("s", "", $3); print $3; exit}' "$work/sb.out")
  [ -n "$n" ] || { cat "$work/sb.out" >&2; exit 1; }
  record sysbench "$n" "$s" "$c" "$(( $(ipis) - i ))"

  pooled poolbench "$bin"
  baseline=
  if [ -n "${BASELINE_BIN:-}" ]; then
    pooled baseline "$BASELINE_BIN"
    baseline=$(printf '; baseline %s req/s %s us CPU/req' "$(last "${rps[baseline]}")" "$(last "${cpu[baseline]}")")
  fi
  printf 'round %s: sysbench %s req/s %s us CPU/req; poolbench %s req/s %s us CPU/req; %sx (cross-CPU interrupts/request %s, %s; server threads %s)%s\n' "$r" \
      "$(last "${rps[sysbench]}")" "$(last "${cpu[sysbench]}")" \
      "$(last "${rps[poolbench]}")" "$(last "${cpu[poolbench]}")" \
      "$(ratio "$(last "${rps[poolbench]}")" "$(last "${rps[sysbench]}")")" \
      "$(last "${ipi[sysbench]}")" "$(last "${ipi[poolbench]}")" "${placed[poolbench]}" "$baseline"
done

median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }
row() { # LABEL POOLBENCH SYSBENCH TARGET
  printf '| %-34s | %10s | %10s | %6s | %-7s |\n' "$1" "$2" "$3" "$(ratio "$2" "$3")" "$4"
}
echo
echo "oltp_point_select, ${seconds}s x $rounds rounds (medians), $(mariadb_version), TLS off, $clients clients, $(nproc) CPUs"
printf '| %-34s | %10s | %10s | %6s | %-7s |\n' "measure" "poolbench" "sysbench" "ratio" "target"
printf '|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..36})" "------------" "------------" "--------" "---------"
row "req/s (pool-$clients vs --threads=$clients)" "$(median "${rps[poolbench]}")" "$(median "${rps[sysbench]}")" ">= 1.00"
row "client CPU us/request" "$(median "${cpu[poolbench]}")" "$(median "${cpu[sysbench]}")" "<= 1.00"
row "cross-CPU interrupts/request" "$(median "${ipi[poolbench]}")" "$(median "${ipi[sysbench]}")" ""
if [ -n "${BASELINE_BIN:-}" ]; then
  row "baseline build req/s" "$(median "${rps[baseline]}")" "$(median "${rps[sysbench]}")" ""
  row "baseline build CPU us/request" "$(median "${cpu[baseline]}")" "$(median "${cpu[sysbench]}")" ""
fi
read -r -a p <<<"${rps[poolbench]}"
read -r -a q <<<"${rps[sysbench]}"
behind=0
for k in "${!p[@]}"; do
  awk -v a="${p[$k]}" -v b="${q[$k]}" 'BEGIN {exit !(a < b)}' && behind=$((behind + 1))
done
echo "rounds in which poolbench was slower than sysbench: $behind of $rounds"
