//! `poolbench compare` as CI sees it: the built binary on report pairs, its
//! exit code and what it prints.
//!
//! The fixtures in `tests/fixtures/reports/` are a real run's report.json
//! (`scenarios/select1.toml`, 3 rounds) with histograms and timelines emptied
//! and numbers edited (see the README there). One test runs two real
//! scenarios on the embedded server and compares them.

use std::path::{Path, PathBuf};

mod common;
use common::poolbench_blocking;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/reports")
        .join(name)
}

/// Compares two fixtures with extra flags: (exit code, stdout, stderr).
fn compare(baseline: &str, candidate: &str, flags: &[&str]) -> (i32, String, String) {
    let (b, c) = (fixture(baseline), fixture(candidate));
    let mut args = vec!["compare", b.to_str().unwrap(), c.to_str().unwrap()];
    args.extend_from_slice(flags);
    let out = poolbench_blocking(&args);
    (
        out.status.code().expect("exited, not killed"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The verdict of `strategy`'s `metric` in JSON output.
fn verdict(json: &serde_json::Value, strategy: &str, metric: &str) -> String {
    let s = json["strategies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == strategy)
        .unwrap_or_else(|| panic!("no strategy {strategy} in {json}"));
    let m = s["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == metric)
        .unwrap_or_else(|| panic!("no metric {metric} in {s}"));
    m["verdict"].as_str().unwrap().to_string()
}

fn json_of(baseline: &str, candidate: &str, flags: &[&str]) -> (i32, serde_json::Value) {
    let mut flags = flags.to_vec();
    flags.extend(["--format", "json"]);
    let (code, stdout, stderr) = compare(baseline, candidate, &flags);
    let json = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\nstderr: {stderr}"));
    (code, json)
}

#[test]
fn a_report_compared_with_itself_has_no_regression() {
    let (code, stdout, stderr) = compare("base.json", "base.json", &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("No regression"), "{stdout}");
    assert!(!stdout.contains("regression  "), "{stdout}");
    assert!(stdout.contains("Noise test: bootstrap 95%"), "{stdout}");
    // A run directory works as well as its report.json.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("base.json"), dir.path().join("report.json")).unwrap();
    let out = poolbench_blocking([
        "compare",
        dir.path().to_str().unwrap(),
        fixture("base.json").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn a_regression_exits_1_and_names_it() {
    let (code, stdout, _) = compare("base.json", "regression.json", &[]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains(
            "2 regressions in per-request: error rate +3.79 pt (threshold +1 pt); \
             in pool-8: p99 +100.0% (threshold +10%)"
        ),
        "{stdout}"
    );
    let (code, json) = json_of("base.json", "regression.json", &[]);
    assert_eq!(code, 1);
    assert_eq!(json["regression"], true);
    assert_eq!(verdict(&json, "pool-8", "p99"), "regression");
    assert_eq!(verdict(&json, "per-request", "error_rate"), "regression");
    // p50 doubled too, but has no threshold by default.
    assert_eq!(verdict(&json, "pool-8", "p50"), "info");
    assert_eq!(verdict(&json, "pool-8", "throughput"), "ok");
}

#[test]
fn max_regression_changes_one_threshold() {
    // Loosened: the same pair passes.
    let loose = [
        "--max-regression",
        "p99=150%",
        "--max-regression",
        "error_rate=5",
    ];
    let (code, json) = json_of("base.json", "regression.json", &loose);
    assert_eq!(code, 0, "{json}");
    assert_eq!(verdict(&json, "pool-8", "p99"), "ok");
    assert_eq!(verdict(&json, "per-request", "error_rate"), "ok");
    // Tightened: p50, informational by default, becomes a gate.
    let mut tight = loose.to_vec();
    tight.extend(["--max-regression", "p50=5%"]);
    let (code, json) = json_of("base.json", "regression.json", &tight);
    assert_eq!(code, 1, "{json}");
    assert_eq!(verdict(&json, "pool-8", "p50"), "regression");
    let m = &json["strategies"][1]["metrics"][0];
    assert_eq!(m["metric"], "p50");
    assert_eq!(m["threshold"], 5.0);
    assert!(m["change_pct"].as_f64().unwrap() > 99.0, "{m}");
    assert!(m["ci_low"].as_f64().unwrap() > 5.0, "{m}");
}

#[test]
fn an_improvement_exits_0_and_says_so() {
    let (code, stdout, _) = compare("base.json", "improvement.json", &[]);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("1 improvement in pool-8: throughput +100.0%"),
        "{stdout}"
    );
    let (_, json) = json_of("base.json", "improvement.json", &[]);
    assert_eq!(verdict(&json, "pool-8", "throughput"), "improvement");
    assert_eq!(json["regression"], false);
}

#[test]
fn overlapping_rounds_are_within_noise() {
    // Throughput 18% lower on average, beyond the 10% threshold, but the
    // rounds overlap the baseline's.
    let (code, json) = json_of("base.json", "noise.json", &[]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(verdict(&json, "pool-8", "throughput"), "within noise");
    let m = &json["strategies"][1]["metrics"][3];
    assert!(m["change_pct"].as_f64().unwrap() < -10.0, "{m}");
    assert!(m["ci_low"].as_f64().unwrap() < 0.0 && m["ci_high"].as_f64().unwrap() > 0.0);
}

#[test]
fn single_runs_are_compared_on_values_and_say_so() {
    let (code, stdout, _) = compare("single-base.json", "single-regression.json", &[]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("Single-run comparison"), "{stdout}");
    assert!(stdout.contains("rounds = 5"), "{stdout}");
    assert!(stdout.contains("in pool-8: p99 +20.0%"), "{stdout}");
}

#[test]
fn markdown_is_a_github_table_with_a_summary() {
    let (code, md, _) = compare("base.json", "regression.json", &["--format", "markdown"]);
    assert_eq!(code, 1);
    assert!(
        md.contains("**2 regressions** in per-request: error rate +3.79 pt"),
        "{md}"
    );
    assert!(
        md.contains(
            "| strategy | metric | verdict | baseline | candidate | change | 95% CI | threshold \
             | detectable | rounds for threshold |"
        ),
        "{md}"
    );
    assert!(
        md.contains("|---|---|---|--:|--:|--:|--:|--:|--:|--:|"),
        "{md}"
    );
    assert!(md.contains("- power in pool-8: p99 ±"), "{md}");
    let p99 = md
        .lines()
        .find(|l| l.contains("| p99 (ms), mean of round p99s | regression |"))
        .unwrap_or_else(|| panic!("no p99 regression row in {md}"));
    assert!(p99.contains("+100.0%") && p99.contains("+10%"), "{p99}");
    assert!(md.contains("Noise test: bootstrap"), "{md}");
}

#[test]
fn strategies_in_one_report_only_are_listed_not_failed() {
    let (code, stdout, _) = compare("base.json", "pool-only.json", &[]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("only in baseline: per-request"), "{stdout}");
    let (_, json) = json_of("pool-only.json", "base.json", &[]);
    assert_eq!(json["only_in_candidate"][0], "per-request");
}

#[test]
fn unreadable_reports_exit_2_naming_the_file() {
    let cases: [(&str, &str); 4] = [
        ("missing.json", "missing.json: no such file"),
        (
            "garbage.json",
            "not a poolbench report.json: key must be a string at line 3 column 3",
        ),
        (
            "schema-99.json",
            "report schema_version 99 is not supported by this poolbench (1)",
        ),
        ("no-strategies.json", "missing field `strategies`"),
    ];
    for (name, message) in cases {
        let (code, stdout, stderr) = compare("base.json", name, &[]);
        assert_eq!(code, 2, "{name}: {stdout}{stderr}");
        assert!(stderr.contains("candidate "), "{stderr}");
        assert!(stderr.contains(message), "{name}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let out = poolbench_blocking(["compare", "/nonexistent-dir/", "x.json"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn incompatible_reports_exit_2_unless_allowed() {
    for (name, message) in [
        (
            "other-scenario.json",
            "the run conditions differ: scenario sha256: baseline cc0a175dc163, candidate abababababab",
        ),
        (
            "other-server.json",
            "the run conditions differ: server version: baseline 15.18 (Debian 15.18-0+deb12u1), \
             candidate 16.4 (Ubuntu 16.4-1); TLS: baseline true, candidate false",
        ),
    ] {
        let (code, _, stderr) = compare("base.json", name, &[]);
        assert_eq!(code, 2, "{name}: {stderr}");
        assert!(stderr.contains(message), "{stderr}");
        assert!(stderr.contains("--allow-different"), "{stderr}");

        let (code, stdout, stderr) = compare("base.json", name, &["--allow-different"]);
        assert_eq!(code, 0, "{name}: {stdout}{stderr}");
        assert!(
            stdout.contains("Compared although the run conditions differ"),
            "{stdout}"
        );
        assert!(stdout.contains("No regression"), "{stdout}");
        // Markdown carries the differences in the comment, and in the log.
        let flags = ["--allow-different", "--format", "markdown"];
        let (code, md, stderr) = compare("base.json", name, &flags);
        assert_eq!(code, 0);
        assert!(
            md.contains("Compared although the run conditions differ"),
            "{md}"
        );
        assert!(stderr.contains("warning: compared although"), "{stderr}");
        let (code, json) = json_of("base.json", name, &["--allow-different"]);
        assert_eq!(code, 0);
        assert!(!json["differences"].as_array().unwrap().is_empty(), "{json}");
    }
}

#[test]
fn bad_max_regression_is_a_flag_error() {
    for (flag, message) in [
        ("p98=5", "unknown metric `p98`"),
        ("p99=fast", "`fast` is not a percentage"),
        ("p99", "expected METRIC=PCT"),
    ] {
        let (code, _, stderr) = compare("base.json", "base.json", &["--max-regression", flag]);
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains("--max-regression"), "{stderr}");
        assert!(stderr.contains(message), "{stderr}");
    }
}

/// A pool of 1 against a pool of 10 under 16 workers, on the embedded
/// server: the same strategy name, so compare lines them up, and a
/// regression it must find.
#[test]
fn a_smaller_pool_is_a_regression_on_a_real_server() {
    let dir = tempfile::tempdir().unwrap();
    let run = |max_size: u32| -> PathBuf {
        let scenario = dir.path().join(format!("pool{max_size}.toml"));
        std::fs::write(
            &scenario,
            format!(
                r#"name = "pool-size"
[run]
duration = "2s"
warmup = "500ms"
concurrency = 16
rounds = 3

[[strategy]]
name = "pool"
kind = "pool"
max_size = {max_size}
min_size = {max_size}

[[query]]
name = "sleep"
sql = "SELECT pg_sleep(0.001)"
"#
            ),
        )
        .unwrap();
        let out_dir = dir.path().join(format!("out{max_size}"));
        let out = poolbench_blocking([
            "run",
            scenario.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
            "--quiet",
        ]);
        assert!(
            out.status.success(),
            "run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out_dir
    };
    let (ten, one) = (run(10), run(1));
    let (ten, one) = (ten.to_str().unwrap(), one.to_str().unwrap());

    // Different files (max_size), so different sha256: refused by default.
    let out = poolbench_blocking(["compare", ten, one]);
    assert_eq!(out.status.code(), Some(2));

    let out = poolbench_blocking(["compare", ten, one, "--allow-different", "--format", "json"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let p99 = verdict(&json, "pool", "p99");
    let throughput = verdict(&json, "pool", "throughput");
    assert!(
        p99 == "regression" || throughput == "regression",
        "p99 {p99}, throughput {throughput}: {stdout}"
    );
    assert_eq!(json["strategies"][0]["metrics"][1]["method"], "bootstrap");

    // The pool of 10 against itself: no regression.
    let out = poolbench_blocking(["compare", ten, ten]);
    assert_eq!(out.status.code(), Some(0));
}
