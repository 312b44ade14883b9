//! `poolbench sweep SCENARIO --rates 100,200,400`: one session, then every
//! strategy of the scenario in open loop at each rate (lowest first), so
//! the latency-versus-load curves of per-request connections and of a pool
//! come from one server and one setup. sweep.json and sweep.csv are
//! rewritten after every point.

use std::path::Path;

use anyhow::Result;

use super::measure::{self, connect_options, in_session, instance, overrides, threads, Output};
use crate::cli::SweepArgs;
use crate::engine::{self, Pacing};
use crate::error::bad_input;
use crate::instance::Instance;
use crate::report;
use crate::report::assemble::assemble;
use crate::scenario::limits::{DEFAULT_MAX_IN_FLIGHT, MAX_SWEEP_POINTS};
use crate::scenario::{self, ArrivalProcess, Arrivals, Overrides, Scenario};
use crate::session::Session;
use crate::sizing::model::SWEEP_SCHEMA_VERSION;
use crate::sizing::rates::*;
use crate::view::export::csv::RateSweepCsv;
use crate::view::export::json::Json;
use crate::view::export::{self, Exporter};
use crate::view::term;
use crate::Outcome;

const FILES: [&dyn Exporter<RateSweep>; 2] = [&Json("sweep.json"), &RateSweepCsv];

pub async fn run(args: &SweepArgs) -> Result<Outcome> {
    let instance = instance(&args.measure)?;
    let scenario = scenario::load_with(&args.scenario, &overrides(&args.measure))?;
    let mut rates = args.rates.clone();
    rates.sort_by(f64::total_cmp);
    rates.dedup();
    if rates.len() > MAX_SWEEP_POINTS {
        return Err(bad_input(format!(
            "--rates lists {} rates, more than {MAX_SWEEP_POINTS}",
            rates.len()
        )));
    }
    // Every point is checked as `run --rate R` would be, before any runs.
    for &rate in &rates {
        let point = Overrides {
            rate: Some(rate),
            ..Overrides::default()
        };
        scenario::with_overrides(scenario.clone(), &point)?;
    }
    let output = Output {
        out: args.out.as_deref(),
        name: format!("{}-sweep", scenario.name),
        force: args.force,
        files: &FILES,
    };
    let opts = connect_options(&args.measure, args.quiet);
    in_session(
        &scenario,
        &opts,
        output,
        async |session, started_at, out_dir| {
            measure(
                &scenario, &rates, args, session, started_at, out_dir, instance,
            )
            .await
        },
    )
    .await
}

async fn measure(
    scenario: &Scenario,
    rates: &[f64],
    args: &SweepArgs,
    session: &Session,
    started_at: &str,
    out_dir: &Path,
    instance: Instance,
) -> Result<Outcome> {
    let base = scenario.run.arrivals;
    let process = base.map_or(ArrivalProcess::Poisson, |a| a.process);
    let max_in_flight = base.map_or(DEFAULT_MAX_IN_FLIGHT, |a| a.max_in_flight);
    let mut sweep = RateSweep {
        schema_version: SWEEP_SCHEMA_VERSION,
        kind: RATE_SWEEP_KIND.into(),
        tool: report::Tool::current(),
        started_at: started_at.to_string(),
        interrupted: false,
        host: report::Host::current(),
        server: session.server.clone(),
        scenario: RateSweepScenario {
            name: scenario.name.clone(),
            path: scenario.source.path.display().to_string(),
            sha256: scenario.source.sha256.clone(),
        },
        settings: RateSweepSettings {
            rates: rates.to_vec(),
            arrival: match process {
                ArrivalProcess::Poisson => "poisson",
                ArrivalProcess::Uniform => "uniform",
            }
            .into(),
            max_in_flight,
            duration_s: scenario.run.duration.as_secs_f64(),
            warmup_s: scenario.run.warmup.as_secs_f64(),
            seed: scenario.run.seed,
        },
        points: Vec::new(),
        saturation: Vec::new(),
        copies: instance.record(session.clock()).await,
    };
    // With --start-at every point has its slot, the same on every copy.
    let mut slots = instance.slots(scenario.run.warmup, scenario.run.duration);
    if !args.quiet {
        crate::out!("{}", term::rates::header(scenario, &sweep));
    }
    let queries = session.query_names();
    let threads = threads(&args.measure);
    'sweep: for &rate in rates {
        let mut settings = engine::Settings {
            seed: instance.seed(scenario.run.seed),
            pacing: Pacing::OpenLoop(Arrivals {
                rate,
                process,
                max_in_flight,
            }),
            ..session.engine_settings(&scenario.run)
        };
        for strategy in &scenario.strategies {
            if session.cancel.is_cancelled() {
                break 'sweep;
            }
            let Some(result) = measure::point(
                session,
                strategy,
                &mut settings,
                &mut slots,
                threads,
                !args.quiet,
            )
            .await
            else {
                break 'sweep;
            };
            let interrupted = session.cancel.is_cancelled();
            let r = assemble(strategy, &queries, std::slice::from_ref(&result));
            if !args.quiet {
                crate::errln!(
                    "{}",
                    term::run::progress_line(
                        &format!("{} @{}", strategy.name, report::format::rps(rate)),
                        r.requests,
                        r.throughput_rps,
                        r.error_count()
                    )
                );
            }
            // A point cut short by Ctrl-C is kept only if it measured something.
            if !interrupted || r.requests > 0 {
                sweep.points.push(RatePoint::of(rate, &r));
            }
            sweep.interrupted = interrupted;
            sweep.saturation = saturation(&sweep.points);
            export::write_all(out_dir, &sweep, &FILES)?;
        }
    }
    sweep.interrupted = session.cancel.is_cancelled();
    sweep.saturation = saturation(&sweep.points);
    export::write_all(out_dir, &sweep, &FILES)?;
    crate::outln!();
    crate::out!("{}", term::rates::table(&sweep));
    if !args.quiet {
        crate::outln!("files: {}", out_dir.display());
    }
    Ok(if sweep.interrupted {
        Outcome::Interrupted
    } else {
        Outcome::Success
    })
}
