//! `poolbench watch`'s proxy: the application connects to it instead of
//! the database; it relays the PostgreSQL protocol to the server, one
//! server connection per application connection, and observes what the
//! application does — how many connections it opens, what their setup
//! costs, its statements, transactions, idle time, how each connection
//! ends, and the same per second. `proxy.rs` listens and runs the
//! sessions, `session.rs` relays one connection, `frames.rs` reads the
//! wire, `upstream.rs` dials the server, `tally.rs` gathers what was seen.
//! The report is made of the tally by `commands/watch.rs`.

mod frames;
mod proxy;
mod session;
mod tally;
mod upstream;

pub use frames::SCRAM_PLUS;
pub use proxy::{Proxy, ProxyTls};
pub use tally::{Ended, Observed, Second, SetupTimes, Tally};
