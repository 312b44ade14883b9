//! What the report says of a MySQL or MariaDB server (version, TLS, the
//! authentication plugin, max_connections) and the monitor that counts its
//! client connections once a second (`Threads_connected`).

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use tokio::sync::Mutex;

use super::target::Target;
use crate::report::Server;

/// The start of the name of every embedded MariaDB's directory, where its
/// data directory is: how `run` knows a server of `poolbench server
/// --engine mariadb` is a throwaway whose tables it may create.
pub const THROWAWAY_DIR_PREFIX: &str = "poolbench-mariadb-";

/// Whether the server on `conn` is an embedded MariaDB of poolbench's
/// (its data directory says so).
pub async fn is_throwaway(conn: &mut Conn) -> bool {
    conn.query_first::<String, _>("SELECT @@datadir")
        .await
        .ok()
        .flatten()
        .is_some_and(|dir| dir.contains(&format!("/{THROWAWAY_DIR_PREFIX}")))
}

/// The engine's name for the report: MariaDB says so in its version.
pub fn engine_of(version: &str) -> &'static str {
    if version.to_ascii_lowercase().contains("mariadb") {
        "mariadb"
    } else {
        "mysql"
    }
}

/// Describes the server on `conn`; `auth` is the plugin when poolbench
/// knows it (its embedded server, which is then `embedded`).
pub async fn server_facts(conn: &mut Conn, target: &Target, auth: Option<&str>) -> Server {
    let version: String = conn
        .query_first("SELECT VERSION()")
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| "unknown".into());
    let max_connections: u32 = conn
        .query_first("SELECT @@max_connections")
        .await
        .ok()
        .flatten()
        .unwrap_or(0);
    // An encrypted session has a cipher; a plain one an empty string.
    let ssl = conn
        .query_first::<(String, String), _>("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        .await
        .ok()
        .flatten()
        .is_some_and(|(_, cipher)| !cipher.is_empty());
    let auth_method = match auth {
        Some(known) => known.to_string(),
        None => auth_plugin(conn)
            .await
            .unwrap_or_else(|| "unknown (mysql.user not readable)".into()),
    };
    Server {
        engine: engine_of(&version).to_string(),
        version,
        auth_method,
        ssl,
        max_connections,
        embedded: auth.is_some(),
        dsn: target.redacted(),
        source: target.source().to_string(),
    }
}

/// The session user's authentication plugin: from mysql.user, readable
/// only with privileges on it, else from the user's own grants, which
/// MariaDB writes with the plugin (`IDENTIFIED VIA ed25519 …`, or `BY
/// PASSWORD '*…'` for mysql_native_password).
async fn auth_plugin(conn: &mut Conn) -> Option<String> {
    let plugin = conn
        .query_first::<String, _>(
            "SELECT plugin FROM mysql.user WHERE CONCAT(user, '@', host) = CURRENT_USER()",
        )
        .await
        .ok()
        .flatten()
        .filter(|p| !p.is_empty());
    if plugin.is_some() {
        return plugin;
    }
    let grants: Vec<String> = conn.query("SHOW GRANTS").await.ok()?;
    plugin_in_grants(&grants)
}

/// The plugin MariaDB's `SHOW GRANTS` names for the user, if it does.
fn plugin_in_grants(grants: &[String]) -> Option<String> {
    for grant in grants {
        if let Some((_, via)) = grant.split_once(" IDENTIFIED VIA ") {
            let name = via.split_whitespace().next()?;
            return Some(name.trim_matches(|c| c == '`' || c == '\'').to_string());
        }
        if grant.contains(" IDENTIFIED BY PASSWORD '*") {
            return Some("mysql_native_password".into());
        }
    }
    None
}

/// The uncounted monitor connection, as the engine's once-a-second count
/// of the server's client connections. When the connection breaks it
/// opens another (uncounted too) in the background, bounded by the connect
/// timeout, for the seconds after.
pub struct Monitor<'a> {
    conn: &'a Mutex<Conn>,
    target: &'a Target,
    broken: bool,
    reconnecting: Option<tokio::task::JoinHandle<Option<Conn>>>,
}

/// How long the monitor waits for the server before it skips a sample.
const MONITOR_TIMEOUT: Duration = Duration::from_millis(500);

impl<'a> Monitor<'a> {
    pub fn new(conn: &'a Mutex<Conn>, target: &'a Target) -> Monitor<'a> {
        Monitor {
            conn,
            target,
            broken: false,
            reconnecting: None,
        }
    }

    /// Client connections on the server, the monitor's own excluded; None
    /// when the server does not answer within half a second, or while the
    /// monitor is connecting again.
    pub async fn backends(&mut self) -> Option<u64> {
        let mut conn = self.conn.lock().await;
        if self.broken {
            match self.reconnecting.take() {
                Some(task) if task.is_finished() => {
                    if let Ok(Some(fresh)) = task.await {
                        *conn = fresh;
                        self.broken = false;
                    }
                }
                Some(task) => self.reconnecting = Some(task),
                None => {
                    // The target's connect is bounded by its timeout.
                    let target = self.target.clone();
                    self.reconnecting =
                        Some(tokio::spawn(async move { target.connect().await.ok() }));
                }
            }
            return None;
        }
        if crate::placement::enabled() {
            // poolbench's own MariaDB on this machine: its connection
            // threads (the user's own, so all poolbench's), to keep each
            // new one on its client thread's CPU (`placement`).
            let query = conn.query::<(u64, String), _>(
                "SELECT TID, HOST FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID()",
            );
            if let Ok(Ok(rows)) = tokio::time::timeout(MONITOR_TIMEOUT, query).await {
                let threads: Vec<(i32, u16)> = rows
                    .iter()
                    .filter_map(|(tid, host)| Some((i32::try_from(*tid).ok()?, client_port(host)?)))
                    .collect();
                crate::placement::place(&threads);
            }
        }
        let query =
            conn.query_first::<(String, u64), _>("SHOW GLOBAL STATUS LIKE 'Threads_connected'");
        match tokio::time::timeout(MONITOR_TIMEOUT, query).await {
            Ok(Ok(Some((_, n)))) => Some(n.saturating_sub(1)),
            Ok(Err(e)) if !e.is_fatal() => None,
            Ok(Ok(None)) => None,
            // A broken connection, or one left mid-answer by the timeout.
            _ => {
                self.broken = true;
                None
            }
        }
    }
}

/// The client's port in PROCESSLIST's `HOST` ("127.0.0.1:48704", "::1:48704";
/// none for a Unix-domain socket's "localhost").
fn client_port(host: &str) -> Option<u16> {
    host.rsplit_once(':')?.1.parse().ok()
}

impl Drop for Monitor<'_> {
    fn drop(&mut self) {
        if let Some(task) = self.reconnecting.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_port_is_read_from_the_processlist_host() {
        assert_eq!(client_port("127.0.0.1:48704"), Some(48704));
        assert_eq!(client_port("::1:5000"), Some(5000));
        assert_eq!(client_port("localhost"), None);
        assert_eq!(client_port("127.0.0.1:"), None);
    }

    #[test]
    fn the_plugin_is_read_from_mariadbs_grants() {
        let grants =
            |g: &[&str]| plugin_in_grants(&g.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            grants(&[
                "GRANT USAGE ON *.* TO `poolbench`@`%` IDENTIFIED BY PASSWORD '*7B5B1700E93FE2D467EFD471440B3E903A2FB397'",
                "GRANT ALL PRIVILEGES ON `poolbench`.* TO `poolbench`@`%`",
            ]),
            Some("mysql_native_password".into())
        );
        assert_eq!(
            grants(&["GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED VIA ed25519 USING 'ZIgUREUg5PVgQ6LskhXmO+eZLS0nC8be6HPjYWR4YJY'"]),
            Some("ed25519".into())
        );
        assert_eq!(grants(&["GRANT USAGE ON *.* TO `app`@`%`"]), None);
    }
}
