//! `plan`'s search by measurement, as data: which pool size to measure next
//! given the verdicts so far, and the verdict of one measured point from
//! its rounds. The command (`commands/plan.rs`) measures; this decides.
//!
//! The search starts at the model's proposal. A size that meets the target
//! bounds the answer from above, one that misses from below. From a met
//! size it steps down by 1, 2, 4 … until a size misses, from a missed one up
//! by 1, 2, 4 … until a size meets (the model is usually close, so the
//! first step is the decisive one), then bisects between the two. It ends when a met size sits right above a missed one (or
//! above 0: a pool of 1 met), or when the limit (the connection budget, or
//! the most poolbench opens) missed and so did the sizes below the start,
//! halving: a pool with more connections than the server's CPUs serve
//! queues at the server instead, so its p99 can grow with its size, and a
//! proposal that is too large sends the walk up, away from the answer. The
//! first of those halvings to meet is walked down from like any met size.

use serde::Serialize;

/// A measured round's outcome, as the verdict needs it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Round {
    /// From the intended arrival (open loop), successful requests.
    pub p99_ms: f64,
    /// The arrivals the schedule offered in the window, per second of it.
    pub offered_rate: f64,
    /// Successful requests that ended inside the window, per second of it
    /// (as pgbench -R counts: the queue left at the end is not served).
    pub achieved_rate: f64,
    pub errors: u64,
    /// The wait for a connection, p99 (plan's burst shows it).
    pub acquire_p99_ms: f64,
    /// Share of requests that failed.
    #[serde(skip)]
    pub error_rate: f64,
    /// The round's own mean query time (a connection held), ms.
    #[serde(skip)]
    pub service_mean_ms: f64,
}

/// The most a round's achieved rate may fall short of its offered rate and
/// still count as serving it, and the shortfall printed beside a point.
pub const RATE_SHORTFALL: f64 = 0.02;
/// A round with more failed requests than this misses whatever its p99.
pub const MAX_ERROR_RATE: f64 = 0.01;

impl Round {
    /// A round that met or missed by its p99 and rate alone (the tests').
    #[cfg(test)]
    pub fn measured(p99_ms: f64, offered_rate: f64, achieved_rate: f64) -> Round {
        Round {
            p99_ms,
            offered_rate,
            achieved_rate,
            errors: 0,
            acquire_p99_ms: 0.0,
            error_rate: 0.0,
            service_mean_ms: 1.0,
        }
    }

    pub fn met(&self, target_p99_ms: f64) -> bool {
        self.p99_ms <= target_p99_ms && self.error_rate <= MAX_ERROR_RATE && self.kept_up()
    }

    /// Achieved within 2% of offered: the window's completions kept up
    /// with its arrivals.
    pub fn kept_up(&self) -> bool {
        !self.short()
    }

    /// Achieved more than 2% below offered: the queue grew.
    pub fn short(&self) -> bool {
        self.achieved_rate < self.offered_rate * (1.0 - RATE_SHORTFALL)
    }

    /// Achieved more than 2% above offered (printed, not a miss): a queue
    /// left by the warm-up drained in the window.
    pub fn over(&self) -> bool {
        self.achieved_rate > self.offered_rate * (1.0 + RATE_SHORTFALL)
    }

    /// The connections the round kept busy on average (Little's law):
    /// achieved rate × its mean service time.
    pub fn busy(&self) -> f64 {
        self.achieved_rate * self.service_mean_ms / 1000.0
    }
}

/// Rounds a point takes in all when its rounds disagree (or `--rounds`,
/// when more).
pub const NOISY_ROUNDS: u32 = 5;
/// A noisy point met when no more than one round in this many missed.
pub const MISS_ONE_IN: usize = 5;

/// A point's verdict from its rounds so far, or None when it needs another
/// round. With `planned` rounds taken: all met, or all missed, decide; when
/// they disagree (a noisy size, 1 or 2 of 3 met), rounds are added one at a
/// time up to [`NOISY_ROUNDS`] (or `planned`, when more), and the size met
/// only if at most one round in [`MISS_ONE_IN`] missed (4 of 5, 8 of 10):
/// a size that misses one five-second window in three would miss it in
/// production as often, and a fresh run of it is as likely to miss as to
/// meet. A point that has already missed too often for that stops early.
pub fn verdict(rounds: &[Round], target_p99_ms: f64, planned: u32) -> Option<bool> {
    let n = rounds.len();
    if n == 0 || n < planned as usize {
        return None;
    }
    let met = rounds.iter().filter(|r| r.met(target_p99_ms)).count();
    let missed = n - met;
    if met == 0 || missed == 0 {
        return Some(missed == 0);
    }
    let all = planned.max(NOISY_ROUNDS) as usize;
    if missed * MISS_ONE_IN > all {
        return Some(false);
    }
    (n >= all).then_some(missed * MISS_ONE_IN <= n)
}

/// The median of the rounds' p99 and their range.
pub fn spread(rounds: &[Round]) -> Option<(f64, f64, f64)> {
    let mut v: Vec<f64> = rounds.iter().map(|r| r.p99_ms).collect();
    v.sort_by(f64::total_cmp);
    let median = *v.get(v.len() / 2)?;
    Some((median, v[0], v[v.len() - 1]))
}

/// Where the search is.
#[derive(Debug, Clone)]
pub struct Search {
    /// The largest size that missed (0: none yet).
    missed: u32,
    /// The smallest size that met.
    met: Option<u32>,
    /// The next step up from `missed` while no size has met.
    step_up: u32,
    /// The next step down from `met` while no size has missed.
    step_down: u32,
    limit: u32,
    start: u32,
    started: bool,
    /// Once every size from the start up to the limit missed: the last
    /// size tried below the start, halving (a pool with more connections
    /// than the server's CPUs serve queues at the server instead, and its
    /// p99 can grow with its size).
    below: Option<u32>,
}

impl Search {
    /// From the model's `proposal`, never above `limit` (≥ 1).
    pub fn new(proposal: u32, limit: u32) -> Search {
        let limit = limit.max(1);
        Search {
            missed: 0,
            met: None,
            step_up: 1,
            step_down: 1,
            limit,
            start: proposal.clamp(1, limit),
            started: false,
            below: None,
        }
    }

    /// The next size to measure, or None when the search is over.
    pub fn next_size(&mut self) -> Option<u32> {
        if !self.started {
            self.started = true;
            return Some(self.start);
        }
        match self.met {
            Some(m) if m <= self.missed + 1 => None,
            // No size below a met one missed yet: down by 1, 2, 4 …
            Some(m) if self.missed == 0 => {
                let next = m.saturating_sub(self.step_down).max(1);
                self.step_down = self.step_down.saturating_mul(2);
                Some(next)
            }
            Some(m) => Some(self.missed + (m - self.missed) / 2),
            // Every size from the start up missed: below it, halving.
            None if self.missed >= self.limit => {
                let from = self.below.unwrap_or(self.start);
                if from <= 1 {
                    return None;
                }
                self.below = Some(from / 2);
                self.below
            }
            None => {
                let next = (self.missed + self.step_up).min(self.limit);
                self.step_up = self.step_up.saturating_mul(2);
                Some(next)
            }
        }
    }

    /// Records the verdict on `size`.
    pub fn record(&mut self, size: u32, met: bool) {
        if met {
            if self.met.is_none() && self.below.is_some() {
                // Found below the start: the misses above it say nothing
                // of the sizes below it, which the walk down measures.
                self.missed = 0;
            }
            self.met = Some(self.met.map_or(size, |m| m.min(size)));
        } else {
            self.missed = self.missed.max(size);
        }
    }

    /// Whether a size that fell well short of the rate can say that the
    /// server, not the pool, is the limit: only while no size has met. Once
    /// one has, the server served the rate, and a smaller pool short of it
    /// is the pool's limit (a pool of 1 can keep its one connection less
    /// than busy and still be what holds the rate back).
    pub fn server_may_limit(&self) -> bool {
        self.met.is_none() && self.below.is_none()
    }

    /// The answer lies below the model's proposal, every size from it up
    /// having missed.
    pub fn found_below(&self) -> bool {
        self.below.is_some() && self.met.is_some()
    }

    /// The smallest size that met, once the search is over.
    pub fn answer(&self) -> Option<u32> {
        self.met
    }

    /// The limit missed: no size up to it meets.
    pub fn exhausted(&self) -> bool {
        self.met.is_none() && self.missed >= self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a search against a known minimum and returns the sizes measured.
    fn walk(proposal: u32, limit: u32, minimum: u32) -> (Vec<u32>, Option<u32>) {
        let mut s = Search::new(proposal, limit);
        let mut seen = Vec::new();
        while let Some(c) = s.next_size() {
            assert!(!seen.contains(&c), "{c} measured twice: {seen:?}");
            seen.push(c);
            s.record(c, c >= minimum);
        }
        (seen, s.answer())
    }

    #[test]
    fn lands_on_the_minimum_from_any_proposal() {
        for minimum in 1..=40 {
            for proposal in 1..=40 {
                let (seen, answer) = walk(proposal, 64, minimum);
                assert_eq!(answer, Some(minimum), "from {proposal}: {seen:?}");
                // The decisive pair was measured: the answer and one fewer.
                assert!(seen.contains(&minimum));
                assert!(minimum == 1 || seen.contains(&(minimum - 1)), "{seen:?}");
                assert!(seen.len() <= 14, "from {proposal} to {minimum}: {seen:?}");
            }
        }
    }

    #[test]
    fn a_good_proposal_costs_two_points() {
        assert_eq!(walk(6, 64, 6).0, [6, 5]);
        assert_eq!(walk(5, 64, 6).0, [5, 6]);
        assert_eq!(walk(7, 64, 6).0, [7, 6, 4, 5]);
    }

    #[test]
    fn the_limit_ends_a_search_that_never_meets() {
        let mut s = Search::new(4, 10);
        let mut seen = Vec::new();
        while let Some(c) = s.next_size() {
            seen.push(c);
            s.record(c, false);
        }
        // Up from the proposal to the limit, then below it, halving.
        assert_eq!(seen, [4, 5, 7, 10, 2, 1]);
        assert!(s.exhausted());
        assert_eq!(s.answer(), None);
    }

    /// The walk down from 24 that issue 29's quiet plan took (sizing at
    /// half its capacity, on a tmpfs): 24, 23, 21, 17 and 9 met, 1 fell
    /// short of the rate. The server served the rate with 9, so 1's
    /// shortfall is the pool's: the search goes on between 1 and 9 rather
    /// than ending on "the server is the limit" with 2 to 8 unmeasured.
    #[test]
    fn a_short_size_below_a_met_one_is_the_pools_limit() {
        let mut s = Search::new(24, 97);
        assert!(s.server_may_limit());
        for c in [24, 23, 21, 17, 9] {
            assert_eq!(s.next_size(), Some(c));
            s.record(c, true);
        }
        assert_eq!(s.next_size(), Some(1));
        s.record(1, false);
        assert!(!s.server_may_limit());
        assert_eq!(s.next_size(), Some(5));
    }

    /// Issue 29's second quiet plan on a tmpfs (sizing at half its
    /// capacity, 2 CPUs): the model proposed 49, and 49 to 97 missed,
    /// worse as they grew (12–25 ms), where 9 to 24 had met (2.6–7.3 ms)
    /// in the run before. Every size from the proposal up missing, the
    /// search halves below it, then walks down to the minimum.
    #[test]
    fn a_pool_too_large_for_the_server_sends_the_search_below_the_proposal() {
        let meets = |c: u32| (5..=30).contains(&c);
        let mut s = Search::new(49, 97);
        let mut seen = Vec::new();
        while let Some(c) = s.next_size() {
            assert!(!seen.contains(&c), "{c} measured twice: {seen:?}");
            seen.push(c);
            s.record(c, meets(c));
        }
        assert_eq!(
            seen,
            [49, 50, 52, 56, 64, 80, 97, 24, 23, 21, 17, 9, 1, 5, 3, 4]
        );
        assert_eq!(s.answer(), Some(5));
        assert!(s.found_below());
        // A short small pool below the proposal is the pool's limit.
        assert!(!s.server_may_limit());
    }

    fn r(p99_ms: f64, achieved_rate: f64) -> Round {
        Round::measured(p99_ms, 100.0, achieved_rate)
    }

    #[test]
    fn the_verdict_needs_agreement_or_more_rounds() {
        let (met, missed) = (r(5.0, 100.0), r(12.0, 100.0));
        assert_eq!(verdict(&[met, met, met], 10.0, 3), Some(true));
        assert_eq!(verdict(&[missed, missed, missed], 10.0, 3), Some(false));
        // Fewer than planned: not yet.
        assert_eq!(verdict(&[met, met], 10.0, 3), None);
        assert_eq!(verdict(&[], 10.0, 3), None);
        // 2 of 3, 3 of 4: more rounds; 4 of 5 met; a second miss decides.
        assert_eq!(verdict(&[met, missed, met], 10.0, 3), None);
        assert_eq!(verdict(&[met, missed, met, met], 10.0, 3), None);
        assert_eq!(verdict(&[met, missed, met, met, met], 10.0, 3), Some(true));
        assert_eq!(verdict(&[met, missed, met, missed], 10.0, 3), Some(false));
        assert_eq!(verdict(&[missed, met, met], 10.0, 3), None);
        assert_eq!(verdict(&[missed, met, missed], 10.0, 3), Some(false));
        // 5 of 7 met (what plan-tail's pool 5 measured, and fresh runs
        // then missed 3 of 3) is no longer a met size.
        let seven = [missed, met, met, missed, met, met, met];
        assert_eq!(verdict(&seven[..4], 10.0, 3), Some(false));
        // More rounds asked for: one miss in five of them.
        let mut v = vec![met; 9];
        v.push(missed);
        assert_eq!(verdict(&v[..9], 10.0, 10), None);
        assert_eq!(verdict(&v, 10.0, 10), Some(true));
        v[0] = missed;
        assert_eq!(verdict(&v, 10.0, 10), Some(true));
        v[1] = missed;
        assert_eq!(verdict(&v, 10.0, 10), Some(false));
        assert_eq!(verdict(&[met, missed], 10.0, 2), None);
        assert_eq!(verdict(&[met, missed, met, met, met], 10.0, 2), Some(true));
        // One round asked for: it decides.
        assert_eq!(verdict(&[missed], 10.0, 1), Some(false));
        // Fast but short of the offered rate: not served.
        assert_eq!(
            verdict(&[r(5.0, 90.0), r(5.0, 90.0), r(5.0, 90.0)], 10.0, 3),
            Some(false)
        );
        assert!(r(5.0, 98.5).kept_up() && !r(5.0, 97.9).kept_up());
        // Above the offered rate (a warm-up's queue drained): served.
        assert!(r(5.0, 103.0).kept_up() && r(5.0, 103.0).over());
        assert_eq!(
            spread(&[r(5.0, 1.0), r(12.0, 1.0), r(6.0, 1.0)]),
            Some((6.0, 5.0, 12.0))
        );
    }
}
