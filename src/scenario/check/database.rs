//! `[database]` (its `dsn`, checked without connecting), `[database.embedded]`
//! (the server poolbench starts) and `[setup]` (the SQL run once before the
//! first strategy).

use crate::scenario::model::{
    AuthMethod, ChannelBindingLever, DatabaseSettings, EmbeddedEngine, EmbeddedSettings,
    SslNegotiationLever, TlsVersion, MARIADB_MAX_CONNECTIONS,
};
use crate::scenario::raw::{Given, RawDatabase, RawEmbedded, RawSetup, Table};

use super::checker::Checker;

/// PostgreSQL refuses a larger `max_connections` (MAX_BACKENDS).
const PG_MAX_CONNECTIONS: i64 = 262_143;

/// PostgreSQL's range of `scram_iterations`.
const SCRAM_ITERATIONS: (i64, i64) = (1, i32::MAX as i64);

/// A `dsn` checked without connecting: MySQL's (`mysql://`) or libpq's.
fn check_dsn(dsn: &str) -> Result<(), String> {
    if dsn.trim_start().starts_with("mysql://") {
        crate::backend::mysql::dsn::check(dsn)
    } else {
        crate::backend::postgres::resolve::check_dsn(dsn).map_err(|e| e.to_string())
    }
}

impl Checker<'_> {
    pub(super) fn database(&mut self, raw: Option<Given<Table<RawDatabase>>>) -> DatabaseSettings {
        let Some(raw) = raw else {
            return DatabaseSettings {
                dsn: None,
                embedded: EmbeddedSettings::default(),
            };
        };
        let raw = raw.into_inner().into_inner();
        let dsn = raw.dsn.and_then(|dsn| {
            if dsn.get_ref().trim().is_empty() {
                self.error(
                    dsn.origin(),
                    "`dsn` is empty; remove it to use DATABASE_URL or the embedded server",
                );
                None
            } else if let Err(e) = check_dsn(dsn.get_ref()) {
                // The message names the option, never a password's value;
                // the line itself is not quoted, since it may hold one.
                self.error_unquoted(dsn.origin(), format!("invalid `dsn`: {e}"));
                None
            } else {
                Some(dsn.into_inner())
            }
        });
        let mut embedded = EmbeddedSettings::default();
        if let Some(raw) = raw.embedded {
            let raw = raw.into_inner();
            if let Some(engine) = &raw.engine {
                match EmbeddedEngine::parse(engine.get_ref()) {
                    Some(e) => embedded.engine = e,
                    None => self.error(
                        engine.origin(),
                        format!(
                            "unknown `engine` {:?}: expected \"postgresql\" or \"mariadb\"",
                            engine.get_ref()
                        ),
                    ),
                }
            }
            if let Some(auth) = &raw.auth {
                match AuthMethod::parse(auth.get_ref()) {
                    Some(method) => embedded.auth = method,
                    None => self.error(
                        auth.origin(),
                        format!(
                            "unknown `auth` method {:?}: expected \"scram-sha-256\", \"md5\", \"password\" or \"trust\"",
                            auth.get_ref()
                        ),
                    ),
                }
            }
            if let Some(tls) = &raw.tls {
                embedded.tls = *tls.get_ref();
            }
            self.levers(&raw, &mut embedded);
            if let Some(max) = &raw.max_connections {
                let (lo, hi) = match embedded.engine {
                    EmbeddedEngine::Postgresql => (1, PG_MAX_CONNECTIONS),
                    EmbeddedEngine::Mariadb => MARIADB_MAX_CONNECTIONS,
                };
                if let Some(max) = self.int_in("max_connections", max, lo, hi) {
                    embedded.max_connections =
                        u32::try_from(max).unwrap_or(embedded.max_connections);
                }
            }
        }
        DatabaseSettings { dsn, embedded }
    }

    /// The levers of a connection's cost: `scram_iterations`,
    /// `tls_version`, `sslnegotiation`, `channel_binding`.
    fn levers(&mut self, raw: &RawEmbedded, embedded: &mut EmbeddedSettings) {
        if embedded.engine == EmbeddedEngine::Mariadb {
            // PostgreSQL's levers: on MariaDB they would be silently ignored.
            let given = [
                (
                    "scram_iterations",
                    raw.scram_iterations.as_ref().map(|v| v.origin()),
                ),
                ("tls_version", raw.tls_version.as_ref().map(|v| v.origin())),
                (
                    "sslnegotiation",
                    raw.sslnegotiation.as_ref().map(|v| v.origin()),
                ),
                (
                    "channel_binding",
                    raw.channel_binding.as_ref().map(|v| v.origin()),
                ),
            ];
            for (key, at) in given {
                if let Some(at) = at {
                    self.error(
                        at,
                        format!(
                            "`{key}` is a lever of the embedded PostgreSQL; \
                             the embedded MariaDB (`engine = \"mariadb\"`) has no such setting"
                        ),
                    );
                }
            }
            return;
        }
        if let Some(n) = &raw.scram_iterations {
            let (lo, hi) = SCRAM_ITERATIONS;
            if let Some(n) = self.int_in("scram_iterations", n, lo, hi) {
                embedded.scram_iterations = u32::try_from(n).ok();
            }
        }
        if let Some(v) = &raw.tls_version {
            match TlsVersion::parse(v.get_ref()) {
                Some(v) => embedded.tls_version = Some(v),
                None => self.error(
                    v.origin(),
                    format!(
                        "unknown `tls_version` {:?}: expected \"1.2\" or \"1.3\"",
                        v.get_ref()
                    ),
                ),
            }
        }
        if let Some(n) = &raw.sslnegotiation {
            match n.get_ref().as_str() {
                "postgres" => embedded.sslnegotiation = SslNegotiationLever::Postgres,
                "direct" if !embedded.tls => self.error(
                    n.origin(),
                    "`sslnegotiation = \"direct\"` starts TLS at once, but `tls = false`",
                ),
                "direct" => embedded.sslnegotiation = SslNegotiationLever::Direct,
                other => self.error(
                    n.origin(),
                    format!(
                        "unknown `sslnegotiation` {other:?}: expected \"postgres\" or \"direct\""
                    ),
                ),
            }
        }
        if let Some(c) = &raw.channel_binding {
            embedded.channel_binding = match c.get_ref().as_str() {
                "prefer" => ChannelBindingLever::Prefer,
                "require" => ChannelBindingLever::Require,
                "disable" => ChannelBindingLever::Disable,
                other => {
                    self.error(
                        c.origin(),
                        format!(
                            "unknown `channel_binding` {other:?}: expected \"prefer\", \"require\" or \"disable\""
                        ),
                    );
                    return;
                }
            };
        }
    }

    /// `[setup]`'s `sql`.
    pub(super) fn setup(&mut self, setup: Given<Table<RawSetup>>) -> Option<String> {
        let at = setup.origin();
        match setup.into_inner().into_inner().sql {
            Some(sql) => self.sql_text("`[setup]` `sql`", &sql),
            None => {
                self.error(
                    at,
                    "`[setup]` needs `sql`, run once before the first strategy",
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{errors, first_error, flags, ok, BASE};
    use crate::scenario::model::{
        AuthMethod, ChannelBindingLever, EmbeddedEngine, SslNegotiationLever, TlsVersion,
    };
    use crate::scenario::TargetHint;

    fn with(table: &str) -> String {
        format!("{table}\n{BASE}")
    }

    #[test]
    fn database_keys_reach_the_settings() {
        let db = ok(
            &with(
                "[database]\ndsn = \"postgres://app@db/app\"\n[database.embedded]\n\
                 auth = \"md5\"\ntls = false\nmax_connections = 262143",
            ),
            &flags(),
        )
        .database;
        assert_eq!(db.dsn.as_deref(), Some("postgres://app@db/app"));
        assert_eq!(db.embedded.auth, AuthMethod::Md5);
        assert!(!db.embedded.tls);
        assert_eq!(db.embedded.max_connections, 262_143);
        let db = ok(
            &with(
                "[database.embedded]\nauth = \"password\"\nscram_iterations = 1024\n\
                 tls_version = \"1.2\"\nsslnegotiation = \"direct\"\nchannel_binding = \"require\"",
            ),
            &flags(),
        )
        .database;
        assert_eq!(db.embedded.auth, AuthMethod::Password);
        assert_eq!(db.embedded.scram_iterations, Some(1024));
        assert_eq!(db.embedded.tls_version, Some(TlsVersion::Tls12));
        assert_eq!(db.embedded.sslnegotiation, SslNegotiationLever::Direct);
        assert_eq!(db.embedded.channel_binding, ChannelBindingLever::Require);
        let db = ok(&with("[database.embedded]\nengine = \"mariadb\""), &flags()).database;
        assert_eq!(db.embedded.engine, EmbeddedEngine::Mariadb);
        let none = TargetHint::default();
        assert!(db.is_mysql(&none));
        let file = ok(&with("[database]\ndsn = \"mysql://u@h/d\""), &flags()).database;
        assert!(file.is_mysql(&none));
        // The first DSN given decides: --dsn, the file's, DATABASE_URL.
        let flag = |m| TargetHint {
            flag_is_mysql: Some(m),
            ..TargetHint::default()
        };
        assert!(!file.is_mysql(&flag(false)));
        let env = |m| TargetHint {
            env_is_mysql: Some(m),
            ..TargetHint::default()
        };
        assert!(file.is_mysql(&env(false)));
        let plain = ok(&with(""), &flags()).database;
        assert!(plain.is_mysql(&flag(true)));
        assert!(plain.is_mysql(&env(true)));
        assert!(!plain.is_mysql(&TargetHint {
            embedded: true,
            ..flag(true)
        }));
    }

    #[test]
    fn database_errors_point_at_the_value() {
        assert_eq!(
            first_error(&with("[database]\ndsn = \" \"")),
            "t.toml:2:7: `dsn` is empty; remove it to use DATABASE_URL or the embedded server"
        );
        // An invalid dsn is not quoted: it may hold a password.
        let e = errors(
            &with("[database]\ndsn = \"postgres://u:hunter2@h/d?bogus=1\""),
            &flags(),
        );
        assert!(e.starts_with("t.toml:2:7: invalid `dsn`: "), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        assert_eq!(
            first_error(&with("[database.embedded]\nengine = \"oracle\"")),
            "t.toml:2:10: unknown `engine` \"oracle\": expected \"postgresql\" or \"mariadb\""
        );
        assert_eq!(
            first_error(&with("[database.embedded]\nauth = \"ldap\"")),
            "t.toml:2:8: unknown `auth` method \"ldap\": expected \"scram-sha-256\", \"md5\", \
             \"password\" or \"trust\""
        );
        assert_eq!(
            first_error(&with(
                "[database.embedded]\nengine = \"mariadb\"\nscram_iterations = 1024"
            )),
            "t.toml:3:20: `scram_iterations` is a lever of the embedded PostgreSQL; \
             the embedded MariaDB (`engine = \"mariadb\"`) has no such setting"
        );
        assert_eq!(
            first_error(&with("[database.embedded]\nscram_iterations = 0")),
            "t.toml:2:20: `scram_iterations` must be at least 1, found 0"
        );
        assert_eq!(
            first_error(&with("[database.embedded]\ntls_version = \"1.1\"")),
            "t.toml:2:15: unknown `tls_version` \"1.1\": expected \"1.2\" or \"1.3\""
        );
        assert_eq!(
            first_error(&with(
                "[database.embedded]\ntls = false\nsslnegotiation = \"direct\""
            )),
            "t.toml:3:18: `sslnegotiation = \"direct\"` starts TLS at once, but `tls = false`"
        );
        assert_eq!(
            first_error(&with("[database.embedded]\nchannel_binding = \"maybe\"")),
            "t.toml:2:19: unknown `channel_binding` \"maybe\": expected \"prefer\", \
             \"require\" or \"disable\""
        );
        assert_eq!(
            first_error(&with("[database.embedded]\nmax_connections = 262144")),
            "t.toml:2:19: `max_connections` must be at most 262143, found 262144"
        );
        // MariaDB's own range.
        assert_eq!(
            first_error(&with(
                "[database.embedded]\nengine = \"mariadb\"\nmax_connections = 9"
            )),
            "t.toml:3:19: `max_connections` must be at least 10, found 9"
        );
    }

    #[test]
    fn setup_needs_sql_that_is_not_blank() {
        let s = ok(
            &with("[setup]\nsql = \"CREATE TABLE t (id int)\""),
            &flags(),
        );
        assert_eq!(s.setup_sql.as_deref(), Some("CREATE TABLE t (id int)"));
        assert_eq!(
            errors(&with("[setup]\nsql = \"  \""), &flags())
                .lines()
                .next(),
            Some("t.toml:2:7: `[setup]` `sql` is blank")
        );
        assert!(errors(&with("[setup]"), &flags())
            .starts_with("t.toml:1:1: `[setup]` needs `sql`, run once before the first strategy"));
    }
}
