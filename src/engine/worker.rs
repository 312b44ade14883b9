//! A closed-loop worker: draws a request from its seeded stream, waits for
//! the pacing point, runs it (bounded by request_timeout, retried as the
//! scenario says), records it, repeats until the deadline. It never locks
//! or prints: it owns its recorder and hands the collector one interval
//! per second through a channel.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::api::{Pacing, Service, Settings};
use super::tally::{Tally, WorkerEnd};
use super::window::{Live, Window};
use crate::metrics::{ErrorClass, Interval, PhaseTimings, RequestError};
use crate::rng::Rng;
use crate::scenario::RetryPolicy;

/// Separates the retry jitter's random stream from the request sequence,
/// which must stay the same whatever retries happen.
pub const JITTER_STREAM: u64 = 0x5EED_0FB4_C0FF;

pub struct Worker<S: Service> {
    service: Arc<S>,
    rng: Rng,
    jitter: Rng,
    pacing: Pacing,
    request_timeout: Duration,
    retry: Option<RetryPolicy>,
    live: Arc<Live>,
    tx: mpsc::UnboundedSender<Interval>,
}

impl<S: Service> Worker<S> {
    pub fn new(
        service: Arc<S>,
        settings: &Settings,
        index: u32,
        live: Arc<Live>,
        tx: mpsc::UnboundedSender<Interval>,
    ) -> Worker<S> {
        Worker {
            service,
            rng: Rng::for_worker(settings.seed, index),
            jitter: Rng::for_worker(settings.seed ^ JITTER_STREAM, index),
            pacing: settings.pacing,
            request_timeout: settings.request_timeout,
            retry: settings.retry.clone(),
            live,
            tx,
        }
    }

    /// The pacing point: when the next request is meant to start.
    async fn next_start(&mut self) -> Instant {
        match self.pacing {
            // Open loop runs no workers: its arrivals are paced by the
            // schedule in open_loop.rs.
            Pacing::ClosedLoop | Pacing::OpenLoop(_) => Instant::now(),
        }
    }

    pub async fn run(mut self, window: Window, mut stop: oneshot::Receiver<()>) -> WorkerEnd {
        let mut tally = Tally::new(window, self.live.clone(), self.tx.clone());
        while Instant::now() < window.deadline {
            let request = self.service.draw(&mut self.rng);
            let intended = self.next_start().await;
            let (result, retries) = tokio::select! {
                r = attempt(&*self.service, &request, self.request_timeout, self.retry.as_ref(), &mut self.jitter) => r,
                _ = &mut stop => break,
            };
            tally.record(
                S::query_of(&request),
                intended,
                Instant::now(),
                result,
                retries,
            );
        }
        tally.finish()
    }
}

/// One request, each attempt bounded by request_timeout, retried as the
/// scenario's policy says, with exponential backoff and ±50% jitter so
/// retrying workers do not come back in lockstep.
pub async fn attempt<S: Service>(
    service: &S,
    request: &S::Request,
    request_timeout: Duration,
    retry: Option<&RetryPolicy>,
    jitter: &mut Rng,
) -> (Result<PhaseTimings, RequestError>, u32) {
    let mut retries = 0;
    loop {
        let result = match tokio::time::timeout(request_timeout, service.call(request)).await {
            Ok(r) => r,
            Err(_) => Err(RequestError::new(
                ErrorClass::RequestTimeout,
                format!(
                    "no answer within request_timeout ({})",
                    humantime::format_duration(request_timeout)
                ),
            )),
        };
        let backoff = match (&result, retry) {
            (Err(e), Some(policy))
                if retries + 1 < policy.max_attempts && policy.on.contains(&e.class.name()) =>
            {
                policy.backoff
            }
            _ => return (result, retries),
        };
        let factor = 2f64.powi(retries as i32) * (0.5 + jitter.next_f64());
        tokio::time::sleep(backoff.mul_f64(factor)).await;
        retries += 1;
    }
}
