//! What a round's workers, shards and collector share: the window's
//! instants and the live counters progress is read from.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tokio::time::Instant;

/// The round's instants, common to every worker of every shard.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Warm-up begins.
    pub begin: Instant,
    /// Requests that start from here on are recorded.
    pub measure_start: Instant,
    /// No request starts after this; one running then is finished and
    /// recorded in the last second.
    pub deadline: Instant,
}

impl Window {
    /// Warm-up from `begin`, then the measured window.
    pub fn new(begin: Instant, warmup: Duration, duration: Duration) -> Window {
        let measure_start = after(begin, warmup);
        Window {
            begin,
            measure_start,
            deadline: after(measure_start, duration),
        }
    }

    /// How many seconds the timeline has: the measured window, rounded up.
    pub fn seconds(&self) -> u64 {
        let d = self.deadline - self.measure_start;
        (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
    }
}

/// `at + d`, or a time no run reaches when that is beyond the clock's
/// range (an instant plus a huge duration panics instead of saturating).
pub fn after(at: Instant, d: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    at.checked_add(d)
        .or_else(|| at.checked_add(FAR))
        .unwrap_or(at)
}

/// Live totals for progress: relaxed atomics, no lock.
#[derive(Default)]
pub struct Live {
    pub requests: AtomicU64,
    pub errors: AtomicU64,
    /// Open loop: arrivals released, requests whose service began, and
    /// requests that ended (queued = arrived − started, in flight =
    /// started − finished).
    pub arrived: AtomicU64,
    /// Open loop: arrivals meant for the measured window.
    pub offered: AtomicU64,
    pub started: AtomicU64,
    pub finished: AtomicU64,
    /// Open loop: arrivals counted as request_timeout without being sent
    /// (queued = arrived − started − expired).
    pub expired: AtomicU64,
}
