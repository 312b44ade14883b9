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

use std::fs::File;
use std::io::{Read, Write};
use std::ops::Deref;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rustix::fs::{AtFlags, FileType, FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{bad_input, environment, ResultExt};
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

/// A subdirectory of files a command writes beside its exporters' (run's
/// `hlog/*.hlog`): refused, or removed with `--force`, like them.
#[derive(Debug, Clone, Copy)]
pub struct Subdir {
    pub name: &'static str,
    /// The end of the names of poolbench's files in it.
    pub suffix: &'static str,
}

/// A directory poolbench writes in, held open. Every file is created
/// relative to this handle, so nothing planted in the directory (a symlink
/// in place of a file, a temporary name or a subdirectory) can send a write
/// elsewhere; only the directory the user named is followed to where it
/// leads.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

impl Deref for Dir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for Dir {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

/// New files are made as `File::create` makes them: 0666 less the umask.
const FILE_MODE: u32 = 0o666;
const DIR_MODE: u32 = 0o777;

impl Dir {
    /// The directory at `path`, which must exist.
    fn open(path: &Path) -> std::io::Result<Dir> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Dir {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// The subdirectory `name`, made if it does not exist; a symlink or a
    /// file of that name is refused.
    pub fn subdir(&self, name: &str) -> Result<Dir> {
        let path = self.path.join(name);
        let made = match rustix::fs::mkdirat(&self.fd, name, Mode::from_bits_truncate(DIR_MODE)) {
            Ok(()) | Err(Errno::EXIST) => Ok(()),
            Err(e) => Err(e),
        };
        made.and_then(|()| {
            rustix::fs::openat(
                &self.fd,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
        })
        .map(|fd| Dir {
            fd,
            path: path.clone(),
        })
        .map_err(std::io::Error::from)
        .with_context(|| format!("cannot create the directory {}", path.display()))
        .environment()
    }

    /// Writes what `write` gives (buffered) to a new file with a random
    /// name in this directory, then renames it to `name`: a reader never
    /// sees half a file, and a full disk leaves no temporary file behind.
    /// An error `write` tagged keeps its kind; any other is the file's
    /// (exit 3).
    pub fn write_with(
        &self,
        name: &str,
        write: impl FnOnce(&mut dyn Write) -> Result<()>,
    ) -> Result<()> {
        let written = self.create_temporary(name).and_then(|(tmp, file)| {
            let mut out = std::io::BufWriter::new(file);
            let done = write(&mut out)
                .and_then(|()| Ok(out.into_inner().map_err(|e| e.into_error())?))
                .and_then(|_| {
                    Ok(rustix::fs::renameat(&self.fd, &tmp, &self.fd, name)
                        .map_err(std::io::Error::from)?)
                });
            if done.is_err() {
                let _ = rustix::fs::unlinkat(&self.fd, &tmp, AtFlags::empty());
            }
            done
        });
        written.or_else(|err| {
            if crate::error::kind_of(&err).is_some() {
                Err(err)
            } else {
                Err(err)
                    .with_context(|| format!("cannot write {}", self.path.join(name).display()))
                    .environment()
            }
        })
    }

    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        self.write_with(name, |out| Ok(out.write_all(bytes)?))
    }

    /// The one way poolbench creates an output file: exclusively
    /// (`O_EXCL`, so nothing already there is opened, a symlink included),
    /// never following a link, under a random name beside `name`.
    fn create_temporary(&self, name: &str) -> Result<(String, File)> {
        let mut tries = 0;
        loop {
            let mut random = [0u8; 8];
            getrandom::fill(&mut random).context("no randomness for a temporary name")?;
            let tmp = format!(".{name}.tmp-{:016x}", u64::from_le_bytes(random));
            match rustix::fs::openat(
                &self.fd,
                tmp.as_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_bits_truncate(FILE_MODE),
            ) {
                Ok(fd) => return Ok((tmp, File::from(fd))),
                Err(Errno::EXIST) if tries < 8 => tries += 1,
                Err(e) => return Err(std::io::Error::from(e).into()),
            }
        }
    }

    /// Whether an entry `name` exists (a dangling symlink included).
    fn has(&self, name: &str) -> bool {
        rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW).is_ok()
    }

    /// Removes the entry `name` (a file or a symlink, never what it points
    /// to); one that does not exist is not an error.
    fn remove(&self, name: &str) -> std::io::Result<()> {
        match rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The names in this directory ending with `suffix`, other than
    /// directories.
    fn names_ending(&self, suffix: &str) -> std::io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in rustix::fs::Dir::read_from(&self.fd)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy();
            if name.ends_with(suffix) && entry.file_type() != FileType::Directory {
                names.push(name.into_owned());
            }
        }
        Ok(names)
    }
}

/// A results directory, claimed for this run and ready to be written to.
/// The lock file in it ([`LOCK_FILE`], locked with `flock`) is held until
/// drop, so a second poolbench given the same directory stops at once,
/// naming this one; a poolbench killed outright releases it with its
/// process. On drop the lock file is removed, and so are the directories
/// [`prepare_dir`] created if nothing was written in them (a run that could
/// not reach its database leaves no empty directory behind).
#[derive(Debug)]
pub struct OutDir {
    dir: Dir,
    /// Created by `prepare_dir`, deepest last.
    created: Vec<PathBuf>,
    lock: Option<File>,
}

/// The lock file that claims a results directory while a run writes in it.
pub const LOCK_FILE: &str = ".poolbench.lock";

impl Deref for OutDir {
    type Target = Dir;

    fn deref(&self) -> &Dir {
        &self.dir
    }
}

impl AsRef<Path> for OutDir {
    fn as_ref(&self) -> &Path {
        &self.dir.path
    }
}

impl Drop for OutDir {
    fn drop(&mut self) {
        // Removed while still locked: a poolbench that opened it meanwhile
        // finds that its lock is on a removed file, and opens it again.
        if self.lock.take().is_some() {
            let _ = self.dir.remove(LOCK_FILE);
        }
        remove_created(&self.created);
    }
}

/// The output directory: `out`, or `results/<name>-<timestamp>/`, claimed
/// for this run: another poolbench writing in it is refused (exit 3, naming
/// it). A directory that already holds one of the command's files (`files`,
/// and those ending with each subdirectory's suffix in it) is refused
/// (exit 2) unless `force`, so no earlier measurement is overwritten; with
/// `force` those files are removed first, so nothing of an earlier run
/// stays beside the new one. One poolbench cannot write in is refused
/// before anything is measured (exit 3).
pub fn prepare_dir<M>(
    out: Option<&Path>,
    name: &str,
    started: &str,
    force: bool,
    files: &[&dyn Exporter<M>],
    subdirs: &[Subdir],
) -> Result<OutDir> {
    let path = match out {
        Some(dir) => dir.to_path_buf(),
        None => Path::new("results").join(format!("{name}-{}", compact_timestamp(started))),
    };
    let mut created = Vec::new();
    let mut missing = Some(path.as_path());
    while let Some(d) = missing.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        created.push(d.to_path_buf());
        missing = d.parent();
    }
    created.reverse();
    std::fs::create_dir_all(&path)
        .with_context(|| format!("cannot create the results directory {}", path.display()))
        .environment()
        .inspect_err(|_| remove_created(&created))?;
    let dir = Dir::open(&path)
        .with_context(|| format!("cannot open the results directory {}", path.display()))
        .environment()
        .inspect_err(|_| remove_created(&created))?;
    let mut out = OutDir {
        dir,
        created,
        lock: None,
    };
    not_planted(&out.dir)?;
    out.lock = Some(claim(&out.dir, name, started)?);
    let mut previous: Vec<String> = files.iter().map(|e| e.file_name().to_string()).collect();
    for sub in subdirs.iter().filter(|s| out.has(s.name)) {
        let inside = out.subdir(sub.name)?;
        let names = inside
            .names_ending(sub.suffix)
            .with_context(|| format!("cannot read {}", inside.display()))
            .environment()?;
        previous.extend(names.iter().map(|n| format!("{}/{n}", sub.name)));
    }
    if !force {
        if let Some(existing) = previous.iter().find(|p| out.has(p)) {
            return Err(bad_input(format!(
                "{} already exists; choose another --out directory (or --force to overwrite)",
                out.join(existing).display()
            )));
        }
        return Ok(out);
    }
    // --force: the earlier run's files go, only those poolbench writes.
    for name in &previous {
        let (dir, file) = match name.split_once('/') {
            Some((sub, file)) => (Some(out.subdir(sub)?), file),
            None => (None, name.as_str()),
        };
        dir.as_ref()
            .unwrap_or(&out.dir)
            .remove(file)
            .with_context(|| format!("cannot remove {}", out.join(name).display()))
            .environment()?;
    }
    Ok(out)
}

/// Refuses a results directory reached through a link someone else
/// planted in a shared directory (sticky and world-writable, as /tmp), the
/// rule of Linux's `fs.protected_symlinks`, which a machine may have off:
/// the link must be the user's or the shared directory's owner's. The
/// directory opened must also be the one its path names now (not swapped
/// meanwhile).
fn not_planted(dir: &Dir) -> Result<()> {
    let refuse = |why: &str| {
        Err(environment(format!(
            "the results directory {} {why}: choose another --out directory",
            dir.display()
        )))
    };
    let Ok(link) = std::fs::symlink_metadata(&dir.path) else {
        return refuse("changed while it was being opened");
    };
    if link.file_type().is_symlink() {
        let parent = match dir.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let shared = std::fs::metadata(parent).is_ok_and(|m| m.mode() & 0o1002 == 0o1002);
        let owner = std::fs::metadata(parent).map(|m| m.uid()).unwrap_or(0);
        if shared && link.uid() != rustix::process::geteuid().as_raw() && link.uid() != owner {
            return refuse("is a link another user made in a shared directory");
        }
    }
    let opened = rustix::fs::fstat(&dir.fd).ok();
    let named = std::fs::metadata(&dir.path).ok();
    match (opened, named) {
        (Some(o), Some(n)) if o.st_dev == n.dev() && o.st_ino == n.ino() => Ok(()),
        _ => refuse("changed while it was being opened"),
    }
}

/// Removes the directories `prepare_dir` created, deepest first, as far
/// as they are empty.
fn remove_created(created: &[PathBuf]) {
    for dir in created.iter().rev() {
        if std::fs::remove_dir(dir).is_err() {
            break;
        }
    }
}

/// Takes the results directory's lock, and writes who holds it (which also
/// finds a directory poolbench cannot write in before anything is
/// measured). Exit 3 when another poolbench holds it.
fn claim(dir: &Dir, name: &str, started: &str) -> Result<File> {
    let unwritable = |e: std::io::Error| {
        Err::<(), _>(e)
            .with_context(|| format!("cannot write in the results directory {}", dir.display()))
            .environment()
            .unwrap_err()
    };
    let not_ours = || {
        environment(format!(
            "{} is not poolbench's lock file (a link, not a plain file, or linked elsewhere): \
             remove it or choose another --out directory",
            dir.join(LOCK_FILE).display()
        ))
    };
    for _ in 0..8 {
        let fd = rustix::fs::openat(
            &dir.fd,
            LOCK_FILE,
            OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_bits_truncate(0o644),
        )
        .map_err(|e| match e {
            Errno::LOOP => not_ours(),
            e => unwritable(e.into()),
        })?;
        let mut file = File::from(fd);
        match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(Errno::WOULDBLOCK) => {
                let mut holder = String::new();
                let _ = (&file).take(4096).read_to_string(&mut holder);
                return Err(environment(format!(
                    "another poolbench ({}) is writing in {}: wait for it to finish, or choose \
                     another --out directory",
                    describe_holder(&holder),
                    dir.display()
                )));
            }
            Err(e) => return Err(unwritable(e.into())),
        }
        let meta = file.metadata().map_err(unwritable)?;
        // Its holder removed it between our open and our lock: the lock
        // is on a file nobody else will look at.
        let current = rustix::fs::statat(&dir.fd, LOCK_FILE, AtFlags::SYMLINK_NOFOLLOW);
        if !current.is_ok_and(|st| st.st_dev == meta.dev() && st.st_ino == meta.ino()) {
            continue;
        }
        if !meta.is_file() || meta.nlink() != 1 {
            return Err(not_ours());
        }
        let who = format!(
            "pid={}\nscenario={name}\nstarted_at={started}\n",
            std::process::id()
        );
        file.set_len(0)
            .and_then(|()| file.write_all(who.as_bytes()))
            .and_then(|()| file.sync_all())
            .map_err(unwritable)?;
        return Ok(file);
    }
    Err(environment(format!(
        "cannot take the lock of the results directory {}: it keeps changing",
        dir.display()
    )))
}

/// The lock holder's lines, as a phrase: "pid 42, scenario shop, started
/// at 2026-01-01T00:00:00Z".
fn describe_holder(text: &str) -> String {
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.chars().filter(|c| !c.is_control()).collect::<String>())
    };
    let mut parts = Vec::new();
    if let Some(pid) = field("pid") {
        parts.push(format!("pid {pid}"));
    }
    if let Some(scenario) = field("scenario") {
        parts.push(format!("scenario {scenario}"));
    }
    if let Some(started) = field("started_at") {
        parts.push(format!("started at {started}"));
    }
    if parts.is_empty() {
        "it has not said who it is yet".into()
    } else {
        parts.join(", ")
    }
}

/// Writes every file of `model` into `dir`, atomically per file.
pub fn write_all<M>(dir: &Dir, model: &M, files: &[&dyn Exporter<M>]) -> Result<()> {
    for exporter in files {
        dir.write_with(exporter.file_name(), |out| exporter.write(model, out))?;
    }
    Ok(())
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
        let err = prepare_dir(
            Some(dir.path()),
            "x",
            "2026-01-01T00:00:00Z",
            false,
            &FILES,
            &[],
        )
        .unwrap_err();
        assert_eq!(
            crate::error::kind_of(&err),
            Some(crate::error::Kind::BadInput)
        );
        assert!(prepare_dir(
            Some(dir.path()),
            "x",
            "2026-01-01T00:00:00Z",
            true,
            &FILES,
            &[]
        )
        .is_ok());
    }

    #[test]
    fn only_the_command_s_own_files_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        // Another command's files do not stop this one.
        std::fs::write(dir.path().join("sweep.json"), "{}").unwrap();
        assert!(prepare_dir(Some(dir.path()), "x", "", false, &FILES, &[]).is_ok());
        std::fs::write(dir.path().join("summary.csv"), "").unwrap();
        let err = prepare_dir(Some(dir.path()), "x", "", false, &FILES, &[]).unwrap_err();
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
        let out = Dir::open(dir.path()).unwrap();
        let err = out.write("report.json", b"{}").unwrap_err();
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
        let prepared = prepare_dir(Some(&out), "x", "", false, &FILES, &[]).unwrap();
        assert!(out.is_dir());
        drop(prepared);
        assert!(!dir.path().join("a").exists());
        // Written in: kept.
        let prepared = prepare_dir(Some(&out), "x", "", false, &FILES, &[]).unwrap();
        write_all(&prepared, &(), &FILES).unwrap();
        drop(prepared);
        assert!(out.join("report.json").exists());
    }

    #[test]
    fn files_are_written_whole_under_their_names() {
        let dir = tempfile::tempdir().unwrap();
        write_all(&Dir::open(dir.path()).unwrap(), &(), &FILES).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        // No temporary file left behind.
        assert_eq!(names, ["report.json", "summary.csv"]);
    }

    #[test]
    fn a_symlink_planted_in_the_directory_is_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        // In place of the file: replaced by the report, not written through.
        std::os::unix::fs::symlink(&victim, dir.path().join("report.json")).unwrap();
        let out = Dir::open(dir.path()).unwrap();
        out.write("report.json", b"{}").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        let meta = std::fs::symlink_metadata(dir.path().join("report.json")).unwrap();
        assert!(meta.is_file());
        // In place of a subdirectory: refused.
        std::os::unix::fs::symlink(outside.path(), dir.path().join("hlog")).unwrap();
        let err = out.subdir("hlog").unwrap_err();
        assert!(
            format!("{err:#}").contains("cannot create the directory"),
            "{err:#}"
        );
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_directory_is_claimed_by_one_run_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let first = prepare_dir(Some(dir.path()), "shop", "T0", false, &FILES, &[]).unwrap();
        let err = prepare_dir(Some(dir.path()), "other", "T1", true, &FILES, &[]).unwrap_err();
        assert_eq!(
            crate::error::kind_of(&err),
            Some(crate::error::Kind::Environment)
        );
        let msg = format!("{err:#}");
        assert!(
            msg.contains(&format!(
                "another poolbench (pid {}, scenario shop, started at T0) is writing in",
                std::process::id()
            )),
            "{msg}"
        );
        drop(first);
        assert!(
            !dir.path().join(LOCK_FILE).exists(),
            "the lock file is removed"
        );
        assert!(prepare_dir(Some(dir.path()), "other", "T1", false, &FILES, &[]).is_ok());
    }

    #[test]
    fn force_removes_the_earlier_run_s_files_only() {
        const LOGS: Subdir = Subdir {
            name: "hlog",
            suffix: ".hlog",
        };
        let dir = tempfile::tempdir().unwrap();
        let hlog = dir.path().join("hlog");
        std::fs::create_dir(&hlog).unwrap();
        std::fs::write(hlog.join("old.total.hlog"), "").unwrap();
        std::fs::write(hlog.join("notes.txt"), "").unwrap();
        std::fs::write(dir.path().join("summary.csv"), "").unwrap();
        std::fs::write(dir.path().join("mine.txt"), "").unwrap();
        // An earlier run's log alone is an earlier result.
        std::fs::remove_file(dir.path().join("summary.csv")).unwrap();
        let err = prepare_dir(Some(dir.path()), "x", "", false, &FILES, &[LOGS]).unwrap_err();
        assert!(
            format!("{err}").contains("hlog/old.total.hlog already exists"),
            "{err}"
        );
        std::fs::write(dir.path().join("summary.csv"), "").unwrap();
        drop(prepare_dir(Some(dir.path()), "x", "", true, &FILES, &[LOGS]).unwrap());
        assert!(!dir.path().join("summary.csv").exists());
        assert!(!hlog.join("old.total.hlog").exists());
        assert!(hlog.join("notes.txt").exists() && dir.path().join("mine.txt").exists());
    }

    #[test]
    fn a_link_planted_by_another_user_in_a_shared_directory_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let shared = tempfile::tempdir().unwrap();
        std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        let target = tempfile::tempdir().unwrap();
        let link = shared.path().join("results");
        std::os::unix::fs::symlink(target.path(), &link).unwrap();
        // The user's own link is followed.
        drop(prepare_dir(Some(&link), "x", "", false, &FILES, &[]).unwrap());
        // Another user's (only root can make one here) is not.
        if std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).is_ok() {
            let err = prepare_dir(Some(&link), "x", "", false, &FILES, &[]).unwrap_err();
            assert!(
                format!("{err}").contains("a link another user made"),
                "{err}"
            );
        }
        assert_eq!(std::fs::read_dir(target.path()).unwrap().count(), 0);
    }
}
