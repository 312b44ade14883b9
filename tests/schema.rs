//! docs/schema/*.json held to the program: each a valid draft 2020-12
//! schema whose shared definitions agree across files; every JSON output
//! (a run's, a merge's, each sweep axis's, plan's and compare's) written by
//! the binary against a real server validates (`common::poolbench` checks
//! each run's files, as it does for every test of the suite); and a report
//! that breaks its schema fails.

mod common;

use common::schema::{self, Doc};
use common::{on_server, poolbench, read_json, show, start_server, write_scenario};
use serde_json::{json, Value};

#[test]
fn each_schema_is_draft_2020_12_and_their_shared_parts_agree() {
    let report = schema::schema(Doc::Report);
    for doc in Doc::ALL {
        let s = schema::schema(doc);
        assert_eq!(
            s["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{doc:?}"
        );
        assert!(
            jsonschema::draft202012::meta::is_valid(&s),
            "{} is not a valid draft 2020-12 schema",
            doc.schema_file()
        );
        // schema_version is pinned: a format change must bump it here too
        // (plan's 2: the measured plan).
        let version = if doc == Doc::Plan { 2 } else { 1 };
        assert_eq!(
            s["properties"]["schema_version"]["const"], version,
            "{doc:?}"
        );
        // A definition the files share is the same in each (each file
        // stands alone, so a CI user needs only one).
        for (name, def) in s["$defs"].as_object().unwrap() {
            if let Some(same) = report["$defs"].get(name) {
                assert_eq!(def, same, "{}'s $defs/{name}", doc.schema_file());
            }
        }
    }
}

/// Fails unless each change of `doc` at a JSON pointer is refused there.
fn breaks(doc: Doc, good: &Value, changes: &[(&str, Value)]) {
    assert!(schema::violations(doc, good).is_empty());
    for (at, value) in changes {
        let mut bad = good.clone();
        *bad.pointer_mut(at)
            .unwrap_or_else(|| panic!("{doc:?} has no {at}")) = value.clone();
        let found = schema::violations(doc, &bad);
        assert!(
            found.iter().any(|v| v.starts_with(at)),
            "{doc:?} {at}: {found:?}"
        );
    }
}

const SCENARIO: &str = r#"
name = "schema"
[run]
duration = "1s"
warmup = "0s"
concurrency = 4
seed = 1
rounds = 2
[[strategy]]
name = "per-request"
kind = "fresh"
[[strategy]]
name = "pool-2"
kind = "pool"
max_size = 2
min_size = 2
[[query]]
name = "one"
sql = "SELECT $1::int"
params = [{ int = [1, 100] }]
"#;

/// Every command that writes or prints JSON, once, against one embedded
/// server; `poolbench` checks each output against its schema as it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_json_output_validates() {
    let server = start_server(50).await;
    let dsn = server.dsn_with_password();
    let dir = tempfile::tempdir().unwrap();
    let file = write_scenario(dir.path(), "schema", SCENARIO);
    let out = |name: &str| dir.path().join(name);
    let ok = |o: &std::process::Output| assert_eq!(o.status.code(), Some(0), "{}", show(o));

    for (name, extra) in [
        ("a", &["--instance-index", "0"][..]),
        ("b", &["--instance-index", "1"][..]),
        ("link", &["--rtt", "2ms", "--rounds", "1"][..]),
        ("open", &["--rate", "50", "--rounds", "1"][..]),
    ] {
        ok(&on_server("run", &file, &dsn, &out(name), extra).await);
        let report = read_json(&out(name).join("report.json"));
        assert_eq!(report["interrupted"], false);
    }
    // What the schema refuses: a kind, a type, a sign, an enum, the
    // version; a required field missing. An unknown field is allowed (a
    // later poolbench may add optional ones).
    let mut report = read_json(&out("a").join("report.json"));
    breaks(
        Doc::Report,
        &report,
        &[
            ("/strategies/0/kind", json!("pgbouncer")),
            ("/strategies/0/phases/total/p50_us", json!("fast")),
            ("/strategies/1/timeline/0/pool_waiting", json!(-1)),
            ("/server/engine", json!("oracle")),
            ("/schema_version", json!(2)),
        ],
    );
    report["strategies"][0]
        .as_object_mut()
        .unwrap()
        .remove("throughput_rps");
    report["some_later_field"] = json!({"any": 1});
    let found = schema::violations(Doc::Report, &report);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("throughput_rps"), "{found:?}");
    // What every helper calls fails the test on it.
    let caught = std::panic::catch_unwind(|| schema::check(Doc::Report, &report, "changed"));
    assert!(
        caught.is_err(),
        "check passed a report without throughput_rps"
    );

    let link = read_json(&out("link").join("report.json"));
    assert!(link["network"].is_object() && link["explanation"][0]["network"].is_object());
    assert!(
        read_json(&out("open").join("report.json"))["strategies"][0]["offered_rate"].is_number()
    );

    let merged = out("merged");
    let o = poolbench([
        "merge".as_ref(),
        out("a").as_os_str(),
        out("b").as_os_str(),
        "--out".as_ref(),
        merged.as_os_str(),
        "--quiet".as_ref(),
    ])
    .await;
    ok(&o);
    assert_eq!(
        read_json(&merged.join("report.json"))["inputs"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let o = poolbench([
        "compare".as_ref(),
        out("a").as_os_str(),
        out("b").as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ])
    .await;
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", show(&o));
    let diff: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(diff["schema_version"], 1);
    breaks(
        Doc::Compare,
        &diff,
        &[("/strategies/0/metrics/0/verdict", json!("fine"))],
    );

    for (name, axis) in [
        (
            "sizes",
            &["--pool-sizes", "1,2,4", "--concurrency", "4"][..],
        ),
        ("rtts", &["--rtts", "0ms,2ms"][..]),
        ("rates", &["--rates", "25,50"][..]),
    ] {
        let mut extra = axis.to_vec();
        extra.extend(["--duration", "1s", "--warmup", "0s"]);
        let quiet = name != "rtts";
        if quiet {
            extra.push("--quiet");
        }
        let o = on_server("sweep", &file, &dsn, &out(name), &extra).await;
        ok(&o);
        assert_eq!(
            read_json(&out(name).join("sweep.json"))["interrupted"],
            false
        );
        // The table follows the header after one blank line, or starts the
        // output with --quiet.
        let stdout = common::stdout(&o);
        if quiet {
            assert!(stdout.starts_with("latencies in ms\n"), "{stdout}");
        } else {
            assert!(stdout.contains("\n\nlatencies in ms\n"), "{stdout}");
            assert!(!stdout.contains("\n\n\n"), "{stdout}");
        }
    }
    let sweep = read_json(&out("sizes").join("sweep.json"));
    breaks(
        Doc::Sweep,
        &sweep,
        &[
            ("/points/0/pool_size", json!(0)),
            ("/kind", json!("lifetime-sweep")),
        ],
    );
    let rtts = read_json(&out("rtts").join("sweep.json"));
    breaks(Doc::Sweep, &rtts, &[("/fits", json!(null))]);

    // plan measures on the sweep's scenario (with --sweep, its prior).
    let o = poolbench([
        "plan".as_ref(),
        "--sweep".as_ref(),
        out("sizes").as_os_str(),
        "--rps".as_ref(),
        "100".as_ref(),
        "--p99".as_ref(),
        "1s".as_ref(),
        "--base-rps".as_ref(),
        "50".as_ref(),
        "--dsn".as_ref(),
        dsn.as_ref(),
        "--duration".as_ref(),
        "500ms".as_ref(),
        "--warmup".as_ref(),
        "0s".as_ref(),
        "--format".as_ref(),
        "json".as_ref(),
    ])
    .await;
    ok(&o);
    let plan: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(plan["schema_version"], 2);
    assert!(
        plan["prior"]["break_even"]["pool_query_p50_ms"].is_number(),
        "{plan}"
    );
    // --base-rps below --rps: the min measured by a step; the lifecycle.
    assert!(plan["burst"]["points"][0]["opened"].is_array(), "{plan}");
    assert!(plan["lifecycle"]["lifetime_jitter"].is_number(), "{plan}");
    breaks(
        Doc::Plan,
        &plan,
        &[
            ("/met", json!("yes")),
            ("/points/0/rounds/0/p99_ms", json!(-1)),
            ("/points/0/rounds_met", json!("all")),
            ("/burst/points/0/opened", json!("some")),
            ("/burst/points/0/rounds/0/acquire_p99_ms", json!(null)),
            ("/lifecycle/lifetime_jitter", json!(2)),
            ("/prior/libraries/0/settings/0", json!(["max_size"])),
        ],
    );
    server.stop().await.unwrap();
}
