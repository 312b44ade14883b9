//! What the proxy saw, gathered from every relayed connection: the phases'
//! histograms (`connect` with `tcp`/`tls`/`startup`, `query` per round of
//! statements, `total` per transaction, `idle` and `lifetime` per
//! connection), the setup's round trips, counts, how connections ended,
//! and the same counts per second since the watch began. Sessions report
//! to it at each event under one short lock: a relayed statement already
//! costs two socket reads and two writes, next to which the lock is noise.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use crate::report::model::ObservedSecond;
use hdrhistogram::Histogram;

use crate::metrics::{
    new_histogram, record, ErrorClass, ErrorCounts, Phase, PhaseHistograms, PhaseTimings,
};

/// How a relayed connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ended {
    /// The application said goodbye (Terminate), as a driver's close does.
    Terminated,
    /// The application closed its socket without Terminate.
    ClientClosed,
    /// The server closed the session (shut down, killed, idle timeout).
    ServerClosed,
    /// The server refused the session before it was ready (authentication,
    /// too many connections, no such database).
    Refused,
    /// The server could not be reached or its TLS handshake failed.
    Unreachable,
    /// A frame that cannot be a PostgreSQL message, or a message the proxy
    /// cannot relay (channel binding it cannot carry); the socket was closed.
    Malformed,
    /// The watch ended with the connection still open.
    Stopped,
}

impl Ended {
    pub fn as_str(self) -> &'static str {
        match self {
            Ended::Terminated => "terminated",
            Ended::ClientClosed => "client_closed",
            Ended::ServerClosed => "server_closed",
            Ended::Refused => "refused",
            Ended::Unreachable => "unreachable",
            Ended::Malformed => "malformed",
            Ended::Stopped => "stopped",
        }
    }
}

/// One connection's setup: accept to the first ReadyForQuery relayed.
#[derive(Debug, Clone, Copy)]
pub struct SetupTimes {
    pub connect_us: u64,
    /// The proxy's TCP connect to the server (across the emulated link).
    pub tcp_us: u64,
    /// The application's SSLRequest and handshake with the proxy, and the
    /// proxy's with the server; None when neither leg used TLS.
    pub tls_us: Option<u64>,
    /// The rest: StartupMessage, authentication, the backend's start.
    pub startup_us: u64,
    /// Round trips the application made: its TCP handshake counts as one,
    /// then each answer the proxy sent after hearing from it.
    pub round_trips: u32,
}

/// One second of the watch: its row as the report has it, and what the
/// timeline derives from.
#[derive(Debug, Clone)]
pub struct Second {
    /// Counts of the second (connections opened, closed and open at its
    /// end, statements, transactions, errors, the most transactions in
    /// progress at once).
    pub row: ObservedSecond,
    /// Time spent in transactions during the second, µs, summed over
    /// connections: divided by the second, its mean concurrency.
    pub busy_us: u64,
    /// The transactions that ended in it.
    pub total: Histogram<u64>,
}

impl Second {
    fn carried(second: u64, open: u64, in_transaction: u64) -> Second {
        Second {
            row: ObservedSecond {
                second,
                opened: 0,
                closed: 0,
                open,
                statements: 0,
                transactions: 0,
                errors: 0,
                peak_in_transaction: in_transaction,
            },
            busy_us: 0,
            total: new_histogram(),
        }
    }
}

/// Everything observed, as the report is made of it.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub phases: PhaseHistograms,
    pub setup_round_trips: Option<Histogram<u64>>,
    pub opened: u64,
    pub statements: u64,
    pub transactions: u64,
    pub peak_in_transaction: u64,
    pub errors: ErrorCounts,
    pub ended: BTreeMap<Ended, u64>,
    /// Cancel requests forwarded to the server.
    pub cancels: u64,
    /// Setup times summed, and time in statements summed, µs.
    pub setup_us: u64,
    pub query_us: u64,
    pub seconds: Vec<Second>,
    /// Seconds since the watch began, to the snapshot.
    pub elapsed_s: f64,
}

/// The shared tally every session reports to.
pub struct Tally {
    start: Instant,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    observed: Observed,
    open: u64,
    in_transaction: u64,
}

impl Inner {
    /// The row of the current second, opening the seconds up to it.
    fn second(&mut self, start: Instant) -> &mut Second {
        let now = usize::try_from(start.elapsed().as_secs()).unwrap_or(usize::MAX);
        let seconds = &mut self.observed.seconds;
        while seconds.len() <= now {
            seconds.push(Second::carried(
                seconds.len() as u64,
                self.open,
                self.in_transaction,
            ));
        }
        &mut seconds[now]
    }
}

impl Default for Tally {
    fn default() -> Self {
        Tally::new()
    }
}

impl Tally {
    pub fn new() -> Tally {
        Tally {
            start: Instant::now(),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner, Instant) -> R) -> R {
        // A session that panicked while holding the lock cannot have left a
        // count half-made (each update is a few additions): keep counting.
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut inner, self.start)
    }

    /// A connection became ready for queries.
    pub fn opened(&self, setup: &SetupTimes) {
        self.with(|inner, start| {
            inner.open += 1;
            let open = inner.open;
            let second = inner.second(start);
            second.row.opened += 1;
            second.row.open = open;
            let o = &mut inner.observed;
            o.opened += 1;
            o.setup_us += setup.connect_us;
            let mut t = PhaseTimings::default();
            t.set(Phase::Connect, setup.connect_us);
            t.set(Phase::Tcp, setup.tcp_us);
            if let Some(tls) = setup.tls_us {
                t.set(Phase::Tls, tls);
            }
            t.set(Phase::Startup, setup.startup_us);
            o.phases.record(&t);
            record(
                o.setup_round_trips.get_or_insert_with(new_histogram),
                u64::from(setup.round_trips),
            );
        });
    }

    /// A transaction began (the first request from a session outside one).
    pub fn began(&self) {
        self.with(|inner, start| {
            inner.in_transaction += 1;
            let now = inner.in_transaction;
            let second = inner.second(start);
            second.row.peak_in_transaction = second.row.peak_in_transaction.max(now);
            inner.observed.peak_in_transaction = inner.observed.peak_in_transaction.max(now);
        });
    }

    /// A round of requests was answered (ReadyForQuery): `statements` run
    /// in `query_us`; `ended` when the session is out of its transaction,
    /// and `transaction_us` when that transaction ran a statement (begun
    /// that long ago).
    pub fn answered(
        &self,
        statements: u64,
        query_us: u64,
        ended: bool,
        transaction_us: Option<u64>,
    ) {
        self.with(|inner, start| {
            if ended {
                inner.in_transaction = inner.in_transaction.saturating_sub(1);
            }
            let second = inner.second(start);
            second.row.statements += statements;
            second.busy_us += query_us;
            if let Some(us) = transaction_us {
                second.row.transactions += 1;
                record(&mut second.total, us);
            }
            let o = &mut inner.observed;
            o.statements += statements;
            o.query_us += query_us;
            let mut t = PhaseTimings::default();
            t.set(Phase::Query, query_us);
            if let Some(us) = transaction_us {
                o.transactions += 1;
                t.set(Phase::Total, us);
            }
            o.phases.record(&t);
        });
    }

    /// The server answered a request with an error.
    pub fn error(&self, class: ErrorClass, message: &str) {
        self.with(|inner, start| {
            inner.second(start).row.errors += 1;
            inner.observed.errors.count(&class, message);
        });
    }

    /// A connection ended. `ready` when it had been counted open (its
    /// setup finished); `idle_us` and `lifetime_us` are its own.
    pub fn closed(
        &self,
        how: Ended,
        ready: bool,
        in_transaction: bool,
        idle_us: u64,
        lifetime_us: u64,
    ) {
        self.with(|inner, start| {
            if ready {
                inner.open = inner.open.saturating_sub(1);
            }
            if in_transaction {
                inner.in_transaction = inner.in_transaction.saturating_sub(1);
            }
            let open = inner.open;
            let second = inner.second(start);
            if ready {
                second.row.closed += 1;
                second.row.open = open;
            }
            let o = &mut inner.observed;
            *o.ended.entry(how).or_default() += 1;
            if ready {
                let mut t = PhaseTimings::default();
                t.set(Phase::Idle, idle_us);
                t.set(Phase::Lifetime, lifetime_us);
                o.phases.record(&t);
            }
        });
    }

    /// A cancel request was forwarded.
    pub fn cancelled(&self) {
        self.with(|inner, _| inner.observed.cancels += 1);
    }

    /// Everything so far, the current second included.
    pub fn snapshot(&self) -> Observed {
        self.with(|inner, start| {
            inner.second(start);
            let mut o = inner.observed.clone();
            o.elapsed_s = start.elapsed().as_secs_f64();
            o
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(connect_us: u64) -> SetupTimes {
        SetupTimes {
            connect_us,
            tcp_us: 100,
            tls_us: None,
            startup_us: connect_us - 100,
            round_trips: 4,
        }
    }

    #[test]
    fn counts_add_up_per_second_and_in_total() {
        let t = Tally::new();
        t.opened(&setup(2_000));
        t.opened(&setup(4_000));
        t.began();
        t.began();
        t.answered(1, 300, false, None);
        t.answered(2, 500, true, Some(900));
        t.error(ErrorClass::Query("42P01".into()), "relation does not exist");
        t.answered(1, 200, true, Some(400));
        t.closed(Ended::Terminated, true, false, 50, 10_000);
        let o = t.snapshot();
        assert_eq!(o.opened, 2);
        assert_eq!(o.statements, 4);
        assert_eq!(o.transactions, 2);
        assert_eq!(o.peak_in_transaction, 2);
        assert_eq!(o.setup_us, 6_000);
        assert_eq!(o.query_us, 1_000);
        assert_eq!(o.phases.count(Phase::Connect), 2);
        assert_eq!(o.phases.count(Phase::Query), 3);
        assert_eq!(o.phases.count(Phase::Total), 2);
        assert_eq!(o.phases.count(Phase::Lifetime), 1);
        assert_eq!(o.errors.total(), 1);
        assert_eq!(o.ended[&Ended::Terminated], 1);
        let s = &o.seconds[0].row;
        assert_eq!((s.opened, s.closed, s.open), (2, 1, 1));
        assert_eq!((s.statements, s.transactions, s.errors), (4, 2, 1));
        assert_eq!(o.seconds[0].total.len(), 2);
    }

    #[test]
    fn a_connection_refused_before_ready_is_not_counted_open() {
        let t = Tally::new();
        t.closed(Ended::Refused, false, false, 0, 0);
        let o = t.snapshot();
        assert_eq!(o.seconds[0].row.closed, 0);
        assert_eq!(o.seconds[0].row.open, 0);
        assert_eq!(o.ended[&Ended::Refused], 1);
        assert_eq!(o.phases.count(Phase::Lifetime), 0);
    }
}
