//! Where the database is, in poolbench's order — `--embedded`, `--dsn`,
//! the scenario's `[database].dsn`, `DATABASE_URL`, libpq's environment
//! (when any of `PGHOST`, `PGHOSTADDR`, `PGPORT`, `PGDATABASE`, `PGUSER`,
//! `PGSERVICE` is set), else the embedded server — and how a connection
//! string becomes a [`Target`] with libpq's defaults for what it leaves
//! out: the service file, then the `PG*` variables, then libpq's built-in
//! defaults, then the password file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use tokio_postgres::config::{
    ChannelBinding, LoadBalanceHosts, SslNegotiation, TargetSessionAttrs,
};
use tokio_postgres::Config;

use super::conninfo::{self, ConnInfo, TARGET_VARIABLES};
use super::environment::Environment;
use super::pgpass::{self, Lookup};
use super::service;
use super::tls::{self, SslMode, TlsOptions};
use super::{Details, Target, DEFAULT_CONNECT_TIMEOUT};
use crate::error::{bad_input, environment};

/// What the command line and the scenario say about the target.
#[derive(Debug, Clone, Copy, Default)]
pub struct Request<'a> {
    /// `--dsn`.
    pub flag: Option<&'a str>,
    /// The scenario's `[database].dsn`, and the scenario file.
    pub scenario: Option<(&'a str, &'a Path)>,
    /// `--embedded`.
    pub embedded: bool,
}

/// Where the target came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag,
    Scenario(PathBuf),
    DatabaseUrl,
    /// libpq's environment: the variables among [`TARGET_VARIABLES`] set.
    Environment(Vec<&'static str>),
    /// No target given: the embedded server.
    Embedded,
    /// `--embedded`.
    ForcedEmbedded,
}

impl Source {
    /// For the header and report.json's `server.source`.
    pub fn label(&self) -> String {
        match self {
            Source::Flag => "--dsn".into(),
            Source::Scenario(_) => "[database].dsn".into(),
            Source::DatabaseUrl => "DATABASE_URL".into(),
            Source::Environment(vars) => vars.join(","),
            Source::Embedded => "embedded".into(),
            Source::ForcedEmbedded => "--embedded".into(),
        }
    }

    /// For errors: where to look.
    fn origin(&self) -> String {
        match self {
            Source::Scenario(path) => format!("[database].dsn of {}", path.display()),
            Source::Environment(vars) => format!("libpq's environment ({})", vars.join(", ")),
            other => other.label(),
        }
    }
}

/// The outcome: a database to reach, or the embedded server to start.
#[derive(Debug)]
pub enum Found {
    Target(Box<Target>),
    Embedded(Source),
}

/// Follows the documented order. Errors: a malformed connection string,
/// service or variable is bad input (exit 2); a file that cannot be used
/// (root certificate, client key) is environment (exit 3).
pub fn find(request: &Request<'_>, env: &dyn Environment) -> Result<Found> {
    if request.embedded {
        return Ok(Found::Embedded(Source::ForcedEmbedded));
    }
    let (dsn, source) = if let Some(dsn) = request.flag {
        (dsn.to_string(), Source::Flag)
    } else if let Some((dsn, path)) = request.scenario {
        (dsn.to_string(), Source::Scenario(path.to_path_buf()))
    } else if let Some(url) = env.var("DATABASE_URL") {
        (url, Source::DatabaseUrl)
    } else {
        let set: Vec<&'static str> = TARGET_VARIABLES
            .iter()
            .copied()
            .filter(|v| env.var(v).is_some())
            .collect();
        if set.is_empty() {
            return Ok(Found::Embedded(Source::Embedded));
        }
        (String::new(), Source::Environment(set))
    };
    resolve(&dsn, source, env).map(|t| Found::Target(Box::new(t)))
}

/// Checks a connection string without reading any environment or file:
/// what `validate` can say about a scenario's `dsn`.
pub fn check_dsn(dsn: &str) -> Result<(), conninfo::ConnInfoError> {
    ConnInfo::parse(dsn).map(|_| ())
}

/// A connection string (empty: libpq's environment alone) with libpq's
/// defaults applied.
pub fn resolve(dsn: &str, source: Source, env: &dyn Environment) -> Result<Target> {
    let origin = source.origin();
    let mut info =
        ConnInfo::parse(dsn).map_err(|e| bad_input(format!("invalid DSN in {origin}: {e}")))?;
    let service = info
        .value("service")
        .map(str::to_string)
        .or_else(|| env.var("PGSERVICE"));
    if let Some(name) = &service {
        service::apply(name, &mut info, env)
            .map_err(|e| bad_input(format!("service \"{name}\" (from {origin}): {e}")))?;
    }
    for (key, var) in conninfo::environment_variables() {
        if key == "service" || info.contains(key) {
            continue;
        }
        if let Some(value) = env.var(var) {
            info.set(key, value)
                .map_err(|e| bad_input(format!("invalid environment variable {var}: {e}")))?;
        }
    }
    build(&info, source, env)
}

/// libpq's default socket directory: its compiled-in DEFAULT_PGSOCKET_DIR,
/// `/var/run/postgresql` on Debian, Ubuntu and Red Hat builds, `/tmp`
/// upstream (and on macOS).
pub fn default_socket_dir() -> PathBuf {
    let debian = Path::new("/var/run/postgresql");
    if debian.is_dir() {
        debian.to_path_buf()
    } else {
        PathBuf::from("/tmp")
    }
}

fn list(value: Option<&str>) -> Vec<String> {
    value
        .map(|v| v.split(',').map(str::to_string).collect())
        .unwrap_or_default()
}

fn seconds(info: &ConnInfo, key: &str) -> Option<i64> {
    info.value(key).and_then(|v| v.trim_end().parse().ok())
}

fn build(info: &ConnInfo, source: Source, env: &dyn Environment) -> Result<Target> {
    let mode = info
        .value("sslmode")
        .and_then(SslMode::parse)
        .unwrap_or(SslMode::Prefer);
    let socket_dir = default_socket_dir();
    let hosts = list(info.value("host"));
    let addrs = list(info.value("hostaddr"));
    let ports = list(info.value("port"));
    if !hosts.is_empty() && !addrs.is_empty() && hosts.len() != addrs.len() {
        return Err(bad_input(format!(
            "could not match {} host names to {} hostaddr values",
            hosts.len(),
            addrs.len()
        )));
    }
    if addrs.iter().any(String::is_empty) {
        return Err(bad_input(
            "hostaddr: an empty entry in a list of addresses is not supported by the driver (tokio-postgres)",
        ));
    }
    let count = hosts.len().max(addrs.len()).max(1);
    if ports.len() > 1 && ports.len() != count {
        return Err(bad_input(format!(
            "could not match {} port numbers to {count} hosts",
            ports.len()
        )));
    }

    let mut config = Config::new();
    // (host for the connection and TLS, host for the password file, port)
    let mut entries = Vec::with_capacity(count);
    for i in 0..count {
        let host = hosts.get(i).map(String::as_str).unwrap_or("");
        let addr = addrs.get(i).map(String::as_str);
        let port = ports
            .get(i)
            .or(ports.first())
            .map(String::as_str)
            .unwrap_or("");
        let (connect_host, pgpass_host) = match (host, addr) {
            ("", None) => {
                let dir = socket_dir.display().to_string();
                (dir.clone(), dir)
            }
            ("", Some(addr)) => {
                // The driver needs a host name for TLS; libpq checks none
                // unless asked to, and then refuses.
                if mode == SslMode::VerifyFull {
                    return Err(bad_input(format!(
                        "host name must be specified for a verified SSL connection \
                         (hostaddr {addr} has no host): add host=NAME as the certificate names it"
                    )));
                }
                (addr.to_string(), addr.to_string())
            }
            (host, _) => (host.to_string(), host.to_string()),
        };
        config.host(&connect_host);
        if let Some(addr) = addr {
            // Checked by conninfo: a numeric address.
            let ip = addr
                .parse()
                .map_err(|_| bad_input(format!("invalid hostaddr \"{addr}\"")))?;
            config.hostaddr(ip);
        }
        entries.push((connect_host, pgpass_host, port.to_string()));
    }
    if ports.is_empty() {
        config.port(5432);
    }
    for port in &ports {
        config.port(if port.is_empty() {
            5432
        } else {
            // Checked by conninfo.
            port.trim_end().parse().unwrap_or(5432)
        });
    }

    let user = match info.value("user") {
        Some(u) => u.to_string(),
        None => env.user_name().ok_or_else(|| {
            environment("could not look up the local user name for the default user")
        })?,
    };
    let dbname = info.value("dbname").unwrap_or(&user).to_string();
    config.user(&user).dbname(&dbname);

    let mut passfile_used = None;
    if let Some(password) = info.value("password") {
        config.password(password);
    } else {
        let passfile = info
            .value("passfile")
            .map(PathBuf::from)
            .or_else(|| env.home().map(|h| h.join(".pgpass")));
        if let Some(path) = passfile {
            for (_, pgpass_host, port) in &entries {
                let wanted = pgpass::Wanted {
                    host: pgpass_host,
                    port,
                    dbname: &dbname,
                    user: &user,
                };
                match pgpass::lookup(&path, wanted, &socket_dir) {
                    Lookup::Found(password) => {
                        config.password(password);
                        passfile_used = Some(path.clone());
                        break;
                    }
                    Lookup::NotFound => {}
                    Lookup::Ignored(warning) => {
                        // libpq prints this on stderr and goes on without it.
                        crate::errln!("{warning}");
                        break;
                    }
                }
            }
        }
    }

    if let Some(options) = info.value("options") {
        config.options(options);
    }
    let app = info
        .value("application_name")
        .or_else(|| info.value("fallback_application_name"))
        .unwrap_or("poolbench");
    config.application_name(app);
    // libpq: 0, negative or absent waits forever, and 1 means 2. A benchmark
    // must not hang, so absent or <= 0 is poolbench's default bound.
    let timeout = match seconds(info, "connect_timeout") {
        Some(n) if n > 0 => Duration::from_secs(n.max(2) as u64),
        _ => DEFAULT_CONNECT_TIMEOUT,
    };
    config.connect_timeout(timeout);
    if info.value("keepalives") == Some("0") {
        config.keepalives(false);
    }
    if let Some(n) = seconds(info, "keepalives_idle").filter(|n| *n > 0) {
        config.keepalives_idle(Duration::from_secs(n as u64));
    }
    if let Some(n) = seconds(info, "keepalives_interval").filter(|n| *n > 0) {
        config.keepalives_interval(Duration::from_secs(n as u64));
    }
    if let Some(n) = seconds(info, "keepalives_count").filter(|n| *n > 0) {
        config.keepalives_retries(u32::try_from(n).unwrap_or(u32::MAX));
    }
    // libpq's tcp_user_timeout is in milliseconds.
    if let Some(n) = seconds(info, "tcp_user_timeout").filter(|n| *n > 0) {
        config.tcp_user_timeout(Duration::from_millis(n as u64));
    }
    match info.value("channel_binding") {
        Some("disable") => config.channel_binding(ChannelBinding::Disable),
        Some("require") => config.channel_binding(ChannelBinding::Require),
        _ => config.channel_binding(ChannelBinding::Prefer),
    };
    match info.value("target_session_attrs") {
        Some("read-write") => config.target_session_attrs(TargetSessionAttrs::ReadWrite),
        Some("read-only") => config.target_session_attrs(TargetSessionAttrs::ReadOnly),
        _ => config.target_session_attrs(TargetSessionAttrs::Any),
    };
    if info.value("load_balance_hosts") == Some("random") {
        config.load_balance_hosts(LoadBalanceHosts::Random);
    }
    if info.value("sslnegotiation") == Some("direct") {
        if !matches!(
            mode,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
        ) {
            return Err(bad_input(format!(
                "weak sslmode \"{}\" may not be used with sslnegotiation=direct (use \"require\", \"verify-ca\", or \"verify-full\")",
                mode.as_str()
            )));
        }
        config.ssl_negotiation(SslNegotiation::Direct);
    }
    config.ssl_mode(mode.driver());

    // TLS is never used over Unix-domain sockets (by libpq either), so
    // their certificates are not even loaded then.
    let all_sockets = entries.iter().all(|(h, _, _)| h.starts_with('/'));
    let tls = tls::build(&TlsOptions {
        mode: if all_sockets { SslMode::Disable } else { mode },
        rootcert: info.value("sslrootcert").map(str::to_string),
        cert: info.value("sslcert").map(str::to_string),
        key: info.value("sslkey").map(str::to_string),
        key_password: info.get("sslpassword").map(str::to_string),
        no_client_cert: info.value("sslcertmode") == Some("disable"),
        sni: info.value("sslsni") != Some("0"),
        min_version: info.value("ssl_min_protocol_version").map(str::to_string),
        max_version: info.value("ssl_max_protocol_version").map(str::to_string),
        home: env.home(),
    })?;
    let server_view = super::server_view_of(&config);
    Ok(Target::with_details(
        config,
        tls.connector,
        Details {
            ssl_mode: mode,
            rootcert: tls.rootcert,
            client_cert: tls.client_cert,
            passfile: passfile_used,
            source: source.label(),
            server_view,
            setup_log: None,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::super::environment::fake::FakeEnvironment;
    use super::*;
    use crate::error::{kind_of, Kind};
    use std::os::unix::fs::PermissionsExt;
    use tokio_postgres::config::Host;

    fn target(found: Found) -> Target {
        match found {
            Found::Target(t) => *t,
            Found::Embedded(s) => panic!("embedded ({s:?})"),
        }
    }

    #[test]
    fn order_flag_scenario_database_url_environment_embedded() {
        let path = Path::new("s.toml");
        let env = FakeEnvironment::new(&[
            ("DATABASE_URL", "postgres://u@from-url/db"),
            ("PGHOST", "from-env"),
        ]);
        let all = Request {
            flag: Some("host=from-flag user=u"),
            scenario: Some(("host=from-scenario user=u", path)),
            embedded: false,
        };
        let host = |t: &Target| match &t.config().get_hosts()[0] {
            Host::Tcp(h) => h.clone(),
            Host::Unix(p) => p.display().to_string(),
        };
        let t = target(find(&all, &env).unwrap());
        assert_eq!((host(&t), t.source()), ("from-flag".into(), "--dsn"));
        let t = target(find(&Request { flag: None, ..all }, &env).unwrap());
        assert_eq!(
            (host(&t), t.source()),
            ("from-scenario".into(), "[database].dsn")
        );
        let t = target(find(&Request::default(), &env).unwrap());
        assert_eq!((host(&t), t.source()), ("from-url".into(), "DATABASE_URL"));
        let env = FakeEnvironment::new(&[("PGHOST", "from-env"), ("PGPORT", "6543")]);
        let t = target(find(&Request::default(), &env).unwrap());
        assert_eq!((host(&t), t.source()), ("from-env".into(), "PGHOST,PGPORT"));
        assert_eq!(t.config().get_ports(), [6543]);
        // Only the target variables select the environment: PGPASSWORD or
        // PGSSLMODE alone do not.
        let env = FakeEnvironment::new(&[("PGPASSWORD", "x"), ("PGSSLMODE", "require")]);
        assert!(matches!(
            find(&Request::default(), &env).unwrap(),
            Found::Embedded(Source::Embedded)
        ));
        let forced = Request {
            embedded: true,
            ..all
        };
        assert!(matches!(
            find(&forced, &env).unwrap(),
            Found::Embedded(Source::ForcedEmbedded)
        ));
    }

    #[test]
    fn libpq_defaults_fill_what_the_dsn_leaves_out() {
        let env = FakeEnvironment::new(&[
            ("PGPORT", "6543"),
            ("PGPASSWORD", "from-env"),
            ("PGAPPNAME", "checkout"),
            ("PGCONNECT_TIMEOUT", "1"),
            ("PGSSLMODE", "require"),
            ("PGUSER", "bob"),
        ]);
        let t = resolve("postgres://db.internal/shop?port=5433", Source::Flag, &env).unwrap();
        let c = t.config();
        assert_eq!(c.get_ports(), [5433], "the DSN wins over PGPORT");
        assert_eq!(c.get_user(), Some("bob"));
        assert_eq!(c.get_dbname(), Some("shop"));
        assert_eq!(c.get_password(), Some(&b"from-env"[..]));
        assert_eq!(c.get_application_name(), Some("checkout"));
        assert_eq!(
            c.get_connect_timeout(),
            Some(&Duration::from_secs(2)),
            "libpq: 1 means 2"
        );
        assert_eq!(t.ssl_mode(), "require");

        // Nothing at all: the default socket, the OS user, its database.
        let env = FakeEnvironment::new(&[]);
        let t = resolve("", Source::Flag, &env).unwrap();
        assert_eq!(t.config().get_hosts(), [Host::Unix(default_socket_dir())]);
        assert_eq!(t.config().get_ports(), [5432]);
        assert_eq!(t.config().get_user(), Some("alice"));
        assert_eq!(t.config().get_dbname(), Some("alice"));
        assert_eq!(t.ssl_mode(), "prefer");
        assert_eq!(t.config().get_application_name(), Some("poolbench"));
    }

    #[test]
    fn variables_are_checked_and_named() {
        let env = FakeEnvironment::new(&[("PGHOST", "h"), ("PGSSLMODE", "sometimes")]);
        let e = find(&Request::default(), &env).unwrap_err();
        assert_eq!(kind_of(&e), Some(Kind::BadInput));
        let text = format!("{e:#}");
        assert!(
            text.contains("PGSSLMODE") && text.contains("verify-full"),
            "{text}"
        );
        let e = resolve("host=h sslcrl=x", Source::Flag, &FakeEnvironment::new(&[])).unwrap_err();
        assert!(format!("{e:#}").contains("invalid DSN in --dsn: option \"sslcrl\""));
        let e = resolve(
            "host=a,b port=1,2,3",
            Source::Scenario("x.toml".into()),
            &FakeEnvironment::new(&[]),
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("could not match 3 port numbers to 2 hosts"));
        let e = resolve(
            "hostaddr=127.0.0.1 sslmode=verify-full",
            Source::Flag,
            &FakeEnvironment::new(&[]),
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("host name must be specified"));
    }

    #[test]
    fn the_password_file_fills_a_missing_password() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pgpass");
        std::fs::write(&file, "db.internal:5432:shop:app:from-file\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let env = FakeEnvironment::new(&[("PGPASSFILE", file.to_str().unwrap())]);
        let t = resolve("postgres://app@db.internal/shop", Source::Flag, &env).unwrap();
        assert_eq!(t.config().get_password(), Some(&b"from-file"[..]));
        assert_eq!(t.passfile(), Some(file.as_path()));
        // A password given anywhere else wins over the file.
        let t = resolve("postgres://app:given@db.internal/shop", Source::Flag, &env).unwrap();
        assert_eq!(t.config().get_password(), Some(&b"given"[..]));
        assert_eq!(t.passfile(), None);
        // ~/.pgpass is the default.
        let mut env = FakeEnvironment::new(&[]);
        std::fs::copy(&file, dir.path().join(".pgpass")).unwrap();
        std::fs::set_permissions(
            dir.path().join(".pgpass"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        env.home = Some(dir.path().to_path_buf());
        let t = resolve("host=db.internal user=app dbname=shop", Source::Flag, &env).unwrap();
        assert_eq!(t.config().get_password(), Some(&b"from-file"[..]));
    }

    #[test]
    fn a_service_comes_before_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("services");
        std::fs::write(&file, "[shop]\nhost=svc.internal\nport=7000\n").unwrap();
        let env = FakeEnvironment::new(&[
            ("PGSERVICEFILE", file.to_str().unwrap()),
            ("PGSERVICE", "shop"),
            ("PGPORT", "6543"),
            ("PGUSER", "app"),
        ]);
        let t = target(find(&Request::default(), &env).unwrap());
        assert_eq!(t.source(), "PGPORT,PGUSER,PGSERVICE");
        assert_eq!(t.config().get_hosts(), [Host::Tcp("svc.internal".into())]);
        assert_eq!(t.config().get_ports(), [7000]);
        assert_eq!(t.config().get_user(), Some("app"));
    }
}
