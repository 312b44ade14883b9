//! A measured MySQL connection behind the [`Connection`] trait: statements
//! by the binary or the text protocol (`exec.rs`), pool checks by the
//! driver's ping and COM_RESET_CONNECTION, COM_QUIT to close. The driver
//! dials its own socket, so no link emulator counts its round trips.

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use super::errors::request_error;
use super::exec::run_statement;
use super::target::Target;
use crate::backend::seam::{Connection, Recycling};
use crate::backend::statement::{Described, Statements};
use crate::backend::value::Value;
use crate::metrics::RequestError;

/// An open connection (the driver caches its prepared statements).
pub struct MySqlConnection(Conn);

impl MySqlConnection {
    /// Opens one (TCP, the handshake, TLS when asked, authentication: one
    /// step to the driver), bounded by the target's connect timeout.
    pub async fn open(target: &Target) -> Result<MySqlConnection, RequestError> {
        match target.connect().await {
            Ok(conn) => Ok(MySqlConnection(conn)),
            Err(e) => Err(request_error(&e)),
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
        run_statement(&mut self.0, sql, values, statements)
            .await
            .map_err(|e| request_error(&e))
    }

    async fn simple(&mut self, sql: &str) -> Result<(), RequestError> {
        self.0.query_drop(sql).await.map_err(|e| request_error(&e))
    }

    fn is_closed(&mut self) -> bool {
        self.0.is_disconnected()
    }

    async fn recycle(&mut self, how: Recycling) -> Result<(), RequestError> {
        let checked = match how {
            Recycling::Fast => Ok(()),
            Recycling::Verified => self.0.ping().await,
            Recycling::Clean => self.0.reset().await.map(drop),
        };
        checked.map_err(|e| request_error(&e))
    }

    fn round_trips(&self) -> Option<u32> {
        None
    }

    /// COM_QUIT, as an application's close sends.
    async fn close(self) -> Option<u32> {
        let _ = self.0.disconnect().await;
        None
    }
}
