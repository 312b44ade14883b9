//! A connection held by one request, whatever source it came from, and the
//! `close` phase: giving back a connection opened for the request closes
//! it, and that is timed here. Giving it back also reads the round trips
//! the request waited for on it, when it crosses the link emulator. A
//! lease holds either engine's connection; [`Lease::conn`] says which.

use std::sync::Mutex;
use std::time::Instant;

use mysql_async::prelude::Queryable;
use tokio::task::JoinHandle;
use tokio_postgres::{Client, Statement};

use super::connect::Opened;
use super::manager::{Object, PooledConn};
use crate::backend::mysql;
use crate::backend::postgres::request_error;
use crate::metrics::{micros, Phase, PhaseTimings, RequestError};
use crate::net::Turns;

/// A connection held by one request. Given back with [`Lease::release`];
/// a lease dropped without it belongs to an abandoned request (timed out or
/// interrupted) whose statement may still be running, so its connection is
/// closed rather than handed to the next request.
pub struct Lease(Option<Held>);

enum Held {
    /// Opened for this request; closed when released.
    Owned {
        client: Client,
        task: JoinHandle<()>,
        turns: Option<Turns>,
        /// The statements it prepared, dropped only after the client: see
        /// `release`. (Locked once per prepare, by this request alone.)
        prepared: Mutex<Vec<Statement>>,
    },
    /// A MySQL connection opened for this request; closed when released.
    OwnedMySql(tokio::sync::Mutex<mysql::Conn>),
    /// Drawn from a pool; goes back to it when released.
    Pooled(Object),
}

/// The connection a lease holds, by engine.
pub enum Conn<'a> {
    Postgres(&'a Client),
    /// Locked for each statement by the one request holding it.
    MySql(&'a tokio::sync::Mutex<mysql::Conn>),
}

impl Lease {
    pub(super) fn owned(opened: Opened) -> Lease {
        Lease(Some(match opened {
            Opened::Postgres(o) => Held::Owned {
                client: o.client,
                task: o.task,
                turns: o.turns,
                prepared: Mutex::new(Vec::new()),
            },
            Opened::MySql { conn, .. } => Held::OwnedMySql(tokio::sync::Mutex::new(conn)),
        }))
    }

    pub(super) fn pooled(object: Object) -> Lease {
        Lease(Some(Held::Pooled(object)))
    }

    fn held(&self) -> &Held {
        // Only `release` and `drop` take the connection out, and both
        // consume the lease.
        self.0
            .as_ref()
            .expect("a lease holds its connection until released")
    }

    pub fn conn(&self) -> Conn<'_> {
        match self.held() {
            Held::Owned { client, .. } => Conn::Postgres(client),
            Held::OwnedMySql(conn) => Conn::MySql(conn),
            Held::Pooled(object) => match &object.conn {
                PooledConn::Postgres(client) => Conn::Postgres(client),
                PooledConn::MySql(conn) => Conn::MySql(conn),
            },
        }
    }

    /// Runs one SQL command without parameters or results (BEGIN, COMMIT,
    /// ROLLBACK) on either engine.
    pub async fn simple(&self, sql: &str) -> Result<(), RequestError> {
        match self.conn() {
            Conn::Postgres(client) => client
                .batch_execute(sql)
                .await
                .map_err(|e| request_error(&e)),
            Conn::MySql(conn) => conn
                .lock()
                .await
                .query_drop(sql)
                .await
                .map_err(|e| mysql::request_error(&e)),
        }
    }

    /// Prepares `sql` as an application would: a pooled connection reuses
    /// the statement it prepared before; a fresh one must prepare it again.
    /// `client` is this lease's own, as [`Lease::conn`] gave it: PostgreSQL
    /// only (the MySQL driver keeps its connections' statements itself).
    pub async fn prepare(
        &self,
        client: &Client,
        sql: &str,
    ) -> Result<Statement, tokio_postgres::Error> {
        match self.held() {
            Held::Owned { prepared, .. } => {
                let statement = client.prepare(sql).await?;
                prepared
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(statement.clone());
                Ok(statement)
            }
            Held::Pooled(object) => match &object.conn {
                PooledConn::Postgres(wrapper) => wrapper.prepare_cached(sql).await,
                PooledConn::MySql(_) => client.prepare(sql).await,
            },
            Held::OwnedMySql(_) => client.prepare(sql).await,
        }
    }

    /// Gives the connection back: one opened for the request is closed
    /// (the `close` phase is how long that took); a pooled one goes back to
    /// its pool (nothing to close).
    pub async fn release(mut self) -> Released {
        match self.0.take() {
            Some(Held::Owned {
                client,
                task,
                turns,
                prepared,
            }) => {
                let started = Instant::now();
                // Dropping the client makes the connection task send
                // Terminate and close the socket; waiting for it is the
                // close. Its statements go after it: dropped first, each
                // would send a Close and the task wait for the answer before
                // Terminate — a round trip no application pays to close a
                // connection (libpq, asyncpg, JDBC send Terminate alone; the
                // backend frees its statements as it exits).
                drop(client);
                drop(prepared);
                let _ = task.await;
                Released {
                    close_us: Some(micros(started.elapsed())),
                    // Every round trip of the connection's life, which was
                    // the request's: its setup and its statements.
                    round_trips: turns.as_ref().map(Turns::now),
                }
            }
            Some(Held::OwnedMySql(conn)) => {
                let started = Instant::now();
                // COM_QUIT, as an application's close sends.
                let _ = conn.into_inner().disconnect().await;
                Released {
                    close_us: Some(micros(started.elapsed())),
                    round_trips: None,
                }
            }
            Some(Held::Pooled(mut object)) => {
                let round_trips = object.round_trips();
                drop(object);
                Released {
                    close_us: None,
                    round_trips,
                }
            }
            None => Released::default(),
        }
    }
}

/// What giving a connection back measured.
#[derive(Debug, Default, Clone, Copy)]
pub struct Released {
    /// The `close` phase, for a connection opened for the request.
    pub close_us: Option<u64>,
    /// Round trips the request waited for on this connection (only across
    /// the link emulator).
    pub round_trips: Option<u32>,
}

impl Released {
    /// Adds what was measured to a request's timings.
    pub fn record(&self, t: &mut PhaseTimings) {
        if let Some(us) = self.close_us {
            t.set(Phase::Close, us);
        }
        if let Some(n) = self.round_trips {
            t.set_round_trips(n);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(Held::Pooled(object)) = self.0.take() {
            // Detached from the pool and dropped: the connection closes and
            // the pool opens a new one when it needs it.
            drop(Object::take(object));
        }
    }
}
