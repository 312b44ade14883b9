//! Opening one connection and counting it, shared by every source kind.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_postgres::Client;

use crate::backend::postgres::Target;

/// Opens connections to a target and counts them as they open.
#[derive(Clone)]
pub struct CountingConnect {
    pub target: Target,
    pub opened: Arc<AtomicU64>,
}

impl CountingConnect {
    pub fn new(target: &Target) -> CountingConnect {
        CountingConnect {
            target: target.clone(),
            opened: Arc::new(AtomicU64::new(0)),
        }
    }

    /// One connection, and the task that drives it (it ends when the client
    /// is dropped).
    pub async fn open(&self) -> Result<(Client, JoinHandle<()>), tokio_postgres::Error> {
        let (client, connection) = self
            .target
            .config()
            .connect(self.target.tls().clone())
            .await?;
        self.opened.fetch_add(1, Ordering::Relaxed);
        let task = tokio::spawn(async move {
            // A broken connection shows up as an error on the client's next
            // call, where it is classified and counted.
            let _ = connection.await;
        });
        Ok((client, task))
    }

    pub fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }
}
