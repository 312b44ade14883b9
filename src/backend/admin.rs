//! Either engine's admin connection and monitor, as the session holds
//! them: enums implementing [`Admin`] and [`Monitor`] by `match`. A third
//! engine is a variant here.

use anyhow::Result;

use super::mysql::{MySqlAdmin, MySqlMonitor};
use super::postgres::admin::PgAdmin;
use super::postgres::Monitor as PgMonitor;
use super::seam::{Admin, Monitor};
use super::statement::Described;
use super::target::Target;
use crate::metrics::RequestError;
use crate::report::Server;

/// The session's own connection, on either engine.
// One per session, never moved once open: boxing the larger buys nothing.
#[allow(clippy::large_enum_variant)]
pub enum AnyAdmin {
    Postgres(PgAdmin),
    MySql(MySqlAdmin),
}

/// The backend count on either engine's admin connection.
pub enum AnyMonitor<'a> {
    Postgres(PgMonitor<'a>),
    MySql(MySqlMonitor<'a>),
}

impl Admin for AnyAdmin {
    type Target = Target;
    type Monitor<'a> = AnyMonitor<'a>;

    async fn reach(target: &Target) -> Result<AnyAdmin> {
        Ok(match target {
            Target::Postgres(t) => AnyAdmin::Postgres(PgAdmin::reach(t).await?),
            Target::MySql(t) => AnyAdmin::MySql(MySqlAdmin::reach(t).await?),
        })
    }

    async fn facts(&self, auth: Option<&str>) -> Server {
        match self {
            AnyAdmin::Postgres(a) => a.facts(auth).await,
            AnyAdmin::MySql(a) => a.facts(auth).await,
        }
    }

    async fn is_throwaway(&self) -> bool {
        match self {
            AnyAdmin::Postgres(a) => a.is_throwaway().await,
            AnyAdmin::MySql(a) => a.is_throwaway().await,
        }
    }

    async fn setup(&self, sql: &str) -> Result<(), RequestError> {
        match self {
            AnyAdmin::Postgres(a) => a.setup(sql).await,
            AnyAdmin::MySql(a) => a.setup(sql).await,
        }
    }

    async fn describe(&self, sql: &str) -> Result<Described, RequestError> {
        match self {
            AnyAdmin::Postgres(a) => a.describe(sql).await,
            AnyAdmin::MySql(a) => a.describe(sql).await,
        }
    }

    async fn clock_ms(&self) -> Option<f64> {
        match self {
            AnyAdmin::Postgres(a) => a.clock_ms().await,
            AnyAdmin::MySql(a) => a.clock_ms().await,
        }
    }

    fn monitor(&self) -> AnyMonitor<'_> {
        match self {
            AnyAdmin::Postgres(a) => AnyMonitor::Postgres(a.monitor()),
            AnyAdmin::MySql(a) => AnyMonitor::MySql(a.monitor()),
        }
    }
}

impl Monitor for AnyMonitor<'_> {
    async fn backends(&mut self) -> Option<u64> {
        match self {
            AnyMonitor::Postgres(m) => m.backends().await,
            AnyMonitor::MySql(m) => m.backends().await,
        }
    }
}
