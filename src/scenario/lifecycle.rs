//! A pool's lifecycle settings (`kind = "pool"`): how long a connection
//! lives, how long it may sit idle, how many idle ones a background task
//! keeps, whether it is checked on checkout and reset on release, and the
//! presets named after the libraries (`like = "sqlx"`), each that
//! library's defaults as its documentation states them (docs/pools.md
//! gives the version and the source of each).

use std::time::Duration;

use serde::Serialize;

use super::humantime_serde_compat;

/// Every setting off: the pool poolbench always measured (never checks,
/// resets or replaces a connection).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Lifecycle {
    /// The library whose defaults these start from, when `like` names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub like: Option<Library>,
    /// A connection older than this is closed when it is next checked out
    /// or given back.
    #[serde(with = "humantime_serde_compat::option")]
    pub max_lifetime: Option<Duration>,
    /// Each connection's lifetime is `max_lifetime × (1 − jitter × u)`, u
    /// drawn uniformly in [0, 1) when it opens (HikariCP's spread); 0..=1.
    pub lifetime_jitter: f64,
    /// An idle connection idle longer than this is closed (by the
    /// background task, or when checked out), down to `min_idle`.
    #[serde(with = "humantime_serde_compat::option")]
    pub idle_timeout: Option<Duration>,
    /// The background task opens connections while fewer than this are
    /// idle (and the pool is below its size); 0 is off.
    pub min_idle: usize,
    pub check: Check,
    pub check_query: CheckQuery,
    pub reset: Reset,
    /// The background task checks (`check_query`) a connection idle this
    /// long, and closes it if the check fails.
    #[serde(with = "humantime_serde_compat::option")]
    pub keepalive: Option<Duration>,
}

impl Lifecycle {
    /// Whether every setting is off (the pool's fast path).
    pub fn is_off(&self) -> bool {
        self.max_lifetime.is_none()
            && self.idle_timeout.is_none()
            && self.min_idle == 0
            && self.check == Check::Never
            && self.reset == Reset::None
            && self.keepalive.is_none()
    }

    /// Nothing set, not even `like`.
    pub fn is_default(&self) -> bool {
        *self == Lifecycle::default()
    }

    /// The settings as `validate` prints them, one `key = value` each.
    pub fn describe(&self) -> Vec<String> {
        let duration = |d: Option<Duration>| match d {
            Some(d) => format!("{:?}", humantime::format_duration(d).to_string()),
            None => "off".to_string(),
        };
        let mut lines = Vec::new();
        if let Some(like) = self.like {
            lines.push(format!("like = {:?}", like.as_str()));
        }
        lines.push(format!("max_lifetime = {}", duration(self.max_lifetime)));
        lines.push(format!("lifetime_jitter = {}", self.lifetime_jitter));
        lines.push(format!("idle_timeout = {}", duration(self.idle_timeout)));
        lines.push(format!("min_idle = {}", self.min_idle));
        lines.push(format!(
            "check = {}",
            match self.check {
                Check::Never => "\"never\"".to_string(),
                Check::Always => "\"always\"".to_string(),
                Check::IfIdleOver(d) => format!("{{ if_idle_over = {} }}", duration(Some(d))),
            }
        ));
        lines.push(format!("check_query = {:?}", self.check_query.sql()));
        lines.push(format!(
            "reset = {}",
            match &self.reset {
                Reset::None => "\"none\"".to_string(),
                Reset::DiscardAll => "\"discard_all\"".to_string(),
                Reset::Asyncpg => "\"asyncpg\"".to_string(),
                Reset::Statements(s) => format!("{s:?}"),
            }
        ));
        lines.push(format!("keepalive = {}", duration(self.keepalive)));
        lines
    }
}

/// When a connection taken from the idle list is checked before use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    #[default]
    Never,
    Always,
    /// Only a connection idle longer than this (HikariCP checks one idle
    /// over 500 ms).
    IfIdleOver(#[serde(with = "humantime_serde_compat")] Duration),
}

/// The checkout check's statement: one round trip either way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckQuery {
    /// The empty query (deadpool's and bb8's check; SQLAlchemy's pre-ping
    /// since 1.4's `do_ping`): parsed and planned by nothing.
    #[default]
    Empty,
    /// `SELECT 1`.
    Select1,
}

impl CheckQuery {
    pub fn sql(self) -> &'static str {
        match self {
            CheckQuery::Empty => "",
            CheckQuery::Select1 => "SELECT 1",
        }
    }
}

/// What runs on a connection given back, before the next request may have
/// it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reset {
    #[default]
    None,
    /// `DISCARD ALL` (PgBouncer's `server_reset_query`): it deallocates the
    /// prepared statements too, so the next request prepares its own again.
    DiscardAll,
    /// asyncpg's reset on release, sent as one query: `SELECT
    /// pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;`.
    Asyncpg,
    /// These statements, each its own round trip, in order.
    Statements(Vec<String>),
}

impl Reset {
    /// The queries sent, each one round trip.
    pub fn queries(&self) -> Vec<String> {
        match self {
            Reset::None => Vec::new(),
            Reset::DiscardAll => vec!["DISCARD ALL".to_string()],
            Reset::Asyncpg => vec![ASYNCPG_RESET.to_string()],
            Reset::Statements(s) => s.clone(),
        }
    }

    /// Whether it drops the session's prepared statements.
    pub fn forgets_statements(&self) -> bool {
        *self == Reset::DiscardAll
    }
}

/// asyncpg's `Connection._get_reset_query` on a server with every
/// capability (PostgreSQL), as it sends it: one simple query.
pub const ASYNCPG_RESET: &str =
    "SELECT pg_advisory_unlock_all();\nCLOSE ALL;\nUNLISTEN *;\nRESET ALL;";

/// The libraries `like` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Library {
    Deadpool,
    Sqlx,
    Bb8,
    Hikaricp,
    Asyncpg,
    Sqlalchemy,
}

impl Library {
    pub const ALL: [Library; 6] = [
        Library::Deadpool,
        Library::Sqlx,
        Library::Bb8,
        Library::Hikaricp,
        Library::Asyncpg,
        Library::Sqlalchemy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Library::Deadpool => "deadpool",
            Library::Sqlx => "sqlx",
            Library::Bb8 => "bb8",
            Library::Hikaricp => "hikaricp",
            Library::Asyncpg => "asyncpg",
            Library::Sqlalchemy => "sqlalchemy",
        }
    }

    pub fn parse(name: &str) -> Option<Library> {
        Library::ALL.into_iter().find(|l| l.as_str() == name)
    }

    /// The library's defaults (docs/pools.md, "Presets", has each one's
    /// version and source). `max_size` is the pool's size, for the presets
    /// whose minimum idle count is the whole pool.
    pub fn defaults(self, max_size: usize) -> Lifecycle {
        const MIN: u64 = 60;
        let off = Lifecycle {
            like: Some(self),
            ..Lifecycle::default()
        };
        match self {
            // deadpool-postgres 0.14: RecyclingMethod::Fast (is_closed
            // only), no lifetime, no idle timeout, no minimum.
            Library::Deadpool => off,
            // sqlx 0.8 PoolOptions: test_before_acquire = true (a ping),
            // idle_timeout 10 min, max_lifetime 30 min, min_connections 0.
            Library::Sqlx => Lifecycle {
                max_lifetime: Some(Duration::from_secs(30 * MIN)),
                idle_timeout: Some(Duration::from_secs(10 * MIN)),
                check: Check::Always,
                ..off
            },
            // bb8 0.9 Builder: test_on_check_out = true (bb8-postgres'
            // is_valid sends the empty query), max_lifetime 30 min,
            // idle_timeout 10 min, min_idle None.
            Library::Bb8 => Lifecycle {
                max_lifetime: Some(Duration::from_secs(30 * MIN)),
                idle_timeout: Some(Duration::from_secs(10 * MIN)),
                check: Check::Always,
                ..off
            },
            // HikariCP 6 README: maxLifetime 30 min with up to 2.5% taken
            // off each connection's, idleTimeout 10 min (only while
            // minimumIdle < maximumPoolSize), minimumIdle = maximumPoolSize,
            // keepaliveTime 2 min, a check on borrow only for a connection
            // idle over aliveBypassWindowMs (500 ms).
            Library::Hikaricp => Lifecycle {
                max_lifetime: Some(Duration::from_secs(30 * MIN)),
                lifetime_jitter: 0.025,
                idle_timeout: Some(Duration::from_secs(10 * MIN)),
                min_idle: max_size,
                check: Check::IfIdleOver(Duration::from_millis(500)),
                keepalive: Some(Duration::from_secs(2 * MIN)),
                ..off
            },
            // asyncpg 0.30 create_pool: max_inactive_connection_lifetime
            // 300 s, the reset query on every release, no check, no
            // lifetime (max_queries 50000 instead), no refill below
            // min_size.
            Library::Asyncpg => Lifecycle {
                idle_timeout: Some(Duration::from_secs(300)),
                reset: Reset::Asyncpg,
                ..off
            },
            // SQLAlchemy 2.0 QueuePool: pool_pre_ping False, pool_recycle
            // -1 (off), pool_reset_on_return "rollback" (a ROLLBACK on every
            // checkin).
            Library::Sqlalchemy => Lifecycle {
                reset: Reset::Statements(vec!["ROLLBACK".to_string()]),
                ..off
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_is_named_and_deadpool_is_the_default_pool() {
        for l in Library::ALL {
            assert_eq!(Library::parse(l.as_str()), Some(l));
            assert_eq!(l.defaults(10).like, Some(l));
        }
        let deadpool = Library::Deadpool.defaults(10);
        assert!(deadpool.is_off());
        assert!(Lifecycle::default().is_off());
        assert!(!Library::Sqlx.defaults(10).is_off());
        assert_eq!(Library::Hikaricp.defaults(7).min_idle, 7);
        assert_eq!(Library::parse("pgx"), None);
    }

    #[test]
    fn resets_are_round_trips_and_discard_all_forgets_statements() {
        assert!(Reset::None.queries().is_empty());
        assert_eq!(Reset::Asyncpg.queries().len(), 1);
        assert!(Reset::DiscardAll.forgets_statements());
        assert!(!Reset::Asyncpg.forgets_statements());
        let two = Reset::Statements(vec!["ROLLBACK".into(), "RESET ALL".into()]);
        assert_eq!(two.queries().len(), 2);
    }
}
