//! MySQL and MariaDB: a `mysql://` DSN ([`dsn`]) becomes a [`Target`]
//! ([`target`]: options, redaction, connecting), errors become classes
//! ([`errors`]), the server is described and its connections counted
//! ([`facts`]), and the backend's traits are implemented by [`conn`] (a
//! measured connection) and [`admin`] (the session's own). A measured
//! connection is poolbench's own MySQL client: its setup in phases by
//! [`connect`] (authentication answers in [`auth`]), its requests by
//! [`wire`] (the binary protocol, or text with the values put in by
//! [`exec`], [`placeholders`] finding the `?`s). The admin session and the
//! embedded server's setup use the driver, mysql_async.
//!
//! This file only declares and re-exports: the files under it import each
//! other, never it.

pub mod admin;
mod auth;
pub mod conn;
mod connect;
pub mod dsn;
mod errors;
mod exec;
mod facts;
mod placeholders;
mod target;
mod wire;

pub use admin::MySqlAdmin;
pub use conn::{MySqlConnection, OpenedMySql};
pub use dsn::parse;
pub use errors::describe;
pub use facts::{Monitor as MySqlMonitor, THROWAWAY_DIR_PREFIX};
pub use placeholders::question_marks;
pub use target::{
    Details as TargetDetails, SslMode, Target, DEFAULT_CONNECT_TIMEOUT, DEFAULT_PORT,
};
