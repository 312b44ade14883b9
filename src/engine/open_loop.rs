//! Open loop on one shard: arrivals are released on the seeded schedule
//! whether or not earlier ones are done, as web traffic arrives, and served
//! by the shard's handlers, as an application's request handlers would
//! serve them: at most the shard's share of `max_in_flight` at once, later
//! arrivals waiting in order.
//!
//! Built like pgbench -R's client threads rather than as a task per
//! arrival: the shard's generator (this file's `serve`) sleeps until the
//! next arrival is due, puts every arrival that is due on the shard's queue
//! (one clock read and one timer wake for all of them) and wakes an idle
//! handler; a handler is a long-lived task that takes arrivals from the
//! queue one after the other, like a closed-loop worker takes requests, and
//! bounds each by one sleep it keeps armed (`deadline.rs`). Handlers are
//! started as the queue needs them, up to the limit, and then stay. So an
//! arrival costs a queue slot, not a task, a semaphore permit and a timer
//! entry (what it cost before: docs/performance.md, "open loop (issue 36)").
//!
//! Latency runs from the intended arrival: `lag` (intended arrival to the
//! moment the generator dispatched it: poolbench's own delay, as pgbench's
//! "schedule lag"), `queue` (dispatch to start of service: waiting for a
//! free handler), `service` (what an uncorrected tool reports), and
//! `total`. An arrival whose request_timeout has passed before a handler
//! takes it is counted as `request_timeout` and not sent (`expired`), as a
//! client that gave up sends nothing. The queue holds at most
//! [`MAX_QUEUED`] arrivals (over every shard); an arrival that finds it
//! full is counted the same way at once. Arrivals stop at the deadline;
//! what is queued or running then finishes, each bounded by request_timeout
//! from its arrival.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::api::{GeneratorLag, Service, Settings};
use super::deadline::Deadline;
use super::pacer::Schedule;
use super::tally::{Tally, WorkerEnd};
use super::window::{after, Live, Window};
use super::worker::{attempt, Attempted, JITTER_STREAM};
use crate::metrics::{micros, ErrorClass, Interval, Phase, RequestError};
use crate::rng::Rng;
use crate::scenario::Arrivals;
use crate::timer::{PreciseTimer, TOO_CLOSE};

/// Arrivals that may wait at once, over every shard: 4,000,000 of 40 bytes
/// each, about 160 MB. Beyond, an arrival is counted as request_timeout and
/// not sent, as by a server whose accept queue is full.
pub const MAX_QUEUED: usize = 4_000_000;

/// One shard's part of the schedule and of `max_in_flight`.
pub struct Share {
    pub arrivals: Arrivals,
    pub shard: usize,
    pub shards: usize,
}

/// An arrival on the shard's queue.
struct Arrival {
    /// Its place in the global schedule: the seed of its request.
    index: u64,
    intended: Instant,
    dispatched: Instant,
}

/// What the shard's generator and its handlers share (one thread: no lock).
struct Desk {
    queue: RefCell<VecDeque<Arrival>>,
    /// The wakers of the handlers waiting for an arrival, the most recently
    /// idle last (woken first: its stack is still in cache).
    idle: RefCell<Vec<Waker>>,
    /// No arrival will come any more.
    closed: Cell<bool>,
}

impl Desk {
    /// The next arrival for a handler, None once the generator is done and
    /// the queue empty.
    fn take(&self, cx: &mut Context<'_>) -> Poll<Option<Arrival>> {
        if let Some(a) = self.queue.borrow_mut().pop_front() {
            return Poll::Ready(Some(a));
        }
        if self.closed.get() {
            return Poll::Ready(None);
        }
        // A handler is polled here only when woken by the generator (which
        // took its waker off the list) or the first time: never listed twice.
        self.idle.borrow_mut().push(cx.waker().clone());
        Poll::Pending
    }

    /// Wakes up to `n` idle handlers; how many it woke.
    fn wake(&self, n: usize) -> usize {
        let mut idle = self.idle.borrow_mut();
        let n = n.min(idle.len());
        let from = idle.len() - n;
        for w in idle.drain(from..) {
            w.wake();
        }
        n
    }
}

/// What a handler needs besides the desk: the same for all of a shard's.
struct Ctx<S: Service> {
    service: Arc<S>,
    tally: Rc<RefCell<Tally>>,
    live: Arc<Live>,
    seed: u64,
    request_timeout: Duration,
    retry: Option<crate::scenario::RetryPolicy>,
    /// What an expired arrival is counted as (made once).
    expired: RequestError,
}

/// Serves this shard's arrivals until the deadline (or `stop`), then waits
/// for the ones queued or running. Must run inside a `LocalSet`.
pub async fn serve<S: Service>(
    service: Arc<S>,
    share: Share,
    settings: &Settings,
    window: Window,
    live: Arc<Live>,
    tx: mpsc::UnboundedSender<Interval>,
    mut stop: oneshot::Receiver<()>,
) -> WorkerEnd {
    let tally = Rc::new(RefCell::new(Tally::new(window, live.clone(), tx)));
    let limit = in_flight_share(share.arrivals.max_in_flight, share.shard, share.shards);
    let capacity = (MAX_QUEUED / share.shards.max(1)).max(1);
    let ctx = Rc::new(Ctx {
        service,
        tally: tally.clone(),
        live: live.clone(),
        seed: settings.seed,
        request_timeout: settings.request_timeout,
        retry: settings.retry.clone(),
        expired: RequestError::new(
            ErrorClass::RequestTimeout,
            format!(
                "expired: not served within request_timeout ({}) of its arrival (waiting for a \
                 handler or a connection), not sent",
                humantime::format_duration(settings.request_timeout)
            ),
        ),
    });
    let full = RequestError::new(
        ErrorClass::RequestTimeout,
        format!("the arrival queue was full ({MAX_QUEUED} arrivals): not sent"),
    );
    let desk = Rc::new(Desk {
        queue: RefCell::new(VecDeque::new()),
        idle: RefCell::new(Vec::new()),
        closed: Cell::new(false),
    });
    let mut schedule = Schedule::new(settings.seed, &share.arrivals, share.shard, share.shards);
    let mut timer = PreciseTimer::new().ok();
    let mut handlers = JoinSet::new();
    let mut lag = GeneratorLag::default();
    let mut offered = vec![0u64; window.seconds() as usize];
    let intended_of = |offset: Duration| match window.begin.checked_add(offset) {
        // An offset past the clock's range is past any deadline.
        Some(at) if at < window.deadline => Some(at),
        _ => None,
    };
    let mut next = schedule.next();
    let mut stopped = false;
    while let Some(intended) = intended_of(next.1) {
        let wait = async {
            if intended <= Instant::now() + TOO_CLOSE {
                // Already due (the generator is behind): let the handlers
                // run before the next batch all the same.
                tokio::task::yield_now().await;
                return;
            }
            let precise = match timer.as_mut() {
                Some(t) => t.sleep_until(intended).await.is_ok(),
                None => false,
            };
            if !precise {
                // Without a timerfd, tokio's millisecond timer will do.
                tokio::time::sleep_until(intended).await;
            }
        };
        tokio::select! {
            biased;
            _ = &mut stop => {
                stopped = true;
                break;
            }
            () = wait => {}
        }
        // Every arrival due by now, dispatched at once.
        let now = Instant::now();
        // Those at the head of the queue whose time ran out while every
        // handler was busy expire now, not when a handler gets to them: the
        // timeline counts them in the second they expired, and the queue
        // holds no more than a request_timeout of arrivals.
        let purged = expire_head(&desk, &ctx, now);
        let (mut due, mut rejected) = (0usize, 0u64);
        let mut intended = Some(intended);
        while let Some(at) = intended.filter(|at| *at <= now + TOO_CLOSE) {
            if at >= window.measure_start {
                lag.count(now.saturating_duration_since(at));
                let second = (at - window.measure_start).as_secs() as usize;
                if let Some(n) = offered.get_mut(second) {
                    *n += 1;
                }
            }
            let mut queue = desk.queue.borrow_mut();
            if queue.len() < capacity {
                queue.push_back(Arrival {
                    index: next.0,
                    intended: at,
                    dispatched: now,
                });
                due += 1;
            } else {
                rejected += 1;
                tally.borrow_mut().expire(at, now, &full);
            }
            next = schedule.next();
            intended = intended_of(next.1);
        }
        live.arrived
            .fetch_add(due as u64 + rejected, Ordering::Relaxed);
        if rejected + purged > 0 {
            live.expired.fetch_add(rejected + purged, Ordering::Relaxed);
        }
        start_handlers(&desk, &ctx, &mut handlers, due, limit);
        // Reap handlers that ended (they end only once the desk closes, or
        // by panicking), so the set holds only live ones.
        while handlers.try_join_next().is_some() {}
        if intended.is_none() {
            break;
        }
    }
    live.offered
        .fetch_add(offered.iter().sum::<u64>(), Ordering::Relaxed);
    desk.closed.set(true);
    desk.wake(usize::MAX);
    if !stopped {
        tokio::select! {
            () = async { while handlers.join_next().await.is_some() {} } => {}
            _ = &mut stop => {}
        }
    }
    // Interrupted: what is still running is abandoned (its connection
    // closed); what was recorded stays.
    handlers.shutdown().await;
    let mut end = tally.borrow_mut().finish();
    end.lag = Some(lag);
    end.offered = offered;
    end
}

/// Counts the arrivals at the head of the queue whose request_timeout has
/// passed as expired, and drops them; how many.
fn expire_head<S: Service>(desk: &Desk, ctx: &Ctx<S>, now: Instant) -> u64 {
    let mut queue = desk.queue.borrow_mut();
    let mut n = 0;
    while let Some(a) = queue.front() {
        if now < after(a.intended, ctx.request_timeout) {
            break;
        }
        ctx.tally.borrow_mut().expire(a.intended, now, &ctx.expired);
        queue.pop_front();
        n += 1;
    }
    n
}

/// Wakes idle handlers for `due` new arrivals, and starts new ones (up to
/// `limit` in all) for those no idle handler will take.
fn start_handlers<S: Service>(
    desk: &Rc<Desk>,
    ctx: &Rc<Ctx<S>>,
    handlers: &mut JoinSet<()>,
    due: usize,
    limit: usize,
) {
    let woken = desk.wake(due);
    let more = (due - woken).min(limit.saturating_sub(handlers.len()));
    for _ in 0..more {
        handlers.spawn_local(handle(desk.clone(), ctx.clone()));
    }
}

/// `max_in_flight` divided between the shards as evenly as it goes, at
/// least one each.
fn in_flight_share(total: u32, shard: usize, shards: usize) -> usize {
    let (total, shards) = (total as usize, shards.max(1));
    (total / shards + usize::from(shard < total % shards)).max(1)
}

/// A handler: takes the shard's arrivals one after the other and serves
/// each as an application's request handler would, until the desk closes.
async fn handle<S: Service>(desk: Rc<Desk>, ctx: Rc<Ctx<S>>) {
    // Deadlines only move later: a handler takes arrivals in order, and each
    // is bounded from its own arrival.
    let mut deadline = Deadline::new(ctx.request_timeout);
    while let Some(arrival) = poll_fn(|cx| desk.take(cx)).await {
        let taken = Instant::now();
        if taken >= after(arrival.intended, ctx.request_timeout) {
            ctx.tally
                .borrow_mut()
                .expire(arrival.intended, taken, &ctx.expired);
            ctx.live.expired.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let request = ctx
            .service
            .draw(&mut Rng::for_stream(ctx.seed, arrival.index));
        let mut jitter = Rng::for_stream(ctx.seed ^ JITTER_STREAM, arrival.index);
        let serving = Serving::begin(&ctx.live);
        // Its request_timeout from the arrival bounds the wait (here and for
        // a connection: `Service::call_by`), and a query sent by then has a
        // request_timeout of its own: bounded at twice the limit from the
        // arrival. A retry is bounded from its own start.
        let start_by = after(arrival.intended, ctx.request_timeout);
        let attempted = attempt(
            &*ctx.service,
            &request,
            start_by,
            &mut deadline,
            ctx.retry.as_ref(),
            &mut jitter,
            // Open loop stops its requests by dropping them: no signal.
            None,
            Some(start_by),
        )
        .await;
        drop(serving);
        let Some(Attempted {
            result,
            retries,
            expired,
        }) = attempted
        else {
            continue;
        };
        if expired {
            // (Not in `live.expired`: it left the queue as started.)
            let now = Instant::now();
            ctx.tally
                .borrow_mut()
                .expire(arrival.intended, now, &ctx.expired);
            continue;
        }
        if retries > 0 {
            // A retry's deadline may lie past the next arrival's.
            deadline = Deadline::new(ctx.request_timeout);
        }
        let end = Instant::now();
        let result = result.map(|mut t| {
            t.set(
                Phase::Lag,
                micros(
                    arrival
                        .dispatched
                        .saturating_duration_since(arrival.intended),
                ),
            );
            t.set(
                Phase::Queue,
                micros(taken.saturating_duration_since(arrival.dispatched)),
            );
            t.set(Phase::Service, micros(end.saturating_duration_since(taken)));
            t
        });
        ctx.tally.borrow_mut().record(
            S::query_of(&request),
            arrival.intended,
            end,
            result,
            retries,
        );
    }
}

/// A request in service, for the in-flight gauge: counted when service
/// begins and when it ends, even when it ends by being abandoned.
struct Serving<'a>(&'a Live);

impl<'a> Serving<'a> {
    fn begin(live: &'a Live) -> Serving<'a> {
        live.started.fetch_add(1, Ordering::Relaxed);
        Serving(live)
    }
}

impl Drop for Serving<'_> {
    fn drop(&mut self) {
        self.0.finished.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_is_shared_out() {
        assert_eq!(in_flight_share(1000, 0, 2), 500);
        assert_eq!(in_flight_share(3, 0, 2), 2);
        assert_eq!(in_flight_share(3, 1, 2), 1);
        assert_eq!(in_flight_share(1, 1, 2), 1);
    }

    #[test]
    fn a_generator_is_saturated_when_more_than_one_arrival_in_a_hundred_is_late() {
        let mut lag = GeneratorLag::default();
        for _ in 0..99 {
            lag.count(Duration::from_micros(30));
        }
        lag.count(Duration::from_millis(40));
        assert!(!lag.saturated());
        assert_eq!(lag.worst_us, 40_000);
        lag.count(Duration::from_millis(11));
        assert!(lag.saturated());
        assert!(!GeneratorLag::default().saturated());
    }
}
