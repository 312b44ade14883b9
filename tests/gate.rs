//! The regression gate on real runs (issue 31): the power compare prints
//! and how it shrinks with rounds, run conditions that differ refused and
//! then listed, a baseline of several runs pooled, and an unchanged rerun
//! passing the gates docs/ci.md recommends. Five runs of one scenario on
//! the embedded server, made one after another (never two at once, which
//! would be drift between them), shared by the tests.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;

mod common;
use common::{poolbench_blocking, read_report, show, stderr, stdout, write_scenario};

/// The gates docs/ci.md recommends (its "Recommended gates").
const RECOMMENDED: [&str; 4] = [
    "--max-regression",
    "throughput=5%",
    "--max-regression",
    "p99=25%",
];

struct Runs {
    _dir: tempfile::TempDir,
    base: PathBuf,
    /// The same scenario again.
    same: PathBuf,
    /// And a third time.
    again: PathBuf,
    /// And a fourth, after `again`: with `base` and `same`, a baseline of
    /// three runs around it.
    after: PathBuf,
    /// A fifth and a sixth: with the four before them, three runs on each
    /// side, alternated, as docs/ci.md recommends.
    fifth: PathBuf,
    sixth: PathBuf,
    /// The same scenario at another concurrency, across an emulated RTT.
    other: PathBuf,
}

fn runs() -> &'static Runs {
    static RUNS: OnceLock<Runs> = OnceLock::new();
    RUNS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let scenario = write_scenario(
            dir.path(),
            "gate",
            r#"name = "gate"
[run]
duration = "1s"
warmup = "300ms"
concurrency = 4
rounds = 5

[[strategy]]
name = "pool"
kind = "pool"
max_size = 4
min_size = 4

[[query]]
name = "select1"
sql = "SELECT 1"
"#,
        );
        let run = |name: &str, extra: &[&str]| -> PathBuf {
            let out = dir.path().join(name);
            let mut args = vec![
                "run",
                scenario.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--quiet",
                "--no-html",
            ];
            args.extend_from_slice(extra);
            let o = poolbench_blocking(&args);
            assert!(o.status.success(), "run {name}: {}", show(&o));
            out
        };
        let base = run("base", &[]);
        let same = run("same", &[]);
        let again = run("again", &[]);
        let after = run("after", &[]);
        let fifth = run("fifth", &[]);
        let sixth = run("sixth", &[]);
        let other = run("other", &["--concurrency", "2", "--rtt", "1ms"]);
        Runs {
            _dir: dir,
            base,
            same,
            again,
            after,
            fifth,
            sixth,
            other,
        }
    })
}

fn compare(baseline: &Path, candidate: &Path, flags: &[&str]) -> std::process::Output {
    compare_runs(&[baseline], candidate, flags)
}

/// `compare` with a baseline of several runs.
fn compare_runs(baselines: &[&Path], candidate: &Path, flags: &[&str]) -> std::process::Output {
    compare_sides(baselines, &[candidate], flags)
}

/// `compare` with several runs on each side (`--candidate-runs`).
fn compare_sides(
    baselines: &[&Path],
    candidates: &[&Path],
    flags: &[&str],
) -> std::process::Output {
    let n = candidates.len().to_string();
    let mut args = vec!["compare"];
    args.extend(
        baselines
            .iter()
            .chain(candidates)
            .map(|b| b.to_str().unwrap()),
    );
    if candidates.len() > 1 {
        args.extend(["--candidate-runs", &n]);
    }
    args.extend_from_slice(flags);
    poolbench_blocking(&args)
}

/// The mean throughput of every round of these runs, pooled.
fn pooled_throughput(runs: &[&Path]) -> f64 {
    let rounds: Vec<f64> = runs
        .iter()
        .flat_map(|dir| {
            read_report(dir)["strategies"][0]["rounds"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["throughput_rps"].as_f64().unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    rounds.iter().sum::<f64>() / rounds.len() as f64
}

/// Exit 2, and stderr says each of `why`.
fn refused(o: &std::process::Output, why: &[&str]) {
    assert_eq!(o.status.code(), Some(2), "{}", show(o));
    let err = stderr(o);
    for w in why {
        assert!(err.contains(w), "{w:?} not in: {err}");
    }
}

fn json(o: &std::process::Output) -> Value {
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("not JSON ({e}): {}", show(o)))
}

fn metric<'a>(json: &'a Value, name: &str) -> &'a Value {
    json["strategies"][0]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == name)
        .unwrap_or_else(|| panic!("no {name} in {json}"))
}

/// A copy of the report at `dir` whose rounds are its own, repeated
/// `times`: the same noise, measured over more rounds.
fn repeated_rounds(dir: &Path, times: usize, into: &Path) -> PathBuf {
    let mut report = read_report(dir);
    for s in report["strategies"].as_array_mut().unwrap() {
        let rounds = s["rounds"].as_array().unwrap().clone();
        let more: Vec<Value> = rounds
            .iter()
            .cycle()
            .take(rounds.len() * times)
            .cloned()
            .collect();
        s["rounds"] = Value::Array(more);
    }
    let path = into.join(format!("x{times}.json"));
    std::fs::write(&path, serde_json::to_vec(&report).unwrap()).unwrap();
    path
}

#[test]
fn the_power_of_each_gated_metric_is_printed_and_shrinks_with_more_rounds() {
    let r = runs();
    let o = compare(&r.base, &r.same, &RECOMMENDED);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", show(&o));
    let table = stdout(&o);
    let line = table
        .lines()
        .find(|l| l.starts_with("power in pool: "))
        .unwrap_or_else(|| panic!("no power line in {table}"));
    assert!(line.contains("throughput ±"), "{line}");
    assert!(line.contains("detectable with 5 rounds"), "{line}");
    assert!(
        line.contains("for -5%") && line.contains("for +25%"),
        "{line}"
    );

    let mut flags = RECOMMENDED.to_vec();
    flags.extend(["--format", "json"]);
    let j = json(&compare(&r.base, &r.same, &flags));
    let t = metric(&j, "throughput");
    let five = t["detectable_change_pct"].as_f64().unwrap();
    // The margin is the interval's half-width.
    let half = (t["ci_high"].as_f64().unwrap() - t["ci_low"].as_f64().unwrap()) / 2.0;
    assert!((five - half).abs() < 1e-9, "{t}");
    assert!(five > 0.0, "{t}");
    assert!(t["rounds_for_threshold"].as_u64().unwrap() >= 3, "{t}");
    // p99.9 has no rounds: no power.
    assert!(metric(&j, "p999")["detectable_change_pct"].is_null());

    // Three times the rounds of the same noise: a margin about 1/√3 as
    // wide, and the rounds it takes for the threshold no more than before.
    let tmp = tempfile::tempdir().unwrap();
    let (b15, c15) = (
        repeated_rounds(&r.base, 3, tmp.path()),
        repeated_rounds(&r.same, 3, &{
            let d = tmp.path().join("c");
            std::fs::create_dir(&d).unwrap();
            d
        }),
    );
    let j15 = json(&compare(&b15, &c15, &flags));
    let t15 = metric(&j15, "throughput");
    let fifteen = t15["detectable_change_pct"].as_f64().unwrap();
    assert!(
        fifteen < five * 0.75,
        "{five} with 5 rounds, {fifteen} with 15"
    );
    assert_eq!(j15["strategies"][0]["baseline_rounds"], 15);
    let md = stdout(&compare(
        &b15,
        &c15,
        &[&RECOMMENDED[..], &["--format", "markdown"]].concat(),
    ));
    assert!(md.contains("| detectable | rounds for threshold |"), "{md}");
    assert!(md.contains("- power in pool: "), "{md}");
}

#[test]
fn differing_conditions_are_refused_then_listed_and_judged() {
    let r = runs();
    let o = compare(&r.base, &r.other, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let err = stderr(&o);
    for named in [
        "emulated RTT: baseline none, candidate 1 ms",
        "concurrency: baseline 4, candidate 2",
        "--allow-different",
    ] {
        assert!(err.contains(named), "{named}: {err}");
    }
    assert!(stdout(&o).is_empty(), "{}", show(&o));

    // Allowed: listed above the table, and a verdict all the same (four
    // times the latency at half the workers: throughput far down).
    let o = compare(&r.base, &r.other, &["--allow-different"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let table = stdout(&o);
    let listed = table
        .find("Compared although the run conditions differ")
        .unwrap();
    assert!(listed < table.find("strategy").unwrap(), "{table}");
    assert!(
        table.contains("  emulated RTT: baseline none, candidate 1 ms"),
        "{table}"
    );
    let j = json(&compare(
        &r.base,
        &r.other,
        &["--allow-different", "--format", "json"],
    ));
    let differences: Vec<&str> = j["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["condition"].as_str().unwrap())
        .collect();
    assert!(differences.contains(&"emulated RTT"), "{differences:?}");
    assert!(differences.contains(&"concurrency"), "{differences:?}");
    assert_eq!(metric(&j, "throughput")["verdict"], "regression");
    let md = stdout(&compare(
        &r.base,
        &r.other,
        &["--allow-different", "--format", "markdown"],
    ));
    assert!(
        md.contains("- concurrency: baseline 4, candidate 2"),
        "{md}"
    );
    let html = stdout(&compare(
        &r.base,
        &r.other,
        &["--allow-different", "--format", "html"],
    ));
    assert!(
        html.contains("Compared although the run conditions differ"),
        "{html}"
    );

    // The conditions a report records beyond the rest.
    let report = read_report(&r.base);
    let c = &report["conditions"];
    assert!(c["threads"].as_u64().unwrap() >= 1, "{c}");
    assert!(
        ["pinned", "kernel"].contains(&c["placement"].as_str().unwrap()),
        "{c}"
    );
}

#[test]
fn an_unchanged_rerun_passes_the_recommended_gates() {
    let r = runs();
    // docs/ci.md recommends three runs on each side, alternated (the
    // baseline's first), so that a machine drifting one way through the
    // job (a CI runner's neighbours) does not read as a change of the
    // unchanged build.
    let o = compare_sides(
        &[&r.base, &r.again, &r.fifth],
        &[&r.same, &r.after, &r.sixth],
        &RECOMMENDED,
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(!stdout(&o).contains("Compared although"), "{}", show(&o));
    // And the gate of earlier versions, three baseline runs and one
    // candidate (two before it and one after).
    let o = compare_runs(&[&r.base, &r.same, &r.after], &r.again, &RECOMMENDED);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
}

#[test]
fn a_candidate_of_several_runs_pools_their_rounds() {
    let r = runs();
    let mut flags = RECOMMENDED.to_vec();
    flags.extend(["--format", "json"]);
    let j = json(&compare_sides(
        &[&r.base, &r.again],
        &[&r.same, &r.after, &r.fifth],
        &flags,
    ));
    let s = &j["strategies"][0];
    assert_eq!(s["baseline_rounds"], 10, "{s}");
    assert_eq!(s["baseline_runs"], 2, "{s}");
    assert_eq!(s["candidate_rounds"], 15, "{s}");
    assert_eq!(s["candidate_runs"], 3, "{s}");
    assert_eq!(j["candidates"].as_array().unwrap().len(), 3, "{j}");
    assert_eq!(j["candidate"], j["candidates"][0], "{j}");
    assert!(
        j["candidates"][2]["path"]
            .as_str()
            .unwrap()
            .contains("fifth"),
        "{j}"
    );
    // The candidate's value is the mean of every candidate run's rounds.
    let mean = pooled_throughput(&[&r.same, &r.after, &r.fifth]);
    let t = metric(&j, "throughput");
    assert!(
        (t["candidate"].as_f64().unwrap() - mean).abs() < 1e-6 * mean,
        "{t}"
    );
    assert_eq!(t["method"], "bootstrap");

    let table = stdout(&compare_sides(
        &[&r.base, &r.again],
        &[&r.same, &r.after, &r.fifth],
        &RECOMMENDED,
    ));
    assert!(table.contains("\ncandidate: 3 runs, "), "{table}");
    assert!(
        table.contains("detectable with 10 rounds of 2 runs and 15 rounds of 3 runs"),
        "{table}"
    );
    let md = stdout(&compare_sides(
        &[&r.base, &r.again],
        &[&r.same, &r.after],
        &["--format", "markdown"],
    ));
    assert!(md.contains("candidate 2 runs, "), "{md}");

    // Nothing left for the baseline.
    let o = poolbench_blocking([
        "compare",
        r.base.to_str().unwrap(),
        r.same.to_str().unwrap(),
        "--candidate-runs",
        "2",
    ]);
    refused(&o, &["--candidate-runs 2 leaves no baseline"]);
    // The same candidate run twice would count its rounds twice.
    let o = compare_sides(&[&r.base], &[&r.same, &r.same], &RECOMMENDED);
    refused(&o, &["the same run as candidate 1"]);
    // Candidate runs made under other conditions are not one candidate.
    for extra in [&[][..], &["--allow-different"][..]] {
        let o = compare_sides(&[&r.base], &[&r.same, &r.other], extra);
        refused(
            &o,
            &["the candidate runs cannot be pooled", "concurrency: 4 vs 2"],
        );
    }
}

#[test]
fn a_baseline_of_several_runs_pools_their_rounds() {
    let r = runs();
    let mut flags = RECOMMENDED.to_vec();
    flags.extend(["--format", "json"]);
    let j = json(&compare_runs(&[&r.base, &r.same], &r.again, &flags));
    let s = &j["strategies"][0];
    assert_eq!(s["baseline_rounds"], 10, "{s}");
    assert_eq!(s["baseline_runs"], 2, "{s}");
    assert_eq!(s["candidate_rounds"], 5, "{s}");
    assert_eq!(j["baselines"].as_array().unwrap().len(), 2, "{j}");
    assert_eq!(j["baseline"], j["baselines"][0], "{j}");
    // The baseline's value is the mean of every run's rounds.
    let mean = pooled_throughput(&[&r.base, &r.same]);
    let t = metric(&j, "throughput");
    assert!(
        (t["base"].as_f64().unwrap() - mean).abs() < 1e-6 * mean,
        "{t}"
    );
    assert_eq!(t["method"], "bootstrap");

    let table = stdout(&compare_runs(&[&r.base, &r.same], &r.again, &RECOMMENDED));
    assert!(table.starts_with("baseline:  2 runs, "), "{table}");
    assert!(
        table.contains("detectable with 10 rounds of 2 runs and 5 rounds"),
        "{table}"
    );

    // The same run twice would count its rounds twice.
    let o = compare_runs(&[&r.base, &r.base], &r.again, &RECOMMENDED);
    refused(&o, &["the same run as baseline 1"]);
    // Runs made under other conditions are not one baseline, allowed or not.
    for extra in [&[][..], &["--allow-different"][..]] {
        let o = compare_runs(&[&r.base, &r.other], &r.same, extra);
        refused(
            &o,
            &["the baseline runs cannot be pooled", "concurrency: 4 vs 2"],
        );
    }
}
