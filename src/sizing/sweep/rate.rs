//! The rate axis (`poolbench sweep --rates`): every strategy in open loop
//! at each arrival rate, lowest first — the latency-versus-load curve of
//! per-request connections against a pool, from one server and one setup
//! — and the rate where each one saturates. Written as sweep.json
//! (`kind = "rate-sweep"`).

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::{
    per_strategy, strategies, worth_keeping, Axis, Column, Curve, Mark, Nothing, Plot, Section,
    Step, Sweep, Value,
};
use crate::error::bad_input;
use crate::report::format::rps;
use crate::report::{Kind, StrategyReport};
use crate::scenario::limits::{DEFAULT_MAX_IN_FLIGHT, MAX_SWEEP_POINTS};
use crate::scenario::{self, ArrivalProcess, Overrides, Scenario};

pub const RATE_SWEEP_KIND: &str = "rate-sweep";

/// A strategy saturates at the first rate where it achieves less than this
/// share of what was offered.
pub const KEEPS_UP: f64 = 0.95;

/// A rate sweep's sweep.json.
pub type RateSweep = Sweep<Rates>;

/// The arrival rates to measure, lowest first, and the arrivals' shape.
#[derive(Debug, Clone)]
pub struct Rates {
    rates: Vec<f64>,
    process: ArrivalProcess,
    max_in_flight: u32,
}

impl Rates {
    /// `--rates`, sorted; every point is checked as `run --rate R` would
    /// be, before any runs.
    pub fn new(s: &Scenario, rates: &[f64]) -> Result<Rates> {
        let mut rates = rates.to_vec();
        rates.sort_by(f64::total_cmp);
        rates.dedup();
        if rates.len() > MAX_SWEEP_POINTS {
            return Err(bad_input(format!(
                "--rates lists {} rates, more than {MAX_SWEEP_POINTS}",
                rates.len()
            )));
        }
        for &rate in &rates {
            at_rate(s, rate)?;
        }
        let base = s.run.arrivals;
        Ok(Rates {
            rates,
            process: base.map_or(ArrivalProcess::Poisson, |a| a.process),
            max_in_flight: base.map_or(DEFAULT_MAX_IN_FLIGHT, |a| a.max_in_flight),
        })
    }
}

/// The scenario as `run --rate R` runs it.
fn at_rate(s: &Scenario, rate: f64) -> Result<Scenario> {
    let point = Overrides {
        rate: Some(rate),
        ..Overrides::default()
    };
    scenario::with_overrides(s.clone(), &point)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RateSweepSettings {
    pub rates: Vec<f64>,
    pub arrival: String,
    pub max_in_flight: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RateAnalysis {
    /// Per strategy: the highest rate it kept up with and the first it did not.
    pub saturation: Vec<Saturation>,
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
    /// Achieved less than 95% of the offered rate, or poolbench's own
    /// generator fell behind its schedule.
    pub saturated: bool,
    /// poolbench's generator fell behind its schedule at this rate: what
    /// saturated was poolbench on this machine, not the strategy.
    #[serde(default)]
    pub generator_saturated: bool,
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
            saturated: achieved_rate < KEEPS_UP * offered_rate
                || r.generator_saturated == Some(true),
            generator_saturated: r.generator_saturated == Some(true),
        }
    }
}

impl Axis for Rates {
    const KIND: &'static str = RATE_SWEEP_KIND;
    const TITLE: &'static str = "rate sweep";
    type Scenario = Nothing;
    type Settings = RateSweepSettings;
    type Point = RatePoint;
    type Analysis = RateAnalysis;
    type At = f64;

    fn scenario(&self) -> Nothing {
        Nothing {}
    }

    fn settings(&self) -> RateSweepSettings {
        RateSweepSettings {
            rates: self.rates.clone(),
            arrival: match self.process {
                ArrivalProcess::Poisson => "poisson",
                ArrivalProcess::Uniform => "uniform",
            }
            .into(),
            max_in_flight: self.max_in_flight,
        }
    }

    fn steps(&self, scenario: &Scenario) -> Vec<Step<f64>> {
        let mut steps = Vec::new();
        for &rate in &self.rates {
            // Checked in `new`.
            let Ok(at) = at_rate(scenario, rate) else {
                continue;
            };
            for strategy in &scenario.strategies {
                steps.push(Step {
                    at: rate,
                    strategy: strategy.clone(),
                    run: at.run.clone(),
                    network: at.network,
                    label: format!("{} @{}", strategy.name, rps(rate)),
                    server: None,
                });
            }
        }
        steps
    }

    fn record(&self, sweep: &mut RateSweep, rate: &f64, r: &StrategyReport, interrupted: bool) {
        if worth_keeping(r, interrupted) {
            sweep.points.push(RatePoint::of(*rate, r));
        }
    }

    fn analyse(sweep: &RateSweep) -> RateAnalysis {
        RateAnalysis {
            saturation: saturation(&sweep.points),
        }
    }

    fn grid(sweep: &RateSweep) -> String {
        let s = &sweep.settings;
        let rates: Vec<String> = s.rates.iter().map(|r| rps(*r)).collect();
        format!(
            "rates {} req/s ({}) · max_in_flight {}",
            rates.join(","),
            s.arrival,
            s.max_in_flight
        )
    }

    fn columns() -> Vec<Column<Rates>> {
        let us = |f: fn(&RatePoint) -> u64| move |_: &RateSweep, p: &RatePoint| Value::Us(f(p));
        vec![
            Column::new("strategy", "strategy", |_, p: &RatePoint| {
                Value::Text(p.strategy.clone())
            }),
            Column::file("kind", |_, p: &RatePoint| Value::Text(p.kind.to_string())),
            Column::new("rate", "rate", |_, p: &RatePoint| Value::Rate(p.rate)),
            Column::file("offered_rate", |_, p: &RatePoint| {
                Value::Rps(p.offered_rate)
            }),
            Column::new("achieved_rate", "achieved", |_, p: &RatePoint| {
                Value::Rps(p.achieved_rate)
            }),
            Column::file("requests", |_, p: &RatePoint| Value::Count(p.requests)),
            Column::new("errors", "errors", |_, p: &RatePoint| {
                Value::Count(p.errors)
            }),
            Column::new("total_p50_ms", "total p50", us(|p| p.total_p50_us)),
            Column::new("total_p99_ms", "total p99", us(|p| p.total_p99_us)),
            Column::new("service_p50_ms", "service p50", us(|p| p.service_p50_us)),
            Column::new("service_p99_ms", "service p99", us(|p| p.service_p99_us)),
            Column::new("queue_p99_ms", "queue p99", us(|p| p.queue_p99_us)),
            Column::file("saturated", |_, p: &RatePoint| Value::Flag(p.saturated)),
            Column::table("", |_, p: &RatePoint| {
                Value::Text(
                    match (p.generator_saturated, p.saturated) {
                        (true, _) => "poolbench fell behind",
                        (false, true) => "fell behind",
                        (false, false) => "",
                    }
                    .into(),
                )
            }),
        ]
    }

    fn keys(p: &RatePoint) -> Vec<(&'static str, String)> {
        vec![
            ("strategy", p.strategy.clone()),
            ("rate", p.rate.to_string()),
        ]
    }

    fn sections(sweep: &RateSweep) -> Vec<Section> {
        let points = &sweep.points;
        fn name(p: &RatePoint) -> &str {
            &p.strategy
        }
        let mut achieved = per_strategy(points, name, |p| (p.rate, p.achieved_rate));
        let top = sweep.settings.rates.last().copied().unwrap_or(0.0);
        achieved.push(Curve::fitted("offered", vec![(0.0, 0.0), (top, top)]));
        let ms = |us: u64| us as f64 / 1000.0;
        let mut latency = per_strategy(points, name, |p| (p.rate, ms(p.total_p99_us)));
        for c in &mut latency {
            c.name = format!("{} total p99", c.name);
        }
        for s in strategies(points, name) {
            latency.push(Curve::fitted(
                format!("{s} service p99"),
                points
                    .iter()
                    .filter(|p| p.strategy == s)
                    .map(|p| (p.rate, ms(p.service_p99_us)))
                    .collect(),
            ));
        }
        let marks: Vec<Mark> = sweep
            .analysis
            .saturation
            .iter()
            .filter_map(|s| {
                Some(Mark {
                    x: s.saturates_at?,
                    label: format!("{} saturates", s.strategy),
                })
            })
            .collect();
        let notes = sweep
            .analysis
            .saturation
            .iter()
            .map(|s| {
                vec![match (s.kept_up_to, s.saturates_at) {
                    (_, None) => format!(
                        "{}: kept up with every rate measured (up to {} req/s)",
                        s.strategy,
                        sweep.settings.rates.last().map_or("-".into(), |r| rps(*r))
                    ),
                    (Some(ok), Some(bad)) => format!(
                        "{}: kept up with {} req/s, saturates at {} req/s",
                        s.strategy,
                        rps(ok),
                        rps(bad)
                    ),
                    (None, Some(bad)) => format!(
                        "{}: could not keep up even with {} req/s",
                        s.strategy,
                        rps(bad)
                    ),
                }]
            })
            .collect();
        vec![
            Section {
                id: "latency-note".into(),
                title: None,
                plots: Vec::new(),
                notes: vec![vec![
                    "latency from the intended arrival (total, corrected for coordinated \
                     omission) and from the start of service"
                        .into(),
                ]],
            },
            Section {
                id: "rates".into(),
                title: Some("Against the arrival rate".into()),
                plots: vec![
                    Plot {
                        title: "achieved against offered rate".into(),
                        x: "arrival rate (requests/s)".into(),
                        y: "achieved (requests/s)".into(),
                        curves: achieved,
                        marks: marks.clone(),
                        rising: true,
                    },
                    Plot {
                        title: "latency p99 against the arrival rate".into(),
                        x: "arrival rate (requests/s)".into(),
                        y: "latency p99 (ms)".into(),
                        curves: latency,
                        marks,
                        rising: false,
                    },
                ],
                notes,
            },
        ]
    }
}

/// Where each strategy (in the order first measured) saturates.
pub fn saturation(points: &[RatePoint]) -> Vec<Saturation> {
    strategies(points, |p| &p.strategy)
        .into_iter()
        .map(|name| {
            let mut mine: Vec<&RatePoint> = points.iter().filter(|p| p.strategy == name).collect();
            // A name comes from a point, so `mine` has one (its kind).
            let kind = mine[0].kind;
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
            generator_saturated: false,
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
