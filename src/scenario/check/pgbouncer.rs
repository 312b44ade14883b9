//! `[pgbouncer]`: the settings of the PgBouncer poolbench starts for
//! strategies with `via = "pgbouncer"`.

use crate::scenario::model::{PgBouncerSettings, PoolMode};
use crate::scenario::raw::{Given, RawPgBouncer, Table};

use super::checker::Checker;

impl Checker<'_> {
    /// `[pgbouncer]`, its defaults where it (or a key of it) is absent.
    pub(super) fn pgbouncer(
        &mut self,
        raw: Option<Given<Table<RawPgBouncer>>>,
    ) -> PgBouncerSettings {
        let mut settings = PgBouncerSettings::default();
        let Some(raw) = raw else {
            return settings;
        };
        let raw = raw.into_inner().into_inner();
        if let Some(mode) = &raw.pool_mode {
            match mode.get_ref().as_str() {
                "session" => settings.pool_mode = PoolMode::Session,
                "transaction" => settings.pool_mode = PoolMode::Transaction,
                "statement" => settings.pool_mode = PoolMode::Statement,
                other => self.error(
                    mode.origin(),
                    format!(
                        "unknown `pool_mode` {other:?}: expected \"session\", \"transaction\" \
                         or \"statement\""
                    ),
                ),
            }
        }
        if let Some(n) = &raw.default_pool_size {
            if let Some(n) = self.int_in("default_pool_size", n, 1, 100_000) {
                settings.default_pool_size = n as u32;
            }
        }
        if let Some(n) = &raw.max_client_conn {
            if let Some(n) = self.int_in("max_client_conn", n, 1, 1_000_000) {
                settings.max_client_conn = n as u32;
            }
        }
        settings
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{first_error, flags, ok, BASE};
    use crate::scenario::model::{PgBouncerSettings, PoolMode};

    fn with(keys: &str) -> String {
        format!("{BASE}\n[pgbouncer]\n{keys}\n")
    }

    #[test]
    fn pgbouncer_settings_and_their_defaults() {
        assert_eq!(ok(BASE, &flags()).pgbouncer, PgBouncerSettings::default());
        let p = ok(
            &with("pool_mode = \"session\"\ndefault_pool_size = 100000\nmax_client_conn = 1"),
            &flags(),
        )
        .pgbouncer;
        assert_eq!(
            (p.pool_mode, p.default_pool_size, p.max_client_conn),
            (PoolMode::Session, 100_000, 1)
        );
    }

    #[test]
    fn pgbouncer_errors_point_at_the_value() {
        assert_eq!(
            first_error(&with("pool_mode = \"sticky\"")),
            "t.toml:11:13: unknown `pool_mode` \"sticky\": expected \"session\", \
             \"transaction\" or \"statement\""
        );
        assert_eq!(
            first_error(&with("default_pool_size = 0")),
            "t.toml:11:21: `default_pool_size` must be at least 1, found 0"
        );
        assert_eq!(
            first_error(&with("max_client_conn = 1000001")),
            "t.toml:11:19: `max_client_conn` must be at most 1000000, found 1000001"
        );
    }
}
