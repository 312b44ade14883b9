//! The RTT axis (`poolbench sweep --rtts`): every strategy of the scenario
//! across the link emulator at each round-trip time, lowest first, on one
//! server, and the setup cost of a per-request connection fitted as
//! a + b × RTT (b: the round trips pooling saves per request). Written as
//! sweep.json (`kind = "rtt-sweep"`).

use std::time::Duration;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::{
    per_strategy, worth_keeping, Axis, Column, Curve, Nothing, Percentiles, Plot, Section, Step,
    Sweep, Value,
};
use crate::error::bad_input;
use crate::metrics::Phase;
use crate::report::format::trimmed;
use crate::report::{self, Kind, StrategyReport};
use crate::scenario::limits::MAX_SWEEP_POINTS;
use crate::scenario::{self, NetworkSettings, Overrides, Scenario};

/// Tells an RTT sweep's sweep.json from a pool-size sweep's.
pub const RTT_SWEEP_KIND: &str = "rtt-sweep";

/// Below this R², the fit does not describe the points.
const POOR_FIT: f64 = 0.95;

/// An RTT sweep's sweep.json.
pub type RttSweep = Sweep<Rtts>;

/// The round-trip times to emulate, lowest first.
#[derive(Debug, Clone)]
pub struct Rtts {
    rtts: Vec<Duration>,
    jitter: Duration,
    concurrency: u32,
}

impl Rtts {
    /// `--rtts`, sorted, each no longer than the emulator's largest.
    pub fn new(s: &Scenario, rtts: &[Duration]) -> Result<Rtts> {
        if let Some(too_long) = rtts.iter().find(|r| **r > NetworkSettings::MAX_RTT) {
            return Err(bad_input(format!(
                "--rtts: {} is longer than the largest RTT poolbench emulates ({})",
                humantime::format_duration(*too_long),
                humantime::format_duration(NetworkSettings::MAX_RTT)
            )));
        }
        let mut rtts = rtts.to_vec();
        rtts.sort_unstable();
        rtts.dedup();
        if rtts.len() > MAX_SWEEP_POINTS {
            return Err(bad_input(format!(
                "--rtts lists {} round-trip times, more than {MAX_SWEEP_POINTS}",
                rtts.len()
            )));
        }
        Ok(Rtts {
            rtts,
            jitter: s.network.map_or(Duration::ZERO, |n| n.jitter),
            concurrency: s.run.concurrency,
        })
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RttSweepSettings {
    pub rtts_ms: Vec<f64>,
    /// The scenario's jitter, capped at half of each RTT.
    pub jitter_ms: f64,
    pub concurrency: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RttAnalysis {
    /// Per fresh × pool strategy pair with at least two RTTs measured.
    pub fits: Vec<SetupCostFit>,
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
                Kind::Fresh | Kind::Observed => {
                    r.phases.get(Phase::Connect.as_str()).map(Percentiles::from)
                }
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

impl Axis for Rtts {
    const KIND: &'static str = RTT_SWEEP_KIND;
    const TITLE: &'static str = "RTT sweep";
    type Scenario = Nothing;
    type Settings = RttSweepSettings;
    type Point = RttPoint;
    type Analysis = RttAnalysis;
    type At = Duration;

    fn scenario(&self) -> Nothing {
        Nothing {}
    }

    fn settings(&self) -> RttSweepSettings {
        RttSweepSettings {
            rtts_ms: self.rtts.iter().map(|r| ms(*r)).collect(),
            jitter_ms: ms(self.jitter),
            concurrency: self.concurrency,
        }
    }

    fn steps(&self, scenario: &Scenario) -> Vec<Step<Duration>> {
        let mut steps = Vec::new();
        for &rtt in &self.rtts {
            let point = Overrides {
                rtt: Some(rtt),
                ..Overrides::default()
            };
            // Checked in `new`: no longer than the emulator's largest.
            let Ok(at) = scenario::with_overrides(scenario.clone(), &point) else {
                continue;
            };
            for strategy in &scenario.strategies {
                steps.push(Step {
                    at: rtt,
                    strategy: strategy.clone(),
                    run: at.run.clone(),
                    network: at.network,
                    label: format!("{} @{}", strategy.name, humantime::format_duration(rtt)),
                    server: None,
                });
            }
        }
        steps
    }

    fn record(&self, sweep: &mut RttSweep, rtt: &Duration, r: &StrategyReport, interrupted: bool) {
        if worth_keeping(r, interrupted) {
            sweep.points.push(RttPoint::of(ms(*rtt), r));
        }
    }

    fn analyse(sweep: &RttSweep) -> RttAnalysis {
        RttAnalysis {
            fits: setup_cost_fits(&sweep.points),
        }
    }

    fn grid(sweep: &RttSweep) -> String {
        let s = &sweep.settings;
        let rtts: Vec<String> = s
            .rtts_ms
            .iter()
            .map(|r| format!("{}ms", trimmed(*r, 3)))
            .collect();
        format!(
            "RTT {} emulated{} · {} workers",
            rtts.join(","),
            if s.jitter_ms > 0.0 {
                format!(" (±{} ms jitter)", trimmed(s.jitter_ms, 3))
            } else {
                String::new()
            },
            s.concurrency,
        )
    }

    fn columns() -> Vec<Column<Rtts>> {
        let count = |v: Option<u64>| Value::or_missing(v, Value::Int);
        vec![
            Column::new("rtt_ms", "rtt", |_, p: &RttPoint| Value::Ms(p.rtt_ms)),
            Column::new("strategy", "strategy", |_, p: &RttPoint| {
                Value::Text(p.strategy.clone())
            }),
            Column::file("kind", |_, p: &RttPoint| Value::Text(p.kind.to_string())),
            Column::file("requests", |_, p: &RttPoint| Value::Count(p.requests)),
            Column::new("errors", "errors", |_, p: &RttPoint| Value::Count(p.errors)),
            Column::new("throughput_rps", "req/s", |_, p: &RttPoint| {
                Value::Rps(p.throughput_rps)
            }),
            Column::new("total_p50_ms", "total p50", |_, p: &RttPoint| {
                Value::Us(p.total.p50_us)
            }),
            Column::new("total_p99_ms", "total p99", |_, p: &RttPoint| {
                Value::Us(p.total.p99_us)
            }),
            Column::new("connect_p50_ms", "connect p50", |_, p: &RttPoint| {
                Value::or_missing(p.connect, |c| Value::Us(c.p50_us))
            }),
            Column::new(
                "connect_round_trips",
                "round trips: connect",
                move |_, p: &RttPoint| count(p.connect_round_trips),
            ),
            Column::new("request_round_trips", "request", move |_, p: &RttPoint| {
                count(p.request_round_trips)
            }),
            // The first pool's fit gives a fresh row its setup cost.
            Column::file("setup_cost_ms", |sweep: &RttSweep, p: &RttPoint| {
                let cost = sweep
                    .analysis
                    .fits
                    .iter()
                    .find(|f| f.fresh == p.strategy)
                    .and_then(|f| f.points.iter().find(|c| c.rtt_ms == p.rtt_ms));
                Value::or_missing(cost, |c| Value::Ms3(c.setup_cost_ms))
            }),
        ]
    }

    fn keys(p: &RttPoint) -> Vec<(&'static str, String)> {
        vec![
            ("rtt", trimmed(p.rtt_ms, 3)),
            ("strategy", p.strategy.clone()),
        ]
    }

    fn sections(sweep: &RttSweep) -> Vec<Section> {
        let points = &sweep.points;
        fn name(p: &RttPoint) -> &str {
            &p.strategy
        }
        let mut plots = vec![
            Plot {
                title: "throughput against the round-trip time".into(),
                x: "emulated RTT (ms)".into(),
                y: "throughput (requests/s)".into(),
                curves: per_strategy(points, name, |p| (p.rtt_ms, p.throughput_rps)),
                marks: Vec::new(),
                rising: false,
            },
            Plot {
                title: "latency against the round-trip time".into(),
                x: "emulated RTT (ms)".into(),
                y: "total latency p50 (ms)".into(),
                curves: per_strategy(points, name, |p| (p.rtt_ms, p.total.p50_us as f64 / 1000.0)),
                marks: Vec::new(),
                rising: true,
            },
        ];
        let mut notes = Vec::new();
        for f in &sweep.analysis.fits {
            let measured: Vec<(f64, f64)> = f
                .points
                .iter()
                .map(|c| (c.rtt_ms, c.setup_cost_ms))
                .collect();
            let last = measured.last().map_or(0.0, |c| c.0);
            plots.push(Plot {
                title: format!("{} against {}: setup cost against the RTT", f.fresh, f.pool),
                x: "emulated RTT (ms)".into(),
                y: "setup cost, total p50 difference (ms)".into(),
                curves: vec![
                    Curve::measured("measured", measured),
                    Curve::fitted(
                        format!("{} ms + {} × RTT", trimmed(f.a_ms, 2), trimmed(f.b, 2)),
                        vec![(0.0, f.a_ms), (last, f.a_ms + f.b * last)],
                    ),
                ],
                marks: Vec::new(),
                rising: true,
            });
            notes.push(fit_findings(f, sweep.settings.concurrency));
        }
        vec![Section {
            id: "rtt".into(),
            title: Some("Against the round-trip time".into()),
            plots,
            notes,
        }]
    }
}

/// One fit: setup cost = a + b × RTT, in words.
fn fit_findings(f: &SetupCostFit, concurrency: u32) -> Vec<String> {
    let mut out = vec![format!(
        "{} against {}: setup cost = {} ms + {} × RTT{}",
        f.fresh,
        f.pool,
        trimmed(f.a_ms, 2),
        trimmed(f.b, 2),
        f.r_squared
            .map(|r| format!(" (R² = {r:.3})"))
            .unwrap_or_default()
    )];
    let counted = f
        .counted_round_trips
        .map(|n| format!(" (the emulator counted {n} more per request)"))
        .unwrap_or_default();
    out.push(format!(
        "  a per-request connection costs {} ms with no network, and {} round trips per \
         request that a pool saves{counted}",
        trimmed(f.a_ms, 2),
        trimmed(f.b, 1)
    ));
    if f.r_squared.is_some_and(|r| r < POOR_FIT) {
        out.push(format!(
            "  warning   the points are far from a line (R² below {POOR_FIT}): with \
             {concurrency} workers the cost is mostly waiting (for the CPU, for the pool), not \
             round trips; --concurrency 1 measures each request's own"
        ));
    }
    out
}

/// The fits of every fresh × pool pair measured at two RTTs or more.
pub fn setup_cost_fits(points: &[RttPoint]) -> Vec<SetupCostFit> {
    // A fresh strategy's setup cost is measured against each pool.
    let (mut fresh_names, mut pool_names): (Vec<&str>, Vec<&str>) = (Vec::new(), Vec::new());
    for p in points {
        let names = match p.kind {
            Kind::Fresh => &mut fresh_names,
            Kind::Pool => &mut pool_names,
            // Never a sweep's point: a watch measures no strategy of its own.
            Kind::Observed => continue,
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
mod tests {
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
    fn two_fresh_strategies_are_each_fitted_once() {
        let mut points = Vec::new();
        for rtt in [0.0, 10.0] {
            points.push(point("a", Kind::Fresh, rtt, 5.0 + 8.0 * rtt, 8));
            points.push(point("b", Kind::Fresh, rtt, 6.0 + 9.0 * rtt, 9));
            points.push(point("pool", Kind::Pool, rtt, 0.1 + rtt, 1));
        }
        let fits: Vec<(String, String)> = setup_cost_fits(&points)
            .into_iter()
            .map(|f| (f.fresh, f.pool))
            .collect();
        assert_eq!(
            fits,
            [("a".into(), "pool".into()), ("b".into(), "pool".into())]
        );
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
