//! Opening one connection, timing its setup and counting it, shared by
//! every source kind: each connection opened is counted as it opens and its
//! setup (tcp, tls, startup, round trips) logged once, whoever opened it —
//! a request, a pool filling, a pool replacing a dead connection. A MySQL
//! connection's setup is one step to the driver, so only its `connect` is
//! timed (no tcp, tls or startup) and nothing is logged for it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::backend::postgres::connect::{self as pg, open};
use crate::backend::{mysql, ConnectError, Target};
use crate::metrics::{Recorder, SetupLog};
use crate::net::Emulator;

/// Opens connections to a target (across the link emulator when there is
/// one), counts them and logs their setups.
#[derive(Clone)]
pub struct CountingConnect {
    pub target: Target,
    link: Option<Arc<Emulator>>,
    opened: Arc<AtomicU64>,
    setups: Arc<SetupLog>,
}

impl CountingConnect {
    pub fn new(target: &Target, link: Option<&Arc<Emulator>>) -> CountingConnect {
        CountingConnect {
            target: target.clone(),
            link: link.cloned(),
            opened: Arc::new(AtomicU64::new(0)),
            setups: Arc::new(SetupLog::default()),
        }
    }

    /// One connection: on PostgreSQL with the task that drives it (it ends
    /// when the client is dropped) and its round-trip counter, its setup
    /// timed from `started`.
    pub async fn open(&self, started: Instant) -> Result<Opened, ConnectError> {
        let opened = match &self.target {
            Target::Postgres(target) => {
                let opened = open(target, self.link.as_deref(), started)
                    .await
                    .map_err(ConnectError::Postgres)?;
                self.setups.record(opened.setup);
                Opened::Postgres(opened)
            }
            Target::MySql(target) => {
                let conn = target.connect().await.map_err(ConnectError::MySql)?;
                Opened::MySql {
                    conn,
                    ready_at: Instant::now(),
                }
            }
        };
        self.opened.fetch_add(1, Ordering::Relaxed);
        Ok(opened)
    }

    /// Readies this thread to open connections without timing a one-off
    /// cost: on PostgreSQL, the TLS library's random generator. Called by
    /// each worker thread before it opens anything.
    pub fn prepare_thread(&self) {
        if let Target::Postgres(target) = &self.target {
            target.tls().seed_this_thread();
        }
    }

    pub fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// Moves the setups logged so far into `recorder`.
    pub fn drain_setups(&self, recorder: &mut Recorder) {
        self.setups.drain_into(recorder);
    }
}

/// A connection just opened, on either engine.
// Moved once, straight into a lease or a pool: not worth a box.
#[allow(clippy::large_enum_variant)]
pub enum Opened {
    Postgres(pg::Opened),
    MySql {
        conn: mysql::Conn,
        /// When it was ready for queries.
        ready_at: Instant,
    },
}

impl Opened {
    /// When it was ready for queries: `connect` ends here.
    pub fn ready_at(&self) -> Instant {
        match self {
            Opened::Postgres(o) => o.ready_at,
            Opened::MySql { ready_at, .. } => *ready_at,
        }
    }
}
