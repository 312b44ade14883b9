//! sweep.html: a sweep as a page — per concurrency, throughput against pool
//! size with the fitted USL curve and the knee, p50/p99 against pool size,
//! the fresh strategy for reference, and the terminal's table. A pure
//! function of sweep.json's model.

use anyhow::Result;

use super::charts::{color, line_chart, Axis, Legend, Line, LineChart, Rule};
use super::page::{escape, facts, Page, Table};
use crate::report::format::{ms, rps, thousands};
use crate::sizing::model::{SweepReport, KNEE_FRACTION};
use crate::sizing::usl::Coefficients;

pub fn render(sweep: &SweepReport) -> Result<String> {
    let mut page = Page::new(&format!("poolbench sweep · {}", sweep.scenario.name));
    page.raw(&format!(
        "<h1>poolbench sweep: {}</h1>\n<p class=\"sub\">{} · template {} · pool sizes {} × \
         concurrency {}</p>\n",
        escape(&sweep.scenario.name),
        escape(&sweep.started_at),
        escape(&sweep.scenario.template),
        escape(&join(&sweep.settings.pool_sizes)),
        escape(&join(&sweep.settings.concurrency)),
    ));
    if sweep.interrupted {
        page.raw(
            "<p class=\"banner bad\" id=\"interrupted\">Interrupted: the sweep was cut short; \
             this page shows the points measured until then.</p>\n",
        );
    }
    page.paragraph(
        "note",
        &format!(
            "The knee is the smallest pool size with at least {:.0}% of the best measured \
             throughput at that concurrency. The dashed curve is the Universal Scalability Law \
             X(N) = λN / (1 + σ(N−1) + κN(N−1)) fitted to the measured points.",
            KNEE_FRACTION * 100.0
        ),
    );
    for &c in &sweep.settings.concurrency {
        concurrency_section(&mut page, sweep, c)?;
    }
    table(&mut page, sweep);
    let server = &sweep.server;
    page.heading(2, "facts", "The sweep");
    page.raw(&facts(&[
        (
            "server",
            format!(
                "{} {} · {} · auth {} · TLS {} · max_connections {}",
                server.engine_name(),
                server.version,
                if server.embedded {
                    "embedded"
                } else {
                    "external"
                },
                server.auth_method,
                if server.ssl { "on" } else { "off" },
                server.max_connections
            ),
        ),
        (
            "points",
            format!(
                "{} s warm-up + {} s per point · seed {} · recycling {}",
                sweep.settings.warmup_s,
                sweep.settings.duration_s,
                sweep.settings.seed,
                sweep.scenario.recycling
            ),
        ),
        (
            "scenario",
            format!("{} ({})", sweep.scenario.name, sweep.scenario.path),
        ),
        (
            "build",
            format!(
                "{} {} ({} build)",
                sweep.tool.name, sweep.tool.version, sweep.tool.build
            ),
        ),
    ]));
    Ok(page.finish())
}

fn join<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn concurrency_section(page: &mut Page, sweep: &SweepReport, c: u32) -> Result<()> {
    let points = sweep.points_at(c);
    if points.is_empty() {
        return Ok(());
    }
    page.heading(2, &format!("c{c}"), &format!("{c} workers"));
    let analysis = sweep.analysis.iter().find(|a| a.concurrency == c);
    let largest = points.last().map_or(1, |p| p.pool_size) as f64;
    let x_axis = Axis::linear("pool size (connections)", 0.0, largest);
    let rules: Vec<Rule> = analysis
        .map(|a| Rule {
            x: a.knee_pool_size as f64,
            label: format!("knee: pool {}", a.knee_pool_size),
        })
        .into_iter()
        .collect();

    let mut measured = Line::new(
        "measured",
        color(0),
        points
            .iter()
            .map(|p| (p.pool_size as f64, p.throughput_rps))
            .collect(),
    );
    measured.dots = true;
    let mut lines = vec![measured];
    if let Some(u) = analysis.and_then(|a| a.usl.as_ref()) {
        let model = Coefficients {
            sigma: u.sigma,
            kappa: u.kappa,
            lambda: u.lambda,
        };
        let steps = 200;
        let mut curve = Line::new(
            format!("USL fit (R² {:.3})", u.r_squared),
            color(4),
            (0..=steps)
                .map(|i| {
                    let n = 1.0 + (largest - 1.0) * i as f64 / steps as f64;
                    (n, model.throughput(n))
                })
                .collect(),
        );
        curve.dashed = true;
        lines.push(curve);
    }
    if let Some(f) = sweep.fresh_at(c) {
        let mut fresh = Line::new(
            format!(
                "{} (fresh)",
                sweep
                    .scenario
                    .fresh_strategy
                    .as_deref()
                    .unwrap_or("per-request")
            ),
            color(6),
            vec![(0.0, f.throughput_rps), (largest, f.throughput_rps)],
        );
        fresh.dashed = true;
        lines.push(fresh);
    }
    let top = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .fold(1.0, f64::max);
    page.figure(
        &line_chart(&LineChart {
            title: format!("{c} workers: throughput against pool size"),
            x: x_axis.clone(),
            y: Axis::linear("throughput (requests/s)", 0.0, top * 1.1),
            lines,
            rules: rules.clone(),
            height: 340,
            legend: Legend::LowerRight,
        })?,
        &format!("{c} workers: measured throughput at each pool size, the USL fit, the knee"),
    );

    let latency = vec![
        {
            let mut l = Line::new(
                "total p50",
                color(0),
                points
                    .iter()
                    .map(|p| (p.pool_size as f64, p.total.p50_us as f64 / 1000.0))
                    .collect(),
            );
            l.dots = true;
            l
        },
        {
            let mut l = Line::new(
                "total p99",
                color(4),
                points
                    .iter()
                    .map(|p| (p.pool_size as f64, p.total.p99_us as f64 / 1000.0))
                    .collect(),
            );
            l.dots = true;
            l
        },
    ];
    let top = latency
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .fold(0.001, f64::max);
    page.figure(
        &line_chart(&LineChart {
            title: format!("{c} workers: latency against pool size"),
            x: x_axis,
            y: Axis::linear("total latency (ms)", 0.0, top * 1.1),
            lines: latency,
            rules,
            height: 300,
            legend: Legend::UpperRight,
        })?,
        &format!("{c} workers: total latency p50 and p99 at each pool size"),
    );
    if let Some(u) = analysis.and_then(|a| a.usl.as_ref()) {
        let peak = match (u.peak_pool_size, u.peak_throughput_rps) {
            (Some(n), Some(x)) => format!("peak at {n:.1} connections, {} req/s", rps(x)),
            (None, Some(x)) => format!("no peak; throughput approaches {} req/s", rps(x)),
            _ => "no peak: linear scaling over the measured range".into(),
        };
        page.paragraph(
            "note",
            &format!(
                "USL fit: σ = {:.4} (contention), κ = {:.6} (coherency), λ = {} req/s per \
                 connection, R² = {:.3}; {peak}; bound by {}.",
                u.sigma,
                u.kappa,
                rps(u.lambda),
                u.r_squared,
                u.bound
            ),
        );
        for w in &u.warnings {
            page.paragraph("banner", &format!("warning: {w}"));
        }
    }
    Ok(())
}

fn table(page: &mut Page, sweep: &SweepReport) {
    page.heading(2, "table", "Points (latencies in ms)");
    let mut t = Table::new(&[
        ("workers", true),
        ("pool", true),
        ("req/s", true),
        ("errors", true),
        ("total p50", true),
        ("p99", true),
        ("acquire p50", true),
        ("p99", true),
        ("query p50", true),
        ("p99", true),
        ("", false),
    ]);
    for &c in &sweep.settings.concurrency {
        let knee = sweep
            .analysis
            .iter()
            .find(|a| a.concurrency == c)
            .map(|a| a.knee_pool_size);
        for (i, p) in sweep.points_at(c).into_iter().enumerate() {
            let size = p.pool_size.to_string();
            t.row(&[("concurrency", &c.to_string()), ("pool", &size)], i == 0)
                .num("concurrency", &c.to_string())
                .num("pool_size", &size)
                .num("throughput_rps", &rps(p.throughput_rps))
                .num("errors", &thousands(p.errors))
                .num("total_p50_us", &ms(p.total.p50_us as f64))
                .num("total_p99_us", &ms(p.total.p99_us as f64))
                .num("acquire_p50_us", &ms(p.acquire.p50_us as f64))
                .num("acquire_p99_us", &ms(p.acquire.p99_us as f64))
                .num("query_p50_us", &ms(p.query.p50_us as f64))
                .num("query_p99_us", &ms(p.query.p99_us as f64))
                .text(if knee == Some(p.pool_size) {
                    "◀ knee"
                } else {
                    ""
                });
        }
    }
    page.table(&t);
}
