//! Finds the `?` placeholders of a MySQL statement, the way MySQL's lexer
//! does, so the text protocol can put the values in their place (and the
//! scenario's checker can count them against the statement's params
//! without a server).
//!
//! Skipped: strings in single or double quotes (doubled quotes and
//! backslash escapes), backquoted identifiers, `#` and `-- ` comments and
//! `/* */` comments.

use std::ops::Range;

/// The byte range of every `?` of `sql`, in text order.
pub fn question_marks(sql: &str) -> Vec<Range<usize>> {
    // Every byte the lexer reacts to is ASCII, so walking bytes never
    // splits a character.
    let b = sql.as_bytes();
    let at = |i: usize| b.get(i).copied();
    let mut found = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            quote @ (b'\'' | b'"' | b'`') => {
                i += 1;
                while i < b.len() {
                    let escaped = b[i] == b'\\' && quote != b'`';
                    if escaped || (b[i] == quote && at(i + 1) == Some(quote)) {
                        i += 2;
                    } else if b[i] == quote {
                        break;
                    } else {
                        i += 1;
                    }
                }
                i += 1;
            }
            b'#' => i = line_end(b, i),
            b'-' if at(i + 1) == Some(b'-')
                && at(i + 2).is_none_or(|c| c.is_ascii_whitespace()) =>
            {
                i = line_end(b, i)
            }
            b'/' if at(i + 1) == Some(b'*') => {
                i = b[i + 2..]
                    .windows(2)
                    .position(|w| w == b"*/")
                    .map_or(b.len(), |p| i + 2 + p + 2);
            }
            b'?' => {
                found.push(i..i + 1);
                i += 1;
            }
            _ => i += 1,
        }
    }
    found
}

fn line_end(b: &[u8], from: usize) -> usize {
    b[from..]
        .iter()
        .position(|&c| c == b'\n')
        .map_or(b.len(), |p| from + p + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(sql: &str) -> usize {
        question_marks(sql).len()
    }

    #[test]
    fn finds_plain_placeholders_with_spans() {
        let sql = "UPDATE t SET a = ? WHERE id=?";
        assert_eq!(question_marks(sql), [17..18, 28..29]);
    }

    #[test]
    fn skips_strings_identifiers_and_comments() {
        assert_eq!(count("SELECT '?', 'it''s ?', \"?\", `a?b`, ?"), 1);
        assert_eq!(count(r"SELECT 'a\'?', ?"), 1);
        assert_eq!(count("SELECT 1 # ?\n, ?"), 1);
        assert_eq!(count("SELECT 1 -- ?\n, ?"), 1);
        assert_eq!(
            count("SELECT 1 --? "),
            1,
            "`--` without a space is no comment"
        );
        assert_eq!(count("SELECT /* ? */ ?"), 1);
        assert_eq!(count("SELECT 1 /* unterminated ?"), 0);
    }
}
