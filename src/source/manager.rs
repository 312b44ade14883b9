//! The pool's connections as deadpool manages them: opened by
//! [`CountingConnect`] (timed, counted, across the link emulator when there
//! is one), each kept with its round-trip counter so that a request knows
//! the round trips it waited for; checked before reuse by
//! deadpool-postgres' own recycling on PostgreSQL, and on MySQL by the
//! same three methods (fast: none, verified: a ping, clean:
//! COM_RESET_CONNECTION).

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use deadpool_postgres::{ClientWrapper, ManagerConfig, RecyclingMethod};
use mysql_async::prelude::Queryable;
use tokio::sync::Mutex;

use super::connect::{CountingConnect, Opened};
use crate::backend::{mysql, ConnectError, Target};
use crate::net::Turns;

pub type Pool = super::pool_core::Pool<Manager>;
pub type Object = super::pool_core::Object<Manager>;
pub type PoolError = managed::PoolError<ConnectError>;

pub struct Manager {
    connect: CountingConnect,
    /// deadpool-postgres' manager, used only for its recycle check: its
    /// own connect is never called (ours is above), so its TLS setting
    /// does not matter. None on MySQL.
    recycling: Option<deadpool_postgres::Manager>,
    method: RecyclingMethod,
}

impl Manager {
    pub fn new(connect: CountingConnect, recycling_method: RecyclingMethod) -> Manager {
        let recycling = match &connect.target {
            Target::Postgres(target) => Some(deadpool_postgres::Manager::from_config(
                target.config().clone(),
                tokio_postgres::NoTls,
                ManagerConfig {
                    recycling_method: recycling_method.clone(),
                },
            )),
            Target::MySql(_) => None,
        };
        Manager {
            connect,
            recycling,
            method: recycling_method,
        }
    }
}

/// A pooled connection: deadpool-postgres' client (with its statement
/// cache) or a MySQL connection (whose driver caches its statements), and
/// the link's count of its round trips.
pub struct Pooled {
    pub conn: PooledConn,
    turns: Option<Turns>,
    /// The count when it was last given back (or filled).
    mark: u32,
}

pub enum PooledConn {
    Postgres(ClientWrapper),
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
                conn: PooledConn::Postgres(ClientWrapper::new(opened.client, opened.task)),
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

    async fn recycle(&self, pooled: &mut Pooled, metrics: &Metrics) -> RecycleResult<ConnectError> {
        match (&mut pooled.conn, &self.recycling) {
            (PooledConn::Postgres(client), Some(recycling)) => recycling
                .recycle(client, metrics)
                .await
                .map_err(|e| match e {
                    RecycleError::Message(m) => RecycleError::Message(m),
                    RecycleError::Backend(e) => RecycleError::Backend(ConnectError::Postgres(
                        crate::backend::postgres::connect::ConnectError::Postgres(e),
                    )),
                }),
            (PooledConn::MySql(conn), _) => {
                let conn = conn.get_mut();
                let checked = match self.method {
                    RecyclingMethod::Fast => Ok(()),
                    RecyclingMethod::Clean => conn.reset().await.map(|_| ()),
                    _ => conn.ping().await,
                };
                checked.map_err(|e| RecycleError::Backend(ConnectError::MySql(e)))
            }
            (PooledConn::Postgres(_), None) => Ok(()),
        }
    }

    fn detach(&self, pooled: &mut Pooled) {
        if let (PooledConn::Postgres(client), Some(recycling)) = (&mut pooled.conn, &self.recycling)
        {
            recycling.detach(client);
        }
    }
}
