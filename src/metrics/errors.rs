//! Error classes: every failed request is counted under one class, with a
//! few sample messages kept for the report.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How many messages of one class the report keeps.
const SAMPLES_PER_CLASS: usize = 3;

/// A failed request (or connection, or pool fill): its class and a message
/// for the report.
#[derive(Debug, Clone)]
pub struct RequestError {
    pub class: ErrorClass,
    pub message: String,
}

impl RequestError {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> RequestError {
        RequestError {
            class,
            message: message.into(),
        }
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
    pub fn name(&self) -> String {
        match self {
            ErrorClass::TooManyConnections => "too_many_connections".into(),
            ErrorClass::AuthFailed => "auth_failed".into(),
            ErrorClass::PoolTimeout => "pool_timeout".into(),
            ErrorClass::ConnectTimeout => "connect_timeout".into(),
            ErrorClass::ConnectionRefused => "connection_refused".into(),
            ErrorClass::ServerShutdown => "server_shutdown".into(),
            ErrorClass::ConnectionLost => "connection_lost".into(),
            ErrorClass::RequestTimeout => "request_timeout".into(),
            ErrorClass::Query(code) => format!("query_error:{code}"),
            ErrorClass::Other => "other".into(),
        }
    }
}

/// Counts by class name, and the first few messages of each class.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorCounts {
    pub counts: BTreeMap<String, u64>,
    pub samples: BTreeMap<String, Vec<String>>,
}

impl ErrorCounts {
    pub fn count(&mut self, class: ErrorClass, message: &str) {
        let name = class.name();
        let samples = self.samples.entry(name.clone()).or_default();
        if samples.len() < SAMPLES_PER_CLASS && !samples.iter().any(|s| s == message) {
            samples.push(message.to_string());
        }
        *self.counts.entry(name).or_default() += 1;
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
    fn samples_are_bounded_and_distinct() {
        let mut c = ErrorCounts::default();
        for i in 0..10 {
            c.count(ErrorClass::PoolTimeout, &format!("timeout {}", i % 5));
        }
        c.count(ErrorClass::PoolTimeout, "timeout 0");
        assert_eq!(c.counts["pool_timeout"], 11);
        assert_eq!(c.samples["pool_timeout"].len(), SAMPLES_PER_CLASS);
    }
}
