//! `request_timeout` without a timer per request. `tokio::time::timeout`
//! registers an entry in the runtime's timer wheel for every request and
//! removes it after (about 2% of pooled SELECT 1's CPU in the profile); a
//! closed-loop worker instead keeps one sleep, armed at or before the
//! current request's deadline, and re-arms it only when it fires early.
//! Deadlines only move later (each request's is its start plus the same
//! limit), so a sleep armed for an earlier request's deadline fires at or
//! before the current one's: it can wake a request early, never late, and
//! an early wake re-arms it for the real deadline. A request that takes
//! less than the limit, nearly all of them, costs no timer work at all.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// The time a request may take, and the sleep that enforces it.
pub struct Deadline {
    limit: Duration,
    sleep: Pin<Box<Sleep>>,
}

/// The request ran past its limit.
#[derive(Debug)]
pub struct Elapsed;

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

    /// Runs `work`, abandoning it (dropped) if it takes longer than the
    /// limit from `started` (the caller's clock read: now, or just before).
    pub async fn run<F: Future>(
        &mut self,
        started: Instant,
        work: F,
    ) -> Result<F::Output, Elapsed> {
        let deadline = started + self.limit;
        tokio::pin!(work);
        loop {
            tokio::select! {
                biased;
                out = &mut work => return Ok(out),
                () = &mut self.sleep => {
                    if Instant::now() >= deadline {
                        // Armed for the next request from here.
                        self.sleep.as_mut().reset(deadline + self.limit);
                        return Err(Elapsed);
                    }
                    self.sleep.as_mut().reset(deadline);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_request_is_stopped_at_its_own_deadline_not_an_earlier_one() {
        let mut d = Deadline::new(Duration::from_millis(100));
        // Quick requests leave the sleep armed at the first deadline.
        for _ in 0..3 {
            d.run(
                Instant::now(),
                tokio::time::sleep(Duration::from_millis(30)),
            )
            .await
            .unwrap();
        }
        // Now at 90 ms: the sleep fires at 100 ms, early for this request,
        // whose limit is 190 ms; it finishes at 180 ms.
        let started = Instant::now();
        d.run(
            Instant::now(),
            tokio::time::sleep(Duration::from_millis(90)),
        )
        .await
        .unwrap();
        assert_eq!(started.elapsed(), Duration::from_millis(90));
        // One that would take longer is stopped at exactly its limit.
        let started = Instant::now();
        assert!(d
            .run(Instant::now(), tokio::time::sleep(Duration::from_secs(5)))
            .await
            .is_err());
        assert_eq!(started.elapsed(), Duration::from_millis(100));
        // And the next one after it is bounded again.
        let started = Instant::now();
        assert!(d
            .run(Instant::now(), std::future::pending::<()>())
            .await
            .is_err());
        assert_eq!(started.elapsed(), Duration::from_millis(100));
    }
}
