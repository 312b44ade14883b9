//! A closed-loop worker: draws a request from its seeded stream, waits for
//! the pacing point, runs it (bounded by request_timeout, retried as the
//! scenario says), records it, repeats until the deadline. It never locks
//! or prints: it owns its recorder and hands the collector one interval
//! per second through a channel.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::api::{Pacing, Service, Settings};
use super::window::{Live, Window};
use crate::metrics::{micros, ErrorClass, Interval, Phase, PhaseTimings, Recorder, RequestError};
use crate::rng::Rng;
use crate::scenario::RetryPolicy;

/// Separates the retry jitter's random stream from the request sequence,
/// which must stay the same whatever retries happen.
const JITTER_STREAM: u64 = 0x5EED_0FB4_C0FF;

/// What one worker hands back.
pub struct WorkerEnd {
    pub recorder: Recorder,
    /// When its last measured request ended.
    pub last_end: Option<Instant>,
}

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
            Pacing::ClosedLoop => Instant::now(),
        }
    }

    pub async fn run(mut self, window: Window, mut stop: oneshot::Receiver<()>) -> WorkerEnd {
        let mut recorder = Recorder::new(0);
        let mut interval = Interval::new(0);
        let mut last_end = None;
        let last_second = window.seconds() - 1;
        while Instant::now() < window.deadline {
            let request = self.service.draw(&mut self.rng);
            let intended = self.next_start().await;
            let (result, retries) = tokio::select! {
                r = self.attempt(&request) => r,
                _ = &mut stop => break,
            };
            if intended < window.measure_start {
                continue; // warm-up: run, not recorded
            }
            let end = Instant::now();
            last_end = Some(end);
            // A request still running at the deadline counts in the last second.
            let second = (end - window.measure_start).as_secs().min(last_second);
            if second != interval.second {
                let done = std::mem::replace(&mut interval, Interval::new(second));
                let _ = self.tx.send(done);
            }
            recorder.retries += u64::from(retries);
            match result {
                Ok(mut t) => {
                    t.set(Phase::Total, micros(end - intended));
                    recorder.record_success(S::query_of(&request), &t);
                    interval.phases.record(&t);
                    interval.requests += 1;
                    self.live.requests.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    recorder.errors.count(e.class, &e.message);
                    interval.errors += 1;
                    self.live.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if interval.requests + interval.errors > 0 {
            let _ = self.tx.send(interval);
        }
        WorkerEnd { recorder, last_end }
    }

    /// One request, each attempt bounded by request_timeout, retried as the
    /// scenario's policy says, with exponential backoff and ±50% jitter so
    /// retrying workers do not come back in lockstep.
    async fn attempt(&mut self, request: &S::Request) -> (Result<PhaseTimings, RequestError>, u32) {
        let mut retries = 0;
        loop {
            let result = match tokio::time::timeout(
                self.request_timeout,
                self.service.call(request),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => Err(RequestError::new(
                    ErrorClass::RequestTimeout,
                    format!(
                        "no answer within request_timeout ({})",
                        humantime::format_duration(self.request_timeout)
                    ),
                )),
            };
            let backoff = match (&result, &self.retry) {
                (Err(e), Some(policy))
                    if retries + 1 < policy.max_attempts && policy.on.contains(&e.class.name()) =>
                {
                    policy.backoff
                }
                _ => return (result, retries),
            };
            let factor = 2f64.powi(retries as i32) * (0.5 + self.jitter.next_f64());
            tokio::time::sleep(backoff.mul_f64(factor)).await;
            retries += 1;
        }
    }
}
