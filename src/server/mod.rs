//! The embedded PostgreSQL server: placeholder until it lands.

use anyhow::Result;

use crate::cli::ServerArgs;
use crate::Outcome;

pub async fn serve_command(_args: &ServerArgs) -> Result<Outcome> {
    anyhow::bail!("server is not implemented yet")
}
