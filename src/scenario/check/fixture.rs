//! What the sections' unit tests share: a small valid scenario and the
//! one way they check a text with the command line's values.

use std::path::Path;

use crate::scenario::{parse_with, Overrides, Scenario};

/// One pool strategy and one query (8 lines, a blank one in between).
pub const BASE: &str = "[[strategy]]\nname = \"p\"\nkind = \"pool\"\nmax_size = 4\n\n\
                        [[query]]\nname = \"q\"\nsql = \"SELECT 1\"\n";

/// No flags.
pub fn flags() -> Overrides {
    Overrides::default()
}

/// `text`, read from `t.toml`, checked with `o`; panics with the errors.
pub fn ok(text: &str, o: &Overrides) -> Scenario {
    match parse_with(text, Path::new("t.toml"), o) {
        Ok(s) => s,
        Err(e) => panic!("refused:\n{text}\n{e:#}"),
    }
}

/// The errors of `text`, read from `t.toml`, checked with `o`, as the user
/// reads them; panics when it is accepted. Every error is bad input.
pub fn errors(text: &str, o: &Overrides) -> String {
    match parse_with(text, Path::new("t.toml"), o) {
        Ok(s) => panic!("accepted:\n{text}\n{s:?}"),
        Err(e) => {
            assert_eq!(
                crate::error::kind_of(&e),
                Some(crate::error::Kind::BadInput)
            );
            format!("{e:#}")
        }
    }
}

/// The first line of [`errors`] without flags: the location and message
/// of the first problem.
pub fn first_error(text: &str) -> String {
    errors(text, &flags())
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}
