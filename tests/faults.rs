//! What real servers do to a benchmark — restarts, connection limits, hung
//! queries, Ctrl-C — and bad input: each must end in a written report and
//! the documented exit code, never a panic or lost measurements.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use poolbench::embedded::StopMode;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr};

mod common;
use common::{
    command, no_panic, poolbench, postgres_running_in, read_report, show, start_server, stderr,
    write_scenario,
};

fn errors_of(s: &Value, class: &str) -> u64 {
    s["errors"][class].as_u64().unwrap_or(0)
}

/// The server restarts twice under a pool (fast, then immediate shutdown):
/// the run goes on, errors are classified, the pool drops dead connections
/// and throughput comes back, and the report is written.
#[tokio::test(flavor = "multi_thread")]
async fn pool_survives_server_restarts() {
    let mut server = start_server(50).await;
    let tmp = tempfile::tempdir().unwrap();
    let file = write_scenario(
        tmp.path(),
        "restart",
        r#"
[run]
duration = "12s"
warmup = "0s"
concurrency = 4

[[strategy]]
name = "pool"
kind = "pool"
max_size = 4
min_size = 4
wait_timeout = "2s"

[[query]]
name = "q"
sql = "SELECT pg_backend_pid()"
"#,
    );
    let out = tmp.path().join("out");
    let dsn = server.dsn_with_password();
    let args = [
        "run",
        file.to_str().unwrap(),
        "--dsn",
        &dsn,
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ];
    let child = command(args).spawn().unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    server
        .restart(StopMode::Fast, Duration::from_millis(700))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    server
        .restart(StopMode::Immediate, Duration::from_millis(700))
        .await
        .unwrap();
    let o = child.wait_with_output().await.unwrap();
    no_panic(&o);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let r = read_report(&out);
    let pool = &r["strategies"][0];
    let fault_errors = ["server_shutdown", "connection_lost", "connection_refused"]
        .iter()
        .map(|c| errors_of(pool, c))
        .sum::<u64>();
    assert!(
        fault_errors > 0,
        "restarts left no trace: {}",
        pool["errors"]
    );
    assert!(
        stderr(&o).contains("errors in pool"),
        "an error summary line: {}",
        show(&o)
    );
    // Recovery: the last seconds, after both restarts, serve requests again
    // on new connections.
    let timeline = pool["timeline"].as_array().unwrap();
    let last = &timeline[timeline.len() - 1];
    assert!(last["rps"].as_f64().unwrap() > 50.0, "no recovery: {last}");
    // The monitor reconnected too: the server's backends are counted again
    // in the last seconds (it retries once a second; on a loaded machine
    // its reconnection can miss the very last one).
    let recounted = timeline[timeline.len().saturating_sub(3)..]
        .iter()
        .any(|s| s["server_backends"].as_u64().is_some_and(|n| n >= 4));
    let seconds: Vec<String> = timeline
        .iter()
        .map(|s| {
            format!(
                "{} rps {} errors {} backends",
                s["rps"], s["errors"], s["server_backends"]
            )
        })
        .collect();
    assert!(
        recounted,
        "the monitor never came back: {seconds:#?} {}",
        pool["errors"]
    );
    assert!(
        pool["connections_opened"].as_u64().unwrap() > 4,
        "dead connections were replaced"
    );
    server.stop().await.unwrap();
}

/// Per-request connections meet "connection refused" while the server is
/// down; with max_error_rate set, the run exits 1 — report written.
#[tokio::test(flavor = "multi_thread")]
async fn error_rate_threshold_makes_the_run_fail() {
    let mut server = start_server(50).await;
    let tmp = tempfile::tempdir().unwrap();
    let file = write_scenario(
        tmp.path(),
        "threshold",
        r#"
[run]
duration = "5s"
warmup = "0s"
concurrency = 2
max_error_rate = 0.001

[[strategy]]
name = "fresh"
kind = "fresh"

[[query]]
name = "q"
sql = "SELECT 1"
"#,
    );
    let out = tmp.path().join("out");
    let dsn = server.dsn_with_password();
    let args = [
        "run",
        file.to_str().unwrap(),
        "--dsn",
        &dsn,
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ];
    let child = command(args).spawn().unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server
        .restart(StopMode::Fast, Duration::from_millis(1000))
        .await
        .unwrap();
    let o = child.wait_with_output().await.unwrap();
    no_panic(&o);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(stderr(&o).contains("max_error_rate"), "{}", show(&o));
    let fresh = &read_report(&out)["strategies"][0];
    assert!(
        errors_of(fresh, "connection_refused") > 0,
        "{}",
        fresh["errors"]
    );
    assert!(fresh["requests"].as_u64().unwrap() > 0);
    server.stop().await.unwrap();
}

/// 300 workers against max_connections 100: fresh connections are refused
/// (too_many_connections), a small pool with a short wait_timeout times out
/// (pool_timeout), nothing panics. Most requests of the pool fail, so the
/// headline says there is no valid comparison and the run exits 1.
#[tokio::test(flavor = "multi_thread")]
async fn limits_are_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write_scenario(
        tmp.path(),
        "limits",
        r#"
[run]
duration = "2s"
warmup = "0s"
concurrency = 300

[database.embedded]
max_connections = 100

[[strategy]]
name = "fresh"
kind = "fresh"

[[strategy]]
name = "pool"
kind = "pool"
max_size = 5
wait_timeout = "10ms"

[[query]]
name = "q"
sql = "SELECT pg_sleep(0.005)"
"#,
    );
    let out = tmp.path().join("out");
    let started = Instant::now();
    let o = poolbench(&[
        "run",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ])
    .await;
    no_panic(&o);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("not a valid comparison") && stdout.contains("of pool's requests failed"),
        "{}",
        show(&o)
    );
    assert!(!stdout.contains("connections add"), "{}", show(&o));
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "took {:?}",
        started.elapsed()
    );
    let r = read_report(&out);
    assert!(
        errors_of(&r["strategies"][0], "too_many_connections") > 0,
        "{}",
        r["strategies"][0]["errors"]
    );
    assert!(
        errors_of(&r["strategies"][1], "pool_timeout") > 0,
        "{}",
        r["strategies"][1]["errors"]
    );
    assert!(r["strategies"][1]["connections_opened"].as_u64().unwrap() <= 5);
}

/// A query that hangs is cut at request_timeout: the run ends within its
/// duration plus that bound, and counts request_timeout.
#[tokio::test(flavor = "multi_thread")]
async fn hung_requests_are_bounded_by_request_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write_scenario(
        tmp.path(),
        "hang",
        r#"
[run]
duration = "2s"
warmup = "0s"
concurrency = 3
request_timeout = "1s"

[[strategy]]
name = "pool"
kind = "pool"
max_size = 3

[[query]]
name = "sleepy"
sql = "SELECT pg_sleep(30)"
"#,
    );
    let out = tmp.path().join("out");
    let started = Instant::now();
    let o = poolbench(&[
        "run",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ])
    .await;
    let elapsed = started.elapsed();
    no_panic(&o);
    // Every request timed out, so the strategy measured nothing: exit 1.
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(
        elapsed < Duration::from_secs(15),
        "a 30 s query held the run for {elapsed:?}"
    );
    let pool = &read_report(&out)["strategies"][0];
    assert!(
        errors_of(pool, "request_timeout") >= 3,
        "{}",
        pool["errors"]
    );
    assert!(
        stderr(&o).contains("every request of strategy pool failed"),
        "{}",
        show(&o)
    );
}

/// `[run.retry]`: pool timeouts are retried with backoff; retries are
/// counted and the latency includes them.
#[tokio::test(flavor = "multi_thread")]
async fn retries_are_counted_and_timed() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write_scenario(
        tmp.path(),
        "retry",
        r#"
[run]
duration = "2s"
warmup = "0s"
concurrency = 4

[run.retry]
on = ["pool_timeout"]
max_attempts = 6
backoff = "20ms"

[[strategy]]
name = "pool"
kind = "pool"
max_size = 1
wait_timeout = "10ms"

[[query]]
name = "slow"
sql = "SELECT pg_sleep(0.03)"
"#,
    );
    let out = tmp.path().join("out");
    let o = poolbench(&[
        "run",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ])
    .await;
    no_panic(&o);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let pool = &read_report(&out)["strategies"][0];
    let retries = pool["retries"].as_u64().unwrap();
    let requests = pool["requests"].as_u64().unwrap();
    assert!(retries > 0, "{pool}");
    assert!(
        errors_of(pool, "pool_timeout") < retries,
        "some retries succeed: {}",
        pool["errors"]
    );
    // A retried request waited at least 10 ms for the pool and 10 ms of
    // backoff before its 30 ms query: the slowest total shows it.
    let total_max = pool["phases"]["total"]["max_us"].as_u64().unwrap();
    let query_p50 = pool["phases"]["query"]["p50_us"].as_u64().unwrap();
    assert!(
        total_max > query_p50 + 20_000,
        "total max {total_max} µs vs query p50 {query_p50} µs"
    );
    assert!(requests > 10);
}

/// Ctrl-C and SIGTERM: workers stop within 2 s, the partial report is
/// written and marked interrupted, the embedded server is stopped and its
/// directory removed, exit 130.
#[tokio::test(flavor = "multi_thread")]
async fn interruption_writes_the_partial_report_and_cleans_up() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let tmp = tempfile::tempdir().unwrap();
        let file = write_scenario(
            tmp.path(),
            "long",
            r#"
[run]
duration = "60s"
warmup = "0s"
concurrency = 4

[[strategy]]
name = "pool"
kind = "pool"
max_size = 4

[[strategy]]
name = "fresh"
kind = "fresh"

[[query]]
name = "q"
sql = "SELECT 1"
"#,
        );
        let out = tmp.path().join("out");
        let (mut child, mut lines, data_dir) = spawn_embedded_run(&file, &out).await;
        assert!(data_dir.exists());
        let rest = tokio::spawn(async move {
            let mut all = String::new();
            while let Ok(Some(line)) = lines.next_line().await {
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        tokio::time::sleep(Duration::from_secs(3)).await;
        let pid = child.id().unwrap() as libc::pid_t;
        // SAFETY: signalling our own child, still running.
        unsafe { libc::kill(pid, signal) };
        let signalled = Instant::now();
        let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
            .await
            .expect("poolbench exits after the signal")
            .unwrap();
        let took = signalled.elapsed();
        let err = rest.await.unwrap();
        assert_eq!(status.code(), Some(130), "signal {signal}: {err}");
        assert!(
            took < Duration::from_secs(5),
            "took {took:?} to stop after signal {signal}"
        );
        let r = read_report(&out);
        assert_eq!(r["interrupted"], true);
        let pool = &r["strategies"][0];
        assert!(
            pool["requests"].as_u64().unwrap() > 100,
            "what was measured is kept: {pool}"
        );
        assert!(!data_dir.exists(), "{} left behind", data_dir.display());
        assert!(
            !postgres_running_in(&data_dir),
            "a postgres process still uses {}",
            data_dir.display()
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// `poolbench run <file> --out <out>` on an embedded server, started: the
/// child, the rest of its stderr, and the server's data directory, which
/// stderr names once the server is ready.
async fn spawn_embedded_run(
    file: &Path,
    out: &Path,
) -> (Child, Lines<BufReader<ChildStderr>>, PathBuf) {
    let mut child = command([
        "run",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let Ok(Ok(Some(line))) =
            tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await
        else {
            break;
        };
        if let Some(rest) = line.split("(data in ").nth(1) {
            let data_dir = PathBuf::from(rest.trim_end_matches(')'));
            return (child, lines, data_dir);
        }
    }
    panic!("poolbench did not name the embedded server's directory");
}

/// A second Ctrl-C does not wait for the graceful end (report, server
/// shutdown): poolbench exits 130 at once, and the embedded server is still
/// stopped and its directory removed.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_interrupt_stops_at_once_and_leaves_no_server() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write_scenario(
        tmp.path(),
        "long",
        "[run]\nduration = \"60s\"\nwarmup = \"0s\"\nconcurrency = 2\n\n\
         [[strategy]]\nname = \"pool\"\nkind = \"pool\"\nmax_size = 2\n\n\
         [[query]]\nname = \"q\"\nsql = \"SELECT 1\"\n",
    );
    let out = tmp.path().join("out");
    let (mut child, mut lines, data_dir) = spawn_embedded_run(&file, &out).await;
    let pid = child.id().unwrap() as libc::pid_t;
    let mut next_line = async || {
        tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .ok()
            .and_then(Result::ok)
            .flatten()
    };
    let mut all = String::new();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // SAFETY: signalling our own child, still running.
    unsafe { libc::kill(pid, libc::SIGINT) };
    // The second as soon as the first is acknowledged: the graceful end
    // (report, server shutdown) takes far longer than that.
    while let Some(line) = next_line().await {
        all.push_str(&line);
        all.push('\n');
        if line.contains("interrupted:") {
            break;
        }
    }
    let signalled = Instant::now();
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGINT) };
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("poolbench exits after the second signal")
        .unwrap();
    let took = signalled.elapsed();
    while let Some(line) = next_line().await {
        all.push_str(&line);
        all.push('\n');
    }
    assert_eq!(status.code(), Some(130), "{all}");
    assert!(all.contains("interrupted again"), "{all}");
    assert!(took < Duration::from_secs(5), "took {took:?}:\n{all}");
    assert!(!data_dir.exists(), "{} left behind", data_dir.display());
    assert!(
        !postgres_running_in(&data_dir),
        "a postgres process still uses {}",
        data_dir.display()
    );
    assert!(!all.contains("panicked"), "{all}");
}

/// Bad input of every kind: a clear message naming what is wrong and the
/// documented exit code, never a panic.
#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_reported_with_its_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    let good = write_scenario(
        tmp.path(),
        "good",
        "[[strategy]]\nname = \"f\"\nkind = \"fresh\"\n[[query]]\nname = \"q\"\nsql = \"SELECT 1\"\n",
    );
    let empty = write_scenario(tmp.path(), "empty", "");
    let binary = tmp.path().join("binary.toml");
    std::fs::write(&binary, b"name = \"\xff\xfe\"\n").unwrap();
    let good = good.to_str().unwrap();
    let out = |name: &str| tmp.path().join(name).display().to_string();

    let cases: Vec<(Vec<String>, i32, &str)> = vec![
        (vec!["run".into(), out("missing.toml")], 2, "missing.toml"),
        (
            vec!["run".into(), tmp.path().display().to_string()],
            2,
            "directory",
        ),
        (vec!["run".into(), empty.display().to_string()], 2, "empty"),
        (vec!["run".into(), binary.display().to_string()], 2, "UTF-8"),
        (
            vec![
                "run".into(),
                good.into(),
                "--dsn".into(),
                "postgres://u:hunter2@127.0.0.1:notaport/db".into(),
                "--out".into(),
                out("o1"),
            ],
            2,
            "invalid DSN in --dsn",
        ),
        (
            // Nothing listens on port 1 of the loopback: refused at once.
            vec![
                "run".into(),
                good.into(),
                "--dsn".into(),
                "postgres://u:hunter2@127.0.0.1:1/db?connect_timeout=2".into(),
                "--out".into(),
                out("o2"),
            ],
            3,
            "cannot connect",
        ),
        (
            vec![
                "run".into(),
                good.into(),
                "--concurrency".into(),
                "0".into(),
            ],
            2,
            "--concurrency",
        ),
        (
            vec![
                "run".into(),
                good.into(),
                "--duration".into(),
                "soon".into(),
            ],
            2,
            "--duration",
        ),
        (
            vec![
                "run".into(),
                good.into(),
                "--only".into(),
                "nope".into(),
                "--out".into(),
                out("o3"),
            ],
            2,
            "--only nope",
        ),
    ];
    for (args, code, phrase) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = poolbench(&args).await;
        no_panic(&o);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {}", show(&o));
        assert!(
            stderr(&o).contains(phrase),
            "{args:?} should say {phrase:?}: {}",
            show(&o)
        );
        assert!(
            !show(&o).contains("hunter2"),
            "{args:?} shows the password: {}",
            show(&o)
        );
    }
}

/// A server that accepts TCP but never answers: the connect timeout bounds
/// the wait, exit 3.
#[tokio::test(flavor = "multi_thread")]
async fn a_silent_server_times_out() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let tmp = tempfile::tempdir().unwrap();
    let file = write_scenario(
        tmp.path(),
        "s",
        "[[strategy]]\nname = \"f\"\nkind = \"fresh\"\n[[query]]\nname = \"q\"\nsql = \"SELECT 1\"\n",
    );
    let dsn = format!("postgres://u:hunter2@127.0.0.1:{port}/db?connect_timeout=2");
    let started = Instant::now();
    let o = poolbench(&[
        "run",
        file.to_str().unwrap(),
        "--dsn",
        &dsn,
        "--out",
        tmp.path().join("o").to_str().unwrap(),
    ])
    .await;
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!show(&o).contains("hunter2"));
    drop(listener);
}

/// A wrong password: exit 3, the server's reason, and no password shown.
/// A setup that fails: exit 2 with the server's message. A query that fails
/// on every call: the run completes, the report is written, exit 1.
#[tokio::test(flavor = "multi_thread")]
async fn server_side_failures() {
    let server = start_server(20).await;
    let tmp = tempfile::tempdir().unwrap();
    let good = write_scenario(
        tmp.path(),
        "good",
        "[[strategy]]\nname = \"f\"\nkind = \"pool\"\nmax_size = 2\n[[query]]\nname = \"q\"\nsql = \"SELECT 1\"\n",
    );
    let wrong = server
        .dsn_with_password()
        .replace(server.password(), "not-the-password-42");
    let o = poolbench(&[
        "run",
        good.to_str().unwrap(),
        "--dsn",
        &wrong,
        "--out",
        tmp.path().join("o1").to_str().unwrap(),
    ])
    .await;
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    assert!(stderr(&o).contains("28P01"), "{}", show(&o));
    assert!(!show(&o).contains("not-the-password-42"));

    let bad_setup = write_scenario(
        tmp.path(),
        "bad_setup",
        "[setup]\nsql = \"CREATE TABLE t (id int); INSERT INTO nope VALUES (1);\"\n[[strategy]]\nname = \"f\"\nkind = \"fresh\"\n[[query]]\nname = \"q\"\nsql = \"SELECT 1\"\n",
    );
    let dsn = server.dsn_with_password();
    let o = poolbench(&[
        "run",
        bad_setup.to_str().unwrap(),
        "--dsn",
        &dsn,
        "--allow-setup",
        "--out",
        tmp.path().join("o2").to_str().unwrap(),
    ])
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(
        stderr(&o).contains("[setup] SQL") && stderr(&o).contains("42P01"),
        "{}",
        show(&o)
    );

    let failing = write_scenario(
        tmp.path(),
        "failing",
        "[run]\nduration = \"1s\"\nwarmup = \"0s\"\nconcurrency = 2\n[[strategy]]\nname = \"p\"\nkind = \"pool\"\nmax_size = 2\n[[query]]\nname = \"div\"\nsql = \"SELECT 1 / (random() * 0)::int\"\n",
    );
    let out = tmp.path().join("o3");
    let o = poolbench(&[
        "run",
        failing.to_str().unwrap(),
        "--dsn",
        &dsn,
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ])
    .await;
    no_panic(&o);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(
        stderr(&o).contains("every request of strategy p failed"),
        "{}",
        show(&o)
    );
    let p = &read_report(&out)["strategies"][0];
    assert!(errors_of(p, "query_error:22012") > 0, "{}", p["errors"]);
    server.stop().await.unwrap();
}

/// An existing report directory is kept unless --force; no temporary file
/// is left next to the reports.
#[tokio::test(flavor = "multi_thread")]
async fn reports_are_never_overwritten_without_force() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write_scenario(
        tmp.path(),
        "short",
        "[run]\nduration = \"1s\"\nwarmup = \"0s\"\nconcurrency = 2\n[[strategy]]\nname = \"p\"\nkind = \"pool\"\nmax_size = 2\n[[query]]\nname = \"q\"\nsql = \"SELECT 1\"\n",
    );
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("report.json"), "{\"precious\": true}").unwrap();
    let args = [
        "run",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ];
    let o = poolbench(&args).await;
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(stderr(&o).contains("--force"), "{}", show(&o));
    assert!(std::fs::read_to_string(out.join("report.json"))
        .unwrap()
        .contains("precious"));

    let mut forced = args.to_vec();
    forced.push("--force");
    let o = poolbench(&forced).await;
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(read_report(&out)["schema_version"], 1);
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "hlog",
            "report.html",
            "report.json",
            "summary.csv",
            "timeline.csv"
        ],
        "{names:?}"
    );
    let mut logs: Vec<String> = std::fs::read_dir(out.join("hlog"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    logs.sort();
    // A pool's own connections have their setup phases too; its acquire
    // its parts: waiting, and opening (min_size 0: its first requests open
    // them).
    assert_eq!(
        logs,
        [
            "p.acquire.hlog",
            "p.open.hlog",
            "p.query.hlog",
            "p.startup.hlog",
            "p.tcp.hlog",
            "p.tls.hlog",
            "p.total.hlog",
            "p.wait.hlog"
        ]
    );
}
