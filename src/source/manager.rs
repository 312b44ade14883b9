//! The pool's connections as deadpool manages them: opened by
//! [`CountingConnect`] (timed, counted, across the link emulator when there
//! is one), each kept with its round-trip counter so that a request knows
//! the round trips it waited for; checked before reuse as deadpool-postgres
//! checks on PostgreSQL (fast: the socket still open, verified: an empty
//! query, clean: its DISCARD statements, or a custom query), and on MySQL
//! by the same three methods (fast: none, verified: a ping, clean:
//! COM_RESET_CONNECTION).

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use deadpool_postgres::RecyclingMethod;
use mysql_async::prelude::Queryable;
use tokio::sync::Mutex;

use super::connect::{CountingConnect, Opened};
use crate::backend::postgres::connect::ConnectError as PgConnectError;
use crate::backend::postgres::wire::Wire;
use crate::backend::{mysql, ConnectError};
use crate::net::Turns;

pub type Pool = super::pool_core::Pool<Manager>;
pub type Object = super::pool_core::Object<Manager>;
pub type PoolError = managed::PoolError<ConnectError>;

pub struct Manager {
    connect: CountingConnect,
    method: RecyclingMethod,
}

impl Manager {
    pub fn new(connect: CountingConnect, method: RecyclingMethod) -> Manager {
        Manager { connect, method }
    }
}

/// A pooled connection: a PostgreSQL session (which keeps the statements
/// it prepared) or a MySQL connection (whose driver caches its
/// statements), and the link's count of its round trips.
pub struct Pooled {
    pub conn: PooledConn,
    turns: Option<Turns>,
    /// The count when it was last given back (or filled).
    mark: u32,
}

pub enum PooledConn {
    Postgres(Wire),
    /// Locked by the one request holding it (the driver's calls need it
    /// mutably, a lease lends it shared).
    MySql(Mutex<mysql::Conn>),
}

impl Pooled {
    /// Round trips since it was last given back (its recycle check
    /// included; its setup too when it was opened for this request), and
    /// starts counting afresh.
    pub fn round_trips(&mut self) -> Option<u32> {
        let now = self.turns.as_ref().map(Turns::now)?;
        let n = now.saturating_sub(self.mark);
        self.mark = now;
        Some(n)
    }
}

impl managed::Manager for Manager {
    type Type = Pooled;
    type Error = ConnectError;

    async fn create(&self) -> Result<Pooled, ConnectError> {
        Ok(match self.connect.open(std::time::Instant::now()).await? {
            Opened::Postgres(opened) => Pooled {
                conn: PooledConn::Postgres(opened.wire),
                turns: opened.turns,
                mark: 0,
            },
            Opened::MySql { conn, .. } => Pooled {
                conn: PooledConn::MySql(Mutex::new(conn)),
                turns: None,
                mark: 0,
            },
        })
    }

    async fn recycle(&self, pooled: &mut Pooled, _: &Metrics) -> RecycleResult<ConnectError> {
        match &mut pooled.conn {
            PooledConn::Postgres(wire) => {
                if wire.is_closed() {
                    return Err(RecycleError::message("Connection closed"));
                }
                match self.method.query() {
                    Some(sql) => wire.simple(sql).await.map(drop).map_err(|e| {
                        RecycleError::Backend(ConnectError::Postgres(PgConnectError::Wire(e)))
                    }),
                    None => Ok(()),
                }
            }
            PooledConn::MySql(conn) => {
                let conn = conn.get_mut();
                let checked = match self.method {
                    RecyclingMethod::Fast => Ok(()),
                    RecyclingMethod::Clean => conn.reset().await.map(|_| ()),
                    _ => conn.ping().await,
                };
                checked.map_err(|e| RecycleError::Backend(ConnectError::MySql(e)))
            }
        }
    }
}
