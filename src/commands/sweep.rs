//! `poolbench sweep`: the flags choose the axis once (`--rates`, `--rtts`,
//! `--levers`, else pool sizes × concurrency); then one driver for every
//! axis: one session (one server, one setup; a step on a server of its own,
//! a lever, gets a session of its own), each step of the axis measured in
//! order, and sweep.json, sweep.csv and sweep.html rewritten after every
//! step, so an interruption loses little. A sweep none of whose points
//! completed a request showed nothing: it exits 1, as a run whose every
//! request failed does.

use anyhow::Result;

use super::assemble::assemble;
use super::measure::{self, connect_options, in_session, instance, overrides, threads, Output};
use crate::cli::SweepArgs;
use crate::engine;
use crate::error::bad_input;
use crate::instance::Instance;
use crate::scenario::{self, EmbeddedEngine, EmbeddedSettings, Overrides, Scenario};
use crate::session::{ConnectOptions, Session};
use crate::sizing::sweep::levers::Levers;
use crate::sizing::sweep::pool_size::PoolSizes;
use crate::sizing::sweep::rate::Rates;
use crate::sizing::sweep::rtt::Rtts;
use crate::sizing::sweep::{Axis, Start, Sweep};
use crate::view::export::csv::SweepCsv;
use crate::view::export::html::SweepHtml;
use crate::view::export::json::Json;
use crate::view::export::{self, Exporter};
use crate::view::term;
use crate::Outcome;

pub async fn run(args: &SweepArgs) -> Result<Outcome> {
    let instance = instance(&args.measure)?;
    let load = |o: &Overrides| scenario::load_with(&args.scenario, o);
    if !args.rates.is_empty() {
        if !args.concurrency.is_empty() {
            // Open loop: the arrivals are the load, not workers.
            return Err(bad_input(
                "--rates runs open loop, where --concurrency has no effect (the requests served \
                 at once are bounded by `max_in_flight`): drop --concurrency",
            ));
        }
        let scenario = load(&overrides(&args.measure))?;
        let axis = Rates::new(&scenario, &args.rates)?;
        drive(args, &scenario, &axis, instance).await
    } else if args.levers {
        let scenario = load(&Overrides {
            concurrency: one_concurrency(args, "--levers")?,
            ..overrides(&args.measure)
        })?;
        if args.measure.dsn.is_some() || scenario.database.dsn.is_some() {
            return Err(bad_input(
                "--levers changes the embedded server's settings, each on a server of its own; \
                 a DSN (--dsn or [database].dsn) names a server poolbench does not start",
            ));
        }
        let major = match scenario.database.embedded.engine {
            EmbeddedEngine::Postgresql => crate::embedded::postgres::major_version_found().await?,
            EmbeddedEngine::Mariadb => None,
        };
        let axis = Levers::new(&scenario, major)?;
        drive(args, &scenario, &axis, instance).await
    } else if !args.rtts.is_empty() {
        let scenario = load(&Overrides {
            concurrency: one_concurrency(args, "--rtts")?,
            ..overrides(&args.measure)
        })?;
        let axis = Rtts::new(&scenario, &args.rtts)?;
        drive(args, &scenario, &axis, instance).await
    } else {
        let scenario = load(&overrides(&args.measure))?;
        let axis = PoolSizes::new(
            &scenario,
            args.strategy.as_deref(),
            &args.pool_sizes,
            &args.concurrency,
        )?;
        drive(args, &scenario, &axis, instance).await
    }
}

/// The one --concurrency an axis of `flag` takes (the workers of every
/// point), if given.
fn one_concurrency(args: &SweepArgs, flag: &str) -> Result<Option<u32>> {
    match args.concurrency.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        _ => Err(bad_input(format!(
            "{flag} takes one --concurrency (the workers of every point), not a list"
        ))),
    }
}

/// The files every sweep writes (and refuses to overwrite without --force).
fn all_files<A: Axis>() -> [&'static dyn Exporter<Sweep<A>>; 3] {
    [&Json("sweep.json"), &SweepCsv, &SweepHtml]
}

/// One session, then every step of `axis`.
async fn drive<A: Axis>(
    args: &SweepArgs,
    scenario: &Scenario,
    axis: &A,
    instance: Instance,
) -> Result<Outcome> {
    let files = all_files::<A>();
    let output = Output {
        out: args.out.as_deref(),
        name: format!("{}-sweep", scenario.name),
        force: args.force,
        files: &files,
        subdirs: &[],
    };
    let opts = connect_options(&args.measure, args.quiet);
    in_session(
        scenario,
        &opts,
        output,
        async |session, started_at, out_dir| {
            let start = Start {
                started_at: started_at.to_string(),
                server: session.server.clone(),
                copies: instance.record(session.clock()).await,
            };
            let sweep = Sweep::new(axis, scenario, start);
            let at = Place {
                session,
                opts: &opts,
                out_dir,
            };
            measure(scenario, axis, sweep, args, at, instance).await
        },
    )
    .await
}

/// Where a sweep measures: the session, how to open another (a lever's),
/// and the results directory.
struct Place<'a> {
    session: &'a mut Session,
    opts: &'a ConnectOptions,
    out_dir: &'a export::Dir,
}

async fn measure<A: Axis>(
    scenario: &Scenario,
    axis: &A,
    sweep: Sweep<A>,
    args: &SweepArgs,
    at: Place<'_>,
    instance: Instance,
) -> Result<Outcome> {
    // A step on a server of its own (a lever): its session, opened when the
    // step's server differs from the previous step's, closed after.
    let mut own: Option<(EmbeddedSettings, Session)> = None;
    let result = measure_steps(scenario, axis, sweep, args, at, instance, &mut own).await;
    if let Some((_, session)) = own {
        session.close().await;
    }
    result
}

async fn measure_steps<A: Axis>(
    scenario: &Scenario,
    axis: &A,
    mut sweep: Sweep<A>,
    args: &SweepArgs,
    at: Place<'_>,
    instance: Instance,
    own: &mut Option<(EmbeddedSettings, Session)>,
) -> Result<Outcome> {
    let Place {
        session: main,
        opts,
        out_dir,
    } = at;
    // The data only with --no-html.
    let all = all_files::<A>();
    let files = if args.no_html { &all[..2] } else { &all[..] };
    if !args.quiet {
        crate::out!("{}", term::sweep::header(&sweep));
    }
    let queries = main.query_names();
    let threads = threads(&args.measure);
    // Whether any point completed a request, else why not (an error seen).
    let mut succeeded = false;
    let mut failure: Option<String> = None;
    // With --start-at every step has its slot, the same on every copy.
    let mut slots = instance.slots(scenario.run.warmup, scenario.run.duration);
    for step in axis.steps(scenario) {
        if main.cancel.is_cancelled() {
            break;
        }
        let session: &mut Session = match &step.server {
            None => &mut *main,
            Some(server) => {
                if !main.server.embedded {
                    return Err(bad_input(format!(
                        "--levers changes the embedded server's settings, but the sweep targets \
                         {} ({}): drop the DSN to let poolbench start its own",
                        main.server.dsn, main.server.source
                    )));
                }
                if own.as_ref().map(|(s, _)| s) != Some(server) {
                    if let Some((_, old)) = own.take() {
                        old.close().await;
                    }
                    let mut lever = scenario.clone();
                    lever.database.embedded = server.clone();
                    let opened = Session::open(&lever, opts, main.cancel.clone()).await?;
                    *own = Some((server.clone(), opened));
                }
                match own.as_mut() {
                    Some((_, s)) => s,
                    None => break,
                }
            }
        };
        if step.network != session.network() {
            session.set_network(step.network);
        }
        let mut settings = engine::Settings {
            seed: instance.seed(step.run.seed),
            ..session.engine_settings(&step.run)
        };
        let Some(result) = measure::point(
            session,
            &step.strategy,
            &mut settings,
            &mut slots,
            threads,
            !args.quiet,
        )
        .await
        else {
            break;
        };
        let interrupted = session.cancel.is_cancelled();
        let r = assemble(&step.strategy, &queries, std::slice::from_ref(&result));
        succeeded |= r.requests > 0;
        if failure.is_none() {
            failure = r.error_samples.values().flatten().next().cloned();
        }
        if !args.quiet {
            crate::errln!(
                "{}",
                term::run::progress_line(
                    &step.label,
                    r.requests,
                    r.throughput_rps,
                    r.error_count()
                )
            );
        }
        axis.record(&mut sweep, &step.at, &r, interrupted);
        sweep.analysis = A::analyse(&sweep);
        // Until the last write the files say the sweep is unfinished: a
        // write that fails (a full disk) or a kill leaves them so.
        sweep.interrupted = true;
        export::write_all(out_dir, &sweep, files)?;
        if interrupted {
            break;
        }
    }
    sweep.interrupted = main.cancel.is_cancelled();
    sweep.analysis = A::analyse(&sweep);
    export::write_all(out_dir, &sweep, files)?;

    // The header ends with a blank line; the table follows it directly.
    crate::out!("{}", term::sweep::table(&sweep));
    if !args.quiet {
        if args.no_html {
            crate::outln!("files: {}", out_dir.display());
        } else {
            crate::outln!(
                "sweep: {} (open it in a browser; sweep.json and sweep.csv beside it)",
                out_dir
                    .join(Exporter::<Sweep<A>>::file_name(&SweepHtml))
                    .display()
            );
        }
    }
    Ok(if sweep.interrupted {
        Outcome::Interrupted
    } else if !succeeded {
        crate::errln!(
            "poolbench: no point of the sweep completed a request{}: nothing was measured",
            failure
                .map(|e| format!(" (e.g. \"{e}\")"))
                .unwrap_or_default()
        );
        Outcome::Regression
    } else {
        Outcome::Success
    })
}
