//! A measuring session: the database found (`--dsn`, the scenario's dsn,
//! `DATABASE_URL`) or started (the embedded server), reached once, described,
//! set up, and the scenario's queries checked against it. `run` and `sweep`
//! both measure inside one.

use std::sync::Arc;

use anyhow::{Context, Result};
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use futures_util::future::BoxFuture;

use crate::backend::postgres::{server_facts, Monitor, Target};
use crate::embedded::{EmbeddedOptions, EmbeddedServer};
use crate::engine::{self, Observer, Pacing, RoundResult, Tick};
use crate::error::bad_input;
use crate::report;
use crate::scenario::{RunSettings, Scenario, Strategy};
use crate::source;
use crate::workload::{Mix, Requests};

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
                    crate::errln!(
                        "poolbench: no DSN given: starting an embedded PostgreSQL ({}, TLS {})",
                        server_opts.auth.as_str(),
                        if server_opts.tls { "on" } else { "off" }
                    );
                }
                let server = EmbeddedServer::start(&server_opts).await?;
                if !opts.quiet {
                    crate::errln!(
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
        let auth = embedded.as_ref().map(|s| s.options().auth.as_str());
        let server = server_facts(&monitor, &target, auth).await;
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

    /// The engine's settings for the scenario's [run] in this session.
    pub fn engine_settings(&self, run: &RunSettings) -> engine::Settings {
        engine::Settings {
            concurrency: run.concurrency,
            warmup: run.warmup,
            duration: run.duration,
            seed: run.seed,
            request_timeout: run.request_timeout,
            retry: run.retry.clone(),
            pacing: match run.arrivals {
                Some(arrivals) => Pacing::OpenLoop(arrivals),
                None => Pacing::ClosedLoop,
            },
            start_at: None,
            cancel: self.cancel.clone(),
        }
    }

    /// Runs one round of `strategy` on `threads` worker threads (no more
    /// than there are workers): new sources (new pools), warm-up, then the
    /// measured window, with the server's backends counted once a second
    /// on the monitor connection and `progress` told how it goes.
    pub async fn run_round(
        &self,
        strategy: &Strategy,
        settings: &engine::Settings,
        threads: usize,
        progress: &mut (dyn FnMut(&Tick) + Send),
    ) -> RoundResult {
        // Closed loop: no more threads than workers.
        let shards = match settings.pacing {
            Pacing::ClosedLoop => threads.max(1).min(settings.concurrency.max(1) as usize),
            Pacing::OpenLoop(_) => threads.max(1),
        };
        let sources = source::build(&strategy.kind, &self.target, shards);
        let services = Requests::for_sources(sources, &self.mix);
        let mut watch = Watch {
            monitor: Monitor::new(&self.monitor, &self.target),
            progress,
        };
        engine::run(settings, services, &mut watch).await
    }

    /// The scenario's query names, in order (the report's `per_query`).
    pub fn query_names(&self) -> Vec<String> {
        self.mix.queries.iter().map(|q| q.name.clone()).collect()
    }

    /// Stops the embedded server, if this session started one.
    pub async fn close(self) {
        drop(self.monitor);
        if let Some(server) = self.embedded {
            if let Err(e) = server.stop().await {
                crate::errln!("poolbench: warning: stopping the embedded server: {e:#}");
            }
        }
    }
}

/// The engine's observer in a session: the monitor counts the server's
/// backends, the caller shows progress.
struct Watch<'a> {
    monitor: Monitor<'a>,
    progress: &'a mut (dyn FnMut(&Tick) + Send),
}

impl Observer for Watch<'_> {
    fn backends(&mut self) -> BoxFuture<'_, Option<u64>> {
        Box::pin(self.monitor.backends())
    }

    fn progress(&mut self, tick: &Tick) {
        (self.progress)(tick);
    }
}

/// Ctrl-C or SIGTERM cancels the token: workers stop, the partial report is
/// written, the embedded server is stopped, and the command exits 130. So
/// does a stdout or stderr whose reader has gone (`crate::output`), with
/// exit code 141.
pub fn cancel_on_signal() -> CancellationToken {
    let cancel = CancellationToken::new();
    crate::output::cancel_on_close(cancel.clone());
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
        crate::errln!(
            "\npoolbench: interrupted: stopping the workers and writing the partial report"
        );
        token.cancel();
    });
    cancel
}
