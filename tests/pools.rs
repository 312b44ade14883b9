//! A pool is what the scenario says, whatever threads poolbench runs on:
//! one pool of `max_size` shared by every thread, `instances` pools of
//! `max_size` each, checked against what the server saw; a strategy's own
//! target and unnamed statements (`statement_cache = false`).

use serde_json::Value;

mod common;
use common::{on_server, read_report, show, start_server, stdout, u, write_scenario};

/// Runs `body` with `--threads 4` and returns its one strategy's report.
async fn run_pool(body: &str) -> Value {
    let server = start_server(100).await;
    run_on(&server.dsn_with_password(), body).await.1["strategies"][0].clone()
}

/// Runs `body` against `dsn` with `--threads 4`: stdout and the report.
async fn run_on(dsn: &str, body: &str) -> (String, Value) {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = write_scenario(tmp.path(), "pools", body);
    let out = tmp.path().join("out");
    let o = on_server("run", &scenario, dsn, &out, &["--threads", "4"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    (stdout(&o), read_report(&out))
}

/// The most client backends the server held in any second of the timeline.
fn peak_backends(s: &Value) -> u64 {
    s["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|row| row["server_backends"].as_u64())
        .max()
        .expect("sampled backends")
}

fn scenario(concurrency: u32, pool: &str) -> String {
    // Each request holds its connection for a few milliseconds, so every
    // pool is kept full and would open more if it were allowed to.
    format!(
        r#"
name = "pools"
[run]
duration = "2s"
warmup = "0s"
concurrency = {concurrency}
seed = 3

[[strategy]]
name = "pool"
kind = "pool"
{pool}

[[query]]
name = "sleep"
sql = "SELECT pg_sleep(0.005)"
"#
    )
}

/// `max_size = 10` over 4 threads and 16 workers is one pool of 10: exactly
/// 10 connections opened (not 4 pools of 10, nor 4 of 2 or 3), and the
/// server never holds more.
#[tokio::test(flavor = "multi_thread")]
async fn one_pool_is_shared_by_every_thread() {
    let s = run_pool(&scenario(16, "max_size = 10")).await;
    assert_eq!(s["shards"], 4, "{s}");
    assert_eq!(u(&s["connections_opened"]), 10, "{s}");
    assert!(s["errors"].as_object().unwrap().is_empty(), "{s}");
    let peak = peak_backends(&s);
    assert!((8..=10).contains(&peak), "peak backends {peak}");
}

/// `instances = 4` is four pools of 10: 40 connections under 48 workers,
/// never more, and the server saw them.
#[tokio::test(flavor = "multi_thread")]
async fn instances_are_separate_pools() {
    let s = run_pool(&scenario(48, "max_size = 10\ninstances = 4")).await;
    assert_eq!(u(&s["connections_opened"]), 40, "{s}");
    assert!(s["errors"].as_object().unwrap().is_empty(), "{s}");
    let peak = peak_backends(&s);
    assert!((30..=40).contains(&peak), "peak backends {peak}");
}

/// A pool smaller than the threads is not cut down to fewer threads (nor
/// into pools of one): 4 threads share 2 connections.
#[tokio::test(flavor = "multi_thread")]
async fn a_pool_smaller_than_the_threads_is_still_one_pool() {
    let s = run_pool(&scenario(8, "max_size = 2\nmin_size = 2")).await;
    assert_eq!(s["shards"], 4, "{s}");
    assert_eq!(u(&s["connections_opened"]), 2, "{s}");
    assert!(s["errors"].as_object().unwrap().is_empty(), "{s}");
    assert!(peak_backends(&s) <= 2);
}

/// A strategy with its own `dsn` connects there (here: the same server,
/// another application_name) and the header and report name it without
/// its password; `statement_cache = false` runs unnamed statements, with
/// their parameters, without errors.
#[tokio::test(flavor = "multi_thread")]
async fn own_target_and_unnamed_statements() {
    let server = start_server(100).await;
    let dsn = server.dsn_with_password();
    let own = format!(
        "{dsn}{}application_name=own-target",
        if dsn.contains('?') { "&" } else { "?" }
    );
    let body = format!(
        r#"
name = "targets"
[run]
duration = "1s"
warmup = "0s"
concurrency = 4
seed = 3

[[strategy]]
name = "own"
kind = "pool"
max_size = 4
instances = 2
statement_cache = false
dsn = "{own}"

[[query]]
name = "lookup"
sql = "SELECT $1::int8 + 1"
params = [{{ int = [1, 1000] }}]
"#
    );
    let (stdout, report) = run_on(&dsn, &body).await;
    let s = &report["strategies"][0];
    assert!(u(&s["requests"]) > 10, "{s}");
    assert!(s["errors"].as_object().unwrap().is_empty(), "{s}");
    assert_eq!(s["settings"]["statement_cache"], false, "{s}");
    assert_eq!(s["settings"]["instances"], 2, "{s}");
    let target = s["target"].as_str().expect("the strategy's target");
    assert!(target.contains(":****@"), "{target}");
    assert!(stdout.contains(target), "{stdout}");
    assert!(!stdout.contains(server.password()), "{stdout}");
    assert!(!report.to_string().contains(server.password()));
    // Its own target decides the server connections, so no budget.
    assert!(s.get("max_server_connections").is_none(), "{s}");
}

/// The header says how many server connections each strategy may hold
/// against max_connections, and the report records it.
#[tokio::test(flavor = "multi_thread")]
async fn the_budget_is_shown_against_max_connections() {
    let server = start_server(30).await;
    let (stdout, report) = run_on(
        &server.dsn_with_password(),
        &scenario(4, "max_size = 10\ninstances = 4"),
    )
    .await;
    assert!(
        stdout.contains("may hold 40 server connections, more than max_connections 30"),
        "{stdout}"
    );
    assert_eq!(report["strategies"][0]["max_server_connections"], 40);
}
