//! What a worker (closed loop) or a shard's arrivals (open loop) measured,
//! kept without a lock: the recorder of the measured window and the
//! current second's interval, handed to the collector as each second ends.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::window::{after, Live, Window};
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
    /// The current interval's second, as instants: an end in it needs no
    /// arithmetic to place (`None`: the last second, which takes every
    /// later end).
    span: (Instant, Option<Instant>),
    /// By phase: the current second's requests whose time was at most
    /// 1 µs, not yet in its interval (all added at once when it is handed
    /// over): `wait` is 0 for every request that found a connection free,
    /// and a histogram record costs a hundred instructions.
    fast: [u64; Phase::COUNT],
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
            span: span(&window, 0, window.seconds() - 1),
            fast: [0; Phase::COUNT],
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
                for (phase, us) in t.iter() {
                    // Recorded as 1 µs, as every time under it is.
                    if us <= 1 {
                        self.fast[phase.index()] += 1;
                    } else {
                        self.interval.phases.record_n(phase, us, 1);
                    }
                }
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
        let (from, to) = self.span;
        if end >= from && to.is_none_or(|to| end < to) {
            return true;
        }
        let second = end
            .saturating_duration_since(self.window.measure_start)
            .as_secs()
            .min(self.last_second);
        if second != self.interval.second {
            self.hand_over(Interval::new(second));
        }
        self.span = span(&self.window, second, self.last_second);
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
        for (i, n) in self.fast.iter_mut().enumerate() {
            if *n > 0 {
                self.interval.phases.record_n(Phase::ALL[i], 1, *n);
                *n = 0;
            }
        }
        let done = std::mem::replace(&mut self.interval, next);
        self.recorder.phases.merge(&done.phases);
        if done.requests + done.errors > 0 {
            let _ = self.tx.send(done);
        }
    }

    pub fn finish(&mut self) -> WorkerEnd {
        self.hand_over(Interval::new(0));
        self.span = span(&self.window, 0, self.last_second);
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

/// Second `second` of the measured window, as instants (`last`: the last
/// second, which has no end).
fn span(window: &Window, second: u64, last: u64) -> (Instant, Option<Instant>) {
    let at = |s: u64| after(window.measure_start, Duration::from_secs(s));
    (at(second), (second < last).then(|| at(second + 1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{new_histogram, record, PhaseHistograms};

    /// Requests over three seconds and past the deadline, with phases at
    /// 0, 1 µs and more: each second's interval and the window's recorder
    /// hold what recording every request directly would.
    #[tokio::test(start_paused = true)]
    async fn the_tally_records_each_request_in_its_second() {
        let begin = Instant::now();
        let window = Window::new(begin, Duration::from_secs(1), Duration::from_millis(2500));
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut tally = Tally::new(window, Arc::new(Live::default()), tx);
        let mut seconds = vec![PhaseHistograms::default(); 3];
        let mut window_total = PhaseHistograms::default();
        let mut by_query = vec![new_histogram(), new_histogram()];
        for i in 0..400u64 {
            // From the warm-up (not recorded) to past the deadline.
            let intended = begin + Duration::from_millis(i * 10);
            let end = intended + Duration::from_micros(i % 7 * 300);
            let mut t = PhaseTimings::default();
            t.set(Phase::Wait, 0);
            t.set(Phase::Acquire, i % 3);
            t.set(Phase::Query, 50 + i % 13);
            let query = usize::from(i % 4 == 0);
            tally.record(query, intended, end, Ok(t), 0);
            if intended < window.measure_start {
                continue;
            }
            t.set(Phase::Total, micros(end - intended));
            let second = (end - window.measure_start).as_secs().min(2) as usize;
            seconds[second].record(&t);
            window_total.record(&t);
            record(&mut by_query[query], t.get(Phase::Total).unwrap());
        }
        let end = tally.finish();
        let mut got = Vec::new();
        while let Ok(iv) = rx.try_recv() {
            got.push(iv);
        }
        assert_eq!(
            got.iter().map(|iv| iv.second).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        for (iv, want) in got.iter().zip(&seconds) {
            for phase in Phase::ALL {
                assert_eq!(iv.phases.get(phase), want.get(phase), "{phase:?}");
            }
        }
        for phase in Phase::ALL {
            assert_eq!(end.recorder.phases.get(phase), window_total.get(phase));
        }
        assert_eq!(end.recorder.per_query, by_query);
        assert_eq!(end.recorder.requests, 300);
    }
}
