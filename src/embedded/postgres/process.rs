//! The operating-system side of the embedded server: which user initdb and
//! postgres run as, the postmaster's command line (from [`EmbeddedOptions`]),
//! how it is spawned, and how it is stopped.
//!
//! Stopping is synchronous on purpose (libc signals, `try_wait` polling and
//! `std::thread::sleep`): `Drop` must work without a tokio runtime, during a
//! panic's unwinding or after the runtime is gone.

use std::ffi::CString;
use std::fs::OpenOptions;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::options::{EmbeddedOptions, RunAs, HOST, THROWAWAY_SETTING};
use crate::cleanup;
use crate::error::{self, ResultExt};
use crate::scenario::AuthMethod;

/// Grace periods of the shutdown sequence: fast shutdown (SIGINT), then
/// immediate shutdown (SIGQUIT), then SIGKILL.
pub const SHUTDOWN_STEPS: [(libc::c_int, Duration); 3] = [
    (libc::SIGINT, Duration::from_secs(10)),
    (libc::SIGQUIT, Duration::from_secs(5)),
    (libc::SIGKILL, Duration::from_secs(5)),
];
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// `None` when poolbench is not root: the server then runs as the current
/// user. As root: the `postgres` system user, else `nobody`.
pub fn server_user() -> Result<Option<RunAs>> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    for name in ["postgres", "nobody"] {
        if let Some(user) = lookup_user(name)? {
            return Ok(Some(user));
        }
    }
    Err(error::environment(
        "poolbench runs as root, and PostgreSQL refuses to; \
         neither a `postgres` nor a `nobody` user exists to run it as \
         (create one, e.g. `useradd --system postgres`, or run poolbench as another user)",
    ))
}

/// getpwnam_r: the reentrant form, since tests start servers from several
/// threads at once.
pub fn lookup_user(name: &str) -> Result<Option<RunAs>> {
    let c_name = CString::new(name).context("user name with a NUL byte")?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: passwd is plain old data; an all-zero value is valid and is
    // only read after getpwnam_r filled it in.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call, buf.len() is its size.
    let rc = unsafe {
        libc::getpwnam_r(
            c_name.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc))
            .with_context(|| format!("looking up the user `{name}`"))
            .environment();
    }
    if result.is_null() {
        return Ok(None);
    }
    Ok(Some(RunAs {
        name: name.to_string(),
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
    }))
}

/// Gives `path` to the server user, when there is one.
pub fn chown(path: &Path, run_as: Option<&RunAs>) -> Result<()> {
    if let Some(user) = run_as {
        std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))
            .with_context(|| format!("giving {} to the user {}", path.display(), user.name))
            .environment()?;
    }
    Ok(())
}

/// Prepares a command for initdb or postgres:
/// - as the server user (std clears the supplementary groups when root
///   changes the uid, so root's groups are not inherited);
/// - in its own process group, so a terminal's Ctrl-C reaches poolbench only,
///   which then stops the server in order;
/// - on Linux, with SIGINT (fast shutdown) as its parent-death signal, so it
///   goes down if poolbench is killed. The signal follows the *thread* that
///   spawned it: spawn from a long-lived thread (a runtime worker or the
///   main thread), never from `spawn_blocking`.
pub fn configure(cmd: &mut Command, run_as: Option<&RunAs>) {
    configure_dying_on(cmd, run_as, libc::SIGINT);
}

/// [`configure`] with another parent-death signal: the one the server
/// shuts down on (MariaDB's is SIGTERM).
pub fn configure_dying_on(cmd: &mut Command, run_as: Option<&RunAs>, death_signal: libc::c_int) {
    if let Some(user) = run_as {
        cmd.uid(user.uid).gid(user.gid);
    }
    cmd.process_group(0);
    #[cfg(target_os = "linux")]
    {
        let parent = std::process::id();
        // SAFETY: the closure runs between fork and exec, after the uid
        // change (which would clear the death signal); it only makes
        // async-signal-safe calls and does not allocate.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, death_signal) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // poolbench died before the prctl: do not outlive it.
                if libc::getppid() as u32 != parent {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
    }
}

/// The postmaster's command line. Settings are production defaults except:
/// - `superuser_reserved_connections` is lowered to `max_connections - 1`
///   when that is below PostgreSQL's 3, which refuses to start otherwise;
///   so `--max-connections 1` works (with no slot reserved for superusers);
/// - listening on 127.0.0.1 only, the socket in the private directory;
/// - [`THROWAWAY_SETTING`] marks it as poolbench's throwaway;
/// - with `setup_durations` (PostgreSQL >= 18), `log_connections =
///   setup_durations`: each connection's fork and authentication times in
///   postgres.log, its pid in the line's prefix (`backend::postgres::durations`).
pub fn postgres_command(
    bin_dir: &Path,
    dir: &Path,
    port: u16,
    opts: &EmbeddedOptions,
    run_as: Option<&RunAs>,
    setup_durations: bool,
) -> Result<Command> {
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
        AuthMethod::ScramSha256 | AuthMethod::Password | AuthMethod::Trust => "scram-sha-256",
    };
    let mut cmd = Command::new(bin_dir.join("postgres"));
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
    setting(THROWAWAY_SETTING, &"on");
    if setup_durations {
        setting("log_connections", &"setup_durations");
        setting("log_line_prefix", &"%m [%p] ");
    }
    setting("ssl", &if opts.tls { "on" } else { "off" });
    if opts.tls {
        setting("ssl_cert_file", &data.join("server.crt").display());
        setting("ssl_key_file", &data.join("server.key").display());
        if opts.client_certificates {
            setting("ssl_ca_file", &data.join("ca.crt").display());
        }
        if let Some(version) = opts.tls_version {
            setting("ssl_min_protocol_version", &version.postgres_name());
            setting("ssl_max_protocol_version", &version.postgres_name());
        }
    }
    cmd.current_dir(dir)
        .env_remove("PGDATA")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    configure(&mut cmd, run_as);
    Ok(cmd)
}

/// Stops the postmaster `pid` at once, as a forced exit must: immediate
/// shutdown (no checkpoint: the cluster is thrown away), then SIGKILL.
pub fn stop_now(pid: u32) {
    crate::cleanup::stop_process(pid, &SHUTDOWN_STEPS[1..]);
}

/// A running postmaster.
#[derive(Debug)]
pub struct Postmaster {
    child: Child,
}

impl Postmaster {
    pub fn spawn(mut cmd: Command) -> io::Result<Postmaster> {
        Ok(Postmaster {
            child: cmd.spawn()?,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if it has exited (and is reaped); `None` while running.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        match self.child.try_wait() {
            Ok(status) => status,
            // ECHILD: someone else reaped it, so it is gone.
            Err(_) => Some(ExitStatus::default()),
        }
    }

    /// Fast shutdown, then harder signals if it lingers; returns once the
    /// postmaster is reaped. Idempotent: a reaped child is never signalled
    /// again (its pid may have been reused).
    pub fn shutdown(&mut self) {
        self.shutdown_from(0);
    }

    /// Immediate shutdown (SIGQUIT: no checkpoint, crash recovery on the
    /// next start), then SIGKILL if it lingers.
    pub fn shutdown_immediate(&mut self) {
        self.shutdown_from(1);
    }

    fn shutdown_from(&mut self, first_step: usize) {
        self.shutdown_with(&SHUTDOWN_STEPS[first_step..]);
    }

    /// Sends each signal in turn, waiting its grace period for the process
    /// to exit, then waits for it: another server's shutdown sequence
    /// (MariaDB's is SIGTERM, then SIGKILL).
    pub fn shutdown_with(&mut self, steps: &[(libc::c_int, Duration)]) {
        for &(signal, grace) in steps {
            if self.try_wait().is_some() {
                return;
            }
            let pid = self.child.id() as libc::pid_t;
            // SAFETY: a plain syscall on a pid we spawned and have not
            // reaped, so it is still ours. Backends make themselves session
            // leaders, so a process-group signal would not reach them; they
            // exit on their own once the postmaster is gone.
            unsafe {
                libc::kill(pid, signal);
            }
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if self.try_wait().is_some() {
                    return;
                }
                std::thread::sleep(POLL_INTERVAL);
            }
        }
        let _ = self.child.wait();
    }
}

/// What an embedded server leaves to undo: its process, then its
/// directory. `Drop` covers every exit path, failures inside a server's
/// start included; `forced` is the undo a forced exit (a second Ctrl-C)
/// runs, since it cannot wait for either. Shared by the embedded
/// PostgreSQL and MariaDB, which differ only in how they are stopped.
pub struct Resources {
    pub server: Option<Postmaster>,
    pub dir: Option<tempfile::TempDir>,
    pub forced: Option<cleanup::Registered>,
    /// The signals that stop the server, each with its grace period.
    pub stop: &'static [(libc::c_int, Duration)],
}

impl Resources {
    /// Stops the server, then removes the directory. Idempotent.
    pub fn release(&mut self) -> Result<()> {
        if let Some(mut server) = self.server.take() {
            server.shutdown_with(self.stop);
        }
        cleanup::release_dir(&mut self.dir)?;
        self.forced = None;
        Ok(())
    }
}

impl Drop for Resources {
    fn drop(&mut self) {
        let _ = self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_runs_the_server_as_a_system_user() {
        let user = server_user().unwrap();
        // SAFETY: no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let user = user.unwrap();
            assert_ne!(user.uid, 0);
            assert!(user.name == "postgres" || user.name == "nobody");
        } else {
            assert_eq!(user, None);
        }
    }

    #[test]
    fn unknown_user_is_none() {
        assert_eq!(lookup_user("no-such-user-poolbench").unwrap(), None);
    }

    #[test]
    fn shutdown_escalates_and_reaps() {
        // A child that ignores SIGINT and SIGQUIT would take 15 s; `sleep`
        // dies on the first SIGINT.
        let mut cmd = Command::new("sleep");
        cmd.arg("60");
        configure(&mut cmd, None);
        let mut pm = Postmaster::spawn(cmd).unwrap();
        let pid = pm.pid() as libc::pid_t;
        let started = Instant::now();
        pm.shutdown();
        assert!(started.elapsed() < Duration::from_secs(5));
        // SAFETY: probing a pid.
        let rc = unsafe { libc::kill(pid, 0) };
        assert_eq!(rc, -1);
        assert_eq!(io::Error::last_os_error().raw_os_error(), Some(libc::ESRCH));
        pm.shutdown(); // idempotent
    }
}
