//! `kind = "fresh"`: a new connection for every request, closed after it.
//! Times the `connect` phase (the whole connection setup, bounded by the
//! target's connect timeout, measured as one interval; its tcp, tls and
//! startup steps are logged by `connect.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;

use super::connect::CountingConnect;
use super::lease::Lease;
use super::ConnectionSource;
use crate::backend::Target;
use crate::metrics::{micros, ErrorClass, Phase, PhaseTimings, PoolStatus, Recorder, RequestError};
use crate::net::Emulator;

pub struct FreshSource(CountingConnect);

impl FreshSource {
    pub fn new(target: &Target, link: Option<&Arc<Emulator>>) -> FreshSource {
        FreshSource(CountingConnect::new(target, link))
    }

    async fn connect(&self) -> Result<(Lease, PhaseTimings), RequestError> {
        let limit = self.0.target.connect_timeout();
        let started = Instant::now();
        let opened = match tokio::time::timeout(limit, self.0.open(started)).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(RequestError::new(
                    ErrorClass::ConnectTimeout,
                    format!(
                        "no answer within the connect timeout ({})",
                        humantime::format_duration(limit)
                    ),
                ))
            }
        };
        let mut t = PhaseTimings::default();
        // One interval, from the same two instants the tcp, tls and
        // startup phases divide.
        t.set(Phase::Connect, micros(opened.ready_at - started));
        Ok((Lease::owned(opened.conn), t))
    }
}

impl ConnectionSource for FreshSource {
    fn acquire(&self) -> BoxFuture<'_, Result<(Lease, PhaseTimings), RequestError>> {
        Box::pin(self.connect())
    }

    /// Nothing to open ahead; the thread is readied (not counted).
    fn warm_up(&self) -> BoxFuture<'_, Result<Duration, RequestError>> {
        self.0.prepare_thread();
        Box::pin(async { Ok(Duration::ZERO) })
    }

    fn pool_status(&self) -> Option<PoolStatus> {
        None
    }

    fn connections_opened(&self) -> u64 {
        self.0.opened()
    }

    fn drain_setups(&self, into: &mut Recorder) {
        self.0.drain_setups(into);
    }

    fn close(&self) {}
}
