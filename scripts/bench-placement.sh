#!/usr/bin/env bash
# Where the kernel runs each server backend, against the client thread that
# sends it its queries: pooled SELECT 1, poolbench pool-8 (8 workers) and
# pgbench -M prepared -c 8 -j NPROC, alternating, on one embedded server.
# For each round, 0.5 s of scheduler events in the middle of a run
# (`perf record -e sched:sched_waking,sched:sched_switch -a`) give:
#   - the share of the client's wake-ups of its backends that stay on the
#     client's CPU (the rest reach the other CPU: an interrupt each);
#   - each client thread's CPU and the CPUs its four backends ran on;
#   - the backends that ran on another CPU than their client ("away"), a
#     backend being a server process its client woke 100 times or more.
# docs/performance.md, "Where the time goes", explains what this shows: the
# throughput of a round follows the number of backends away.
# Usage: scripts/bench-placement.sh [ROUNDS]   (default 3)
# Needs perf (apt-get install linux-perf), pgbench and jq; run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
seconds=7
threads=$(nproc)

command -v perf >/dev/null || { echo "perf not found (apt-get install linux-perf)" >&2; exit 3; }
command -v pgbench >/dev/null || { echo "pgbench not found (apt-get install postgresql-client)" >&2; exit 3; }
command -v jq >/dev/null || { echo "jq not found (apt-get install jq)" >&2; exit 3; }
cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-target}/release/poolbench
. scripts/lib/server.sh
start_server
for_pgbench

# placement: reads `perf script -F comm,tid,cpu,event,trace` and prints the
# round's summary line and its placement.
placement() {
  awk '
    { cpu = $3; gsub(/[][]/, "", cpu); cpu += 0 }
    function field(name,   v) { if (!match($0, name "=[^ ]+")) return ""; v = substr($0, RSTART + length(name) + 1, RLENGTH - length(name) - 1); return v }
    /sched_switch/ {
      comm = field("next_comm"); tid = field("next_pid")
      if (comm ~ /^(pgbench|poolbench-[0-9]+|postgres)$/) { name[tid] = comm; runs[tid, cpu]++; seen[tid] = 1 }
    }
    /sched_waking/ {
      if ($1 ~ /^(pgbench|poolbench-[0-9]+)$/ && field("comm") == "postgres") {
        woken[field("pid")]++; owner[field("pid")] = $2; client[$2] = 1
        if (cpu == field("target_cpu") + 0) local++; else away++
      }
    }
    function home(tid,   c, best, n) { best = -1; n = -1; for (c = 0; c < 64; c++) if ((tid, c) in runs && runs[tid, c] > n) { n = runs[tid, c]; best = c }; return best }
    END {
      # A backend is one its client woke at least 100 times in the window
      # (not a server process woken once in passing).
      for (b in owner) if (woken[b] < 100) delete owner[b]
      moved = 0
      for (b in owner) if (b in seen && owner[b] in seen && home(b) != home(owner[b])) moved++
      printf "wake-ups on the client'\''s CPU %.1f%%, backends away %d", 100 * local / (local + away + (local + away == 0)), moved
      for (t in client) {
        line = ""
        for (b in owner) if (owner[b] == t && b in seen) line = line " " home(b)
        printf "; %s on cpu%d, its backends on cpus%s", name[t], home(t), line
      }
      print ""
    }'
}

for r in $(seq "$rounds"); do
  for tool in pgbench poolbench; do
    rm -rf "$work/pb"
    if [ $tool = pgbench ]; then
      pgbench -n -M prepared -c 8 -j "$threads" -T $seconds -f "$work/select1.sql" >"$work/run.log" 2>&1 &
    else
      "$bin" run scenarios/select1.toml --dsn "$dsn" --quiet --duration ${seconds}s --warmup 0s \
          --only pool-8 --concurrency 8 --no-html --out "$work/pb" --force >"$work/run.log" 2>&1 &
    fi
    pid=$!
    sleep 4
    perf record -q -o "$work/perf.data" -e sched:sched_waking -e sched:sched_switch -a -- sleep 0.5 >/dev/null 2>&1
    wait $pid
    if [ $tool = pgbench ]; then
      rps=$(sed -n 's/^tps = \([0-9]*\).*/\1/p' "$work/run.log")
    else
      rps=$(jq '.strategies[0].requests / .strategies[0].measured_s | floor' "$work/pb/report.json")
    fi
    printf 'round %s %-9s %6s req/s: %s\n' "$r" $tool "$rps" \
        "$(perf script -i "$work/perf.data" -F comm,tid,cpu,event,trace 2>/dev/null | placement)"
  done
done
