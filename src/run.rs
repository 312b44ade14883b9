//! `poolbench run`: load the scenario, find or start the database, run the
//! setup once, then every strategy in file order; write the reports after
//! each strategy (so an interruption loses little) and print the verdict.

use std::sync::Arc;

use anyhow::{Context, Result};
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::cli::RunArgs;
use crate::db::Target;
use crate::error::bad_input;
use crate::report::{self, Comparison, Report};
use crate::runner::{assemble, run_round, RoundResult, RunContext};
use crate::scenario::{self, Scenario};
use crate::server::{EmbeddedOptions, EmbeddedServer};
use crate::workload::Mix;
use crate::Outcome;

pub async fn run_command(args: &RunArgs) -> Result<Outcome> {
    let mut scenario = scenario::load(&args.scenario)?;
    apply_overrides(&mut scenario, args)?;
    let started_at = report::now_rfc3339();
    let out_dir =
        report::prepare_dir(args.out.as_deref(), &scenario.name, &started_at, args.force)?;
    let cancel = cancel_on_signal();

    let (dsn, origin) = match (&args.dsn, &scenario.database.dsn) {
        (Some(d), _) => (Some(d.clone()), "--dsn".to_string()),
        (None, Some(d)) => (
            Some(d.clone()),
            format!("[database].dsn of {}", args.scenario.display()),
        ),
        (None, None) => (
            std::env::var("DATABASE_URL").ok().filter(|d| !d.is_empty()),
            "DATABASE_URL".into(),
        ),
    };
    let mut embedded = None;
    let target = match dsn {
        Some(dsn) => Target::parse(&dsn, &origin)?,
        None => {
            let opts = EmbeddedOptions::from(&scenario.database.embedded);
            if !args.quiet {
                eprintln!(
                    "poolbench: no DSN given: starting an embedded PostgreSQL ({}, TLS {})",
                    opts.auth.as_str(),
                    if opts.tls { "on" } else { "off" }
                );
            }
            let server = EmbeddedServer::start(&opts).await?;
            let target = server.target().clone();
            embedded = Some(server);
            target
        }
    };
    let result = measure(
        &scenario,
        args,
        &target,
        embedded.as_ref(),
        &started_at,
        &out_dir,
        &cancel,
    )
    .await;
    if let Some(server) = embedded {
        if let Err(e) = server.stop().await {
            eprintln!("poolbench: warning: stopping the embedded server: {e:#}");
        }
    }
    result
}

fn apply_overrides(s: &mut Scenario, args: &RunArgs) -> Result<()> {
    if let Some(d) = args.duration {
        if d.is_zero() {
            return Err(bad_input("--duration must be greater than 0"));
        }
        s.run.duration = d;
    }
    if let Some(w) = args.warmup {
        s.run.warmup = w;
    }
    if let Some(c) = args.concurrency {
        s.run.concurrency = c;
    }
    if let Some(seed) = args.seed {
        s.run.seed = seed;
    }
    if let Some(rounds) = args.rounds {
        s.run.rounds = rounds;
    }
    if !args.only.is_empty() {
        for name in &args.only {
            if !s.strategies.iter().any(|st| &st.name == name) {
                let known: Vec<&str> = s.strategies.iter().map(|st| st.name.as_str()).collect();
                return Err(bad_input(format!(
                    "--only {name}: no such strategy in {} (it has: {})",
                    s.source.path.display(),
                    known.join(", ")
                )));
            }
        }
        s.strategies.retain(|st| args.only.contains(&st.name));
    }
    Ok(())
}

/// Ctrl-C or SIGTERM cancels the token: workers stop, the partial report is
/// written, the embedded server is stopped, and the run exits 130.
fn cancel_on_signal() -> CancellationToken {
    let cancel = CancellationToken::new();
    let token = cancel.clone();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let sigterm = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = sigterm => {}
        }
        eprintln!("\npoolbench: interrupted: stopping the workers and writing the partial report");
        token.cancel();
    });
    cancel
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    scenario: &Scenario,
    args: &RunArgs,
    target: &Target,
    embedded: Option<&EmbeddedServer>,
    started_at: &str,
    out_dir: &std::path::Path,
    cancel: &CancellationToken,
) -> Result<Outcome> {
    let client = target.check_reachable().await?;
    let server = server_facts(&client, target, embedded).await;
    let mix = Mix::new(&scenario.queries);
    if !args.quiet {
        print_header(scenario, &server);
    }

    if let Some(sql) = &scenario.setup_sql {
        if embedded.is_none() && !args.allow_setup {
            return Err(bad_input(format!(
                "{} has a [setup] section, which usually creates and fills tables; poolbench \
                 runs it only on its own embedded server unless you pass --allow-setup",
                scenario.source.path.display()
            )));
        }
        client.batch_execute(sql).await.map_err(|e| {
            bad_input(format!(
                "the [setup] SQL of {} failed: {}",
                scenario.source.path.display(),
                crate::db::describe_pg_error(&e)
            ))
        })?;
    }
    mix.check_against(&client).await.with_context(|| {
        format!(
            "checking the queries of {} against the server",
            scenario.source.path.display()
        )
    })?;

    let ctx = RunContext {
        target: target.clone(),
        mix: Arc::new(mix),
        duration: scenario.run.duration,
        warmup: scenario.run.warmup,
        concurrency: scenario.run.concurrency,
        seed: scenario.run.seed,
        rounds: scenario.run.rounds,
        cancel: cancel.clone(),
        monitor: Some(client),
        show_progress: !args.quiet,
    };
    let mut report = Report {
        schema_version: report::SCHEMA_VERSION,
        tool: report::Tool {
            name: "poolbench".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            build: build_profile().into(),
        },
        started_at: started_at.to_string(),
        interrupted: false,
        host: report::Host {
            cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            os: std::env::consts::OS.into(),
            arch: std::env::consts::ARCH.into(),
        },
        server,
        scenario: report::ScenarioInfo {
            name: scenario.name.clone(),
            path: scenario.source.path.display().to_string(),
            sha256: scenario.source.sha256.clone(),
            resolved: serde_json::to_value(scenario).unwrap_or_default(),
        },
        strategies: Vec::new(),
        comparison: Vec::new(),
    };
    // Rounds interleave the strategies (A B A B …) so that drift on a shared
    // machine hits every strategy alike.
    let mut rounds: Vec<Vec<RoundResult>> =
        scenario.strategies.iter().map(|_| Vec::new()).collect();
    'rounds: for round in 1..=scenario.run.rounds {
        for (index, strategy) in scenario.strategies.iter().enumerate() {
            if cancel.is_cancelled() {
                break 'rounds;
            }
            let result = run_round(&ctx, strategy, round).await;
            if !args.quiet {
                let label = if scenario.run.rounds > 1 {
                    format!("{} #{round}", strategy.name)
                } else {
                    strategy.name.clone()
                };
                eprintln!(
                    "{label:>16}  {} requests, {} req/s, {} errors",
                    report::table::thousands(result.recorder.requests),
                    report::table::thousands(
                        (result.recorder.requests as f64 / result.measured.as_secs_f64().max(1e-9))
                            .round() as u64
                    ),
                    report::table::thousands(result.recorder.errors.total())
                );
            }
            rounds[index].push(result);
            report.strategies = scenario
                .strategies
                .iter()
                .zip(&rounds)
                .filter(|(_, r)| !r.is_empty())
                .map(|(s, r)| assemble(s, &ctx.mix, r))
                .collect();
            report.interrupted = cancel.is_cancelled();
            report.comparison = Comparison::all(&report.strategies);
            report::write_all(out_dir, &report)?;
        }
    }
    report.interrupted = cancel.is_cancelled();
    report::write_all(out_dir, &report)?;

    if !args.quiet {
        println!();
        print!("{}", report::table::tables(&report));
        println!();
    }
    if let Some(line) = report::table::headline(&report) {
        println!("{line}");
    }
    if !args.quiet {
        println!("reports: {}", out_dir.display());
    }
    Ok(if report.interrupted {
        Outcome::Interrupted
    } else {
        Outcome::Success
    })
}

pub fn build_profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

async fn server_facts(
    client: &Client,
    target: &Target,
    embedded: Option<&EmbeddedServer>,
) -> report::Server {
    let text = |sql: &'static str| async move {
        client
            .query_one(sql, &[])
            .await
            .ok()
            .and_then(|r| r.try_get::<_, String>(0).ok())
    };
    let version = text("SHOW server_version")
        .await
        .unwrap_or_else(|| "unknown".into());
    let max_connections = text("SHOW max_connections")
        .await
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let ssl = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .ok()
        .and_then(|r| r.try_get::<_, bool>(0).ok())
        .unwrap_or(false);
    report::Server {
        version,
        auth_method: match embedded {
            Some(s) => s.options().auth.as_str().to_string(),
            None => "unknown".into(),
        },
        ssl,
        max_connections,
        embedded: embedded.is_some(),
        dsn: target.redacted(),
    }
}

fn print_header(s: &Scenario, server: &report::Server) {
    let where_ = if server.embedded {
        "embedded"
    } else {
        "external"
    };
    println!(
        "poolbench {} ({} build) · scenario {} ({})",
        env!("CARGO_PKG_VERSION"),
        build_profile(),
        s.name,
        s.source.path.display()
    );
    println!(
        "server    PostgreSQL {} · {where_} at {} · auth {} · TLS {} · max_connections {}",
        server.version,
        server.dsn,
        server.auth_method,
        if server.ssl { "on" } else { "off" },
        server.max_connections
    );
    println!(
        "workload  {} workers · {} warm-up + {} per strategy{} · seed {} · {} strategies, {} queries",
        s.run.concurrency,
        humantime::format_duration(s.run.warmup),
        humantime::format_duration(s.run.duration),
        if s.run.rounds > 1 { format!(" × {} rounds", s.run.rounds) } else { String::new() },
        s.run.seed,
        s.strategies.len(),
        s.queries.len()
    );
    if cfg!(debug_assertions) {
        println!("warning   this is a debug build: connection setup (SCRAM) is several times slower; use `cargo build --release` for real numbers");
    }
    println!();
}
