//! The embedded PostgreSQL server: [`server`] is its lifecycle (start,
//! restart, stop, on drop or a signal), [`binaries`] finds the machine's
//! server binaries, [`cluster`] lays out the data directory, [`process`]
//! runs and stops the postmaster, [`ready`] waits for it, [`cert`] makes
//! the certificate, [`stale`] removes what a killed poolbench left, and
//! [`options`] holds what they share. `poolbench server` runs it in the
//! foreground (`commands::server`).
//!
//! This file only declares and re-exports: the files under it import each
//! other, never it.

mod binaries;
mod cert;
mod cluster;
mod options;
mod process;
mod ready;
mod server;
mod stale;

pub use binaries::PG_BIN_ENV;
pub(crate) use cert::generate as generate_certificate;
pub use cert::ServerCertificate;
pub(crate) use cluster::{free_port, generate_password, write_private};
pub(crate) use options::RunAs;
pub use options::{EmbeddedOptions, DBNAME, HOST, THROWAWAY_SETTING, USER};
pub(crate) use process::{
    chown, configure, configure_dying_on, lookup_user, server_user, Postmaster, Resources,
};
pub(crate) use ready::last_lines;
pub use ready::LOG_TAIL_LINES;
pub use server::{major_version_found, refuse_taken_port, EmbeddedServer, StartTimings, StopMode};
pub(crate) use stale::{
    remove_leftovers, write_owner, MARIADB_PID_FILE, PGBOUNCER_PID_FILE, PGBOUNCER_PREFIX,
};
