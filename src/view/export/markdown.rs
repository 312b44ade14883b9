//! Markdown: `compare --format markdown`, the pull-request comment: a
//! heading, the summary line, a GitHub table (the terminal table's rows,
//! verdicts in words), and how the verdicts were reached.

use crate::compare::Diff;
use crate::view::term::compare::{rows, HEADINGS};

pub fn compare(diff: &Diff) -> String {
    let mut out = format!("### poolbench compare: {}\n\n", diff.candidate.scenario);
    out.push_str(&diff.summary_line(true));
    out.push_str("\n\n");
    out.push_str(&line(HEADINGS.iter().map(|h| h.to_string())));
    // Names and words left, numbers right.
    out.push_str("|---|---|---|--:|--:|--:|--:|--:|\n");
    for row in rows(diff) {
        out.push_str(&line(row.into_iter()));
    }
    out.push('\n');
    for l in diff.only_in() {
        out.push_str(&format!("- {l}\n"));
    }
    for w in &diff.warnings {
        out.push_str(&format!("- warning: {}\n", escape(w)));
    }
    if !diff.only_in().is_empty() || !diff.warnings.is_empty() {
        out.push('\n');
    }
    out.push_str(&format!(
        "<sub>{} Baseline `{}` ({}), candidate `{}` ({}).</sub>\n",
        escape(&diff.test),
        diff.baseline.path.display(),
        diff.baseline.started_at,
        diff.candidate.path.display(),
        diff.candidate.started_at,
    ));
    out
}

fn line(cells: impl Iterator<Item = String>) -> String {
    let cells: Vec<String> = cells.map(|c| escape(&c)).collect();
    format!("| {} |\n", cells.join(" | "))
}

/// Keeps a strategy name or message from breaking the table.
fn escape(s: &str) -> String {
    s.replace('|', "\\|")
}
