//! The commands: one file each, turning the parsed flags of `cli.rs` into
//! checked settings once, then calling the domain (scenario, session,
//! engine, compare, sizing, embedded server) and the outputs. Nothing past
//! this layer sees a clap type.

pub mod assemble;
pub mod compare;
pub mod completions;
pub mod man;
pub mod measure;
pub mod merge;
pub mod plan;
pub mod progress;
pub mod run;
pub mod server;
pub mod sweep;
pub mod validate;
pub mod watch;
