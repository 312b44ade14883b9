//! MySQL and MariaDB: a `mysql://` DSN ([`dsn`]) becomes a [`Target`]
//! ([`target`]: options, redaction, connecting), errors become classes
//! ([`errors`]), the server is described and its connections counted
//! ([`facts`]), a statement runs over the binary (prepared) or the text
//! protocol ([`exec`], with [`placeholders`] finding the `?`s), and the
//! backend's traits are implemented by [`conn`] (a measured connection,
//! across the link emulator by [`link`]) and [`admin`] (the session's
//! own). The driver is mysql_async.
//!
//! This file only declares and re-exports: the files under it import each
//! other, never it.

pub mod admin;
pub mod conn;
pub mod dsn;
mod errors;
mod exec;
mod facts;
mod link;
mod placeholders;
mod target;

pub use admin::MySqlAdmin;
pub use conn::{MySqlConnection, OpenedMySql};
pub use dsn::parse;
pub use errors::describe;
pub use facts::{Monitor as MySqlMonitor, THROWAWAY_DIR_PREFIX};
pub use placeholders::question_marks;
pub use target::{
    Details as TargetDetails, SslMode, Target, DEFAULT_CONNECT_TIMEOUT, DEFAULT_PORT,
};
