//! A connection held by one request, whatever source it came from, and the
//! `close` phase: giving back a connection opened for the request closes
//! it, and that is timed here. Giving it back also reads the round trips
//! the request waited for on it, when it crosses the link emulator. A
//! lease holds either engine's connection; [`Lease::conn`] says which.

use std::time::Instant;

use futures_util::future::{ready, BoxFuture, Either, Ready};
use mysql_async::prelude::Queryable;

use super::connect::Opened;
use super::manager::{Object, PooledConn};
use crate::backend::mysql;
use crate::backend::postgres::wire::Wire;
use crate::backend::postgres::wire_request_error;
use crate::metrics::{micros, Phase, PhaseTimings, RequestError};
use crate::net::Turns;

/// A connection held by one request. Given back with [`Lease::release`];
/// a lease dropped without it belongs to an abandoned request (timed out or
/// interrupted) whose statement may still be running, so its connection is
/// closed rather than handed to the next request.
pub struct Lease(Option<Held>);

enum Held {
    /// Opened for this request; closed when released.
    Owned { wire: Wire, turns: Option<Turns> },
    /// A MySQL connection opened for this request; closed when released.
    OwnedMySql(tokio::sync::Mutex<mysql::Conn>),
    /// Drawn from a pool; goes back to it when released.
    Pooled(Object),
}

/// The connection a lease holds, by engine.
pub enum Conn<'a> {
    /// The session, with the statements it prepared (none yet on a
    /// connection opened for the request: it prepares them again, as an
    /// application's fresh connection must).
    Postgres(&'a mut Wire),
    /// Locked for each statement by the one request holding it.
    MySql(&'a tokio::sync::Mutex<mysql::Conn>),
}

impl Lease {
    pub(super) fn owned(opened: Opened) -> Lease {
        Lease(Some(match opened {
            Opened::Postgres(o) => Held::Owned {
                wire: o.wire,
                turns: o.turns,
            },
            Opened::MySql { conn, .. } => Held::OwnedMySql(tokio::sync::Mutex::new(conn)),
        }))
    }

    pub(super) fn pooled(object: Object) -> Lease {
        Lease(Some(Held::Pooled(object)))
    }

    pub fn conn(&mut self) -> Conn<'_> {
        // Only `release` and `drop` take the connection out, and both
        // consume the lease.
        let held = self
            .0
            .as_mut()
            .expect("a lease holds its connection until released");
        match held {
            Held::Owned { wire, .. } => Conn::Postgres(wire),
            Held::OwnedMySql(conn) => Conn::MySql(conn),
            Held::Pooled(object) => match &mut object.conn {
                PooledConn::Postgres(wire) => Conn::Postgres(wire),
                PooledConn::MySql(conn) => Conn::MySql(conn),
            },
        }
    }

    /// Runs one SQL command without parameters or results (BEGIN, COMMIT,
    /// ROLLBACK) on either engine.
    pub async fn simple(&mut self, sql: &str) -> Result<(), RequestError> {
        match self.conn() {
            Conn::Postgres(wire) => wire
                .simple(sql)
                .await
                .map(drop)
                .map_err(|e| wire_request_error(&e)),
            Conn::MySql(conn) => conn
                .lock()
                .await
                .query_drop(sql)
                .await
                .map_err(|e| mysql::request_error(&e)),
        }
    }

    /// Gives the connection back: one opened for the request is closed
    /// (the `close` phase is how long that took); a pooled one goes back to
    /// its pool at once (nothing to close). Not an `async fn`: its future
    /// is a few words, where closing's would sit inside every request's
    /// future, to be set up and moved on every pooled request too.
    pub fn release(mut self) -> Either<Ready<Released>, BoxFuture<'static, Released>> {
        match self.0.take() {
            Some(Held::Pooled(mut object)) => {
                let round_trips = object.round_trips();
                drop(object);
                Either::Left(ready(Released {
                    close_us: None,
                    round_trips,
                }))
            }
            Some(held) => Either::Right(Box::pin(close(held))),
            None => Either::Left(ready(Released::default())),
        }
    }
}

/// Closes a connection opened for the request, timed as `close`.
async fn close(held: Held) -> Released {
    let started = Instant::now();
    match held {
        Held::Owned { wire, turns } => {
            // Terminate, then the socket, is the close: its statements are
            // not closed one by one first, a round trip no application pays
            // to close a connection (libpq, asyncpg, JDBC send Terminate
            // alone; the backend frees its statements as it exits).
            wire.close().await;
            Released {
                close_us: Some(micros(started.elapsed())),
                // Every round trip of the connection's life, which was the
                // request's: its setup and its statements.
                round_trips: turns.as_ref().map(Turns::now),
            }
        }
        Held::OwnedMySql(conn) => {
            // COM_QUIT, as an application's close sends.
            let _ = conn.into_inner().disconnect().await;
            Released {
                close_us: Some(micros(started.elapsed())),
                round_trips: None,
            }
        }
        // Not reached: pooled connections are given back by `release`.
        Held::Pooled(object) => {
            drop(object);
            Released::default()
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
