//! The noise test: a percentile bootstrap confidence interval of the change of
//! the mean between two small samples (one value per round).
//!
//! Rounds are few (3–10), too few to trust a normal approximation; the
//! bootstrap makes no assumption about their distribution. It is seeded, so
//! the same two reports always get the same interval and the same verdict.

use crate::workload::params::Rng;

/// Resamples per interval.
pub const RESAMPLES: usize = 10_000;
/// Coverage of the interval.
pub const CONFIDENCE: f64 = 0.95;
const SEED: u64 = 0x706f_6f6c_6265_6e63; // "poolbenc"

/// How the change between two means is expressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// (candidate − baseline) / baseline, in percent.
    Relative,
    /// candidate − baseline, in the samples' own unit.
    Absolute,
}

impl Change {
    /// The change from `base` to `cand`. A relative change from 0 is 0 when
    /// nothing changed and infinite otherwise.
    pub fn of(self, base: f64, cand: f64) -> f64 {
        match self {
            Change::Absolute => cand - base,
            Change::Relative if base == 0.0 => {
                if cand == 0.0 {
                    0.0
                } else {
                    f64::INFINITY.copysign(cand)
                }
            }
            Change::Relative => (cand - base) / base * 100.0,
        }
    }
}

/// A point estimate and its confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
}

impl Interval {
    /// Whether the interval excludes "no change".
    pub fn significant(&self) -> bool {
        self.low > 0.0 || self.high < 0.0
    }

    /// Its half-width, the margin of error: the smallest change these
    /// rounds tell from noise (a change within ± this of 0 cannot be).
    pub fn margin(&self) -> f64 {
        (self.high - self.low) / 2.0
    }
}

/// The rounds each report would need for the margin of error to shrink to
/// `target`, from a `margin` measured with `base_rounds` and `cand_rounds`.
/// The standard error of a difference of two means goes as
/// √(1/n_b + 1/n_c) (equal noise on both sides assumed), so with n rounds
/// each the margin is `margin` × √((2/n) / (1/n_b + 1/n_c)). An estimate:
/// the margin itself comes from a few noisy rounds. At least [`MIN_ROUNDS`]
/// rounds (the fewest the bootstrap is run on); None when `target` is not
/// positive or the margin is not finite.
pub fn rounds_for(margin: f64, base_rounds: usize, cand_rounds: usize, target: f64) -> Option<u32> {
    if target <= 0.0 || !margin.is_finite() || base_rounds == 0 || cand_rounds == 0 {
        return None;
    }
    let spread = 1.0 / base_rounds as f64 + 1.0 / cand_rounds as f64;
    let n = 2.0 * (margin / target).powi(2) / spread;
    // Above 1000 (the most [run] rounds allows) the number says "never".
    Some(n.ceil().clamp(MIN_ROUNDS as f64, 1_000_000.0) as u32)
}

/// Rounds each report needs before differences are tested against noise.
pub const MIN_ROUNDS: usize = 3;

pub fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        0.0
    } else {
        xs.iter().sum::<f64>() / xs.len() as f64
    }
}

/// The bootstrap interval of `change(mean(base), mean(cand))`: resample each
/// sample with replacement, [`RESAMPLES`] times, and take the central
/// [`CONFIDENCE`] of the changes. None when a sample is empty.
pub fn bootstrap(base: &[f64], cand: &[f64], change: Change) -> Option<Interval> {
    if base.is_empty() || cand.is_empty() {
        return None;
    }
    let mut rng = Rng::new(SEED);
    let mut resampled_mean = |xs: &[f64]| {
        let n = xs.len();
        let sum: f64 = (0..n)
            // `below(n)` is < n, so the index is in bounds.
            .map(|_| xs[rng.below(n as u64) as usize])
            .sum();
        sum / n as f64
    };
    let mut changes: Vec<f64> = (0..RESAMPLES)
        .map(|_| {
            let b = resampled_mean(base);
            let c = resampled_mean(cand);
            change.of(b, c)
        })
        .collect();
    changes.sort_by(f64::total_cmp);
    let tail = (1.0 - CONFIDENCE) / 2.0;
    let last = (changes.len() - 1) as f64;
    // q is in [0, 1], so the index is in 0..=len-1 of a non-empty vector.
    let at = |q: f64| changes[(q * last).round() as usize];
    Some(Interval {
        estimate: change.of(mean(base), mean(cand)),
        low: at(tail),
        high: at(1.0 - tail),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clear_shift_is_significant() {
        let base = [1000.0, 1010.0, 990.0, 1005.0, 995.0];
        let cand = [1300.0, 1320.0, 1290.0, 1310.0, 1280.0];
        let i = bootstrap(&base, &cand, Change::Relative).unwrap();
        assert!((i.estimate - 30.0).abs() < 0.1, "{i:?}");
        assert!(i.significant());
        assert!(i.low > 25.0 && i.high < 35.0, "{i:?}");
        // Three rounds each are enough when the samples do not overlap.
        let i = bootstrap(&[100.0, 102.0, 98.0], &[80.0, 79.0, 82.0], Change::Relative).unwrap();
        assert!(i.significant() && i.high < 0.0, "{i:?}");
    }

    #[test]
    fn identical_samples_are_not_significant() {
        let xs = [500.0, 700.0, 600.0, 650.0];
        let i = bootstrap(&xs, &xs, Change::Relative).unwrap();
        assert_eq!(i.estimate, 0.0);
        assert!(!i.significant(), "{i:?}");
        assert!(i.low < 0.0 && i.high > 0.0, "{i:?}");
        let flat = [2.0, 2.0, 2.0];
        let i = bootstrap(&flat, &flat, Change::Absolute).unwrap();
        assert_eq!((i.low, i.estimate, i.high), (0.0, 0.0, 0.0));
        assert!(!i.significant());
    }

    #[test]
    fn overlapping_noisy_samples_are_not_significant() {
        // The candidate's mean is 15% higher, but its rounds overlap the
        // baseline's: a difference noise could make.
        let base = [1000.0, 1400.0, 800.0, 1200.0, 600.0];
        let cand = [1500.0, 900.0, 1300.0, 700.0, 1350.0];
        let i = bootstrap(&base, &cand, Change::Relative).unwrap();
        assert!(i.estimate > 10.0, "{i:?}");
        assert!(!i.significant(), "{i:?}");
    }

    #[test]
    fn absolute_change_and_determinism() {
        let base = [0.0, 0.001, 0.0];
        let cand = [0.05, 0.06, 0.04];
        let a = bootstrap(&base, &cand, Change::Absolute).unwrap();
        let b = bootstrap(&base, &cand, Change::Absolute).unwrap();
        assert_eq!(a, b);
        assert!(a.significant() && a.low > 0.0);
        assert!(bootstrap(&[], &cand, Change::Absolute).is_none());
    }

    #[test]
    fn more_rounds_of_the_same_noise_narrow_the_margin() {
        let base = [1000.0, 1060.0, 950.0];
        let cand = [1010.0, 940.0, 1050.0];
        let three = bootstrap(&base, &cand, Change::Relative).unwrap().margin();
        let nine = |xs: &[f64]| -> Vec<f64> { xs.iter().cycle().take(9).copied().collect() };
        let nine = bootstrap(&nine(&base), &nine(&cand), Change::Relative)
            .unwrap()
            .margin();
        assert!(three > 3.0 && nine < three * 0.75, "{three} {nine}");
        // Halving the margin takes four times the rounds.
        assert_eq!(rounds_for(8.0, 3, 3, 4.0), Some(12));
        assert_eq!(rounds_for(8.0, 5, 5, 8.0), Some(5));
        assert_eq!(rounds_for(1.0, 5, 5, 10.0), Some(3));
        assert_eq!(rounds_for(0.0, 5, 5, 10.0), Some(3));
        assert_eq!(rounds_for(8.0, 5, 5, 0.0), None);
    }

    #[test]
    fn relative_change_from_zero() {
        assert_eq!(Change::Relative.of(0.0, 0.0), 0.0);
        assert_eq!(Change::Relative.of(0.0, 5.0), f64::INFINITY);
        assert_eq!(Change::Relative.of(200.0, 150.0), -25.0);
    }
}
