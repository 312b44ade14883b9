//! The terminal view of a rate sweep: corrected and uncorrected latency and
//! the achieved rate per strategy and rate, then where each saturates.

use super::run::{debug_build_line, server_line, title_line};
use crate::report::format::{ms, plural, render, rps, thousands};
use crate::scenario::Scenario;
use crate::sizing::rates::RateSweep;

pub fn header(s: &Scenario, sweep: &RateSweep) -> String {
    let mut out = title_line(&format!(
        "rate sweep of {} ({})",
        s.name,
        s.source.path.display()
    ));
    out.push_str(&server_line(&sweep.server));
    let rates: Vec<String> = sweep.settings.rates.iter().map(|r| rps(*r)).collect();
    out.push_str(&format!(
        "grid      rates {} req/s ({}) × {} · max_in_flight {} · {} warm-up + {} per point · seed {}\n",
        rates.join(","),
        sweep.settings.arrival,
        plural(s.strategies.len(), "strategy", "strategies"),
        sweep.settings.max_in_flight,
        humantime::format_duration(s.run.warmup),
        humantime::format_duration(s.run.duration),
        sweep.settings.seed,
    ));
    out.push_str(debug_build_line());
    out.push('\n');
    out
}

pub fn table(sweep: &RateSweep) -> String {
    let mut rows = vec![[
        "strategy",
        "rate",
        "achieved",
        "errors",
        "total p50",
        "total p99",
        "service p50",
        "service p99",
        "queue p99",
        "",
    ]
    .map(String::from)
    .to_vec()];
    for p in &sweep.points {
        rows.push(vec![
            p.strategy.clone(),
            rps(p.rate),
            rps(p.achieved_rate),
            thousands(p.errors),
            ms(p.total_p50_us as f64),
            ms(p.total_p99_us as f64),
            ms(p.service_p50_us as f64),
            ms(p.service_p99_us as f64),
            ms(p.queue_p99_us as f64),
            if p.saturated {
                "fell behind".into()
            } else {
                String::new()
            },
        ]);
    }
    let mut out = String::from(
        "latency in ms from the intended arrival (total) and from the start of service\n",
    );
    out.push_str(&render(&rows, 1));
    out.push('\n');
    for s in &sweep.saturation {
        let line = match (s.kept_up_to, s.saturates_at) {
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
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}
