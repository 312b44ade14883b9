//! Connection service files (`service=NAME` or `PGSERVICE`), read as libpq
//! reads them: the user's file (`PGSERVICEFILE`, else
//! `~/.pg_service.conf`) first, then the system's (`PGSYSCONFDIR`, else
//! Debian's `/etc/postgresql-common`, `/pg_service.conf`); the first file
//! with a `[NAME]` section supplies it, whole; its `key=value` lines are
//! connection options, used where the connection string left them out.

use std::path::{Path, PathBuf};

use super::conninfo::{ConnInfo, ConnInfoError};
use super::environment::Environment;

/// Where libpq looks for the system-wide file when `PGSYSCONFDIR` is not
/// set: its compiled-in SYSCONFDIR, which is this on Debian and Ubuntu.
const DEFAULT_SYSCONFDIR: &str = "/etc/postgresql-common";

/// Fills the options of service `name` that `info` does not set.
pub fn apply(name: &str, info: &mut ConnInfo, env: &dyn Environment) -> Result<(), ConnInfoError> {
    let user_file = env
        .var("PGSERVICEFILE")
        .map(PathBuf::from)
        .or_else(|| env.home().map(|h| h.join(".pg_service.conf")));
    let system_file = PathBuf::from(
        env.var("PGSYSCONFDIR")
            .unwrap_or_else(|| DEFAULT_SYSCONFDIR.into()),
    )
    .join("pg_service.conf");
    for file in user_file.iter().chain(std::iter::once(&system_file)) {
        // A file that cannot be read is skipped, as libpq skips a file it
        // cannot stat; one that is not a regular file, or is larger than
        // poolbench reads, is refused (it could block the run or fill its
        // memory).
        let text = match crate::input::read_file(file, crate::input::MAX_SETTINGS_FILE_BYTES) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::InvalidInput | std::io::ErrorKind::FileTooLarge
                ) =>
            {
                return Err(ConnInfoError(format!(
                    "service file \"{}\": {e}",
                    file.display()
                )))
            }
            Err(_) => continue,
        };
        if let Some(options) = section(&text, name, file)? {
            for (key, value) in options {
                if !info.contains(&key) {
                    info.set(&key, value).map_err(|e| {
                        ConnInfoError(format!("service file \"{}\": {e}", file.display()))
                    })?;
                }
            }
            return Ok(());
        }
    }
    Err(ConnInfoError(format!(
        "definition of service \"{name}\" not found (looked in {}{})",
        user_file
            .map(|f| format!("{} and ", f.display()))
            .unwrap_or_default(),
        system_file.display()
    )))
}

/// The `key=value` lines of section `[name]`, or `None` if the file has no
/// such section.
fn section(
    text: &str,
    name: &str,
    file: &Path,
) -> Result<Option<Vec<(String, String)>>, ConnInfoError> {
    let mut found: Option<Vec<(String, String)>> = None;
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('[') {
            if found.is_some() {
                break;
            }
            if line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) == Some(name) {
                found = Some(Vec::new());
            }
            continue;
        }
        let Some(options) = found.as_mut() else {
            continue;
        };
        let at = || format!("service file \"{}\", line {}", file.display(), index + 1);
        let Some((key, value)) = line.split_once('=') else {
            return Err(ConnInfoError(format!(
                "syntax error in {}: expected key=value",
                at()
            )));
        };
        if key == "service" {
            return Err(ConnInfoError(format!(
                "nested service specifications not supported in {}",
                at()
            )));
        }
        options.push((key.to_string(), value.to_string()));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::super::environment::fake::FakeEnvironment;
    use super::*;

    #[test]
    fn the_users_file_comes_first_and_the_dsn_wins() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("user.conf");
        std::fs::write(
            &user,
            "# mine\n[shop]\nhost=db.internal\nport=6543\ndbname=shop\n\n[other]\nhost=x\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/pg_service.conf"),
            "[shop]\nhost=system\n[sys]\nhost=sys.internal\nsslmode=verify-full\n",
        )
        .unwrap();
        let env = FakeEnvironment::new(&[
            ("PGSERVICEFILE", user.to_str().unwrap()),
            ("PGSYSCONFDIR", dir.path().join("etc").to_str().unwrap()),
        ]);
        let mut info = ConnInfo::parse("dbname=override").unwrap();
        apply("shop", &mut info, &env).unwrap();
        assert_eq!(info.get("host"), Some("db.internal"));
        assert_eq!(info.get("port"), Some("6543"));
        assert_eq!(info.get("dbname"), Some("override"));

        let mut info = ConnInfo::default();
        apply("sys", &mut info, &env).unwrap();
        assert_eq!(info.get("host"), Some("sys.internal"));
        assert_eq!(info.get("sslmode"), Some("verify-full"));

        let e = apply("nope", &mut ConnInfo::default(), &env).unwrap_err();
        assert!(
            e.0.contains("definition of service \"nope\" not found"),
            "{e}"
        );
    }

    #[test]
    fn bad_lines_name_the_file_line_and_option() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.conf");
        let env = FakeEnvironment::new(&[("PGSERVICEFILE", file.to_str().unwrap())]);
        for (text, expected) in [
            ("[a]\nhost db\n", "line 2: expected key=value"),
            ("[a]\nservice=b\n", "nested service"),
            ("[a]\nhots=x\n", "invalid connection option \"hots\""),
            ("[a]\nsslmode=maybe\n", "invalid sslmode value"),
        ] {
            std::fs::write(&file, text).unwrap();
            let e = apply("a", &mut ConnInfo::default(), &env).unwrap_err();
            assert!(e.0.contains(expected), "{text:?}: {e}");
        }
    }
}
