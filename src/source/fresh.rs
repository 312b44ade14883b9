//! `kind = "fresh"`: a new connection for every request, closed after it.
//! Times the `connect` phase (the whole connection setup, bounded by the
//! target's connect timeout).

use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;

use super::connect::CountingConnect;
use super::lease::Lease;
use super::ConnectionSource;
use crate::backend::postgres::{request_error, Target};
use crate::metrics::{micros, ErrorClass, Phase, PhaseTimings, PoolStatus, RequestError};

pub struct FreshSource(CountingConnect);

impl FreshSource {
    pub fn new(target: &Target) -> FreshSource {
        FreshSource(CountingConnect::new(target))
    }

    async fn connect(&self) -> Result<(Lease, PhaseTimings), RequestError> {
        let limit = self.0.target.connect_timeout();
        let started = Instant::now();
        let (client, task) = match tokio::time::timeout(limit, self.0.open()).await {
            Ok(r) => r.map_err(|e| request_error(&e))?,
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
        t.set(Phase::Connect, micros(started.elapsed()));
        Ok((Lease::owned(client, task), t))
    }
}

impl ConnectionSource for FreshSource {
    fn acquire(&self) -> BoxFuture<'_, Result<(Lease, PhaseTimings), RequestError>> {
        Box::pin(self.connect())
    }

    fn warm_up(&self) -> BoxFuture<'_, Result<Duration, RequestError>> {
        Box::pin(async { Ok(Duration::ZERO) })
    }

    fn pool_status(&self) -> Option<PoolStatus> {
        None
    }

    fn connections_opened(&self) -> u64 {
        self.0.opened()
    }

    fn close(&self) {}
}
