//! Reading the two reports `compare` is given, and deciding whether they may
//! be compared at all. Every error here is bad input (exit 2) and names the
//! file.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Deserialize;

use crate::error::bad_input;
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

/// Refuses reports of different scenarios or servers unless `allow_different`,
/// in which case the differences come back as warnings. Differences that
/// matter less (build profile, host) are always warnings.
pub fn check_compatible(
    baseline: &LoadedReport,
    candidate: &LoadedReport,
    allow_different: bool,
) -> Result<Vec<String>> {
    let (b, c) = (&baseline.report, &candidate.report);
    let mut refused = Vec::new();
    if b.scenario.sha256 != c.scenario.sha256 {
        refused.push(format!(
            "they ran different scenarios: baseline {} (sha256 {}) vs candidate {} (sha256 {})",
            b.scenario.name,
            short(&b.scenario.sha256),
            c.scenario.name,
            short(&c.scenario.sha256)
        ));
    }
    let server = b.server.differences(&c.server);
    if !server.is_empty() {
        refused.push(format!(
            "they ran on different server settings: {}",
            server.join(", ")
        ));
    }
    if !refused.is_empty() && !allow_different {
        return Err(bad_input(format!(
            "cannot compare {} with {}: {}; pass --allow-different to compare them anyway",
            baseline.path.display(),
            candidate.path.display(),
            refused.join("; ")
        )));
    }
    let mut warnings: Vec<String> = refused
        .into_iter()
        .map(|r| format!("compared although {r}"))
        .collect();
    if b.tool.build != c.tool.build {
        warnings.push(format!(
            "the baseline is a {} build and the candidate a {} build; debug builds are much slower",
            b.tool.build, c.tool.build
        ));
    }
    if b.host.cpus != c.host.cpus || b.host.arch != c.host.arch {
        warnings.push(format!(
            "different hosts: baseline {} cpus {}, candidate {} cpus {}",
            b.host.cpus, b.host.arch, c.host.cpus, c.host.arch
        ));
    }
    let run_setting = |r: &Report, key: &str| r.scenario.resolved["run"][key].to_string();
    let run: Vec<String> = ["concurrency", "duration", "warmup", "seed"]
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
    Ok(warnings)
}

/// The first 12 hex digits of a sha256: enough to tell two files apart.
fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}
