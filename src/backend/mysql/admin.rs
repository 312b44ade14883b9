//! The session's own MySQL connection, behind the [`Admin`] trait: it
//! reaches the server, describes it and tells a throwaway (`facts.rs`),
//! runs the [setup], prepares the scenario's statements to count their
//! parameters, and counts the server's connections ([`Monitor`]).

use anyhow::Result;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use tokio::sync::Mutex;

use super::errors::request_error;
use super::facts::{is_throwaway, server_facts, Monitor};
use super::target::Target;
use crate::backend::seam::{self, Admin};
use crate::backend::statement::Described;
use crate::metrics::RequestError;
use crate::report::Server;

/// The admin connection (locked by each use: the driver's calls need it
/// mutably, the session lends it shared) and the target it reached.
pub struct MySqlAdmin {
    conn: Mutex<Conn>,
    target: Target,
}

impl Admin for MySqlAdmin {
    type Target = Target;
    type Monitor<'a> = Monitor<'a>;

    async fn reach(target: &Target) -> Result<MySqlAdmin> {
        Ok(MySqlAdmin {
            conn: Mutex::new(target.check_reachable().await?),
            target: target.clone(),
        })
    }

    async fn facts(&self, auth: Option<&str>) -> Server {
        server_facts(&mut *self.conn.lock().await, &self.target, auth).await
    }

    async fn is_throwaway(&self) -> bool {
        is_throwaway(&mut *self.conn.lock().await).await
    }

    async fn setup(&self, sql: &str) -> Result<(), RequestError> {
        let mut conn = self.conn.lock().await;
        conn.query_drop(sql).await.map_err(|e| request_error(&e))
    }

    /// The server counts the parameters; it reports no types.
    async fn describe(&self, sql: &str) -> Result<Described, RequestError> {
        let mut conn = self.conn.lock().await;
        let statement = conn.prep(sql).await.map_err(|e| request_error(&e))?;
        let params = usize::from(statement.num_params());
        conn.close(statement).await.map_err(|e| request_error(&e))?;
        Ok(Described::MySql { params })
    }

    /// Not read: synchronised copies on MySQL record no clock offset (the
    /// offset is measured against PostgreSQL's clock).
    async fn clock_ms(&self) -> Option<f64> {
        None
    }

    fn monitor(&self) -> Monitor<'_> {
        Monitor::new(&self.conn, &self.target)
    }
}

impl seam::Monitor for Monitor<'_> {
    async fn backends(&mut self) -> Option<u64> {
        Monitor::backends(self).await
    }
}
