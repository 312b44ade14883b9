//! A pool strategy's lifecycle keys (`like`, `max_lifetime`,
//! `lifetime_jitter`, `idle_timeout`, `min_idle`, `check`, `check_query`,
//! `reset`, `keepalive`): the preset `like` names first, then each key
//! given beside it in its place.

use std::time::Duration;

use crate::scenario::lifecycle::{Check, CheckQuery, Library, Lifecycle, Reset};
use crate::scenario::limits::{MAX_POOL_SIZE, MAX_TIMEOUT};
use crate::scenario::raw::{Given, Node, RawStrategy};

use super::checker::Checker;

/// The shortest lifetime, idle timeout or keepalive: a storm is shown in a
/// 20-second run with seconds, and anything much shorter would measure the
/// background task's tick.
const MIN_LIFECYCLE: Duration = Duration::from_millis(100);

impl Checker<'_> {
    /// The lifecycle of a pool of `max_size` (None when it was refused).
    pub(super) fn lifecycle(&mut self, raw: &RawStrategy, max_size: usize) -> Option<Lifecycle> {
        let mut ok = true;
        let mut l = match &raw.like {
            None => Lifecycle::default(),
            Some(like) => match Library::parse(like.get_ref()) {
                Some(library) => library.defaults(max_size),
                None => {
                    let names: Vec<_> = Library::ALL.iter().map(|l| l.as_str()).collect();
                    self.error(
                        like.origin(),
                        format!(
                            "unknown `like` {:?}: expected one of {}",
                            like.get_ref(),
                            names.join(", ")
                        ),
                    );
                    ok = false;
                    Lifecycle::default()
                }
            },
        };
        let mut span = |key: &str, v: &Option<Given<String>>, slot: &mut Option<Duration>| {
            if let Some(v) = v {
                if is_off(v.get_ref()) {
                    *slot = None;
                } else {
                    match self.duration_in(key, v, MIN_LIFECYCLE, MAX_LIFECYCLE, "") {
                        Some(d) => *slot = Some(d),
                        None => ok = false,
                    }
                }
            }
        };
        span("max_lifetime", &raw.max_lifetime, &mut l.max_lifetime);
        span("idle_timeout", &raw.idle_timeout, &mut l.idle_timeout);
        span("keepalive", &raw.keepalive, &mut l.keepalive);
        if let Some(j) = &raw.lifetime_jitter {
            match fraction(j.get_ref()) {
                Some(f) => l.lifetime_jitter = f,
                None => {
                    self.error(
                        j.origin(),
                        format!(
                            "`lifetime_jitter` is a fraction of `max_lifetime` from 0.0 to 1.0 \
                             (0.025 = HikariCP's 2.5%), found {}",
                            shown(j.get_ref())
                        ),
                    );
                    ok = false;
                }
            }
        }
        if let Some(m) = &raw.min_idle {
            match self.int_in("min_idle", m, 0, MAX_POOL_SIZE as i64) {
                Some(n) => l.min_idle = usize::try_from(n).unwrap_or(0).min(max_size),
                None => ok = false,
            }
        }
        if let Some(c) = &raw.check {
            match self.check(c) {
                Some(c) => l.check = c,
                None => ok = false,
            }
        }
        if let Some(q) = &raw.check_query {
            match q.get_ref().trim() {
                "" => l.check_query = CheckQuery::Empty,
                s if s.eq_ignore_ascii_case("SELECT 1") => l.check_query = CheckQuery::Select1,
                other => {
                    self.error(
                        q.origin(),
                        format!(
                            "`check_query` {other:?}: expected \"SELECT 1\" or \"\" (the empty \
                             query)"
                        ),
                    );
                    ok = false;
                }
            }
        }
        if let Some(r) = &raw.reset {
            match self.reset(r) {
                Some(r) => l.reset = r,
                None => ok = false,
            }
        }
        if let (Some(lifetime), Some(keepalive)) = (l.max_lifetime, l.keepalive) {
            if keepalive >= lifetime {
                match &raw.keepalive {
                    Some(given) => {
                        self.error(
                            given.origin(),
                            "`keepalive` must be shorter than `max_lifetime` (a connection is \
                             replaced before it would be kept alive)",
                        );
                        ok = false;
                    }
                    // A preset's keepalive under a shorter lifetime given
                    // beside it: off, as HikariCP turns it off.
                    None => l.keepalive = None,
                }
            }
        }
        if self.mysql && !self.reset_on_mysql(raw, &l.reset) {
            ok = false;
        }
        ok.then_some(l)
    }

    /// `discard_all` and `asyncpg` are PostgreSQL's statements (DISCARD
    /// ALL; asyncpg's CLOSE ALL, UNLISTEN, RESET ALL…), which MySQL and
    /// MariaDB do not have: refused where they were set (`reset`, or the
    /// `like` preset that brought it), rather than failing every release.
    /// Not mapped to COM_RESET_CONNECTION: that is another reset, with
    /// another cost, and a list of statements says what to send.
    fn reset_on_mysql(&mut self, raw: &RawStrategy, reset: &Reset) -> bool {
        let what = match reset {
            Reset::DiscardAll => "`reset = \"discard_all\"` is PostgreSQL's DISCARD ALL",
            Reset::Asyncpg => {
                "`reset = \"asyncpg\"` is asyncpg's PostgreSQL reset (pg_advisory_unlock_all, \
                 CLOSE ALL, UNLISTEN *, RESET ALL)"
            }
            Reset::None | Reset::Statements(_) => return true,
        };
        let (at, what) = match (&raw.reset, &raw.like) {
            (Some(given), _) => (given.origin(), what.to_string()),
            (None, Some(like)) => (
                like.origin(),
                format!(
                    "`like = {:?}` resets each connection given back: {what}",
                    like.get_ref()
                ),
            ),
            (None, None) => return true,
        };
        self.error(
            at,
            format!(
                "{what}, which MySQL and MariaDB do not have; give the statements to send on \
                 release instead, e.g. reset = [\"ROLLBACK\"] (docs/pools.md)"
            ),
        );
        false
    }

    /// `"never"`, `"always"` or `{ if_idle_over = "1s" }`.
    fn check(&mut self, c: &Given<Node>) -> Option<Check> {
        const EXPECTED: &str =
            "expected \"never\", \"always\" or { if_idle_over = \"1s\" } (a connection idle longer)";
        match c.get_ref() {
            Node::String(s) if s == "never" => Some(Check::Never),
            Node::String(s) if s == "always" => Some(Check::Always),
            Node::Table(keys) if keys.len() == 1 && keys[0].0.get_ref() == "if_idle_over" => {
                match keys[0].1.get_ref() {
                    Node::String(d) => {
                        let d = Given::at(d.clone(), keys[0].1.origin());
                        self.duration_in("if_idle_over", &d, Duration::ZERO, MAX_TIMEOUT, "")
                            .map(Check::IfIdleOver)
                    }
                    other => {
                        self.error(
                            keys[0].1.origin(),
                            format!(
                                "`if_idle_over` is a duration such as \"1s\", found {}",
                                other.type_name()
                            ),
                        );
                        None
                    }
                }
            }
            other => {
                self.error(
                    c.origin(),
                    format!("`check` = {}: {EXPECTED}", shown(other)),
                );
                None
            }
        }
    }

    /// `"none"`, `"discard_all"`, `"asyncpg"` or a list of statements.
    fn reset(&mut self, r: &Given<Node>) -> Option<Reset> {
        match r.get_ref() {
            Node::String(s) if s == "none" => Some(Reset::None),
            Node::String(s) if s == "discard_all" => Some(Reset::DiscardAll),
            Node::String(s) if s == "asyncpg" => Some(Reset::Asyncpg),
            Node::Array(items) if !items.is_empty() && items.len() <= MAX_RESET_STATEMENTS => {
                let mut statements = Vec::with_capacity(items.len());
                for item in items {
                    match item.get_ref() {
                        Node::String(sql) if !sql.trim().is_empty() => statements.push(sql.clone()),
                        other => {
                            self.error(
                                item.origin(),
                                format!(
                                    "each `reset` statement is SQL text, found {}",
                                    shown(other)
                                ),
                            );
                            return None;
                        }
                    }
                }
                Some(Reset::Statements(statements))
            }
            other => {
                self.error(
                    r.origin(),
                    format!(
                        "`reset` = {}: expected \"none\", \"discard_all\", \"asyncpg\" or a list \
                         of 1 to {MAX_RESET_STATEMENTS} statements",
                        shown(other)
                    ),
                );
                None
            }
        }
    }
}

/// The longest lifetime, idle timeout or keepalive: a day.
const MAX_LIFECYCLE: Duration = Duration::from_secs(24 * 3600);

/// At most this many statements in a `reset` list.
const MAX_RESET_STATEMENTS: usize = 16;

/// `"off"` (or `"none"`) turns off what a preset set.
fn is_off(s: &str) -> bool {
    matches!(s, "off" | "none")
}

fn fraction(n: &Node) -> Option<f64> {
    let f = match n {
        Node::Float(f) => *f,
        Node::Int(i) => *i as f64,
        _ => return None,
    };
    (0.0..=1.0).contains(&f).then_some(f)
}

/// A value as a message shows it.
fn shown(n: &Node) -> String {
    match n {
        Node::String(s) => format!("{s:?}"),
        Node::Int(i) => i.to_string(),
        Node::Float(f) => f.to_string(),
        other => other.type_name().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::fixture::{first_error, flags, ok};
    use crate::scenario::model::StrategyKind;
    use crate::scenario::{Check, CheckQuery, Library, Lifecycle, Reset};

    /// A pool of 10 with `keys`, which start on line 5.
    fn pool(keys: &str) -> String {
        format!(
            "[[strategy]]\nname = \"p\"\nkind = \"pool\"\nmax_size = 10\n{keys}\n\n\
             [[query]]\nname = \"q\"\nsql = \"SELECT 1\"\n"
        )
    }

    fn lifecycle(keys: &str) -> Lifecycle {
        match ok(&pool(keys), &flags()).strategies.remove(0).kind {
            StrategyKind::Pool(p) => p.lifecycle,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_preset_is_the_start_and_keys_beside_it_override() {
        assert_eq!(lifecycle(""), Lifecycle::default());
        assert_eq!(lifecycle("like = \"sqlx\""), Library::Sqlx.defaults(10));
        let l = lifecycle(
            "like = \"sqlx\"\nmax_lifetime = \"off\"\ncheck = { if_idle_over = \"1s\" }\n\
             check_query = \"SELECT 1\"\nreset = [\"ROLLBACK\", \"RESET ALL\"]\nmin_idle = 99",
        );
        assert_eq!(l.max_lifetime, None);
        assert_eq!(l.idle_timeout, Some(Duration::from_secs(600)));
        assert_eq!(l.check, Check::IfIdleOver(Duration::from_secs(1)));
        assert_eq!(l.check_query, CheckQuery::Select1);
        assert_eq!(
            l.reset,
            Reset::Statements(vec!["ROLLBACK".into(), "RESET ALL".into()])
        );
        // At most the pool.
        assert_eq!(l.min_idle, 10);
        let l = lifecycle("max_lifetime = \"2s\"\nlifetime_jitter = 0.5\nreset = \"discard_all\"");
        assert_eq!(
            (l.max_lifetime, l.lifetime_jitter, l.reset),
            (Some(Duration::from_secs(2)), 0.5, Reset::DiscardAll)
        );
    }

    #[test]
    fn bad_values_are_named_where_they_are() {
        assert_eq!(
            first_error(&pool("like = \"pgx\"")),
            "t.toml:5:8: unknown `like` \"pgx\": expected one of deadpool, sqlx, bb8, hikaricp, \
             asyncpg, sqlalchemy"
        );
        assert_eq!(
            first_error(&pool("lifetime_jitter = 1.5")),
            "t.toml:5:19: `lifetime_jitter` is a fraction of `max_lifetime` from 0.0 to 1.0 \
             (0.025 = HikariCP's 2.5%), found 1.5"
        );
        assert!(first_error(&pool("check = \"sometimes\""))
            .starts_with("t.toml:5:9: `check` = \"sometimes\""));
        assert!(first_error(&pool("reset = []")).starts_with("t.toml:5:9: `reset` = an array"));
        assert!(first_error(&pool("max_lifetime = \"10ms\""))
            .starts_with("t.toml:5:16: `max_lifetime` must be at least 100ms"));
        assert!(
            first_error(&pool("max_lifetime = \"1m\"\nkeepalive = \"2m\""))
                .starts_with("t.toml:6:13: `keepalive` must be shorter than `max_lifetime`")
        );
        // A preset's keepalive under a shorter lifetime: off, as HikariCP.
        let l = lifecycle("like = \"hikaricp\"\nmax_lifetime = \"1m\"");
        assert_eq!(l.keepalive, None);
    }

    #[test]
    fn postgresqls_resets_are_refused_on_mysql_where_they_were_set() {
        // The keys start on line 7 under the MariaDB server's two lines.
        let mysql = |keys: &str| {
            first_error(&format!(
                "[database.embedded]\nengine = \"mariadb\"\n{}",
                pool(keys)
            ))
        };
        let e = mysql("reset = \"discard_all\"");
        assert!(
            e.starts_with("t.toml:7:9: `reset = \"discard_all\"` is PostgreSQL's DISCARD ALL, which MySQL and MariaDB do not have"),
            "{e}"
        );
        let e = mysql("reset = \"asyncpg\"");
        assert!(
            e.starts_with("t.toml:7:9: `reset = \"asyncpg\"` is asyncpg's"),
            "{e}"
        );
        let e = mysql("like = \"asyncpg\"");
        assert!(
            e.starts_with("t.toml:7:8: `like = \"asyncpg\"` resets each connection given back"),
            "{e}"
        );
        // Statements of its own beside the preset, or another preset: fine.
        let mariadb = |keys: &str| {
            ok(
                &format!("[database.embedded]\nengine = \"mariadb\"\n{}", pool(keys)),
                &flags(),
            )
        };
        mariadb("like = \"asyncpg\"\nreset = [\"ROLLBACK\"]");
        mariadb("like = \"sqlalchemy\"");
    }
}
