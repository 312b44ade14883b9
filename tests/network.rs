//! Where a connection's time goes, against real embedded servers: the
//! connect phases (tcp, tls, startup) add up to `connect` and count every
//! connection; across the link emulator a connect takes its round trips'
//! time and the emulator counts them as the protocol has them; bytes keep
//! their order under jitter; Ctrl-C across the link still writes the report.

use std::time::Duration;

use poolbench::backend::postgres::connect::open;
use poolbench::backend::postgres::Target;
use poolbench::embedded::{EmbeddedOptions, EmbeddedServer};
use poolbench::net::Emulator;
use poolbench::scenario::AuthMethod;
use serde_json::Value;

mod common;
use common::{
    command, f, on_server, read_report, show, start_server, stdout, strategy, u, write_scenario,
};

/// Runs `body` (a scenario) against `dsn` with extra flags; the report.
async fn run(dsn: &str, body: &str, extra: &[&str]) -> (Value, String) {
    let tmp = tempfile::tempdir().unwrap();
    let file = write_scenario(tmp.path(), "net", body);
    let out = tmp.path().join("out");
    let o = on_server("run", &file, dsn, &out, extra).await;
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    (read_report(&out), stdout(&o))
}

const FRESH_AND_POOL: &str = r#"
[run]
duration = "1500ms"
warmup = "0s"
concurrency = 1

[[strategy]]
name = "per-request"
kind = "fresh"

[[strategy]]
name = "pool-2"
kind = "pool"
max_size = 2
min_size = 2

[[query]]
name = "q"
sql = "SELECT $1::int8 + 1"
params = [{ int = [1, 1000] }]
"#;

/// tcp + tls + startup is the connect, measured as consecutive intervals
/// of one clock; their count is the number of connections opened — the
/// fresh strategy's one per request, the pool's its two, filled before
/// measuring.
#[tokio::test(flavor = "multi_thread")]
async fn connect_phases_add_up_to_connect_and_count_every_connection() {
    let server = start_server(20).await;
    let (report, stdout) = run(&server.dsn_with_password(), FRESH_AND_POOL, &[]).await;
    let fresh = strategy(&report, "per-request");
    let phases = &fresh["phases"];
    let opened = u(&fresh["connections_opened"]);
    assert!(opened > 5, "{fresh}");
    for phase in ["connect", "tcp", "tls", "startup"] {
        assert_eq!(u(&phases[phase]["count"]), opened, "{phase}: {fresh}");
    }
    let mean = |p: &str| f(&phases[p]["mean_us"]);
    let (connect, sum) = (mean("connect"), mean("tcp") + mean("tls") + mean("startup"));
    // One clock, the same two instants: each phase is truncated to whole
    // microseconds, then kept in a 3-digit histogram (within 0.1%).
    assert!(
        (connect - sum).abs() <= connect * 0.002 + 3.0,
        "connect {connect} µs vs tcp + tls + startup {sum} µs"
    );
    assert!(mean("tls") > mean("tcp"), "{phases}");
    assert!(fresh.get("round_trips").is_none(), "no link, no count");

    let pool = strategy(&report, "pool-2");
    assert_eq!(u(&pool["connections_opened"]), 2);
    for phase in ["tcp", "tls", "startup"] {
        assert_eq!(u(&pool["phases"][phase]["count"]), 2, "{phase}: {pool}");
    }
    assert!(pool["phases"].get("connect").is_none());

    let e = &report["explanation"][0];
    assert_eq!(e["strategy"], "per-request");
    assert_eq!(e["pool"], "pool-2");
    assert!(f(&e["first_query_extra_ms"]) > 0.0, "{e}");
    assert!(e.get("network").is_none());
    assert!(
        stdout.contains("where per-request's time goes") && stdout.contains("= tcp "),
        "{stdout}"
    );
}

/// Across a 20 ms link at concurrency 1: the TCP handshake costs one RTT,
/// a fresh connect (TLS and SCRAM) 5 to 9 RTTs, counted as 4 to 8 round
/// trips; a pooled request with a cached statement one round trip, 20 to
/// 30 ms; the header, report and explanation say so.
#[tokio::test(flavor = "multi_thread")]
async fn a_20ms_link_costs_its_round_trips() {
    let server = start_server(20).await;
    let (report, stdout) = run(
        &server.dsn_with_password(),
        FRESH_AND_POOL,
        &["--rtt", "20ms"],
    )
    .await;
    assert!(stdout.contains("network   +20 ms RTT emulated"), "{stdout}");
    assert_eq!(f(&report["network"]["rtt_ms"]), 20.0);

    let fresh = strategy(&report, "per-request");
    let p50 = |s: &Value, phase: &str| u(&s["phases"][phase]["p50_us"]);
    let connect = p50(fresh, "connect");
    assert!(
        (100_000..=180_000).contains(&connect),
        "a connect is 5 to 9 round trips of 20 ms: {connect} µs"
    );
    let close = p50(fresh, "close");
    assert!(
        close < 10_000,
        "closing is Terminate alone, no round trip: {close} µs"
    );
    let tcp = p50(fresh, "tcp");
    assert!((20_000..30_000).contains(&tcp), "tcp {tcp} µs");
    let rt = &fresh["round_trips"];
    let counted = u(&rt["connect"]["p50"]);
    assert!((4..=8).contains(&counted), "{rt}");
    assert!(u(&rt["request"]["p50"]) > counted, "{rt}");

    let pool = strategy(&report, "pool-2");
    let rt = &pool["round_trips"];
    assert_eq!(u(&rt["request"]["p50"]), 1, "{rt}");
    assert_eq!(u(&rt["connect"]["count"]), 2, "{rt}");
    let total = p50(pool, "total");
    assert!(
        (20_000..30_000).contains(&total),
        "a pooled cached SELECT is one 20 ms round trip: {total} µs"
    );

    let share = &report["explanation"][0]["network"];
    assert_eq!(u(&share["connect_round_trips"]), counted);
    assert_eq!(
        f(&share["connect_round_trips_ms"]),
        counted as f64 * 20.0,
        "{share}"
    );
    assert_eq!(u(&share["pool_request_round_trips"]), 1);
    assert!(
        stdout.contains(&format!("connecting is {counted} round trips × 20 ms")),
        "{stdout}"
    );
}

const FRESH_ONLY: &str = r#"
[run]
duration = "700ms"
warmup = "0s"
concurrency = 1

[[strategy]]
name = "per-request"
kind = "fresh"

[[query]]
name = "q"
sql = "SELECT 1"
"#;

/// Round trips until ReadyForQuery as the protocol has them (the TCP
/// handshake counts one): trust without TLS 2 (StartupMessage →
/// AuthenticationOk … ReadyForQuery); SCRAM without TLS 4 (three SASL
/// exchanges); SCRAM with TLS 1.3 6 or 7 (the SSLRequest, the handshake,
/// and the HelloRetryRequest PostgreSQL's default P-256-only
/// ssl_ecdh_curve makes OpenSSL's X25519 key share pay). sslmode=disable
/// has no tls phase.
#[tokio::test(flavor = "multi_thread")]
async fn round_trips_follow_the_protocol_and_sslmode_disable_has_no_tls() {
    let scram = start_server(20).await;
    let plain = scram
        .dsn_with_password()
        .replace("sslmode=require", "sslmode=disable");
    let connect_rt = |r: &Value| u(&strategy(r, "per-request")["round_trips"]["connect"]["p50"]);

    let (r, _) = run(&plain, FRESH_ONLY, &["--rtt", "0ms"]).await;
    let phases = &strategy(&r, "per-request")["phases"];
    assert!(phases.get("tls").is_none(), "{phases}");
    assert!(u(&phases["startup"]["count"]) > 0, "{phases}");
    assert_eq!(connect_rt(&r), 4, "SCRAM without TLS");

    let (r, _) = run(&scram.dsn_with_password(), FRESH_ONLY, &["--rtt", "2ms"]).await;
    assert!(u(&strategy(&r, "per-request")["phases"]["tls"]["count"]) > 0);
    assert!(
        (6..=7).contains(&connect_rt(&r)),
        "TLS 1.3 + SCRAM: {}",
        connect_rt(&r)
    );

    let trust = EmbeddedServer::start(&EmbeddedOptions {
        auth: AuthMethod::Trust,
        tls: false,
        port: None,
        max_connections: 20,
        ..EmbeddedOptions::default()
    })
    .await
    .expect("embedded server");
    let (r, _) = run(&trust.dsn_with_password(), FRESH_ONLY, &["--rtt", "2ms"]).await;
    assert_eq!(connect_rt(&r), 2, "trust without TLS");
    assert_eq!(
        u(&strategy(&r, "per-request")["round_trips"]["request"]["p50"]),
        2 + 2,
        "setup, then Parse/Describe and Bind/Execute; closing is Terminate alone"
    );
}

/// A query whose 2 MB row crosses the link in many flights, each moved by
/// its own jitter, through TLS: it comes back byte for byte.
#[tokio::test(flavor = "multi_thread")]
async fn jitter_keeps_a_large_row_intact() {
    let server = start_server(20).await;
    let target = Target::parse(&server.dsn_with_password(), "--dsn").unwrap();
    let link = Emulator::new(Duration::from_millis(4), Duration::from_millis(2));
    let mut opened = open(&target, Some(&link), std::time::Instant::now())
        .await
        .expect("connect across the link");
    let text = opened
        .wire
        .simple(
            "SELECT string_agg(lpad(g::text, 7, '0'), '' ORDER BY g) \
             FROM generate_series(1, 300000) g",
        )
        .await
        .unwrap()
        .expect("one row");
    let expected: String = (1..=300_000).map(|g| format!("{g:07}")).collect();
    assert_eq!(text.len(), expected.len());
    assert!(text == expected, "the row came back changed");
    assert!(opened.turns.unwrap().now() >= 8);
}

/// Ctrl-C while measuring across a 20 ms link: exit 130 and the partial
/// report, marked interrupted, with what was measured.
#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_across_the_link_still_writes_the_report() {
    let server = start_server(20).await;
    let tmp = tempfile::tempdir().unwrap();
    let file = write_scenario(
        tmp.path(),
        "long",
        r#"
[run]
duration = "60s"
warmup = "0s"
concurrency = 4

[network]
rtt = "20ms"
jitter = "2ms"

[[strategy]]
name = "pool"
kind = "pool"
max_size = 4

[[query]]
name = "q"
sql = "SELECT 1"
"#,
    );
    let out = tmp.path().join("out");
    let mut child = command([
        "run",
        file.to_str().unwrap(),
        "--dsn",
        &server.dsn_with_password(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ])
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pid = child.id().unwrap() as libc::pid_t;
    // SAFETY: signalling our own child, still running.
    unsafe { libc::kill(pid, libc::SIGINT) };
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("poolbench exits after Ctrl-C")
        .unwrap();
    assert_eq!(status.code(), Some(130));
    let r = read_report(&out);
    assert_eq!(r["interrupted"], true);
    assert_eq!(f(&r["network"]["rtt_ms"]), 20.0);
    let pool = &r["strategies"][0];
    assert!(
        u(&pool["requests"]) > 10,
        "what was measured is kept: {pool}"
    );
    assert_eq!(u(&pool["round_trips"]["request"]["p50"]), 1, "{pool}");
}

/// `sweep --rtts`: every strategy at each RTT on one server; the setup
/// cost grows by about the round trips a pool saves per millisecond of
/// RTT; sweep.json and sweep.csv hold the points and the fit.
#[tokio::test(flavor = "multi_thread")]
async fn an_rtt_sweep_fits_the_setup_cost_against_the_rtt() {
    let server = start_server(20).await;
    let tmp = tempfile::tempdir().unwrap();
    let file = write_scenario(
        tmp.path(),
        "rtts",
        &FRESH_AND_POOL.replace("1500ms", "800ms"),
    );
    let out = tmp.path().join("out");
    let dsn = server.dsn_with_password();
    let o = on_server("sweep", &file, &dsn, &out, &["--rtts", "10ms,0ms"]).await;
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let sweep: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("sweep.json")).unwrap()).unwrap();
    assert_eq!(sweep["kind"], "rtt-sweep");
    assert_eq!(sweep["settings"]["rtts_ms"], serde_json::json!([0.0, 10.0]));
    let points = sweep["points"].as_array().unwrap();
    assert_eq!(points.len(), 4, "2 RTTs × 2 strategies");
    let fit = &sweep["fits"][0];
    assert_eq!(
        (fit["fresh"].as_str(), fit["pool"].as_str()),
        (Some("per-request"), Some("pool-2"))
    );
    let (b, counted) = (f(&fit["b"]), u(&fit["counted_round_trips"]) as f64);
    assert!(
        (counted - 3.0..=counted + 4.0).contains(&b),
        "b = {b} round trips per request, the emulator counted {counted}"
    );
    assert!(stdout.contains("setup cost = "), "{stdout}");
    let csv = std::fs::read_to_string(out.join("sweep.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 4, "{csv}");
    assert!(csv.starts_with("scenario,rtt_ms,strategy,kind,"), "{csv}");
}
