//! A measured MySQL connection behind the [`Connection`] trait, on
//! poolbench's own wire code: opened by `connect.rs` (phases timed, round
//! trips counted across the link), statements by the binary or the text
//! protocol (`wire.rs`), pool checks by COM_PING and COM_RESET_CONNECTION,
//! COM_QUIT to close.

use std::time::Instant;

use super::connect::open;
use super::errors::wire_error;
use super::exec::interpolate;
use super::target::Target;
use super::wire::Wire;
use crate::backend::seam::{Connection, Recycling};
use crate::backend::statement::{Described, Statements};
use crate::backend::value::Value;
use crate::metrics::{RequestError, Setup};
use crate::net::{Emulator, Turns};

/// An open session and its round-trip counter when it crosses the link
/// emulator.
pub struct MySqlConnection {
    wire: Wire,
    turns: Option<Turns>,
}

/// A connection just opened: its setup, and when it was ready for
/// queries.
pub struct OpenedMySql {
    pub conn: MySqlConnection,
    pub setup: Option<Setup>,
    pub ready_at: Instant,
}

impl MySqlConnection {
    /// Opens one (TCP, the greeting, TLS when asked, authentication),
    /// across `link` when given, its phases timed from `started`, bounded
    /// by the target's connect timeout.
    pub async fn open(
        target: &Target,
        link: Option<&Emulator>,
        started: Instant,
    ) -> Result<OpenedMySql, RequestError> {
        let opened = open(target, link, started)
            .await
            .map_err(|e| wire_error(&e))?;
        Ok(OpenedMySql {
            conn: MySqlConnection {
                wire: opened.wire,
                turns: opened.turns,
            },
            setup: Some(opened.setup),
            ready_at: opened.ready_at,
        })
    }
}

impl Connection for MySqlConnection {
    /// Named: prepared once per connection (COM_STMT_PREPARE), then
    /// COM_STMT_EXECUTE with binary parameters. Unnamed: COM_QUERY with
    /// the values escaped in place of the `?`s (one round trip, what
    /// aiomysql and PyMySQL do). The server reports no parameter types:
    /// `described` is not needed.
    async fn run(
        &mut self,
        sql: &str,
        _: &Described,
        values: &[Value],
        statements: Statements,
    ) -> Result<(), RequestError> {
        let done = match statements {
            Statements::Named => self.wire.execute(sql, values).await,
            Statements::Unnamed => self.wire.query(&interpolate(sql, values)).await,
        };
        done.map_err(|e| wire_error(&e))
    }

    async fn simple(&mut self, sql: &str) -> Result<(), RequestError> {
        self.wire.query(sql).await.map_err(|e| wire_error(&e))
    }

    fn is_closed(&mut self) -> bool {
        self.wire.is_closed()
    }

    async fn recycle(&mut self, how: Recycling) -> Result<(), RequestError> {
        let checked = match how {
            Recycling::Fast => Ok(()),
            Recycling::Verified => self.wire.ping().await,
            // The server drops the session's statements.
            Recycling::Clean => self.wire.reset().await,
        };
        checked.map_err(|e| wire_error(&e))
    }

    fn round_trips(&self) -> Option<u32> {
        self.turns.as_ref().map(Turns::now)
    }

    fn forget_statements(&mut self) {
        self.wire.forget_statements();
    }

    /// COM_QUIT, as an application's close sends.
    async fn close(self) -> Option<u32> {
        self.wire.close().await;
        self.turns.as_ref().map(Turns::now)
    }
}
