//! Throwaway database servers poolbench starts itself from the machine's own
//! binaries, when no DSN names a server: PostgreSQL, and PgBouncer in front
//! of it for strategies with `via = "pgbouncer"`.

pub mod mariadb;
pub mod pgbouncer;
pub mod postgres;

pub use postgres::{
    EmbeddedOptions, EmbeddedServer, ServerCertificate, StartTimings, StopMode, DBNAME, HOST,
    LOG_TAIL_LINES, PG_BIN_ENV, THROWAWAY_SETTING, USER,
};
