//! Capacity planning: `sweep` measures the pool strategy at several pool
//! sizes (and concurrency levels) and fits the Universal Scalability Law;
//! `plan` turns a sweep into pool sizes for a traffic and latency target,
//! by Erlang C and Little's law, in each pool library's own setting names.

pub mod erlang;
pub mod model;
pub mod plan;
pub mod rates;
pub mod sweep;
pub mod usl;
pub mod verify;
