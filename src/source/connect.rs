//! Opening one connection, timing its setup and counting it, shared by
//! every source kind: each connection opened is counted as it opens and its
//! setup (tcp, tls, startup, round trips) logged once, whoever opened it —
//! a request, a pool filling, a pool replacing a dead connection. An
//! engine whose driver connects in one step (MySQL) logs no setup: only
//! its `connect` is timed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::backend::{AnyConnection, Opened, Target};
use crate::metrics::{Recorder, RequestError, SetupLog};
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

    /// One connection, its setup timed from `started`.
    pub async fn open(&self, started: Instant) -> Result<Opened, RequestError> {
        let opened = AnyConnection::open(&self.target, self.link.as_deref(), started).await?;
        if let Some(setup) = opened.setup {
            self.setups.record(setup);
        }
        self.opened.fetch_add(1, Ordering::Relaxed);
        Ok(opened)
    }

    /// Readies this thread to open connections without timing a one-off
    /// cost. Called by each worker thread before it opens anything.
    pub fn prepare_thread(&self) {
        self.target.prepare_thread();
    }

    pub fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// Moves the setups logged so far into `recorder`.
    pub fn drain_setups(&self, recorder: &mut Recorder) {
        self.setups.drain_into(recorder);
    }
}
