//! A closed-loop worker: draws a request from its seeded stream, waits for
//! the pacing point, runs it (bounded by request_timeout, retried as the
//! scenario says), records it, repeats until the deadline. It never locks
//! or prints: it records into its thread's tally (the workers of a shard
//! share one thread, so one tally: a worker costs no histograms of its
//! own), which hands the collector one interval per second.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::api::{Service, Settings};
use super::deadline::{Deadline, Outcome};
use super::tally::Tally;
use super::window::Window;
use crate::metrics::{ErrorClass, PhaseTimings, RequestError};
use crate::rng::Rng;
use crate::scenario::RetryPolicy;

/// Separates the retry jitter's random stream from the request sequence,
/// which must stay the same whatever retries happen.
pub const JITTER_STREAM: u64 = 0x5EED_0FB4_C0FF;

pub struct Worker<S: Service> {
    service: Arc<S>,
    rng: Rng,
    jitter: Rng,
    request_timeout: Deadline,
    retry: Option<RetryPolicy>,
}

impl<S: Service> Worker<S> {
    pub fn new(service: Arc<S>, settings: &Settings, index: u32) -> Worker<S> {
        Worker {
            service,
            rng: Rng::for_worker(settings.seed, index),
            jitter: Rng::for_worker(settings.seed ^ JITTER_STREAM, index),
            request_timeout: Deadline::new(settings.request_timeout),
            retry: settings.retry.clone(),
        }
    }

    /// Runs until the deadline or `stop`, recording into `tally` (no
    /// borrow of it is held across an await).
    pub async fn run(
        mut self,
        window: Window,
        mut stop: oneshot::Receiver<()>,
        tally: Rc<RefCell<Tally>>,
    ) {
        // One clock read per request: the end of one is the start of the
        // next (the pacing point of a closed loop is "at once"; open loop
        // runs no workers, its arrivals are paced in open_loop.rs).
        let mut now = Instant::now();
        while now < window.deadline {
            let request = self.service.draw(&mut self.rng);
            let intended = now;
            let Some(Attempted {
                result, retries, ..
            }) = attempt(
                &*self.service,
                &request,
                intended,
                &mut self.request_timeout,
                self.retry.as_ref(),
                &mut self.jitter,
                Some(&mut stop),
                None,
            )
            .await
            else {
                break;
            };
            now = Instant::now();
            tally
                .borrow_mut()
                .record(S::query_of(&request), intended, now, result, retries);
        }
    }
}

/// What [`attempt`] came to.
pub struct Attempted {
    pub result: Result<PhaseTimings, RequestError>,
    pub retries: u32,
    /// The service gave up before sending, at `start_by` (open loop).
    pub expired: bool,
}

/// One request, each attempt bounded by request_timeout, retried as the
/// scenario's policy says, with exponential backoff and ±50% jitter so
/// retrying workers do not come back in lockstep. With `start_by`, the first
/// attempt must get going by then (`Service::call_by`). `None` when `stop`
/// came first (the request, or its backoff, is abandoned).
#[allow(clippy::too_many_arguments)]
pub async fn attempt<S: Service>(
    service: &S,
    request: &S::Request,
    started: Instant,
    request_timeout: &mut Deadline,
    retry: Option<&RetryPolicy>,
    jitter: &mut Rng,
    mut stop: Option<&mut oneshot::Receiver<()>>,
    start_by: Option<Instant>,
) -> Option<Attempted> {
    let mut retries = 0;
    let mut started = started;
    loop {
        let outcome = match (start_by, retries) {
            (Some(by), 0) => {
                let bounded = request_timeout.bound(
                    started,
                    service.call_by(request, by),
                    stop.as_deref_mut(),
                );
                match bounded.await {
                    Outcome::Done(Err(e)) if e.class == ErrorClass::RequestTimeout => {
                        return Some(Attempted {
                            result: Err(e),
                            retries,
                            expired: true,
                        })
                    }
                    other => other,
                }
            }
            _ => {
                request_timeout
                    .bound(started, service.call(request), stop.as_deref_mut())
                    .await
            }
        };
        let result = match outcome {
            Outcome::Done(r) => r,
            Outcome::Stopped => return None,
            Outcome::Elapsed => Err(RequestError::new(
                ErrorClass::RequestTimeout,
                format!(
                    "no answer within request_timeout ({})",
                    humantime::format_duration(request_timeout.limit())
                ),
            )),
        };
        let backoff = match (&result, retry) {
            (Err(e), Some(policy))
                if retries + 1 < policy.max_attempts
                    && policy.on.iter().any(|c| *c == e.class.name()) =>
            {
                policy.backoff
            }
            _ => {
                return Some(Attempted {
                    result,
                    retries,
                    expired: false,
                })
            }
        };
        let factor = 2f64.powi(retries as i32) * (0.5 + jitter.next_f64());
        // Doubling soon outgrows any sensible wait (and `mul_f64` panics
        // past Duration's range): each wait is at most request_timeout.
        let wait = Duration::try_from_secs_f64(backoff.as_secs_f64() * factor)
            .unwrap_or(Duration::MAX)
            .min(request_timeout.limit());
        let backoff = tokio::time::sleep(wait);
        match stop.as_deref_mut() {
            Some(stop) => tokio::select! {
                biased;
                () = backoff => {}
                _ = stop => return None,
            },
            None => backoff.await,
        }
        started = Instant::now();
        retries += 1;
    }
}
