//! The checked scenario: what the rest of poolbench runs. Built only by
//! `scenario::load` / `scenario::parse`, so every value here has been checked
//! (weights > 0 in sum, min_size <= max_size, placeholders match params, …).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::flags::{Overrides, TargetHint};
use super::humantime_serde_compat;

#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    pub name: String,
    pub description: Option<String>,
    /// The file it was read from and the sha256 (hex) of its bytes.
    pub source: Source,
    pub run: RunSettings,
    pub database: DatabaseSettings,
    /// `[setup].sql`, run once before the first strategy.
    pub setup_sql: Option<String>,
    /// In file order; names are unique.
    pub strategies: Vec<Strategy>,
    /// In file order; names are unique; at least one has weight > 0.
    pub queries: Vec<Query>,
    /// `[sweep]`: the grid of `poolbench sweep`; empty lists when not given.
    pub sweep: SweepGrid,
    /// `[pgbouncer]`: the embedded PgBouncer's settings (defaults when not
    /// given); used by strategies with `via = "pgbouncer"`.
    pub pgbouncer: PgBouncerSettings,
    /// `[network]` (or `--rtt`): an emulated link between poolbench and the
    /// database for every measured connection; None: connect directly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkSettings>,
    /// What it was checked from, so that `scenario::with_overrides` checks
    /// a sweep's point the same way, once.
    #[serde(skip)]
    pub(super) checked_from: CheckedFrom,
}

/// The text a scenario was read from and the command line's values it was
/// checked with.
#[derive(Clone)]
pub struct CheckedFrom {
    pub(super) text: Arc<str>,
    pub(super) overrides: Overrides,
}

impl fmt::Debug for CheckedFrom {
    // The text is not shown: it may hold a password (a DSN).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckedFrom")
            .field("bytes", &self.text.len())
            .field("overrides", &self.overrides)
            .finish()
    }
}

/// The embedded PgBouncer's settings, written into its configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PgBouncerSettings {
    pub pool_mode: PoolMode,
    /// Server connections per database and user (>= 1; default 20).
    pub default_pool_size: u32,
    /// Client connections PgBouncer accepts (>= 1; default 10000).
    pub max_client_conn: u32,
}

impl Default for PgBouncerSettings {
    fn default() -> PgBouncerSettings {
        PgBouncerSettings {
            pool_mode: PoolMode::Transaction,
            default_pool_size: 20,
            max_client_conn: 10_000,
        }
    }
}

/// When PgBouncer gives a server connection back to its pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolMode {
    /// When the client disconnects.
    Session,
    /// After each transaction (or statement outside one).
    Transaction,
    /// After each statement.
    Statement,
}

impl PoolMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PoolMode::Session => "session",
            PoolMode::Transaction => "transaction",
            PoolMode::Statement => "statement",
        }
    }
}

/// What stands between a strategy and the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// A throwaway PgBouncer poolbench starts in front of its embedded
    /// server.
    PgBouncer,
}

/// The emulated link: the round-trip time it adds and its jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NetworkSettings {
    /// Added to every round trip (rtt/2 each way); may be 0, which still
    /// counts round trips. At most [`NetworkSettings::MAX_RTT`].
    #[serde(with = "humantime_serde_compat")]
    pub rtt: Duration,
    /// Each flight of bytes is moved by a uniform draw in ± this; at most
    /// rtt/2. Default 0.
    #[serde(with = "humantime_serde_compat")]
    pub jitter: Duration,
}

impl NetworkSettings {
    pub const MAX_RTT: Duration = Duration::from_secs(10);

    /// The link at another RTT (`--rtt`, a sweep point), its jitter capped
    /// at half of it.
    pub fn at(rtt: Duration, jitter: Duration) -> NetworkSettings {
        NetworkSettings {
            rtt,
            jitter: jitter.min(rtt / 2),
        }
    }
}

/// `[sweep]`: pool sizes and concurrency levels for `poolbench sweep`.
/// Each list is ascending without repeats; empty when the file has none.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SweepGrid {
    /// Each >= 1.
    pub pool_sizes: Vec<usize>,
    /// Each >= 1.
    pub concurrency: Vec<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Source {
    pub path: PathBuf,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunSettings {
    /// Measured time per strategy. Default 10s.
    #[serde(with = "humantime_serde_compat")]
    pub duration: Duration,
    /// Run but not recorded, before each strategy. Default 2s.
    #[serde(with = "humantime_serde_compat")]
    pub warmup: Duration,
    /// Closed-loop workers. Default 8; >= 1.
    pub concurrency: u32,
    /// Seed of the parameter generators. Default 1.
    pub seed: u64,
    /// Times every strategy runs, interleaved (A B A B …), so `compare` can
    /// tell a change from noise. Default 1; 1..=1000.
    pub rounds: u32,
    /// A request running longer is abandoned (its connection closed) and
    /// counted as `request_timeout`. Default 30s.
    #[serde(with = "humantime_serde_compat")]
    pub request_timeout: Duration,
    /// A strategy whose failed/all requests exceeds this makes the run exit
    /// 1 (its report is still written). 0.0..=1.0.
    pub max_error_rate: Option<f64>,
    /// `[run.retry]`: retry failed requests of these classes, as
    /// applications do against "too many connections".
    pub retry: Option<RetryPolicy>,
    /// Open loop (`rate`): requests arrive on a seeded schedule instead of
    /// `concurrency` closed-loop workers.
    pub arrivals: Option<Arrivals>,
}

/// How requests arrive in open loop.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Arrivals {
    /// Arrivals per second, from the start of warm-up (> 0).
    pub rate: f64,
    pub process: ArrivalProcess,
    /// Requests served at once, like an application server's limit; later
    /// arrivals wait in order (>= 1).
    pub max_in_flight: u32,
    /// A step: until `until`, arrivals come at this other rate, then at
    /// `rate` (`plan`'s burst: the warm-up at the base rate, the measured
    /// window the step's first seconds). None from a scenario.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<RateBefore>,
}

/// The rate of arrivals before a step to `Arrivals::rate`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RateBefore {
    /// Arrivals per second until the step (> 0).
    pub rate: f64,
    /// The step's time, from the start of warm-up.
    #[serde(with = "humantime_serde_compat")]
    pub until: Duration,
}

/// The distribution of the time between arrivals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ArrivalProcess {
    /// Exponential gaps (independent users), the default.
    Poisson,
    /// Equal gaps of 1/rate.
    Uniform,
}

#[derive(Debug, Clone, Serialize)]
pub struct RetryPolicy {
    /// Error class names (`too_many_connections`, `query_error:40001`, …).
    pub on: Vec<String>,
    /// Attempts in all, the first included. Default 3.
    pub max_attempts: u32,
    /// Wait before the first retry, doubling each time, with ±50% jitter.
    /// Default 100ms.
    #[serde(with = "humantime_serde_compat")]
    pub backoff: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct DatabaseSettings {
    /// `[database].dsn`; never serialised (it may hold a password).
    #[serde(skip)]
    pub dsn: Option<String>,
    pub embedded: EmbeddedSettings,
}

impl DatabaseSettings {
    /// Whether the scenario targets MySQL or MariaDB, whose SQL has `?`
    /// placeholders: the first DSN's engine in poolbench's order (`--dsn`,
    /// the file's `dsn`, DATABASE_URL; see [`TargetHint`]), else the
    /// embedded server's.
    pub fn is_mysql(&self, target: &TargetHint) -> bool {
        let embedded = self.embedded.engine == EmbeddedEngine::Mariadb;
        if target.embedded {
            return embedded;
        }
        let file = self
            .dsn
            .as_deref()
            .map(|d| d.trim_start().starts_with("mysql://"));
        target
            .flag_is_mysql
            .or(file)
            .or(target.env_is_mysql)
            .unwrap_or(embedded)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EmbeddedSettings {
    /// Which server poolbench starts when no DSN names one.
    pub engine: EmbeddedEngine,
    /// PostgreSQL's only (MariaDB's user has a password,
    /// mysql_native_password).
    pub auth: AuthMethod,
    /// Default true.
    pub tls: bool,
    /// Default 100; >= 1.
    pub max_connections: u32,
    /// The SCRAM iteration count of the stored password (PostgreSQL's
    /// default 4096 when None).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scram_iterations: Option<u32>,
    /// The only TLS version the server accepts ("1.2" or "1.3"); None:
    /// PostgreSQL's defaults (1.2 and later, 1.3 negotiated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_version: Option<TlsVersion>,
    /// libpq's sslnegotiation for poolbench's connections: direct TLS
    /// (PostgreSQL >= 17) instead of the SSLRequest round trip.
    pub sslnegotiation: SslNegotiationLever,
    /// libpq's channel_binding for poolbench's connections.
    pub channel_binding: ChannelBindingLever,
}

/// `[database.embedded] tls_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TlsVersion {
    #[serde(rename = "1.2")]
    Tls12,
    #[serde(rename = "1.3")]
    Tls13,
}

impl TlsVersion {
    pub fn parse(text: &str) -> Option<TlsVersion> {
        match text {
            "1.2" => Some(TlsVersion::Tls12),
            "1.3" => Some(TlsVersion::Tls13),
            _ => None,
        }
    }

    /// PostgreSQL's name for it (ssl_min_protocol_version).
    pub fn postgres_name(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "TLSv1.2",
            TlsVersion::Tls13 => "TLSv1.3",
        }
    }
}

/// `[database.embedded] sslnegotiation`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SslNegotiationLever {
    #[default]
    Postgres,
    Direct,
}

/// `[database.embedded] channel_binding`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelBindingLever {
    #[default]
    Prefer,
    Require,
    Disable,
}

impl Default for EmbeddedSettings {
    fn default() -> Self {
        EmbeddedSettings {
            engine: EmbeddedEngine::Postgresql,
            auth: AuthMethod::ScramSha256,
            tls: true,
            max_connections: 100,
            scram_iterations: None,
            tls_version: None,
            sslnegotiation: SslNegotiationLever::Postgres,
            channel_binding: ChannelBindingLever::Prefer,
        }
    }
}

/// MariaDB's range of `max_connections` (it silently raises a smaller one).
pub const MARIADB_MAX_CONNECTIONS: (i64, i64) = (10, 100_000);

/// `[database.embedded] engine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbeddedEngine {
    Postgresql,
    Mariadb,
}

impl EmbeddedEngine {
    pub fn parse(text: &str) -> Option<EmbeddedEngine> {
        match text {
            "postgresql" => Some(EmbeddedEngine::Postgresql),
            "mariadb" => Some(EmbeddedEngine::Mariadb),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AuthMethod {
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    #[serde(rename = "md5")]
    Md5,
    /// The password in clear (over TLS when TLS is on).
    #[serde(rename = "password")]
    Password,
    #[serde(rename = "trust")]
    Trust,
}

impl AuthMethod {
    /// The name pg_hba.conf and the scenario file use.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ScramSha256 => "scram-sha-256",
            AuthMethod::Md5 => "md5",
            AuthMethod::Password => "password",
            AuthMethod::Trust => "trust",
        }
    }

    pub fn parse(text: &str) -> Option<AuthMethod> {
        match text {
            "scram-sha-256" => Some(AuthMethod::ScramSha256),
            "md5" => Some(AuthMethod::Md5),
            "password" => Some(AuthMethod::Password),
            "trust" => Some(AuthMethod::Trust),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Strategy {
    pub name: String,
    pub kind: StrategyKind,
    /// True (default): statements prepared once per connection and reused
    /// (named); false: unnamed statements, parsed and run in one round
    /// trip, nothing kept on the connection (what transaction pooling needs).
    pub statement_cache: bool,
    /// The strategy's own target (a pooler in front of the same database);
    /// None: the session's. Never serialized: it may hold a password.
    #[serde(skip)]
    pub dsn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<Via>,
}

impl Strategy {
    /// A strategy on the session's target with cached statements.
    pub fn new(name: String, kind: StrategyKind) -> Strategy {
        Strategy {
            name,
            kind,
            statement_cache: true,
            dsn: None,
            via: None,
        }
    }

    /// The most server connections the strategy may hold at once: its pools
    /// (`instances × max_size`), or one per request in flight for fresh
    /// connections (`in_flight`: the workers, or max_in_flight in open loop).
    pub fn server_connections(&self, in_flight: u32) -> u64 {
        match &self.kind {
            StrategyKind::Fresh => u64::from(in_flight),
            StrategyKind::Pool(p) => p.max_connections() as u64,
        }
    }
}

/// The server connections `instances` application processes may hold with
/// a pool of `max_size` each: the one rule `run`'s budget and `plan` share.
pub fn connection_budget(instances: usize, max_size: usize) -> usize {
    instances.saturating_mul(max_size)
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum StrategyKind {
    /// Connect, run the request, close: every request.
    Fresh,
    /// A deadpool-postgres pool.
    Pool(PoolSettings),
}

impl StrategyKind {
    /// The kind's name in scenario files and reports.
    pub fn as_str(&self) -> &'static str {
        match self {
            StrategyKind::Fresh => "fresh",
            StrategyKind::Pool(_) => "pool",
        }
    }

    /// The kind's settings as the report records them (empty for fresh).
    pub fn settings(&self) -> serde_json::Value {
        match self {
            StrategyKind::Fresh => serde_json::json!({}),
            StrategyKind::Pool(p) => serde_json::to_value(p).unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PoolSettings {
    /// >= 1.
    pub max_size: usize,
    /// <= max_size. Default 0. Opened before measuring.
    pub min_size: usize,
    /// How long a request may wait for a connection; None waits forever.
    #[serde(with = "humantime_serde_compat::option")]
    pub wait_timeout: Option<Duration>,
    pub recycling: Recycling,
    /// Application processes, each with its own pool of `max_size` (>= 1,
    /// default 1): the strategy may hold `instances × max_size` connections.
    pub instances: usize,
    /// Lifetime, idle timeout, min idle, checkout check, reset, keepalive
    /// (all off unless set or given by `like`); left out of the report's
    /// settings when all off, as reports written before it were.
    #[serde(skip_serializing_if = "super::lifecycle::Lifecycle::is_default")]
    pub lifecycle: super::lifecycle::Lifecycle,
}

impl PoolSettings {
    /// The most server connections the strategy's pools may hold together.
    pub fn max_connections(&self) -> usize {
        connection_budget(self.instances, self.max_size)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Recycling {
    /// Default: hand the connection back as it is.
    Fast,
    /// Check the connection with a simple query before reuse.
    Verified,
    /// `DISCARD ALL`-style clean before reuse.
    Clean,
}

#[derive(Debug, Clone, Serialize)]
pub struct Query {
    pub name: String,
    /// May be 0 for one query as long as the sum is > 0.
    pub weight: u32,
    pub mode: QueryMode,
    /// At least one. A `[[query]]` with `sql`/`params` becomes one statement.
    pub statements: Vec<Statement>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QueryMode {
    /// Statements one after another on one connection (the default).
    Sequential,
    /// `transaction = true`: BEGIN … COMMIT on one connection.
    Transaction,
    /// `parallel = true`: every statement at once, each on its own connection.
    Parallel,
}

#[derive(Debug, Clone, Serialize)]
pub struct Statement {
    pub sql: String,
    /// One generator per placeholder: params[i] feeds `$i+1`.
    pub params: Vec<Param>,
}

/// A parameter generator (docs/scenarios.md, "Queries and parameters").
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Param {
    /// `{ int = [lo, hi] }`: uniform, both ends included; lo <= hi.
    Int { lo: i64, hi: i64 },
    /// `{ zipf = { max = N, s = S } }`: 1..=max, P(k) ~ 1/k^s; max >= 1, s > 0.
    Zipf { max: u64, s: f64 },
    /// `{ text = len }`: random lowercase ASCII of that many characters.
    Text { len: usize },
    /// `{ choice = [a, b, …] }`: uniform among the literals; non-empty.
    Choice(Vec<Literal>),
    /// A plain literal: the same value every time.
    Literal(Literal),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Literal {
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(String),
}
