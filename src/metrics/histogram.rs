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
    let us = us.max(1);
    if h.record(us).is_err() {
        h.saturating_record(us);
    }
}
