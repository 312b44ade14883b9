//! The command line: clap derive structs whose doc comments are the
//! `--help` text. Values are checked here only as far as their type; the
//! commands (`commands/`) turn them into checked settings. This file imports
//! nothing from the rest of poolbench.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Measure what opening a PostgreSQL connection per request costs compared
/// with drawing it from a pool, on a real server, for your workload.
///
/// Without a DSN, poolbench starts a throwaway PostgreSQL of its own from the
/// machine's server binaries, and removes it afterwards.
#[derive(Debug, Parser)]
#[command(name = "poolbench", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario: every strategy in turn, then the comparison and reports.
    Run(RunArgs),
    /// Parse and check scenario files without touching a database.
    Validate(ValidateArgs),
    /// Run the embedded PostgreSQL server in the foreground and print how to
    /// reach it: a URL, and PG* lines to export for psql, pgbench or
    /// poolbench (PGSSLROOTCERT is its CA: with PGSSLMODE=verify-full the
    /// certificate's name is checked too). With `--engine mariadb`, a
    /// throwaway MariaDB instead: its mysql:// URL and the MYSQL_HOST,
    /// MYSQL_TCP_PORT and MYSQL_PWD lines for the mysql and mariadb clients
    /// (its CA on stderr, for ssl-ca).
    Server(ServerArgs),
    /// Put a proxy between your application and PostgreSQL, and watch what
    /// the application does: how many connections it opens and what each
    /// setup costs (tcp, tls, startup), its statements and transactions,
    /// idle time, how connections end; then write a report like run's for
    /// the strategy "observed", and a verdict in the application's terms.
    ///
    /// It prints, like `server`, a DSN for the application and PG* lines
    /// (PGSSLROOTCERT is the CA of the certificate the proxy presents, so
    /// sslmode=verify-full works), then relays until Ctrl-C, SIGTERM or
    /// --duration. SCRAM is relayed message by message (the proxy never
    /// sees a password); only SCRAM-SHA-256 is offered to the application,
    /// since channel binding (SCRAM-SHA-256-PLUS) cannot cross the proxy's
    /// TLS. Exit 130 when a signal ended it (the report is written).
    Watch(WatchArgs),
    /// Compare two reports: the regression gate for CI. Exit 1 on a
    /// regression, 2 on unreadable reports, on reports whose run conditions
    /// differ (each named) and when nothing was compared (no strategy in
    /// common, or one with no successful request in a report).
    ///
    /// For every strategy in both reports: total p50, p99, p99.9, throughput
    /// and error rate, with base, candidate, change and a verdict
    /// (regression, improvement, within noise, ok; info for metrics without
    /// a threshold). When both reports have 3 or more rounds (`[run] rounds`,
    /// `--rounds`), a change is a regression only if the whole bootstrap 95%
    /// confidence interval over the rounds lies beyond its threshold, and
    /// "within noise" if it is beyond on average only; each gated metric's
    /// power is printed (the change these rounds can detect, the rounds its
    /// threshold needs). With fewer rounds, single values are compared.
    /// Several BASELINEs (runs of one build under the same conditions) make
    /// one baseline: their rounds are pooled, so the verdict does not
    /// depend on one baseline run's luck (docs/ci.md, recommended gates).
    Compare(CompareArgs),
    /// Run the scenario's pool strategy at each pool size (and concurrency)
    /// on one server; fit the Universal Scalability Law; mark the knee.
    /// Writes sweep.json (for `plan`), sweep.csv and sweep.html. With
    /// --rates, every strategy at each arrival rate; with --rtts, every
    /// strategy at each emulated round-trip time. Exit 1 when no point
    /// completed a request.
    Sweep(SweepArgs),
    /// The smallest pool size meeting a p99 target at a request rate,
    /// searched by measurement: one instance's pool at one instance's share
    /// of the rate in open loop (Poisson), each size over several rounds,
    /// from the model's proposal (an M/G/c simulation fed with the service
    /// times measured at that rate; a sweep is an optional prior), in each
    /// pool library's own setting names. Exit 0 when a size met the target,
    /// 1 when none can (the reason in one sentence), 2 on bad input.
    Plan(PlanArgs),
    /// Merge the reports of copies that ran the same scenario against the
    /// same server at the same time (`--start-at`, `--instance-index`) into
    /// one report, exactly: histograms added, counts summed, throughput over
    /// the window every copy shares, timelines aligned by wall-clock second.
    ///
    /// The result is a report directory like a run's, which `compare` reads.
    /// Reports of different scenarios (sha256) or servers are refused (exit
    /// 2) unless --allow-different; so are the same run given twice, counts
    /// that overflow, and a report whose totals disagree with its rounds,
    /// timeline or histograms.
    Merge(MergeArgs),
    /// Print a shell completion script, e.g.
    /// `poolbench completions bash > /etc/bash_completion.d/poolbench`.
    Completions(CompletionsArgs),
    /// Print the man page (roff), e.g. `poolbench man | man -l -`; with
    /// --dir, write poolbench.1 and one page per command there.
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write poolbench.1, poolbench-run.1 … into this directory instead of
    /// printing poolbench.1.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The scenario file (TOML).
    pub scenario: PathBuf,

    #[command(flatten)]
    pub measure: MeasureArgs,

    /// Directory for report.json, summary.csv, timeline.csv, report.html
    /// and hlog/ [default: results/<name>-<UTC timestamp>/].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Closed-loop workers, each one request at a time (overrides
    /// [run].concurrency).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: Option<u32>,

    /// Open loop: requests arrive at R per second on a seeded schedule
    /// (overrides [run].rate), and latency is measured from each request's
    /// intended arrival.
    #[arg(long, value_name = "R", value_parser = parse_positive)]
    pub rate: Option<f64>,

    /// Run only this strategy (repeatable); the others are skipped.
    #[arg(long, value_name = "STRATEGY")]
    pub only: Vec<String>,

    /// Run every strategy N times, interleaved, so `compare` can tell a
    /// change from noise (overrides [run].rounds).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub rounds: Option<u32>,

    /// No header, progress bars or table: only errors and the headline.
    #[arg(long, short)]
    pub quiet: bool,

    /// Replace the results in an existing --out directory: the earlier
    /// run's report files (report.*, the CSVs, hlog/*.hlog) are removed
    /// first, poolbench's files only.
    #[arg(long)]
    pub force: bool,

    /// Write the data only (report.json, CSVs, hlog/), no report.html.
    #[arg(long)]
    pub no_html: bool,
}

#[derive(Debug, Args)]
pub struct SweepArgs {
    /// The scenario file (TOML); its pool strategy is the template.
    pub scenario: PathBuf,

    /// Pool sizes to measure, comma-separated, e.g. 1,2,4,8,16 (overrides
    /// [sweep].pool_sizes).
    #[arg(long, value_name = "N,...", value_delimiter = ',',
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub pool_sizes: Vec<u32>,

    /// Closed-loop worker counts, comma-separated (overrides
    /// [sweep].concurrency; default [run].concurrency). With --rtts or
    /// --levers, one count: 1 measures each request's own round trips,
    /// without queueing.
    #[arg(long, value_name = "N,...", value_delimiter = ',',
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: Vec<u32>,

    /// Arrival rates, comma-separated, e.g. 100,200,400,800: run every
    /// strategy in open loop at each rate instead of sweeping pool sizes,
    /// and mark the rate where each one saturates.
    #[arg(long, value_name = "R,...", value_delimiter = ',', value_parser = parse_positive,
          conflicts_with_all = ["pool_sizes", "concurrency", "strategy"])]
    pub rates: Vec<f64>,

    /// Round-trip times, comma-separated, e.g. 0ms,1ms,5ms,20ms,50ms: run
    /// the scenario's strategies across an emulated link at each RTT
    /// instead of sweeping pool sizes, and fit a per-request connection's
    /// setup cost as a + b × RTT (b: the round trips pooling saves).
    #[arg(long, value_name = "D,...", value_delimiter = ',', value_parser = parse_duration,
          conflicts_with_all = ["pool_sizes", "strategy", "rates", "rtt"])]
    pub rtts: Vec<Duration>,

    /// Run the scenario's fresh strategy on the embedded server as set up,
    /// then on a server of its own under each lever of a connection's cost
    /// (auth method, scram_iterations, channel_binding, TLS version, TLS
    /// off, direct TLS on PostgreSQL >= 17), and print what each saves in
    /// time, round trips and client/server CPU (at the scenario's RTT or
    /// --rtt), with whether it is safe to change. Takes one --concurrency.
    #[arg(long, conflicts_with_all = ["pool_sizes", "strategy", "rates", "rtts"])]
    pub levers: bool,

    /// The pool strategy to sweep, when the scenario has several.
    #[arg(long, value_name = "NAME")]
    pub strategy: Option<String>,

    #[command(flatten)]
    pub measure: MeasureArgs,

    /// Directory for sweep.json, sweep.csv and sweep.html
    /// [default: results/<name>-sweep-<UTC timestamp>/].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// No header or progress bars: only the table.
    #[arg(long, short)]
    pub quiet: bool,

    /// Replace sweep.json, sweep.csv and sweep.html of an existing --out
    /// directory (removed first).
    #[arg(long)]
    pub force: bool,

    /// Write the data only (sweep.json, sweep.csv), no sweep.html.
    #[arg(long)]
    pub no_html: bool,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The reports: report.json files, or the run directories holding them.
    #[arg(required = true, num_args = 2.., value_name = "REPORT|DIR")]
    pub inputs: Vec<PathBuf>,

    /// Directory for the merged report.json, summary.csv and timeline.csv.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// Merge reports of different scenarios (sha256) or servers anyway, with
    /// a warning.
    #[arg(long)]
    pub allow_different: bool,

    /// No table: only warnings and the headline.
    #[arg(long, short)]
    pub quiet: bool,

    /// Replace the results in an existing --out directory: the earlier
    /// run's report files (report.*, the CSVs, hlog/*.hlog) are removed
    /// first, poolbench's files only.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The scenario whose pool strategy is sized (its first `kind = "pool"`,
    /// or the sweep's template) [default: the sweep's scenario].
    #[arg(value_name = "SCENARIO.toml")]
    pub scenario: Option<PathBuf>,

    /// A sweep.json written by `poolbench sweep` (or its directory): an
    /// optional prior. Its Erlang C plan is shown and the search starts
    /// from it; without a scenario, its scenario is measured.
    #[arg(long, value_name = "PATH")]
    pub sweep: Option<PathBuf>,

    /// Target traffic, requests per second over all instances.
    #[arg(long, value_name = "R", value_parser = parse_positive)]
    pub rps: f64,

    /// Target p99 of a request's time from its arrival to the end of its
    /// queries (wait for a connection included), e.g. 50ms, 0.5ms, 1s.
    #[arg(long, value_name = "T", value_parser = parse_latency_us)]
    pub p99: f64,

    /// Application instances, each with its own pool: one instance's pool
    /// is measured at one instance's share of --rps.
    #[arg(long, value_name = "K", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub instances: u32,

    /// The server's max_connections [default: the measured server's]:
    /// the search never tries more than (M − reserved) / K connections.
    #[arg(long, value_name = "M", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: Option<u32>,

    /// Connections kept free for administration
    /// (superuser_reserved_connections, PostgreSQL's default 3); must be
    /// below max_connections.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub reserved: u32,

    /// With --sweep: the sweep concurrency to plan the prior from
    /// [default: the highest measured].
    #[arg(long, value_name = "C")]
    pub concurrency: Option<u32>,

    /// The traffic most of the time, for the min size [default: --rps].
    /// Below --rps, the min is measured by a step from it to --rps: the
    /// smallest min whose step's first seconds meet the target.
    #[arg(long, value_name = "R", value_parser = parse_positive)]
    pub base_rps: Option<f64>,

    /// Rounds per measured pool size (each a warm-up and --duration): all
    /// met or all missed decide; rounds that disagree are topped up one at
    /// a time to 5 (or N, when more), and the size met only if at most one
    /// round in five missed. Their spread is shown.
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=20))]
    pub rounds: u32,

    /// Measure only the proposal (the sweep's plan, else the model's) over
    /// --rounds rounds, no search: exit 0 when it meets the target, 1 when
    /// it misses.
    #[arg(long)]
    pub verify: bool,

    /// Write each measured pool size's rounds as a run's report
    /// (report.json, report.html …) in DIR/pool-<N>/, and the calibration
    /// run in DIR/calibration/ (DIR/calibration-2/ when it was repeated).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Only the answer: no header, progress or per-point lines.
    #[arg(long, short)]
    pub quiet: bool,

    /// Where and how to measure (without --dsn an embedded server is
    /// started as the scenario says).
    #[command(flatten)]
    pub measure: MeasureArgs,

    /// Output format.
    #[arg(long, value_enum, default_value_t = PlanFormat::Table)]
    pub format: PlanFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    Table,
    Json,
}

/// Where and how to measure: the flags `run` and `sweep` share.
#[derive(Debug, Args)]
pub struct MeasureArgs {
    /// The database, as a libpq URL or key=value string
    /// (postgres://app@db.internal/app?sslmode=verify-full, or
    /// "host=/var/run/postgresql dbname=app"). Overrides the scenario's
    /// [database].dsn, DATABASE_URL and libpq's environment (PGHOST,
    /// PGHOSTADDR, PGPORT, PGDATABASE, PGUSER, PGSERVICE); without any of
    /// them an embedded server is started. What it leaves out comes from
    /// libpq's variables and files (PGPASSWORD, ~/.pgpass, PGSSLMODE,
    /// PGSSLROOTCERT, pg_service.conf…), as psql would read them. A
    /// `mysql://user:pw@host:port/db?ssl-mode=REQUIRED` DSN targets MySQL or
    /// MariaDB instead (options: ssl-mode, ssl-ca, connect-timeout), and
    /// makes the scenario's `?` placeholders MySQL's.
    #[arg(long, value_name = "DSN", conflicts_with = "embedded")]
    pub dsn: Option<String>,

    /// Start the embedded server even when a DSN, DATABASE_URL or PG*
    /// variables say where a database is.
    #[arg(long)]
    pub embedded: bool,

    /// Measured time per strategy (or sweep point), e.g. 20s or 1m
    /// (overrides [run].duration; a smoke test of every command can set it
    /// once in POOLBENCH_DURATION).
    #[arg(long, value_name = "D", value_parser = parse_duration, env = "POOLBENCH_DURATION")]
    pub duration: Option<Duration>,

    /// Time run but not recorded before each strategy (or sweep point)
    /// (overrides [run].warmup; or POOLBENCH_WARMUP).
    #[arg(long, value_name = "D", value_parser = parse_duration, env = "POOLBENCH_WARMUP")]
    pub warmup: Option<Duration>,

    /// Seed of the parameter generators (overrides [run].seed).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// Put an emulated network between poolbench and the database: this
    /// round-trip time is added to every measured connection (rtt/2 each
    /// way, by poolbench's in-process link emulator), e.g. 20ms; 0ms adds
    /// nothing but counts round trips. Overrides [network].rtt (its jitter
    /// is kept, capped at half the RTT).
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    pub rtt: Option<Duration>,

    /// Worker threads, like pgbench's -j [default: one per CPU]. Each runs
    /// its share of the workers; a pool strategy's pools are shared by every
    /// thread, so the threads never change what a pool is. With one per CPU,
    /// each thread is pinned to its own.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub threads: Option<u32>,

    /// Wait until this wall-clock time (RFC 3339, UTC, e.g.
    /// 2026-11-22T10:00:00Z), counting down on stderr, then start. Strategy
    /// (or sweep point) k starts at TIME + k × (warm-up + duration + 3s), so
    /// copies of poolbench on several machines given the same TIME measure
    /// the same windows (`poolbench merge` combines their reports). A time
    /// a second or more in the past is an error.
    #[arg(long, value_name = "TIME", value_parser = parse_utc_time)]
    pub start_at: Option<SystemTime>,

    /// This copy's index among synchronised copies: recorded in the report
    /// and mixed into the seed, so copies do not send identical requests
    /// (index 0 keeps the scenario's seed). Kubernetes Indexed Jobs set
    /// JOB_COMPLETION_INDEX.
    #[arg(long, value_name = "N", env = "JOB_COMPLETION_INDEX")]
    pub instance_index: Option<u32>,

    /// Run the scenario's [setup] SQL on a database poolbench did not start
    /// (setup usually creates and fills tables).
    #[arg(long)]
    pub allow_setup: bool,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Scenario files to check.
    #[arg(required = true, value_name = "SCENARIO.toml")]
    pub scenarios: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The baseline: a report.json, or the run directory holding it. Give
    /// several (runs of the same build, same conditions) for a baseline
    /// that does not depend on one run's luck: their rounds are pooled.
    #[arg(required = true, num_args = 1.., value_name = "BASELINE")]
    pub baseline: Vec<PathBuf>,

    /// The candidate: a report.json, or the run directory holding it. With
    /// --candidate-runs N, the last N paths are the candidate's runs.
    pub candidate: PathBuf,

    /// How many of the paths, counted from the last, are runs of the
    /// candidate (same build, same conditions): their rounds are pooled as
    /// the baseline's are, so the verdict does not depend on one candidate
    /// run's luck either (docs/ci.md, recommended gates). At least one path
    /// must be left for the baseline.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub candidate_runs: u32,

    /// How much worse METRIC may get before it is a regression (repeatable).
    /// METRIC: p50, p99, p999, throughput, error_rate; PCT in percent
    /// (percentage points for error_rate), e.g. p99=5%. Defaults: p99=10%,
    /// throughput=10% (a drop), error_rate=1; p50 and p999 have no default
    /// and are informational until set here.
    #[arg(long, value_name = "METRIC=PCT")]
    pub max_regression: Vec<String>,

    /// Output format: table for a terminal, markdown for a pull-request
    /// comment, json for scripts, html for a self-contained page with the
    /// confidence intervals drawn (redirect it to a file).
    #[arg(long, value_enum, default_value_t = CompareFormat::Table)]
    pub format: CompareFormat,

    /// Compare reports whose run conditions differ (scenario sha256, RTT and
    /// jitter, rate, concurrency, threads, pool settings, server version,
    /// auth, TLS, poolbench version, CPU model and count, embedded,
    /// placement) anyway, every difference listed above the result.
    #[arg(long)]
    pub allow_different: bool,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The server to relay to: a libpq URL or key=value string. Its host
    /// and port are dialled (the first host), its sslmode and sslrootcert
    /// decide the proxy's TLS to it; the application's own user and
    /// password are relayed. Without it, the embedded PostgreSQL is started
    /// behind the proxy.
    #[arg(long, value_name = "DSN")]
    pub to: Option<String>,

    /// Where the proxy listens, e.g. 127.0.0.1:6432 [default: 127.0.0.1 and
    /// a free port].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,

    /// Put the link emulator between the proxy and the server: this
    /// round-trip time is added to every relayed connection (rtt/2 each
    /// way), to see the application "across a network", e.g. 5ms.
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    pub rtt: Option<Duration>,

    /// Stop after this long and write the report [default: until Ctrl-C or
    /// SIGTERM].
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Directory for report.json, summary.csv, timeline.csv and report.html
    /// [default: results/watch-<UTC timestamp>/].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Replace the results in an existing --out directory (poolbench's
    /// report files only).
    #[arg(long)]
    pub force: bool,

    /// Write the data only (report.json, CSVs), no report.html.
    #[arg(long)]
    pub no_html: bool,
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Which server: PostgreSQL, or MariaDB from the machine's
    /// mariadb-server package (prints a mysql:// URL and MYSQL_* lines;
    /// --auth is PostgreSQL's only: MariaDB's user has
    /// mysql_native_password).
    #[arg(long, value_enum, default_value_t = EngineArg::Postgresql)]
    pub engine: EngineArg,

    /// How clients authenticate.
    #[arg(long, value_enum, default_value_t = AuthArg::ScramSha256)]
    pub auth: AuthArg,

    /// Serve TLS with a generated certificate signed by a throwaway CA (the default; PGSSLROOTCERT names the CA).
    #[arg(long, overrides_with = "no_tls")]
    pub tls: bool,

    /// Serve plain TCP only.
    #[arg(long)]
    pub no_tls: bool,

    /// Port on 127.0.0.1 [default: a free one].
    #[arg(long, value_name = "N")]
    pub port: Option<u16>,

    /// The server's max_connections (PostgreSQL allows up to 262143).
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=262_143))]
    pub max_connections: u32,
}

impl ServerArgs {
    pub fn tls_enabled(&self) -> bool {
        !self.no_tls
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineArg {
    Postgresql,
    Mariadb,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AuthArg {
    #[value(name = "scram-sha-256")]
    ScramSha256,
    Md5,
    // The password in clear text (over TLS unless --no-tls), as
    // `[database.embedded] auth = "password"`.
    Password,
    Trust,
}

/// How `compare` prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompareFormat {
    /// Aligned columns for a terminal.
    Table,
    /// A GitHub table and summary line, for a pull-request comment.
    Markdown,
    /// Machine-readable: every number and verdict.
    Json,
    /// A self-contained HTML page: the table and a chart of each change
    /// with its confidence interval and threshold.
    Html,
}

/// Parses "20s", "1m30s", "500ms" (humantime).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (expected e.g. 20s, 1m, 500ms)"))
}

/// An RFC 3339 time in UTC: "2026-11-22T10:00:00Z" (fractions of a second
/// allowed; "+00:00" is taken for "Z").
pub fn parse_utc_time(text: &str) -> Result<SystemTime, String> {
    let t = text.trim();
    let utc = t
        .strip_suffix("+00:00")
        .map_or(t.to_string(), |s| format!("{s}Z"));
    if !utc.ends_with('Z') && !utc.ends_with('z') {
        return Err(format!(
            "{text:?} is not a UTC time: expected RFC 3339 ending in Z, e.g. 2026-11-22T10:00:00Z"
        ));
    }
    humantime::parse_rfc3339(&utc.to_uppercase()).map_err(|e| {
        format!("{text:?} is not an RFC 3339 time ({e}): expected e.g. 2026-11-22T10:00:00Z")
    })
}

/// A positive finite number, e.g. 1500 or 2.5.
pub fn parse_positive(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{text:?} is not a positive number")),
    }
}

/// A latency with its unit, fractions allowed: "50ms", "0.5ms", "250us",
/// "1s" → microseconds.
pub fn parse_latency_us(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale = match unit.trim() {
        "us" | "µs" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        _ => {
            return Err(format!(
            "{text:?} is not a latency: expected a number with a unit, e.g. 50ms, 0.5ms, 250us, 1s"
        ))
        }
    };
    match number.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v * scale),
        _ => Err(format!(
            "{text:?} is not a latency: expected a positive number with a unit, e.g. 50ms"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn latencies_and_lists_parse() {
        assert_eq!(parse_latency_us("50ms"), Ok(50_000.0));
        assert_eq!(parse_latency_us("0.5ms"), Ok(500.0));
        assert_eq!(parse_latency_us("250us"), Ok(250.0));
        assert_eq!(parse_latency_us("1s"), Ok(1e6));
        assert!(parse_latency_us("50").is_err());
        assert!(parse_latency_us("-1ms").is_err());
        let cli = Cli::parse_from(["poolbench", "sweep", "s.toml", "--pool-sizes", "1,2,4"]);
        let Command::Sweep(args) = cli.command else {
            panic!()
        };
        assert_eq!(args.pool_sizes, [1, 2, 4]);
        assert!(
            Cli::try_parse_from(["poolbench", "sweep", "s.toml", "--pool-sizes", "1,x"]).is_err()
        );
        assert!(
            Cli::try_parse_from(["poolbench", "sweep", "s.toml", "--pool-sizes", "0"]).is_err()
        );
    }

    #[test]
    fn start_times_are_utc_rfc3339() {
        let at = parse_utc_time("2026-11-22T10:00:00Z").unwrap();
        assert_eq!(
            humantime::format_rfc3339_seconds(at).to_string(),
            "2026-11-22T10:00:00Z"
        );
        assert_eq!(parse_utc_time("2026-11-22T10:00:00+00:00"), Ok(at));
        assert!(parse_utc_time("2026-11-22T10:00:00.250Z").is_ok());
        let err = parse_utc_time("2026-11-22T10:00:00+02:00").unwrap_err();
        assert!(err.contains("not a UTC time"), "{err}");
        assert!(parse_utc_time("tomorrow").is_err());
        assert!(parse_utc_time("2026-13-22T10:00:00Z").is_err());
    }

    #[test]
    fn merge_needs_two_reports_and_an_out_directory() {
        let cli = Cli::parse_from(["poolbench", "merge", "a", "b", "--out", "m"]);
        let Command::Merge(args) = cli.command else {
            panic!()
        };
        assert_eq!(args.inputs.len(), 2);
        assert!(Cli::try_parse_from(["poolbench", "merge", "a", "--out", "m"]).is_err());
        assert!(Cli::try_parse_from(["poolbench", "merge", "a", "b"]).is_err());
    }

    #[test]
    fn tls_flags() {
        let cli = Cli::parse_from(["poolbench", "server", "--no-tls"]);
        let Command::Server(args) = cli.command else {
            panic!()
        };
        assert!(!args.tls_enabled());
        let cli = Cli::parse_from(["poolbench", "server"]);
        let Command::Server(args) = cli.command else {
            panic!()
        };
        assert!(args.tls_enabled());
    }
}
