//! PostgreSQL 18's logged setup durations (`log_connections =
//! setup_durations`): the backend writes, before its first
//! ReadyForQuery, `connection ready: setup total=… ms, fork=… ms,
//! authentication=… ms` (postgres.c, PostgresMain), its pid in the line's
//! prefix (`%m [%p] `). poolbench's embedded server writes its log to a
//! file it owns (stderr, no logging collector: the line is in the file
//! before the client reads ReadyForQuery), and [`SetupDurations`] reads the
//! file's new lines as connections become ready, handing each its own by
//! backend pid. The durations are the server's wall times, not CPU: fork
//! is from the postmaster's accept to the backend running,
//! authentication includes waiting for the client's messages.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Mutex;

/// What one connection's line says, in µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Logged {
    pub total_us: u64,
    pub fork_us: u64,
    pub auth_us: u64,
}

/// The server log's lines read so far, by backend pid, not yet taken.
pub struct SetupDurations {
    path: PathBuf,
    state: Mutex<Tail>,
}

#[derive(Default)]
struct Tail {
    /// Bytes of the log read so far.
    offset: u64,
    /// The last line read, when it did not end yet.
    partial: Vec<u8>,
    by_pid: HashMap<u32, Logged>,
}

/// Lines of connections nobody takes (poolbench's own, the monitor's, a
/// pooler's) are dropped past this many, so the map stays bounded.
const MAX_WAITING: usize = 4096;

impl std::fmt::Debug for SetupDurations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetupDurations")
            .field("path", &self.path)
            .finish()
    }
}

impl SetupDurations {
    /// The log at `path` (read from its beginning).
    pub fn new(path: PathBuf) -> SetupDurations {
        SetupDurations {
            path,
            state: Mutex::new(Tail::default()),
        }
    }

    /// The logged durations of backend `pid`'s setup, reading the lines
    /// written since the last call; None when its line is not there.
    pub fn take(&self, pid: u32) -> Option<Logged> {
        let mut tail = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = tail.by_pid.remove(&pid) {
            return Some(found);
        }
        let mut fresh = Vec::new();
        let read = std::fs::File::open(&self.path).and_then(|mut f| {
            f.seek(SeekFrom::Start(tail.offset))?;
            f.read_to_end(&mut fresh)
        });
        if read.is_err() {
            return None;
        }
        tail.offset += fresh.len() as u64;
        let mut bytes = std::mem::take(&mut tail.partial);
        bytes.extend_from_slice(&fresh);
        let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        tail.partial = bytes.split_off(complete);
        if tail.by_pid.len() > MAX_WAITING {
            tail.by_pid.clear();
        }
        for line in String::from_utf8_lossy(&bytes).lines() {
            if let Some((line_pid, logged)) = parse(line) {
                tail.by_pid.insert(line_pid, logged);
            }
        }
        tail.by_pid.remove(&pid)
    }
}

/// A "connection ready" line: its pid (the first `[…]` of the prefix) and
/// durations.
fn parse(line: &str) -> Option<(u32, Logged)> {
    let (prefix, message) = line.split_once("connection ready: setup total=")?;
    let pid = prefix.split_once('[')?.1.split_once(']')?.0.parse().ok()?;
    let us = |text: &str| -> Option<u64> {
        let ms: f64 = text.trim().strip_suffix("ms")?.trim().parse().ok()?;
        Some((ms * 1000.0).round() as u64)
    };
    let mut parts = message.split(", ");
    let total_us = us(parts.next()?)?;
    let fork_us = us(parts.next()?.strip_prefix("fork=")?)?;
    let auth_us = us(parts.next()?.strip_prefix("authentication=")?)?;
    Some((
        pid,
        Logged {
            total_us,
            fork_us,
            auth_us,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const LINE: &str = "2026-12-06 21:00:00.123 UTC [4242] LOG:  connection ready: setup \
                        total=3.456 ms, fork=0.612 ms, authentication=1.801 ms";

    #[test]
    fn reads_the_pid_and_the_three_durations() {
        assert_eq!(
            parse(LINE),
            Some((
                4242,
                Logged {
                    total_us: 3456,
                    fork_us: 612,
                    auth_us: 1801
                }
            ))
        );
        assert_eq!(parse("2026-12-06 [4242] LOG:  connection authorized"), None);
    }

    #[test]
    fn hands_each_backend_its_line_once_across_partial_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("postgres.log");
        let mut log = std::fs::File::create(&path).unwrap();
        let durations = SetupDurations::new(path);
        let (head, rest) = LINE.split_at(40);
        write!(log, "other line\n{head}").unwrap();
        assert_eq!(durations.take(4242), None);
        writeln!(log, "{rest}").unwrap();
        writeln!(log, "{}", LINE.replace("[4242]", "[7]")).unwrap();
        assert_eq!(durations.take(4242).map(|l| l.fork_us), Some(612));
        assert_eq!(durations.take(4242), None);
        assert_eq!(durations.take(7).map(|l| l.auth_us), Some(1801));
    }
}
