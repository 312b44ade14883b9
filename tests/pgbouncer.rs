//! `via = "pgbouncer"` against the distribution's real PgBouncer in front of
//! the embedded server: transaction pooling with unnamed statements serves
//! several app pools within PgBouncer's pool; named statements through it
//! are refused before measuring; PgBouncer and its directory are gone after
//! a normal exit, an error and Ctrl-C.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

mod common;
use common::{read_report, write_scenario};

const BIN: &str = env!("CARGO_BIN_EXE_poolbench");

fn scenario(duration: &str, cache: bool, sql: &str) -> String {
    format!(
        r#"
name = "bouncer"
[run]
duration = "{duration}"
warmup = "0s"
concurrency = 16
seed = 4

[[strategy]]
name = "apps-via-pgbouncer"
kind = "pool"
max_size = 10
instances = 4
via = "pgbouncer"
statement_cache = {cache}

[pgbouncer]
pool_mode = "transaction"
default_pool_size = 5

[[query]]
name = "q"
sql = "{sql}"
params = [{{ int = [1, 1000] }}]
"#
    )
}

fn spawn(file: &Path, out: &Path) -> Child {
    Command::new(BIN)
        .args([
            "run",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .env_remove("DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start poolbench")
}

/// Reads stderr until PgBouncer's directory is named; returns it and a task
/// collecting the rest of stderr.
async fn pgbouncer_dir(child: &mut Child) -> (PathBuf, tokio::task::JoinHandle<String>) {
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut dir = None;
    while dir.is_none() && Instant::now() < deadline {
        let Ok(Ok(Some(line))) =
            tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await
        else {
            break;
        };
        if line.contains("embedded PgBouncer") {
            if let Some(rest) = line.split("; in ").nth(1) {
                dir = Some(PathBuf::from(rest.trim_end_matches(')')));
            }
        }
        seen.push_str(&line);
        seen.push('\n');
    }
    let dir = dir.unwrap_or_else(|| panic!("poolbench names PgBouncer's directory:\n{seen}"));
    let rest = tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            seen.push_str(&line);
            seen.push('\n');
        }
        seen
    });
    (dir, rest)
}

/// No process runs with a configuration from `dir`, and `dir` is gone.
fn assert_gone(dir: &Path) {
    assert!(!dir.exists(), "{} left behind", dir.display());
    let needle = dir.join("pgbouncer.ini").display().to_string();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(
            !cmdline.contains(&needle),
            "PgBouncer still runs: {cmdline}"
        );
    }
}

/// Four app pools of 10 through PgBouncer in transaction mode with unnamed
/// statements: no errors, and the server never holds more than PgBouncer's
/// default_pool_size of 5 backends (the app pools hold 40 client
/// connections to PgBouncer). PgBouncer's pools join the timeline; the
/// target is shown without its password; everything is gone afterwards.
#[tokio::test(flavor = "multi_thread")]
async fn transaction_pooling_serves_several_pools_within_its_own() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write_scenario(
        tmp.path(),
        "bouncer",
        &scenario("2s", false, "SELECT $1::int8 + 1, pg_sleep(0.002)"),
    );
    let out = tmp.path().join("out");
    let mut child = spawn(&file, &out);
    let (dir, rest) = pgbouncer_dir(&mut child).await;
    let output = child.wait_with_output().await.unwrap();
    let stderr = rest.await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_gone(&dir);

    let report = read_report(&out);
    let s = &report["strategies"][0];
    assert!(s["requests"].as_u64().unwrap() > 50, "{s}");
    assert!(s["errors"].as_object().unwrap().is_empty(), "{s}");
    assert_eq!(s["max_server_connections"], 5, "{s}");
    let target = s["target"].as_str().unwrap();
    assert!(target.contains(":****@"), "{target}");
    assert!(
        stdout.contains("through the embedded PgBouncer"),
        "{stdout}"
    );
    let rows = s["timeline"].as_array().unwrap();
    let peak = rows
        .iter()
        .filter_map(|r| r["server_backends"].as_u64())
        .max()
        .unwrap();
    assert!((1..=5).contains(&peak), "server backends peaked at {peak}");
    let bouncer: Vec<&Value> = rows.iter().map(|r| &r["pgbouncer"]).collect();
    assert!(bouncer.iter().all(|p| p.is_object()), "{rows:?}");
    assert!(bouncer
        .iter()
        .all(|p| { p["sv_active"].as_u64().unwrap() + p["sv_idle"].as_u64().unwrap() <= 5 }));
    assert!(bouncer
        .iter()
        .any(|p| p["cl_active"].as_u64().unwrap() + p["cl_waiting"].as_u64().unwrap() > 5));
}

/// Named statements (the default statement cache) through transaction
/// pooling cannot work: refused before anything starts, with the fix.
#[tokio::test]
async fn named_statements_through_transaction_pooling_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write_scenario(
        tmp.path(),
        "named",
        &scenario("2s", true, "SELECT $1::int8"),
    );
    let o = Command::new(BIN)
        .args(["run", file.to_str().unwrap(), "--out"])
        .arg(tmp.path().join("out"))
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("named.toml:"), "{stderr}");
    assert!(stderr.contains("transaction pooling"), "{stderr}");
    assert!(stderr.contains("statement_cache = false"), "{stderr}");
    assert!(
        !stderr.contains("embedded"),
        "nothing was started: {stderr}"
    );
}

/// An error after PgBouncer started (a query the server rejects) and
/// Ctrl-C during the run: PgBouncer and its directory are gone either way.
#[tokio::test(flavor = "multi_thread")]
async fn pgbouncer_is_removed_on_error_and_on_ctrl_c() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = write_scenario(
        tmp.path(),
        "bad",
        &scenario("2s", false, "SELECT $1::int8 FROM no_such_table"),
    );
    let mut child = spawn(&bad, &tmp.path().join("bad-out"));
    let (dir, rest) = pgbouncer_dir(&mut child).await;
    let status = child.wait().await.unwrap();
    let stderr = rest.await.unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no_such_table"), "{stderr}");
    assert_gone(&dir);

    let long = write_scenario(
        tmp.path(),
        "long",
        &scenario("60s", false, "SELECT $1::int8"),
    );
    let mut child = spawn(&long, &tmp.path().join("long-out"));
    let (dir, rest) = pgbouncer_dir(&mut child).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid = child.id().unwrap() as libc::pid_t;
    // SAFETY: signalling our own child, still running.
    unsafe { libc::kill(pid, libc::SIGINT) };
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("poolbench exits after Ctrl-C")
        .unwrap();
    let stderr = rest.await.unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert_gone(&dir);
}

/// A PgBouncer poolbench cannot inspect (given as a strategy's `dsn`) in
/// transaction mode, with named statements: the first "prepared statement
/// does not exist" stops the strategy with the reason and the fix, rather
/// than counting errors for the whole window; the next strategy still runs.
#[tokio::test(flavor = "multi_thread")]
async fn an_external_pooler_losing_statements_stops_the_strategy() {
    use poolbench::embedded::pgbouncer::PgBouncer;
    use poolbench::scenario::{PgBouncerSettings, PoolMode};

    let server = common::start_server(50).await;
    let bouncer = PgBouncer::start(
        &server,
        &PgBouncerSettings {
            pool_mode: PoolMode::Transaction,
            default_pool_size: 2,
            max_client_conn: 100,
        },
    )
    .await
    .unwrap();
    let external = format!(
        "postgres://{}:{}@127.0.0.1:{}/{}?sslmode=require",
        server.user(),
        server.password(),
        bouncer.port(),
        server.dbname()
    );
    let tmp = tempfile::tempdir().unwrap();
    let file = write_scenario(
        tmp.path(),
        "external",
        &format!(
            r#"
[run]
duration = "20s"
warmup = "0s"
concurrency = 8

[[strategy]]
name = "external"
kind = "pool"
max_size = 8
dsn = "{external}"

[[strategy]]
name = "direct"
kind = "pool"
max_size = 2

[[query]]
name = "q"
sql = "SELECT $1::int8"
params = [{{ int = [1, 1000] }}]
"#
        ),
    );
    let out = tmp.path().join("out");
    let o = Command::new(BIN)
        .args(["run", file.to_str().unwrap(), "--duration", "3s", "--out"])
        .arg(&out)
        .arg("--dsn")
        .arg(server.dsn_with_password())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!stdout.contains(server.password()) && !stderr.contains(server.password()));
    let report = read_report(&out);
    let external = &report["strategies"][0];
    let errors: u64 = external["errors"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert!((1..=50).contains(&errors), "{external}");
    assert!(external["measured_s"].as_f64().unwrap() < 2.0, "{external}");
    let sample = external["error_samples"].to_string();
    assert!(sample.contains("statement_cache = false"), "{sample}");
    assert!(stdout.contains("statement_cache = false"), "{stdout}");
    let direct = &report["strategies"][1];
    assert!(direct["requests"].as_u64().unwrap() > 50, "{direct}");
    assert_eq!(report["interrupted"], false);
    drop(bouncer);
}
