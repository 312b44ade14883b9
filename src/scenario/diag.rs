//! Error messages that point into the scenario file, rustc-style:
//!
//! ```text
//! scenarios/bad.toml:14:12: `min_size` (20) is larger than `max_size` (10)
//!    |
//! 14 | min_size = 20
//!    |            ^^
//! ```
//!
//! Spans are byte ranges into the file's text (what toml reports); lines and
//! columns are 1-based and columns count characters, as editors do. A
//! problem with a command-line flag's value has no place in the file: its
//! message, which names the flag, stands alone.

use std::path::Path;
use std::time::Duration;

use super::raw::Origin;

/// One problem found in a scenario file or in a flag that replaces one of
/// its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub origin: Origin,
    pub message: String,
    /// False when the source line may hold a secret (a DSN's password):
    /// then only the location is shown.
    pub show_source: bool,
}

impl Diagnostic {
    pub fn new(origin: impl Into<Origin>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            origin: origin.into(),
            message: message.into(),
            show_source: true,
        }
    }

    /// Where the diagnostic sorts: the file's in file order, then the
    /// flags' (in the order they were found, the sort being stable).
    pub fn sort_key(&self) -> (bool, usize) {
        match &self.origin {
            Origin::File(span) => (false, span.start),
            Origin::Flag(_) => (true, 0),
        }
    }

    /// The same diagnostic without the quoted source line.
    pub fn without_source(mut self) -> Diagnostic {
        self.show_source = false;
        self
    }
}

/// A duration as limits and messages show it ("24h", "90s", "1ms").
pub fn show(d: Duration) -> String {
    let s = d.as_secs();
    if d.subsec_nanos() == 0 && s >= 3600 && s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else {
        humantime::format_duration(d).to_string()
    }
}

/// The 1-based line and character column of byte `offset` in `text`.
/// An offset past the end or inside a character is moved back to a boundary,
/// so a wrong span can misplace the caret but never panic.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = floor_char_boundary(text, offset);
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

fn floor_char_boundary(text: &str, offset: usize) -> usize {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// Renders diagnostics for `path`, one block each, separated by blank lines.
pub fn render(path: &Path, text: &str, diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(|d| render_one(path, text, d))
        .collect::<Vec<_>>()
        .join("\n\n")
}

fn render_one(path: &Path, text: &str, diag: &Diagnostic) -> String {
    let span = match &diag.origin {
        Origin::File(span) => span,
        Origin::Flag(_) => return diag.message.clone(),
    };
    let start = floor_char_boundary(text, span.start);
    let end = floor_char_boundary(text, span.end.max(start));
    let (line, col) = line_col(text, start);
    let mut out = format!("{}:{line}:{col}: {}", path.display(), diag.message);
    if !diag.show_source {
        return out;
    }

    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let source_line = text[line_start..line_end].trim_end_matches('\r');
    if source_line.trim().is_empty() && start >= text.len() {
        // Pointing past the end of the file: the location says it all.
        return out;
    }
    // A long line (a 100 KB array on one line) is shown around the caret
    // only, marked with … where it is cut.
    let before: Vec<char> = text[line_start..start].chars().collect();
    let after: Vec<char> = source_line
        .get(start - line_start..)
        .unwrap_or_default()
        .chars()
        .collect();
    let (skip, keep) = if before.len() + after.len() > SNIPPET_CHARS {
        let skip = before.len().saturating_sub(BEFORE_CARET);
        (skip, SNIPPET_CHARS - (before.len() - skip))
    } else {
        (0, after.len())
    };
    let shown_after = &after[..after.len().min(keep)];
    let lead = if skip > 0 { "…" } else { "" };
    let tail = if shown_after.len() < after.len() {
        "…"
    } else {
        ""
    };
    let shown: String = before[skip..].iter().chain(shown_after).collect();
    // Tabs stay tabs under the caret so it lines up with the source line.
    let pad: String = lead
        .chars()
        .chain(before[skip..].iter().copied())
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    let underlined = text[start..end.min(line_end)]
        .chars()
        .count()
        .clamp(1, shown_after.len().max(1));
    let number = line.to_string();
    let gutter = " ".repeat(number.len());
    out.push_str(&format!(
        "\n{gutter} |\n{number} | {lead}{shown}{tail}\n{gutter} | {pad}{}",
        "^".repeat(underlined)
    ));
    out
}

/// The most characters of a source line an error shows, and how many of
/// them before the caret when the line has to be cut.
const SNIPPET_CHARS: usize = 120;
const BEFORE_CARET: usize = 40;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_is_one_based_and_counts_characters() {
        let text = "a = 1\nné = \"x\"\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 4), (1, 5));
        assert_eq!(line_col(text, 5), (1, 6));
        assert_eq!(line_col(text, 6), (2, 1));
        // "né = " is 6 bytes but 5 characters.
        assert_eq!(line_col(text, 6 + 6), (2, 6));
        assert_eq!(line_col(text, text.len()), (3, 1));
    }

    #[test]
    fn line_col_survives_bad_offsets() {
        let text = "é";
        assert_eq!(line_col(text, 1), (1, 1));
        assert_eq!(line_col(text, 99), (1, 2));
    }

    #[test]
    fn renders_like_rustc() {
        let text = "[[strategy]]\nmin_size = 20\n";
        let diag = Diagnostic::new(24..26, "`min_size` (20) is larger than `max_size` (10)");
        let out = render(Path::new("bad.toml"), text, &[diag]);
        assert_eq!(
            out,
            "bad.toml:2:12: `min_size` (20) is larger than `max_size` (10)\n  |\n2 | min_size = 20\n  |            ^^"
        );
    }

    #[test]
    fn multi_line_spans_underline_to_the_end_of_the_first_line() {
        let text = "sql = \"\"\"\nSELECT 1\n\"\"\"\n";
        let out = render(Path::new("f"), text, &[Diagnostic::new(6..22, "x")]);
        assert!(out.ends_with("1 | sql = \"\"\"\n  |       ^^^"), "{out}");
    }

    #[test]
    fn a_secret_line_is_not_quoted() {
        let text = "dsn = \"postgres://u:hunter2@h/d?x=1\"\n";
        let diag = Diagnostic::new(6..35, "invalid `dsn`").without_source();
        assert_eq!(
            render(Path::new("f"), text, &[diag]),
            "f:1:7: invalid `dsn`"
        );
    }

    #[test]
    fn a_long_line_is_shown_around_the_caret() {
        let text = format!("x = [{}]\ny = 1\n", "1, ".repeat(50_000));
        let at = 5 + 3 * 30_000;
        let out = render(
            Path::new("f"),
            &text,
            &[Diagnostic::new(at..at + 1, "here")],
        );
        let snippet = out.lines().nth(2).unwrap();
        assert!(snippet.chars().count() < 140, "{snippet}");
        assert!(
            snippet.starts_with("1 | …") && snippet.ends_with('…'),
            "{snippet}"
        );
        let caret = out.lines().nth(3).unwrap();
        assert_eq!(
            caret.chars().count(),
            "  | ".len() + 1 + BEFORE_CARET + 1,
            "{caret}"
        );
    }

    #[test]
    fn a_flag_s_message_stands_alone_after_the_file_s() {
        let text = "a = 1\n";
        let mut diags = vec![
            Diagnostic::new(Origin::Flag("--rtt"), "--rtt must be at most 10s, not 11s"),
            Diagnostic::new(4..5, "x"),
        ];
        diags.sort_by_key(Diagnostic::sort_key);
        assert_eq!(
            render(Path::new("f"), text, &diags),
            "f:1:5: x\n  |\n1 | a = 1\n  |     ^\n\n--rtt must be at most 10s, not 11s"
        );
    }

    #[test]
    fn span_at_end_of_file_has_no_snippet() {
        let out = render(Path::new("f"), "a = 1\n", &[Diagnostic::new(6..6, "x")]);
        assert_eq!(out, "f:2:1: x");
    }
}
