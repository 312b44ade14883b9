//! Temporary clusters left behind by a poolbench that was killed outright
//! (SIGKILL, a power cut): its directory outlives it, since only a running
//! poolbench removes its own. Each cluster directory is named with
//! [`PREFIX`] and holds an owner file ([`OWNER_FILE`]) with the pid and
//! start time of the poolbench that made it; the next embedded start
//! removes the directories whose owner provably is gone: the owner file is
//! ours (same user), its process no longer exists (or the pid now belongs to
//! a process started at another time), and no postmaster still runs in it.
//!
//! Builds of poolbench from before the owner file named their clusters
//! `poolbench-XXXXXX` (six random characters) and wrote no owner: such a
//! directory is removed when it holds a cluster (`data/PG_VERSION`) and a
//! `postgres.log` of ours (same user), no postmaster runs in it, no
//! process names it on its command line (an old build's initdb or
//! postgres), and nothing in it changed for [`LEGACY_QUIET`] (an old build
//! between making the directory and starting its server).
//! Anything else in the temporary directory is left alone.
//!
//! The embedded PgBouncer's and MariaDB's directories are judged the same
//! way (an owner file, and the server's pid file), and every embedded
//! start removes the leftovers of all three ([`remove_leftovers`]): a
//! poolbench killed while PgBouncer ran leaves its directory to the next
//! run that starts any embedded server.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};

use crate::backend::mysql::THROWAWAY_DIR_PREFIX;
use crate::error::ResultExt;

/// The start of every embedded cluster directory's name.
pub const PREFIX: &str = "poolbench-pg-";
/// The owner file in a cluster directory.
pub const OWNER_FILE: &str = "poolbench.owner";
/// The start of the embedded PgBouncer's directory's name, and its pid
/// file there (`pidfile` in its configuration).
pub const PGBOUNCER_PREFIX: &str = "poolbench-pgbouncer-";
pub const PGBOUNCER_PID_FILE: &str = "pgbouncer.pid";
/// The embedded MariaDB's pid file in its directory (named with
/// `backend::mysql::THROWAWAY_DIR_PREFIX`).
pub const MARIADB_PID_FILE: &str = "mariadbd.pid";
/// The start of the cluster directories of builds without an owner file.
const LEGACY_PREFIX: &str = "poolbench-";
/// How long an unowned cluster directory must have been unchanged before
/// it is taken for stale: far longer than an old build takes from making
/// it to starting the postmaster (which then keeps it alive).
const LEGACY_QUIET: Duration = Duration::from_secs(15 * 60);

/// Writes the owner file of this process into `dir` (before anything else
/// goes into it, so a directory without one is never taken for stale).
pub fn write_owner(dir: &Path) -> Result<()> {
    let pid = std::process::id();
    let start = start_time(pid).unwrap_or_default();
    fs::write(dir.join(OWNER_FILE), format!("pid={pid}\nstart={start}\n"))
        .with_context(|| format!("writing {}", dir.join(OWNER_FILE).display()))
        .environment()
}

/// Removes every embedded server's directory in `tmp` whose poolbench is
/// gone: PostgreSQL's clusters, PgBouncer's and MariaDB's directories.
/// Never fails.
pub fn remove_leftovers(tmp: &Path) -> Vec<std::path::PathBuf> {
    let mut removed = remove_dead(tmp);
    for (prefix, pid_file) in [
        (PGBOUNCER_PREFIX, PGBOUNCER_PID_FILE),
        (THROWAWAY_DIR_PREFIX, MARIADB_PID_FILE),
    ] {
        removed.extend(remove_dead_servers(tmp, prefix, Path::new(pid_file)));
    }
    removed
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
        let name = entry.file_name();
        let name = name.to_str().unwrap_or_default();
        // Not a symlink: only a real directory of ours is removed.
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let stale = if name.starts_with(PREFIX) {
            is_stale(&path)
        } else {
            is_legacy_name(name) && is_stale_legacy(&path, SystemTime::now())
        };
        if is_dir && stale && fs::remove_dir_all(&path).is_ok() {
            removed.push(path);
        }
    }
    removed
}

/// [`remove_dead`] for another server's directories (the embedded
/// MariaDB's): named with `prefix`, with an owner file, and the server's pid
/// on the first line of `pid_file` under each.
pub fn remove_dead_servers(tmp: &Path, prefix: &str, pid_file: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = fs::read_dir(tmp) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let named = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(prefix));
        // Not a symlink: only a real directory of ours is removed.
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if named
            && is_dir
            && owner_gone(&path)
            && !pid_in(&path.join(pid_file)).is_some_and(alive)
            && fs::remove_dir_all(&path).is_ok()
        {
            removed.push(path);
        }
    }
    removed
}

/// `poolbench-` and six letters or digits, as tempfile named them.
fn is_legacy_name(name: &str) -> bool {
    name.strip_prefix(LEGACY_PREFIX)
        .is_some_and(|rest| rest.len() == 6 && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Whether an unowned cluster directory of an older build is provably
/// abandoned at `now` (see the module's comment).
fn is_stale_legacy(dir: &Path, now: SystemTime) -> bool {
    let data = dir.join("data");
    let log = dir.join("postgres.log");
    if fs::symlink_metadata(dir.join(OWNER_FILE)).is_ok()
        || !data.join("PG_VERSION").is_file()
        || !owned_by_me(&log)
    {
        return false;
    }
    // The newest change to the directory, its cluster or its log.
    let changed = [dir, &data, &log]
        .iter()
        .filter_map(|p| fs::metadata(p).and_then(|m| m.modified()).ok())
        .max();
    let quiet = changed
        .and_then(|t| now.duration_since(t).ok())
        .is_some_and(|age| age >= LEGACY_QUIET);
    quiet && !postmaster_alive(&data) && !named_by_a_process(dir)
}

/// Whether `path` is a plain file owned by the user running poolbench.
fn owned_by_me(path: &Path) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    fs::symlink_metadata(path).is_ok_and(|m| m.is_file() && m.uid() == me)
}

/// Whether a running process has `dir` on its command line.
fn named_by_a_process(dir: &Path) -> bool {
    let needle = dir.as_os_str().as_encoded_bytes();
    let Ok(procs) = fs::read_dir("/proc") else {
        // Without /proc nothing can be ruled out.
        return true;
    };
    procs.flatten().any(|p| {
        fs::read(p.path().join("cmdline"))
            .is_ok_and(|c| c.windows(needle.len()).any(|w| w == needle))
    })
}

fn is_stale(dir: &Path) -> bool {
    // The postmaster is told to stop when its poolbench dies, and may still
    // be shutting down: its directory waits for the next start.
    owner_gone(dir) && !postmaster_alive(&dir.join("data"))
}

/// Whether the directory's owner file is ours and names a poolbench that
/// is gone.
fn owner_gone(dir: &Path) -> bool {
    let owner_file = dir.join(OWNER_FILE);
    if !owned_by_me(&owner_file) {
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
    !owner_alive(pid, start)
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
    postmaster_pid(data).is_some_and(alive)
}

/// The pid the postmaster of cluster `data` wrote, if it wrote one.
pub fn postmaster_pid(data: &Path) -> Option<u32> {
    pid_in(&data.join("postmaster.pid"))
}

/// The pid on the first line of a server's pid file.
fn pid_in(file: &Path) -> Option<u32> {
    let text = fs::read_to_string(file).ok()?;
    text.lines()
        .next()
        .and_then(|l| l.trim().trim_start_matches('-').parse::<u32>().ok())
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
    fn unowned_clusters_of_older_builds_go_once_quiet_and_unused() {
        let tmp = tempfile::tempdir().unwrap();
        let make = |name: &str, log: bool| {
            let dir = tmp.path().join(name);
            fs::create_dir_all(dir.join("data")).unwrap();
            fs::write(dir.join("data/PG_VERSION"), "16\n").unwrap();
            if log {
                fs::write(dir.join("postgres.log"), "").unwrap();
            }
            dir
        };
        let abandoned = make("poolbench-6Gjnbn", true);
        let no_log = make("poolbench-a1b2c3", false);
        let running = make("poolbench-Zz9Zz9", true);
        fs::write(
            running.join("data/postmaster.pid"),
            format!("{}\n", std::process::id()),
        )
        .unwrap();
        let owned = make("poolbench-ownerx", true);
        fs::write(owned.join(OWNER_FILE), "pid=1\nstart=1\n").unwrap();
        let not_a_cluster = tmp.path().join("poolbench-nodata");
        fs::create_dir_all(&not_a_cluster).unwrap();
        fs::write(not_a_cluster.join("postgres.log"), "").unwrap();

        assert!(is_legacy_name("poolbench-6Gjnbn"));
        for name in [
            "poolbench-old",
            "poolbench-baseline-pgb",
            "poolbench-pg-abcdef",
        ] {
            assert!(!is_legacy_name(name), "{name}");
        }
        let later = SystemTime::now() + LEGACY_QUIET + Duration::from_secs(1);
        assert!(is_stale_legacy(&abandoned, later));
        // Just made: an old build may be about to start its server there.
        assert!(!is_stale_legacy(&abandoned, SystemTime::now()));
        for kept in [&no_log, &running, &owned, &not_a_cluster] {
            assert!(!is_stale_legacy(kept, later), "{}", kept.display());
        }
        // A directory a running process names is kept: this test's own
        // program path stands in for one.
        assert!(!named_by_a_process(&abandoned));
        let me = std::env::args().next().unwrap();
        assert!(named_by_a_process(Path::new(&me)));
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
