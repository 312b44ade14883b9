//! sweep.json, schema_version 1: what `sweep` measured and `plan` reads,
//! and the RTT sweep's (`--rtts`): its points and the setup-cost fit.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::usl::UslFit;
use crate::metrics::{Phase, Summary};
use crate::report;
use crate::report::{Kind, StrategyReport};

pub const SWEEP_SCHEMA_VERSION: u32 = 1;
/// Tells a sweep.json from a report.json.
pub const SWEEP_KIND: &str = "sweep";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepReport {
    pub schema_version: u32,
    /// Always "sweep".
    pub kind: String,
    pub tool: report::Tool,
    pub started_at: String,
    /// True when Ctrl-C or SIGTERM cut the sweep short.
    pub interrupted: bool,
    pub host: report::Host,
    pub server: report::Server,
    pub scenario: SweepScenario,
    pub settings: SweepSettings,
    /// One per concurrency × pool size, in the order measured.
    pub points: Vec<SweepPoint>,
    /// The scenario's fresh strategy, once per concurrency (empty when it
    /// has none).
    pub fresh: Vec<FreshPoint>,
    /// Per concurrency: the USL fit and the knee.
    pub analysis: Vec<Analysis>,
    /// `--instance-index`, `--start-at` and the clock offset, for a sweep
    /// run as one of several synchronised copies.
    #[serde(flatten)]
    pub copies: report::Copies,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepScenario {
    pub name: String,
    pub path: String,
    pub sha256: String,
    /// The pool strategy whose settings (recycling, wait_timeout) every
    /// point uses, with max_size = min_size = the point's pool size.
    pub template: String,
    pub recycling: String,
    pub wait_timeout_ms: Option<f64>,
    /// The fresh strategy measured for the setup cost, if any.
    pub fresh_strategy: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepSettings {
    pub pool_sizes: Vec<usize>,
    pub concurrency: Vec<u32>,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub seed: u64,
}

/// Percentiles of one phase, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
}

impl From<&Summary> for Percentiles {
    fn from(s: &Summary) -> Percentiles {
        Percentiles {
            mean_us: s.mean_us,
            p50_us: s.p50_us,
            p90_us: s.p90_us,
            p99_us: s.p99_us,
            p999_us: s.p999_us,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepPoint {
    pub concurrency: u32,
    pub pool_size: usize,
    pub requests: u64,
    pub errors: u64,
    pub error_classes: BTreeMap<String, u64>,
    pub throughput_rps: f64,
    pub total: Percentiles,
    pub acquire: Percentiles,
    pub query: Percentiles,
    /// The mean of the query phase: how long a request holds a connection.
    pub service_time_mean_us: f64,
    /// Time to open the pool's `pool_size` connections before measuring.
    pub startup_ms: f64,
    /// Cut short by an interruption: measured for less than the duration.
    /// Kept, but never the knee nor part of the fit or a plan.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}

/// The phases a pool point keeps, in the order of sweep.csv and the table.
pub const SWEEP_PHASES: [Phase; 3] = [Phase::Total, Phase::Acquire, Phase::Query];

impl SweepPoint {
    /// The percentiles of a phase in [`SWEEP_PHASES`] (zero for the others).
    pub fn phase(&self, phase: Phase) -> Percentiles {
        match phase {
            Phase::Total => self.total,
            Phase::Acquire => self.acquire,
            Phase::Query => self.query,
            _ => Percentiles::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FreshPoint {
    pub concurrency: u32,
    pub requests: u64,
    pub errors: u64,
    pub throughput_rps: f64,
    pub total: Percentiles,
    /// TCP, TLS, authentication: what opening one connection costs.
    pub connect: Percentiles,
    pub query: Percentiles,
    pub close: Percentiles,
    /// Connections opened per request (above 1 for parallel queries).
    pub connections_per_request: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Analysis {
    pub concurrency: u32,
    pub best_pool_size: usize,
    pub best_throughput_rps: f64,
    /// The smallest measured pool size reaching ≥ 95% of the best measured
    /// throughput at this concurrency.
    pub knee_pool_size: usize,
    /// Null with fewer than 3 pool sizes.
    pub usl: Option<UslFit>,
}

/// The share of the best throughput that marks the knee.
pub const KNEE_FRACTION: f64 = 0.95;

impl SweepReport {
    pub fn points_at(&self, concurrency: u32) -> Vec<&SweepPoint> {
        let mut points: Vec<&SweepPoint> = self
            .points
            .iter()
            .filter(|p| p.concurrency == concurrency)
            .collect();
        points.sort_by_key(|p| p.pool_size);
        points
    }

    pub fn fresh_at(&self, concurrency: u32) -> Option<&FreshPoint> {
        self.fresh.iter().find(|f| f.concurrency == concurrency)
    }
}

/// The knee and the USL fit of the points at one concurrency.
pub fn analyse(concurrency: u32, points: &[&SweepPoint]) -> Option<Analysis> {
    let best = points
        .iter()
        .max_by(|a, b| a.throughput_rps.total_cmp(&b.throughput_rps))?;
    let knee = points
        .iter()
        .filter(|p| p.throughput_rps >= KNEE_FRACTION * best.throughput_rps)
        .map(|p| p.pool_size)
        .min()
        .unwrap_or(best.pool_size);
    let xy: Vec<(f64, f64)> = points
        .iter()
        .map(|p| (p.pool_size as f64, p.throughput_rps))
        .collect();
    Some(Analysis {
        concurrency,
        best_pool_size: best.pool_size,
        best_throughput_rps: best.throughput_rps,
        knee_pool_size: knee,
        usl: super::usl::fit(&xy),
    })
}

/// Tells an RTT sweep's sweep.json from a pool-size sweep's.
pub const RTT_SWEEP_KIND: &str = "rtt-sweep";

/// `poolbench sweep --rtts`: every strategy across an emulated link at each
/// round-trip time, on one server, and the setup cost of a per-request
/// connection fitted as a + b × RTT.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RttSweep {
    pub schema_version: u32,
    /// Always "rtt-sweep".
    pub kind: String,
    pub tool: report::Tool,
    pub started_at: String,
    pub interrupted: bool,
    pub host: report::Host,
    pub server: report::Server,
    pub scenario: RttSweepScenario,
    pub settings: RttSweepSettings,
    /// One per RTT × strategy, in the order measured.
    pub points: Vec<RttPoint>,
    /// Per fresh × pool strategy pair with at least two RTTs measured.
    pub fits: Vec<SetupCostFit>,
    /// `--instance-index`, `--start-at` and the clock offset, for a sweep
    /// run as one of several synchronised copies.
    #[serde(flatten)]
    pub copies: report::Copies,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RttSweepScenario {
    pub name: String,
    pub path: String,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RttSweepSettings {
    pub rtts_ms: Vec<f64>,
    /// The scenario's jitter, capped at half of each RTT.
    pub jitter_ms: f64,
    pub concurrency: u32,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub seed: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RttPoint {
    pub rtt_ms: f64,
    pub strategy: String,
    pub kind: Kind,
    pub requests: u64,
    pub errors: u64,
    pub throughput_rps: f64,
    pub total: Percentiles,
    /// Fresh: the connect phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect: Option<Percentiles>,
    /// Median round trips of a connection's setup and of a request.
    pub connect_round_trips: Option<u64>,
    pub request_round_trips: Option<u64>,
}

impl RttPoint {
    pub fn of(rtt_ms: f64, r: &StrategyReport) -> RttPoint {
        let rt = r.round_trips.as_ref();
        RttPoint {
            rtt_ms,
            strategy: r.name.clone(),
            kind: r.kind,
            requests: r.requests,
            errors: r.error_count(),
            throughput_rps: r.throughput_rps,
            total: r.total().map(Percentiles::from).unwrap_or_default(),
            connect: match r.kind {
                Kind::Fresh => r.phases.get(Phase::Connect.as_str()).map(Percentiles::from),
                Kind::Pool => None,
            },
            connect_round_trips: rt.and_then(|rt| rt.connect.as_ref()).map(|c| c.p50),
            request_round_trips: rt.and_then(|rt| rt.request.as_ref()).map(|c| c.p50),
        }
    }
}

/// A per-request connection's setup cost (fresh total p50 − pool total
/// p50) against the RTT, fitted as a + b × RTT by least squares: `b` is
/// the number of round trips an application pays per request by not
/// pooling, `a` what the connection costs without any network.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetupCostFit {
    pub fresh: String,
    pub pool: String,
    pub points: Vec<SetupCostPoint>,
    pub a_ms: f64,
    pub b: f64,
    /// Null when every point lies exactly on the line's x (one RTT).
    pub r_squared: Option<f64>,
    /// What the emulator counted at the largest RTT: the fresh request's
    /// round trips minus the pool request's (medians), to check `b` by.
    pub counted_round_trips: Option<i64>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct SetupCostPoint {
    pub rtt_ms: f64,
    pub setup_cost_ms: f64,
}

/// The fits of every fresh × pool pair measured at two RTTs or more.
pub fn setup_cost_fits(points: &[RttPoint]) -> Vec<SetupCostFit> {
    // A fresh strategy's setup cost is measured against each pool.
    let (mut fresh_names, mut pool_names): (Vec<&str>, Vec<&str>) = (Vec::new(), Vec::new());
    for p in points {
        let names = match p.kind {
            Kind::Fresh => &mut fresh_names,
            Kind::Pool => &mut pool_names,
        };
        if !names.contains(&p.strategy.as_str()) {
            names.push(&p.strategy);
        }
    }
    let at = |name: &str, rtt: f64| {
        points
            .iter()
            .find(|p| p.strategy == name && p.rtt_ms == rtt && p.requests > 0)
    };
    let mut fits = Vec::new();
    for &fresh in &fresh_names {
        for &pool in &pool_names {
            let pairs: Vec<(&RttPoint, &RttPoint)> = points
                .iter()
                .filter(|p| p.strategy == fresh && p.requests > 0)
                .filter_map(|f| Some((f, at(pool, f.rtt_ms)?)))
                .collect();
            let xy: Vec<(f64, f64)> = pairs
                .iter()
                .map(|(f, p)| {
                    (
                        f.rtt_ms,
                        (f.total.p50_us as f64 - p.total.p50_us as f64) / 1000.0,
                    )
                })
                .collect();
            let Some((a, b, r_squared)) = line_fit(&xy) else {
                continue;
            };
            let counted = pairs.last().and_then(|(f, p)| {
                Some(f.request_round_trips? as i64 - p.request_round_trips? as i64)
            });
            fits.push(SetupCostFit {
                fresh: fresh.to_string(),
                pool: pool.to_string(),
                points: xy
                    .iter()
                    .map(|&(rtt_ms, cost)| SetupCostPoint {
                        rtt_ms,
                        setup_cost_ms: report::round(cost, 3),
                    })
                    .collect(),
                a_ms: report::round(a, 3),
                b: report::round(b, 3),
                r_squared: r_squared.map(|r| report::round(r, 4)),
                counted_round_trips: counted,
            });
        }
    }
    fits
}

/// Least squares y = a + b·x over points with at least two distinct x:
/// (a, b, R²; R² None when every y is the same).
pub fn line_fit(xy: &[(f64, f64)]) -> Option<(f64, f64, Option<f64>)> {
    let n = xy.len() as f64;
    let mean_x = xy.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = xy.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = xy.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    if xy.len() < 2 || sxx <= 0.0 {
        return None;
    }
    let sxy: f64 = xy.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let b = sxy / sxx;
    let a = mean_y - b * mean_x;
    let ss_tot: f64 = xy.iter().map(|p| (p.1 - mean_y).powi(2)).sum();
    let ss_res: f64 = xy.iter().map(|p| (p.1 - a - b * p.0).powi(2)).sum();
    let r_squared = (ss_tot > 0.0).then(|| 1.0 - ss_res / ss_tot);
    Some((a, b, r_squared))
}

#[cfg(test)]
mod rtt_tests {
    use super::*;

    fn point(strategy: &str, kind: Kind, rtt_ms: f64, p50_ms: f64, rt: u64) -> RttPoint {
        RttPoint {
            rtt_ms,
            strategy: strategy.into(),
            kind,
            requests: 100,
            errors: 0,
            throughput_rps: 10.0,
            total: Percentiles {
                p50_us: (p50_ms * 1000.0) as u64,
                ..Percentiles::default()
            },
            connect: None,
            connect_round_trips: Some(7),
            request_round_trips: Some(rt),
        }
    }

    #[test]
    fn setup_cost_is_fitted_against_the_rtt() {
        // Fresh: 10 ms + 10 round trips; pool: 0.2 ms + 1 round trip.
        let mut points = Vec::new();
        for rtt in [0.0, 1.0, 5.0, 20.0, 50.0] {
            points.push(point(
                "per-request",
                Kind::Fresh,
                rtt,
                10.0 + 10.0 * rtt,
                10,
            ));
            points.push(point("pool-10", Kind::Pool, rtt, 0.2 + rtt, 1));
        }
        let fits = setup_cost_fits(&points);
        assert_eq!(fits.len(), 1);
        let f = &fits[0];
        assert_eq!(
            (f.fresh.as_str(), f.pool.as_str()),
            ("per-request", "pool-10")
        );
        assert!((f.a_ms - 9.8).abs() < 0.01, "{f:?}");
        assert!((f.b - 9.0).abs() < 0.001, "{f:?}");
        assert_eq!(f.r_squared, Some(1.0));
        assert_eq!(f.counted_round_trips, Some(9));
        assert_eq!(f.points.len(), 5);
        // One RTT is no line.
        assert!(setup_cost_fits(&points[..2]).is_empty());
    }

    #[test]
    fn a_line_fits_noisy_points() {
        let (a, b, r2) = line_fit(&[(0.0, 1.1), (1.0, 2.9), (2.0, 5.0), (3.0, 7.0)]).unwrap();
        assert!(
            (b - 1.98).abs() < 0.01 && (a - 1.03).abs() < 0.02,
            "{a} {b}"
        );
        assert!(r2.unwrap() > 0.99);
        assert!(line_fit(&[(1.0, 1.0), (1.0, 2.0)]).is_none());
    }
}
