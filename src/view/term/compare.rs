//! The terminal view of a comparison: where each side came from, the run
//! conditions that differ (when compared anyway), one aligned row per
//! strategy and metric, the strategies only one side has, the summary line,
//! the power of each gated metric and how the verdicts were reached.

use crate::compare::{Diff, Markup};
use crate::report::format::render as render_rows;

/// Column headings shared with the markdown and HTML views.
pub const HEADINGS: [&str; 10] = [
    "strategy",
    "metric",
    "verdict",
    "baseline",
    "candidate",
    "change",
    "95% CI",
    "threshold",
    "detectable",
    "rounds for threshold",
];

/// The cells of every row, strategy name on its first row only.
pub fn rows(diff: &Diff) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for s in &diff.strategies {
        for (i, m) in s.metrics.iter().enumerate() {
            rows.push(vec![
                if i == 0 {
                    s.name.clone()
                } else {
                    String::new()
                },
                m.label(),
                m.verdict.as_str().to_string(),
                m.base_text(),
                m.candidate_text(),
                m.change_text(),
                m.ci_text(),
                m.threshold_text(),
                m.detectable_text(),
                m.rounds_text(),
            ]);
        }
    }
    rows
}

pub fn render(diff: &Diff) -> String {
    let mut out = format!(
        "baseline:  {}\ncandidate: {}\n\n",
        diff.baseline_text(),
        diff.candidate_text(),
    );
    let differences = diff.difference_lines();
    if !differences.is_empty() {
        out.push_str("Compared although the run conditions differ (--allow-different):\n");
        for d in &differences {
            out.push_str(&format!("  {d}\n"));
        }
        out.push('\n');
    }
    let mut table = vec![HEADINGS.map(String::from).to_vec()];
    table.extend(rows(diff));
    out.push_str(&render_rows(&table, 3));
    out.push('\n');
    for line in diff.only_in(&Markup::PLAIN) {
        out.push_str(&line);
        out.push('\n');
    }
    for w in &diff.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    out.push_str(&diff.summary);
    out.push('\n');
    for line in diff.power_lines(&Markup::PLAIN) {
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str(&diff.test);
    out.push('\n');
    out
}
