//! The engine: runs one round of one strategy — worker threads (shards),
//! closed-loop workers through warm-up and the measured window, a pacing
//! point, one collector, cancellation — and returns what was measured as a
//! neutral [`RoundResult`]. It knows neither fresh vs pool nor any report
//! format: what a request is and where its connection comes from is the
//! [`Service`] it is given; what the result becomes is the caller's.
//!
//! `api.rs` is the interface, `shard.rs` runs a round (`run`), `worker.rs`
//! is one closed-loop worker and its pacing point, `open_loop.rs` serves a
//! shard's arrivals on the schedule of `pacer.rs`, `tally.rs` records what
//! they measured, `collector.rs` merges their seconds, `window.rs` holds
//! what they share.

mod api;
mod collector;
mod deadline;
pub mod launcher;
mod open_loop;
mod pacer;
mod shard;
mod tally;
mod window;
mod worker;

#[cfg(test)]
mod tests;

pub use api::*;
pub use shard::run;
