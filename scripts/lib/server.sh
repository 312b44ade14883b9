# Sourced by the benchmark scripts: one embedded server for the whole run.
# start_server [SERVER FLAGS...]: makes $work (a temporary directory), starts
# `$bin server` with its output there, waits until it is ready (30 s at
# most, else prints its log and exits 3), and sets $server_pid and $dsn. On
# exit the server is stopped and $work removed.
start_server() {
  work=$(mktemp -d)
  "$bin" server "$@" >"$work/server.env" 2>"$work/server.log" &
  server_pid=$!
  trap 'kill $server_pid 2>/dev/null; wait $server_pid 2>/dev/null; rm -rf "$work"' EXIT
  for _ in $(seq 300); do grep -q '^PGSSLMODE=' "$work/server.env" 2>/dev/null && break; sleep 0.1; done
  grep -q '^PGSSLMODE=' "$work/server.env" || { cat "$work/server.log" >&2; exit 3; }
  dsn=$(head -n1 "$work/server.env")
}

# for_pgbench: exports the server's PG* variables (for pgbench and psql) and
# writes pgbench's script, $work/select1.sql. After start_server.
for_pgbench() {
  set -a; . <(grep '^PG' "$work/server.env"); set +a
  echo "SELECT 1;" >"$work/select1.sql"
}
