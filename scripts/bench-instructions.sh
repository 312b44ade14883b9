#!/usr/bin/env bash
# User-space instructions per pooled request, poolbench against pgbench, by
# callgrind: deterministic where wall-clock rounds on a shared machine are
# not, so a small change to the request path can be measured before/after.
# Each tool runs twice under valgrind (SHORT and LONG seconds) on one
# embedded server of each engine; the cost per request is the difference in instructions
# over the difference in requests, so start-up (TLS, SCRAM) cancels out.
# Per-second work (the timeline's histograms) does not quite cancel: under
# valgrind a second holds ~20x fewer requests than at full speed, so it
# weighs ~20x more per request than it does for real (a few thousand
# instructions here).
#   PostgreSQL, pooled SELECT 1 (SCRAM + TLS): poolbench pool-8, 8 workers
#     vs  pgbench -M prepared -c 8 -j NPROC
#   MariaDB, sysbench's oltp_point_select on its table (TLS off, prepared,
#     scripts/lib/mariadb.sh): poolbench pool-8, 8 workers  vs  sysbench
#     --threads=8 --db-ps-mode=auto (LuaJIT and libmariadb included)
# Usage: scripts/bench-instructions.sh [SHORT] [LONG]   (defaults: 5 15)
# BASELINE_BIN=path/to/other/poolbench measures that build too;
# POOLBENCH_BIN=path measures that build instead of building one.
# ENGINES (default "postgres mariadb") picks the engines.
# Needs valgrind (apt-get install valgrind) and jq; sysbench for MariaDB.
set -euo pipefail
cd "$(dirname "$0")/.."
short=${1:-5}
long=${2:-15}
threads=$(nproc)
engines=${ENGINES:-postgres mariadb}

command -v valgrind >/dev/null || { echo "valgrind not found (apt-get install valgrind)" >&2; exit 3; }
command -v jq >/dev/null || { echo "jq not found (apt-get install jq)" >&2; exit 3; }
# The binary itself, not Debian's wrapper script (valgrind would measure perl).
pgbench_bin=$(ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | tail -n1)
[ -x "$pgbench_bin" ] || { echo "pgbench not found (apt-get install postgresql-client)" >&2; exit 3; }
if [ -z "${POOLBENCH_BIN:-}" ]; then
  cargo build --release --quiet
fi
bin=${POOLBENCH_BIN:-${CARGO_TARGET_DIR:-target}/release/poolbench}
. scripts/lib/server.sh
. scripts/lib/mariadb.sh
cg=$(mktemp -d)
trap 'rm -rf "$cg"' EXIT

# instructions CMD...: runs CMD under callgrind, prints its total.
instructions() {
  valgrind --tool=callgrind --callgrind-out-file="$cg/cg.out" "$@" >"$cg/out" 2>"$cg/err"
  sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$cg/err"
}

# poolbench_point BIN SECONDS SCENARIO DSN: "INSTRUCTIONS REQUESTS"
poolbench_point() {
  local b=$1 s=$2 n
  n=$(instructions "$b" run "$3" --dsn "$4" --quiet --duration "${s}s" \
        --warmup 0s --only pool-8 --concurrency 8 --no-html --out "$cg/pb" --force)
  echo "$n $(jq '.strategies[0].requests' "$cg/pb/report.json")"
}

pgbench_point() {
  local s=$1 n
  n=$(instructions "$pgbench_bin" -n -M prepared -c 8 -j "$threads" -T "$s" -f "$work/select1.sql")
  echo "$n $(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$cg/out")"
}

sysbench_point() {
  local s=$1 n
  n=$(instructions "${sb[@]}" --time="$s" --report-interval=0 run)
  echo "$n $(awk '/^ *read:/ {print $2; exit}' "$cg/out")"
}

# per_request "I1 N1" "I2 N2"
per_request() {
  read -r i1 n1 <<<"$1"; read -r i2 n2 <<<"$2"
  awk -v i1="$i1" -v n1="$n1" -v i2="$i2" -v n2="$n2" 'BEGIN {printf "%.0f", (i2 - i1) / (n2 - n1)}'
}

row() { printf '| %-30s | %20s |\n' "$1" "$2"; }
header() { row "$1" "instructions/request"; printf '|%s|%s|\n' "--------------------------------" "----------------------"; }
# poolbench_rows SCENARIO DSN: poolbench's row (and the baseline's); sets $pb.
poolbench_rows() {
  pb=$(per_request "$(poolbench_point "$bin" "$short" "$1" "$2")" "$(poolbench_point "$bin" "$long" "$1" "$2")")
  row "poolbench" "$pb"
  if [ -n "${BASELINE_BIN:-}" ]; then
    base=$(per_request "$(poolbench_point "$BASELINE_BIN" "$short" "$1" "$2")" \
        "$(poolbench_point "$BASELINE_BIN" "$long" "$1" "$2")")
    row "baseline" "$base"
  fi
}

if [[ " $engines " == *" postgres "* ]]; then
  start_server
  also_on_exit 'rm -rf "$cg"'
  for_pgbench
  header "pooled SELECT 1 (PostgreSQL)"
  pg=$(per_request "$(pgbench_point "$short")" "$(pgbench_point "$long")")
  row "pgbench -M prepared" "$pg"
  poolbench_rows scenarios/select1.toml "$dsn"
  awk -v a="$pb" -v b="$pg" 'BEGIN {printf "poolbench / pgbench: %.2f\n\n", a / b}'
fi

if [[ " $engines " == *" mariadb "* ]]; then
  command -v sysbench >/dev/null || { echo "sysbench not found (apt-get install --no-install-recommends sysbench)" >&2; exit 3; }
  start_mariadb
  echo "$(mariadb_version), TLS off, 8 clients"
  header "point select (MariaDB)"
  sy=$(per_request "$(sysbench_point "$short")" "$(sysbench_point "$long")")
  row "sysbench oltp_point_select" "$sy"
  poolbench_rows "$mwork/point-select.toml" "$mysql_dsn"
  awk -v a="$pb" -v b="$sy" 'BEGIN {printf "poolbench / sysbench: %.2f\n", a / b}'
fi
