//! What a connection costs in CPU and what the levers of
//! `[database.embedded]` save, against real embedded servers: fewer SCRAM
//! iterations cut the client's CPU by PBKDF2's share; the backend's CPU is
//! read for every connection (and for a local server given by DSN, not for
//! another host's, which the report says), and client + server never
//! exceed the connect's wall time × the CPUs; PostgreSQL 18's logged fork
//! and authentication times reach each connection; direct TLS saves a round trip on
//! PostgreSQL 18 (npm's build, which `.ci/run` installs into target/pg18 by
//! scripts/install-pg18.sh) and is refused, clearly, by PostgreSQL 15.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use poolbench::backend::postgres::connect::open;
use poolbench::backend::postgres::cpu::ServerView;
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
    // PostgreSQL 15 logs no setup durations: absent, not zero.
    for key in ["server_fork_us", "server_auth_us"] {
        assert!(cpu(&trust, key).is_null(), "{}", strategy(&trust, "fresh"));
    }
    assert!(u(&cpu(&trust, "server_us")["count"]) > 0);
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
    server.stop().await.unwrap();
}

/// A server known only by its DSN: its backend's CPU is read when the DSN's
/// address is this machine's and the backend pid names the connection's own
/// backend here (its title names our client port; over a Unix-domain
/// socket, its parent is the socket's listener). Through a proxy the pid
/// names a backend serving another port: not read. Another host's DSN is
/// not read, and the reason names it.
#[tokio::test(flavor = "multi_thread")]
async fn a_local_server_given_by_dsn_has_its_backends_cpu_read() {
    let server = start_server(10).await;
    let server_us = |target: Target| async move {
        let opened = open(&target, None, Instant::now()).await.expect("connect");
        opened
            .setup
            .cpu
            .expect("the setup's CPU is measured")
            .server_us
    };
    let by_tcp = Target::parse(&server.dsn_with_password(), "--dsn").unwrap();
    assert_eq!(by_tcp.server_view(), ServerView::Local);
    for _ in 0..5 {
        let us = server_us(by_tcp.clone())
            .await
            .expect("a local backend found");
        assert!(us > 0);
    }
    let socket = format!(
        "host={} port={} user={} dbname={}",
        server.dir().display(),
        server.port(),
        server.user(),
        server.dbname()
    );
    let by_socket = Target::parse(&socket, "--dsn").unwrap();
    assert_eq!(by_socket.server_view(), ServerView::Local);
    assert!(server_us(by_socket).await.expect("found by its listener") > 0);

    let proxy = relay("127.0.0.1", server.port()).await;
    let dsn = server
        .dsn_with_password()
        .replace(&format!(":{}/", server.port()), &format!(":{proxy}/"));
    let proxied = Target::parse(&dsn, "--dsn").unwrap();
    assert_eq!(proxied.server_view(), ServerView::Local);
    assert_eq!(server_us(proxied).await, None);

    let remote = Target::parse("postgres://u:secret@db.example.com/d", "--dsn").unwrap();
    assert_eq!(remote.server_view(), ServerView::Remote);
    assert!(
        remote.server_cpu_absent().contains("db.example.com"),
        "{}",
        remote.server_cpu_absent()
    );
    server.stop().await.unwrap();
}

/// A TCP relay on `host` (port chosen) to 127.0.0.1:`to`, for the test's
/// life: a proxy between poolbench and the server.
async fn relay(host: &str, to: u16) -> u16 {
    let listener = tokio::net::TcpListener::bind((host, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(("127.0.0.1", to)).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    port
}

/// This machine's address on its default route (not loopback): a DSN
/// naming it is another host's as far as poolbench can tell.
fn non_loopback_address() -> String {
    let probe = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    probe
        .connect("192.0.2.1:9")
        .expect("this test needs an IPv4 route off loopback");
    let ip = probe.local_addr().unwrap().ip();
    assert!(!ip.is_loopback() && !ip.is_unspecified(), "{ip}");
    ip.to_string()
}

/// `poolbench server` in the background, and `poolbench run --dsn` with the
/// DSN it prints: the report has the server's CPU for every connection
/// opened. The same server reached at a non-loopback address (through a
/// relay there): no server CPU, and the report and terminal say why.
#[tokio::test(flavor = "multi_thread")]
async fn run_by_dsn_reports_a_local_servers_cpu_and_says_why_not_for_another_host() {
    let (mut server, mut lines) = common::spawn_poolbench_server(&["--max-connections", "20"]);
    let dsn = loop {
        let line = tokio::time::timeout(std::time::Duration::from_secs(60), lines.next_line())
            .await
            .expect("poolbench server prints its DSN")
            .unwrap()
            .expect("poolbench server prints its DSN");
        if line.starts_with("postgres://") {
            break line;
        }
    };
    let tmp = tempfile::tempdir().unwrap();
    let file = write_scenario(tmp.path(), "levers", &fresh(""));
    let by_dsn = |dsn: String, out: PathBuf| {
        let file = file.clone();
        async move {
            let o = poolbench("run", &file, &out)
                .args(["--no-html", "--dsn", &dsn])
                .output()
                .await
                .unwrap();
            assert_eq!(o.status.code(), Some(0), "{}", show(&o));
            (read_report(&out), common::stdout(&o))
        }
    };
    let (local, _) = by_dsn(dsn.clone(), tmp.path().join("local")).await;
    let s = strategy(&local, "fresh");
    assert_eq!(local["server"]["embedded"], false);
    assert_eq!(
        u(&s["setup_cpu"]["server_us"]["count"]),
        u(&s["connections_opened"]),
        "{s}"
    );
    assert!(f(&s["setup_cpu"]["server_us"]["mean_us"]) > 0.0, "{s}");
    assert!(s["server_cpu_absent"].is_null(), "{s}");

    let port: u16 = dsn
        .split_once("@127.0.0.1:")
        .and_then(|(_, rest)| rest.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no 127.0.0.1 port in {dsn}"));
    let address = non_loopback_address();
    let relayed = relay(&address, port).await;
    let far = dsn.replace(
        &format!("@127.0.0.1:{port}/"),
        &format!("@{address}:{relayed}/"),
    );
    let (remote, text) = by_dsn(far, tmp.path().join("remote")).await;
    let s = strategy(&remote, "fresh");
    assert!(u(&s["setup_cpu"]["client_us"]["count"]) > 0, "{s}");
    assert!(s["setup_cpu"]["server_us"].is_null(), "{s}");
    let why = s["server_cpu_absent"].as_str().unwrap_or_default();
    assert!(why.contains(&address), "{s}");
    assert_eq!(remote["explanation"][0]["cpu"]["server_absent"], why);
    assert!(
        text.contains(&format!("server not visible: the DSN's host {address}")),
        "{text}"
    );
    let pid = server.id().unwrap() as i32;
    // SAFETY: signalling the child this test started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(30), server.wait()).await;
}

/// PostgreSQL 18 logs each connection's setup durations; the embedded
/// server turns that on and each connection gets its own line's fork and
/// authentication times, beside the backend's CPU, in the report and the
/// terminal's cpu line.
#[tokio::test(flavor = "multi_thread")]
async fn postgresql_18_logs_each_setups_fork_and_authentication() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write_scenario(tmp.path(), "levers", &fresh(""));
    let out = tmp.path().join("out");
    let o = poolbench("run", &file, &out)
        .args(["--no-html"])
        .env("POOLBENCH_PG_BIN", pg18_bin())
        .output()
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let report = read_report(&out);
    assert!(report_version(&report).starts_with("18."));
    let s = strategy(&report, "fresh");
    let opened = u(&s["connections_opened"]);
    for key in ["server_us", "server_fork_us", "server_auth_us"] {
        assert_eq!(u(&s["setup_cpu"][key]["count"]), opened, "{key}: {s}");
        assert!(f(&s["setup_cpu"][key]["mean_us"]) > 0.0, "{key}: {s}");
    }
    // Authentication is part of the connect's wall time (SCRAM: two of its
    // round trips and the server's proof check).
    assert!(
        f(&s["setup_cpu"]["server_auth_us"]["mean_us"]) < f(&s["phases"]["connect"]["mean_us"]),
        "{s}"
    );
    let e = &report["explanation"][0]["cpu"];
    assert!(
        f(&e["server_fork_ms"]) > 0.0 && f(&e["server_auth_ms"]) > 0.0,
        "{e}"
    );
    let text = common::stdout(&o);
    assert!(
        text.contains(" ms (logged wall times: fork ") && text.contains(", auth "),
        "{text}"
    );
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
