//! A measuring session: the database found (`--dsn`, the scenario's dsn,
//! `DATABASE_URL`) or started (the embedded server), reached once, described,
//! set up, and the scenario's queries checked against it. `run` and `sweep`
//! both measure inside one.

use std::sync::Arc;

use anyhow::{Context, Result};
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::backend::postgres::Target;
use crate::error::bad_input;
use crate::report;
use crate::runner::RunContext;
use crate::scenario::Scenario;
use crate::server::{EmbeddedOptions, EmbeddedServer};
use crate::workload::Mix;

/// How to reach the database, from the command line.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    pub dsn: Option<String>,
    pub allow_setup: bool,
    pub quiet: bool,
}

pub struct Session {
    pub target: Target,
    pub embedded: Option<EmbeddedServer>,
    /// Opened before any strategy and kept: it runs the setup, then counts
    /// server backends once a second. Never counted in the results.
    pub monitor: Client,
    pub server: report::Server,
    pub mix: Arc<Mix>,
    pub cancel: CancellationToken,
}

impl Session {
    /// Finds or starts the database, checks it is reachable (exit 3), runs
    /// the setup (exit 2 when it fails) and checks every query's parameters
    /// against the server's types (exit 2).
    pub async fn open(
        scenario: &Scenario,
        opts: &ConnectOptions,
        cancel: CancellationToken,
    ) -> Result<Session> {
        let (dsn, origin) = match (&opts.dsn, &scenario.database.dsn) {
            (Some(d), _) => (Some(d.clone()), "--dsn".to_string()),
            (None, Some(d)) => (
                Some(d.clone()),
                format!("[database].dsn of {}", scenario.source.path.display()),
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
                let server_opts = EmbeddedOptions::from(&scenario.database.embedded);
                if !opts.quiet {
                    eprintln!(
                        "poolbench: no DSN given: starting an embedded PostgreSQL ({}, TLS {})",
                        server_opts.auth.as_str(),
                        if server_opts.tls { "on" } else { "off" }
                    );
                }
                let server = EmbeddedServer::start(&server_opts).await?;
                if !opts.quiet {
                    eprintln!(
                        "poolbench: embedded PostgreSQL {} ready on 127.0.0.1:{} (data in {})",
                        server.version(),
                        server.port(),
                        server.dir().display()
                    );
                }
                let target = server.target().clone();
                embedded = Some(server);
                target
            }
        };
        // From here on an error drops `embedded`, whose Drop stops the server.
        let monitor = target.check_reachable().await?;
        let server = server_facts(&monitor, &target, embedded.as_ref()).await;
        if let Some(sql) = &scenario.setup_sql {
            if embedded.is_none() && !opts.allow_setup {
                return Err(bad_input(format!(
                    "{} has a [setup] section, which usually creates and fills tables; \
                     poolbench runs it only on its own embedded server unless you pass \
                     --allow-setup",
                    scenario.source.path.display()
                )));
            }
            monitor.batch_execute(sql).await.map_err(|e| {
                bad_input(format!(
                    "the [setup] SQL of {} failed: {}",
                    scenario.source.path.display(),
                    crate::backend::postgres::describe_pg_error(&e)
                ))
            })?;
        }
        let mix = Mix::new(&scenario.queries);
        mix.check_against(&monitor).await.with_context(|| {
            format!(
                "checking the queries of {} against the server",
                scenario.source.path.display()
            )
        })?;
        Ok(Session {
            target,
            embedded,
            monitor,
            server,
            mix: Arc::new(mix),
            cancel,
        })
    }

    /// What the runner needs to measure a strategy in this session, with the
    /// scenario's [run] settings.
    pub fn context(
        &self,
        scenario: &Scenario,
        threads: usize,
        show_progress: bool,
    ) -> RunContext<'_> {
        RunContext {
            target: self.target.clone(),
            mix: self.mix.clone(),
            duration: scenario.run.duration,
            warmup: scenario.run.warmup,
            concurrency: scenario.run.concurrency,
            seed: scenario.run.seed,
            rounds: scenario.run.rounds,
            threads,
            request_timeout: scenario.run.request_timeout,
            retry: scenario.run.retry.clone(),
            cancel: self.cancel.clone(),
            monitor: Some(&self.monitor),
            show_progress,
        }
    }

    /// Stops the embedded server, if this session started one.
    pub async fn close(self) {
        drop(self.monitor);
        if let Some(server) = self.embedded {
            if let Err(e) = server.stop().await {
                eprintln!("poolbench: warning: stopping the embedded server: {e:#}");
            }
        }
    }
}

/// Ctrl-C or SIGTERM cancels the token: workers stop, the partial report is
/// written, the embedded server is stopped, and the command exits 130.
pub fn cancel_on_signal() -> CancellationToken {
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
