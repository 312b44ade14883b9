//! What poolbench must undo even when it exits at once. A second Ctrl-C
//! (or SIGTERM) does not wait for the graceful drain (session.rs); the
//! servers poolbench started would outlive it, so each registers here, for
//! as long as it runs, how to stop its process and remove its directory.
//! [`force_exit`] runs what is registered, then exits.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

type Undo = Box<dyn FnOnce() + Send>;

static UNDO: Mutex<BTreeMap<u64, Undo>> = Mutex::new(BTreeMap::new());
static NEXT: AtomicU64 = AtomicU64::new(0);
static EXITING: AtomicBool = AtomicBool::new(false);

/// An undo registered with [`on_forced_exit`]; dropping it unregisters it,
/// once its owner has stopped and removed what it covers.
#[must_use = "dropping it unregisters the undo"]
#[derive(Debug)]
pub struct Registered(u64);

impl Drop for Registered {
    fn drop(&mut self) {
        undos().remove(&self.0);
    }
}

/// Registers `undo` to run if poolbench is forced to exit.
pub fn on_forced_exit(undo: impl FnOnce() + Send + 'static) -> Registered {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    undos().insert(id, Box::new(undo));
    Registered(id)
}

/// Runs every registered undo, the newest first (a pooler before the
/// server behind it), and exits with `code`.
pub fn force_exit(code: i32) -> ! {
    // One caller exits; another (a second listener) waits for that.
    if EXITING.swap(true, Ordering::SeqCst) {
        loop {
            std::thread::park();
        }
    }
    let all = std::mem::take(&mut *undos());
    for (_, undo) in all.into_iter().rev() {
        undo();
    }
    std::process::exit(code)
}

fn undos() -> MutexGuard<'static, BTreeMap<u64, Undo>> {
    // The list stays valid after a panic elsewhere.
    UNDO.lock().unwrap_or_else(|e| e.into_inner())
}

/// Stops process `pid` if it is a child of poolbench: each signal of
/// `steps` in turn, waiting up to its grace for the process to exit,
/// reaping it. Returns once it is gone (or the last grace has passed).
pub fn stop_process(pid: u32, steps: &[(libc::c_int, Duration)]) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    if pid <= 0 {
        return;
    }
    for &(signal, grace) in steps {
        if gone(pid) {
            return;
        }
        // SAFETY: a plain syscall on a child of ours that has not been
        // reaped (checked just before), so the pid is still its.
        unsafe {
            libc::kill(pid, signal);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if gone(pid) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Whether `pid` is gone: exited (and now reaped), or not a child of ours
/// at all (reaped by its owner meanwhile, or a stale pid), which is never
/// signalled.
fn gone(pid: libc::pid_t) -> bool {
    let mut status = 0;
    // SAFETY: WNOHANG never blocks; it reaps `pid` only if it is an exited
    // child of ours.
    unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) != 0 }
}

/// Removes a temporary directory its owner is done with. One already gone
/// is no error: a forced exit on another thread may have removed it first.
fn close_dir(dir: tempfile::TempDir) -> std::io::Result<()> {
    match dir.close() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Removes a server's directory, if it still has one (an environment
/// error naming it when it cannot be): what `stop` and `Drop` of each
/// embedded server end with. Idempotent.
pub fn release_dir(dir: &mut Option<tempfile::TempDir>) -> anyhow::Result<()> {
    use crate::error::ResultExt;
    use anyhow::Context;
    let Some(dir) = dir.take() else {
        return Ok(());
    };
    let path = dir.path().to_path_buf();
    close_dir(dir)
        .with_context(|| format!("removing {}", path.display()))
        .environment()
}

/// Removes `dir` and everything in it; what cannot be removed stays (the
/// next embedded start removes a dead run's cluster).
pub fn remove_dir(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_is_stopped_and_reaped() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let started = Instant::now();
        stop_process(pid, &[(libc::SIGTERM, Duration::from_secs(5))]);
        assert!(started.elapsed() < Duration::from_secs(5));
        // Reaped: no such process any more, not even a zombie.
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
        assert!(child.try_wait().is_err(), "already reaped");
    }

    #[test]
    fn an_unregistered_undo_does_not_run() {
        let registered = on_forced_exit(|| {});
        let id = registered.0;
        assert!(undos().contains_key(&id));
        drop(registered);
        assert!(!undos().contains_key(&id));
    }
}
