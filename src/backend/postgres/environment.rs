//! What libpq reads from the process besides the connection string: the
//! `PG*` variables, the home directory (for `~/.pgpass`, `~/.postgresql/`,
//! `~/.pg_service.conf`) and the operating-system user name (the default
//! `user`). Behind a trait so resolution is tested without touching the
//! test process's own environment.

use std::ffi::CStr;
use std::path::PathBuf;

pub trait Environment {
    /// A variable's value; unset and empty are the same (libpq would take
    /// an empty `PGHOST` as "no host given" too).
    fn var(&self, name: &str) -> Option<String>;
    /// `$HOME`, else the password database's home directory (libpq's order).
    fn home(&self) -> Option<PathBuf>;
    /// The effective user's name, libpq's default `user`.
    fn user_name(&self) -> Option<String>;
}

/// The real process environment.
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }

    fn home(&self) -> Option<PathBuf> {
        self.var("HOME")
            .map(PathBuf::from)
            .or_else(|| passwd_entry().map(|(_, home)| home))
    }

    fn user_name(&self) -> Option<String> {
        passwd_entry().map(|(name, _)| name)
    }
}

/// The effective user's name and home directory from the password database.
fn passwd_entry() -> Option<(String, PathBuf)> {
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: getpwuid_r writes into `pwd` and `buf`, which outlive the
    // call; `result` points into them only on success.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(
            libc::geteuid(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        );
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        let name = CStr::from_ptr(pwd.pw_name).to_string_lossy().into_owned();
        let home = if pwd.pw_dir.is_null() {
            PathBuf::new()
        } else {
            PathBuf::from(CStr::from_ptr(pwd.pw_dir).to_string_lossy().into_owned())
        };
        Some((name, home))
    }
}

#[cfg(test)]
pub mod fake {
    //! A fixed environment for unit tests.
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    pub struct FakeEnvironment {
        pub vars: HashMap<String, String>,
        pub home: Option<PathBuf>,
        pub user: Option<String>,
    }

    impl FakeEnvironment {
        pub fn new(vars: &[(&str, &str)]) -> FakeEnvironment {
            FakeEnvironment {
                vars: vars
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                home: None,
                user: Some("alice".into()),
            }
        }
    }

    impl Environment for FakeEnvironment {
        fn var(&self, name: &str) -> Option<String> {
            self.vars.get(name).filter(|v| !v.is_empty()).cloned()
        }
        fn home(&self) -> Option<PathBuf> {
            self.home.clone()
        }
        fn user_name(&self) -> Option<String> {
            self.user.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_has_a_user_and_a_home() {
        let env = ProcessEnvironment;
        assert!(env.user_name().is_some_and(|u| !u.is_empty()));
        assert!(env.home().is_some());
    }
}
