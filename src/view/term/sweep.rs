//! The terminal view of a sweep: the header (grid and server), then one
//! row per point with the knee marked, and per concurrency the USL fit and
//! the fresh strategy's cost. An RTT sweep's: one row per RTT × strategy,
//! then the setup cost fitted against the RTT.

use super::run::{debug_build_line, server_line, title_line};
use crate::report::format::{ms, plural, render, rps, thousands, trimmed};
use crate::scenario::Scenario;
use crate::sizing::model::{RttSweep, SweepReport, KNEE_FRACTION, SWEEP_PHASES};

/// What `sweep` prints before measuring: the tool, the server, the grid, and
/// a warning when the largest pool cannot fit in the server's connections.
pub fn header(s: &Scenario, sweep: &SweepReport) -> String {
    let server = &sweep.server;
    let grid = &sweep.settings;
    let mut out = title_line(&format!(
        "sweep of {} ({}) · template {}",
        s.name,
        s.source.path.display(),
        sweep.scenario.template
    ));
    out.push_str(&server_line(server));
    let list = |v: Vec<String>| v.join(",");
    out.push_str(&format!(
        "grid      pool sizes {} × concurrency {} · {} warm-up + {} per point · seed {}{}\n",
        list(grid.pool_sizes.iter().map(|n| n.to_string()).collect()),
        list(grid.concurrency.iter().map(|n| n.to_string()).collect()),
        humantime::format_duration(s.run.warmup),
        humantime::format_duration(s.run.duration),
        s.run.seed,
        match &sweep.scenario.fresh_strategy {
            Some(f) => format!(" · {f} once per concurrency (setup cost)"),
            None => String::new(),
        }
    ));
    let largest = grid.pool_sizes.last().copied().unwrap_or(0);
    if server.max_connections > 0 && largest + 1 > server.max_connections as usize {
        out.push_str(&format!(
            "warning   pool size {largest} plus the monitor connection exceeds the server's \
             max_connections {}: the larger points will count too_many_connections errors\n",
            server.max_connections
        ));
    }
    out.push_str(debug_build_line());
    out.push('\n');
    out
}

/// The terminal table: one row per point, the knee marked, then per
/// concurrency the USL fit and the fresh strategy's cost.
pub fn table(sweep: &SweepReport) -> String {
    let mut heading: Vec<String> = ["workers", "pool", "req/s", "errors"]
        .map(String::from)
        .to_vec();
    for phase in SWEEP_PHASES {
        heading.extend([format!("{} p50", phase.as_str()), "p99".into()]);
    }
    heading.push(String::new());
    let mut rows = vec![heading];
    for c in &sweep.settings.concurrency {
        let analysis = sweep.analysis.iter().find(|a| a.concurrency == *c);
        for p in sweep.points_at(*c) {
            let mark = match analysis {
                _ if p.partial => "partial: interrupted, not analysed",
                Some(a) if a.knee_pool_size == p.pool_size => "◀ knee",
                _ => "",
            };
            let mut row = vec![
                c.to_string(),
                p.pool_size.to_string(),
                rps(p.throughput_rps),
                thousands(p.errors),
            ];
            for phase in SWEEP_PHASES.map(|phase| p.phase(phase)) {
                row.extend([ms(phase.p50_us as f64), ms(phase.p99_us as f64)]);
            }
            row.push(mark.into());
            rows.push(row);
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

/// What `sweep --rtts` prints before measuring.
pub fn rtt_header(s: &Scenario, sweep: &RttSweep) -> String {
    let mut out = title_line(&format!(
        "RTT sweep of {} ({})",
        s.name,
        s.source.path.display()
    ));
    out.push_str(&server_line(&sweep.server));
    let rtts: Vec<String> = sweep
        .settings
        .rtts_ms
        .iter()
        .map(|r| format!("{}ms", trimmed(*r, 3)))
        .collect();
    out.push_str(&format!(
        "grid      RTT {} emulated{} × {} · {} workers · {} warm-up + {} per point · seed {}\n",
        rtts.join(","),
        if sweep.settings.jitter_ms > 0.0 {
            format!(" (±{} ms jitter)", trimmed(sweep.settings.jitter_ms, 3))
        } else {
            String::new()
        },
        plural(s.strategies.len(), "strategy", "strategies"),
        sweep.settings.concurrency,
        humantime::format_duration(s.run.warmup),
        humantime::format_duration(s.run.duration),
        sweep.settings.seed,
    ));
    out.push_str(debug_build_line());
    out.push('\n');
    out
}

/// Below this R², the fit does not describe the points.
const POOR_FIT: f64 = 0.95;

/// One row per RTT × strategy, then each fit: setup cost = a + b × RTT.
pub fn rtt_table(sweep: &RttSweep) -> String {
    let count = |v: Option<u64>| v.map_or("-".into(), |n| n.to_string());
    let mut rows = vec![[
        "rtt",
        "strategy",
        "req/s",
        "errors",
        "total p50",
        "total p99",
        "connect p50",
        "round trips: connect",
        "request",
    ]
    .map(String::from)
    .to_vec()];
    for p in &sweep.points {
        rows.push(vec![
            format!("{} ms", trimmed(p.rtt_ms, 3)),
            p.strategy.clone(),
            rps(p.throughput_rps),
            thousands(p.errors),
            ms(p.total.p50_us as f64),
            ms(p.total.p99_us as f64),
            p.connect.map_or("-".into(), |c| ms(c.p50_us as f64)),
            count(p.connect_round_trips),
            count(p.request_round_trips),
        ]);
    }
    let mut out = String::from("latencies in ms\n");
    out.push_str(&render(&rows, 2));
    for f in &sweep.fits {
        out.push('\n');
        out.push_str(&format!(
            "{} against {}: setup cost = {} ms + {} × RTT{}\n",
            f.fresh,
            f.pool,
            trimmed(f.a_ms, 2),
            trimmed(f.b, 2),
            f.r_squared
                .map(|r| format!(" (R² = {r:.3})"))
                .unwrap_or_default()
        ));
        let counted = f
            .counted_round_trips
            .map(|n| format!(" (the emulator counted {n} more per request)"))
            .unwrap_or_default();
        out.push_str(&format!(
            "  a per-request connection costs {} ms with no network, and {} round trips per \
             request that a pool saves{counted}\n",
            trimmed(f.a_ms, 2),
            trimmed(f.b, 1)
        ));
        if f.r_squared.is_some_and(|r| r < POOR_FIT) {
            out.push_str(&format!(
                "  warning   the points are far from a line (R² below {POOR_FIT}): with {} \
                 workers the cost is mostly waiting (for the CPU, for the pool), not round \
                 trips; --concurrency 1 measures each request's own\n",
                sweep.settings.concurrency
            ));
        }
    }
    if sweep.interrupted {
        out.push_str("\ninterrupted: the sweep was cut short; the files hold what was measured\n");
    }
    out
}
