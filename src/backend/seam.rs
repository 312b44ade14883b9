//! What every engine implements, and all the rest of poolbench asks of a
//! database: a [`Connection`] runs the workload's statements (the measured
//! path), an [`Admin`] connection reaches the server, describes it, sets it
//! up, checks statements against it and reads its clock, and its
//! [`Monitor`] counts the server's connections once a second. Each engine
//! implements the three in its own directory (`postgres/conn.rs`,
//! `postgres/admin.rs`, `mysql/conn.rs`, `mysql/admin.rs`); `conn.rs` and
//! `admin.rs` here dispatch to either by `match`, with no box on the
//! request path.

use std::future::Future;

use super::statement::{Described, Statements};
use super::value::Value;
use crate::metrics::RequestError;
use crate::report::Server;

/// An open connection a request runs its statements on.
pub trait Connection: Send + Sized {
    /// Runs `sql` with `values` (bound as the server `described` them) by
    /// `statements`' protocol, and reads every row, as an application
    /// reading its result would.
    fn run(
        &mut self,
        sql: &str,
        described: &Described,
        values: &[Value],
        statements: Statements,
    ) -> impl Future<Output = Result<(), RequestError>> + Send;

    /// Runs one SQL command without parameters or results (BEGIN, COMMIT,
    /// ROLLBACK) by the simple (text) protocol.
    fn simple(&mut self, sql: &str) -> impl Future<Output = Result<(), RequestError>> + Send;

    /// Whether it is known to be unusable, found without waiting.
    fn is_closed(&mut self) -> bool;

    /// Checks it before a pool hands it out again, by `how`.
    fn recycle(&mut self, how: Recycling) -> impl Future<Output = Result<(), RequestError>> + Send;

    /// Round trips of its life so far (its setup included), when it
    /// crosses the link emulator; None otherwise.
    fn round_trips(&self) -> Option<u32>;

    /// Forgets the statements it prepared, after a statement that dropped
    /// them on the server (PostgreSQL's DISCARD ALL): the next request
    /// prepares its own again. Nothing for an engine without such a reset.
    fn forget_statements(&mut self) {}

    /// Closes it as an application's close does, and returns its round
    /// trips over its whole life (as [`Connection::round_trips`]). Not
    /// bounded: the caller puts its timeout around it.
    fn close(self) -> impl Future<Output = Option<u32>> + Send;
}

/// How a pool checks a connection before handing it out again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recycling {
    /// Only that it is not known to be closed.
    Fast,
    /// A round trip (PostgreSQL: an empty query; MySQL: a ping).
    Verified,
    /// Its session state reset (PostgreSQL: deadpool-postgres' DISCARD
    /// statements; MySQL: COM_RESET_CONNECTION).
    Clean,
}

/// The session's own connection to the server: never measured, never
/// counted in the results.
pub trait Admin: Send + Sync + Sized {
    type Target;
    type Monitor<'a>: Monitor
    where
        Self: 'a;

    /// Connects to check the server is reachable, for a clear error (exit
    /// 3) before any measurement starts.
    fn reach(target: &Self::Target) -> impl Future<Output = anyhow::Result<Self>> + Send;

    /// What the report says of the server; `auth` is the authentication
    /// method when poolbench knows it (its embedded server, which the
    /// report then calls embedded).
    fn facts(&self, auth: Option<&str>) -> impl Future<Output = Server> + Send;

    /// Whether the server is a throwaway poolbench started (`poolbench
    /// server`), whose tables a [setup] may create without --allow-setup.
    fn is_throwaway(&self) -> impl Future<Output = bool> + Send;

    /// Runs the scenario's [setup] SQL.
    fn setup(&self, sql: &str) -> impl Future<Output = Result<(), RequestError>> + Send;

    /// Prepares `sql` once (and lets it go) for what the server says of
    /// its parameters.
    fn describe(&self, sql: &str) -> impl Future<Output = Result<Described, RequestError>> + Send;

    /// The server's clock, in milliseconds since the Unix epoch, read once;
    /// None when it cannot be read (or the engine's is not read).
    fn clock_ms(&self) -> impl Future<Output = Option<f64>> + Send;

    /// The once-a-second count of the server's client connections, on this
    /// connection.
    fn monitor(&self) -> Self::Monitor<'_>;
}

/// Counts the server's client connections (the admin's own excluded).
pub trait Monitor: Send {
    /// The count; None when the server does not answer in time or the
    /// monitor is connecting again.
    fn backends(&mut self) -> impl Future<Output = Option<u64>> + Send;
}
