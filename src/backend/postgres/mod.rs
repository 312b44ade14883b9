//! PostgreSQL: where the database is and how to reach it: DSN parsing, password
//! redaction, the TLS connector and the one `connect` every part uses.

use std::io;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result};
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use postgres_openssl::MakeTlsConnector;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::{Client, Config};

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
    tls: MakeTlsConnector,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Target").field(&self.redacted()).finish()
    }
}

impl Target {
    /// Parses a libpq URL (`postgres://user:pw@host:port/db?sslmode=require`)
    /// or key=value string (`host=… user=… password=…`). `origin` names where
    /// it came from (`--dsn`, `DATABASE_URL`, a scenario file) for the error.
    pub fn parse(dsn: &str, origin: &str) -> Result<Target> {
        // The parser's messages name options, never values, so they cannot
        // leak a password; the DSN itself is never echoed.
        let mut config = Config::from_str(dsn)
            .map_err(|e| anyhow::anyhow!("invalid DSN in {origin}: {e}"))
            .bad_input()?;
        if config.get_hosts().is_empty() {
            config.host("localhost");
        }
        if config.get_user().is_none() {
            let user = std::env::var("USER").unwrap_or_else(|_| "postgres".to_string());
            config.user(user);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
        }
        Target::from_config(config)
    }

    /// A target from an already built configuration.
    pub fn from_config(mut config: Config) -> Result<Target> {
        if config.get_application_name().is_none() {
            config.application_name("poolbench");
        }
        Ok(Target {
            config,
            tls: tls_connector()?,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn tls(&self) -> &MakeTlsConnector {
        &self.tls
    }

    /// Whether connections use TLS (`sslmode=require`); `prefer` may or may
    /// not, and the server's `pg_stat_ssl` says which.
    pub fn ssl_mode(&self) -> &'static str {
        match self.config.get_ssl_mode() {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            _ => "other",
        }
    }

    /// The DSN as a URL without its password: safe to print and to store.
    pub fn redacted(&self) -> String {
        let c = &self.config;
        let user = c.get_user().unwrap_or("");
        let host = match c.get_hosts().first() {
            Some(Host::Tcp(h)) if h.contains(':') => format!("[{h}]"),
            Some(Host::Tcp(h)) => h.clone(),
            Some(Host::Unix(p)) => p.display().to_string(),
            None => "localhost".to_string(),
        };
        let port = c.get_ports().first().copied().unwrap_or(5432);
        let db = c.get_dbname().unwrap_or(user);
        let password = if c.get_password().is_some() {
            ":****"
        } else {
            ""
        };
        format!(
            "postgres://{user}{password}@{host}:{port}/{db}?sslmode={}",
            self.ssl_mode()
        )
    }

    /// Opens one connection and spawns the task that drives it. The task ends
    /// when the client is dropped.
    pub async fn connect(&self) -> Result<Client, tokio_postgres::Error> {
        let (client, connection) = self.config.connect(self.tls.clone()).await?;
        tokio::spawn(async move {
            // The connection's error surfaces on the client's next call.
            let _ = connection.await;
        });
        Ok(client)
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
            Ok(r) => r.map_err(|e| anyhow::anyhow!("{}", describe_pg_error(&e))),
            Err(_) => Err(anyhow::anyhow!(
                "no answer within the connect timeout ({}; set connect_timeout in the DSN to change it)",
                humantime::format_duration(limit)
            )),
        };
        result
            .with_context(|| format!("cannot connect to {}", self.redacted()))
            .environment()
    }
}

/// A TLS connector with libpq's `sslmode=require` semantics: encrypt, but do
/// not verify the certificate (the embedded server's is self-signed).
fn tls_connector() -> Result<MakeTlsConnector> {
    let mut builder = SslConnector::builder(SslMethod::tls_client())
        .context("initialising OpenSSL")
        .environment()?;
    builder.set_verify(SslVerifyMode::NONE);
    Ok(MakeTlsConnector::new(builder.build()))
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
/// this connection uses TLS; `auth` is the method when poolbench knows it
/// (its embedded server), and the server is embedded exactly then.
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
        version,
        auth_method: auth.unwrap_or("unknown").to_string(),
        ssl,
        max_connections,
        embedded: auth.is_some(),
        dsn: target.redacted(),
    }
}

/// The uncounted monitor connection, as the engine's once-a-second count of
/// the server's client backends. When the server restarts under it, it
/// opens another (uncounted too) for the seconds after.
pub struct Monitor<'a> {
    client: &'a Client,
    target: &'a Target,
    reconnected: Option<Client>,
}

impl<'a> Monitor<'a> {
    pub fn new(client: &'a Client, target: &'a Target) -> Monitor<'a> {
        Monitor {
            client,
            target,
            reconnected: None,
        }
    }

    /// Client backends on the server, the monitor's own excluded; None when
    /// the server does not answer within half a second.
    pub async fn backends(&mut self) -> Option<u64> {
        let client = self.reconnected.as_ref().unwrap_or(self.client);
        if client.is_closed() {
            self.reconnected =
                match tokio::time::timeout(MONITOR_TIMEOUT, self.target.connect()).await {
                    Ok(Ok(client)) => Some(client),
                    _ => None,
                };
            return None;
        }
        let query = client.query_one(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
            &[],
        );
        match tokio::time::timeout(MONITOR_TIMEOUT, query).await {
            Ok(Ok(row)) => row.try_get::<_, i64>(0).ok().map(|n| n as u64),
            _ => None,
        }
    }
}

/// How long the monitor waits for the server before it skips a sample.
const MONITOR_TIMEOUT: Duration = Duration::from_millis(500);

/// The class of a tokio-postgres error from a connect or a query.
pub fn error_class(e: &tokio_postgres::Error) -> ErrorClass {
    if let Some(db) = e.as_db_error() {
        return match db.code().code() {
            "53300" => ErrorClass::TooManyConnections,
            "28P01" | "28000" => ErrorClass::AuthFailed,
            "57P01" | "57P02" | "57P03" => ErrorClass::ServerShutdown,
            code => ErrorClass::Query(code.to_string()),
        };
    }
    if e.is_closed() {
        return ErrorClass::ConnectionLost;
    }
    if let Some(io) = io_source(e) {
        return match io.kind() {
            io::ErrorKind::ConnectionRefused => ErrorClass::ConnectionRefused,
            io::ErrorKind::TimedOut => ErrorClass::ConnectTimeout,
            _ => ErrorClass::ConnectionLost,
        };
    }
    if e.to_string().starts_with("timeout waiting for server") {
        return ErrorClass::ConnectTimeout;
    }
    ErrorClass::Other
}

/// A tokio-postgres error as a request's error: its class and description.
pub fn request_error(e: &tokio_postgres::Error) -> RequestError {
    RequestError::new(error_class(e), describe_pg_error(e))
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
    use super::*;

    #[test]
    fn url_password_is_redacted() {
        let t = Target::parse(
            "postgres://app:s3cr3t@db.internal:6543/shop?sslmode=require",
            "--dsn",
        )
        .unwrap();
        assert_eq!(
            t.redacted(),
            "postgres://app:****@db.internal:6543/shop?sslmode=require"
        );
        assert!(!format!("{t:?}").contains("s3cr3t"));
    }

    #[test]
    fn key_value_dsn_is_redacted() {
        let t = Target::parse(
            "host=127.0.0.1 port=5433 user=bob password=hunter2 dbname=x",
            "--dsn",
        )
        .unwrap();
        assert_eq!(
            t.redacted(),
            "postgres://bob:****@127.0.0.1:5433/x?sslmode=prefer"
        );
    }

    #[test]
    fn malformed_dsn_is_bad_input_without_the_secret() {
        let err = Target::parse("host=x password=hunter2 sslmode=sometimes", "--dsn").unwrap_err();
        assert_eq!(
            crate::error::kind_of(&err),
            Some(crate::error::Kind::BadInput)
        );
        let text = format!("{err:#}");
        assert!(text.contains("--dsn"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}
