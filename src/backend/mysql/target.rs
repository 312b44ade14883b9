//! A MySQL or MariaDB server to connect to: the driver's options, the TLS
//! mode as the MySQL clients name it, where the target came from, its
//! password-free display, and the one `connect` every part uses.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use mysql_async::{DriverError, Opts, OptsBuilder, SslOpts};

use super::errors::describe;
use crate::error::ResultExt;

pub use mysql_async::Conn;

/// The port a `mysql://` DSN without one connects to.
pub const DEFAULT_PORT: u16 = 3306;

/// How long one connection attempt may take unless the DSN says otherwise
/// (`connect-timeout`; the same default as the PostgreSQL side).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS as the MySQL clients name it (`--ssl-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disabled,
    Preferred,
    Required,
    VerifyCa,
    VerifyIdentity,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disabled => "DISABLED",
            SslMode::Preferred => "PREFERRED",
            SslMode::Required => "REQUIRED",
            SslMode::VerifyCa => "VERIFY_CA",
            SslMode::VerifyIdentity => "VERIFY_IDENTITY",
        }
    }

    pub fn parse(text: &str) -> Option<SslMode> {
        [
            SslMode::Disabled,
            SslMode::Preferred,
            SslMode::Required,
            SslMode::VerifyCa,
            SslMode::VerifyIdentity,
        ]
        .into_iter()
        .find(|m| m.as_str().eq_ignore_ascii_case(text))
    }
}

/// A database to connect to. Holds the password, but neither `Debug` nor
/// [`Target::redacted`] ever shows it.
#[derive(Clone)]
pub struct Target {
    opts: Opts,
    /// PREFERRED's fallback: the same options without TLS, used once the
    /// server said it has none (and from then on, without asking again).
    plain: Option<Opts>,
    tls_refused: Arc<AtomicBool>,
    details: Arc<Details>,
}

#[derive(Debug, Clone)]
pub struct Details {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub has_password: bool,
    pub db: Option<String>,
    pub ssl_mode: SslMode,
    pub ssl_ca: Option<PathBuf>,
    pub connect_timeout: Duration,
    /// Where the target came from: `--dsn`, `[database].dsn`, `embedded`…
    pub source: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Target").field(&self.redacted()).finish()
    }
}

impl Target {
    /// A target from checked parts: `password` is kept in the driver's
    /// options only.
    pub fn new(details: Details, password: Option<String>) -> Target {
        let ssl = match details.ssl_mode {
            SslMode::Disabled => None,
            // PREFERRED and REQUIRED encrypt without checking the
            // certificate, as the mysql client does.
            SslMode::Preferred | SslMode::Required => Some(
                SslOpts::default()
                    .with_danger_accept_invalid_certs(true)
                    .with_danger_skip_domain_validation(true),
            ),
            SslMode::VerifyCa | SslMode::VerifyIdentity => {
                let roots = details
                    .ssl_ca
                    .iter()
                    .map(|p| p.clone().into())
                    .collect::<Vec<_>>();
                Some(
                    SslOpts::default()
                        .with_root_certs(roots)
                        .with_danger_skip_domain_validation(details.ssl_mode == SslMode::VerifyCa),
                )
            }
        };
        let preferred = details.ssl_mode == SslMode::Preferred;
        let opts = OptsBuilder::default()
            .ip_or_hostname(details.host.clone())
            .tcp_port(details.port)
            .user(Some(details.user.clone()))
            .pass(password)
            .db_name(details.db.clone())
            .ssl_opts(ssl.clone())
            // A TCP connection to 127.0.0.1 stays TCP: the driver would
            // otherwise switch to the server's Unix socket after connecting.
            .prefer_socket(false)
            .tcp_nodelay(true);
        let plain = preferred.then(|| opts.clone().ssl_opts(None::<SslOpts>).into());
        Target {
            opts: opts.into(),
            plain,
            tls_refused: Arc::new(AtomicBool::new(false)),
            details: Arc::new(details),
        }
    }

    /// The same target, said to come from `source` (`--embedded`).
    pub fn with_source(mut self, source: &str) -> Target {
        Arc::make_mut(&mut self.details).source = source.to_string();
        self
    }

    pub fn source(&self) -> &str {
        &self.details.source
    }

    pub fn details(&self) -> &Details {
        &self.details
    }

    pub fn connect_timeout(&self) -> Duration {
        self.details.connect_timeout
    }

    /// The DSN without its password: safe to print and to store, and
    /// valid for poolbench again.
    pub fn redacted(&self) -> String {
        let d = &self.details;
        let password = if d.has_password { ":****" } else { "" };
        let host = if d.host.contains(':') {
            format!("[{}]", d.host)
        } else {
            d.host.clone()
        };
        let mut query = vec![format!("ssl-mode={}", d.ssl_mode.as_str())];
        if let Some(ca) = &d.ssl_ca {
            query.push(format!("ssl-ca={}", ca.display()));
        }
        format!(
            "mysql://{}{password}@{host}:{}/{}?{}",
            d.user,
            d.port,
            d.db.as_deref().unwrap_or(""),
            query.join("&")
        )
    }

    /// Opens one connection (TCP, the handshake, TLS when asked,
    /// authentication), bounded by the connect timeout.
    pub async fn connect(&self) -> Result<Conn, mysql_async::Error> {
        match tokio::time::timeout(self.connect_timeout(), self.connect_preferring_tls()).await {
            Ok(r) => r,
            Err(_) => Err(mysql_async::Error::Io(mysql_async::IoError::Io(
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "no answer within the connect timeout ({})",
                        humantime::format_duration(self.connect_timeout())
                    ),
                ),
            ))),
        }
    }

    /// With PREFERRED, plain TCP once the server has said it has no TLS;
    /// otherwise the options as given.
    async fn connect_preferring_tls(&self) -> Result<Conn, mysql_async::Error> {
        let Some(plain) = &self.plain else {
            return Conn::new(self.opts.clone()).await;
        };
        if self.tls_refused.load(Ordering::Relaxed) {
            return Conn::new(plain.clone()).await;
        }
        match Conn::new(self.opts.clone()).await {
            Err(mysql_async::Error::Driver(DriverError::NoClientSslFlagFromServer)) => {
                self.tls_refused.store(true, Ordering::Relaxed);
                Conn::new(plain.clone()).await
            }
            other => other,
        }
    }

    /// Connects once to check the server is reachable, for a clear error
    /// (exit 3) before any measurement starts.
    pub async fn check_reachable(&self) -> Result<Conn> {
        self.connect()
            .await
            .map_err(|e| anyhow::anyhow!("{}", describe(&e)))
            .with_context(|| format!("cannot connect to {}", self.redacted()))
            .environment()
    }
}
