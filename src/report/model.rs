//! report.json (docs/reports.md), schema_version 1. Serialised by the
//! json exporter, read back by `compare`; every other format is a view of it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::metrics::packed::Hdr;
use crate::metrics::{ClosedBy, PoolerStatus, Summary};

pub const SCHEMA_VERSION: u32 = 1;

/// A strategy whose failed share of requests is above this has numbers
/// that describe the few requests that succeeded: no verdict is drawn from
/// it, and the run exits 1.
pub const MOSTLY_FAILED: f64 = 0.5;

impl Report {
    /// Why the comparison of the strategies cannot be trusted, if it cannot:
    /// most requests of one of them failed.
    pub fn not_comparable(&self) -> Option<String> {
        let failed: Vec<String> = self
            .strategies
            .iter()
            .filter(|s| s.mostly_failed())
            .map(|s| {
                let top = s
                    .errors
                    .iter()
                    .max_by_key(|(_, n)| **n)
                    .map(|(class, _)| format!(", mostly {class}"))
                    .unwrap_or_default();
                format!(
                    "{:.1}% of {}'s requests failed{top}",
                    s.error_rate() * 100.0,
                    s.name
                )
            })
            .collect();
        (!failed.is_empty()).then(|| {
            format!(
                "not a valid comparison: {}; latencies describe only the requests that succeeded",
                failed.join(", ")
            )
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    pub tool: Tool,
    /// RFC 3339, UTC.
    pub started_at: String,
    /// True when the run did not finish: Ctrl-C or SIGTERM cut it short,
    /// or (the files are written so until the last write) it stopped on an
    /// error such as a full disk, or was killed.
    pub interrupted: bool,
    pub host: Host,
    pub server: Server,
    pub scenario: ScenarioInfo,
    /// The emulated link every measured connection crossed (absent when
    /// poolbench connected directly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
    /// What the rest of the report does not say about how the run was
    /// made, for `compare` to check (absent from reports written before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Conditions>,
    pub strategies: Vec<StrategyReport>,
    pub comparison: Vec<Comparison>,
    /// Per fresh strategy: where a connection's time goes, and with an
    /// emulated link, how much of it is round trips.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub explanation: Vec<Explanation>,
    /// Where this report stands among synchronised copies of poolbench
    /// (`--start-at`, `--instance-index`, `merge`): its fields sit at the top
    /// level of report.json, and are absent from a plain run's.
    #[serde(flatten)]
    pub copies: Copies,
}

/// The link emulator's settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Network {
    /// Round-trip time added to every measured connection.
    pub rtt_ms: f64,
    /// ± per flight of bytes.
    pub jitter_ms: f64,
}

/// The run conditions a report records beyond its `tool`, `host`, `server`,
/// `network` and resolved scenario: `compare` refuses two reports that
/// differ in any of them (docs/ci.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conditions {
    /// Client threads the workers ran on (`--threads`, default one per CPU).
    pub threads: u32,
    /// The CPU's model name (`/proc/cpuinfo`), when the OS says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_model: Option<String>,
    /// Where the server's processes ran: "pinned" (poolbench's own server
    /// on this machine, each backend pinned to its client thread's CPU),
    /// "kernel" (poolbench's server, the scheduler's choice: client threads
    /// not pinned, or a server it does not place), or "server's" (another
    /// server: its placement is its own).
    pub placement: String,
}

impl Conditions {
    /// The conditions of a run on `threads` client threads, against a
    /// server poolbench started (`own_server`) or not, which had `pinned`
    /// backends pinned to their client thread's CPU.
    pub fn current(threads: u32, own_server: bool, pinned: u64) -> Conditions {
        Conditions {
            threads,
            cpu_model: cpu_model(),
            placement: match (own_server, pinned) {
                (_, 1..) => "pinned",
                (true, 0) => "kernel",
                (false, 0) => "server's",
            }
            .into(),
        }
    }
}

/// The first `model name` of /proc/cpuinfo (x86, most ARM kernels).
fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim() == "model name")
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tool {
    pub name: String,
    pub version: String,
    /// "release" or "debug": debug builds make SCRAM several times slower.
    pub build: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Host {
    /// The machine's host name (a pod's name on Kubernetes), so the inputs
    /// of a merged report can be told apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub cpus: usize,
    pub os: String,
    pub arch: String,
}

impl Tool {
    /// This poolbench: its version and build profile.
    pub fn current() -> Tool {
        Tool {
            name: "poolbench".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            build: build_profile().into(),
        }
    }
}

/// "release" or "debug": the build this poolbench is.
pub fn build_profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

impl Host {
    /// The machine poolbench runs on.
    pub fn current() -> Host {
        Host {
            name: host_name(),
            cpus: crate::placement::cpus(),
            os: std::env::consts::OS.into(),
            arch: std::env::consts::ARCH.into(),
        }
    }
}

/// gethostname(2); None if it fails or is not UTF-8.
fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its whole length, which is passed; on
    // success the name is NUL-terminated within it (truncated names may not
    // be, so the length is bounded by the buffer either way).
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    std::str::from_utf8(&buf[..end])
        .ok()
        .filter(|n| !n.is_empty())
        .map(str::to_string)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Server {
    /// "postgresql", "mariadb" or "mysql"; reports written before it are
    /// PostgreSQL's.
    #[serde(default = "postgresql")]
    pub engine: String,
    /// `server_version`, e.g. "15.18 (Debian 15.18-0+deb12u1)".
    pub version: String,
    /// How clients authenticate: known for the embedded server; otherwise
    /// what the server asked for when poolbench logged in (or SYSTEM_USER's
    /// method on PostgreSQL 16+), or "unknown (why)".
    pub auth_method: String,
    /// Whether poolbench's connections use TLS.
    pub ssl: bool,
    pub max_connections: u32,
    pub embedded: bool,
    /// Where it runs, password redacted.
    pub dsn: String,
    /// Where the target came from: `--dsn`, `[database].dsn`,
    /// `DATABASE_URL`, the libpq variables set (`PGHOST,PGPORT`),
    /// `embedded` or `--embedded`. Empty in reports written before it.
    #[serde(default)]
    pub source: String,
}

fn postgresql() -> String {
    "postgresql".into()
}

impl Server {
    /// The engine as headers name it: PostgreSQL, MariaDB or MySQL.
    pub fn engine_name(&self) -> &'static str {
        match self.engine.as_str() {
            "postgresql" => "PostgreSQL",
            "mariadb" => "MariaDB",
            _ => "MySQL",
        }
    }

    /// For headers: "embedded at DSN", or "external at DSN (from SOURCE)".
    pub fn location(&self) -> String {
        match (self.embedded, self.source.as_str()) {
            (true, "--embedded") => format!("embedded (--embedded) at {}", self.dsn),
            (true, _) => format!("embedded at {}", self.dsn),
            (false, "") => format!("external at {}", self.dsn),
            (false, source) => format!("external at {} (from {source})", self.dsn),
        }
    }
}

impl Server {
    /// The settings in which two reports' servers differ ("version 15.1 vs
    /// 16.4"): reports from different servers are not compared or merged
    /// without `--allow-different`. The DSN is left out: the same server is
    /// often reached by different names.
    pub fn differences(&self, other: &Server) -> Vec<String> {
        [
            // PostgreSQL against MySQL: a different database, not a change.
            ("engine", self.engine.clone(), other.engine.clone()),
            ("version", self.version.clone(), other.version.clone()),
            (
                "auth_method",
                self.auth_method.clone(),
                other.auth_method.clone(),
            ),
            ("ssl", self.ssl.to_string(), other.ssl.to_string()),
            (
                "max_connections",
                self.max_connections.to_string(),
                other.max_connections.to_string(),
            ),
            (
                "embedded",
                self.embedded.to_string(),
                other.embedded.to_string(),
            ),
        ]
        .into_iter()
        .filter(|(_, a, b)| a != b)
        .map(|(name, a, b)| format!("{name} {a} vs {b}"))
        .collect()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioInfo {
    pub name: String,
    pub path: String,
    /// sha256 of the scenario file's bytes: `compare` refuses reports of
    /// different scenarios.
    pub sha256: String,
    /// The scenario as run, after command-line overrides (no DSN in it).
    pub resolved: serde_json::Value,
}

/// A strategy's kind as reports name it ("fresh", "pool"): the scenario's
/// kind without its settings. Code that treats kinds differently matches
/// it exhaustively, so a new kind is a compile error wherever it must be
/// placed (explanations, comparisons, fits), never a silent omission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A connection opened and closed for every request.
    Fresh,
    /// Connections kept open and lent to requests.
    Pool,
    /// An application watched through `poolbench watch`: its own
    /// connections, whatever it does with them.
    Observed,
}

impl Kind {
    /// The name in report.json, summary.csv and sweep files.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Fresh => "fresh",
            Kind::Pool => "pool",
            Kind::Observed => "observed",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StrategyReport {
    pub name: String,
    pub kind: Kind,
    /// The strategy's settings (max_size, min_size, wait_timeout, recycling).
    pub settings: serde_json::Value,
    /// Successful requests in the measured window.
    pub requests: u64,
    /// Threads the workers ran on, one per core; they share the strategy's
    /// pools, so this never changes what a pool is.
    #[serde(default = "one")]
    pub shards: u32,
    /// The strategy's own target (its `dsn`, password redacted); absent
    /// when it uses the run's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The most server connections the strategy may hold at once (its
    /// pools' `instances × max_size`, or one per request in flight for
    /// fresh), to read against the server's `max_connections`; absent when
    /// a pooler of its own target decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_server_connections: Option<u64>,
    /// Attempts beyond the first made by `[run.retry]` (0 without it).
    #[serde(default)]
    pub retries: u64,
    /// Failed requests by class (the timeline's `errors` add up to them).
    pub errors: BTreeMap<String, u64>,
    /// Failures that are not requests, by class: a pool that could not
    /// fill to min_size before measuring (once per worker thread), a worker
    /// thread that could not start. Their messages are in `error_samples`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub startup_errors: BTreeMap<String, u64>,
    /// A few messages of each error class.
    pub error_samples: BTreeMap<String, Vec<String>>,
    pub throughput_rps: f64,
    /// Connections the strategy opened, counted as they were opened
    /// (warm-up and pool fill included).
    pub connections_opened: u64,
    /// Time to fill the pool to min_size before measuring (0 for fresh).
    pub startup_ms: f64,
    /// The measured window, from its start to the end of its last request.
    pub measured_s: f64,
    /// Open loop: arrivals per second the seeded schedule offered in the
    /// measured window (around `[run] rate`), and successful requests per
    /// second achieved: those that ended inside the window, over the
    /// window (as pgbench -R counts; the queue left at the deadline is not
    /// counted, nor the time it took to drain). Absent in closed loop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offered_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub achieved_rate: Option<f64>,
    /// Open loop: whether poolbench's generator fell behind its schedule
    /// (more than 1% of the window's arrivals dispatched over 10 ms late: the
    /// `lag` phase), and the worst lag of any arrival. When saturated, the
    /// latencies measure poolbench on this machine, not the database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_saturated: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_lag_max_us: Option<u64>,
    /// Open loop: arrivals counted as request_timeout without being sent
    /// (their request_timeout passed before a handler took them, or the
    /// arrival queue was full); part of `errors.request_timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired: Option<u64>,
    /// Phase → latency summary (successful requests; `tcp`, `tls` and
    /// `startup` of every connection opened).
    pub phases: BTreeMap<String, Summary>,
    /// Round trips counted by the link emulator (absent without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round_trips: Option<RoundTripsReport>,
    /// Whose CPU each connection's setup used, per connection opened
    /// (summaries in µs of CPU time): `client_us` (the opening thread's,
    /// split as `client_tcp_us`, `client_tls_us`, `client_startup_us`;
    /// `client_scram_us` what computed SCRAM's proof) and
    /// `server_us` (the backend's, fork to ReadyForQuery, where its process
    /// is visible: the embedded server, or a server at this machine's
    /// addresses whose backend is found to be the connection's), and on
    /// PostgreSQL >= 18 the embedded server's logged `server_fork_us` and
    /// `server_auth_us` (wall times). Absent when no connection's CPU was
    /// measured (MySQL, or a strategy that opened none).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub setup_cpu: BTreeMap<String, Summary>,
    /// Why `setup_cpu` has no `server_us` though the client's CPU was
    /// measured: the server on another host, or its backends not found
    /// here. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_cpu_absent: Option<String>,
    /// Query → summary of its `total`.
    pub per_query: BTreeMap<String, Summary>,
    /// Each round apart (`[run] rounds`; one entry for a single round), the
    /// samples `compare` tests a change against.
    pub rounds: Vec<RoundStats>,
    pub timeline: Vec<TimelineRow>,
    /// `watch`: transactions the application ran (its `requests`), and
    /// statements (each simple Query and each Execute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transactions: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statements: Option<u64>,
    /// `watch`: what the application's connections did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<ObservedReport>,
    /// Seconds in which the pools replaced more than a third of their
    /// connections (`storms`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub storms: Vec<Storm>,
}

/// What `watch` saw of an application's connections beyond the phases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservedReport {
    /// connections_opened / transactions: 1.0 for a connection per
    /// transaction, near 0 for a pool.
    pub connections_per_transaction: f64,
    /// Setup time (accept to ReadyForQuery, summed) over setup plus time in
    /// statements (summed): the share of the application's database time
    /// spent opening connections.
    pub setup_share: f64,
    pub setup_ms: f64,
    pub statements_ms: f64,
    /// The most transactions in progress at once, and the mean number in
    /// progress during the busiest second: a pool of the first size would
    /// have held every transaction without waiting.
    pub peak_concurrent_transactions: u64,
    pub busiest_second_concurrency: f64,
    /// How the connections ended (terminated, client_closed,
    /// server_closed, refused, unreachable, malformed, stopped).
    pub ended: BTreeMap<String, u64>,
    /// Cancel requests forwarded to the server.
    pub cancel_requests: u64,
    /// Each second since the watch began.
    pub seconds: Vec<ObservedSecond>,
}

/// One second of a watch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservedSecond {
    pub second: u64,
    pub opened: u64,
    pub closed: u64,
    /// Connections open at the end of the second.
    pub open: u64,
    pub statements: u64,
    pub transactions: u64,
    pub errors: u64,
    pub peak_in_transaction: u64,
}

/// Round trips: of each connection's setup (the TCP handshake to
/// ReadyForQuery), and of each successful request (acquire to release; for
/// a fresh connection its setup included).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoundTripsReport {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect: Option<Counts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Counts>,
}

/// A distribution of small counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub count: u64,
    pub min: u64,
    pub p50: u64,
    pub max: u64,
    pub mean: f64,
    /// Base64 HdrHistogram V2+DEFLATE, like a phase's (`merge` adds them).
    #[serde(default)]
    pub hdr: String,
}

impl Counts {
    pub fn of(h: &hdrhistogram::Histogram<u64>) -> Option<Counts> {
        (!h.is_empty()).then(|| Counts {
            count: h.len(),
            min: h.min(),
            p50: h.value_at_quantile(0.5),
            max: h.max(),
            mean: round(h.mean(), 2),
            hdr: crate::metrics::encode_histogram(h),
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoundStats {
    /// 1-based.
    pub round: u32,
    pub requests: u64,
    pub errors: u64,
    pub throughput_rps: f64,
    /// Total latency of the round's successful requests.
    pub p50_us: u64,
    pub p99_us: u64,
    /// Wall-clock start of the round's measured window, milliseconds since
    /// the Unix epoch (0 in reports written before it was recorded). Its
    /// timeline's second N began at this + N × 1000.
    #[serde(default)]
    pub started_unix_ms: u64,
}

impl StrategyReport {
    /// Its setups' client CPU was measured, the server's was not.
    pub fn lacks_server_cpu(&self) -> bool {
        self.setup_cpu.contains_key("client_us") && !self.setup_cpu.contains_key("server_us")
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// More than half of its requests failed (see [`MOSTLY_FAILED`]).
    pub fn mostly_failed(&self) -> bool {
        self.error_rate() > MOSTLY_FAILED
    }

    /// Failed requests / all requests, in [0, 1].
    pub fn error_rate(&self) -> f64 {
        let errors = self.error_count();
        let all = self.requests + errors;
        if all == 0 {
            0.0
        } else {
            errors as f64 / all as f64
        }
    }

    pub fn total(&self) -> Option<&Summary> {
        self.phases.get("total")
    }

    /// Open loop: who could not keep up, if anyone. poolbench itself when
    /// its generator fell behind its schedule (then the latencies measure
    /// poolbench on this machine, not the database); else the strategy,
    /// when it achieved less than 95% of the offered rate, and by how much.
    pub fn fell_behind(&self) -> Option<String> {
        let (offered, achieved) = (self.offered_rate?, self.achieved_rate?);
        let rps = crate::report::format::rps;
        if self.generator_saturated == Some(true) {
            let worst = self
                .generator_lag_max_us
                .map(|us| {
                    format!(
                        " (arrivals dispatched up to {} late)",
                        crate::report::format::duration_us(us)
                    )
                })
                .unwrap_or_default();
            return Some(format!(
                "poolbench could not keep up with {} req/s on this machine{worst}: {}'s \
                 latencies measure poolbench, not the database",
                rps(offered),
                self.name
            ));
        }
        if achieved >= offered * 0.95 {
            return None;
        }
        let queued = self
            .phases
            .get("queue")
            .map(|q| {
                format!(
                    ", p99 {} queued",
                    crate::report::format::duration_us(q.p99_us)
                )
            })
            .unwrap_or_default();
        let expired = match self.expired {
            Some(n) if n > 0 => format!(", {n} arrivals expired unsent"),
            _ => String::new(),
        };
        Some(format!(
            "{} could not keep up with {} req/s offered: {} req/s achieved{queued}{expired}",
            self.name,
            rps(offered),
            rps(achieved)
        ))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TimelineRow {
    /// The round (1-based) this second belongs to.
    pub round: u32,
    /// Seconds since the start of the measured window.
    pub second: u64,
    pub rps: f64,
    pub errors: u64,
    /// The total latency of the second's successful requests; null when
    /// none succeeded (a second without a request has no latency, not 0).
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub pool_size: Option<u64>,
    pub pool_available: Option<u64>,
    pub pool_waiting: Option<u64>,
    /// Client backends on the server, the monitor's own connection excluded.
    pub server_backends: Option<u64>,
    /// Through the embedded PgBouncer: its `SHOW POOLS` that second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgbouncer: Option<PoolerStatus>,
    /// Phase → that second's histogram of successful requests (base64
    /// HdrHistogram V2+DEFLATE, like `phases[].hdr`): the intervals of the
    /// hlog files, and what `merge` adds up exactly.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hdr: BTreeMap<String, Hdr>,
    /// Open loop, sampled once in the second: requests in service, and
    /// arrivals waiting for a free handler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued: Option<u64>,
    /// Open loop: arrivals the schedule offered in the second, successful
    /// requests that ended in it (`rps`), and arrivals that expired in it
    /// without being sent (counted in `errors` as request_timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offered: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub achieved: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired: Option<u64>,
    /// A pool's connections opened and closed in the second.
    #[serde(flatten, default)]
    pub churn: PoolChurn,
}

/// The connections a strategy's pools opened and closed in one second,
/// closed ones by cause (absent without a pool, and in reports written
/// before they were counted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PoolChurn {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_by: Option<ClosedBy>,
}

impl PoolChurn {
    /// Connections replaced: closed and opened in the same second.
    pub fn replaced(&self) -> Option<u64> {
        Some(self.opened?.min(self.closed?))
    }

    /// Two copies' pools added up.
    pub fn plus(self, o: PoolChurn) -> PoolChurn {
        let add = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0).saturating_add(b.unwrap_or(0))),
        };
        PoolChurn {
            opened: add(self.opened, o.opened),
            closed: add(self.closed, o.closed),
            closed_by: match (self.closed_by, o.closed_by) {
                (None, None) => None,
                (a, b) => Some(a.unwrap_or_default().plus(b.unwrap_or_default())),
            },
        }
    }
}

/// A second in which a pool replaced more than a third of its
/// connections, and its latency against the others'.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Storm {
    pub round: u32,
    pub second: u64,
    /// Connections closed and opened in that second.
    pub replaced: u64,
    /// That second's p99 of `total` (null without a successful request).
    pub p99_us: Option<u64>,
    /// The median of the other seconds' p99 (those not storms).
    pub others_p99_us: Option<u64>,
}

/// The seconds of `timeline` in which more than a third of `pool_size`
/// connections were replaced, each with its p99 against the median of the
/// other seconds' p99.
pub fn storms(timeline: &[TimelineRow], pool_size: u64) -> Vec<Storm> {
    if pool_size == 0 {
        return Vec::new();
    }
    let is_storm = |t: &TimelineRow| t.churn.replaced().is_some_and(|n| n * 3 > pool_size);
    let mut others: Vec<u64> = timeline
        .iter()
        .filter(|t| !is_storm(t))
        .filter_map(|t| t.p99_us)
        .collect();
    others.sort_unstable();
    let others_p99_us = (!others.is_empty()).then(|| others[others.len() / 2]);
    timeline
        .iter()
        .filter(|t| is_storm(t))
        .map(|t| Storm {
            round: t.round,
            second: t.second,
            replaced: t.churn.replaced().unwrap_or(0),
            p99_us: t.p99_us,
            others_p99_us,
        })
        .collect()
}

/// A report's place among synchronised copies of poolbench. A copy records
/// its index, the start it shared and its clock; a merged report lists the
/// reports it was made of.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Copies {
    /// This copy's index (`--instance-index`, or `JOB_COMPLETION_INDEX`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_index: Option<u32>,
    /// The start the copies shared (`--start-at`), RFC 3339 UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<String>,
    /// The server's clock minus this machine's, in milliseconds, measured on
    /// the monitor connection before measuring. Each copy times its window
    /// by its own clock, so copies whose offsets differ measured windows
    /// that far apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_offset_ms: Option<f64>,
    /// A merged report: the reports it was made of.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<MergedInput>,
}

/// One report of a merge, as the merged report lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MergedInput {
    /// The report.json it was read from.
    pub path: String,
    pub host: Host,
    pub instance_index: Option<u32>,
    pub started_at: String,
    pub start_at: Option<String>,
    pub clock_offset_ms: Option<f64>,
    pub interrupted: bool,
    /// Its measured windows, milliseconds since the Unix epoch: the start of
    /// its first round to the end of its last (0 when the report does not
    /// record them).
    pub window_start_unix_ms: u64,
    pub window_end_unix_ms: u64,
    /// Each strategy as this input measured it, rounds kept apart.
    pub strategies: Vec<MergedInputStrategy>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MergedInputStrategy {
    pub name: String,
    pub requests: u64,
    pub errors: u64,
    pub throughput_rps: f64,
    pub rounds: Vec<RoundStats>,
}

/// A fresh strategy against a pool strategy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    pub fresh: String,
    pub pool: String,
    /// fresh total p50 − pool total p50: what a per-request connection adds.
    pub setup_cost_p50_us: i64,
    /// fresh total p50 / pool total p50.
    pub p50_ratio: f64,
    pub p99_ratio: f64,
    /// fresh throughput / pool throughput.
    pub throughput_ratio: f64,
}

impl Comparison {
    pub fn between(fresh: &StrategyReport, pool: &StrategyReport) -> Option<Comparison> {
        let (f, p) = (fresh.total()?, pool.total()?);
        if f.count == 0 || p.count == 0 {
            return None;
        }
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        Some(Comparison {
            fresh: fresh.name.clone(),
            pool: pool.name.clone(),
            setup_cost_p50_us: f.p50_us as i64 - p.p50_us as i64,
            p50_ratio: round(ratio(f.p50_us, p.p50_us), 3),
            p99_ratio: round(ratio(f.p99_us, p.p99_us), 3),
            throughput_ratio: if pool.throughput_rps > 0.0 {
                round(fresh.throughput_rps / pool.throughput_rps, 4)
            } else {
                0.0
            },
        })
    }

    /// The pool strategy with the highest throughput: the one a headline
    /// and an explanation compare with.
    pub fn best_pool(strategies: &[StrategyReport]) -> Option<&StrategyReport> {
        strategies
            .iter()
            .filter(|s| match s.kind {
                Kind::Pool => true,
                Kind::Fresh | Kind::Observed => false,
            })
            .max_by(|a, b| a.throughput_rps.total_cmp(&b.throughput_rps))
    }

    /// Every fresh strategy against every pool strategy.
    pub fn all(strategies: &[StrategyReport]) -> Vec<Comparison> {
        let fresh = strategies.iter().filter(|s| match s.kind {
            Kind::Fresh => true,
            Kind::Pool | Kind::Observed => false,
        });
        fresh
            .flat_map(|f| {
                let pools = strategies.iter().filter(|s| match s.kind {
                    Kind::Pool => true,
                    Kind::Fresh | Kind::Observed => false,
                });
                pools.filter_map(move |p| Comparison::between(f, p))
            })
            .collect()
    }
}

fn one() -> u32 {
    1
}

pub fn round(x: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (x * m).round() / m
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// The fresh strategy.
    pub strategy: String,
    /// The pool compared with: the one with the highest throughput.
    pub pool: Option<String>,
    /// The connect phase of its requests.
    pub connect_ms: f64,
    /// Of the connections it opened: the TCP handshake, the SSLRequest and
    /// TLS handshake (absent without TLS), StartupMessage to ReadyForQuery.
    pub tcp_ms: Option<f64>,
    pub tls_ms: Option<f64>,
    pub startup_ms: Option<f64>,
    pub query_ms: f64,
    pub pool_query_ms: Option<f64>,
    /// `query_ms − pool_query_ms`: what the first query on a new
    /// connection costs more (on a new backend: statements prepared again,
    /// caches cold; through a pooler: a server connection to be lent).
    pub first_query_extra_ms: Option<f64>,
    pub close_ms: Option<f64>,
    /// The whole request, as the application sees it.
    pub total_ms: f64,
    /// Across an emulated link: the round trips in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<RoundTripShare>,
    /// The pooler its connections went through (`via`, "pgbouncer"):
    /// connecting started no backend, and its first query on a connection
    /// borrowed one of the pooler's. Absent when it connected directly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// `statement_cache = false`: its statements were unnamed, parsed on
    /// every query, so none was prepared again. Absent when true.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub statement_cache: bool,
    /// Whose CPU the connect used (means per connection opened).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuShare>,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// Whose CPU a connection's setup used, against the connect's wall time:
/// the rest is waiting (round trips, and queueing for the host's CPUs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuShare {
    pub client_ms: f64,
    /// SCRAM's client proof (PBKDF2), part of `client_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_scram_ms: Option<f64>,
    /// The backend's, where its process is visible (the embedded server,
    /// or a local one whose backends were found).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_ms: Option<f64>,
    /// PostgreSQL >= 18's logged setup durations (wall time): fork and
    /// authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_fork_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_auth_ms: Option<f64>,
    /// Why `server_ms` is absent (the strategy's `server_cpu_absent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_absent: Option<String>,
    /// `connect_ms` minus the CPU above, at least 0.
    pub waiting_ms: f64,
    /// The host's CPUs, which client and server shared.
    pub cpus: usize,
}

/// How much of the time is round trips across the emulated link: the
/// median count × the RTT, against the mean time it is part of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundTripShare {
    pub rtt_ms: f64,
    /// A connection's setup: TCP handshake to ReadyForQuery.
    pub connect_round_trips: u64,
    pub connect_round_trips_ms: f64,
    /// A whole request, its connection's setup included.
    pub request_round_trips: u64,
    pub request_round_trips_ms: f64,
    /// The pool's request: usually 1 (a cached statement), 2 when it must
    /// prepare.
    pub pool_request_round_trips: Option<u64>,
    pub pool_request_round_trips_ms: Option<f64>,
    pub pool_total_ms: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A timeline row from its JSON fields (old rows have no churn).
    fn row(second: u64, p99_us: u64, churn: &str) -> TimelineRow {
        serde_json::from_str(&format!(
            r#"{{"round": 1, "second": {second}, "rps": 100.0, "errors": 0, "p50_us": 1000,
                "p99_us": {p99_us}, "pool_size": 10, "pool_available": 0, "pool_waiting": 0,
                "server_backends": 10 {churn}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn a_storm_is_a_third_of_the_pool_replaced_in_a_second() {
        let quiet = r#", "opened": 0, "closed": 0"#;
        let timeline = [
            row(0, 2_000, r#", "opened": 10, "closed": 0"#),
            row(1, 2_000, quiet),
            row(
                2,
                9_000,
                r#", "opened": 10, "closed": 10, "closed_by": {"lifetime": 10, "idle": 0, "check": 0, "error": 0}"#,
            ),
            row(3, 3_000, r#", "opened": 3, "closed": 3"#),
            row(4, 2_500, ""),
        ];
        // The pool's first connections are opened, not replaced; 3 of 10
        // is not more than a third; a row without counts is none.
        let storms = storms(&timeline, 10);
        assert_eq!(
            storms,
            [Storm {
                round: 1,
                second: 2,
                replaced: 10,
                p99_us: Some(9_000),
                others_p99_us: Some(2_500),
            }]
        );
        assert_eq!(timeline[4].churn, PoolChurn::default());
        assert!(super::storms(&timeline, 0).is_empty());
        // Written back as it was read.
        let json = serde_json::to_value(&timeline[2]).unwrap();
        assert_eq!(json["closed_by"]["lifetime"], 10);
        assert!(serde_json::to_value(&timeline[4])
            .unwrap()
            .get("opened")
            .is_none());
    }

    #[test]
    fn a_server_without_an_engine_is_postgresql() {
        let old = r#"{"version": "16.4", "auth_method": "scram-sha-256", "ssl": true,
            "max_connections": 100, "embedded": true, "dsn": "postgres://u@h/d"}"#;
        let server: Server = serde_json::from_str(old).unwrap();
        assert_eq!(server.engine, "postgresql");
        assert_eq!(server.engine_name(), "PostgreSQL");
        let mut mariadb = server.clone();
        mariadb.engine = "mariadb".into();
        assert_eq!(
            server.differences(&mariadb),
            ["engine postgresql vs mariadb"]
        );
    }

    #[test]
    fn a_kind_is_written_and_read_by_its_name() {
        for kind in [Kind::Fresh, Kind::Pool, Kind::Observed] {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(serde_json::from_str::<Kind>(&json).unwrap(), kind);
        }
        // A kind this build does not know is refused, not read as another.
        assert!(serde_json::from_str::<Kind>("\"pgbouncer\"").is_err());
    }
}
