//! `plan --verify`: the planned pool measured at the planned rate, in open
//! loop, against what the plan predicted (Erlang C on the sweep's
//! measurements): p99, utilisation and the probability of waiting.

use crate::metrics::decode_histogram;
use crate::report::StrategyReport;

use super::plan::{PlanReport, Verification};

/// An acquire longer than this counts as having waited for a connection
/// (an uncontended acquire takes a few microseconds).
pub const WAITED_US: u64 = 100;

/// Compares the measured strategy `r` with the plan's chosen candidate.
pub fn verification(plan: &PlanReport, r: &StrategyReport) -> Verification {
    let chosen = plan
        .candidates
        .iter()
        .find(|c| c.pool_size == plan.max_size);
    let total_p99_us = r.total().map_or(0, |t| t.p99_us);
    let query_mean_us = r.phases.get("query").map_or(0.0, |q| q.mean_us);
    let achieved = r.achieved_rate.unwrap_or(r.throughput_rps);
    let measured_p_wait = r.phases.get("acquire").and_then(|a| {
        let h = decode_histogram(&a.hdr).ok()?;
        (!h.is_empty()).then(|| {
            let waited = h.count_between(WAITED_US + 1, h.max().max(WAITED_US + 1));
            waited as f64 / h.len() as f64
        })
    });
    let measured_p99_ms = total_p99_us as f64 / 1000.0;
    let errors = r.error_count();
    Verification {
        rate_per_instance: plan.target.rps_per_instance,
        max_size: plan.max_size,
        min_size: plan.min_size,
        achieved_rate: achieved,
        requests: r.requests,
        errors,
        target_p99_ms: plan.target.p99_ms,
        predicted_p99_ms: chosen.and_then(|c| c.predicted_p99_ms),
        measured_p99_ms,
        predicted_utilisation: chosen.map(|c| c.utilisation),
        measured_utilisation: achieved * query_mean_us / 1e6 / f64::from(plan.max_size.max(1)),
        predicted_p_wait: chosen.and_then(|c| c.p_wait),
        measured_p_wait,
        met: r.requests > 0 && measured_p99_ms <= plan.target.p99_ms && r.error_rate() < 0.01,
    }
}
