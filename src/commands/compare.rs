//! `poolbench compare BASELINE CANDIDATE`: loads both reports, checks that
//! they may be compared, prints the result in the chosen format. A
//! regression is `Outcome::Regression` (exit 1); bad or incompatible reports
//! and bad thresholds are bad input (exit 2), and so is a comparison that
//! compared nothing (no strategy in common, or one with no successful
//! request on a side): it is printed, then refused, so that a CI gate never
//! passes on it.

use anyhow::Result;

use crate::cli::{CompareArgs, CompareFormat};
use crate::compare::{
    self, check_compatible, load_report, parse_max_regression, Markup, MaxRegression, Thresholds,
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
    let baseline = load_report(&args.baseline, "baseline")?;
    let candidate = load_report(&args.candidate, "candidate")?;
    let (differences, warnings) = check_compatible(&baseline, &candidate, args.allow_different)?;
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
        &baseline,
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
