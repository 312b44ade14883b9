//! The pages people look at, in a real headless Chromium: report.html of a
//! real run (and of an interrupted one), sweep.html (of a pool-size and of
//! a rate sweep) and `compare --format html` load from the file alone with
//! no request and no console error,
//! draw their charts, are not blank, print, and show report.json's numbers;
//! the hlog files decode with an independent HdrHistogram implementation
//! (the Python `hdrhistogram` package) to report.json's counts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use poolbench::metrics::decode_histogram;
use poolbench::report::format::{ms, rps, thousands};
use serde_json::Value;

#[path = "../common/mod.rs"]
mod common;
use common::{
    command, on_server, poolbench, read_report, start_server, stderr, stdout, strategy,
    write_scenario,
};

mod browser;
use browser::{ink, Browser};

const SCENARIO: &str = r#"
name = "pages"
description = "fresh against a pool, for the HTML tests"
[run]
duration = "2s"
warmup = "0s"
concurrency = 4
seed = 3

[[strategy]]
name = "per-request"
kind = "fresh"

[[strategy]]
name = "pool-2"
kind = "pool"
max_size = 2
min_size = 2

[[query]]
name = "add"
weight = 3
sql = "SELECT $1::int8 + 1"
params = [{ int = [1, 1000] }]

[[query]]
name = "fail"
weight = 1
sql = "SELECT 1 / ($1::int8 - $1::int8)"
params = [{ int = [1, 1000] }]
"#;

/// Runs SCENARIO against a fresh embedded server; returns the output
/// directory, stdout and stderr.
async fn run(tmp: &Path, extra: &[&str]) -> (PathBuf, String, String) {
    let server = start_server(100).await;
    let scenario = write_scenario(tmp, "pages", SCENARIO);
    let out = tmp.join("out");
    let o = on_server("run", &scenario, &server.dsn_with_password(), &out, extra).await;
    let (stdout, stderr) = (stdout(&o), stderr(&o));
    // Division by zero fails a quarter of the requests: errors to show, and
    // above no max_error_rate, so the run succeeds.
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    (out, stdout, stderr)
}

/// The page loaded from the file alone: no request but the file itself,
/// nothing on the console, charts drawn, not blank.
fn assert_shows_offline(b: &mut Browser, page: &Path, min_charts: u64) {
    let load = b.open(page);
    let own = format!("file://{}", page.canonicalize().unwrap().display());
    let elsewhere: Vec<&String> = load.requests.iter().filter(|u| **u != own).collect();
    assert!(
        elsewhere.is_empty(),
        "{}: requests {elsewhere:?}",
        page.display()
    );
    assert!(
        load.problems.is_empty(),
        "{}: {:?}",
        page.display(),
        load.problems
    );
    // Every chart is an inline SVG with a size and drawn lines or shapes.
    let charts = b.eval(
        "[...document.querySelectorAll('svg.chart')].map(s => { const r = s.getBoundingClientRect(); \
         return [r.width, r.height, s.querySelectorAll('polyline, path, rect, circle, line').length, \
         s.querySelectorAll('text').length]; })",
    );
    let charts = charts.as_array().unwrap();
    assert!(
        charts.len() as u64 >= min_charts,
        "{}: {} charts",
        page.display(),
        charts.len()
    );
    for c in charts {
        let n = |i: usize| c[i].as_f64().unwrap();
        assert!(n(0) > 300.0 && n(1) > 100.0, "chart size {c}");
        assert!(
            n(2) >= 3.0 && n(3) >= 4.0,
            "chart without marks or labels: {c}"
        );
    }
    assert_eq!(
        b.eval("document.querySelectorAll('script, link, img, iframe').length"),
        0
    );
    let (inked, colours) = ink(&b.screenshot(false));
    assert!(
        inked > 0.02 && colours > 8,
        "{}: blank screenshot ({inked:.3} inked, {colours} colours)",
        page.display()
    );
    assert!(b.pdf().len() > 10_000, "{} does not print", page.display());
}

/// `data-stat` cells of rows with `data-strategy` (and `data-phase`).
fn cells(b: &mut Browser, selector: &str) -> Vec<(String, String, String, String)> {
    let v = b.eval(&format!(
        "[...document.querySelectorAll('{selector} td[data-stat]')].map(td => \
         [td.parentElement.dataset.strategy || '', td.parentElement.dataset.phase || '', \
          td.dataset.stat, td.textContent])"
    ));
    v.as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let s = |i: usize| c[i].as_str().unwrap().to_string();
            (s(0), s(1), s(2), s(3))
        })
        .collect()
}

/// A real run's report.html: offline, error-free, drawn, in light and dark;
/// its tables and headline say what report.json and the terminal say; the
/// terminal's last line names it.
#[tokio::test(flavor = "multi_thread")]
async fn report_html_shows_the_run_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, stdout, _) = run(tmp.path(), &[]).await;
    let page = out.join("report.html");
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(&format!("report: {}", page.display())),
        "last line: {last}"
    );
    let report = read_report(&out);

    let mut b = Browser::start(1100, 1400);
    // The total spectrum, one per strategy, the bars, and 3 timeline charts
    // per strategy.
    assert_shows_offline(&mut b, &page, 1 + 2 + 1 + 2 * 3);

    let headline = b.eval("document.querySelector('p.headline').textContent");
    let printed = stdout
        .lines()
        .find(|l| l.starts_with("per-request connections"))
        .expect("a headline");
    assert_eq!(headline, printed);

    let phases = cells(&mut b, "tr[data-phase]");
    let mut seen = 0;
    for (name, phase, stat, text) in &phases {
        let s = strategy(&report, name);
        let (summary, what) = if let Some(p) = s["phases"].get(phase) {
            (p, "phase")
        } else {
            (&s["per_query"][phase], "query")
        };
        let v = &summary[stat];
        let expected = if stat == "count" {
            thousands(v.as_u64().unwrap())
        } else {
            ms(v.as_f64().unwrap())
        };
        assert_eq!(text, &expected, "{name} {what} {phase} {stat}");
        seen += 1;
    }
    // 7 phases of fresh (connect, tcp, tls, startup, query, close, total),
    // 7 of the pool (its connections' tcp, tls, startup; acquire, wait,
    // query, total), 2 queries each, 7 numbers a row.
    assert_eq!(seen, (7 + 7 + 2 * 2) * 7, "{phases:?}");
    for (name, _, stat, text) in cells(&mut b, "#strategies-table tr") {
        let s = strategy(&report, &name);
        let expected = match stat.as_str() {
            "requests" | "connections_opened" => thousands(s[&stat].as_u64().unwrap()),
            "throughput_rps" => rps(s[&stat].as_f64().unwrap()),
            "errors" => thousands(
                s["errors"]
                    .as_object()
                    .unwrap()
                    .values()
                    .map(|v| v.as_u64().unwrap())
                    .sum(),
            ),
            _ => continue,
        };
        assert_eq!(text, expected, "{name} {stat}");
    }
    // The division by zero, with its class and a sample message.
    let errors = b.eval("document.getElementById('errors-table').textContent");
    let errors = errors.as_str().unwrap();
    assert!(errors.contains("query_error:22012"), "{errors}");
    assert!(errors.contains("division by zero"), "{errors}");

    // Dark mode: a dark page, the charts' ink turned light, still drawn.
    b.prefer("dark");
    let bg = b.eval("getComputedStyle(document.body).backgroundColor");
    assert_eq!(bg, "rgb(22, 24, 29)");
    let ink_colour =
        b.eval("getComputedStyle(document.querySelector('svg.chart text[fill=\"#000000\"]')).fill");
    assert_eq!(ink_colour, "rgb(230, 231, 234)");
    let (inked, colours) = ink(&b.screenshot(false));
    assert!(inked > 0.02 && colours > 8, "dark: {inked} {colours}");
}

/// A headless browser that would let a request through would make the test
/// above worthless: a page that fetches an image is caught.
#[test]
fn the_browser_check_catches_a_request() {
    let tmp = tempfile::tempdir().unwrap();
    let page = tmp.path().join("leak.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><body><p>x</p><img src=\"http://127.0.0.1:9/x.png\"></body></html>",
    )
    .unwrap();
    let mut b = Browser::start(800, 600);
    let load = b.open(&page);
    assert!(
        load.requests
            .iter()
            .any(|u| u.starts_with("http://127.0.0.1:9/")),
        "{load:?}"
    );
    assert!(!load.problems.is_empty(), "{load:?}");
}

/// Reads every hlog with the Python HdrHistogram package (HdrHistogram_py's
/// HistogramLogReader), an implementation independent of the Rust crate
/// poolbench writes with: per file, its intervals, tags, start time, and
/// their sum's total count and recorded values.
fn read_hlogs_in_python(dir: &Path) -> BTreeMap<String, Value> {
    const SCRIPT: &str = r#"
import json, os, sys
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader
out = {}
for name in sorted(os.listdir(sys.argv[1])):
    total = HdrHistogram(1, 24 * 3600 * 1000 * 1000, 3)
    reader = HistogramLogReader(os.path.join(sys.argv[1], name), total)
    intervals, tags = 0, set()
    while True:
        h = reader.get_next_interval_histogram()
        if h is None:
            break
        intervals += 1
        tags.add(h.get_tag())
        total.add(h)
    buckets = [[i.value_iterated_to, i.count_at_value_iterated_to]
               for i in total.get_recorded_iterator()]
    out[name] = {"intervals": intervals, "count": total.get_total_count(), "tags": sorted(tags),
                 "buckets": buckets, "start": reader.get_start_time_sec()}
print(json.dumps(out))
"#;
    let python = python();
    let o = std::process::Command::new(&python)
        .args(["-c", SCRIPT])
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", python.display()));
    assert!(
        o.status.success(),
        "python: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// A Python with the `hdrhistogram` package: `POOLBENCH_PYTHON`, the venv
/// .ci/run makes in target/test-venv, or python3.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("POOLBENCH_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-venv/bin/python");
    let candidate = if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    };
    let ok = std::process::Command::new(&candidate)
        .args(["-c", "import hdrh.log"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "the hlog test reads logs with Python's HdrHistogram: `python3 -m venv target/test-venv && \
         target/test-venv/bin/pip install hdrhistogram` (.ci/run does this), or set POOLBENCH_PYTHON"
    );
    candidate
}

/// Every strategy × phase has an hlog whose intervals, decoded by another
/// implementation, add up to report.json's histogram of it; with
/// --no-html there is no report.html and the last line names the directory.
#[tokio::test(flavor = "multi_thread")]
async fn hlog_files_decode_elsewhere_to_the_report() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, stdout, _) = run(tmp.path(), &["--no-html"]).await;
    assert!(!out.join("report.html").exists());
    let last = stdout.lines().last().unwrap_or_default();
    assert_eq!(last, format!("reports: {}", out.display()));
    let report = read_report(&out);
    let logs = read_hlogs_in_python(&out.join("hlog"));
    let mut expected = Vec::new();
    for s in report["strategies"].as_array().unwrap() {
        let name = s["name"].as_str().unwrap();
        // Per-second histograms, when the report has them: one interval each.
        // (A connection's setup phases, tcp/tls/startup, are recorded per
        // connection, not per second: their log is one interval.)
        let seconds_with = |phase: &str| {
            s["timeline"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|row| row.get("hdr").is_some_and(|h| h.get(phase).is_some()))
                .count()
        };
        for (phase, p) in s["phases"].as_object().unwrap() {
            let seconds_with_hdr = seconds_with(phase);
            let file = format!("{name}.{phase}.hlog");
            expected.push(file.clone());
            let log = logs
                .get(&file)
                .unwrap_or_else(|| panic!("no {file}: {logs:?}"));
            assert_eq!(log["count"], p["count"], "{file}");
            assert_eq!(log["tags"], serde_json::json!([format!("{name}.{phase}")]));
            // Not only the count: every recorded value (bucket) and its count
            // equals report.json's histogram of the phase.
            let h = decode_histogram(p["hdr"].as_str().unwrap()).unwrap();
            let ours: Vec<Value> = h
                .iter_recorded()
                .map(|v| serde_json::json!([v.value_iterated_to(), v.count_at_value()]))
                .collect();
            assert_eq!(log["buckets"], Value::Array(ours), "{file}");
            let intervals = log["intervals"].as_u64().unwrap();
            if seconds_with_hdr > 0 {
                assert!(intervals >= 2, "{file}: {intervals} intervals");
            } else {
                assert_eq!(intervals, 1, "{file}");
            }
            let start = log["start"].as_f64().unwrap();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs_f64();
            assert!((now - start).abs() < 600.0, "{file}: StartTime {start}");
        }
    }
    let mut files: Vec<&String> = logs.keys().collect();
    files.sort();
    expected.sort();
    assert_eq!(files, expected.iter().collect::<Vec<_>>());
}

/// Ctrl-C mid-run: the partial report's page still loads, says it was
/// interrupted, and draws what was measured.
#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_run_renders() {
    use tokio::io::AsyncBufReadExt;
    let server = start_server(100).await;
    let tmp = tempfile::tempdir().unwrap();
    let long = SCENARIO.replace("duration = \"2s\"", "duration = \"60s\"");
    let scenario = write_scenario(tmp.path(), "long", &long);
    let out = tmp.path().join("out");
    let mut child = command([
        "run",
        scenario.to_str().unwrap(),
        "--dsn",
        &server.dsn_with_password(),
        "--out",
        out.to_str().unwrap(),
    ])
    .spawn()
    .unwrap();
    // The header is printed once the server answered; measure a moment.
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await {
            Ok(Ok(Some(line))) if line.starts_with("workload") => break,
            Ok(Ok(Some(_))) => continue,
            _ => break,
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    // SAFETY: signalling our own child, still running.
    unsafe { libc::kill(child.id().unwrap() as libc::pid_t, libc::SIGINT) };
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("poolbench stops")
        .unwrap();
    assert_eq!(status.code(), Some(130));
    assert_eq!(read_report(&out)["interrupted"], true);
    let mut b = Browser::start(1100, 1400);
    // The interrupted strategy: its spectrum, the bars, 3 timeline charts.
    assert_shows_offline(&mut b, &out.join("report.html"), 1 + 1 + 1 + 3);
    let banner = b.eval("document.getElementById('interrupted').textContent");
    assert!(
        banner.as_str().unwrap().starts_with("Interrupted"),
        "{banner}"
    );
}

/// Sweeps SCENARIO on a fresh embedded server with `extra`: the page the
/// last line names, and sweep.json.
async fn sweep(tmp: &Path, extra: &[&str]) -> (PathBuf, Value) {
    let server = start_server(100).await;
    let scenario = write_scenario(tmp, "pages", SCENARIO);
    let out = tmp.join("sweep");
    let o = on_server("sweep", &scenario, &server.dsn_with_password(), &out, extra).await;
    let stdout = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{stdout}{}", stderr(&o));
    let page = out.join("sweep.html");
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(&format!("sweep: {}", page.display())),
        "{last}"
    );
    let json = std::fs::read_to_string(out.join("sweep.json")).unwrap();
    (page, serde_json::from_str(&json).unwrap())
}

/// sweep.html: throughput and latency against pool size for the points
/// measured, the USL curve, the knee; offline and error-free.
#[tokio::test(flavor = "multi_thread")]
async fn sweep_html_shows_the_curve_and_the_knee() {
    let tmp = tempfile::tempdir().unwrap();
    let (page, sweep) = sweep(tmp.path(), &["--pool-sizes", "1,2,3", "--duration", "1s"]).await;
    let mut b = Browser::start(1100, 1400);
    assert_shows_offline(&mut b, &page, 2);
    let text = b.eval("document.body.textContent");
    let text = text.as_str().unwrap();
    let knee = sweep["analysis"][0]["knee_pool_size"].as_u64().unwrap();
    assert!(text.contains(&format!("knee: pool {knee}")), "knee {knee}");
    assert!(text.contains("USL fit"), "the fitted curve's legend");
    for p in sweep["points"].as_array().unwrap() {
        let size = p["pool_size"].to_string();
        let row = b.eval(&format!(
            "document.querySelector('tr[data-pool=\"{size}\"] td[data-stat=\"throughput_rps\"]').textContent"
        ));
        assert_eq!(
            row,
            rps(p["throughput_rps"].as_f64().unwrap()),
            "pool {size}"
        );
    }
}

/// sweep.html of a rate sweep: achieved rate and latency against the
/// arrival rate for every strategy, where each saturates, and the table's
/// numbers those of sweep.json; offline and error-free.
#[tokio::test(flavor = "multi_thread")]
async fn rate_sweep_html_shows_every_strategy_against_the_rate() {
    let tmp = tempfile::tempdir().unwrap();
    let (page, sweep) = sweep(tmp.path(), &["--rates", "200,50", "--duration", "1s"]).await;
    assert_eq!(sweep["kind"], "rate-sweep");
    let points = sweep["points"].as_array().unwrap();
    assert_eq!(points.len(), 4, "2 rates × 2 strategies: {sweep}");
    let mut b = Browser::start(1100, 1400);
    assert_shows_offline(&mut b, &page, 2);
    let text = b.eval("document.body.textContent");
    let text = text.as_str().unwrap();
    assert!(text.contains("rate sweep"), "the title");
    for s in sweep["saturation"].as_array().unwrap() {
        let name = s["strategy"].as_str().unwrap();
        assert!(
            text.contains(&format!("{name}: kept up")) || text.contains(&format!("{name}: could")),
            "where {name} saturates"
        );
    }
    for p in points {
        let (name, rate) = (p["strategy"].as_str().unwrap(), p["rate"].as_f64().unwrap());
        let mut cell = |stat: &str| {
            b.eval(&format!(
                "document.querySelector('tr[data-strategy=\"{name}\"][data-rate=\"{rate}\"] \
                 td[data-stat=\"{stat}\"]').textContent"
            ))
        };
        assert_eq!(
            cell("achieved_rate"),
            rps(p["achieved_rate"].as_f64().unwrap()),
            "{name} at {rate}"
        );
        assert_eq!(
            cell("total_p99_ms"),
            ms(p["total_p99_us"].as_u64().unwrap() as f64),
            "{name} at {rate}"
        );
        assert_eq!(
            cell("errors"),
            thousands(p["errors"].as_u64().unwrap()),
            "{name} at {rate}"
        );
    }
}

/// `compare --format html` of a regression: the page draws the changes
/// with their intervals and shows the same verdicts as the JSON.
#[tokio::test(flavor = "multi_thread")]
async fn compare_html_draws_the_intervals() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reports");
    let args = |format: &str| {
        vec![
            "compare".to_string(),
            fixtures.join("base.json").display().to_string(),
            fixtures.join("regression.json").display().to_string(),
            "--format".into(),
            format.into(),
        ]
    };
    let html = poolbench(args("html")).await;
    assert_eq!(html.status.code(), Some(1), "a regression exits 1");
    let json = poolbench(args("json")).await;
    let json: Value = serde_json::from_slice(&json.stdout).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let page = tmp.path().join("compare.html");
    std::fs::write(&page, &html.stdout).unwrap();
    let mut b = Browser::start(1100, 1400);
    assert_shows_offline(&mut b, &page, 1);
    let verdicts = b.eval(
        "[...document.querySelectorAll('tr[data-metric]')].map(tr => \
         [tr.dataset.strategy, tr.dataset.metric, tr.children[2].textContent])",
    );
    let verdicts = verdicts.as_array().unwrap();
    let mut n = 0;
    for s in json["strategies"].as_array().unwrap() {
        for m in s["metrics"].as_array().unwrap() {
            let row = verdicts
                .iter()
                .find(|v| v[0] == s["name"] && v[1] == m["metric"])
                .unwrap_or_else(|| panic!("{} {} not shown", s["name"], m["metric"]));
            assert_eq!(row[2], m["verdict"], "{row:?}");
            n += 1;
        }
    }
    assert!(n >= 5);
}
