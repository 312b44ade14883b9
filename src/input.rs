//! Reading the files poolbench is given (scenarios, reports, sweeps) with a
//! cap on their size, so that a device (`/dev/zero`), a pipe that never
//! ends or a huge file cannot fill the memory: at most `cap` bytes are
//! read, and a larger input is refused with its size named; a JSON input
//! that does not start as one is refused at its first byte.

use std::io::{BufRead, BufReader, Read};
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

/// The bytes of the JSON object in `path`, if it holds at most `cap`
/// bytes. Input whose first character is not `{` is refused at once,
/// without reading on (a device, a pipe of anything else).
pub fn read_object_capped(path: &Path, cap: u64, what: &str) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read the {what}: {e}"))?;
    if let Ok(meta) = file.metadata() {
        if meta.is_dir() {
            return Err(format!("is a directory, expected a {what}"));
        }
        if meta.is_file() && meta.len() > cap {
            return Err(too_large(what, cap, Some(meta.len())));
        }
    }
    let mut reader = BufReader::new(file.take(cap + 1));
    let mut bytes = Vec::new();
    let mut opened = false;
    loop {
        let chunk = reader
            .fill_buf()
            .map_err(|e| format!("cannot read the {what}: {e}"))?;
        if chunk.is_empty() {
            break;
        }
        if !opened {
            // Only whitespace so far: look at this chunk's first character.
            match chunk.iter().find(|b| !b.is_ascii_whitespace()) {
                Some(b'{') => opened = true,
                None => {}
                Some(other) => {
                    return Err(format!(
                        "not JSON: expected an object, found {:?} at the start",
                        char::from(*other)
                    ))
                }
            }
        }
        let n = chunk.len();
        bytes.extend_from_slice(chunk);
        reader.consume(n);
        if bytes.len() as u64 > cap {
            return Err(too_large(what, cap, None));
        }
    }
    Ok(bytes)
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
    fn a_json_object_is_read_and_anything_else_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        std::fs::write(&path, b"  {\"a\": [1, 2]}\n").unwrap();
        assert!(read_object_capped(&path, 100, "report").is_ok());
        let err = read_object_capped(&path, 10, "report").unwrap_err();
        assert!(err.contains("larger than"), "{err}");
        let err = read_object_capped(Path::new("/dev/zero"), 1 << 30, "report").unwrap_err();
        assert!(err.contains("expected an object"), "{err}");
    }

    #[test]
    fn a_device_is_read_only_up_to_the_cap() {
        let err = read_capped(Path::new("/dev/zero"), 1 << 20, "report").unwrap_err();
        assert!(err.contains("larger than poolbench reads (1 MiB)"), "{err}");
    }
}
