//! The histogram every latency and count is kept in.

use hdrhistogram::Histogram;

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
    record_n(h, us, 1);
}

/// Records a latency `n` times at once, as [`record`] does.
pub fn record_n(h: &mut Histogram<u64>, us: u64, n: u64) {
    let us = us.max(1);
    if h.record_n(us, n).is_err() {
        h.saturating_record_n(us, n);
    }
}
