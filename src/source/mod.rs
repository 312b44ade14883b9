//! Where a request gets its connection, behind one trait: opened for it
//! (`fresh.rs`) or drawn from a pool (`pool.rs`). The strategy's kind is
//! matched once, in [`build`]; everything else (the workload, the engine)
//! sees only [`ConnectionSource`]. A new kind is a new file here and one
//! arm of that match.

mod connect;
mod fresh;
mod lease;
mod manager;
mod pool;
mod pool_core;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::backend::Target;
use crate::metrics::{PhaseTimings, PoolStatus, Recorder, RequestError};
use crate::net::Emulator;
use crate::scenario::StrategyKind;

pub use lease::{Lease, Released};

/// A source of connections for one strategy (one per worker thread).
pub trait ConnectionSource: Send + Sync {
    /// A connection for one request, and the time getting it took, under
    /// the source's own phase (`connect` for a fresh connection, `acquire`
    /// for a pool): this is the one place that phase is timed.
    fn acquire(&self) -> BoxFuture<'_, Result<(Lease, PhaseTimings), RequestError>>;

    /// A connection at once, as `acquire` would give it and timed the
    /// same, when the source has one ready without waiting or I/O (a
    /// pool's idle connection); None otherwise (then `acquire`). The
    /// request then sets up, boxes and polls no future to get it.
    fn ready(&self) -> Option<(Lease, PhaseTimings)> {
        None
    }

    /// Readies the source before measuring, as an application's start-up
    /// hook would (a pool opens its min_size connections at once); returns
    /// how long it took (zero when there is nothing to do).
    fn warm_up(&self) -> BoxFuture<'_, Result<Duration, RequestError>>;

    /// The pool's occupancy, or None when there is no pool.
    fn pool_status(&self) -> Option<PoolStatus>;

    /// How many requests of this thread started now would each get a
    /// connection at once, plus one when none of them is waiting for one
    /// (`engine::Service::admits`); no limit without a pool.
    fn admits(&self) -> usize {
        usize::MAX
    }

    /// This thread holds `_n` requests back for a connection
    /// (`engine::Service::hold`).
    fn hold(&self, _n: usize) {}

    /// Ready once another thread set a connection aside for this thread's
    /// held-back requests (`engine::Service::poll_freed`).
    fn poll_freed(&self, _cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        std::task::Poll::Pending
    }

    /// Connections opened so far, counted as they open: the report's
    /// `connections_opened` is this count, not an inference.
    fn connections_opened(&self) -> u64;

    /// Moves the setups (tcp, tls, startup, round trips) of the connections
    /// opened so far into `into`: each connection once, whoever opened it.
    fn drain_setups(&self, into: &mut Recorder);

    /// Closes whatever the source keeps open (after the strategy's run).
    fn close(&self);
}

/// The sources of a strategy, one per worker thread (shard), `shards` of
/// them. Threads never change what the strategy is: a pool's threads share
/// its pools (`instances` of them, `max_size` each). With `link`, every
/// connection they open crosses the link emulator.
pub fn build(
    kind: &StrategyKind,
    target: &Target,
    link: Option<&Arc<Emulator>>,
    shards: usize,
) -> Vec<Arc<dyn ConnectionSource>> {
    match kind {
        StrategyKind::Fresh => (0..shards.max(1))
            .map(|_| Arc::new(fresh::FreshSource::new(target, link)) as Arc<dyn ConnectionSource>)
            .collect(),
        StrategyKind::Pool(settings) => pool::shared(settings, target, link, shards)
            .into_iter()
            .map(|view| Arc::new(view) as Arc<dyn ConnectionSource>)
            .collect(),
    }
}
