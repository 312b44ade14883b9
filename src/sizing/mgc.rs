//! The model `plan` starts its search from and prints beside every measured
//! point: a seeded discrete-event simulation of an M/G/c queue (Poisson
//! arrivals, c connections served first come first served, service times
//! drawn from a measured histogram), predicting the p99 of a request's time
//! from its arrival to the end of its query.
//!
//! Erlang C (`erlang.rs`) assumes exponential service times; the measured
//! ones are not (a floor, then a heavy tail), and the simulation takes them
//! as they are. It is a few hundred thousand heap operations: milliseconds.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use hdrhistogram::Histogram;

use crate::rng::Rng;

/// Arrivals simulated per prediction, the first `WARMUP_SHARE` of them not
/// counted (the queue starts empty, a measured pool starts full and idle).
const ARRIVALS: u64 = 200_000;
const WARMUP_SHARE: u64 = 10;
/// A queue whose predicted p99 passes this is reported as unbounded (ρ near
/// or above 1: the simulated backlog only grows).
const UNBOUNDED_US: u64 = 60_000_000;

/// Service times to draw from: the values of a measured histogram with
/// their cumulative counts.
#[derive(Debug, Clone)]
pub struct ServiceTimes {
    values_us: Vec<u64>,
    cumulative: Vec<u64>,
    mean_us: f64,
}

impl ServiceTimes {
    /// None when the histogram holds no sample.
    pub fn from_histogram(h: &Histogram<u64>) -> Option<ServiceTimes> {
        let mut values_us = Vec::new();
        let mut cumulative = Vec::new();
        let mut total = 0u64;
        for v in h.iter_recorded() {
            total += v.count_at_value();
            // The bucket's representative value, at least 1 µs.
            values_us.push(h.median_equivalent(v.value_iterated_to()).max(1));
            cumulative.push(total);
        }
        (total > 0).then(|| ServiceTimes {
            values_us,
            cumulative,
            mean_us: h.mean(),
        })
    }

    pub fn mean_us(&self) -> f64 {
        self.mean_us
    }

    /// The `q` quantile of the service times themselves.
    pub fn quantile_us(&self, q: f64) -> f64 {
        let total = *self.cumulative.last().unwrap_or(&1);
        let rank = ((q * total as f64).ceil() as u64).max(1);
        let i = self.cumulative.partition_point(|&c| c < rank);
        self.values_us[i.min(self.values_us.len() - 1)] as f64
    }

    fn draw(&self, rng: &mut Rng) -> u64 {
        let total = *self.cumulative.last().unwrap_or(&1);
        let u = rng.below(total);
        let i = self.cumulative.partition_point(|&c| c <= u);
        self.values_us[i.min(self.values_us.len() - 1)]
    }
}

/// What the simulation predicts for one pool size at one rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    /// λ·S/c.
    pub utilisation: f64,
    /// p99 of wait + service, µs; None when the queue is unbounded.
    pub p99_us: Option<f64>,
}

/// Simulates `c` connections serving Poisson arrivals at `rate_per_s` with
/// service times drawn from `service`, seeded.
pub fn predict(service: &ServiceTimes, c: u32, rate_per_s: f64, seed: u64) -> Prediction {
    let c = c.max(1);
    let utilisation = rate_per_s * service.mean_us / 1e6 / f64::from(c);
    if utilisation >= 1.0 {
        return Prediction {
            utilisation,
            p99_us: None,
        };
    }
    let mut rng = Rng::new(seed);
    // When each connection is next free, µs since the first arrival.
    let mut free: BinaryHeap<Reverse<u64>> = (0..c).map(|_| Reverse(0)).collect();
    // Constant bounds within hdrhistogram's limits (low ≥ 1, high ≥ 2 × low,
    // 3 significant figures): `new_with_bounds` refuses only other values.
    let mut responses = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)
        .expect("static histogram bounds are valid");
    let mean_gap_us = 1e6 / rate_per_s;
    let mut now_us = 0.0f64;
    let skip = ARRIVALS / WARMUP_SHARE;
    for n in 0..ARRIVALS {
        // Exponential inter-arrival gap by inversion (1 − u is in (0, 1]).
        now_us += -mean_gap_us * (1.0 - rng.next_f64()).ln();
        let arrival = now_us as u64;
        let Reverse(next_free) = free.pop().unwrap_or(Reverse(0));
        let end = arrival.max(next_free) + service.draw(&mut rng);
        free.push(Reverse(end));
        if n >= skip {
            let _ = responses.record((end - arrival).clamp(1, 3_600_000_000));
        }
    }
    let p99 = responses.value_at_quantile(0.99);
    Prediction {
        utilisation,
        p99_us: (p99 < UNBOUNDED_US).then_some(p99 as f64),
    }
}

/// The smallest pool size whose predicted p99 is within `target_us` at
/// utilisation ≤ `max_utilisation`, searched up to `limit`; None when none is.
pub fn smallest(
    service: &ServiceTimes,
    rate_per_s: f64,
    target_us: f64,
    max_utilisation: f64,
    limit: u32,
    seed: u64,
) -> Option<u32> {
    // No pool size makes a request faster than its own service time.
    if service.quantile_us(0.99) > target_us {
        return None;
    }
    let floor = (rate_per_s * service.mean_us / 1e6 / max_utilisation).ceil() as u32;
    (floor.max(1)..=limit).find(|&c| {
        predict(service, c, rate_per_s, seed)
            .p99_us
            .is_some_and(|p| p <= target_us)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sizing::erlang;

    fn histogram(samples: impl IntoIterator<Item = u64>) -> ServiceTimes {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        for s in samples {
            h.record(s).unwrap();
        }
        ServiceTimes::from_histogram(&h).unwrap()
    }

    #[test]
    fn exponential_service_agrees_with_erlang_c() {
        // Exponential service times, mean 1 ms, drawn by inversion: the
        // simulation is then M/M/c, and its p99 (wait + service) must be
        // close to Erlang C's. At c = 4, λ = 3,000/s (ρ = 0.75): P(wait)
        // = C(4, 3); the p99 of the sum has no closed form in erlang.rs, so
        // compare the wait's p99 plus the service's p99 as an upper bound
        // and the wait's p99 alone as a lower bound.
        let mut rng = Rng::new(9);
        let s = histogram((0..200_000).map(|_| (-1000.0 * (1.0 - rng.next_f64()).ln()) as u64 + 1));
        let p = predict(&s, 4, 3000.0, 1);
        let p99 = p.p99_us.unwrap();
        let wait = erlang::wait_quantile(4, 3.0, 1000.0, 0.99).unwrap();
        let service_p99 = 1000.0 * 100f64.ln();
        assert!((0.74..0.76).contains(&p.utilisation), "{p:?}");
        assert!(p99 > wait && p99 < wait + service_p99, "{p99} vs {wait}");
    }

    #[test]
    fn deterministic_service_on_enough_connections_never_waits_long() {
        // 10 ms per request, 250/s: c = 2 is unstable (ρ 1.25), c = 3 is at
        // ρ 0.83 and c = 8 hardly ever queues (Erlang C puts P(wait) under
        // 1%): its p99 is the service time.
        let s = histogram(std::iter::repeat_n(10_000, 1000));
        assert_eq!(predict(&s, 2, 250.0, 1).p99_us, None);
        let three = predict(&s, 3, 250.0, 1).p99_us.unwrap();
        let eight = predict(&s, 8, 250.0, 1).p99_us.unwrap();
        assert!(three > 15_000.0, "{three}");
        assert!((10_000.0..10_100.0).contains(&eight), "{eight}");
        // The smallest size for p99 ≤ 12 ms is between them.
        let c = smallest(&s, 250.0, 12_000.0, 0.9, 100, 1).unwrap();
        assert!((4..=8).contains(&c), "{c}");
        // Seeded: the same numbers again.
        assert_eq!(predict(&s, 3, 250.0, 1), predict(&s, 3, 250.0, 1));
    }

    #[test]
    fn a_heavy_tail_needs_more_connections_than_its_mean_says() {
        // Same mean (1 ms): constant, or 0.5 ms with 1 in 20 at 10.5 ms.
        let constant = histogram(std::iter::repeat_n(1000, 1000));
        let tail = histogram((0..1000).map(|i| if i % 20 == 0 { 10_500 } else { 500 }));
        assert!((constant.mean_us() - tail.mean_us()).abs() < 20.0);
        let a = smallest(&constant, 2000.0, 5000.0, 0.9, 100, 3).unwrap();
        let b = smallest(&tail, 2000.0, 5000.0, 0.9, 100, 3);
        assert!(b.is_none_or(|b| b > a), "{a} {b:?}");
    }
}
