//! The pool's connections as deadpool manages them: opened by
//! [`CountingConnect`] (timed, counted, across the link emulator when there
//! is one), each kept with its round-trip counter so that a request knows
//! the round trips it waited for; checked before reuse by
//! deadpool-postgres' own recycling.

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use deadpool_postgres::{ClientWrapper, ManagerConfig, RecyclingMethod};

use super::connect::CountingConnect;
use crate::backend::postgres::connect::ConnectError;
use crate::net::Turns;

pub type Pool = super::pool_core::Pool<Manager>;
pub type Object = super::pool_core::Object<Manager>;
pub type PoolError = managed::PoolError<ConnectError>;

pub struct Manager {
    connect: CountingConnect,
    /// deadpool-postgres' manager, used only for its recycle check: its
    /// own connect is never called (ours is above), so its TLS setting
    /// does not matter.
    recycling: deadpool_postgres::Manager,
}

impl Manager {
    pub fn new(connect: CountingConnect, recycling_method: RecyclingMethod) -> Manager {
        let recycling = deadpool_postgres::Manager::from_config(
            connect.target.config().clone(),
            tokio_postgres::NoTls,
            ManagerConfig { recycling_method },
        );
        Manager { connect, recycling }
    }
}

/// A pooled connection: deadpool-postgres' client (with its statement
/// cache) and the link's count of its round trips.
pub struct Pooled {
    pub client: ClientWrapper,
    turns: Option<Turns>,
    /// The count when it was last given back (or filled).
    mark: u32,
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
        let opened = self.connect.open(std::time::Instant::now()).await?;
        Ok(Pooled {
            client: ClientWrapper::new(opened.client, opened.task),
            turns: opened.turns,
            mark: 0,
        })
    }

    async fn recycle(&self, pooled: &mut Pooled, metrics: &Metrics) -> RecycleResult<ConnectError> {
        self.recycling
            .recycle(&mut pooled.client, metrics)
            .await
            .map_err(|e| match e {
                RecycleError::Message(m) => RecycleError::Message(m),
                RecycleError::Backend(e) => RecycleError::Backend(ConnectError::Postgres(e)),
            })
    }

    fn detach(&self, pooled: &mut Pooled) {
        self.recycling.detach(&mut pooled.client);
    }
}
