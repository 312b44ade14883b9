//! Temporary clusters left behind by a poolbench that was killed outright
//! (SIGKILL, a power cut): its directory outlives it, since only a running
//! poolbench removes its own. Each cluster directory is named with
//! [`PREFIX`] and holds an owner file ([`OWNER_FILE`]) with the pid and
//! start time of the poolbench that made it; the next embedded start
//! removes the directories whose owner provably is gone: the owner file is
//! ours (same user), its process no longer exists (or the pid now belongs to
//! a process started at another time), and no postmaster still runs in it.
//! Anything else in the temporary directory is left alone.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{Context, Result};

use crate::error::ResultExt;

/// The start of every embedded cluster directory's name.
pub const PREFIX: &str = "poolbench-pg-";
/// The owner file in a cluster directory.
pub const OWNER_FILE: &str = "poolbench.owner";

/// Writes the owner file of this process into `dir` (before anything else
/// goes into it, so a directory without one is never taken for stale).
pub fn write_owner(dir: &Path) -> Result<()> {
    let pid = std::process::id();
    let start = start_time(pid).unwrap_or_default();
    fs::write(dir.join(OWNER_FILE), format!("pid={pid}\nstart={start}\n"))
        .with_context(|| format!("writing {}", dir.join(OWNER_FILE).display()))
        .environment()
}

/// Removes the cluster directories in `tmp` whose owner is gone; returns
/// the ones removed. Never fails: a directory it cannot judge or remove
/// is left as it is.
pub fn remove_dead(tmp: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = fs::read_dir(tmp) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let named = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(PREFIX));
        // Not a symlink: only a real directory of ours is removed.
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if named && is_dir && is_stale(&path) && fs::remove_dir_all(&path).is_ok() {
            removed.push(path);
        }
    }
    removed
}

fn is_stale(dir: &Path) -> bool {
    let owner_file = dir.join(OWNER_FILE);
    let Ok(meta) = fs::symlink_metadata(&owner_file) else {
        return false;
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if !meta.is_file() || meta.uid() != me {
        return false;
    }
    let Ok(text) = fs::read_to_string(&owner_file) else {
        return false;
    };
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let (Some(pid), Some(start)) = (field("pid"), field("start")) else {
        return false;
    };
    if owner_alive(pid, start) {
        return false;
    }
    // The postmaster is told to stop when its poolbench dies, and may still
    // be shutting down: its directory waits for the next start.
    !postmaster_alive(&dir.join("data"))
}

/// Whether process `pid` is alive and is the one started at `start`.
fn owner_alive(pid: u64, start: u64) -> bool {
    let Ok(pid32) = u32::try_from(pid) else {
        return false;
    };
    if !alive(pid32) {
        return false;
    }
    // A pid can be reused: then it started at another time.
    match start_time(pid32) {
        Some(now) if start != 0 => now == start,
        _ => true,
    }
}

fn postmaster_alive(data: &Path) -> bool {
    let Ok(text) = fs::read_to_string(data.join("postmaster.pid")) else {
        return false;
    };
    text.lines()
        .next()
        .and_then(|l| l.trim().trim_start_matches('-').parse::<u32>().ok())
        .is_some_and(alive)
}

fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// A process's start time (clock ticks since boot, /proc/PID/stat field
/// 22), or None where /proc does not say.
fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count from its ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dead_owners_clusters_are_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let make = |name: &str, owner: Option<String>| {
            let dir = tmp.path().join(name);
            fs::create_dir_all(dir.join("data")).unwrap();
            if let Some(text) = owner {
                fs::write(dir.join(OWNER_FILE), text).unwrap();
            }
            dir
        };
        let me = std::process::id();
        let mine = start_time(me).unwrap();
        // A pid that does not exist (beyond pid_max).
        let dead = make(
            &format!("{PREFIX}dead"),
            Some("pid=4194399\nstart=1\n".into()),
        );
        let alive_owner = make(
            &format!("{PREFIX}alive"),
            Some(format!("pid={me}\nstart={mine}\n")),
        );
        let reused = make(
            &format!("{PREFIX}reused"),
            Some(format!("pid={me}\nstart={}\n", mine + 1)),
        );
        let unmarked = make(&format!("{PREFIX}unmarked"), None);
        let other = make("poolbench-other", Some("pid=4194399\nstart=1\n".into()));
        let running = make(
            &format!("{PREFIX}running"),
            Some("pid=4194399\nstart=1\n".into()),
        );
        fs::write(running.join("data/postmaster.pid"), format!("{me}\n")).unwrap();

        let mut removed = remove_dead(tmp.path());
        removed.sort();
        let mut expected = vec![dead.clone(), reused.clone()];
        expected.sort();
        assert_eq!(removed, expected);
        assert!(!dead.exists() && !reused.exists());
        assert!(alive_owner.exists() && unmarked.exists() && other.exists() && running.exists());
    }

    #[test]
    fn the_owner_file_names_this_process() {
        let tmp = tempfile::tempdir().unwrap();
        write_owner(tmp.path()).unwrap();
        let text = fs::read_to_string(tmp.path().join(OWNER_FILE)).unwrap();
        assert!(text.starts_with(&format!("pid={}\n", std::process::id())));
        assert!(!is_stale(tmp.path()));
    }
}
