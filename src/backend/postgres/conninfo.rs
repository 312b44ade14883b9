//! libpq connection strings: the URL form
//! (`postgresql://user:pw@host1:5432,host2/db?sslmode=verify-full`) and the
//! key=value form (`host=/var/run/postgresql dbname='my db'`), parsed as
//! libpq parses them into one option map, and every option checked against
//! libpq's own list: what poolbench does with it, or why it cannot.
//!
//! Errors name the option and what was expected, and never quote the value
//! of a secret (`password`, `sslpassword`).

use std::collections::BTreeMap;
use std::fmt;

/// What poolbench does with one of libpq's options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Support {
    /// Used as libpq uses it; the value is checked by [`check_value`].
    Yes,
    /// Accepted and without effect, as in libpq today (obsolete or
    /// only meaningful for a feature that is off).
    Ignored,
    /// Refused with this reason.
    No(&'static str),
}

/// libpq's connection options (PostgreSQL 18), the environment variable
/// that supplies each one's default, and what poolbench does with it.
const KEYWORDS: &[(&str, Option<&str>, Support)] = &[
    ("host", Some("PGHOST"), Support::Yes),
    ("hostaddr", Some("PGHOSTADDR"), Support::Yes),
    ("port", Some("PGPORT"), Support::Yes),
    ("dbname", Some("PGDATABASE"), Support::Yes),
    ("user", Some("PGUSER"), Support::Yes),
    ("password", Some("PGPASSWORD"), Support::Yes),
    ("passfile", Some("PGPASSFILE"), Support::Yes),
    ("service", Some("PGSERVICE"), Support::Yes),
    ("connect_timeout", Some("PGCONNECT_TIMEOUT"), Support::Yes),
    ("options", Some("PGOPTIONS"), Support::Yes),
    ("application_name", Some("PGAPPNAME"), Support::Yes),
    ("fallback_application_name", None, Support::Yes),
    ("client_encoding", Some("PGCLIENTENCODING"), Support::Yes),
    ("channel_binding", Some("PGCHANNELBINDING"), Support::Yes),
    ("keepalives", None, Support::Yes),
    ("keepalives_idle", None, Support::Yes),
    ("keepalives_interval", None, Support::Yes),
    ("keepalives_count", None, Support::Yes),
    ("tcp_user_timeout", None, Support::Yes),
    (
        "target_session_attrs",
        Some("PGTARGETSESSIONATTRS"),
        Support::Yes,
    ),
    (
        "load_balance_hosts",
        Some("PGLOADBALANCEHOSTS"),
        Support::Yes,
    ),
    ("sslmode", Some("PGSSLMODE"), Support::Yes),
    ("sslnegotiation", Some("PGSSLNEGOTIATION"), Support::Yes),
    ("sslrootcert", Some("PGSSLROOTCERT"), Support::Yes),
    ("sslcert", Some("PGSSLCERT"), Support::Yes),
    ("sslkey", Some("PGSSLKEY"), Support::Yes),
    ("sslpassword", None, Support::Yes),
    ("sslcertmode", Some("PGSSLCERTMODE"), Support::Yes),
    ("sslsni", Some("PGSSLSNI"), Support::Yes),
    (
        "ssl_min_protocol_version",
        Some("PGSSLMINPROTOCOLVERSION"),
        Support::Yes,
    ),
    (
        "ssl_max_protocol_version",
        Some("PGSSLMAXPROTOCOLVERSION"),
        Support::Yes,
    ),
    ("gssencmode", Some("PGGSSENCMODE"), Support::Yes),
    ("replication", None, Support::Yes),
    (
        "min_protocol_version",
        Some("PGMINPROTOCOLVERSION"),
        Support::Yes,
    ),
    (
        "max_protocol_version",
        Some("PGMAXPROTOCOLVERSION"),
        Support::Yes,
    ),
    ("sslcompression", Some("PGSSLCOMPRESSION"), Support::Ignored),
    ("krbsrvname", Some("PGKRBSRVNAME"), Support::Ignored),
    ("gsslib", Some("PGGSSLIB"), Support::Ignored),
    ("gssdelegation", Some("PGGSSDELEGATION"), Support::Ignored),
    (
        "sslcrl",
        Some("PGSSLCRL"),
        Support::No("certificate revocation lists are not checked"),
    ),
    (
        "sslcrldir",
        Some("PGSSLCRLDIR"),
        Support::No("certificate revocation lists are not checked"),
    ),
    (
        "sslkeylogfile",
        None,
        Support::No("TLS key logging is not offered"),
    ),
    (
        "requirepeer",
        Some("PGREQUIREPEER"),
        Support::No("the peer of a Unix-domain socket is not checked"),
    ),
    (
        "require_auth",
        Some("PGREQUIREAUTH"),
        Support::No("the driver (tokio-postgres) cannot restrict the authentication method"),
    ),
    (
        "oauth_issuer",
        None,
        Support::No("OAuth authentication is not supported"),
    ),
    (
        "oauth_client_id",
        None,
        Support::No("OAuth authentication is not supported"),
    ),
    (
        "oauth_client_secret",
        None,
        Support::No("OAuth authentication is not supported"),
    ),
    (
        "oauth_scope",
        None,
        Support::No("OAuth authentication is not supported"),
    ),
];

/// Options whose values are secrets: never quoted in an error.
const SECRET: &[&str] = &["password", "sslpassword"];

/// The libpq environment variables that, when set, make libpq's
/// environment the target (before falling back to the embedded server).
pub const TARGET_VARIABLES: &[&str] = &[
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGDATABASE",
    "PGUSER",
    "PGSERVICE",
];

/// Every option with an environment variable, as (option, variable).
pub fn environment_variables() -> impl Iterator<Item = (&'static str, &'static str)> {
    KEYWORDS
        .iter()
        .filter_map(|(key, var, _)| var.map(|v| (*key, v)))
}

/// A malformed or unsupported connection string. Safe to print: it never
/// holds a secret's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfoError(pub String);

impl fmt::Display for ConnInfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConnInfoError {}

fn err<T>(message: impl Into<String>) -> Result<T, ConnInfoError> {
    Err(ConnInfoError(message.into()))
}

/// Options by libpq keyword. Later settings of a keyword replace earlier
/// ones, as in libpq.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConnInfo {
    options: BTreeMap<&'static str, String>,
}

impl fmt::Debug for ConnInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: BTreeMap<&str, &str> = self
            .options
            .iter()
            .map(|(k, v)| (*k, if SECRET.contains(k) { "****" } else { v }))
            .collect();
        f.debug_tuple("ConnInfo").field(&shown).finish()
    }
}

impl ConnInfo {
    /// Parses a URL (`postgres://` or `postgresql://`) or a key=value
    /// string, and checks every option.
    pub fn parse(text: &str) -> Result<ConnInfo, ConnInfoError> {
        let trimmed = text.trim_start();
        let pairs = if let Some(rest) = strip_scheme(trimmed) {
            parse_url(rest)?
        } else {
            parse_key_values(text)?
        };
        let mut info = ConnInfo::default();
        for (key, value) in pairs {
            info.set(&key, value)?;
        }
        Ok(info)
    }

    /// Sets one option after checking the keyword and value.
    pub fn set(&mut self, key: &str, value: String) -> Result<(), ConnInfoError> {
        let keyword = keyword(key)?;
        check_value(keyword, &value)?;
        self.options.insert(keyword, value);
        Ok(())
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.options.get(key).map(String::as_str)
    }

    /// The value when it is set and not empty: libpq treats an empty
    /// value as not given.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.is_empty())
    }

    pub fn contains(&self, key: &str) -> bool {
        self.options.contains_key(key)
    }

    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.options.remove(key)
    }

    pub fn keys(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.options.keys().copied()
    }
}

/// The canonical keyword, or an error naming the unknown or unsupported one.
fn keyword(key: &str) -> Result<&'static str, ConnInfoError> {
    match KEYWORDS.iter().find(|(k, _, _)| *k == key) {
        Some((k, _, Support::No(why))) => err(format!(
            "option \"{k}\" is not supported by poolbench: {why}; remove it"
        )),
        Some((k, _, _)) => Ok(k),
        None => err(format!(
            "invalid connection option \"{key}\" (libpq's options include host, hostaddr, \
             port, dbname, user, password, passfile, service, sslmode, sslrootcert, sslcert, \
             sslkey, connect_timeout, application_name, options)"
        )),
    }
}

/// Checks a value the way libpq would before connecting; what is checked
/// here is exactly what `validate` can check without a database.
fn check_value(key: &'static str, value: &str) -> Result<(), ConnInfoError> {
    let one_of = |allowed: &[&str]| -> Result<(), ConnInfoError> {
        if allowed.contains(&value) {
            Ok(())
        } else {
            err(format!(
                "invalid {key} value \"{value}\": expected {}",
                list(allowed)
            ))
        }
    };
    let integer = |min: i64| -> Result<(), ConnInfoError> {
        match value.trim_end().parse::<i64>() {
            Ok(n) if n >= min => Ok(()),
            _ => err(format!(
                "invalid integer value \"{value}\" for connection option \"{key}\""
            )),
        }
    };
    match key {
        "port" => {
            for port in value.split(',') {
                if !port.is_empty() && !matches!(port.trim_end().parse::<u16>(), Ok(p) if p > 0) {
                    return err(format!(
                        "invalid port number: \"{port}\" (expected 1 to 65535)"
                    ));
                }
            }
            Ok(())
        }
        "hostaddr" => {
            for addr in value.split(',') {
                if !addr.is_empty() && addr.parse::<std::net::IpAddr>().is_err() {
                    return err(format!(
                        "could not parse network address \"{addr}\" of option \"hostaddr\" \
                         (expected a numeric IPv4 or IPv6 address; use host for a name)"
                    ));
                }
            }
            Ok(())
        }
        "host" => {
            if value.split(',').any(|h| h.starts_with('@')) {
                return err(
                    "host: abstract Unix-domain sockets (\"@name\") are not supported by the driver (tokio-postgres)",
                );
            }
            Ok(())
        }
        "connect_timeout" | "keepalives_idle" | "keepalives_interval" | "tcp_user_timeout" => {
            if value.is_empty() {
                Ok(())
            } else {
                integer(i64::MIN)
            }
        }
        "keepalives" | "keepalives_count" => {
            if value.is_empty() {
                Ok(())
            } else {
                integer(0)
            }
        }
        "sslmode" => one_of(&[
            "disable",
            "allow",
            "prefer",
            "require",
            "verify-ca",
            "verify-full",
        ]),
        "sslnegotiation" => one_of(&["postgres", "direct"]),
        "sslcertmode" => one_of(&["disable", "allow"]).map_err(|_| {
            ConnInfoError(format!(
                "invalid sslcertmode value \"{value}\": poolbench supports disable and allow \
                 (require is not supported)"
            ))
        }),
        "sslsni" => one_of(&["0", "1"]),
        "ssl_min_protocol_version" | "ssl_max_protocol_version" => {
            if value.is_empty() {
                Ok(())
            } else {
                one_of(&["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"])
            }
        }
        "min_protocol_version" | "max_protocol_version" => {
            if value.is_empty() {
                Ok(())
            } else {
                one_of(&["3.0"]).map_err(|_| {
                    ConnInfoError(format!(
                        "invalid {key} value \"{value}\": the driver (tokio-postgres) speaks \
                         protocol 3.0 only"
                    ))
                })
            }
        }
        "channel_binding" => one_of(&["disable", "prefer", "require"]),
        "target_session_attrs" => one_of(&["any", "read-write", "read-only"]).map_err(|_| {
            ConnInfoError(format!(
                "invalid target_session_attrs value \"{value}\": poolbench supports any, \
                     read-write and read-only (primary, standby and prefer-standby are not \
                     supported by the driver, tokio-postgres)"
            ))
        }),
        "load_balance_hosts" => one_of(&["disable", "random"]),
        "gssencmode" => one_of(&["disable", "prefer"]).map_err(|_| {
            ConnInfoError(format!(
                "invalid gssencmode value \"{value}\": GSSAPI encryption is not supported \
                 (use disable or prefer)"
            ))
        }),
        "replication" => {
            if ["", "0", "false", "off", "no"].contains(&value) {
                Ok(())
            } else {
                err("option \"replication\" is not supported by poolbench: a benchmark needs a normal session")
            }
        }
        "client_encoding" => {
            if value.is_empty()
                || ["utf8", "utf-8", "unicode", "auto"]
                    .contains(&value.to_ascii_lowercase().as_str())
            {
                Ok(())
            } else {
                err(format!(
                    "invalid client_encoding value \"{value}\": the driver (tokio-postgres) always uses UTF8"
                ))
            }
        }
        _ => Ok(()),
    }
}

fn list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

fn strip_scheme(text: &str) -> Option<&str> {
    text.strip_prefix("postgresql://")
        .or_else(|| text.strip_prefix("postgres://"))
}

/// libpq's key=value syntax: `key = value` pairs separated by whitespace;
/// a value is single-quoted (`\'` and `\\` escape) or runs to the next
/// whitespace (a backslash escapes the next character).
fn parse_key_values(text: &str) -> Result<Vec<(String, String)>, ConnInfoError> {
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return err(format!(
                "missing \"=\" after \"{key}\" in connection info string"
            ));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    None => {
                        return err(format!(
                        "unterminated quoted string in connection info string (option \"{key}\")"
                    ))
                    }
                    Some('\\') => {
                        if let Some(c) = chars.next() {
                            value.push(c);
                        }
                    }
                    Some('\'') => break,
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                if c == '\\' {
                    if let Some(escaped) = chars.next() {
                        value.push(escaped);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

/// libpq's URI syntax after the scheme:
/// `[user[:password]@][host[:port][,...]][/dbname][?param=value&...]`,
/// with percent-encoding everywhere and `[...]` around IPv6 addresses.
fn parse_url(rest: &str) -> Result<Vec<(String, String)>, ConnInfoError> {
    let mut pairs = Vec::new();
    let (before_query, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.find('/') {
        Some(i) => (&before_query[..i], Some(&before_query[i + 1..])),
        None => (before_query, None),
    };
    // The last '@' ends the user part: an encoded password may not hold
    // one, but be lenient like libpq, which splits at the first '@' that
    // is followed by the host part.
    let hosts = match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                pairs.push(("user".into(), decode("user", user)?));
            }
            if let Some(p) = password {
                pairs.push(("password".into(), decode("password", p)?));
            }
            &authority[at + 1..]
        }
        None => authority,
    };
    if !hosts.is_empty() {
        let mut host_list = Vec::new();
        let mut port_list = Vec::new();
        for item in hosts.split(',') {
            let (host, port) = if let Some(inner) = item.strip_prefix('[') {
                let Some(end) = inner.find(']') else {
                    return err(format!(
                        "missing \"]\" in IPv6 host address in URI: \"{item}\""
                    ));
                };
                let after = &inner[end + 1..];
                let port = match after {
                    "" => "",
                    p if p.starts_with(':') => &p[1..],
                    _ => {
                        return err(format!(
                            "unexpected character after IPv6 host address in URI: \"{item}\""
                        ))
                    }
                };
                (inner[..end].to_string(), port)
            } else {
                match item.split_once(':') {
                    Some((h, p)) => (decode("host", h)?, p),
                    None => (decode("host", item)?, ""),
                }
            };
            host_list.push(host);
            port_list.push(decode("port", port)?);
        }
        if host_list.iter().any(|h| !h.is_empty()) {
            pairs.push(("host".into(), host_list.join(",")));
        }
        if port_list.iter().any(|p| !p.is_empty()) {
            pairs.push(("port".into(), port_list.join(",")));
        }
    }
    if let Some(db) = path.filter(|p| !p.is_empty()) {
        pairs.push(("dbname".into(), decode("dbname", db)?));
    }
    if let Some(query) = query {
        for param in query.split('&').filter(|p| !p.is_empty()) {
            let Some((key, value)) = param.split_once('=') else {
                return err(format!(
                    "missing key/value separator \"=\" in URI query parameter: \"{param}\""
                ));
            };
            let key = decode("a query parameter's name", key)?;
            let value = decode(&key, value)?;
            // libpq accepts JDBC's ssl=true as sslmode=require.
            if key == "ssl" && value == "true" {
                pairs.push(("sslmode".into(), "require".into()));
            } else {
                pairs.push((key, value));
            }
        }
    }
    Ok(pairs)
}

/// Percent-decodes one part of a URI; `what` names it in the error, whose
/// text never quotes a password. Shared with the `mysql://` DSN parser.
pub fn decode(what: &str, text: &str) -> Result<String, ConnInfoError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(0) | None => {
                    return err(format!(
                        "invalid percent-encoded token in the {what} part of the URI"
                    ))
                }
                Some(b) => out.push(b),
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).or_else(|_| err(format!("the {what} part of the URI is not UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ConnInfo {
        match ConnInfo::parse(text) {
            Ok(c) => c,
            Err(e) => panic!("{text}: {e}"),
        }
    }

    fn error(text: &str) -> String {
        ConnInfo::parse(text).unwrap_err().0
    }

    #[test]
    fn url_parts() {
        let c = parse("postgresql://app:p%40ss@db.internal:6543/shop?sslmode=verify-full&sslrootcert=/etc/ca.pem");
        assert_eq!(c.get("user"), Some("app"));
        assert_eq!(c.get("password"), Some("p@ss"));
        assert_eq!(c.get("host"), Some("db.internal"));
        assert_eq!(c.get("port"), Some("6543"));
        assert_eq!(c.get("dbname"), Some("shop"));
        assert_eq!(c.get("sslmode"), Some("verify-full"));
        assert_eq!(c.get("sslrootcert"), Some("/etc/ca.pem"));
    }

    #[test]
    fn url_hosts_sockets_and_ipv6() {
        let c = parse("postgres://h1:5433,[::1],h3/db");
        assert_eq!(c.get("host"), Some("h1,::1,h3"));
        assert_eq!(c.get("port"), Some("5433,,"));
        let c = parse("postgres://%2Fvar%2Frun%2Fpostgresql/db");
        assert_eq!(c.get("host"), Some("/var/run/postgresql"));
        let c = parse("postgresql:///db?host=/tmp&port=5433");
        assert_eq!(c.get("host"), Some("/tmp"));
        assert_eq!(c.get("port"), Some("5433"));
        let c = parse("postgres://");
        assert_eq!(c.keys().count(), 0);
        let c = parse("postgres://u@?ssl=true");
        assert_eq!(c.get("sslmode"), Some("require"));
    }

    #[test]
    fn key_values_with_quotes_and_escapes() {
        let c = parse(r"host=/tmp  dbname = 'my db' user=a\ b password='it\'s' port=5433");
        assert_eq!(c.get("host"), Some("/tmp"));
        assert_eq!(c.get("dbname"), Some("my db"));
        assert_eq!(c.get("user"), Some("a b"));
        assert_eq!(c.get("password"), Some("it's"));
        assert_eq!(c.get("port"), Some("5433"));
        let c = parse("sslmode=require sslmode=verify-ca");
        assert_eq!(c.get("sslmode"), Some("verify-ca"), "the last one wins");
        assert_eq!(parse("").keys().count(), 0);
    }

    #[test]
    fn errors_name_the_option_and_never_the_secret() {
        assert!(error("host=x sslmode=sometimes").contains("invalid sslmode value \"sometimes\""));
        assert!(error("host=x sslmode=sometimes").contains("verify-full"));
        assert!(error("hots=x").contains("invalid connection option \"hots\""));
        assert!(error("host=x sslcrl=/c.pem").contains("\"sslcrl\" is not supported"));
        assert!(error("postgres://h/db?sslcrl=x").contains("sslcrl"));
        assert!(error("host=x port=99999").contains("invalid port number"));
        assert!(error("postgres://h:abc/db").contains("invalid port number: \"abc\""));
        assert!(error("host=x connect_timeout=ten").contains("\"connect_timeout\""));
        assert!(error("host=x hostaddr=db.internal").contains("hostaddr"));
        assert!(error("host x").contains("missing \"=\" after \"host\""));
        assert!(error("password='hunter2").contains("unterminated"));
        assert!(!error("password='hunter2").contains("hunter2"));
        assert!(error("postgres://u:%zzhunter2@h/db").contains("password part"));
        assert!(!error("postgres://u:%zzhunter2@h/db").contains("hunter2"));
        assert!(error("target_session_attrs=primary").contains("primary"));
        assert!(error("postgres://h/db?sslmode").contains("\"=\""));
    }

    #[test]
    fn debug_hides_secrets() {
        let c = parse("password=hunter2 sslpassword=s3cret host=h");
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("s3cret"),
            "{shown}"
        );
        assert!(shown.contains("host"));
    }
}
