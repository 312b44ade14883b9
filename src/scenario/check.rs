//! Turns the raw TOML mirror (`raw.rs`) into the checked [`Scenario`] of
//! `model.rs`, once, collecting every problem with the span it is about.
//!
//! The checker carries on after a problem (with the default or without the
//! value) so one run of `validate` lists every mistake in the file, as a
//! compiler does; checks that depend on a broken value are skipped rather
//! than reported twice.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::diag::{line_col, Diagnostic};
use super::limits::*;
use super::model::*;
use super::raw::*;
use super::sql::placeholders;
use super::sql_mysql::question_marks;

const DEFAULT_DURATION: Duration = Duration::from_secs(10);
const DEFAULT_WARMUP: Duration = Duration::from_secs(2);
const DEFAULT_CONCURRENCY: u32 = 8;
const DEFAULT_SEED: u64 = 1;
const DEFAULT_WEIGHT: u32 = 1;
/// PostgreSQL refuses a larger `max_connections` (MAX_BACKENDS).
const PG_MAX_CONNECTIONS: i64 = 262_143;

const GENERATORS: &str = "expected one of `{ int = [lo, hi] }`, `{ zipf = { max = N, s = S } }`, \
                          `{ text = len }`, `{ choice = [a, b, ...] }`, or a plain value";

/// Checks `raw`, read from `text` at `path`, into a [`Scenario`].
pub fn check(
    raw: RawScenario,
    text: &str,
    path: &Path,
    sha256: String,
) -> Result<Scenario, Vec<Diagnostic>> {
    let mut checker = Checker {
        text,
        diagnostics: Vec::new(),
        load_span: None,
        duration_span: None,
        mysql: false,
    };
    let scenario = checker.scenario(raw, path, sha256);
    if checker.diagnostics.is_empty() {
        Ok(scenario)
    } else {
        // In file order, as a reader goes through the file (stable, so two
        // problems at one place keep the order they were found in).
        checker.diagnostics.sort_by_key(|d| d.span.start);
        Err(checker.diagnostics)
    }
}

/// A `dsn` checked without connecting: MySQL's (`mysql://`) or libpq's.
fn check_dsn(dsn: &str) -> Result<(), String> {
    if dsn.trim_start().starts_with("mysql://") {
        crate::backend::mysql::dsn::check(dsn)
    } else {
        crate::backend::postgres::resolve::check_dsn(dsn).map_err(|e| e.to_string())
    }
}

struct Checker<'t> {
    text: &'t str,
    diagnostics: Vec<Diagnostic>,
    /// Where `[run]` sets the load (`rate` or `concurrency`) and the
    /// `duration`: the budgets' errors point there.
    load_span: Option<Range<usize>>,
    duration_span: Option<Range<usize>>,
    /// The scenario targets MySQL or MariaDB: `?` placeholders.
    mysql: bool,
}

impl Checker<'_> {
    fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic::new(span, message));
    }

    fn line_of(&self, span: &Range<usize>) -> usize {
        line_col(self.text, span.start).0
    }

    fn scenario(&mut self, raw: RawScenario, path: &Path, sha256: String) -> Scenario {
        let name = match &raw.name {
            Some(name) => self.dir_name("scenario `name`", name).unwrap_or_default(),
            None => name_from_path(path),
        };
        let description = raw.description.map(|d| {
            let chars = d.get_ref().chars().count();
            if chars > MAX_DESCRIPTION_CHARS {
                self.error(
                    d.span(),
                    format!(
                        "the `description` has {chars} characters, more than {MAX_DESCRIPTION_CHARS}"
                    ),
                );
            }
            d.into_inner()
        });
        let run = match raw.run {
            Some(run) => self.run(run.into_inner().into_inner()),
            None => default_run(),
        };
        let database = match raw.database {
            Some(db) => self.database(db.into_inner().into_inner()),
            None => DatabaseSettings {
                dsn: None,
                embedded: EmbeddedSettings::default(),
            },
        };
        self.mysql = database.is_mysql();
        let setup_sql = raw.setup.and_then(|setup| {
            let span = setup.span();
            match setup.into_inner().into_inner().sql {
                Some(sql) => self.sql_text("`[setup]` `sql`", &sql),
                None => {
                    self.error(
                        span,
                        "`[setup]` needs `sql`, run once before the first strategy",
                    );
                    None
                }
            }
        });
        let pgbouncer = raw
            .pgbouncer
            .map(|p| self.pgbouncer(p.into_inner().into_inner()))
            .unwrap_or_default();
        let strategies = self.strategies(raw.strategy, &pgbouncer);
        let queries = self.queries(raw.query);
        let sweep = raw
            .sweep
            .map(|sweep| self.sweep(sweep.into_inner().into_inner()))
            .unwrap_or_default();
        // The budgets weigh settings against each other: only once each of
        // them is valid on its own.
        if self.diagnostics.is_empty() {
            let problems = budget_problems(&run, &queries, strategies.len());
            for problem in problems {
                let span = if problem.starts_with("duration") {
                    self.duration_span.clone()
                } else {
                    self.load_span.clone()
                };
                self.error(span.unwrap_or(0..0), problem);
            }
        }
        let network = raw.network.and_then(|n| self.network(n));
        Scenario {
            name,
            description,
            source: Source {
                path: path.to_path_buf(),
                sha256,
            },
            run,
            database,
            setup_sql,
            strategies,
            queries,
            sweep,
            pgbouncer,
            network,
        }
    }

    fn pgbouncer(&mut self, raw: RawPgBouncer) -> PgBouncerSettings {
        let mut settings = PgBouncerSettings::default();
        if let Some(mode) = &raw.pool_mode {
            match mode.get_ref().as_str() {
                "session" => settings.pool_mode = PoolMode::Session,
                "transaction" => settings.pool_mode = PoolMode::Transaction,
                "statement" => settings.pool_mode = PoolMode::Statement,
                other => self.error(
                    mode.span(),
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

    fn network(&mut self, raw: Spanned<Table<RawNetwork>>) -> Option<NetworkSettings> {
        let span = raw.span();
        let raw = raw.into_inner().into_inner();
        let Some(rtt_value) = &raw.rtt else {
            self.error(
                span,
                "`[network]` needs `rtt`, the round-trip time to add, e.g. rtt = \"20ms\"",
            );
            return None;
        };
        let rtt = self.duration("rtt", rtt_value)?;
        if rtt > NetworkSettings::MAX_RTT {
            self.error(
                rtt_value.span(),
                format!(
                    "`rtt` must be at most {}, found {}",
                    humantime::format_duration(NetworkSettings::MAX_RTT),
                    rtt_value.get_ref()
                ),
            );
            return None;
        }
        let jitter = match &raw.jitter {
            None => Duration::ZERO,
            Some(j) => {
                let jitter = self.duration("jitter", j)?;
                if jitter > rtt / 2 {
                    self.error(
                        j.span(),
                        format!(
                            "`jitter` moves each flight by up to ± its value, so it must be at \
                             most half the rtt ({}), found {}",
                            humantime::format_duration(rtt / 2),
                            j.get_ref()
                        ),
                    );
                    return None;
                }
                jitter
            }
        };
        Some(NetworkSettings { rtt, jitter })
    }

    fn sweep(&mut self, raw: RawSweep) -> SweepGrid {
        let pool_sizes = raw
            .pool_sizes
            .map(|list| self.grid("pool_sizes", list, MAX_POOL_SIZE as i64))
            .unwrap_or_default();
        let concurrency = raw
            .concurrency
            .map(|list| self.grid("concurrency", list, i64::from(MAX_CONCURRENCY)))
            .unwrap_or_default();
        SweepGrid {
            pool_sizes: pool_sizes
                .into_iter()
                .filter_map(|n| usize::try_from(n).ok())
                .collect(),
            concurrency: concurrency
                .into_iter()
                .filter_map(|n| u32::try_from(n).ok())
                .collect(),
        }
    }

    /// A `[sweep]` list: 1 to MAX_SWEEP_POINTS values, each in 1..=max,
    /// no repeats; returned in ascending order.
    fn grid(&mut self, key: &str, list: Spanned<Vec<Spanned<i64>>>, max: i64) -> Vec<i64> {
        let span = list.span();
        let list = list.into_inner();
        if list.is_empty() {
            self.error(
                span,
                format!("`[sweep]` `{key}` is empty: list at least one value, e.g. [1, 2, 4, 8]"),
            );
            return Vec::new();
        }
        if list.len() > MAX_SWEEP_POINTS {
            self.error(
                span,
                format!(
                    "`[sweep]` `{key}` lists {} values, more than {MAX_SWEEP_POINTS}",
                    list.len()
                ),
            );
            return Vec::new();
        }
        let mut seen: HashMap<i64, Range<usize>> = HashMap::new();
        let mut values = Vec::new();
        for item in &list {
            let Some(v) = self.int_in(key, item, 1, max) else {
                continue;
            };
            if let Some(first) = seen.get(&v) {
                let line = self.line_of(first);
                self.error(
                    item.span(),
                    format!("`{key}` lists {v} twice (first on line {line})"),
                );
            } else {
                seen.insert(v, item.span());
                values.push(v);
            }
        }
        values.sort_unstable();
        values
    }

    fn run(&mut self, raw: RawRun) -> RunSettings {
        let mut run = default_run();
        if let Some(value) = &raw.duration {
            self.duration_span = Some(value.span());
            if let Some(d) = self.duration_in("duration", value, Duration::ZERO, MAX_DURATION, "") {
                run.duration = d;
            }
        }
        if let Some(w) = &raw.warmup {
            run.warmup = self
                .duration_in("warmup", w, Duration::ZERO, MAX_WARMUP, "")
                .unwrap_or(run.warmup);
        }
        if let Some(c) = &raw.concurrency {
            self.load_span = Some(c.span());
            if let Some(c) = self.int_in("concurrency", c, 1, i64::from(MAX_CONCURRENCY)) {
                run.concurrency = u32::try_from(c).unwrap_or(DEFAULT_CONCURRENCY);
            }
        }
        if let Some(s) = &raw.seed {
            if let Some(s) = self.int_in("seed", s, 0, i64::MAX) {
                run.seed = u64::try_from(s).unwrap_or(DEFAULT_SEED);
            }
        }
        if let Some(r) = &raw.rounds {
            if let Some(r) = self.int_in("rounds", r, 1, i64::from(MAX_ROUNDS)) {
                run.rounds = u32::try_from(r).unwrap_or(1);
            }
        }
        if let Some(t) = &raw.request_timeout {
            let why = "a shorter one abandons nearly every request before the server could answer";
            if let Some(d) = self.duration_in("request_timeout", t, MIN_TIMEOUT, MAX_TIMEOUT, why) {
                run.request_timeout = d;
            }
        }
        if let Some(r) = &raw.max_error_rate {
            let v = *r.get_ref();
            if (0.0..=1.0).contains(&v) {
                run.max_error_rate = Some(v);
            } else {
                self.error(
                    r.span(),
                    format!("`max_error_rate` is a fraction from 0.0 to 1.0 (0.01 = 1%), not {v}"),
                );
            }
        }
        run.arrivals = self.arrivals(&raw);
        if let Some(retry) = raw.retry {
            run.retry = self.retry(retry);
        }
        run
    }

    fn arrivals(&mut self, raw: &RawRun) -> Option<Arrivals> {
        let Some(rate) = &raw.rate else {
            for (key, span) in [
                ("arrival", raw.arrival.as_ref().map(Spanned::span)),
                (
                    "max_in_flight",
                    raw.max_in_flight.as_ref().map(Spanned::span),
                ),
            ] {
                if let Some(span) = span {
                    self.error(
                        span,
                        format!("`{key}` is for open loop and needs `rate` (arrivals per second)"),
                    );
                }
            }
            return None;
        };
        self.load_span = Some(rate.span());
        let value = match rate.get_ref() {
            Node::Int(i) => Some(*i as f64),
            Node::Float(f) => Some(*f),
            other => {
                self.error(
                    rate.span(),
                    format!(
                        "`rate` is arrivals per second, a number such as 500 or 2.5, not {}",
                        other.type_name()
                    ),
                );
                None
            }
        };
        let rate_ok = match value {
            Some(v) if v.is_finite() && (MIN_RATE..=MAX_RATE).contains(&v) => Some(v),
            Some(v) => {
                self.error(rate.span(), rate_out_of_range("`rate`", v));
                None
            }
            None => None,
        };
        let process = match &raw.arrival {
            None => ArrivalProcess::Poisson,
            Some(a) => match a.get_ref().as_str() {
                "poisson" => ArrivalProcess::Poisson,
                "uniform" => ArrivalProcess::Uniform,
                other => {
                    self.error(
                        a.span(),
                        format!("`arrival` = {other:?}: expected \"poisson\" or \"uniform\""),
                    );
                    ArrivalProcess::Poisson
                }
            },
        };
        let max_in_flight = match &raw.max_in_flight {
            None => DEFAULT_MAX_IN_FLIGHT,
            Some(m) => self
                .int_in("max_in_flight", m, 1, i64::from(MAX_IN_FLIGHT))
                .and_then(|m| u32::try_from(m).ok())
                .unwrap_or(DEFAULT_MAX_IN_FLIGHT),
        };
        rate_ok.map(|rate| Arrivals {
            rate,
            process,
            max_in_flight,
        })
    }

    fn retry(&mut self, raw: Spanned<Table<RawRetry>>) -> Option<RetryPolicy> {
        let span = raw.span();
        let raw = raw.into_inner();
        let mut policy = RetryPolicy {
            on: Vec::new(),
            max_attempts: 3,
            backoff: Duration::from_millis(100),
        };
        match &raw.on {
            None => self.error(
                span,
                format!(
                    "`[run.retry]` needs `on`, the error classes to retry: {}",
                    RETRYABLE.join(", ")
                ),
            ),
            Some(on) => {
                for class in on.get_ref() {
                    let name = class.get_ref();
                    let known = RETRYABLE.contains(&name.as_str())
                        || name.strip_prefix("query_error:").is_some_and(|code| {
                            code.len() == 5 && code.chars().all(|c| c.is_ascii_alphanumeric())
                        });
                    if known {
                        policy.on.push(name.clone());
                    } else {
                        self.error(
                            class.span(),
                            format!(
                                "unknown error class `{name}`; expected one of {} or query_error:<SQLSTATE>",
                                RETRYABLE.join(", ")
                            ),
                        );
                    }
                }
                if on.get_ref().is_empty() {
                    self.error(
                        on.span(),
                        "`on` is empty: name at least one error class to retry",
                    );
                }
            }
        }
        if let Some(n) = &raw.max_attempts {
            if let Some(n) = self.int_in("max_attempts", n, 1, 100) {
                policy.max_attempts = u32::try_from(n).unwrap_or(3);
            }
        }
        if let Some(b) = &raw.backoff {
            policy.backoff = self
                .duration_in("backoff", b, Duration::ZERO, MAX_BACKOFF, "")
                .unwrap_or(policy.backoff);
        }
        Some(policy)
    }

    fn database(&mut self, raw: RawDatabase) -> DatabaseSettings {
        let dsn = raw.dsn.and_then(|dsn| {
            if dsn.get_ref().trim().is_empty() {
                self.error(
                    dsn.span(),
                    "`dsn` is empty; remove it to use DATABASE_URL or the embedded server",
                );
                None
            } else if let Err(e) = check_dsn(dsn.get_ref()) {
                // The message names the option, never a password's value;
                // the line itself is not quoted, since it may hold one.
                self.diagnostics.push(
                    Diagnostic::new(dsn.span(), format!("invalid `dsn`: {e}")).without_source(),
                );
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
                        engine.span(),
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
                        auth.span(),
                        format!(
                            "unknown `auth` method {:?}: expected \"scram-sha-256\", \"md5\" or \"trust\"",
                            auth.get_ref()
                        ),
                    ),
                }
            }
            if let Some(tls) = &raw.tls {
                embedded.tls = *tls.get_ref();
            }
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

    fn strategies(
        &mut self,
        raw: Option<Spanned<Vec<Spanned<Table<RawStrategy>>>>>,
        pgbouncer: &PgBouncerSettings,
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
                raw.span(),
                "`strategy` is empty: a scenario needs at least one",
            );
        }
        if raw.get_ref().len() > MAX_STRATEGIES {
            self.error(
                raw.get_ref()[MAX_STRATEGIES].span(),
                format!(
                    "{} strategies, more than {MAX_STRATEGIES}: split the scenario",
                    raw.get_ref().len()
                ),
            );
            return Vec::new();
        }
        let mut seen: HashMap<String, Range<usize>> = HashMap::new();
        let mut strategies = Vec::new();
        for item in raw.into_inner() {
            let span = item.span();
            let raw = item.into_inner();
            let name = match &raw.name {
                Some(name) => self.dir_name("strategy `name`", name).inspect(|n| {
                    self.unique("strategy", &mut seen, n, name.span());
                }),
                None => {
                    self.error(span.clone(), "`[[strategy]]` needs a `name`");
                    None
                }
            };
            let kind = self.strategy_kind(&raw, span.clone());
            let dsn = match &raw.dsn {
                Some(d) if d.get_ref().trim().is_empty() => {
                    self.error(
                        d.span(),
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
                            via.span(),
                            format!("unknown `via` {other:?}: expected \"pgbouncer\""),
                        );
                        None
                    }
                });
            if let (Some(via), Some(dsn)) = (&raw.via, &raw.dsn) {
                self.error(
                    via.span(),
                    format!(
                        "`via` starts a pooler in front of the run's server and `dsn` (line {}) \
                         names another target: give one or the other",
                        self.line_of(&dsn.span())
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
                let at = raw.via.as_ref().map_or(span.clone(), Spanned::span);
                self.error(
                    at,
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
            if let (Some(name), Some(kind)) = (name, kind) {
                strategies.push(Strategy {
                    name,
                    kind,
                    statement_cache,
                    dsn,
                    via,
                });
            }
        }
        strategies
    }

    fn strategy_kind(&mut self, raw: &RawStrategy, span: Range<usize>) -> Option<StrategyKind> {
        let Some(kind) = &raw.kind else {
            self.error(
                span,
                "`[[strategy]]` needs `kind = \"fresh\"` (a connection per request) \
                 or `kind = \"pool\"` (deadpool-postgres)",
            );
            return None;
        };
        match kind.get_ref().as_str() {
            "fresh" => {
                let pool_keys = [
                    ("max_size", raw.max_size.as_ref().map(Spanned::span)),
                    ("min_size", raw.min_size.as_ref().map(Spanned::span)),
                    ("wait_timeout", raw.wait_timeout.as_ref().map(Spanned::span)),
                    ("recycling", raw.recycling.as_ref().map(Spanned::span)),
                    ("instances", raw.instances.as_ref().map(Spanned::span)),
                ];
                for (key, value_span) in pool_keys {
                    if let Some(value_span) = value_span {
                        self.error(
                            value_span,
                            format!(
                                "`{key}` only applies to kind = \"pool\"; this strategy is \
                                 kind = \"fresh\" (line {})",
                                self.line_of(&kind.span())
                            ),
                        );
                    }
                }
                Some(StrategyKind::Fresh)
            }
            "pool" => self.pool(raw, span).map(StrategyKind::Pool),
            other => {
                self.error(
                    kind.span(),
                    format!(
                        "unknown strategy kind {other:?}: expected \"fresh\" (a connection \
                         per request) or \"pool\" (deadpool-postgres)"
                    ),
                );
                None
            }
        }
    }

    fn pool(&mut self, raw: &RawStrategy, span: Range<usize>) -> Option<PoolSettings> {
        let max_size = match &raw.max_size {
            Some(max) => self.int_in("max_size", max, 1, MAX_POOL_SIZE as i64),
            None => {
                self.error(
                    span,
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
                    min_value.span(),
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
                        r.span(),
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
        Some(PoolSettings {
            max_size: usize::try_from(max_size?).ok()?,
            min_size: usize::try_from(min_size?).ok()?,
            wait_timeout,
            recycling: recycling?,
            instances: usize::try_from(instances?).ok()?,
        })
    }

    fn queries(&mut self, raw: Option<Spanned<Vec<Spanned<Table<RawQuery>>>>>) -> Vec<Query> {
        let Some(raw) = raw else {
            self.error(
                0..0,
                "no `[[query]]`: the mix needs at least one, e.g. `[[query]]` with \
                 `name = \"get_user\"` and `sql = \"SELECT ...\"`",
            );
            return Vec::new();
        };
        let list_span = raw.span();
        let raw = raw.into_inner();
        if raw.is_empty() {
            self.error(
                list_span,
                "`query` is empty: the mix needs at least one query",
            );
            return Vec::new();
        }
        if raw.len() > MAX_QUERIES {
            self.error(
                raw[MAX_QUERIES].span(),
                format!(
                    "{} queries, more than {MAX_QUERIES}: a mix this large measures nothing \
                     a smaller one would not",
                    raw.len()
                ),
            );
            return Vec::new();
        }
        let first_span = raw[0].span();
        let mut seen: HashMap<String, Range<usize>> = HashMap::new();
        let mut queries = Vec::new();
        let mut weights_ok = true;
        let mut weight_sum: u64 = 0;
        let mut last_weight_span = None;
        for item in raw {
            let span = item.span();
            let raw = item.into_inner();
            let name = match &raw.name {
                Some(name) if name.get_ref().trim().is_empty() => {
                    self.error(name.span(), "query `name` is empty");
                    None
                }
                Some(name) if name.get_ref().chars().count() > MAX_NAME_CHARS => {
                    self.error(
                        name.span(),
                        format!("query `name` is longer than {MAX_NAME_CHARS} characters"),
                    );
                    None
                }
                Some(name) => {
                    self.unique("query", &mut seen, name.get_ref(), name.span());
                    Some(name.get_ref().clone())
                }
                None => {
                    self.error(span.clone(), "`[[query]]` needs a `name`");
                    None
                }
            };
            let weight = match &raw.weight {
                Some(w) => {
                    last_weight_span = Some(w.span());
                    self.int_in("weight", w, 0, i64::from(u32::MAX))
                        .and_then(|w| u32::try_from(w).ok())
                }
                None => {
                    last_weight_span = None;
                    Some(DEFAULT_WEIGHT)
                }
            };
            match weight {
                Some(w) => weight_sum += u64::from(w),
                None => weights_ok = false,
            }
            let mode = self.query_mode(&raw);
            let statements = self.statements(&raw, span);
            if let (Some(name), Some(weight), Some(mode), Some(statements)) =
                (name, weight, mode, statements)
            {
                queries.push(Query {
                    name,
                    weight,
                    mode,
                    statements,
                });
            }
        }
        if weights_ok && weight_sum == 0 {
            self.error(
                last_weight_span.unwrap_or(first_span),
                "the query weights sum to 0: at least one query needs `weight` > 0",
            );
        } else if weights_ok && weight_sum > u64::from(u32::MAX) {
            self.error(
                last_weight_span.unwrap_or(first_span),
                format!(
                    "the query weights sum to {weight_sum}, more than {}",
                    u32::MAX
                ),
            );
        }
        queries
    }

    fn query_mode(&mut self, raw: &RawQuery) -> Option<QueryMode> {
        let transaction = raw.transaction.as_ref().is_some_and(|t| *t.get_ref());
        match &raw.parallel {
            Some(p) if *p.get_ref() && transaction => {
                self.error(
                    p.span(),
                    "`transaction = true` and `parallel = true` cannot be combined: a \
                     transaction runs on one connection, parallel statements each on their own",
                );
                None
            }
            Some(p) if *p.get_ref() => Some(QueryMode::Parallel),
            _ if transaction => Some(QueryMode::Transaction),
            _ => Some(QueryMode::Sequential),
        }
    }

    fn statements(&mut self, raw: &RawQuery, span: Range<usize>) -> Option<Vec<Statement>> {
        match (&raw.sql, &raw.statements) {
            (Some(_), Some(statements)) => {
                self.error(
                    statements.span(),
                    "give either `sql` (with `params`) or `statements`, not both",
                );
                None
            }
            (None, None) => {
                self.error(
                    span,
                    "`[[query]]` needs `sql = \"...\"` or `statements = [{ sql = \"...\" }, ...]`",
                );
                None
            }
            (Some(sql), None) => Some(vec![self.statement(sql, raw.params.as_ref())?]),
            (None, Some(statements)) => {
                if let Some(params) = &raw.params {
                    self.error(
                        params.span(),
                        "`params` goes with `sql`; with `statements`, give each statement \
                         its own `params`",
                    );
                }
                if statements.get_ref().is_empty() {
                    self.error(
                        statements.span(),
                        "`statements` is empty: give at least one `{ sql = \"...\" }`",
                    );
                    return None;
                }
                if statements.get_ref().len() > MAX_STATEMENTS {
                    self.error(
                        statements.get_ref()[MAX_STATEMENTS].span(),
                        format!(
                            "{} statements, more than {MAX_STATEMENTS} in one query",
                            statements.get_ref().len()
                        ),
                    );
                    return None;
                }
                let mut checked = Vec::new();
                let mut ok = raw.params.is_none();
                for item in statements.get_ref() {
                    let statement = match &item.get_ref().sql {
                        Some(sql) => self.statement(sql, item.get_ref().params.as_ref()),
                        None => {
                            self.error(item.span(), "a statement needs `sql`");
                            None
                        }
                    };
                    match statement {
                        Some(s) => checked.push(s),
                        None => ok = false,
                    }
                }
                ok.then_some(checked)
            }
        }
    }

    fn statement(
        &mut self,
        sql: &Spanned<String>,
        params: Option<&Spanned<Vec<Spanned<Node>>>>,
    ) -> Option<Statement> {
        let text = self.sql_text("`sql`", sql);
        let raw_params: &[Spanned<Node>] = params.map_or(&[], |p| p.get_ref());
        if raw_params.len() > MAX_PARAMS {
            self.error(
                raw_params[MAX_PARAMS].span(),
                format!(
                    "{} params, more than {MAX_PARAMS} in one statement",
                    raw_params.len()
                ),
            );
            return None;
        }
        let mut checked = Vec::new();
        let mut ok = text.is_some();
        for p in raw_params {
            match self.param(p) {
                Some(p) => checked.push(p),
                None => ok = false,
            }
        }
        if text.is_some() && self.mysql {
            self.question_marks_match(sql, raw_params);
        } else if text.is_some() {
            self.placeholders_match(sql, raw_params);
        }
        Some(Statement {
            sql: text?,
            params: checked,
        })
        .filter(|_| ok)
    }

    /// MySQL's `?`s are positional: as many params as `?`s.
    fn question_marks_match(&mut self, sql: &Spanned<String>, params: &[Spanned<Node>]) {
        let found = question_marks(sql.get_ref());
        let given = params.len();
        if found.len() > given {
            let span = self.span_in_string(sql, found[given].clone());
            self.error(
                span,
                format!(
                    "the SQL has {} `?` placeholders but {}",
                    found.len(),
                    if given == 0 {
                        "no `params` are given".to_owned()
                    } else {
                        params_given(given as u64)
                    }
                ),
            );
        } else if found.len() < given {
            let span = params[found.len()].span();
            self.error(
                span,
                format!(
                    "{} but the SQL has {} `?` placeholders",
                    params_given(given as u64),
                    found.len()
                ),
            );
        }
    }

    /// Every `$N` must have a param and every param a `$N`: `$1..$n` for n
    /// params, none missing (PostgreSQL cannot infer an unused one's type).
    fn placeholders_match(&mut self, sql: &Spanned<String>, params: &[Spanned<Node>]) {
        let found = placeholders(sql.get_ref());
        let given = params.len() as u64;
        for p in found.iter().filter(|p| p.number == 0) {
            let span = self.span_in_string(sql, p.span.clone());
            self.error(span, "`$0` is not a placeholder: they start at $1");
        }
        let Some(highest) = found.iter().max_by_key(|p| p.number) else {
            if let Some(first) = params.first() {
                // `?`s are MySQL's, recognised when the scenario says so.
                let hint = if question_marks(sql.get_ref()).is_empty() {
                    ""
                } else {
                    " ($1, $2…; for MySQL's `?` the scenario must target MySQL: \
                     `[database.embedded] engine = \"mariadb\"` or a mysql:// `dsn`)"
                };
                self.error(
                    first.span(),
                    format!(
                        "{} but the SQL has no placeholders{hint}",
                        params_given(given)
                    ),
                );
            }
            return;
        };
        let max = highest.number;
        if max > given {
            let span = self.span_in_string(sql, highest.span.clone());
            let given = if given == 0 {
                "no `params` are given".to_owned()
            } else {
                params_given(given)
            };
            self.error(span, format!("the SQL uses ${max} but {given}"));
        } else if max < given {
            // Point at the first param no placeholder takes.
            let extra = usize::try_from(max).ok().and_then(|m| params.get(m));
            let span = extra.map_or_else(|| sql.span(), Spanned::span);
            let uses = match max {
                // Only `$0`, reported above.
                0 => "has no valid placeholders".to_owned(),
                1 => "uses only $1".to_owned(),
                _ => format!("uses only $1..${max}"),
            };
            self.error(span, format!("{} but the SQL {uses}", params_given(given)));
        } else if let Some(missing) = (1..max).find(|n| !found.iter().any(|p| p.number == *n)) {
            let span = self.span_in_string(sql, highest.span.clone());
            self.error(
                span,
                format!(
                    "the SQL uses ${max} but not ${missing}: PostgreSQL cannot tell the type \
                     of a parameter the SQL does not use"
                ),
            );
        }
    }

    fn param(&mut self, p: &Spanned<Node>) -> Option<Param> {
        match p.get_ref() {
            Node::Table(entries) => match entries.as_slice() {
                [(key, value)] => self.generator(key, value),
                _ => {
                    let found = match entries.len() {
                        0 => "none".to_owned(),
                        n => format!("{n} keys"),
                    };
                    self.error(
                        p.span(),
                        format!(
                            "a parameter table needs exactly one generator, found {found}: {GENERATORS}"
                        ),
                    );
                    None
                }
            },
            Node::Array(_) => {
                self.error(
                    p.span(),
                    format!("an array is not a parameter: {GENERATORS}"),
                );
                None
            }
            _ => self.literal(p, "a parameter").map(Param::Literal),
        }
    }

    fn generator(&mut self, key: &Spanned<String>, value: &Spanned<Node>) -> Option<Param> {
        match key.get_ref().as_str() {
            "int" => {
                let bounds = match value.get_ref() {
                    Node::Array(items) => match items.as_slice() {
                        [lo, hi] => match (lo.get_ref(), hi.get_ref()) {
                            (Node::Int(lo), Node::Int(hi)) => Some((*lo, *hi)),
                            _ => None,
                        },
                        _ => None,
                    },
                    _ => None,
                };
                let Some((lo, hi)) = bounds else {
                    self.error(
                        value.span(),
                        format!(
                            "`int` needs two integers `[lo, hi]`, found {}",
                            describe(value.get_ref())
                        ),
                    );
                    return None;
                };
                if lo > hi {
                    self.error(
                        value.span(),
                        format!("`int` range [{lo}, {hi}]: lo ({lo}) is larger than hi ({hi})"),
                    );
                    return None;
                }
                Some(Param::Int { lo, hi })
            }
            "zipf" => self.zipf(value),
            "text" => match value.get_ref() {
                Node::Int(len) if (1..=MAX_TEXT_LEN).contains(len) => Some(Param::Text {
                    len: usize::try_from(*len).ok()?,
                }),
                other => {
                    self.error(
                        value.span(),
                        format!(
                            "`text` needs a length from 1 to {MAX_TEXT_LEN}, found {}",
                            describe(other)
                        ),
                    );
                    None
                }
            },
            "choice" => match value.get_ref() {
                Node::Array(items) if items.is_empty() => {
                    self.error(value.span(), "`choice` is empty: give at least one value");
                    None
                }
                Node::Array(items) => {
                    let mut literals = Vec::new();
                    for item in items {
                        literals.push(self.literal(item, "a `choice` value"));
                    }
                    literals
                        .into_iter()
                        .collect::<Option<Vec<_>>>()
                        .map(Param::Choice)
                }
                other => {
                    self.error(
                        value.span(),
                        format!(
                            "`choice` needs an array of values, found {}",
                            describe(other)
                        ),
                    );
                    None
                }
            },
            other => {
                self.error(
                    key.span(),
                    format!("unknown parameter generator `{other}`: {GENERATORS}"),
                );
                None
            }
        }
    }

    fn zipf(&mut self, value: &Spanned<Node>) -> Option<Param> {
        let Node::Table(entries) = value.get_ref() else {
            self.error(
                value.span(),
                format!(
                    "`zipf` needs a table `{{ max = N, s = S }}`, found {}",
                    describe(value.get_ref())
                ),
            );
            return None;
        };
        let (mut max, mut s) = (None, None);
        let mut ok = true;
        for (key, v) in entries {
            match (key.get_ref().as_str(), v.get_ref()) {
                ("max", Node::Int(n)) if *n >= 1 => max = u64::try_from(*n).ok(),
                ("max", other) => {
                    self.error(
                        v.span(),
                        format!(
                            "`zipf` `max` must be an integer >= 1, found {}",
                            describe(other)
                        ),
                    );
                    ok = false;
                }
                ("s", Node::Int(n)) if *n > 0 => s = Some(*n as f64),
                ("s", Node::Float(f)) if f.is_finite() && *f > 0.0 => s = Some(*f),
                ("s", other) => {
                    self.error(
                        v.span(),
                        format!(
                            "`zipf` exponent `s` must be a number > 0, found {}",
                            describe(other)
                        ),
                    );
                    ok = false;
                }
                (other, _) => {
                    self.error(
                        key.span(),
                        format!("unknown key `{other}` in `zipf`: expected `max` and `s`"),
                    );
                    ok = false;
                }
            }
        }
        if ok && max.is_none() {
            self.error(
                value.span(),
                "`zipf` needs `max`, the largest value drawn (>= 1)",
            );
        }
        if ok && s.is_none() {
            self.error(
                value.span(),
                "`zipf` needs `s`, the exponent (> 0, e.g. 1.1)",
            );
        }
        Some(Param::Zipf { max: max?, s: s? }).filter(|_| ok)
    }

    fn literal(&mut self, v: &Spanned<Node>, what: &str) -> Option<Literal> {
        match v.get_ref() {
            Node::Int(i) => Some(Literal::Int(*i)),
            Node::Float(f) => Some(Literal::Float(*f)),
            Node::Bool(b) => Some(Literal::Bool(*b)),
            Node::String(s) => Some(Literal::Text(s.clone())),
            other => {
                self.error(
                    v.span(),
                    format!(
                        "{what} must be an integer, float, boolean or string, found {}",
                        other.type_name()
                    ),
                );
                None
            }
        }
    }

    /// A SQL text that is not blank.
    fn sql_text(&mut self, what: &str, sql: &Spanned<String>) -> Option<String> {
        if sql.get_ref().trim().is_empty() {
            self.error(sql.span(), format!("{what} is blank"));
            None
        } else {
            Some(sql.get_ref().clone())
        }
    }

    /// A name that becomes a directory or file name.
    fn dir_name(&mut self, what: &str, name: &Spanned<String>) -> Option<String> {
        let text = name.get_ref();
        if text.is_empty() {
            self.error(name.span(), format!("{what} is empty"));
            None
        } else if text.chars().count() > MAX_NAME_CHARS {
            self.error(
                name.span(),
                format!(
                    "{what} is longer than {MAX_NAME_CHARS} characters (it becomes part of a \
                     directory name)"
                ),
            );
            None
        } else if let Some(bad) = text.chars().find(|c| !is_name_char(*c)) {
            self.error(
                name.span(),
                format!(
                    "{what} {text:?} contains {bad:?}: use only letters, digits, `.`, `_` and `-` \
                     (it becomes part of a directory name)"
                ),
            );
            None
        } else {
            Some(text.clone())
        }
    }

    /// Reports `name` if an earlier item of the same kind used it.
    fn unique(
        &mut self,
        what: &str,
        seen: &mut HashMap<String, Range<usize>>,
        name: &str,
        span: Range<usize>,
    ) {
        if let Some(first) = seen.get(name) {
            let line = self.line_of(first);
            self.error(
                span,
                format!("{what} name `{name}` is used twice (first on line {line})"),
            );
        } else {
            seen.insert(name.to_owned(), span);
        }
    }

    fn duration(&mut self, key: &str, value: &Spanned<String>) -> Option<Duration> {
        match humantime::parse_duration(value.get_ref()) {
            Ok(d) => Some(d),
            Err(e) => {
                self.error(
                    value.span(),
                    format!(
                        "`{key}` = {:?} is not a duration ({e}): expected e.g. \"20s\", \"1m\", \"500ms\"",
                        value.get_ref()
                    ),
                );
                None
            }
        }
    }

    /// A duration from `min` to `max` (`duration` must also be longer than
    /// 0); `why` says why one shorter than `min` is refused.
    fn duration_in(
        &mut self,
        key: &str,
        value: &Spanned<String>,
        min: Duration,
        max: Duration,
        why: &str,
    ) -> Option<Duration> {
        let d = self.duration(key, value)?;
        let problem = if d.is_zero() && (key == "duration" || !min.is_zero()) {
            format!("`{key}` must be longer than 0")
        } else if d < min {
            format!("`{key}` must be at least {}", show(min))
        } else if d > max {
            format!(
                "`{key}` must be at most {}, found {}",
                show(max),
                value.get_ref()
            )
        } else {
            return Some(d);
        };
        let problem = if why.is_empty() || d > max {
            problem
        } else {
            format!("{problem}: {why}")
        };
        self.error(value.span(), problem);
        None
    }

    fn int_in(&mut self, key: &str, value: &Spanned<i64>, min: i64, max: i64) -> Option<i64> {
        let v = *value.get_ref();
        if v < min {
            self.error(
                value.span(),
                format!("`{key}` must be at least {min}, found {v}"),
            );
            None
        } else if v > max {
            self.error(
                value.span(),
                format!("`{key}` must be at most {max}, found {v}"),
            );
            None
        } else {
            Some(v)
        }
    }

    /// The file span of `inner`, a byte range of the string value `s`. Exact
    /// when the string is written without escapes (what SQL usually is);
    /// otherwise the span of the whole string.
    fn span_in_string(&self, s: &Spanned<String>, inner: Range<usize>) -> Range<usize> {
        let span = s.span();
        let Some(raw) = self.text.get(span.clone()) else {
            return span;
        };
        for delimiter in ["\"\"\"", "'''", "\"", "'"] {
            let d = delimiter.len();
            if raw.len() >= 2 * d && raw.starts_with(delimiter) && raw.ends_with(delimiter) {
                let mut start = span.start + d;
                let mut body = &raw[d..raw.len() - d];
                if d == 3 {
                    // TOML drops a newline right after the opening delimiter.
                    for newline in ["\r\n", "\n"] {
                        if let Some(rest) = body.strip_prefix(newline) {
                            start += newline.len();
                            body = rest;
                            break;
                        }
                    }
                }
                if body == s.get_ref() {
                    return start + inner.start..start + inner.end;
                }
                break;
            }
        }
        span
    }
}

/// Error classes a retry policy may name (and `query_error:<SQLSTATE>`).
const RETRYABLE: [&str; 8] = [
    "too_many_connections",
    "auth_failed",
    "pool_timeout",
    "connect_timeout",
    "connection_refused",
    "server_shutdown",
    "connection_lost",
    "request_timeout",
];

/// Bounds how long one request may take, so a hung server cannot hold a run
/// past its duration by more than this.
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

fn default_run() -> RunSettings {
    RunSettings {
        duration: DEFAULT_DURATION,
        warmup: DEFAULT_WARMUP,
        concurrency: DEFAULT_CONCURRENCY,
        seed: DEFAULT_SEED,
        rounds: 1,
        request_timeout: DEFAULT_REQUEST_TIMEOUT,
        max_error_rate: None,
        retry: None,
        arrivals: None,
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// The scenario name when the file has none: its file stem, with characters
/// a directory name should not have replaced by `_`.
fn name_from_path(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name: String = stem
        .chars()
        .map(|c| if is_name_char(c) { c } else { '_' })
        .collect();
    if name.is_empty() {
        "scenario".to_owned()
    } else {
        name
    }
}

fn params_given(n: u64) -> String {
    if n == 1 {
        "1 param is given".to_owned()
    } else {
        format!("{n} params are given")
    }
}

/// A value as a message shows it: short ones verbatim, others by type.
fn describe(node: &Node) -> String {
    match node {
        Node::Int(i) => i.to_string(),
        // Debug keeps the point: 0.0 reads as a float, not as 0.
        Node::Float(f) => format!("{f:?}"),
        Node::Bool(b) => b.to_string(),
        Node::String(s) if s.chars().count() <= 40 => format!("{s:?}"),
        other => other.type_name().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_from_path_uses_the_stem() {
        assert_eq!(
            name_from_path(Path::new("scenarios/checkout.toml")),
            "checkout"
        );
        assert_eq!(name_from_path(Path::new("my scenario.toml")), "my_scenario");
        assert_eq!(name_from_path(Path::new("")), "scenario");
    }
}

#[cfg(test)]
mod sweep_tests {
    use std::path::Path;

    const BASE: &str = "[[strategy]]\nname = \"p\"\nkind = \"pool\"\nmax_size = 4\n\n\
                        [[query]]\nname = \"q\"\nsql = \"SELECT 1\"\n";

    fn parse(text: &str) -> anyhow::Result<super::Scenario> {
        crate::scenario::parse(text, Path::new("t.toml"))
    }

    #[test]
    fn sweep_table_is_read_sorted() {
        let s = parse(&format!(
            "{BASE}\n[sweep]\npool_sizes = [8, 1, 4]\nconcurrency = [32, 16]\n"
        ))
        .unwrap();
        assert_eq!(s.sweep.pool_sizes, [1, 4, 8]);
        assert_eq!(s.sweep.concurrency, [16, 32]);
        let s = parse(BASE).unwrap();
        assert!(s.sweep.pool_sizes.is_empty() && s.sweep.concurrency.is_empty());
    }

    #[test]
    fn sweep_table_errors_point_at_the_value() {
        let err = |extra: &str| format!("{:#}", parse(&format!("{BASE}{extra}")).unwrap_err());
        let e = err("\n[sweep]\npool_sizes = [1, 0]\n");
        assert!(
            e.contains("t.toml:11:18: `pool_sizes` must be at least 1, found 0"),
            "{e}"
        );
        let e = err("\n[sweep]\npool_sizes = []\n");
        assert!(
            e.contains("t.toml:11:14: `[sweep]` `pool_sizes` is empty"),
            "{e}"
        );
        let e = err("\n[sweep]\nconcurrency = [4, 4]\n");
        assert!(
            e.contains("`concurrency` lists 4 twice (first on line 11)"),
            "{e}"
        );
        let e = err("\n[sweep]\npool_size = [4]\n");
        assert!(e.contains("unknown key `pool_size`"), "{e}");
    }

    #[test]
    fn network_table_is_checked_and_rtt_overrides_it() {
        use std::time::Duration;
        let s = parse(&format!(
            "{BASE}\n[network]\nrtt = \"20ms\"\njitter = \"1ms\"\n"
        ))
        .unwrap();
        let n = s.network.unwrap();
        assert_eq!(
            (n.rtt, n.jitter),
            (Duration::from_millis(20), Duration::from_millis(1))
        );
        assert!(parse(BASE).unwrap().network.is_none());
        let err = |extra: &str| format!("{:#}", parse(&format!("{BASE}{extra}")).unwrap_err());
        let e = err("\n[network]\njitter = \"1ms\"\n");
        assert!(e.contains("t.toml:10:1: `[network]` needs `rtt`"), "{e}");
        let e = err("\n[network]\nrtt = \"11s\"\n");
        assert!(e.contains("`rtt` must be at most 10s"), "{e}");
        let e = err("\n[network]\nrtt = \"20\"\n");
        assert!(e.contains("`rtt` = \"20\" is not a duration"), "{e}");

        // --rtt replaces the file's RTT and keeps its jitter, capped at
        // half of the new RTT; without [network] it adds one.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.toml");
        std::fs::write(
            &path,
            format!("{BASE}\n[network]\nrtt = \"20ms\"\njitter = \"4ms\"\n"),
        )
        .unwrap();
        let with = |rtt_ms: u64| {
            let o = crate::scenario::Overrides {
                rtt: Some(Duration::from_millis(rtt_ms)),
                ..Default::default()
            };
            crate::scenario::load_with(&path, &o).map(|s| s.network.unwrap())
        };
        let n = with(50).unwrap();
        assert_eq!(
            (n.rtt, n.jitter),
            (Duration::from_millis(50), Duration::from_millis(4))
        );
        let n = with(2).unwrap();
        assert_eq!(
            (n.rtt, n.jitter),
            (Duration::from_millis(2), Duration::from_millis(1))
        );
        assert!(format!("{:#}", with(20_000).unwrap_err()).contains("--rtt must be at most 10s"));
    }
}

/// The message for a rate out of its range, for the file and `--rate`.
pub fn rate_out_of_range(what: &str, v: f64) -> String {
    format!("{what} must be from {MIN_RATE} to {MAX_RATE} arrivals per second, not {v}")
}
