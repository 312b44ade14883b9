//! `request_timeout` without a timer per request. `tokio::time::timeout`
//! registers an entry in the runtime's timer wheel for every request and
//! removes it after (a visible share of pooled SELECT 1's CPU in a
//! profile: docs/performance.md, "Around the query"); a
//! closed-loop worker instead keeps one sleep, armed at or before the
//! current request's deadline, and re-arms it only when it fires early.
//! Deadlines only move later (each request's is its start plus the same
//! limit), so a sleep armed for an earlier request's deadline fires at or
//! before the current one's: it can wake a request early, never late, and
//! an early wake re-arms it for the real deadline. A request that takes
//! less than the limit, nearly all of them, costs no timer work at all.

//!
//! Nor does such a request poll the sleep or the stop signal. A sleep or
//! a receiver polled once keeps the task's waker, and a worker's requests
//! all run in the same task (an open loop's handler's likewise): the
//! sleep fires, or the stop comes, and the task is woken. So a request's
//! first poll leaves them alone when the task that last polled them is
//! this one (with budget: out of it, tokio's futures answer Pending without
//! taking the waker) and the sleep has not fired meanwhile; it only reads
//! the stop's state, as that wake-up may have been spent on the poll that
//! ended the request before. A later poll (the task was woken: by the
//! work, the timer or the stop) polls both.
//!
//! [`Bounded`] is the request's future with its deadline (and the worker's
//! stop signal) polled beside it, written by hand rather than with
//! `select!`: it holds the request's future once, in place. A request's
//! future is over a kilobyte, and each `select!` level and `async fn`
//! argument was a copy of it per request (docs/performance.md, "Around the
//! query").

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::sync::oneshot::{self, error::TryRecvError};
use tokio::time::{Instant, Sleep};

/// The time a request may take, and the sleep that enforces it.
pub struct Deadline {
    limit: Duration,
    sleep: Pin<Box<Sleep>>,
    /// What the sleep and the stop signal last had polled: the task that
    /// polled them (their waker) and the stop's address (None without
    /// one). The caller with a stop passes the same receiver, in place,
    /// with every request (the worker's, for its whole run).
    polled: Option<(Waker, Option<usize>)>,
}

impl Deadline {
    pub fn new(limit: Duration) -> Deadline {
        Deadline {
            limit,
            sleep: Box::pin(tokio::time::sleep(limit)),
            polled: None,
        }
    }

    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// `work` bounded by the limit from `started` and, when given, by
    /// `stop` (ready when the sender sends or is dropped). `work` is polled
    /// first, then the deadline, then `stop`.
    pub fn bound<'a, F: Future>(
        &'a mut self,
        started: Instant,
        work: F,
        stop: Option<&'a mut oneshot::Receiver<()>>,
    ) -> Bounded<'a, F> {
        Bounded {
            work,
            deadline: started + self.limit,
            limit: self.limit,
            sleep: self.sleep.as_mut(),
            stop,
            polled: &mut self.polled,
            first: true,
        }
    }
}

/// How a [`Bounded`] request ended.
#[derive(Debug)]
pub enum Outcome<T> {
    Done(T),
    /// It ran past its deadline, and was dropped.
    Elapsed,
    /// The stop signal came first, and it was dropped.
    Stopped,
}

pin_project! {
    /// A request's future beside its deadline and stop signal: see
    /// [`Deadline::bound`].
    pub struct Bounded<'a, F> {
        #[pin]
        work: F,
        deadline: Instant,
        limit: Duration,
        sleep: Pin<&'a mut Sleep>,
        stop: Option<&'a mut oneshot::Receiver<()>>,
        polled: &'a mut Option<(Waker, Option<usize>)>,
        first: bool,
    }
}

impl<F: Future> Future for Bounded<'_, F> {
    type Output = Outcome<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(out) = this.work.poll(cx) {
            return Poll::Ready(Outcome::Done(out));
        }
        let stop_at = this.stop.as_deref().map(|s| std::ptr::from_ref(s) as usize);
        if std::mem::take(this.first)
            && !this.sleep.is_elapsed()
            && this
                .polled
                .as_ref()
                .is_some_and(|(w, s)| *s == stop_at && w.will_wake(cx.waker()))
        {
            // Both hold this task's waker already (module docs). The stop
            // may have come between two requests, its wake-up spent on
            // the poll that ended the last one: looked at, not polled.
            if let Some(stop) = this.stop.as_deref_mut() {
                if stop.is_terminated() || !matches!(stop.try_recv(), Err(TryRecvError::Empty)) {
                    return Poll::Ready(Outcome::Stopped);
                }
            }
            return Poll::Pending;
        }
        // A sleep armed for an earlier request's deadline fires early: it
        // is re-armed for this one's, and polled again so that it wakes.
        while this.sleep.as_mut().poll(cx).is_ready() {
            if Instant::now() >= *this.deadline {
                // Armed for the next request from here.
                this.sleep.as_mut().reset(*this.deadline + *this.limit);
                // Not polled since: it may hold no waker.
                **this.polled = None;
                return Poll::Ready(Outcome::Elapsed);
            }
            this.sleep.as_mut().reset(*this.deadline);
        }
        if let Some(stop) = this.stop {
            if Pin::new(&mut **stop).poll(cx).is_ready() {
                return Poll::Ready(Outcome::Stopped);
            }
        }
        if !tokio::task::coop::has_budget_remaining() {
            // Out of the task's budget, the sleep and the stop answered
            // Pending without taking its waker: polled again next time.
            **this.polled = None;
        } else if !this
            .polled
            .as_ref()
            .is_some_and(|(w, s)| *s == stop_at && w.will_wake(cx.waker()))
        {
            **this.polled = Some((cx.waker().clone(), stop_at));
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run<F: Future>(d: &mut Deadline, work: F) -> Outcome<F::Output> {
        d.bound(Instant::now(), work, None).await
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_is_stopped_at_its_own_deadline_not_an_earlier_one() {
        let mut d = Deadline::new(Duration::from_millis(100));
        // Quick requests leave the sleep armed at the first deadline.
        for _ in 0..3 {
            let out = run(&mut d, tokio::time::sleep(Duration::from_millis(30))).await;
            assert!(matches!(out, Outcome::Done(())));
        }
        // Now at 90 ms: the sleep fires at 100 ms, early for this request,
        // whose limit is 190 ms; it finishes at 180 ms.
        let started = Instant::now();
        let out = run(&mut d, tokio::time::sleep(Duration::from_millis(90))).await;
        assert!(matches!(out, Outcome::Done(())));
        assert_eq!(started.elapsed(), Duration::from_millis(90));
        // One that would take longer is stopped at exactly its limit.
        let started = Instant::now();
        let out = run(&mut d, tokio::time::sleep(Duration::from_secs(5))).await;
        assert!(matches!(out, Outcome::Elapsed));
        assert_eq!(started.elapsed(), Duration::from_millis(100));
        // And the next one after it is bounded again.
        let started = Instant::now();
        let out = run(&mut d, std::future::pending::<()>()).await;
        assert!(matches!(out, Outcome::Elapsed));
        assert_eq!(started.elapsed(), Duration::from_millis(100));
    }

    /// A hung request, the stop sent 20 ms into it: ended by the stop then.
    async fn stopped_in_20ms(
        d: &mut Deadline,
        tx: oneshot::Sender<()>,
        rx: &mut oneshot::Receiver<()>,
    ) {
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(tx);
        });
        let started = Instant::now();
        let out = d
            .bound(Instant::now(), std::future::pending::<()>(), Some(rx))
            .await;
        assert!(matches!(out, Outcome::Stopped));
        assert_eq!(started.elapsed(), Duration::from_millis(20));
    }

    #[tokio::test(start_paused = true)]
    async fn the_stop_signal_ends_a_request_before_its_deadline() {
        let mut d = Deadline::new(Duration::from_secs(10));
        let (tx, mut rx) = oneshot::channel::<()>();
        stopped_in_20ms(&mut d, tx, &mut rx).await;
        // Work that is ready wins over a stop that is ready too.
        let out = d.bound(Instant::now(), async { 7 }, Some(&mut rx)).await;
        assert!(matches!(out, Outcome::Done(7)));
    }

    /// A stop that comes between requests ends the next one, even when
    /// each request is done the first time the task is woken (so no poll
    /// after the first one ever reaches the stop).
    #[tokio::test]
    async fn a_stop_between_requests_ends_the_next_one() {
        let mut d = Deadline::new(Duration::from_secs(10));
        let (tx, mut rx) = oneshot::channel::<()>();
        for _ in 0..3 {
            let out = d
                .bound(Instant::now(), tokio::task::yield_now(), Some(&mut rx))
                .await;
            assert!(matches!(out, Outcome::Done(())));
        }
        drop(tx);
        let out = d
            .bound(Instant::now(), tokio::task::yield_now(), Some(&mut rx))
            .await;
        assert!(matches!(out, Outcome::Stopped), "{out:?}");
    }

    /// Requests after the first leave the sleep and the stop unpolled on
    /// their first poll: the stop still ends them, and the deadline too.
    #[tokio::test(start_paused = true)]
    async fn a_stop_or_deadline_after_quick_requests_still_ends_one() {
        let mut d = Deadline::new(Duration::from_millis(100));
        let (tx, mut rx) = oneshot::channel::<()>();
        // Without the stop first, then with it: it is polled once it is new.
        let quick = || tokio::time::sleep(Duration::from_millis(10));
        assert!(matches!(
            d.bound(Instant::now(), quick(), None).await,
            Outcome::Done(())
        ));
        for _ in 0..3 {
            let out = d.bound(Instant::now(), quick(), Some(&mut rx)).await;
            assert!(matches!(out, Outcome::Done(())));
        }
        // Past the 100 ms the sleep was first armed for: a hung request is
        // ended at its own limit.
        let started = Instant::now();
        let out = d
            .bound(Instant::now(), std::future::pending::<()>(), Some(&mut rx))
            .await;
        assert!(matches!(out, Outcome::Elapsed));
        assert_eq!(started.elapsed(), Duration::from_millis(100));
        for _ in 0..3 {
            let out = d.bound(Instant::now(), quick(), Some(&mut rx)).await;
            assert!(matches!(out, Outcome::Done(())));
        }
        stopped_in_20ms(&mut d, tx, &mut rx).await;
    }
}
