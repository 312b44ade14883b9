//! The collector: merges the workers' per-second intervals, samples the
//! pools and the server's backends once a second, and reports progress,
//! until every worker is done. It runs on the caller's task, off the
//! request path. A second over for a while is packed (`PackedPhases`), so
//! a long run keeps a few KB per second, not a histogram per phase; and
//! only the seconds that were run become rows, however long the
//! configured window.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::api::{Churn, Observer, Second, Service, Tick};
use super::window::{Live, Window};
use crate::metrics::packed::PackedPhases;
use crate::metrics::{Interval, PoolStatus, PoolerStatus, Recorder};

/// The seconds of a round, as collected.
pub struct Seconds(Vec<Second>);

impl Seconds {
    /// Only the seconds that were run: an interrupted round keeps the
    /// seconds up to its last request, not the whole configured window.
    pub fn trimmed_to(self, measured: Duration) -> Vec<Second> {
        let run = measured.as_secs() + u64::from(measured.subsec_nanos() > 0);
        let mut rows = self.0;
        // A second that recorded something stays, whatever the rounding.
        rows.retain(|s| s.second < run.max(1) || s.requests + s.errors > 0);
        rows
    }
}

/// Seconds after which a second is packed: an interval reaches the
/// collector when its worker moves on, so a second can still grow a while
/// (a late one is unpacked, merged and packed again).
const PACK_AFTER_SECONDS: u64 = 2;

/// One second as collected: still open, or packed.
enum Slot {
    Open(Box<Interval>),
    Packed {
        phases: PackedPhases,
        requests: u64,
        errors: u64,
        expired: u64,
    },
}

impl Slot {
    fn merge(&mut self, iv: &Interval) {
        if let Slot::Packed {
            phases,
            requests,
            errors,
            expired,
        } = self
        {
            let mut open = Interval::new(iv.second);
            open.phases = phases.unpack();
            open.requests = *requests;
            open.errors = *errors;
            open.expired = *expired;
            *self = Slot::Open(Box::new(open));
        }
        if let Slot::Open(entry) = self {
            entry.phases.merge(&iv.phases);
            entry.requests += iv.requests;
            entry.errors += iv.errors;
            entry.expired += iv.expired;
        }
    }

    fn pack(&mut self) {
        if let Slot::Open(iv) = self {
            *self = Slot::Packed {
                phases: PackedPhases::pack(&iv.phases),
                requests: iv.requests,
                errors: iv.errors,
                expired: iv.expired,
            };
        }
    }

    /// (phases, requests, errors, expired), packed.
    fn into_parts(mut self) -> (PackedPhases, u64, u64, u64) {
        self.pack();
        match self {
            Slot::Packed {
                phases,
                requests,
                errors,
                expired,
            } => (phases, requests, errors, expired),
            Slot::Open(iv) => (
                PackedPhases::pack(&iv.phases),
                iv.requests,
                iv.errors,
                iv.expired,
            ),
        }
    }
}

/// Per-second samples the collector takes itself.
#[derive(Default, Clone, Copy)]
struct Sample {
    pool: Option<PoolStatus>,
    backends: Option<u64>,
    pooler: Option<PoolerStatus>,
    in_flight: u64,
    queued: u64,
}

pub async fn collect<S: Service>(
    open_loop: bool,
    services: &[Arc<S>],
    mut rx: mpsc::UnboundedReceiver<Interval>,
    lives: &[Arc<Live>],
    observer: &mut dyn Observer,
    window: Window,
    setups: &mut Recorder,
) -> Seconds {
    let seconds = window.seconds();
    let mut merged: BTreeMap<u64, Slot> = BTreeMap::new();
    let mut samples: BTreeMap<u64, Sample> = BTreeMap::new();
    let period = Duration::from_millis(250);
    // On the measured window's quarter seconds, so each second's sample is
    // taken as it begins: the pool's counts between two samples are then
    // those of the second (a storm of replacements is in the second whose
    // latency it raised).
    let mut tick = tokio::time::interval_at(
        first_tick(window.measure_start, Instant::now(), period),
        period,
    );
    let mut last_rate: Option<(Instant, u64)> = None;
    let total = window.deadline - window.begin;
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(iv) => merged
                    .entry(iv.second)
                    .or_insert_with(|| Slot::Open(Box::new(Interval::new(iv.second))))
                    .merge(&iv),
                None => break,
            },
            _ = tick.tick() => {
                // The connections' setups, logged by the services as they
                // open: drained as the round goes, so that the logs stay
                // short however long it runs.
                for service in services {
                    service.drain_setups(setups);
                }
                let now = Instant::now();
                let current = now.saturating_duration_since(window.measure_start).as_secs();
                for (_, slot) in merged.range_mut(..current.saturating_sub(PACK_AFTER_SECONDS)) {
                    slot.pack();
                }
                if now >= window.measure_start && now < window.deadline {
                    let second = (now - window.measure_start).as_secs();
                    if !samples.contains_key(&second) && second < seconds {
                        let backends = observer.backends().await;
                        let pooler = observer.pooler().await;
                        let sum = |f: fn(&Live) -> &AtomicU64| -> u64 {
                            lives.iter().map(|l| f(l).load(Ordering::Relaxed)).sum()
                        };
                        let (arrived, started, finished, expired) = (
                            sum(|l| &l.arrived),
                            sum(|l| &l.started),
                            sum(|l| &l.finished),
                            sum(|l| &l.expired),
                        );
                        samples.insert(second, Sample {
                            pool: pool_status(services),
                            backends,
                            pooler,
                            in_flight: started.saturating_sub(finished),
                            queued: arrived.saturating_sub(started + expired),
                        });
                    }
                }
                let requests: u64 = lives.iter().map(|l| l.requests.load(Ordering::Relaxed)).sum();
                let errors: u64 = lives.iter().map(|l| l.errors.load(Ordering::Relaxed)).sum();
                let rps = match last_rate {
                    Some((at, n)) if now.duration_since(at) >= Duration::from_secs(1) => {
                        last_rate = Some((now, requests));
                        Some((requests - n) as f64 / now.duration_since(at).as_secs_f64())
                    }
                    Some(_) => None,
                    None => {
                        last_rate = Some((now, requests));
                        None
                    }
                };
                observer.progress(&Tick {
                    elapsed: now.saturating_duration_since(window.begin).min(total),
                    total,
                    measuring: now >= window.measure_start,
                    rps,
                    errors,
                });
            }
        }
    }
    // Only the seconds that were run (an interrupted hour-long window has a
    // few), each with what was recorded in it.
    let elapsed = Instant::now().saturating_duration_since(window.measure_start);
    let run = elapsed.as_secs() + u64::from(elapsed.subsec_nanos() > 0);
    let last_recorded = merged.keys().next_back().map_or(0, |s| s + 1);
    let rows = seconds.min(run.max(last_recorded));
    let end = pool_status(services);
    Seconds(
        (0..rows)
            .map(|second| {
                let (phases, requests, errors, expired) = merged
                    .remove(&second)
                    .map_or_else(|| (PackedPhases::default(), 0, 0, 0), Slot::into_parts);
                let sample = samples.get(&second).copied().unwrap_or_default();
                // What the pools opened and closed from this second's sample
                // to the next (the last: to the end).
                let after = samples.get(&(second + 1)).and_then(|s| s.pool).or(end);
                let churn = match (sample.pool, after) {
                    (Some(from), Some(to)) => Some(Churn {
                        opened: to.opened.saturating_sub(from.opened),
                        closed: to.closed.since(from.closed),
                    }),
                    _ => None,
                };
                Second {
                    churn,
                    second,
                    phases,
                    requests,
                    errors,
                    pool: sample.pool,
                    backends: sample.backends,
                    pooler: sample.pooler,
                    in_flight: open_loop.then_some(sample.in_flight),
                    queued: open_loop.then_some(sample.queued),
                    // Filled in from the generators' counts by `shard::run`.
                    offered: open_loop.then_some(0),
                    expired: open_loop.then_some(expired),
                }
            })
            .collect(),
    )
}

/// The first instant at or after `now` that is a whole number of `period`s
/// from `anchor` (before or after it).
fn first_tick(anchor: Instant, now: Instant, period: Duration) -> Instant {
    let p = period.as_nanos().max(1);
    if now <= anchor {
        let steps = (anchor - now).as_nanos() / p;
        anchor - period * u32::try_from(steps).unwrap_or(u32::MAX)
    } else {
        let gone = (now - anchor).as_nanos();
        let steps = gone.div_ceil(p);
        anchor + period * u32::try_from(steps).unwrap_or(u32::MAX)
    }
}

/// The pools of every shard, added up (None without a pool).
fn pool_status<S: Service>(services: &[Arc<S>]) -> Option<PoolStatus> {
    services
        .iter()
        .filter_map(|s| s.pool_status())
        .reduce(PoolStatus::plus)
}
