//! Error kinds that decide poolbench's exit code (docs/failures.md, "Exit codes").
//!
//! Code anywhere may return a plain `anyhow::Error`; the places that know what
//! went wrong tag it with a [`Failure`] kind. `main` finds the tag with
//! `downcast_ref`, which sees through any context added later.

use std::fmt;

/// Why poolbench stopped, and so which exit code it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Bad input: flags, scenario file, unreadable or incompatible reports.
    BadInput,
    /// The environment: database unreachable, server could not start,
    /// results not writable.
    Environment,
}

impl Kind {
    pub fn exit_code(self) -> u8 {
        match self {
            Kind::BadInput => 2,
            Kind::Environment => 3,
        }
    }
}

/// An error tagged with its [`Kind`]. Its message is the whole cause chain of
/// the error it wraps, so no cause is lost when it is printed with `{:#}`.
#[derive(Debug)]
pub struct Failure {
    pub kind: Kind,
    inner: anyhow::Error,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.inner)
    }
}

impl std::error::Error for Failure {}

/// Builds a tagged error from a message.
pub fn bad_input(message: impl fmt::Display) -> anyhow::Error {
    tagged(Kind::BadInput, anyhow::anyhow!("{message}"))
}

/// Builds a tagged error from a message.
pub fn environment(message: impl fmt::Display) -> anyhow::Error {
    tagged(Kind::Environment, anyhow::anyhow!("{message}"))
}

fn tagged(kind: Kind, inner: anyhow::Error) -> anyhow::Error {
    anyhow::Error::new(Failure { kind, inner })
}

/// Tags the error of a `Result` with a kind.
pub trait ResultExt<T> {
    fn bad_input(self) -> anyhow::Result<T>;
    fn environment(self) -> anyhow::Result<T>;
}

impl<T, E: Into<anyhow::Error>> ResultExt<T> for Result<T, E> {
    fn bad_input(self) -> anyhow::Result<T> {
        self.map_err(|e| tagged(Kind::BadInput, e.into()))
    }
    fn environment(self) -> anyhow::Result<T> {
        self.map_err(|e| tagged(Kind::Environment, e.into()))
    }
}

/// The kind of an error, if some layer of it was tagged.
pub fn kind_of(err: &anyhow::Error) -> Option<Kind> {
    err.downcast_ref::<Failure>().map(|f| f.kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn kind_survives_added_context() {
        let err: anyhow::Result<()> = Err(bad_input("weights sum to 0"));
        let err = err.context("reading scenario").unwrap_err();
        assert_eq!(kind_of(&err), Some(Kind::BadInput));
        assert_eq!(format!("{err:#}"), "reading scenario: weights sum to 0");
    }

    #[test]
    fn untagged_errors_have_no_kind() {
        assert_eq!(kind_of(&anyhow::anyhow!("plain")), None);
    }
}
