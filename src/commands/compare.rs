//! `poolbench compare BASELINE... CANDIDATE`: loads the reports (one run or
//! several on each side, pooled), checks that they may be compared,
//! prints the result in the chosen format. A
//! regression is `Outcome::Regression` (exit 1); bad or incompatible reports
//! and bad thresholds are bad input (exit 2), and so is a comparison that
//! compared nothing (no strategy in common, or one with no successful
//! request on a side): it is printed, then refused, so that a CI gate never
//! passes on it.

use anyhow::Result;

use crate::cli::{CompareArgs, CompareFormat};
use crate::compare::{
    self, check_compatible, load_report, parse_max_regression, LoadedReport, Markup, MaxRegression,
    Thresholds,
};
use crate::error::bad_input;
use crate::view::export::{html, json, markdown};
use crate::view::term;
use crate::Outcome;

pub fn run(args: &CompareArgs) -> Result<Outcome> {
    let overrides = args
        .max_regression
        .iter()
        .map(|text| {
            parse_max_regression(text).map_err(|e| {
                bad_input(format!(
                    "invalid value '{text}' for '--max-regression <METRIC=PCT>': {e}"
                ))
            })
        })
        .collect::<Result<Vec<MaxRegression>>>()?;
    // clap puts the last path in `candidate`; --candidate-runs N takes the
    // N − 1 before it from the baseline's.
    let mut paths = args.baseline.clone();
    paths.push(args.candidate.clone());
    let n = args.candidate_runs as usize;
    if n >= paths.len() {
        return Err(bad_input(format!(
            "--candidate-runs {n} leaves no baseline: {} paths given, {} needed at least (the \
             baseline's runs first, then the candidate's {n})",
            paths.len(),
            n + 1
        )));
    }
    let candidate_paths = paths.split_off(paths.len() - n);
    let baselines = load_side(&paths, "baseline")?;
    let candidates = load_side(&candidate_paths, "candidate")?;
    let mut warnings = check_runs(&baselines, "baseline")?;
    warnings.extend(check_runs(&candidates, "candidate")?);
    // Neither side is empty: clap requires a BASELINE, and n < paths.
    let (differences, more) =
        check_compatible(&baselines[0], &candidates[0], args.allow_different)?;
    warnings.extend(more);
    // The table prints its differences and warnings itself; markdown and
    // json carry them in a file or pipe, so the log gets them too.
    if args.format != CompareFormat::Table {
        for d in &differences {
            crate::errln!("warning: compared although the run conditions differ: {d}");
        }
        for w in &warnings {
            crate::errln!("warning: {w}");
        }
    }
    let diff = compare::compare(
        &baselines,
        &candidates,
        &Thresholds::new(&overrides),
        differences,
        warnings,
    );
    let text = match args.format {
        CompareFormat::Table => term::compare::render(&diff),
        CompareFormat::Markdown => markdown::compare(&diff),
        CompareFormat::Json => json::to_string(&diff)?,
        CompareFormat::Html => html::compare::render(&diff)?,
    };
    crate::out!("{text}");
    if diff.regression {
        return Ok(Outcome::Regression);
    }
    if let Some(why) = diff.nothing_compared(&Markup::PLAIN) {
        return Err(bad_input(format!(
            "{why} ({} against {}): exit 2, not a pass",
            diff.baseline.path.display(),
            diff.candidate.path.display()
        )));
    }
    Ok(Outcome::Success)
}

/// Loads one side's reports, each named by its role ("baseline 2") when
/// the side has several.
fn load_side(paths: &[std::path::PathBuf], role: &str) -> Result<Vec<LoadedReport>> {
    paths
        .iter()
        .enumerate()
        .map(|(i, path)| {
            let role = if paths.len() > 1 {
                format!("{role} {}", i + 1)
            } else {
                role.to_string()
            };
            load_report(path, &role)
        })
        .collect()
}

/// The runs of a side of several must be runs of one thing: each is
/// checked against the first as a candidate would be, and any difference
/// in run conditions is refused whatever `--allow-different` says (it
/// allows the candidate to differ from the baseline, not a side to mix
/// conditions). The same file given twice is refused too: its rounds
/// would count twice. Returns the warnings, each naming its run.
fn check_runs(runs: &[LoadedReport], role: &str) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    let Some((first, rest)) = runs.split_first() else {
        return Ok(warnings);
    };
    for (i, other) in rest.iter().enumerate() {
        if let Some(j) = runs[..=i].iter().position(|b| same_run(b, other)) {
            return Err(bad_input(format!(
                "{role} {}: {} is the same run as {role} {} ({}): its rounds would count twice",
                i + 2,
                other.path.display(),
                j + 1,
                runs[j].path.display()
            )));
        }
        // Allowed here only to be listed: a difference is refused below.
        let (differences, more) = check_compatible(first, other, true)?;
        if !differences.is_empty() {
            return Err(bad_input(format!(
                "the {role} runs cannot be pooled: {} and {} differ in run conditions: {}",
                first.path.display(),
                other.path.display(),
                differences
                    .iter()
                    .map(|d| format!("{}: {} vs {}", d.condition, d.baseline, d.candidate))
                    .collect::<Vec<_>>()
                    .join("; ")
            )));
        }
        warnings.extend(more.into_iter().map(|w| format!("{role} {}: {w}", i + 2)));
    }
    Ok(warnings)
}

/// The same file, or a copy of the same run (the same start and the same
/// count of requests in every strategy).
fn same_run(a: &LoadedReport, b: &LoadedReport) -> bool {
    let file = |l: &LoadedReport| std::fs::canonicalize(&l.path).unwrap_or_else(|_| l.path.clone());
    let requests =
        |l: &LoadedReport| -> Vec<u64> { l.report.strategies.iter().map(|s| s.requests).collect() };
    file(a) == file(b) || (a.report.started_at == b.report.started_at && requests(a) == requests(b))
}
