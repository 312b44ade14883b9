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
//! [`Bounded`] is the request's future with its deadline (and the worker's
//! stop signal) polled beside it, written by hand rather than with
//! `select!`: it holds the request's future once, in place. A request's
//! future is over a kilobyte, and each `select!` level and `async fn`
//! argument was a copy of it per request (docs/performance.md, "Around the
//! query").

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};

/// The time a request may take, and the sleep that enforces it.
pub struct Deadline {
    limit: Duration,
    sleep: Pin<Box<Sleep>>,
}

impl Deadline {
    pub fn new(limit: Duration) -> Deadline {
        Deadline {
            limit,
            sleep: Box::pin(tokio::time::sleep(limit)),
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
    }
}

impl<F: Future> Future for Bounded<'_, F> {
    type Output = Outcome<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(out) = this.work.poll(cx) {
            return Poll::Ready(Outcome::Done(out));
        }
        // A sleep armed for an earlier request's deadline fires early: it
        // is re-armed for this one's, and polled again so that it wakes.
        while this.sleep.as_mut().poll(cx).is_ready() {
            if Instant::now() >= *this.deadline {
                // Armed for the next request from here.
                this.sleep.as_mut().reset(*this.deadline + *this.limit);
                return Poll::Ready(Outcome::Elapsed);
            }
            this.sleep.as_mut().reset(*this.deadline);
        }
        if let Some(stop) = this.stop {
            if Pin::new(&mut **stop).poll(cx).is_ready() {
                return Poll::Ready(Outcome::Stopped);
            }
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

    #[tokio::test(start_paused = true)]
    async fn the_stop_signal_ends_a_request_before_its_deadline() {
        let mut d = Deadline::new(Duration::from_secs(10));
        let (tx, mut rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(tx);
        });
        let started = Instant::now();
        let out = d
            .bound(Instant::now(), std::future::pending::<()>(), Some(&mut rx))
            .await;
        assert!(matches!(out, Outcome::Stopped));
        assert_eq!(started.elapsed(), Duration::from_millis(20));
        // Work that is ready wins over a stop that is ready too.
        let out = d.bound(Instant::now(), async { 7 }, Some(&mut rx)).await;
        assert!(matches!(out, Outcome::Done(7)));
    }
}
