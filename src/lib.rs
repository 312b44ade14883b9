//! poolbench: what a database connection per request costs against a pool.
//!
//! `run` is the whole program; `main` only builds the runtime and maps the
//! outcome or error to an exit code.
//!
//! Linux only, said at build time below: the precise timer is a timerfd
//! (`timer.rs`), the shards read and set their CPU affinity
//! (`engine/shard.rs`), and the embedded servers die with poolbench by
//! `prctl` and are found stale through `/proc`.

#[cfg(not(target_os = "linux"))]
compile_error!(
    "poolbench builds and runs on Linux only (it uses timerfd, sched_getaffinity, prctl and \
     /proc); on macOS or Windows, run it in a Linux container or VM"
);

pub mod backend;
pub mod cleanup;
pub mod cli;
pub mod commands;
pub mod compare;
pub mod embedded;
pub mod engine;
pub mod error;
pub mod input;
pub mod instance;
pub mod metrics;
pub mod net;
pub mod output;
pub mod placement;
pub mod report;
pub mod rng;
pub mod scenario;
pub mod session;
pub mod sizing;
pub mod source;
pub mod timer;
pub mod view;
pub mod watch;
pub mod workload;

use anyhow::Result;

use cli::{Cli, Command};

/// How a command that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// `compare` found a regression, or a run breached a scenario threshold.
    Regression,
    /// Ctrl-C or SIGTERM cut the command short (its partial report is written).
    Interrupted,
}

impl Outcome {
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Success => 0,
            Outcome::Regression => 1,
            Outcome::Interrupted => 130,
        }
    }
}

pub async fn run(cli: Cli) -> Result<Outcome> {
    match cli.command {
        Command::Run(args) => commands::run::run(&args).await,
        Command::Validate(args) => commands::validate::run(&args),
        Command::Server(args) => commands::server::run(&args).await,
        Command::Watch(args) => commands::watch::run(&args).await,
        Command::Compare(args) => commands::compare::run(&args),
        Command::Sweep(args) => commands::sweep::run(&args).await,
        Command::Plan(args) => commands::plan::run(&args).await,
        Command::Merge(args) => commands::merge::run(&args),
        Command::Completions(args) => commands::completions::run(&args),
        Command::Man(args) => commands::man::run(&args),
    }
}
