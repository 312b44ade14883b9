//! `poolbench sweep`: one session (one server, one setup), then for each
//! concurrency the fresh strategy once (its setup cost, for break-even) and
//! the pool strategy at each pool size with min_size = max_size, so every
//! point measures a full pool in steady state. With `--rtts`, every
//! strategy at each emulated round-trip time instead, and the setup cost
//! fitted against the RTT. sweep.json and sweep.csv are rewritten after
//! every point, so an interruption loses little.

use std::path::Path;

use anyhow::Result;

use super::measure::{self, connect_options, in_session, instance, overrides, threads, Output};
use crate::cli::SweepArgs;
use crate::engine;
use crate::error::bad_input;
use crate::instance::Instance;
use crate::report::assemble::assemble;
use crate::report::{self, StrategyReport};
use crate::scenario::limits::MAX_SWEEP_POINTS;
use crate::scenario::{
    self, NetworkSettings, Overrides, PoolSettings, Recycling, Scenario, Strategy, StrategyKind,
};
use crate::session::Session;
use crate::sizing::model::*;
use crate::sizing::sweep::{analyse_all, connections_per_request, fresh_point, pool_point};
use crate::view::export::csv::{RttSweepCsv, SweepCsv};
use crate::view::export::html::SweepHtml;
use crate::view::export::json::Json;
use crate::view::export::{self, Exporter};
use crate::view::term;
use crate::Outcome;

/// The files a sweep writes (and refuses to overwrite without --force).
const FILES: [&dyn Exporter<SweepReport>; 3] = [&Json("sweep.json"), &SweepCsv, &SweepHtml];

/// The files this sweep writes: all of them, or the data only (--no-html).
fn files(no_html: bool) -> &'static [&'static dyn Exporter<SweepReport>] {
    if no_html {
        &FILES[..2]
    } else {
        &FILES
    }
}

/// What the sweep runs, resolved from the scenario and the flags.
struct Plan {
    template: Strategy,
    pool: PoolSettings,
    fresh: Option<Strategy>,
    pool_sizes: Vec<usize>,
    concurrency: Vec<u32>,
}

pub async fn run(args: &SweepArgs) -> Result<Outcome> {
    if !args.rates.is_empty() {
        return super::rate_sweep::run(args).await;
    }
    if !args.rtts.is_empty() {
        return rtt_sweep(args).await;
    }
    let instance = instance(&args.measure)?;
    let scenario = scenario::load_with(&args.scenario, &overrides(&args.measure))?;
    let plan = resolve(&scenario, args)?;
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
                &scenario, &plan, args, session, started_at, out_dir, instance,
            )
            .await
        },
    )
    .await
}

fn resolve(s: &Scenario, args: &SweepArgs) -> Result<Plan> {
    let path = s.source.path.display();
    let pools: Vec<(&Strategy, &PoolSettings)> = s
        .strategies
        .iter()
        .filter_map(|st| match &st.kind {
            StrategyKind::Pool(p) => Some((st, p)),
            StrategyKind::Fresh => None,
        })
        .collect();
    let (template, pool) = match (&args.strategy, pools.as_slice()) {
        (_, []) => {
            return Err(bad_input(format!(
                "{path} has no kind = \"pool\" strategy: sweep needs one as the template \
                 (its recycling and wait_timeout are kept; max_size and min_size are swept)"
            )))
        }
        (Some(name), _) => pools
            .iter()
            .find(|(st, _)| &st.name == name)
            .copied()
            .ok_or_else(|| {
                let known: Vec<&str> = pools.iter().map(|(st, _)| st.name.as_str()).collect();
                bad_input(format!(
                    "--strategy {name}: no pool strategy of that name in {path} (pool strategies: {})",
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
    let mut pool_sizes: Vec<usize> = if args.pool_sizes.is_empty() {
        s.sweep.pool_sizes.clone()
    } else {
        args.pool_sizes.iter().map(|&n| n as usize).collect()
    };
    if pool_sizes.is_empty() {
        return Err(bad_input(format!(
            "no pool sizes to sweep: pass --pool-sizes 1,2,4,8 or add `[sweep]` with \
             `pool_sizes = [1, 2, 4, 8]` to {path}"
        )));
    }
    pool_sizes.sort_unstable();
    pool_sizes.dedup();
    let mut concurrency = if !args.concurrency.is_empty() {
        args.concurrency.clone()
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
        let point = Overrides {
            concurrency: Some(c),
            ..Overrides::default()
        };
        scenario::with_overrides(s.clone(), &point)?;
    }
    let fresh = s
        .strategies
        .iter()
        .find(|st| matches!(st.kind, StrategyKind::Fresh))
        .cloned();
    Ok(Plan {
        template: template.clone(),
        pool: pool.clone(),
        fresh,
        pool_sizes,
        concurrency,
    })
}

async fn measure(
    scenario: &Scenario,
    plan: &Plan,
    args: &SweepArgs,
    session: &Session,
    started_at: &str,
    out_dir: &Path,
    instance: Instance,
) -> Result<Outcome> {
    let cancel = &session.cancel;
    let mut sweep = SweepReport {
        schema_version: SWEEP_SCHEMA_VERSION,
        kind: SWEEP_KIND.into(),
        tool: report::Tool::current(),
        started_at: started_at.to_string(),
        interrupted: false,
        host: report::Host::current(),
        server: session.server.clone(),
        scenario: SweepScenario {
            name: scenario.name.clone(),
            path: scenario.source.path.display().to_string(),
            sha256: scenario.source.sha256.clone(),
            template: plan.template.name.clone(),
            recycling: match plan.pool.recycling {
                Recycling::Fast => "fast",
                Recycling::Verified => "verified",
                Recycling::Clean => "clean",
            }
            .into(),
            wait_timeout_ms: plan.pool.wait_timeout.map(|d| d.as_secs_f64() * 1000.0),
            fresh_strategy: plan.fresh.as_ref().map(|f| f.name.clone()),
        },
        settings: SweepSettings {
            pool_sizes: plan.pool_sizes.clone(),
            concurrency: plan.concurrency.clone(),
            duration_s: scenario.run.duration.as_secs_f64(),
            warmup_s: scenario.run.warmup.as_secs_f64(),
            seed: scenario.run.seed,
        },
        points: Vec::new(),
        fresh: Vec::new(),
        analysis: Vec::new(),
        copies: instance.record(session.clock()).await,
    };
    if !args.quiet {
        crate::out!("{}", term::sweep::header(scenario, &sweep));
    }
    let queries = session.query_names();
    let threads = threads(&args.measure);
    // With --start-at every point has its slot, the same on every copy.
    let mut slots = instance.slots(scenario.run.warmup, scenario.run.duration);
    'sweep: for &concurrency in &plan.concurrency {
        let mut settings = engine::Settings {
            concurrency,
            seed: instance.seed(scenario.run.seed),
            ..session.engine_settings(&scenario.run)
        };
        if let Some(fresh) = &plan.fresh {
            let Some(result) = measure::point(
                session,
                fresh,
                &mut settings,
                &mut slots,
                threads,
                !args.quiet,
            )
            .await
            else {
                break 'sweep;
            };
            if cancel.is_cancelled() {
                break 'sweep;
            }
            let r = assemble(fresh, &queries, std::slice::from_ref(&result));
            if !args.quiet {
                progress_line(&format!("{} c={concurrency}", fresh.name), &r);
            }
            sweep.fresh.push(fresh_point(
                concurrency,
                &r,
                connections_per_request(scenario),
            ));
        }
        for &size in &plan.pool_sizes {
            let strategy = Strategy::new(
                format!("pool-{size}"),
                StrategyKind::Pool(PoolSettings {
                    max_size: size,
                    min_size: size,
                    ..plan.pool.clone()
                }),
            );
            let Some(result) = measure::point(
                session,
                &strategy,
                &mut settings,
                &mut slots,
                threads,
                !args.quiet,
            )
            .await
            else {
                break 'sweep;
            };
            let interrupted = cancel.is_cancelled();
            let r = assemble(&strategy, &queries, std::slice::from_ref(&result));
            if !args.quiet {
                progress_line(&format!("{} c={concurrency}", strategy.name), &r);
            }
            // A point cut short by Ctrl-C is kept only if it measured something.
            if !interrupted || r.requests > 0 {
                let mut point = pool_point(concurrency, size, &r);
                point.partial = interrupted;
                sweep.points.push(point);
            }
            sweep.interrupted = interrupted;
            sweep.analysis = analyse_all(&sweep);
            export::write_all(out_dir, &sweep, files(args.no_html))?;
            if interrupted {
                break 'sweep;
            }
        }
    }
    sweep.interrupted = cancel.is_cancelled();
    sweep.analysis = analyse_all(&sweep);
    export::write_all(out_dir, &sweep, files(args.no_html))?;

    crate::outln!();
    crate::out!("{}", term::sweep::table(&sweep));
    if !args.quiet {
        if args.no_html {
            crate::outln!("files: {}", out_dir.display());
        } else {
            crate::outln!(
                "sweep: {} (open it in a browser; sweep.json and sweep.csv beside it)",
                out_dir.join(SweepHtml.file_name()).display()
            );
        }
    }
    Ok(if sweep.interrupted {
        Outcome::Interrupted
    } else {
        Outcome::Success
    })
}

/// The files an RTT sweep writes.
const RTT_FILES: [&dyn Exporter<RttSweep>; 2] = [&Json("sweep.json"), &RttSweepCsv];

/// `--rtts`: every strategy of the scenario across the link emulator at
/// each RTT (lowest first), on one server, then the setup-cost fit.
async fn rtt_sweep(args: &SweepArgs) -> Result<Outcome> {
    let instance = instance(&args.measure)?;
    let concurrency = match args.concurrency.as_slice() {
        [] => None,
        [one] => Some(*one),
        _ => {
            return Err(bad_input(
                "--rtts takes one --concurrency (the workers of every point), not a list",
            ))
        }
    };
    let scenario = scenario::load_with(
        &args.scenario,
        &Overrides {
            concurrency,
            ..overrides(&args.measure)
        },
    )?;
    if let Some(too_long) = args.rtts.iter().find(|r| **r > NetworkSettings::MAX_RTT) {
        return Err(bad_input(format!(
            "--rtts: {} is longer than the largest RTT poolbench emulates ({})",
            humantime::format_duration(*too_long),
            humantime::format_duration(NetworkSettings::MAX_RTT)
        )));
    }
    let mut rtts = args.rtts.clone();
    rtts.sort_unstable();
    rtts.dedup();
    if rtts.len() > MAX_SWEEP_POINTS {
        return Err(bad_input(format!(
            "--rtts lists {} round-trip times, more than {MAX_SWEEP_POINTS}",
            rtts.len()
        )));
    }
    let output = Output {
        out: args.out.as_deref(),
        name: format!("{}-sweep", scenario.name),
        force: args.force,
        files: &RTT_FILES,
    };
    let opts = connect_options(&args.measure, args.quiet);
    in_session(
        &scenario,
        &opts,
        output,
        async |session, started_at, out_dir| {
            measure_rtts(
                &scenario,
                &rtts,
                args,
                session,
                (started_at, out_dir),
                instance,
            )
            .await
        },
    )
    .await
}

async fn measure_rtts(
    scenario: &Scenario,
    rtts: &[std::time::Duration],
    args: &SweepArgs,
    session: &mut Session,
    (started_at, out_dir): (&str, &Path),
    instance: Instance,
) -> Result<Outcome> {
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    let jitter = scenario
        .network
        .map_or(std::time::Duration::ZERO, |n| n.jitter);
    let mut sweep = RttSweep {
        schema_version: SWEEP_SCHEMA_VERSION,
        kind: RTT_SWEEP_KIND.into(),
        tool: report::Tool::current(),
        started_at: started_at.to_string(),
        interrupted: false,
        host: report::Host::current(),
        server: session.server.clone(),
        scenario: RttSweepScenario {
            name: scenario.name.clone(),
            path: scenario.source.path.display().to_string(),
            sha256: scenario.source.sha256.clone(),
        },
        settings: RttSweepSettings {
            rtts_ms: rtts.iter().map(|r| ms(*r)).collect(),
            jitter_ms: ms(jitter),
            concurrency: scenario.run.concurrency,
            duration_s: scenario.run.duration.as_secs_f64(),
            warmup_s: scenario.run.warmup.as_secs_f64(),
            seed: scenario.run.seed,
        },
        points: Vec::new(),
        fits: Vec::new(),
        copies: instance.record(session.clock()).await,
    };
    // With --start-at every point has its slot, the same on every copy.
    let mut slots = instance.slots(scenario.run.warmup, scenario.run.duration);
    if !args.quiet {
        crate::out!("{}", term::sweep::rtt_header(scenario, &sweep));
    }
    let queries = session.query_names();
    let threads = threads(&args.measure);
    let mut settings = engine::Settings {
        seed: instance.seed(scenario.run.seed),
        ..session.engine_settings(&scenario.run)
    };
    'sweep: for &rtt in rtts {
        session.set_network(Some(NetworkSettings::at(rtt, jitter)))?;
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
                progress_line(
                    &format!("{} @{}", strategy.name, humantime::format_duration(rtt)),
                    &r,
                );
            }
            // A point cut short by Ctrl-C is kept only if it measured something.
            if !interrupted || r.requests > 0 {
                sweep.points.push(RttPoint::of(ms(rtt), &r));
            }
            sweep.interrupted = interrupted;
            sweep.fits = setup_cost_fits(&sweep.points);
            export::write_all(out_dir, &sweep, &RTT_FILES)?;
        }
    }
    sweep.interrupted = session.cancel.is_cancelled();
    sweep.fits = setup_cost_fits(&sweep.points);
    export::write_all(out_dir, &sweep, &RTT_FILES)?;
    crate::outln!();
    crate::out!("{}", term::sweep::rtt_table(&sweep));
    if !args.quiet {
        crate::outln!("files: {}", out_dir.display());
    }
    Ok(if sweep.interrupted {
        Outcome::Interrupted
    } else {
        Outcome::Success
    })
}

fn progress_line(label: &str, r: &StrategyReport) {
    crate::errln!(
        "{}",
        term::run::progress_line(label, r.requests, r.throughput_rps, r.error_count())
    );
}
