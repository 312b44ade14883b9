//! Open loop on one shard: arrivals are released on the seeded schedule
//! whether or not earlier ones are done, as web traffic arrives; each
//! becomes a task as an application handler would run it; beyond the
//! shard's share of `max_in_flight`, arrivals wait in order (a fair
//! semaphore). Latency runs from the intended arrival: `queue` (arrival to
//! service), `service` (what an uncorrected tool reports), and `total`.
//! Arrivals stop at the deadline; what is queued or running then finishes,
//! each bounded by request_timeout from its arrival.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::api::{Service, Settings};
use super::deadline::Deadline;
use super::pacer::Schedule;
use super::tally::{Tally, WorkerEnd};
use super::window::{after, Live, Window};
use super::worker::{attempt, JITTER_STREAM};
use crate::metrics::{micros, ErrorClass, Interval, Phase, RequestError};
use crate::rng::Rng;
use crate::scenario::Arrivals;
use crate::timer::PreciseTimer;

/// One shard's part of the schedule and of `max_in_flight`.
pub struct Share {
    pub arrivals: Arrivals,
    pub shard: usize,
    pub shards: usize,
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
    let permits = Rc::new(Semaphore::new(limit));
    let mut schedule = Schedule::new(settings.seed, &share.arrivals, share.shard, share.shards);
    let mut timer = PreciseTimer::new().ok();
    let mut tasks = JoinSet::new();
    let mut stopped = false;
    loop {
        let (index, offset) = schedule.next();
        // An offset past the clock's range is past any deadline.
        let intended = match window.begin.checked_add(offset) {
            Some(at) if at < window.deadline => at,
            _ => break,
        };
        let wait = async {
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
            () = wait => {}
            _ = &mut stop => {
                stopped = true;
                break;
            }
        }
        live.arrived.fetch_add(1, Ordering::Relaxed);
        if intended >= window.measure_start {
            live.offered.fetch_add(1, Ordering::Relaxed);
        }
        let request = service.draw(&mut Rng::for_stream(settings.seed, index));
        let handler = Handler {
            service: service.clone(),
            permits: permits.clone(),
            tally: tally.clone(),
            live: live.clone(),
            request_timeout: settings.request_timeout,
            retry: settings.retry.clone(),
            jitter: Rng::for_stream(settings.seed ^ JITTER_STREAM, index),
        };
        tasks.spawn_local(handler.serve(request, intended));
        // Reap finished tasks as we go, so the set holds only live ones.
        while tasks.try_join_next().is_some() {}
    }
    if !stopped {
        tokio::select! {
            () = async { while tasks.join_next().await.is_some() {} } => {}
            _ = &mut stop => {}
        }
    }
    // Interrupted: what is still running is abandoned (its connection
    // closed); what was recorded stays.
    tasks.shutdown().await;
    let end = tally.borrow_mut().finish();
    end
}

/// `max_in_flight` divided between the shards as evenly as it goes, at
/// least one each.
fn in_flight_share(total: u32, shard: usize, shards: usize) -> usize {
    let (total, shards) = (total as usize, shards.max(1));
    (total / shards + usize::from(shard < total % shards)).max(1)
}

/// One arrival, served as an application's request handler would.
struct Handler<S: Service> {
    service: Arc<S>,
    permits: Rc<Semaphore>,
    tally: Rc<RefCell<Tally>>,
    live: Arc<Live>,
    request_timeout: std::time::Duration,
    retry: Option<crate::scenario::RetryPolicy>,
    jitter: Rng,
}

impl<S: Service> Handler<S> {
    async fn serve(mut self, request: S::Request, intended: Instant) {
        // The whole request, queue included, is bounded by request_timeout
        // from its arrival, like a client that gives up.
        let served = tokio::time::timeout_at(after(intended, self.request_timeout), async {
            let _permit = self.permits.acquire().await;
            let started = Instant::now();
            let _serving = Serving::begin(&self.live);
            let (result, retries) = attempt(
                &*self.service,
                &request,
                started,
                &mut Deadline::new(self.request_timeout),
                self.retry.as_ref(),
                &mut self.jitter,
                // Open loop stops its requests by dropping them: no signal.
                None,
            )
            .await
            .unwrap_or_else(|| {
                let stopped = RequestError::new(ErrorClass::Other, "stopped");
                (Err(stopped), 0)
            });
            (started, result, retries)
        })
        .await;
        let end = Instant::now();
        let (result, retries) = match served {
            Ok((started, result, retries)) => (
                result.map(|mut t| {
                    t.set(
                        Phase::Queue,
                        micros(started.saturating_duration_since(intended)),
                    );
                    t.set(
                        Phase::Service,
                        micros(end.saturating_duration_since(started)),
                    );
                    t
                }),
                retries,
            ),
            Err(_) => (
                Err(RequestError::new(
                    ErrorClass::RequestTimeout,
                    format!(
                        "not served within request_timeout ({}) of its arrival",
                        humantime::format_duration(self.request_timeout)
                    ),
                )),
                0,
            ),
        };
        self.tally
            .borrow_mut()
            .record(S::query_of(&request), intended, end, result, retries);
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
}
