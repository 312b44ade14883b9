//! The pool's connections as deadpool manages them: opened by
//! [`CountingConnect`] (timed, counted, across the link emulator when there
//! is one), each kept with the round trips counted when it was last given
//! back, so that a request knows the round trips it waited for; checked
//! before reuse by the pool's [`Recycling`] method (fast: not known to be
//! closed; verified: a round trip; clean: its session reset — each engine
//! says how, behind the backend's `Connection` trait).

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};

use super::connect::CountingConnect;
use crate::backend::{AnyConnection, Connection, Recycling};
use crate::metrics::RequestError;

pub type Pool = super::pool_core::Pool<Manager>;
pub type Object = super::pool_core::Object<Manager>;
pub type PoolError = managed::PoolError<RequestError>;

pub struct Manager {
    connect: CountingConnect,
    method: Recycling,
}

impl Manager {
    pub fn new(connect: CountingConnect, method: Recycling) -> Manager {
        Manager { connect, method }
    }
}

/// A pooled connection (which keeps the statements it prepared) and the
/// link's count of its round trips when it was last given back.
pub struct Pooled {
    pub conn: AnyConnection,
    /// The count when it was last given back (or filled).
    mark: u32,
}

impl Pooled {
    /// Round trips since it was last given back (its recycle check
    /// included; its setup too when it was opened for this request), and
    /// starts counting afresh.
    pub fn round_trips(&mut self) -> Option<u32> {
        let now = self.conn.round_trips()?;
        let n = now.saturating_sub(self.mark);
        self.mark = now;
        Some(n)
    }
}

impl managed::Manager for Manager {
    type Type = Pooled;
    type Error = RequestError;

    async fn create(&self) -> Result<Pooled, RequestError> {
        let opened = self.connect.open(std::time::Instant::now()).await?;
        Ok(Pooled {
            conn: opened.conn,
            mark: 0,
        })
    }

    async fn recycle(&self, pooled: &mut Pooled, _: &Metrics) -> RecycleResult<RequestError> {
        if pooled.conn.is_closed() {
            return Err(RecycleError::message("Connection closed"));
        }
        // Fast is that check alone: no call into the engine (MySQL's would
        // be boxed) on every pooled request.
        if matches!(self.method, Recycling::Fast) {
            return Ok(());
        }
        pooled
            .conn
            .recycle(self.method)
            .await
            .map_err(RecycleError::Backend)
    }
}
