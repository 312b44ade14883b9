#!/usr/bin/env bash
# A local rehearsal of poolbench on several machines (docs/several-machines.md):
# one server (`poolbench server`); first, for comparison, one process with N
# times the workers against it (it also runs the scenario's [setup] once);
# then N copies of `poolbench run` started with the same --start-at and
# different --instance-index, as a Kubernetes Indexed Job would start them;
# then `poolbench merge`, and the single run and the merged copies side by
# side (`poolbench compare SINGLE MERGED`).
#
# Usage: scripts/distributed-rehearsal.sh N
#
# Environment (all optional):
#   SCENARIO=scenarios/select1.toml   the scenario every copy runs
#   DURATION=5s WARMUP=1s             override the scenario's [run] values
#   LEAD=8                            seconds from now to --start-at (room for
#                                     N processes to start and connect)
#   OUT=results/rehearsal-<UTC time>  where everything is written
#   POOLBENCH=${CARGO_TARGET_DIR:-target}/release/poolbench
#                                     the binary (built if it is the default)
#
# Exit code: 0 when every copy and the merge succeeded; otherwise the first
# failing step's code (2 bad input, 3 environment).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $# -ne 1 || ! $1 =~ ^[1-9][0-9]*$ ]]; then
  sed -n '9p' "$0" | sed 's/^# //' >&2
  exit 2
fi
n=$1
scenario=${SCENARIO:-scenarios/select1.toml}
lead=${LEAD:-8}
out=${OUT:-results/rehearsal-$(date -u +%Y%m%dT%H%M%SZ)}
bin=${POOLBENCH:-${CARGO_TARGET_DIR:-target}/release/poolbench}
if [[ -z ${POOLBENCH:-} ]]; then
  cargo build --release --quiet || exit 3
fi
mkdir -p "$out"

run_flags=(--quiet)
[[ -n ${DURATION:-} ]] && run_flags+=(--duration "$DURATION")
[[ -n ${WARMUP:-} ]] && run_flags+=(--warmup "$WARMUP")

# The server the copies share, like the one database of a real deployment.
"$bin" server >"$out/server.txt" 2>"$out/server.log" &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  if grep -q '^postgres://' "$out/server.txt" 2>/dev/null; then break; fi
  if ! kill -0 "$server" 2>/dev/null; then
    cat "$out/server.log" >&2
    exit 3
  fi
  sleep 0.5
done
dsn=$(grep -m1 '^postgres://' "$out/server.txt") || { cat "$out/server.log" >&2; exit 3; }
# The URL holds the throwaway server's password: keep it off the disk.
rm -f "$out/server.txt"

# The single process first: it runs the scenario's [setup] (if any) once, so
# the copies do not all create the same tables at the same moment.
concurrency=$(sed -n '/^\[run\]/,/^\[/s/^concurrency *= *\([0-9]*\).*/\1/p' "$scenario" | head -1)
concurrency=${concurrency:-16}
echo "single process: $((n * concurrency)) workers ($n × $concurrency)"
"$bin" run "$scenario" --dsn "$dsn" --allow-setup --concurrency $((n * concurrency)) \
  --out "$out/single" "${run_flags[@]}" >"$out/single.out" 2>"$out/single.log" || {
  status=$?
  cat "$out/single.log" >&2
  exit "$status"
}

start_at=$(date -u -d "+$lead seconds" +%Y-%m-%dT%H:%M:%SZ)
echo "$n copies of $concurrency workers, starting at $start_at"
pids=()
for i in $(seq 0 $((n - 1))); do
  "$bin" run "$scenario" --dsn "$dsn" --allow-setup --start-at "$start_at" --instance-index "$i" \
    --out "$out/copy-$i" "${run_flags[@]}" >"$out/copy-$i.log" 2>&1 &
  pids+=($!)
done
failed=0
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then
    status=$?
    echo "copy $i failed (exit $status):" >&2
    cat "$out/copy-$i.log" >&2
    [[ $failed -eq 0 ]] && failed=$status
  fi
done
[[ $failed -eq 0 ]] || exit "$failed"

echo
copies=()
for i in $(seq 0 $((n - 1))); do copies+=("$out/copy-$i"); done
"$bin" merge "${copies[@]}" --out "$out/merged" | tee "$out/merge.out"

echo
echo "== one process with $((n * concurrency)) workers (baseline) against the $n merged copies =="
# Exit 1 only means the copies did worse than the single process.
"$bin" compare "$out/single" "$out/merged" --allow-different 2>/dev/null || [[ $? -eq 1 ]]
echo
echo "merged, $n × $concurrency workers: $(grep -v '^reports:' "$out/merge.out" | tail -n 1)"
echo "single, $((n * concurrency)) workers:  $(tail -n 1 "$out/single.out")"
echo "files: $out/{single,copy-*,merged}"
