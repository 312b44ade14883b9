//! Waiting for a started postmaster: connect with the real authentication
//! until it answers, make sure the server answering is ours (another one
//! may hold the port ours failed to bind), notice when it exits instead
//! (and whether it lost its port), and quote the end of its log in the
//! error.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use super::process::Postmaster;
use crate::backend::postgres::Target;
use crate::error;

/// Log lines quoted in start-up errors.
pub const LOG_TAIL_LINES: usize = 20;
/// How long `start` waits for the server to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

pub enum Ready {
    Yes,
    /// Another process took the port between choosing and binding it.
    PortTaken(anyhow::Error),
    Failed(anyhow::Error),
}

/// Connects with the real authentication until it works, the postmaster
/// exits, or [`READY_TIMEOUT`] passes. `log_start` is where this attempt's
/// log begins.
pub async fn wait_ready(
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
            Ok(Ok(client)) => {
                // Ours answers with its own data directory; another server
                // on the port (which then is not ours to bind) does not.
                let data = dir.join("data");
                return match data_directory(&client).await {
                    Some(theirs) if same_path(&theirs, &data) => Ready::Yes,
                    found => Ready::PortTaken(error::environment(format!(
                        "another PostgreSQL server answers at {} (its data directory is {}, \
                         not {}): the port is taken",
                        target.redacted(),
                        found.as_deref().unwrap_or("not readable"),
                        data.display()
                    ))),
                };
            }
            Ok(Err(e)) => {
                // Authentication errors will not go away by waiting.
                if e.is_auth_failure() {
                    return Ready::Failed(error::environment(format!(
                        "the embedded server at {} rejected poolbench's own login: {e}",
                        target.redacted(),
                    )));
                }
                e.to_string()
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

/// The data directory of the server `client` is connected to (None when
/// it will not say: a server where poolbench's user is no superuser).
async fn data_directory(client: &tokio_postgres::Client) -> Option<String> {
    client
        .query_one("SELECT current_setting('data_directory')", &[])
        .await
        .ok()?
        .try_get::<_, String>(0)
        .ok()
}

fn same_path(reported: &str, ours: &Path) -> bool {
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    canonical(Path::new(reported)) == canonical(ours)
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
pub fn log_tail(dir: &Path, from: u64, lines: usize) -> String {
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

pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_keeps_the_end() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(last_lines("a", 5), "a");
    }
}
