//! The pool-size axis (`poolbench sweep --pool-sizes`): for each
//! concurrency the fresh strategy once (its setup cost, for break-even),
//! then the template pool strategy at each pool size with min_size =
//! max_size, so every point measures a full pool in steady state; per
//! concurrency the Universal Scalability Law fitted and the knee. Its
//! sweep.json (`kind = "sweep"`) is what `plan` reads.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::{
    worth_keeping, Axis, Column, Curve, Mark, Percentiles, Plot, Section, Step, Sweep, Value,
};
use crate::error::bad_input;
use crate::metrics::Phase;
use crate::report::format::{ms, rps};
use crate::report::{self, StrategyReport};
use crate::scenario::limits::MAX_SWEEP_POINTS;
use crate::scenario::{
    self, Overrides, PoolSettings, QueryMode, Recycling, Scenario, Strategy, StrategyKind,
};
use crate::sizing::usl::{self, Coefficients, UslFit};

/// Tells a pool-size sweep's sweep.json from a report.json.
pub const SWEEP_KIND: &str = "sweep";

/// The share of the best throughput that marks the knee.
pub const KNEE_FRACTION: f64 = 0.95;

/// The phases a pool point keeps, in the order of sweep.csv and the table.
pub const SWEEP_PHASES: [Phase; 3] = [Phase::Total, Phase::Acquire, Phase::Query];

/// A pool-size sweep's sweep.json.
pub type SweepReport = Sweep<PoolSizes>;

/// What a pool-size sweep runs, resolved from the scenario and the flags.
#[derive(Debug, Clone)]
pub struct PoolSizes {
    template: Strategy,
    pool: PoolSettings,
    fresh: Option<Strategy>,
    pool_sizes: Vec<usize>,
    concurrency: Vec<u32>,
    /// Connections a fresh request opens, weighted over the mix.
    connections_per_request: f64,
}

/// Where a step lies: the fresh strategy, or a pool size, at a concurrency.
#[derive(Debug, Clone, Copy)]
pub enum At {
    Fresh { concurrency: u32 },
    Pool { concurrency: u32, size: usize },
}

impl PoolSizes {
    /// The template (`--strategy`, or the scenario's one pool strategy),
    /// the pool sizes (`--pool-sizes`, else `[sweep].pool_sizes`) and the
    /// concurrency levels (`--concurrency`, else `[sweep].concurrency`,
    /// else `[run].concurrency`), each checked as `run` would check it.
    pub fn new(
        s: &Scenario,
        strategy: Option<&str>,
        pool_sizes: &[u32],
        concurrency: &[u32],
    ) -> Result<PoolSizes> {
        let path = s.source.path.display();
        if let Some(a) = &s.run.arrivals {
            // Its points would all run the same arrivals, whatever their
            // concurrency: the axis would measure nothing it names.
            return Err(bad_input(format!(
                "a pool-size sweep runs closed-loop workers at each concurrency, but {path} runs \
                 open loop ({} arrivals/s): sweep its rates with --rates, or remove `rate`",
                a.rate
            )));
        }
        let pools: Vec<(&Strategy, &PoolSettings)> = s
            .strategies
            .iter()
            .filter_map(|st| match &st.kind {
                StrategyKind::Pool(p) => Some((st, p)),
                StrategyKind::Fresh => None,
            })
            .collect();
        let (template, pool) = match (strategy, pools.as_slice()) {
            (_, []) => {
                return Err(bad_input(format!(
                    "{path} has no kind = \"pool\" strategy: sweep needs one as the template \
                     (its recycling and wait_timeout are kept; max_size and min_size are swept)"
                )))
            }
            (Some(name), _) => pools
                .iter()
                .find(|(st, _)| st.name == name)
                .copied()
                .ok_or_else(|| {
                    let known: Vec<&str> = pools.iter().map(|(st, _)| st.name.as_str()).collect();
                    bad_input(format!(
                        "--strategy {name}: no pool strategy of that name in {path} (pool \
                         strategies: {})",
                        known.join(", ")
                    ))
                })?,
            (None, [one]) => *one,
            (None, many) => {
                let known: Vec<&str> = many.iter().map(|(st, _)| st.name.as_str()).collect();
                return Err(bad_input(format!(
                    "{path} has {} pool strategies ({}): choose the template with --strategy NAME",
                    many.len(),
                    known.join(", ")
                )));
            }
        };
        let mut pool_sizes: Vec<usize> = if pool_sizes.is_empty() {
            s.sweep.pool_sizes.clone()
        } else {
            pool_sizes.iter().map(|&n| n as usize).collect()
        };
        if pool_sizes.is_empty() {
            return Err(bad_input(format!(
                "no pool sizes to sweep: pass --pool-sizes 1,2,4,8 or add `[sweep]` with \
                 `pool_sizes = [1, 2, 4, 8]` to {path}"
            )));
        }
        pool_sizes.sort_unstable();
        pool_sizes.dedup();
        let mut concurrency = if !concurrency.is_empty() {
            concurrency.to_vec()
        } else if !s.sweep.concurrency.is_empty() {
            s.sweep.concurrency.clone()
        } else {
            vec![s.run.concurrency]
        };
        concurrency.sort_unstable();
        concurrency.dedup();
        for (flag, n) in [
            ("--pool-sizes", pool_sizes.len()),
            ("--concurrency", concurrency.len()),
        ] {
            if n > MAX_SWEEP_POINTS {
                return Err(bad_input(format!(
                    "{flag} lists {n} values, more than {MAX_SWEEP_POINTS}"
                )));
            }
        }
        // Each concurrency is checked as `run --concurrency N` would be.
        for &c in &concurrency {
            at_concurrency(s, c)?;
        }
        let fresh = s
            .strategies
            .iter()
            .find(|st| matches!(st.kind, StrategyKind::Fresh))
            .cloned();
        Ok(PoolSizes {
            template: template.clone(),
            pool: pool.clone(),
            fresh,
            pool_sizes,
            concurrency,
            connections_per_request: connections_per_request(s),
        })
    }
}

/// The scenario as `run --concurrency c` runs it.
fn at_concurrency(s: &Scenario, c: u32) -> Result<Scenario> {
    let point = Overrides {
        concurrency: Some(c),
        ..Overrides::default()
    };
    scenario::with_overrides(s.clone(), &point)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PoolSizeScenario {
    /// The pool strategy whose settings (recycling, wait_timeout) every
    /// point uses, with max_size = min_size = the point's pool size.
    pub template: String,
    pub recycling: String,
    pub wait_timeout_ms: Option<f64>,
    /// The fresh strategy measured for the setup cost, if any.
    pub fresh_strategy: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PoolSizeSettings {
    pub pool_sizes: Vec<usize>,
    pub concurrency: Vec<u32>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PoolSizeAnalysis {
    /// The scenario's fresh strategy, once per concurrency (empty when it
    /// has none).
    pub fresh: Vec<FreshPoint>,
    /// Per concurrency: the USL fit and the knee.
    #[serde(rename = "analysis")]
    pub per_concurrency: Vec<Analysis>,
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

impl SweepPoint {
    /// Whether the knee, the USL fit and a plan may use this point: it ran
    /// its whole window and some request succeeded (a point whose every
    /// request failed has 0 req/s, which is no measure of the pool).
    pub fn analysed(&self) -> bool {
        !self.partial && self.requests > 0
    }

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
        self.analysis
            .fresh
            .iter()
            .find(|f| f.concurrency == concurrency)
    }

    pub fn analysis_at(&self, concurrency: u32) -> Option<&Analysis> {
        self.analysis
            .per_concurrency
            .iter()
            .find(|a| a.concurrency == concurrency)
    }
}

impl Axis for PoolSizes {
    const KIND: &'static str = SWEEP_KIND;
    const TITLE: &'static str = "sweep";
    type Scenario = PoolSizeScenario;
    type Settings = PoolSizeSettings;
    type Point = SweepPoint;
    type Analysis = PoolSizeAnalysis;
    type At = At;

    fn scenario(&self) -> PoolSizeScenario {
        PoolSizeScenario {
            template: self.template.name.clone(),
            recycling: match self.pool.recycling {
                Recycling::Fast => "fast",
                Recycling::Verified => "verified",
                Recycling::Clean => "clean",
            }
            .into(),
            wait_timeout_ms: self.pool.wait_timeout.map(|d| d.as_secs_f64() * 1000.0),
            fresh_strategy: self.fresh.as_ref().map(|f| f.name.clone()),
        }
    }

    fn settings(&self) -> PoolSizeSettings {
        PoolSizeSettings {
            pool_sizes: self.pool_sizes.clone(),
            concurrency: self.concurrency.clone(),
        }
    }

    fn steps(&self, scenario: &Scenario) -> Vec<Step<At>> {
        let mut steps = Vec::new();
        for &concurrency in &self.concurrency {
            // Checked in `new`.
            let Ok(at) = at_concurrency(scenario, concurrency) else {
                continue;
            };
            let step = |at_: At, strategy: Strategy| Step {
                label: format!("{} c={concurrency}", strategy.name),
                at: at_,
                strategy,
                run: at.run.clone(),
                network: at.network,
                server: None,
            };
            if let Some(fresh) = &self.fresh {
                steps.push(step(At::Fresh { concurrency }, fresh.clone()));
            }
            for &size in &self.pool_sizes {
                let strategy = Strategy::new(
                    format!("pool-{size}"),
                    StrategyKind::Pool(PoolSettings {
                        max_size: size,
                        min_size: size,
                        ..self.pool.clone()
                    }),
                );
                steps.push(step(At::Pool { concurrency, size }, strategy));
            }
        }
        steps
    }

    fn record(&self, sweep: &mut SweepReport, at: &At, r: &StrategyReport, interrupted: bool) {
        match *at {
            // The setup cost of a fresh strategy cut short is not kept.
            At::Fresh { concurrency } if !interrupted => {
                sweep
                    .analysis
                    .fresh
                    .push(fresh_point(concurrency, r, self.connections_per_request))
            }
            At::Fresh { .. } => {}
            At::Pool { concurrency, size } => {
                if worth_keeping(r, interrupted) {
                    let mut point = pool_point(concurrency, size, r);
                    point.partial = interrupted;
                    sweep.points.push(point);
                }
            }
        }
    }

    fn analyse(sweep: &SweepReport) -> PoolSizeAnalysis {
        PoolSizeAnalysis {
            fresh: sweep.analysis.fresh.clone(),
            per_concurrency: analyse_all(sweep),
        }
    }

    fn grid(sweep: &SweepReport) -> String {
        let list = |v: Vec<String>| v.join(",");
        let s = &sweep.scenario;
        format!(
            "pool sizes {} × concurrency {} · template {} (recycling {}){}",
            list(
                sweep
                    .settings
                    .pool_sizes
                    .iter()
                    .map(|n| n.to_string())
                    .collect()
            ),
            list(
                sweep
                    .settings
                    .concurrency
                    .iter()
                    .map(|n| n.to_string())
                    .collect()
            ),
            s.template,
            s.recycling,
            match &s.fresh_strategy {
                Some(f) => format!(" · {f} once per concurrency (setup cost)"),
                None => String::new(),
            }
        )
    }

    /// The largest pool cannot fit in the server's connections.
    fn warnings(sweep: &SweepReport) -> Vec<String> {
        let server = &sweep.server;
        let largest = sweep.settings.pool_sizes.last().copied().unwrap_or(0);
        if server.max_connections > 0 && largest + 1 > server.max_connections as usize {
            vec![format!(
                "pool size {largest} plus the monitor connection exceeds the server's \
                 max_connections {}: the larger points will count too_many_connections errors",
                server.max_connections
            )]
        } else {
            Vec::new()
        }
    }

    fn columns() -> Vec<Column<PoolSizes>> {
        let mut columns = vec![
            Column::new("concurrency", "workers", |_, p: &SweepPoint| {
                Value::Int(p.concurrency.into())
            }),
            Column::new("pool_size", "pool", |_, p: &SweepPoint| {
                Value::Int(p.pool_size as u64)
            }),
            Column::file("requests", |_, p: &SweepPoint| Value::Count(p.requests)),
            Column::new("errors", "errors", |_, p: &SweepPoint| {
                Value::Count(p.errors)
            }),
            Column::new("throughput_rps", "req/s", |_, p: &SweepPoint| {
                Value::Rps(p.throughput_rps)
            }),
        ];
        for phase in SWEEP_PHASES {
            let name = phase.as_str();
            columns.extend([
                Column::new(
                    format!("{name}_p50_ms"),
                    format!("{name} p50"),
                    move |_, p: &SweepPoint| Value::Us(p.phase(phase).p50_us),
                ),
                Column::file(format!("{name}_p90_ms"), move |_, p: &SweepPoint| {
                    Value::Us(p.phase(phase).p90_us)
                }),
                Column::new(format!("{name}_p99_ms"), "p99", move |_, p: &SweepPoint| {
                    Value::Us(p.phase(phase).p99_us)
                }),
                Column::file(format!("{name}_p999_ms"), move |_, p: &SweepPoint| {
                    Value::Us(p.phase(phase).p999_us)
                }),
            ]);
        }
        columns.extend([
            Column::file("service_time_mean_ms", |_, p: &SweepPoint| {
                Value::MeanUs(p.service_time_mean_us)
            }),
            Column::file("knee", |sweep, p: &SweepPoint| {
                Value::Flag(is_knee(sweep, p))
            }),
            Column::file("partial", |_, p: &SweepPoint| Value::Flag(p.partial)),
            Column::table("", |sweep, p: &SweepPoint| {
                Value::Text(
                    if p.partial {
                        "partial: interrupted, not analysed"
                    } else if !p.analysed() {
                        "no request succeeded, not analysed"
                    } else if is_knee(sweep, p) {
                        "◀ knee"
                    } else {
                        ""
                    }
                    .into(),
                )
            }),
        ]);
        columns
    }

    /// By concurrency, then pool size.
    fn ordered(sweep: &SweepReport) -> Vec<&SweepPoint> {
        let c = &sweep.settings.concurrency;
        c.iter().flat_map(|&c| sweep.points_at(c)).collect()
    }

    fn keys(p: &SweepPoint) -> Vec<(&'static str, String)> {
        vec![
            ("concurrency", p.concurrency.to_string()),
            ("pool", p.pool_size.to_string()),
        ]
    }

    fn sections(sweep: &SweepReport) -> Vec<Section> {
        let mut sections = vec![Section {
            id: "knee".into(),
            title: None,
            plots: Vec::new(),
            notes: vec![vec![format!(
                "knee: the smallest pool size with ≥ {:.0}% of the best measured throughput at \
                 that concurrency",
                KNEE_FRACTION * 100.0
            )]],
        }];
        for &c in &sweep.settings.concurrency {
            let points = sweep.points_at(c);
            if points.is_empty() {
                continue;
            }
            sections.push(Section {
                id: format!("c{c}"),
                title: Some(format!("{c} workers")),
                plots: plots(sweep, c, &points),
                notes: vec![findings(sweep, c)],
            });
        }
        sections
    }
}

/// The knee of its concurrency.
fn is_knee(sweep: &SweepReport, p: &SweepPoint) -> bool {
    sweep
        .analysis_at(p.concurrency)
        .is_some_and(|a| a.knee_pool_size == p.pool_size)
}

/// Throughput against pool size (measured, the USL curve, the fresh
/// strategy for reference) and latency against pool size, the knee marked.
fn plots(sweep: &SweepReport, c: u32, points: &[&SweepPoint]) -> Vec<Plot> {
    let analysis = sweep.analysis_at(c);
    let largest = points.last().map_or(1, |p| p.pool_size) as f64;
    let marks: Vec<Mark> = analysis
        .map(|a| Mark {
            x: a.knee_pool_size as f64,
            label: format!("knee: pool {}", a.knee_pool_size),
        })
        .into_iter()
        .collect();
    let at = |y: &dyn Fn(&SweepPoint) -> f64| -> Vec<(f64, f64)> {
        points.iter().map(|p| (p.pool_size as f64, y(p))).collect()
    };
    let mut curves = vec![Curve::measured("measured", at(&|p| p.throughput_rps))];
    if let Some(u) = analysis.and_then(|a| a.usl.as_ref()) {
        let model = Coefficients {
            sigma: u.sigma,
            kappa: u.kappa,
            lambda: u.lambda,
        };
        let steps = 200;
        curves.push(Curve::fitted(
            format!("USL fit (R² {:.3})", u.r_squared),
            (0..=steps)
                .map(|i| {
                    let n = 1.0 + (largest - 1.0) * f64::from(i) / f64::from(steps);
                    (n, model.throughput(n))
                })
                .collect(),
        ));
    }
    if let Some(f) = sweep.fresh_at(c) {
        let name = sweep.scenario.fresh_strategy.as_deref();
        curves.push(Curve::fitted(
            format!("{} (fresh)", name.unwrap_or("per-request")),
            vec![(0.0, f.throughput_rps), (largest, f.throughput_rps)],
        ));
    }
    let ms = |us: u64| us as f64 / 1000.0;
    vec![
        Plot {
            title: format!("{c} workers: throughput against pool size"),
            x: "pool size (connections)".into(),
            y: "throughput (requests/s)".into(),
            curves,
            marks: marks.clone(),
            rising: true,
        },
        Plot {
            title: format!("{c} workers: latency against pool size"),
            x: "pool size (connections)".into(),
            y: "total latency (ms)".into(),
            curves: vec![
                Curve::measured("total p50", at(&|p| ms(p.total.p50_us))),
                Curve::measured("total p99", at(&|p| ms(p.total.p99_us))),
            ],
            marks,
            rising: false,
        },
    ]
}

/// The best pool, the knee, the USL fit and the fresh strategy's cost.
fn findings(sweep: &SweepReport, c: u32) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(a) = sweep.analysis_at(c) {
        out.push(format!(
            "{c} workers: best {} req/s at pool {}; knee at pool {}",
            rps(a.best_throughput_rps),
            a.best_pool_size,
            a.knee_pool_size
        ));
        match &a.usl {
            Some(u) => {
                out.push(format!(
                    "  USL fit   σ = {:.4}  κ = {:.6}  λ = {} req/s per connection  R² = {:.3}",
                    u.sigma,
                    u.kappa,
                    rps(u.lambda),
                    u.r_squared
                ));
                out.push(format!(
                    "            linear transform cross-check: σ = {:.4}  κ = {:.6}",
                    u.linear_sigma, u.linear_kappa
                ));
                let peak = match (u.peak_pool_size, u.peak_throughput_rps) {
                    (Some(n), Some(x)) => format!(
                        "peak N* = √((1−σ)/κ) = {n:.1} connections, {} req/s; bound by {}",
                        rps(x),
                        u.bound
                    ),
                    (None, Some(x)) => format!(
                        "no peak (κ = 0); throughput approaches λ/σ = {} req/s; bound by contention",
                        rps(x)
                    ),
                    _ => "no peak: linear scaling over the measured range".into(),
                };
                out.push(format!("            {peak}"));
                for w in &u.warnings {
                    out.push(format!("  warning   {w}"));
                }
            }
            None => out.push("  USL fit   needs at least 3 pool sizes".into()),
        }
    }
    if let Some(f) = sweep.fresh_at(c) {
        out.push(format!(
            "  fresh     {} req/s · total p50 {} ms · connect p50 {} ms, p99 {} ms",
            rps(f.throughput_rps),
            ms(f.total.p50_us as f64),
            ms(f.connect.p50_us as f64),
            ms(f.connect.p99_us as f64)
        ));
    }
    out
}

fn phase(r: &StrategyReport, phase: Phase) -> Percentiles {
    r.phases
        .get(phase.as_str())
        .map(Percentiles::from)
        .unwrap_or_default()
}

pub fn pool_point(concurrency: u32, size: usize, r: &StrategyReport) -> SweepPoint {
    let query = phase(r, Phase::Query);
    SweepPoint {
        concurrency,
        pool_size: size,
        requests: r.requests,
        errors: r.error_count(),
        error_classes: r.errors.clone(),
        throughput_rps: r.throughput_rps,
        total: phase(r, Phase::Total),
        acquire: phase(r, Phase::Acquire),
        query,
        service_time_mean_us: query.mean_us,
        startup_ms: r.startup_ms,
        partial: false,
    }
}

pub fn fresh_point(concurrency: u32, r: &StrategyReport, connections: f64) -> FreshPoint {
    FreshPoint {
        concurrency,
        requests: r.requests,
        errors: r.error_count(),
        throughput_rps: r.throughput_rps,
        total: phase(r, Phase::Total),
        connect: phase(r, Phase::Connect),
        query: phase(r, Phase::Query),
        close: phase(r, Phase::Close),
        connections_per_request: connections,
    }
}

/// Connections a fresh request opens, weighted over the mix: one, or one
/// per statement for a parallel query. (Counted from the scenario, because
/// the strategy's own count includes the warm-up.)
pub fn connections_per_request(s: &Scenario) -> f64 {
    let (mut weighted, mut weights) = (0.0, 0.0);
    for q in &s.queries {
        let n = match q.mode {
            QueryMode::Parallel => q.statements.len(),
            QueryMode::Sequential | QueryMode::Transaction => 1,
        };
        weighted += f64::from(q.weight) * n as f64;
        weights += f64::from(q.weight);
    }
    if weights > 0.0 {
        report::round(weighted / weights, 3)
    } else {
        1.0
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
        usl: usl::fit(&xy),
    })
}

pub fn analyse_all(sweep: &SweepReport) -> Vec<Analysis> {
    sweep
        .settings
        .concurrency
        .iter()
        .filter_map(|&c| {
            // A point cut short, or whose every request failed, is shown,
            // but neither fitted nor a knee.
            let whole: Vec<&SweepPoint> = sweep
                .points_at(c)
                .into_iter()
                .filter(|p| p.analysed())
                .collect();
            analyse(c, &whole)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_point_is_shown_but_never_the_knee() {
        let mut sweep = crate::sizing::plan::tests::known_sweep(5000);
        let knee = analyse_all(&sweep)[0].knee_pool_size;
        for p in sweep.points.iter_mut().filter(|p| p.pool_size == knee) {
            p.partial = true;
        }
        let cut = analyse_all(&sweep);
        assert_ne!(cut[0].knee_pool_size, knee);
        sweep.analysis.per_concurrency = cut;
        let mark = PoolSizes::columns().pop().unwrap();
        let marks: Vec<Value> = PoolSizes::ordered(&sweep)
            .into_iter()
            .filter(|p| p.pool_size == knee)
            .map(|p| (mark.value)(&sweep, p))
            .collect();
        assert_eq!(
            marks,
            [Value::Text("partial: interrupted, not analysed".into())]
        );
    }

    #[test]
    fn points_whose_every_request_failed_are_never_the_knee() {
        let mut sweep = crate::sizing::plan::tests::known_sweep(5000);
        for p in &mut sweep.points {
            p.requests = 0;
            p.throughput_rps = 0.0;
        }
        assert!(analyse_all(&sweep).is_empty(), "a knee at 0 req/s");
        let mut sweep = crate::sizing::plan::tests::known_sweep(5000);
        let knee = analyse_all(&sweep)[0].knee_pool_size;
        for p in sweep.points.iter_mut().filter(|p| p.pool_size == knee) {
            p.requests = 0;
            p.throughput_rps = 0.0;
        }
        assert_ne!(analyse_all(&sweep)[0].knee_pool_size, knee);
    }

    #[test]
    fn a_sweep_json_reads_back_with_the_same_fields() {
        let sweep = crate::sizing::plan::tests::known_sweep(5000);
        let json = serde_json::to_value(&sweep).unwrap();
        for key in ["points", "fresh", "analysis"] {
            assert!(json.get(key).is_some(), "no {key} in {json}");
        }
        assert_eq!(json["scenario"]["template"], "pool");
        assert_eq!(json["settings"]["pool_sizes"][0], 1);
        assert!(json["settings"]["seed"].is_u64());
        let back: SweepReport = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(serde_json::to_value(&back).unwrap(), json);
    }
}
