//! Reading the files poolbench is given (scenarios, reports, sweeps) with a
//! cap on their size, so that a device (`/dev/zero`), a pipe that never
//! ends or a huge file cannot fill the memory: at most `cap` bytes are
//! read, and a larger input is refused with its size named. JSON is parsed
//! as it is read, so input that is not JSON stops at its first byte.

use std::io::{BufReader, Read};
use std::path::Path;

/// The bytes of `path`, if it holds at most `cap` bytes. `what` names the
/// input in messages ("scenario file", "baseline report").
pub fn read_capped(path: &Path, cap: u64, what: &str) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read the {what}: {e}"))?;
    if let Ok(meta) = file.metadata() {
        if meta.is_dir() {
            return Err(format!("is a directory, expected a {what}"));
        }
        // A regular file says its size; a device or a pipe does not, and
        // is read up to the cap.
        if meta.is_file() && meta.len() > cap {
            return Err(too_large(what, cap, Some(meta.len())));
        }
    }
    let mut bytes = Vec::new();
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the {what}: {e}"))?;
    if bytes.len() as u64 > cap {
        return Err(too_large(what, cap, None));
    }
    Ok(bytes)
}

/// The JSON document in `path`, parsed as it is read, if it holds at most
/// `cap` bytes. Errors name the line and column of bad JSON.
pub fn read_json_capped(path: &Path, cap: u64, what: &str) -> Result<serde_json::Value, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read the {what}: {e}"))?;
    if let Ok(meta) = file.metadata() {
        if meta.is_dir() {
            return Err(format!("is a directory, expected a {what}"));
        }
        if meta.is_file() && meta.len() > cap {
            return Err(too_large(what, cap, Some(meta.len())));
        }
    }
    let mut counted = Counted {
        inner: file.take(cap + 1),
        read: 0,
    };
    let parsed = serde_json::from_reader(BufReader::new(&mut counted));
    if counted.read > cap {
        return Err(too_large(what, cap, None));
    }
    parsed.map_err(|e| format!("not JSON: {e}"))
}

/// A reader that counts what it read.
struct Counted<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

fn too_large(what: &str, cap: u64, size: Option<u64>) -> String {
    let size = size.map_or_else(String::new, |s| format!(" ({s} bytes)"));
    format!(
        "the {what}{size} is larger than poolbench reads ({} MiB): is this the right file?",
        cap / (1024 * 1024)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_files_are_read_and_large_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"12345").unwrap();
        assert_eq!(read_capped(&path, 5, "file").unwrap(), b"12345");
        let err = read_capped(&path, 4, "file").unwrap_err();
        assert!(err.contains("(5 bytes) is larger"), "{err}");
        let err = read_capped(dir.path(), 4, "file").unwrap_err();
        assert!(err.contains("is a directory"), "{err}");
    }

    #[test]
    fn json_is_parsed_as_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        std::fs::write(&path, b"{\"a\": [1, 2]}\n").unwrap();
        let v = read_json_capped(&path, 100, "report").unwrap();
        assert_eq!(v["a"][1], 2);
        let err = read_json_capped(&path, 10, "report").unwrap_err();
        assert!(err.contains("larger than"), "{err}");
        // Not JSON: refused at its first byte, not after the cap.
        let err = read_json_capped(Path::new("/dev/zero"), 1 << 30, "report").unwrap_err();
        assert!(
            err.contains("not JSON") && err.contains("column 1"),
            "{err}"
        );
    }

    #[test]
    fn a_device_is_read_only_up_to_the_cap() {
        let err = read_capped(Path::new("/dev/zero"), 1 << 20, "report").unwrap_err();
        assert!(err.contains("larger than poolbench reads (1 MiB)"), "{err}");
    }
}
