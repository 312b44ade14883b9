//! Reading the two reports `compare` is given, and deciding whether they may
//! be compared at all. Every error here is bad input (exit 2) and names the
//! file.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::error::bad_input;
use crate::report::format::trimmed;
use crate::report::{Report, SCHEMA_VERSION};

/// A report and the file it came from.
#[derive(Debug, Clone)]
pub struct LoadedReport {
    pub path: PathBuf,
    pub report: Report,
}

/// The largest report.json read: above what the longest run poolbench
/// allows writes (24 h measured, a few KB per timeline second), far below
/// what a device or a never-ending pipe would fill the memory with.
pub const MAX_REPORT_BYTES: u64 = 1 << 30;

/// Just enough of a report to check its version before reading the rest.
#[derive(Deserialize)]
struct Versioned {
    schema_version: Option<u64>,
}

/// Reads `path`, a report.json or a run directory holding one. `role`
/// ("baseline", "candidate") makes errors say which argument was wrong.
pub fn load_report(path: &Path, role: &str) -> Result<LoadedReport> {
    let file = if path.is_dir() {
        path.join("report.json")
    } else {
        path.to_path_buf()
    };
    let shown = file.display();
    if !file.exists() {
        return Err(bad_input(if path.is_dir() {
            format!(
                "{role} {}: the directory has no report.json",
                path.display()
            )
        } else {
            format!("{role} {shown}: no such file")
        }));
    }
    let bytes =
        crate::input::read_object_capped(&file, MAX_REPORT_BYTES, "report").map_err(|e| {
            let e = match e.strip_prefix("not JSON: ") {
                Some(why) => format!("not a poolbench report.json: {why}"),
                None => e,
            };
            bad_input(format!("{role} {shown}: {e}"))
        })?;
    // The version first, so a future schema gets "not supported" rather
    // than a missing-field error. (Both parse the bytes into typed values:
    // unknown keys are skipped, not kept.)
    let versioned: Versioned = serde_json::from_slice(&bytes)
        .map_err(|e| bad_input(format!("{role} {shown}: not a poolbench report.json: {e}")))?;
    match versioned.schema_version {
        None => {
            return Err(bad_input(format!(
                "{role} {shown}: not a poolbench report.json (it has no schema_version)"
            )))
        }
        Some(v) if v != u64::from(SCHEMA_VERSION) => {
            return Err(bad_input(format!(
                "{role} {shown}: report schema_version {v} is not supported by this poolbench ({SCHEMA_VERSION})"
            )))
        }
        Some(_) => {}
    }
    let report: Report = serde_json::from_slice(&bytes).map_err(|e| {
        bad_input(format!(
            "{role} {shown}: not a valid schema_version {SCHEMA_VERSION} report: {e}"
        ))
    })?;
    Ok(LoadedReport { path: file, report })
}

/// One run condition in which the two reports differ.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    /// What differs: "emulated RTT", "concurrency", "pool-8 max_size".
    pub condition: String,
    pub baseline: String,
    pub candidate: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: baseline {}, candidate {}",
            self.condition, self.baseline, self.candidate
        )
    }
}

/// A condition's value in one report; None when the report does not record
/// it (written by an older poolbench).
type Value = Option<String>;

/// Every run condition that changes what is measured, as (name, baseline,
/// candidate): DESIGN.md's "compare: conditions and power".
fn conditions(b: &Report, c: &Report) -> Vec<(String, Value, Value)> {
    let link = |r: &Report, jitter: bool| -> Value {
        Some(match r.network {
            None => "none".into(),
            Some(n) => format!(
                "{} ms",
                trimmed(if jitter { n.jitter_ms } else { n.rtt_ms }, 3)
            ),
        })
    };
    let run = |r: &Report, key: &str| -> Value {
        let v = &r.scenario.resolved["run"][key];
        (!v.is_null()).then(|| v.to_string())
    };
    let arrivals = |r: &Report, key: &str| -> Value {
        let v = &r.scenario.resolved["run"]["arrivals"];
        Some(if v.is_null() {
            "closed loop".into()
        } else {
            v[key].to_string()
        })
    };
    let mut list: Vec<(String, Value, Value)> = Vec::new();
    let mut add = |name: &str, f: &dyn Fn(&Report) -> Value| {
        list.push((name.to_string(), f(b), f(c)));
    };
    add("scenario sha256", &|r| {
        Some(short(&r.scenario.sha256).to_string())
    });
    add("emulated RTT", &|r| link(r, false));
    add("emulated jitter", &|r| link(r, true));
    add("rate (req/s)", &|r| arrivals(r, "rate"));
    add("max in flight", &|r| arrivals(r, "max_in_flight"));
    add("concurrency", &|r| run(r, "concurrency"));
    add("threads", &|r| {
        r.conditions.as_ref().map(|c| c.threads.to_string())
    });
    add("server engine", &|r| Some(r.server.engine.clone()));
    add("server version", &|r| Some(r.server.version.clone()));
    add("auth", &|r| Some(r.server.auth_method.clone()));
    add("TLS", &|r| Some(r.server.ssl.to_string()));
    add("max_connections", &|r| {
        Some(r.server.max_connections.to_string())
    });
    add("embedded server", &|r| Some(r.server.embedded.to_string()));
    add("poolbench version", &|r| Some(r.tool.version.clone()));
    add("CPU model", &|r| {
        r.conditions
            .as_ref()
            .map(|c| c.cpu_model.clone().unwrap_or_else(|| "unknown".into()))
    });
    add("CPU count", &|r| Some(r.host.cpus.to_string()));
    add("server placement", &|r| {
        r.conditions.as_ref().map(|c| c.placement.clone())
    });
    // Each setting of each strategy in both, one by one: a setting a later
    // poolbench added is absent from an older report (not recorded there).
    for bs in &b.strategies {
        let Some(cs) = c.strategies.iter().find(|s| s.name == bs.name) else {
            continue;
        };
        let (Some(bm), Some(cm)) = (bs.settings.as_object(), cs.settings.as_object()) else {
            list.push((
                format!("{} settings", bs.name),
                Some(bs.settings.to_string()),
                Some(cs.settings.to_string()),
            ));
            continue;
        };
        let keys: std::collections::BTreeSet<&String> = bm.keys().chain(cm.keys()).collect();
        for key in keys {
            list.push((
                format!("{} {key}", bs.name),
                bm.get(key).map(|v| v.to_string()),
                cm.get(key).map(|v| v.to_string()),
            ));
        }
    }
    list
}

/// The run conditions in which the reports differ (see [`conditions`]):
/// refused (exit 2, every difference named) unless `allow_different`, in
/// which case they come back to be printed with the verdict. The second
/// list holds warnings: differences that matter less (build profile,
/// duration, warm-up, seed, architecture), interrupted runs, and the
/// conditions one report does not record.
pub fn check_compatible(
    baseline: &LoadedReport,
    candidate: &LoadedReport,
    allow_different: bool,
) -> Result<(Vec<Difference>, Vec<String>)> {
    let (b, c) = (&baseline.report, &candidate.report);
    let mut differences = Vec::new();
    let mut unrecorded = Vec::new();
    for (condition, bv, cv) in conditions(b, c) {
        match (bv, cv) {
            (Some(bv), Some(cv)) if bv != cv => differences.push(Difference {
                condition,
                baseline: bv,
                candidate: cv,
            }),
            (Some(_), None) | (None, Some(_)) => unrecorded.push(condition),
            _ => {}
        }
    }
    if !differences.is_empty() && !allow_different {
        return Err(bad_input(format!(
            "cannot compare {} with {}: the run conditions differ: {}; pass --allow-different to compare them anyway",
            baseline.path.display(),
            candidate.path.display(),
            differences
                .iter()
                .map(Difference::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        )));
    }
    let mut warnings = Vec::new();
    if !unrecorded.is_empty() {
        warnings.push(format!(
            "not compared, one report does not record it (an older poolbench): {}",
            unrecorded.join(", ")
        ));
    }
    if b.tool.build != c.tool.build {
        warnings.push(format!(
            "the baseline is a {} build and the candidate a {} build; debug builds are much slower",
            b.tool.build, c.tool.build
        ));
    }
    if b.host.arch != c.host.arch {
        warnings.push(format!(
            "different hosts: baseline {}, candidate {}",
            b.host.arch, c.host.arch
        ));
    }
    let run_setting = |r: &Report, key: &str| r.scenario.resolved["run"][key].to_string();
    let run: Vec<String> = ["duration", "warmup", "seed"]
        .into_iter()
        .filter(|k| run_setting(b, k) != run_setting(c, k))
        .map(|k| format!("{k} {} vs {}", run_setting(b, k), run_setting(c, k)))
        .collect();
    if !run.is_empty() {
        warnings.push(format!(
            "the runs were made with different settings: {}",
            run.join(", ")
        ));
    }
    for (role, r) in [("baseline", b), ("candidate", c)] {
        if r.interrupted {
            warnings.push(format!("the {role} run was interrupted (partial report)"));
        }
    }
    Ok((differences, warnings))
}

/// The first 12 hex digits of a sha256: enough to tell two files apart.
fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}
