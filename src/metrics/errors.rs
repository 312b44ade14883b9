//! Error classes: every failed request is counted under one class, with a
//! few sample messages kept for the report.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How many messages of one class the report keeps.
const SAMPLES_PER_CLASS: usize = 3;

/// A failed request (or connection, or pool fill): its class, a message
/// for the report, and the server's SQLSTATE when the server answered
/// with one.
#[derive(Debug, Clone)]
pub struct RequestError {
    pub class: ErrorClass,
    pub message: String,
    pub sqlstate: Option<SqlState>,
}

impl RequestError {
    /// An error the server did not answer with a SQLSTATE.
    pub fn new(class: ErrorClass, message: impl Into<String>) -> RequestError {
        RequestError {
            class,
            message: message.into(),
            sqlstate: None,
        }
    }

    /// The same error, with the SQLSTATE the server gave (if it is one).
    pub fn with_sqlstate(mut self, code: &str) -> RequestError {
        self.sqlstate = SqlState::parse(code);
        self
    }
}

/// The message, as deadpool's errors show their backend's.
impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A SQLSTATE: the five characters (digits and upper-case letters) the SQL
/// standard gives each error condition. PostgreSQL sends one with every
/// error; MySQL and MariaDB send one beside their own error number.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SqlState([u8; 5]);

impl SqlState {
    /// 26000, invalid_sql_statement_name: a named prepared statement the
    /// server does not have.
    pub const INVALID_SQL_STATEMENT_NAME: SqlState = SqlState(*b"26000");

    /// The code, if `code` is one (five digits or upper-case letters).
    pub fn parse(code: &str) -> Option<SqlState> {
        let bytes: [u8; 5] = code.as_bytes().try_into().ok()?;
        bytes
            .iter()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
            .then_some(SqlState(bytes))
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII gets in (see `parse`).
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::fmt::Display for SqlState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for SqlState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SqlState({})", self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorClass {
    /// SQLSTATE 53300: the server is at max_connections.
    TooManyConnections,
    /// SQLSTATE 28P01, 28000.
    AuthFailed,
    /// No pooled connection within the pool's wait_timeout.
    PoolTimeout,
    /// The connection attempt hit its timeout.
    ConnectTimeout,
    /// Nothing listens at the address (server down or restarting).
    ConnectionRefused,
    /// SQLSTATE 57P01, 57P02, 57P03: the server is shutting down or starting.
    ServerShutdown,
    /// The connection broke under a request.
    ConnectionLost,
    /// The request exceeded the scenario's request_timeout.
    RequestTimeout,
    /// Any other server error, by SQLSTATE.
    Query(String),
    /// An error with no better class (TLS, protocol, binding a parameter).
    Other,
}

impl ErrorClass {
    /// Its name in reports: borrowed but for a SQLSTATE's.
    pub fn name(&self) -> std::borrow::Cow<'static, str> {
        let name = match self {
            ErrorClass::TooManyConnections => "too_many_connections",
            ErrorClass::AuthFailed => "auth_failed",
            ErrorClass::PoolTimeout => "pool_timeout",
            ErrorClass::ConnectTimeout => "connect_timeout",
            ErrorClass::ConnectionRefused => "connection_refused",
            ErrorClass::ServerShutdown => "server_shutdown",
            ErrorClass::ConnectionLost => "connection_lost",
            ErrorClass::RequestTimeout => "request_timeout",
            ErrorClass::Query(code) => return format!("query_error:{code}").into(),
            ErrorClass::Other => "other",
        };
        name.into()
    }
}

/// Counts by class name, and the first few messages of each class.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorCounts {
    pub counts: BTreeMap<String, u64>,
    pub samples: BTreeMap<String, Vec<String>>,
}

impl ErrorCounts {
    pub fn count(&mut self, class: &ErrorClass, message: &str) {
        let name = class.name();
        // A class seen before (nearly every error of a run that has many,
        // e.g. an overloaded open loop's expired arrivals): no allocation.
        if let Some(n) = self.counts.get_mut(&*name) {
            *n += 1;
            if let Some(samples) = self.samples.get_mut(&*name) {
                if samples.len() < SAMPLES_PER_CLASS && !samples.iter().any(|s| s == message) {
                    samples.push(message.to_string());
                }
            }
            return;
        }
        self.samples
            .insert(name.to_string(), vec![message.to_string()]);
        self.counts.insert(name.into_owned(), 1);
    }

    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    pub fn merge(&mut self, other: &ErrorCounts) {
        for (name, n) in &other.counts {
            *self.counts.entry(name.clone()).or_default() += n;
        }
        for (name, msgs) in &other.samples {
            let mine = self.samples.entry(name.clone()).or_default();
            for m in msgs {
                if mine.len() < SAMPLES_PER_CLASS && !mine.contains(m) {
                    mine.push(m.clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_design() {
        assert_eq!(
            ErrorClass::TooManyConnections.name(),
            "too_many_connections"
        );
        assert_eq!(
            ErrorClass::Query("42P01".into()).name(),
            "query_error:42P01"
        );
    }

    #[test]
    fn sqlstates_are_five_digits_or_capitals() {
        assert_eq!(
            SqlState::parse("26000"),
            Some(SqlState::INVALID_SQL_STATEMENT_NAME)
        );
        assert_eq!(SqlState::parse("42P01").unwrap().as_str(), "42P01");
        assert_eq!(SqlState::parse("HY000").unwrap().to_string(), "HY000");
        for bad in ["", "2600", "260000", "42p01", "42 01", "ÉÉ0"] {
            assert_eq!(SqlState::parse(bad), None, "{bad:?}");
        }
        let e = RequestError::new(ErrorClass::Other, "m").with_sqlstate("26000");
        assert_eq!(e.sqlstate, Some(SqlState::INVALID_SQL_STATEMENT_NAME));
        assert_eq!(RequestError::new(ErrorClass::Other, "m").sqlstate, None);
    }

    #[test]
    fn samples_are_bounded_and_distinct() {
        let mut c = ErrorCounts::default();
        for i in 0..10 {
            c.count(&ErrorClass::PoolTimeout, &format!("timeout {}", i % 5));
        }
        c.count(&ErrorClass::PoolTimeout, "timeout 0");
        assert_eq!(c.counts["pool_timeout"], 11);
        assert_eq!(c.samples["pool_timeout"].len(), SAMPLES_PER_CLASS);
    }
}
