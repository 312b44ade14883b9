//! The session's own PostgreSQL connection, behind the [`Admin`] trait: it
//! reaches the server, describes it (`server_facts`), runs the [setup],
//! prepares the scenario's statements for their parameter types, reads the
//! server's clock, and counts its backends ([`Monitor`]).

use anyhow::Result;
use tokio_postgres::Client;

use super::{request_error, server_facts, Monitor, Target};
use crate::backend::seam::{self, Admin};
use crate::backend::statement::Described;
use crate::metrics::RequestError;
use crate::report::Server;

/// A setting of every server poolbench starts (`on`): how `run` knows a
/// server it did not start itself (one of `poolbench server`'s) is a
/// throwaway whose tables it may create without `--allow-setup`. A custom
/// setting, so a session can override it (`options=-c
/// poolbench.throwaway=off`) to be treated as a foreign server.
pub const THROWAWAY_SETTING: &str = "poolbench.throwaway";

/// The admin connection and the target it reached (to reconnect the
/// monitor, and for the report's DSN).
pub struct PgAdmin {
    client: Client,
    target: Target,
}

impl Admin for PgAdmin {
    type Target = Target;
    type Monitor<'a> = Monitor<'a>;

    async fn reach(target: &Target) -> Result<PgAdmin> {
        Ok(PgAdmin {
            client: target.check_reachable().await?,
            target: target.clone(),
        })
    }

    async fn facts(&self, auth: Option<&str>) -> Server {
        server_facts(&self.client, &self.target, auth).await
    }

    async fn is_throwaway(&self) -> bool {
        self.client
            .query_one("SELECT current_setting($1, true)", &[&THROWAWAY_SETTING])
            .await
            .ok()
            .and_then(|row| row.try_get::<_, Option<String>>(0).ok().flatten())
            .is_some_and(|value| value == "on")
    }

    async fn setup(&self, sql: &str) -> Result<(), RequestError> {
        self.client
            .batch_execute(sql)
            .await
            .map_err(|e| request_error(&e))
    }

    async fn describe(&self, sql: &str) -> Result<Described, RequestError> {
        let statement = self
            .client
            .prepare(sql)
            .await
            .map_err(|e| request_error(&e))?;
        Ok(Described::Postgres(statement.params().to_vec()))
    }

    async fn clock_ms(&self) -> Option<f64> {
        let row = self
            .client
            .query_one(
                "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8",
                &[],
            )
            .await
            .ok()?;
        row.try_get(0).ok()
    }

    fn monitor(&self) -> Monitor<'_> {
        Monitor::new(&self.client, &self.target)
    }
}

impl seam::Monitor for Monitor<'_> {
    async fn backends(&mut self) -> Option<u64> {
        Monitor::backends(self).await
    }
}
