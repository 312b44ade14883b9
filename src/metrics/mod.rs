//! Measurements: per-phase latency histograms owned by each worker, error
//! counts by class, the per-second interval each worker hands to the
//! collector, and the summaries computed from merged histograms.

pub mod errors;

use std::collections::BTreeMap;

use base64::Engine;
use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

pub use errors::{ErrorClass, ErrorCounts};

/// The phases of one request (DESIGN.md, "Execution model").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// Fresh: TCP, TLS, authentication, until ready for query.
    Connect,
    /// Pool: waiting for a connection, including any the pool opens.
    Acquire,
    /// The request's statements.
    Query,
    /// Fresh: closing the connection.
    Close,
    /// Start to finish, as the application sees it.
    Total,
}

impl Phase {
    pub const ALL: [Phase; 5] = [
        Phase::Connect,
        Phase::Acquire,
        Phase::Query,
        Phase::Close,
        Phase::Total,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Connect => "connect",
            Phase::Acquire => "acquire",
            Phase::Query => "query",
            Phase::Close => "close",
            Phase::Total => "total",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A latency histogram in microseconds: 3 significant digits, growing to
/// whatever maximum it meets.
pub fn new_histogram() -> Histogram<u64> {
    // 3 significant figures is within hdrhistogram's supported 0..=5.
    let mut h = Histogram::new(3).expect("3 significant figures is valid");
    h.auto(true);
    h
}

/// Records a latency, growing the histogram as needed (`saturating_record`
/// would clamp to the current range instead of growing it).
pub fn record(h: &mut Histogram<u64>, us: u64) {
    let us = us.max(1);
    if h.record(us).is_err() {
        h.saturating_record(us);
    }
}

/// What one request measured, in microseconds. A phase that does not apply
/// (acquire for a fresh connection) is `None`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    pub connect_us: Option<u64>,
    pub acquire_us: Option<u64>,
    pub query_us: u64,
    pub close_us: Option<u64>,
    pub total_us: u64,
}

/// One histogram per phase.
#[derive(Debug, Clone)]
pub struct PhaseHistograms {
    by_phase: [Histogram<u64>; 5],
}

impl Default for PhaseHistograms {
    fn default() -> Self {
        PhaseHistograms {
            by_phase: std::array::from_fn(|_| new_histogram()),
        }
    }
}

impl PhaseHistograms {
    pub fn record(&mut self, t: &Timings) {
        let mut put = |phase: Phase, us: Option<u64>| {
            if let Some(us) = us {
                record(&mut self.by_phase[phase.index()], us);
            }
        };
        put(Phase::Connect, t.connect_us);
        put(Phase::Acquire, t.acquire_us);
        put(Phase::Query, Some(t.query_us));
        put(Phase::Close, t.close_us);
        put(Phase::Total, Some(t.total_us));
    }

    pub fn get(&self, phase: Phase) -> &Histogram<u64> {
        &self.by_phase[phase.index()]
    }

    pub fn merge(&mut self, other: &PhaseHistograms) {
        for (mine, theirs) in self.by_phase.iter_mut().zip(&other.by_phase) {
            // Both auto-resize, so adding cannot fail on range.
            let _ = mine.add(theirs);
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
}

impl Recorder {
    pub fn new(queries: usize) -> Recorder {
        Recorder {
            phases: PhaseHistograms::default(),
            per_query: (0..queries).map(|_| new_histogram()).collect(),
            requests: 0,
            errors: ErrorCounts::default(),
            retries: 0,
        }
    }

    pub fn record_success(&mut self, query: usize, t: &Timings) {
        self.requests += 1;
        self.phases.record(t);
        record(&mut self.per_query[query], t.total_us);
    }

    pub fn merge(&mut self, other: &Recorder) {
        self.phases.merge(&other.phases);
        for (mine, theirs) in self.per_query.iter_mut().zip(&other.per_query) {
            let _ = mine.add(theirs);
        }
        self.requests += other.requests;
        self.errors.merge(&other.errors);
        self.retries += other.retries;
    }
}

/// One worker's second of work, handed to the collector when the worker
/// finishes a request in a later second (or stops).
#[derive(Debug)]
pub struct Interval {
    pub second: u64,
    pub total: Histogram<u64>,
    pub requests: u64,
    pub errors: u64,
}

impl Interval {
    pub fn new(second: u64) -> Interval {
        Interval {
            second,
            total: new_histogram(),
            requests: 0,
            errors: 0,
        }
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
    Phase::ALL
        .iter()
        .filter(|p| !h.get(**p).is_empty() || **p == Phase::Total || **p == Phase::Query)
        .map(|p| (p.as_str().to_string(), Summary::of(h.get(*p))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let t = Timings {
            connect_us: Some(5000),
            query_us: 100,
            close_us: Some(50),
            total_us: 5150,
            ..Timings::default()
        };
        let mut a = Recorder::new(2);
        let mut b = Recorder::new(2);
        a.record_success(0, &t);
        b.record_success(1, &t);
        b.errors
            .count(ErrorClass::TooManyConnections, "sorry, too many clients");
        a.merge(&b);
        assert_eq!(a.requests, 2);
        assert_eq!(a.phases.get(Phase::Connect).len(), 2);
        assert!(a.phases.get(Phase::Acquire).is_empty());
        assert_eq!(a.per_query[1].len(), 1);
        assert_eq!(a.errors.total(), 1);
        let phases = summarize_phases(&a.phases);
        assert!(phases.contains_key("connect") && !phases.contains_key("acquire"));
    }
}
