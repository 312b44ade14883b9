//! What opening one connection measured — its `tcp`, `tls` and `startup`
//! phases and, across an emulated link, its round trips — and the log a
//! connection source keeps them in until the round ends. Setups are
//! recorded apart from requests because a pool opens connections on its own
//! time (filling before measuring, replacing dead ones during it): this way
//! every connection poolbench opens counts exactly once, whoever opened it,
//! and the phases' `count` is the number of connections opened.

use std::sync::{mpsc, Mutex};

use hdrhistogram::Histogram;

use super::histogram::new_histogram;

/// One connection's setup, in microseconds. `tcp + tls + startup` is the
/// whole connect, measured as consecutive intervals of one clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setup {
    pub tcp_us: u64,
    /// None when no SSLRequest was sent (sslmode=disable).
    pub tls_us: Option<u64>,
    pub startup_us: u64,
    /// Round trips until ReadyForQuery, the TCP handshake included (only
    /// across the link emulator, which counts them).
    pub round_trips: Option<u32>,
    /// Whose CPU it used, when the engine's dialer measures it.
    pub cpu: Option<SetupCpu>,
}

/// Whose CPU one connection's setup used, in microseconds: the opening
/// thread's (the client's), split as its wall time is, SCRAM's proof apart,
/// and the server backend's until ReadyForQuery when its process is visible.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SetupCpu {
    pub client_us: u64,
    pub client_tcp_us: u64,
    /// None when no SSLRequest was sent and no TLS handshake happened.
    pub client_tls_us: Option<u64>,
    pub client_startup_us: u64,
    /// From the server's first SCRAM message to the client's proof written
    /// (PBKDF2): None without
    /// SCRAM.
    pub client_scram_us: Option<u64>,
    /// The backend's CPU from its fork to ReadyForQuery (its share of the
    /// fork included, the postmaster's not).
    pub server_us: Option<u64>,
    /// PostgreSQL >= 18's logged setup durations (wall time, not CPU):
    /// fork (the postmaster's accept to the backend running) and
    /// authentication (its waits for the client included).
    pub server_fork_us: Option<u64>,
    pub server_auth_us: Option<u64>,
}

/// The setups' CPU times, one histogram per part (absent until recorded).
#[derive(Debug, Clone, Default)]
pub struct SetupCpuHistograms {
    pub client: Option<Histogram<u64>>,
    pub client_tcp: Option<Histogram<u64>>,
    pub client_tls: Option<Histogram<u64>>,
    pub client_startup: Option<Histogram<u64>>,
    pub client_scram: Option<Histogram<u64>>,
    pub server: Option<Histogram<u64>>,
    pub server_fork: Option<Histogram<u64>>,
    pub server_auth: Option<Histogram<u64>>,
}

impl SetupCpuHistograms {
    pub fn record(&mut self, cpu: &SetupCpu) {
        let parts = [
            (&mut self.client, Some(cpu.client_us)),
            (&mut self.client_tcp, Some(cpu.client_tcp_us)),
            (&mut self.client_tls, cpu.client_tls_us),
            (&mut self.client_startup, Some(cpu.client_startup_us)),
            (&mut self.client_scram, cpu.client_scram_us),
            (&mut self.server, cpu.server_us),
            (&mut self.server_fork, cpu.server_fork_us),
            (&mut self.server_auth, cpu.server_auth_us),
        ];
        for (h, us) in parts {
            if let Some(us) = us {
                count(h, u32::try_from(us).unwrap_or(u32::MAX));
            }
        }
    }

    pub fn merge(&mut self, other: &SetupCpuHistograms) {
        for (mine, theirs) in [
            (&mut self.client, &other.client),
            (&mut self.client_tcp, &other.client_tcp),
            (&mut self.client_tls, &other.client_tls),
            (&mut self.client_startup, &other.client_startup),
            (&mut self.client_scram, &other.client_scram),
            (&mut self.server, &other.server),
            (&mut self.server_fork, &other.server_fork),
            (&mut self.server_auth, &other.server_auth),
        ] {
            if let Some(theirs) = theirs {
                // Both auto-resize, so adding cannot fail on range.
                let _ = mine.get_or_insert_with(counts).add(theirs);
            }
        }
    }
}

/// The setups of one connection source's connections. Recording is a
/// lock-free channel send (it happens on the request path of a fresh
/// connection); draining, by the engine's collector once a tick and at the
/// round's end, is the only use of the lock.
pub struct SetupLog {
    tx: mpsc::Sender<Setup>,
    rx: Mutex<mpsc::Receiver<Setup>>,
}

impl Default for SetupLog {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel();
        SetupLog {
            tx,
            rx: Mutex::new(rx),
        }
    }
}

impl SetupLog {
    pub fn record(&self, setup: Setup) {
        // The receiver lives as long as the log: sending cannot fail.
        let _ = self.tx.send(setup);
    }

    /// Every setup logged so far, taken out of the log (the timings land
    /// in a recorder through `SetupLog::drain_into`).
    pub fn drain(&self) -> Vec<Setup> {
        let rx = self.rx.lock().unwrap_or_else(|e| e.into_inner());
        rx.try_iter().collect()
    }
}

/// Round trips counted by the link emulator: per connection setup, and per
/// request (from acquire to release, a fresh connection's setup included).
#[derive(Debug, Clone, Default)]
pub struct RoundTrips {
    pub connect: Option<Histogram<u64>>,
    pub request: Option<Histogram<u64>>,
}

impl RoundTrips {
    pub fn record_connect(&mut self, n: u32) {
        count(&mut self.connect, n);
    }

    pub fn record_request(&mut self, n: u32) {
        count(&mut self.request, n);
    }

    pub fn merge(&mut self, other: &RoundTrips) {
        for (mine, theirs) in [
            (&mut self.connect, &other.connect),
            (&mut self.request, &other.request),
        ] {
            if let Some(theirs) = theirs {
                // Both auto-resize, so adding cannot fail on range.
                let _ = mine.get_or_insert_with(counts).add(theirs);
            }
        }
    }
}

/// A histogram of small counts, exact (0 allowed).
fn counts() -> Histogram<u64> {
    new_histogram()
}

fn count(h: &mut Option<Histogram<u64>>, n: u32) {
    let h = h.get_or_insert_with(counts);
    if h.record(u64::from(n)).is_err() {
        h.saturating_record(u64::from(n));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Phase, Recorder};

    #[test]
    fn logged_setups_land_in_the_recorder_once() {
        let log = SetupLog::default();
        log.record(Setup {
            tcp_us: 100,
            tls_us: Some(2_000),
            startup_us: 5_000,
            round_trips: Some(6),
            cpu: Some(SetupCpu {
                client_us: 900,
                client_tcp_us: 30,
                client_tls_us: Some(400),
                client_startup_us: 470,
                client_scram_us: Some(350),
                server_us: Some(1_200),
                server_fork_us: None,
                server_auth_us: None,
            }),
        });
        log.record(Setup {
            tcp_us: 120,
            tls_us: None,
            startup_us: 4_000,
            round_trips: None,
            cpu: None,
        });
        let mut r = Recorder::new(0);
        log.drain_into(&mut r);
        log.drain_into(&mut r);
        assert_eq!(r.phases.count(Phase::Tcp), 2);
        assert_eq!(r.phases.count(Phase::Tls), 1);
        assert_eq!(r.phases.count(Phase::Startup), 2);
        assert_eq!(r.requests, 0, "setups are not requests");
        let connect = r.round_trips.connect.as_ref().unwrap();
        assert_eq!((connect.len(), connect.max()), (1, 6));
        assert!(r.round_trips.request.is_none());
        let client = r.setup_cpu.client.as_ref().unwrap();
        assert_eq!((client.len(), client.max()), (1, 900));
        assert_eq!(r.setup_cpu.server.as_ref().map(|h| h.max()), Some(1_200));
    }
}
