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
//! started as the queue needs them, and then stay. So an arrival costs a
//! queue slot, not a task, a semaphore permit and a timer entry (what it
//! cost before: docs/performance.md, "open loop (issue 36)").
//!
//! Nor does waiting for a pooled connection cost a pool waiter: a handler
//! takes an arrival only when the pool admits a request at once (see
//! [`Desk`]); the one giving a connection back takes the next arrival in
//! the same turn, and while arrivals are held back so the generator sleeps
//! without a timer, the handlers releasing what came due (at its time) at
//! their turns (docs/performance.md, "open loop, third step").
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
    /// When its service began, as an application handler's would: at its
    /// dispatch while fewer than the limit are in service, else when one
    /// ends. None while it waits for a handler.
    began: Option<Instant>,
}

/// What the shard's generator and its handlers share (one thread: no lock).
///
/// The queue holds, in order, arrivals whose service has begun but that
/// wait for a connection (the first `begun`), then arrivals waiting for a
/// handler (`in_service` is at the limit). An application's handler would
/// wait for its connection in the pool's queue; here it waits on the desk,
/// which costs nothing, while one request of the shard waits in the pool
/// for the next connection (`Service::admits`), and a handler that gives a
/// connection back takes the next arrival with it, in the same turn, as a
/// closed-loop worker takes its next request. The wait is the same (first
/// come, first served either way) and is reported as the application's
/// would be: in `acquire` (and its `wait`), not in `queue`.
struct Desk {
    queue: RefCell<VecDeque<Arrival>>,
    /// The wakers of the handlers waiting for an arrival, the most recently
    /// idle last (woken first: its stack is still in cache).
    idle: RefCell<Vec<Waker>>,
    /// No arrival will come any more.
    closed: Cell<bool>,
    /// Arrivals whose service has begun and not ended: at most `limit`.
    in_service: Cell<usize>,
    /// How many arrivals at the head of the queue have begun.
    begun: Cell<usize>,
    /// Handlers serving an arrival (from `take` to its end).
    active: Cell<usize>,
    /// `begun` as the pool was last told it (`Service::hold`).
    told: Cell<usize>,
    limit: usize,
    live: Arc<Live>,
    /// The shard's arrivals yet to come, released by whoever looks first:
    /// the generator at their time, or a handler at its next turn.
    plan: RefCell<Plan>,
    tally: Rc<RefCell<Tally>>,
    /// At most this many arrivals queue (over every shard: [`MAX_QUEUED`]).
    capacity: usize,
    /// What an arrival that finds the queue full is counted as.
    full: RequestError,
    /// The generator, when it sleeps while arrivals are held back: woken
    /// once none is, to wait for the next arrival again.
    generator: RefCell<Option<Waker>>,
}

/// A shard's arrival schedule, and what the generator counts of it.
struct Plan {
    schedule: Schedule,
    window: Window,
    /// The next arrival: its global index and intended instant (None once
    /// past the deadline).
    next: Option<(u64, Instant)>,
    lag: GeneratorLag,
    /// Arrivals meant for each second of the measured window.
    offered: Vec<u64>,
}

impl Plan {
    fn advance(&mut self) {
        let (index, offset) = self.schedule.next();
        self.next = match self.window.begin.checked_add(offset) {
            // An offset past the clock's range is past any deadline.
            Some(at) if at < self.window.deadline => Some((index, at)),
            _ => None,
        };
    }
}

impl Desk {
    /// Queues every arrival due by `by`, seen at `now`: by the generator
    /// (`by` a little past `now`: see `TOO_CLOSE`), dispatched now; or by a
    /// handler at its turn (`by` = `now`), dispatched at its time, for the
    /// desk has not changed since (the handler's turn is the first change)
    /// and so would have queued it the same way then. How many it queued.
    fn release(&self, by: Instant, now: Instant, on_time: bool) -> u64 {
        let mut plan = self.plan.borrow_mut();
        let (mut queued, mut rejected) = (0u64, 0u64);
        while let Some((index, at)) = plan.next.filter(|(_, at)| *at <= by) {
            let dispatched = if on_time { at } else { now };
            let measure_start = plan.window.measure_start;
            if at >= measure_start {
                plan.lag.count(dispatched.saturating_duration_since(at));
                let second = (at - measure_start).as_secs() as usize;
                if let Some(n) = plan.offered.get_mut(second) {
                    *n += 1;
                }
            }
            if self.queue.borrow().len() < self.capacity {
                self.push(index, at, dispatched);
                queued += 1;
            } else {
                rejected += 1;
                self.tally.borrow_mut().expire(at, now, &self.full);
            }
            plan.advance();
        }
        if queued + rejected > 0 {
            self.live
                .arrived
                .fetch_add(queued + rejected, Ordering::Relaxed);
        }
        if rejected > 0 {
            self.live.expired.fetch_add(rejected, Ordering::Relaxed);
        }
        queued
    }

    /// Queues an arrival; its service begins at once if fewer than the
    /// limit are in service (then none waits for a handler before it).
    fn push(&self, index: u64, intended: Instant, now: Instant) {
        let began = (self.in_service.get() < self.limit).then_some(now);
        if began.is_some() {
            self.begin();
        }
        self.queue.borrow_mut().push_back(Arrival {
            index,
            intended,
            dispatched: now,
            began,
        });
    }

    /// Before the desk changes at `now`: queues the arrivals due by then,
    /// at their time (`release`).
    fn catch_up(&self, now: Instant) {
        if self.plan.borrow().next.is_some_and(|(_, at)| at <= now) {
            self.release(now, now, true);
        }
    }

    fn begin(&self) {
        self.in_service.set(self.in_service.get() + 1);
        self.begun.set(self.begun.get() + 1);
        self.live.started.fetch_add(1, Ordering::Relaxed);
    }

    /// A request in service ended (served, failed, expired or abandoned)
    /// at `now`: the next arrival waiting for a handler begins.
    fn end(&self, now: Instant) {
        self.catch_up(now);
        self.in_service.set(self.in_service.get() - 1);
        self.live.finished.fetch_add(1, Ordering::Relaxed);
        let mut queue = self.queue.borrow_mut();
        while self.in_service.get() < self.limit {
            let Some(next) = queue.get_mut(self.begun.get()) else {
                break;
            };
            next.began = Some(now);
            self.begin();
        }
    }

    /// The next arrival for a handler: the head of the queue once its
    /// service has begun and `admits` says a request may go to the pool;
    /// None once the generator is done and the queue empty.
    fn take(&self, cx: &mut Context<'_>, admits: impl Fn() -> usize) -> Poll<Option<Arrival>> {
        self.catch_up(Instant::now());
        if self.begun.get() > 0 {
            let n = admits();
            if n > 0 {
                self.begun.set(self.begun.get() - 1);
                self.active.set(self.active.get() + 1);
                let arrival = self.queue.borrow_mut().pop_front();
                if self.begun.get() == 0 {
                    self.wake_generator();
                }
                if self.begun.get() > 0 && n > 1 {
                    // More may go than the handlers on their way back take.
                    self.wake(1);
                } else if self.closed.get() && self.queue.borrow().is_empty() {
                    // The last one: the idle handlers are done.
                    self.wake(usize::MAX);
                }
                return Poll::Ready(arrival);
            }
        } else if self.closed.get() && self.queue.borrow().is_empty() {
            return Poll::Ready(None);
        }
        // A handler is polled here only when woken (which took its waker
        // off the list) or the first time: never listed twice.
        self.idle.borrow_mut().push(cx.waker().clone());
        Poll::Pending
    }

    /// Whether the generator may leave the next arrivals to the handlers'
    /// turns: some are held back (the next queue behind them) and a
    /// handler is serving (it comes back, and releases them).
    fn handlers_release(&self) -> bool {
        self.begun.get() > 0 && self.active.get() > 0
    }

    /// Wakes the generator if it sleeps while `handlers_release`, once that
    /// no longer holds.
    fn wake_generator(&self) {
        if let Some(g) = self.generator.borrow_mut().take() {
            g.wake();
        }
    }

    /// Tells the pool how many arrivals wait here for a connection, when
    /// that changed.
    fn tell<S: Service>(&self, service: &S) {
        let begun = self.begun.get();
        if self.told.replace(begun) != begun {
            service.hold(begun);
        }
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

/// A request whose service has begun, taken by a handler: ended on the
/// desk when dropped (at `end`, or now when abandoned).
struct InService<'a> {
    desk: &'a Desk,
    end: Option<Instant>,
}

impl Drop for InService<'_> {
    fn drop(&mut self) {
        let desk = self.desk;
        desk.end(self.end.unwrap_or_else(Instant::now));
        desk.active.set(desk.active.get() - 1);
        if desk.active.get() == 0 {
            desk.wake_generator();
        }
    }
}

/// What a handler needs besides the desk: the same for all of a shard's.
struct Ctx<S: Service> {
    service: Arc<S>,
    tally: Rc<RefCell<Tally>>,
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
    let mut plan = Plan {
        schedule: Schedule::new(settings.seed, &share.arrivals, share.shard, share.shards),
        window,
        next: None,
        lag: GeneratorLag::default(),
        offered: vec![0u64; window.seconds() as usize],
    };
    plan.advance();
    let desk = Rc::new(Desk {
        queue: RefCell::new(VecDeque::new()),
        idle: RefCell::new(Vec::new()),
        closed: Cell::new(false),
        in_service: Cell::new(0),
        begun: Cell::new(0),
        active: Cell::new(0),
        told: Cell::new(0),
        limit,
        live: live.clone(),
        plan: RefCell::new(plan),
        tally: tally.clone(),
        capacity,
        full,
        generator: RefCell::new(None),
    });
    let mut timer = PreciseTimer::new().ok();
    let mut handlers = JoinSet::new();
    let mut stopped = false;
    loop {
        let Some((_, intended)) = desk.plan.borrow().next else {
            break;
        };
        let held = desk.handlers_release();
        // True when woken at the next arrival's time.
        let wait = async {
            if held {
                // Arrivals are held back for a connection: later ones queue
                // behind them, released by the turns of the handlers
                // serving, so this sleeps (no timer) until none is held or
                // none serves.
                poll_fn(|cx| {
                    if !desk.handlers_release() {
                        Poll::Ready(())
                    } else {
                        *desk.generator.borrow_mut() = Some(cx.waker().clone());
                        Poll::Pending
                    }
                })
                .await;
                return false;
            }
            if intended <= Instant::now() + TOO_CLOSE {
                // Already due (the generator is behind): let the handlers
                // run before the next batch all the same.
                tokio::task::yield_now().await;
                return true;
            }
            let precise = match timer.as_mut() {
                Some(t) => t.sleep_until(intended).await.is_ok(),
                None => false,
            };
            if !precise {
                // Without a timerfd, tokio's millisecond timer will do.
                tokio::time::sleep_until(intended).await;
            }
            true
        };
        tokio::select! {
            biased;
            _ = &mut stop => {
                stopped = true;
                break;
            }
            () = poll_fn(|cx| ctx.service.poll_freed(cx)) => {
                // Another thread set a connection aside for the held-back
                // arrivals: they go, and the wait goes on.
                desk.catch_up(Instant::now());
                desk.tell(&*ctx.service);
                start_handlers(&desk, &ctx, &mut handlers, limit);
                continue;
            }
            timed = wait => {
                if !timed {
                    continue;
                }
            }
        }
        // Every arrival due by now, dispatched at once.
        let now = Instant::now();
        // Those at the head of the queue whose time ran out while every
        // handler was busy expire now, not when a handler gets to them: the
        // timeline counts them in the second they expired, and the queue
        // holds no more than a request_timeout of arrivals.
        let purged = expire_head(&desk, &ctx, now);
        if purged > 0 {
            live.expired.fetch_add(purged, Ordering::Relaxed);
        }
        desk.release(now + TOO_CLOSE, now, false);
        desk.tell(&*ctx.service);
        start_handlers(&desk, &ctx, &mut handlers, limit);
        // Reap handlers that ended (they end only once the desk closes, or
        // by panicking), so the set holds only live ones.
        while handlers.try_join_next().is_some() {}
    }
    let (lag, offered) = {
        let mut plan = desk.plan.borrow_mut();
        (
            std::mem::take(&mut plan.lag),
            std::mem::take(&mut plan.offered),
        )
    };
    live.offered
        .fetch_add(offered.iter().sum::<u64>(), Ordering::Relaxed);
    desk.closed.set(true);
    desk.wake(usize::MAX);
    if !stopped {
        drain(&desk, &ctx, &mut handlers, limit, &mut stop).await;
    }
    // Interrupted: what is still running is abandoned (its connection
    // closed); what was recorded stays.
    handlers.shutdown().await;
    desk.tell(&*ctx.service);
    let mut end = tally.borrow_mut().finish();
    end.lag = Some(lag);
    end.offered = offered;
    end
}

/// Once arrivals stop: waits for the handlers to serve what is queued,
/// letting held-back arrivals go when another thread sets a connection
/// aside for them, and expiring those whose request_timeout passes while
/// held (or until `stop`).
async fn drain<S: Service>(
    desk: &Rc<Desk>,
    ctx: &Rc<Ctx<S>>,
    handlers: &mut JoinSet<()>,
    limit: usize,
    stop: &mut oneshot::Receiver<()>,
) {
    loop {
        let head_expires = desk
            .queue
            .borrow()
            .front()
            .map(|a| after(a.intended, ctx.request_timeout));
        let expiry = async {
            match head_expires {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = &mut *stop => return,
            joined = handlers.join_next() => {
                if joined.is_none() {
                    return;
                }
            }
            () = poll_fn(|cx| ctx.service.poll_freed(cx)) => {}
            () = expiry => {
                let unstarted = expire_head(desk, ctx, Instant::now());
                desk.live.expired.fetch_add(unstarted, Ordering::Relaxed);
                if desk.queue.borrow().is_empty() {
                    // The idle handlers are done.
                    desk.wake(usize::MAX);
                }
            }
        }
        start_handlers(desk, ctx, handlers, limit);
    }
}

/// Counts the arrivals at the head of the queue whose request_timeout has
/// passed as expired, and drops them; how many of them had not begun (those
/// that had end their service here).
fn expire_head<S: Service>(desk: &Desk, ctx: &Ctx<S>, now: Instant) -> u64 {
    let mut unstarted = 0;
    loop {
        let mut queue = desk.queue.borrow_mut();
        let Some(a) = queue.front() else { break };
        if now < after(a.intended, ctx.request_timeout) {
            break;
        }
        ctx.tally.borrow_mut().expire(a.intended, now, &ctx.expired);
        let began = a.began.is_some();
        queue.pop_front();
        drop(queue);
        if began {
            desk.begun.set(desk.begun.get() - 1);
            desk.end(now);
        } else {
            unstarted += 1;
        }
    }
    unstarted
}

/// Wakes idle handlers for the arrivals that may go now (begun, and no
/// more than the pool admits), and starts new ones (up to `limit` in all)
/// for those no idle handler will take.
fn start_handlers<S: Service>(
    desk: &Rc<Desk>,
    ctx: &Rc<Ctx<S>>,
    handlers: &mut JoinSet<()>,
    limit: usize,
) {
    let begun = desk.begun.get();
    if begun == 0 {
        return;
    }
    let ready = begun.min(ctx.service.admits());
    let woken = desk.wake(ready);
    let more = (ready - woken).min(limit.saturating_sub(handlers.len()));
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
    while let Some(arrival) = poll_fn(|cx| desk.take(cx, || ctx.service.admits())).await {
        desk.tell(&*ctx.service);
        let mut in_service = InService {
            desk: &desk,
            end: None,
        };
        let taken = Instant::now();
        if taken >= after(arrival.intended, ctx.request_timeout) {
            ctx.tally
                .borrow_mut()
                .expire(arrival.intended, taken, &ctx.expired);
            in_service.end = Some(taken);
            continue;
        }
        let request = ctx
            .service
            .draw(&mut Rng::for_stream(ctx.seed, arrival.index));
        let mut jitter = Rng::for_stream(ctx.seed ^ JITTER_STREAM, arrival.index);
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
        let end = Instant::now();
        in_service.end = Some(end);
        let Some(Attempted {
            result,
            retries,
            expired,
        }) = attempted
        else {
            continue;
        };
        if expired {
            ctx.tally
                .borrow_mut()
                .expire(arrival.intended, end, &ctx.expired);
            continue;
        }
        if retries > 0 {
            // A retry's deadline may lie past the next arrival's.
            deadline = Deadline::new(ctx.request_timeout);
        }
        let began = arrival.began.unwrap_or(taken);
        // Held on the desk for a connection: the application's handler
        // would have waited for it in the pool.
        let held = micros(taken.saturating_duration_since(began));
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
                micros(began.saturating_duration_since(arrival.dispatched)),
            );
            for phase in [Phase::Acquire, Phase::Wait] {
                if let Some(us) = t.get(phase) {
                    t.set(phase, us + held);
                }
            }
            t.set(Phase::Service, micros(end.saturating_duration_since(began)));
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
