//! Finding PostgreSQL's server binaries (`initdb` and `postgres`), in this
//! order: `POOLBENCH_PG_BIN`, `pg_config --bindir`, the newest
//! `/usr/lib/postgresql/<N>/bin`, then `PATH`; and asking `postgres` its
//! version.
//!
//! A `POOLBENCH_PG_BIN` that is set but does not hold both binaries is an
//! error, not a reason to look elsewhere: the user asked for that server, and
//! silently benchmarking another one would be worse than stopping.

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use std::process::Stdio;

use anyhow::{Context, Result};

use crate::error::{self, ResultExt};

/// The environment variable naming the directory that holds the binaries.
pub const PG_BIN_ENV: &str = "POOLBENCH_PG_BIN";

/// Where Debian and Ubuntu install one directory per major version.
const DEBIAN_LIB_ROOT: &str = "/usr/lib/postgresql";

/// What the search looks at; the real environment in [`find`], temporary
/// directories in the tests.
pub struct SearchPlaces<'a> {
    /// The value of `POOLBENCH_PG_BIN`, if set and not empty.
    pub pg_bin: Option<&'a OsStr>,
    /// The value of `PATH`, for `pg_config` and the last resort.
    pub path: Option<&'a OsStr>,
    /// `/usr/lib/postgresql`.
    pub lib_root: &'a Path,
}

/// The directory holding `initdb` and `postgres`, searched in the real
/// environment. Errors are tagged environment (exit 3).
pub fn find() -> Result<PathBuf> {
    let pg_bin: Option<OsString> = std::env::var_os(PG_BIN_ENV).filter(|v| !v.is_empty());
    let path = std::env::var_os("PATH");
    search(&SearchPlaces {
        pg_bin: pg_bin.as_deref(),
        path: path.as_deref(),
        lib_root: Path::new(DEBIAN_LIB_ROOT),
    })
}

/// The search itself; every place tried is noted for the error message.
pub fn search(places: &SearchPlaces<'_>) -> Result<PathBuf> {
    if let Some(dir) = places.pg_bin {
        let dir = PathBuf::from(dir);
        if has_server_binaries(&dir) {
            // initdb and postgres run in the server's own directory, as
            // the postgres user when poolbench is root: the directory is
            // made absolute and its links resolved here.
            return Ok(std::fs::canonicalize(&dir)
                .or_else(|_| std::path::absolute(&dir))
                .unwrap_or(dir));
        }
        return Err(error::environment(format!(
            "{PG_BIN_ENV}={} does not contain executable `initdb` and `postgres`; \
             point it at PostgreSQL's server bin directory (e.g. /usr/lib/postgresql/15/bin) \
             or unset it to search pg_config, /usr/lib/postgresql and PATH",
            dir.display()
        )));
    }

    let mut tried = vec![format!("{PG_BIN_ENV} (not set)")];

    match find_in_path("pg_config", places.path) {
        Some(pg_config) => match pg_config_bindir(&pg_config) {
            Some(dir) if has_server_binaries(&dir) => return Ok(dir),
            Some(dir) => tried.push(format!(
                "`{} --bindir` ({}: no initdb/postgres there)",
                pg_config.display(),
                dir.display()
            )),
            None => tried.push(format!("`{} --bindir` (failed)", pg_config.display())),
        },
        None => tried.push("pg_config (not on PATH)".to_string()),
    }

    if let Some(dir) = newest_versioned_bin(places.lib_root) {
        return Ok(dir);
    }
    tried.push(format!("{}/<version>/bin", places.lib_root.display()));

    if let Some(dir) = std::env::split_paths(places.path.unwrap_or_default())
        .find(|dir| dir.is_absolute() && has_server_binaries(dir))
    {
        return Ok(dir);
    }
    tried.push("PATH".to_string());

    Err(error::environment(format!(
        "no PostgreSQL server binaries (initdb and postgres) found; searched {}. \
         Install them with `apt-get install postgresql` (Debian/Ubuntu) or your \
         distribution's PostgreSQL server package, or set {PG_BIN_ENV} to the \
         directory that holds them",
        tried.join(", ")
    )))
}

/// Whether `dir` holds executable `initdb` and `postgres` files.
pub fn has_server_binaries(dir: &Path) -> bool {
    is_executable(&dir.join("initdb")) && is_executable(&dir.join("postgres"))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn find_in_path(name: &str, path: Option<&OsStr>) -> Option<PathBuf> {
    std::env::split_paths(path?)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn pg_config_bindir(pg_config: &Path) -> Option<PathBuf> {
    let output = std::process::Command::new(pg_config)
        .arg("--bindir")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let dir = text.trim();
    (!dir.is_empty()).then(|| PathBuf::from(dir))
}

/// The `<root>/<N>/bin` with the highest version N that holds the binaries.
/// Versions compare numerically by component ("9.6" < "10" < "15"), and
/// names that are not versions are ignored.
fn newest_versioned_bin(root: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(root).ok()?;
    entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = parse_version(entry.file_name().to_str()?)?;
            let bin = entry.path().join("bin");
            has_server_binaries(&bin).then_some((version, bin))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, bin)| bin)
}

fn parse_version(name: &str) -> Option<Vec<u32>> {
    name.split('.').map(|part| part.parse().ok()).collect()
}

/// The `postgres --version` number, e.g. "15.18".
pub async fn postgres_version(bin_dir: &Path) -> Result<String> {
    let postgres = bin_dir.join("postgres");
    let output = tokio::process::Command::new(&postgres)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {} --version", postgres.display()))
        .environment()?;
    let text = String::from_utf8_lossy(&output.stdout);
    // "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
    text.split_whitespace()
        .find(|word| word.starts_with(|c: char| c.is_ascii_digit()))
        .map(str::to_string)
        .ok_or_else(|| {
            error::environment(format!(
                "{} --version printed no version: {}",
                postgres.display(),
                text.trim()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_executable(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn fake_bin_dir(dir: &Path) {
        write_executable(&dir.join("initdb"), "#!/bin/sh\nexit 0\n");
        write_executable(&dir.join("postgres"), "#!/bin/sh\nexit 0\n");
    }

    /// A temporary tree with every kind of place filled in; each test removes
    /// or ignores what it needs to reach the next place in the order.
    struct Tree {
        _root: tempfile::TempDir,
        env_dir: PathBuf,
        pg_config_dir: PathBuf,
        pg_config_bindir: PathBuf,
        lib_root: PathBuf,
        path_dir: PathBuf,
    }

    fn tree() -> Tree {
        let root = tempfile::tempdir().unwrap();
        let base = root.path().to_path_buf();
        let env_dir = base.join("env");
        fake_bin_dir(&env_dir);
        let pg_config_bindir = base.join("from-pg-config");
        fake_bin_dir(&pg_config_bindir);
        let pg_config_dir = base.join("pg-config-on-path");
        write_executable(
            &pg_config_dir.join("pg_config"),
            &format!(
                "#!/bin/sh\n[ \"$1\" = --bindir ] && echo '{}'\n",
                pg_config_bindir.display()
            ),
        );
        let lib_root = base.join("usr-lib-postgresql");
        for version in ["9.6", "10", "16", "15"] {
            fake_bin_dir(&lib_root.join(version).join("bin"));
        }
        // Newer, but incomplete: must be skipped.
        write_executable(&lib_root.join("17/bin/initdb"), "#!/bin/sh\n");
        std::fs::create_dir_all(lib_root.join("not-a-version/bin")).unwrap();
        let path_dir = base.join("on-path");
        fake_bin_dir(&path_dir);
        Tree {
            _root: root,
            env_dir,
            pg_config_dir,
            pg_config_bindir,
            lib_root,
            path_dir,
        }
    }

    fn path_of(dirs: &[&Path]) -> OsString {
        std::env::join_paths(dirs).unwrap()
    }

    #[test]
    fn pg_bin_env_comes_first() {
        let t = tree();
        let path = path_of(&[&t.pg_config_dir, &t.path_dir]);
        let found = search(&SearchPlaces {
            pg_bin: Some(t.env_dir.as_os_str()),
            path: Some(&path),
            lib_root: &t.lib_root,
        })
        .unwrap();
        assert_eq!(found, t.env_dir);
    }

    #[test]
    fn wrong_pg_bin_env_is_an_error_not_a_fallthrough() {
        let t = tree();
        let path = path_of(&[&t.pg_config_dir, &t.path_dir]);
        let err = search(&SearchPlaces {
            pg_bin: Some(OsStr::new("/nonexistent")),
            path: Some(&path),
            lib_root: &t.lib_root,
        })
        .unwrap_err();
        assert_eq!(error::kind_of(&err), Some(error::Kind::Environment));
        let text = format!("{err:#}");
        assert!(text.contains("POOLBENCH_PG_BIN=/nonexistent"), "{text}");
    }

    #[test]
    fn pg_config_comes_second() {
        let t = tree();
        let path = path_of(&[&t.pg_config_dir, &t.path_dir]);
        let found = search(&SearchPlaces {
            pg_bin: None,
            path: Some(&path),
            lib_root: &t.lib_root,
        })
        .unwrap();
        assert_eq!(found, t.pg_config_bindir);
    }

    #[test]
    fn newest_lib_version_comes_third_sorted_numerically() {
        let t = tree();
        // pg_config on PATH, but pointing at a directory without binaries.
        std::fs::remove_file(t.pg_config_bindir.join("postgres")).unwrap();
        let path = path_of(&[&t.pg_config_dir, &t.path_dir]);
        let found = search(&SearchPlaces {
            pg_bin: None,
            path: Some(&path),
            lib_root: &t.lib_root,
        })
        .unwrap();
        assert_eq!(found, t.lib_root.join("16").join("bin"));
    }

    #[test]
    fn path_comes_last() {
        let t = tree();
        let path = path_of(&[&t.path_dir]);
        let found = search(&SearchPlaces {
            pg_bin: None,
            path: Some(&path),
            lib_root: &t.lib_root.join("missing"),
        })
        .unwrap();
        assert_eq!(found, t.path_dir);
    }

    #[test]
    fn nothing_found_says_what_was_searched_and_how_to_install() {
        let t = tree();
        let err = search(&SearchPlaces {
            pg_bin: None,
            path: Some(&path_of(&[&t.lib_root])),
            lib_root: &t.lib_root.join("missing"),
        })
        .unwrap_err();
        assert_eq!(error::kind_of(&err), Some(error::Kind::Environment));
        let text = format!("{err:#}");
        for needle in [
            "POOLBENCH_PG_BIN",
            "pg_config",
            "PATH",
            "apt-get install postgresql",
            "distribution's PostgreSQL server package",
        ] {
            assert!(text.contains(needle), "{needle} missing from: {text}");
        }
    }

    #[test]
    fn versions_sort_numerically() {
        assert!(parse_version("10") > parse_version("9.6"));
        assert_eq!(parse_version("latest"), None);
    }
}
