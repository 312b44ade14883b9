//! `poolbench compare BASELINE... CANDIDATE`: loads the reports (one
//! baseline run or several, pooled), checks that they may be compared,
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
    let baselines = args
        .baseline
        .iter()
        .enumerate()
        .map(|(i, path)| {
            let role = if args.baseline.len() > 1 {
                format!("baseline {}", i + 1)
            } else {
                "baseline".to_string()
            };
            load_report(path, &role)
        })
        .collect::<Result<Vec<_>>>()?;
    let candidate = load_report(&args.candidate, "candidate")?;
    let mut warnings = check_baseline_runs(&baselines)?;
    // `baselines` holds at least one report: clap requires a BASELINE.
    let (differences, more) = check_compatible(&baselines[0], &candidate, args.allow_different)?;
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
        &candidate,
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

/// The runs of a baseline of several must be runs of one thing: each is
/// checked against the first as a candidate would be, and any difference
/// in run conditions is refused whatever `--allow-different` says (it
/// allows a candidate to differ from the baseline, not a baseline to mix
/// conditions). The same file given twice is refused too: its rounds
/// would count twice. Returns the warnings, each naming its run.
fn check_baseline_runs(baselines: &[LoadedReport]) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    let Some((first, rest)) = baselines.split_first() else {
        return Ok(warnings);
    };
    for (i, other) in rest.iter().enumerate() {
        if let Some(j) = baselines[..=i].iter().position(|b| same_run(b, other)) {
            return Err(bad_input(format!(
                "baseline {}: {} is the same run as baseline {} ({}): its rounds would count twice",
                i + 2,
                other.path.display(),
                j + 1,
                baselines[j].path.display()
            )));
        }
        // Allowed here only to be listed: a difference is refused below.
        let (differences, more) = check_compatible(first, other, true)?;
        if !differences.is_empty() {
            return Err(bad_input(format!(
                "the baseline runs cannot be pooled: {} and {} differ in run conditions: {}",
                first.path.display(),
                other.path.display(),
                differences
                    .iter()
                    .map(|d| format!("{}: {} vs {}", d.condition, d.baseline, d.candidate))
                    .collect::<Vec<_>>()
                    .join("; ")
            )));
        }
        warnings.extend(more.into_iter().map(|w| format!("baseline {}: {w}", i + 2)));
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
