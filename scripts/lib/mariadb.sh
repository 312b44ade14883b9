# Sourced by the MySQL benchmark scripts (bench-vs-sysbench.sh,
# bench-instructions.sh): one embedded MariaDB with sysbench's table, and
# poolbench's scenario of sysbench's oltp_point_select on it.
# start_mariadb: makes $mwork (a temporary directory), starts `$bin server
# --engine mariadb --no-tls` with its output there, waits until it is ready
# (60 s at most, else prints its log and exits 3), sets $mysql_dsn and
# exports its MYSQL_* variables; then fills sysbench's table ($table_size
# rows, default 10000) and writes $mwork/point-select.toml (pool-$clients,
# default 8, with $clients workers). Sets $sb to sysbench's command line
# (append `run` and its options). On exit the server is stopped and $mwork
# removed (after whatever the EXIT trap did before).
start_mariadb() {
  clients=${clients:-8}
  table_size=${table_size:-10000}
  mwork=$(mktemp -d)
  "$bin" server --engine mariadb --no-tls >"$mwork/server.env" 2>"$mwork/server.log" &
  mysql_pid=$!
  also_on_exit "kill $mysql_pid 2>/dev/null; wait $mysql_pid 2>/dev/null; rm -rf '$mwork'"
  for _ in $(seq 600); do grep -q '^MYSQL_PWD=' "$mwork/server.env" 2>/dev/null && break; sleep 0.1; done
  grep -q '^MYSQL_PWD=' "$mwork/server.env" || { cat "$mwork/server.log" >&2; exit 3; }
  mysql_dsn=$(head -n1 "$mwork/server.env")
  set -a; . <(grep '^MYSQL_' "$mwork/server.env"); set +a

  sb=(sysbench oltp_point_select --db-driver=mysql --mysql-host="$MYSQL_HOST"
      --mysql-port="$MYSQL_TCP_PORT" --mysql-user=poolbench --mysql-password="$MYSQL_PWD"
      --mysql-db=poolbench --mysql-ssl=off --tables=1 --table-size="$table_size"
      --threads="$clients" --db-ps-mode=auto --rand-type=uniform)
  "${sb[@]}" prepare >"$mwork/prepare.log" 2>&1 || { cat "$mwork/prepare.log" >&2; exit 3; }

  cat >"$mwork/point-select.toml" <<EOF
name = "vs-sysbench"
description = "sysbench oltp_point_select's statement on its own table"

[run]
concurrency = $clients

[[strategy]]
name = "pool-$clients"
kind = "pool"
max_size = $clients
min_size = $clients

[[query]]
name = "point_select"
sql = "SELECT c FROM sbtest1 WHERE id = ?"
params = [{ int = [1, $table_size] }]
EOF
}

# The server's version as its log names it ("MariaDB 10.11.19").
mariadb_version() { grep -o 'MariaDB [^ ]*' "$mwork/server.log" | head -n1; }

# also_on_exit CMD: runs CMD on exit, before what the EXIT trap did already.
also_on_exit() {
  local cmd=$1 before
  before=$(trap -p EXIT)
  eval "set -- $before"
  trap "$cmd${3:+; $3}" EXIT
}
