//! The pool's connections as deadpool manages them: opened by
//! [`CountingConnect`] (timed, counted, across the link emulator when there
//! is one), each kept with the round trips counted when it was last given
//! back, so that a request knows the round trips it waited for; checked
//! before reuse by the pool's [`Recycling`] method (fast: not known to be
//! closed; verified: a round trip; clean: its session reset — each engine
//! says how, behind the backend's `Connection` trait). The lifecycle's
//! checkout check and keepalive run `check_query` ([`Checks`]); each
//! connection carries its pool's reset, which `Lease::release` runs.

use std::sync::Arc;

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};

use super::connect::CountingConnect;
use super::pool_core::Checks;
use crate::backend::{AnyConnection, Connection, Recycling};
use crate::metrics::RequestError;

pub type Pool = super::pool_core::Pool<Manager>;
pub type Object = super::pool_core::Object<Manager>;
pub type PoolError = managed::PoolError<RequestError>;

pub struct Manager {
    connect: CountingConnect,
    method: Recycling,
    /// The checkout check's and keepalive's statement.
    check_query: &'static str,
    reset: Option<Arc<ResetPlan>>,
}

/// What runs on a pooled connection given back, before the pool has it.
#[derive(Debug)]
pub struct ResetPlan {
    /// Each one round trip, in order.
    pub queries: Vec<String>,
    /// It drops the session's prepared statements (DISCARD ALL).
    pub forgets_statements: bool,
}

impl Manager {
    pub fn new(
        connect: CountingConnect,
        method: Recycling,
        check_query: &'static str,
        reset: Option<Arc<ResetPlan>>,
    ) -> Manager {
        Manager {
            connect,
            method,
            check_query,
            reset,
        }
    }
}

/// A pooled connection (which keeps the statements it prepared) and the
/// link's count of its round trips when it was last given back.
pub struct Pooled {
    /// Boxed: a pooled connection is moved several times a request (out
    /// of its idle list, into the object, the lease, the result of each
    /// level of the request's future, back), and so is a pointer rather
    /// than the whole connection (docs/performance.md).
    pub conn: Box<AnyConnection>,
    /// The count when it was last given back (or filled).
    mark: u32,
    /// Its pool's reset on release, if it has one.
    pub reset: Option<Arc<ResetPlan>>,
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
            conn: Box::new(opened.conn),
            mark: 0,
            reset: self.reset.clone(),
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

impl Checks for Manager {
    async fn check(&self, pooled: &mut Pooled) -> bool {
        pooled.conn.simple(self.check_query).await.is_ok()
    }

    /// Fast recycling is `is_closed` alone, no I/O: a pooled request's
    /// checkout is then synchronous (`pool_core::Pool::try_get`).
    fn recycles_at_once(&self) -> bool {
        matches!(self.method, Recycling::Fast)
    }

    fn usable(&self, pooled: &mut Pooled) -> bool {
        !pooled.conn.is_closed()
    }
}
