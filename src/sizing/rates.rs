//! The rate sweep (`poolbench sweep --rates`): every strategy in open loop
//! at each arrival rate — the latency-versus-load curve of per-request
//! connections against a pool — and the rate where each one saturates.
//! Written as sweep.json (`kind = "rate-sweep"`) and sweep.csv.

use serde::{Deserialize, Serialize};

use crate::report::{self, Kind, StrategyReport};

pub const RATE_SWEEP_KIND: &str = "rate-sweep";

/// A strategy saturates at the first rate where it achieves less than this
/// share of what was offered.
pub const KEEPS_UP: f64 = 0.95;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RateSweep {
    pub schema_version: u32,
    /// Always "rate-sweep".
    pub kind: String,
    pub tool: report::Tool,
    pub started_at: String,
    pub interrupted: bool,
    pub host: report::Host,
    pub server: report::Server,
    pub scenario: RateSweepScenario,
    pub settings: RateSweepSettings,
    /// One per rate × strategy, in the order measured.
    pub points: Vec<RatePoint>,
    /// Per strategy: the highest rate it kept up with and the first it did not.
    pub saturation: Vec<Saturation>,
    /// `--instance-index`, `--start-at` and the clock offset, for a sweep
    /// run as one of several synchronised copies.
    #[serde(flatten)]
    pub copies: report::Copies,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RateSweepScenario {
    pub name: String,
    pub path: String,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RateSweepSettings {
    pub rates: Vec<f64>,
    pub arrival: String,
    pub max_in_flight: u32,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub seed: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RatePoint {
    pub strategy: String,
    pub kind: Kind,
    /// The rate asked for.
    pub rate: f64,
    /// What the seeded schedule offered in the window, and what was served.
    pub offered_rate: f64,
    pub achieved_rate: f64,
    pub requests: u64,
    pub errors: u64,
    /// Latency from the intended arrival (corrected for coordinated omission).
    pub total_p50_us: u64,
    pub total_p99_us: u64,
    /// Latency from the start of service (what an uncorrected tool reports).
    pub service_p50_us: u64,
    pub service_p99_us: u64,
    pub queue_p99_us: u64,
    /// Achieved less than 95% of the offered rate.
    pub saturated: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Saturation {
    pub strategy: String,
    pub kind: Kind,
    /// The highest measured rate it kept up with (None: not even the lowest).
    pub kept_up_to: Option<f64>,
    /// The lowest measured rate it could not keep up with (None: it kept up
    /// with every rate measured).
    pub saturates_at: Option<f64>,
}

impl RatePoint {
    /// The point of one strategy measured at `rate` (in open loop).
    pub fn of(rate: f64, r: &StrategyReport) -> RatePoint {
        let p = |phase: &str| r.phases.get(phase);
        let offered_rate = r.offered_rate.unwrap_or(rate);
        let achieved_rate = r.achieved_rate.unwrap_or(r.throughput_rps);
        RatePoint {
            strategy: r.name.clone(),
            kind: r.kind,
            rate,
            offered_rate,
            achieved_rate,
            requests: r.requests,
            errors: r.error_count(),
            total_p50_us: p("total").map_or(0, |s| s.p50_us),
            total_p99_us: p("total").map_or(0, |s| s.p99_us),
            service_p50_us: p("service").map_or(0, |s| s.p50_us),
            service_p99_us: p("service").map_or(0, |s| s.p99_us),
            queue_p99_us: p("queue").map_or(0, |s| s.p99_us),
            saturated: achieved_rate < KEEPS_UP * offered_rate,
        }
    }
}

/// Where each strategy (in the order first measured) saturates.
pub fn saturation(points: &[RatePoint]) -> Vec<Saturation> {
    let mut names: Vec<(&str, Kind)> = Vec::new();
    for p in points {
        if !names.iter().any(|(n, _)| *n == p.strategy) {
            names.push((&p.strategy, p.kind));
        }
    }
    names
        .into_iter()
        .map(|(name, kind)| {
            let mut mine: Vec<&RatePoint> = points.iter().filter(|p| p.strategy == name).collect();
            mine.sort_by(|a, b| a.rate.total_cmp(&b.rate));
            let saturates_at = mine.iter().find(|p| p.saturated).map(|p| p.rate);
            let kept_up_to = mine
                .iter()
                .filter(|p| !p.saturated && saturates_at.is_none_or(|s| p.rate < s))
                .map(|p| p.rate)
                .next_back();
            Saturation {
                strategy: name.to_string(),
                kind,
                kept_up_to,
                saturates_at,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(strategy: &str, rate: f64, achieved: f64) -> RatePoint {
        RatePoint {
            strategy: strategy.into(),
            kind: Kind::Pool,
            rate,
            offered_rate: rate,
            achieved_rate: achieved,
            requests: 0,
            errors: 0,
            total_p50_us: 0,
            total_p99_us: 0,
            service_p50_us: 0,
            service_p99_us: 0,
            queue_p99_us: 0,
            saturated: achieved < KEEPS_UP * rate,
        }
    }

    #[test]
    fn saturation_is_the_first_rate_not_kept_up_with() {
        let points = [
            point("fresh", 100.0, 100.0),
            point("pool", 100.0, 100.0),
            point("fresh", 200.0, 150.0),
            point("pool", 200.0, 199.0),
            point("fresh", 400.0, 160.0),
            point("pool", 400.0, 398.0),
        ];
        let s = saturation(&points);
        assert_eq!(s[0].strategy, "fresh");
        assert_eq!(
            (s[0].kept_up_to, s[0].saturates_at),
            (Some(100.0), Some(200.0))
        );
        assert_eq!((s[1].kept_up_to, s[1].saturates_at), (Some(400.0), None));
    }
}
