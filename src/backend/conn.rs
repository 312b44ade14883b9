//! Either engine's measured connection, as the sources hold it and the
//! workload runs statements on it: an enum over the engines' connections,
//! implementing [`Connection`] by `match` so that a pooled request's path
//! has no box and no dynamic call. A third engine is a variant here.

use std::time::Instant;

use super::mysql::MySqlConnection;
use super::postgres::conn::PgConnection;
use super::postgres::connect::open;
use super::seam::{Connection, Recycling};
use super::statement::{Described, Statements};
use super::target::Target;
use super::value::Value;
use crate::metrics::{RequestError, Setup};
use crate::net::Emulator;

/// A connection of either engine.
pub enum AnyConnection {
    Postgres(PgConnection),
    MySql(MySqlConnection),
}

/// A connection just opened.
pub struct Opened {
    pub conn: AnyConnection,
    /// How its setup went (tcp, tls, startup, round trips), when each step
    /// can be timed: always on PostgreSQL; on MySQL across the link
    /// emulator (otherwise its driver connects in one step).
    pub setup: Option<Setup>,
    /// When it was ready for queries: `connect` ends here.
    pub ready_at: Instant,
}

impl AnyConnection {
    /// Opens one connection to `target`, its setup timed from `started`
    /// (the caller's start), across `link` when given. Not bounded as a
    /// whole on PostgreSQL (the caller puts its timeout around it); MySQL's
    /// is bounded by its connect timeout too.
    pub async fn open(
        target: &Target,
        link: Option<&Emulator>,
        started: Instant,
    ) -> Result<Opened, RequestError> {
        match target {
            Target::Postgres(target) => {
                let opened = open(target, link, started)
                    .await
                    .map_err(|e| e.request_error())?;
                Ok(Opened {
                    conn: AnyConnection::Postgres(PgConnection::new(opened.wire, opened.turns)),
                    setup: Some(opened.setup),
                    ready_at: opened.ready_at,
                })
            }
            Target::MySql(target) => {
                let opened = MySqlConnection::open(target, link, started).await?;
                Ok(Opened {
                    conn: AnyConnection::MySql(opened.conn),
                    setup: opened.setup,
                    ready_at: opened.ready_at,
                })
            }
        }
    }
}

impl Connection for AnyConnection {
    async fn run(
        &mut self,
        sql: &str,
        described: &Described,
        values: &[Value],
        statements: Statements,
    ) -> Result<(), RequestError> {
        match self {
            AnyConnection::Postgres(c) => c.run(sql, described, values, statements).await,
            // Not boxed: poolbench's own MySQL client's future is about
            // the size of PostgreSQL's (440 and 408 bytes), so neither
            // engine's request pays an allocation for the other.
            AnyConnection::MySql(c) => c.run(sql, described, values, statements).await,
        }
    }

    async fn simple(&mut self, sql: &str) -> Result<(), RequestError> {
        match self {
            AnyConnection::Postgres(c) => c.simple(sql).await,
            // Not boxed, as `run`.
            AnyConnection::MySql(c) => c.simple(sql).await,
        }
    }

    fn is_closed(&mut self) -> bool {
        match self {
            AnyConnection::Postgres(c) => c.is_closed(),
            AnyConnection::MySql(c) => c.is_closed(),
        }
    }

    async fn recycle(&mut self, how: Recycling) -> Result<(), RequestError> {
        match self {
            AnyConnection::Postgres(c) => c.recycle(how).await,
            AnyConnection::MySql(c) => Box::pin(c.recycle(how)).await,
        }
    }

    fn round_trips(&self) -> Option<u32> {
        match self {
            AnyConnection::Postgres(c) => c.round_trips(),
            AnyConnection::MySql(c) => c.round_trips(),
        }
    }

    fn forget_statements(&mut self) {
        match self {
            AnyConnection::Postgres(c) => c.forget_statements(),
            AnyConnection::MySql(c) => c.forget_statements(),
        }
    }

    async fn close(self) -> Option<u32> {
        match self {
            AnyConnection::Postgres(c) => c.close().await,
            AnyConnection::MySql(c) => Box::pin(c.close()).await,
        }
    }
}
