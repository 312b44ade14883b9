//! What `run` and `sweep` share: their common flags (`MeasureArgs`) turned
//! into the domain's settings (scenario overrides, how to reach the
//! database, worker threads, this copy's place among synchronised copies),
//! and one round measured with its progress bar; the results directory
//! and the session every measuring command opens and closes the same way.

use std::path::Path;

use anyhow::Result;

use super::progress::Progress;
use crate::cli::MeasureArgs;
use crate::engine::{self, RoundResult};
use crate::error::bad_input;
use crate::instance::{Instance, Slots};
use crate::report;
use crate::scenario::{Overrides, Scenario, Strategy, TargetHint};
use crate::session::{cancel_on_signal, ConnectOptions, Session};
use crate::view::export::{self, Dir, Exporter, Subdir};

/// The scenario values the shared flags replace (`--duration`, `--warmup`,
/// `--seed`, `--rtt`), and where `--dsn`/`--embedded`/DATABASE_URL point
/// (which decides the engine); the scenario checks them as its own.
pub fn overrides(args: &MeasureArgs) -> Overrides {
    Overrides {
        duration: args.duration,
        warmup: args.warmup,
        seed: args.seed,
        rtt: args.rtt,
        target: TargetHint::new(args.dsn.as_deref(), args.embedded),
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

/// One strategy at one sweep point: its slot first when synchronised
/// copies share the clock (`--start-at`), then one round. None when the
/// sweep must stop: interrupted while waiting for the slot.
pub async fn point(
    session: &Session,
    strategy: &Strategy,
    settings: &mut engine::Settings,
    slots: &mut Option<Slots>,
    threads: usize,
    show: bool,
) -> Option<RoundResult> {
    if let Some(slots) = slots {
        settings.start_at = Some(slots.next(&strategy.name, show, &session.cancel).await?);
    }
    Some(round(session, strategy, settings, threads, show, (1, 1)).await)
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

/// Where a measuring command writes: `--out` (else `results/<name>-<time>/`),
/// `--force`, and the files it writes there (its exporters', and those in
/// subdirectories: run's hlog/).
pub struct Output<'a, M> {
    pub out: Option<&'a Path>,
    pub name: String,
    pub force: bool,
    pub files: &'a [&'a dyn Exporter<M>],
    pub subdirs: &'a [Subdir],
}

/// What `run` and every form of `sweep` do once their flags and scenario
/// are checked: note the start, claim the results directory for the whole
/// run (refused before any server starts when another poolbench writes in
/// it or it already holds results; with --force, the earlier results
/// removed), open the
/// session, call `measure` with the session, the start and the directory,
/// and close the session whatever `measure` returned, so that an embedded
/// server is stopped before an error is reported.
pub async fn in_session<M, T>(
    scenario: &Scenario,
    opts: &ConnectOptions,
    output: Output<'_, M>,
    measure: impl AsyncFnOnce(&mut Session, &str, &Dir) -> Result<T>,
) -> Result<T> {
    let started_at = report::now_rfc3339();
    let out_dir = export::prepare_dir(
        output.out,
        &output.name,
        &started_at,
        output.force,
        output.files,
        output.subdirs,
    )?;
    // The per-second histograms wait there for the report, not in memory.
    crate::metrics::spill::into(&out_dir);
    let mut session = Session::open(scenario, opts, cancel_on_signal()).await?;
    let result = measure(&mut session, &started_at, &out_dir).await;
    session.close().await;
    result
}
