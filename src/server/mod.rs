//! The embedded PostgreSQL server (DESIGN.md, "The embedded default server"):
//! find the machine's server binaries, make a throwaway cluster in a private
//! temporary directory, start `postgres` on a free 127.0.0.1 port with a
//! generated password, the chosen auth method and a self-signed certificate,
//! and stop it and remove everything on `stop()`, on drop, or on a signal.
//!
//! `poolbench server` ([`serve_command`]) runs it in the foreground.

mod binaries;
mod cert;
mod process;

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use base64::Engine;
use tokio_postgres::config::SslMode;
use tokio_postgres::{Config, NoTls};

use crate::backend::postgres::{describe_pg_error, Target, DEFAULT_CONNECT_TIMEOUT};
use crate::error::{self, ResultExt};
use crate::scenario::{AuthMethod, EmbeddedSettings};

pub use binaries::PG_BIN_ENV;
use process::{Postmaster, RunAs};

/// The superuser poolbench creates and connects as.
pub const USER: &str = "poolbench";
/// The database clients connect to.
pub const DBNAME: &str = "postgres";
/// The only address the server listens on.
pub const HOST: &str = "127.0.0.1";

/// How long `start` waits for the server to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts with a fresh free port when another process took the one picked.
const PORT_ATTEMPTS: u32 = 3;
/// Log lines quoted in start-up errors.
pub const LOG_TAIL_LINES: usize = 20;

/// What kind of server to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedOptions {
    pub auth: AuthMethod,
    pub tls: bool,
    /// `None`: a free port, chosen at start.
    pub port: Option<u16>,
    /// The server's max_connections (>= 1).
    pub max_connections: u32,
}

impl From<&EmbeddedSettings> for EmbeddedOptions {
    fn from(s: &EmbeddedSettings) -> EmbeddedOptions {
        EmbeddedOptions {
            auth: s.auth,
            tls: s.tls,
            port: None,
            max_connections: s.max_connections,
        }
    }
}

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

/// What must be undone: the postmaster and the directory. Its own `Drop`
/// covers the failures inside `start`, before an `EmbeddedServer` exists.
struct Resources {
    postmaster: Option<Postmaster>,
    dir: Option<tempfile::TempDir>,
}

impl Resources {
    /// Stops the postmaster, then removes the directory. Idempotent.
    fn release(&mut self) -> Result<()> {
        if let Some(mut postmaster) = self.postmaster.take() {
            postmaster.shutdown();
        }
        if let Some(dir) = self.dir.take() {
            let path = dir.path().to_path_buf();
            dir.close()
                .with_context(|| format!("removing {}", path.display()))
                .environment()?;
        }
        Ok(())
    }
}

impl Drop for Resources {
    fn drop(&mut self) {
        let _ = self.release();
    }
}

impl EmbeddedServer {
    /// Finds the binaries, makes the cluster, starts the server and waits
    /// until it accepts connections with the real authentication. Every
    /// error is tagged environment (exit 3), and leaves nothing behind.
    pub async fn start(opts: &EmbeddedOptions) -> Result<EmbeddedServer> {
        let started = Instant::now();
        let bin_dir = binaries::find()?;
        let version = postgres_version(&bin_dir).await?;
        let run_as = process::server_user()?;

        let tempdir = tempfile::Builder::new()
            .prefix("poolbench-")
            .tempdir()
            .context("creating a temporary directory for the embedded server")
            .environment()?;
        let dir = tempdir.path().to_path_buf();
        let mut resources = Resources {
            postmaster: None,
            dir: Some(tempdir),
        };
        // The unix socket lives here: only the server user may enter.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {}", dir.display()))
            .environment()?;
        process::chown(&dir, run_as.as_ref())?;

        let password = generate_password()?;
        init_cluster(&bin_dir, &dir, run_as.as_ref(), opts.auth, &password).await?;
        let initdb_done = started.elapsed();

        let data = dir.join("data");
        write_hba(&data, opts.auth, run_as.as_ref())?;
        if opts.tls {
            let cert = cert::generate().environment()?;
            write_private(&data.join("server.crt"), &cert.cert_pem, run_as.as_ref())?;
            write_private(&data.join("server.key"), &cert.key_pem, run_as.as_ref())?;
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
                None => free_port()?,
            };
            let target = make_target(port, &password, opts.tls)?;
            let cmd = postgres_command(&bin_dir, &dir, port, opts, run_as.as_ref())?;
            let log_start = std::fs::metadata(dir.join("postgres.log")).map_or(0, |m| m.len());
            let postmaster = resources.postmaster.insert(
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
                    resources.postmaster = None;
                    last_error = Some(e);
                }
                Ready::Failed(e) => return Err(e),
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
            self.target.ssl_mode()
        )
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
        self.resources
            .postmaster
            .as_ref()
            .map_or(0, Postmaster::pid)
    }

    /// The postmaster's exit status if it has exited, `None` while it runs.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        match self.resources.postmaster.as_mut() {
            Some(pm) => pm.try_wait(),
            None => Some(ExitStatus::default()),
        }
    }

    /// The last lines of the server's log (empty once stopped).
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.dir, 0, lines)
    }

    /// Fast shutdown (escalating if the server lingers), then removal of the
    /// directory.
    /// Stops the server as `pg_ctl stop -m fast|immediate` would, keeps its
    /// data, waits `down_for`, and starts it again on the same port: the
    /// fault a run must survive (DESIGN.md, "Execution model"; README,
    /// "Failure behaviour").
    pub async fn restart(&mut self, mode: StopMode, down_for: Duration) -> Result<()> {
        if let Some(mut postmaster) = self.resources.postmaster.take() {
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
        )?;
        let log_start = std::fs::metadata(self.dir.join("postgres.log")).map_or(0, |m| m.len());
        let postmaster = self.resources.postmaster.insert(
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

    pub async fn stop(mut self) -> Result<()> {
        let mut resources = Resources {
            postmaster: self.resources.postmaster.take(),
            dir: self.resources.dir.take(),
        };
        // The shutdown polls with thread::sleep; keep it off the runtime's
        // worker threads.
        tokio::task::spawn_blocking(move || resources.release())
            .await
            .context("stopping the embedded server")
            .environment()?
    }

    /// For md5: initdb stored the password as SCRAM, and an `md5` hba line
    /// then silently does SCRAM. Store it as an md5 hash instead, over the
    /// unix socket (trust), sending the hash rather than the password.
    async fn store_md5_password(&self) -> Result<()> {
        let mut config = Config::new();
        config
            .host_path(&self.dir)
            .port(self.port)
            .user(USER)
            .dbname(DBNAME)
            .application_name("poolbench")
            .connect_timeout(DEFAULT_CONNECT_TIMEOUT);
        let (client, connection) = config
            .connect(NoTls)
            .await
            .map_err(|e| error::environment(describe_pg_error(&e)))
            .context("connecting to the embedded server over its unix socket")?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let digest = openssl::hash::hash(
            openssl::hash::MessageDigest::md5(),
            format!("{}{USER}", self.password).as_bytes(),
        )
        .environment()?;
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        client
            .batch_execute(&format!("ALTER ROLE {USER} PASSWORD 'md5{hex}'"))
            .await
            .map_err(|e| error::environment(describe_pg_error(&e)))
            .context("storing the md5 password")?;
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

/// The `postgres --version` number, e.g. "15.18".
async fn postgres_version(bin_dir: &Path) -> Result<String> {
    let postgres = bin_dir.join("postgres");
    let output = tokio::process::Command::new(&postgres)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {} --version", postgres.display()))
        .environment()?;
    let text = String::from_utf8_lossy(&output.stdout);
    // "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
    text.split_whitespace()
        .find(|word| word.starts_with(|c: char| c.is_ascii_digit()))
        .map(str::to_string)
        .ok_or_else(|| {
            error::environment(format!(
                "{} --version printed no version: {}",
                postgres.display(),
                text.trim()
            ))
        })
}

/// 24 URL-safe characters (18 random bytes): no quoting needed in a URL, a
/// shell or an SQL literal.
fn generate_password() -> Result<String> {
    let mut bytes = [0u8; 18];
    openssl::rand::rand_bytes(&mut bytes)
        .context("generating a password")
        .environment()?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

async fn init_cluster(
    bin_dir: &Path,
    dir: &Path,
    run_as: Option<&RunAs>,
    auth: AuthMethod,
    password: &str,
) -> Result<()> {
    let pwfile = dir.join("pwfile");
    write_private(&pwfile, password.as_bytes(), run_as)?;
    let initdb = bin_dir.join("initdb");
    let mut cmd = std::process::Command::new(&initdb);
    cmd.arg("-D")
        .arg(dir.join("data"))
        .args(["-U", USER])
        .arg(format!("--pwfile={}", pwfile.display()))
        .args([
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            "--auth-local=trust",
        ])
        .arg(format!("--auth-host={}", auth.as_str()))
        .current_dir(dir)
        .env_remove("PGDATA")
        .stdin(Stdio::null());
    process::configure(&mut cmd, run_as);
    let output = tokio::process::Command::from(cmd).output().await;
    let removed = std::fs::remove_file(&pwfile);
    let output = output
        .with_context(|| format!("running {}", initdb.display()))
        .environment()?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let hint = match run_as {
            Some(user) => format!(
                "\n(poolbench runs as root, so initdb ran as the user `{}`, \
                 who needs access to {} and {})",
                user.name,
                bin_dir.display(),
                dir.display()
            ),
            None => String::new(),
        };
        return Err(error::environment(format!(
            "{} failed ({}): {}{hint}",
            initdb.display(),
            output.status,
            last_lines(&format!("{stdout}{stderr}"), LOG_TAIL_LINES)
        )));
    }
    removed
        .with_context(|| format!("removing {}", pwfile.display()))
        .environment()
}

/// pg_hba.conf, replacing initdb's: trust on the unix socket (in a directory
/// only the server user can enter), the chosen method on TCP.
fn write_hba(data: &Path, auth: AuthMethod, run_as: Option<&RunAs>) -> Result<()> {
    let method = auth.as_str();
    let text = format!(
        "# Written by poolbench for a throwaway server.\n\
         # TYPE  DATABASE  USER  ADDRESS       METHOD\n\
         local   all       all                 trust\n\
         host    all       all   127.0.0.1/32  {method}\n\
         host    all       all   ::1/128       {method}\n"
    );
    write_private(&data.join("pg_hba.conf"), text.as_bytes(), run_as)
}

/// Writes a file readable by its owner only (PostgreSQL insists on that for
/// the TLS key), owned by the server user.
fn write_private(path: &Path, contents: &[u8], run_as: Option<&RunAs>) -> Result<()> {
    let write = || -> std::io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.write_all(contents)
    };
    write()
        .with_context(|| format!("writing {}", path.display()))
        .environment()?;
    process::chown(path, run_as)
}

/// A port that was free a moment ago: bind port 0, read it, let it go.
fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind((HOST, 0))
        .context("finding a free port on 127.0.0.1")
        .environment()?;
    Ok(listener
        .local_addr()
        .context("finding a free port on 127.0.0.1")
        .environment()?
        .port())
}

fn make_target(port: u16, password: &str, tls: bool) -> Result<Target> {
    let mut config = Config::new();
    config
        .host(HOST)
        .port(port)
        .user(USER)
        .password(password)
        .dbname(DBNAME)
        .ssl_mode(if tls {
            SslMode::Require
        } else {
            SslMode::Disable
        })
        .connect_timeout(DEFAULT_CONNECT_TIMEOUT);
    Target::from_config(config)
}

/// The postmaster's command line. Settings are production defaults except:
/// - `superuser_reserved_connections` is lowered to `max_connections - 1`
///   when that is below PostgreSQL's 3, which refuses to start otherwise;
///   so `--max-connections 1` works (with no slot reserved for superusers);
/// - listening on 127.0.0.1 only, the socket in the private directory.
fn postgres_command(
    bin_dir: &Path,
    dir: &Path,
    port: u16,
    opts: &EmbeddedOptions,
    run_as: Option<&RunAs>,
) -> Result<std::process::Command> {
    let data = dir.join("data");
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("postgres.log"))
        .context("creating postgres.log")
        .environment()?;
    let log_err = log
        .try_clone()
        .context("creating postgres.log")
        .environment()?;
    let reserved = opts.max_connections.saturating_sub(1).min(3);
    let password_encryption = match opts.auth {
        AuthMethod::Md5 => "md5",
        AuthMethod::ScramSha256 | AuthMethod::Trust => "scram-sha-256",
    };
    let mut cmd = std::process::Command::new(bin_dir.join("postgres"));
    cmd.arg("-D").arg(&data);
    let mut setting = |name: &str, value: &dyn std::fmt::Display| {
        cmd.arg("-c").arg(format!("{name}={value}"));
    };
    setting("listen_addresses", &HOST);
    setting("port", &port);
    setting("unix_socket_directories", &dir.display());
    setting("max_connections", &opts.max_connections);
    setting("superuser_reserved_connections", &reserved);
    setting("password_encryption", &password_encryption);
    setting("ssl", &if opts.tls { "on" } else { "off" });
    if opts.tls {
        setting("ssl_cert_file", &data.join("server.crt").display());
        setting("ssl_key_file", &data.join("server.key").display());
    }
    cmd.current_dir(dir)
        .env_remove("PGDATA")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    process::configure(&mut cmd, run_as);
    Ok(cmd)
}

enum Ready {
    Yes,
    /// Another process took the port between choosing and binding it.
    PortTaken(anyhow::Error),
    Failed(anyhow::Error),
}

/// Connects with the real authentication until it works, the postmaster
/// exits, or [`READY_TIMEOUT`] passes. `log_start` is where this attempt's
/// log begins.
async fn wait_ready(
    target: &Target,
    dir: &Path,
    log_start: u64,
    postmaster: &mut Postmaster,
) -> Ready {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        // Watch the postmaster while connecting: if it failed to bind, a
        // connection attempt may hang on whoever holds the port.
        let attempt = tokio::select! {
            attempt = tokio::time::timeout(remaining, target.connect()) => attempt,
            status = watch_exit(postmaster) => {
                let tail = log_tail(dir, log_start, LOG_TAIL_LINES);
                let e = error::environment(format!(
                    "postgres exited during start-up ({status}); the end of its log:\n{tail}"
                ));
                return if tail.contains("could not bind") {
                    Ready::PortTaken(e)
                } else {
                    Ready::Failed(e)
                };
            }
        };
        let last = match attempt {
            Ok(Ok(_client)) => return Ready::Yes,
            Ok(Err(e)) => {
                // Authentication errors will not go away by waiting.
                let code = e.code().map(|c| c.code().to_string());
                if matches!(code.as_deref(), Some("28P01" | "28000")) {
                    return Ready::Failed(error::environment(format!(
                        "the embedded server at {} rejected poolbench's own login: {}",
                        target.redacted(),
                        describe_pg_error(&e)
                    )));
                }
                describe_pg_error(&e)
            }
            Err(_) => "connection attempt timed out".to_string(),
        };
        if Instant::now() >= deadline {
            let tail = log_tail(dir, log_start, LOG_TAIL_LINES);
            return Ready::Failed(error::environment(format!(
                "the embedded server at {} did not accept connections within {} s ({last}); \
                 the end of its log:\n{tail}",
                target.redacted(),
                READY_TIMEOUT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Resolves when the postmaster has exited.
async fn watch_exit(postmaster: &mut Postmaster) -> ExitStatus {
    loop {
        if let Some(status) = postmaster.try_wait() {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The last `lines` lines of `<dir>/postgres.log` from byte `from` on.
fn log_tail(dir: &Path, from: u64, lines: usize) -> String {
    let mut text = String::new();
    let read = std::fs::File::open(dir.join("postgres.log")).and_then(|mut f| {
        f.seek(SeekFrom::Start(from))?;
        f.read_to_string(&mut text)
    });
    match read {
        Ok(_) => last_lines(&text, lines),
        Err(e) => format!("(postgres.log unreadable: {e})"),
    }
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_24_url_safe_chars() {
        let a = generate_password().unwrap();
        let b = generate_password().unwrap();
        assert_eq!(a.len(), 24);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_ne!(a, b);
    }

    #[test]
    fn options_from_scenario_settings_pick_a_free_port() {
        let settings = EmbeddedSettings {
            auth: AuthMethod::Md5,
            tls: false,
            max_connections: 7,
        };
        assert_eq!(
            EmbeddedOptions::from(&settings),
            EmbeddedOptions {
                auth: AuthMethod::Md5,
                tls: false,
                port: None,
                max_connections: 7
            }
        );
    }

    #[test]
    fn last_lines_keeps_the_end() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(last_lines("a", 5), "a");
    }
}
