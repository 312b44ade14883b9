//! The files a command writes, one format per file of this module behind
//! one [`Exporter`] trait, and the writing of a results directory: each file
//! to a temporary name, then renamed, so a reader never sees half a file.
//!
//! Each command lists the exporters of its files (`run`: report.json,
//! summary.csv, timeline.csv of a `Report`; `sweep`: sweep.json and
//! sweep.csv of a `SweepReport`); `plan` and `compare` print one format to
//! stdout ([`json::to_string`], [`markdown`]).

pub mod csv;
pub mod hlog;
pub mod html;
pub mod json;
pub mod markdown;

use std::fs;
use std::io::Write;
use std::ops::Deref;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::error::{bad_input, ResultExt};
use crate::report::compact_timestamp;

/// A file format: a pure function of a command's model `M`.
pub trait Exporter<M> {
    fn file_name(&self) -> &'static str;
    fn serialize(&self, model: &M) -> Result<Vec<u8>>;

    /// Writes the file to `out`: [`Exporter::serialize`]'s bytes, unless
    /// the format writes as it goes (report.json: a long run's timeline
    /// would otherwise be held whole in memory a second time).
    fn write(&self, model: &M, out: &mut dyn Write) -> Result<()> {
        out.write_all(&self.serialize(model)?)?;
        Ok(())
    }
}

/// A results directory, ready to be written to. The directories
/// [`prepare_dir`] created for it are removed again on drop if nothing was
/// written in them (a run that could not reach its database leaves no
/// empty directory behind).
#[derive(Debug)]
pub struct OutDir {
    path: PathBuf,
    /// Created by `prepare_dir`, deepest last.
    created: Vec<PathBuf>,
}

impl Deref for OutDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for OutDir {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl Drop for OutDir {
    fn drop(&mut self) {
        // remove_dir fails on a directory that is not empty, which is kept.
        for dir in self.created.iter().rev() {
            if fs::remove_dir(dir).is_err() {
                break;
            }
        }
    }
}

/// The output directory: `out`, or `results/<name>-<timestamp>/`. A
/// directory that already holds one of `files` is refused (exit 2) unless
/// `force`, so no earlier measurement is overwritten; one poolbench cannot
/// write in is refused before anything is measured (exit 3).
pub fn prepare_dir<M>(
    out: Option<&Path>,
    name: &str,
    started: &str,
    force: bool,
    files: &[&dyn Exporter<M>],
) -> Result<OutDir> {
    let dir = match out {
        Some(dir) => dir.to_path_buf(),
        None => Path::new("results").join(format!("{name}-{}", compact_timestamp(started))),
    };
    if !force {
        if let Some(existing) = files
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
    let mut created = Vec::new();
    let mut missing = Some(dir.as_path());
    while let Some(d) = missing.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        created.push(d.to_path_buf());
        missing = d.parent();
    }
    created.reverse();
    let out = OutDir {
        path: dir.clone(),
        created,
    };
    fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the results directory {}", dir.display()))
        .environment()?;
    // Found now, not after the first strategy was measured.
    probe(&dir)
        .with_context(|| format!("cannot write in the results directory {}", dir.display()))
        .environment()?;
    Ok(out)
}

/// Creates, writes and removes a file in `dir`.
fn probe(dir: &Path) -> std::io::Result<()> {
    let path = dir.join(format!(".poolbench-probe-{}", std::process::id()));
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .and_then(|mut f| f.write_all(b"\n").and_then(|()| f.sync_all()));
    let removed = fs::remove_file(&path);
    written.and(removed)
}

/// Writes every file of `model` into `dir`, atomically per file.
pub fn write_all<M>(dir: &Path, model: &M, files: &[&dyn Exporter<M>]) -> Result<()> {
    for exporter in files {
        write_atomically_with(&dir.join(exporter.file_name()), |out| {
            exporter.write(model, out)
        })?;
    }
    Ok(())
}

pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomically_with(path, |out| Ok(out.write_all(bytes)?))
}

/// Writes what `write` gives (buffered) to a temporary name beside `path`,
/// then renames it. An error `write` tagged keeps its kind; any other is
/// the file's (exit 3).
pub fn write_atomically_with(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<()>,
) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let written = fs::File::create(&tmp)
        .map_err(anyhow::Error::from)
        .and_then(|file| {
            let mut out = std::io::BufWriter::new(file);
            write(&mut out)?;
            out.into_inner().map_err(|e| e.into_error())?;
            Ok(fs::rename(&tmp, path)?)
        });
    match written {
        Ok(()) => Ok(()),
        Err(err) => {
            // A full disk must not leave half a file behind.
            let _ = fs::remove_file(&tmp);
            if crate::error::kind_of(&err).is_some() {
                Err(err)
            } else {
                Err(err)
                    .with_context(|| format!("cannot write {}", path.display()))
                    .environment()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file named `name` holding nothing.
    struct Empty(&'static str);

    impl Exporter<()> for Empty {
        fn file_name(&self) -> &'static str {
            self.0
        }

        fn serialize(&self, _: &()) -> Result<Vec<u8>> {
            Ok(Vec::new())
        }
    }

    const FILES: [&dyn Exporter<()>; 2] = [&Empty("report.json"), &Empty("summary.csv")];

    #[test]
    fn an_existing_report_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("report.json"), "{}").unwrap();
        let err =
            prepare_dir(Some(dir.path()), "x", "2026-01-01T00:00:00Z", false, &FILES).unwrap_err();
        assert_eq!(
            crate::error::kind_of(&err),
            Some(crate::error::Kind::BadInput)
        );
        assert!(prepare_dir(Some(dir.path()), "x", "2026-01-01T00:00:00Z", true, &FILES).is_ok());
    }

    #[test]
    fn only_the_command_s_own_files_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        // Another command's files do not stop this one.
        std::fs::write(dir.path().join("sweep.json"), "{}").unwrap();
        assert!(prepare_dir(Some(dir.path()), "x", "", false, &FILES).is_ok());
        std::fs::write(dir.path().join("summary.csv"), "").unwrap();
        let err = prepare_dir(Some(dir.path()), "x", "", false, &FILES).unwrap_err();
        assert!(
            format!("{err}").contains("summary.csv already exists"),
            "{err}"
        );
    }

    #[test]
    fn a_failed_write_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        // The rename fails: a non-empty directory holds the name.
        std::fs::create_dir_all(dir.path().join("report.json/x")).unwrap();
        let err = write_atomically(&dir.path().join("report.json"), b"{}").unwrap_err();
        assert_eq!(
            crate::error::kind_of(&err),
            Some(crate::error::Kind::Environment)
        );
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["report.json"]);
    }

    #[test]
    fn directories_created_for_nothing_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a/b/c");
        let prepared = prepare_dir(Some(&out), "x", "", false, &FILES).unwrap();
        assert!(out.is_dir());
        drop(prepared);
        assert!(!dir.path().join("a").exists());
        // Written in: kept.
        let prepared = prepare_dir(Some(&out), "x", "", false, &FILES).unwrap();
        write_all(&prepared, &(), &FILES).unwrap();
        drop(prepared);
        assert!(out.join("report.json").exists());
    }

    #[test]
    fn files_are_written_whole_under_their_names() {
        let dir = tempfile::tempdir().unwrap();
        write_all(dir.path(), &(), &FILES).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        // No temporary file left behind.
        assert_eq!(names, ["report.json", "summary.csv"]);
    }
}
