//! sweep.json, schema_version 1: what `sweep` measured and `plan` reads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::usl::UslFit;
use crate::metrics::{Phase, Summary};
use crate::report;

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
