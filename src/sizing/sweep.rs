//! The sweep's points: each measured strategy's report turned into a point
//! of sweep.json, the analysis of every concurrency, and sweep.json and
//! sweep.csv. The command that runs the grid is `commands/sweep.rs`.

use std::path::Path;

use anyhow::Result;

use super::model::*;
use crate::report::format::{ms, render, rps, thousands};
use crate::report::{self, StrategyReport};
use crate::scenario::{QueryMode, Scenario};

/// The files a sweep writes.
pub const FILES: [&str; 2] = ["sweep.json", "sweep.csv"];

fn phase(r: &StrategyReport, name: &str) -> Percentiles {
    r.phases
        .get(name)
        .map(Percentiles::from)
        .unwrap_or_default()
}

pub fn pool_point(concurrency: u32, size: usize, r: &StrategyReport) -> SweepPoint {
    let query = phase(r, "query");
    SweepPoint {
        concurrency,
        pool_size: size,
        requests: r.requests,
        errors: r.error_count(),
        error_classes: r.errors.clone(),
        throughput_rps: r.throughput_rps,
        total: phase(r, "total"),
        acquire: phase(r, "acquire"),
        query,
        service_time_mean_us: query.mean_us,
        startup_ms: r.startup_ms,
    }
}

pub fn fresh_point(concurrency: u32, r: &StrategyReport, connections: f64) -> FreshPoint {
    FreshPoint {
        concurrency,
        requests: r.requests,
        errors: r.error_count(),
        throughput_rps: r.throughput_rps,
        total: phase(r, "total"),
        connect: phase(r, "connect"),
        query: phase(r, "query"),
        close: phase(r, "close"),
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

pub fn analyse_all(sweep: &SweepReport) -> Vec<Analysis> {
    sweep
        .settings
        .concurrency
        .iter()
        .filter_map(|&c| analyse(c, &sweep.points_at(c)))
        .collect()
}

pub fn write(dir: &Path, sweep: &SweepReport) -> Result<()> {
    let mut json = serde_json::to_vec_pretty(sweep)?;
    json.push(b'\n');
    report::write_atomically(&dir.join("sweep.json"), &json)?;
    report::write_atomically(&dir.join("sweep.csv"), &csv(sweep)?)
}

/// sweep.csv: one row per point, milliseconds like summary.csv.
pub fn csv(sweep: &SweepReport) -> Result<Vec<u8>> {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    w.write_record([
        "scenario",
        "concurrency",
        "pool_size",
        "requests",
        "errors",
        "throughput_rps",
        "total_p50_ms",
        "total_p90_ms",
        "total_p99_ms",
        "total_p999_ms",
        "acquire_p50_ms",
        "acquire_p90_ms",
        "acquire_p99_ms",
        "acquire_p999_ms",
        "query_p50_ms",
        "query_p90_ms",
        "query_p99_ms",
        "query_p999_ms",
        "service_time_mean_ms",
        "knee",
    ])?;
    let f = |us: u64| format!("{:.3}", us as f64 / 1000.0);
    for p in &sweep.points {
        let knee = sweep
            .analysis
            .iter()
            .any(|a| a.concurrency == p.concurrency && a.knee_pool_size == p.pool_size);
        let mut row = vec![
            sweep.scenario.name.clone(),
            p.concurrency.to_string(),
            p.pool_size.to_string(),
            p.requests.to_string(),
            p.errors.to_string(),
            format!("{:.1}", p.throughput_rps),
        ];
        for ph in [&p.total, &p.acquire, &p.query] {
            row.extend([f(ph.p50_us), f(ph.p90_us), f(ph.p99_us), f(ph.p999_us)]);
        }
        row.push(format!("{:.3}", p.service_time_mean_us / 1000.0));
        row.push(knee.to_string());
        w.write_record(&row)?;
    }
    Ok(w.into_inner()?)
}

/// The terminal table: one row per point, the knee marked, then per
/// concurrency the USL fit and the fresh strategy's cost.
pub fn table(sweep: &SweepReport) -> String {
    let mut rows = vec![[
        "workers",
        "pool",
        "req/s",
        "errors",
        "total p50",
        "p99",
        "acquire p50",
        "p99",
        "query p50",
        "p99",
        "",
    ]
    .map(String::from)
    .to_vec()];
    for c in &sweep.settings.concurrency {
        let analysis = sweep.analysis.iter().find(|a| a.concurrency == *c);
        for p in sweep.points_at(*c) {
            let mark = match analysis {
                Some(a) if a.knee_pool_size == p.pool_size => "◀ knee",
                _ => "",
            };
            rows.push(vec![
                c.to_string(),
                p.pool_size.to_string(),
                rps(p.throughput_rps),
                thousands(p.errors),
                ms(p.total.p50_us as f64),
                ms(p.total.p99_us as f64),
                ms(p.acquire.p50_us as f64),
                ms(p.acquire.p99_us as f64),
                ms(p.query.p50_us as f64),
                ms(p.query.p99_us as f64),
                mark.into(),
            ]);
        }
    }
    let mut out = String::from("latencies in ms\n");
    out.push_str(&render(&rows, 0));
    out.push_str(&format!(
        "knee: the smallest pool size with ≥ {:.0}% of the best measured throughput at that \
         concurrency\n",
        KNEE_FRACTION * 100.0
    ));
    for c in &sweep.settings.concurrency {
        let Some(a) = sweep.analysis.iter().find(|a| a.concurrency == *c) else {
            continue;
        };
        out.push('\n');
        out.push_str(&format!(
            "{c} workers: best {} req/s at pool {}; knee at pool {}\n",
            rps(a.best_throughput_rps),
            a.best_pool_size,
            a.knee_pool_size
        ));
        match &a.usl {
            Some(u) => {
                out.push_str(&format!(
                    "  USL fit   σ = {:.4}  κ = {:.6}  λ = {} req/s per connection  R² = {:.3}\n",
                    u.sigma,
                    u.kappa,
                    rps(u.lambda),
                    u.r_squared
                ));
                out.push_str(&format!(
                    "            linear transform cross-check: σ = {:.4}  κ = {:.6}\n",
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
                out.push_str(&format!("            {peak}\n"));
                for w in &u.warnings {
                    out.push_str(&format!("  warning   {w}\n"));
                }
            }
            None => out.push_str("  USL fit   needs at least 3 pool sizes\n"),
        }
        if let Some(f) = sweep.fresh_at(*c) {
            out.push_str(&format!(
                "  fresh     {} req/s · total p50 {} ms · connect p50 {} ms, p99 {} ms\n",
                rps(f.throughput_rps),
                ms(f.total.p50_us as f64),
                ms(f.connect.p50_us as f64),
                ms(f.connect.p99_us as f64)
            ));
        }
    }
    if sweep.interrupted {
        out.push_str("\ninterrupted: the sweep was cut short; the files hold what was measured\n");
    }
    out
}
