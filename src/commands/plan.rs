//! `poolbench plan [SCENARIO] --rps R --p99 T [--sweep S]`: the smallest
//! pool size that meets T at one instance's share of R, searched by
//! measurement in open loop (Poisson arrivals, the scenario's queries),
//! each size measured over --rounds rounds, from the M/G/c simulation's
//! proposal (`sizing::mgc`, fed with the service times of one calibration
//! run at the target rate). A sweep is an optional prior (its Erlang C
//! plan); `--verify` measures only the proposal. Exit 0 when a size met
//! the target, 1 when none can (the reason in one sentence), 2 bad input.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::assemble::assemble;
use super::measure::{self, connect_options, overrides, threads};
use super::run::{new_report, FILES};
use crate::cli::{PlanArgs, PlanFormat};
use crate::engine::{self, Pacing};
use crate::error::bad_input;
use crate::metrics::decode_histogram;
use crate::report::format::{ms, ms_trimmed, plural, rps};
use crate::report::StrategyReport;
use crate::scenario::limits::MAX_POOL_SIZE;
use crate::scenario::{
    self, ArrivalProcess, Arrivals, Check, PoolSettings, RateBefore, Scenario, Strategy,
    StrategyKind,
};
use crate::session::{cancel_on_signal, Session};
use crate::sizing::lifecycle::{self, CheckRun};
use crate::sizing::measured::{
    self, Burst, BurstPoint, Contended, MeasuredPlan, Model, Point, Recommended, SearchSettings,
    PLAN_SCHEMA_VERSION,
};
use crate::sizing::mgc::{self, ServiceTimes};
use crate::sizing::plan::{
    plan, read_sweep, sweep_path, PlanReport, PlanRequest, Target, SETUP_COST_FACTOR,
};
use crate::sizing::search::{verdict, Round, Search};
use crate::view::export::{self, hlog, json, Dir};
use crate::view::term;
use crate::Outcome;

/// Every arrival is served at once (no handler limit): the only queue is
/// the pool's, which is what is being sized.
const MAX_IN_FLIGHT: u32 = 100_000;
/// The calibration pool: more connections than the rate keeps busy, so
/// that the service times are the server's at that rate, not a queue's.
const CALIBRATION_POOL: u32 = 64;
/// A pool busier than this is the limit; below it, a rate not reached is
/// the server's (or poolbench's) limit, and more connections cannot help.
const POOL_BUSY: f64 = 0.8;
/// How far short of the offered rate a round must fall (with connections
/// to spare) for plan to call the server the limit.
const SERVER_SHORTFALL: f64 = 0.1;
/// How much longer the large calibration pool's mean query time must be
/// than a few connections' for the few's to feed the simulation: the
/// server slowed with the queries it ran at once, not by noise.
const CONTENDED: f64 = 1.5;
/// The simulation's utilisation bound for the proposal.
const MODEL_MAX_UTILISATION: f64 = 0.95;
/// plan's burst: at least this long at the base rate before the step (the
/// warm-up, when longer), and at most this much of the step measured: its
/// first seconds, while the pool grows.
const BURST_BASE: Duration = Duration::from_secs(1);
const BURST_WINDOW: Duration = Duration::from_secs(2);

pub async fn run(args: &PlanArgs) -> Result<Outcome> {
    let started = Instant::now();
    let request = PlanRequest {
        rps: args.rps,
        p99_us: args.p99,
        instances: args.instances,
        max_connections: args.max_connections,
        reserved: args.reserved,
        concurrency: args.concurrency,
        base_rps: args.base_rps,
    };
    if args.measure.start_at.is_some() {
        return Err(bad_input(
            "--start-at: plan measures one instance's pool at one instance's share of --rps; \
             it does not run as synchronised copies",
        ));
    }
    if let Some(b) = args.base_rps.filter(|b| *b > args.rps) {
        return Err(bad_input(format!(
            "--base-rps {b} is above --rps {}: the base load is the traffic most of the time, \
             the target its peak",
            args.rps
        )));
    }
    // The prior: the sweep's Erlang C plan, which also names the scenario.
    let (prior, scenario_path, template_name) = match &args.sweep {
        Some(s) => {
            let path = sweep_path(s);
            let sweep = read_sweep(&path)?;
            // A prior that rules the target out (a rate above the sweep's
            // best, a p99 below its query p99) is a model's opinion: the
            // search measures anyway.
            let prior = match plan(&sweep, &path, &request) {
                Ok(prior) => {
                    if args.format == PlanFormat::Table && !args.quiet {
                        crate::out!(
                            "the sweep's plan (Erlang C), the prior:\n{}",
                            term::plan::render(&prior, &sweep)
                        );
                    }
                    Some(prior)
                }
                Err(e) if crate::error::kind_of(&e) == Some(crate::error::Kind::BadInput) => {
                    crate::errln!(
                        "poolbench: the sweep's plan: {e:#}; searching by measurement without it"
                    );
                    None
                }
                Err(e) => return Err(e),
            };
            let scenario = args
                .scenario
                .clone()
                .unwrap_or_else(|| PathBuf::from(&sweep.scenario.path));
            (prior, scenario, Some(sweep.scenario.template.clone()))
        }
        None => match &args.scenario {
            Some(s) => (None, s.clone(), None),
            None => {
                return Err(bad_input(
                    "plan needs a scenario (plan SCENARIO.toml --rps R --p99 T) or --sweep \
                     sweep.json (whose scenario it measures)",
                ))
            }
        },
    };
    let scenario = scenario::load_with(&scenario_path, &overrides(&args.measure))?;
    let template = template(&scenario, template_name.as_deref())?;
    let quiet = args.quiet || args.format == PlanFormat::Json;
    let out_dir = match &args.out {
        Some(dir) => Some(export::prepare_dir(
            Some(dir),
            &scenario.name,
            &crate::report::now_rfc3339(),
            false,
            &FILES,
            &[hlog::FILES],
        )?),
        None => None,
    };
    if let Some(dir) = &out_dir {
        // The per-second histograms wait there for the reports.
        crate::metrics::spill::into(dir);
    }
    let session = Session::open(
        &scenario,
        &connect_options(&args.measure, quiet),
        cancel_on_signal(),
    )
    .await?;
    let result = search(
        args,
        &request,
        &scenario,
        &template,
        &session,
        prior,
        out_dir.as_deref(),
        quiet,
    )
    .await;
    let interrupted = session.cancel.is_cancelled();
    session.close().await;
    let mut report = result?;
    report.search.elapsed_s = started.elapsed().as_secs_f64();
    match args.format {
        PlanFormat::Json => crate::out!("{}", json::to_string(&report)?),
        PlanFormat::Table if !args.quiet => crate::out!("{}", term::plan::measured(&report)),
        PlanFormat::Table if report.met => crate::outln!("{}", report.reason),
        PlanFormat::Table => {}
    }
    if !report.met {
        crate::errln!("poolbench: {}", report.reason);
    }
    Ok(if interrupted {
        Outcome::Interrupted
    } else if report.met {
        Outcome::Success
    } else {
        Outcome::Regression
    })
}

/// The scenario's pool strategy the plan sizes: the sweep's template, or
/// the first `kind = "pool"`.
fn template(scenario: &Scenario, name: Option<&str>) -> Result<PoolSettings> {
    scenario
        .strategies
        .iter()
        .filter(|s| name.is_none_or(|n| s.name == n))
        .find_map(|s| match &s.kind {
            StrategyKind::Pool(p) => Some(p.clone()),
            StrategyKind::Fresh => None,
        })
        .ok_or_else(|| {
            bad_input(format!(
                "{}: no pool strategy{} to plan from: plan sizes a `kind = \"pool\"` strategy",
                scenario.source.path.display(),
                name.map(|n| format!(" named {n} (the sweep's template)"))
                    .unwrap_or_default()
            ))
        })
}

/// The query phase's service times (a connection held) of a measured run.
fn service_times(report: &StrategyReport) -> Option<ServiceTimes> {
    report
        .phases
        .get("query")
        .and_then(|q| decode_histogram(&q.hdr).ok())
        .and_then(|h| ServiceTimes::from_histogram(&h))
}

/// The calibration's few connections: twice this machine's CPUs, enough to
/// keep an embedded server's CPUs busy without time-slicing many queries.
fn few_connections() -> u32 {
    u32::try_from(crate::placement::cpus() * 2)
        .unwrap_or(u32::MAX)
        .max(2)
}

/// One pool measured: its rounds as the verdict needs them, the
/// connections it opened in each round's window, the verdict (with a
/// target), and the rounds' report.
struct Measured {
    rounds: Vec<Round>,
    opened: Vec<u64>,
    met: bool,
    report: StrategyReport,
}

#[allow(clippy::too_many_arguments)]
async fn search(
    args: &PlanArgs,
    request: &PlanRequest,
    scenario: &Scenario,
    template: &PoolSettings,
    session: &Session,
    prior: Option<PlanReport>,
    out_dir: Option<&Dir>,
    quiet: bool,
) -> Result<MeasuredPlan> {
    let k = request.instances;
    let rate = request.rps / f64::from(k);
    let target_ms = request.p99_us / 1000.0;
    let base_rps = request.base_rps.unwrap_or(request.rps);
    let mut warnings = prior.as_ref().map_or_else(Vec::new, |p| p.warnings.clone());
    // The connection budget bounds the search: K pools of max_size each.
    let max_connections = request
        .max_connections
        .unwrap_or(session.server.max_connections);
    if request.reserved >= max_connections {
        return Err(bad_input(format!(
            "--reserved {} is not below max_connections {max_connections}: no connection would \
             be left for the application",
            request.reserved
        )));
    }
    let budget = (max_connections - request.reserved) / k;
    let limit = budget.min(MAX_POOL_SIZE as u32);
    let rounds = args.rounds;
    let search_settings = SearchSettings {
        rounds,
        warmup_s: scenario.run.warmup.as_secs_f64(),
        duration_s: scenario.run.duration.as_secs_f64(),
        limit,
        elapsed_s: 0.0,
        verify_only: args.verify,
    };
    let target = Target {
        rps: request.rps,
        p99_ms: target_ms,
        instances: k,
        rps_per_instance: rate,
        base_rps,
    };
    let measurer = Measurer {
        args,
        scenario,
        template,
        session,
        rate,
        out_dir,
        show: !quiet,
    };
    if !quiet {
        let per_point = f64::from(rounds) * (search_settings.warmup_s + search_settings.duration_s);
        crate::errln!(
            "poolbench: plan: {} req/s per instance at p99 ≤ {} ms; each pool size measured {} \
             × ({}s warm-up + {}s) ≈ {:.0} s in open loop (--rounds, --duration, --warmup shorten it)",
            rps(rate),
            ms_trimmed(request.p99_us),
            rounds,
            search_settings.warmup_s,
            search_settings.duration_s,
            per_point
        );
    }

    let mut report = MeasuredPlan {
        schema_version: PLAN_SCHEMA_VERSION,
        scenario: scenario.name.clone(),
        server: format!(
            "{} {}{}",
            session.server.engine_name(),
            session.server.version,
            if session.server.embedded {
                " (embedded)"
            } else {
                ""
            }
        ),
        target,
        recommended: None,
        met: false,
        reason: String::new(),
        points: Vec::new(),
        settings: Default::default(),
        min_reason: String::new(),
        burst: None,
        lifecycle: None,
        plateau: None,
        model: Model::default(),
        search: search_settings,
        prior,
        warnings: Vec::new(),
    };
    if limit == 0 {
        report.reason = format!(
            "no pool size can: {k} instances cannot each have a connection within \
             max_connections {max_connections} − reserved {}; put PgBouncer in transaction \
             pooling mode between them and the server, or raise max_connections",
            request.reserved
        );
        return Ok(report);
    }
    // Calibration: the service times at the target rate, on a pool larger
    // than the rate keeps busy.
    let calibration_pool = CALIBRATION_POOL
        .max(report.prior.as_ref().map_or(0, |p| p.max_size))
        .min(limit);
    let mut calibration = measurer
        .measure(&Pool::full(calibration_pool), 1, None, "calibration")
        .await?;
    let first = calibration.rounds[0];
    if (!first.kept_up() || first.p99_ms > target_ms * 1.5) && !session.cancel.is_cancelled() {
        // One round must not decide that no size can (a stall of the
        // machine): a second one, and the better of the two is kept.
        let again = measurer
            .measure(&Pool::full(calibration_pool), 1, None, "calibration-2")
            .await?;
        let second = again.rounds[0];
        let better = match (second.kept_up(), first.kept_up()) {
            (true, false) => true,
            (false, true) => false,
            (true, true) => second.p99_ms < first.p99_ms,
            (false, false) => second.achieved_rate > first.achieved_rate,
        };
        if better {
            calibration = again;
        }
    }
    let cal = &calibration.report;
    let cal_round = calibration.rounds[0];
    let query = service_times(cal);
    let connect_p50_us = cal.phases.get("connect").map(|c| c.p50_us as f64);
    let mut model = Model {
        connect_p50_ms: connect_p50_us.map(|c| c / 1000.0),
        erlang_c_proposal: report.prior.as_ref().map(|p| p.max_size),
        ..Model::default()
    };
    model.calibrated_on(calibration_pool, &cal_round, query.as_ref());
    report.model = model.clone();
    let Some(mut service) = query else {
        report.reason = format!(
            "no pool size can: the calibration run at {} req/s completed no request ({} errors)",
            rps(rate),
            cal_round.errors
        );
        return Ok(report);
    };
    // Well short of the rate (more than SERVER_SHORTFALL) with connections
    // to spare (by the round's own query time): the server, not the pool,
    // is the limit. A small pool near its capacity can fall a few percent
    // short in a round while its busy count is below the bound (its
    // requests wait for a connection; open loop counts that wait in
    // `acquire`, whatever limits the rate): a larger pool is what it needs.
    let saturated = |r: &Round, pool: u32| {
        r.achieved_rate < r.offered_rate * (1.0 - SERVER_SHORTFALL)
            && r.busy() < POOL_BUSY * f64::from(pool)
    };
    if cal.generator_saturated == Some(true) && saturated(&cal_round, calibration_pool) {
        report.reason = format!(
            "no pool size can be measured at {} req/s here: poolbench's own generator fell \
             behind its schedule (achieved {} req/s); run poolbench on a machine of its own, or \
             several copies (--instances share the rate)",
            rps(rate),
            rps(cal_round.achieved_rate)
        );
        return Ok(report);
    }
    if saturated(&cal_round, calibration_pool) {
        report.reason = format!(
            "no pool size can: the server reached {} req/s of the {} offered with {} \
             connections, more than that rate keeps busy; fewer instances per server (a smaller \
             share of --rps), PgBouncer in front of a bigger server, or a bigger server would help",
            rps(cal_round.achieved_rate),
            rps(cal_round.offered_rate),
            calibration_pool
        );
        return Ok(report);
    }

    // The calibration's second step. More queries at once than the server
    // has CPUs for each take longer (time-sliced), and a large pool lets a
    // burst of arrivals run that many: on 2 CPUs sizing.toml's query took
    // 0.9 ms on 64 connections against 0.1 ms on a few, the simulation fed
    // with the former proposed 49 connections, and a pool that size had the
    // scheduler's p99. So when the large pool kept more connections busy
    // than a few, a round on a few (twice this machine's CPUs), whose service
    // times the simulation takes if the large pool's were CONTENDED times
    // longer. The search measures whatever either proposes.
    let large_service_p99_us = service.quantile_us(0.99);
    let mut few_round: Option<(u32, Round)> = None;
    let few = few_connections().min(limit);
    if few < calibration_pool && cal_round.busy() > f64::from(few) && !session.cancel.is_cancelled()
    {
        let small = measurer
            .measure(&Pool::full(few), 1, None, &format!("calibration-{few}"))
            .await?;
        if let Some(s) =
            service_times(&small.report).filter(|s| s.mean_us() * CONTENDED <= service.mean_us())
        {
            model.contended = Some(Contended {
                pool_size: calibration_pool,
                achieved_rate: cal_round.achieved_rate,
                service_time_mean_ms: model.service_time_mean_ms,
                service_time_p99_ms: model.service_time_p99_ms,
            });
            model.calibrated_on(few, &small.rounds[0], Some(&s));
            service = s;
        }
        few_round = Some((few, small.rounds[0]));
    }
    // Too slow with no wait for a connection: the queries themselves, not
    // the pool — unless the few connections met (the large pool's p99 was
    // the time-slicing of its many queries, which a small pool avoids).
    let fits = |r: &Round| r.kept_up() && r.p99_ms <= target_ms * 1.5;
    if cal_round.kept_up()
        && !fits(&cal_round)
        && !few_round.is_some_and(|(_, r)| fits(&r))
        && !session.cancel.is_cancelled()
    {
        report.reason = format!(
            "no pool size can: with {calibration_pool} connections (no wait for one) the p99 \
             was {} ms against {} ms{}: the queries themselves are too slow at this rate \
             (service time p99 {} ms); make them faster or measure on a faster server",
            ms(cal_round.p99_ms * 1000.0),
            ms_trimmed(request.p99_us),
            few_round.map_or(String::new(), |(f, r)| format!(
                ", and {} with {f}",
                if r.kept_up() {
                    format!("{} ms", ms(r.p99_ms * 1000.0))
                } else {
                    format!(
                        "{} req/s of the {} offered",
                        rps(r.achieved_rate),
                        rps(r.offered_rate)
                    )
                }
            )),
            ms(large_service_p99_us)
        );
        report.model = model;
        return Ok(report);
    }

    let seed = scenario.run.seed;
    let proposal = mgc::smallest(
        &service,
        rate,
        request.p99_us,
        MODEL_MAX_UTILISATION,
        limit,
        seed,
    );
    model.proposal = proposal;
    report.model = model.clone();
    // Start where the sweep's plan, else the simulation, else Little's law
    // at ρ = 0.8 puts the answer.
    let start = if args.verify {
        model.erlang_c_proposal.or(proposal)
    } else {
        proposal.or(model.erlang_c_proposal)
    }
    .unwrap_or_else(|| ((rate * service.mean_us() / 1e6 / 0.8).ceil() as u32).max(1));
    let start = start.min(limit);
    let mut walk = if args.verify {
        Search::new(start, start)
    } else {
        Search::new(start, limit)
    };
    let mut server_limit: Option<(Round, u32)> = None;
    // The best round of the last size that missed well short of the rate
    // (the calibration's first).
    let mut last_short: Option<(u32, Round)> = (cal_round.achieved_rate
        < cal_round.offered_rate * (1.0 - SERVER_SHORTFALL))
        .then_some((calibration_pool, cal_round));
    while let Some(c) = walk.next_size() {
        let m = measurer
            .measure(
                &Pool::full(c),
                rounds,
                Some(target_ms),
                &format!("pool-{c}"),
            )
            .await?;
        if session.cancel.is_cancelled() {
            break;
        }
        let met = m.met;
        walk.record(c, met);
        let predicted = mgc::predict(&service, c, rate, seed);
        let mut point = Point::new(c, rate, predicted, m.rounds, met, target_ms);
        if let Some(dir) = out_dir {
            point.report = Some(dir.join(format!("pool-{c}")).display().to_string());
        }
        if !quiet {
            crate::errln!("{}", term::plan::point_line(&point, target_ms));
        }
        // Most rounds short of the rate with connections to spare: the
        // server (not the pool) is the limit, and a bigger pool cannot help
        // (unless a bigger pool has met: then the server can serve the
        // rate, and the search goes on below it).
        let short: Vec<Round> = point
            .rounds
            .iter()
            .filter(|r| saturated(r, c))
            .copied()
            .collect();
        let mut server_bound = short.len() * 2 > point.rounds.len();
        let mut best_short = short
            .into_iter()
            .max_by(|a, b| a.achieved_rate.total_cmp(&b.achieved_rate));
        // Or well short at two sizes, the larger hardly faster: more
        // connections did not raise the rate (they are all busy when the
        // machine, not the pool, is what runs out).
        let best = point
            .rounds
            .iter()
            .copied()
            .max_by(|a, b| a.achieved_rate.total_cmp(&b.achieved_rate));
        if let Some(r) =
            best.filter(|r| !met && r.achieved_rate < r.offered_rate * (1.0 - SERVER_SHORTFALL))
        {
            if let Some((smaller, before)) = last_short.filter(|(s, _)| *s < c) {
                // A pool-bound rate grows with the pool; a server-bound one
                // does not: less than half the growth of the pool is noise.
                let gain = (f64::from(c) / f64::from(smaller) - 1.0) / 2.0;
                if r.achieved_rate < before.achieved_rate * (1.0 + gain) {
                    server_bound = true;
                    best_short = Some(r);
                }
            }
            last_short = Some((c, r));
        }
        report.points.push(point);
        if let Some(r) = best_short.filter(|_| !met && server_bound && walk.server_may_limit()) {
            server_limit = Some((r, c));
            break;
        }
        if args.verify {
            break;
        }
    }
    for p in &report.points {
        if p.predicted_utilisation <= 0.8 {
            if let Some(d) = p.disagreement() {
                warnings.push(format!("pool {}: {d}", p.pool_size));
            }
        }
    }
    let answer = walk.answer();
    match answer {
        Some(max) if !session.cancel.is_cancelled() => {
            let base_rate = base_rps / f64::from(k);
            let service_us = service.mean_us();
            let (mut min, mut why) = measured::min_size(max, base_rate, service_us, connect_p50_us);
            if base_rate < rate {
                // The min measured: a step from the base rate to the rate.
                let little = measured::little_min(max, base_rate, service_us);
                let burst =
                    burst(&measurer, max, little, base_rate, rounds, target_ms, !quiet).await?;
                let costly = connect_p50_us
                    .filter(|c| *c >= SETUP_COST_FACTOR * service_us)
                    .map(|c| {
                        format!(
                            "connect p50 {} ms is {:.0}× the service time",
                            ms(c),
                            c / service_us
                        )
                    });
                if !session.cancel.is_cancelled() {
                    (min, why) = burst.min_reason(max, costly.as_deref());
                    if burst.min_size.is_none() {
                        warnings.push(why.clone());
                    }
                }
                report.burst = Some(burst);
            } else {
                why.push_str(
                    "; not verified by a step (--base-rps, the usual traffic, is not below --rps)",
                );
            }
            let best = report.points.iter().find(|p| p.pool_size == max);
            let fewer = report.points.iter().find(|p| p.pool_size + 1 == max);
            report.recommended = Some(Recommended {
                max_size: max,
                min_size: min,
            });
            report.met = true;
            report.settings = measured::settings(min, max, &session.server.engine);
            report.min_reason = why;
            report.reason = format!(
                "max_size = {max}: {} at {} req/s{}",
                best.map_or(String::new(), Point::measured),
                rps(rate),
                match fewer {
                    Some(f) => format!(
                        "; {}: {}, missed",
                        plural(f.pool_size as usize, "connection", "connections"),
                        f.measured()
                    ),
                    None if max == 1 => String::new(),
                    None => " (one connection fewer was not measured)".into(),
                }
            );
            if walk.found_below() {
                warnings.push(format!(
                    "every size from {start} (where the search started) up to {limit} missed, \
                     and {max} below them met: a pool with more connections than the server's \
                     CPUs serve queues at the server instead, and its p99 grows with its size; \
                     here the pool's size is a ceiling as much as a floor"
                ));
            }
            report.plateau = measured::plateau(&report.points, max);
            if let Some(p) = &report.plateau {
                warnings.push(p.warning(target_ms, max));
            }
            let p99_ms = best.map_or(0.0, |p| p.p99_ms);
            let check = check_run(&measurer, max, target_ms).await?;
            report.lifecycle = Some(lifecycle::recommend(&lifecycle::Measures {
                max,
                min,
                target_p99_ms: target_ms,
                p99_ms,
                connect_p50_ms: connect_p50_us.map(|c| c / 1000.0),
                check,
            }));
        }
        _ if session.cancel.is_cancelled() => {
            report.reason = "interrupted before the search ended: no recommendation".into();
        }
        _ => {
            // Sizes that served the rate and missed only the p99: the
            // tail, not the rate, is what no size can meet.
            let kept_up = measured::kept_up_but_missed(&report.points, target_ms);
            report.reason = match (server_limit, kept_up) {
                (Some((r, c)), Some(kept)) => format!(
                    "no pool size can: {kept}; more connections were slower (pool {c}: {} req/s of \
                     the {} offered): at this rate the server's CPUs, not the pool, set the p99; \
                     fewer instances' share per server, PgBouncer in front of a bigger server, \
                     or a bigger server would help",
                    rps(r.achieved_rate),
                    rps(r.offered_rate)
                ),
                (Some((r, c)), None) => format!(
                    "no pool size can: the server reached {} req/s of the {} offered with {c} \
                     connections, and more connections do not raise it; fewer instances' share \
                     per server, PgBouncer in front of a bigger server, or a bigger server would help",
                    rps(r.achieved_rate),
                    rps(r.offered_rate)
                ),
                (None, _) if args.verify => format!(
                    "the plan missed its target: max_size {start}: {}",
                    report.points.last().map_or(String::new(), Point::measured)
                ),
                (None, kept) => format!(
                    "no pool size up to {limit} (the connection budget: max_connections \
                     {max_connections} − reserved {} over {k} instances, or poolbench's limit) \
                     meets p99 ≤ {} ms at {} req/s{}",
                    request.reserved,
                    ms_trimmed(request.p99_us),
                    rps(rate),
                    kept.map_or(String::new(), |k| format!(": {k}"))
                ),
            };
        }
    }
    report.warnings = warnings;
    Ok(report)
}

/// The min size by a burst: from Little's `from` up (by the search's walk,
/// never below it), the smallest min whose step from `base_rate` to the
/// rate meets the target in the step's first seconds.
async fn burst(
    measurer: &Measurer<'_>,
    max: u32,
    from: u32,
    base_rate: f64,
    rounds: u32,
    target_ms: f64,
    show: bool,
) -> Result<Burst> {
    let probe = measurer.settings(&Pool {
        base_rate: Some(base_rate),
        ..Pool::full(max)
    });
    let mut b = Burst {
        base_rate,
        rate: measurer.rate,
        base_s: probe.warmup.as_secs_f64(),
        window_s: probe.duration.as_secs_f64(),
        little_min: from,
        points: Vec::new(),
        min_size: None,
    };
    let mut walk = Search::new(from, max);
    while let Some(min) = walk.next_size() {
        let pool = Pool {
            max,
            min,
            check_always: false,
            base_rate: Some(base_rate),
        };
        let label = format!("burst-min-{min}");
        let m = measurer
            .measure(&pool, rounds, Some(target_ms), &label)
            .await?;
        if measurer.session.cancel.is_cancelled() {
            break;
        }
        walk.record(min, m.met);
        let mut point = BurstPoint::new(min, max, m.rounds, m.opened, m.met);
        if let Some(dir) = measurer.out_dir {
            point.report = Some(dir.join(&label).display().to_string());
        }
        if show {
            crate::errln!("{}", term::plan::burst_line(&point, target_ms));
        }
        b.points.push(point);
        if m.met && min == from {
            // Little's min meets the step: no lower min is looked for.
            break;
        }
    }
    b.min_size = walk.answer();
    Ok(b)
}

/// The checkout check's cost, measured: one round of the recommended pool
/// at the rate with a check on every checkout (`check = "always"`, the
/// template's check_query): the check phase is one round trip at this
/// server's RTT (`--rtt`'s when given), and the p99 says whether the
/// target still holds with it.
async fn check_run(measurer: &Measurer<'_>, max: u32, target_ms: f64) -> Result<Option<CheckRun>> {
    let pool = Pool {
        check_always: true,
        ..Pool::full(max)
    };
    let m = measurer.measure(&pool, 1, None, "check-always").await?;
    let Some(check) = m.report.phases.get("check") else {
        return Ok(None);
    };
    let (check_p50_ms, check_p99_ms) = (check.p50_us as f64 / 1000.0, check.p99_us as f64 / 1000.0);
    let r = m.rounds[0];
    Ok(Some(CheckRun {
        check_p50_ms,
        check_p99_ms,
        p99_ms: r.p99_ms,
        met: r.met(target_ms),
    }))
}

/// Measures pool sizes at one instance's rate in open loop.
struct Measurer<'a> {
    args: &'a PlanArgs,
    scenario: &'a Scenario,
    template: &'a PoolSettings,
    session: &'a Session,
    rate: f64,
    out_dir: Option<&'a Dir>,
    show: bool,
}

/// How a measured pool is set and driven: its size, the min it starts
/// from, a lifecycle setting changed, a step from a base rate.
struct Pool {
    max: u32,
    min: u32,
    /// The template's lifecycle with the checkout check on every checkout.
    check_always: bool,
    /// plan's burst: the warm-up at this rate, then the step to the rate.
    base_rate: Option<f64>,
}

impl Pool {
    fn full(size: u32) -> Pool {
        Pool {
            max: size,
            min: size,
            check_always: false,
            base_rate: None,
        }
    }
}

impl Measurer<'_> {
    fn strategy(&self, label: &str, pool: &Pool) -> Strategy {
        let mut lifecycle = self.template.lifecycle.clone();
        // A background task keeping more idle than `min` would make the
        // min measured another one (HikariCP's minimumIdle is its min).
        lifecycle.min_idle = lifecycle.min_idle.min(pool.min as usize);
        if pool.check_always {
            lifecycle.check = Check::Always;
        }
        Strategy::new(
            label.to_string(),
            StrategyKind::Pool(PoolSettings {
                max_size: pool.max as usize,
                min_size: pool.min as usize,
                instances: 1,
                lifecycle,
                ..self.template.clone()
            }),
        )
    }

    fn settings(&self, pool: &Pool) -> engine::Settings {
        let base = self.session.engine_settings(&self.scenario.run);
        let (warmup, duration, before) = match pool.base_rate {
            Some(rate) => {
                let warmup = base.warmup.max(BURST_BASE);
                (
                    warmup,
                    base.duration.min(BURST_WINDOW),
                    Some(RateBefore {
                        rate,
                        until: warmup,
                    }),
                )
            }
            None => (base.warmup, base.duration, None),
        };
        engine::Settings {
            pacing: Pacing::OpenLoop(Arrivals {
                rate: self.rate,
                process: ArrivalProcess::Poisson,
                max_in_flight: MAX_IN_FLIGHT,
                before,
            }),
            warmup,
            duration,
            ..base
        }
    }

    /// Rounds of `pool`, each a fresh pool: `planned` of them, and with a
    /// target more while they disagree (`search::verdict`); with --out,
    /// written as a run's report under `<out>/<label>/`.
    async fn measure(
        &self,
        pool: &Pool,
        planned: u32,
        target_ms: Option<f64>,
        label: &str,
    ) -> Result<Measured> {
        let strategy = self.strategy(label, pool);
        let settings = self.settings(pool);
        let threads = threads(&self.args.measure);
        let queries = self.session.query_names();
        let started_at = crate::report::now_rfc3339();
        let mut results = Vec::new();
        let mut out = Vec::new();
        let mut opened = Vec::new();
        let mut met = None;
        for round in 1.. {
            if self.session.cancel.is_cancelled() {
                break;
            }
            let settings = engine::Settings {
                seed: settings.seed.wrapping_add(u64::from(round)),
                ..settings.clone()
            };
            let result = measure::round(
                self.session,
                &strategy,
                &settings,
                threads,
                self.show,
                (round, planned.max(round)),
            )
            .await;
            let r = assemble(&strategy, &queries, std::slice::from_ref(&result));
            out.push(Round {
                p99_ms: r.total().map_or(0.0, |t| t.p99_us as f64 / 1000.0),
                offered_rate: r.offered_rate.unwrap_or(self.rate),
                achieved_rate: r.achieved_rate.unwrap_or(0.0),
                errors: r.error_count(),
                acquire_p99_ms: r
                    .phases
                    .get("acquire")
                    .map_or(0.0, |a| a.p99_us as f64 / 1000.0),
                error_rate: if r.requests == 0 { 1.0 } else { r.error_rate() },
                service_mean_ms: r.phases.get("query").map_or(0.0, |q| q.mean_us / 1000.0),
            });
            opened.push(
                result
                    .seconds
                    .iter()
                    .filter_map(|s| s.churn.map(|c| c.opened))
                    .sum(),
            );
            results.push(result);
            match target_ms {
                Some(t) => {
                    met = verdict(&out, t, planned);
                    if met.is_some() {
                        break;
                    }
                }
                None if round >= planned => break,
                None => {}
            }
        }
        let report = assemble(&strategy, &queries, &results);
        if let Some(out) = self.out_dir {
            let dir = out.subdir(label)?;
            let mut run = new_report(self.scenario, self.session, &started_at, Default::default());
            run.strategies = vec![report.clone()];
            run.conditions = Some(crate::report::Conditions::current(
                u32::try_from(threads).unwrap_or(u32::MAX),
                self.session.server.embedded || crate::placement::enabled(),
                crate::placement::pinned(),
            ));
            run.explanation = crate::report::model::Explanation::all(&run);
            hlog::write(&dir, &run)?;
            export::write_all(&dir, &run, &FILES)?;
        }
        Ok(Measured {
            rounds: out,
            opened,
            met: met.unwrap_or(false),
            report,
        })
    }
}
