//! What the sections share: durations, integers in a range, names, SQL
//! text, and the words a message uses for a value. Those depend on where
//! the value came from: a key of the file is quoted (`` `duration` ``) and
//! its value "found" as written, beside the quoted line; a flag is named
//! as typed (`--duration`), its message stands alone, so it gives the
//! whole range of an integer and refuses the value with "not".

use std::collections::HashMap;
use std::fmt::Display;
use std::time::Duration;

use crate::scenario::limits::{show, MAX_NAME_CHARS, MAX_RATE, MIN_RATE};
use crate::scenario::raw::{Given, Node, Origin};

use super::checker::{is_name_char, Checker};

impl Checker<'_> {
    /// A duration as humantime reads it ("20s", "1m 30s", "500ms").
    pub(super) fn duration(&mut self, key: &str, value: &Given<String>) -> Option<Duration> {
        match humantime::parse_duration(value.get_ref()) {
            Ok(d) => Some(d),
            Err(e) => {
                self.error(
                    value.origin(),
                    format!(
                        "{} = {:?} is not a duration ({e}): expected e.g. \"20s\", \"1m\", \"500ms\"",
                        subject(key, &value.origin()),
                        value.get_ref()
                    ),
                );
                None
            }
        }
    }

    /// A duration from `min` to `max` (`duration` must also be longer than
    /// 0); `why` says why one shorter than `min` is refused.
    pub(super) fn duration_in(
        &mut self,
        key: &str,
        value: &Given<String>,
        min: Duration,
        max: Duration,
        why: &str,
    ) -> Option<Duration> {
        let d = self.duration(key, value)?;
        let at = value.origin();
        let name = subject(key, &at);
        let problem = if d.is_zero() && (key == "duration" || !min.is_zero()) {
            format!("{name} must be longer than 0")
        } else if d < min {
            format!("{name} must be at least {}", show(min))
        } else if d > max {
            format!(
                "{name} must be at most {}, {}",
                show(max),
                refused(&at, value.get_ref())
            )
        } else {
            return Some(d);
        };
        let problem = if why.is_empty() || d > max {
            problem
        } else {
            format!("{problem}: {why}")
        };
        self.error(at, problem);
        None
    }

    /// An integer from `min` to `max`.
    pub(super) fn int_in<T>(&mut self, key: &str, value: &Given<T>, min: T, max: T) -> Option<T>
    where
        T: Copy + PartialOrd + Display,
    {
        let v = *value.get_ref();
        if (min..=max).contains(&v) {
            return Some(v);
        }
        let at = value.origin();
        let name = subject(key, &at);
        let problem = match at {
            Origin::Flag(_) => format!("{name} must be from {min} to {max}, not {v}"),
            Origin::File(_) if v < min => format!("{name} must be at least {min}, found {v}"),
            Origin::File(_) => format!("{name} must be at most {max}, found {v}"),
        };
        self.error(at, problem);
        None
    }

    /// A SQL text that is not blank.
    pub(super) fn sql_text(&mut self, what: &str, sql: &Given<String>) -> Option<String> {
        if sql.get_ref().trim().is_empty() {
            self.error(sql.origin(), format!("{what} is blank"));
            None
        } else {
            Some(sql.get_ref().clone())
        }
    }

    /// A name that becomes a directory or file name.
    pub(super) fn dir_name(&mut self, what: &str, name: &Given<String>) -> Option<String> {
        let text = name.get_ref();
        if text.is_empty() {
            self.error(name.origin(), format!("{what} is empty"));
            None
        } else if text.chars().count() > MAX_NAME_CHARS {
            self.error(
                name.origin(),
                format!(
                    "{what} is longer than {MAX_NAME_CHARS} characters (it becomes part of a \
                     directory name)"
                ),
            );
            None
        } else if let Some(bad) = text.chars().find(|c| !is_name_char(*c)) {
            self.error(
                name.origin(),
                format!(
                    "{what} {text:?} contains {bad:?}: use only letters, digits, `.`, `_` and `-` \
                     (it becomes part of a directory name)"
                ),
            );
            None
        } else {
            Some(text.clone())
        }
    }

    /// Reports `name` if an earlier item of the same kind used it.
    pub(super) fn unique(
        &mut self,
        what: &str,
        seen: &mut HashMap<String, Origin>,
        name: &str,
        at: Origin,
    ) {
        if let Some(first) = seen.get(name) {
            let line = self.line_of(first);
            self.error(
                at,
                format!("{what} name `{name}` is used twice (first on line {line})"),
            );
        } else {
            seen.insert(name.to_owned(), at);
        }
    }
}

/// How a message names the value of `key` from `at`: the file's key in
/// backquotes, or the flag that gave it.
pub(super) fn subject(key: &str, at: &Origin) -> String {
    match at {
        Origin::File(_) => format!("`{key}`"),
        Origin::Flag(flag) => (*flag).to_owned(),
    }
}

/// How a message refuses a value: "found" as the file has it, "not" what
/// a flag gave.
fn refused(at: &Origin, value: impl Display) -> String {
    match at {
        Origin::File(_) => format!("found {value}"),
        Origin::Flag(_) => format!("not {value}"),
    }
}

/// The message for a rate out of its range, for the file and `--rate`.
pub(super) fn rate_out_of_range(name: &str, v: f64) -> String {
    format!("{name} must be from {MIN_RATE} to {MAX_RATE} arrivals per second, not {v}")
}

/// A value as a message shows it: short ones verbatim, others by type.
pub(super) fn describe(node: &Node) -> String {
    match node {
        Node::Int(i) => i.to_string(),
        // Debug keeps the point: 0.0 reads as a float, not as 0.
        Node::Float(f) => format!("{f:?}"),
        Node::Bool(b) => b.to_string(),
        Node::String(s) if s.chars().count() <= 40 => format!("{s:?}"),
        other => other.type_name().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_named_and_refused_by_where_it_came_from() {
        let file = Origin::File(3..5);
        let flag = Origin::Flag("--warmup");
        assert_eq!(subject("warmup", &file), "`warmup`");
        assert_eq!(subject("warmup", &flag), "--warmup");
        assert_eq!(refused(&file, "2h"), "found 2h");
        assert_eq!(refused(&flag, "2h"), "not 2h");
    }

    #[test]
    fn describe_shows_short_values_and_types() {
        assert_eq!(describe(&Node::Float(0.0)), "0.0");
        assert_eq!(describe(&Node::String("ab".into())), "\"ab\"");
        assert_eq!(describe(&Node::String("x".repeat(41))), "a string");
        assert_eq!(describe(&Node::Array(Vec::new())), "an array");
    }
}
