//! The embedded PostgreSQL server's lifecycle: find the machine's server
//! binaries, make a throwaway cluster in a private temporary directory, start
//! `postgres` on a free 127.0.0.1 port with a generated password, the chosen
//! auth method and a certificate signed by a CA generated with it (or one
//! given, with client certificates if asked), and stop it and remove
//! everything on `stop()`, on drop, or on a signal.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use md5::Digest;
use tokio_postgres::config::{ChannelBinding, SslMode, SslNegotiation};
use tokio_postgres::Config;

use super::options::{EmbeddedOptions, DBNAME, HOST, USER};
use super::process::{self, postgres_command, Postmaster, Resources, SHUTDOWN_STEPS};
use super::ready::{log_tail, wait_ready, Ready, LOG_TAIL_LINES};
use super::{binaries, cert, cluster, stale};
use crate::backend::postgres::{describe_pg_error, Target, DEFAULT_CONNECT_TIMEOUT};
use crate::cleanup;
use crate::error::{self, ResultExt};
use crate::scenario::{AuthMethod, ChannelBindingLever, SslNegotiationLever};

/// The CA certificate clients verify the server with, in its directory.
const CA_FILE: &str = "ca.pem";

/// Attempts with a fresh free port when another process took the one picked.
const PORT_ATTEMPTS: u32 = 3;

/// How [`EmbeddedServer::restart`] stops the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// SIGINT: active transactions are rolled back, clients get 57P01.
    Fast,
    /// SIGQUIT: processes exit at once; recovery runs at the next start.
    Immediate,
}

/// A running throwaway PostgreSQL. Stopped and removed by [`stop`] or, if
/// that was not called, on drop.
///
/// [`stop`]: EmbeddedServer::stop
pub struct EmbeddedServer {
    opts: EmbeddedOptions,
    target: Target,
    password: String,
    port: u16,
    version: String,
    bin_dir: PathBuf,
    dir: PathBuf,
    resources: Resources,
    timings: StartTimings,
}

/// How long `start` took: `initdb` alone, and everything until the server
/// accepted its first authenticated connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StartTimings {
    pub initdb: Duration,
    pub total: Duration,
}

impl std::fmt::Debug for EmbeddedServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedServer")
            .field("target", &self.target)
            .field("version", &self.version)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl EmbeddedServer {
    /// Finds the binaries, makes the cluster, starts the server and waits
    /// until it accepts connections with the real authentication. Every
    /// error is tagged environment (exit 3), and leaves nothing behind.
    pub async fn start(opts: &EmbeddedOptions) -> Result<EmbeddedServer> {
        let started = Instant::now();
        if let Some(port) = opts.port {
            // Said at once, before initdb: otherwise the server holding it
            // answers the ready check, and its refusal of our password reads
            // as ours refusing its own login.
            refuse_taken_port(port)?;
        }
        let bin_dir = binaries::find()?;
        let version = binaries::postgres_version(&bin_dir).await?;
        refuse_direct_before_17(opts, &version, &bin_dir)?;
        let run_as = process::server_user()?;

        // What a poolbench killed outright (SIGKILL) left behind.
        stale::remove_leftovers(&std::env::temp_dir());
        let tempdir = tempfile::Builder::new()
            .prefix(stale::PREFIX)
            .tempdir()
            .context("creating a temporary directory for the embedded server")
            .environment()?;
        let dir = tempdir.path().to_path_buf();
        // Whichever postmaster runs in it then (its pid file says), and the
        // directory.
        let forced = cleanup::on_forced_exit({
            let dir = dir.clone();
            move || {
                if let Some(pid) = stale::postmaster_pid(&dir.join("data")) {
                    process::stop_now(pid);
                }
                cleanup::remove_dir(&dir);
            }
        });
        let mut resources = Resources {
            server: None,
            dir: Some(tempdir),
            forced: Some(forced),
            stop: &SHUTDOWN_STEPS,
        };
        stale::write_owner(&dir)?;
        // The unix socket lives here: only the server user may enter.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {}", dir.display()))
            .environment()?;
        process::chown(&dir, run_as.as_ref())?;

        let password = cluster::generate_password()?;
        cluster::init_cluster(&bin_dir, &dir, run_as.as_ref(), opts.auth, &password).await?;
        let initdb_done = started.elapsed();

        let data = dir.join("data");
        cluster::write_hba(
            &data,
            opts.auth,
            opts.tls && opts.client_certificates,
            run_as.as_ref(),
        )?;
        if opts.tls {
            let cert = match &opts.certificate {
                Some(given) => given.clone(),
                None => cert::generate().environment()?,
            };
            cluster::write_private(&data.join("server.crt"), &cert.cert_pem, run_as.as_ref())?;
            cluster::write_private(&data.join("server.key"), &cert.key_pem, run_as.as_ref())?;
            cluster::write_private(&data.join("ca.crt"), &cert.ca_pem, run_as.as_ref())?;
            // For clients (sslrootcert): public, owned by whoever runs poolbench.
            std::fs::write(dir.join(CA_FILE), &cert.ca_pem)
                .with_context(|| format!("writing {}", dir.join(CA_FILE).display()))
                .environment()?;
        }

        let mut last_error = None;
        let attempts = if opts.port.is_some() {
            1
        } else {
            PORT_ATTEMPTS
        };
        for _ in 0..attempts {
            let port = match opts.port {
                Some(port) => port,
                None => cluster::free_port()?,
            };
            // With client certificates poolbench itself has none: it
            // reaches the server over the trusted Unix-domain socket.
            let target = if opts.tls && opts.client_certificates {
                socket_target(&dir, port)?
            } else {
                make_target(port, &password, opts)?
            };
            let target = if logs_setup_durations(&version) {
                target.with_setup_log(dir.join("postgres.log"))
            } else {
                target
            };
            let cmd = postgres_command(
                &bin_dir,
                &dir,
                port,
                opts,
                run_as.as_ref(),
                logs_setup_durations(&version),
            )?;
            let log_start = std::fs::metadata(dir.join("postgres.log")).map_or(0, |m| m.len());
            let postmaster = resources.server.insert(
                Postmaster::spawn(cmd)
                    .with_context(|| format!("starting {}", bin_dir.join("postgres").display()))
                    .environment()?,
            );
            match wait_ready(&target, &dir, log_start, postmaster).await {
                Ready::Yes => {
                    let mut server = EmbeddedServer {
                        opts: opts.clone(),
                        target,
                        password,
                        port,
                        version,
                        bin_dir,
                        dir,
                        resources,
                        timings: StartTimings::default(),
                    };
                    if opts.auth == AuthMethod::Md5 {
                        server.store_md5_password().await?;
                    } else if let Some(iterations) = opts.scram_iterations {
                        server.store_scram_password(iterations).await?;
                    }
                    server.timings = StartTimings {
                        initdb: initdb_done,
                        total: started.elapsed(),
                    };
                    return Ok(server);
                }
                Ready::PortTaken(e) if opts.port.is_some() => {
                    return Err(e.context(format!("port {port} on {HOST} is already in use")));
                }
                Ready::PortTaken(e) => {
                    // Someone took the free port before postgres bound it.
                    resources.server = None;
                    last_error = Some(e);
                }
                Ready::Failed(e) => {
                    // Taken between the check and postgres's bind: postgres
                    // says so in its log as it exits.
                    let lost = match (opts.port, resources.server.as_mut()) {
                        (Some(_), Some(postmaster)) => {
                            lost_its_port(&dir, log_start, postmaster).await
                        }
                        _ => false,
                    };
                    return Err(if lost { port_taken(port) } else { e });
                }
            }
        }
        Err(last_error.unwrap_or_else(|| error::environment("the embedded server did not start")))
    }

    /// Where and how to connect: user, password, 127.0.0.1, port, database,
    /// `sslmode=require` with TLS and `disable` without.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The DSN with the password in clear: only for `poolbench server`'s
    /// output and for tests. Everything else prints [`Target::redacted`].
    pub fn dsn_with_password(&self) -> String {
        format!(
            "postgres://{USER}:{}@{HOST}:{}/{DBNAME}?sslmode={}",
            self.password,
            self.port,
            self.ssl_mode()
        )
    }

    /// How clients reach it over TCP: `require` with TLS, else `disable`.
    pub fn ssl_mode(&self) -> &'static str {
        if self.opts.tls {
            "require"
        } else {
            "disable"
        }
    }

    pub fn host(&self) -> &str {
        HOST
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn user(&self) -> &str {
        USER
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    pub fn dbname(&self) -> &str {
        DBNAME
    }

    /// The CA that signed the server's certificate (PEM), for
    /// `sslrootcert`: with it, `sslmode=verify-full` works against
    /// 127.0.0.1 and localhost. `None` without TLS.
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.opts.tls.then(|| self.dir.join(CA_FILE))
    }

    pub fn options(&self) -> &EmbeddedOptions {
        &self.opts
    }

    /// The server's version, e.g. "15.18".
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The directory `initdb` and `postgres` came from.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// The temporary directory (data directory, socket, log); removed on stop.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn start_timings(&self) -> StartTimings {
        self.timings
    }

    /// The postmaster's pid (0 once stopped).
    pub fn pid(&self) -> u32 {
        self.resources.server.as_ref().map_or(0, Postmaster::pid)
    }

    /// The postmaster's exit status if it has exited, `None` while it runs.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        match self.resources.server.as_mut() {
            Some(pm) => pm.try_wait(),
            None => Some(ExitStatus::default()),
        }
    }

    /// The last lines of the server's log (empty once stopped).
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.dir, 0, lines)
    }

    /// Stops the server as `pg_ctl stop -m fast|immediate` would, keeps its
    /// data, waits `down_for`, and starts it again on the same port: the
    /// fault a run must survive (docs/failures.md, "What real servers do").
    pub async fn restart(&mut self, mode: StopMode, down_for: Duration) -> Result<()> {
        if let Some(mut postmaster) = self.resources.server.take() {
            match mode {
                StopMode::Fast => postmaster.shutdown(),
                StopMode::Immediate => postmaster.shutdown_immediate(),
            }
        }
        tokio::time::sleep(down_for).await;
        let run_as = process::server_user()?;
        let cmd = postgres_command(
            &self.bin_dir,
            &self.dir,
            self.port,
            &self.opts,
            run_as.as_ref(),
            logs_setup_durations(&self.version),
        )?;
        let log_start = std::fs::metadata(self.dir.join("postgres.log")).map_or(0, |m| m.len());
        let postmaster = self.resources.server.insert(
            Postmaster::spawn(cmd)
                .with_context(|| format!("restarting {}", self.bin_dir.join("postgres").display()))
                .environment()?,
        );
        match wait_ready(&self.target, &self.dir, log_start, postmaster).await {
            Ready::Yes => Ok(()),
            Ready::PortTaken(e) | Ready::Failed(e) => {
                Err(e.context("restarting the embedded server"))
            }
        }
    }

    /// Fast shutdown (escalating if the server lingers), then removal of the
    /// directory.
    pub async fn stop(mut self) -> Result<()> {
        let mut resources = Resources {
            server: self.resources.server.take(),
            dir: self.resources.dir.take(),
            forced: self.resources.forced.take(),
            stop: self.resources.stop,
        };
        // The shutdown polls with thread::sleep; keep it off the runtime's
        // worker threads.
        tokio::task::spawn_blocking(move || resources.release())
            .await
            .context("stopping the embedded server")
            .environment()?
    }

    /// With `scram_iterations`: the password stored again as a SCRAM
    /// verifier of that many iterations, computed here (PostgreSQL 15 has
    /// no `scram_iterations` setting, and a stored verifier works on every
    /// version), over the unix socket (trust).
    async fn store_scram_password(&self, iterations: u32) -> Result<()> {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("generating a SCRAM salt")
            .environment()?;
        let verifier = cluster::scram_verifier(&self.password, iterations, &salt);
        self.alter_password(&verifier).await?;
        self.target
            .check_reachable()
            .await
            .with_context(|| format!("connecting with scram_iterations = {iterations}"))?;
        Ok(())
    }

    /// Stores `secret` (a hash or verifier, never the password) as the
    /// user's password, over the unix socket (trust).
    async fn alter_password(&self, secret: &str) -> Result<()> {
        let client = socket_target(&self.dir, self.port)?
            .connect()
            .await
            .map_err(|e| error::environment(e.to_string()))
            .context("connecting to the embedded server over its unix socket")?;
        client
            .batch_execute(&format!("ALTER ROLE {USER} PASSWORD '{secret}'"))
            .await
            .map_err(|e| error::environment(describe_pg_error(&e)))
            .context("storing the password")?;
        Ok(())
    }

    /// For md5: initdb stored the password as SCRAM, and an `md5` hba line
    /// then silently does SCRAM. Store it as an md5 hash instead, over the
    /// unix socket (trust), sending the hash rather than the password.
    async fn store_md5_password(&self) -> Result<()> {
        let digest = md5::Md5::digest(format!("{}{USER}", self.password).as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        self.alter_password(&format!("md5{hex}")).await?;
        self.target
            .check_reachable()
            .await
            .context("connecting with md5 authentication")?;
        Ok(())
    }
}

impl Drop for EmbeddedServer {
    fn drop(&mut self) {
        let _ = self.resources.release();
    }
}

/// Refuses a port given with `--port` that another process listens on
/// (binding it fails with "address in use"; any other failure, such as a
/// privileged port, is left for the server to explain): every embedded
/// server says so before it starts.
pub fn refuse_taken_port(port: u16) -> Result<()> {
    match std::net::TcpListener::bind((HOST, port)) {
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(port_taken(port)),
        _ => Ok(()),
    }
}

fn port_taken(port: u16) -> anyhow::Error {
    error::environment(format!(
        "port {port} on {HOST} is already in use: another server listens there; choose \
         another --port, or none for a free one"
    ))
}

/// Whether the postmaster exited (within a few seconds) because it could
/// not bind its port.
async fn lost_its_port(dir: &Path, log_start: u64, postmaster: &mut Postmaster) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while postmaster.try_wait().is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    log_tail(dir, log_start, LOG_TAIL_LINES).contains("could not bind")
}

/// Over the Unix-domain socket in the server's directory (trust).
fn socket_target(dir: &Path, port: u16) -> Result<Target> {
    let mut config = Config::new();
    config
        .host_path(dir)
        .port(port)
        .user(USER)
        .dbname(DBNAME)
        .ssl_mode(SslMode::Disable)
        .connect_timeout(DEFAULT_CONNECT_TIMEOUT);
    Target::from_config(config)
}

/// Over TCP with the password, TLS as the options ask (direct, and channel
/// binding, as levers); the backends' CPU is read at each setup (they are
/// processes of this machine).
fn make_target(port: u16, password: &str, opts: &EmbeddedOptions) -> Result<Target> {
    let mut config = Config::new();
    config
        .host(HOST)
        .port(port)
        .user(USER)
        .password(password)
        .dbname(DBNAME)
        .ssl_mode(if opts.tls {
            SslMode::Require
        } else {
            SslMode::Disable
        })
        .connect_timeout(DEFAULT_CONNECT_TIMEOUT);
    if opts.tls && opts.sslnegotiation == SslNegotiationLever::Direct {
        config.ssl_negotiation(SslNegotiation::Direct);
    }
    config.channel_binding(match opts.channel_binding {
        ChannelBindingLever::Prefer => ChannelBinding::Prefer,
        ChannelBindingLever::Require => ChannelBinding::Require,
        ChannelBindingLever::Disable => ChannelBinding::Disable,
    });
    Ok(Target::from_config(config)?.with_visible_server())
}

/// Whether a server of this version logs each connection's setup
/// durations (`log_connections = setup_durations`, PostgreSQL >= 18).
fn logs_setup_durations(version: &str) -> bool {
    major(version).is_some_and(|m| m >= 18)
}

/// The major version of "15.18" or "18.4".
fn major(version: &str) -> Option<u32> {
    version.split(['.', ' ']).next()?.parse().ok()
}

/// The major version of the server an embedded start would run (the
/// binaries found as [`EmbeddedServer::start`] finds them).
pub async fn major_version_found() -> Result<Option<u32>> {
    let bin_dir = binaries::find()?;
    Ok(major(&binaries::postgres_version(&bin_dir).await?))
}

/// `sslnegotiation = "direct"` on a server before PostgreSQL 17, which
/// would read the TLS handshake as a malformed startup packet: refused
/// before anything starts.
fn refuse_direct_before_17(opts: &EmbeddedOptions, version: &str, bin_dir: &Path) -> Result<()> {
    match (opts.sslnegotiation, major(version)) {
        (SslNegotiationLever::Direct, Some(major)) if major < 17 => Err(error::bad_input(format!(
            "`sslnegotiation = \"direct\"` needs PostgreSQL 17 or later, and the embedded server \
             found in {} is {version}; POOLBENCH_PG_BIN picks another build (docs/levers.md)",
            bin_dir.display()
        ))),
        _ => Ok(()),
    }
}
