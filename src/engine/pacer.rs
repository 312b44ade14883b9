//! Open loop's pacing: the seeded arrival schedule (the same arrivals for
//! every strategy, whatever the number of worker threads), at one rate or
//! with a step from another (`Arrivals::before`, plan's burst). Arrivals are
//! released on `crate::timer::PreciseTimer` (tokio's own timer has a
//! millisecond grain, which would add up to a millisecond of false queueing
//! to every sub-millisecond request).

use std::time::Duration;

use crate::rng::Rng;
use crate::scenario::{ArrivalProcess, Arrivals, RateBefore};

/// Separates the arrival times' random stream from the requests' streams.
const ARRIVAL_STREAM: u64 = 0xA551_7A1E_0F10_0D00;

/// The arrivals of one shard: arrival `i` of the global schedule goes to
/// shard `i % shards`, so every shard count sees the same arrivals.
pub struct Schedule {
    rng: Rng,
    rate: f64,
    before: Option<RateBefore>,
    process: ArrivalProcess,
    shard: u64,
    shards: u64,
    /// The next global arrival: its index and its offset from the start.
    next_index: u64,
    next_offset_s: f64,
}

impl Schedule {
    pub fn new(seed: u64, arrivals: &Arrivals, shard: usize, shards: usize) -> Schedule {
        let mut s = Schedule {
            rng: Rng::new(seed ^ ARRIVAL_STREAM),
            rate: arrivals.rate,
            before: arrivals.before,
            process: arrivals.process,
            shard: shard as u64,
            shards: shards.max(1) as u64,
            next_index: 0,
            next_offset_s: 0.0,
        };
        s.next_offset_s = s.after(0.0);
        s
    }

    /// The global schedule's next arrival after one at `from`: at the rate
    /// in force then. A gap that crosses the step is drawn again from the
    /// step at the new rate, which for Poisson arrivals is exact (the
    /// time to the next arrival has no memory) and for uniform ones starts
    /// the new spacing at the step.
    fn after(&mut self, from: f64) -> f64 {
        match self.before {
            Some(b) if from < b.until.as_secs_f64() => {
                let step = b.until.as_secs_f64();
                let next = from + self.gap(b.rate);
                if next < step {
                    next
                } else {
                    step + self.gap(self.rate)
                }
            }
            _ => from + self.gap(self.rate),
        }
    }

    /// The time to the next arrival at `rate`.
    fn gap(&mut self, rate: f64) -> f64 {
        match self.process {
            ArrivalProcess::Uniform => 1.0 / rate,
            // Exponential gaps: -ln(1 - u) / rate, u in [0, 1).
            ArrivalProcess::Poisson => -(1.0 - self.rng.next_f64()).ln() / rate,
        }
    }

    /// This shard's next arrival: its global index and its offset from the
    /// start of warm-up.
    pub fn next(&mut self) -> (u64, Duration) {
        loop {
            let (index, offset) = (self.next_index, self.next_offset_s);
            self.next_index += 1;
            self.next_offset_s = self.after(offset);
            if index % self.shards == self.shard {
                // An offset beyond Duration's range (a rate near zero) is
                // "never": the caller stops at its deadline.
                let offset = Duration::try_from_secs_f64(offset).unwrap_or(Duration::MAX);
                return (index, offset);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrivals(rate: f64, process: ArrivalProcess) -> Arrivals {
        Arrivals {
            rate,
            process,
            max_in_flight: 10,
            before: None,
        }
    }

    #[test]
    fn the_schedule_is_seeded_and_shared_out_whatever_the_shards() {
        let a = arrivals(1000.0, ArrivalProcess::Poisson);
        let all: Vec<_> = {
            let mut s = Schedule::new(7, &a, 0, 1);
            (0..1000).map(|_| s.next()).collect()
        };
        let mut again = Schedule::new(7, &a, 0, 1);
        assert_eq!(
            all[..10],
            (0..10).map(|_| again.next()).collect::<Vec<_>>()[..]
        );
        let mut other_seed = Schedule::new(8, &a, 0, 1);
        assert_ne!(all[1], other_seed.next());
        // Two shards together hold exactly the one-shard schedule.
        let mut s0 = Schedule::new(7, &a, 0, 2);
        let mut s1 = Schedule::new(7, &a, 1, 2);
        let mut merged: Vec<_> = (0..500).flat_map(|_| [s0.next(), s1.next()]).collect();
        merged.sort();
        assert_eq!(merged, all);
        // A mean gap of 1 ms: 1000 arrivals in about a second.
        let last = all[999].1.as_secs_f64();
        assert!((0.9..1.1).contains(&last), "{last}");
    }

    #[test]
    fn uniform_arrivals_are_evenly_spaced() {
        let mut s = Schedule::new(1, &arrivals(200.0, ArrivalProcess::Uniform), 0, 1);
        let times: Vec<f64> = (0..4).map(|_| s.next().1.as_secs_f64()).collect();
        for (i, t) in times.iter().enumerate() {
            assert!((t - (i as f64 + 1.0) * 0.005).abs() < 1e-9, "{times:?}");
        }
    }

    #[test]
    fn a_step_changes_the_rate_at_its_time() {
        // 100/s for the first second, then 1,000/s.
        let a = Arrivals {
            before: Some(RateBefore {
                rate: 100.0,
                until: Duration::from_secs(1),
            }),
            ..arrivals(1000.0, ArrivalProcess::Poisson)
        };
        let mut s = Schedule::new(3, &a, 0, 1);
        let times: Vec<f64> = (0..3000).map(|_| s.next().1.as_secs_f64()).collect();
        let before = times.iter().filter(|t| **t < 1.0).count();
        let second = times.iter().filter(|t| (1.0..2.0).contains(*t)).count();
        assert!((70..130).contains(&before), "{before} in the first second");
        assert!((900..1100).contains(&second), "{second} in the second");
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
        // Uniform: 10 ms apart, then 1 ms apart from the step.
        let u = Arrivals {
            process: ArrivalProcess::Uniform,
            ..a
        };
        let mut s = Schedule::new(3, &u, 0, 1);
        let times: Vec<f64> = (0..102).map(|_| s.next().1.as_secs_f64()).collect();
        assert!((times[98] - 0.99).abs() < 1e-9, "{}", times[98]);
        assert!((1.0..1.0021).contains(&times[100]), "{}", times[100]);
        assert!((times[101] - times[100] - 0.001).abs() < 1e-9);
    }
}
