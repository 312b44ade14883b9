//! The embedded PgBouncer: the distribution's `pgbouncer` started in front
//! of the embedded PostgreSQL, in a private temporary directory, as the same
//! unprivileged user as the server, with SCRAM (the server's own SCRAM
//! secret in its auth_file, so no password is written anywhere) and the
//! scenario's `[pgbouncer]` settings; stopped and removed on `stop()`, on
//! drop (errors, panics) and so on Ctrl-C, like the server. Also reads its
//! pool figures (`SHOW POOLS`) for the timeline.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, Config, SimpleQueryMessage};

use super::postgres::{self as pg, EmbeddedServer, DBNAME, HOST, USER};
use crate::backend::postgres::{describe_pg_error, Target};
use crate::cleanup;
use crate::error::{self, ResultExt};
use crate::metrics::PoolerStatus;
use crate::scenario::{AuthMethod, PgBouncerSettings};

/// The environment variable naming the `pgbouncer` binary.
pub const PGBOUNCER_BIN_ENV: &str = "POOLBENCH_PGBOUNCER_BIN";

/// How long PgBouncer may take to accept its first client.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// A running throwaway PgBouncer.
pub struct PgBouncer {
    target: Target,
    version: String,
    port: u16,
    child: Option<Child>,
    dir: Option<tempfile::TempDir>,
    /// What a forced exit (a second Ctrl-C) undoes: the process, the
    /// directory.
    forced: Option<cleanup::Registered>,
}

/// SIGTERM: immediate shutdown (SIGINT would wait for clients); then
/// SIGKILL.
const STOP_STEPS: [(libc::c_int, Duration); 2] = [
    (libc::SIGTERM, Duration::from_secs(5)),
    (libc::SIGKILL, Duration::from_secs(5)),
];

impl PgBouncer {
    /// Starts PgBouncer in front of `server` (whose superuser reads the
    /// SCRAM secret). Errors are environment errors (exit 3) and leave
    /// nothing behind.
    pub async fn start(server: &EmbeddedServer, settings: &PgBouncerSettings) -> Result<PgBouncer> {
        let bin = find()?;
        let version = version(&bin)?;
        let run_as = pg::server_user()?;
        let tempdir = tempfile::Builder::new()
            .prefix(pg::PGBOUNCER_PREFIX)
            .tempdir()
            .context("creating a temporary directory for PgBouncer")
            .environment()?;
        let dir = tempdir.path().to_path_buf();
        // Before anything else: a poolbench killed outright leaves this
        // directory to the next embedded start, which removes it when this
        // process and PgBouncer (its pid file says) are gone.
        pg::write_owner(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {}", dir.display()))
            .environment()?;
        pg::chown(&dir, run_as.as_ref())?;

        // The secret the server stores (SCRAM verifier or md5 hash), never
        // the password: PgBouncer checks clients with it and, for SCRAM,
        // logs in to the server with the keys the client proved.
        let admin = server.target().check_reachable().await?;
        let secret: Option<String> = admin
            .query_one(
                "SELECT rolpassword FROM pg_authid WHERE rolname = current_user",
                &[],
            )
            .await
            .map_err(|e| {
                error::environment(format!(
                    "reading the server's auth secret: {}",
                    describe_pg_error(&e)
                ))
            })?
            .get(0);
        let auth_type = match server.options().auth {
            AuthMethod::ScramSha256 => "scram-sha-256",
            AuthMethod::Md5 => "md5",
            // PgBouncer's name for a password sent in clear.
            AuthMethod::Password => "plain",
            AuthMethod::Trust => "trust",
        };
        let userlist = format!("\"{USER}\" \"{}\"\n", secret.unwrap_or_default());
        pg::write_private(
            &dir.join("userlist.txt"),
            userlist.as_bytes(),
            run_as.as_ref(),
        )?;

        let port = pg::free_port()?;
        let tls = server.options().tls;
        let data = server.dir().join("data");
        let mut ini = format!(
            "; Written by poolbench for a throwaway PgBouncer; removed on exit.\n\
             [databases]\n\
             {DBNAME} = host={HOST} port={server_port} dbname={DBNAME}\n\
             [pgbouncer]\n\
             listen_addr = {HOST}\n\
             listen_port = {port}\n\
             unix_socket_dir = {dir}\n\
             auth_type = {auth_type}\n\
             auth_file = {dir}/userlist.txt\n\
             admin_users = {USER}\n\
             pool_mode = {pool_mode}\n\
             default_pool_size = {pool_size}\n\
             max_client_conn = {max_client}\n\
             logfile = {dir}/pgbouncer.log\n\
             pidfile = {dir}/{pid_file}\n\
             ignore_startup_parameters = extra_float_digits\n",
            server_port = server.port(),
            dir = dir.display(),
            pid_file = pg::PGBOUNCER_PID_FILE,
            pool_mode = settings.pool_mode.as_str(),
            pool_size = settings.default_pool_size,
            max_client = settings.max_client_conn,
        );
        if tls {
            // Clients pay TLS to PgBouncer as they would to the server, with
            // the server's certificate (PgBouncer runs as the server's user).
            ini.push_str(&format!(
                "client_tls_sslmode = require\n\
                 client_tls_cert_file = {crt}\n\
                 client_tls_key_file = {key}\n\
                 server_tls_sslmode = require\n",
                crt = data.join("server.crt").display(),
                key = data.join("server.key").display(),
            ));
        }
        let ini_path = dir.join("pgbouncer.ini");
        pg::write_private(&ini_path, ini.as_bytes(), run_as.as_ref())?;

        let log = std::fs::File::create(dir.join("stderr.log"))
            .context("creating PgBouncer's log")
            .environment()?;
        let log_err = log
            .try_clone()
            .context("creating PgBouncer's log")
            .environment()?;
        let mut cmd = Command::new(&bin);
        cmd.arg(&ini_path)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        pg::configure(&mut cmd, run_as.as_ref());
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))
            .environment()?;

        let base = server.target().config();
        let mut config = Config::new();
        config.host(HOST).port(port).user(USER).dbname(DBNAME);
        if let Some(password) = base.get_password() {
            config.password(password);
        }
        if let Some(limit) = base.get_connect_timeout() {
            config.connect_timeout(*limit);
        }
        config.ssl_mode(if tls {
            SslMode::Require
        } else {
            SslMode::Disable
        });
        let forced = cleanup::on_forced_exit({
            let (pid, dir) = (child.id(), dir.clone());
            move || {
                cleanup::stop_process(pid, &STOP_STEPS);
                cleanup::remove_dir(&dir);
            }
        });
        let mut bouncer = PgBouncer {
            target: Target::from_config(config)?,
            version,
            port,
            child: Some(child),
            dir: Some(tempdir),
            forced: Some(forced),
        };
        bouncer.wait_ready().await?;
        Ok(bouncer)
    }

    /// Connects until PgBouncer answers with a real login (it connects to
    /// the server on the way), or it exits, or time is up.
    async fn wait_ready(&mut self) -> Result<()> {
        let started = Instant::now();
        loop {
            match self.target.connect().await {
                Ok(client) => match client.simple_query("SELECT 1").await {
                    Ok(_) => return Ok(()),
                    Err(e) if started.elapsed() > READY_WITHIN => {
                        return Err(self.failed(&describe_pg_error(&e)))
                    }
                    Err(_) => {}
                },
                Err(e) if started.elapsed() > READY_WITHIN => {
                    return Err(self.failed(&e.to_string()))
                }
                Err(_) => {}
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                return Err(self.failed(&format!("it exited ({status})")));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn failed(&self, why: &str) -> anyhow::Error {
        let log = self
            .dir
            .as_ref()
            .map(|d| {
                let read =
                    |name: &str| std::fs::read_to_string(d.path().join(name)).unwrap_or_default();
                // It logs to both; stderr has what comes before the logfile.
                let mut text = read("pgbouncer.log");
                if text.is_empty() {
                    text = read("stderr.log");
                }
                let lines: Vec<&str> = text.lines().collect();
                lines[lines.len().saturating_sub(15)..].join("\n")
            })
            .unwrap_or_default();
        error::environment(format!(
            "the embedded PgBouncer did not start: {why}\nits log ends with:\n{log}"
        ))
    }

    /// Where clients connect: PgBouncer's port, the server's user,
    /// password, database and TLS mode.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// E.g. "1.18.0".
    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id (0 once stopped).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The private directory (configuration, auth_file, log); removed on
    /// stop.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_ref().map(tempfile::TempDir::path)
    }

    /// A connection to PgBouncer's admin console, for [`Console::pools`].
    pub async fn admin(&self) -> Result<Console> {
        let mut config: Config = self.target.config().clone();
        config.dbname("pgbouncer");
        let client = Target::from_config(config)?.connect().await.map_err(|e| {
            error::environment(format!("connecting to PgBouncer's admin console: {e}"))
        })?;
        Ok(Console(client))
    }

    /// Stops PgBouncer and removes its directory. Idempotent, synchronous
    /// (it runs from `Drop` too).
    pub fn stop(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            cleanup::stop_process(child.id(), &STOP_STEPS);
            // Reaped by stop_process unless it outlived SIGKILL's grace.
            let _ = child.wait();
        }
        cleanup::release_dir(&mut self.dir)?;
        self.forced = None;
        Ok(())
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// A connection to PgBouncer's admin console.
pub struct Console(Client);

impl Console {
    /// `SHOW POOLS`, summed over the pools of the run's database (None
    /// when it cannot be read).
    pub async fn pools(&self) -> Option<PoolerStatus> {
        let rows = self.0.simple_query("SHOW POOLS").await.ok()?;
        let mut status = PoolerStatus::default();
        for message in rows {
            if let SimpleQueryMessage::Row(row) = message {
                if row.get("database") != Some(DBNAME) {
                    continue;
                }
                let n = |column: &str| {
                    row.get(column)
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(0)
                };
                status.cl_active += n("cl_active");
                status.cl_waiting += n("cl_waiting");
                status.sv_active += n("sv_active");
                status.sv_idle += n("sv_idle");
            }
        }
        Some(status)
    }
}

/// The binary: `POOLBENCH_PGBOUNCER_BIN` (an error if set and wrong), then
/// `PATH`, then `/usr/sbin` (where Debian puts it, outside a user's PATH).
fn find() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os(PGBOUNCER_BIN_ENV).filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(bin);
        if is_executable(&bin) {
            return Ok(bin);
        }
        return Err(error::environment(format!(
            "{PGBOUNCER_BIN_ENV}={} is not an executable pgbouncer; point it at the binary \
             or unset it to search PATH and /usr/sbin",
            bin.display()
        )));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("pgbouncer"))
        .find(|bin| is_executable(bin))
        .ok_or_else(|| {
            error::environment(format!(
                "a strategy has via = \"pgbouncer\" but PgBouncer is not installed (looked in \
                 PATH and /usr/sbin): `apt-get install pgbouncer`, or set {PGBOUNCER_BIN_ENV} \
                 to its binary"
            ))
        })
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `pgbouncer --version`'s first line, "PgBouncer 1.18.0" → "1.18.0".
fn version(bin: &Path) -> Result<String> {
    let out = Command::new(bin)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version", bin.display()))
        .environment()?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("unknown")
        .to_string())
}
