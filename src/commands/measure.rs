//! What `run` and `sweep` share: their common flags (`MeasureArgs`) turned
//! into the domain's settings (scenario overrides, how to reach the
//! database, worker threads, this copy's place among synchronised copies),
//! and one round measured with its progress bar.

use super::progress::Progress;
use crate::cli::MeasureArgs;
use crate::engine::{self, RoundResult};
use crate::error::bad_input;
use crate::instance::Instance;
use crate::scenario::{Overrides, Strategy};
use crate::session::{ConnectOptions, Session};

/// The scenario values the shared flags replace (`--duration`, `--warmup`,
/// `--seed`, `--rtt`); the scenario checks them as it checks its own.
pub fn overrides(args: &MeasureArgs) -> Overrides {
    Overrides {
        duration: args.duration,
        warmup: args.warmup,
        seed: args.seed,
        rtt: args.rtt,
        ..Overrides::default()
    }
}

/// How to reach the database, from `--dsn`, `--embedded` and `--allow-setup`.
pub fn connect_options(args: &MeasureArgs, quiet: bool) -> ConnectOptions {
    ConnectOptions {
        dsn: args.dsn.clone(),
        embedded: args.embedded,
        allow_setup: args.allow_setup,
        quiet,
    }
}

/// Worker threads: `--threads`, or one per core.
pub fn threads(args: &MeasureArgs) -> usize {
    args.threads
        .map_or_else(engine::default_threads, |t| t as usize)
}

/// One round of `strategy` in `session`, with a progress bar when `show`.
pub async fn round(
    session: &Session,
    strategy: &Strategy,
    settings: &engine::Settings,
    threads: usize,
    show: bool,
    (round, rounds): (u32, u32),
) -> RoundResult {
    let progress = Progress::new(show, &strategy.name, round, rounds);
    let result = session
        .run_round(strategy, settings, threads, &mut |tick| progress.tick(tick))
        .await;
    progress.finish();
    result
}

/// `--start-at` and `--instance-index`; a start already past is bad input.
pub fn instance(args: &MeasureArgs) -> anyhow::Result<Instance> {
    Instance::new(args.start_at, args.instance_index).map_err(bad_input)
}
