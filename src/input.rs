//! Reading the files poolbench is given, every one through [`open`]: with
//! a cap on their size, so that a device (`/dev/zero`), a pipe that never
//! ends or a huge file cannot fill the memory (at most `cap` bytes are
//! read, and a larger input is refused with its size named), and opened
//! without blocking, so that a FIFO nobody writes to cannot hold the run
//! (past a SIGTERM, once poolbench handles it).
//!
//! Two kinds of files: those given on the command line (scenarios,
//! reports, sweeps), which may be pipes (`<(…)`, `/dev/stdin`) or devices,
//! read up to the cap; and those a connection's settings name (root
//! certificates, client certificates and keys, `.pgpass`, the service
//! file), read only when they are regular files ([`read_file`]). A JSON
//! input that does not start as one is refused at its first byte.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rustix::fs::OFlags;

/// The most poolbench reads of a file a connection's settings name: a
/// root certificate bundle of every CA is a few hundred KiB.
pub const MAX_SETTINGS_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// What [`open`] accepts besides a regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Accept {
    /// A regular file only.
    Regular,
    /// Also a pipe or a device, read as a stream.
    Streams,
}

/// Why a file was not read.
#[derive(Debug)]
enum Refused {
    Io(io::Error),
    Directory,
    NotRegular,
    /// Over the cap; its size when known.
    TooLarge(Option<u64>),
}

impl From<io::Error> for Refused {
    fn from(e: io::Error) -> Refused {
        Refused::Io(e)
    }
}

/// Opens `path` for reading without blocking on a FIFO, and checks what it
/// is: a directory is refused, and anything but a regular file unless
/// `accept` takes streams; a regular file larger than `cap` is refused
/// without reading it. A stream is then read as usual (blocking, from a
/// writer it already has; a FIFO without one reads as empty).
fn open(path: &Path, cap: u64, accept: Accept) -> Result<File, Refused> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(Refused::Directory);
    }
    if meta.is_file() {
        if meta.len() > cap {
            return Err(Refused::TooLarge(Some(meta.len())));
        }
        return Ok(file);
    }
    if accept == Accept::Regular {
        return Err(Refused::NotRegular);
    }
    let flags = rustix::fs::fcntl_getfl(&file).map_err(io::Error::from)?;
    rustix::fs::fcntl_setfl(&file, flags - OFlags::NONBLOCK).map_err(io::Error::from)?;
    Ok(file)
}

/// At most `cap` bytes of `file`; more is refused.
fn read_to_cap(file: impl Read, cap: u64) -> Result<Vec<u8>, Refused> {
    let mut bytes = Vec::new();
    file.take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(Refused::TooLarge(None));
    }
    Ok(bytes)
}

/// The bytes of the regular file `path`, if it holds at most `cap` bytes:
/// for the files a connection's settings name. Errors are I/O errors,
/// which their callers word as libpq does ("could not read …: why").
pub fn read_file(path: &Path, cap: u64) -> io::Result<Vec<u8>> {
    open(path, cap, Accept::Regular)
        .and_then(|file| read_to_cap(file, cap))
        .map_err(|refused| {
            let (kind, why) = match refused {
                Refused::Io(e) => return e,
                Refused::Directory => (io::ErrorKind::IsADirectory, "is a directory".into()),
                Refused::NotRegular => (
                    io::ErrorKind::InvalidInput,
                    "not a regular file (a FIFO, a device or a socket)".into(),
                ),
                Refused::TooLarge(size) => (
                    io::ErrorKind::FileTooLarge,
                    format!(
                        "{}larger than poolbench reads ({})",
                        size.map_or_else(String::new, |s| format!("{s} bytes, ")),
                        mib(cap)
                    ),
                ),
            };
            io::Error::new(kind, why)
        })
}

/// The bytes of `path`, if it holds at most `cap` bytes. `what` names the
/// input in messages ("scenario file", "baseline report").
pub fn read_capped(path: &Path, cap: u64, what: &str) -> Result<Vec<u8>, String> {
    open(path, cap, Accept::Streams)
        .and_then(|file| read_to_cap(file, cap))
        .map_err(|r| message(r, what, cap))
}

/// The bytes of the JSON object in `path`, if it holds at most `cap`
/// bytes. Input whose first character is not `{` is refused at once,
/// without reading on (a device, a pipe of anything else).
pub fn read_object_capped(path: &Path, cap: u64, what: &str) -> Result<Vec<u8>, String> {
    let fail = |r: Refused| message(r, what, cap);
    let file = open(path, cap, Accept::Streams).map_err(fail)?;
    let mut reader = BufReader::new(file.take(cap + 1));
    let mut bytes = Vec::new();
    let mut opened = false;
    loop {
        let chunk = reader.fill_buf().map_err(|e| fail(e.into()))?;
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
            return Err(fail(Refused::TooLarge(None)));
        }
    }
    Ok(bytes)
}

fn mib(bytes: u64) -> String {
    format!("{} MiB", bytes / (1024 * 1024))
}

/// A command-line input's refusal, naming it as `what`.
fn message(refused: Refused, what: &str, cap: u64) -> String {
    match refused {
        Refused::Io(e) => format!("cannot read the {what}: {e}"),
        Refused::Directory => format!("is a directory, expected a {what}"),
        Refused::NotRegular => format!("not a regular file, expected a {what}"),
        Refused::TooLarge(size) => format!(
            "the {what}{} is larger than poolbench reads ({}): is this the right file?",
            size.map_or_else(String::new, |s| format!(" ({s} bytes)")),
            mib(cap)
        ),
    }
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

    #[test]
    fn a_fifo_nobody_writes_to_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid C string and mode.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        // A setting's file: refused at once.
        let err = read_file(&fifo, 1 << 20).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        // A command-line input: read as the empty stream it is.
        assert_eq!(read_capped(&fifo, 1 << 20, "scenario file").unwrap(), b"");
        let err = read_file(Path::new("/dev/zero"), 1 << 20).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let path = dir.path().join("big");
        std::fs::write(&path, [b'x'; 100]).unwrap();
        let err = read_file(&path, 10).unwrap_err();
        assert!(
            err.to_string()
                .contains("100 bytes, larger than poolbench reads"),
            "{err}"
        );
    }
}
