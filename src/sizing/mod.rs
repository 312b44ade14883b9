//! Capacity planning: `sweep` measures over an axis (`sweep/`: pool sizes
//! and concurrency, with the Universal Scalability Law fitted; round-trip
//! times; arrival rates); `plan` searches by measurement for the smallest
//! pool size meeting a latency target at a rate (`search.rs` decides what
//! to measure, `measured.rs` is its answer), starting from the M/G/c
//! simulation's proposal (`mgc.rs`); a sweep is an optional prior, planned
//! by Erlang C and Little's law (`plan.rs`), in each pool library's own
//! setting names, with the lifecycle settings to go with them
//! (`lifecycle.rs`).

pub mod erlang;
pub mod lifecycle;
pub mod measured;
pub mod mgc;
pub mod plan;
pub mod search;
pub mod sweep;
pub mod usl;
