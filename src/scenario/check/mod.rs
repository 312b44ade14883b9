//! The one checker: the raw scenario (`raw.rs`), the file's values with the
//! flags' in their place (`flags.rs`), turned into the checked [`Scenario`]
//! of `model.rs`, every problem collected with where its value came from
//! (`file:line:column`, or the flag).
//!
//! The checker carries on after a problem (with the default or without the
//! value) so one run of `validate` lists every mistake in the file, as a
//! compiler does; checks that depend on a broken value are skipped rather
//! than reported twice.
//!
//! `checker.rs` holds its state and the whole scenario's checks (names,
//! budgets); each section of the scenario file is checked in its own file,
//! as `impl Checker` methods: `run.rs` (`[run]`, `[run.retry]`, the
//! open-loop keys), `database.rs` (`[database]`, `[setup]`), `pgbouncer.rs`,
//! `strategies.rs` (`[[strategy]]`, `--only`; `lifecycle.rs` a pool's
//! lifecycle keys and `like`), `queries.rs` (`[[query]]`,
//! placeholders), `params.rs` (parameter generators), `sweep.rs`,
//! `network.rs` (`[network]`, `--rtt`); `values.rs` has what they share
//! (durations, bounded integers, names, and a message's words for a value
//! from the file or from a flag).
//!
//! [`Scenario`]: super::model::Scenario

mod checker;
mod database;
mod lifecycle;
mod network;
mod params;
mod pgbouncer;
mod queries;
mod run;
mod strategies;
mod sweep;
mod values;

#[cfg(test)]
mod fixture;

pub use checker::check;
