//! Pools as applications run them (issue 30), against a real server:
//! expiry storms and their spread, the checkout check's round trip, resets
//! on release, an idle timeout making a quiet pool open again, and the
//! presets `validate` prints. Scaled so each run lasts a few seconds.

use poolbench::embedded::{EmbeddedOptions, EmbeddedServer};
use poolbench::scenario::AuthMethod;
use serde_json::Value;

mod common;
use common::{on_server, poolbench, read_report, show, stdout, u, write_scenario};

/// Runs `body` (a scenario) on a fresh embedded server with `extra` flags
/// and returns its report and stdout. The server trusts its clients
/// without TLS: a connection opens in two round trips and little CPU, so
/// that the tests stay about the pool on a loaded machine.
/// One run at a time: the storms' and checks' timings are compared with
/// the run's own other seconds, which a neighbour's load would blur.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn run(body: &str, extra: &[&str]) -> (Value, String) {
    let _alone = ONE_AT_A_TIME.lock().await;
    let server = EmbeddedServer::start(&EmbeddedOptions {
        auth: AuthMethod::Trust,
        tls: false,
        max_connections: 100,
        ..EmbeddedOptions::default()
    })
    .await
    .expect("embedded server");
    let tmp = tempfile::tempdir().unwrap();
    let scenario = write_scenario(tmp.path(), "lifecycle", body);
    let out = tmp.path().join("out");
    let o = on_server("run", &scenario, &server.dsn_with_password(), &out, extra).await;
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    (read_report(&out), stdout(&o))
}

fn scenario(run: &str, pool: &str, sql: &str) -> String {
    format!(
        r#"
name = "lifecycle"
[run]
warmup = "0s"
seed = 3
{run}

[[strategy]]
name = "pool"
kind = "pool"
{pool}

[[query]]
name = "q"
sql = "{sql}"
"#
    )
}

fn phase<'a>(s: &'a Value, name: &str) -> &'a Value {
    &s["phases"][name]
}

/// Each second's connections replaced (closed and opened in it).
fn replaced(s: &Value) -> Vec<u64> {
    s["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| u(&t["opened"]).min(u(&t["closed"])))
        .collect()
}

/// `max_lifetime = "2s"` without spread, a pool of 10 kept busy: every
/// connection expires together, so about every 2 s one second replaces
/// (nearly) the whole pool, named as a storm, and that second's p99 is
/// above the other seconds' (each replacement pays a connect across the
/// link), with seconds that replace none between them. With
/// `lifetime_jitter = 0.5` (each lifetime 1 to 2 s) the replacements
/// spread: once the first generation is gone, every second replaces some.
/// (Not "no second more than half": a
/// pool of 10 whose connections live 1.5 s on average replaces 6.7 a
/// second on average.)
#[tokio::test(flavor = "multi_thread")]
async fn a_lifetime_without_spread_replaces_the_pool_in_one_second() {
    let run_keys = "duration = \"9s\"\nconcurrency = 10";
    let sql = "SELECT pg_sleep(0.02)";
    let (r, out) = run(
        &scenario(run_keys, "max_size = 10\nmax_lifetime = \"2s\"", sql),
        &["--rtt", "10ms"],
    )
    .await;
    let s = &r["strategies"][0];
    let per_second = replaced(s);
    let big: Vec<usize> = (0..per_second.len())
        .filter(|i| per_second[*i] >= 8)
        .collect();
    assert!(
        big.len() >= 3,
        "seconds replacing ≥ 8: {big:?} of {per_second:?}"
    );
    // About every 2 s (a loaded machine may push one a second later).
    for w in big.windows(2) {
        assert!((1..=4).contains(&(w[1] - w[0])), "{big:?}");
    }
    let storms = s["storms"].as_array().expect("storms");
    assert!(storms.len() >= 3, "{storms:?}");
    let above = storms
        .iter()
        .filter(|st| u(&st["p99_us"]) > u(&st["others_p99_us"]))
        .count();
    assert!(above * 3 >= storms.len() * 2, "{storms:?}");
    let closed_by_lifetime: u64 = s["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| u(&t["closed_by"]["lifetime"]))
        .sum();
    assert!(closed_by_lifetime >= 30, "{closed_by_lifetime}");
    // Each replacement is an `open` inside a request's acquire.
    assert!(u(&phase(s, "open")["count"]) >= 30, "{s}");
    assert!(out.contains("storm: round 1 second"), "{out}");

    // Between storms, seconds that replace none.
    let quiet = per_second.iter().skip(2).filter(|n| **n == 0).count();
    assert!(quiet >= 2, "{per_second:?}");

    let (r, _) = run(
        &scenario(
            run_keys,
            "max_size = 10\nmax_lifetime = \"2s\"\nlifetime_jitter = 0.5",
            sql,
        ),
        &["--rtt", "10ms"],
    )
    .await;
    let s = &r["strategies"][0];
    let per_second = replaced(s);
    let later = &per_second[3..per_second.len() - 1];
    assert!(
        later.iter().all(|n| *n > 0),
        "replaced per second with spread: {per_second:?}"
    );
}

/// At `--rtt 10ms`, `check = "always"` adds one round trip to every
/// acquire: 2 round trips per request instead of 1, acquire p50 at least
/// the RTT and nearly all of it the check (10.6 ms on a quieter machine;
/// on a loaded one the emulated round trip itself takes longer); with
/// `if_idle_over` longer than any idle spell, none.
#[tokio::test(flavor = "multi_thread")]
async fn a_check_on_every_checkout_is_a_round_trip() {
    let run_keys = "duration = \"3s\"\nconcurrency = 4";
    let (r, out) = run(
        &scenario(
            run_keys,
            "max_size = 4\nmin_size = 4\ncheck = \"always\"",
            "SELECT 1",
        ),
        &["--rtt", "10ms"],
    )
    .await;
    let s = &r["strategies"][0];
    let acquire = u(&phase(s, "acquire")["p50_us"]);
    assert!(acquire >= 9_000, "acquire p50 {acquire} µs");
    let check = u(&phase(s, "check")["p50_us"]);
    assert!(
        check * 10 >= acquire * 9,
        "check p50 {check} of acquire p50 {acquire} µs"
    );
    assert_eq!(
        u(&phase(s, "check")["count"]),
        u(&phase(s, "acquire")["count"])
    );
    assert_eq!(u(&s["round_trips"]["request"]["p50"]), 2, "{s}");
    assert!(
        out.contains("= check") && out.contains("1 round trip per checkout, at 10.0 ms RTT"),
        "{out}"
    );

    let (r, _) = run(
        &scenario(
            run_keys,
            "max_size = 4\nmin_size = 4\ncheck = { if_idle_over = \"2s\" }",
            "SELECT 1",
        ),
        &["--rtt", "10ms"],
    )
    .await;
    let s = &r["strategies"][0];
    assert!(s["phases"].get("check").is_none(), "{s}");
    assert_eq!(u(&s["round_trips"]["request"]["p50"]), 1, "{s}");
    assert!(u(&phase(s, "acquire")["p50_us"]) < 2_000, "{s}");
}

/// `reset = "discard_all"` and `like = "asyncpg"` each run one statement
/// per release: timed as `reset`, one more round trip per request; named
/// statements prepared again after DISCARD ALL dropped them.
#[tokio::test(flavor = "multi_thread")]
async fn resets_on_release_are_timed_and_counted() {
    let run_keys = "duration = \"2s\"\nconcurrency = 2";
    for pool in [
        "max_size = 2\nmin_size = 2\nreset = \"discard_all\"",
        "max_size = 2\nmin_size = 2\nlike = \"asyncpg\"",
    ] {
        let (r, out) = run(&scenario(run_keys, pool, "SELECT 1"), &["--rtt", "5ms"]).await;
        let s = &r["strategies"][0];
        assert!(s["errors"].as_object().unwrap().is_empty(), "{pool}: {s}");
        let reset = phase(s, "reset");
        assert_eq!(u(&reset["count"]), u(&s["requests"]), "{pool}");
        assert!(
            u(&reset["p50_us"]) >= 5_000,
            "{pool}: reset p50 {}",
            reset["p50_us"]
        );
        let expected = if pool.contains("discard_all") { 3 } else { 2 };
        // DISCARD ALL: the statement is prepared again (a round trip),
        // then bound and run, then the reset.
        assert_eq!(
            u(&s["round_trips"]["request"]["p50"]),
            expected,
            "{pool}: {s}"
        );
        assert!(out.contains("reset p50"), "{out}");
    }
}

/// `idle_timeout` shorter than the pauses between requests (open loop at
/// 4 per second): the pool closes its idle connections, and most requests
/// pay `open`; with a timeout longer than the run, only the first does.
#[tokio::test(flavor = "multi_thread")]
async fn an_idle_timeout_makes_the_next_request_open() {
    let run_keys = "duration = \"4s\"\nrate = 4";
    let (r, _) = run(
        &scenario(
            run_keys,
            "max_size = 4\nidle_timeout = \"100ms\"",
            "SELECT 1",
        ),
        &[],
    )
    .await;
    let s = &r["strategies"][0];
    let opened = u(&phase(s, "open")["count"]);
    let requests = u(&s["requests"]);
    assert!(requests >= 8, "{s}");
    assert!(
        opened * 2 >= requests,
        "{opened} opens for {requests} requests"
    );
    let idle: u64 = s["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| u(&t["closed_by"]["idle"]))
        .sum();
    assert!(idle * 2 >= opened, "{idle} closed idle, {opened} opened");

    let (r, _) = run(
        &scenario(run_keys, "max_size = 4\nidle_timeout = \"30s\"", "SELECT 1"),
        &[],
    )
    .await;
    let s = &r["strategies"][0];
    assert!(u(&phase(s, "open")["count"]) <= 2, "{s}");
}

/// `validate` prints each pool's effective settings: a preset's, with a
/// key given beside it in its place.
#[tokio::test]
async fn validate_prints_the_presets_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let body = scenario(
        "duration = \"1s\"",
        "max_size = 8\nlike = \"hikaricp\"\nmax_lifetime = \"5s\"",
        "SELECT 1",
    );
    let path = write_scenario(tmp.path(), "presets", &body);
    let o = poolbench(["validate".as_ref(), path.as_os_str()]).await;
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let out = stdout(&o);
    for expected in [
        "like = \"hikaricp\"",
        "max_lifetime = \"5s\"",
        "lifetime_jitter = 0.025",
        "idle_timeout = \"10m\"",
        "min_idle = 8",
        "check = { if_idle_over = \"500ms\" }",
        // HikariCP's 2-minute keepalive is off under a 5 s lifetime, as
        // HikariCP turns it off.
        "keepalive = off",
    ] {
        assert!(out.contains(expected), "{expected} in {out}");
    }

    let bad = write_scenario(
        tmp.path(),
        "bad",
        &scenario(
            "duration = \"1s\"",
            "max_size = 8\nlike = \"pgx\"",
            "SELECT 1",
        ),
    );
    let o = poolbench(["validate".as_ref(), bad.as_os_str()]).await;
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(show(&o).contains("unknown `like` \"pgx\""), "{}", show(&o));
}
