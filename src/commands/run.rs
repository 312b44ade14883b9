//! `poolbench run`: load the scenario, find or start the database, run the
//! setup once, then every strategy in file order; write the reports after
//! each strategy (so an interruption loses little) and print the verdict.

use anyhow::Result;

use super::assemble::assemble;
use super::measure::{self, connect_options, in_session, instance, overrides, threads, Output};
use crate::cli::RunArgs;
use crate::engine::{self, RoundResult};
use crate::instance::Instance;
use crate::report::model::Explanation;
use crate::report::{self, Comparison, Report, StrategyReport};
use crate::scenario::{self, Overrides, Scenario};
use crate::session::Session;
use crate::view::export::csv::{SummaryCsv, TimelineCsv};
use crate::view::export::hlog;
use crate::view::export::html::ReportHtml;
use crate::view::export::json::Json;
use crate::view::export::{self, Exporter};
use crate::view::term::run as term;
use crate::Outcome;

/// The files a run writes (and refuses to overwrite without --force), also
/// those of a merged report (`merge`);
/// report.html unless --no-html. hlog/ is written beside them.
pub const FILES: [&dyn Exporter<Report>; 4] =
    [&Json("report.json"), &SummaryCsv, &TimelineCsv, &ReportHtml];

/// The files this run writes: all of them, or the data only.
fn files(no_html: bool) -> &'static [&'static dyn Exporter<Report>] {
    if no_html {
        &FILES[..3]
    } else {
        &FILES
    }
}

pub async fn run(args: &RunArgs) -> Result<Outcome> {
    let instance = instance(&args.measure)?;
    let overrides = Overrides {
        concurrency: args.concurrency,
        rounds: args.rounds,
        only: args.only.clone(),
        rate: args.rate,
        ..overrides(&args.measure)
    };
    let scenario = scenario::load_with(&args.scenario, &overrides)?;
    let output = Output {
        out: args.out.as_deref(),
        name: scenario.name.clone(),
        force: args.force,
        files: &FILES,
        subdirs: &[hlog::FILES],
    };
    let opts = connect_options(&args.measure, args.quiet);
    in_session(
        &scenario,
        &opts,
        output,
        async |session, started_at, out_dir| {
            measure(&scenario, args, session, started_at, out_dir, instance).await
        },
    )
    .await
}

async fn measure(
    scenario: &Scenario,
    args: &RunArgs,
    session: &Session,
    started_at: &str,
    out_dir: &export::Dir,
    instance: Instance,
) -> Result<Outcome> {
    let cancel = &session.cancel;
    if !args.quiet {
        crate::out!(
            "{}",
            term::header(scenario, &session.server, threads(&args.measure))
        );
        let targets: Vec<term::StrategyTarget> = scenario
            .strategies
            .iter()
            .map(|s| term::StrategyTarget {
                name: s.name.clone(),
                target: session.own_target(s),
                via_pgbouncer: s.via.is_some(),
                max_server_connections: budget(scenario, session, s),
            })
            .collect();
        crate::out!(
            "{}",
            term::strategy_lines(&targets, session.server.max_connections)
        );
    }
    let mut settings = engine::Settings {
        seed: instance.seed(scenario.run.seed),
        ..session.engine_settings(&scenario.run)
    };
    let threads = threads(&args.measure);
    let queries = session.query_names();
    // With --start-at every strategy and round has its slot, the same on
    // every copy, so the copies share each measured window.
    let mut slots = instance.slots(scenario.run.warmup, scenario.run.duration);
    let mut report = new_report(
        scenario,
        session,
        started_at,
        instance.record(session.clock()).await,
    );
    // Rounds interleave the strategies (A B A B …) so that drift on a shared
    // machine hits every strategy alike.
    let mut rounds: Vec<Vec<RoundResult>> =
        scenario.strategies.iter().map(|_| Vec::new()).collect();
    'rounds: for round in 1..=scenario.run.rounds {
        for (index, strategy) in scenario.strategies.iter().enumerate() {
            if cancel.is_cancelled() {
                break 'rounds;
            }
            if let Some(slots) = &mut slots {
                match slots.next(&strategy.name, !args.quiet, cancel).await {
                    Some(at) => settings.start_at = Some(at),
                    None => break 'rounds,
                }
            }
            let result = measure::round(
                session,
                strategy,
                &settings,
                threads,
                !args.quiet,
                (round, scenario.run.rounds),
            )
            .await;
            if !args.quiet {
                let label = if scenario.run.rounds > 1 {
                    format!("{} #{round}", strategy.name)
                } else {
                    strategy.name.clone()
                };
                let requests = result.recorder.requests;
                let rps = requests as f64 / result.measured.as_secs_f64().max(1e-9);
                let errors = result.recorder.errors.total();
                crate::errln!("{}", term::progress_line(&label, requests, rps, errors));
            }
            rounds[index].push(result);
            report.strategies = scenario
                .strategies
                .iter()
                .zip(&rounds)
                .filter(|(_, r)| !r.is_empty())
                .map(|(s, r)| {
                    let assembled = assemble(s, &queries, r);
                    StrategyReport {
                        target: session.own_target(s),
                        max_server_connections: budget(scenario, session, s),
                        server_cpu_absent: assembled
                            .lacks_server_cpu()
                            .then(|| session.target_of(s).server_cpu_absent())
                            .flatten(),
                        ..assembled
                    }
                })
                .collect();
            // Until the last write the files say the run is unfinished: a
            // write that fails (a full disk) or a kill leaves them so.
            report.interrupted = true;
            // Where the backends ran, as far as this round knows.
            report.conditions = Some(report::Conditions::current(
                u32::try_from(threads).unwrap_or(u32::MAX),
                session.server.embedded || crate::placement::enabled(),
                crate::placement::pinned(),
            ));
            report.comparison = Comparison::all(&report.strategies);
            report.explanation = Explanation::all(&report);
            hlog::write(out_dir, &report)?;
            export::write_all(out_dir, &report, files(args.no_html))?;
        }
    }
    // hlog/ was written after the last round and does not carry
    // `interrupted`: only the report files are written again.
    report.interrupted = cancel.is_cancelled();
    export::write_all(out_dir, &report, files(args.no_html))?;

    if !args.quiet {
        crate::outln!();
        crate::out!("{}", term::tables(&report));
        crate::outln!();
    } else {
        for s in &report.strategies {
            if let Some(line) = term::error_line(s) {
                crate::errln!("{line}");
            }
        }
    }
    if let Some(line) = term::headline(&report) {
        crate::outln!("{line}");
    }
    let breaches = breaches(&report, scenario.run.max_error_rate);
    for b in &breaches {
        crate::errln!("poolbench: {b}");
    }
    // The last line says where to look.
    if !args.quiet {
        if args.no_html {
            crate::outln!("reports: {}", out_dir.display());
        } else {
            crate::outln!(
                "report: {} (open it in a browser; report.json, CSVs and hlog/ beside it)",
                out_dir.join(ReportHtml.file_name()).display()
            );
        }
    }
    Ok(if report.interrupted {
        Outcome::Interrupted
    } else if !breaches.is_empty() {
        Outcome::Regression
    } else {
        Outcome::Success
    })
}

/// A report of `scenario` measured in `session`, with no strategy yet
/// (`run`'s, and each pool size `plan` measures).
pub fn new_report(
    scenario: &Scenario,
    session: &Session,
    started_at: &str,
    copies: report::Copies,
) -> Report {
    Report {
        schema_version: report::SCHEMA_VERSION,
        tool: report::Tool::current(),
        started_at: started_at.to_string(),
        interrupted: false,
        host: report::Host::current(),
        server: session.server.clone(),
        scenario: report::ScenarioInfo {
            name: scenario.name.clone(),
            path: scenario.source.path.display().to_string(),
            sha256: scenario.source.sha256.clone(),
            resolved: serde_json::to_value(scenario).unwrap_or_default(),
        },
        network: session.network().map(|n| report::Network {
            rtt_ms: n.rtt.as_secs_f64() * 1000.0,
            jitter_ms: n.jitter.as_secs_f64() * 1000.0,
        }),
        conditions: None,
        strategies: Vec::new(),
        comparison: Vec::new(),
        copies,
        explanation: Vec::new(),
    }
}

/// The most server connections `strategy` may hold, None when it goes
/// through a target of its own (a pooler there decides).
fn budget(scenario: &Scenario, session: &Session, strategy: &scenario::Strategy) -> Option<u64> {
    let in_flight = scenario
        .run
        .arrivals
        .map_or(scenario.run.concurrency, |a| a.max_in_flight);
    let own = strategy.server_connections(in_flight);
    match strategy.via {
        // PgBouncer opens at most its pool for the one database and user.
        Some(scenario::Via::PgBouncer) => {
            Some(own.min(u64::from(scenario.pgbouncer.default_pool_size)))
        }
        None if session.own_target(strategy).is_some() => None,
        None => Some(own),
    }
}

/// What makes a completed run exit 1: a strategy over the scenario's
/// `max_error_rate`, one whose every request or most requests failed (its
/// latencies would describe nothing, or the few that succeeded), or one
/// that measured nothing at all.
fn breaches(report: &Report, max_error_rate: Option<f64>) -> Vec<String> {
    let mut found = Vec::new();
    for s in &report.strategies {
        let rate = s.error_rate();
        if s.requests == 0 && s.error_count() == 0 {
            let offered = s
                .offered_rate
                .map(|r| format!(" (the arrival schedule offered {r} per second)"))
                .unwrap_or_default();
            found.push(format!(
                "strategy {} measured nothing: no request ended in its measured window{offered}",
                s.name
            ));
        } else if s.requests == 0 {
            let sample = s
                .error_samples
                .values()
                .flatten()
                .next()
                .cloned()
                .unwrap_or_default();
            found.push(format!(
                "every request of strategy {} failed ({} errors, e.g. \"{sample}\")",
                s.name,
                s.error_count()
            ));
        } else if s.mostly_failed() {
            found.push(format!(
                "strategy {}: {:.1}% of its requests failed, more than half: its latencies \
                 describe only the requests that succeeded",
                s.name,
                rate * 100.0
            ));
        }
        if s.requests > 0 {
            if let Some(max) = max_error_rate.filter(|max| rate > *max) {
                found.push(format!(
                    "strategy {}: error rate {:.2}% is above max_error_rate {:.2}%",
                    s.name,
                    rate * 100.0,
                    max * 100.0
                ));
            }
        }
    }
    found
}
