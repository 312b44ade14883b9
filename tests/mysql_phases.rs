//! MySQL's measured connections (poolbench's own client), against a real
//! embedded MariaDB: a connect split into tcp, tls and startup whose sum
//! is the connect, with the link emulator and without, the client's CPU
//! per phase, the round trips of each setup and request counted under
//! `--rtt 0ms` (with TLS and without), the explanation lines, `sweep --rtts` fitting the
//! setup cost against the RTT, and a scenario with `?` placeholders that
//! only a `--dsn mysql://…` flag makes MySQL's.

use poolbench::embedded::mariadb::{MariaDb, MariaDbOptions};
use serde_json::Value;

mod common;
use common::{f, on_server, read_report, show, stdout, u, write_scenario};

/// Nothing in the file says MySQL: no engine, no `dsn`. Its `?` is
/// MySQL's only because `--dsn mysql://…` says so.
const QUESTION_MARKS: &str = r#"
[run]
duration = "1500ms"
warmup = "0s"
concurrency = 2

[setup]
sql = """
CREATE TABLE IF NOT EXISTS t (id bigint PRIMARY KEY, v text);
INSERT IGNORE INTO t SELECT seq, CONCAT('v', seq) FROM seq_1_to_1000;
"""

[[strategy]]
name = "per-request"
kind = "fresh"

[[strategy]]
name = "pool-2"
kind = "pool"
max_size = 2
min_size = 2

[[query]]
name = "get"
sql = "SELECT id, v FROM t WHERE id = ?"
params = [{ int = [1, 1000] }]
"#;

/// The fresh strategy's connections: tcp, tls (when `tls`) and startup
/// timed for each one opened, their means adding up to the connect's, the
/// client's CPU split the same way; across the link, the round trips of
/// every setup exactly `setup_round_trips`, a fresh request's two more
/// (prepare, execute), a pooled request's one.
fn check_phases(r: &Value, tls: bool, setup_round_trips: Option<u64>) {
    let (fresh, pool) = (&r["strategies"][0], &r["strategies"][1]);
    let opened = u(&fresh["connections_opened"]);
    assert!(opened > 10, "{fresh}");
    let phases = &fresh["phases"];
    let mean = |p: &str| f(&phases[p]["mean_us"]);
    for p in ["tcp", "startup"] {
        assert_eq!(u(&phases[p]["count"]), opened, "{p}: {phases}");
    }
    if tls {
        assert_eq!(u(&phases["tls"]["count"]), opened, "{phases}");
        assert!(mean("tls") > 0.0, "{phases}");
    } else {
        assert!(
            phases.get("tls").is_none(),
            "no TLS, no tls phase: {phases}"
        );
    }
    let parts = mean("tcp") + mean("startup") + if tls { mean("tls") } else { 0.0 };
    let connect = mean("connect");
    assert!(
        (parts - connect).abs() <= 0.1 * connect + 50.0,
        "tcp + tls + startup = {parts} µs against connect {connect} µs"
    );
    let cpu = &fresh["setup_cpu"];
    assert!(f(&cpu["client_us"]["mean_us"]) > 0.0, "{cpu}");
    assert_eq!(
        cpu.get("client_tls_us").is_some_and(|v| !v.is_null()),
        tls,
        "{cpu}"
    );
    let Some(setup_round_trips) = setup_round_trips else {
        assert!(
            fresh.get("round_trips").is_none_or(Value::is_null),
            "no link, no round trips: {fresh}"
        );
        return;
    };
    let connect_rt = &fresh["round_trips"]["connect"];
    assert_eq!(
        (u(&connect_rt["min"]), u(&connect_rt["max"])),
        (setup_round_trips, setup_round_trips),
        "{connect_rt}"
    );
    assert_eq!(
        u(&fresh["round_trips"]["request"]["p50"]),
        setup_round_trips + 2,
        "{}",
        fresh["round_trips"]
    );
    assert_eq!(
        u(&pool["round_trips"]["request"]["p50"]),
        1,
        "{}",
        pool["round_trips"]
    );
    assert_eq!(
        u(&pool["round_trips"]["connect"]["max"]),
        setup_round_trips,
        "{}",
        pool["round_trips"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_connects_in_phases_across_the_link() {
    let server = MariaDb::start(&MariaDbOptions {
        tls: true,
        port: None,
        max_connections: 30,
    })
    .await
    .unwrap_or_else(|e| panic!("embedded MariaDB did not start: {e:#}"));
    let dsn = server.dsn_with_password();
    assert!(dsn.contains("ssl-mode=REQUIRED"), "{dsn}");
    let tmp = tempfile::tempdir().unwrap();
    let file = write_scenario(tmp.path(), "question-marks", QUESTION_MARKS);

    // With TLS: TCP handshake, the greeting (it answers the handshake's
    // last ACK), TLS 1.3 handshake, authentication (mysql_native_password:
    // one exchange).
    let out = tmp.path().join("tls");
    let o = on_server("run", &file, &dsn, &out, &["--rtt", "0ms"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let r = read_report(&out);
    assert_eq!(r["server"]["engine"], "mariadb", "{}", r["server"]);
    assert_eq!(r["network"]["rtt_ms"], 0.0, "{}", r["network"]);
    check_phases(&r, true, Some(4));
    let printed = stdout(&o);
    assert!(
        printed.contains("where per-request's time goes (means):")
            && printed.contains("SSL request and TLS handshake; the greeting and authentication")
            && printed.contains("connecting is 4 round trips"),
        "{}",
        show(&o)
    );

    // Without TLS: one round trip fewer, no tls phase.
    let plain = dsn.replace("ssl-mode=REQUIRED", "ssl-mode=DISABLED");
    let out = tmp.path().join("plain");
    let o = on_server("run", &file, &plain, &out, &["--rtt", "0ms"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let r = read_report(&out);
    assert_eq!(r["server"]["ssl"], false, "{}", r["server"]);
    check_phases(&r, false, Some(3));

    // Without the link: the same phases, timed on the server's own socket
    // (the `?` scenario still runs on the flag's DSN), and no round trips.
    let out = tmp.path().join("direct");
    let o = on_server("run", &file, &dsn, &out, &[]).await;
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let r = read_report(&out);
    assert!(u(&r["strategies"][0]["requests"]) > 10, "{r}");
    check_phases(&r, true, None);
    let out = tmp.path().join("direct-plain");
    let o = on_server("run", &file, &plain, &out, &[]).await;
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    check_phases(&read_report(&out), false, None);

    // The same file with a PostgreSQL DSN on the command line is
    // PostgreSQL's: its `?` is refused before anything connects.
    let pg = "postgres://u@127.0.0.1:1/d";
    let o = on_server("run", &file, pg, &tmp.path().join("pg"), &[]).await;
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(show(&o).contains("--dsn or DATABASE_URL"), "{}", show(&o));

    // sweep --rtts: the setup cost grows by about the round trips a pool
    // saves per millisecond of RTT.
    let out = tmp.path().join("sweep");
    let extra = ["--rtts", "10ms,0ms", "--duration", "1s"];
    let o = on_server("sweep", &file, &dsn, &out, &extra).await;
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let sweep: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("sweep.json")).unwrap()).unwrap();
    assert_eq!(sweep["kind"], "rtt-sweep");
    assert_eq!(sweep["points"].as_array().unwrap().len(), 4, "{sweep}");
    let fit = &sweep["fits"][0];
    let (b, counted) = (f(&fit["b"]), u(&fit["counted_round_trips"]) as f64);
    assert_eq!(
        counted, 5.0,
        "6 round trips per fresh request against 1: {fit}"
    );
    assert!(
        (counted - 3.0..=counted + 4.0).contains(&b),
        "b = {b} round trips per request, the emulator counted {counted}"
    );
    assert!(stdout(&o).contains("setup cost = "), "{}", show(&o));
    server.stop().await.unwrap();
}

/// A server's error on a measured connection (a duplicate key, by the
/// binary and the text protocol) is counted by its code and leaves the
/// session usable: the pool's two connections, checked by COM_PING before
/// each reuse, serve every request, failing or not.
const ERRORS: &str = r#"
[run]
duration = "1s"
warmup = "0s"
concurrency = 2

[setup]
sql = """
CREATE TABLE IF NOT EXISTS t (id bigint PRIMARY KEY, v text);
INSERT IGNORE INTO t SELECT seq, CONCAT('v', seq) FROM seq_1_to_100;
CREATE TABLE IF NOT EXISTS d (id bigint PRIMARY KEY);
"""

[[strategy]]
name = "pool-2"
kind = "pool"
max_size = 2
min_size = 2
recycling = "verified"

[[strategy]]
name = "text-2"
kind = "pool"
max_size = 2
min_size = 2
statement_cache = false

[[query]]
name = "get"
sql = "SELECT id, v FROM t WHERE id = ?"
params = [{ int = [1, 100] }]
weight = 3

[[query]]
name = "duplicate"
sql = "INSERT INTO d (id) VALUES (?)"
params = [{ int = [1, 3] }]
"#;

/// `body` run on an embedded MariaDB without TLS: the server, still
/// running, and the report.
async fn run_on_plain_mariadb(body: &str) -> (MariaDb, Value) {
    let server = MariaDb::start(&MariaDbOptions {
        tls: false,
        port: None,
        max_connections: 20,
    })
    .await
    .unwrap_or_else(|e| panic!("embedded MariaDB did not start: {e:#}"));
    let tmp = tempfile::tempdir().unwrap();
    let file = write_scenario(tmp.path(), "scenario", body);
    let out = tmp.path().join("out");
    let o = on_server("run", &file, &server.dsn_with_password(), &out, &[]).await;
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    (server, read_report(&out))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_error_leaves_the_session_usable() {
    let (server, r) = run_on_plain_mariadb(ERRORS).await;
    for s in r["strategies"].as_array().unwrap() {
        let failed = u(&s["errors"]["query_error:1062"]);
        let requests = u(&s["requests"]);
        assert!(failed > 10 && requests > 10, "{s}");
        assert_eq!(u(&s["connections_opened"]), 2, "{s}");
    }
    server.stop().await.unwrap();
}

/// One prepared statement whose parameter changes type from one execution
/// to the next (an integer, a text or a float, at random), and a
/// `SELECT *` whose table gains and loses a column while it runs (a
/// MEMORY table: InnoDB's instant ALTER would count every column dropped
/// against its row size until the table refused another).
const SHAPES: &str = r#"
[run]
duration = "1500ms"
warmup = "0s"
concurrency = 2

[setup]
sql = """
CREATE TABLE IF NOT EXISTS w (id bigint AUTO_INCREMENT PRIMARY KEY, v text);
CREATE TABLE IF NOT EXISTS m (id bigint PRIMARY KEY, a int) ENGINE=MEMORY;
INSERT IGNORE INTO m VALUES (1, 1), (2, 2);
"""

[[strategy]]
name = "pool-2"
kind = "pool"
max_size = 2
min_size = 2

[[query]]
name = "insert"
sql = "INSERT INTO w (v) VALUES (?)"
params = [{ choice = [7, "seven", 2.5] }]
weight = 8

[[query]]
name = "select"
sql = "SELECT * FROM m WHERE id = ?"
params = [{ int = [1, 2] }]
weight = 8

[[query]]
name = "widen"
sql = "ALTER TABLE m ADD COLUMN IF NOT EXISTS b varchar(20) DEFAULT 'b'"

[[query]]
name = "narrow"
sql = "ALTER TABLE m DROP COLUMN IF EXISTS b"
"#;

/// The parameters' types are sent only when the server does not have
/// them (new-params-bound 0 otherwise, as libmariadb does): every row the
/// changing statement inserted holds one of the values sent, none
/// misread as another type. MariaDB's cached metadata (a result's column
/// definitions sent once, again only when they change): the `SELECT *`
/// whose columns come and go is read to its end every time. No request
/// fails.
#[tokio::test(flavor = "multi_thread")]
async fn types_sent_once_and_metadata_that_changes() {
    let (server, r) = run_on_plain_mariadb(SHAPES).await;
    let s = &r["strategies"][0];
    assert_eq!(s["errors"], serde_json::json!({}), "{s}");
    let per_query = &s["per_query"];
    for q in ["insert", "select", "widen", "narrow"] {
        assert!(u(&per_query[q]["count"]) > 0, "{q}: {per_query}");
    }
    // What the table holds, by the mariadb client.
    let o = tokio::process::Command::new("mariadb")
        .args([
            "-h",
            "127.0.0.1",
            "-u",
            "poolbench",
            "-N",
            "-B",
            "poolbench",
        ])
        .arg(format!("--port={}", server.port()))
        .args(["-e", "SELECT v, COUNT(*) FROM w GROUP BY v ORDER BY v"])
        .env("MYSQL_PWD", server.password())
        .output()
        .await
        .expect("run the mariadb client");
    assert!(o.status.success(), "{}", show(&o));
    let rows = String::from_utf8_lossy(&o.stdout).into_owned();
    let values: Vec<&str> = rows.lines().filter_map(|l| l.split('\t').next()).collect();
    assert_eq!(values, ["2.5", "7", "seven"], "{rows}");
    let inserted: u64 = rows
        .lines()
        .filter_map(|l| l.split('\t').nth(1)?.parse::<u64>().ok())
        .sum();
    assert!(
        inserted >= u(&per_query["insert"]["count"]),
        "{rows}\n{per_query}"
    );
    server.stop().await.unwrap();
}
