//! `[[strategy]]`: each strategy's name, kind (`fresh`, or `pool` with its
//! settings), target (`dsn` or `via = "pgbouncer"`) and statement cache;
//! and `--only`, which keeps some of them by name.

use std::collections::HashMap;

use crate::scenario::limits::{MAX_POOL_SIZE, MAX_STRATEGIES, MAX_TIMEOUT, MIN_TIMEOUT};
use crate::scenario::model::{
    PgBouncerSettings, PoolMode, PoolSettings, Recycling, Strategy, StrategyKind, Via,
};
use crate::scenario::raw::{Given, Origin, RawStrategy, Table};

use super::checker::Checker;

impl Checker<'_> {
    /// The strategies in file order, those `only` names when it names any.
    pub(super) fn strategies(
        &mut self,
        raw: Option<Given<Vec<Given<Table<RawStrategy>>>>>,
        pgbouncer: &PgBouncerSettings,
        only: &[Given<String>],
    ) -> Vec<Strategy> {
        let Some(raw) = raw else {
            self.error(
                0..0,
                "no `[[strategy]]`: a scenario needs at least one, e.g. \
                 `[[strategy]]` with `name = \"per-request\"` and `kind = \"fresh\"`",
            );
            return Vec::new();
        };
        if raw.get_ref().is_empty() {
            self.error(
                raw.origin(),
                "`strategy` is empty: a scenario needs at least one",
            );
        }
        if raw.get_ref().len() > MAX_STRATEGIES {
            self.error(
                raw.get_ref()[MAX_STRATEGIES].origin(),
                format!(
                    "{} strategies, more than {MAX_STRATEGIES}: split the scenario",
                    raw.get_ref().len()
                ),
            );
            return Vec::new();
        }
        // Every name the file gives, valid or not: `--only` is checked
        // against them, so a strategy with a mistake is not also "no such
        // strategy".
        let names: Vec<String> = raw
            .get_ref()
            .iter()
            .filter_map(|s| s.get_ref().name.as_ref().map(|n| n.get_ref().clone()))
            .collect();
        let mut seen: HashMap<String, Origin> = HashMap::new();
        let mut strategies = Vec::new();
        for item in raw.into_inner() {
            if let Some(strategy) = self.strategy(item, pgbouncer, &mut seen) {
                strategies.push(strategy);
            }
        }
        if only.is_empty() {
            return strategies;
        }
        for name in only {
            if !names.contains(name.get_ref()) {
                self.error(
                    name.origin(),
                    format!(
                        "--only {}: no such strategy in {} (it has: {})",
                        name.get_ref(),
                        self.path.display(),
                        names.join(", ")
                    ),
                );
            }
        }
        strategies.retain(|s| only.iter().any(|name| name.get_ref() == &s.name));
        strategies
    }

    fn strategy(
        &mut self,
        item: Given<Table<RawStrategy>>,
        pgbouncer: &PgBouncerSettings,
        seen: &mut HashMap<String, Origin>,
    ) -> Option<Strategy> {
        let at = item.origin();
        let raw = item.into_inner();
        let name = match &raw.name {
            Some(name) => self.dir_name("strategy `name`", name).inspect(|n| {
                self.unique("strategy", seen, n, name.origin());
            }),
            None => {
                self.error(at.clone(), "`[[strategy]]` needs a `name`");
                None
            }
        };
        let kind = self.strategy_kind(&raw, at.clone());
        let dsn = match &raw.dsn {
            Some(d) if d.get_ref().trim().is_empty() => {
                self.error(
                    d.origin(),
                    "`dsn` is empty: give the strategy's target, or remove it",
                );
                None
            }
            Some(d) => Some(d.get_ref().clone()),
            None => None,
        };
        let statement_cache = raw.statement_cache.as_ref().is_none_or(|c| *c.get_ref());
        let via = raw
            .via
            .as_ref()
            .and_then(|via| match via.get_ref().as_str() {
                "pgbouncer" => Some(Via::PgBouncer),
                other => {
                    self.error(
                        via.origin(),
                        format!("unknown `via` {other:?}: expected \"pgbouncer\""),
                    );
                    None
                }
            });
        if let (Some(via), Some(dsn)) = (&raw.via, &raw.dsn) {
            self.error(
                via.origin(),
                format!(
                    "`via` starts a pooler in front of the run's server and `dsn` (line {}) \
                     names another target: give one or the other",
                    self.line_of(&dsn.origin())
                ),
            );
        }
        // Named statements live on one server connection; transaction
        // and statement pooling hand the next statement to any other,
        // and PgBouncer 1.18 (Debian 12's) keeps no prepared statements.
        if via == Some(Via::PgBouncer)
            && statement_cache
            && pgbouncer.pool_mode != PoolMode::Session
        {
            let via_at = raw.via.as_ref().map_or(at, Given::origin);
            self.error(
                via_at,
                format!(
                    "named prepared statements cannot work through PgBouncer's {} pooling: \
                     a statement prepared on one server connection is not there when the \
                     next transaction runs on another (\"prepared statement does not \
                     exist\"); set `statement_cache = false` (unnamed statements, as apps \
                     configure for transaction pooling) or `[pgbouncer] pool_mode = \
                     \"session\"`",
                    pgbouncer.pool_mode.as_str()
                ),
            );
        }
        Some(Strategy {
            name: name?,
            kind: kind?,
            statement_cache,
            dsn,
            via,
        })
    }

    fn strategy_kind(&mut self, raw: &RawStrategy, at: Origin) -> Option<StrategyKind> {
        let Some(kind) = &raw.kind else {
            self.error(
                at,
                "`[[strategy]]` needs `kind = \"fresh\"` (a connection per request) \
                 or `kind = \"pool\"` (deadpool-postgres)",
            );
            return None;
        };
        match kind.get_ref().as_str() {
            "fresh" => {
                let pool_keys = [
                    ("max_size", raw.max_size.as_ref().map(Given::origin)),
                    ("min_size", raw.min_size.as_ref().map(Given::origin)),
                    ("wait_timeout", raw.wait_timeout.as_ref().map(Given::origin)),
                    ("recycling", raw.recycling.as_ref().map(Given::origin)),
                    ("instances", raw.instances.as_ref().map(Given::origin)),
                    ("like", raw.like.as_ref().map(Given::origin)),
                    ("max_lifetime", raw.max_lifetime.as_ref().map(Given::origin)),
                    (
                        "lifetime_jitter",
                        raw.lifetime_jitter.as_ref().map(Given::origin),
                    ),
                    ("idle_timeout", raw.idle_timeout.as_ref().map(Given::origin)),
                    ("min_idle", raw.min_idle.as_ref().map(Given::origin)),
                    ("check", raw.check.as_ref().map(Given::origin)),
                    ("check_query", raw.check_query.as_ref().map(Given::origin)),
                    ("reset", raw.reset.as_ref().map(Given::origin)),
                    ("keepalive", raw.keepalive.as_ref().map(Given::origin)),
                ];
                for (key, value_at) in pool_keys {
                    if let Some(value_at) = value_at {
                        self.error(
                            value_at,
                            format!(
                                "`{key}` only applies to kind = \"pool\"; this strategy is \
                                 kind = \"fresh\" (line {})",
                                self.line_of(&kind.origin())
                            ),
                        );
                    }
                }
                Some(StrategyKind::Fresh)
            }
            "pool" => self.pool(raw, at).map(StrategyKind::Pool),
            other => {
                self.error(
                    kind.origin(),
                    format!(
                        "unknown strategy kind {other:?}: expected \"fresh\" (a connection \
                         per request) or \"pool\" (deadpool-postgres)"
                    ),
                );
                None
            }
        }
    }

    fn pool(&mut self, raw: &RawStrategy, at: Origin) -> Option<PoolSettings> {
        let max_size = match &raw.max_size {
            Some(max) => self.int_in("max_size", max, 1, MAX_POOL_SIZE as i64),
            None => {
                self.error(
                    at,
                    "kind = \"pool\" needs `max_size`, the most connections the pool holds",
                );
                None
            }
        };
        let min_size = match &raw.min_size {
            Some(min) => self.int_in("min_size", min, 0, MAX_POOL_SIZE as i64),
            None => Some(0),
        };
        if let (Some(max), Some(min), Some(min_value)) = (max_size, min_size, &raw.min_size) {
            if min > max {
                self.error(
                    min_value.origin(),
                    format!("`min_size` ({min}) is larger than `max_size` ({max})"),
                );
            }
        }
        let wait_timeout = raw.wait_timeout.as_ref().map(|w| {
            let why = "a pool that does not wait fails every request that finds it busy; \
                       leave `wait_timeout` out to wait as long as it takes";
            self.duration_in("wait_timeout", w, MIN_TIMEOUT, MAX_TIMEOUT, why)
        });
        let recycling = match &raw.recycling {
            None => Some(Recycling::Fast),
            Some(r) => match r.get_ref().as_str() {
                "fast" => Some(Recycling::Fast),
                "verified" => Some(Recycling::Verified),
                "clean" => Some(Recycling::Clean),
                other => {
                    self.error(
                        r.origin(),
                        format!(
                            "unknown `recycling` {other:?}: expected \"fast\", \"verified\" or \"clean\""
                        ),
                    );
                    None
                }
            },
        };
        // A failed `wait_timeout` is Some(None) here: it was reported above.
        let wait_timeout = match wait_timeout {
            None => None,
            Some(Some(d)) => Some(d),
            Some(None) => return None,
        };
        let instances = match &raw.instances {
            Some(n) => self.int_in("instances", n, 1, 1000),
            None => Some(1),
        };
        let max_size = usize::try_from(max_size?).ok()?;
        let lifecycle = self.lifecycle(raw, max_size);
        Some(PoolSettings {
            max_size,
            min_size: usize::try_from(min_size?).ok()?,
            wait_timeout,
            recycling: recycling?,
            instances: usize::try_from(instances?).ok()?,
            lifecycle: lifecycle?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::fixture::{errors, first_error, flags, ok};
    use crate::scenario::model::{Recycling, StrategyKind, Via};
    use crate::scenario::Overrides;

    const QUERY: &str = "[[query]]\nname = \"q\"\nsql = \"SELECT 1\"\n";

    /// One strategy with `keys`, then a query; the keys start on line 2.
    fn one(keys: &str) -> String {
        format!("[[strategy]]\n{keys}\n\n{QUERY}")
    }

    #[test]
    fn kinds_and_their_settings() {
        let s = ok(
            &one(
                "name = \"p\"\nkind = \"pool\"\nmax_size = 10000\nmin_size = 10000\n\
                 wait_timeout = \"250ms\"\nrecycling = \"clean\"\ninstances = 1000",
            ),
            &flags(),
        );
        let StrategyKind::Pool(p) = &s.strategies[0].kind else {
            panic!("{:?}", s.strategies[0])
        };
        assert_eq!(
            (p.max_size, p.min_size, p.instances),
            (10_000, 10_000, 1000)
        );
        assert_eq!(p.wait_timeout, Some(Duration::from_millis(250)));
        assert_eq!(p.recycling, Recycling::Clean);
        let s = ok(
            &format!(
                "[pgbouncer]\npool_mode = \"session\"\n{}",
                one("name = \"f\"\nkind = \"fresh\"\nvia = \"pgbouncer\"")
            ),
            &flags(),
        );
        assert!(matches!(s.strategies[0].kind, StrategyKind::Fresh));
        assert_eq!(s.strategies[0].via, Some(Via::PgBouncer));
        assert!(s.strategies[0].statement_cache);
    }

    #[test]
    fn strategy_errors_point_at_the_value() {
        assert_eq!(
            first_error(&one(
                "name = \"p\"\nkind = \"pool\"\nmax_size = 4\nmin_size = 5"
            )),
            "t.toml:5:12: `min_size` (5) is larger than `max_size` (4)"
        );
        assert_eq!(
            first_error(&one("name = \"p\"\nkind = \"pool\"\nmax_size = 10001")),
            "t.toml:4:12: `max_size` must be at most 10000, found 10001"
        );
        assert_eq!(
            first_error(&one("name = \"p\"\nkind = \"pool\"")),
            "t.toml:1:1: kind = \"pool\" needs `max_size`, the most connections the pool holds"
        );
        assert_eq!(
            first_error(&one("name = \"f\"\nkind = \"fresh\"\nmax_size = 4")),
            "t.toml:4:12: `max_size` only applies to kind = \"pool\"; this strategy is kind = \
             \"fresh\" (line 3)"
        );
        assert_eq!(
            first_error(&one("name = \"f\"\nkind = \"bouncy\"")),
            "t.toml:3:8: unknown strategy kind \"bouncy\": expected \"fresh\" (a connection per \
             request) or \"pool\" (deadpool-postgres)"
        );
        assert_eq!(
            first_error(&one("name = \"p\"\nkind = \"pool\"\nmax_size = 2\nwait_timeout = \"0s\"")),
            "t.toml:5:16: `wait_timeout` must be longer than 0: a pool that does not wait fails \
             every request that finds it busy; leave `wait_timeout` out to wait as long as it takes"
        );
        assert_eq!(
            first_error(&one(
                "name = \"f\"\nkind = \"fresh\"\nvia = \"pgbouncer\"\ndsn = \"host=h\""
            )),
            "t.toml:4:7: `via` starts a pooler in front of the run's server and `dsn` (line 5) \
             names another target: give one or the other"
        );
        assert!(first_error(&one("name = \"f\"\nkind = \"fresh\"\nvia = \"pgbouncer\""))
            .starts_with("t.toml:4:7: named prepared statements cannot work through PgBouncer's transaction pooling"));
        let twice = format!(
            "[[strategy]]\nname = \"a\"\nkind = \"fresh\"\n{}",
            one("name = \"a\"\nkind = \"fresh\"")
        );
        assert_eq!(
            first_error(&twice),
            "t.toml:5:8: strategy name `a` is used twice (first on line 2)"
        );
        assert!(first_error(QUERY).starts_with("t.toml:1:1: no `[[strategy]]`"));
    }

    #[test]
    fn only_keeps_the_named_strategies_and_refuses_unknown_names() {
        let two = format!(
            "[[strategy]]\nname = \"a\"\nkind = \"fresh\"\n{}",
            one("name = \"b\"\nkind = \"pool\"\nmax_size = 2")
        );
        let only = |names: &[&str]| Overrides {
            only: names.iter().map(|n| n.to_string()).collect(),
            ..flags()
        };
        let kept: Vec<String> = ok(&two, &only(&["b"]))
            .strategies
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(kept, ["b"]);
        assert_eq!(ok(&two, &flags()).strategies.len(), 2);
        assert_eq!(
            errors(&two, &only(&["b", "nope"])),
            "--only nope: no such strategy in t.toml (it has: a, b)"
        );
        // A strategy with a mistake is still one --only may name.
        let broken = format!(
            "[[strategy]]\nname = \"a\"\nkind = \"bouncy\"\n{}",
            one("name = \"b\"\nkind = \"fresh\"")
        );
        let e = errors(&broken, &only(&["a"]));
        assert!(e.starts_with("t.toml:3:8: unknown strategy kind"), "{e}");
        assert!(!e.contains("--only"), "{e}");
    }
}
