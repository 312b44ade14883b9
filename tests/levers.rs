//! What a connection costs in CPU and what the levers of
//! `[database.embedded]` save, against real embedded servers: fewer SCRAM
//! iterations cut the client's CPU by PBKDF2's share; the backend's CPU is
//! read for every connection, and client + server never exceed the
//! connect's wall time × the CPUs; direct TLS saves a round trip on
//! PostgreSQL 18 (npm's build, which `.ci/run` installs into target/pg18 by
//! scripts/install-pg18.sh) and is refused, clearly, by PostgreSQL 15.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use poolbench::backend::postgres::connect::open;
use poolbench::backend::postgres::Target;
use serde_json::Value;

mod common;
use common::{command, f, read_report, show, start_server, stderr, strategy, u, write_scenario};

/// PostgreSQL 18's binaries: target/pg18/bin, installed there by
/// scripts/install-pg18.sh (which `.ci/run` runs; done here once per test
/// binary when missing).
fn pg18_bin() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let dir = root.join("target/pg18");
        if !dir.join("bin/postgres").exists() {
            let status = std::process::Command::new(root.join("scripts/install-pg18.sh"))
                .arg(&dir)
                .current_dir(&root)
                .status()
                .expect("run scripts/install-pg18.sh");
            assert!(
                status.success(),
                "PostgreSQL 18 is not in {} and scripts/install-pg18.sh (npm) failed: {status}",
                dir.display()
            );
        }
        dir.join("bin")
    })
}

/// A fresh connection per request on the embedded server that
/// `[database.embedded]` (`embedded`) describes.
fn fresh(embedded: &str) -> String {
    format!(
        r#"
name = "levers"
[run]
duration = "1500ms"
warmup = "0s"
concurrency = 1

[database.embedded]
{embedded}

[[strategy]]
name = "fresh"
kind = "fresh"

[[query]]
name = "q"
sql = "SELECT 1"
"#
    )
}

/// `poolbench SUB FILE --out OUT`.
fn poolbench(sub: &str, file: &Path, out: &Path) -> tokio::process::Command {
    command([
        sub.as_ref(),
        file.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ])
}

/// Runs `body` on its own embedded server (PostgreSQL 18's with `pg18`),
/// with `extra` flags; its report.
async fn run(body: String, pg18: bool, extra: &[&str]) -> Value {
    let tmp = tempfile::tempdir().unwrap();
    let file = write_scenario(tmp.path(), "levers", &body);
    let out = tmp.path().join("out");
    let mut cmd = poolbench("run", &file, &out);
    cmd.args(["--no-html", "--quiet"]).args(extra);
    if pg18 {
        cmd.env("POOLBENCH_PG_BIN", pg18_bin());
    } else {
        cmd.env_remove("POOLBENCH_PG_BIN");
    }
    let o = cmd.output().await.unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    read_report(&out)
}

fn cpu<'a>(report: &'a Value, key: &str) -> &'a Value {
    &strategy(report, "fresh")["setup_cpu"][key]
}

/// SCRAM's PBKDF2 runs on the client at every connect: 4096 → 1024
/// iterations cut the client's CPU per connection by three quarters of
/// PBKDF2's share (measured at 4096), within ±30%. CPU time, not wall
/// time: the machine's load does not move it much.
#[tokio::test(flavor = "multi_thread")]
async fn fewer_scram_iterations_cut_the_clients_cpu_by_pbkdf2s_share() {
    let (at_4096, at_1024) = tokio::join!(
        run(fresh("scram_iterations = 4096"), false, &[]),
        run(fresh("scram_iterations = 1024"), false, &[]),
    );
    let p50 = |r: &Value, key: &str| u(&cpu(r, key)["p50_us"]) as f64;
    let pbkdf2 = p50(&at_4096, "client_scram_us");
    assert!(pbkdf2 > 0.0, "{}", strategy(&at_4096, "fresh"));
    let saved = p50(&at_4096, "client_us") - p50(&at_1024, "client_us");
    let expected = 0.75 * pbkdf2;
    assert!(
        (saved - expected).abs() <= 0.3 * expected,
        "client CPU fell by {saved} µs, three quarters of PBKDF2's {pbkdf2} µs is {expected}"
    );
    assert!(
        p50(&at_1024, "client_scram_us") < pbkdf2 / 2.0,
        "the proof at 1024 iterations: {}",
        cpu(&at_1024, "client_scram_us")
    );
    // Every connection's CPU measured, once.
    let s = strategy(&at_1024, "fresh");
    assert_eq!(
        u(&cpu(&at_1024, "client_us")["count"]),
        u(&s["connections_opened"])
    );
    // Without SCRAM there is no proof to compute.
    let trust = run(fresh("auth = \"trust\""), false, &[]).await;
    assert!(
        cpu(&trust, "client_scram_us").is_null(),
        "{}",
        strategy(&trust, "fresh")
    );
    assert!(u(&cpu(&trust, "client_us")["count"]) > 0);
}

/// The backend's CPU is read for every fresh connection to the embedded
/// server and is not zero; client + server never exceed the connect's
/// wall time × the CPUs (both ran on this machine within it).
#[tokio::test(flavor = "multi_thread")]
async fn server_cpu_is_measured_and_fits_in_the_connects_wall_time() {
    let server = start_server(10).await;
    let cpus = std::thread::available_parallelism().unwrap().get() as u64;
    for _ in 0..20 {
        let started = Instant::now();
        let opened = open(server.target(), None, started).await.expect("connect");
        let wall_us = (opened.ready_at - started).as_micros() as u64;
        let cpu = opened.setup.cpu.expect("the setup's CPU is measured");
        let server_us = cpu
            .server_us
            .expect("the embedded backend's CPU is visible");
        assert!(server_us > 0, "{cpu:?}");
        assert!(cpu.client_us > 0, "{cpu:?}");
        assert!(
            cpu.client_us + server_us <= wall_us * cpus,
            "client {} + server {server_us} µs of CPU in {wall_us} µs on {cpus} CPUs",
            cpu.client_us
        );
        assert_eq!(
            cpu.client_tcp_us + cpu.client_tls_us.unwrap() + cpu.client_startup_us,
            cpu.client_us,
            "{cpu:?}"
        );
        assert!(
            cpu.client_scram_us.unwrap() <= cpu.client_startup_us,
            "{cpu:?}"
        );
    }
    // A server known only by its DSN: its processes are not assumed to be
    // this machine's.
    let by_dsn = Target::parse(&server.dsn_with_password(), "--dsn").unwrap();
    let opened = open(&by_dsn, None, Instant::now()).await.unwrap();
    assert_eq!(opened.setup.cpu.unwrap().server_us, None);
    server.stop().await.unwrap();
}

/// The run's report and its explanation carry the split.
#[tokio::test(flavor = "multi_thread")]
async fn the_report_says_whose_cpu_a_connect_used() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write_scenario(tmp.path(), "levers", &fresh("tls = true"));
    let out = tmp.path().join("out");
    let o = poolbench("run", &file, &out)
        .args(["--no-html"])
        .env_remove("POOLBENCH_PG_BIN")
        .output()
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let report = read_report(&out);
    let e = &report["explanation"][0]["cpu"];
    let server_ms = f(&e["server_ms"]);
    let client_ms = f(&e["client_ms"]);
    assert!(server_ms > 0.0 && client_ms > 0.0, "{e}");
    let s = strategy(&report, "fresh");
    let mean = |key: &str| f(&s["setup_cpu"][key]["mean_us"]) / 1000.0;
    assert!((client_ms - mean("client_us")).abs() < 0.001, "{e}");
    assert!((server_ms - mean("server_us")).abs() < 0.001, "{e}");
    let text = common::stdout(&o);
    assert!(
        text.contains("  cpu      client ") && text.contains(" ms (SCRAM "),
        "{text}"
    );
}

/// PostgreSQL 18 (≥ 17): direct TLS skips the SSLRequest's round trip.
#[tokio::test(flavor = "multi_thread")]
async fn direct_tls_counts_one_round_trip_fewer_on_postgresql_18() {
    let rtt = ["--rtt", "20ms"];
    let (usual, direct) = tokio::join!(
        run(fresh("sslnegotiation = \"postgres\""), true, &rtt),
        run(fresh("sslnegotiation = \"direct\""), true, &rtt),
    );
    let trips = |r: &Value| u(&strategy(r, "fresh")["round_trips"]["connect"]["p50"]);
    assert_eq!(
        trips(&direct) + 1,
        trips(&usual),
        "direct {direct}\nusual {usual}"
    );
    assert!(
        report_version(&direct).starts_with("18."),
        "{}",
        report_version(&direct)
    );
}

fn report_version(r: &Value) -> String {
    r["server"]["version"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// PostgreSQL 15 reads a direct TLS handshake as a malformed startup
/// packet: the embedded lever is refused before the server starts, and a
/// DSN's sslnegotiation=direct fails with the reason.
#[tokio::test(flavor = "multi_thread")]
async fn direct_tls_is_refused_by_postgresql_15() {
    let server = start_server(10).await;
    assert!(
        server.version().starts_with("15."),
        "this test needs the distribution's PostgreSQL 15 (Debian 12's), found {}",
        server.version()
    );
    let tmp = tempfile::tempdir().unwrap();
    let file = write_scenario(tmp.path(), "levers", &fresh("sslnegotiation = \"direct\""));
    let out = tmp.path().join("out");
    let o = poolbench("run", &file, &out)
        .env_remove("POOLBENCH_PG_BIN")
        .output()
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(
        stderr(&o).contains("`sslnegotiation = \"direct\"` needs PostgreSQL 17 or later"),
        "{}",
        show(&o)
    );

    let dsn = format!("{}&sslnegotiation=direct", server.dsn_with_password());
    let file = write_scenario(tmp.path(), "dsn", &fresh(""));
    let o = poolbench("run", &file, &out)
        .args(["--dsn", &dsn])
        .output()
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    assert!(
        stderr(&o).contains("direct TLS needs PostgreSQL 17 or later"),
        "{}",
        show(&o)
    );
    assert!(!show(&o).contains(server.password()), "{}", show(&o));
    server.stop().await.unwrap();
}

/// `sweep --levers` at 20 ms: the scenario's server, then each lever on a
/// server of its own (PostgreSQL 18, so direct TLS is one), and the table
/// of what each saves.
#[tokio::test(flavor = "multi_thread")]
async fn sweep_levers_prints_what_each_lever_saves() {
    let tmp = tempfile::tempdir().unwrap();
    let body = fresh("").replace("1500ms", "1s");
    let file = write_scenario(tmp.path(), "levers", &body);
    let out = tmp.path().join("out");
    let o = poolbench("sweep", &file, &out)
        .args(["--levers", "--rtt", "20ms", "--no-html"])
        .env("POOLBENCH_PG_BIN", pg18_bin())
        .output()
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let sweep = common::read_json(&out.join("sweep.json"));
    assert_eq!(sweep["kind"], "levers");
    let point = |lever: &str| {
        sweep["points"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["lever"] == lever)
            .unwrap_or_else(|| panic!("no point {lever}: {sweep}"))
            .clone()
    };
    let saved_trips = |lever: &str| point(lever)["saved"]["round_trips"].as_i64().unwrap();
    assert_eq!(saved_trips("sslnegotiation = \"direct\""), 1);
    assert_eq!(saved_trips("tls = false"), 2);
    assert_eq!(saved_trips("auth = \"md5\""), 1);
    assert_eq!(saved_trips("tls_version = \"1.2\""), -1);
    // Six connects per lever: their whole client CPU varies by more than
    // the ~0.7 ms PBKDF2 saves in a debug build on a loaded machine, so the
    // lever is judged by the SCRAM share it cuts (the whole CPU's fall is
    // fewer_scram_iterations_cut_the_clients_cpu_by_pbkdf2s_share's).
    let iterations = point("scram_iterations = 1024");
    assert!(
        f(&iterations["client_scram_us"]) < 0.6 * f(&point("")["client_scram_us"]),
        "{iterations} against {}",
        point("")
    );
    assert_eq!(point("")["saved"], Value::Null);
    let text = common::stdout(&o);
    for line in [
        "auth = \"md5\": −1 round trip (−20 ms at 20 ms)",
        "sslnegotiation = \"direct\": −1 round trip (−20 ms at 20 ms)",
        "tls = false: −2 round trips (−40 ms at 20 ms)",
        "  not safe: md5 is deprecated",
    ] {
        assert!(text.contains(line), "{line:?} not in\n{text}");
    }
    // A DSN names a server poolbench does not start: refused at once.
    let o = poolbench("sweep", &file, &out)
        .args(["--levers", "--force", "--dsn", "postgres://u@127.0.0.1:1/d"])
        .output()
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(stderr(&o).contains("--levers changes the embedded server's settings"));
}
