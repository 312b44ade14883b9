//! What an adversary tries (issue 10): sizes nobody can run, very long
//! windows cut short, closed pipes, results that mislead, unbounded reads,
//! a taken port, leftovers, and the smaller truths of a report. Each test
//! runs the binary against a real server and would fail without its fix.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use poolbench::embedded::{EmbeddedOptions, EmbeddedServer};
use poolbench::scenario::AuthMethod;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

mod common;
use common::{
    command, no_panic, poolbench, postgres_running_in, read_report, show, start_server,
    write_scenario, BIN,
};

/// A directory for TMPDIR that the embedded server's user may enter.
fn private_tmp() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    tmp
}

/// The embedded clusters under `tmp`.
fn clusters(tmp: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("poolbench-pg-"))
        })
        .collect()
}

const SELECT1: &str = "[[strategy]]\nname = \"pool\"\nkind = \"pool\"\nmax_size = 2\n\n\
                       [[query]]\nname = \"q\"\nsql = \"SELECT 1\"\n";

/// Class 1: a value beyond its limit is refused by `run` exactly as by
/// `validate` (exit 2, the limit named), before any server is started.
#[tokio::test(flavor = "multi_thread")]
async fn run_refuses_what_validate_refuses_before_starting_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let huge = write_scenario(
        tmp.path(),
        "huge",
        &format!("[run]\nconcurrency = 4000000000\n\n{SELECT1}"),
    );
    let huge = huge.to_str().unwrap();
    let out = tmp.path().join("out");
    let out = out.to_str().unwrap();
    for args in [vec!["validate", huge], vec!["run", huge, "--out", out]] {
        let o = poolbench(&args).await;
        no_panic(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", show(&o));
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(
            stderr.contains("huge.toml:2:15: `concurrency` must be at most 10000"),
            "{stderr}"
        );
        assert!(!stderr.contains("embedded"), "{stderr}");
    }
    let ok = write_scenario(tmp.path(), "ok", SELECT1);
    let ok = ok.to_str().unwrap();
    for (flags, phrase) in [
        (
            vec!["--duration", "1000000years"],
            "--duration must be at most 24h",
        ),
        (vec!["--duration", "12h", "--rounds", "3"], "of measuring"),
        (
            vec!["--rate", "0.000001"],
            "--rate must be from 0.01 to 1000000",
        ),
        (
            vec!["--concurrency", "10001"],
            "--concurrency must be from 1 to 10000",
        ),
    ] {
        let mut args = vec!["run", ok, "--out", out];
        args.extend(flags.iter());
        let o = poolbench(&args).await;
        no_panic(&o);
        assert_eq!(o.status.code(), Some(2), "{flags:?}: {}", show(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(phrase),
            "{flags:?}: {}",
            show(&o)
        );
    }
    assert!(
        !Path::new(out).exists(),
        "a refused run leaves no directory"
    );
}

/// Class 2: a window of nearly a day, cut short by SIGTERM after a few
/// seconds, writes its report at once, holding only the seconds that ran.
#[tokio::test(flavor = "multi_thread")]
async fn a_very_long_run_interrupted_keeps_what_it_measured() {
    let server = start_server(20).await;
    let tmp = tempfile::tempdir().unwrap();
    let file = write_scenario(tmp.path(), "long", SELECT1);
    let out = tmp.path().join("out");
    let dsn = server.dsn_with_password();
    let child = command([
        "run",
        file.to_str().unwrap(),
        "--dsn",
        &dsn,
        "--out",
        out.to_str().unwrap(),
        "--duration",
        "23h",
        "--warmup",
        "0s",
        "--quiet",
    ])
    .spawn()
    .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // SAFETY: signalling our own child, still running.
    unsafe { libc::kill(child.id().unwrap() as libc::pid_t, libc::SIGTERM) };
    let signalled = Instant::now();
    let o = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("poolbench ends after SIGTERM")
        .unwrap();
    no_panic(&o);
    assert_eq!(o.status.code(), Some(130), "{}", show(&o));
    assert!(signalled.elapsed() < Duration::from_secs(5));
    let r = read_report(&out);
    assert_eq!(r["interrupted"], true);
    let pool = &r["strategies"][0];
    let rows = pool["timeline"].as_array().unwrap();
    assert!(
        (1..=5).contains(&rows.len()),
        "{} rows for ~2.5 s",
        rows.len()
    );
    assert!(pool["requests"].as_u64().unwrap() > 0, "{pool}");
    server.stop().await.unwrap();
}

/// Class 3: a reader that leaves (`| head -1`, also with `2>&1`) ends the
/// run as a signal would: exit 141, no panic, the report written, the
/// embedded server stopped and its directory removed.
#[tokio::test(flavor = "multi_thread")]
async fn a_closed_output_ends_the_run_like_a_signal() {
    let tmp = private_tmp();
    let file = write_scenario(
        tmp.path(),
        "pipe",
        &format!("[run]\nduration = \"1s\"\nwarmup = \"0s\"\nconcurrency = 2\n\n{SELECT1}"),
    );
    for (n, redirect) in ["2>/dev/null", "2>&1"].iter().enumerate() {
        let out = tmp.path().join(format!("out{n}"));
        let script = format!(
            "\"$0\" run \"$1\" --out \"$2\" {redirect} | head -1 >/dev/null; exit ${{PIPESTATUS[0]}}"
        );
        let o = tokio::process::Command::new("bash")
            .args(["-c", &script, BIN])
            .arg(&file)
            .arg(&out)
            .env("TMPDIR", tmp.path())
            .env_remove("DATABASE_URL")
            .output()
            .await
            .unwrap();
        no_panic(&o);
        assert_eq!(o.status.code(), Some(141), "{redirect}: {}", show(&o));
        let r = read_report(&out);
        assert_eq!(r["schema_version"], 1, "{redirect}");
        assert!(
            clusters(tmp.path()).is_empty(),
            "{redirect}: the embedded server's directory is left: {:?}",
            clusters(tmp.path())
        );
        assert!(!postgres_running_in(tmp.path()), "{redirect}");
    }
}

/// Class 4: results that would mislead are refused before measuring or
/// reported for what they are, with exit 1.
#[tokio::test(flavor = "multi_thread")]
async fn misleading_results_are_refused_or_called_what_they_are() {
    let server = start_server(20).await;
    let dsn = server.dsn_with_password();
    let tmp = tempfile::tempdir().unwrap();
    let run = |file: &Path, out: &str| {
        let out = tmp.path().join(out);
        let args: Vec<String> = vec![
            "run".into(),
            file.display().to_string(),
            "--dsn".into(),
            dsn.clone(),
            "--allow-setup".into(),
            "--out".into(),
            out.display().to_string(),
            "--quiet".into(),
        ];
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            (poolbench(&args).await, out)
        }
    };

    // An int range wider than the column's int2: refused before measuring.
    let narrow = write_scenario(
        tmp.path(),
        "int2",
        "[setup]\nsql = \"CREATE TABLE IF NOT EXISTS small (a int2)\"\n\n\
         [[strategy]]\nname = \"pool\"\nkind = \"pool\"\nmax_size = 2\n\n\
         [[query]]\nname = \"q\"\nsql = \"SELECT count(*) FROM small WHERE a = $1\"\n\
         params = [{ int = [1, 100000] }]\n",
    );
    let (o, out) = run(&narrow, "o1").await;
    no_panic(&o);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("$1 has type int2 on the server, which holds -32768..32767"),
        "{}",
        show(&o)
    );
    assert!(!out.join("report.json").exists());

    // Most requests of the pool fail: no verdict, exit 1.
    let failing = write_scenario(
        tmp.path(),
        "failing",
        "[run]\nduration = \"1s\"\nwarmup = \"0s\"\nconcurrency = 2\n\n\
         [[strategy]]\nname = \"fresh\"\nkind = \"fresh\"\n\n\
         [[strategy]]\nname = \"pool\"\nkind = \"pool\"\nmax_size = 2\n\n\
         [[query]]\nname = \"q\"\n\
         sql = \"SELECT 1 / (CASE WHEN random() < 0.9 THEN 0 ELSE 1 END)\"\n",
    );
    let (o, out) = run(&failing, "o2").await;
    no_panic(&o);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("not a valid comparison") && stdout.contains("query_error:22012"),
        "{}",
        show(&o)
    );
    assert!(!stdout.contains("connections add"), "{}", show(&o));
    let r = read_report(&out);
    let pool = r["strategies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "pool")
        .unwrap();
    assert!(pool["errors"]["query_error:22012"].as_u64().unwrap() > 0);

    // A run that measured nothing: exit 1, saying so.
    let nothing = write_scenario(
        tmp.path(),
        "nothing",
        &format!(
            "[run]\nduration = \"1s\"\nwarmup = \"0s\"\nrate = 0.01\narrival = \"uniform\"\n\n\
             {SELECT1}"
        ),
    );
    let (o, out) = run(&nothing, "o3").await;
    no_panic(&o);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("strategy pool measured nothing"),
        "{}",
        show(&o)
    );
    assert_eq!(read_report(&out)["strategies"][0]["requests"], 0);
    server.stop().await.unwrap();
}

/// Class 5: an array where a table belongs is refused, never executed.
#[tokio::test(flavor = "multi_thread")]
async fn an_array_for_a_table_is_never_run() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write_scenario(
        tmp.path(),
        "array",
        &format!("setup = [\"CREATE TABLE should_not_exist (a int)\"]\n\n{SELECT1}"),
    );
    let o = poolbench(&["run", file.to_str().unwrap(), "--out", "/nonexistent/x"]).await;
    no_panic(&o);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("array.toml:1:9: found an array where the format has a table `[setup]`"),
        "{}",
        show(&o)
    );
}

/// Class 6: compare, plan and merge read what they are given with a cap:
/// a device or a pipe that never ends is refused at once.
#[tokio::test(flavor = "multi_thread")]
async fn inputs_that_never_end_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("endless.json");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string and mode.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    // A writer that never stops: an object's start, then spaces (valid
    // JSON padding) forever.
    let writer_path = fifo.clone();
    std::thread::spawn(move || {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(writer_path) {
            let chunk = vec![b' '; 1 << 16];
            if f.write_all(b"{").is_ok() {
                while f.write_all(&chunk).is_ok() {}
            }
        }
    });
    let base = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/reports/base.json"
    );
    let merged = tmp.path().join("merged");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["compare", base, "/dev/zero"],
            "not a poolbench report.json",
        ),
        (
            vec!["compare", base, "/dev/urandom"],
            "not a poolbench report.json",
        ),
        (
            vec![
                "plan",
                "--sweep",
                "/dev/zero",
                "--rps",
                "10",
                "--p99",
                "5ms",
            ],
            "not JSON",
        ),
        (
            vec![
                "merge",
                base,
                "/dev/zero",
                "--out",
                merged.to_str().unwrap(),
            ],
            "not a poolbench report.json",
        ),
        // The same cap as compare's, at 64 MiB rather than 1 GiB.
        (
            vec![
                "plan",
                "--sweep",
                fifo.to_str().unwrap(),
                "--rps",
                "10",
                "--p99",
                "5ms",
            ],
            "the sweep is larger than poolbench reads (64 MiB)",
        ),
    ];
    for (args, phrase) in cases {
        let started = Instant::now();
        let o = tokio::time::timeout(Duration::from_secs(60), poolbench(&args))
            .await
            .expect("refused, not read forever");
        no_panic(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", show(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(phrase),
            "{args:?}: {}",
            show(&o)
        );
        assert!(started.elapsed() < Duration::from_secs(30), "{args:?}");
    }
    assert!(!merged.exists());
}

/// Class 7: `poolbench server --port N` where another server already
/// answers must not report ready with that server's DSN.
#[tokio::test(flavor = "multi_thread")]
async fn a_taken_port_is_not_taken_for_the_embedded_server() {
    let other = EmbeddedServer::start(&EmbeddedOptions {
        auth: AuthMethod::Trust,
        tls: false,
        port: None,
        max_connections: 10,
        ..EmbeddedOptions::default()
    })
    .await
    .unwrap();
    let port = other.port().to_string();
    let o = tokio::time::timeout(
        Duration::from_secs(60),
        poolbench(&["server", "--auth", "trust", "--no-tls", "--port", &port]),
    )
    .await
    .expect("gives up");
    no_panic(&o);
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    assert!(o.stdout.is_empty(), "a DSN was printed: {}", show(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains(&format!("port {port} on 127.0.0.1 is already in use")),
        "{stderr}"
    );
    other.stop().await.unwrap();
}

/// Class 8: nothing is left behind — no empty --out when the database
/// cannot be reached, an unwritable --out found before measuring, no
/// temporary file when the disk is full, and the clusters of a poolbench
/// killed outright removed by the next one.
#[tokio::test(flavor = "multi_thread")]
async fn nothing_is_left_behind() {
    let server = start_server(20).await;
    let dsn = server.dsn_with_password();
    let tmp = private_tmp();
    let file = write_scenario(
        tmp.path(),
        "short",
        &format!("[run]\nduration = \"1s\"\nwarmup = \"0s\"\nconcurrency = 2\n\n{SELECT1}"),
    );
    let file = file.to_str().unwrap();

    // Unreachable: exit 3 and no --out directory.
    let out = tmp.path().join("unreachable/out");
    let o = poolbench(&[
        "run",
        file,
        "--dsn",
        "postgres://u:p@127.0.0.1:1/db?connect_timeout=2",
        "--out",
        out.to_str().unwrap(),
    ])
    .await;
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    assert!(!tmp.path().join("unreachable").exists(), "{}", show(&o));

    // Not writable (as a user who may not write in it): exit 3 before
    // measuring anything.
    let locked = tmp.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
    let mut cmd = command([
        "run",
        file,
        "--dsn",
        &dsn,
        "--out",
        locked.to_str().unwrap(),
    ]);
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        // Root writes anywhere: run as nobody, who may read the scenario.
        cmd.as_std_mut().uid(65534).gid(65534);
    }
    let started = Instant::now();
    let o = cmd.output().await.unwrap();
    no_panic(&o);
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("cannot write in the results directory"),
        "{}",
        show(&o)
    );
    assert!(started.elapsed() < Duration::from_secs(5), "measured first");

    // A full disk (a file size limit): exit 3, no temporary file left.
    let full = tmp.path().join("full");
    let mut cmd = command(["run", file, "--dsn", &dsn, "--out", full.to_str().unwrap()]);
    // SAFETY: the closure runs between fork and exec and only makes
    // async-signal-safe calls.
    unsafe {
        cmd.as_std_mut().pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit {
                rlim_cur: 4096,
                rlim_max: 4096,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = cmd.output().await.unwrap();
    no_panic(&o);
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("cannot write"),
        "{}",
        show(&o)
    );
    let left: Vec<String> = std::fs::read_dir(&full)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        !left.iter().any(|n| n.contains(".tmp-")),
        "temporary files left: {left:?}"
    );
    server.stop().await.unwrap();

    // SIGKILL: the cluster stays until the next embedded start.
    let long = write_scenario(
        tmp.path(),
        "long",
        &format!("[run]\nduration = \"60s\"\nwarmup = \"0s\"\nconcurrency = 2\n\n{SELECT1}"),
    );
    let mut child = command([
        "run",
        long.to_str().unwrap(),
        "--out",
        tmp.path().join("killed").to_str().unwrap(),
    ])
    .env("TMPDIR", tmp.path())
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut data_dir = None;
    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await
    {
        if let Some(rest) = line.split("(data in ").nth(1) {
            data_dir = Some(PathBuf::from(rest.trim_end_matches(')')));
            break;
        }
    }
    let data_dir = data_dir.expect("poolbench names the embedded server's directory");
    child.kill().await.unwrap();
    // The postmaster follows its poolbench down (parent-death signal).
    let deadline = Instant::now() + Duration::from_secs(20);
    while postgres_running_in(&data_dir) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(data_dir.exists(), "SIGKILL leaves the directory");
    // Not ours to remove: unmarked, or marked by a live process.
    let unmarked = tmp.path().join("poolbench-pg-unmarked");
    std::fs::create_dir(&unmarked).unwrap();
    let alive = tmp.path().join("poolbench-pg-alive");
    std::fs::create_dir(&alive).unwrap();
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let start = stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .nth(19)
        .unwrap()
        .to_string();
    std::fs::write(
        alive.join("poolbench.owner"),
        format!("pid={}\nstart={start}\n", std::process::id()),
    )
    .unwrap();

    let o = command([
        "run",
        file,
        "--out",
        tmp.path().join("next").to_str().unwrap(),
        "--quiet",
    ])
    .env("TMPDIR", tmp.path())
    .output()
    .await
    .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(
        !data_dir.exists(),
        "the dead poolbench's cluster was removed"
    );
    assert!(unmarked.exists() && alive.exists());
}

/// Class 9: the timeline's error total equals the report's after the
/// postmaster is killed (a pool that cannot fill is not a request); a
/// second without a successful request has no latency (null, empty).
#[tokio::test(flavor = "multi_thread")]
async fn the_report_adds_up_after_the_server_dies() {
    let server = start_server(20).await;
    let dsn = server.dsn_with_password();
    let tmp = tempfile::tempdir().unwrap();
    let file = write_scenario(
        tmp.path(),
        "dies",
        "[run]\nduration = \"3s\"\nwarmup = \"0s\"\nconcurrency = 4\n\n\
         [[strategy]]\nname = \"fresh\"\nkind = \"fresh\"\n\n\
         [[strategy]]\nname = \"pool\"\nkind = \"pool\"\nmax_size = 4\nmin_size = 4\n\n\
         [[query]]\nname = \"q\"\nsql = \"SELECT 1\"\n",
    );
    let out = tmp.path().join("out");
    let child = command([
        "run",
        file.to_str().unwrap(),
        "--dsn",
        &dsn,
        "--out",
        out.to_str().unwrap(),
        "--threads",
        "2",
        "--quiet",
    ])
    .spawn()
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // SAFETY: killing the postmaster this test started.
    unsafe { libc::kill(server.pid() as libc::pid_t, libc::SIGKILL) };
    let o = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    no_panic(&o);
    let r = read_report(&out);
    for s in r["strategies"].as_array().unwrap() {
        let errors: u64 = s["errors"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        let timeline: u64 = s["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row["errors"].as_u64().unwrap())
            .sum();
        assert_eq!(errors, timeline, "{}: {}", s["name"], s["errors"]);
        for row in s["timeline"].as_array().unwrap() {
            if row["rps"].as_f64() == Some(0.0) {
                assert!(row["p50_us"].is_null() && row["p99_us"].is_null(), "{row}");
            }
        }
    }
    let pool = &r["strategies"][1];
    assert!(
        pool["startup_errors"]
            .as_object()
            .is_some_and(|e| !e.is_empty()),
        "the failed fill is reported apart: {pool}"
    );
    // The seconds after the kill have no latency: empty in the CSV.
    let csv = std::fs::read_to_string(out.join("timeline.csv")).unwrap();
    let empty_latency = csv
        .lines()
        .skip(1)
        .any(|l| l.split(',').nth(6) == Some("") && l.split(',').nth(7) == Some(""));
    assert!(empty_latency, "{csv}");
    drop(server);
}

/// Class 9: a sweep interrupted in its second point keeps that point,
/// marked partial, and never takes it for the knee.
#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_sweep_marks_its_partial_point() {
    let server = start_server(20).await;
    let dsn = server.dsn_with_password();
    let tmp = tempfile::tempdir().unwrap();
    let file = write_scenario(tmp.path(), "sweep", SELECT1);
    let out = tmp.path().join("out");
    let child = command([
        "sweep",
        file.to_str().unwrap(),
        "--dsn",
        &dsn,
        "--pool-sizes",
        "1,2",
        "--concurrency",
        "4",
        "--duration",
        "2s",
        "--warmup",
        "0s",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ])
    .spawn()
    .unwrap();
    // Once the first point is written, the second is cut a second in.
    let written = || {
        std::fs::read_to_string(out.join("sweep.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .is_some_and(|v| v["points"].as_array().is_some_and(|p| p.len() == 1))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !written() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id().unwrap() as libc::pid_t, libc::SIGINT) };
    let o = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    no_panic(&o);
    assert_eq!(o.status.code(), Some(130), "{}", show(&o));
    // An interrupted sweep's file still matches its schema.
    let sweep = common::read_json(&out.join("sweep.json"));
    let points = sweep["points"].as_array().unwrap();
    assert_eq!(points.len(), 2, "{sweep}");
    assert_eq!(points[1]["pool_size"], 2);
    assert_eq!(points[1]["partial"], true, "{}", points[1]);
    assert!(points[0].get("partial").is_none());
    assert_eq!(sweep["analysis"][0]["knee_pool_size"], 1);
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("partial: interrupted"), "{table}");
    server.stop().await.unwrap();
}

/// Class 10: the manual's recipe for a server in the background
/// (docs/connecting.md) returns, reaches the server and stops it without a
/// trace; the scripts find the binary under CARGO_TARGET_DIR.
#[tokio::test(flavor = "multi_thread")]
async fn the_readme_recipe_and_the_scripts_work() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("docs/connecting.md")).unwrap();
    let recipe = [
        "poolbench server > pg.env &",
        "until grep -q ^PGSSLMODE pg.env; do sleep 0.2; done",
        "export $(grep ^PG pg.env)",
        "kill %1",
    ];
    for line in recipe {
        assert!(readme.contains(line), "docs/connecting.md lost {line:?}");
    }
    let tmp = private_tmp();
    let bin_dir = tmp.path().join("bin");
    std::fs::create_dir(&bin_dir).unwrap();
    std::os::unix::fs::symlink(BIN, bin_dir.join("poolbench")).unwrap();
    // One command a line, as a shell session runs them.
    let script = format!(
        "set -e\n{}\n{}\n{}\ntest -n \"$PGPASSWORD\"\nexec 3<>\"/dev/tcp/$PGHOST/$PGPORT\"\n\
         exec 3>&-\n{}\nwait || true\n",
        recipe[0], recipe[1], recipe[2], recipe[3]
    );
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new("bash")
            .args(["-c", &script])
            .current_dir(tmp.path())
            .env("PATH", path)
            .env("TMPDIR", tmp.path())
            .output(),
    )
    .await
    .expect("the recipe returns")
    .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(
        clusters(tmp.path()).is_empty(),
        "{:?}",
        clusters(tmp.path())
    );

    // The scripts and what they source (scripts/lib).
    let mut dirs = vec![root.join("scripts")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (i, _) in text.match_indices("target/release/poolbench") {
                assert!(
                    text[..i].ends_with("${CARGO_TARGET_DIR:-"),
                    "{} builds into CARGO_TARGET_DIR but looks in target/",
                    path.display()
                );
            }
        }
    }
}

/// Class 3, for the code to come: nothing in `src/` prints with the
/// standard macros, which panic on a closed pipe; every line goes through
/// `output.rs` (`out!`, `outln!`, `err!`, `errln!`).
#[test]
fn nothing_prints_with_the_panicking_macros() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut dirs = vec![src];
    let mut offenders = Vec::new();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if !name.ends_with(".rs") || name == "output.rs" || name == "tests.rs" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            // Unit tests may print.
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for (n, line) in code.lines().enumerate() {
                let line = line.split("//").next().unwrap_or_default();
                for mac in ["println!", "print!(", "eprintln!", "eprint!("] {
                    let hit = line.match_indices(mac).any(|(i, _)| {
                        let before = line[..i].chars().next_back();
                        !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
                    });
                    if hit {
                        offenders.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                    }
                }
            }
        }
    }
    assert!(offenders.is_empty(), "{}", offenders.join("\n"));
}
