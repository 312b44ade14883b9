//! A strategy's report from the engine's rounds: histograms merged,
//! throughput over the summed measured time, each round and each second
//! kept apart. It reads the engine's `RoundResult` and the scenario's
//! `Strategy`, so it sits up here with the commands that measure (run,
//! sweep, plan --verify), not in `report/`: the report's model is below
//! the backend (which describes its server in it), and the backend is
//! below the scenario (which checks DSNs with its parsers), which is below
//! the engine — `report/` importing either would close a circle.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use crate::engine::RoundResult;
use crate::metrics::{summarize_phases, ErrorCounts, Phase, Recorder, Summary};
use crate::scenario::{Strategy, StrategyKind};

use crate::report::{
    round, storms, Counts, Kind, PoolChurn, RoundStats, RoundTripsReport, StrategyReport,
    TimelineRow,
};

/// The report of `strategy` from all its rounds so far; `queries` are the
/// scenario's query names, in order.
pub fn assemble(strategy: &Strategy, queries: &[String], rounds: &[RoundResult]) -> StrategyReport {
    let mut total = Recorder::new(queries.len());
    let mut failures = ErrorCounts::default();
    let mut measured = Duration::ZERO;
    let (mut completed_in_window, mut windows) = (0, Duration::ZERO);
    let mut startup = Duration::ZERO;
    let mut connections_opened = 0;
    let mut round_stats = Vec::with_capacity(rounds.len());
    let mut timeline = Vec::new();
    for (i, r) in rounds.iter().enumerate() {
        let number = i as u32 + 1;
        total.merge(&r.recorder);
        failures.merge(&r.failures);
        measured += r.measured;
        completed_in_window += r.completed_in_window;
        windows += r.window;
        startup += r.startup;
        connections_opened += r.connections_opened;
        let totals = Summary::quantiles(r.recorder.phases.get(Phase::Total));
        round_stats.push(RoundStats {
            round: number,
            requests: r.recorder.requests,
            errors: r.recorder.errors.total(),
            throughput_rps: rate(r.recorder.requests, r.measured),
            p50_us: totals.0,
            p99_us: totals.1,
            started_unix_ms: r
                .started_at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        });
        timeline.extend(r.seconds.iter().map(|s| {
            let totals = s.phases.get(Phase::Total).filter(|h| !h.is_empty());
            let (p50_us, p99_us) = match totals {
                Some(h) => (
                    Some(h.value_at_quantile(0.5)),
                    Some(h.value_at_quantile(0.99)),
                ),
                None => (None, None),
            };
            TimelineRow {
                round: number,
                second: s.second,
                rps: s.requests as f64,
                errors: s.errors,
                p50_us,
                p99_us,
                pool_size: s.pool.map(|p| p.size as u64),
                pool_available: s.pool.map(|p| p.available as u64),
                pool_waiting: s.pool.map(|p| p.waiting as u64),
                server_backends: s.backends,
                pgbouncer: s.pooler,
                hdr: s.phases.encode(),
                in_flight: s.in_flight,
                queued: s.queued,
                offered: s.offered,
                achieved: s.offered.map(|_| s.requests),
                expired: s.expired,
                churn: s.churn.map_or_else(PoolChurn::default, |c| PoolChurn {
                    opened: Some(c.opened),
                    closed: Some(c.closed.total()),
                    closed_by: Some(c.closed),
                }),
            }
        }));
    }
    let throughput_rps = rate(total.requests, measured);
    let generator = rounds
        .iter()
        .filter_map(|r| r.generator)
        .reduce(|mut all, g| {
            all.merge(&g);
            all
        });
    let expired = offered_rate_of(rounds).map(|_| {
        rounds
            .iter()
            .flat_map(|r| &r.seconds)
            .filter_map(|s| s.expired)
            .sum()
    });
    // Offered over all rounds: arrivals in the windows per second of window.
    let offered_rate = rounds
        .iter()
        .map(|r| r.offered_rate)
        .sum::<Option<f64>>()
        .map(|sum| round(sum / rounds.len().max(1) as f64, 1));
    StrategyReport {
        name: strategy.name.clone(),
        kind: kind_of(&strategy.kind),
        settings: settings(strategy),
        requests: total.requests,
        target: None,
        max_server_connections: None,
        shards: rounds.iter().map(|r| r.shards).max().unwrap_or(1),
        retries: total.retries,
        errors: total.errors.counts.clone(),
        startup_errors: failures.counts.clone(),
        error_samples: {
            let mut samples = total.errors.samples.clone();
            for (class, messages) in &failures.samples {
                samples
                    .entry(class.clone())
                    .or_default()
                    .extend(messages.iter().cloned());
            }
            samples
        },
        throughput_rps,
        offered_rate,
        // As pgbench -R counts: what ended inside the windows, over them.
        achieved_rate: offered_rate.map(|_| rate(completed_in_window, windows)),
        generator_saturated: generator.map(|g| g.saturated()),
        generator_lag_max_us: generator.map(|g| g.worst_us),
        expired,
        connections_opened,
        startup_ms: round(
            startup.as_secs_f64() * 1000.0 / rounds.len().max(1) as f64,
            3,
        ),
        measured_s: round(measured.as_secs_f64(), 3),
        phases: summarize_phases(&total.phases),
        round_trips: round_trips(&total),
        setup_cpu: setup_cpu(&total),
        server_cpu_absent: None,
        per_query: queries
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let empty = crate::metrics::new_histogram();
                (
                    name.clone(),
                    Summary::of(total.per_query.get(i).unwrap_or(&empty)),
                )
            })
            .collect(),
        rounds: round_stats,
        storms: match &strategy.kind {
            StrategyKind::Pool(p) => storms(&timeline, p.max_connections() as u64),
            StrategyKind::Fresh => Vec::new(),
        },
        timeline,
        transactions: None,
        statements: None,
        observed: None,
    }
}

/// Open loop's offered rate of the first round (None in closed loop).
fn offered_rate_of(rounds: &[RoundResult]) -> Option<f64> {
    rounds.first().and_then(|r| r.offered_rate)
}

/// The report's name for a scenario's kind.
pub fn kind_of(kind: &StrategyKind) -> Kind {
    match kind {
        StrategyKind::Fresh => Kind::Fresh,
        StrategyKind::Pool(_) => Kind::Pool,
    }
}

/// The kind's settings, and `statement_cache = false` when it is set.
fn settings(strategy: &Strategy) -> serde_json::Value {
    let mut settings = strategy.kind.settings();
    if let (false, Some(map)) = (strategy.statement_cache, settings.as_object_mut()) {
        map.insert("statement_cache".into(), false.into());
    }
    settings
}

fn round_trips(r: &Recorder) -> Option<RoundTripsReport> {
    let counts = |h: &Option<hdrhistogram::Histogram<u64>>| h.as_ref().and_then(Counts::of);
    let report = RoundTripsReport {
        connect: counts(&r.round_trips.connect),
        request: counts(&r.round_trips.request),
    };
    (report != RoundTripsReport::default()).then_some(report)
}

/// The setups' CPU summaries by report.json's key, those measured.
fn setup_cpu(r: &Recorder) -> BTreeMap<String, Summary> {
    let c = &r.setup_cpu;
    [
        ("client_us", &c.client),
        ("client_tcp_us", &c.client_tcp),
        ("client_tls_us", &c.client_tls),
        ("client_startup_us", &c.client_startup),
        ("client_scram_us", &c.client_scram),
        ("server_us", &c.server),
        ("server_fork_us", &c.server_fork),
        ("server_auth_us", &c.server_auth),
    ]
    .into_iter()
    .filter_map(|(key, h)| {
        h.as_ref()
            .filter(|h| !h.is_empty())
            .map(|h| (key.to_string(), Summary::of(h)))
    })
    .collect()
}

fn rate(requests: u64, over: Duration) -> f64 {
    let s = over.as_secs_f64();
    if s > 0.0 {
        round(requests as f64 / s, 1)
    } else {
        0.0
    }
}
