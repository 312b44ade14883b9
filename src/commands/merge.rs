//! `poolbench merge A B C --out DIR`: reads the reports of synchronised
//! copies, merges them exactly, writes the merged report with the same
//! exporters as `run`, and prints its table and headline.

use anyhow::Result;

use super::run::FILES;
use crate::cli::MergeArgs;
use crate::compare::load_report;
use crate::instance::rfc3339;
use crate::report::merge::{merge, Input};
use crate::report::MergedInput;
use crate::view::export;
use crate::view::term::run as term;
use crate::Outcome;

pub fn run(args: &MergeArgs) -> Result<Outcome> {
    let inputs = args
        .inputs
        .iter()
        .map(|path| {
            let loaded = load_report(path, "input")?;
            Ok(Input {
                path: loaded.path.display().to_string(),
                report: loaded.report,
            })
        })
        .collect::<Result<Vec<Input>>>()?;
    let merged = merge(&inputs, args.allow_different)?;
    for w in &merged.warnings {
        crate::errln!("warning: {w}");
    }
    // The files of a run, by the same exporters: a merged report is read
    // like any other.
    let out_dir = export::prepare_dir(
        Some(&args.out),
        &merged.report.scenario.name,
        &merged.report.started_at,
        args.force,
        &FILES,
        &[crate::view::export::hlog::FILES],
    )?;
    export::write_all(&out_dir, &merged.report, &FILES)?;
    crate::view::export::hlog::write(&out_dir, &merged.report)?;

    if !args.quiet {
        crate::outln!(
            "merged {} reports of scenario {}:",
            inputs.len(),
            merged.report.scenario.name
        );
        for input in &merged.report.copies.inputs {
            crate::outln!("  {}", describe(input));
        }
        crate::outln!();
        crate::out!("{}", term::tables(&merged.report));
        crate::outln!();
    }
    if let Some(line) = term::headline(&merged.report) {
        crate::outln!("{line}");
    }
    if !args.quiet {
        crate::outln!("reports: {}", out_dir.display());
    }
    Ok(Outcome::Success)
}

/// "copy 2 on worker-7 (4 cpus), window 10:00:03.120Z .. 10:00:13.120Z: results/c2/report.json"
fn describe(input: &MergedInput) -> String {
    let index = input
        .instance_index
        .map_or("copy ?".to_string(), |i| format!("copy {i}"));
    let host = input.host.name.as_deref().unwrap_or("unknown host");
    let window = match (input.window_start_unix_ms, input.window_end_unix_ms) {
        (0, _) => "window not recorded".to_string(),
        (start, end) => format!("window {} .. {}", time(start), time(end)),
    };
    format!(
        "{index} on {host} ({} cpus), {window}: {}",
        input.host.cpus, input.path
    )
}

fn time(unix_ms: u64) -> String {
    rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_millis(unix_ms))
}
