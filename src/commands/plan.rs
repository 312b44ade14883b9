//! `poolbench plan --sweep sweep.json --rps R --p99 T [--verify]`: pool
//! sizes from a measured sweep, printed as reasoning (table) or as JSON;
//! with --verify, the plan measured in open loop on the sweep's scenario.
//! Exit 1 when the answer is no: the planned pools do not fit the server's
//! connections ("DOES NOT FIT"), or the verification missed the target.

use std::path::Path;

use anyhow::Result;

use super::assemble::assemble;
use super::measure::{self, connect_options, instance, overrides, threads};
use crate::cli::{PlanArgs, PlanFormat};
use crate::engine::{self, Pacing};
use crate::error::bad_input;
use crate::scenario::limits::MAX_POOL_SIZE;
use crate::scenario::{
    self, ArrivalProcess, Arrivals, Overrides, PoolSettings, Strategy, StrategyKind,
};
use crate::session::{cancel_on_signal, Session};
use crate::sizing::plan::{plan, read_sweep, sweep_path, PlanReport, PlanRequest};
use crate::sizing::sweep::pool_size::SweepReport;
use crate::sizing::verify::verification;
use crate::view::{export::json, term};
use crate::Outcome;

/// In a verification, every arrival is served at once (no handler limit):
/// the only queue is the pool's, which is what the plan models.
const VERIFY_MAX_IN_FLIGHT: u32 = 100_000;

pub async fn run(args: &PlanArgs) -> Result<Outcome> {
    let path = sweep_path(&args.sweep);
    let sweep = read_sweep(&path)?;
    let request = PlanRequest {
        rps: args.rps,
        p99_us: args.p99,
        instances: args.instances,
        max_connections: args.max_connections,
        reserved: args.reserved,
        concurrency: args.concurrency,
        base_rps: args.base_rps,
    };
    let mut report = plan(&sweep, &path, &request)?;
    let outcome = if args.verify {
        verify(args, &sweep, &mut report).await?
    } else {
        Outcome::Success
    };
    match args.format {
        PlanFormat::Json => crate::out!("{}", json::to_string(&report)?),
        PlanFormat::Table => {
            crate::out!("{}", term::plan::render(&report, &sweep));
            if let Some(v) = &report.verification {
                crate::out!("{}", term::plan::verification(v));
            }
        }
    }
    let b = &report.budget;
    let fits = match (b.fits, b.available) {
        (Some(false), Some(available)) => {
            crate::errln!(
                "poolbench: the plan does not fit: {} instances × max_size {} = {} connections, \
                 more than the {available} the server has for them",
                report.target.instances,
                report.max_size,
                b.needed
            );
            false
        }
        _ => true,
    };
    if let Some(v) = report.verification.as_ref().filter(|v| !v.met) {
        crate::errln!(
            "poolbench: the plan missed its target: measured p99 {:.3} ms against {:.3} ms{}",
            v.measured_p99_ms,
            v.target_p99_ms,
            if v.errors > 0 {
                format!(", {} errors", v.errors)
            } else {
                String::new()
            }
        );
    }
    Ok(match outcome {
        Outcome::Success if !fits => Outcome::Regression,
        other => other,
    })
}

/// Runs one instance's planned pool at one instance's rate on the sweep's
/// scenario; Regression (exit 1) when the target is missed.
async fn verify(args: &PlanArgs, sweep: &SweepReport, report: &mut PlanReport) -> Result<Outcome> {
    // K instances can be verified as K synchronised copies, each at one
    // instance's rate (--start-at, --instance-index).
    let instance = instance(&args.measure)?;
    let scenario_path = Path::new(&sweep.scenario.path);
    let scenario = scenario::load_with(scenario_path, &overrides(&args.measure)).map_err(|e| {
        e.context(format!(
            "--verify runs the sweep's scenario {}",
            scenario_path.display()
        ))
    })?;
    // The planned rate and pool are checked as `run` would check them.
    let at_rate = Overrides {
        rate: Some(report.target.rps_per_instance),
        ..Overrides::default()
    };
    let scenario = scenario::with_overrides(scenario, &at_rate)
        .map_err(|e| e.context("--verify at one instance's share of --rps"))?;
    if report.max_size as usize > MAX_POOL_SIZE {
        return Err(bad_input(format!(
            "--verify: the planned pool of {} connections is more than poolbench opens ({MAX_POOL_SIZE})",
            report.max_size
        )));
    }
    if scenario.source.sha256 != sweep.scenario.sha256 {
        crate::errln!(
            "poolbench: warning: {} changed since the sweep was measured; verifying with it as it is now",
            scenario_path.display()
        );
    }
    let template = scenario
        .strategies
        .iter()
        .find(|s| s.name == sweep.scenario.template)
        .and_then(|s| match &s.kind {
            StrategyKind::Pool(p) => Some(p.clone()),
            StrategyKind::Fresh => None,
        })
        .ok_or_else(|| {
            bad_input(format!(
                "--verify: {} has no pool strategy {} (the sweep's template) any more",
                scenario_path.display(),
                sweep.scenario.template
            ))
        })?;
    let strategy = Strategy::new(
        format!("planned pool-{}", report.max_size),
        StrategyKind::Pool(PoolSettings {
            max_size: report.max_size as usize,
            min_size: report.min_size as usize,
            ..template
        }),
    );
    let quiet = args.format == PlanFormat::Json;
    let session = Session::open(
        &scenario,
        &connect_options(&args.measure, quiet),
        cancel_on_signal(),
    )
    .await?;
    if !session.server.embedded && !sweep.server.embedded && session.server.dsn != sweep.server.dsn
    {
        crate::errln!(
            "poolbench: warning: the sweep ran on {}, the verification runs on {}",
            sweep.server.dsn,
            session.server.dsn
        );
    }
    let mut settings = engine::Settings {
        seed: instance.seed(scenario.run.seed),
        pacing: Pacing::OpenLoop(Arrivals {
            rate: report.target.rps_per_instance,
            process: ArrivalProcess::Poisson,
            max_in_flight: VERIFY_MAX_IN_FLIGHT,
        }),
        ..session.engine_settings(&scenario.run)
    };
    if !quiet {
        crate::errln!(
            "poolbench: verifying: {} at {} req/s (one instance's share) for {}",
            strategy.name,
            crate::report::format::rps(report.target.rps_per_instance),
            humantime::format_duration(scenario.run.duration)
        );
    }
    if let Some(mut slots) = instance.slots(scenario.run.warmup, scenario.run.duration) {
        match slots.next(&strategy.name, !quiet, &session.cancel).await {
            Some(at) => settings.start_at = Some(at),
            None => {
                session.close().await;
                return Ok(Outcome::Interrupted);
            }
        }
    }
    let result = measure::round(
        &session,
        &strategy,
        &settings,
        threads(&args.measure),
        !quiet,
        (1, 1),
    )
    .await;
    let interrupted = session.cancel.is_cancelled();
    let measured = assemble(
        &strategy,
        &session.query_names(),
        std::slice::from_ref(&result),
    );
    session.close().await;
    let v = verification(report, &measured);
    let met = v.met;
    report.verification = Some(v);
    Ok(if interrupted {
        Outcome::Interrupted
    } else if met {
        Outcome::Success
    } else {
        Outcome::Regression
    })
}
