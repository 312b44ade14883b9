//! What `poolbench plan` answers (`--format json`, docs/schema/plan.schema.json):
//! the pool sizes measured in open loop, each with its rounds, its verdict
//! and the model's prediction beside it; the recommendation (or the one
//! sentence saying why there is none); the settings in each library's
//! names. Built by `commands/plan.rs` from its measurements; the min size
//! and the settings are derived here, where they can be tested.

use std::collections::BTreeMap;

use serde::Serialize;

use super::plan::{libraries, PlanReport, Target, SETUP_COST_FACTOR};
use super::search::{spread, Round};
use crate::report::format::{ms, rps};

/// `plan --format json`'s format. 1 was the model's plan alone (now
/// `prior`, when a sweep is given).
pub const PLAN_SCHEMA_VERSION: u32 = 2;

/// The model and the measurement agree when the measured p99 is within
/// this factor of the predicted one (either way).
pub const MODEL_AGREES: f64 = 2.0;

#[derive(Debug, Clone, Serialize)]
pub struct MeasuredPlan {
    pub schema_version: u32,
    pub scenario: String,
    /// The server measured on: engine and version, and where it ran.
    pub server: String,
    pub target: Target,
    pub recommended: Option<Recommended>,
    /// A recommendation met the target.
    pub met: bool,
    /// Why: the recommendation's measured numbers, or why no size can.
    pub reason: String,
    /// Every pool size measured, in the order the search measured them.
    pub points: Vec<Point>,
    /// The recommendation in each pool library's names ("key=value, …").
    pub settings: BTreeMap<String, String>,
    pub min_reason: String,
    pub model: Model,
    pub search: SearchSettings,
    /// `--sweep`: the model's plan from the sweep (Erlang C), the prior
    /// the search started from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prior: Option<PlanReport>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Recommended {
    pub max_size: u32,
    pub min_size: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub pool_size: u32,
    /// The arrival rate asked for (one instance's share of --rps).
    pub rate: f64,
    /// The M/G/c simulation's p99; null when it predicts an unbounded queue.
    pub predicted_p99_ms: Option<f64>,
    pub predicted_utilisation: f64,
    pub rounds: Vec<Round>,
    /// The median of the rounds' p99.
    pub p99_ms: f64,
    /// Measured median p99 / predicted p99.
    pub model_ratio: Option<f64>,
    pub met: bool,
    /// The point's report directory (under --out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
}

/// Where the model's numbers come from: one open-loop run at the target
/// rate on a pool larger than the rate keeps busy.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Model {
    pub calibration_pool_size: u32,
    pub calibration_offered_rate: f64,
    pub calibration_achieved_rate: f64,
    pub calibration_p99_ms: f64,
    /// The query phase (a connection held) at that load.
    pub service_time_mean_ms: f64,
    pub service_time_p99_ms: f64,
    /// Connect p50 of the pool's connections, for the min size rule.
    pub connect_p50_ms: Option<f64>,
    /// The smallest size the simulation predicts meets the target.
    pub proposal: Option<u32>,
    /// The sweep's Erlang C plan (`--sweep`).
    pub erlang_c_proposal: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SearchSettings {
    pub rounds: u32,
    pub warmup_s: f64,
    pub duration_s: f64,
    /// The largest pool size the search may try (the connection budget).
    pub limit: u32,
    pub elapsed_s: f64,
    /// `--verify`: only the given size was measured.
    pub verify_only: bool,
}

impl Point {
    pub fn new(
        pool_size: u32,
        rate: f64,
        predicted: super::mgc::Prediction,
        rounds: Vec<Round>,
        met: bool,
    ) -> Point {
        let p99_ms = spread(&rounds).map_or(0.0, |(m, _, _)| m);
        let predicted_p99_ms = predicted.p99_us.map(|p| p / 1000.0);
        Point {
            pool_size,
            rate,
            predicted_p99_ms,
            predicted_utilisation: predicted.utilisation,
            model_ratio: predicted_p99_ms.filter(|p| *p > 0.0).map(|p| p99_ms / p),
            rounds,
            p99_ms,
            met,
            report: None,
        }
    }

    /// "p99 7.8 ms (7.1–8.4 over 3 rounds)".
    pub fn measured(&self) -> String {
        match spread(&self.rounds) {
            Some((m, lo, hi)) if self.rounds.len() > 1 => format!(
                "p99 {} ms ({}–{} over {} rounds)",
                ms(m * 1000.0),
                ms(lo * 1000.0),
                ms(hi * 1000.0),
                self.rounds.len()
            ),
            Some((m, _, _)) => format!("p99 {} ms (1 round)", ms(m * 1000.0)),
            None => "not measured".into(),
        }
    }

    /// The rounds' offered and achieved rates when they differ by more than
    /// 2% in any round: "offered 5,000 req/s, achieved 4,120".
    pub fn shortfall(&self) -> Option<String> {
        let short: Vec<&Round> = self.rounds.iter().filter(|r| r.short()).collect();
        let worst = short.iter().min_by(|a, b| {
            (a.achieved_rate / a.offered_rate).total_cmp(&(b.achieved_rate / b.offered_rate))
        })?;
        Some(format!(
            "offered {} req/s, achieved {} ({} of {} rounds short by more than 2%)",
            rps(worst.offered_rate),
            rps(worst.achieved_rate),
            short.len(),
            self.rounds.len()
        ))
    }

    /// Where the model is off by more than 2x either way.
    pub fn disagreement(&self) -> Option<String> {
        let r = self.model_ratio?;
        (!(1.0 / MODEL_AGREES..=MODEL_AGREES).contains(&r)).then(|| {
            format!(
                "the model and the measurement disagree: measured {:.1}x the predicted p99",
                r
            )
        })
    }
}

/// The min size and why: the base load's mean busy connections by Little's
/// law, or all of them when a connect costs ≥ 10 service times.
pub fn min_size(
    max_size: u32,
    base_rps_per_instance: f64,
    service_mean_us: f64,
    connect_p50_us: Option<f64>,
) -> (u32, String) {
    match connect_p50_us {
        Some(c) if c >= SETUP_COST_FACTOR * service_mean_us => (
            max_size,
            format!(
                "min = max: opening a connection (connect p50 {} ms) costs {:.0}× the service \
                 time ({} ms), ≥ {SETUP_COST_FACTOR:.0}×; a pool that grows during a burst makes \
                 the burst wait for connects, so keep it full",
                ms(c),
                c / service_mean_us,
                ms(service_mean_us)
            ),
        ),
        _ => {
            let little = (base_rps_per_instance * service_mean_us / 1e6)
                .ceil()
                .max(1.0) as u32;
            (
                little.min(max_size),
                format!(
                    "min = ⌈λ_base·S⌉ = ⌈{} × {} ms⌉ = {little} (Little's law: connections \
                     busy on average at the base load, S measured at the target rate){}; not \
                     verified by a measured step from --base-rps to --rps",
                    rps(base_rps_per_instance),
                    ms(service_mean_us),
                    match connect_p50_us {
                        Some(c) => format!(
                            "; connect p50 {} ms is under {SETUP_COST_FACTOR:.0}× S",
                            ms(c)
                        ),
                        None => String::new(),
                    }
                ),
            )
        }
    }
}

/// The recommendation in each library's names, "key=value, key=value".
pub fn settings(min: u32, max: u32, engine: &str) -> BTreeMap<String, String> {
    libraries(min, max, None, engine)
        .into_iter()
        .map(|l| {
            let kv: Vec<String> = l.settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
            (l.library, kv.join(", "))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sizing::mgc::Prediction;

    fn round(p99_ms: f64, achieved_rate: f64) -> Round {
        Round {
            p99_ms,
            offered_rate: 1000.0,
            achieved_rate,
            errors: 0,
            error_rate: 0.0,
            window_s: 2.0,
            service_mean_ms: 1.0,
        }
    }

    #[test]
    fn a_point_says_what_was_measured_and_how_far_the_model_was() {
        let p = Point::new(
            6,
            1000.0,
            Prediction {
                utilisation: 0.7,
                p99_us: Some(2000.0),
            },
            vec![round(7.8, 1000.0), round(7.1, 995.0), round(8.4, 900.0)],
            true,
        );
        assert_eq!(p.p99_ms, 7.8);
        assert_eq!(p.measured(), "p99 7.800 ms (7.100–8.400 over 3 rounds)");
        assert!((p.model_ratio.unwrap() - 3.9).abs() < 1e-9);
        let d = p.disagreement().unwrap();
        assert!(d.contains("3.9x"), "{d}");
        let s = p.shortfall().unwrap();
        assert!(s.contains("offered 1,000 req/s, achieved 900"), "{s}");
        assert!(s.contains("1 of 3 rounds"), "{s}");
    }

    #[test]
    fn min_size_follows_the_setup_cost_rule() {
        // S = 1 ms: connect 12 ms ≥ 10 S keeps the pool full; 5 ms does not,
        // and 1,500 req/s keeps ⌈1.5⌉ = 2 busy.
        assert_eq!(min_size(4, 1500.0, 1000.0, Some(12_000.0)).0, 4);
        let (min, why) = min_size(4, 1500.0, 1000.0, Some(5000.0));
        assert_eq!(min, 2);
        assert!(why.contains("Little's law"), "{why}");
        assert_eq!(min_size(4, 1500.0, 1000.0, None).0, 2);
        let s = settings(2, 4, "postgresql");
        assert_eq!(s["sqlx (Rust)"], "max_connections=4, min_connections=2");
        assert_eq!(s["SQLAlchemy (Python)"], "pool_size=2, max_overflow=2");
    }
}
