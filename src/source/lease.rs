//! A connection held by one request, whatever source it came from, and the
//! `close` phase: giving back a connection opened for the request closes
//! it, and that is timed here.

use std::time::Instant;

use deadpool_postgres::Object;
use tokio::task::JoinHandle;
use tokio_postgres::{Client, Statement};

use crate::metrics::micros;

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
    },
    /// Drawn from a pool; goes back to it when released.
    Pooled(Object),
}

impl Lease {
    pub(super) fn owned(client: Client, task: JoinHandle<()>) -> Lease {
        Lease(Some(Held::Owned { client, task }))
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

    pub fn client(&self) -> &Client {
        match self.held() {
            Held::Owned { client, .. } => client,
            Held::Pooled(object) => object,
        }
    }

    /// Prepares `sql` as an application would: a pooled connection reuses
    /// the statement it prepared before; a fresh one must prepare it again.
    pub async fn prepare(&self, sql: &str) -> Result<Statement, tokio_postgres::Error> {
        match self.held() {
            Held::Owned { client, .. } => client.prepare(sql).await,
            Held::Pooled(object) => object.prepare_cached(sql).await,
        }
    }

    /// Gives the connection back: one opened for the request is closed, and
    /// the microseconds that took are returned (the `close` phase); a pooled
    /// one goes back to its pool (None: nothing to close).
    pub async fn release(mut self) -> Option<u64> {
        match self.0.take()? {
            Held::Owned { client, task } => {
                let started = Instant::now();
                // Dropping the client makes the connection task send
                // Terminate and close the socket; waiting for it is the close.
                drop(client);
                let _ = task.await;
                Some(micros(started.elapsed()))
            }
            Held::Pooled(object) => {
                drop(object);
                None
            }
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
