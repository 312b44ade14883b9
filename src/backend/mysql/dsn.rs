//! `mysql://user:password@host:port/db?ssl-mode=…&ssl-ca=…` parsed and
//! checked into a [`Target`]: every option known, every value valid, the
//! CA file readable, each error naming where the DSN came from and never
//! showing the password.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use super::target::{CaFile, Details, SslMode, Target, DEFAULT_CONNECT_TIMEOUT, DEFAULT_PORT};
use crate::backend::postgres::conninfo::decode;
use crate::error::bad_input;

/// Parses a `mysql://` DSN; `origin` names where it came from (`--dsn`,
/// the scenario file…) for errors, which never hold the password.
pub fn parse(dsn: &str, origin: &str) -> Result<Target> {
    let (mut details, password) =
        parts(dsn).map_err(|m| bad_input(format!("{origin}: invalid mysql:// DSN: {m}")))?;
    details.source = origin.to_string();
    Ok(Target::new(details, password))
}

/// Checks a DSN without connecting: what `validate` says of a scenario's
/// `dsn` (the message never holds the password).
pub fn check(dsn: &str) -> Result<(), String> {
    parts(dsn).map(|_| ())
}

fn parts(dsn: &str) -> Result<(Details, Option<String>), String> {
    let fail = |message: String| message;
    let rest = dsn
        .strip_prefix("mysql://")
        .ok_or_else(|| fail("it must start with mysql://".into()))?;
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, db) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (user, password) = match userinfo {
        Some(u) => match u.split_once(':') {
            Some((user, pw)) => (
                decode("user", user).map_err(|e| fail(e.0))?,
                Some(decode("password", pw).map_err(|e| fail(e.0))?),
            ),
            None => (decode("user", u).map_err(|e| fail(e.0))?, None),
        },
        None => (String::new(), None),
    };
    if user.is_empty() {
        return Err(fail("no user (mysql://USER:PASSWORD@HOST:PORT/DB)".into()));
    }
    let (host, port) = split_host_port(hostport).map_err(fail)?;
    let db = decode("database", db).map_err(|e| fail(e.0))?;
    let mut ssl_mode = SslMode::Preferred;
    let mut ssl_ca = None;
    let mut connect_timeout = DEFAULT_CONNECT_TIMEOUT;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| fail(format!("option {pair:?} has no value (key=value)")))?;
        let value = decode(key, value).map_err(|e| fail(e.0))?;
        match key {
            "ssl-mode" => {
                ssl_mode = SslMode::parse(&value).ok_or_else(|| {
                    fail(format!(
                        "ssl-mode={value:?}: expected DISABLED, PREFERRED, REQUIRED, VERIFY_CA \
                         or VERIFY_IDENTITY"
                    ))
                })?;
            }
            "ssl-ca" => {
                let path = PathBuf::from(&value);
                let pem = crate::input::read_file(&path, crate::input::MAX_SETTINGS_FILE_BYTES)
                    .map_err(|e| fail(format!("ssl-ca: cannot read {}: {e}", path.display())))?;
                ssl_ca = Some(CaFile {
                    path,
                    pem: pem.into(),
                });
            }
            "connect-timeout" => {
                let secs: u64 = value.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                    fail(format!(
                        "connect-timeout={value:?}: expected whole seconds, at least 1"
                    ))
                })?;
                connect_timeout = Duration::from_secs(secs);
            }
            other => {
                return Err(fail(format!(
                    "unknown option {other:?}: expected ssl-mode, ssl-ca or connect-timeout"
                )))
            }
        }
    }
    if matches!(ssl_mode, SslMode::VerifyCa | SslMode::VerifyIdentity) && ssl_ca.is_none() {
        return Err(fail(format!(
            "ssl-mode={} verifies the server's certificate: give the CA with ssl-ca=FILE",
            ssl_mode.as_str()
        )));
    }
    if ssl_ca.is_some() && matches!(ssl_mode, SslMode::Disabled) {
        return Err(fail(
            "ssl-ca with ssl-mode=DISABLED: nothing to verify".into(),
        ));
    }
    Ok((
        Details {
            host,
            port,
            has_password: password.is_some(),
            user,
            db: (!db.is_empty()).then_some(db),
            ssl_mode,
            ssl_ca,
            connect_timeout,
            source: String::new(),
        },
        password,
    ))
}

fn split_host_port(text: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(v6) = text.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("host {text:?}: unclosed ["))?;
        (host, after.strip_prefix(':'))
    } else {
        match text.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err("no host (mysql://USER:PASSWORD@HOST:PORT/DB)".into());
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("port {p:?}: expected 1..65535"))?,
    };
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_dsn_parses_and_redacts() {
        let t = parse(
            "mysql://app:s3cr%40t@db.internal:3307/shop?ssl-mode=required",
            "--dsn",
        )
        .unwrap();
        assert_eq!(
            t.redacted(),
            "mysql://app:****@db.internal:3307/shop?ssl-mode=REQUIRED"
        );
        assert!(!format!("{t:?}").contains("s3cr"));
        let d = t.details();
        assert_eq!((d.host.as_str(), d.port), ("db.internal", 3307));
        // The display parses back to the same place.
        let again = parse(&t.redacted(), "--dsn").unwrap();
        assert_eq!(again.details().db, d.db);
    }

    #[test]
    fn defaults_are_port_3306_and_preferred() {
        let t = parse("mysql://root@[::1]", "--dsn").unwrap();
        assert_eq!(t.redacted(), "mysql://root@[::1]:3306/?ssl-mode=PREFERRED");
    }

    #[test]
    fn bad_options_are_bad_input_naming_the_origin_never_the_password() {
        for (dsn, says) in [
            ("mysql://u:hunter2@h/d?ssl-mode=sometimes", "ssl-mode"),
            ("mysql://u:hunter2@h/d?sslmode=REQUIRED", "unknown option"),
            ("mysql://u:hunter2@h:99999/d", "port"),
            ("mysql://u:hunter2@h/d?ssl-mode=VERIFY_CA", "ssl-ca"),
            (
                "mysql://u:hunter2@h/d?ssl-ca=/no/such/ca.pem",
                "/no/such/ca.pem",
            ),
            ("mysql://u:hunter2@h/d?connect-timeout=0", "connect-timeout"),
            ("mysql://:hunter2@h/d", "no user"),
            ("mysql://u:hunter2@/d", "no host"),
        ] {
            let err = parse(dsn, "--dsn").unwrap_err();
            assert_eq!(
                crate::error::kind_of(&err),
                Some(crate::error::Kind::BadInput)
            );
            let text = format!("{err:#}");
            assert!(text.contains("--dsn"), "{text}");
            assert!(text.contains(says), "{dsn}: {text}");
            assert!(!text.contains("hunter2"), "{text}");
        }
    }
}
