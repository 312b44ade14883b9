//! `kind = "pool"`: connections drawn from a deadpool-postgres pool, kept
//! open between requests. Times the `acquire` phase (waiting for a pooled
//! connection, including any connection the pool opens on the way).

use std::time::{Duration, Instant};

use deadpool_postgres::{
    Connect, Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime,
};
use futures_util::future::BoxFuture;
use tokio::task::JoinHandle;
use tokio_postgres::Client;

use super::connect::CountingConnect;
use super::lease::Lease;
use super::ConnectionSource;
use crate::backend::postgres::{request_error, Target};
use crate::metrics::{micros, ErrorClass, Phase, PhaseTimings, PoolStatus, RequestError};
use crate::scenario::{PoolSettings, Recycling};

/// The pool's settings as each of `n` worker threads runs them: max_size and
/// min_size divided as evenly as they go (10 over 3 → 4, 3, 3), never more
/// shares than the pool has connections.
pub fn split(settings: &PoolSettings, n: usize) -> Vec<PoolSettings> {
    let n = n.max(1).min(settings.max_size.max(1));
    let share = |total: usize, i: usize| total / n + usize::from(i < total % n);
    (0..n)
        .map(|i| PoolSettings {
            max_size: share(settings.max_size, i),
            min_size: share(settings.min_size, i),
            ..settings.clone()
        })
        .collect()
}

pub struct PoolSource {
    pool: Pool,
    min_size: usize,
    connect: CountingConnect,
}

impl PoolSource {
    pub fn new(settings: &PoolSettings, target: &Target) -> PoolSource {
        let connect = CountingConnect::new(target);
        let recycling_method = match settings.recycling {
            Recycling::Fast => RecyclingMethod::Fast,
            Recycling::Verified => RecyclingMethod::Verified,
            Recycling::Clean => RecyclingMethod::Clean,
        };
        let manager = Manager::from_connect(
            target.config().clone(),
            connect.clone(),
            ManagerConfig { recycling_method },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.max_size)
            .wait_timeout(settings.wait_timeout)
            .create_timeout(Some(target.connect_timeout()))
            .runtime(Runtime::Tokio1)
            .build()
            // Only fails without a runtime for timeouts, and one is set.
            .expect("pool with a tokio runtime");
        PoolSource {
            pool,
            min_size: settings.min_size,
            connect,
        }
    }

    async fn get(&self) -> Result<(Lease, PhaseTimings), RequestError> {
        let started = Instant::now();
        let object = self.pool.get().await.map_err(|e| pool_error(&e))?;
        let mut t = PhaseTimings::default();
        t.set(Phase::Acquire, micros(started.elapsed()));
        Ok((Lease::pooled(object), t))
    }

    async fn fill(&self) -> Result<Duration, RequestError> {
        let started = Instant::now();
        let objects =
            futures_util::future::join_all((0..self.min_size).map(|_| self.pool.get())).await;
        let mut held = Vec::with_capacity(objects.len());
        for object in objects {
            held.push(object.map_err(|e| pool_error(&e))?);
        }
        drop(held);
        Ok(started.elapsed())
    }
}

impl ConnectionSource for PoolSource {
    fn acquire(&self) -> BoxFuture<'_, Result<(Lease, PhaseTimings), RequestError>> {
        Box::pin(self.get())
    }

    fn warm_up(&self) -> BoxFuture<'_, Result<Duration, RequestError>> {
        Box::pin(self.fill())
    }

    fn pool_status(&self) -> Option<PoolStatus> {
        let s = self.pool.status();
        Some(PoolStatus {
            size: s.size,
            available: s.available,
            waiting: s.waiting,
        })
    }

    fn connections_opened(&self) -> u64 {
        self.connect.opened()
    }

    fn close(&self) {
        self.pool.close();
    }
}

impl Connect for CountingConnect {
    fn connect(
        &self,
        _config: &tokio_postgres::Config,
    ) -> BoxFuture<'_, Result<(Client, JoinHandle<()>), tokio_postgres::Error>> {
        Box::pin(self.open())
    }
}

fn pool_error(e: &PoolError) -> RequestError {
    match e {
        PoolError::Backend(e) => request_error(e),
        PoolError::Timeout(deadpool_postgres::TimeoutType::Wait) => RequestError::new(
            ErrorClass::PoolTimeout,
            "timed out waiting for a pooled connection (wait_timeout)",
        ),
        PoolError::Timeout(_) => RequestError::new(ErrorClass::ConnectTimeout, e.to_string()),
        _ => RequestError::new(ErrorClass::Other, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(max_size: usize, min_size: usize) -> PoolSettings {
        PoolSettings {
            max_size,
            min_size,
            wait_timeout: None,
            recycling: Recycling::Fast,
        }
    }

    #[test]
    fn a_pool_splits_evenly_and_never_into_empty_shares() {
        let sizes = |s: &[PoolSettings]| {
            s.iter()
                .map(|p| (p.max_size, p.min_size))
                .collect::<Vec<_>>()
        };
        assert_eq!(sizes(&split(&pool(10, 10), 3)), [(4, 4), (3, 3), (3, 3)]);
        assert_eq!(sizes(&split(&pool(10, 0), 2)), [(5, 0), (5, 0)]);
        assert_eq!(sizes(&split(&pool(2, 1), 4)), [(1, 1), (1, 0)]);
        assert_eq!(sizes(&split(&pool(8, 8), 1)), [(8, 8)]);
    }
}
