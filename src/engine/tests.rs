//! The engine against a deterministic in-process service: deadlines,
//! warm-up exclusion, request_timeout, retries, cancellation and the
//! wall-clock start, each measured on real clocks with bounds loose enough
//! for a busy machine and tight enough to fail when the rule is broken.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::metrics::{ErrorClass, Phase, PhaseTimings, PoolStatus, RequestError};
use crate::rng::Rng;
use crate::scenario::RetryPolicy;

/// Serves every request in `delay`; fails the first `failures` calls with
/// `too_many_connections`.
struct Fake {
    delay: Duration,
    failures: u64,
    calls: AtomicU64,
    warm_up: Duration,
    closed: AtomicU64,
}

impl Fake {
    fn new(delay: Duration) -> Fake {
        Fake {
            delay,
            failures: 0,
            calls: AtomicU64::new(0),
            warm_up: Duration::ZERO,
            closed: AtomicU64::new(0),
        }
    }
}

impl Service for Fake {
    type Request = usize;

    fn draw(&self, rng: &mut Rng) -> usize {
        rng.below(2) as usize
    }

    fn query_of(request: &usize) -> usize {
        *request
    }

    async fn call(&self, _request: &usize) -> Result<PhaseTimings, RequestError> {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        tokio::time::sleep(self.delay).await;
        if n < self.failures {
            return Err(RequestError::new(ErrorClass::TooManyConnections, "full"));
        }
        let mut t = PhaseTimings::default();
        t.set(Phase::Query, crate::metrics::micros(started.elapsed()));
        Ok(t)
    }

    async fn warm_up(&self) -> Result<Duration, RequestError> {
        tokio::time::sleep(self.warm_up).await;
        Ok(self.warm_up)
    }

    fn pool_status(&self) -> Option<PoolStatus> {
        Some(PoolStatus {
            size: 2,
            available: 1,
            waiting: 0,
            ..PoolStatus::default()
        })
    }

    fn connections_opened(&self) -> u64 {
        2
    }

    fn close(&self) {
        self.closed.fetch_add(1, Ordering::Relaxed);
    }
}

struct Quiet {
    ticks: u64,
}

impl Observer for Quiet {
    fn backends(&mut self) -> BoxFuture<'_, Option<u64>> {
        Box::pin(async { Some(3) })
    }

    fn progress(&mut self, _tick: &Tick) {
        self.ticks += 1;
    }
}

fn settings(concurrency: u32, warmup_ms: u64, duration_ms: u64) -> Settings {
    Settings {
        concurrency,
        warmup: Duration::from_millis(warmup_ms),
        duration: Duration::from_millis(duration_ms),
        seed: 1,
        request_timeout: Duration::from_secs(5),
        retry: None,
        pacing: Pacing::ClosedLoop,
        start_at: None,
        cancel: CancellationToken::new(),
    }
}

async fn run_on(settings: &Settings, services: Vec<Arc<Fake>>) -> RoundResult {
    run(settings, services, &mut Quiet { ticks: 0 }).await
}

#[tokio::test]
async fn the_window_bounds_what_is_recorded_and_warm_up_is_not() {
    let services = vec![
        Arc::new(Fake::new(Duration::from_millis(10))),
        Arc::new(Fake::new(Duration::from_millis(10))),
    ];
    let s = settings(4, 300, 1200);
    let started = Instant::now();
    let r = run_on(&s, services.clone()).await;
    let elapsed = started.elapsed();
    let calls: u64 = services
        .iter()
        .map(|f| f.calls.load(Ordering::Relaxed))
        .sum();
    // 4 workers, 10 ms a request: at most 4 × 120 measured, ~4 × 30 warm-up.
    assert!(r.recorder.requests <= 4 * 121, "{}", r.recorder.requests);
    assert!(r.recorder.requests >= 4 * 40, "{}", r.recorder.requests);
    assert!(
        calls >= r.recorder.requests + 4 * 10,
        "warm-up requests ran: {calls}"
    );
    assert!(
        r.measured >= Duration::from_millis(1200) && r.measured < Duration::from_millis(1500),
        "measured {:?}",
        r.measured
    );
    assert!(elapsed < Duration::from_millis(2500), "{elapsed:?}");
    assert_eq!(r.recorder.phases.count(Phase::Total), r.recorder.requests);
    assert_eq!(r.recorder.phases.count(Phase::Query), r.recorder.requests);
    let total = r.recorder.phases.get(Phase::Total).unwrap();
    assert!(
        total.value_at_quantile(0.5) >= 10_000,
        "total covers the request"
    );
    // Two seconds of timeline (1.2 s rounded up), adding up to the requests.
    assert_eq!(r.seconds.len(), 2);
    let per_second: u64 = r.seconds.iter().map(|s| s.requests).sum();
    assert_eq!(per_second, r.recorder.requests);
    let timeline_total: u64 = r.seconds.iter().map(|s| s.phases.count(Phase::Total)).sum();
    assert_eq!(timeline_total, r.recorder.requests);
    assert_eq!(r.seconds[0].backends, Some(3));
    assert_eq!(
        r.seconds[0].pool.map(|p| p.size),
        Some(4),
        "both shards' pools added"
    );
    assert_eq!((r.shards, r.connections_opened), (2, 4));
    assert!(services
        .iter()
        .all(|f| f.closed.load(Ordering::Relaxed) == 1));
    // The per-query histograms split the requests by the drawn query.
    let by_query: u64 = r.recorder.per_query.iter().map(|h| h.len()).sum();
    assert_eq!(by_query, r.recorder.requests);
    assert_eq!(r.recorder.per_query.len(), 2);
}

#[tokio::test]
async fn a_request_over_request_timeout_is_abandoned_and_counted() {
    let mut s = settings(2, 0, 300);
    s.request_timeout = Duration::from_millis(50);
    let started = Instant::now();
    let r = run_on(&s, vec![Arc::new(Fake::new(Duration::from_secs(10)))]).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(r.recorder.requests, 0);
    let timeouts = r.recorder.errors.counts.get("request_timeout").copied();
    // 2 workers × 300 ms / 50 ms, and the one running at the deadline.
    assert!(matches!(timeouts, Some(10..=14)), "{timeouts:?}");
}

#[tokio::test]
async fn retries_are_counted_and_their_waits_are_in_total() {
    let fake = Fake {
        failures: 2,
        ..Fake::new(Duration::from_millis(1))
    };
    let mut s = settings(1, 0, 300);
    s.retry = Some(RetryPolicy {
        on: vec!["too_many_connections".into()],
        max_attempts: 3,
        backoff: Duration::from_millis(40),
    });
    let r = run_on(&s, vec![Arc::new(fake)]).await;
    assert_eq!(r.recorder.retries, 2);
    assert!(
        r.recorder.errors.counts.is_empty(),
        "{:?}",
        r.recorder.errors
    );
    // The first request waited 40 ms × [0.5, 1.5) and then 80 ms × [0.5, 1.5).
    let total = r.recorder.phases.get(Phase::Total).unwrap();
    assert!(total.max() >= 60_000, "max total {} µs", total.max());
    assert!(total.value_at_quantile(0.5) < 20_000);
}

#[tokio::test]
async fn an_error_not_in_the_policy_is_not_retried() {
    let fake = Fake {
        failures: 1,
        ..Fake::new(Duration::from_millis(1))
    };
    let mut s = settings(1, 0, 100);
    s.retry = Some(RetryPolicy {
        on: vec!["pool_timeout".into()],
        max_attempts: 3,
        backoff: Duration::from_millis(1),
    });
    let r = run_on(&s, vec![Arc::new(fake)]).await;
    assert_eq!(r.recorder.retries, 0);
    assert_eq!(
        r.recorder.errors.counts.get("too_many_connections"),
        Some(&1)
    );
}

#[tokio::test]
async fn cancelling_stops_the_round_and_keeps_what_was_measured() {
    let s = settings(4, 0, 30_000);
    let cancel = s.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1300)).await;
        cancel.cancel();
    });
    let started = Instant::now();
    let r = run_on(&s, vec![Arc::new(Fake::new(Duration::from_millis(5)))]).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(r.recorder.requests > 100, "{}", r.recorder.requests);
    assert!(r.measured < Duration::from_secs(2), "{:?}", r.measured);
    // Only the seconds that ran, not the 30 configured.
    assert_eq!(r.seconds.len(), 2);
}

#[tokio::test]
async fn warm_up_of_the_service_is_the_startup_and_start_at_is_kept() {
    let fake = Fake {
        warm_up: Duration::from_millis(100),
        ..Fake::new(Duration::from_millis(5))
    };
    let mut s = settings(1, 100, 200);
    let start_at = SystemTime::now() + Duration::from_millis(600);
    s.start_at = Some(start_at);
    let r = run_on(&s, vec![Arc::new(fake)]).await;
    assert_eq!(r.startup, Duration::from_millis(100));
    // Warm-up began at start_at, so the measured window 100 ms after it.
    let offset = r
        .started_at
        .duration_since(start_at)
        .expect("the window starts after start_at");
    assert!(
        offset >= Duration::from_millis(95) && offset < Duration::from_millis(200),
        "{offset:?}"
    );
    assert!(r.recorder.requests > 0);
}

fn open_loop(rate: f64, process: crate::scenario::ArrivalProcess, max_in_flight: u32) -> Pacing {
    Pacing::OpenLoop(crate::scenario::Arrivals {
        rate,
        process,
        max_in_flight,
        before: None,
    })
}

#[tokio::test]
async fn open_loop_keeps_its_schedule_when_the_service_keeps_up() {
    let mut s = settings(1, 200, 2000);
    s.pacing = open_loop(500.0, crate::scenario::ArrivalProcess::Uniform, 50);
    let services = vec![
        Arc::new(Fake::new(Duration::from_millis(2))),
        Arc::new(Fake::new(Duration::from_millis(2))),
    ];
    let r = run_on(&s, services).await;
    // 500/s for 2 s: 1000 arrivals in the window, every one served.
    let n = r.recorder.requests;
    assert!((990..=1001).contains(&n), "{n} requests");
    assert_eq!(r.offered_rate, Some(500.0));
    // Ended inside the window: the warm-up's last arrivals in, the
    // window's last out, about as many (fewer by those a stall of a loaded
    // machine kept running past the deadline: 2 per 4 ms).
    let done = r.completed_in_window;
    assert!((950..=1002).contains(&done), "{done} ended in the window");
    let queue = r.recorder.phases.get(Phase::Queue).unwrap();
    assert!(
        queue.value_at_quantile(0.5) < 1000,
        "no queueing: {}",
        queue.value_at_quantile(0.5)
    );
    let service = r.recorder.phases.get(Phase::Service).unwrap();
    assert!(service.value_at_quantile(0.5) >= 2000);
    assert!(r
        .seconds
        .iter()
        .all(|s| s.queued.is_some() && s.in_flight.is_some()));
}

#[tokio::test]
async fn a_stalled_service_shows_its_wait_in_queue_and_total_not_only_in_service() {
    // Capacity 20/s (one handler, 50 ms each) against 100 arrivals/s.
    let mut s = settings(1, 0, 1000);
    s.pacing = open_loop(100.0, crate::scenario::ArrivalProcess::Uniform, 1);
    s.request_timeout = Duration::from_secs(2);
    let r = run_on(&s, vec![Arc::new(Fake::new(Duration::from_millis(50)))]).await;
    let p99 = |phase| {
        r.recorder
            .phases
            .get(phase)
            .unwrap()
            .value_at_quantile(0.99)
    };
    let service = p99(Phase::Service);
    assert!(service < 80_000, "service stays ~50 ms: {service}");
    // Arrival 100 waits for the 99 before it: ~5 s, bounded at 2 s.
    assert!(
        p99(Phase::Queue) > 10 * service,
        "queue {} vs service {service}",
        p99(Phase::Queue)
    );
    assert!(p99(Phase::Total) >= p99(Phase::Queue));
    let achieved = r.recorder.requests as f64 / r.measured.as_secs_f64();
    assert!(achieved < 30.0, "achieved {achieved}/s of 100 offered");
    // What the server delivered inside the 1 s window: its capacity, not
    // the 100 arrivals it was offered (the queue left at the end is not).
    assert!(r.completed_in_window <= 25, "{}", r.completed_in_window);
    // What waited past request_timeout is counted, not lost.
    assert!(
        r.recorder
            .errors
            .counts
            .get("request_timeout")
            .copied()
            .unwrap_or(0)
            > 30
    );
    assert!(r.seconds.iter().any(|s| s.queued.unwrap_or(0) > 10));
}

#[tokio::test]
async fn overload_serves_at_capacity_and_expired_arrivals_are_counted_not_sent() {
    // One handler of ~10 ms (under 100/s) against 300 arrivals/s: two
    // thirds of the arrivals cannot be served within request_timeout.
    let mut s = settings(1, 0, 2000);
    s.pacing = open_loop(300.0, crate::scenario::ArrivalProcess::Uniform, 1);
    s.request_timeout = Duration::from_millis(200);
    let fake = Arc::new(Fake::new(Duration::from_millis(10)));
    let r = run_on(&s, vec![fake.clone()]).await;
    let timeouts = r
        .recorder
        .errors
        .counts
        .get("request_timeout")
        .copied()
        .unwrap_or(0);
    let expired: u64 = r.seconds.iter().filter_map(|s| s.expired).sum();
    let offered: u64 = r.seconds.iter().filter_map(|s| s.offered).sum();
    // Uniform: at 1/300 s, 2/300 s, … up to (not at) the 2 s deadline.
    assert_eq!(offered, 599, "{:?}", r.offered_rate);
    assert!(expired > 250, "expired {expired} of 599");
    assert!(
        expired <= timeouts,
        "{expired} expired, {timeouts} timeouts"
    );
    // What expired was never sent: the calls are the served requests and
    // those cut in service.
    let calls = fake.calls.load(Ordering::Relaxed);
    assert!(
        calls <= r.recorder.requests + (timeouts - expired),
        "{calls} calls, {} served, {timeouts} timeouts, {expired} expired",
        r.recorder.requests
    );
    // Goodput stays at the capacity instead of collapsing.
    let achieved = r.recorder.requests as f64 / r.measured.as_secs_f64();
    assert!((40.0..=110.0).contains(&achieved), "achieved {achieved}/s");
    // Every arrival offered is served, expired, or timed out in service.
    assert_eq!(r.recorder.requests + timeouts, 599);
    // The generator's lag is recorded apart from the queue.
    let lag = r.recorder.phases.get(Phase::Lag).unwrap();
    assert_eq!(lag.len(), r.recorder.requests);
    let generator = r.generator.unwrap();
    assert_eq!(generator.arrivals, 599);
}
