//! What a person reads in a terminal, one file per command: the run's
//! header, tables and verdict; the sweep's header and table; the plan's
//! reasoning; the comparison table. Each is a pure function of the
//! command's model to text; the commands print it.

pub mod compare;
pub mod plan;
pub mod run;
pub mod sweep;
pub mod watch;
