//! PostgreSQL: where the database is and how to reach it: DSN parsing, password
//! redaction, the TLS connector and the one dialer every connection goes
//! through (`connect.rs`: measured connections, timed step by step, and
//! poolbench's own, by [`Target::connect`]).
//!
//! Connection strings follow libpq (`conninfo`, `resolve`, `service`,
//! `pgpass`, `tls`); the rest of poolbench sees only [`Target`].

pub mod admin;
pub mod auth;
pub mod conn;
pub mod connect;
pub mod conninfo;
pub mod cpu;
pub mod durations;
pub mod environment;
pub mod pgpass;
pub mod resolve;
pub mod service;
pub mod tls;
pub mod values;
pub mod wire;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::{Client, Config, Statement};

use crate::error::ResultExt;
use crate::metrics::{ErrorClass, RequestError};
use crate::report::Server;

/// Bounds how long one connection attempt may take, so an unreachable host
/// fails a request (or the start-up check) instead of hanging it.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A database to connect to. Holds the password, but neither `Debug` nor
/// [`Target::redacted`] ever shows it.
#[derive(Clone)]
pub struct Target {
    config: Config,
    tls: tls::Connector,
    details: Arc<Details>,
}

/// What a target was resolved from, for display and error messages.
#[derive(Debug, Clone)]
pub struct Details {
    /// libpq's sslmode (the driver knows only disable/prefer/require).
    pub ssl_mode: tls::SslMode,
    /// The trusted roots when the certificate is verified: a file or "system".
    pub rootcert: Option<String>,
    pub client_cert: Option<PathBuf>,
    /// The password file the password came from.
    pub passfile: Option<PathBuf>,
    /// Where the target came from: `--dsn`, `DATABASE_URL`, `PGHOST,PGPORT`…
    pub source: String,
    /// Where the server's backends run: poolbench's embedded server, this
    /// machine (the DSN's addresses are), or another host.
    pub server_view: cpu::ServerView,
    /// PostgreSQL >= 18 with `log_connections = setup_durations`, its log
    /// readable (the embedded server's): each setup's logged durations.
    pub setup_log: Option<Arc<durations::SetupDurations>>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Target").field(&self.redacted()).finish()
    }
}

impl Target {
    /// Parses a libpq URL (`postgres://user:pw@host:port/db?sslmode=require`)
    /// or key=value string (`host=… user=… password=…`) and applies libpq's
    /// defaults (service file, `PG*` variables, password file). `origin`
    /// names where it came from (`--dsn`, `DATABASE_URL`…) for errors.
    pub fn parse(dsn: &str, origin: &str) -> Result<Target> {
        let source = match origin {
            "DATABASE_URL" => resolve::Source::DatabaseUrl,
            _ => resolve::Source::Flag,
        };
        resolve::resolve(dsn, source, &environment::ProcessEnvironment)
    }

    /// A target from an already built configuration, encrypted without
    /// verification when its sslmode asks for TLS: the embedded server.
    pub fn from_config(mut config: Config) -> Result<Target> {
        if config.get_application_name().is_none() {
            config.application_name("poolbench");
        }
        let ssl_mode = match config.get_ssl_mode() {
            SslMode::Disable => tls::SslMode::Disable,
            SslMode::Require => tls::SslMode::Require,
            _ => tls::SslMode::Prefer,
        };
        let server_view = server_view_of(&config);
        Ok(Target::with_details(
            config,
            tls::unverified()?,
            Details {
                ssl_mode,
                rootcert: None,
                client_cert: None,
                passfile: None,
                source: "embedded".into(),
                server_view,
                setup_log: None,
            },
        ))
    }

    pub fn with_details(config: Config, tls: tls::Connector, details: Details) -> Target {
        Target {
            config,
            tls,
            details: Arc::new(details),
        }
    }

    /// The same target, said to come from `source` (`--embedded`).
    pub fn with_source(mut self, source: &str) -> Target {
        Arc::make_mut(&mut self.details).source = source.to_string();
        self
    }

    /// The same target, its server's backends said to run on this machine
    /// (poolbench's embedded server): their CPU time is read at each setup.
    pub fn with_visible_server(mut self) -> Target {
        Arc::make_mut(&mut self.details).server_view = cpu::ServerView::Embedded;
        self
    }

    /// The same target, its server logging each setup's durations to `log`
    /// (PostgreSQL >= 18's `log_connections = setup_durations`).
    pub fn with_setup_log(mut self, log: PathBuf) -> Target {
        Arc::make_mut(&mut self.details).setup_log =
            Some(Arc::new(durations::SetupDurations::new(log)));
        self
    }

    /// Where the server's backends run, as poolbench can see them.
    pub fn server_view(&self) -> cpu::ServerView {
        self.details.server_view
    }

    /// Why no setup of this target had its server's CPU read, in words for
    /// the report.
    pub fn server_cpu_absent(&self) -> String {
        match self.details.server_view {
            cpu::ServerView::Remote => {
                let hosts: Vec<String> = self
                    .config
                    .get_hosts()
                    .iter()
                    .map(|h| match h {
                        Host::Tcp(name) => name.clone(),
                        Host::Unix(path) => path.display().to_string(),
                    })
                    .collect();
                format!(
                    "the DSN's host {} is not a loopback address or a Unix-domain socket: \
                     poolbench does not read another host's processes",
                    hosts.join(",")
                )
            }
            cpu::ServerView::Local | cpu::ServerView::Embedded => {
                "no backend was found among this machine's processes by its pid and this \
                 connection's client port (a server in a container or another PID namespace, \
                 or behind a pooler or proxy)"
                    .to_string()
            }
        }
    }

    /// Where the target came from: `--dsn`, `[database].dsn`,
    /// `DATABASE_URL`, the libpq variables set (`PGHOST,PGPORT`),
    /// `embedded` or `--embedded`.
    pub fn source(&self) -> &str {
        &self.details.source
    }

    /// The password file that supplied the password, if one did.
    pub fn passfile(&self) -> Option<&Path> {
        self.details.passfile.as_deref()
    }

    pub fn details(&self) -> &Details {
        &self.details
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether every host it names is this machine's loopback address.
    pub fn is_loopback(&self) -> bool {
        let hosts = self.config.get_hosts();
        !hosts.is_empty()
            && hosts.iter().all(|h| match h {
                Host::Tcp(name) => is_loopback_name(name),
                _ => false,
            })
    }

    pub fn tls(&self) -> &tls::Connector {
        &self.tls
    }

    /// libpq's sslmode: disable, allow, prefer, require, verify-ca or
    /// verify-full. With prefer and allow the server's `pg_stat_ssl` says
    /// whether a connection is encrypted.
    pub fn ssl_mode(&self) -> &'static str {
        self.details.ssl_mode.as_str()
    }

    /// The DSN as a URL without its password: safe to print and to store,
    /// and valid for libpq (a Unix-domain socket goes in `?host=`).
    pub fn redacted(&self) -> String {
        let c = &self.config;
        let user = c.get_user().unwrap_or("");
        let db = c.get_dbname().unwrap_or(user);
        let password = if c.get_password().is_some() {
            ":****"
        } else {
            ""
        };
        let ports = c.get_ports();
        let port = |i: usize| ports.get(i).or(ports.first()).copied().unwrap_or(5432);
        let mut authority = Vec::new();
        let mut sockets = Vec::new();
        for (i, host) in c.get_hosts().iter().enumerate() {
            match host {
                Host::Tcp(h) if h.contains(':') => authority.push(format!("[{h}]:{}", port(i))),
                Host::Tcp(h) => authority.push(format!("{}:{}", encode(h), port(i))),
                Host::Unix(p) => sockets.push(p.display().to_string()),
            }
        }
        let mut query = Vec::new();
        if !sockets.is_empty() {
            // A URL has no place for a path in its host part; libpq takes
            // the socket directory (and the port naming the socket file)
            // as parameters.
            query.push(format!("host={}", encode(&sockets.join(","))));
            if authority.is_empty() {
                query.push(format!("port={}", port(0)));
            }
        }
        let addrs = c.get_hostaddrs();
        if !addrs.is_empty() {
            let addrs: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
            query.push(format!("hostaddr={}", addrs.join(",")));
        }
        query.push(format!("sslmode={}", self.ssl_mode()));
        if let Some(root) = &self.details.rootcert {
            query.push(format!("sslrootcert={}", encode(root)));
        }
        if let Some(cert) = &self.details.client_cert {
            query.push(format!("sslcert={}", encode(&cert.display().to_string())));
        }
        format!(
            "postgres://{}{password}@{}/{}?{}",
            encode(user),
            authority.join(","),
            encode(db),
            query.join("&")
        )
    }

    /// Opens one of poolbench's own connections (not measured) and spawns
    /// the task that drives it. The task ends when the client is dropped.
    pub async fn connect(&self) -> Result<Client, connect::ConnectError> {
        connect::own(self, None).await.map(|own| own.client)
    }

    /// How long a whole connection attempt may take. tokio-postgres's own
    /// `connect_timeout` bounds only the TCP connect, not TLS and the
    /// startup exchange, so a server that accepts and then says nothing
    /// would hang a connect forever without this.
    pub fn connect_timeout(&self) -> Duration {
        self.config
            .get_connect_timeout()
            .copied()
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT)
    }

    /// Connects once to check the server is reachable, for a clear error
    /// (exit 3) before any measurement starts.
    pub async fn check_reachable(&self) -> Result<Client> {
        let limit = self.connect_timeout();
        let result = match tokio::time::timeout(limit, self.connect()).await {
            Ok(r) => r.map_err(|e| anyhow::anyhow!("{}", self.explain(&e))),
            Err(_) => Err(anyhow::anyhow!(
                "no answer within the connect timeout ({}; set connect_timeout in the DSN to change it)",
                humantime::format_duration(limit)
            )),
        };
        result
            .with_context(|| format!("cannot connect to {}", self.redacted()))
            .environment()
    }

    /// A connection error with what libpq would add: where the password
    /// came from, and what a failed certificate check was checking.
    fn explain(&self, e: &connect::ConnectError) -> String {
        let mut text = e.to_string();
        let auth_failed = e.is_auth_failure();
        if let (true, Some(file)) = (auth_failed, &self.details.passfile) {
            text.push_str(&format!(
                "\npassword retrieved from file \"{}\"",
                file.display()
            ));
        }
        if text.contains("password missing") {
            text.push_str(
                "\n(no password given: not in the DSN, PGPASSWORD, a service, or a matching \
                 line of the password file, ~/.pgpass or PGPASSFILE)",
            );
        }
        let refused = match e {
            connect::ConnectError::Postgres(e) => tls::verify_failure(e),
            _ => None,
        };
        if let Some(reason) = refused {
            text = format!("the server's TLS certificate failed verification: {reason}");
            let roots = match self.details.rootcert.as_deref() {
                Some("system") | None => "the system's trusted roots".to_string(),
                Some(file) => file.to_string(),
            };
            let host = match self.config.get_hosts().first() {
                Some(Host::Tcp(h)) => h.clone(),
                _ => String::new(),
            };
            text.push_str(&match self.details.ssl_mode {
                tls::SslMode::VerifyFull => format!(
                    "\n(sslmode=verify-full: the server's certificate must be signed by a CA in \
                     {roots} and name the host \"{host}\")"
                ),
                mode => format!(
                    "\n(sslmode={}: the server's certificate must be signed by a CA in {roots})",
                    mode.as_str()
                ),
            });
        }
        text
    }
}

/// "localhost" or a loopback address.
fn is_loopback_name(name: &str) -> bool {
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Where a configuration's server runs: on this machine when every address
/// it may connect to is (a loopback address, `localhost` or a Unix-domain
/// socket; `hostaddr` over `host`), another host otherwise.
pub fn server_view_of(config: &Config) -> cpu::ServerView {
    let hosts = config.get_hosts();
    let addrs = config.get_hostaddrs();
    let local = if addrs.is_empty() {
        !hosts.is_empty()
            && hosts.iter().all(|h| match h {
                Host::Tcp(name) => is_loopback_name(name),
                Host::Unix(_) => true,
            })
    } else {
        addrs.iter().all(|ip| ip.is_loopback())
    };
    if local {
        cpu::ServerView::Local
    } else {
        cpu::ServerView::Remote
    }
}

/// Percent-encodes what a URL part cannot hold as is.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A one-line description of a tokio-postgres error with the server's
/// SQLSTATE and message when there is one, and the I/O cause otherwise.
pub fn describe_pg_error(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} ({}): {}", db.severity(), db.code().code(), db.message());
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// What the report says of the server: version, max_connections, whether
/// this connection uses TLS, where the target came from; `auth` is the
/// method when poolbench knows it (its embedded server), and the server is
/// embedded exactly then; otherwise a probe connection observes it.
pub async fn server_facts(client: &Client, target: &Target, auth: Option<&str>) -> Server {
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
    Server {
        engine: "postgresql".into(),
        version,
        auth_method: match auth {
            Some(known) => known.to_string(),
            None => auth::method(target).await,
        },
        ssl,
        max_connections,
        embedded: auth.is_some(),
        dsn: target.redacted(),
        source: target.source().to_string(),
    }
}

/// The uncounted monitor connection, as the engine's once-a-second count of
/// the server's client backends. When the server restarts under it, it
/// opens another (uncounted too) for the seconds after, in the background:
/// a connection (TLS, SCRAM) on a loaded machine can take longer than a
/// sample may wait, and the collector's second must not wait for it.
///
/// Its query is prepared once per connection and only executed each
/// second: parsing, rewriting and planning `pg_stat_activity` (a view
/// joining two catalogs) were most of what its backend spent, on the CPUs
/// the measured requests run on (docs/performance.md, "what keeps open
/// loop's workers off their CPUs").
pub struct Monitor<'a> {
    client: &'a Client,
    target: &'a Target,
    reconnected: Option<Client>,
    reconnecting: Option<tokio::task::JoinHandle<Option<Client>>>,
    /// The sample's statement on the client samples are taken on, and
    /// whether it is the placing one (None until its first sample, and
    /// again after a reconnection).
    statement: Option<(bool, Statement)>,
}

/// The server's client backends other than the monitor's own: the pids and
/// ports, to pin each new one to its client thread's CPU (`placement`).
const BACKENDS_SQL: &str = "SELECT pid, coalesce(client_port, -1) FROM pg_stat_activity \
     WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()";

/// The same backends counted, where none is placed.
const COUNT_SQL: &str = "SELECT count(*) FROM pg_stat_activity \
     WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()";

impl<'a> Monitor<'a> {
    pub fn new(client: &'a Client, target: &'a Target) -> Monitor<'a> {
        Monitor {
            client,
            target,
            reconnected: None,
            reconnecting: None,
            statement: None,
        }
    }

    /// Client backends on the server, the monitor's own excluded; None when
    /// the server does not answer within half a second, or while the
    /// monitor is connecting again.
    pub async fn backends(&mut self) -> Option<u64> {
        if self.current().is_closed() {
            // A finished attempt is taken up at once, and a failed one
            // tried again at once: a sample every second, not every other.
            if let Some(task) = self.reconnecting.take_if(|t| t.is_finished()) {
                if let Some(client) = task.await.ok().flatten() {
                    self.reconnected = Some(client);
                    // A statement is its connection's own.
                    self.statement = None;
                }
            }
            if self.current().is_closed() {
                if self.reconnecting.is_none() {
                    let target = self.target.clone();
                    self.reconnecting = Some(tokio::spawn(async move {
                        let limit = target.connect_timeout();
                        tokio::time::timeout(limit, target.connect())
                            .await
                            .ok()?
                            .ok()
                    }));
                }
                return None;
            }
        }
        let placing = crate::placement::enabled();
        let client = self.reconnected.as_ref().unwrap_or(self.client);
        let cached = &mut self.statement;
        let sample = async {
            let statement = match cached {
                Some((was_placing, s)) if *was_placing == placing => s.clone(),
                _ => {
                    let sql = if placing { BACKENDS_SQL } else { COUNT_SQL };
                    cached
                        .insert((placing, client.prepare(sql).await?))
                        .1
                        .clone()
                }
            };
            client.query(&statement, &[]).await
        };
        let rows = match tokio::time::timeout(MONITOR_TIMEOUT, sample).await {
            Ok(Ok(rows)) => rows,
            _ => {
                // Prepared again at the next sample, as every sample was
                // before: whatever failed may have been the statement.
                self.statement = None;
                return None;
            }
        };
        if placing {
            // The backends themselves, to pin each new one to its client
            // thread's CPU (`placement`).
            let backends: Vec<(i32, u16)> = rows
                .iter()
                .filter_map(|r| {
                    let pid = r.try_get::<_, i32>(0).ok()?;
                    let port = u16::try_from(r.try_get::<_, i32>(1).ok()?).ok()?;
                    Some((pid, port))
                })
                .collect();
            crate::placement::place(&backends);
            return Some(rows.len() as u64);
        }
        rows.first()
            .and_then(|row| row.try_get::<_, i64>(0).ok())
            .map(|n| n as u64)
    }
}

impl Monitor<'_> {
    /// The client samples are taken on: the last one reconnected, else the
    /// first.
    fn current(&self) -> &Client {
        self.reconnected.as_ref().unwrap_or(self.client)
    }
}

impl Drop for Monitor<'_> {
    fn drop(&mut self) {
        if let Some(task) = self.reconnecting.take() {
            task.abort();
        }
    }
}

/// How long the monitor waits for the server before it skips a sample.
const MONITOR_TIMEOUT: Duration = Duration::from_millis(500);

/// The class of a tokio-postgres error from a connect or a query.
pub fn error_class(e: &tokio_postgres::Error) -> ErrorClass {
    if let Some(db) = e.as_db_error() {
        return sqlstate_class(db.code().code());
    }
    if e.is_closed() {
        return ErrorClass::ConnectionLost;
    }
    if let Some(io) = io_source(e) {
        return io_error_class(io);
    }
    if e.to_string().starts_with("timeout waiting for server") {
        return ErrorClass::ConnectTimeout;
    }
    ErrorClass::Other
}

/// The class of an error the server answered with, by its SQLSTATE.
pub fn sqlstate_class(code: &str) -> ErrorClass {
    match code {
        "53300" => ErrorClass::TooManyConnections,
        "28P01" | "28000" => ErrorClass::AuthFailed,
        "57P01" | "57P02" | "57P03" => ErrorClass::ServerShutdown,
        code => ErrorClass::Query(code.to_string()),
    }
}

/// An error of a session's call as a request's error: its class (as
/// [`error_class`] classes the driver's), description and SQLSTATE.
pub fn wire_request_error(e: &wire::WireError) -> RequestError {
    let class = match e {
        wire::WireError::Db(db) => sqlstate_class(&db.code),
        wire::WireError::Io(io) => io_error_class(io),
        wire::WireError::Closed | wire::WireError::Protocol(_) => ErrorClass::ConnectionLost,
        wire::WireError::Encode(_) => ErrorClass::Other,
    };
    let error = RequestError::new(class, e.to_string());
    match e {
        wire::WireError::Db(db) => error.with_sqlstate(&db.code),
        _ => error,
    }
}

/// The class of an I/O error reaching or talking to the server.
pub fn io_error_class(e: &io::Error) -> ErrorClass {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => ErrorClass::ConnectionRefused,
        io::ErrorKind::TimedOut => ErrorClass::ConnectTimeout,
        _ => ErrorClass::ConnectionLost,
    }
}

/// A tokio-postgres error as a request's error: its class, description
/// and SQLSTATE.
pub fn request_error(e: &tokio_postgres::Error) -> RequestError {
    let error = RequestError::new(error_class(e), describe_pg_error(e));
    match e.code() {
        Some(code) => error.with_sqlstate(code.code()),
        None => error,
    }
}

fn io_source<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a io::Error> {
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<io::Error>() {
            return Some(io);
        }
        source = s.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::environment::fake::FakeEnvironment;
    use super::resolve::{resolve, Source};
    use super::*;

    fn parse(dsn: &str) -> Result<Target> {
        resolve(dsn, Source::Flag, &FakeEnvironment::new(&[]))
    }

    #[test]
    fn url_password_is_redacted() {
        let t = parse("postgres://app:s3cr3t@db.internal:6543/shop?sslmode=require").unwrap();
        assert_eq!(
            t.redacted(),
            "postgres://app:****@db.internal:6543/shop?sslmode=require"
        );
        assert!(!format!("{t:?}").contains("s3cr3t"));
    }

    #[test]
    fn key_value_dsn_is_redacted() {
        let t = parse("host=127.0.0.1 port=5433 user=bob password=hunter2 dbname=x").unwrap();
        assert_eq!(
            t.redacted(),
            "postgres://bob:****@127.0.0.1:5433/x?sslmode=prefer"
        );
    }

    #[test]
    fn redacted_sockets_and_lists_are_valid_dsns() {
        for (dsn, shown) in [
            (
                "host=/tmp/sock port=5433 user=app password=pw dbname=db",
                "postgres://app:****@/db?host=/tmp/sock&port=5433&sslmode=prefer",
            ),
            (
                "postgres://u@h1:1,[::1]:2/d%20b?sslmode=disable",
                "postgres://u@h1:1,[::1]:2/d%20b?sslmode=disable",
            ),
            (
                "host=db.internal hostaddr=10.0.0.1 user=u dbname=d",
                "postgres://u@db.internal:5432/d?hostaddr=10.0.0.1&sslmode=prefer",
            ),
        ] {
            let t = parse(dsn).unwrap();
            assert_eq!(t.redacted(), shown);
            // The display parses back to the same place.
            let again = parse(&t.redacted()).unwrap();
            assert_eq!(again.config().get_hosts(), t.config().get_hosts());
            assert_eq!(again.config().get_ports(), t.config().get_ports());
            assert_eq!(again.config().get_dbname(), t.config().get_dbname());
            assert_eq!(again.config().get_user(), t.config().get_user());
        }
    }

    #[test]
    fn malformed_dsn_is_bad_input_without_the_secret() {
        let err = parse("host=x password=hunter2 sslmode=sometimes").unwrap_err();
        assert_eq!(
            crate::error::kind_of(&err),
            Some(crate::error::Kind::BadInput)
        );
        let text = format!("{err:#}");
        assert!(text.contains("--dsn"), "{text}");
        assert!(text.contains("sslmode"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}
