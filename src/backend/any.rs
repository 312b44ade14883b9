//! Either engine's target and connect error, for the parts of poolbench
//! that open connections without caring which database is behind them
//! (the connection sources, the session).

use crate::metrics::RequestError;

use super::mysql;
use super::postgres;

/// A database to connect to: PostgreSQL, or MySQL/MariaDB.
#[derive(Debug, Clone)]
// Targets are few and cloned rarely: boxing the larger one buys nothing.
#[allow(clippy::large_enum_variant)]
pub enum Target {
    Postgres(postgres::Target),
    MySql(mysql::Target),
}

impl Target {
    /// The DSN without its password.
    pub fn redacted(&self) -> String {
        match self {
            Target::Postgres(t) => t.redacted(),
            Target::MySql(t) => t.redacted(),
        }
    }

    pub fn connect_timeout(&self) -> std::time::Duration {
        match self {
            Target::Postgres(t) => t.connect_timeout(),
            Target::MySql(t) => t.connect_timeout(),
        }
    }

    /// Parses a DSN of either engine: `mysql://` is MySQL's, anything else
    /// libpq's (URL or key=value). `origin` names where it came from.
    pub fn parse(dsn: &str, origin: &str) -> anyhow::Result<Target> {
        if is_mysql_dsn(dsn) {
            mysql::parse(dsn, origin).map(Target::MySql)
        } else {
            postgres::Target::parse(dsn, origin).map(Target::Postgres)
        }
    }
}

/// Whether a DSN is MySQL's (`mysql://`).
pub fn is_mysql_dsn(dsn: &str) -> bool {
    dsn.trim_start().starts_with("mysql://")
}

/// Why a connection could not be opened, on either engine.
#[derive(Debug)]
pub enum ConnectError {
    Postgres(postgres::connect::ConnectError),
    MySql(mysql_async::Error),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Postgres(e) => e.fmt(f),
            ConnectError::MySql(e) => f.write_str(&mysql::describe(e)),
        }
    }
}

impl std::error::Error for ConnectError {}

impl ConnectError {
    /// The error as a request counts it: its class and description.
    pub fn request_error(&self) -> RequestError {
        match self {
            ConnectError::Postgres(e) => e.request_error(),
            ConnectError::MySql(e) => mysql::request_error(e),
        }
    }
}
