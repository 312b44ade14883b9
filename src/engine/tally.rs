//! What a worker (closed loop) or a shard's arrivals (open loop) measured,
//! kept without a lock: the recorder of the measured window and the
//! current second's interval, handed to the collector as each second ends.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::window::{Live, Window};
use crate::metrics::{micros, ErrorCounts, Interval, Phase, PhaseTimings, Recorder, RequestError};

/// What one worker (or one shard's arrivals) hands back.
pub struct WorkerEnd {
    pub recorder: Recorder,
    /// When its last measured request ended.
    pub last_end: Option<Instant>,
    /// Failures that are not requests (a worker lost).
    pub failures: ErrorCounts,
    /// Open loop: the generator's lag, and the arrivals it offered in each
    /// second of the measured window (None and empty in closed loop).
    pub lag: Option<super::api::GeneratorLag>,
    pub offered: Vec<u64>,
    /// Successful requests that ended inside the measured window, whenever
    /// they were meant to start (`RoundResult::completed_in_window`).
    pub completed_in_window: u64,
}

pub struct Tally {
    window: Window,
    last_second: u64,
    recorder: Recorder,
    interval: Interval,
    last_end: Option<Instant>,
    completed_in_window: u64,
    live: Arc<Live>,
    tx: mpsc::UnboundedSender<Interval>,
}

impl Tally {
    pub fn new(window: Window, live: Arc<Live>, tx: mpsc::UnboundedSender<Interval>) -> Tally {
        Tally {
            window,
            last_second: window.seconds() - 1,
            recorder: Recorder::new(0),
            interval: Interval::new(0),
            last_end: None,
            completed_in_window: 0,
            live,
            tx,
        }
    }

    /// Records a request meant to start at `intended` that ended at `end`:
    /// `total` runs from `intended`. One that was meant to start before the
    /// measured window (warm-up) is not recorded.
    pub fn record(
        &mut self,
        query: usize,
        intended: Instant,
        end: Instant,
        result: Result<PhaseTimings, RequestError>,
        retries: u32,
    ) {
        match &result {
            Ok(_) => self.live.requests.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.live.errors.fetch_add(1, Ordering::Relaxed),
        };
        if result.is_ok() && (self.window.measure_start..=self.window.deadline).contains(&end) {
            self.completed_in_window += 1;
        }
        if !self.enter(intended, end) {
            return;
        }
        self.recorder.retries += u64::from(retries);
        match result {
            Ok(mut t) => {
                t.set(
                    Phase::Total,
                    micros(end.saturating_duration_since(intended)),
                );
                // Phases are recorded once, in the second's interval, and
                // added to the window's recorder when the second ends.
                // The first query's per-query total is the total's
                // histogram less the others', derived in `finish`.
                self.recorder.count_success_but_first(query, &t);
                self.interval.phases.record(&t);
                self.interval.requests += 1;
            }
            Err(e) => self.count_error(&e),
        }
    }

    /// Whether a request meant to start at `intended` is measured; if so,
    /// moves to the second `end` falls in (a request still running at the
    /// deadline counts in the last second).
    fn enter(&mut self, intended: Instant, end: Instant) -> bool {
        if intended < self.window.measure_start {
            return false;
        }
        self.last_end = self.last_end.max(Some(end));
        let second = end
            .saturating_duration_since(self.window.measure_start)
            .as_secs()
            .min(self.last_second);
        if second != self.interval.second {
            self.hand_over(Interval::new(second));
        }
        true
    }

    fn count_error(&mut self, e: &RequestError) {
        self.recorder.errors.count(&e.class, &e.message);
        self.interval.errors += 1;
    }

    /// Open loop: an arrival counted as `error` (request_timeout) at `end`
    /// without being sent: in the errors, and in its second's `expired`.
    pub fn expire(&mut self, intended: Instant, end: Instant, error: &RequestError) {
        self.live.errors.fetch_add(1, Ordering::Relaxed);
        if self.enter(intended, end) {
            self.count_error(error);
            self.interval.expired += 1;
        }
    }

    /// Hands the last interval to the collector and the recorder back.
    /// Ends the current second: its phases join the window's recorder and
    /// it goes to the collector; `next` takes its place.
    fn hand_over(&mut self, next: Interval) {
        let done = std::mem::replace(&mut self.interval, next);
        self.recorder.phases.merge(&done.phases);
        if done.requests + done.errors > 0 {
            let _ = self.tx.send(done);
        }
    }

    pub fn finish(&mut self) -> WorkerEnd {
        self.hand_over(Interval::new(0));
        self.recorder.derive_first_query();
        WorkerEnd {
            recorder: std::mem::replace(&mut self.recorder, Recorder::new(0)),
            last_end: self.last_end,
            failures: ErrorCounts::default(),
            lag: None,
            offered: Vec::new(),
            completed_in_window: std::mem::take(&mut self.completed_in_window),
        }
    }
}
