//! What an adversary tries on poolbench's outputs (issue 28, classes 4, 5,
//! 6 and 8): comparisons, sweeps and plans that showed nothing or said no
//! but exited 0; merges that trusted what they were given; names and
//! server messages that reached a terminal, a spreadsheet or a pull
//! request as markup; messages that blamed the wrong cause. Each test runs
//! the binary (against a real server where it measures) and failed before
//! its fix.

use std::path::{Path, PathBuf};
use std::process::Output;

use base64::Engine;
use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

mod common;
use common::{
    no_panic, on_server, poolbench, read_json, read_report, show, start_server, stderr, stdout,
    write_scenario,
};

/// One pool strategy, 1 s measured, no warm-up, `sql` as the only query.
fn scenario(sql: &str, setup: &str) -> String {
    format!(
        "[run]\nduration = \"1s\"\nwarmup = \"0s\"\nconcurrency = 2\n\n{setup}\
         [[strategy]]\nname = \"pool\"\nkind = \"pool\"\nmax_size = 2\n\n\
         [[query]]\nname = \"q\"\nsql = \"{sql}\"\n"
    )
}

/// A query every execution of which fails (the server describes it fine).
const FAILING: &str = "SELECT 1 / (random() * 0)::int";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/reports")
        .join(name)
}

/// A copy of `report` in `dir` with every strategy renamed by `rename`.
fn renamed(report: &Value, dir: &Path, name: &str, rename: impl Fn(&str) -> String) -> PathBuf {
    let mut r = report.clone();
    for st in r["strategies"].as_array_mut().unwrap() {
        let new = rename(st["name"].as_str().unwrap());
        st["name"] = json!(new);
    }
    write_json(dir, name, &r)
}

fn write_json(dir: &Path, name: &str, value: &Value) -> PathBuf {
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
    path
}

fn code(o: &Output) -> Option<i32> {
    no_panic(o);
    o.status.code()
}

/// Class 4: a comparison of runs whose every request failed, one with no
/// strategy in common, a sweep none of whose points completed a request,
/// and a plan that does not fit all exited 0; `--reserved` above
/// max_connections printed `100 − 200 = 0`.
#[tokio::test(flavor = "multi_thread")]
async fn what_showed_nothing_or_said_no_does_not_exit_0() {
    let server = start_server(30).await;
    let dsn = server.dsn_with_password();
    let tmp = tempfile::tempdir().unwrap();

    // Every request failed in both runs: not "No regression", exit 2.
    let failing = write_scenario(tmp.path(), "failing", &scenario(FAILING, ""));
    let failed = tmp.path().join("failed");
    let o = on_server("run", &failing, &dsn, &failed, &[]).await;
    assert_eq!(code(&o), Some(1), "{}", show(&o));
    let o = poolbench(["compare", s(&failed), s(&failed)]).await;
    assert_eq!(code(&o), Some(2), "{}", show(&o));
    assert!(!stdout(&o).contains("No regression"), "{}", show(&o));
    assert!(
        stderr(&o).contains("Nothing compared for pool: no request succeeded"),
        "{}",
        show(&o)
    );

    // No strategy in common: exit 2, in every format.
    let base = read_json(&fixture("base.json"));
    let other = renamed(&base, tmp.path(), "other-names", |n| format!("{n}-b"));
    for format in ["table", "json", "markdown"] {
        let o = poolbench([
            "compare",
            s(&fixture("base.json")),
            s(&other),
            "--format",
            format,
        ])
        .await;
        assert_eq!(code(&o), Some(2), "{format}: {}", show(&o));
        assert!(
            stderr(&o).contains("Nothing compared: no strategy in common"),
            "{}",
            show(&o)
        );
    }

    // A sweep whose every point failed: exit 1, no knee at 0 req/s.
    let swept = tmp.path().join("failed-sweep");
    let o = on_server("sweep", &failing, &dsn, &swept, &["--pool-sizes", "1,2"]).await;
    assert_eq!(code(&o), Some(1), "{}", show(&o));
    assert!(
        stderr(&o).contains("no point of the sweep completed a request"),
        "{}",
        show(&o)
    );
    let sweep = read_json(&swept.join("sweep.json"));
    assert_eq!(sweep["points"].as_array().unwrap().len(), 2, "{sweep}");
    assert_eq!(sweep["analysis"], json!([]), "a knee at 0 req/s: {sweep}");
    assert!(!stdout(&o).contains("◀ knee"), "{}", show(&o));

    // A plan that does not fit exits 1 (the sweep's prior says DOES NOT
    // FIT, the search has no connection per instance to measure);
    // --reserved above max_connections 2.
    let select1 = write_scenario(tmp.path(), "select1", &scenario("SELECT 1", ""));
    let good = tmp.path().join("sweep");
    let o = on_server("sweep", &select1, &dsn, &good, &["--pool-sizes", "1,2"]).await;
    assert_eq!(code(&o), Some(0), "{}", show(&o));
    let plan = |extra: &'static [&'static str]| {
        let mut args = vec![
            "plan".to_string(),
            "--sweep".into(),
            s(&good).into(),
            "--rps".into(),
            "20".into(),
            "--p99".into(),
            "1s".into(),
            "--dsn".into(),
            dsn.clone(),
            "--duration".into(),
            "500ms".into(),
            "--warmup".into(),
            "0s".into(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        poolbench(args)
    };
    let o = plan(&["--instances", "200", "--max-connections", "50"]).await;
    assert_eq!(code(&o), Some(1), "{}", show(&o));
    assert!(stdout(&o).contains("DOES NOT FIT"), "{}", show(&o));
    assert!(
        stderr(&o).contains("poolbench: no pool size can: 200 instances cannot each have"),
        "{}",
        show(&o)
    );
    let o = plan(&["--max-connections", "100", "--reserved", "200"]).await;
    assert_eq!(code(&o), Some(2), "{}", show(&o));
    assert!(o.stdout.is_empty(), "{}", show(&o));
    assert!(
        stderr(&o).contains("--reserved 200 is not below max_connections 100"),
        "{}",
        show(&o)
    );
    let o = plan(&["--max-connections", "100"]).await;
    assert_eq!(code(&o), Some(0), "{}", show(&o));
    server.stop().await.unwrap();
}

/// The summary of a histogram holding `count` values of 1 ms, as
/// report.json has it.
fn big_summary(like: &Value, count: u64) -> Value {
    let mut h = Histogram::<u64>::new(3).unwrap();
    h.auto(true);
    h.record_n(1000, count).unwrap();
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(&h, &mut bytes)
        .unwrap();
    let mut s = like.clone();
    s["count"] = json!(count);
    s["hdr"] = json!(base64::engine::general_purpose::STANDARD.encode(bytes));
    s
}

/// An edit of a report.json.
type Edit = Box<dyn Fn(&mut Value)>;

/// Class 5: the same report twice doubled the throughput, counts wrapped,
/// and a report whose totals disagree with its own rounds was merged as if
/// whole.
#[tokio::test(flavor = "multi_thread")]
async fn merges_refuse_duplicates_overflows_and_inconsistent_reports() {
    let server = start_server(20).await;
    let dsn = server.dsn_with_password();
    let tmp = tempfile::tempdir().unwrap();
    let file = write_scenario(tmp.path(), "select1", &scenario("SELECT 1", ""));
    let run = tmp.path().join("run");
    let o = on_server("run", &file, &dsn, &run, &[]).await;
    assert_eq!(code(&o), Some(0), "{}", show(&o));
    server.stop().await.unwrap();
    let report = read_report(&run);
    let path = run.join("report.json");
    let merge = |inputs: Vec<PathBuf>, out: &str| {
        let mut args = vec!["merge".to_string()];
        args.extend(inputs.iter().map(|p| s(p).to_string()));
        args.extend(["--out".into(), s(&tmp.path().join(out)).to_string()]);
        poolbench(args)
    };

    // With another copy's it merges; given twice (or a copy of it) it is
    // refused.
    let mut other = report.clone();
    other["instance_index"] = json!(3);
    let other = write_json(tmp.path(), "other", &other);
    let o = merge(vec![path.clone(), other], "once").await;
    assert_eq!(code(&o), Some(0), "{}", show(&o));
    let copy = write_json(tmp.path(), "copy", &report);
    for (inputs, out) in [
        (vec![path.clone(), path.clone()], "twice"),
        (vec![path.clone(), copy.clone()], "copied"),
    ] {
        let o = merge(inputs, out).await;
        assert_eq!(code(&o), Some(2), "{}", show(&o));
        assert!(
            stderr(&o).contains("both hold the run started"),
            "{}",
            show(&o)
        );
        assert!(!tmp.path().join(out).exists());
    }

    // Totals that disagree with the rounds, the timeline or the histogram.
    let requests = report["strategies"][0]["requests"].as_u64().unwrap();
    let edits: [(&str, Edit, &str); 3] = [
        (
            "more-requests",
            Box::new(move |r| r["strategies"][0]["requests"] = json!(requests * 2)),
            "strategy pool: requests is",
        ),
        (
            "round",
            Box::new(move |r| r["strategies"][0]["rounds"][0]["requests"] = json!(requests + 1)),
            "add up to",
        ),
        (
            "errors",
            Box::new(|r| r["strategies"][0]["errors"] = json!({"query_error": 5})),
            "strategy pool: errors is 5 but its rounds' errors add up to 0",
        ),
    ];
    for (name, edit, phrase) in edits {
        let mut edited = report.clone();
        edit(&mut edited);
        // Another copy's identity, so only the edit is at fault.
        edited["instance_index"] = json!(7);
        let bad = write_json(tmp.path(), name, &edited);
        let o = merge(vec![path.clone(), bad.clone()], name).await;
        assert_eq!(code(&o), Some(2), "{name}: {}", show(&o));
        let err = stderr(&o);
        assert!(err.contains(&format!("{}: ", bad.display())), "{err}");
        assert!(err.contains(phrase), "{name}: {err}");
    }

    // Three copies, each whole, whose counts add up beyond 64 bits (a
    // histogram's file holds at most i64::MAX values).
    let huge = i64::MAX as u64;
    let mut big = report.clone();
    {
        let st = &mut big["strategies"][0];
        let total = big_summary(&st["phases"]["total"], huge);
        st["requests"] = json!(huge);
        st["errors"] = json!({});
        st["phases"] = json!({ "total": total.clone() });
        st["per_query"] = json!({ "q": total });
        st["rounds"] = json!([{
            "round": 1, "requests": huge, "errors": 0, "throughput_rps": 1.0,
            "p50_us": 1000, "p99_us": 1000, "started_unix_ms": 1_795_341_600_000u64
        }]);
        st["timeline"] = json!([{ "round": 1, "second": 0, "rps": huge as f64, "errors": 0 }]);
    }
    let mut inputs = Vec::new();
    for index in [0, 1, 2] {
        big["instance_index"] = json!(index);
        inputs.push(write_json(tmp.path(), &format!("big-{index}"), &big));
    }
    let o = merge(inputs, "overflow").await;
    assert_eq!(code(&o), Some(2), "{}", show(&o));
    assert!(
        stderr(&o).contains("add up to more than a 64-bit count holds"),
        "{}",
        show(&o)
    );
}

/// Bytes a terminal obeys: ESC, BEL, CR.
fn has_terminal_commands(bytes: &[u8]) -> bool {
    bytes.iter().any(|b| matches!(b, 0x1b | 0x07 | b'\r'))
}

/// Class 6: a server's error message with ESC/BEL reached the terminal
/// raw; names from an edited report reached `compare --format markdown` as
/// HTML, the CSVs as formulas and the terminal as commands.
#[tokio::test(flavor = "multi_thread")]
async fn names_and_server_messages_are_escaped_in_every_format() {
    let server = start_server(20).await;
    let dsn = server.dsn_with_password();
    let tmp = tempfile::tempdir().unwrap();
    // A function whose error message retitles the terminal and rings.
    let setup = "[setup]\nsql = \"\"\"\nCREATE OR REPLACE FUNCTION boom() RETURNS int \
                 LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION '%', \
                 chr(27) || ']0;owned' || chr(7) || chr(13); END $$;\n\"\"\"\n\n";
    let file = write_scenario(tmp.path(), "hostile", &scenario("SELECT boom()", setup));
    let out = tmp.path().join("hostile");
    let o = on_server("run", &file, &dsn, &out, &[]).await;
    assert_eq!(code(&o), Some(1), "{}", show(&o));
    assert!(!has_terminal_commands(&o.stdout), "{}", show(&o));
    assert!(!has_terminal_commands(&o.stderr), "{}", show(&o));
    assert!(stderr(&o).contains("\\u{1b}]0;owned\\u{7}"), "{}", show(&o));

    // A real report whose strategy is named like a formula: every CSV
    // merge writes quotes it.
    let good = write_scenario(tmp.path(), "select1", &scenario("SELECT 1", ""));
    let run = tmp.path().join("run");
    let o = on_server("run", &good, &dsn, &run, &[]).await;
    assert_eq!(code(&o), Some(0), "{}", show(&o));
    server.stop().await.unwrap();
    let formula = "=HYPERLINK(\"http://evil.example\",\"x\")";
    let mut report = read_report(&run);
    let edited = renamed(&report, tmp.path(), "formula", |_| formula.into());
    report["instance_index"] = json!(1);
    let copy = renamed(&report, tmp.path(), "formula-1", |_| formula.into());
    let merged = tmp.path().join("merged");
    let o = poolbench(["merge", s(&edited), s(&copy), "--out", s(&merged)]).await;
    assert_eq!(code(&o), Some(0), "{}", show(&o));
    for csv in ["summary.csv", "timeline.csv"] {
        let text = std::fs::read_to_string(merged.join(csv)).unwrap();
        let rows: Vec<&str> = text.lines().skip(1).collect();
        assert!(!rows.is_empty(), "{csv}: {text}");
        for row in rows {
            let cell = row.split(',').nth(1).unwrap();
            assert!(cell.starts_with("\"'=HYPERLINK("), "{csv}: {row}");
        }
    }

    // Markup and terminal commands in names, compared.
    let base = read_json(&fixture("base.json"));
    let hostile = |n: &str| format!("{n}<img src=x onerror=alert(1)>**b**\u{1b}]0;t\u{7}");
    let a = renamed(&base, tmp.path(), "a", hostile);
    let b = renamed(&base, tmp.path(), "b", hostile);
    let o = poolbench(["compare", s(&a), s(&b), "--format", "markdown"]).await;
    assert_eq!(code(&o), Some(0), "{}", show(&o));
    let md = stdout(&o);
    assert!(!md.contains("<img"), "{md}");
    assert!(
        md.contains("&lt;img src=x onerror=alert(1)&gt;\\*\\*b\\*\\*"),
        "{md}"
    );
    assert!(!has_terminal_commands(&o.stdout), "{md}");
    let o = poolbench(["compare", s(&a), s(&b)]).await;
    assert_eq!(code(&o), Some(0), "{}", show(&o));
    assert!(!has_terminal_commands(&o.stdout), "{}", show(&o));
    assert!(stdout(&o).contains("\\u{1b}]0;t\\u{7}"), "{}", show(&o));
}

/// Class 8: `poolbench server --port P` where another PostgreSQL listens
/// blamed poolbench's own login; `concurrency` given with `rate` was
/// silently ignored.
#[tokio::test(flavor = "multi_thread")]
async fn messages_name_the_cause() {
    // SCRAM, as every default server: it refuses poolbench's password.
    let other = start_server(10).await;
    let port = other.port().to_string();
    let o = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        poolbench(["server", "--port", &port]),
    )
    .await
    .expect("gives up");
    assert_eq!(code(&o), Some(3), "{}", show(&o));
    assert!(o.stdout.is_empty(), "{}", show(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("port {port} on 127.0.0.1 is already in use")),
        "{err}"
    );
    assert!(!err.contains("own login"), "{err}");
    other.stop().await.unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let both = write_scenario(
        tmp.path(),
        "both",
        "[run]\nconcurrency = 16\nrate = 100\n\n[[strategy]]\nname = \"p\"\nkind = \"pool\"\nmax_size = 2\n\n\
         [[query]]\nname = \"q\"\nsql = \"SELECT 1\"\n",
    );
    let o = poolbench(["validate", s(&both)]).await;
    assert_eq!(code(&o), Some(2), "{}", show(&o));
    assert!(
        stderr(&o).contains("both.toml:2:15: `concurrency` (closed-loop workers) has no effect with `rate` (line 3, open loop)"),
        "{}",
        show(&o)
    );
    let open = write_scenario(
        tmp.path(),
        "open",
        "[run]\nrate = 100\n\n[[strategy]]\nname = \"p\"\nkind = \"pool\"\nmax_size = 2\n\n\
         [[query]]\nname = \"q\"\nsql = \"SELECT 1\"\n",
    );
    let unreachable = "postgres://u:p@127.0.0.1:1/db?connect_timeout=1";
    let out = tmp.path().join("out");
    for (command, flags) in [
        ("run", vec!["--concurrency", "4"]),
        ("sweep", vec!["--pool-sizes", "1,2"]),
    ] {
        let mut args = vec![command, s(&open), "--dsn", unreachable, "--out", s(&out)];
        args.extend(flags);
        let o = poolbench(&args).await;
        assert_eq!(code(&o), Some(2), "{args:?}: {}", show(&o));
        let err = stderr(&o);
        assert!(
            err.contains("--concurrency") || err.contains("a pool-size sweep runs closed-loop"),
            "{args:?}: {err}"
        );
        assert!(err.contains("open loop"), "{args:?}: {err}");
    }
}
