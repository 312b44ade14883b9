//! Finds the `$N` placeholders of a SQL text, the way PostgreSQL's lexer
//! does, so the checker can match them against the statement's params
//! without a server.
//!
//! Skipped: single-quoted strings (`''` and, in `E'…'`, backslash escapes),
//! double-quoted identifiers, dollar-quoted strings (`$tag$…$tag$`), `--`
//! comments and nested `/* */` comments. A `$` inside an identifier (`a$1`)
//! is part of that identifier, as in PostgreSQL.

use std::ops::Range;

/// One `$N` in the SQL text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholder {
    /// N; saturates at `u64::MAX` for absurdly long digit runs.
    pub number: u64,
    /// Byte range of `$N` in the SQL text.
    pub span: Range<usize>,
}

/// Every placeholder of `sql`, in text order.
pub fn placeholders(sql: &str) -> Vec<Placeholder> {
    // Every byte the lexer reacts to is ASCII, and UTF-8 continuation and
    // lead bytes are >= 0x80, so walking bytes never splits a character in a
    // way that matters; all ranges below start and end at ASCII bytes.
    let b = sql.as_bytes();
    let len = b.len();
    let at = |i: usize| b.get(i).copied();
    let mut found = Vec::new();
    let mut i = 0;
    while i < len {
        match b[i] {
            b'-' if at(i + 1) == Some(b'-') => {
                i = b[i..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(len, |p| i + p + 1);
            }
            b'/' if at(i + 1) == Some(b'*') => {
                // PostgreSQL block comments nest.
                let mut depth = 1;
                i += 2;
                while i < len && depth > 0 {
                    if b[i] == b'/' && at(i + 1) == Some(b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && at(i + 1) == Some(b'/') {
                        depth -= 1;
                        i += 2;
                    } else {
                        i += 1;
                    }
                }
            }
            b'\'' => {
                let backslash_escapes =
                    i > 0 && matches!(b[i - 1], b'E' | b'e') && (i < 2 || !is_ident_byte(b[i - 2]));
                i += 1;
                while i < len {
                    match b[i] {
                        b'\\' if backslash_escapes => i += 2,
                        b'\'' if at(i + 1) == Some(b'\'') => i += 2,
                        b'\'' => {
                            i += 1;
                            break;
                        }
                        _ => i += 1,
                    }
                }
            }
            b'"' => {
                i += 1;
                while i < len {
                    match b[i] {
                        b'"' if at(i + 1) == Some(b'"') => i += 2,
                        b'"' => {
                            i += 1;
                            break;
                        }
                        _ => i += 1,
                    }
                }
            }
            b'$' if i > 0 && is_ident_byte(b[i - 1]) => i += 1,
            b'$' if at(i + 1).is_some_and(|c| c.is_ascii_digit()) => {
                let digits_end = b[i + 1..]
                    .iter()
                    .position(|c| !c.is_ascii_digit())
                    .map_or(len, |p| i + 1 + p);
                let number = b[i + 1..digits_end].iter().fold(0u64, |n, &d| {
                    n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
                });
                found.push(Placeholder {
                    number,
                    span: i..digits_end,
                });
                i = digits_end;
            }
            b'$' => {
                // A dollar quote is `$tag$` with an identifier-like tag
                // (no `$`, not starting with a digit) or an empty one.
                let mut j = i + 1;
                if at(j).is_some_and(is_ident_start) {
                    while at(j).is_some_and(|c| is_ident_byte(c) && c != b'$') {
                        j += 1;
                    }
                }
                if at(j) == Some(b'$') {
                    let tag = &b[i..=j];
                    let body = j + 1;
                    i = find(&b[body..], tag).map_or(len, |p| body + p + tag.len());
                } else {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    found
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn is_ident_byte(c: u8) -> bool {
    is_ident_start(c) || c.is_ascii_digit() || c == b'$'
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers(sql: &str) -> Vec<u64> {
        placeholders(sql).into_iter().map(|p| p.number).collect()
    }

    #[test]
    fn finds_plain_placeholders_with_spans() {
        let sql = "UPDATE t SET a = $1 WHERE id=$12";
        let found = placeholders(sql);
        assert_eq!(found.len(), 2);
        assert_eq!(&sql[found[0].span.clone()], "$1");
        assert_eq!(found[1].number, 12);
        assert_eq!(&sql[found[1].span.clone()], "$12");
    }

    #[test]
    fn skips_strings_and_quoted_identifiers() {
        assert_eq!(numbers("SELECT '$1', 'it''s $2', $3"), [3]);
        assert_eq!(numbers(r#"SELECT "col$1", "a""$2", $1"#), [1]);
        assert_eq!(numbers(r"SELECT E'a\'$1', $2"), [2]);
        // Without E, a backslash is an ordinary character.
        assert_eq!(numbers(r"SELECT 'a\', $2"), [2]);
    }

    #[test]
    fn skips_comments() {
        assert_eq!(numbers("SELECT 1 -- $1\n, $2"), [2]);
        assert_eq!(numbers("SELECT /* $1 /* nested $2 */ $3 */ $4"), [4]);
        assert_eq!(numbers("SELECT 1 -- $1"), Vec::<u64>::new());
        assert_eq!(numbers("SELECT 1 /* unterminated $1"), Vec::<u64>::new());
    }

    #[test]
    fn skips_dollar_quoted_strings() {
        assert_eq!(numbers("SELECT $$ $1 $$, $2"), [2]);
        assert_eq!(numbers("SELECT $fn$ $1 $$ $2 $fn$, $3"), [3]);
        assert_eq!(numbers("DO $x$ unterminated $1"), Vec::<u64>::new());
    }

    #[test]
    fn dollar_inside_an_identifier_is_not_a_placeholder() {
        assert_eq!(numbers("SELECT a$1, $2"), [2]);
    }

    #[test]
    fn huge_numbers_saturate() {
        assert_eq!(numbers("SELECT $99999999999999999999999"), [u64::MAX]);
    }

    #[test]
    fn odd_input_does_not_panic() {
        for sql in [
            "$",
            "'",
            "\"",
            "E'\\",
            "/*",
            "--",
            "$a",
            "$a$",
            "é$1",
            "$é$ x $é$ $1",
        ] {
            placeholders(sql);
        }
        assert_eq!(numbers("$é$ $1 $é$ $2"), [2]);
    }
}
