//! `kind = "pool"`: connections drawn from pools (one per
//! app instance, shared by every worker thread), kept open between
//! requests. Times the `acquire` phase (waiting for a pooled connection,
//! including any connection the pool opens on the way) and its parts the
//! pool measured: `wait`, `open` and `check`. Starts each pool's
//! background task (`min_idle`, idle timeout, keepalive) on the first
//! thread once the pools are filled.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use tokio::sync::Barrier;

use super::connect::CountingConnect;
use super::lease::Lease;
use super::manager::{Manager, Object, Pool, PoolError, ResetPlan};
use super::pool_core::{CheckRule, Rules, Took};
use super::ConnectionSource;
use crate::backend::{self, Target};
use crate::metrics::{micros, ErrorClass, Phase, PhaseTimings, PoolStatus, Recorder, RequestError};
use crate::net::Emulator;
use crate::scenario::{Check, Lifecycle, PoolSettings, Recycling};

/// The pools of one strategy, shared by every worker thread: `instances`
/// pools of `max_size` each, like as many application processes. Each
/// pooled connection's I/O task runs on the thread that opened it, and the
/// pool (`pool_core.rs`) hands a thread its own connections first, so the
/// connections spread over the threads as the load does and a request's
/// I/O stays on its thread whenever a connection of its own is idle.
pub struct PoolSet {
    pools: Vec<Pool>,
    min_size: usize,
    connect: CountingConnect,
    /// Views (worker threads) sharing the set; the warm-up of each waits for
    /// all of them, and the last to close closes the pools.
    views: usize,
    open_views: AtomicUsize,
    filled: Barrier,
    fill_limit: Duration,
}

/// One worker thread's handle on the strategy's pools.
pub struct PoolSource {
    set: Arc<PoolSet>,
    shard: usize,
    /// Requests this thread has sent so far, which picks the next instance.
    sent: AtomicUsize,
}

impl PoolSet {
    fn new(
        settings: &PoolSettings,
        target: &Target,
        link: Option<&Arc<Emulator>>,
        views: usize,
    ) -> PoolSet {
        let connect = CountingConnect::new(target, link);
        let recycling = match settings.recycling {
            Recycling::Fast => backend::Recycling::Fast,
            Recycling::Verified => backend::Recycling::Verified,
            Recycling::Clean => backend::Recycling::Clean,
        };
        let l = &settings.lifecycle;
        let reset = (!l.reset.queries().is_empty()).then(|| {
            Arc::new(ResetPlan {
                queries: l.reset.queries(),
                forgets_statements: l.reset.forgets_statements(),
            })
        });
        let pools = (0..settings.instances.max(1))
            .map(|i| {
                let manager = Manager::new(
                    connect.clone(),
                    recycling,
                    l.check_query.sql(),
                    reset.clone(),
                );
                Pool::new(
                    manager,
                    settings.max_size,
                    views,
                    settings.wait_timeout,
                    Some(target.connect_timeout()),
                    rules(l, i as u64),
                )
            })
            .collect();
        PoolSet {
            pools,
            min_size: settings.min_size,
            connect,
            views,
            open_views: AtomicUsize::new(views),
            filled: Barrier::new(views),
            fill_limit: target.connect_timeout() + Duration::from_secs(5),
        }
    }
}

/// The pool's rules from the scenario's lifecycle settings; `n` seeds the
/// lifetimes' spread of the n-th pool.
fn rules(l: &Lifecycle, n: u64) -> Rules {
    Rules {
        max_lifetime: l.max_lifetime,
        lifetime_jitter: l.lifetime_jitter,
        idle_timeout: l.idle_timeout,
        min_idle: l.min_idle,
        check: match l.check {
            Check::Never => CheckRule::Never,
            Check::Always => CheckRule::Always,
            Check::IfIdleOver(d) => CheckRule::IfIdleOver(d),
        },
        keepalive: l.keepalive,
        seed: 0x5EED_0000 + n,
    }
}

/// One source per worker thread (`views` of them, at least one), all
/// drawing from the same pools (whose connections cross `link` when given).
pub fn shared(
    settings: &PoolSettings,
    target: &Target,
    link: Option<&Arc<Emulator>>,
    views: usize,
) -> Vec<PoolSource> {
    let views = views.max(1);
    let set = Arc::new(PoolSet::new(settings, target, link, views));
    (0..views)
        .map(|shard| PoolSource {
            set: set.clone(),
            shard,
            sent: AtomicUsize::new(0),
        })
        .collect()
}

/// A pooled connection got since `started` (`took`, the pool's parts of
/// it): its lease and `acquire`'s timings. One reading ends `acquire` and
/// starts the request's `query`.
fn leased(object: Object, started: Instant, took: Took) -> (Lease, PhaseTimings) {
    let got_at = Instant::now();
    let mut t = PhaseTimings::default();
    t.set(Phase::Acquire, micros(got_at.duration_since(started)));
    t.set(Phase::Wait, took.wait_us);
    if let Some(us) = took.open_us {
        t.set(Phase::Open, us);
    }
    if let Some(us) = took.check_us {
        t.set(Phase::Check, us);
    }
    (Lease::pooled(object, got_at), t)
}

/// How long a thread opens its share of a pool one connection at a time
/// (see [`PoolSource::fill`]): a few milliseconds each on the same machine,
/// so a large pool or a distant server adds at most this to the start-up.
const SERIAL_FILL: Duration = Duration::from_secs(1);

impl PoolSource {
    /// The pool of this thread's next request. Worker `i` runs on thread
    /// `i % views` and belongs to instance `i % instances`; this thread's
    /// k-th request goes to instance `(shard + k × views) % instances`,
    /// the instances its workers belong to, in turn, so every instance
    /// gets an even share of the load.
    fn next_pool(&self) -> &Pool {
        if self.set.pools.len() == 1 {
            return &self.set.pools[0];
        }
        self.pool_for(self.sent.fetch_add(1, Ordering::Relaxed))
    }

    /// The pool of this thread's k-th request.
    fn pool_for(&self, k: usize) -> &Pool {
        let pools = &self.set.pools;
        &pools[(self.shard + k.wrapping_mul(self.set.views)) % pools.len()]
    }

    async fn get(&self) -> Result<(Lease, PhaseTimings), RequestError> {
        let pool = self.next_pool();
        let started = Instant::now();
        let (object, took) = pool.get(self.shard).await.map_err(|e| pool_error(&e))?;
        Ok(leased(object, started, took))
    }

    /// `get` without a future, when the pool has a connection at once
    /// (`pool_core::Pool::try_get`).
    fn try_get(&self) -> Option<(Lease, PhaseTimings)> {
        let pools = &self.set.pools;
        let pool = match pools.len() {
            1 => &pools[0],
            // The instance `get` would draw from; its turn is used up only
            // when it gives a connection.
            _ => self.pool_for(self.sent.load(Ordering::Relaxed)),
        };
        let started = Instant::now();
        let object = pool.try_get(self.shard)?;
        if pools.len() > 1 {
            self.sent.fetch_add(1, Ordering::Relaxed);
        }
        Some(leased(object, started, Took::default()))
    }

    /// Opens this thread's share of every pool's `min_size` connections
    /// (so their I/O is spread over the threads), holding them until every
    /// thread has its share: otherwise a thread would be handed another's
    /// idle connections instead of opening its own.
    ///
    /// One at a time, as pgbench's threads connect their clients, for up to
    /// [`SERIAL_FILL`]; whatever is left then opens all at once. A thread
    /// waking one new backend at a time lets the kernel move it onto the
    /// thread's CPU when the server shares the machine (in most runs: see
    /// `engine::launcher`); opened together, they stay wherever they were
    /// forked.
    async fn fill(&self) -> Result<Duration, RequestError> {
        self.set.connect.prepare_thread();
        let started = Instant::now();
        let set = &self.set;
        let share = set.min_size / set.views + usize::from(self.shard < set.min_size % set.views);
        let mut gets = set.pools.iter().flat_map(|pool| {
            (0..share).map(move |_| async move { pool.get(self.shard).await.map(|(o, _)| o) })
        });
        let mut objects = Vec::with_capacity(share * set.pools.len());
        // A failure ends it too: a server that refuses or does not answer
        // would otherwise be waited on once per connection.
        while started.elapsed() < SERIAL_FILL && objects.last().is_none_or(Result::is_ok) {
            let Some(get) = gets.next() else { break };
            objects.push(get.await);
        }
        objects.extend(futures_util::future::join_all(gets).await);
        let mut held = Vec::with_capacity(objects.len());
        let mut failed = None;
        for object in objects {
            match object {
                Ok(o) => held.push(o),
                Err(e) => failed = failed.or(Some(pool_error(&e))),
            }
        }
        // Every view reaches the barrier, failed or not; a thread that never
        // started would hold the others back, hence the limit.
        let _ = tokio::time::timeout(set.fill_limit, set.filled.wait()).await;
        if self.shard == 0 {
            // Dropped with this thread's runtime, or ends when the pool
            // closes.
            for pool in &set.pools {
                tokio::spawn(pool.upkeep(self.shard));
            }
        }
        for object in &mut held {
            // Their setups' round trips are logged already; a request's
            // count starts from here.
            object.round_trips();
        }
        drop(held);
        match failed {
            Some(e) => Err(e),
            None => Ok(started.elapsed()),
        }
    }
}

impl ConnectionSource for PoolSource {
    fn acquire(&self) -> BoxFuture<'_, Result<(Lease, PhaseTimings), RequestError>> {
        Box::pin(self.get())
    }

    fn ready(&self) -> Option<(Lease, PhaseTimings)> {
        self.try_get()
    }

    fn warm_up(&self) -> BoxFuture<'_, Result<Duration, RequestError>> {
        Box::pin(self.fill())
    }

    /// The set's figures are reported by its first view only, so that the
    /// engine's sum over the threads counts each pool once.
    fn pool_status(&self) -> Option<PoolStatus> {
        if self.shard != 0 {
            return None;
        }
        self.set
            .pools
            .iter()
            .map(|pool| {
                let s = pool.status();
                PoolStatus {
                    size: s.size,
                    available: s.available,
                    waiting: s.waiting,
                    opened: 0,
                    closed: s.closed,
                }
            })
            .reduce(PoolStatus::plus)
            .map(|s| PoolStatus {
                // One count for the set: its pools share the connector.
                opened: self.set.connect.opened(),
                ..s
            })
    }

    /// Of the pool this thread's next request goes to.
    fn admits(&self) -> usize {
        self.pool_for(self.sent.load(Ordering::Relaxed))
            .admits(self.shard)
    }

    /// On every pool of the set: the held requests go to them in turn.
    fn hold(&self, n: usize) {
        for pool in &self.set.pools {
            pool.hold(self.shard, n);
        }
    }

    /// Of any pool of the set (each one's waker registered).
    fn poll_freed(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        let mut freed = std::task::Poll::Pending;
        for pool in &self.set.pools {
            if pool.poll_freed(self.shard, cx).is_ready() {
                freed = std::task::Poll::Ready(());
            }
        }
        freed
    }

    /// Counted once, like `pool_status`.
    fn connections_opened(&self) -> u64 {
        if self.shard == 0 {
            self.set.connect.opened()
        } else {
            0
        }
    }

    /// Drained once, like `pool_status`, when every thread is done.
    fn drain_setups(&self, into: &mut Recorder) {
        if self.shard == 0 {
            self.set.connect.drain_setups(into);
        }
    }

    /// The last thread to finish closes the pools: closing them earlier
    /// would fail the other threads' last requests.
    fn close(&self) {
        if self.set.open_views.fetch_sub(1, Ordering::AcqRel) == 1 {
            for pool in &self.set.pools {
                pool.close();
            }
        }
    }
}

fn pool_error(e: &PoolError) -> RequestError {
    match e {
        PoolError::Backend(e) => e.clone(),
        PoolError::Timeout(deadpool::managed::TimeoutType::Wait) => RequestError::new(
            ErrorClass::PoolTimeout,
            "timed out waiting for a pooled connection (wait_timeout)",
        ),
        PoolError::Timeout(_) => RequestError::new(ErrorClass::ConnectTimeout, e.to_string()),
        _ => RequestError::new(ErrorClass::Other, e.to_string()),
    }
}
