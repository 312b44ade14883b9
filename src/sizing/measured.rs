//! What `poolbench plan` answers (`--format json`, docs/schema/plan.schema.json):
//! the pool sizes measured in open loop, each with its rounds, its verdict
//! and the model's prediction beside it; the recommendation (or the one
//! sentence saying why there is none); the settings in each library's
//! names. Built by `commands/plan.rs` from its measurements; the min size
//! and the settings are derived here, where they can be tested.

use std::collections::BTreeMap;

use serde::Serialize;

use super::lifecycle::LifecyclePlan;
use super::mgc::ServiceTimes;
use super::plan::{libraries, PlanReport, Target, SETUP_COST_FACTOR};
use super::search::{spread, Round};
use crate::report::format::{ms, ms_trimmed, plural, rps};

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
    /// The min size verified by a step from --base-rps to --rps (null
    /// when --base-rps is not below --rps, or no size met).
    pub burst: Option<Burst>,
    /// The lifetime, idle timeout and checkout check to go with the sizes,
    /// each with its measured cost (null when no size met).
    pub lifecycle: Option<LifecyclePlan>,
    /// The sizes from one fewer than the recommendation up when their p99s
    /// are one band (null when one fewer is clearly slower, or none met).
    pub plateau: Option<Plateau>,
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
    /// Rounds that met the target: all of them or none, or the rounds were
    /// topped up and at most one in five missed (`search::verdict`).
    pub rounds_met: usize,
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
/// rate on a pool larger than the rate keeps busy, or, when the server
/// slowed on that many connections (`contended`), on a few.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Model {
    /// The calibration whose service times the simulation draws from.
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
    /// The large pool's calibration, when its queries took so much longer
    /// than on a few connections that the few's service times were taken.
    pub contended: Option<Contended>,
}

impl Model {
    /// The calibration the simulation draws from: its pool, its round and
    /// the query phase's service times (none when no request completed).
    pub fn calibrated_on(&mut self, pool: u32, round: &Round, service: Option<&ServiceTimes>) {
        self.calibration_pool_size = pool;
        self.calibration_offered_rate = round.offered_rate;
        self.calibration_achieved_rate = round.achieved_rate;
        self.calibration_p99_ms = round.p99_ms;
        self.service_time_mean_ms = service.map_or(0.0, |s| s.mean_us() / 1000.0);
        self.service_time_p99_ms = service.map_or(0.0, |s| s.quantile_us(0.99) / 1000.0);
    }
}

/// A calibration on many connections whose service times the simulation
/// did not take: the server ran more queries at once than it has CPUs for,
/// and each took longer.
#[derive(Debug, Clone, Serialize)]
pub struct Contended {
    pub pool_size: u32,
    pub achieved_rate: f64,
    pub service_time_mean_ms: f64,
    pub service_time_p99_ms: f64,
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
        target_p99_ms: f64,
    ) -> Point {
        let p99_ms = spread(&rounds).map_or(0.0, |(m, _, _)| m);
        let rounds_met = rounds.iter().filter(|r| r.met(target_p99_ms)).count();
        let predicted_p99_ms = predicted.p99_us.map(|p| p / 1000.0);
        Point {
            pool_size,
            rate,
            predicted_p99_ms,
            predicted_utilisation: predicted.utilisation,
            model_ratio: predicted_p99_ms.filter(|p| *p > 0.0).map(|p| p99_ms / p),
            rounds,
            rounds_met,
            p99_ms,
            met,
            report: None,
        }
    }

    /// "p99 7.8 ms (7.1–8.4 over 3 rounds)".
    pub fn measured(&self) -> String {
        p99_over(&self.rounds)
    }

    /// "4 of 5 rounds met" when the rounds disagreed (and were topped up).
    pub fn noise(&self) -> Option<String> {
        let n = self.rounds.len();
        (self.rounds_met != 0 && self.rounds_met != n)
            .then(|| format!("{} of {n} rounds met", self.rounds_met))
    }

    /// The rounds' offered and achieved rates when they differ by more than
    /// 2% in any round, the furthest apart: "offered 5,000 req/s, achieved
    /// 4,120 (2 of 3 rounds more than 2% apart)".
    pub fn shortfall(&self) -> Option<String> {
        let apart: Vec<&Round> = self
            .rounds
            .iter()
            .filter(|r| r.short() || r.over())
            .collect();
        let worst = apart.iter().max_by(|a, b| {
            let off = |r: &Round| (r.achieved_rate / r.offered_rate - 1.0).abs();
            off(a).total_cmp(&off(b))
        })?;
        Some(format!(
            "offered {} req/s, achieved {} ({} of {} rounds more than 2% apart)",
            rps(worst.offered_rate),
            rps(worst.achieved_rate),
            apart.len(),
            self.rounds.len()
        ))
    }

    /// Rounds that met the target, of all taken.
    pub fn rounds_met(&self, target_p99_ms: f64) -> usize {
        self.rounds.iter().filter(|r| r.met(target_p99_ms)).count()
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

/// "p99 7.8 ms (7.1–8.4 over 3 rounds)": the median of rounds' p99 and
/// their range.
pub fn p99_over(rounds: &[Round]) -> String {
    match spread(rounds) {
        Some((m, lo, hi)) if rounds.len() > 1 => format!(
            "p99 {} ms ({}–{} over {} rounds)",
            ms(m * 1000.0),
            ms(lo * 1000.0),
            ms(hi * 1000.0),
            rounds.len()
        ),
        Some((m, _, _)) => format!("p99 {} ms (1 round)", ms(m * 1000.0)),
        None => "not measured".into(),
    }
}

/// Why no size met when some served the rate: the sizes measured that
/// kept up with it in every round and still missed the target, their
/// rounds' p99 range and the closest of them. "pools of 4 to 19
/// connections (5 sizes) kept up with the rate in every round, yet missed
/// p99 ≤ 10 ms: their rounds' p99 5.8–194 ms; the closest, pool 5, met in
/// 3 of 5 rounds". None when no size kept up (the rate, not the tail, was
/// out of reach) or one met.
pub fn kept_up_but_missed(points: &[Point], target_p99_ms: f64) -> Option<String> {
    if points.iter().any(|p| p.met) {
        return None;
    }
    let kept: Vec<&Point> = points
        .iter()
        .filter(|p| !p.rounds.is_empty() && p.rounds.iter().all(Round::kept_up))
        .collect();
    let closest = kept.iter().max_by(|a, b| {
        a.rounds_met(target_p99_ms)
            .cmp(&b.rounds_met(target_p99_ms))
            .then(b.p99_ms.total_cmp(&a.p99_ms))
    })?;
    let lo = kept.iter().map(|p| p.pool_size).min()?;
    let hi = kept.iter().map(|p| p.pool_size).max()?;
    let sizes = if kept.len() == 1 {
        format!(
            "a pool of {}",
            plural(lo as usize, "connection", "connections")
        )
    } else {
        format!("pools of {lo} to {hi} connections ({} sizes)", kept.len())
    };
    let rounds = kept.iter().flat_map(|p| p.rounds.iter().map(|r| r.p99_ms));
    let (low, high) = rounds.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), x| {
        (l.min(x), h.max(x))
    });
    let met = closest.rounds_met(target_p99_ms);
    let best = if met > 0 {
        format!(
            "; the closest, pool {}, met in {met} of {} rounds",
            closest.pool_size,
            closest.rounds.len()
        )
    } else {
        String::new()
    };
    Some(format!(
        "{sizes} kept up with the rate in every round, yet missed p99 ≤ {} ms: their \
         rounds' p99 {}–{} ms{best}",
        ms_trimmed(target_p99_ms * 1000.0),
        ms(low * 1000.0),
        ms(high * 1000.0),
    ))
}

/// Pool sizes whose p99s are one band: one connection fewer than the
/// recommendation missed, but its median p99 is no worse than a round of a
/// size that met. The pool is then not what sets the p99 (the server's own
/// noise is), and a target inside that band makes the smallest size that
/// meets it a draw of the rounds: the search's answer is the smallest that
/// met in 4 of 5, and one fewer can meet in another run.
#[derive(Debug, Clone, Serialize)]
pub struct Plateau {
    /// The smallest and the largest pool size of the band.
    pub sizes: [u32; 2],
    /// Their median p99s, lowest and highest.
    pub median_p99_ms: [f64; 2],
    /// Their rounds' p99s, lowest and highest.
    pub round_p99_ms: [f64; 2],
}

/// The band around the recommendation `max`, if the sizes measured from
/// `max − 1` up are one (see `Plateau`). One fewer must have kept up with
/// the rate in most rounds: a pool too small to serve it is not noise.
pub fn plateau(points: &[Point], max: u32) -> Option<Plateau> {
    let fewer = points.iter().find(|p| p.pool_size + 1 == max && !p.met)?;
    let kept_up = fewer.rounds.iter().filter(|r| r.kept_up()).count();
    if kept_up * 2 <= fewer.rounds.len() {
        return None;
    }
    let worst_met_round = points
        .iter()
        .filter(|p| p.pool_size >= max && p.met)
        .flat_map(|p| p.rounds.iter().map(|r| r.p99_ms))
        .max_by(f64::total_cmp)?;
    if fewer.p99_ms > worst_met_round {
        return None;
    }
    let band: Vec<&Point> = points.iter().filter(|p| p.pool_size + 1 >= max).collect();
    let range = |v: &mut dyn Iterator<Item = f64>| {
        v.fold([f64::INFINITY, f64::NEG_INFINITY], |[lo, hi], x| {
            [lo.min(x), hi.max(x)]
        })
    };
    Some(Plateau {
        sizes: [
            max - 1,
            band.iter().map(|p| p.pool_size).max().unwrap_or(max),
        ],
        median_p99_ms: range(&mut band.iter().map(|p| p.p99_ms)),
        round_p99_ms: range(&mut band.iter().flat_map(|p| p.rounds.iter().map(|r| r.p99_ms))),
    })
}

impl Plateau {
    /// The warning: what was measured, and what it means for the answer.
    pub fn warning(&self, target_p99_ms: f64, max: u32) -> String {
        let [lo, hi] = self.sizes;
        let sizes = if hi > lo {
            format!("pool sizes {lo} to {hi}")
        } else {
            format!("pool sizes {lo} and {}", lo + 1)
        };
        format!(
            "{sizes} give the same p99 within their rounds' noise (medians {}–{} ms, rounds \
             {}–{} ms): at this rate the pool is not what sets the p99, the server is, and \
             the {} ms target lies inside that noise; max_size = {max} is the smallest size \
             that met in at least 4 of 5 rounds, and {} may meet in another run. A target \
             above the band, not a bigger pool, is what holds reliably",
            ms(self.median_p99_ms[0] * 1000.0),
            ms(self.median_p99_ms[1] * 1000.0),
            ms(self.round_p99_ms[0] * 1000.0),
            ms(self.round_p99_ms[1] * 1000.0),
            ms_trimmed(target_p99_ms * 1000.0),
            max - 1,
        )
    }
}

/// The min size verified by a burst: warm-up at the base rate on a pool
/// of `max` that starts at `min`, then a step to the rate; the measured
/// window is the step's first seconds, while the pool grows.
#[derive(Debug, Clone, Serialize)]
pub struct Burst {
    /// One instance's share of --base-rps, and of --rps.
    pub base_rate: f64,
    pub rate: f64,
    /// The time at the base rate before the step, and the window measured
    /// from the step.
    pub base_s: f64,
    pub window_s: f64,
    /// Little's law's min at the base rate: where the step starts.
    pub little_min: u32,
    /// Every min measured, in order.
    pub points: Vec<BurstPoint>,
    /// The smallest min whose step met the target (null: not even min =
    /// max did).
    pub min_size: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BurstPoint {
    pub min_size: u32,
    pub max_size: u32,
    /// Each round's window: p99 from the intended arrival, acquire p99.
    pub rounds: Vec<Round>,
    /// Connections the pool opened in each round's window.
    pub opened: Vec<u64>,
    /// The median of the rounds' p99 and acquire p99.
    pub p99_ms: f64,
    pub acquire_p99_ms: f64,
    pub met: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
}

impl BurstPoint {
    pub fn new(
        min_size: u32,
        max_size: u32,
        rounds: Vec<Round>,
        opened: Vec<u64>,
        met: bool,
    ) -> BurstPoint {
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied().unwrap_or(0.0)
        };
        BurstPoint {
            min_size,
            max_size,
            p99_ms: median(&mut rounds.iter().map(|r| r.p99_ms).collect()),
            acquire_p99_ms: median(&mut rounds.iter().map(|r| r.acquire_p99_ms).collect()),
            rounds,
            opened,
            met,
            report: None,
        }
    }

    /// "min 2: p99 14.2 ms (…) over 3 rounds, acquire p99 9.1 ms, 3–5
    /// connections opened".
    pub fn measured(&self) -> String {
        let lo = self.opened.iter().min().copied().unwrap_or(0);
        let hi = self.opened.iter().max().copied().unwrap_or(0);
        format!(
            "min {}: {}, acquire p99 {} ms, {} opened",
            self.min_size,
            p99_over(&self.rounds),
            ms(self.acquire_p99_ms * 1000.0),
            if lo == hi {
                crate::report::format::plural(lo as usize, "connection", "connections")
            } else {
                format!("{lo}–{hi} connections")
            }
        )
    }
}

impl Burst {
    /// The min the step measured and why; `costly_connect` is the rule of
    /// thumb's sentence when a connect costs ≥ 10 service times (it said
    /// min = max before anything was measured).
    pub fn min_reason(&self, max_size: u32, costly_connect: Option<&str>) -> (u32, String) {
        let step = format!(
            "a step from {} to {} req/s after {} s at the base rate, its first {} s measured",
            rps(self.base_rate),
            rps(self.rate),
            self.base_s,
            self.window_s
        );
        let Some(min) = self.min_size else {
            let worst = self.points.iter().find(|p| p.min_size == max_size);
            return (
                max_size,
                format!(
                    "min = max = {max_size}, and not enough: {step}, missed the target even with                      a full pool{}; the step is steeper than max_size {max_size} serves (a larger                      max, or traffic that ramps up)",
                    worst.map_or(String::new(), |p| format!(" ({})", p.measured()))
                ),
            );
        };
        let at = self.points.iter().find(|p| p.min_size == min);
        let below = self.points.iter().find(|p| p.min_size + 1 == min && !p.met);
        let mut why = format!(
            "min = {min}: {step}, met the target ({}){}; Little's law at the base rate gives {}",
            at.map_or(String::new(), BurstPoint::measured),
            match below {
                Some(b) => format!("; {}, missed", b.measured()),
                None => String::new(),
            },
            self.little_min
        );
        if let Some(rule) = costly_connect {
            if min < max_size {
                why.push_str(&format!(
                    "; the rule of thumb said min = max ({rule}), the step measured less is enough"
                ));
            } else {
                why.push_str(&format!("; as the rule of thumb said ({rule})"));
            }
        }
        (min, why)
    }
}

/// Little's law's min: the connections busy on average at the base load,
/// at least 1, at most `max`.
pub fn little_min(max_size: u32, base_rps_per_instance: f64, service_mean_us: f64) -> u32 {
    ((base_rps_per_instance * service_mean_us / 1e6)
        .ceil()
        .max(1.0) as u32)
        .min(max_size)
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
            let little = little_min(max_size, base_rps_per_instance, service_mean_us);
            (
                little,
                format!(
                    "min = ⌈λ_base·S⌉ = ⌈{} × {} ms⌉ = {little} (Little's law: connections \
                     busy on average at the base load, S measured at the target rate){}",
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
        Round::measured(p99_ms, 1000.0, achieved_rate)
    }

    #[test]
    fn no_size_met_though_some_kept_up_names_the_tail() {
        // plan at 62,408 req/s on sizing.toml, p99 10 ms (2 CPUs): every
        // size from 4 to 19 served the rate, none met in 4 of 5 rounds;
        // 35 fell short of the rate.
        let point = |size: u32, rounds: Vec<Round>| {
            let prediction = Prediction {
                utilisation: 0.5,
                p99_us: Some(200.0),
            };
            Point::new(size, 1000.0, prediction, rounds, false, 10.0)
        };
        let points = vec![
            point(
                4,
                vec![round(21.1, 1000.0), round(7.0, 1000.0), round(13.1, 999.0)],
            ),
            point(
                5,
                vec![
                    round(50.2, 1000.0),
                    round(6.1, 1000.0),
                    round(6.3, 1000.0),
                    round(5.8, 999.0),
                    round(41.8, 1000.0),
                ],
            ),
            point(
                19,
                vec![
                    round(16.0, 1000.0),
                    round(193.8, 1000.0),
                    round(43.4, 1000.0),
                ],
            ),
            point(
                35,
                vec![
                    round(1806.0, 900.0),
                    round(2404.0, 872.0),
                    round(2062.0, 887.0),
                ],
            ),
        ];
        let why = kept_up_but_missed(&points, 10.0).unwrap();
        assert_eq!(
            why,
            "pools of 4 to 19 connections (3 sizes) kept up with the rate in every round, yet \
             missed p99 ≤ 10 ms: their rounds' p99 5.800–193.8 ms; the closest, pool 5, met \
             in 3 of 5 rounds"
        );
        // One size alone; none of its rounds met.
        let one = [point(
            4,
            vec![
                round(21.1, 1000.0),
                round(13.0, 1000.0),
                round(12.0, 1000.0),
            ],
        )];
        let why = kept_up_but_missed(&one, 10.0).unwrap();
        assert!(why.starts_with("a pool of 4 connections kept up"), "{why}");
        assert!(why.ends_with("12.00–21.10 ms"), "{why}");
        // No size kept up: the rate was out of reach, not the tail.
        assert_eq!(kept_up_but_missed(&points[3..], 10.0), None);
        // A size met: there is an answer.
        let mut met = points.clone();
        met[1].met = true;
        assert_eq!(kept_up_but_missed(&met, 10.0), None);
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
            10.0,
        );
        // The third round fell short of the rate: the rounds disagreed.
        assert_eq!(p.rounds_met, 2);
        assert_eq!(p.noise().as_deref(), Some("2 of 3 rounds met"));
        assert_eq!(p.p99_ms, 7.8);
        assert_eq!(p.measured(), "p99 7.800 ms (7.100–8.400 over 3 rounds)");
        assert!((p.model_ratio.unwrap() - 3.9).abs() < 1e-9);
        let d = p.disagreement().unwrap();
        assert!(d.contains("3.9x"), "{d}");
        let s = p.shortfall().unwrap();
        assert!(s.contains("offered 1,000 req/s, achieved 900"), "{s}");
        assert!(s.contains("1 of 3 rounds more than 2% apart"), "{s}");
    }

    fn point(size: u32, p99s: &[f64], target: f64) -> Point {
        let rounds: Vec<Round> = p99s.iter().map(|p| round(*p, 1000.0)).collect();
        let met = super::super::search::verdict(&rounds, target, 3) == Some(true);
        let none = Prediction {
            utilisation: 0.5,
            p99_us: None,
        };
        Point::new(size, 1000.0, none, rounds, met, target)
    }

    #[test]
    fn sizes_whose_p99s_are_one_band_are_a_plateau() {
        // Issue 29's sizing scenario at half its capacity, 10 ms target:
        // 4 missed on a spike and a 10.1, 5 met 4 of 5, 9 met too.
        let points = [
            point(9, &[10.6, 6.8, 5.3, 9.0, 5.2], 10.0),
            point(2, &[18.0, 20.6, 76.5], 10.0),
            point(4, &[7.4, 42.7, 10.1], 10.0),
            point(5, &[6.8, 11.3, 9.3, 8.2, 6.4], 10.0),
        ];
        assert!(!points[2].met && points[3].met);
        let p = plateau(&points, 5).expect("4's median 10.1 is under 5's worst round");
        assert_eq!(p.sizes, [4, 9]);
        assert_eq!(p.median_p99_ms, [6.8, 10.1]);
        assert_eq!(p.round_p99_ms, [5.2, 42.7]);
        let w = p.warning(10.0, 5);
        assert!(w.starts_with("pool sizes 4 to 9 give the same p99"), "{w}");
        assert!(w.contains("the 10 ms target lies inside"), "{w}");
        assert!(w.contains("4 may meet in another run"), "{w}");

        // One fewer clearly slower (plan-tail at half its capacity): the
        // pool is what sets the p99, no plateau.
        let points = [
            point(5, &[90.3, 85.6, 70.0], 80.0),
            point(6, &[50.5, 53.9, 55.2], 80.0),
        ];
        assert!(plateau(&points, 6).is_none());
        // One fewer short of the rate: too small, not noise.
        let mut short = point(1, &[4.0, 4.0, 4.0], 10.0);
        for r in &mut short.rounds {
            r.achieved_rate = 500.0;
        }
        short.met = false;
        assert!(plateau(&[short, point(2, &[4.7, 5.0, 4.9], 10.0)], 2).is_none());
        // One fewer not measured: nothing to say.
        assert!(plateau(&[point(3, &[4.0, 5.0, 6.0], 10.0)], 3).is_none());
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
        assert_eq!(little_min(4, 1500.0, 1000.0), 2);
        assert_eq!(little_min(4, 15000.0, 1000.0), 4);
        assert_eq!(little_min(4, 1.0, 1000.0), 1);
        let b = BurstPoint::new(
            2,
            4,
            vec![round(14.0, 1000.0), round(12.0, 1000.0)],
            vec![3, 5],
            false,
        );
        assert_eq!(b.p99_ms, 14.0);
        let mut burst = Burst {
            base_rate: 500.0,
            rate: 1000.0,
            base_s: 1.0,
            window_s: 2.0,
            little_min: 2,
            points: vec![b.clone()],
            min_size: None,
        };
        let (min, why) = burst.min_reason(4, None);
        assert_eq!(min, 4);
        assert!(why.starts_with("min = max = 4, and not enough"), "{why}");
        burst.points.push(BurstPoint::new(
            3,
            4,
            vec![round(8.0, 1000.0)],
            vec![1],
            true,
        ));
        burst.min_size = Some(3);
        let (min, why) = burst.min_reason(4, Some("connect p50 12 ms ≥ 10× S"));
        assert_eq!(min, 3);
        assert!(
            why.starts_with("min = 3: a step from 500 to 1,000 req/s after 1 s"),
            "{why}"
        );
        assert!(why.contains("; min 2: p99 14.00 ms"), "{why}");
        assert!(
            why.contains("missed; Little's law at the base rate gives 2"),
            "{why}"
        );
        assert!(why.contains("the step measured less is enough"), "{why}");
        assert_eq!(
            b.measured(),
            "min 2: p99 14.00 ms (12.00–14.00 over 2 rounds), acquire p99 0.000 ms, 3–5 connections opened"
        );
        let s = settings(2, 4, "postgresql");
        assert_eq!(s["sqlx (Rust)"], "max_connections=4, min_connections=2");
        assert_eq!(s["SQLAlchemy (Python)"], "pool_size=2, max_overflow=2");
    }
}
