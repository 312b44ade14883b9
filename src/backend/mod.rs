//! The database behind a seam: everything that speaks one engine's protocol
//! (connecting, running statements, error classes, server facts, the
//! backend count) lives in its directory — PostgreSQL's and
//! MySQL/MariaDB's side by side — behind the traits of `seam.rs`
//! ([`Connection`], [`Admin`], [`Monitor`]). The rest of poolbench sees
//! those traits and the engine-neutral types here: [`Target`] (either
//! engine's, `target.rs`), [`find`] (where the database is, `find.rs`),
//! [`AnyConnection`] and [`AnyAdmin`] (either engine's, dispatched by
//! `match` in `conn.rs` and `admin.rs`), a statement's [`Value`]s and
//! [`Described`] parameters (`value.rs`, `statement.rs`). A third engine
//! is a directory here and a variant in each of those enums.
//!
//! This file only declares and re-exports: the files under it import each
//! other, never it.

mod admin;
mod conn;
mod find;
pub mod mysql;
pub mod postgres;
mod seam;
mod statement;
mod target;
mod value;

pub use admin::{AnyAdmin, AnyMonitor};
pub use conn::{AnyConnection, Opened};
pub use find::{find, Found};
pub use postgres::resolve::{Request, Source};
pub use seam::{Admin, Connection, Monitor, Recycling};
pub use statement::{Described, ParamType, Statements};
pub use target::{is_mysql_dsn, Target};
pub use value::Value;
