//! Either engine's target: where the database is and how to reach it, for
//! the parts of poolbench that connect without caring which engine is
//! behind it (the sources, the session). A third engine is a variant here.

use std::time::Duration;

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

impl From<postgres::Target> for Target {
    fn from(t: postgres::Target) -> Target {
        Target::Postgres(t)
    }
}

impl From<mysql::Target> for Target {
    fn from(t: mysql::Target) -> Target {
        Target::MySql(t)
    }
}

impl Target {
    /// The DSN without its password.
    pub fn redacted(&self) -> String {
        match self {
            Target::Postgres(t) => t.redacted(),
            Target::MySql(t) => t.redacted(),
        }
    }

    pub fn connect_timeout(&self) -> Duration {
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

    /// Whether the target speaks PostgreSQL's protocol (a PostgreSQL
    /// pooler can sit in front of it).
    pub fn is_postgres(&self) -> bool {
        matches!(self, Target::Postgres(_))
    }

    /// Why a strategy whose setups' client CPU was measured has no server
    /// CPU (PostgreSQL: another host, or backends not found here).
    pub fn server_cpu_absent(&self) -> Option<String> {
        match self {
            Target::Postgres(t) => Some(t.server_cpu_absent()),
            Target::MySql(_) => None,
        }
    }

    /// Whether the server is on this machine's loopback address, so that
    /// its backends' pids (PostgreSQL's processes, MariaDB's connection
    /// threads) name tasks here.
    pub fn is_local(&self) -> bool {
        match self {
            Target::Postgres(t) => t.is_loopback(),
            Target::MySql(t) => t.is_loopback(),
        }
    }

    /// Readies this thread to open connections without timing a one-off
    /// cost: the TLS library's random generator. Called by each worker
    /// thread before it opens anything.
    pub fn prepare_thread(&self) {
        match self {
            Target::Postgres(t) => t.tls().seed_this_thread(),
            Target::MySql(t) => t.seed_this_thread(),
        }
    }
}

/// Whether a DSN is MySQL's (`mysql://`).
pub fn is_mysql_dsn(dsn: &str) -> bool {
    dsn.trim_start().starts_with("mysql://")
}
