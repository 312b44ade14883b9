//! The database behind a seam: everything that speaks one engine's protocol
//! (connecting, error classes, server facts, the backend count) lives in
//! its module — PostgreSQL's and MySQL/MariaDB's side by side — and
//! `any.rs` holds what the connection sources see of either.

mod any;
pub mod mysql;
pub mod postgres;

pub use any::{is_mysql_dsn, ConnectError, Target};
