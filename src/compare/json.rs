//! The machine-readable view: every number, interval, threshold and verdict,
//! and `regression`, the one field a script needs.

use anyhow::Result;
use serde_json::{json, Value};

use super::{Diff, MetricDiff};

pub fn render(diff: &Diff) -> Result<String> {
    let side = |s: &super::verdict::Source| {
        json!({
            "path": s.path.display().to_string(),
            "scenario": s.scenario,
            "sha256": s.sha256,
            "started_at": s.started_at,
        })
    };
    let strategies: Vec<Value> = diff
        .strategies
        .iter()
        .map(|s| {
            json!({
                "name": s.name,
                "kind": s.kind,
                "baseline_rounds": s.base_rounds,
                "candidate_rounds": s.candidate_rounds,
                "metrics": s.metrics.iter().map(metric).collect::<Vec<_>>(),
            })
        })
        .collect();
    let value = json!({
        "regression": diff.regression(),
        "summary": diff.summary(false),
        "test": diff.method_note(),
        "baseline": side(&diff.baseline),
        "candidate": side(&diff.candidate),
        "strategies": strategies,
        "only_in_baseline": diff.only_in_baseline,
        "only_in_candidate": diff.only_in_candidate,
        "warnings": diff.warnings,
    });
    let mut text = serde_json::to_string_pretty(&value)?;
    text.push('\n');
    Ok(text)
}

/// One metric. Latencies are in microseconds, throughput in requests/s,
/// error rate in percent; `change_pct`, `ci_low`, `ci_high` and `threshold`
/// are percent, except for error_rate where they are percentage points.
fn metric(m: &MetricDiff) -> Value {
    let unit = match m.metric {
        super::Metric::Throughput => "rps",
        super::Metric::ErrorRate => "percent",
        _ => "us",
    };
    json!({
        "metric": m.metric.as_str(),
        "unit": unit,
        "base": m.base,
        "candidate": m.candidate,
        "change_pct": m.change,
        "change_unit": if m.metric.in_points() { "points" } else { "percent" },
        "ci_low": m.ci.map(|c| c.0),
        "ci_high": m.ci.map(|c| c.1),
        "threshold": m.threshold.map(|t| t * m.metric.worse_sign()),
        "method": m.method.as_str(),
        "verdict": m.verdict.as_str(),
    })
}
