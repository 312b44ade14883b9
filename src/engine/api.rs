//! The engine's interface: the [`Service`] it runs, the [`Settings`] of a
//! round, the [`Observer`] that watches it, and the [`RoundResult`] it
//! returns.

use std::future::Future;
use std::time::{Duration, SystemTime};

use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::metrics::packed::PackedPhases;
use crate::metrics::{
    ClosedBy, ErrorCounts, PhaseTimings, PoolStatus, PoolerStatus, Recorder, RequestError,
};
use crate::rng::Rng;
use crate::scenario::{Arrivals, RetryPolicy};

/// What the engine serves, one per worker thread: draws requests and runs
/// them, timing every phase but `total` (which the engine times, from the
/// request's intended start, retries included).
pub trait Service: Send + Sync + 'static {
    type Request: Send + Sync + 'static;

    /// The next request of a worker, drawn from its seeded stream.
    fn draw(&self, rng: &mut Rng) -> Self::Request;

    /// The index of the request's query, for the per-query histograms.
    fn query_of(request: &Self::Request) -> usize;

    /// Runs one request (one attempt of it).
    fn call<'a>(
        &'a self,
        request: &'a Self::Request,
    ) -> impl Future<Output = Result<PhaseTimings, RequestError>> + Send + 'a;

    /// Runs one request (one attempt of it) that must have got going by
    /// `start_by`: one still waiting then (for a pooled connection, or to
    /// open one) gives up without sending anything and fails with
    /// `ErrorClass::RequestTimeout`, which a service returns for nothing
    /// else (the engine counts it as an expired arrival). Open loop's
    /// arrivals use it, so that their request_timeout bounds the wait from
    /// the arrival but never cuts a query already sent (a FIFO queue whose
    /// waiters are cut as their time runs out serves each just before its
    /// end, and cuts nearly all of them in service: goodput falls to
    /// zero). A service that never waits need not override it.
    fn call_by<'a>(
        &'a self,
        request: &'a Self::Request,
        start_by: tokio::time::Instant,
    ) -> impl Future<Output = Result<PhaseTimings, RequestError>> + Send + 'a {
        let _ = start_by;
        self.call(request)
    }

    /// Readies the service before anything runs (fills a pool); how long
    /// it took.
    fn warm_up(&self) -> impl Future<Output = Result<Duration, RequestError>> + Send + '_;

    /// Pool occupancy now, or None without a pool.
    fn pool_status(&self) -> Option<PoolStatus>;

    /// How many requests started now on this thread would each get a
    /// connection at once (open loop starts no more: see `open_loop.rs`).
    /// Without a pool, no limit.
    fn admits(&self) -> usize {
        usize::MAX
    }

    /// This thread's open loop holds `_n` requests back for a connection
    /// (they weigh in the pool's choice of a thread, and count as waiting).
    fn hold(&self, _n: usize) {}

    /// Ready once another thread set a connection aside for this thread's
    /// held-back requests (open loop's generator then lets them go).
    fn poll_freed(&self, _cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        std::task::Poll::Pending
    }

    /// Connections opened so far.
    fn connections_opened(&self) -> u64;

    /// Moves what the service measured outside its requests (the setup of
    /// each connection it opened) into `_into`: by the collector as the
    /// round goes, and once more when it is over.
    fn drain_setups(&self, _into: &mut Recorder) {}

    /// Closes what the service keeps open, after the round.
    fn close(&self);
}

/// How a round runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Closed-loop workers.
    pub concurrency: u32,
    /// Run but not recorded, before the measured window.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// The workers' random streams (and the retry jitter's) derive from it.
    pub seed: u64,
    /// An attempt running longer is abandoned and counted `request_timeout`.
    pub request_timeout: Duration,
    pub retry: Option<RetryPolicy>,
    pub pacing: Pacing,
    /// When set, warm-up begins at this wall-clock time (once every shard
    /// is ready), so that copies on several machines share their windows.
    pub start_at: Option<SystemTime>,
    /// Cancelled by Ctrl-C / SIGTERM: workers stop, what was measured stays.
    pub cancel: CancellationToken,
}

/// When a worker's requests are meant to start: the pacing point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// Each worker starts its next request when the previous one ends.
    ClosedLoop,
    /// Requests arrive on a seeded schedule, whether or not earlier ones
    /// are done; `concurrency` is not used.
    OpenLoop(Arrivals),
}

/// Watches a round from outside the request path.
pub trait Observer: Send {
    /// The server's client backends now (None when unknown); asked once a
    /// second during the measured window.
    fn backends(&mut self) -> BoxFuture<'_, Option<u64>>;

    /// The figures of a pooler between the service and the server (None
    /// without one); asked once a second with `backends`.
    fn pooler(&mut self) -> BoxFuture<'_, Option<PoolerStatus>> {
        Box::pin(async { None })
    }

    /// About four times a second.
    fn progress(&mut self, tick: &Tick);
}

/// Where a round is, for a progress display.
#[derive(Debug, Clone, Copy)]
pub struct Tick {
    /// Since warm-up began.
    pub elapsed: Duration,
    /// Warm-up plus the measured window.
    pub total: Duration,
    pub measuring: bool,
    /// Completed requests per second over the last second or so (None
    /// until there is a second to measure over).
    pub rps: Option<f64>,
    /// Failed requests so far, warm-up included.
    pub errors: u64,
}

/// What one round measured.
pub struct RoundResult {
    /// Every measured request, merged from all workers.
    pub recorder: Recorder,
    /// Failures that are not requests, and so not in `recorder.errors` nor
    /// in the seconds: a pool that could not fill before measuring, a worker
    /// thread that could not start or was lost.
    pub failures: ErrorCounts,
    /// One entry per second of the measured window that was run.
    pub seconds: Vec<Second>,
    /// From the start of the measured window to the end of its last request.
    pub measured: Duration,
    /// Successful requests that ended inside the measured window (from
    /// its start to its deadline), whenever they were meant to start: what
    /// the server delivered in the window. Over the window's length it is
    /// open loop's achieved rate as pgbench -R counts it (pgbench stops at
    /// the end of -T, so the queue left then is not counted): requests
    /// meant for the warm-up that end inside balance the window's own that
    /// end after it, where `recorder.requests / measured` counts the
    /// time the queue took to drain after the deadline and reads low by
    /// that share.
    pub completed_in_window: u64,
    /// The measured window as run: `Settings::duration`, or less when the
    /// round was cut short (the achieved rate's denominator).
    pub window: Duration,
    /// Wall-clock time at the start of the measured window.
    pub started_at: SystemTime,
    pub connections_opened: u64,
    /// Time to ready the services (fill the pools; the slowest shard).
    pub startup: Duration,
    /// Worker threads the round ran on.
    pub shards: u32,
    /// Open loop: the arrivals the schedule offered in the measured window,
    /// per second (None in closed loop).
    pub offered_rate: Option<f64>,
    /// Open loop: how far behind its schedule the generator dispatched the
    /// window's arrivals, every shard's together (None in closed loop).
    pub generator: Option<GeneratorLag>,
}

/// An arrival dispatched later than this after its intended time counts as
/// late; a generator with more than 1% of its arrivals late is saturated
/// (`GeneratorLag::saturated`). Long enough that a busy machine's
/// scheduling (a thread preempted for a few milliseconds now and then) is
/// not taken for a generator that cannot keep up, whose lag grows without
/// bound; the `lag` phase shows the smaller delays.
pub const LATE: Duration = Duration::from_millis(10);

/// Open loop: the generator's own delay, from an arrival's intended time to
/// the moment it was dispatched to the handlers (pgbench's "schedule lag").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GeneratorLag {
    /// Arrivals of the measured window dispatched.
    pub arrivals: u64,
    /// Of them, dispatched more than [`LATE`] after their time.
    pub late: u64,
    /// The worst lag, in microseconds.
    pub worst_us: u64,
}

impl GeneratorLag {
    pub fn count(&mut self, lag: Duration) {
        self.arrivals += 1;
        if lag > LATE {
            self.late += 1;
        }
        self.worst_us = self.worst_us.max(crate::metrics::micros(lag));
    }

    pub fn merge(&mut self, other: &GeneratorLag) {
        self.arrivals += other.arrivals;
        self.late += other.late;
        self.worst_us = self.worst_us.max(other.worst_us);
    }

    /// More than one arrival in a hundred dispatched late: the generator
    /// (poolbench's thread, not the database) could not keep to the rate.
    pub fn saturated(&self) -> bool {
        self.late * 100 > self.arrivals
    }
}

/// One second of the measured window.
pub struct Second {
    pub second: u64,
    /// That second's successful requests, by phase (packed: a run keeps
    /// one per second).
    pub phases: PackedPhases,
    pub requests: u64,
    pub errors: u64,
    /// Sampled once in the second (None when not sampled or no pool).
    pub pool: Option<PoolStatus>,
    /// Connections the pools opened and closed in the second (from its
    /// sample to the next; None without a pool).
    pub churn: Option<Churn>,
    pub backends: Option<u64>,
    /// Sampled once in the second (None without a pooler).
    pub pooler: Option<PoolerStatus>,
    /// Open loop, sampled once in the second: requests in service, and
    /// arrivals waiting for a free handler.
    pub in_flight: Option<u64>,
    pub queued: Option<u64>,
    /// Open loop: arrivals the schedule offered in the second (by their
    /// intended time), and arrivals counted as request_timeout without
    /// being sent (by the second they expired in).
    pub offered: Option<u64>,
    pub expired: Option<u64>,
}

/// Connections opened and closed, by cause, in one second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Churn {
    pub opened: u64,
    pub closed: ClosedBy,
}

/// One worker thread per core, as pgbench's `-j` is usually set.
pub fn default_threads() -> usize {
    crate::placement::cpus()
}
