//! A measured MySQL connection behind the [`Connection`] trait: statements
//! by the binary or the text protocol (`exec.rs`), pool checks by the
//! driver's ping and COM_RESET_CONNECTION, COM_QUIT to close. Across the
//! link emulator (`link.rs`) its setup is timed in phases and its round
//! trips counted; otherwise the driver dials the server itself and its
//! connect is one step.

use std::time::Instant;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use super::errors::request_error;
use super::exec::{run_statement, Prepared};
use super::link;
use super::target::Target;
use crate::backend::seam::{Connection, Recycling};
use crate::backend::statement::{Described, Statements};
use crate::backend::value::Value;
use crate::metrics::{RequestError, Setup};
use crate::net::{Emulator, Turns};

/// An open connection, the statements it prepared (`exec.rs`), and
/// its round-trip counter when it crosses the link emulator.
pub struct MySqlConnection {
    conn: Conn,
    prepared: Prepared,
    turns: Option<Turns>,
}

/// A connection just opened: its setup when it crossed the link, and when
/// it was ready for queries.
pub struct OpenedMySql {
    pub conn: MySqlConnection,
    pub setup: Option<Setup>,
    pub ready_at: Instant,
}

impl MySqlConnection {
    /// Opens one (TCP, the handshake, TLS when asked, authentication),
    /// bounded by the target's connect timeout: across `link` with its
    /// phases timed from `started`, or by the driver in one step.
    pub async fn open(
        target: &Target,
        link: Option<&Emulator>,
        started: Instant,
    ) -> Result<OpenedMySql, RequestError> {
        match link {
            Some(link) => {
                let linked = link::open(target, link, started)
                    .await
                    .map_err(|e| request_error(&e))?;
                Ok(OpenedMySql {
                    conn: MySqlConnection {
                        conn: linked.conn,
                        prepared: Prepared::default(),
                        turns: Some(linked.turns),
                    },
                    setup: Some(linked.setup),
                    ready_at: linked.ready_at,
                })
            }
            None => match target.connect().await {
                Ok(conn) => Ok(OpenedMySql {
                    conn: MySqlConnection {
                        conn,
                        prepared: Prepared::default(),
                        turns: None,
                    },
                    setup: None,
                    ready_at: Instant::now(),
                }),
                Err(e) => Err(request_error(&e)),
            },
        }
    }
}

impl Connection for MySqlConnection {
    /// The server reports no parameter types: `described` is not needed.
    async fn run(
        &mut self,
        sql: &str,
        _: &Described,
        values: &[Value],
        statements: Statements,
    ) -> Result<(), RequestError> {
        run_statement(&mut self.conn, &mut self.prepared, sql, values, statements)
            .await
            .map_err(|e| request_error(&e))
    }

    async fn simple(&mut self, sql: &str) -> Result<(), RequestError> {
        self.conn
            .query_drop(sql)
            .await
            .map_err(|e| request_error(&e))
    }

    fn is_closed(&mut self) -> bool {
        self.conn.is_disconnected()
    }

    async fn recycle(&mut self, how: Recycling) -> Result<(), RequestError> {
        let checked = match how {
            Recycling::Fast => Ok(()),
            Recycling::Verified => self.conn.ping().await,
            // The server drops the session's statements.
            Recycling::Clean => {
                self.prepared.clear();
                self.conn.reset().await.map(drop)
            }
        };
        checked.map_err(|e| request_error(&e))
    }

    fn round_trips(&self) -> Option<u32> {
        self.turns.as_ref().map(Turns::now)
    }

    /// COM_QUIT, as an application's close sends.
    async fn close(self) -> Option<u32> {
        let _ = self.conn.disconnect().await;
        self.turns.as_ref().map(Turns::now)
    }
}
