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
//! thread has more; otherwise waiters are served in arrival order whatever
//! their thread (tokio's fair semaphore). Served strictly in arrival order,
//! each waiter took a connection of the other thread as often as not, and
//! every query of it then crossed threads: with open loop's many waiters
//! (more handlers than connections), that made the pool several times
//! slower than in closed loop (docs/performance.md, "open loop (issue
//! 36)").
//!
//! The rest follows deadpool 0.13's `managed::Pool`, whose `Manager` trait
//! (create, recycle, detach), `Metrics` and `PoolError` it uses: a permit
//! per connection in use, `wait_timeout` on the permit, `create_timeout`
//! on opening, a connection whose recycle check fails dropped and another
//! tried, cancellation at any await giving back what it held.

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use deadpool::managed::{Manager, Metrics, PoolError, TimeoutType};
use tokio::sync::{Semaphore, TryAcquireError};

/// A pool of at most `max_size` connections, shared by `homes` threads.
pub struct Pool<M: Manager> {
    inner: Arc<Inner<M>>,
}

struct Inner<M: Manager> {
    manager: M,
    max_size: usize,
    /// One permit per connection that may be handed out: `max_size` of
    /// them, taken by `get` and given back when the object is.
    permits: Semaphore,
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
    handoff: Vec<Padded<Semaphore>>,
    wait_timeout: Option<Duration>,
    create_timeout: Option<Duration>,
}

type IdleList<T> = Mutex<VecDeque<Slot<T>>>;

struct Slot<T> {
    obj: T,
    metrics: Metrics,
    home: usize,
}

/// The pool's occupancy, as deadpool's `Status` gives it.
#[derive(Debug, Clone, Copy)]
pub struct Status {
    pub size: usize,
    pub available: usize,
    pub waiting: usize,
}

impl<M: Manager> Pool<M> {
    pub fn new(
        manager: M,
        max_size: usize,
        homes: usize,
        wait_timeout: Option<Duration>,
        create_timeout: Option<Duration>,
    ) -> Pool<M> {
        Pool {
            inner: Arc::new(Inner {
                manager,
                max_size,
                permits: Semaphore::new(max_size),
                idle: (0..homes.max(1))
                    .map(|_| Padded(Mutex::new(VecDeque::new())))
                    .collect(),
                size: AtomicUsize::new(0),
                waiting: AtomicUsize::new(0),
                home_waiting: (0..homes.max(1))
                    .map(|_| Padded(AtomicUsize::new(0)))
                    .collect(),
                handoff: (0..homes.max(1))
                    .map(|_| Padded(Semaphore::new(0)))
                    .collect(),
                wait_timeout,
                create_timeout,
            }),
        }
    }

    /// A connection for a request running on thread `home`: one of that
    /// thread's idle connections, else another thread's, else a new one
    /// (opened here, so its home is `home`), else the next one given back.
    pub async fn get(&self, home: usize) -> Result<Object<M>, PoolError<M::Error>> {
        let inner = &self.inner;
        let home = home % inner.idle.len();
        let permit = self.permit(home).await?;
        loop {
            if let Some(slot) = inner.pop_idle(home) {
                let mut live = Live {
                    inner,
                    slot: Some(slot),
                };
                let ok = match live.slot.as_mut() {
                    Some(s) => inner.manager.recycle(&mut s.obj, &s.metrics).await.is_ok(),
                    None => false,
                };
                if !ok {
                    // Dropped (and its count with it); try the next one.
                    continue;
                }
                if let Some(mut slot) = live.slot.take() {
                    permit.keep();
                    // (Not `recycled`: no one reads it, and a clock read per
                    // request is not free.)
                    slot.metrics.recycle_count += 1;
                    return Ok(Object::new(inner.clone(), slot));
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
            // Boxed: opening a connection is a large state machine (TCP,
            // TLS, authentication) that nearly no request runs; inline, it
            // would make every request's future as large, to be set up and
            // moved each time.
            let create = Box::pin(inner.manager.create());
            let created = match inner.create_timeout {
                Some(limit) => tokio::time::timeout(limit, create)
                    .await
                    .map_err(|_| PoolError::Timeout(TimeoutType::Create))?,
                None => create.await,
            };
            let obj = created.map_err(PoolError::Backend)?;
            std::mem::forget(opening);
            permit.keep();
            return Ok(Object::new(
                inner.clone(),
                Slot {
                    obj,
                    metrics: Metrics::default(),
                    home,
                },
            ));
        }
    }

    /// Waits for a permit (at most `wait_timeout`; zero means do not wait):
    /// one of the pool's, or one given back to thread `home`'s waiters.
    async fn permit(&self, home: usize) -> Result<Permit<'_, M>, PoolError<M::Error>> {
        let inner = &self.inner;
        // A connection free: no wait, so no timer to set up (nearly every
        // request of a pool as large as its load).
        match inner.permits.try_acquire() {
            Ok(permit) => {
                permit.forget();
                return Ok(Permit { inner, kept: false });
            }
            Err(TryAcquireError::Closed) => return Err(PoolError::Closed),
            Err(TryAcquireError::NoPermits) => {}
        }
        if let Ok(permit) = inner.handoff[home].try_acquire() {
            permit.forget();
            return Ok(Permit { inner, kept: false });
        }
        inner.waiting.fetch_add(1, Ordering::Relaxed);
        inner.home_waiting[home].fetch_add(1, Ordering::SeqCst);
        let waited = Waiting { inner, home };
        let either = async {
            tokio::select! {
                biased;
                p = inner.handoff[home].acquire() => p.map(|p| p.forget()),
                p = inner.permits.acquire() => p.map(|p| p.forget()),
            }
        };
        let acquired = match inner.wait_timeout {
            Some(limit) if limit.is_zero() => inner
                .permits
                .try_acquire()
                .map(|p| p.forget())
                .map_err(|e| match e {
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
        Ok(Permit { inner, kept: false })
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
        let waiting = inner.waiting.load(Ordering::Relaxed);
        let free = inner.permits.available_permits();
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
    /// thread's waiters starve), else to the oldest waiter of any thread.
    fn give_back(&self, slot: Slot<M::Type>) {
        if self.permits.is_closed() {
            self.size.fetch_sub(1, Ordering::AcqRel);
            drop(slot);
            return;
        }
        let home = slot.home;
        lock(&self.idle[home]).push_back(slot);
        let mine = self.home_waiting[home].load(Ordering::SeqCst);
        let most = self
            .home_waiting
            .iter()
            .map(|w| w.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0);
        if mine > 0 && mine >= most {
            self.handoff[home].add_permits(1);
            // Its waiters may all have given up meanwhile.
            self.reclaim(home);
        } else {
            self.permits.add_permits(1);
        }
    }

    /// Moves the permits handed to thread `home`'s waiters back to the pool
    /// once it has none left, so that no permit waits for nobody.
    fn reclaim(&self, home: usize) {
        if self.home_waiting[home].load(Ordering::SeqCst) > 0 {
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
            self.inner.permits.add_permits(1);
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

impl<M: Manager> Drop for Live<'_, M> {
    fn drop(&mut self) {
        if self.slot.take().is_some() {
            self.inner.size.fetch_sub(1, Ordering::AcqRel);
        }
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
        this.pool.permits.add_permits(1);
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

    /// Numbered objects; recycling fails for the numbers in `bad`.
    struct Numbers {
        next: AtomicU32,
        bad: Mutex<Vec<u32>>,
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

    fn pool(max: usize, homes: usize, wait: Option<Duration>) -> Pool<Numbers> {
        let m = Numbers {
            next: AtomicU32::new(0),
            bad: Mutex::new(Vec::new()),
        };
        Pool::new(m, max, homes, wait, None)
    }

    #[tokio::test]
    async fn a_thread_takes_its_own_idle_connections_first() {
        let p = pool(4, 2, None);
        let a = p.get(0).await.unwrap();
        let b = p.get(1).await.unwrap();
        assert_eq!((*a, *b), (0, 1));
        drop(a);
        drop(b);
        // Thread 1 gets its own connection back, not thread 0's older one.
        assert_eq!(*p.get(1).await.unwrap(), 1);
        assert_eq!(*p.get(0).await.unwrap(), 0);
        // With none of its own idle, a thread takes another's before opening.
        let b = p.get(1).await.unwrap();
        let a = p.get(1).await.unwrap();
        assert_eq!((*b, *a), (1, 0));
        assert_eq!(p.status().size, 2);
    }

    #[tokio::test]
    async fn never_more_than_max_size_and_waiters_time_out() {
        let p = pool(2, 2, Some(Duration::from_millis(20)));
        let a = p.get(0).await.unwrap();
        let b = p.get(1).await.unwrap();
        assert!(matches!(
            p.get(0).await,
            Err(PoolError::Timeout(TimeoutType::Wait))
        ));
        let s = p.status();
        assert_eq!((s.size, s.available, s.waiting), (2, 0, 0));
        drop(a);
        // The waiter gets the connection given back, whatever its thread.
        assert_eq!(*p.get(1).await.unwrap(), 0);
        drop(b);
        assert_eq!(p.status().size, 2);
    }

    #[tokio::test]
    async fn a_connection_given_back_goes_to_a_waiter_of_its_thread_first() {
        let p = Arc::new(pool(2, 2, None));
        let a = p.get(0).await.unwrap();
        let b = p.get(1).await.unwrap();
        assert_eq!((*a, *b), (0, 1));
        // Thread 1's request waits first, then thread 0's.
        let waiter = |home: usize| {
            let p = p.clone();
            // The connection is kept, not given back at once.
            tokio::spawn(async move { p.get(home).await.unwrap() })
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
        let a = p.get(0).await.unwrap();
        let b = p.get(0).await.unwrap();
        let other = waiter(1);
        tokio::task::yield_now().await;
        drop(a);
        assert_eq!(*other.await.unwrap(), 0);
        drop(b);
        // Nothing is left waiting for nobody: both permits are back.
        let (c, d) = (p.get(1).await.unwrap(), p.get(1).await.unwrap());
        assert_eq!(p.status().size, 2);
        drop((c, d));
    }

    #[tokio::test]
    async fn a_handoff_to_waiters_that_gave_up_returns_to_the_pool() {
        let p = pool(1, 2, Some(Duration::from_millis(10)));
        let a = p.get(0).await.unwrap();
        assert!(matches!(
            p.get(0).await,
            Err(PoolError::Timeout(TimeoutType::Wait))
        ));
        drop(a);
        // Thread 1 finds the permit, though it was not its thread's.
        assert_eq!(*p.get(1).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_failed_recycle_check_drops_the_connection_and_opens_another() {
        let p = pool(1, 1, None);
        drop(p.get(0).await.unwrap());
        lock(&p.inner.manager.bad).push(0);
        assert_eq!(*p.get(0).await.unwrap(), 1);
        assert_eq!(p.status().size, 1);
    }

    #[tokio::test]
    async fn take_and_close_give_the_room_back() {
        let p = pool(1, 1, Some(Duration::from_millis(20)));
        let a = p.get(0).await.unwrap();
        assert_eq!(Object::take(a), 0);
        assert_eq!(p.status().size, 0);
        let b = p.get(0).await.unwrap();
        assert_eq!(*b, 1);
        p.close();
        drop(b);
        assert_eq!(p.status().size, 0);
        assert!(matches!(p.get(0).await, Err(PoolError::Closed)));
    }

    #[tokio::test]
    async fn a_connection_given_to_a_waiter_is_neither_available_nor_waited_for() {
        let p = Arc::new(pool(1, 1, None));
        let a = p.get(0).await.unwrap();
        let waiter = tokio::spawn({
            let p = p.clone();
            async move { *p.get(0).await.unwrap() }
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
        let a = p.get(0).await.unwrap();
        // Waits, then is abandoned (a request timeout).
        let abandoned = tokio::time::timeout(Duration::from_millis(10), p.get(0)).await;
        assert!(abandoned.is_err());
        assert_eq!(p.status().waiting, 0);
        drop(a);
        assert_eq!(*p.get(0).await.unwrap(), 0);
    }
}
