//! `poolbench sweep`: one session (one server, one setup), then for each
//! concurrency the fresh strategy once (its setup cost, for break-even) and
//! the pool strategy at each pool size with min_size = max_size, so every
//! point measures a full pool in steady state. sweep.json and sweep.csv are
//! rewritten after every point, so an interruption loses little.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::model::*;
use crate::cli::SweepArgs;
use crate::error::bad_input;
use crate::report::table::{ms, render, rps, thousands};
use crate::report::{self, StrategyReport};
use crate::runner::{assemble, run_round, RunContext};
use crate::scenario::{self, PoolSettings, QueryMode, Recycling, Scenario, Strategy, StrategyKind};
use crate::session::{
    apply_measure_args, build_profile, cancel_on_signal, threads, ConnectOptions, Session,
};
use crate::Outcome;

const FILES: [&str; 2] = ["sweep.json", "sweep.csv"];

/// What the sweep runs, resolved from the scenario and the flags.
struct Plan {
    template: Strategy,
    pool: PoolSettings,
    fresh: Option<Strategy>,
    pool_sizes: Vec<usize>,
    concurrency: Vec<u32>,
}

pub async fn sweep_command(args: &SweepArgs) -> Result<Outcome> {
    let mut scenario = scenario::load(&args.scenario)?;
    apply_measure_args(&mut scenario, &args.measure)?;
    let plan = resolve(&scenario, args)?;
    let started_at = report::now_rfc3339();
    let out_dir = prepare_dir(args, &scenario, &started_at)?;
    let opts = ConnectOptions::from_args(&args.measure, args.quiet);
    let session = Session::open(&scenario, &opts, cancel_on_signal()).await?;
    let result = measure(&scenario, &plan, args, &session, &started_at, &out_dir).await;
    session.close().await;
    result
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

fn prepare_dir(args: &SweepArgs, s: &Scenario, started_at: &str) -> Result<PathBuf> {
    // `report::prepare_dir` names the default directory and creates it; its
    // own check is for a run's files, so sweep files are checked here.
    let dir = report::prepare_dir(
        args.out.as_deref(),
        &format!("{}-sweep", s.name),
        started_at,
        true,
    )?;
    if !args.force {
        if let Some(existing) = FILES.iter().map(|f| dir.join(f)).find(|p| p.exists()) {
            return Err(bad_input(format!(
                "{} already exists; choose another --out directory (or --force to overwrite)",
                existing.display()
            )));
        }
    }
    Ok(dir)
}

async fn measure(
    scenario: &Scenario,
    plan: &Plan,
    args: &SweepArgs,
    session: &Session,
    started_at: &str,
    out_dir: &Path,
) -> Result<Outcome> {
    let cancel = &session.cancel;
    if !args.quiet {
        print_header(scenario, plan, session);
    }
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
    };
    let mix = session.mix.clone();
    'sweep: for &concurrency in &plan.concurrency {
        let ctx = RunContext {
            concurrency,
            rounds: 1,
            ..session.context(scenario, threads(&args.measure), !args.quiet)
        };
        if let Some(fresh) = &plan.fresh {
            let result = run_round(&ctx, fresh, 1).await;
            if cancel.is_cancelled() {
                break 'sweep;
            }
            let r = assemble(fresh, &mix, std::slice::from_ref(&result));
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
            let strategy = Strategy {
                name: format!("pool-{size}"),
                kind: StrategyKind::Pool(PoolSettings {
                    max_size: size,
                    min_size: size,
                    ..plan.pool.clone()
                }),
            };
            let result = run_round(&ctx, &strategy, 1).await;
            let interrupted = cancel.is_cancelled();
            let r = assemble(&strategy, &mix, std::slice::from_ref(&result));
            if !args.quiet {
                progress_line(&format!("{} c={concurrency}", strategy.name), &r);
            }
            // A point cut short by Ctrl-C is kept only if it measured something.
            if !interrupted || r.requests > 0 {
                sweep.points.push(pool_point(concurrency, size, &r));
            }
            sweep.interrupted = interrupted;
            sweep.analysis = analyse_all(&sweep);
            write(out_dir, &sweep)?;
            if interrupted {
                break 'sweep;
            }
        }
    }
    sweep.interrupted = cancel.is_cancelled();
    sweep.analysis = analyse_all(&sweep);
    write(out_dir, &sweep)?;

    println!();
    print!("{}", table(&sweep));
    if !args.quiet {
        println!("files: {}", out_dir.display());
    }
    Ok(if sweep.interrupted {
        Outcome::Interrupted
    } else {
        Outcome::Success
    })
}

fn progress_line(label: &str, r: &StrategyReport) {
    eprintln!(
        "{label:>16}  {} requests, {} req/s, {} errors",
        thousands(r.requests),
        rps(r.throughput_rps),
        thousands(r.error_count())
    );
}

fn print_header(s: &Scenario, plan: &Plan, session: &Session) {
    let server = &session.server;
    println!(
        "poolbench {} ({} build) · sweep of {} ({}) · template {}",
        env!("CARGO_PKG_VERSION"),
        build_profile(),
        s.name,
        s.source.path.display(),
        plan.template.name
    );
    println!(
        "server    PostgreSQL {} · {} at {} · auth {} · TLS {} · max_connections {}",
        server.version,
        if server.embedded {
            "embedded"
        } else {
            "external"
        },
        server.dsn,
        server.auth_method,
        if server.ssl { "on" } else { "off" },
        server.max_connections
    );
    let list = |v: Vec<String>| v.join(",");
    println!(
        "grid      pool sizes {} × concurrency {} · {} warm-up + {} per point · seed {}{}",
        list(plan.pool_sizes.iter().map(|n| n.to_string()).collect()),
        list(plan.concurrency.iter().map(|n| n.to_string()).collect()),
        humantime::format_duration(s.run.warmup),
        humantime::format_duration(s.run.duration),
        s.run.seed,
        match &plan.fresh {
            Some(f) => format!(" · {} once per concurrency (setup cost)", f.name),
            None => String::new(),
        }
    );
    let largest = plan.pool_sizes.last().copied().unwrap_or(0);
    if server.max_connections > 0 && largest + 1 > server.max_connections as usize {
        println!(
            "warning   pool size {largest} plus the monitor connection exceeds the server's \
             max_connections {}: the larger points will count too_many_connections errors",
            server.max_connections
        );
    }
    if cfg!(debug_assertions) {
        println!("warning   this is a debug build: use `cargo build --release` for real numbers");
    }
    println!();
}

fn phase(r: &StrategyReport, name: &str) -> Percentiles {
    r.phases
        .get(name)
        .map(Percentiles::from)
        .unwrap_or_default()
}

fn pool_point(concurrency: u32, size: usize, r: &StrategyReport) -> SweepPoint {
    let query = phase(r, "query");
    SweepPoint {
        concurrency,
        pool_size: size,
        requests: r.requests,
        errors: r.error_count(),
        error_classes: r.errors.clone(),
        throughput_rps: r.throughput_rps,
        total: phase(r, "total"),
        acquire: phase(r, "acquire"),
        query,
        service_time_mean_us: query.mean_us,
        startup_ms: r.startup_ms,
    }
}

fn fresh_point(concurrency: u32, r: &StrategyReport, connections: f64) -> FreshPoint {
    FreshPoint {
        concurrency,
        requests: r.requests,
        errors: r.error_count(),
        throughput_rps: r.throughput_rps,
        total: phase(r, "total"),
        connect: phase(r, "connect"),
        query: phase(r, "query"),
        close: phase(r, "close"),
        connections_per_request: connections,
    }
}

/// Connections a fresh request opens, weighted over the mix: one, or one
/// per statement for a parallel query. (Counted from the scenario, because
/// the strategy's own count includes the warm-up.)
fn connections_per_request(s: &Scenario) -> f64 {
    let (mut weighted, mut weights) = (0.0, 0.0);
    for q in &s.queries {
        let n = match q.mode {
            QueryMode::Parallel => q.statements.len(),
            QueryMode::Sequential | QueryMode::Transaction => 1,
        };
        weighted += f64::from(q.weight) * n as f64;
        weights += f64::from(q.weight);
    }
    if weights > 0.0 {
        report::round(weighted / weights, 3)
    } else {
        1.0
    }
}

fn analyse_all(sweep: &SweepReport) -> Vec<Analysis> {
    sweep
        .settings
        .concurrency
        .iter()
        .filter_map(|&c| analyse(c, &sweep.points_at(c)))
        .collect()
}

fn write(dir: &Path, sweep: &SweepReport) -> Result<()> {
    let mut json = serde_json::to_vec_pretty(sweep)?;
    json.push(b'\n');
    report::write_atomically(&dir.join("sweep.json"), &json)?;
    report::write_atomically(&dir.join("sweep.csv"), &csv(sweep)?)
}

/// sweep.csv: one row per point, milliseconds like summary.csv.
pub fn csv(sweep: &SweepReport) -> Result<Vec<u8>> {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    w.write_record([
        "scenario",
        "concurrency",
        "pool_size",
        "requests",
        "errors",
        "throughput_rps",
        "total_p50_ms",
        "total_p90_ms",
        "total_p99_ms",
        "total_p999_ms",
        "acquire_p50_ms",
        "acquire_p90_ms",
        "acquire_p99_ms",
        "acquire_p999_ms",
        "query_p50_ms",
        "query_p90_ms",
        "query_p99_ms",
        "query_p999_ms",
        "service_time_mean_ms",
        "knee",
    ])?;
    let f = |us: u64| format!("{:.3}", us as f64 / 1000.0);
    for p in &sweep.points {
        let knee = sweep
            .analysis
            .iter()
            .any(|a| a.concurrency == p.concurrency && a.knee_pool_size == p.pool_size);
        let mut row = vec![
            sweep.scenario.name.clone(),
            p.concurrency.to_string(),
            p.pool_size.to_string(),
            p.requests.to_string(),
            p.errors.to_string(),
            format!("{:.1}", p.throughput_rps),
        ];
        for ph in [&p.total, &p.acquire, &p.query] {
            row.extend([f(ph.p50_us), f(ph.p90_us), f(ph.p99_us), f(ph.p999_us)]);
        }
        row.push(format!("{:.3}", p.service_time_mean_us / 1000.0));
        row.push(knee.to_string());
        w.write_record(&row)?;
    }
    Ok(w.into_inner()?)
}

/// The terminal table: one row per point, the knee marked, then per
/// concurrency the USL fit and the fresh strategy's cost.
pub fn table(sweep: &SweepReport) -> String {
    let mut rows = vec![[
        "workers",
        "pool",
        "req/s",
        "errors",
        "total p50",
        "p99",
        "acquire p50",
        "p99",
        "query p50",
        "p99",
        "",
    ]
    .map(String::from)
    .to_vec()];
    for c in &sweep.settings.concurrency {
        let analysis = sweep.analysis.iter().find(|a| a.concurrency == *c);
        for p in sweep.points_at(*c) {
            let mark = match analysis {
                Some(a) if a.knee_pool_size == p.pool_size => "◀ knee",
                _ => "",
            };
            rows.push(vec![
                c.to_string(),
                p.pool_size.to_string(),
                rps(p.throughput_rps),
                thousands(p.errors),
                ms(p.total.p50_us as f64),
                ms(p.total.p99_us as f64),
                ms(p.acquire.p50_us as f64),
                ms(p.acquire.p99_us as f64),
                ms(p.query.p50_us as f64),
                ms(p.query.p99_us as f64),
                mark.into(),
            ]);
        }
    }
    let mut out = String::from("latencies in ms\n");
    out.push_str(&render(&rows, 0));
    out.push_str(&format!(
        "knee: the smallest pool size with ≥ {:.0}% of the best measured throughput at that \
         concurrency\n",
        KNEE_FRACTION * 100.0
    ));
    for c in &sweep.settings.concurrency {
        let Some(a) = sweep.analysis.iter().find(|a| a.concurrency == *c) else {
            continue;
        };
        out.push('\n');
        out.push_str(&format!(
            "{c} workers: best {} req/s at pool {}; knee at pool {}\n",
            rps(a.best_throughput_rps),
            a.best_pool_size,
            a.knee_pool_size
        ));
        match &a.usl {
            Some(u) => {
                out.push_str(&format!(
                    "  USL fit   σ = {:.4}  κ = {:.6}  λ = {} req/s per connection  R² = {:.3}\n",
                    u.sigma,
                    u.kappa,
                    rps(u.lambda),
                    u.r_squared
                ));
                out.push_str(&format!(
                    "            linear transform cross-check: σ = {:.4}  κ = {:.6}\n",
                    u.linear_sigma, u.linear_kappa
                ));
                let peak = match (u.peak_pool_size, u.peak_throughput_rps) {
                    (Some(n), Some(x)) => format!(
                        "peak N* = √((1−σ)/κ) = {n:.1} connections, {} req/s; bound by {}",
                        rps(x),
                        u.bound
                    ),
                    (None, Some(x)) => format!(
                        "no peak (κ = 0); throughput approaches λ/σ = {} req/s; bound by contention",
                        rps(x)
                    ),
                    _ => "no peak: linear scaling over the measured range".into(),
                };
                out.push_str(&format!("            {peak}\n"));
                for w in &u.warnings {
                    out.push_str(&format!("  warning   {w}\n"));
                }
            }
            None => out.push_str("  USL fit   needs at least 3 pool sizes\n"),
        }
        if let Some(f) = sweep.fresh_at(*c) {
            out.push_str(&format!(
                "  fresh     {} req/s · total p50 {} ms · connect p50 {} ms, p99 {} ms\n",
                rps(f.throughput_rps),
                ms(f.total.p50_us as f64),
                ms(f.connect.p50_us as f64),
                ms(f.connect.p99_us as f64)
            ));
        }
    }
    if sweep.interrupted {
        out.push_str("\ninterrupted: the sweep was cut short; the files hold what was measured\n");
    }
    out
}
