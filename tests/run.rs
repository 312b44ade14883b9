//! `poolbench run` end to end against real embedded PostgreSQL servers: what
//! the report says must match what happened on the server.

use poolbench::metrics::decode_histogram;

mod common;
use common::{
    on_server, poolbench, read_report, start_server, stderr, stdout, strategy, u, write_scenario,
};

const SELECT_SCENARIO: &str = r#"
name = "counts"
[run]
duration = "2s"
warmup = "0s"
concurrency = 4
seed = 9

[[strategy]]
name = "per-request"
kind = "fresh"

[[strategy]]
name = "pool-3"
kind = "pool"
max_size = 3

[[query]]
name = "lookup"
sql = "SELECT $1::int8 + 1"
params = [{ int = [1, 1000] }]
"#;

/// Fresh opens one connection per request, the pool at most max_size; SCRAM
/// makes connecting far dearer than drawing from the pool; the report holds
/// every documented field, with histograms that decode to its percentiles;
/// summary.csv has a row per strategy and phase; and the DSN's password is
/// nowhere in what poolbench writes or prints.
#[tokio::test(flavor = "multi_thread")]
async fn fresh_and_pool_are_measured_and_reported() {
    let server = start_server(100).await;
    let tmp = tempfile::tempdir().unwrap();
    let scenario = write_scenario(tmp.path(), "counts", SELECT_SCENARIO);
    let out = tmp.path().join("out");
    let dsn = server.dsn_with_password();
    let o = on_server("run", &scenario, &dsn, &out, &[]).await;
    let (stdout, stderr) = (stdout(&o), stderr(&o));
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );

    let report = read_report(&out);
    let fresh = strategy(&report, "per-request");
    let pool = strategy(&report, "pool-3");

    // Connections are counted as they open, not inferred.
    assert!(u(&fresh["requests"]) > 10, "{fresh}");
    assert_eq!(fresh["errors"].as_object().unwrap().len(), 0, "{fresh}");
    assert_eq!(u(&fresh["connections_opened"]), u(&fresh["requests"]));
    assert!(u(&pool["connections_opened"]) <= 3, "{pool}");
    assert!(u(&pool["requests"]) > u(&fresh["requests"]));

    // SCRAM + TLS per request against a pooled connection.
    let connect_p50 = u(&fresh["phases"]["connect"]["p50_us"]);
    let acquire_p50 = u(&pool["phases"]["acquire"]["p50_us"]);
    assert!(
        connect_p50 > 5 * acquire_p50,
        "connect p50 {connect_p50} µs vs acquire p50 {acquire_p50} µs"
    );

    // Every documented field.
    for key in [
        "schema_version",
        "tool",
        "started_at",
        "interrupted",
        "host",
        "server",
        "scenario",
        "strategies",
        "comparison",
    ] {
        assert!(report.get(key).is_some(), "report.json lacks {key}");
    }
    assert_eq!(report["schema_version"], 1);
    assert_eq!(report["interrupted"], false);
    for key in [
        "version",
        "auth_method",
        "ssl",
        "max_connections",
        "embedded",
    ] {
        assert!(report["server"].get(key).is_some(), "server lacks {key}");
    }
    assert_eq!(report["server"]["ssl"], true);
    assert_eq!(report["scenario"]["sha256"].as_str().unwrap().len(), 64);
    for s in [fresh, pool] {
        for key in [
            "name",
            "kind",
            "settings",
            "requests",
            "errors",
            "throughput_rps",
            "connections_opened",
            "startup_ms",
            "phases",
            "per_query",
            "timeline",
            "rounds",
        ] {
            assert!(s.get(key).is_some(), "strategy lacks {key}");
        }
        let timeline = s["timeline"].as_array().unwrap();
        assert_eq!(timeline.len(), 2, "one row per measured second");
        for key in [
            "second",
            "rps",
            "errors",
            "p50_us",
            "p99_us",
            "pool_size",
            "pool_available",
            "pool_waiting",
            "server_backends",
        ] {
            assert!(timeline[0].get(key).is_some(), "timeline lacks {key}");
        }
        assert!(s["per_query"]["lookup"]["count"].as_u64().unwrap() > 0);
        for (phase, summary) in s["phases"].as_object().unwrap() {
            for key in [
                "count",
                "mean_us",
                "stddev_us",
                "min_us",
                "p50_us",
                "p90_us",
                "p95_us",
                "p99_us",
                "p999_us",
                "max_us",
                "hdr",
            ] {
                assert!(summary.get(key).is_some(), "{phase} lacks {key}");
            }
            let h = decode_histogram(summary["hdr"].as_str().unwrap()).unwrap();
            assert_eq!(h.len(), u(&summary["count"]), "{phase}");
            assert_eq!(h.value_at_quantile(0.5), u(&summary["p50_us"]), "{phase}");
            assert_eq!(h.value_at_quantile(0.99), u(&summary["p99_us"]), "{phase}");
            assert_eq!(h.max(), u(&summary["max_us"]), "{phase}");
        }
    }
    let pool_row = &pool["timeline"][0];
    assert_eq!(pool_row["pool_size"], 3);
    // pool_waiting counts requests waiting for a connection: none while one
    // is available, and at most the workers not holding one.
    for row in pool["timeline"].as_array().unwrap() {
        let (size, available, waiting) = (
            u(&row["pool_size"]),
            u(&row["pool_available"]),
            u(&row["pool_waiting"]),
        );
        assert!(available == 0 || waiting == 0, "{row}");
        assert!(size - available + waiting <= 4, "{row}");
    }
    assert!(u(&pool_row["server_backends"]) >= 3);
    let c = &report["comparison"][0];
    assert_eq!(
        (c["fresh"].as_str(), c["pool"].as_str()),
        (Some("per-request"), Some("pool-3"))
    );
    assert!(c["p50_ratio"].as_f64().unwrap() > 1.0);

    // summary.csv: one row per strategy × phase, numbers as in report.json.
    let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let phases: Vec<(&str, &str)> = rows.iter().map(|r| (r[1], r[3])).collect();
    assert_eq!(
        phases,
        [
            ("per-request", "connect"),
            ("per-request", "tcp"),
            ("per-request", "tls"),
            ("per-request", "startup"),
            ("per-request", "query"),
            ("per-request", "close"),
            ("per-request", "total"),
            ("pool-3", "tcp"),
            ("pool-3", "tls"),
            ("pool-3", "startup"),
            ("pool-3", "acquire"),
            // acquire's parts: waiting, and opening (min_size 0).
            ("pool-3", "wait"),
            ("pool-3", "open"),
            ("pool-3", "query"),
            ("pool-3", "total"),
        ]
    );
    let fresh_total = rows
        .iter()
        .find(|r| r[1] == "per-request" && r[3] == "total")
        .unwrap();
    let p50_ms: f64 = fresh_total[6].parse().unwrap();
    let p50_us = u(&fresh["phases"]["total"]["p50_us"]) as f64;
    assert!(
        (p50_ms * 1000.0 - p50_us).abs() < 1.0,
        "{p50_ms} ms vs {p50_us} µs"
    );
    // The printed table shows the same p50 (ms, rounded for the terminal).
    assert!(stdout.contains("per-request"), "{stdout}");
    assert!(stdout.contains("versus pool-3"), "{stdout}");
    let timeline = std::fs::read_to_string(out.join("timeline.csv")).unwrap();
    assert_eq!(timeline.lines().count(), 1 + 2 + 2);

    // The password is in none of the outputs.
    let password = server.password().to_string();
    assert!(password.len() >= 16);
    for (what, content) in [
        ("stdout", stdout),
        ("stderr", stderr),
        (
            "report.json",
            std::fs::read_to_string(out.join("report.json")).unwrap(),
        ),
        ("summary.csv", csv),
        ("timeline.csv", timeline),
    ] {
        assert!(
            !content.contains(&password),
            "the password appears in {what}"
        );
    }
    server.stop().await.unwrap();
}

/// exhaustion.toml: more workers than connection slots. Per-request
/// connections are refused with "too many clients", counted, not fatal;
/// when more than half are, the headline says the comparison is not valid.
#[tokio::test(flavor = "multi_thread")]
async fn exhaustion_is_counted_not_fatal() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = poolbench(vec![
        "run".into(),
        concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/exhaustion.toml").into(),
        "--duration".into(),
        "2s".into(),
        "--warmup".into(),
        "0s".into(),
        "--out".into(),
        out.display().to_string(),
        "--quiet".into(),
    ])
    .await;
    let (stdout, stderr) = (stdout(&o), stderr(&o));
    let report = read_report(&out);
    assert_eq!(report["server"]["max_connections"], 20);
    let fresh = strategy(&report, "per-request");
    // Around half of the per-request connections are refused: above half,
    // there is no valid comparison and the run exits 1; below, a verdict.
    let failed = u(&fresh["errors"]["too_many_connections"]) as f64;
    let share = failed / (failed + u(&fresh["requests"]) as f64);
    let (code, headline) = if share > 0.5 {
        (1, "not a valid comparison")
    } else {
        (0, "per-request connections")
    };
    assert_eq!(
        o.status.code(),
        Some(code),
        "{share}: stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains(headline), "{share}: {stdout}");
    assert!(
        u(&fresh["errors"]["too_many_connections"]) > 0,
        "{}",
        fresh["errors"]
    );
    assert!(fresh["error_samples"]["too_many_connections"][0]
        .as_str()
        .unwrap()
        .contains("53300"));
    assert!(u(&fresh["requests"]) > 0, "some requests still get through");
    let pool = strategy(&report, "pool-10");
    assert_eq!(
        pool["errors"].as_object().unwrap().len(),
        0,
        "{}",
        pool["errors"]
    );
}

/// A transaction commits all its statements or none; parallel statements
/// run at once on separate connections. The database shows both.
#[tokio::test(flavor = "multi_thread")]
async fn transactions_and_parallel_requests_reach_the_database() {
    let server = start_server(100).await;
    let tmp = tempfile::tempdir().unwrap();
    let scenario = write_scenario(
        tmp.path(),
        "effects",
        r#"
name = "effects"
[run]
duration = "2s"
warmup = "0s"
concurrency = 4

[setup]
sql = """
CREATE TABLE stock (id int PRIMARY KEY, n bigint NOT NULL);
INSERT INTO stock SELECT g, 1000000 FROM generate_series(1, 10) g;
CREATE TABLE orders (id bigserial PRIMARY KEY, product int NOT NULL);
CREATE TABLE left_side (pid int NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE TABLE right_side (pid int NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());
"""

[[strategy]]
name = "pool"
kind = "pool"
max_size = 8
min_size = 8

[[query]]
name = "checkout"
weight = 1
transaction = true
statements = [
  { sql = "SELECT set_config('app.p', $1, true)", params = [{ int = [1, 10] }] },
  { sql = "UPDATE stock SET n = n - 1 WHERE id = current_setting('app.p')::int" },
  { sql = "INSERT INTO orders (product) VALUES (current_setting('app.p')::int)" },
]

[[query]]
name = "gather"
weight = 1
parallel = true
statements = [
  { sql = "INSERT INTO left_side (pid) SELECT pg_backend_pid() FROM pg_sleep(0.05)" },
  { sql = "INSERT INTO right_side (pid) SELECT pg_backend_pid() FROM pg_sleep(0.05)" },
]
"#,
    );
    let out = tmp.path().join("out");
    let dsn = server.dsn_with_password();
    let o = on_server("run", &scenario, &dsn, &out, &["--allow-setup", "--quiet"]).await;
    let (stdout, stderr) = (stdout(&o), stderr(&o));
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let report = read_report(&out);
    let pool = strategy(&report, "pool");
    assert_eq!(
        pool["errors"].as_object().unwrap().len(),
        0,
        "{}",
        pool["errors"]
    );
    let checkouts = u(&pool["per_query"]["checkout"]["count"]);
    let gathers = u(&pool["per_query"]["gather"]["count"]);
    assert!(checkouts > 0 && gathers > 0);

    let client = server.target().connect().await.unwrap();
    let one = |sql: &'static str| {
        let client = &client;
        async move { client.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) as u64 }
    };
    // Each committed checkout inserted one order and took one from stock.
    assert_eq!(one("SELECT count(*) FROM orders").await, checkouts);
    assert_eq!(
        one("SELECT sum(1000000 - n)::int8 FROM stock").await,
        checkouts
    );
    // Each gather ran both statements...
    assert_eq!(one("SELECT count(*) FROM left_side").await, gathers);
    assert_eq!(one("SELECT count(*) FROM right_side").await, gathers);
    // ...at once, on separate connections: two 50 ms sleeps take ~50 ms.
    let gather_p50 = u(&pool["per_query"]["gather"]["p50_us"]);
    assert!(
        gather_p50 < 95_000,
        "gather p50 {gather_p50} µs: statements ran one after another"
    );
    server.stop().await.unwrap();
}

/// Setup SQL on a server poolbench did not start needs --allow-setup.
#[tokio::test(flavor = "multi_thread")]
async fn setup_on_a_foreign_server_needs_allow_setup() {
    let server = start_server(20).await;
    let tmp = tempfile::tempdir().unwrap();
    // The embedded server is poolbench's throwaway; its session setting
    // turned off, it looks like anyone else's server.
    let foreign = format!(
        "{}&options=-c%20poolbench.throwaway%3Doff",
        server.dsn_with_password()
    );
    let o = poolbench(vec![
        "run".into(),
        concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/quickstart.toml").into(),
        "--dsn".into(),
        foreign,
        "--out".into(),
        tmp.path().join("out").display().to_string(),
    ])
    .await;
    let (stdout, stderr) = (stdout(&o), stderr(&o));
    assert_eq!(
        o.status.code(),
        Some(2),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stderr.contains("--allow-setup"), "{stderr}");
    assert!(!stderr.contains(server.password()), "{stderr}");
    server.stop().await.unwrap();
}
