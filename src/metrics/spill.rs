//! Where a measuring command keeps the per-second histograms it packed:
//! an anonymous file in its results directory. A run keeps a few KB per
//! second of the timeline until the report is written; in memory that
//! made a long run's peak RSS grow with its length. The file has no name
//! in any directory (`tempfile::tempfile_in`: `O_TMPFILE`, or created and
//! unlinked at once), so the kernel removes it when poolbench exits,
//! however it exits — an error, Ctrl-C or a kill leaves nothing behind.
//! It is only appended to (space is reserved with one atomic add, then
//! written at its offset), so it takes no lock; the collector writes to it
//! once a second per phase, never a worker.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Bytes written to the spill file: where they start and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spilled {
    at: u64,
    len: u32,
}

struct Spill {
    file: File,
    /// The end of what was reserved so far.
    end: AtomicU64,
}

static SPILL: OnceLock<Spill> = OnceLock::new();

/// Packed histograms go to an anonymous file in `dir` from now on. When it
/// cannot be made (a filesystem without room or permission), they stay in
/// memory as before: a long run then only costs more memory.
pub fn into(dir: &Path) {
    if SPILL.get().is_none() {
        if let Ok(file) = tempfile::tempfile_in(dir) {
            // Another command of this process set it first: either will do.
            let _ = SPILL.set(Spill {
                file,
                end: AtomicU64::new(0),
            });
        }
    }
}

/// Writes `bytes` to the spill file; None when there is none or the write
/// failed (the caller keeps them in memory).
pub fn put(bytes: &[u8]) -> Option<Spilled> {
    let spill = SPILL.get()?;
    let len = u32::try_from(bytes.len()).ok()?;
    let at = spill.end.fetch_add(u64::from(len), Ordering::Relaxed);
    spill.file.write_all_at(bytes, at).ok()?;
    Some(Spilled { at, len })
}

/// The bytes `put` wrote.
pub fn get(s: Spilled) -> io::Result<Vec<u8>> {
    let spill = SPILL.get().ok_or_else(|| {
        io::Error::other("no spill file (a Spilled comes from put, which needs one)")
    })?;
    let mut bytes = vec![0; s.len as usize];
    spill.file.read_exact_at(&mut bytes, s.at)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_come_back_as_written_and_the_file_has_no_name() {
        let dir = tempfile::tempdir().unwrap();
        into(dir.path());
        // Tests share the process: another test may have set the file.
        let a = put(b"first").unwrap();
        let b = put(&[7u8; 3000]).unwrap();
        assert_eq!(get(b).unwrap(), vec![7u8; 3000]);
        assert_eq!(get(a).unwrap(), b"first");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
