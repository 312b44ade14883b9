//! `poolbench man [--dir DIR]`: man pages generated from the clap
//! definitions (clap_mangen): the `--help` texts are their single source.

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::cli::{Cli, ManArgs};
use crate::error::ResultExt;
use crate::Outcome;

pub fn run(args: &ManArgs) -> Result<Outcome> {
    let command = Cli::command();
    match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating {}", dir.display()))
                .environment()?;
            clap_mangen::generate_to(command, dir)
                .with_context(|| format!("writing man pages to {}", dir.display()))
                .environment()?;
        }
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(command)
                .render(&mut page)
                .context("rendering the man page")
                .environment()?;
            std::io::Write::write_all(&mut std::io::stdout().lock(), &page)
                .context("writing to stdout")
                .environment()?;
        }
    }
    Ok(Outcome::Success)
}
