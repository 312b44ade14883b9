//! `poolbench compare BASELINE CANDIDATE`: loads both reports, checks that
//! they may be compared, prints the result in the chosen format. A
//! regression is `Outcome::Regression` (exit 1); bad or incompatible reports
//! and bad thresholds are bad input (exit 2).

use anyhow::Result;

use crate::cli::{CompareArgs, CompareFormat};
use crate::compare::{
    self, check_compatible, load_report, parse_max_regression, MaxRegression, Thresholds,
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
    let warnings = check_compatible(&baseline, &candidate, args.allow_different)?;
    // The table prints its warnings itself; markdown and json carry them in
    // a file or pipe, so the log gets them too.
    if args.format != CompareFormat::Table {
        for w in &warnings {
            crate::errln!("warning: {w}");
        }
    }
    let diff = compare::compare(
        &baseline,
        &candidate,
        &Thresholds::new(&overrides),
        warnings,
    );
    let text = match args.format {
        CompareFormat::Table => term::compare::render(&diff),
        CompareFormat::Markdown => markdown::compare(&diff),
        CompareFormat::Json => json::to_string(&diff)?,
        CompareFormat::Html => html::compare::render(&diff)?,
    };
    crate::out!("{text}");
    Ok(if diff.regression {
        Outcome::Regression
    } else {
        Outcome::Success
    })
}
