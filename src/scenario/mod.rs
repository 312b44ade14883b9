//! Scenario files: the TOML of DESIGN.md ("Scenario file"), parsed into raw
//! serde structs, then checked into a [`Scenario`] once.

mod model;

pub use model::*;

use anyhow::Result;

use crate::cli::ValidateArgs;
use crate::Outcome;

/// `poolbench validate`: placeholder until the parser lands.
pub fn validate_command(_args: &ValidateArgs) -> Result<Outcome> {
    anyhow::bail!("validate is not implemented yet")
}
