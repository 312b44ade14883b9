//! `poolbench completions <shell>`: a completion script generated from the
//! clap definitions (clap_complete), so it never drifts from the flags.

use anyhow::Result;
use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};
use crate::error::ResultExt;
use crate::Outcome;

pub fn run(args: &CompletionsArgs) -> Result<Outcome> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "poolbench", &mut script);
    std::io::Write::write_all(&mut std::io::stdout().lock(), &script)
        .map_err(|e| anyhow::anyhow!("writing to stdout: {e}"))
        .environment()?;
    Ok(Outcome::Success)
}
