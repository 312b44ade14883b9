//! A measuring session: the database found (`--dsn`, the scenario's dsn,
//! `DATABASE_URL`, libpq's environment) or started (the embedded server),
//! reached once, described, set up, and the scenario's queries checked
//! against it; with `[network]`, the link emulator every measured
//! connection crosses. `run` and `sweep` both measure inside one. The
//! engine (a `mysql://` DSN or `engine = "mariadb"` make it MySQL) is the
//! backend's business: the session sees its target and its admin
//! connection through the backend's traits.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio_util::sync::CancellationToken;

use futures_util::future::BoxFuture;

use crate::backend::{
    self, Admin, AnyAdmin, AnyMonitor, Found, Monitor, Source, Statements, Target,
};
use crate::embedded::mariadb::{self, MariaDb, MariaDbOptions};
use crate::embedded::pgbouncer::{Console, PgBouncer};
use crate::embedded::{EmbeddedOptions, EmbeddedServer};
use crate::engine::{self, Observer, Pacing, RoundResult, Tick};
use crate::error::bad_input;
use crate::metrics::PoolerStatus;
use crate::net::Emulator;
use crate::report;
use crate::scenario::{EmbeddedEngine, NetworkSettings, RunSettings, Scenario, Strategy, Via};
use crate::source;
use crate::workload::{Mix, Requests};

/// How to reach the database, from the command line.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    pub dsn: Option<String>,
    /// `--embedded`: the embedded server whatever the environment says.
    pub embedded: bool,
    pub allow_setup: bool,
    pub quiet: bool,
}

pub struct Session {
    pub target: Target,
    /// The strategies that have a `dsn` of their own, by name: a pooler in
    /// front of the same database. Setup and the monitor use `target`.
    pub strategy_targets: HashMap<String, Target>,
    /// The server the session started, when no DSN named one.
    embedded: Option<Embedded>,
    /// Started when a strategy has `via = "pgbouncer"`, in front of
    /// `embedded`; stopped before it.
    pub pgbouncer: Option<PgBouncer>,
    /// PgBouncer's admin console, for `SHOW POOLS` once a second.
    pgbouncer_admin: Option<Console>,
    /// Opened before any strategy and kept: it runs the setup, then counts
    /// server backends once a second. Never counted in the results.
    admin: AnyAdmin,
    pub server: report::Server,
    pub mix: Arc<Mix>,
    pub cancel: CancellationToken,
    /// The emulated link and its settings, when there is one.
    link: Option<(NetworkSettings, Arc<Emulator>)>,
}

/// A server poolbench started for the session.
// One per session: boxing the larger buys nothing.
#[allow(clippy::large_enum_variant)]
enum Embedded {
    Postgres(EmbeddedServer),
    MariaDb(MariaDb),
}

impl Embedded {
    /// Starts the scenario's embedded server (`source` says why: no DSN
    /// given, or `--embedded`), telling the user unless quiet.
    async fn start(
        scenario: &Scenario,
        opts: &ConnectOptions,
        source: &Source,
    ) -> Result<Embedded> {
        let why = if *source == Source::ForcedEmbedded {
            "--embedded"
        } else {
            "no DSN given"
        };
        let settings = &scenario.database.embedded;
        if settings.engine == EmbeddedEngine::Mariadb {
            if !opts.quiet {
                crate::errln!(
                    "poolbench: {why}: starting an embedded MariaDB (TLS {})",
                    if settings.tls { "on" } else { "off" }
                );
            }
            let server = MariaDb::start(&MariaDbOptions {
                tls: settings.tls,
                port: None,
                max_connections: settings.max_connections,
            })
            .await?;
            if !opts.quiet {
                crate::errln!(
                    "poolbench: embedded MariaDB {} ready on 127.0.0.1:{} (data in {})",
                    server.version(),
                    server.port(),
                    server.dir().display()
                );
            }
            return Ok(Embedded::MariaDb(server));
        }
        let server_opts = EmbeddedOptions::from(settings);
        if !opts.quiet {
            crate::errln!(
                "poolbench: {why}: starting an embedded PostgreSQL ({}, TLS {})",
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
        Ok(Embedded::Postgres(server))
    }

    /// Its target, said to come from `source`.
    fn target(&self, source: &Source) -> Target {
        match self {
            Embedded::Postgres(s) => s.target().clone().with_source(&source.label()).into(),
            Embedded::MariaDb(s) => s.target().clone().with_source(&source.label()).into(),
        }
    }

    /// The authentication method it asks for (poolbench chose it).
    fn auth(&self) -> &'static str {
        match self {
            Embedded::Postgres(s) => s.options().auth.as_str(),
            Embedded::MariaDb(_) => mariadb::AUTH_PLUGIN,
        }
    }

    async fn stop(self) {
        let (result, what) = match self {
            Embedded::Postgres(s) => (s.stop().await, "the embedded server"),
            Embedded::MariaDb(s) => (s.stop().await, "the embedded MariaDB"),
        };
        if let Err(e) = result {
            crate::errln!("poolbench: warning: stopping {what}: {e:#}");
        }
    }
}

/// The strategies that have a `dsn` of their own, by name.
fn own_targets(scenario: &Scenario) -> Result<HashMap<String, Target>> {
    let mut targets = HashMap::new();
    for s in &scenario.strategies {
        if let Some(dsn) = &s.dsn {
            let origin = format!(
                "the `dsn` of strategy {:?} in {}",
                s.name,
                scenario.source.path.display()
            );
            targets.insert(s.name.clone(), Target::parse(dsn, &origin)?);
        }
    }
    Ok(targets)
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
        let request = backend::Request {
            flag: opts.dsn.as_deref(),
            scenario: scenario
                .database
                .dsn
                .as_deref()
                .map(|d| (d, scenario.source.path.as_path())),
            embedded: opts.embedded,
        };
        let (target, embedded) = match backend::find(&request)? {
            Found::Target(target) => (*target, None),
            Found::Embedded(source) => {
                let server = Embedded::start(scenario, opts, &source).await?;
                (server.target(&source), Some(server))
            }
        };
        // From here on an error drops `embedded`, whose Drop stops the server.
        let via_pgbouncer = scenario
            .strategies
            .iter()
            .any(|s| s.via == Some(Via::PgBouncer));
        if via_pgbouncer && !target.is_postgres() {
            return Err(bad_input(format!(
                "a strategy of {} has via = \"pgbouncer\", a PostgreSQL pooler, but the \
                 scenario targets MySQL/MariaDB",
                scenario.source.path.display()
            )));
        }
        let admin = AnyAdmin::reach(&target).await?;
        let server = admin.facts(embedded.as_ref().map(Embedded::auth)).await;
        // poolbench's own server on this machine: its backends are placed
        // on their client threads' CPUs (`placement`).
        if target.is_local() && admin.is_throwaway().await {
            crate::placement::enable();
        }
        if let Some(sql) = &scenario.setup_sql {
            // A server of `poolbench server` is a throwaway too.
            if embedded.is_none() && !opts.allow_setup && !admin.is_throwaway().await {
                return Err(bad_input(format!(
                    "{} has a [setup] section, which usually creates and fills tables; \
                     poolbench runs it only on its own embedded server unless you pass \
                     --allow-setup",
                    scenario.source.path.display()
                )));
            }
            admin.setup(sql).await.map_err(|e| {
                bad_input(format!(
                    "the [setup] SQL of {} failed: {}",
                    scenario.source.path.display(),
                    e.message
                ))
            })?;
        }
        let mut strategy_targets = own_targets(scenario)?;
        let mut pgbouncer = None;
        let mut pgbouncer_admin = None;
        if via_pgbouncer {
            let Some(Embedded::Postgres(server)) = &embedded else {
                return Err(bad_input(format!(
                    "a strategy of {} has via = \"pgbouncer\", which starts PgBouncer in front of \
                     poolbench's embedded server, but the run has a DSN; for a PgBouncer of \
                     your own give that strategy its `dsn` instead",
                    scenario.source.path.display()
                )));
            };
            let bouncer = PgBouncer::start(server, &scenario.pgbouncer).await?;
            if !opts.quiet {
                let p = &scenario.pgbouncer;
                crate::errln!(
                    "poolbench: embedded PgBouncer {} ready on 127.0.0.1:{} ({} pooling, \
                     default_pool_size {}, max_client_conn {}; in {})",
                    bouncer.version(),
                    bouncer.port(),
                    p.pool_mode.as_str(),
                    p.default_pool_size,
                    p.max_client_conn,
                    bouncer
                        .dir()
                        .map(|d| d.display().to_string())
                        .unwrap_or_default()
                );
            }
            for s in &scenario.strategies {
                if s.via == Some(Via::PgBouncer) {
                    strategy_targets.insert(s.name.clone(), bouncer.target().clone().into());
                }
            }
            pgbouncer_admin = Some(bouncer.admin().await?);
            pgbouncer = Some(bouncer);
        }
        let mut mix = Mix::new(&scenario.queries);
        mix.check_against(&admin).await.with_context(|| {
            format!(
                "checking the queries of {} against the server",
                scenario.source.path.display()
            )
        })?;
        let mut session = Session {
            target,
            strategy_targets,
            pgbouncer,
            pgbouncer_admin,
            embedded,
            admin,
            server,
            mix: Arc::new(mix),
            cancel,
            link: None,
        };
        session.set_network(scenario.network);
        Ok(session)
    }

    /// Puts an emulated link with these settings between poolbench and the
    /// database for the rounds that follow (None: connect directly). The
    /// admin connection never crosses it.
    pub fn set_network(&mut self, network: Option<NetworkSettings>) {
        self.link = network.map(|n| (n, Arc::new(Emulator::new(n.rtt, n.jitter))));
    }

    /// The admin connection, which also reads the server's clock for
    /// synchronised copies.
    pub fn clock(&self) -> &AnyAdmin {
        &self.admin
    }

    /// The emulated link's settings, when there is one.
    pub fn network(&self) -> Option<NetworkSettings> {
        self.link.as_ref().map(|(n, _)| *n)
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
    /// on the admin connection and `progress` told how it goes.
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
        let link = self.link.as_ref().map(|(_, link)| link);
        let sources = source::build(&strategy.kind, self.target_of(strategy), link, shards);
        let statements = if strategy.statement_cache {
            Statements::Named
        } else {
            Statements::Unnamed
        };
        // The round's own token: the service may stop this strategy alone
        // (Ctrl-C still cancels the parent, and every round).
        let stop = settings.cancel.child_token();
        let settings = &engine::Settings {
            cancel: stop.clone(),
            ..settings.clone()
        };
        let services = Requests::for_sources(sources, &self.mix, statements, &stop);
        let mut watch = Watch {
            monitor: self.admin.monitor(),
            pooler: self
                .pgbouncer_admin
                .as_ref()
                .filter(|_| strategy.via == Some(Via::PgBouncer)),
            progress,
        };
        engine::run(settings, services, &mut watch).await
    }

    /// Where `strategy` connects: its own `dsn`, or the session's target.
    pub fn target_of(&self, strategy: &Strategy) -> &Target {
        self.strategy_targets
            .get(&strategy.name)
            .unwrap_or(&self.target)
    }

    /// The strategy's own target as the header and report show it
    /// (password redacted); None when it uses the session's.
    pub fn own_target(&self, strategy: &Strategy) -> Option<String> {
        self.strategy_targets
            .get(&strategy.name)
            .map(Target::redacted)
    }

    /// The scenario's query names, in order (the report's `per_query`).
    pub fn query_names(&self) -> Vec<String> {
        self.mix.queries.iter().map(|q| q.name.clone()).collect()
    }

    /// Gives the server threads pinned for the session their server's CPUs
    /// back (`placement::release`), then stops the embedded servers, if
    /// this session started any.
    pub async fn close(self) {
        crate::placement::release();
        drop(self.admin);
        drop(self.pgbouncer_admin);
        if let Some(mut bouncer) = self.pgbouncer {
            if let Err(e) = bouncer.stop() {
                crate::errln!("poolbench: warning: stopping the embedded PgBouncer: {e:#}");
            }
        }
        if let Some(server) = self.embedded {
            server.stop().await;
        }
    }
}

/// The engine's observer in a session: the monitor counts the server's
/// backends, the caller shows progress.
struct Watch<'a> {
    monitor: AnyMonitor<'a>,
    /// PgBouncer's admin console when the strategy goes through it.
    pooler: Option<&'a Console>,
    progress: &'a mut (dyn FnMut(&Tick) + Send),
}

impl Observer for Watch<'_> {
    fn backends(&mut self) -> BoxFuture<'_, Option<u64>> {
        Box::pin(self.monitor.backends())
    }

    fn pooler(&mut self) -> BoxFuture<'_, Option<PoolerStatus>> {
        let console = self.pooler;
        Box::pin(async move { console?.pools().await })
    }

    fn progress(&mut self, tick: &Tick) {
        (self.progress)(tick);
    }
}

/// Ctrl-C or SIGTERM cancels the token: workers stop, the partial report is
/// written, the embedded server is stopped, and the command exits 130. So
/// does a stdout or stderr whose reader has gone (`crate::output`), with
/// exit code 141. A second Ctrl-C or SIGTERM does not wait for that: the
/// servers poolbench started are stopped and removed, and it exits 130 at
/// once, without a report.
pub fn cancel_on_signal() -> CancellationToken {
    use tokio::signal::unix::{signal, SignalKind};
    let cancel = CancellationToken::new();
    crate::output::cancel_on_close(cancel.clone());
    let token = cancel.clone();
    tokio::spawn(async move {
        // Listening once, for both signals: a second one that arrives
        // while the first is handled is not lost.
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        crate::errln!(
            "\npoolbench: interrupted: stopping the workers and writing the partial report \
             (again to stop at once)"
        );
        token.cancel();
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        crate::errln!(
            "\npoolbench: interrupted again: stopping the embedded servers and exiting without the report"
        );
        crate::cleanup::force_exit(130);
    });
    cancel
}
