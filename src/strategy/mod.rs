//! Where a request gets its connection: opened for it (`fresh`) or drawn
//! from a deadpool-postgres pool (`pool`). The kind is matched once, in
//! [`Source::new`]; the runner only calls `acquire` and `release`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::{
    Connect, Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use futures_util::future::BoxFuture;
use tokio::task::JoinHandle;
use tokio_postgres::{Client, Statement};

use crate::backend::postgres::Target;
use crate::metrics::{ErrorClass, Phase};
use crate::scenario::{PoolSettings, Recycling, StrategyKind};

/// A failed acquire or query: its class and a message for the report.
#[derive(Debug, Clone)]
pub struct RequestError {
    pub class: ErrorClass,
    pub message: String,
}

impl RequestError {
    pub fn pg(e: &tokio_postgres::Error) -> RequestError {
        RequestError {
            class: ErrorClass::of_pg(e),
            message: crate::backend::postgres::describe_pg_error(e),
        }
    }
}

/// Pool occupancy at one instant, for the timeline.
#[derive(Debug, Clone, Copy, Default)]
pub struct PoolStatus {
    pub size: usize,
    pub available: usize,
    pub waiting: usize,
}

/// Opens connections and counts them: the report's `connections_opened` is
/// this count, not an inference from the request count.
#[derive(Clone)]
struct CountingConnect {
    target: Target,
    opened: Arc<AtomicU64>,
}

impl CountingConnect {
    async fn open(&self) -> Result<(Client, JoinHandle<()>), tokio_postgres::Error> {
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
}

impl Connect for CountingConnect {
    fn connect(
        &self,
        _config: &tokio_postgres::Config,
    ) -> BoxFuture<'_, Result<(Client, JoinHandle<()>), tokio_postgres::Error>> {
        Box::pin(self.open())
    }
}

/// The connection source of one strategy.
pub enum Source {
    Fresh(Box<FreshSource>),
    Pool(PoolSource),
}

/// Opens a connection for every request.
pub struct FreshSource(CountingConnect);

pub struct PoolSource {
    pool: Pool,
    opened: Arc<AtomicU64>,
}

impl Source {
    pub fn new(kind: &StrategyKind, target: &Target) -> Source {
        let connect = CountingConnect {
            target: target.clone(),
            opened: Arc::new(AtomicU64::new(0)),
        };
        match kind {
            StrategyKind::Fresh => Source::Fresh(Box::new(FreshSource(connect))),
            StrategyKind::Pool(settings) => Source::Pool(PoolSource::new(settings, connect)),
        }
    }

    /// The phase that the time to get a connection is recorded under.
    pub fn acquire_phase(&self) -> Phase {
        match self {
            Source::Fresh(_) => Phase::Connect,
            Source::Pool(_) => Phase::Acquire,
        }
    }

    /// Opens the pool's `min_size` connections at once, as an application's
    /// start-up hook would; returns how long it took (zero for fresh).
    pub async fn warm_up(&self, min_size: usize) -> Result<Duration, RequestError> {
        let Source::Pool(p) = self else {
            return Ok(Duration::ZERO);
        };
        let started = Instant::now();
        let objects = futures_util::future::join_all((0..min_size).map(|_| p.pool.get())).await;
        let mut held = Vec::with_capacity(objects.len());
        for object in objects {
            held.push(object.map_err(|e| pool_error(&e))?);
        }
        drop(held);
        Ok(started.elapsed())
    }

    pub async fn acquire(&self) -> Result<Lease, RequestError> {
        match self {
            Source::Fresh(c) => {
                let limit = c.0.target.connect_timeout();
                let (client, task) = match tokio::time::timeout(limit, c.0.open()).await {
                    Ok(r) => r.map_err(|e| RequestError::pg(&e))?,
                    Err(_) => {
                        return Err(RequestError {
                            class: ErrorClass::ConnectTimeout,
                            message: format!(
                                "no answer within the connect timeout ({})",
                                humantime::format_duration(limit)
                            ),
                        })
                    }
                };
                Ok(Lease(Some(Held::Fresh { client, task })))
            }
            Source::Pool(p) => p
                .pool
                .get()
                .await
                .map(|o| Lease(Some(Held::Pooled(o))))
                .map_err(|e| pool_error(&e)),
        }
    }

    pub fn connections_opened(&self) -> u64 {
        match self {
            Source::Fresh(c) => c.0.opened.load(Ordering::Relaxed),
            Source::Pool(p) => p.opened.load(Ordering::Relaxed),
        }
    }

    pub fn pool_status(&self) -> Option<PoolStatus> {
        match self {
            Source::Fresh(_) => None,
            Source::Pool(p) => {
                let s = p.pool.status();
                Some(PoolStatus {
                    size: s.size,
                    available: s.available,
                    waiting: s.waiting,
                })
            }
        }
    }

    /// Closes every pooled connection (after the strategy's run).
    pub fn close(&self) {
        if let Source::Pool(p) = self {
            p.pool.close();
        }
    }
}

impl PoolSource {
    fn new(settings: &PoolSettings, connect: CountingConnect) -> PoolSource {
        let recycling_method = match settings.recycling {
            Recycling::Fast => RecyclingMethod::Fast,
            Recycling::Verified => RecyclingMethod::Verified,
            Recycling::Clean => RecyclingMethod::Clean,
        };
        let opened = connect.opened.clone();
        let config = connect.target.config().clone();
        let create_timeout = connect.target.connect_timeout();
        let manager = Manager::from_connect(config, connect, ManagerConfig { recycling_method });
        let pool = Pool::builder(manager)
            .max_size(settings.max_size)
            .wait_timeout(settings.wait_timeout)
            .create_timeout(Some(create_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            // Only fails without a runtime for timeouts, and one is set.
            .expect("pool with a tokio runtime");
        PoolSource { pool, opened }
    }
}

fn pool_error(e: &PoolError) -> RequestError {
    match e {
        PoolError::Backend(e) => RequestError::pg(e),
        PoolError::Timeout(deadpool_postgres::TimeoutType::Wait) => RequestError {
            class: ErrorClass::PoolTimeout,
            message: "timed out waiting for a pooled connection (wait_timeout)".into(),
        },
        PoolError::Timeout(_) => RequestError {
            class: ErrorClass::ConnectTimeout,
            message: e.to_string(),
        },
        _ => RequestError {
            class: ErrorClass::Other,
            message: e.to_string(),
        },
    }
}

/// A connection held by one request. Given back with [`Lease::release`];
/// a lease dropped without it belongs to an abandoned request (timed out or
/// interrupted) whose statement may still be running, so its connection is
/// closed rather than handed to the next request.
pub struct Lease(Option<Held>);

enum Held {
    Fresh {
        client: Client,
        task: JoinHandle<()>,
    },
    Pooled(Object),
}

impl Lease {
    fn held(&self) -> &Held {
        // Only `release` and `drop` take the connection out, and both
        // consume the lease.
        self.0
            .as_ref()
            .expect("a lease holds its connection until released")
    }

    pub fn client(&self) -> &Client {
        match self.held() {
            Held::Fresh { client, .. } => client,
            Held::Pooled(object) => object,
        }
    }

    /// Prepares `sql` as an application would: a pooled connection reuses
    /// the statement it prepared before; a fresh one must prepare it again.
    pub async fn prepare(&self, sql: &str) -> Result<Statement, tokio_postgres::Error> {
        match self.held() {
            Held::Fresh { client, .. } => client.prepare(sql).await,
            Held::Pooled(object) => object.prepare_cached(sql).await,
        }
    }

    /// Gives the connection back: a fresh one is closed (and the time that
    /// takes returned), a pooled one goes back to its pool.
    pub async fn release(mut self) -> Option<Duration> {
        match self.0.take()? {
            Held::Fresh { client, task } => {
                let started = Instant::now();
                // Dropping the client makes the connection task send
                // Terminate and close the socket; waiting for it is the close.
                drop(client);
                let _ = task.await;
                Some(started.elapsed())
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
