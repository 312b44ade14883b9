//! Capacity planning: `sweep` measures over an axis (`sweep/`: pool sizes
//! and concurrency, with the Universal Scalability Law fitted; round-trip
//! times; arrival rates); `plan` turns a pool-size sweep into pool sizes
//! for a traffic and latency target, by Erlang C and Little's law, in each
//! pool library's own setting names.

pub mod erlang;
pub mod plan;
pub mod sweep;
pub mod usl;
pub mod verify;
