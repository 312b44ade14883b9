//! A measured PostgreSQL connection as the workload sees it: its session
//! ([`Wire`]) and the link's count of its round trips, behind the
//! [`Connection`] trait. Errors become request errors with their class and
//! SQLSTATE (`wire_request_error`).

use deadpool_postgres::RecyclingMethod;

use super::wire::Wire;
use super::wire_request_error;
use crate::backend::seam::{Connection, Recycling};
use crate::backend::statement::{Described, Statements};
use crate::backend::value::Value;
use crate::metrics::RequestError;
use crate::net::Turns;

/// An open session and, across the link emulator, its round-trip counter.
pub struct PgConnection {
    /// The session, with the statements it prepared (none yet on a new
    /// connection: it prepares them again, as an application's fresh
    /// connection must).
    wire: Wire,
    turns: Option<Turns>,
}

impl PgConnection {
    pub fn new(wire: Wire, turns: Option<Turns>) -> PgConnection {
        PgConnection { wire, turns }
    }
}

impl Connection for PgConnection {
    async fn run(
        &mut self,
        sql: &str,
        described: &Described,
        values: &[Value],
        statements: Statements,
    ) -> Result<(), RequestError> {
        let types = described.postgres_types();
        match statements {
            Statements::Named => self.wire.query_named(sql, types, values).await,
            Statements::Unnamed => self.wire.query_unnamed(sql, types, values).await,
        }
        .map_err(|e| wire_request_error(&e))
    }

    async fn simple(&mut self, sql: &str) -> Result<(), RequestError> {
        self.wire
            .simple(sql)
            .await
            .map(drop)
            .map_err(|e| wire_request_error(&e))
    }

    fn is_closed(&mut self) -> bool {
        self.wire.is_closed()
    }

    /// As deadpool-postgres recycles: fast checks nothing more, verified
    /// sends an empty query, clean its DISCARD statements.
    async fn recycle(&mut self, how: Recycling) -> Result<(), RequestError> {
        let method = match how {
            Recycling::Fast => RecyclingMethod::Fast,
            Recycling::Verified => RecyclingMethod::Verified,
            Recycling::Clean => RecyclingMethod::Clean,
        };
        match method.query() {
            Some(sql) => self.simple(sql).await,
            None => Ok(()),
        }
    }

    fn round_trips(&self) -> Option<u32> {
        self.turns.as_ref().map(Turns::now)
    }

    fn forget_statements(&mut self) {
        self.wire.forget_statements();
    }

    /// Terminate, then the socket, is the close: its statements are not
    /// closed one by one first, a round trip no application pays to close
    /// a connection (libpq, asyncpg, JDBC send Terminate alone; the backend
    /// frees its statements as it exits).
    async fn close(self) -> Option<u32> {
        self.wire.close().await;
        self.turns.as_ref().map(Turns::now)
    }
}
