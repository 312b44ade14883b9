//! Measurements: the phases of a request (the one list of them), per-phase
//! latency histograms owned by each worker, error counts by class, the
//! per-second interval each worker hands to the collector, and the
//! summaries computed from merged histograms. `setup.rs` holds what opening
//! a connection measured, recorded apart from the requests; `packed.rs` a
//! second's histograms once it is over, and `spill.rs` the file they wait
//! in for the report.

pub mod errors;
pub mod histogram;
pub mod packed;
pub mod setup;
pub mod spill;

use std::collections::BTreeMap;

use base64::Engine;
use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

pub use errors::{ErrorClass, ErrorCounts, RequestError, SqlState};
pub use histogram::{new_histogram, record};
pub use setup::{RoundTrips, Setup, SetupCpu, SetupCpuHistograms, SetupLog};

/// The phases of one request: the one list of them. Histograms, report
/// fields, CSV rows and table lines are all derived from [`Phase::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// Opening a connection: TCP, TLS, authentication, until ready for query.
    Connect,
    /// Of every connection opened: name resolution and the TCP handshake.
    Tcp,
    /// Of every connection opened: the SSLRequest and the TLS handshake
    /// (absent with sslmode=disable).
    Tls,
    /// Of every connection opened: StartupMessage to ReadyForQuery
    /// (authentication, the backend's fork and initialisation).
    Startup,
    /// Waiting for a pooled connection, including any the pool opens.
    Acquire,
    /// Of a pooled request's `acquire`: waiting for a connection to be free
    /// (0 when one was).
    Wait,
    /// Of a pooled request's `acquire`: opening a connection for it (none
    /// idle, the pool below its size: at the start, after an expiry).
    Open,
    /// Of a pooled request's `acquire`: the checkout check (`check`).
    Check,
    /// The request's statements.
    Query,
    /// Closing a connection opened for the request.
    Close,
    /// A pooled connection's reset on release (`reset`).
    Reset,
    /// Open loop: from the generator's dispatch of an arrival to the start
    /// of service (waiting for a free handler).
    Queue,
    /// Open loop: from the intended arrival to the moment the generator
    /// dispatched it, poolbench's own delay (pgbench's "schedule lag").
    Lag,
    /// Open loop: from the start of service to its end (what a tool that
    /// ignores coordinated omission reports).
    Service,
    /// Start to finish, as the application sees it (retries included); in
    /// open loop from the intended arrival.
    Total,
    /// `watch`: of each connection the application opened, the time it
    /// sat between answers and its next request.
    Idle,
    /// `watch`: of each connection the application opened, accept to close.
    Lifetime,
}

impl Phase {
    pub const COUNT: usize = 17;
    pub const ALL: [Phase; Phase::COUNT] = [
        Phase::Connect,
        Phase::Tcp,
        Phase::Tls,
        Phase::Startup,
        Phase::Acquire,
        Phase::Wait,
        Phase::Open,
        Phase::Check,
        Phase::Query,
        Phase::Close,
        Phase::Reset,
        Phase::Queue,
        Phase::Lag,
        Phase::Service,
        Phase::Total,
        Phase::Idle,
        Phase::Lifetime,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Connect => "connect",
            Phase::Tcp => "tcp",
            Phase::Tls => "tls",
            Phase::Startup => "startup",
            Phase::Acquire => "acquire",
            Phase::Wait => "wait",
            Phase::Open => "open",
            Phase::Check => "check",
            Phase::Query => "query",
            Phase::Close => "close",
            Phase::Reset => "reset",
            Phase::Queue => "queue",
            Phase::Lag => "lag",
            Phase::Service => "service",
            Phase::Total => "total",
            Phase::Idle => "idle",
            Phase::Lifetime => "lifetime",
        }
    }

    /// The phase this one is a step of — `tcp`, `tls` and `startup` divide
    /// `connect` (and a pool's connections are opened outside any request);
    /// `wait`, `open` and `check` divide `acquire` — or None for a phase of
    /// the request itself.
    pub fn within(self) -> Option<Phase> {
        match self {
            Phase::Tcp | Phase::Tls | Phase::Startup => Some(Phase::Connect),
            Phase::Wait | Phase::Open | Phase::Check => Some(Phase::Acquire),
            _ => None,
        }
    }

    /// Whether the phase is a part of a request (`total` is made of those
    /// that are no step of another); `idle` and `lifetime` are a
    /// connection's, measured by `watch`.
    pub fn of_request(self) -> bool {
        !matches!(self, Phase::Idle | Phase::Lifetime)
    }

    /// Phases every strategy reports, even without a sample (the others are
    /// left out where they do not apply, as `acquire` for fresh connections).
    pub fn always_reported(self) -> bool {
        matches!(self, Phase::Query | Phase::Total)
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// A duration in whole microseconds, the unit of every histogram.
pub fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// What one request measured, in microseconds, by phase. A phase that does
/// not apply (acquire for a fresh connection) has no time. With an emulated
/// link, also the round trips the request waited for.
///
/// The phases with a time are bits of one word beside plain integers (not
/// an `Option` each): 152 bytes instead of 280, and it is set up, moved up
/// every level of a request's future and walked by the tally on every
/// request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PhaseTimings {
    // (Every phase has its bit: `Phase::COUNT` is at most 32, asserted below.)
    /// Bit `i` set: phase `i` has its time in `us[i]` (0 otherwise).
    timed: u32,
    us: [u64; Phase::COUNT],
    round_trips: Option<u32>,
}

const _: () = assert!(Phase::COUNT <= 32);

impl PhaseTimings {
    /// Round trips on the request's connection from acquire to release
    /// (its setup included when it was opened for the request); the most
    /// of any branch of a parallel request.
    pub fn set_round_trips(&mut self, n: u32) {
        self.round_trips = Some(self.round_trips.map_or(n, |m| m.max(n)));
    }

    pub fn round_trips(&self) -> Option<u32> {
        self.round_trips
    }

    pub fn set(&mut self, phase: Phase, us: u64) {
        let i = phase.index();
        self.us[i] = us;
        self.timed |= 1 << i;
    }

    /// Keeps the larger of the current and the given time (the slowest of
    /// parallel branches).
    pub fn set_max(&mut self, phase: Phase, us: u64) {
        let us = self.get(phase).map_or(us, |v| v.max(us));
        self.set(phase, us);
    }

    pub fn get(&self, phase: Phase) -> Option<u64> {
        let i = phase.index();
        (self.timed & (1 << i) != 0).then(|| self.us[i])
    }

    /// Every phase with a time, in [`Phase::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Phase, u64)> + '_ {
        let mut left = self.timed;
        std::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            let i = left.trailing_zeros() as usize;
            left &= left - 1;
            Some((Phase::ALL[i], self.us[i]))
        })
    }
}

/// One histogram per phase, allocated when the phase is first recorded (a
/// worker never pays for phases its strategy does not have).
#[derive(Debug, Clone, Default)]
pub struct PhaseHistograms {
    by_phase: [Option<Histogram<u64>>; Phase::COUNT],
}

impl PhaseHistograms {
    pub fn record(&mut self, t: &PhaseTimings) {
        for (phase, us) in t.iter() {
            self.record_n(phase, us, 1);
        }
    }

    /// `n` requests whose `phase` took `us`.
    pub fn record_n(&mut self, phase: Phase, us: u64, n: u64) {
        histogram::record_n(
            self.by_phase[phase.index()].get_or_insert_with(new_histogram),
            us,
            n,
        );
    }

    /// Sets the phase's histogram (an unpacked one, `packed.rs`).
    pub fn insert(&mut self, phase: Phase, h: Histogram<u64>) {
        self.by_phase[phase.index()] = Some(h);
    }

    /// The phase's histogram, or None when nothing was recorded in it.
    pub fn get(&self, phase: Phase) -> Option<&Histogram<u64>> {
        self.by_phase[phase.index()]
            .as_ref()
            .filter(|h| !h.is_empty())
    }

    /// The number of samples of `phase`.
    pub fn count(&self, phase: Phase) -> u64 {
        self.get(phase).map_or(0, Histogram::len)
    }

    pub fn merge(&mut self, other: &PhaseHistograms) {
        for (mine, theirs) in self.by_phase.iter_mut().zip(&other.by_phase) {
            if let Some(theirs) = theirs {
                // Both auto-resize, so adding cannot fail on range.
                let _ = mine.get_or_insert_with(new_histogram).add(theirs);
            }
        }
    }
}

/// Everything one worker measured during the measured window. Owned by that
/// worker alone: no lock on the request path.
#[derive(Debug, Clone)]
pub struct Recorder {
    pub phases: PhaseHistograms,
    /// `total` per query, indexed like the scenario's queries.
    pub per_query: Vec<Histogram<u64>>,
    pub requests: u64,
    pub errors: ErrorCounts,
    /// Attempts beyond the first, made by the retry policy.
    pub retries: u64,
    /// Round trips counted by the link emulator (empty without one).
    pub round_trips: RoundTrips,
    /// The CPU time of the connections' setups (empty when not measured).
    pub setup_cpu: SetupCpuHistograms,
}

impl Recorder {
    pub fn new(queries: usize) -> Recorder {
        Recorder {
            phases: PhaseHistograms::default(),
            per_query: (0..queries).map(|_| new_histogram()).collect(),
            requests: 0,
            errors: ErrorCounts::default(),
            retries: 0,
            round_trips: RoundTrips::default(),
            setup_cpu: SetupCpuHistograms::default(),
        }
    }

    pub fn record_success(&mut self, query: usize, t: &PhaseTimings) {
        self.phases.record(t);
        self.count_success(query, t);
    }

    /// A success whose phases are recorded elsewhere (in a second's
    /// interval, merged in when the second ends): its count, round trips
    /// and per-query total.
    pub fn count_success(&mut self, query: usize, t: &PhaseTimings) {
        self.count(t);
        self.record_query(query, t);
    }

    /// As [`Recorder::count_success`], but the first query's total is not
    /// recorded per query: it is the `total` histogram less every other
    /// query's, which [`Recorder::derive_first_query`] works out once at
    /// the end (one histogram record a request less, in a scenario of one
    /// query).
    pub fn count_success_but_first(&mut self, query: usize, t: &PhaseTimings) {
        self.count(t);
        if query != 0 {
            self.record_query(query, t);
        }
    }

    fn count(&mut self, t: &PhaseTimings) {
        self.requests += 1;
        if let Some(n) = t.round_trips() {
            self.round_trips.record_request(n);
        }
    }

    fn record_query(&mut self, query: usize, t: &PhaseTimings) {
        if let Some(total) = t.get(Phase::Total) {
            if self.per_query.len() <= query {
                self.per_query.resize_with(query + 1, new_histogram);
            }
            record(&mut self.per_query[query], total);
        }
    }

    /// Fills in the first query's per-query histogram of a recorder whose
    /// successes were counted by [`Recorder::count_success_but_first`]
    /// and whose phases hold each success's `total` once: that total less
    /// every other query's, bucket by bucket (the same values were
    /// recorded in both, so the difference is exact).
    pub fn derive_first_query(&mut self) {
        let Some(total) = self.phases.get(Phase::Total) else {
            return;
        };
        let mut first = total.clone();
        for other in self.per_query.iter().skip(1) {
            // Each value of `other` is in `total` as often at least, in
            // range: subtracting cannot fail.
            let subtracted = first.subtract(other);
            debug_assert!(subtracted.is_ok(), "{subtracted:?}");
        }
        match self.per_query.first_mut() {
            Some(h) => *h = first,
            None => self.per_query.push(first),
        }
    }

    pub fn merge(&mut self, other: &Recorder) {
        self.phases.merge(&other.phases);
        if self.per_query.len() < other.per_query.len() {
            self.per_query
                .resize_with(other.per_query.len(), new_histogram);
        }
        for (mine, theirs) in self.per_query.iter_mut().zip(&other.per_query) {
            let _ = mine.add(theirs);
        }
        self.requests += other.requests;
        self.errors.merge(&other.errors);
        self.retries += other.retries;
        self.round_trips.merge(&other.round_trips);
        self.setup_cpu.merge(&other.setup_cpu);
    }
}

/// One worker's second of work, handed to the collector when the worker
/// finishes a request in a later second (or stops).
#[derive(Debug)]
pub struct Interval {
    pub second: u64,
    pub phases: PhaseHistograms,
    pub requests: u64,
    pub errors: u64,
    /// Open loop: of `errors`, arrivals that expired before they were sent.
    pub expired: u64,
}

impl Interval {
    pub fn new(second: u64) -> Interval {
        Interval {
            second,
            phases: PhaseHistograms::default(),
            requests: 0,
            errors: 0,
            expired: 0,
        }
    }
}

/// A pooler's figures at one instant (PgBouncer's `SHOW POOLS`), for the
/// timeline: clients served and waiting, server connections busy and idle.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolerStatus {
    pub cl_active: u64,
    pub cl_waiting: u64,
    pub sv_active: u64,
    pub sv_idle: u64,
}

/// Pool occupancy at one instant, for the timeline, and the connections
/// its pools opened and closed so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStatus {
    pub size: usize,
    pub available: usize,
    pub waiting: usize,
    /// Connections opened so far (the fill included).
    pub opened: u64,
    /// Connections closed so far, by cause.
    pub closed: ClosedBy,
}

impl PoolStatus {
    /// Two pools' occupancy added up.
    pub fn plus(self, other: PoolStatus) -> PoolStatus {
        PoolStatus {
            size: self.size + other.size,
            available: self.available + other.available,
            waiting: self.waiting + other.waiting,
            opened: self.opened + other.opened,
            closed: self.closed.plus(other.closed),
        }
    }
}

/// Connections a pool closed, by why: their lifetime was over, they sat
/// idle too long, their checkout check or keepalive failed, or an error
/// (found closed, a failed reset, a request abandoned while holding one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClosedBy {
    pub lifetime: u64,
    pub idle: u64,
    pub check: u64,
    pub error: u64,
}

impl ClosedBy {
    pub fn plus(self, o: ClosedBy) -> ClosedBy {
        ClosedBy {
            lifetime: self.lifetime + o.lifetime,
            idle: self.idle + o.idle,
            check: self.check + o.check,
            error: self.error + o.error,
        }
    }

    /// What was closed since `before` (counts only grow).
    pub fn since(self, before: ClosedBy) -> ClosedBy {
        ClosedBy {
            lifetime: self.lifetime.saturating_sub(before.lifetime),
            idle: self.idle.saturating_sub(before.idle),
            check: self.check.saturating_sub(before.check),
            error: self.error.saturating_sub(before.error),
        }
    }

    pub fn total(&self) -> u64 {
        self.lifetime + self.idle + self.check + self.error
    }
}

/// Percentiles and moments of one histogram, as report.json stores them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub count: u64,
    pub mean_us: f64,
    pub stddev_us: f64,
    pub min_us: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p95_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    /// Base64 of the HdrHistogram V2+DEFLATE serialisation.
    pub hdr: String,
}

impl Summary {
    /// The p50 and p99 of a histogram (zeroes when it is missing or empty).
    pub fn quantiles(h: Option<&Histogram<u64>>) -> (u64, u64) {
        match h.filter(|h| !h.is_empty()) {
            Some(h) => (h.value_at_quantile(0.5), h.value_at_quantile(0.99)),
            None => (0, 0),
        }
    }

    pub fn of(h: &Histogram<u64>) -> Summary {
        let empty = h.is_empty();
        let q = |q: f64| if empty { 0 } else { h.value_at_quantile(q) };
        Summary {
            count: h.len(),
            mean_us: if empty { 0.0 } else { round3(h.mean()) },
            stddev_us: if empty { 0.0 } else { round3(h.stdev()) },
            min_us: if empty { 0 } else { h.min() },
            p50_us: q(0.50),
            p90_us: q(0.90),
            p95_us: q(0.95),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: if empty { 0 } else { h.max() },
            hdr: encode_histogram(h),
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pub fn encode_histogram(h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    // Serialising into a Vec cannot fail for I/O; a histogram too large to
    // encode would be a bug, and an empty string keeps the report writable.
    if V2DeflateSerializer::new().serialize(h, &mut bytes).is_err() {
        return String::new();
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn decode_histogram(text: &str) -> anyhow::Result<Histogram<u64>> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(text)?;
    let h = hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| anyhow::anyhow!("invalid histogram: {e:?}"))?;
    Ok(h)
}

/// Summaries of the phases a strategy measured (a phase with no sample,
/// such as `acquire` for a fresh strategy, is left out).
pub fn summarize_phases(h: &PhaseHistograms) -> BTreeMap<String, Summary> {
    let empty = new_histogram();
    Phase::ALL
        .iter()
        .filter(|p| h.get(**p).is_some() || p.always_reported())
        .map(|p| {
            (
                p.as_str().to_string(),
                Summary::of(h.get(*p).unwrap_or(&empty)),
            )
        })
        .collect()
}

/// Each recorded phase's histogram, encoded (for the timeline's `hdr`).
pub fn encode_phases(h: &PhaseHistograms) -> BTreeMap<String, String> {
    Phase::ALL
        .iter()
        .filter_map(|p| {
            h.get(*p)
                .map(|h| (p.as_str().to_string(), encode_histogram(h)))
        })
        .collect()
}

impl Setup {
    /// The setup as phase timings (tcp, tls, startup).
    pub fn timings(&self) -> PhaseTimings {
        let mut t = PhaseTimings::default();
        t.set(Phase::Tcp, self.tcp_us);
        if let Some(us) = self.tls_us {
            t.set(Phase::Tls, us);
        }
        t.set(Phase::Startup, self.startup_us);
        t
    }
}

impl SetupLog {
    /// Moves every setup logged so far into `recorder`: its tcp, tls and
    /// startup histograms and its connect round trips.
    pub fn drain_into(&self, recorder: &mut Recorder) {
        for setup in self.drain() {
            recorder.phases.record(&setup.timings());
            if let Some(n) = setup.round_trips {
                recorder.round_trips.record_connect(n);
            }
            if let Some(cpu) = &setup.cpu {
                recorder.setup_cpu.record(cpu);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timings_list_the_phases_set_in_order() {
        let mut t = PhaseTimings::default();
        assert_eq!(t.iter().count(), 0);
        t.set(Phase::Total, 9);
        t.set(Phase::Acquire, 0);
        t.set(Phase::Lifetime, 3);
        t.set_max(Phase::Query, 5);
        t.set_max(Phase::Query, 4);
        assert_eq!(
            t.iter().collect::<Vec<_>>(),
            [
                (Phase::Acquire, 0),
                (Phase::Query, 5),
                (Phase::Total, 9),
                (Phase::Lifetime, 3)
            ]
        );
        assert_eq!(t.get(Phase::Acquire), Some(0));
        assert_eq!(t.get(Phase::Connect), None);
        assert!(std::mem::size_of::<PhaseTimings>() <= 152);
    }

    #[test]
    fn summary_round_trips_through_its_encoding() {
        let mut h = new_histogram();
        for v in 1..=10_000u64 {
            record(&mut h, v * 7);
        }
        let s = Summary::of(&h);
        assert_eq!(s.count, 10_000);
        let back = decode_histogram(&s.hdr).unwrap();
        assert_eq!(back.value_at_quantile(0.99), s.p99_us);
        assert_eq!(back.len(), 10_000);
        assert!((s.p50_us as f64 - 35_000.0).abs() < 50.0, "{}", s.p50_us);
        assert!(
            (s.max_us as f64 - 70_000.0).abs() < 100.0,
            "grows past its first range: {}",
            s.max_us
        );
    }

    #[test]
    fn empty_histogram_summarises_to_zeroes() {
        let s = Summary::of(&new_histogram());
        assert_eq!((s.count, s.p99_us, s.max_us), (0, 0, 0));
    }

    #[test]
    fn recorders_merge() {
        let mut t = PhaseTimings::default();
        t.set(Phase::Connect, 5000);
        t.set(Phase::Query, 100);
        t.set(Phase::Close, 50);
        t.set(Phase::Total, 5150);
        let mut a = Recorder::new(2);
        let mut b = Recorder::new(2);
        a.record_success(0, &t);
        b.record_success(1, &t);
        b.errors
            .count(&ErrorClass::TooManyConnections, "sorry, too many clients");
        a.merge(&b);
        assert_eq!(a.requests, 2);
        assert_eq!(a.phases.count(Phase::Connect), 2);
        assert!(a.phases.get(Phase::Acquire).is_none());
        assert_eq!(a.per_query[1].len(), 1);
        assert_eq!(a.errors.total(), 1);
        let phases = summarize_phases(&a.phases);
        assert!(phases.contains_key("connect") && !phases.contains_key("acquire"));
    }

    #[test]
    fn the_first_query_is_derived_from_the_total_exactly() {
        let (mut counted, mut derived) = (Recorder::new(0), Recorder::new(0));
        for i in 0..3000u64 {
            let mut t = PhaseTimings::default();
            let query = (i % 3 == 0) as usize * (1 + (i % 2) as usize);
            t.set(Phase::Total, 1 + i * i % 70_001);
            counted.record_success(query, &t);
            derived.phases.record(&t);
            derived.count_success_but_first(query, &t);
        }
        assert!(derived.per_query.first().is_none_or(Histogram::is_empty));
        derived.derive_first_query();
        assert_eq!(derived.per_query.len(), 3);
        for (c, d) in counted.per_query.iter().zip(&derived.per_query) {
            assert_eq!(c, d);
        }
        assert_eq!(derived.per_query[0].len(), 2000);
        // One query only: the whole total.
        let mut one = Recorder::new(0);
        let mut t = PhaseTimings::default();
        t.set(Phase::Total, 42);
        one.phases.record(&t);
        one.count_success_but_first(0, &t);
        one.derive_first_query();
        assert_eq!(one.per_query.len(), 1);
        assert_eq!(one.per_query[0].value_at_quantile(1.0), 42);
        // Nothing measured: nothing derived.
        let mut none = Recorder::new(0);
        none.derive_first_query();
        assert!(none.per_query.is_empty());
    }
}
