//! Reports: the model of report.json, one exporter per file format, and the
//! writing of a run's directory (each file to a temporary name, then renamed,
//! so a reader never sees half a file).

pub mod assemble;
pub mod csv;
pub mod format;
pub mod json;
pub mod model;
pub mod table;

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::error::{bad_input, ResultExt};
pub use model::*;

/// A file format: a pure function of the report.
pub trait Exporter {
    fn file_name(&self) -> &'static str;
    fn serialize(&self, report: &Report) -> Result<Vec<u8>>;
}

/// The files every run writes.
pub fn exporters() -> [&'static dyn Exporter; 3] {
    [&json::Json, &csv::SummaryCsv, &csv::TimelineCsv]
}

/// The run's output directory: `--out`, or `results/<name>-<timestamp>/`.
/// A directory that already holds report files is refused (exit 2) unless
/// `force`, so no earlier measurement is overwritten.
pub fn prepare_dir(
    out: Option<&Path>,
    scenario: &str,
    started: &str,
    force: bool,
) -> Result<PathBuf> {
    let dir = match out {
        Some(dir) => dir.to_path_buf(),
        None => Path::new("results").join(format!("{scenario}-{}", compact_timestamp(started))),
    };
    if !force {
        if let Some(existing) = exporters()
            .iter()
            .map(|e| dir.join(e.file_name()))
            .find(|p| p.exists())
        {
            return Err(bad_input(format!(
                "{} already exists; choose another --out directory (or --force to overwrite)",
                existing.display()
            )));
        }
    }
    fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the results directory {}", dir.display()))
        .environment()?;
    Ok(dir)
}

/// Writes every file of the report into `dir`, atomically per file.
pub fn write_all(dir: &Path, report: &Report) -> Result<()> {
    for exporter in exporters() {
        let bytes = exporter.serialize(report)?;
        write_atomically(&dir.join(exporter.file_name()), &bytes)?;
    }
    Ok(())
}

pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    fs::write(&tmp, bytes)
        .and_then(|()| fs::rename(&tmp, path))
        .with_context(|| format!("cannot write {}", path.display()))
        .environment()
}

/// RFC 3339 UTC time, to the second: "2026-11-21T05:32:35Z".
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// "2026-11-21T05:32:35Z" → "20261121T053235Z".
pub fn compact_timestamp(rfc3339: &str) -> String {
    rfc3339.chars().filter(|c| *c != '-' && *c != ':').collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_is_compacted() {
        assert_eq!(
            compact_timestamp("2026-11-21T05:32:35Z"),
            "20261121T053235Z"
        );
    }

    #[test]
    fn an_existing_report_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("report.json"), "{}").unwrap();
        let err = prepare_dir(Some(dir.path()), "x", "2026-01-01T00:00:00Z", false).unwrap_err();
        assert_eq!(
            crate::error::kind_of(&err),
            Some(crate::error::Kind::BadInput)
        );
        assert!(prepare_dir(Some(dir.path()), "x", "2026-01-01T00:00:00Z", true).is_ok());
    }
}
