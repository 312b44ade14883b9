//! MySQL and MariaDB against a real embedded MariaDB (the machine's
//! mariadb-server package): per-request connections against a pool, the
//! pool's size honoured, too many connections counted, a wrong password
//! exit 3, the password nowhere, and the server and its directory gone
//! after a normal exit and after Ctrl-C.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use poolbench::embedded::mariadb::{MariaDb, MariaDbOptions};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

mod common;
use common::{read_report, write_scenario};

const BIN: &str = env!("CARGO_BIN_EXE_poolbench");

fn command(args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args)
        .env_remove("DATABASE_URL")
        // A failing test must not leave a `poolbench server` running.
        .kill_on_drop(true)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

async fn poolbench(args: &[&str]) -> Output {
    command(args).output().await.expect("run poolbench")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `poolbench run FILE --dsn DSN --out OUT`, with its header, progress
/// and tables (where a password could show).
async fn run_on(file: &Path, dsn: &str, out: &Path) -> Output {
    poolbench(&[
        "run",
        file.to_str().unwrap(),
        "--dsn",
        dsn,
        "--out",
        out.to_str().unwrap(),
    ])
    .await
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Every file under `dir`, read as text.
fn all_files(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(all_files(&path));
        } else {
            let bytes = std::fs::read(&path).unwrap();
            out.push((path, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
    out
}

/// `engine = "mariadb"` says the scenario is MySQL's (`?` placeholders);
/// `--dsn mysql://…` points it at the shared server instead.
const SETUP: &str = r#"
[database.embedded]
engine = "mariadb"

[setup]
sql = """
CREATE TABLE IF NOT EXISTS t (id bigint PRIMARY KEY, v text);
INSERT IGNORE INTO t SELECT seq, CONCAT('v', seq) FROM seq_1_to_1000;
"""
"#;

/// One MariaDB (max_connections 12) shared by the checks on an external
/// server: fresh against pool, too many connections, a wrong password. Its
/// [setup] runs without --allow-setup: the server is a throwaway of
/// poolbench's, as its data directory says.
#[tokio::test(flavor = "multi_thread")]
async fn fresh_and_pool_on_mariadb() {
    let server = MariaDb::start(&MariaDbOptions {
        tls: true,
        port: None,
        max_connections: 12,
    })
    .await
    .unwrap_or_else(|e| panic!("embedded MariaDB did not start: {e:#}"));
    let dsn = server.dsn_with_password();
    let password = dsn
        .split(':')
        .nth(2)
        .and_then(|s| s.split('@').next())
        .unwrap()
        .to_string();
    let tmp = tempfile::tempdir().unwrap();

    // Fresh opens one connection per request (no warm-up); the pool opens
    // at most max_size, and its acquire is far cheaper than a connect.
    let file = write_scenario(
        tmp.path(),
        "fresh-vs-pool",
        &format!(
            r#"
[run]
duration = "1s"
warmup = "0s"
concurrency = 3
{SETUP}
[[strategy]]
name = "fresh"
kind = "fresh"

[[strategy]]
name = "pool"
kind = "pool"
max_size = 3
min_size = 3

[[strategy]]
name = "text"
kind = "pool"
max_size = 2
statement_cache = false

[[strategy]]
name = "clean"
kind = "pool"
max_size = 2
recycling = "clean"

[[query]]
name = "get"
sql = "SELECT id, v FROM t WHERE id = ?"
params = [{{ int = [1, 1000] }}]

[[query]]
name = "set"
weight = 1
transaction = true
statements = [{{ sql = "UPDATE t SET v = ? WHERE id = ?", params = [{{ text = 8 }}, {{ int = [1, 1000] }}] }}]
"#
        ),
    );
    let out = tmp.path().join("out");
    let o = run_on(&file, &dsn, &out).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let r = read_report(&out);
    assert_eq!(r["server"]["engine"], "mariadb", "{}", r["server"]);
    assert_eq!(r["server"]["ssl"], true, "{}", r["server"]);
    // poolbench's own server on this machine: its connection threads were
    // pinned to their client threads' CPUs, and given the server's CPUs
    // back when the session ended (MariaDB keeps them for its next client).
    if std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2 {
        assert_eq!(
            r["conditions"]["placement"], "pinned",
            "{}",
            r["conditions"]
        );
    }
    assert_eq!(pinned_threads(server.dir()), Vec::<String>::new());
    let (fresh, pool, text_pool, clean) = (
        &r["strategies"][0],
        &r["strategies"][1],
        &r["strategies"][2],
        &r["strategies"][3],
    );
    // `clean` resets the session (COM_RESET_CONNECTION drops its
    // statements) before every request: each is prepared again.
    for s in [fresh, pool, text_pool, clean] {
        assert!(u(&s["requests"]) > 20, "{s}");
        assert!(s["errors"].as_object().is_none_or(|e| e.is_empty()), "{s}");
    }
    assert_eq!(u(&fresh["connections_opened"]), u(&fresh["requests"]));
    assert!(u(&pool["connections_opened"]) <= 3, "{pool}");
    assert!(u(&text_pool["connections_opened"]) <= 2, "{text_pool}");
    // The server's connections in the timeline (Threads_connected, the
    // monitor's own left out): the pool's three.
    let backends: Vec<u64> = pool["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["server_backends"].as_u64())
        .collect();
    assert!(backends.contains(&3), "{backends:?}");
    let connect_p50 = u(&fresh["phases"]["connect"]["p50_us"]);
    let acquire_p50 = u(&pool["phases"]["acquire"]["p50_us"]);
    assert!(
        connect_p50 > 5 * acquire_p50,
        "connect p50 {connect_p50} µs vs acquire p50 {acquire_p50} µs"
    );
    // The password is nowhere: output, report files.
    let all = text(&o);
    assert!(!all.contains(&password), "{all}");
    for (path, contents) in all_files(&out) {
        assert!(!contents.contains(&password), "{}", path.display());
    }

    // The same report said to come from PostgreSQL: compare refuses to
    // set the engines against each other unless told to.
    let mut as_pg = read_report(&out);
    as_pg["server"]["engine"] = "postgresql".into();
    let pg_report = tmp.path().join("as-postgresql.json");
    std::fs::write(&pg_report, serde_json::to_string(&as_pg).unwrap()).unwrap();
    let mysql_report = out.join("report.json");
    let (a, b) = (pg_report.to_str().unwrap(), mysql_report.to_str().unwrap());
    let o = poolbench(&["compare", a, b]).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("server engine: baseline postgresql, candidate mariadb"),
        "{}",
        text(&o)
    );
    let o = poolbench(&["compare", a, b, "--allow-different"]).await;
    assert_ne!(o.status.code(), Some(2), "{}", text(&o));

    // More statements than a connection keeps (16): it goes back to the
    // driver's cache, and every query still runs.
    let queries: String = (0..18)
        .map(|k| format!("[[query]]\nname = \"q{k}\"\nsql = \"SELECT id + {k} FROM t WHERE id = ?\"\nparams = [{{ int = [1, 1000] }}]\n"))
        .collect();
    let file = write_scenario(
        tmp.path(),
        "many-statements",
        &format!(
            "[run]\nduration = \"1s\"\nwarmup = \"0s\"\nconcurrency = 1\n{SETUP}\n\
             [[strategy]]\nname = \"one\"\nkind = \"pool\"\nmax_size = 1\n{queries}"
        ),
    );
    let out = tmp.path().join("many-out");
    let o = run_on(&file, &dsn, &out).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let one = &read_report(&out)["strategies"][0];
    assert!(
        one["errors"].as_object().is_none_or(|e| e.is_empty()),
        "{one}"
    );
    assert!(u(&one["requests"]) > 100, "{one}");

    // More workers than max_connections: the refusals are counted as
    // too_many_connections and the run goes on to its report.
    let file = write_scenario(
        tmp.path(),
        "too-many",
        r#"
[run]
duration = "1s"
warmup = "0s"
concurrency = 40

[database.embedded]
engine = "mariadb"

[[strategy]]
name = "fresh"
kind = "fresh"

[[strategy]]
name = "two-small-pools"
kind = "pool"
instances = 2
max_size = 1
wait_timeout = "1ms"

[[query]]
name = "q"
sql = "SELECT SLEEP(0.01)"
"#,
    );
    let out = tmp.path().join("too-many-out");
    let o = run_on(&file, &dsn, &out).await;
    assert!(!text(&o).contains("panicked"), "{}", text(&o));
    let r = read_report(&out);
    let fresh = &r["strategies"][0];
    assert!(
        u(&fresh["errors"]["too_many_connections"]) > 0,
        "{}",
        fresh["errors"]
    );
    assert!(u(&fresh["requests"]) > 0, "{fresh}");
    // Two instances of one connection each: never more than two opened,
    // and 40 workers time out waiting for them (wait_timeout).
    let pools = &r["strategies"][1];
    assert!(u(&pools["connections_opened"]) <= 2, "{pools}");
    assert!(
        u(&pools["errors"]["pool_timeout"]) > 0,
        "{}",
        pools["errors"]
    );

    // A wrong password: exit 3, the password not shown.
    let wrong = dsn.replace(&password, "not-the-password");
    let o = poolbench(&["run", file.to_str().unwrap(), "--dsn", &wrong, "--quiet"]).await;
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("1045"), "{}", text(&o));
    assert!(!text(&o).contains("not-the-password"), "{}", text(&o));

    server.stop().await.unwrap();
}

/// The threads of the mariadbd serving `dir` that may run on fewer CPUs
/// than their process (named by thread id and CPU list).
fn pinned_threads(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    let cpus = |status: &Path| {
        std::fs::read_to_string(status).ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .map(|v| v.trim().to_string())
        })
    };
    let server = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .find(|entry| {
            std::fs::read(entry.path().join("cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(&needle))
                .unwrap_or(false)
        })
        .expect("the mariadbd serving the directory");
    let own = cpus(&server.path().join("status"));
    std::fs::read_dir(server.path().join("task"))
        .unwrap()
        .flatten()
        .filter_map(|t| {
            let c = cpus(&t.path().join("status"))?;
            (Some(&c) != own.as_ref()).then(|| format!("{}: {c}", t.file_name().to_string_lossy()))
        })
        .collect()
}

fn mariadbd_running_in(dir: &Path) -> bool {
    let needle = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
        std::fs::read(entry.path().join("cmdline"))
            .map(|c| String::from_utf8_lossy(&c).contains(&needle))
            .unwrap_or(false)
    })
}

/// The embedded MariaDB of a scenario: started, used, then stopped and its
/// directory removed, after a normal exit and after Ctrl-C (exit 130).
#[tokio::test(flavor = "multi_thread")]
async fn embedded_mariadb_is_gone_after_exit_and_ctrl_c() {
    for (duration, signal) in [("1s", None), ("60s", Some(libc::SIGINT))] {
        let tmp = tempfile::tempdir().unwrap();
        let file = write_scenario(
            tmp.path(),
            "embedded",
            &format!(
                r#"
[database.embedded]
engine = "mariadb"

[run]
duration = "{duration}"
warmup = "0s"
concurrency = 2

[[strategy]]
name = "pool"
kind = "pool"
max_size = 2

[[query]]
name = "q"
sql = "SELECT ?"
params = [{{ int = [1, 10] }}]
"#
            ),
        );
        let out = tmp.path().join("out");
        let mut child = command(&[
            "run",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .spawn()
        .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut data_dir = None;
        let deadline = Instant::now() + Duration::from_secs(60);
        while data_dir.is_none() && Instant::now() < deadline {
            let Ok(Ok(Some(line))) =
                tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await
            else {
                break;
            };
            if let Some(rest) = line.split("(data in ").nth(1) {
                data_dir = Some(PathBuf::from(rest.trim_end_matches(')')));
            }
        }
        let data_dir = data_dir.expect("poolbench names the embedded MariaDB's directory");
        assert!(data_dir.exists());
        let rest = tokio::spawn(async move {
            let mut all = String::new();
            while let Ok(Some(line)) = lines.next_line().await {
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        if let Some(signal) = signal {
            tokio::time::sleep(Duration::from_secs(2)).await;
            // The init file that set the password is gone once it is up.
            assert!(data_dir.join("data").exists(), "{}", data_dir.display());
            assert!(!data_dir.join("init.sql").exists());
            let pid = child.id().unwrap() as libc::pid_t;
            // SAFETY: signalling our own child, still running.
            unsafe { libc::kill(pid, signal) };
        }
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .expect("poolbench exits")
            .unwrap();
        let err = rest.await.unwrap();
        let expected = if signal.is_some() { 130 } else { 0 };
        assert_eq!(status.code(), Some(expected), "{err}");
        let r = read_report(&out);
        assert_eq!(r["server"]["engine"], "mariadb");
        assert!(u(&r["strategies"][0]["requests"]) > 0);
        assert!(!data_dir.exists(), "{} left behind", data_dir.display());
        assert!(
            !mariadbd_running_in(&data_dir),
            "a mariadbd still uses {}",
            data_dir.display()
        );
    }
}

/// `validate` knows a MySQL scenario by its engine or its DSN: `?`s are
/// counted against the params (file:line:column, exit 2), and a bad
/// `mysql://` option is named without the password.
#[tokio::test(flavor = "multi_thread")]
async fn validate_checks_mysql_scenarios() {
    let tmp = tempfile::tempdir().unwrap();
    let good = write_scenario(
        tmp.path(),
        "good",
        r#"
[database]
dsn = "mysql://app:hunter2@db.internal:3306/shop?ssl-mode=REQUIRED"

[[strategy]]
name = "fresh"
kind = "fresh"

[[query]]
name = "q"
sql = "SELECT ? FROM t WHERE a = '?' AND b = ?"
params = [{ int = [1, 2] }, { text = 3 }]
"#,
    );
    let o = poolbench(&["validate", good.to_str().unwrap()]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    let bad = write_scenario(
        tmp.path(),
        "bad",
        r#"
[database.embedded]
engine = "mariadb"

[[strategy]]
name = "fresh"
kind = "fresh"

[[query]]
name = "q"
sql = "SELECT ?, ?"
params = [{ int = [1, 2] }]
"#,
    );
    let o = poolbench(&["validate", bad.to_str().unwrap()]).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bad.toml:11:18"), "the second `?`: {err}");
    assert!(
        err.contains("2 `?` placeholders but 1 param is given"),
        "{err}"
    );

    // MariaDB would silently raise max_connections below 10.
    let small = write_scenario(
        tmp.path(),
        "small",
        r#"
[database.embedded]
engine = "mariadb"
max_connections = 5

[[strategy]]
name = "fresh"
kind = "fresh"

[[query]]
name = "q"
sql = "SELECT 1"
"#,
    );
    let o = poolbench(&["validate", small.to_str().unwrap()]).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("small.toml:4:19"), "{}", text(&o));

    let bad_dsn = write_scenario(
        tmp.path(),
        "bad-dsn",
        r#"
[database]
dsn = "mysql://app:hunter2@db.internal/shop?ssl-mode=SOMETIMES"

[[strategy]]
name = "fresh"
kind = "fresh"

[[query]]
name = "q"
sql = "SELECT 1"
"#,
    );
    let o = poolbench(&["validate", bad_dsn.to_str().unwrap()]).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("ssl-mode"), "{}", text(&o));
    assert!(!text(&o).contains("hunter2"), "{}", text(&o));
}

/// ssl-mode=PREFERRED on a server without TLS connects in plain TCP (as
/// the mysql client does); REQUIRED refuses it (exit 3).
#[tokio::test(flavor = "multi_thread")]
async fn preferred_falls_back_to_plain_tcp() {
    let server = MariaDb::start(&MariaDbOptions {
        tls: false,
        port: None,
        max_connections: 10,
    })
    .await
    .unwrap_or_else(|e| panic!("embedded MariaDB did not start: {e:#}"));
    let tmp = tempfile::tempdir().unwrap();
    let file = write_scenario(
        tmp.path(),
        "plain",
        r#"
[database.embedded]
engine = "mariadb"

[run]
duration = "1s"
warmup = "0s"
concurrency = 2

[[strategy]]
name = "fresh"
kind = "fresh"

[[query]]
name = "q"
sql = "SELECT ?"
params = [{ int = [1, 9] }]
"#,
    );
    let disabled = server.dsn_with_password();
    let preferred = disabled.replace("ssl-mode=DISABLED", "ssl-mode=PREFERRED");
    let out = tmp.path().join("out");
    let o = run_on(&file, &preferred, &out).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let r = read_report(&out);
    assert_eq!(r["server"]["ssl"], false);
    let fresh = &r["strategies"][0];
    assert!(u(&fresh["requests"]) > 5, "{fresh}");
    assert!(
        fresh["errors"].as_object().is_none_or(|e| e.is_empty()),
        "{fresh}"
    );

    let required = disabled.replace("ssl-mode=DISABLED", "ssl-mode=REQUIRED");
    let o = poolbench(&["run", file.to_str().unwrap(), "--dsn", &required, "--quiet"]).await;
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    server.stop().await.unwrap();
}

/// `poolbench server --engine mariadb` prints a mysql:// URL that
/// connects and the MYSQL_* lines of the same server, a run on it names
/// its authentication plugin, and on SIGTERM it stops the server (exit 0).
#[tokio::test(flavor = "multi_thread")]
async fn server_command_runs_mariadb() {
    let mut child = command(&["server", "--engine", "mariadb", "--max-connections", "11"])
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("the URL within a minute")
        .unwrap()
        .expect("a line");
    assert!(url.starts_with("mysql://poolbench:"), "{url}");
    assert!(url.ends_with("ssl-mode=REQUIRED"), "{url}");
    let port = url
        .split('@')
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|hp| hp.split(':').nth(1))
        .unwrap()
        .to_string();
    let password = url
        .split(':')
        .nth(2)
        .and_then(|s| s.split('@').next())
        .unwrap()
        .to_string();
    let mut variables = Vec::new();
    for _ in 0..3 {
        variables.push(lines.next_line().await.unwrap().expect("a line"));
    }
    assert_eq!(
        variables,
        [
            "MYSQL_HOST=127.0.0.1".to_string(),
            format!("MYSQL_TCP_PORT={port}"),
            format!("MYSQL_PWD={password}"),
        ]
    );
    // The URL is one poolbench takes: check its server's facts.
    let tmp = tempfile::tempdir().unwrap();
    let file = write_scenario(
        tmp.path(),
        "one",
        r#"
[database.embedded]
engine = "mariadb"

[run]
duration = "1s"
warmup = "0s"
concurrency = 1

[[strategy]]
name = "pool"
kind = "pool"
max_size = 1

[[query]]
name = "q"
sql = "SELECT 1"
"#,
    );
    let out = tmp.path().join("out");
    let o = run_on(&file, &url, &out).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let r = read_report(&out);
    assert_eq!(u(&r["server"]["max_connections"]), 11);
    assert_eq!(r["server"]["ssl"], true);
    // Not "unknown": the user's own grants name the plugin.
    assert_eq!(r["server"]["auth_method"], "mysql_native_password");
    assert!(
        text(&o).contains("auth mysql_native_password"),
        "{}",
        text(&o)
    );
    let pid = child.id().unwrap() as libc::pid_t;
    // SAFETY: signalling our own child, still running.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the server stops")
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(!mariadbd_running_in(Path::new(&format!("--port={port}"))));
}

/// A poolbench killed outright (SIGKILL) cannot clean up: its mariadbd
/// goes down on the parent-death signal, and the next embedded start
/// removes the directory it left.
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_runs_server_stops_and_its_directory_goes_next_time() {
    let mut child = command(&["server", "--engine", "mariadb", "--no-tls"])
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("the URL within a minute")
        .unwrap()
        .expect("a line");
    let pid = child.id().unwrap();
    // Its directory is the one whose owner file names it.
    let dir = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            std::fs::read_to_string(p.join("poolbench.owner"))
                .is_ok_and(|t| t.starts_with(&format!("pid={pid}\n")))
        })
        .expect("the server's directory");
    // SAFETY: signalling our own child, still running.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    child.wait().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while mariadbd_running_in(&dir) {
        assert!(Instant::now() < deadline, "mariadbd outlived its poolbench");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(dir.exists(), "nothing removed it yet");
    let server = MariaDb::start(&MariaDbOptions {
        tls: false,
        port: None,
        max_connections: 10,
    })
    .await
    .unwrap_or_else(|e| panic!("embedded MariaDB did not start: {e:#}"));
    assert!(!dir.exists(), "{} left behind", dir.display());
    server.stop().await.unwrap();
}

/// VERIFY_CA checks the certificate's chain, not its names; VERIFY_IDENTITY
/// checks both; another CA fails both. The embedded MariaDB's certificate
/// names localhost and 127.0.0.1: it is reached here at 127.0.0.2, through
/// a relay.
#[tokio::test(flavor = "multi_thread")]
async fn verify_ca_checks_the_chain_and_verify_identity_the_name() {
    let server = MariaDb::start(&MariaDbOptions {
        tls: true,
        port: None,
        max_connections: 10,
    })
    .await
    .unwrap_or_else(|e| panic!("embedded MariaDB did not start: {e:#}"));
    let listener = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
    let relay = listener.local_addr().unwrap();
    let port = server.port();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut out) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                }
            });
        }
    });
    let ca = server.dir().join("ca.pem");
    let dsn = |mode: &str, ca: &Path| {
        server
            .dsn_with_password()
            .replace(&format!("127.0.0.1:{port}"), &relay.to_string())
            .replace(
                "ssl-mode=REQUIRED",
                &format!("ssl-mode={mode}&ssl-ca={}", ca.display()),
            )
    };
    let target = |dsn: &str| poolbench::backend::mysql::parse(dsn, "--dsn").unwrap();

    let verify_ca = target(&dsn("VERIFY_CA", &ca));
    for _ in 0..2 {
        let conn = verify_ca.connect().await;
        assert!(conn.is_ok(), "VERIFY_CA: {:?}", conn.err());
    }
    let e = target(&dsn("VERIFY_IDENTITY", &ca))
        .connect()
        .await
        .expect_err("VERIFY_IDENTITY accepted a certificate without the host's name");
    let e = poolbench::backend::mysql::describe(&e);
    assert!(e.contains("not valid for name \"127.0.0.2\""), "{e}");

    let tmp = tempfile::tempdir().unwrap();
    let other = tmp.path().join("other-ca.pem");
    let other_ca = rcgen::generate_simple_self_signed(vec!["other CA".to_string()]).unwrap();
    std::fs::write(&other, other_ca.cert.pem()).unwrap();
    for mode in ["VERIFY_CA", "VERIFY_IDENTITY"] {
        let e = target(&dsn(mode, &other))
            .connect()
            .await
            .err()
            .unwrap_or_else(|| panic!("{mode} accepted a certificate of another CA"));
        let e = poolbench::backend::mysql::describe(&e);
        assert!(e.contains("UnknownIssuer"), "{mode}: {e}");
    }
    server.stop().await.unwrap();
}
