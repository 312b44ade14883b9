//! MySQL and MariaDB: a `mysql://` DSN ([`dsn`]) becomes a [`Target`]
//! ([`target`]: options, redaction, connecting), errors become classes
//! ([`errors`]), the server is described and its connections counted
//! ([`facts`]), and a statement runs over the binary (prepared) or the
//! text protocol ([`exec`]). The driver is mysql_async.
//!
//! This file only declares and re-exports: the files under it import each
//! other, never it.

pub mod dsn;
mod errors;
mod exec;
mod facts;
mod target;

pub use dsn::parse;
pub use errors::{describe, error_class, request_error};
pub use exec::{check_statement, run_statement, Protocol};
pub use facts::{engine_of, is_throwaway, server_facts, Monitor, THROWAWAY_DIR_PREFIX};
pub use target::{
    Conn, Details as TargetDetails, SslMode, Target, DEFAULT_CONNECT_TIMEOUT, DEFAULT_PORT,
};
