//! Test helpers for every axis's views: an empty sweep of any axis.

use super::{Axis, Sweep, SWEEP_SCHEMA_VERSION};

/// A sweep of axis `A` with nothing measured: the known sweep's header,
/// these settings (the axis's own, and duration_s, warmup_s, seed).
pub(crate) fn empty<A: Axis>(settings: serde_json::Value) -> Sweep<A> {
    let known = serde_json::to_value(crate::sizing::plan::tests::known_sweep(5000)).unwrap();
    let mut json = serde_json::json!({
        "schema_version": SWEEP_SCHEMA_VERSION, "kind": A::KIND, "tool": known["tool"],
        "started_at": "", "interrupted": false, "host": known["host"],
        "server": known["server"],
        "scenario": {"name": "known", "path": "known.toml", "sha256": ""},
        "settings": settings, "points": [],
    });
    let analysis = serde_json::to_value(A::Analysis::default()).unwrap();
    for (k, v) in analysis.as_object().unwrap() {
        json[k] = v.clone();
    }
    serde_json::from_value(json).unwrap()
}
