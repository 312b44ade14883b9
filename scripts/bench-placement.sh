#!/usr/bin/env bash
# Where the kernel runs each server backend, against the client thread that
# sends it its queries, and whether that is what makes rounds differ:
# pooled SELECT 1, poolbench pool-8 (8 workers) and pgbench -M prepared
# -c 8 -j NPROC, alternating, on one embedded server. For each round:
#   - throughput, and the machine's cross-CPU interrupts (rescheduling and
#     function calls, /proc/interrupts) per request;
#   - the share of the round's CPU time the hypervisor stole (/proc/stat);
#   - sampled every 0.5 s (/proc/<pid>/stat field 39, the CPU a thread last
#     ran on): the CPUs of the client threads and of the busy backends
#     (those that used 3% of a CPU or more in the round), how many
#     backends ran mostly on a CPU without a client thread's share of them
#     ("per CPU"), and how many changed CPU during the round ("moved");
#   - with perf (PERF=1, the default as root with perf installed), 0.5 s of
#     scheduler events in the middle of the round
#     (`perf record -e sched:sched_waking,sched:sched_switch -a`): the share
#     of the client's wake-ups of its backends that stay on the client's
#     CPU (the rest reach the other CPU: an interrupt each), each client
#     thread's CPU and the CPUs its backends ran on, and the backends away
#     from their client's CPU.
# At the end: each tool's rounds sorted (two levels, or a spread?), their
# max/min and median, poolbench's round over pgbench's round just before
# it (the drift they share divided out), and the rounds in which poolbench
# was at or above pgbench. docs/performance.md, "Where the time goes",
# explains the modes this looks for.
# Usage: scripts/bench-placement.sh [ROUNDS] [SECONDS]   (defaults: 3 7)
# PERF=0 skips perf (it costs the round some throughput while it records).
# Needs pgbench and jq; perf (apt-get install linux-perf) and root for PERF=1.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
seconds=${2:-7}
[[ $rounds =~ ^[1-9][0-9]*$ && $seconds =~ ^[1-9][0-9]*$ ]] || { sed -n '/^# Usage:/p' "$0" | sed 's/^# //' >&2; exit 2; }
threads=$(nproc)
if [[ -z ${PERF:-} ]]; then
  PERF=0
  command -v perf >/dev/null && [[ $(id -u) -eq 0 ]] && PERF=1
fi

if [[ $PERF == 1 ]]; then command -v perf >/dev/null || { echo "perf not found (apt-get install linux-perf)" >&2; exit 3; }; fi
command -v pgbench >/dev/null || { echo "pgbench not found (apt-get install postgresql-client)" >&2; exit 3; }
command -v jq >/dev/null || { echo "jq not found (apt-get install jq)" >&2; exit 3; }
cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-target}/release/poolbench
. scripts/lib/server.sh
start_server
for_pgbench
postmaster=$(ps -o pid= -o comm= --ppid "$server_pid" | awk '$2 == "postgres" { print $1; exit }')
[[ -n $postmaster ]] || { echo "the embedded server's postmaster was not found" >&2; exit 3; }

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

# The machine's rescheduling and function-call interrupts so far, all CPUs.
ipis() { awk '/^ *(RES|CAL):/ {for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i} END {print s + 0}' /proc/interrupts; }
# The machine's CPU time so far: "steal total" (in ticks, /proc/stat).
cputime() { awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print $9, t; exit }' /proc/stat; }
# sample CLIENT_PID OUT: every 0.5 s until the client exits, one line per
# client thread and per child of the postmaster: "kind id cpu ticks", the
# CPU it last ran on (/proc/.../stat field 39) and its user + system time
# (fields 14 and 15). One awk a sample, so that sampling costs the round
# little.
sample() {
  local client=$1 out=$2
  while kill -0 "$client" 2>/dev/null; do
    awk -v client="/proc/$client/task/" -v pm="$postmaster" '
      FNR == 1 {
        # The fields after the command name, which may hold spaces.
        comm = $0; sub(/^[^(]*\(/, "", comm); sub(/\) .*/, "", comm)
        rest = $0; sub(/.*\) /, "", rest); split(rest, f, " ")
        if (index(FILENAME, client) == 1) { if (comm ~ /^(pgbench|poolbench-[0-9]+)$/) print "client", $1, f[37], f[12] + f[13] }
        else if (f[2] == pm && comm == "postgres") print "backend", $1, f[37], f[12] + f[13]
      }' /proc/"$client"/task/*/stat /proc/[0-9]*/stat 2>/dev/null || true
    sleep 0.5
  done >"$out"
}

# sampled FILE: the round's placement from the samples.
sampled() {
  awk -v hz="$(getconf CLK_TCK)" '
    NF == 4 { kind[$2] = $1; n[$2]++; on[$2, $3]++; if (!($2 in first)) first[$2] = $4; last[$2] = $4
              if ($2 in prev && prev[$2] != $3) moves[$2]++; prev[$2] = $3; cpus[$3] = 1 }
    function home(id,   c, best, m) { best = -1; m = -1; for (c in cpus) if (on[id, c] > m) { m = on[id, c]; best = c }; return best }
    END {
      for (id in kind) {
        # Busy: 3% of a CPU or more between the samples it was seen in (8
        # backends share about one CPU; the other server processes idle).
        if (kind[id] == "backend" && (n[id] < 2 || (last[id] - first[id]) / hz < 0.03 * (n[id] - 1) * 0.5)) continue
        h = home(id)
        if (kind[id] == "client") { ct[h]++; clients = clients " " h }
        else { bk[h]++; busy++; if (moves[id] > 0) moved++ }
      }
      line = ""
      for (c in cpus) line = line sprintf(" cpu%s %d/%d", c, ct[c] + 0, bk[c] + 0)
      printf "sampled: client threads on cpus%s, busy backends %d, clients/backends per CPU%s, backends that changed CPU %d", clients, busy, line, moved + 0
    }' "$1"
}

declare -A rps steal
for r in $(seq "$rounds"); do
  for tool in pgbench poolbench; do
    rm -rf "$work/pb"
    i=$(ipis)
    read -r s0 t0 <<<"$(cputime)"
    if [ $tool = pgbench ]; then
      pgbench -n -M prepared -c 8 -j "$threads" -T "$seconds" -f "$work/select1.sql" >"$work/run.log" 2>&1 &
    else
      "$bin" run scenarios/select1.toml --dsn "$dsn" --quiet --duration "${seconds}s" --warmup 0s \
          --only pool-8 --concurrency 8 --no-html --out "$work/pb" --force >"$work/run.log" 2>&1 &
    fi
    pid=$!
    sample "$pid" "$work/samples" &
    sampler=$!
    perf_line=""
    if [[ $PERF == 1 ]]; then
      sleep $(( seconds / 2 ))
      perf record -q -o "$work/perf.data" -e sched:sched_waking -e sched:sched_switch -a -- sleep 0.5 >/dev/null 2>&1
    fi
    wait $pid
    wait $sampler
    read -r s1 t1 <<<"$(cputime)"
    if [ $tool = pgbench ]; then
      x=$(sed -n 's/^tps = \([0-9]*\).*/\1/p' "$work/run.log")
      req=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$work/run.log")
    else
      x=$(jq '.strategies[0].requests / .strategies[0].measured_s | floor' "$work/pb/report.json")
      req=$(jq '.strategies[0].requests' "$work/pb/report.json")
    fi
    st=$(awk -v a="$((s1 - s0))" -v b="$((t1 - t0))" 'BEGIN { printf "%.1f", (b > 0 ? 100 * a / b : 0) }')
    rps[$tool]+="$x "
    steal[$tool]+="$st "
    if [[ $PERF == 1 ]]; then
      perf_line="; $(perf script -i "$work/perf.data" -F comm,tid,cpu,event,trace 2>/dev/null | placement)"
    fi
    printf 'round %s %-9s %6s req/s, steal %s%%, cross-CPU interrupts/request %s; %s%s\n' "$r" $tool "$x" "$st" \
        "$(awk -v d="$(( $(ipis) - i ))" -v n="$req" 'BEGIN { printf "%.3f", (n > 0 ? d / n : 0) }')" \
        "$(sampled "$work/samples")" "$perf_line"
  done
done

spread() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%.3f (%s .. %s)", hi / lo, lo, hi}'; }
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2}'; }
sorted() { tr ' ' '\n' <<<"$1" | grep . | sort -g | tr '\n' ' '; }
echo
echo "SELECT 1, $rounds rounds of ${seconds}s each, alternated (pgbench first), $threads threads, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
for tool in pgbench poolbench; do
  echo "$tool req/s: median $(median "${rps[$tool]}"), max/min $(spread "${rps[$tool]}"); sorted: $(sorted "${rps[$tool]}")"
  echo "$tool steal %: $(sorted "${steal[$tool]}")"
done
read -r -a pb <<<"${rps[poolbench]}"
read -r -a pg <<<"${rps[pgbench]}"
per_round=""
above=0
for k in "${!pb[@]}"; do
  per_round+="$(awk -v a="${pb[$k]}" -v b="${pg[$k]}" 'BEGIN {printf "%.4f", a / b}') "
  awk -v a="${pb[$k]}" -v b="${pg[$k]}" 'BEGIN {exit !(a >= b)}' && above=$((above + 1))
done
echo "poolbench/pgbench per round: max/min $(spread "$per_round"); sorted: $(sorted "$per_round")"
echo "rounds with poolbench at or above pgbench's round before it: $above of $rounds"
