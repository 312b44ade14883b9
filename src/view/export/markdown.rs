//! Markdown: `compare --format markdown`, the pull-request comment: a
//! heading, the summary line, the run conditions that differ (when compared
//! anyway), a GitHub table (the terminal table's rows,
//! verdicts in words), and how the verdicts were reached. Everything taken
//! from the reports (names, paths, times, warnings) goes through
//! [`escape`], the one escaping of this format.

use crate::compare::{Diff, Markup};
use crate::view::term::compare::{rows, HEADINGS};

/// Names escaped, the verdict in bold.
const MARKDOWN: Markup = Markup {
    strong,
    name: escape,
};

fn strong(text: &str) -> String {
    format!("**{text}**")
}

pub fn compare(diff: &Diff) -> String {
    let mut out = format!(
        "### poolbench compare: {}\n\n",
        escape(&diff.candidate.scenario)
    );
    out.push_str(&diff.summary_line(&MARKDOWN));
    out.push_str("\n\n");
    let differences = diff.difference_lines();
    if !differences.is_empty() {
        out.push_str("Compared although the run conditions differ (`--allow-different`):\n\n");
        for d in &differences {
            out.push_str(&format!("- {}\n", escape(d)));
        }
        out.push('\n');
    }
    out.push_str(&line(HEADINGS.iter().map(|h| h.to_string())));
    // Names and words left, numbers right.
    out.push_str("|---|---|---|--:|--:|--:|--:|--:|--:|--:|\n");
    for row in rows(diff) {
        out.push_str(&line(row.into_iter()));
    }
    out.push('\n');
    let only_in = diff.only_in(&MARKDOWN);
    for l in &only_in {
        out.push_str(&format!("- {l}\n"));
    }
    let power = diff.power_lines(&MARKDOWN);
    for l in &power {
        out.push_str(&format!("- {l}\n"));
    }
    for w in &diff.warnings {
        out.push_str(&format!("- warning: {}\n", escape(w)));
    }
    if !only_in.is_empty() || !power.is_empty() || !diff.warnings.is_empty() {
        out.push('\n');
    }
    out.push_str(&format!(
        "<sub>{} Baseline {}, candidate {}.</sub>\n",
        diff.method_note(&MARKDOWN),
        escape(&diff.baseline_text()),
        escape(&diff.candidate_text()),
    ));
    out
}

/// A table row: every cell escaped.
fn line(cells: impl Iterator<Item = String>) -> String {
    let cells: Vec<String> = cells.map(|c| escape(&c)).collect();
    format!("| {} |\n", cells.join(" | "))
}

/// Text from a report as GitHub shows it, literally: HTML's `<`, `>` and
/// `&` as entities (no tag, comment or image gets through), the inline
/// markdown punctuation (emphasis, code, links, tables, strikethrough,
/// @mentions, #references) behind a backslash, and a control character
/// or line break (which would end a table row) as a space.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '~' | '@' | '#' | '!' | '$' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn markup_in_a_name_is_shown_not_rendered() {
        assert_eq!(
            escape("<img src=x onerror=alert(1)>"),
            "&lt;img src=x onerror=alert(1)&gt;"
        );
        assert_eq!(
            escape("**bold** [link](http://x) `code` a|b @team #1 ~~s~~"),
            "\\*\\*bold\\*\\* \\[link\\](http://x) \\`code\\` a\\|b \\@team \\#1 \\~\\~s\\~\\~"
        );
        assert_eq!(escape("line\nbreak\u{1b}[2J"), "line break \\[2J");
        assert_eq!(escape("pool-8 p99 +34.2% (ms)"), "pool-8 p99 +34.2% (ms)");
    }
}
