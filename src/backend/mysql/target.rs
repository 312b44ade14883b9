//! A MySQL or MariaDB server to connect to: the driver's options and its
//! `connect` (the admin session's), the TLS mode as the MySQL clients name
//! it and the rustls configuration of poolbench's own connections
//! (`connect.rs`), where the target came from, and its password-free
//! display.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context, Result};
use mysql_async::{DriverError, Opts, OptsBuilder, SslOpts};
use rustls::pki_types::ServerName;
use rustls::CertificateError;

use super::errors::describe;
use crate::backend::postgres::tls::{certificate_error, certified_names, for_mysql};
use crate::error::ResultExt;

pub use mysql_async::Conn;

/// A name the server's certificate is valid for, when a connection failed
/// only because it does not name the host (its chain was verified first).
fn certified_name(e: &mysql_async::Error) -> Option<String> {
    let Some(CertificateError::NotValidForNameContext { presented, .. }) = certificate_error(e)
    else {
        return None;
    };
    certified_names(presented)
        .into_iter()
        .map(|name| name.replacen("*.", "any.", 1))
        .find(|name| ServerName::try_from(name.as_str()).is_ok())
}

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
    /// VERIFY_CA's options once the server's certificate names are known
    /// (see [`Target::connect_checking_the_chain`]).
    chain_only: Arc<OnceLock<Opts>>,
    details: Arc<Details>,
    /// For poolbench's own connections (`connect.rs`), which do not go
    /// through the driver's options.
    password: Option<Arc<str>>,
    /// Their TLS configuration, built on the first one.
    tls: Arc<OnceLock<Result<Arc<rustls::ClientConfig>, String>>>,
}

/// The CA file of `ssl-ca`: where it is (for messages and the redacted
/// DSN), and its certificates, read once when the DSN is checked, capped
/// and as a regular file (the driver would read the path again on every
/// connection, unbounded, and block on a FIFO).
#[derive(Clone)]
pub struct CaFile {
    pub path: PathBuf,
    pub pem: Arc<[u8]>,
}

impl std::fmt::Debug for CaFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("CaFile").field(&self.path).finish()
    }
}

#[derive(Debug, Clone)]
pub struct Details {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub has_password: bool,
    pub db: Option<String>,
    pub ssl_mode: SslMode,
    pub ssl_ca: Option<CaFile>,
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
            // The CA of ssl-ca is the only one trusted, as by the mysql
            // client (not the driver's built-in web roots).
            SslMode::VerifyCa | SslMode::VerifyIdentity => {
                let roots = details
                    .ssl_ca
                    .iter()
                    .map(|ca| ca.pem.to_vec().into())
                    .collect::<Vec<_>>();
                Some(
                    SslOpts::default()
                        .with_root_certs(roots)
                        .with_disable_built_in_roots(true)
                        .with_danger_skip_domain_validation(details.ssl_mode == SslMode::VerifyCa),
                )
            }
        };
        let preferred = details.ssl_mode == SslMode::Preferred;
        let kept = password.as_deref().map(Arc::from);
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
            chain_only: Arc::new(OnceLock::new()),
            details: Arc::new(details),
            password: kept,
            tls: Arc::new(OnceLock::new()),
        }
    }

    /// The password, for the authentication of poolbench's own
    /// connections only: never to be shown.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// Readies this thread's TLS random generator (seeded on first use,
    /// milliseconds that would otherwise land in the `tls` phase of the
    /// first connection each worker thread opens), as on PostgreSQL.
    pub fn seed_this_thread(&self) {
        if self.details.ssl_mode == SslMode::Disabled {
            return;
        }
        if let Ok(config) = self.tls_config() {
            let _ = config.crypto_provider().secure_random.fill(&mut [0u8; 1]);
        }
    }

    /// The rustls configuration of poolbench's own connections, as the
    /// mysql client checks the server's certificate: nothing (PREFERRED,
    /// REQUIRED), the chain against `ssl-ca` (VERIFY_CA), the host's name
    /// too (VERIFY_IDENTITY).
    pub fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>, String> {
        self.tls
            .get_or_init(|| {
                let d = &self.details;
                let verify = matches!(d.ssl_mode, SslMode::VerifyCa | SslMode::VerifyIdentity);
                let roots = verify.then(|| d.ssl_ca.as_ref().map(|ca| &ca.pem[..]).unwrap_or(&[]));
                for_mysql(roots, d.ssl_mode == SslMode::VerifyIdentity)
                    .map_err(|e| format!("{e:#}"))
            })
            .clone()
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

    /// Whether the host is this machine's loopback address.
    pub fn is_loopback(&self) -> bool {
        let host = self.details.host.as_str();
        host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
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
            query.push(format!("ssl-ca={}", ca.path.display()));
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
        self.connect_by(Conn::new).await
    }

    /// Opens one connection by `dial` (the driver's own connect, or one
    /// across the link emulator), each attempt with the options it takes,
    /// bounded by the connect timeout.
    pub async fn connect_by<T, F, Fut>(&self, dial: F) -> Result<T, mysql_async::Error>
    where
        F: Fn(Opts) -> Fut,
        Fut: Future<Output = Result<T, mysql_async::Error>>,
    {
        match tokio::time::timeout(self.connect_timeout(), self.connect_preferring_tls(&dial)).await
        {
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
    async fn connect_preferring_tls<T, F, Fut>(&self, dial: &F) -> Result<T, mysql_async::Error>
    where
        F: Fn(Opts) -> Fut,
        Fut: Future<Output = Result<T, mysql_async::Error>>,
    {
        if self.details.ssl_mode == SslMode::VerifyCa {
            return self.connect_checking_the_chain(dial).await;
        }
        let Some(plain) = &self.plain else {
            return dial(self.opts.clone()).await;
        };
        if self.tls_refused.load(Ordering::Relaxed) {
            return dial(plain.clone()).await;
        }
        match dial(self.opts.clone()).await {
            Err(mysql_async::Error::Driver(DriverError::NoClientSslFlagFromServer)) => {
                self.tls_refused.store(true, Ordering::Relaxed);
                dial(plain.clone()).await
            }
            other => other,
        }
    }

    /// VERIFY_CA: the certificate's chain is checked, not its names.
    /// mysql_async 0.37.1 means to skip the name check when asked to, but
    /// recognises a name mismatch by words rustls 0.23 no longer writes
    /// (blackbeam/mysql_async#404), so the check is still made. rustls
    /// checks the name only once the chain is verified, and its refusal
    /// lists the names the certificate is valid for: the connection is made
    /// again checking one of them, as is every later one of this target.
    async fn connect_checking_the_chain<T, F, Fut>(&self, dial: &F) -> Result<T, mysql_async::Error>
    where
        F: Fn(Opts) -> Fut,
        Fut: Future<Output = Result<T, mysql_async::Error>>,
    {
        if let Some(opts) = self.chain_only.get() {
            return dial(opts.clone()).await;
        }
        let e = match dial(self.opts.clone()).await {
            Ok(conn) => return Ok(conn),
            Err(e) => e,
        };
        let (Some(name), Some(ssl)) = (certified_name(&e), self.opts.ssl_opts()) else {
            return Err(e);
        };
        let opts: Opts = OptsBuilder::from_opts(self.opts.clone())
            .ssl_opts(ssl.clone().with_danger_tls_hostname_override(Some(name)))
            .into();
        let conn = dial(opts.clone()).await?;
        let _ = self.chain_only.set(opts);
        Ok(conn)
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
