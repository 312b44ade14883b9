//! The flags `run` and `sweep` share (`MeasureArgs`), turned into the
//! domain's settings: scenario overrides, how to reach the database, and
//! the number of worker threads.

use crate::cli::MeasureArgs;
use crate::scenario::Overrides;
use crate::session::ConnectOptions;

/// The [run] values the shared flags replace (`--duration`, `--warmup`,
/// `--seed`); the scenario checks them as it checks its own.
pub fn overrides(args: &MeasureArgs) -> Overrides {
    Overrides {
        duration: args.duration,
        warmup: args.warmup,
        seed: args.seed,
        ..Overrides::default()
    }
}

/// How to reach the database, from `--dsn` and `--allow-setup`.
pub fn connect_options(args: &MeasureArgs, quiet: bool) -> ConnectOptions {
    ConnectOptions {
        dsn: args.dsn.clone(),
        allow_setup: args.allow_setup,
        quiet,
    }
}

/// Worker threads: `--threads`, or one per core.
pub fn threads(args: &MeasureArgs) -> usize {
    args.threads
        .map_or_else(crate::runner::default_threads, |t| t as usize)
}
