//! Merging the reports of synchronised copies of poolbench into one report,
//! exactly: histograms are added (percentiles are never averaged), counts
//! summed, throughput taken over the seconds every copy measured, timelines
//! aligned by wall-clock second, and each input listed with its host, index
//! and window. Pure: reports in, a report and its warnings out.
//!
//! The inputs are not trusted: the same run given twice ([`same_run`]), a
//! report whose totals disagree with its own rounds, timeline and
//! histograms ([`check_whole`]), and counts whose sum would not fit in 64
//! bits ([`sum`]: never a wrap) are refused, naming the file.

use std::collections::BTreeMap;

use anyhow::Result;
use hdrhistogram::Histogram;

use super::model::Explanation;
use super::model::*;
use crate::error::bad_input;
use crate::metrics::packed::Hdr;
use crate::metrics::{decode_histogram, new_histogram, ErrorCounts, Summary};

/// Clocks whose offsets from the server's differ by more than this are
/// called skewed: the timeline's seconds would no longer line up.
const SKEW_WARN_MS: f64 = 100.0;

/// Windows overlapping less than this (shared time / spanned time) get a
/// warning: throughput is then over a fraction of what was measured.
const OVERLAP_WARN: f64 = 0.9;

/// A report to merge and the file it came from (named in errors and in the
/// merged report's `inputs`).
#[derive(Debug, Clone)]
pub struct Input {
    pub path: String,
    pub report: Report,
}

/// The merged report and what the user should know about it.
#[derive(Debug)]
pub struct Merged {
    pub report: Report,
    pub warnings: Vec<String>,
}

/// Merges `inputs` (one or more). Reports of different scenarios (sha256) or
/// servers are refused (bad input) unless `allow_different`; so is a
/// histogram that is missing or does not decode, since it could not be
/// added exactly.
pub fn merge(inputs: &[Input], allow_different: bool) -> Result<Merged> {
    let Some(first) = inputs.first() else {
        return Err(bad_input("nothing to merge: no reports given"));
    };
    for input in inputs {
        check_whole(input)?;
    }
    same_run(inputs)?;
    let mut warnings = check_compatible(inputs, allow_different)?;

    let mut names: Vec<&str> = Vec::new();
    for input in inputs {
        for s in &input.report.strategies {
            if !names.contains(&s.name.as_str()) {
                names.push(&s.name);
            }
        }
    }
    if names.is_empty() {
        // A merged report of nothing would pass for a measurement.
        return Err(bad_input(format!(
            "nothing to merge: no input has a strategy ({})",
            inputs
                .iter()
                .map(|i| i.path.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let mut strategies = Vec::with_capacity(names.len());
    for name in names {
        let parts: Vec<Part> = inputs
            .iter()
            .filter_map(|input| {
                let strategy = input.report.strategies.iter().find(|s| s.name == name)?;
                Some(Part { input, strategy })
            })
            .collect();
        if parts.len() < inputs.len() {
            let missing: Vec<&str> = inputs
                .iter()
                .filter(|i| !i.report.strategies.iter().any(|s| s.name == name))
                .map(|i| i.path.as_str())
                .collect();
            warnings.push(format!(
                "strategy {name} is missing from {}: it is merged from the other reports only",
                missing.join(", ")
            ));
        }
        strategies.push(merge_strategy(name, &parts, &mut warnings)?);
    }

    warnings.extend(clock_warnings(inputs));
    let unknown: Vec<&str> = inputs
        .iter()
        .filter(|i| {
            i.report
                .strategies
                .iter()
                .flat_map(|s| &s.rounds)
                .any(|r| r.started_unix_ms == 0)
        })
        .map(|i| i.path.as_str())
        .collect();
    if !unknown.is_empty() {
        warnings.push(format!(
            "{} {} not record when {} windows started (written before poolbench recorded \
             it): {} timeline is aligned as if every copy had started together, and the \
             overlap of the windows cannot be checked",
            unknown.join(", "),
            if unknown.len() == 1 { "does" } else { "do" },
            if unknown.len() == 1 { "its" } else { "their" },
            if unknown.len() == 1 { "its" } else { "their" },
        ));
    }
    dedup(&mut warnings);

    let concurrency: Option<u64> = inputs
        .iter()
        .map(|i| i.report.scenario.resolved["run"]["concurrency"].as_u64())
        .collect::<Option<Vec<u64>>>()
        .map(|each| sum(each, || "the inputs' concurrency".into()))
        .transpose()?;
    let mut scenario = first.report.scenario.clone();
    let run = scenario
        .resolved
        .get_mut("run")
        .and_then(|r| r.as_object_mut());
    if let (Some(total), Some(run)) = (concurrency, run) {
        // The merged report describes the whole load: every copy's workers.
        run.insert("concurrency".into(), total.into());
    }
    let start_at = first.report.copies.start_at.clone().filter(|at| {
        inputs
            .iter()
            .all(|i| i.report.copies.start_at.as_ref() == Some(at))
    });
    let comparison = Comparison::all(&strategies);
    let report = Report {
        schema_version: SCHEMA_VERSION,
        tool: first.report.tool.clone(),
        started_at: inputs
            .iter()
            .map(|i| i.report.started_at.clone())
            .min()
            .unwrap_or_default(),
        interrupted: inputs.iter().any(|i| i.report.interrupted),
        host: first.report.host.clone(),
        server: first.report.server.clone(),
        scenario,
        // The same scenario ran everywhere; its link, if any, is the first's.
        network: first.report.network,
        // Each copy's threads and CPU are its own; the inputs list them.
        conditions: first.report.conditions.clone(),
        strategies,
        comparison,
        explanation: Vec::new(),
        copies: Copies {
            instance_index: None,
            start_at,
            clock_offset_ms: None,
            inputs: inputs.iter().map(describe_input).collect(),
        },
    };
    let report = Report {
        explanation: Explanation::all(&report),
        ..report
    };
    Ok(Merged { report, warnings })
}

/// One input's report of the strategy being merged.
struct Part<'a> {
    input: &'a Input,
    strategy: &'a StrategyReport,
}

/// Refuses inputs of another scenario or server than the first's unless
/// `allow_different`; returns the warnings (differences allowed, builds,
/// interruptions, repeated indexes, different start times).
fn check_compatible(inputs: &[Input], allow_different: bool) -> Result<Vec<String>> {
    let first = &inputs[0];
    let (a, a_path) = (&first.report, &first.path);
    let mut refused = Vec::new();
    for other in &inputs[1..] {
        let (b, b_path) = (&other.report, &other.path);
        if a.scenario.sha256 != b.scenario.sha256 {
            refused.push(format!(
                "{a_path} ran scenario {} (sha256 {}) and {b_path} scenario {} (sha256 {})",
                a.scenario.name,
                short(&a.scenario.sha256),
                b.scenario.name,
                short(&b.scenario.sha256)
            ));
        }
        let mut server = a.server.differences(&b.server);
        if a.server.dsn != b.server.dsn {
            server.push(format!("dsn {} vs {}", a.server.dsn, b.server.dsn));
        }
        if !server.is_empty() {
            refused.push(format!(
                "{a_path} and {b_path} ran against different servers: {}",
                server.join(", ")
            ));
        }
    }
    if !refused.is_empty() && !allow_different {
        return Err(bad_input(format!(
            "cannot merge: {}; pass --allow-different to merge them anyway",
            refused.join("; ")
        )));
    }
    let mut warnings: Vec<String> = refused
        .into_iter()
        .map(|r| format!("merged although {r}"))
        .collect();
    if inputs.iter().any(|i| i.report.tool.build != a.tool.build) {
        warnings.push(
            "the inputs mix release and debug builds; debug builds are much slower".to_string(),
        );
    }
    for input in inputs.iter().filter(|i| i.report.interrupted) {
        warnings.push(format!("{} was interrupted (partial report)", input.path));
    }
    let mut by_index: BTreeMap<u32, Vec<&str>> = BTreeMap::new();
    for input in inputs {
        if let Some(index) = input.report.copies.instance_index {
            by_index.entry(index).or_default().push(&input.path);
        }
    }
    for (index, paths) in by_index.iter().filter(|(_, p)| p.len() > 1) {
        warnings.push(format!(
            "{} all have --instance-index {index}: they sent the same request streams",
            paths.join(", ")
        ));
    }
    let starts: Vec<String> = inputs
        .iter()
        .map(|i| i.report.copies.start_at.clone().unwrap_or("none".into()))
        .collect();
    if starts.iter().any(|s| *s != starts[0]) {
        warnings.push(format!(
            "the inputs were not given the same --start-at ({}): their windows need not overlap",
            starts.join(", ")
        ));
    }
    Ok(warnings)
}

fn merge_strategy(
    name: &str,
    parts: &[Part],
    warnings: &mut Vec<String>,
) -> Result<StrategyReport> {
    let head = parts[0].strategy;
    if let Some(other) = parts.iter().find(|p| p.strategy.kind != head.kind) {
        warnings.push(format!(
            "strategy {name} is {} in {} but {} in {}",
            head.kind, parts[0].input.path, other.strategy.kind, other.input.path
        ));
    }
    // A window beyond any length of time is refused here, naming its file,
    // before anything is written (the interval logs turn it into one).
    if let Some(bad) = parts
        .iter()
        .find(|p| std::time::Duration::try_from_secs_f64(p.strategy.measured_s).is_err())
    {
        return Err(bad_input(format!(
            "{}: strategy {name}: measured_s {:e} is not a length of time",
            bad.input.path, bad.strategy.measured_s
        )));
    }
    let phases = add_all(parts, |s| &s.phases, name, "phase")?;
    let per_query = add_all(parts, |s| &s.per_query, name, "query")?;
    let setup_cpu = add_all(parts, |s| &s.setup_cpu, name, "setup_cpu")?;

    // The counts added here, checked; the samples by ErrorCounts.
    let mut errors = ErrorCounts::default();
    for p in parts {
        errors.merge(&ErrorCounts {
            counts: BTreeMap::new(),
            samples: p.strategy.error_samples.clone(),
        });
    }
    let what = |field: &'static str| move || format!("strategy {name}: {field}");
    let error_counts = add_counts(parts.iter().map(|p| &p.strategy.errors), what("errors"))?;
    let startup_errors = add_counts(
        parts.iter().map(|p| &p.strategy.startup_errors),
        what("startup_errors"),
    )?;

    let mut numbers: Vec<u32> = parts
        .iter()
        .flat_map(|p| p.strategy.rounds.iter().map(|r| r.round))
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    let mut rounds = Vec::with_capacity(numbers.len());
    let mut timeline = Vec::new();
    let (mut shared_requests, mut shared_s) = (0.0, 0u64);
    let mut approximate = false;
    let mut worst_overlap: Option<(u32, f64)> = None;
    for &number in &numbers {
        let members: Vec<Member> = parts
            .iter()
            .filter_map(|p| {
                let stats = p.strategy.rounds.iter().find(|r| r.round == number)?;
                Some(Member {
                    path: &p.input.path,
                    stats,
                    rows: p
                        .strategy
                        .timeline
                        .iter()
                        .filter(|row| row.round == number)
                        .collect(),
                    length_ms: round_length_ms(p.input, p.strategy, number),
                })
            })
            .collect();
        let merged = merge_round(name, number, &members)?;
        shared_requests += merged.shared_requests;
        shared_s += merged.shared_s;
        if let Some(overlap) = merged.overlap {
            if worst_overlap.is_none_or(|(_, w)| overlap < w) {
                worst_overlap = Some((number, overlap));
            }
        }
        let mut stats = merged.stats;
        match merged.total {
            Some(h) if !h.is_empty() => {
                stats.p50_us = h.value_at_quantile(0.5);
                stats.p99_us = h.value_at_quantile(0.99);
            }
            Some(_) => {}
            None if numbers.len() == 1 => {
                // One round: its histogram is the strategy's, merged exactly.
                if let Some(t) = phases.get("total") {
                    stats.p50_us = t.p50_us;
                    stats.p99_us = t.p99_us;
                }
            }
            None => {
                approximate = true;
                stats.p50_us = members.iter().map(|m| m.stats.p50_us).max().unwrap_or(0);
                stats.p99_us = members.iter().map(|m| m.stats.p99_us).max().unwrap_or(0);
            }
        }
        rounds.push(stats);
        timeline.extend(merged.rows);
    }
    if approximate {
        warnings.push(format!(
            "strategy {name}: the inputs carry no per-second histograms, so each round's p50 \
             and p99 are the largest of the inputs' (not exact); the totals are exact"
        ));
    }
    if let Some((number, overlap)) = worst_overlap.filter(|(_, o)| *o < OVERLAP_WARN) {
        let round = if numbers.len() > 1 {
            format!(" (round {number})")
        } else {
            String::new()
        };
        warnings.push(if overlap <= 0.0 {
            format!(
                "strategy {name}{round}: the inputs' measured windows do not overlap: the \
                 copies did not run at the same time (was every copy given the same \
                 --start-at?); throughput is the sum of the inputs' own"
            )
        } else {
            format!(
                "strategy {name}{round}: the inputs' measured windows overlap by only {:.0}%: \
                 throughput is over the seconds every input measured",
                overlap * 100.0
            )
        });
    }

    let requests = sum(parts.iter().map(|p| p.strategy.requests), what("requests"))?;
    let (throughput_rps, measured_s) = if shared_s > 0 {
        (round(shared_requests / shared_s as f64, 1), shared_s as f64)
    } else {
        // No second every input measured (no timelines, or no overlap):
        // the best remaining estimate of the load is the sum of the parts.
        (
            round(parts.iter().map(|p| p.strategy.throughput_rps).sum(), 1),
            parts
                .iter()
                .map(|p| p.strategy.measured_s)
                .fold(0.0, f64::max),
        )
    };
    // Open loop: each copy offered its own arrivals and achieved its own
    // rate; the system's are their sums.
    let rate_sum = |rate: fn(&StrategyReport) -> Option<f64>| {
        let rates: Vec<f64> = parts.iter().filter_map(|p| rate(p.strategy)).collect();
        (!rates.is_empty()).then(|| round(rates.iter().sum(), 1))
    };
    Ok(StrategyReport {
        name: name.to_string(),
        offered_rate: rate_sum(|s| s.offered_rate),
        achieved_rate: rate_sum(|s| s.achieved_rate),
        // One saturated copy is enough for the system's latencies to
        // measure poolbench rather than the database.
        generator_saturated: parts
            .iter()
            .filter_map(|p| p.strategy.generator_saturated)
            .reduce(|a, b| a || b),
        generator_lag_max_us: parts
            .iter()
            .filter_map(|p| p.strategy.generator_lag_max_us)
            .max(),
        expired: parts
            .iter()
            .filter_map(|p| p.strategy.expired)
            .reduce(u64::saturating_add),
        kind: head.kind,
        settings: head.settings.clone(),
        requests,
        shards: u32::try_from(sum(
            parts.iter().map(|p| u64::from(p.strategy.shards)),
            what("shards"),
        )?)
        .map_err(|_| {
            bad_input(format!(
                "strategy {name}: the inputs' shards add up beyond 2^32"
            ))
        })?,
        target: head.target.clone(),
        // Every copy holds its own connections.
        max_server_connections: parts
            .iter()
            .map(|p| p.strategy.max_server_connections)
            .collect::<Option<Vec<u64>>>()
            .map(|each| sum(each, what("max_server_connections")))
            .transpose()?,
        retries: sum(parts.iter().map(|p| p.strategy.retries), what("retries"))?,
        errors: error_counts,
        startup_errors,
        error_samples: errors.samples,
        throughput_rps,
        connections_opened: sum(
            parts.iter().map(|p| p.strategy.connections_opened),
            what("connections_opened"),
        )?,
        // The copies fill their pools at the same time: the slowest is the
        // time the whole system took.
        startup_ms: parts
            .iter()
            .map(|p| p.strategy.startup_ms)
            .fold(0.0, f64::max),
        measured_s,
        phases,
        round_trips: round_trips(parts),
        setup_cpu,
        server_cpu_absent: head.server_cpu_absent.clone(),
        per_query,
        rounds,
        // Every copy's pools together: their replacements add up.
        storms: match head.kind {
            Kind::Pool => storms(
                &timeline,
                parts
                    .iter()
                    .filter_map(|p| p.strategy.max_server_connections)
                    .sum(),
            ),
            Kind::Fresh | Kind::Observed => Vec::new(),
        },
        timeline,
        transactions: parts
            .iter()
            .map(|p| p.strategy.transactions)
            .sum::<Option<u64>>(),
        statements: parts
            .iter()
            .map(|p| p.strategy.statements)
            .sum::<Option<u64>>(),
        // Watches are one proxy each: their per-second views are not added.
        observed: None,
    })
}

/// The round trips of every input, added exactly from their histograms.
fn round_trips(parts: &[Part]) -> Option<RoundTripsReport> {
    let add = |pick: fn(&RoundTripsReport) -> Option<&Counts>| {
        let mut sum: Option<Histogram<u64>> = None;
        for p in parts {
            let counts = p.strategy.round_trips.as_ref().and_then(pick);
            if let Some(h) = counts.and_then(|c| decode_histogram(&c.hdr).ok()) {
                // Both auto-resize, so adding cannot fail on range.
                let _ = sum.get_or_insert_with(new_histogram).add(&h);
            }
        }
        sum.as_ref().and_then(Counts::of)
    };
    let merged = RoundTripsReport {
        connect: add(|r| r.connect.as_ref()),
        request: add(|r| r.request.as_ref()),
    };
    (merged != RoundTripsReport::default()).then_some(merged)
}

/// One input's round of the strategy being merged.
struct Member<'a> {
    path: &'a str,
    stats: &'a RoundStats,
    rows: Vec<&'a TimelineRow>,
    /// The round's measured window, nominally.
    length_ms: u64,
}

/// A round merged across the inputs.
struct MergedRound {
    stats: RoundStats,
    rows: Vec<TimelineRow>,
    /// The round's `total` histogram, added from the per-second ones; None
    /// when some second has none.
    total: Option<Histogram<u64>>,
    /// Requests in, and number of, the seconds every input measured.
    shared_requests: f64,
    shared_s: u64,
    /// Shared time / spanned time of the windows, when their starts are known.
    overlap: Option<f64>,
}

/// Aligns the members' timelines by wall-clock second (each second goes to
/// the merged second nearest its own start), adds them, and takes the
/// round's throughput over the seconds every member measured.
fn merge_round(strategy: &str, number: u32, members: &[Member]) -> Result<MergedRound> {
    let known = members.iter().all(|m| m.stats.started_unix_ms > 0);
    let origin = if known {
        members
            .iter()
            .map(|m| m.stats.started_unix_ms)
            .min()
            .unwrap_or(0)
    } else {
        0
    };
    let mut seconds: BTreeMap<u64, Second> = BTreeMap::new();
    for m in members {
        let shift = if known {
            ((m.stats.started_unix_ms - origin) as f64 / 1000.0).round() as u64
        } else {
            0
        };
        for row in &m.rows {
            let what = format!("strategy {strategy}, round {number}, second {}", row.second);
            seconds
                .entry(row.second + shift)
                .or_default()
                .add(m.path, &what, row)?;
        }
    }

    let mut total = Some(new_histogram());
    let (mut shared_requests, mut shared_s) = (0.0, 0);
    let mut rows = Vec::with_capacity(seconds.len());
    for (second, s) in seconds {
        if s.inputs == members.len() {
            shared_requests += s.rps;
            shared_s += 1;
        }
        match (&mut total, s.hdr.get("total")) {
            (Some(t), Some(h)) if s.complete => {
                let _ = t.add(h);
            }
            (Some(_), None) if s.complete => {}
            _ => total = None,
        }
        rows.push(s.into_row(number, second));
    }
    if rows.is_empty() {
        total = None;
    }

    let overlap = known.then(|| {
        let start = |m: &Member| m.stats.started_unix_ms as f64;
        let end = |m: &Member| start(m) + m.length_ms as f64;
        let latest_start = members.iter().map(start).fold(f64::MIN, f64::max);
        let earliest_end = members.iter().map(end).fold(f64::MAX, f64::min);
        let span = members.iter().map(end).fold(f64::MIN, f64::max) - origin as f64;
        if span > 0.0 {
            ((earliest_end - latest_start) / span).max(0.0)
        } else {
            1.0
        }
    });
    let what =
        |field: &'static str| move || format!("strategy {strategy}, round {number}: {field}");
    let requests = sum(members.iter().map(|m| m.stats.requests), what("requests"))?;
    let errors = sum(members.iter().map(|m| m.stats.errors), what("errors"))?;
    let throughput_rps = if shared_s > 0 {
        round(shared_requests / shared_s as f64, 1)
    } else {
        round(members.iter().map(|m| m.stats.throughput_rps).sum(), 1)
    };
    Ok(MergedRound {
        stats: RoundStats {
            round: number,
            requests,
            errors,
            throughput_rps,
            p50_us: 0,
            p99_us: 0,
            started_unix_ms: origin,
        },
        rows,
        total,
        shared_requests,
        shared_s,
        overlap,
    })
}

/// One wall-clock second of a round, added up over the inputs.
#[derive(Default)]
struct Second {
    /// How many inputs measured this second.
    inputs: usize,
    rps: f64,
    errors: u64,
    hdr: BTreeMap<String, Histogram<u64>>,
    /// False when an input's row had requests but no `total` histogram: its
    /// percentiles can then only be approximated.
    complete: bool,
    p50_max: Option<u64>,
    p99_max: Option<u64>,
    pool_size: Option<u64>,
    pool_available: Option<u64>,
    pool_waiting: Option<u64>,
    server_backends: Option<u64>,
    in_flight: Option<u64>,
    queued: Option<u64>,
    offered: Option<u64>,
    achieved: Option<u64>,
    expired: Option<u64>,
    churn: PoolChurn,
}

impl Second {
    fn add(&mut self, path: &str, what: &str, row: &TimelineRow) -> Result<()> {
        self.complete = (self.inputs == 0 || self.complete)
            && (row.rps == 0.0 || row.hdr.contains_key("total"));
        self.inputs += 1;
        self.rps += row.rps;
        self.errors = sum([self.errors, row.errors], || format!("{what}: errors"))?;
        for (phase, hdr) in &row.hdr {
            let h = hdr
                .decode()
                .map_err(|e| bad_input(format!("{path}: {what}, phase {phase}: {e:#}")))?;
            let _ = self
                .hdr
                .entry(phase.clone())
                .or_insert_with(new_histogram)
                .add(&h);
        }
        self.p50_max = self.p50_max.max(row.p50_us);
        self.p99_max = self.p99_max.max(row.p99_us);
        // Every copy has its own pools: they add up. The server's backends
        // are one count that every copy sees: the largest sample is kept.
        let add = |a, b, field: &str| add_opt(a, b, || format!("{what}: {field}"));
        self.pool_size = add(self.pool_size, row.pool_size, "pool_size")?;
        self.pool_available = add(self.pool_available, row.pool_available, "pool_available")?;
        self.pool_waiting = add(self.pool_waiting, row.pool_waiting, "pool_waiting")?;
        self.server_backends = self.server_backends.max(row.server_backends);
        self.in_flight = add(self.in_flight, row.in_flight, "in_flight")?;
        self.queued = add(self.queued, row.queued, "queued")?;
        self.offered = add(self.offered, row.offered, "offered")?;
        self.achieved = add(self.achieved, row.achieved, "achieved")?;
        self.expired = add(self.expired, row.expired, "expired")?;
        self.churn = self.churn.plus(row.churn);
        Ok(())
    }

    fn into_row(self, round: u32, second: u64) -> TimelineRow {
        let (p50_us, p99_us) = match self.hdr.get("total") {
            Some(h) if self.complete && !h.is_empty() => (
                Some(h.value_at_quantile(0.5)),
                Some(h.value_at_quantile(0.99)),
            ),
            _ if self.complete => (None, None),
            _ => (self.p50_max, self.p99_max),
        };
        TimelineRow {
            round,
            second,
            rps: self.rps,
            errors: self.errors,
            p50_us,
            p99_us,
            pool_size: self.pool_size,
            pool_available: self.pool_available,
            pool_waiting: self.pool_waiting,
            server_backends: self.server_backends,
            // Each copy has its own PgBouncer: not added up.
            pgbouncer: None,
            in_flight: self.in_flight,
            queued: self.queued,
            offered: self.offered,
            achieved: self.achieved,
            expired: self.expired,
            churn: self.churn,
            hdr: self
                .hdr
                .iter()
                .filter_map(|(phase, h)| Some((phase.clone(), Hdr::of(h)?)))
                .collect(),
        }
    }
}

fn add_opt(a: Option<u64>, b: Option<u64>, what: impl Fn() -> String) -> Result<Option<u64>> {
    match (a, b) {
        (None, None) => Ok(None),
        _ => sum([a.unwrap_or(0), b.unwrap_or(0)], what).map(Some),
    }
}

/// The sum of counts, refused (bad input, naming `what`) when it does not
/// fit in 64 bits: a release build would wrap it to a small number that
/// passes for a measurement.
fn sum(values: impl IntoIterator<Item = u64>, what: impl Fn() -> String) -> Result<u64> {
    values
        .into_iter()
        .try_fold(0u64, u64::checked_add)
        .ok_or_else(|| {
            bad_input(format!(
                "{}: the inputs' counts add up to more than a 64-bit count holds ({}): \
                 these are no measurements",
                what(),
                u64::MAX
            ))
        })
}

/// Error counts added class by class, with [`sum`].
fn add_counts<'a>(
    maps: impl IntoIterator<Item = &'a BTreeMap<String, u64>>,
    what: impl Fn() -> String,
) -> Result<BTreeMap<String, u64>> {
    let mut added: BTreeMap<String, u64> = BTreeMap::new();
    for map in maps {
        for (class, n) in map {
            let total = added.entry(class.clone()).or_default();
            *total = sum([*total, *n], || format!("{}, class {class}", what()))?;
        }
    }
    Ok(added)
}

/// Refuses an input whose totals disagree with its own parts: each
/// strategy's requests and errors against the sum of its rounds, its
/// `total` histogram's count and its queries' against its requests, and
/// each round against its seconds in the timeline. poolbench writes them
/// from the same counts; a report that disagrees was edited or damaged,
/// and merged as it is it would carry wrong totals as if whole.
fn check_whole(input: &Input) -> Result<()> {
    let path = &input.path;
    for s in &input.report.strategies {
        let name = &s.name;
        let what = |field: &str| format!("{path}: strategy {name}: {field}");
        let refuse = |field: &str, says: u64, parts: &str, add_up: u64| {
            bad_input(format!(
                "{} is {says} but {parts} add up to {add_up}: the report was edited or is \
                 damaged; merge refuses it rather than present its numbers as whole",
                what(field)
            ))
        };
        let errors = sum(s.errors.values().copied(), || what("errors"))?;
        if !s.rounds.is_empty() {
            let rounds = sum(s.rounds.iter().map(|r| r.requests), || what("rounds"))?;
            if rounds != s.requests {
                return Err(refuse(
                    "requests",
                    s.requests,
                    "its rounds' requests",
                    rounds,
                ));
            }
            let round_errors = sum(s.rounds.iter().map(|r| r.errors), || what("rounds"))?;
            if round_errors != errors {
                return Err(refuse("errors", errors, "its rounds' errors", round_errors));
            }
        }
        if let Some(total) = s.phases.get("total") {
            if total.count != s.requests {
                return Err(refuse(
                    "phase total's count",
                    total.count,
                    "requests",
                    s.requests,
                ));
            }
        }
        if !s.per_query.is_empty() {
            let queries = sum(s.per_query.values().map(|q| q.count), || what("per_query"))?;
            if queries != s.requests {
                return Err(refuse(
                    "requests",
                    s.requests,
                    "its queries' counts",
                    queries,
                ));
            }
        }
        for r in &s.rounds {
            let rows: Vec<&TimelineRow> =
                s.timeline.iter().filter(|t| t.round == r.round).collect();
            if rows.is_empty() {
                continue;
            }
            let rps: f64 = rows.iter().map(|t| t.rps).sum();
            if !rps.is_finite() || (rps - r.requests as f64).abs() > 0.5 {
                return Err(bad_input(format!(
                    "{}: round {} has {} requests but its timeline's seconds add up to {rps}: \
                     the report was edited or is damaged; merge refuses it rather than \
                     present its numbers as whole",
                    what("rounds"),
                    r.round,
                    r.requests
                )));
            }
            let row_errors = sum(rows.iter().map(|t| t.errors), || what("timeline"))?;
            if row_errors != r.errors {
                return Err(refuse(
                    &format!("round {}'s errors", r.round),
                    r.errors,
                    "its timeline's seconds",
                    row_errors,
                ));
            }
        }
        if !s.throughput_rps.is_finite() || s.throughput_rps < 0.0 {
            return Err(bad_input(format!(
                "{}: {} is not a rate",
                what("throughput_rps"),
                s.throughput_rps
            )));
        }
    }
    Ok(())
}

/// Refuses the same run given twice (the same file, a copy of it, or a
/// merged report beside one of its own inputs): the same start
/// (`started_at`, to the millisecond), host, instance index and measured
/// windows. Copies of one synchronised run differ in their index or their
/// host; a run given twice would count its requests twice and double the
/// throughput.
fn same_run(inputs: &[Input]) -> Result<()> {
    for (n, a) in inputs.iter().enumerate() {
        let mine = runs(a);
        for b in &inputs[n + 1..] {
            if let Some(run) = runs(b).into_iter().find(|r| mine.contains(r)) {
                return Err(bad_input(format!(
                    "{} and {} both hold the run started {} on {}{}: a run given twice would \
                     count its requests twice; give each copy's report once",
                    a.path,
                    b.path,
                    run.started_at,
                    run.host.as_deref().unwrap_or("an unnamed host"),
                    run.index
                        .map(|i| format!(" (--instance-index {i})"))
                        .unwrap_or_default()
                )));
            }
        }
    }
    Ok(())
}

/// One run as [`same_run`] tells runs apart.
#[derive(Debug, PartialEq)]
struct RunId {
    started_at: String,
    host: Option<String>,
    index: Option<u32>,
    /// Every round's start, in the report's order.
    windows: Vec<u64>,
}

/// The runs an input holds: itself, or a merged report's inputs.
fn runs(input: &Input) -> Vec<RunId> {
    let windows = |rounds: Vec<&Vec<RoundStats>>| -> Vec<u64> {
        rounds
            .into_iter()
            .flatten()
            .map(|r| r.started_unix_ms)
            .collect()
    };
    let r = &input.report;
    if r.copies.inputs.is_empty() {
        return vec![RunId {
            started_at: r.started_at.clone(),
            host: r.host.name.clone(),
            index: r.copies.instance_index,
            windows: windows(r.strategies.iter().map(|s| &s.rounds).collect()),
        }];
    }
    r.copies
        .inputs
        .iter()
        .map(|i| RunId {
            started_at: i.started_at.clone(),
            host: i.host.name.clone(),
            index: i.instance_index,
            windows: windows(i.strategies.iter().map(|s| &s.rounds).collect()),
        })
        .collect()
}

/// Adds, key by key (phase or query), the histograms of every part.
fn add_all(
    parts: &[Part],
    field: impl Fn(&StrategyReport) -> &BTreeMap<String, Summary>,
    strategy: &str,
    kind: &str,
) -> Result<BTreeMap<String, Summary>> {
    let mut added: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for p in parts {
        for (key, summary) in field(p.strategy) {
            let what = format!("strategy {strategy}, {kind} {key}");
            // A histogram's total saturates: the count is checked first.
            let count = counts.entry(key).or_default();
            *count = self::sum([*count, summary.count], || what.clone())?;
            let sum = added.entry(key.clone()).or_insert_with(new_histogram);
            if summary.count == 0 {
                continue;
            }
            if summary.hdr.is_empty() {
                return Err(bad_input(format!(
                    "{}: {what} has no histogram (its hdr is empty), so it cannot be merged \
                     exactly",
                    p.input.path
                )));
            }
            let h = decode(&p.input.path, &what, &summary.hdr)?;
            if h.len() != summary.count {
                return Err(bad_input(format!(
                    "{}: {what}: the histogram holds {} values but count says {}",
                    p.input.path,
                    h.len(),
                    summary.count
                )));
            }
            // The sum grows as needed (auto-resize), so adding cannot fail
            // on range.
            let _ = sum.add(&h);
        }
    }
    Ok(added
        .iter()
        .map(|(key, h)| (key.clone(), Summary::of(h)))
        .collect())
}

fn decode(path: &str, what: &str, text: &str) -> Result<Histogram<u64>> {
    decode_histogram(text).map_err(|e| bad_input(format!("{path}: {what}: {e:#}")))
}

/// The nominal measured window of a round: the scenario's duration, else
/// as many seconds as the round's timeline has.
fn round_length_ms(input: &Input, strategy: &StrategyReport, number: u32) -> u64 {
    input.report.scenario.resolved["run"]["duration"]
        .as_str()
        .and_then(|d| humantime::parse_duration(d).ok())
        .map(|d| d.as_millis() as u64)
        .unwrap_or_else(|| {
            strategy
                .timeline
                .iter()
                .filter(|r| r.round == number)
                .count() as u64
                * 1000
        })
}

/// The input as the merged report lists it.
fn describe_input(input: &Input) -> MergedInput {
    let r = &input.report;
    let windows: Vec<(u64, u64)> = r
        .strategies
        .iter()
        .flat_map(|s| {
            s.rounds
                .iter()
                .filter(|round| round.started_unix_ms > 0)
                .map(|round| {
                    let start = round.started_unix_ms;
                    (start, start + round_length_ms(input, s, round.round))
                })
        })
        .collect();
    MergedInput {
        path: input.path.clone(),
        host: r.host.clone(),
        instance_index: r.copies.instance_index,
        started_at: r.started_at.clone(),
        start_at: r.copies.start_at.clone(),
        clock_offset_ms: r.copies.clock_offset_ms,
        interrupted: r.interrupted,
        window_start_unix_ms: windows.iter().map(|w| w.0).min().unwrap_or(0),
        window_end_unix_ms: windows.iter().map(|w| w.1).max().unwrap_or(0),
        strategies: r
            .strategies
            .iter()
            .map(|s| MergedInputStrategy {
                name: s.name.clone(),
                requests: s.requests,
                errors: s.error_count(),
                throughput_rps: s.throughput_rps,
                rounds: s.rounds.clone(),
            })
            .collect(),
    }
}

/// Each copy times its windows by its own clock; the server's clock is the
/// one they share, so copies whose offsets from it differ had clocks that
/// disagree, and their windows are that far apart in truth.
fn clock_warnings(inputs: &[Input]) -> Vec<String> {
    let offsets: Vec<(&str, f64)> = inputs
        .iter()
        .filter_map(|i| Some((i.path.as_str(), i.report.copies.clock_offset_ms?)))
        .collect();
    let low = offsets.iter().min_by(|a, b| a.1.total_cmp(&b.1));
    let high = offsets.iter().max_by(|a, b| a.1.total_cmp(&b.1));
    match (low, high) {
        (Some(&(lp, lo)), Some(&(hp, hi))) if hi - lo > SKEW_WARN_MS => vec![format!(
            "the copies' clocks look skewed: against the server's clock, {lp} is off by \
             {lo:+.0} ms and {hp} by {hi:+.0} ms, so their windows may be {:.0} ms apart \
             although each started on time by its own clock; synchronise the machines' clocks \
             (NTP, chrony)",
            hi - lo
        )],
        _ => Vec::new(),
    }
}

fn dedup(warnings: &mut Vec<String>) {
    let mut seen = std::collections::BTreeSet::new();
    warnings.retain(|w| seen.insert(w.clone()));
}

/// The first 12 hex digits of a sha256: enough to tell two files apart.
fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{kind_of, Kind};
    use crate::metrics::record;

    const T0: u64 = 1_795_000_000_000;

    /// A histogram recorded directly, as the merge's reference.
    fn direct(values: impl IntoIterator<Item = u64>) -> Histogram<u64> {
        let mut h = Histogram::<u64>::new(3).unwrap();
        h.auto(true);
        for v in values {
            h.record(v).unwrap();
        }
        h
    }

    /// A one-strategy report whose round 1 started at `start_ms` and whose
    /// second i measured the latencies `seconds[i]`.
    fn report(index: u32, start_ms: u64, seconds: &[Vec<u64>]) -> Report {
        let all: Vec<u64> = seconds.iter().flatten().copied().collect();
        let mut total = new_histogram();
        for &v in &all {
            record(&mut total, v);
        }
        let summary = Summary::of(&total);
        let timeline = seconds
            .iter()
            .enumerate()
            .map(|(i, values)| {
                let h = direct(values.iter().copied());
                TimelineRow {
                    round: 1,
                    second: i as u64,
                    rps: values.len() as f64,
                    // The round's 2 errors, in its first second.
                    errors: if i == 0 { 2 } else { 0 },
                    p50_us: None,
                    p99_us: None,
                    pool_size: Some(4),
                    pool_available: Some(1),
                    pool_waiting: Some(0),
                    server_backends: Some(9),
                    pgbouncer: None,
                    in_flight: Some(3),
                    queued: Some(1),
                    offered: Some(100),
                    achieved: Some(values.len() as u64),
                    expired: Some(0),
                    churn: PoolChurn::default(),
                    hdr: [(
                        "total".to_string(),
                        Hdr::text(crate::metrics::encode_histogram(&h)),
                    )]
                    .into(),
                }
            })
            .collect();
        let strategy = StrategyReport {
            offered_rate: Some(100.0),
            achieved_rate: Some(90.0 + f64::from(index)),
            generator_saturated: Some(index == 1),
            generator_lag_max_us: Some(100 * u64::from(index)),
            expired: Some(u64::from(index)),
            name: "pool-4".into(),
            kind: super::Kind::Pool,
            settings: serde_json::json!({"max_size": 4}),
            requests: all.len() as u64,
            shards: 2,
            target: None,
            max_server_connections: Some(4),
            // Across a link: 7 round trips per connect, 1 or 2 per request.
            round_trips: Some(RoundTripsReport {
                connect: Counts::of(&direct([7; 4])),
                request: Counts::of(&direct(all.iter().map(|v| 1 + v % 2))),
            }),
            setup_cpu: BTreeMap::new(),
            server_cpu_absent: None,
            retries: 1,
            errors: [("pool_timeout".to_string(), 2)].into(),
            startup_errors: BTreeMap::new(),
            error_samples: [("pool_timeout".to_string(), vec![format!("timeout {index}")])].into(),
            throughput_rps: all.len() as f64 / seconds.len() as f64,
            connections_opened: 4,
            startup_ms: 10.0 + f64::from(index),
            measured_s: seconds.len() as f64,
            phases: [
                ("total".to_string(), summary.clone()),
                ("query".to_string(), summary.clone()),
            ]
            .into(),
            per_query: [("lookup".to_string(), summary.clone())].into(),
            rounds: vec![RoundStats {
                round: 1,
                requests: all.len() as u64,
                errors: 2,
                throughput_rps: 0.0,
                p50_us: summary.p50_us,
                p99_us: summary.p99_us,
                started_unix_ms: start_ms,
            }],
            timeline,
            transactions: None,
            statements: None,
            observed: None,
            storms: Vec::new(),
        };
        Report {
            network: Some(Network {
                rtt_ms: 20.0,
                jitter_ms: 0.0,
            }),
            conditions: None,
            explanation: Vec::new(),
            schema_version: SCHEMA_VERSION,
            tool: Tool::current(),
            started_at: "2026-11-22T10:00:00Z".into(),
            interrupted: false,
            host: Host {
                name: Some(format!("worker-{index}")),
                cpus: 2,
                os: "linux".into(),
                arch: "x86_64".into(),
            },
            server: Server {
                engine: "postgresql".into(),
                version: "16.4".into(),
                auth_method: "unknown".into(),
                ssl: true,
                max_connections: 100,
                embedded: false,
                dsn: "postgres://app:****@db:5432/app".into(),
                source: "DATABASE_URL".into(),
            },
            scenario: ScenarioInfo {
                name: "lookup".into(),
                path: "lookup.toml".into(),
                sha256: "ab".repeat(32),
                resolved: serde_json::json!({
                    "run": {"duration": format!("{}s", seconds.len()), "concurrency": 4}
                }),
            },
            strategies: vec![strategy],
            comparison: Vec::new(),
            copies: Copies {
                instance_index: Some(index),
                start_at: Some("2026-11-22T10:00:00Z".into()),
                clock_offset_ms: Some(0.5),
                inputs: Vec::new(),
            },
        }
    }

    fn input(name: &str, report: Report) -> Input {
        Input {
            path: format!("{name}/report.json"),
            report,
        }
    }

    /// Latencies spread over a wide range, different for each seed.
    fn values(seed: u64, n: usize) -> Vec<u64> {
        let mut rng = crate::workload::params::Rng::new(seed);
        (0..n).map(|_| 50 + rng.below(200_000)).collect()
    }

    #[test]
    fn a_run_given_twice_is_refused_even_inside_a_merged_report() {
        let a: Vec<Vec<u64>> = (0..2).map(|s| values(s, 50)).collect();
        let b: Vec<Vec<u64>> = (5..7).map(|s| values(s, 50)).collect();
        let (ra, rb) = (report(0, T0, &a), report(1, T0 + 20, &b));
        let twice = merge(&[input("a", ra.clone()), input("a2", ra.clone())], false);
        let e = format!("{:#}", twice.unwrap_err());
        assert!(
            e.contains("a/report.json and a2/report.json both hold the run"),
            "{e}"
        );
        let merged = merge(&[input("a", ra.clone()), input("b", rb)], false).unwrap();
        let again = merge(&[input("m", merged.report), input("a", ra)], false);
        let e = format!("{:#}", again.unwrap_err());
        assert!(e.contains("(--instance-index 0)"), "{e}");
    }

    #[test]
    fn histograms_add_exactly_and_counts_sum() {
        let a: Vec<Vec<u64>> = (0..3).map(|s| values(s, 500)).collect();
        let b: Vec<Vec<u64>> = (10..13).map(|s| values(s, 700)).collect();
        let merged = merge(
            &[
                input("a", report(0, T0, &a)),
                input("b", report(1, T0 + 20, &b)),
            ],
            false,
        )
        .unwrap();
        assert!(merged.warnings.is_empty(), "{:?}", merged.warnings);
        let union = direct(a.iter().chain(&b).flatten().copied());
        let s = &merged.report.strategies[0];
        for summary in [
            &s.phases["total"],
            &s.phases["query"],
            &s.per_query["lookup"],
        ] {
            assert_eq!(summary.count, 3600);
            assert_eq!(summary.p50_us, union.value_at_quantile(0.5));
            assert_eq!(summary.p99_us, union.value_at_quantile(0.99));
            assert_eq!(summary.p999_us, union.value_at_quantile(0.999));
            assert_eq!(summary.max_us, union.max());
            assert_eq!(decode_histogram(&summary.hdr).unwrap(), union);
        }
        assert_eq!(s.requests, 3600);
        // Round trips add up exactly, from their histograms.
        let rt = s.round_trips.as_ref().unwrap();
        let connect = rt.connect.as_ref().unwrap();
        assert_eq!((connect.count, connect.p50), (8, 7), "{rt:?}");
        let request = rt.request.as_ref().unwrap();
        let twos = a.iter().chain(&b).flatten().filter(|v| *v % 2 == 1).count() as f64;
        assert_eq!((request.count, request.min, request.max), (3600, 1, 2));
        assert!(
            (request.mean - (1.0 + twos / 3600.0)).abs() < 0.01,
            "{request:?}"
        );
        assert_eq!(merged.report.network.map(|n| n.rtt_ms), Some(20.0));
        assert_eq!(s.errors["pool_timeout"], 4);
        assert_eq!(s.error_samples["pool_timeout"].len(), 2);
        assert_eq!((s.retries, s.shards, s.connections_opened), (2, 4, 8));
        assert_eq!(s.startup_ms, 11.0);
        // Every second was measured by both: 3600 requests over 3 s.
        assert_eq!((s.throughput_rps, s.measured_s), (1200.0, 3.0));
        let round = &s.rounds[0];
        assert_eq!((round.requests, round.errors), (3600, 4));
        assert_eq!(round.p99_us, union.value_at_quantile(0.99));
        assert_eq!(round.started_unix_ms, T0);
        let second = &s.timeline[1];
        let both = direct(a[1].iter().chain(&b[1]).copied());
        assert_eq!(second.rps, 1200.0);
        assert_eq!(second.p99_us, Some(both.value_at_quantile(0.99)));
        assert_eq!(second.pool_size, Some(8));
        assert_eq!(second.server_backends, Some(9));
        assert_eq!((second.in_flight, second.queued), (Some(6), Some(2)));
        assert_eq!(
            (second.offered, second.achieved, second.expired),
            (Some(200), Some(1200), Some(0))
        );
        // One saturated copy makes the whole saturated; lags keep the worst.
        assert_eq!(
            (s.generator_saturated, s.generator_lag_max_us, s.expired),
            (Some(true), Some(100), Some(1))
        );
        assert_eq!(
            (s.offered_rate, s.achieved_rate),
            (Some(200.0), Some(181.0))
        );
        assert_eq!(second.hdr["total"].decode().unwrap(), both);

        let r = &merged.report;
        assert_eq!(r.scenario.resolved["run"]["concurrency"], 8);
        assert_eq!(r.copies.instance_index, None);
        assert_eq!(r.copies.start_at.as_deref(), Some("2026-11-22T10:00:00Z"));
        let listed: Vec<_> = r
            .copies
            .inputs
            .iter()
            .map(|i| {
                (
                    i.instance_index,
                    i.host.name.clone(),
                    i.window_start_unix_ms,
                )
            })
            .collect();
        assert_eq!(
            listed,
            [
                (Some(0), Some("worker-0".into()), T0),
                (Some(1), Some("worker-1".into()), T0 + 20)
            ]
        );
        assert_eq!(r.copies.inputs[1].window_end_unix_ms, T0 + 20 + 3000);
        assert_eq!(r.copies.inputs[1].strategies[0].rounds[0].requests, 2100);
    }

    #[test]
    fn timelines_align_by_wall_clock_second() {
        let a: Vec<Vec<u64>> = (0..10).map(|s| values(s, 100)).collect();
        let b: Vec<Vec<u64>> = (0..10).map(|s| values(s + 50, 300)).collect();
        // b started 1.2 s after a: its second 0 is a's second 1.
        let merged = merge(
            &[
                input("a", report(0, T0, &a)),
                input("b", report(1, T0 + 1200, &b)),
            ],
            false,
        )
        .unwrap();
        let s = &merged.report.strategies[0];
        assert_eq!(s.timeline.len(), 11);
        assert_eq!(s.timeline[0].rps, 100.0);
        assert_eq!(s.timeline[1].rps, 400.0);
        assert_eq!(s.timeline[10].rps, 300.0);
        // Seconds 1..=9 were measured by both.
        assert_eq!((s.throughput_rps, s.measured_s), (400.0, 9.0));
        assert_eq!(s.requests, 4000);
        assert!(
            merged
                .warnings
                .iter()
                .any(|w| w.contains("overlap by only 79%")),
            "{:?}",
            merged.warnings
        );
    }

    #[test]
    fn windows_that_do_not_overlap_are_summed_and_said() {
        let a = vec![values(1, 100), values(2, 100)];
        let merged = merge(
            &[
                input("a", report(0, T0, &a)),
                input("b", report(1, T0 + 60_000, &a)),
            ],
            false,
        )
        .unwrap();
        let s = &merged.report.strategies[0];
        assert_eq!(s.throughput_rps, 200.0);
        assert!(
            merged.warnings.iter().any(|w| w.contains("do not overlap")),
            "{:?}",
            merged.warnings
        );
    }

    #[test]
    fn skewed_clocks_are_warned_about() {
        let a = vec![values(1, 10)];
        let mut b = report(1, T0, &a);
        b.copies.clock_offset_ms = Some(-400.0);
        let merged = merge(&[input("a", report(0, T0, &a)), input("b", b)], false).unwrap();
        assert!(
            merged
                .warnings
                .iter()
                .any(|w| w.contains("clocks look skewed") && w.contains("400 ms apart")),
            "{:?}",
            merged.warnings
        );
    }

    #[test]
    fn different_scenarios_and_servers_are_refused() {
        let a = vec![values(1, 10)];
        let mut other = report(1, T0, &a);
        other.scenario.sha256 = "cd".repeat(32);
        let inputs = [input("a", report(0, T0, &a)), input("b", other)];
        let err = merge(&inputs, false).unwrap_err();
        assert_eq!(kind_of(&err), Some(Kind::BadInput));
        let text = format!("{err:#}");
        assert!(
            text.contains("b/report.json scenario lookup (sha256 cdcdcdcdcdcd)"),
            "{text}"
        );
        assert!(text.contains("--allow-different"), "{text}");
        let merged = merge(&inputs, true).unwrap();
        assert!(merged.warnings[0].starts_with("merged although"));

        let mut elsewhere = report(1, T0, &a);
        elsewhere.server.dsn = "postgres://app:****@db2:5432/app".into();
        let err = merge(
            &[input("a", report(0, T0, &a)), input("b", elsewhere)],
            false,
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("different servers: dsn"),
            "{err:#}"
        );
    }

    #[test]
    fn a_missing_histogram_is_refused_not_approximated() {
        let a = vec![values(1, 10)];
        let mut b = report(1, T0, &a);
        b.strategies[0].phases.get_mut("total").unwrap().hdr.clear();
        let err = merge(&[input("a", report(0, T0, &a)), input("b", b)], false).unwrap_err();
        assert_eq!(kind_of(&err), Some(Kind::BadInput));
        assert!(
            format!("{err:#}")
                .contains("b/report.json: strategy pool-4, phase total has no histogram"),
            "{err:#}"
        );
    }

    #[test]
    fn a_window_beyond_any_duration_is_refused_not_a_panic() {
        let a = vec![values(1, 10)];
        let mut b = report(1, T0, &a);
        b.strategies[0].measured_s = 1e300;
        let err = merge(&[input("a", report(0, T0, &a)), input("b", b)], false).unwrap_err();
        assert_eq!(kind_of(&err), Some(Kind::BadInput));
        assert!(
            format!("{err:#}").contains("b/report.json: strategy pool-4: measured_s 1e300"),
            "{err:#}"
        );
    }

    #[test]
    fn old_reports_without_wall_clock_starts_still_merge() {
        let a: Vec<Vec<u64>> = (0..2).map(|s| values(s, 100)).collect();
        let mut old = report(1, 0, &a);
        old.strategies[0]
            .timeline
            .iter_mut()
            .for_each(|r| r.hdr.clear());
        old.copies = Copies::default();
        let merged = merge(&[input("a", report(0, 0, &a)), input("b", old)], false).unwrap();
        let s = &merged.report.strategies[0];
        assert_eq!(s.requests, 400);
        assert_eq!(s.throughput_rps, 200.0);
        // One round: its percentiles are the strategy's, exact.
        assert_eq!(s.rounds[0].p99_us, s.phases["total"].p99_us);
        let w = merged.warnings.join("\n");
        assert!(w.contains("not record when their windows started"), "{w}");
        assert!(w.contains("not given the same --start-at"), "{w}");
    }

    #[test]
    fn merged_reports_serialise_and_load_like_any_report() {
        let a = vec![values(1, 10)];
        let merged = merge(
            &[input("a", report(0, T0, &a)), input("b", report(1, T0, &a))],
            false,
        )
        .unwrap();
        let text = serde_json::to_string(&merged.report).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["inputs"][1]["instance_index"], 1);
        assert!(value.get("instance_index").is_none());
        let back: Report = serde_json::from_str(&text).unwrap();
        assert_eq!(back.copies.inputs.len(), 2);
    }
}
