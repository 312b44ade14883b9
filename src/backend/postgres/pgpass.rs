//! The password file (`PGPASSFILE`, `passfile`, `~/.pgpass`), read as
//! libpq reads it: lines `hostname:port:database:username:password`, `*`
//! matching anything, `\` escaping `:` and `\`, `#` starting a comment, the
//! first matching line winning; a host of `localhost` also matching a
//! connection over the default Unix-domain socket directory; and a file
//! that is group- or world-accessible ignored with libpq's warning.
//!
//! No crate does this faithfully: the ones on crates.io skip the
//! permission check, the `localhost`/socket rule, or tolerate fewer lines
//! than libpq (see docs/connecting.md).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Which connection a password is looked up for.
#[derive(Debug, Clone, Copy)]
pub struct Wanted<'a> {
    /// The `host` (or, without one, the `hostaddr`) of the connection.
    pub host: &'a str,
    pub port: &'a str,
    pub dbname: &'a str,
    pub user: &'a str,
}

/// The outcome of a look-up.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    Found(String),
    NotFound,
    /// The file was not used; libpq's warning says why.
    Ignored(String),
}

/// Looks the connection up in the file at `path`. A file that does not
/// exist is simply not used, as in libpq.
pub fn lookup(path: &Path, wanted: Wanted<'_>, default_socket_dir: &Path) -> Lookup {
    let Ok(meta) = fs::metadata(path) else {
        return Lookup::NotFound;
    };
    if !meta.is_file() {
        return Lookup::Ignored(format!(
            "WARNING: password file \"{}\" is not a plain file",
            path.display()
        ));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return Lookup::Ignored(format!(
            "WARNING: password file \"{}\" has group or world access; permissions should be u=rw (0600) or less",
            path.display()
        ));
    }
    // Read as a regular file, capped: a FIFO swapped in since the check
    // above cannot block the run, nor a huge file fill the memory.
    match crate::input::read_file(path, crate::input::MAX_SETTINGS_FILE_BYTES) {
        Ok(bytes) => find(&String::from_utf8_lossy(&bytes), wanted, default_socket_dir),
        Err(_) => Lookup::NotFound,
    }
}

/// The first line of `text` that matches, libpq's rules.
fn find(text: &str, wanted: Wanted<'_>, default_socket_dir: &Path) -> Lookup {
    // libpq matches a connection without a host, or over the default
    // socket directory, as "localhost"; any other socket by its path.
    let host = if wanted.host.is_empty() || Path::new(wanted.host) == default_socket_dir {
        "localhost"
    } else {
        wanted.host
    };
    let port = if wanted.port.is_empty() {
        "5432"
    } else {
        wanted.port
    };
    for line in text.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut rest = line;
        let mut matched = true;
        for field in [host, port, wanted.dbname, wanted.user] {
            match match_field(rest, field) {
                Some(after) => rest = after,
                None => {
                    matched = false;
                    break;
                }
            }
        }
        if matched {
            return Lookup::Found(unescape_password(rest));
        }
    }
    Lookup::NotFound
}

/// If the line starts with a field matching `value` followed by `:`,
/// the rest of the line after the `:`.
fn match_field<'l>(line: &'l str, value: &str) -> Option<&'l str> {
    if let Some(rest) = line.strip_prefix("*:") {
        return Some(rest);
    }
    // As libpq's pwdfMatchesString: an unescaped ':' ends the field only
    // once the whole value has matched; before that it is compared as a
    // character like any other.
    let mut expected = value.chars().peekable();
    let mut chars = line.char_indices();
    while let Some((i, c)) = chars.next() {
        let (c, escaped) = if c == '\\' {
            (chars.next()?.1, true)
        } else {
            (c, false)
        };
        if c == ':' && !escaped && expected.peek().is_none() {
            return Some(&line[i + 1..]);
        }
        if expected.next() != Some(c) {
            return None;
        }
    }
    None
}

/// The password field: up to the next unescaped `:`, escapes removed.
fn unescape_password(field: &str) -> String {
    let mut out = String::new();
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        match c {
            ':' => break,
            '\\' => match chars.next() {
                Some(next) => out.push(next),
                None => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOCKETS: &str = "/var/run/postgresql";

    fn wanted<'a>(host: &'a str, port: &'a str, dbname: &'a str, user: &'a str) -> Wanted<'a> {
        Wanted {
            host,
            port,
            dbname,
            user,
        }
    }

    fn found(text: &str, w: Wanted<'_>) -> Option<String> {
        match find(text, w, Path::new(SOCKETS)) {
            Lookup::Found(p) => Some(p),
            _ => None,
        }
    }

    #[test]
    fn first_matching_line_wins_with_wildcards() {
        let file = "# comment\n\
                    db.internal:5432:shop:app:first\n\
                    *:*:*:app:second\n\
                    *:*:*:*:third\n";
        assert_eq!(
            found(file, wanted("db.internal", "5432", "shop", "app")).as_deref(),
            Some("first")
        );
        assert_eq!(
            found(file, wanted("db.internal", "6543", "shop", "app")).as_deref(),
            Some("second")
        );
        assert_eq!(
            found(file, wanted("other", "5432", "x", "bob")).as_deref(),
            Some("third")
        );
        assert_eq!(found("h:1:d:u:p\n", wanted("h", "2", "d", "u")), None);
    }

    #[test]
    fn escapes_colons_and_backslashes() {
        let file = r"h\:x:5432:d:u:pa\:ss\\word:ignored";
        assert_eq!(
            found(file, wanted("h:x", "5432", "d", "u")).as_deref(),
            Some(r"pa:ss\word")
        );
        // A literal "*" escaped is not a wildcard.
        assert_eq!(found(r"\*:*:*:*:p", wanted("h", "1", "d", "u")), None);
        assert_eq!(
            found(r"\*:*:*:*:p", wanted("*", "1", "d", "u")).as_deref(),
            Some("p")
        );
    }

    #[test]
    fn localhost_matches_the_default_socket_and_no_host() {
        let file = "localhost:5432:d:u:local\n/tmp/sock:5432:d:u:sock\n";
        assert_eq!(
            found(file, wanted(SOCKETS, "5432", "d", "u")).as_deref(),
            Some("local")
        );
        assert_eq!(
            found(file, wanted("", "", "d", "u")).as_deref(),
            Some("local"),
            "no host and no port: localhost and 5432"
        );
        assert_eq!(
            found(file, wanted("/tmp/sock", "5432", "d", "u")).as_deref(),
            Some("sock")
        );
    }

    #[test]
    fn short_lines_do_not_match() {
        assert_eq!(found("h:5432:d\n", wanted("h", "5432", "d", "u")), None);
        assert_eq!(
            found("h:5432:d:u\r\n*:*:*:*:p\r\n", wanted("h", "5432", "d", "u")).as_deref(),
            Some("p"),
            "a line without a password field is skipped; CRLF is tolerated"
        );
    }

    #[test]
    fn group_or_world_access_is_refused_with_libpqs_warning() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgpass");
        fs::write(&path, "*:*:*:*:secret\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let w = wanted("h", "5432", "d", "u");
        let Lookup::Ignored(warning) = lookup(&path, w, Path::new(SOCKETS)) else {
            panic!("a world-readable file was used");
        };
        assert_eq!(
            warning,
            format!(
                "WARNING: password file \"{}\" has group or world access; permissions should be u=rw (0600) or less",
                path.display()
            )
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            lookup(&path, w, Path::new(SOCKETS)),
            Lookup::Found("secret".into())
        );
        assert_eq!(
            lookup(&dir.path().join("missing"), w, Path::new(SOCKETS)),
            Lookup::NotFound
        );
        assert!(matches!(
            lookup(dir.path(), w, Path::new(SOCKETS)),
            Lookup::Ignored(_)
        ));
    }
}
