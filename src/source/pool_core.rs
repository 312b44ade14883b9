//! The pool behind `kind = "pool"`: `max_size` connections shared by every
//! worker thread, each connection kept on the thread that opened it.
//!
//! A connection's socket is registered with the runtime of the thread that
//! opened it: that runtime's event loop sees its answers. Handed to a
//! worker of another thread, every query crosses threads (a wake-up
//! through the other runtime's eventfd), which made pooled SELECT 1 much
//! slower with deadpool's single idle queue (docs/pools.md, "What a pool
//! is"). Here each thread has its own idle list:
//! a request takes an idle connection of its own thread first, another
//! thread's only when its own has none, and opens one only when no
//! connection is idle anywhere and the pool is below `max_size` — so the
//! pool is still one pool of `max_size`, as deadpool's is: a request waits
//! only when every connection is in use. A connection given back goes to a
//! waiter of its own thread when that thread has waiters and no other
//! thread has more than twice as many; otherwise waiters are served in
//! arrival order whatever their thread (tokio's fair semaphore). Which
//! waiter gets it does not change how many wait (every connection is busy
//! whenever one does), nor so the mean wait; it keeps the queries on the
//! thread whose runtime sees their answers. Served strictly in arrival
//! order, each waiter took a connection of the other thread as often as
//! not, and every query of it then crossed threads: with open loop's many
//! waiters (more handlers than connections), that made the pool several
//! times slower than in closed loop (docs/performance.md, "open loop
//! (issue 36)" and "open loop, second step").
//!
//! An open loop holds back the requests that would only wait (see
//! `Pool::admits`): they count in their thread's demand like waiters
//! (`Pool::hold`), a connection given back to them is set aside for their
//! thread (taken by its next request) and its generator woken
//! (`Pool::poll_freed`), so that no thread's held requests starve.
//!
//! The rest follows deadpool 0.13's `managed::Pool`, whose `Manager` trait
//! (create, recycle, detach), `Metrics` and `PoolError` it uses: a permit
//! per connection in use, `wait_timeout` on the permit, `create_timeout`
//! on opening, a connection whose recycle check fails dropped and another
//! tried, cancellation at any await giving back what it held.
//!
//! A request's checkout and give-back, when a connection is free, are a
//! few atomic operations and an idle list's lock: [`Pool::try_get`] hands
//! out an idle connection without a future (no rule, no recycling that
//! needs I/O), and permits given back while no request waits go to an
//! atomic count (`Inner::release`) rather than to tokio's semaphore, whose
//! `add_permits` takes its waiters' lock every time. A plain count, not a
//! crate: a lock-free queue would not keep the idle lists' order (oldest
//! first, reaped from the middle), and the count is all the fast path needs
//! (docs/performance.md, "the pooled request's fixed costs").
//!
//! Lifecycle rules ([`Rules`], all off by default, none of them on the path
//! of a pool that has them off but one `bool`): a connection past its
//! lifetime is closed when it is checked out or given back, one idle too
//! long when it is checked out; a connection taken from an idle list is
//! checked first when the rule says so ([`Checks`]); and a background task
//! ([`Pool::upkeep`]) closes idle connections past their lifetime or idle
//! timeout, keeps `min_idle` open and checks those idle past `keepalive`.
//! Every connection closed is counted by cause ([`ClosedBy`]).

use std::cell::Cell;
use std::collections::VecDeque;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use deadpool::managed::{Manager, Metrics, PoolError, TimeoutType};
use futures_util::task::AtomicWaker;
use tokio::sync::{Semaphore, TryAcquireError};

use crate::metrics::{micros, ClosedBy};
use crate::rng::Rng;

/// The checkout check and the keepalive: one round trip on a connection
/// taken from an idle list; false when it failed (the connection is then
/// closed).
pub trait Checks: Manager {
    fn check(&self, obj: &mut Self::Type) -> impl Future<Output = bool> + Send;

    /// Whether recycling a connection needs no I/O, only
    /// [`Checks::usable`]: then [`Pool::try_get`] hands out an idle
    /// connection without a future.
    fn recycles_at_once(&self) -> bool {
        false
    }

    /// Recycling without I/O (when [`Checks::recycles_at_once`]): whether
    /// the connection may be handed out.
    fn usable(&self, _obj: &mut Self::Type) -> bool {
        false
    }
}

/// When a connection taken from an idle list is checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CheckRule {
    #[default]
    Never,
    Always,
    IfIdleOver(Duration),
}

/// A pool's lifecycle rules; the default has every one off.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    pub max_lifetime: Option<Duration>,
    /// Each connection's lifetime is `max_lifetime × (1 − jitter × u)`.
    pub lifetime_jitter: f64,
    pub idle_timeout: Option<Duration>,
    pub min_idle: usize,
    pub check: CheckRule,
    pub keepalive: Option<Duration>,
    /// Seeds the lifetimes' spread.
    pub seed: u64,
}

impl Rules {
    /// Whether a connection checked out or given back is looked at.
    fn active(&self) -> bool {
        self.max_lifetime.is_some() || self.idle_timeout.is_some() || self.check != CheckRule::Never
    }

    /// Whether each connection given back notes when (idle timeout, the
    /// check's bound, keepalive read it).
    fn stamps_idle(&self) -> bool {
        self.idle_timeout.is_some()
            || matches!(self.check, CheckRule::IfIdleOver(_))
            || self.keepalive.is_some()
    }

    /// Whether the background task has anything to do.
    pub fn needs_upkeep(&self) -> bool {
        self.min_idle > 0
            || self.idle_timeout.is_some()
            || self.keepalive.is_some()
            || self.max_lifetime.is_some()
    }

    /// How often the background task looks: a quarter of its shortest
    /// setting, between 10 ms and 100 ms.
    fn tick(&self) -> Duration {
        [self.max_lifetime, self.idle_timeout, self.keepalive]
            .into_iter()
            .flatten()
            .map(|d| d / 4)
            .fold(Duration::from_millis(100), Duration::min)
            .max(Duration::from_millis(10))
    }
}

/// What getting a connection took, by part (`acquire` is their sum and the
/// pool's own work).
#[derive(Debug, Clone, Copy, Default)]
pub struct Took {
    /// Waiting for a permit (0 when one was free: no clock read then).
    pub wait_us: u64,
    /// Opening a connection for this request.
    pub open_us: Option<u64>,
    /// The checkout checks (more than one when a check failed).
    pub check_us: Option<u64>,
}

#[derive(Clone, Copy)]
enum Cause {
    Lifetime,
    Idle,
    Check,
    Error,
}

/// A pool of at most `max_size` connections, shared by `homes` threads.
pub struct Pool<M: Manager> {
    inner: Arc<Inner<M>>,
}

struct Inner<M: Manager> {
    manager: M,
    max_size: usize,
    /// One permit per connection that may be handed out: `max_size` of
    /// them, taken by `get` and given back when the object is. Those given
    /// back while no request waits are kept in `free` instead
    /// ([`Inner::release`]).
    permits: Semaphore,
    /// Permits free outside `permits`: taken and given back with one atomic
    /// operation each, where the semaphore takes its waiters' lock to give
    /// one back even when no one waits (the pool's give-back was a tenth
    /// of a pooled request's own instructions). Only while a request waits
    /// do permits go through the semaphore, which queues the waiters.
    free: AtomicUsize,
    /// Idle connections by the thread whose runtime runs their I/O, oldest
    /// first.
    idle: Vec<Padded<IdleList<M::Type>>>,
    /// Connections open or being opened.
    size: AtomicUsize,
    /// Requests waiting for a permit.
    waiting: AtomicUsize,
    /// By thread: its requests waiting for a permit, and the permits of
    /// connections given back to them in particular (see `give_back`).
    home_waiting: Vec<Padded<AtomicUsize>>,
    /// By thread: requests its open loop holds back for a connection
    /// (`Pool::hold`), counted beside its waiting ones wherever the pool
    /// weighs a thread's demand.
    home_held: Vec<Padded<AtomicUsize>>,
    /// By thread: its open loop's generator, woken when a connection is
    /// set aside for its held-back requests from another thread
    /// (`Pool::poll_freed`), and whether one was since it last looked.
    freed: Vec<Padded<(AtomicWaker, AtomicBool)>>,
    handoff: Vec<Padded<Semaphore>>,
    wait_timeout: Option<Duration>,
    create_timeout: Option<Duration>,
    rules: Rules,
    /// `rules.active()`, read once per checkout and return.
    active: bool,
    stamps_idle: bool,
    /// Draws each connection's lifetime spread.
    spread: Mutex<Rng>,
    /// Connections closed, by [`Cause`].
    closed: [AtomicU64; 4],
}

type IdleList<T> = Mutex<VecDeque<Slot<T>>>;

/// A connection given back goes to its own thread's waiters until another
/// thread has more than this many times as many waiting (`keeps_home`).
/// At 1 (the oldest waiter wherever it was, whenever another thread had
/// more, which under open loop's many waiters is often) each such request's
/// queries crossed threads: at 35,000 arrivals/s the pool wait's p50 was
/// 6.6 ms against 0 when connections stayed home (docs/performance.md,
/// "open loop, second step").
const HOME_BIAS: usize = 2;

struct Slot<T> {
    obj: T,
    metrics: Metrics,
    home: usize,
    /// When its lifetime is over (with a lifetime rule).
    expires: Option<Instant>,
    /// When it was last given back (with a rule that reads it).
    idle_since: Option<Instant>,
}

impl<T> Slot<T> {
    fn idle_for(&self, now: Instant) -> Duration {
        self.idle_since
            .map_or(Duration::ZERO, |at| now.saturating_duration_since(at))
    }

    fn expired(&self, now: Instant) -> bool {
        self.expires.is_some_and(|at| now >= at)
    }
}

/// The pool's occupancy, as deadpool's `Status` gives it.
#[derive(Debug, Clone, Copy)]
pub struct Status {
    pub size: usize,
    pub available: usize,
    pub waiting: usize,
    /// Connections closed so far, by cause.
    pub closed: ClosedBy,
}

impl<M: Checks> Pool<M> {
    pub fn new(
        manager: M,
        max_size: usize,
        homes: usize,
        wait_timeout: Option<Duration>,
        create_timeout: Option<Duration>,
        rules: Rules,
    ) -> Pool<M> {
        Pool {
            inner: Arc::new(Inner {
                manager,
                max_size,
                permits: Semaphore::new(0),
                free: AtomicUsize::new(max_size),
                idle: (0..homes.max(1))
                    .map(|_| Padded(Mutex::new(VecDeque::new())))
                    .collect(),
                size: AtomicUsize::new(0),
                waiting: AtomicUsize::new(0),
                home_waiting: (0..homes.max(1))
                    .map(|_| Padded(AtomicUsize::new(0)))
                    .collect(),
                home_held: (0..homes.max(1))
                    .map(|_| Padded(AtomicUsize::new(0)))
                    .collect(),
                freed: (0..homes.max(1))
                    .map(|_| Padded((AtomicWaker::new(), AtomicBool::new(false))))
                    .collect(),
                handoff: (0..homes.max(1))
                    .map(|_| Padded(Semaphore::new(0)))
                    .collect(),
                wait_timeout,
                create_timeout,
                active: rules.active(),
                stamps_idle: rules.stamps_idle(),
                spread: Mutex::new(Rng::new(rules.seed)),
                rules,
                closed: Default::default(),
            }),
        }
    }

    /// A connection for a request running on thread `home`: one of that
    /// thread's idle connections, else another thread's, else a new one
    /// (opened here, so its home is `home`), else the next one given back.
    /// An idle one past its lifetime or idle timeout is closed on the way,
    /// one the check rule names is checked (and closed if that fails).
    pub async fn get(&self, home: usize) -> Result<(Object<M>, Took), PoolError<M::Error>> {
        let inner = &self.inner;
        let home = home % inner.idle.len();
        let (permit, wait_us) = self.permit(home).await?;
        let mut took = Took {
            wait_us,
            ..Took::default()
        };
        loop {
            if let Some(slot) = inner.pop_idle(home) {
                let mut live = Live {
                    inner,
                    slot: Some(slot),
                };
                let mut check = false;
                if inner.active {
                    if let Some(s) = live.slot.as_ref() {
                        let now = Instant::now();
                        let idle = s.idle_for(now);
                        if s.expired(now) {
                            live.close(Cause::Lifetime);
                            continue;
                        }
                        if inner.rules.idle_timeout.is_some_and(|limit| idle > limit) {
                            live.close(Cause::Idle);
                            continue;
                        }
                        check = match inner.rules.check {
                            CheckRule::Never => false,
                            CheckRule::Always => true,
                            CheckRule::IfIdleOver(bound) => idle > bound,
                        };
                    }
                }
                let ok = match live.slot.as_mut() {
                    Some(s) => inner.manager.recycle(&mut s.obj, &s.metrics).await.is_ok(),
                    None => false,
                };
                if !ok {
                    // Closed (counted as an error); try the next one.
                    live.close(Cause::Error);
                    continue;
                }
                if check {
                    let started = Instant::now();
                    // Boxed, as opening is: a pool that does not check
                    // carries no check in every request's future.
                    let passed = match live.slot.as_mut() {
                        Some(s) => Box::pin(inner.manager.check(&mut s.obj)).await,
                        None => false,
                    };
                    let us = micros(started.elapsed());
                    took.check_us = Some(took.check_us.unwrap_or(0) + us);
                    if !passed {
                        live.close(Cause::Check);
                        continue;
                    }
                }
                if let Some(mut slot) = live.slot.take() {
                    permit.keep();
                    // (Not `recycled`: no one reads it, and a clock read per
                    // request is not free.)
                    slot.metrics.recycle_count += 1;
                    return Ok((Object::new(inner.clone(), slot), took));
                }
                continue;
            }
            if inner.size.fetch_add(1, Ordering::AcqRel) >= inner.max_size {
                // Every connection is open, one is on its way back to an
                // idle list (its permit is what this request holds): look
                // again once it is there.
                inner.size.fetch_sub(1, Ordering::AcqRel);
                tokio::task::yield_now().await;
                continue;
            }
            let opening = Opening(inner);
            let started = Instant::now();
            let obj = inner.create().await?;
            took.open_us = Some(micros(started.elapsed()));
            std::mem::forget(opening);
            permit.keep();
            let slot = inner.slot(obj, home);
            return Ok((Object::new(inner.clone(), slot), took));
        }
    }

    /// An idle connection at once, without waiting or any I/O, as `get`
    /// would give it: a free permit and an idle connection (of thread
    /// `home` first), recycled without I/O. None when there is none, or
    /// when the pool's lifecycle rules or its recycling need more (then
    /// `get`, which finds the same connection): a request's checkout is
    /// then no future (set up, boxed and polled) at all.
    pub fn try_get(&self, home: usize) -> Option<Object<M>> {
        let inner = &self.inner;
        if inner.active || !inner.manager.recycles_at_once() {
            return None;
        }
        if inner.take().is_err() {
            return None;
        }
        let permit = Permit { inner, kept: false };
        // No idle one: the permit goes back (dropped), and `get` opens one.
        let mut slot = inner.pop_idle(home % inner.idle.len())?;
        if !inner.manager.usable(&mut slot.obj) {
            // As `get` does: closed (counted as an error); `get` then
            // tries the next one.
            inner.close(slot, Cause::Error);
            return None;
        }
        permit.keep();
        slot.metrics.recycle_count += 1;
        Some(Object::new(inner.clone(), slot))
    }

    /// Keeps the pool by its rules until it is closed: every tick, closes
    /// idle connections past their lifetime or idle timeout (down to
    /// `min_idle`), checks those idle past `keepalive`, and opens
    /// connections while fewer than `min_idle` are idle. Runs on the
    /// thread whose runtime polls it (its connections' home is `home`).
    pub fn upkeep(&self, home: usize) -> impl Future<Output = ()> + Send + 'static
    where
        M: Send + Sync + 'static,
        M::Type: Send,
        M::Error: Send,
    {
        let inner = self.inner.clone();
        async move {
            if !inner.rules.needs_upkeep() {
                return;
            }
            let home = home % inner.idle.len();
            let mut tick = tokio::time::interval(inner.rules.tick());
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if inner.permits.is_closed() {
                    return;
                }
                inner.reap(Instant::now());
                inner.keep_alive().await;
                inner.refill(home).await;
            }
        }
    }

    /// Waits for a permit (at most `wait_timeout`; zero means do not wait):
    /// one of the pool's, or one given back to thread `home`'s waiters; with
    /// the microseconds it waited.
    async fn permit(&self, home: usize) -> Result<(Permit<'_, M>, u64), PoolError<M::Error>> {
        let inner = &self.inner;
        // A connection free: no wait, so no timer to set up (nearly every
        // request of a pool as large as its load), nor a clock to read.
        match inner.take() {
            Ok(()) => return Ok((Permit { inner, kept: false }, 0)),
            Err(TryAcquireError::Closed) => return Err(PoolError::Closed),
            Err(TryAcquireError::NoPermits) => {}
        }
        if let Ok(permit) = inner.handoff[home].try_acquire() {
            permit.forget();
            return Ok((Permit { inner, kept: false }, 0));
        }
        let started = Instant::now();
        inner.waiting.fetch_add(1, Ordering::SeqCst);
        inner.home_waiting[home].fetch_add(1, Ordering::SeqCst);
        let waited = Waiting { inner, home };
        // Counted among the waiting from here, so every permit given back
        // now goes to the semaphore; one given back to `free` just before
        // is taken here (see `Inner::release`).
        if inner.take_free() {
            drop(waited);
            return Ok((Permit { inner, kept: false }, micros(started.elapsed())));
        }
        let either = async {
            tokio::select! {
                biased;
                p = inner.handoff[home].acquire() => p.map(|p| p.forget()),
                p = inner.permits.acquire() => p.map(|p| p.forget()),
            }
        };
        let acquired = match inner.wait_timeout {
            Some(limit) if limit.is_zero() => inner.take().map_err(|e| match e {
                TryAcquireError::Closed => PoolError::Closed,
                TryAcquireError::NoPermits => PoolError::Timeout(TimeoutType::Wait),
            }),
            Some(limit) => match tokio::time::timeout(limit, either).await {
                Ok(r) => r.map_err(|_| PoolError::Closed),
                Err(_) => Err(PoolError::Timeout(TimeoutType::Wait)),
            },
            None => either.await.map_err(|_| PoolError::Closed),
        };
        drop(waited);
        // The permit goes back through `Permit` (or the object) from here.
        acquired?;
        if inner.permits.is_closed() {
            // A handoff permit outlives the pool's close: give it up.
            inner.permits.add_permits(1);
            return Err(PoolError::Closed);
        }
        Ok((Permit { inner, kept: false }, micros(started.elapsed())))
    }

    /// The occupancy as the timeline defines it: `available`, idle
    /// connections no request has been given; `waiting`, requests waiting
    /// for a connection. A connection given back goes to the next waiter at
    /// once (its permit), but stays idle, and the waiter counted, until the
    /// waiter's task runs: that connection is the waiter's, and counted in
    /// neither. So a pool with a connection available has no request
    /// waiting, and `available` never exceeds the free permits.
    pub fn status(&self) -> Status {
        let inner = &self.inner;
        let idle: usize = inner.idle.iter().map(|q| lock(q).len()).sum();
        let held: usize = inner
            .home_held
            .iter()
            .map(|h| h.load(Ordering::Relaxed))
            .sum();
        let waiting = inner.waiting.load(Ordering::Relaxed) + held;
        let free = inner.free_permits();
        Status {
            size: inner.size.load(Ordering::Relaxed),
            available: idle.min(free),
            // With a permit free no one waits for one (a permit given back
            // goes to the first waiter); without, each idle connection is a
            // woken waiter's.
            waiting: if free > 0 {
                0
            } else {
                waiting.saturating_sub(idle)
            },
            closed: inner.closed_by(),
        }
    }

    /// How many requests of thread `home` started now would each take a
    /// connection at once: the pool's free permits and those set aside for
    /// the thread. Open loop starts no more than this (see
    /// `engine::open_loop`): a request that would only wait is held back
    /// at no cost instead of queued here, and goes when a connection is
    /// given back (by the handler giving it back, or after
    /// [`Pool::poll_freed`]).
    pub fn admits(&self, home: usize) -> usize {
        let inner = &self.inner;
        let home = home % inner.idle.len();
        inner.free_permits() + inner.handoff[home].available_permits()
    }

    /// Thread `home`'s open loop holds `n` requests back for a connection
    /// (see [`Pool::admits`]): they count in its demand when a connection
    /// given back chooses a thread, and among the waiting in `status`. Once
    /// it holds none, what was set aside for it goes to the others.
    pub fn hold(&self, home: usize, n: usize) {
        let inner = &self.inner;
        let home = home % inner.idle.len();
        OPEN_LOOP_HOME.with(|h| h.set(Some(home)));
        inner.home_held[home].store(n, Ordering::Relaxed);
        if n == 0 && inner.home_waiting[home].load(Ordering::SeqCst) == 0 {
            while let Ok(p) = inner.handoff[home].try_acquire() {
                p.forget();
                inner.hand_on(home);
            }
        }
    }

    /// Ready once a connection was set aside for thread `home`'s held-back
    /// requests by another thread since the last time it was.
    pub fn poll_freed(&self, home: usize, cx: &mut Context<'_>) -> Poll<()> {
        let inner = &self.inner;
        let (waker, flag) = &*inner.freed[home % inner.idle.len()];
        waker.register(cx.waker());
        if flag.swap(false, Ordering::AcqRel) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Closes the pool: waiting and later requests fail, idle connections
    /// close now and the ones in use when they are given back.
    pub fn close(&self) {
        let inner = &self.inner;
        inner.permits.close();
        for queue in &inner.idle {
            let drained: Vec<_> = lock(queue).drain(..).collect();
            inner.size.fetch_sub(drained.len(), Ordering::AcqRel);
            drop(drained);
        }
    }
}

impl<M: Manager> Inner<M> {
    /// Takes a free permit without waiting: from `free`, else from the
    /// semaphore (given back there while requests waited).
    fn take(&self) -> Result<(), TryAcquireError> {
        if self.permits.is_closed() {
            return Err(TryAcquireError::Closed);
        }
        if self.take_free() {
            return Ok(());
        }
        self.permits.try_acquire().map(|p| p.forget())
    }

    fn take_free(&self) -> bool {
        let mut n = self.free.load(Ordering::Relaxed);
        while n > 0 {
            match self
                .free
                .compare_exchange_weak(n, n - 1, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => n = now,
            }
        }
        false
    }

    /// Gives a permit back: to `free` while no request waits, else to the
    /// semaphore that queues them. A request that starts waiting counts
    /// itself first and then looks at `free`; this adds to `free` first
    /// and then looks at the count (both sequentially consistent): so
    /// either that request finds the permit in `free`, or this sees it
    /// waiting and moves what is in `free` to the semaphore. No permit
    /// stays in `free` while a request waits for one.
    fn release(&self) {
        self.free.fetch_add(1, Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) > 0 {
            let n = self.free.swap(0, Ordering::SeqCst);
            if n > 0 {
                self.permits.add_permits(n);
            }
        }
    }

    /// Permits no request holds: in `free` and in the semaphore.
    fn free_permits(&self) -> usize {
        self.free.load(Ordering::Relaxed) + self.permits.available_permits()
    }

    /// The oldest idle connection of thread `home`, else of the threads
    /// after it in turn.
    fn pop_idle(&self, home: usize) -> Option<Slot<M::Type>> {
        let n = self.idle.len();
        (0..n).find_map(|i| lock(&self.idle[(home + i) % n]).pop_front())
    }

    /// A connection given back: idle on its thread, then its permit
    /// released (in that order, so whoever the permit wakes finds it): to
    /// its thread's waiters when it has some and no other thread has more
    /// (so its queries stay on the thread whose runtime runs its I/O, and no
    /// thread's waiters starve), else to the oldest waiter of any thread; or
    /// closed, its lifetime over.
    fn give_back(&self, mut slot: Slot<M::Type>) {
        if self.permits.is_closed() {
            self.size.fetch_sub(1, Ordering::AcqRel);
            drop(slot);
            return;
        }
        if self.active || self.stamps_idle {
            let now = Instant::now();
            if slot.expired(now) {
                self.close(slot, Cause::Lifetime);
                self.release();
                return;
            }
            if self.stamps_idle {
                slot.idle_since = Some(now);
            }
        }
        let home = slot.home;
        lock(&self.idle[home]).push_back(slot);
        self.hand_on(home);
    }

    /// Releases the permit of a connection of thread `home` given back:
    /// to that thread's waiting or held-back requests when it has some and
    /// no other thread has many more (`keeps_home`), else to the other
    /// thread holding the most requests back, else to the oldest waiter of
    /// any thread. A permit set aside for held-back requests (no waiter
    /// takes it) is taken by the next request of that thread (`admits`);
    /// when that thread is not this one, its generator is woken.
    fn hand_on(&self, home: usize) {
        let mine = self.demand(home);
        let to = if mine > 0 && self.keeps_home(mine) {
            home
        } else {
            match (0..self.home_held.len())
                .filter(|&h| h != home && self.home_held[h].load(Ordering::Relaxed) > 0)
                .max_by_key(|&h| self.demand(h))
            {
                Some(h) => h,
                None => {
                    self.release();
                    return;
                }
            }
        };
        self.handoff[to].add_permits(1);
        if self.home_held[to].load(Ordering::Relaxed) > 0 {
            if OPEN_LOOP_HOME.with(Cell::get) != Some(to) {
                let (waker, flag) = &*self.freed[to];
                flag.store(true, Ordering::Release);
                waker.wake();
            }
        } else {
            // Its waiters may all have given up meanwhile.
            self.reclaim(to);
        }
    }

    /// Whether a connection given back stays with its own thread's `mine`
    /// waiters: unless another thread's waiters outnumber them more than
    /// [`HOME_BIAS`] to one (so that no thread's waiters starve), or the
    /// pool is smaller than the number of threads (some thread then has no
    /// connection of its own, and is served in arrival order).
    fn keeps_home(&self, mine: usize) -> bool {
        if self.max_size < self.idle.len() {
            let most = (0..self.home_waiting.len())
                .map(|h| self.demand(h))
                .max()
                .unwrap_or(0);
            return mine >= most;
        }
        (0..self.home_waiting.len()).all(|h| self.demand(h) <= mine * HOME_BIAS)
    }

    /// Thread `home`'s requests waiting for a connection: in the pool's
    /// queue, or held back by its open loop.
    fn demand(&self, home: usize) -> usize {
        self.home_waiting[home].load(Ordering::SeqCst)
            + self.home_held[home].load(Ordering::Relaxed)
    }

    /// Moves the permits handed to thread `home`'s waiters back to the pool
    /// once it has none left, so that no permit waits for nobody.
    fn reclaim(&self, home: usize) {
        if self.demand(home) > 0 {
            return;
        }
        let n = self.handoff[home].available_permits();
        if n == 0 {
            return;
        }
        if let Ok(p) = self.handoff[home].try_acquire_many(n as u32) {
            p.forget();
            self.permits.add_permits(n);
        }
    }

    /// Opens a connection (within `create_timeout`).
    async fn create(&self) -> Result<M::Type, PoolError<M::Error>> {
        // Boxed: opening a connection is a large state machine (TCP, TLS,
        // authentication) that nearly no request runs; inline, it would
        // make every request's future as large, to be set up and moved
        // each time.
        let create = Box::pin(self.manager.create());
        let created = match self.create_timeout {
            Some(limit) => tokio::time::timeout(limit, create)
                .await
                .map_err(|_| PoolError::Timeout(TimeoutType::Create))?,
            None => create.await,
        };
        created.map_err(PoolError::Backend)
    }

    /// A connection just opened on thread `home`, with its lifetime drawn.
    fn slot(&self, obj: M::Type, home: usize) -> Slot<M::Type> {
        let expires = self.rules.max_lifetime.map(|lifetime| {
            let spread = if self.rules.lifetime_jitter > 0.0 {
                let u = lock(&self.spread).next_f64();
                lifetime.mul_f64(self.rules.lifetime_jitter * u)
            } else {
                Duration::ZERO
            };
            Instant::now() + lifetime.saturating_sub(spread)
        });
        Slot {
            obj,
            metrics: Metrics::default(),
            home,
            expires,
            idle_since: None,
        }
    }

    /// Closes a connection the pool counted, for `cause`.
    fn close(&self, slot: Slot<M::Type>, cause: Cause) {
        self.size.fetch_sub(1, Ordering::AcqRel);
        self.count(cause);
        drop(slot);
    }

    fn count(&self, cause: Cause) {
        self.closed[cause as usize].fetch_add(1, Ordering::Relaxed);
    }

    fn closed_by(&self) -> ClosedBy {
        let n = |c: Cause| self.closed[c as usize].load(Ordering::Relaxed);
        ClosedBy {
            lifetime: n(Cause::Lifetime),
            idle: n(Cause::Idle),
            check: n(Cause::Check),
            error: n(Cause::Error),
        }
    }

    fn available(&self) -> usize {
        self.idle.iter().map(|q| lock(q).len()).sum()
    }

    /// Closes the idle connections past their lifetime, then those idle
    /// past the idle timeout, oldest first, while more than `min_idle`
    /// are idle.
    fn reap(&self, now: Instant) {
        let mut idle = self.available();
        for queue in &self.idle {
            let mut closing = Vec::new();
            {
                let mut q = lock(queue);
                let mut i = 0;
                while i < q.len() {
                    let s = &q[i];
                    let cause = if s.expired(now) {
                        Some(Cause::Lifetime)
                    } else if idle > self.rules.min_idle
                        && self.rules.idle_timeout.is_some_and(|t| s.idle_for(now) > t)
                    {
                        Some(Cause::Idle)
                    } else {
                        None
                    };
                    match cause.and_then(|c| q.remove(i).map(|s| (s, c))) {
                        Some(gone) => {
                            idle -= 1;
                            closing.push(gone);
                        }
                        None => i += 1,
                    }
                }
            }
            for (slot, cause) in closing {
                self.close(slot, cause);
            }
        }
    }

    /// Checks each connection idle past `keepalive`: back to its idle list
    /// if it passes, closed if not.
    async fn keep_alive(&self)
    where
        M: Checks,
    {
        let Some(keepalive) = self.rules.keepalive else {
            return;
        };
        for queue in &self.idle {
            let now = Instant::now();
            let due: Vec<_> = {
                let mut q = lock(queue);
                let (due, kept): (Vec<_>, Vec<_>) =
                    q.drain(..).partition(|s| s.idle_for(now) > keepalive);
                q.extend(kept);
                due
            };
            for mut slot in due {
                if self.manager.check(&mut slot.obj).await {
                    slot.idle_since = Some(Instant::now());
                    lock(&self.idle[slot.home]).push_back(slot);
                } else {
                    self.close(slot, Cause::Check);
                }
            }
        }
    }

    /// Opens connections while fewer than `min_idle` are idle and the pool
    /// is below its size.
    async fn refill(&self, home: usize) {
        while self.available() < self.rules.min_idle && !self.permits.is_closed() {
            if self.size.fetch_add(1, Ordering::AcqRel) >= self.max_size {
                self.size.fetch_sub(1, Ordering::AcqRel);
                return;
            }
            let opening = Opening(self);
            let Ok(obj) = self.create().await else {
                // Tried again next tick; the requests see the server's
                // refusal themselves.
                return;
            };
            std::mem::forget(opening);
            let mut slot = self.slot(obj, home);
            slot.idle_since = Some(Instant::now());
            lock(&self.idle[home]).push_back(slot);
        }
    }
}

thread_local! {
    /// The home (thread index) of the open loop running on this thread,
    /// if any ([`Pool::hold`]).
    static OPEN_LOOP_HOME: Cell<Option<usize>> = const { Cell::new(None) };
}

/// A thread's idle list on cache lines of its own: side by side, two
/// threads locking their own lists would still take the same line from each
/// other's core on every request.
#[repr(align(128))]
struct Padded<T>(T);

impl<T> Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// The idle lists are only pushed and popped under the lock, so a panic
/// cannot leave one half-changed: a poisoned lock's data is still whole.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A permit taken by `get`: given back unless kept by the object.
struct Permit<'a, M: Manager> {
    inner: &'a Inner<M>,
    kept: bool,
}

impl<M: Manager> Permit<'_, M> {
    fn keep(mut self) {
        self.kept = true;
    }
}

impl<M: Manager> Drop for Permit<'_, M> {
    fn drop(&mut self) {
        if !self.kept {
            self.inner.release();
        }
    }
}

/// Counts a request among the waiting (of the pool and of its thread)
/// until it has its permit, or gives up.
struct Waiting<'a, M: Manager> {
    inner: &'a Inner<M>,
    home: usize,
}

impl<M: Manager> Drop for Waiting<'_, M> {
    fn drop(&mut self) {
        self.inner.waiting.fetch_sub(1, Ordering::Relaxed);
        self.inner.home_waiting[self.home].fetch_sub(1, Ordering::SeqCst);
        self.inner.reclaim(self.home);
    }
}

/// A connection being opened: counted in `size` until it is open, and
/// uncounted if opening fails or the request is abandoned meanwhile.
struct Opening<'a, M: Manager>(&'a Inner<M>);

impl<M: Manager> Drop for Opening<'_, M> {
    fn drop(&mut self) {
        self.0.size.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An idle connection taken for its recycle check: dropped (and
/// uncounted) unless the check passes and it is handed out.
struct Live<'a, M: Manager> {
    inner: &'a Inner<M>,
    slot: Option<Slot<M::Type>>,
}

impl<M: Manager> Live<'_, M> {
    /// Closes it for `cause`.
    fn close(&mut self, cause: Cause) {
        if let Some(slot) = self.slot.take() {
            self.inner.close(slot, cause);
        }
    }
}

impl<M: Manager> Drop for Live<'_, M> {
    fn drop(&mut self) {
        // Abandoned during its check: closed, as a failed one.
        self.close(Cause::Error);
    }
}

/// A connection handed out; goes back to its thread's idle list when
/// dropped, or leaves the pool with [`Object::take`].
pub struct Object<M: Manager> {
    slot: Option<Slot<M::Type>>,
    pool: Arc<Inner<M>>,
}

impl<M: Manager> Object<M> {
    fn new(pool: Arc<Inner<M>>, slot: Slot<M::Type>) -> Object<M> {
        Object {
            slot: Some(slot),
            pool,
        }
    }

    fn slot(&self) -> &Slot<M::Type> {
        // Only `take` and `drop` empty it, and both consume the object.
        self.slot.as_ref().expect("an object holds its connection")
    }

    /// Takes the connection out of the pool for good (the pool may open
    /// another in its place).
    pub fn take(mut this: Object<M>) -> M::Type {
        // Full until now: only this and `drop` empty it, and both consume
        // the object.
        let mut slot = this.slot.take().expect("an object holds its connection");
        this.pool.manager.detach(&mut slot.obj);
        this.pool.size.fetch_sub(1, Ordering::AcqRel);
        this.pool.count(Cause::Error);
        this.pool.release();
        slot.obj
    }
}

impl<M: Manager> Deref for Object<M> {
    type Target = M::Type;
    fn deref(&self) -> &M::Type {
        &self.slot().obj
    }
}

impl<M: Manager> DerefMut for Object<M> {
    fn deref_mut(&mut self) -> &mut M::Type {
        // Full: see `slot`.
        &mut self
            .slot
            .as_mut()
            .expect("an object holds its connection")
            .obj
    }
}

impl<M: Manager> Drop for Object<M> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            self.pool.give_back(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    /// Numbered objects; recycling fails for the numbers in `bad`, the
    /// lifecycle's check for those in `sick`.
    struct Numbers {
        next: AtomicU32,
        bad: Mutex<Vec<u32>>,
        sick: Mutex<Vec<u32>>,
    }

    impl Manager for Numbers {
        type Type = u32;
        type Error = String;
        async fn create(&self) -> Result<u32, String> {
            Ok(self.next.fetch_add(1, Ordering::Relaxed))
        }
        async fn recycle(
            &self,
            n: &mut u32,
            _: &Metrics,
        ) -> deadpool::managed::RecycleResult<String> {
            if lock(&self.bad).contains(n) {
                Err(deadpool::managed::RecycleError::message("bad"))
            } else {
                Ok(())
            }
        }
    }

    impl Checks for Numbers {
        async fn check(&self, n: &mut u32) -> bool {
            !lock(&self.sick).contains(n)
        }
    }

    fn got(r: Result<(Object<Numbers>, Took), PoolError<String>>) -> Object<Numbers> {
        r.map(|(o, _)| o).expect("a connection")
    }

    fn pool(max: usize, homes: usize, wait: Option<Duration>) -> Pool<Numbers> {
        let m = Numbers {
            next: AtomicU32::new(0),
            bad: Mutex::new(Vec::new()),
            sick: Mutex::new(Vec::new()),
        };
        Pool::new(m, max, homes, wait, None, Rules::default())
    }

    #[tokio::test]
    async fn a_thread_takes_its_own_idle_connections_first() {
        let p = pool(4, 2, None);
        let a = got(p.get(0).await);
        let b = got(p.get(1).await);
        assert_eq!((*a, *b), (0, 1));
        drop(a);
        drop(b);
        // Thread 1 gets its own connection back, not thread 0's older one.
        assert_eq!(*got(p.get(1).await), 1);
        assert_eq!(*got(p.get(0).await), 0);
        // With none of its own idle, a thread takes another's before opening.
        let b = got(p.get(1).await);
        let a = got(p.get(1).await);
        assert_eq!((*b, *a), (1, 0));
        assert_eq!(p.status().size, 2);
    }

    #[tokio::test]
    async fn never_more_than_max_size_and_waiters_time_out() {
        let p = pool(2, 2, Some(Duration::from_millis(20)));
        let a = got(p.get(0).await);
        let b = got(p.get(1).await);
        assert!(matches!(
            p.get(0).await.map(|(o, _)| o),
            Err(PoolError::Timeout(TimeoutType::Wait))
        ));
        let s = p.status();
        assert_eq!((s.size, s.available, s.waiting), (2, 0, 0));
        drop(a);
        // The waiter gets the connection given back, whatever its thread.
        assert_eq!(*got(p.get(1).await), 0);
        drop(b);
        assert_eq!(p.status().size, 2);
    }

    #[tokio::test]
    async fn a_connection_given_back_goes_to_a_waiter_of_its_thread_first() {
        let p = Arc::new(pool(2, 2, None));
        let a = p.get(0).await.unwrap().0;
        let b = p.get(1).await.unwrap().0;
        assert_eq!((*a, *b), (0, 1));
        // Thread 1's request waits first, then thread 0's.
        let waiter = |home: usize| {
            let p = p.clone();
            // The connection is kept, not given back at once.
            tokio::spawn(async move { p.get(home).await.unwrap().0 })
        };
        let first = waiter(1);
        tokio::task::yield_now().await;
        let second = waiter(0);
        tokio::task::yield_now().await;
        assert_eq!(p.status().waiting, 2);
        // Thread 0's connection goes to thread 0's waiter, not the oldest.
        drop(a);
        let second = second.await.unwrap();
        assert_eq!(*second, 0);
        drop(b);
        let first = first.await.unwrap();
        assert_eq!(*first, 1);
        assert_eq!(p.status().waiting, 0);
        drop((first, second));
        // With no waiter of its own thread, the oldest of any thread gets it.
        let a = p.get(0).await.unwrap().0;
        let b = p.get(0).await.unwrap().0;
        let other = waiter(1);
        tokio::task::yield_now().await;
        drop(a);
        assert_eq!(*other.await.unwrap(), 0);
        drop(b);
        // Nothing is left waiting for nobody: both permits are back.
        let (c, d) = (p.get(1).await.unwrap().0, p.get(1).await.unwrap().0);
        assert_eq!(p.status().size, 2);
        drop((c, d));
    }

    #[tokio::test]
    async fn a_thread_outnumbered_more_than_two_to_one_gives_to_the_oldest() {
        let p = Arc::new(pool(2, 2, None));
        let a = p.get(0).await.unwrap().0;
        let b = p.get(1).await.unwrap().0;
        let waiter = |home: usize| {
            let p = p.clone();
            tokio::spawn(async move { p.get(home).await.unwrap().0 })
        };
        // Three of thread 1 wait, then one of thread 0.
        let ones: Vec<_> = (0..3).map(|_| waiter(1)).collect();
        tokio::task::yield_now().await;
        let zero = waiter(0);
        tokio::task::yield_now().await;
        assert_eq!(p.status().waiting, 4);
        // 3 > 2 x 1: thread 0's connection goes to the oldest waiter, thread
        // 1's first, not to thread 0's.
        drop(a);
        let mut ones = ones.into_iter();
        let first = ones.next().unwrap().await.unwrap();
        assert_eq!(*first, 0);
        // 2 <= 2 x 1: now it stays home (by the old rule, 1 < 2, it went to
        // thread 1's next waiter and thread 0's waited for `b`).
        drop(first);
        let zero = tokio::time::timeout(Duration::from_secs(5), zero)
            .await
            .expect("thread 0's waiter got its thread's connection");
        assert_eq!(*zero.unwrap(), 0);
        drop(b);
        for w in ones {
            drop(w.await.unwrap());
        }
        assert_eq!(p.status().waiting, 0);
    }

    #[tokio::test]
    async fn a_handoff_to_waiters_that_gave_up_returns_to_the_pool() {
        let p = pool(1, 2, Some(Duration::from_millis(10)));
        let a = p.get(0).await.unwrap().0;
        assert!(matches!(
            p.get(0).await,
            Err(PoolError::Timeout(TimeoutType::Wait))
        ));
        drop(a);
        // Thread 1 finds the permit, though it was not its thread's.
        assert_eq!(*p.get(1).await.unwrap().0, 0);
    }

    #[tokio::test]
    async fn a_failed_recycle_check_drops_the_connection_and_opens_another() {
        let p = pool(1, 1, None);
        drop(got(p.get(0).await));
        lock(&p.inner.manager.bad).push(0);
        assert_eq!(*got(p.get(0).await), 1);
        assert_eq!(p.status().size, 1);
    }

    #[tokio::test]
    async fn take_and_close_give_the_room_back() {
        let p = pool(1, 1, Some(Duration::from_millis(20)));
        let a = got(p.get(0).await);
        assert_eq!(Object::take(a), 0);
        assert_eq!(p.status().size, 0);
        let b = got(p.get(0).await);
        assert_eq!(*b, 1);
        p.close();
        drop(b);
        assert_eq!(p.status().size, 0);
        assert!(matches!(
            p.get(0).await.map(|(o, _)| o),
            Err(PoolError::Closed)
        ));
    }

    #[tokio::test]
    async fn a_connection_given_to_a_waiter_is_neither_available_nor_waited_for() {
        let p = Arc::new(pool(1, 1, None));
        let a = got(p.get(0).await);
        let waiter = tokio::spawn({
            let p = p.clone();
            async move { *got(p.get(0).await) }
        });
        tokio::task::yield_now().await;
        let s = p.status();
        assert_eq!((s.size, s.available, s.waiting), (1, 0, 1));
        // Given back: idle, its permit the waiter's, the waiter not yet run.
        drop(a);
        assert_eq!(lock(&p.inner.idle[0]).len(), 1);
        assert_eq!(p.inner.waiting.load(Ordering::Relaxed), 1);
        let s = p.status();
        assert_eq!((s.size, s.available, s.waiting), (1, 0, 0));
        assert_eq!(waiter.await.unwrap(), 0);
        let s = p.status();
        assert_eq!((s.size, s.available, s.waiting), (1, 1, 0));
    }

    #[tokio::test]
    async fn an_abandoned_request_gives_its_permit_back() {
        let p = pool(1, 1, None);
        let a = got(p.get(0).await);
        // Waits, then is abandoned (a request timeout).
        let abandoned = tokio::time::timeout(Duration::from_millis(10), p.get(0)).await;
        assert!(abandoned.is_err());
        assert_eq!(p.status().waiting, 0);
        drop(a);
        assert_eq!(*got(p.get(0).await), 0);
    }

    fn with_rules(max: usize, rules: Rules) -> Pool<Numbers> {
        let m = Numbers {
            next: AtomicU32::new(0),
            bad: Mutex::new(Vec::new()),
            sick: Mutex::new(Vec::new()),
        };
        Pool::new(m, max, 1, None, None, rules)
    }

    #[tokio::test]
    async fn a_connection_past_its_lifetime_is_replaced_and_counted() {
        let p = with_rules(
            1,
            Rules {
                max_lifetime: Some(Duration::from_millis(30)),
                ..Rules::default()
            },
        );
        let (a, took) = p.get(0).await.unwrap();
        assert!(took.open_us.is_some());
        drop(a);
        let (a, took) = p.get(0).await.unwrap();
        assert_eq!((*a, took.open_us), (0, None));
        tokio::time::sleep(Duration::from_millis(40)).await;
        // Given back past its lifetime: closed, not kept.
        drop(a);
        assert_eq!(p.status().size, 0);
        assert_eq!(p.status().closed.lifetime, 1);
        let (b, took) = p.get(0).await.unwrap();
        assert_eq!(*b, 1);
        assert!(took.open_us.is_some());
    }

    #[tokio::test]
    async fn the_lifetimes_spread_over_the_jitter() {
        let p = with_rules(
            1,
            Rules {
                max_lifetime: Some(Duration::from_secs(100)),
                lifetime_jitter: 0.5,
                ..Rules::default()
            },
        );
        let now = Instant::now();
        let lives: Vec<Duration> = (0..200)
            .map(|_| p.inner.slot(0, 0).expires.unwrap() - now)
            .collect();
        assert!(lives
            .iter()
            .all(|d| *d >= Duration::from_secs(50) && *d <= Duration::from_secs(101)));
        let early = lives
            .iter()
            .filter(|d| **d < Duration::from_secs(75))
            .count();
        assert!(
            (60..140).contains(&early),
            "{early} of 200 in the first half of the spread"
        );
    }

    #[tokio::test]
    async fn checks_run_by_the_rule_and_a_failed_one_closes_the_connection() {
        let p = with_rules(
            2,
            Rules {
                check: CheckRule::IfIdleOver(Duration::from_millis(30)),
                ..Rules::default()
            },
        );
        drop(got(p.get(0).await));
        // Idle a moment: not checked.
        let (a, took) = p.get(0).await.unwrap();
        assert_eq!(took.check_us, None);
        drop(a);
        tokio::time::sleep(Duration::from_millis(40)).await;
        let (a, took) = p.get(0).await.unwrap();
        assert!(took.check_us.is_some());
        drop(a);
        tokio::time::sleep(Duration::from_millis(40)).await;
        lock(&p.inner.manager.sick).push(0);
        // Its check fails: closed, and another opened.
        let (b, took) = p.get(0).await.unwrap();
        assert_eq!(*b, 1);
        assert!(took.check_us.is_some() && took.open_us.is_some());
        assert_eq!(p.status().closed.check, 1);
    }

    #[tokio::test]
    async fn upkeep_reaps_idle_connections_down_to_min_idle_and_refills() {
        let p = with_rules(
            3,
            Rules {
                idle_timeout: Some(Duration::from_millis(40)),
                min_idle: 1,
                ..Rules::default()
            },
        );
        let task = tokio::spawn(p.upkeep(0));
        let (a, b) = (got(p.get(0).await), got(p.get(0).await));
        drop((a, b));
        tokio::time::sleep(Duration::from_millis(150)).await;
        let s = p.status();
        assert_eq!((s.size, s.available, s.closed.idle), (1, 1, 1));
        p.close();
        task.await.unwrap();

        // min_idle kept by opening.
        let p = with_rules(
            3,
            Rules {
                min_idle: 2,
                ..Rules::default()
            },
        );
        let task = tokio::spawn(p.upkeep(0));
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(p.status().available, 2);
        p.close();
        task.await.unwrap();
    }
}
