//! `poolbench watch`: the proxy between an application and PostgreSQL (the
//! `--to` server, or the embedded one started behind it), the lines the
//! application needs to reach it, the watch until Ctrl-C, SIGTERM or
//! --duration, then a run-shaped report of one strategy, "observed", and
//! the verdict in the application's terms.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use tokio_util::sync::CancellationToken;

use crate::backend::postgres::{server_facts, Target};
use crate::cli::WatchArgs;
use crate::embedded::{EmbeddedOptions, EmbeddedServer};
use crate::error::{self, bad_input, ResultExt};
use crate::metrics::{summarize_phases, Phase, Summary};
use crate::net::Emulator;
use crate::report::{
    self, round, Counts, Kind, ObservedReport, Report, RoundStats, RoundTripsReport, Server,
    StrategyReport, TimelineRow,
};
use crate::view::export::{self, Exporter};
use crate::view::term::watch as term;
use crate::watch::{Observed, Proxy, ProxyTls};
use crate::Outcome;

/// The files a watch writes: run's (report.json, summary.csv, timeline.csv,
/// report.html), without hlog/.
fn files(no_html: bool) -> &'static [&'static dyn Exporter<Report>] {
    let all = &super::run::FILES;
    if no_html {
        &all[..3]
    } else {
        all
    }
}

/// The name of the strategy (and of the results directory's prefix).
const NAME: &str = "observed";

/// How often the report so far is written while watching.
const SAVE_EVERY: Duration = Duration::from_secs(10);

/// How long the report's server facts may take to read.
const FACTS_LIMIT: Duration = Duration::from_secs(10);

pub async fn run(args: &WatchArgs) -> Result<Outcome> {
    use tokio::signal::unix::{signal, SignalKind};

    let listen: SocketAddr = match &args.listen {
        Some(text) => text.parse().map_err(|e| {
            bad_input(format!(
                "--listen {text}: {e} (expected an address and port, e.g. 127.0.0.1:6432)"
            ))
        })?,
        None => SocketAddr::from(([127, 0, 0, 1], 0)),
    };
    let target = match &args.to {
        Some(dsn) => Some(to_target(dsn)?),
        None => None,
    };
    let mut sigterm = signal(SignalKind::terminate())
        .context("listening for SIGTERM")
        .environment()?;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let closed = CancellationToken::new();
    crate::output::cancel_on_close(closed.clone());

    let started_at = report::now_rfc3339();
    let out_dir = export::prepare_dir(
        args.out.as_deref(),
        "watch",
        &started_at,
        args.force,
        files(args.no_html),
        &[],
    )?;
    // The proxy's certificate: the embedded server gets the same one, so
    // one CA (PGSSLROOTCERT) verifies both.
    let certificate = crate::embedded::postgres::generate_certificate()?;
    let (target, mut embedded, ca_file) = match target {
        Some(target) => {
            let ca = tempfile::Builder::new()
                .prefix("poolbench-watch-ca-")
                .suffix(".pem")
                .tempfile()
                .context("writing the proxy's CA certificate")
                .environment()?;
            std::fs::write(ca.path(), &certificate.ca_pem)
                .context("writing the proxy's CA certificate")
                .environment()?;
            (target, None, CaFile::Temporary(ca))
        }
        None => {
            let opts = EmbeddedOptions {
                certificate: Some(certificate.clone()),
                ..EmbeddedOptions::default()
            };
            let server = tokio::select! {
                server = EmbeddedServer::start(&opts) => server?,
                _ = &mut ctrl_c => return Ok(Outcome::Interrupted),
                _ = sigterm.recv() => return Ok(Outcome::Interrupted),
            };
            let ca = server.ca_file().map(CaFile::Server).unwrap_or(CaFile::None);
            (server.target().clone(), Some(server), ca)
        }
    };
    let link = args.rtt.map(|rtt| Emulator::new(rtt, Duration::ZERO));
    let proxy = Proxy::bind(
        listen,
        &target,
        link,
        Some(ProxyTls {
            cert_pem: &certificate.cert_pem,
            key_pem: &certificate.key_pem,
        }),
    )
    .await?;
    let addr = proxy.local_addr()?;
    let config = target.config();
    let user = config.get_user().unwrap_or("postgres");
    let dbname = config.get_dbname().unwrap_or(user);
    let password = embedded.as_ref().map(EmbeddedServer::password);
    // Listening on every address (0.0.0.0): this machine's clients reach
    // it at 127.0.0.1, a name its certificate carries.
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    crate::out!(
        "{}",
        term::connection_lines(&term::Lines {
            host: &host,
            port: addr.port(),
            user,
            password,
            dbname,
            ca_file: ca_file.path(),
            channel_binding_off: proxy.upstream_encrypts(),
        })
    );
    // Read beside the watch: the proxy accepts from the start.
    let mut facts_task = tokio::spawn({
        let target = target.clone();
        let auth = embedded.as_ref().map(|s| s.options().auth.as_str());
        async move {
            let read = async {
                let client = target.connect().await.ok()?;
                Some(server_facts(&client, &target, auth).await)
            };
            tokio::time::timeout(FACTS_LIMIT, read).await.ok().flatten()
        }
    });
    let mut facts: Option<Server> = None;
    let mut facts_pending = true;
    crate::errln!(
        "{}",
        term::watching(&addr, &target.redacted(), args.rtt, args.duration)
    );

    let stop = CancellationToken::new();
    let shape = Shape {
        started_at,
        listen: addr,
        rtt: args.rtt,
        duration: args.duration,
        from: SystemTime::now(),
    };
    let fallback = || Server {
        engine: "postgresql".into(),
        version: proxy.server_version().unwrap_or_else(|| "unknown".into()),
        auth_method: "unknown (the application's, relayed)".into(),
        ssl: proxy.upstream_encrypts(),
        max_connections: 0,
        embedded: false,
        dsn: target.redacted(),
        source: "--to".into(),
    };
    let mut save_failed = false;
    let ((), ended) = tokio::join!(proxy.run(&stop), async {
        let limit = async {
            match args.duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(limit);
        let mut check = tokio::time::interval(Duration::from_millis(500));
        let mut save =
            tokio::time::interval_at(tokio::time::Instant::now() + SAVE_EVERY, SAVE_EVERY);
        let ended = loop {
            tokio::select! {
                done = &mut facts_task, if facts_pending => {
                    facts_pending = false;
                    facts = done.ok().flatten();
                }
                _ = save.tick() => {
                    // Until the last write the files say the watch is
                    // unfinished: a kill leaves them so.
                    let server = facts.clone().unwrap_or_else(fallback);
                    let partial = shape.report(server, &proxy.tally().snapshot(), true);
                    if let Err(e) = export::write_all(&out_dir, &partial, files(args.no_html)) {
                        if !std::mem::replace(&mut save_failed, true) {
                            crate::errln!("poolbench: writing the report so far: {e:#}");
                        }
                    }
                }
                () = &mut limit => break End::Duration,
                _ = &mut ctrl_c => break End::Signal,
                _ = sigterm.recv() => break End::Signal,
                () = closed.cancelled() => break End::Signal,
                _ = check.tick() => {
                    if let Some(status) = embedded.as_mut().and_then(EmbeddedServer::try_wait) {
                        break End::ServerDied(status);
                    }
                }
            }
        };
        stop.cancel();
        ended
    });
    if facts_pending {
        facts_task.abort();
    }
    let server = facts.unwrap_or_else(fallback);
    let report = shape.report(
        server,
        &proxy.tally().snapshot(),
        matches!(ended, End::Signal),
    );
    export::write_all(&out_dir, &report, files(args.no_html))?;
    crate::out!("{}", term::verdict(&report));
    if args.no_html {
        crate::outln!("reports: {}", out_dir.display());
    } else {
        crate::outln!(
            "report: {} (report.json and CSVs beside it)",
            out_dir.join(super::run::FILES[3].file_name()).display()
        );
    }
    if let End::ServerDied(status) = ended {
        let tail = embedded
            .as_ref()
            .map(|s| s.log_tail(crate::embedded::LOG_TAIL_LINES))
            .unwrap_or_default();
        return Err(error::environment(format!(
            "the embedded server exited unexpectedly ({status}); the report so far is written; \
             the end of its log:\n{tail}"
        )));
    }
    if let Some(server) = embedded.take() {
        server.stop().await?;
    }
    drop(ca_file);
    Ok(match ended {
        End::Signal => Outcome::Interrupted,
        _ => Outcome::Success,
    })
}

/// The `--to` target, its errors naming `--to` (libpq's parser names the
/// flag it is given by as `--dsn`), of the kind the parser gave them.
fn to_target(dsn: &str) -> Result<Target> {
    Target::parse(dsn, "--to")
        .map(|t| t.with_source("--to"))
        .map_err(|e| {
            let message = format!("{e:#}").replace("in --dsn: ", "in --to: ");
            match error::kind_of(&e) {
                Some(error::Kind::Environment) => error::environment(message),
                _ => bad_input(message),
            }
        })
}

/// What a watch's report says besides what it observed.
struct Shape {
    started_at: String,
    listen: SocketAddr,
    rtt: Option<Duration>,
    duration: Option<Duration>,
    /// When the proxy began accepting.
    from: SystemTime,
}

impl Shape {
    fn report(&self, server: Server, observed: &Observed, interrupted: bool) -> Report {
        Report {
            schema_version: report::SCHEMA_VERSION,
            tool: report::Tool::current(),
            started_at: self.started_at.clone(),
            interrupted,
            // The application's threads and placement are its own: none
            // recorded, so compare neither refuses nor matches on them.
            conditions: None,
            host: report::Host::current(),
            server,
            scenario: report::ScenarioInfo {
                name: "watch".into(),
                path: String::new(),
                sha256: String::new(),
                resolved: serde_json::json!({
                    "listen": self.listen.to_string(),
                    "rtt_ms": self.rtt.map(|d| d.as_secs_f64() * 1000.0),
                    "duration_s": self.duration.map(|d| d.as_secs_f64()),
                }),
            },
            network: self.rtt.map(|rtt| report::Network {
                rtt_ms: rtt.as_secs_f64() * 1000.0,
                jitter_ms: 0.0,
            }),
            strategies: vec![strategy(observed, self.from)],
            comparison: Vec::new(),
            explanation: Vec::new(),
            copies: report::Copies::default(),
        }
    }
}

/// Why the watch ended.
enum End {
    Duration,
    Signal,
    ServerDied(std::process::ExitStatus),
}

/// The CA file printed as PGSSLROOTCERT: the embedded server's, or one
/// written for this watch (removed when it ends).
enum CaFile {
    Server(PathBuf),
    Temporary(tempfile::NamedTempFile),
    None,
}

impl CaFile {
    fn path(&self) -> Option<&std::path::Path> {
        match self {
            CaFile::Server(p) => Some(p),
            CaFile::Temporary(f) => Some(f.path()),
            CaFile::None => None,
        }
    }
}

/// The strategy "observed" of what the proxy saw: transactions as its
/// requests (each a `total`), each round of statements a `query`, each
/// connection's setup a `connect`, and the timeline by second.
fn strategy(o: &Observed, from: SystemTime) -> StrategyReport {
    let measured_s = o.elapsed_s;
    let timeline: Vec<TimelineRow> = o
        .seconds
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let (p50_us, p99_us) = if s.total.is_empty() {
                (None, None)
            } else {
                (
                    Some(s.total.value_at_quantile(0.5)),
                    Some(s.total.value_at_quantile(0.99)),
                )
            };
            TimelineRow {
                round: 1,
                second: i as u64,
                rps: s.row.transactions as f64,
                errors: s.row.errors,
                p50_us,
                p99_us,
                pool_size: None,
                pool_available: None,
                pool_waiting: None,
                offered: None,
                achieved: None,
                expired: None,
                churn: Default::default(),
                server_backends: None,
                pgbouncer: None,
                hdr: crate::metrics::packed::Hdr::of(&s.total)
                    .map(|h| (Phase::Total.as_str().to_string(), h))
                    .into_iter()
                    .collect(),
                in_flight: None,
                queued: None,
            }
        })
        .collect();
    let (p50_us, p99_us) = Summary::quantiles(o.phases.get(Phase::Total));
    let throughput_rps = if measured_s > 0.0 {
        round(o.transactions as f64 / measured_s, 1)
    } else {
        0.0
    };
    let busiest = o
        .seconds
        .iter()
        .map(|s| s.busy_us as f64 / 1e6)
        .fold(0.0, f64::max);
    let (setup_ms, statements_ms) = (o.setup_us as f64 / 1000.0, o.query_us as f64 / 1000.0);
    StrategyReport {
        name: NAME.into(),
        kind: Kind::Observed,
        generator_saturated: None,
        generator_lag_max_us: None,
        // The application's pool is its own: its replacements are not seen.
        storms: Vec::new(),
        expired: None,
        settings: serde_json::json!({}),
        requests: o.transactions,
        shards: 1,
        target: None,
        max_server_connections: None,
        retries: 0,
        errors: o.errors.counts.clone(),
        startup_errors: Default::default(),
        error_samples: o.errors.samples.clone(),
        throughput_rps,
        offered_rate: None,
        achieved_rate: None,
        connections_opened: o.opened,
        startup_ms: 0.0,
        measured_s: round(measured_s, 3),
        phases: summarize_phases(&o.phases),
        round_trips: o
            .setup_round_trips
            .as_ref()
            .and_then(Counts::of)
            .map(|c| RoundTripsReport {
                connect: Some(c),
                request: None,
            }),
        per_query: Default::default(),
        rounds: vec![RoundStats {
            round: 1,
            requests: o.transactions,
            errors: o.errors.total(),
            throughput_rps,
            p50_us,
            p99_us,
            started_unix_ms: from
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        }],
        timeline,
        // The application's CPU is its own: the proxy cannot see it.
        setup_cpu: Default::default(),
        server_cpu_absent: None,
        transactions: Some(o.transactions),
        statements: Some(o.statements),
        observed: Some(ObservedReport {
            connections_per_transaction: if o.transactions > 0 {
                round(o.opened as f64 / o.transactions as f64, 3)
            } else {
                0.0
            },
            setup_share: if setup_ms + statements_ms > 0.0 {
                round(setup_ms / (setup_ms + statements_ms), 4)
            } else {
                0.0
            },
            setup_ms: round(setup_ms, 3),
            statements_ms: round(statements_ms, 3),
            peak_concurrent_transactions: o.peak_in_transaction,
            busiest_second_concurrency: round(busiest, 2),
            ended: o
                .ended
                .iter()
                .map(|(how, n)| (how.as_str().to_string(), *n))
                .collect(),
            cancel_requests: o.cancels,
            seconds: o.seconds.iter().map(|s| s.row.clone()).collect(),
        }),
    }
}
