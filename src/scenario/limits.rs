//! The limits of what a scenario, and the flags that override it, may ask
//! for. Each is chosen so that nothing it allows can abort poolbench or
//! exhaust the machine: a value beyond one is refused before anything runs,
//! by `validate` and `run` alike (exit 2), with the limit named.
//! docs/scenarios.md lists them ("Limits").
//!
//! Most are plain upper bounds. Two are budgets, since what fills the
//! memory is a product: the requests that can exist at once (closed-loop
//! workers, or open-loop arrivals that may wait until their
//! request_timeout) times the text each one generates, and the seconds a
//! run measures in all (each kept in the timeline).

use std::time::Duration;

pub use super::diag::show;
use super::model::{Param, Query, RunSettings};

/// A scenario file larger than this is refused before it is parsed.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// Scenario, strategy and query names (a name becomes part of a directory
/// or file name, which the file system limits to 255 bytes).
pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;
pub const MAX_STRATEGIES: usize = 100;
pub const MAX_QUERIES: usize = 100;
/// Statements of one query.
pub const MAX_STATEMENTS: usize = 100;
/// Parameters of one statement (PostgreSQL's own limit is 65,535).
pub const MAX_PARAMS: usize = 1000;
/// One `text` generator's length.
pub const MAX_TEXT_LEN: i64 = 1_000_000;
/// Closed-loop workers (`concurrency`, `[sweep] concurrency`).
pub const MAX_CONCURRENCY: u32 = 10_000;
/// A pool's `max_size` and `min_size` (`[sweep] pool_sizes`).
pub const MAX_POOL_SIZE: usize = 10_000;
/// Values in one `[sweep]` list or sweep flag.
pub const MAX_SWEEP_POINTS: usize = 100;
/// Open loop: arrivals per second. Below the minimum, a window holds no
/// arrival worth measuring; above the maximum, the pacer cannot keep up.
pub const MIN_RATE: f64 = 0.01;
pub const MAX_RATE: f64 = 1_000_000.0;
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 1000;
pub const MAX_IN_FLIGHT: u32 = 100_000;
/// The text the requests that can exist at once generate together.
pub const MAX_TEXT_AT_ONCE: u64 = 1 << 30;
/// Measured time per strategy (`duration`, `--duration`).
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);
/// `warmup`, `--warmup`.
pub const MAX_WARMUP: Duration = Duration::from_secs(3600);
/// What a run measures in all, duration × rounds × strategies: every
/// second of it is a row of the timeline.
pub const MAX_MEASURED: Duration = Duration::from_secs(24 * 3600);
pub const MAX_ROUNDS: u32 = 1000;
/// `request_timeout` and `wait_timeout`: at least a millisecond (shorter
/// fails nearly every request for a reason that is not the database's),
/// at most an hour.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(1);
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// `[run.retry]` `backoff`.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The bytes of text one request of `query` generates at most: its `text`
/// generators and the longest of its text choices and literals.
pub fn text_per_request(query: &Query) -> u64 {
    let param = |p: &Param| -> u64 {
        match p {
            Param::Text { len } => *len as u64,
            Param::Choice(items) => items
                .iter()
                .map(|l| match l {
                    super::model::Literal::Text(t) => t.len() as u64,
                    _ => 0,
                })
                .max()
                .unwrap_or(0),
            // A literal is shared, not generated per request.
            _ => 0,
        }
    };
    query
        .statements
        .iter()
        .flat_map(|s| s.params.iter())
        .map(param)
        .sum()
}

/// How many requests can exist at once: closed-loop workers, or in open
/// loop the handlers (`max_in_flight`). Arrivals waiting for a handler are
/// not requests yet (a request is drawn when a handler takes its arrival),
/// and their queue is bounded by memory, not by rate × request_timeout
/// (`engine::open_loop::MAX_QUEUED`, docs/open-loop.md).
pub fn requests_at_once(run: &RunSettings) -> f64 {
    match run.arrivals {
        Some(a) => f64::from(a.max_in_flight),
        None => f64::from(run.concurrency),
    }
}

/// A budget exceeded: what it weighs and the message saying by how much.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetProblem {
    pub weighs: Weighs,
    pub message: String,
}

/// The settings a budget weighs (where its error points).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weighs {
    /// The load (`concurrency`, or `max_in_flight` in open loop) against
    /// what it may hold at once.
    Load,
    /// `duration` × `rounds` × strategies.
    MeasuredTime,
}

/// What the combination of `run`'s settings, the queries and the number of
/// strategies would exceed, one problem each (empty when all is within the
/// limits).
pub fn budget_problems(
    run: &RunSettings,
    queries: &[Query],
    strategies: usize,
) -> Vec<BudgetProblem> {
    let mut problems = Vec::new();
    let mut problem = |weighs, message| problems.push(BudgetProblem { weighs, message });
    let load = match run.arrivals {
        Some(a) => format!("max_in_flight {}", a.max_in_flight),
        None => format!("concurrency {}", run.concurrency),
    };
    let at_once = requests_at_once(run);
    if let Some((name, text)) = queries
        .iter()
        .map(|q| (q.name.as_str(), text_per_request(q)))
        .max_by_key(|(_, t)| *t)
    {
        let total = at_once * text as f64;
        if total > MAX_TEXT_AT_ONCE as f64 {
            problem(
                Weighs::Load,
                format!(
                    "{load} requests at once × {text} bytes of generated text per request \
                     (query `{name}`) is {:.1} GiB, more than {} GiB: lower one of them",
                    total / (1u64 << 30) as f64,
                    MAX_TEXT_AT_ONCE >> 30
                ),
            );
        }
    }
    let measured = run.duration.as_secs_f64() * f64::from(run.rounds) * strategies as f64;
    if measured > MAX_MEASURED.as_secs_f64() {
        problem(
            Weighs::MeasuredTime,
            format!(
                "duration {} × {} × {} is {} of measuring, more than {}: split the run",
                show(run.duration),
                count(run.rounds as usize, "round", "rounds"),
                count(strategies, "strategy", "strategies"),
                show(Duration::from_secs(measured as u64)),
                show(MAX_MEASURED)
            ),
        );
    }
    problems
}

fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
