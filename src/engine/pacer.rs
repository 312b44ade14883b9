//! Open loop's pacing: the seeded arrival schedule (the same arrivals for
//! every strategy, whatever the number of worker threads). Arrivals are
//! released on `crate::timer::PreciseTimer` (tokio's own timer has a
//! millisecond grain, which would add up to a millisecond of false queueing
//! to every sub-millisecond request).

use std::time::Duration;

use crate::rng::Rng;
use crate::scenario::{ArrivalProcess, Arrivals};

/// Separates the arrival times' random stream from the requests' streams.
const ARRIVAL_STREAM: u64 = 0xA551_7A1E_0F10_0D00;

/// The arrivals of one shard: arrival `i` of the global schedule goes to
/// shard `i % shards`, so every shard count sees the same arrivals.
pub struct Schedule {
    rng: Rng,
    rate: f64,
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
            process: arrivals.process,
            shard: shard as u64,
            shards: shards.max(1) as u64,
            next_index: 0,
            next_offset_s: 0.0,
        };
        s.next_offset_s = s.gap();
        s
    }

    /// The time to the next arrival of the global schedule.
    fn gap(&mut self) -> f64 {
        match self.process {
            ArrivalProcess::Uniform => 1.0 / self.rate,
            // Exponential gaps: -ln(1 - u) / rate, u in [0, 1).
            ArrivalProcess::Poisson => -(1.0 - self.rng.next_f64()).ln() / self.rate,
        }
    }

    /// This shard's next arrival: its global index and its offset from the
    /// start of warm-up.
    pub fn next(&mut self) -> (u64, Duration) {
        loop {
            let (index, offset) = (self.next_index, self.next_offset_s);
            self.next_index += 1;
            self.next_offset_s += self.gap();
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
}
