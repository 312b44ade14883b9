//! The embedded MariaDB (`[database.embedded] engine = "mariadb"`,
//! `poolbench server --engine mariadb`): the machine's own
//! `mariadb-install-db` makes a throwaway data directory in a private
//! temporary directory, `mariadbd --no-defaults` serves it on a free
//! 127.0.0.1 port (as the `mysql` user when poolbench is root) with a
//! generated password (created by an init file that is removed once the
//! server is up), a certificate made by the embedded PostgreSQL's code and
//! the scenario's max_connections; [`MariaDb::stop`], or a drop, stops it
//! and removes the directory.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::postgres::{
    chown, configure_dying_on, free_port, generate_certificate, generate_password, last_lines,
    lookup_user, refuse_taken_port, remove_leftovers, write_owner, write_private, Postmaster,
    Resources, RunAs, HOST, LOG_TAIL_LINES, MARIADB_PID_FILE,
};
use crate::backend::mysql::{self, SslMode, Target};
use crate::cleanup;
use crate::error::{self, ResultExt};
use crate::scenario::MARIADB_MAX_CONNECTIONS;

/// The user poolbench creates and connects as, and its database.
pub const USER: &str = "poolbench";
pub const DBNAME: &str = "poolbench";
/// The authentication plugin of that user (MariaDB's default for a
/// password).
pub const AUTH_PLUGIN: &str = "mysql_native_password";
/// Where the binaries are looked for besides `PATH` (Debian puts
/// `mariadbd` in /usr/sbin, outside a user's PATH).
const SBIN_DIRS: [&str; 2] = ["/usr/sbin", "/usr/local/sbin"];
const INSTALL_HINT: &str = "install MariaDB's server (Debian, Ubuntu: `apt-get install \
    mariadb-server`), or give a mysql:// DSN with --dsn";
/// mariadbd shuts down cleanly on SIGTERM (it ignores SIGINT).
const STOP_STEPS: [(libc::c_int, Duration); 2] = [
    (libc::SIGTERM, Duration::from_secs(15)),
    (libc::SIGKILL, Duration::from_secs(5)),
];
const START_LIMIT: Duration = Duration::from_secs(60);
/// The start of every embedded MariaDB directory's name.
const PREFIX: &str = mysql::THROWAWAY_DIR_PREFIX;

/// What kind of MariaDB to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MariaDbOptions {
    pub tls: bool,
    /// `None`: a free port, chosen at start.
    pub port: Option<u16>,
    pub max_connections: u32,
}

/// A running throwaway MariaDB.
pub struct MariaDb {
    target: Target,
    password: String,
    port: u16,
    version: String,
    dir: PathBuf,
    tls: bool,
    resources: Resources,
}

impl std::fmt::Debug for MariaDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MariaDb")
            .field("target", &self.target)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// A binary on PATH or in the sbin directories; exit 3 with the install
/// hint when it is not there.
fn find_binary(name: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(SBIN_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            error::environment(format!(
                "the embedded MariaDB needs `{name}`, which is not installed: {INSTALL_HINT}"
            ))
        })
}

/// As root, the server runs as `mysql` (mariadbd refuses root).
fn server_user() -> Result<Option<RunAs>> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    lookup_user("mysql")?.map(Some).ok_or_else(|| {
        error::environment(
            "poolbench runs as root, and MariaDB refuses to; no `mysql` user exists to run \
             it as (the mariadb-server package creates one)",
        )
    })
}

impl MariaDb {
    /// Makes the data directory, starts the server and waits until the
    /// generated user logs in. Every error is tagged environment (exit 3)
    /// and leaves nothing behind.
    pub async fn start(opts: &MariaDbOptions) -> Result<MariaDb> {
        if let Some(port) = opts.port {
            refuse_taken_port(port)?;
        }
        let (lo, hi) = MARIADB_MAX_CONNECTIONS;
        if !(lo..=hi).contains(&i64::from(opts.max_connections)) {
            return Err(error::bad_input(format!(
                "max_connections {}: MariaDB takes {lo} to {hi}",
                opts.max_connections
            )));
        }
        let install_db = find_binary("mariadb-install-db")?;
        let mariadbd = find_binary("mariadbd")?;
        let run_as = server_user()?;
        // What a poolbench killed outright (SIGKILL) left behind.
        remove_leftovers(&std::env::temp_dir());
        let tempdir = tempfile::Builder::new()
            .prefix(PREFIX)
            .tempdir()
            .context("creating a temporary directory for the embedded MariaDB")
            .environment()?;
        let dir = tempdir.path().to_path_buf();
        // Whichever mariadbd runs in it then (its pid file says), killed at
        // once (the data is a throwaway), and the directory.
        let forced = cleanup::on_forced_exit({
            let dir = dir.clone();
            move || {
                let pid = std::fs::read_to_string(dir.join(MARIADB_PID_FILE))
                    .ok()
                    .and_then(|t| t.trim().parse::<u32>().ok());
                if let Some(pid) = pid {
                    cleanup::stop_process(pid, &STOP_STEPS[1..]);
                }
                cleanup::remove_dir(&dir);
            }
        });
        let mut resources = Resources {
            server: None,
            dir: Some(tempdir),
            forced: Some(forced),
            stop: &STOP_STEPS,
        };
        write_owner(&dir)?;
        // The socket, the key and the init file live here: only the server
        // user may enter.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {}", dir.display()))
            .environment()?;
        chown(&dir, run_as.as_ref())?;
        // Its own temporary directory: a starting mariadbd deletes the
        // `#sql*` files it finds in its tmpdir, which in a shared /tmp are
        // another server's temporary tables.
        let tmp = dir.join("tmp");
        std::fs::create_dir(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))
            .environment()?;
        chown(&tmp, run_as.as_ref())?;
        let tmpdir = format!("--tmpdir={}", tmp.display());

        let mut install = Command::new(&install_db);
        install
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.join("data").display()))
            .arg("--auth-root-authentication-method=socket")
            .arg("--skip-test-db")
            // Passed on to the bootstrap server.
            .arg(&tmpdir)
            .stdin(Stdio::null());
        configure_dying_on(&mut install, run_as.as_ref(), libc::SIGTERM);
        let out = tokio::process::Command::from(install)
            .output()
            .await
            .with_context(|| format!("running {}", install_db.display()))
            .environment()?;
        if !out.status.success() {
            return Err(error::environment(format!(
                "{} failed ({}):\n{}",
                install_db.display(),
                out.status,
                last_lines(&String::from_utf8_lossy(&out.stderr), LOG_TAIL_LINES)
            )));
        }

        let password = generate_password()?;
        let init = dir.join("init.sql");
        // The password is URL-safe base64: nothing to quote in SQL. Only
        // the database's privileges, so the user cannot pass
        // max_connections with the slot MariaDB keeps for SUPER.
        write_private(
            &init,
            format!(
                "CREATE DATABASE IF NOT EXISTS {DBNAME};\n\
                 CREATE USER '{USER}'@'%' IDENTIFIED BY '{password}';\n\
                 GRANT ALL PRIVILEGES ON {DBNAME}.* TO '{USER}'@'%';\n"
            )
            .as_bytes(),
            run_as.as_ref(),
        )?;
        if opts.tls {
            let cert = generate_certificate().environment()?;
            write_private(&dir.join("server.crt"), &cert.cert_pem, run_as.as_ref())?;
            write_private(&dir.join("server.key"), &cert.key_pem, run_as.as_ref())?;
            write_private(&dir.join("ca.pem"), &cert.ca_pem, run_as.as_ref())?;
        }
        let port = match opts.port {
            Some(port) => port,
            None => free_port()?,
        };
        let mut cmd = Command::new(&mariadbd);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", dir.join("data").display()))
            .arg(format!("--socket={}", dir.join("mariadbd.sock").display()))
            .arg(format!(
                "--pid-file={}",
                dir.join(MARIADB_PID_FILE).display()
            ))
            .arg(format!("--log-error={}", dir.join("error.log").display()))
            .arg(&tmpdir)
            .arg(format!("--init-file={}", init.display()))
            .arg(format!("--bind-address={HOST}"))
            .arg(format!("--port={port}"))
            .arg(format!("--max-connections={}", opts.max_connections))
            .arg("--skip-name-resolve")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if opts.tls {
            for (flag, file) in [
                ("ssl-cert", "server.crt"),
                ("ssl-key", "server.key"),
                ("ssl-ca", "ca.pem"),
            ] {
                cmd.arg(format!("--{flag}={}", dir.join(file).display()));
            }
        }
        configure_dying_on(&mut cmd, run_as.as_ref(), libc::SIGTERM);
        let server = resources.server.insert(
            Postmaster::spawn(cmd)
                .with_context(|| format!("starting {}", mariadbd.display()))
                .environment()?,
        );
        let target = mysql::Target::new(
            mysql::TargetDetails {
                host: HOST.into(),
                port,
                user: USER.into(),
                has_password: true,
                db: Some(DBNAME.into()),
                ssl_mode: if opts.tls {
                    SslMode::Required
                } else {
                    SslMode::Disabled
                },
                ssl_ca: None,
                connect_timeout: mysql::DEFAULT_CONNECT_TIMEOUT,
                source: "embedded".into(),
            },
            Some(password.clone()),
        );
        let started = Instant::now();
        let mut conn = loop {
            if let Some(status) = server.try_wait() {
                return Err(error::environment(format!(
                    "{} exited at start ({status}); its log ends with:\n{}",
                    mariadbd.display(),
                    log_tail(&dir)
                )));
            }
            match target.connect().await {
                Ok(conn) => break conn,
                Err(e) if started.elapsed() > START_LIMIT => {
                    return Err(error::environment(format!(
                        "the embedded MariaDB did not accept a connection within {}s: {}; its \
                         log ends with:\n{}",
                        START_LIMIT.as_secs(),
                        mysql::describe(&e),
                        log_tail(&dir)
                    )));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        std::fs::remove_file(&init)
            .with_context(|| format!("removing {}", init.display()))
            .environment()?;
        let version = {
            use mysql_async::prelude::Queryable;
            conn.query_first::<String, _>("SELECT VERSION()")
                .await
                .ok()
                .flatten()
                .unwrap_or_else(|| "unknown".into())
        };
        let _ = conn.disconnect().await;
        Ok(MariaDb {
            target,
            password,
            port,
            version,
            dir,
            tls: opts.tls,
            resources,
        })
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The DSN with the password in clear: only for `poolbench server`'s
    /// output and for tests. Everything else prints [`Target::redacted`].
    pub fn dsn_with_password(&self) -> String {
        let mode = if self.tls { "REQUIRED" } else { "DISABLED" };
        format!(
            "mysql://{USER}:{}@{HOST}:{}/{DBNAME}?ssl-mode={mode}",
            self.password, self.port
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The generated password: only for `poolbench server`'s output.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The CA that signed the server's certificate, when it serves TLS:
    /// `ssl-ca` for a client that checks the certificate.
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.tls.then(|| self.dir.join("ca.pem"))
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server's exit status if it has exited; None while it runs.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.resources
            .server
            .as_mut()
            .and_then(Postmaster::try_wait)
    }

    /// Stops the server and removes its directory.
    pub async fn stop(mut self) -> Result<()> {
        tokio::task::spawn_blocking(move || self.resources.release())
            .await
            .context("stopping the embedded MariaDB")?
    }
}

fn log_tail(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
    last_lines(&text, LOG_TAIL_LINES)
}
