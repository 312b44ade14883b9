//! `poolbench plan --sweep sweep.json --rps R --p99 T`: pool sizes from a
//! measured sweep, printed as reasoning (table) or as JSON.

use anyhow::Result;

use crate::cli::{PlanArgs, PlanFormat};
use crate::sizing::plan::{plan, read_sweep, render_text, sweep_path, PlanRequest};
use crate::Outcome;

pub fn run(args: &PlanArgs) -> Result<Outcome> {
    let path = sweep_path(&args.sweep);
    let sweep = read_sweep(&path)?;
    let request = PlanRequest {
        rps: args.rps,
        p99_us: args.p99,
        instances: args.instances,
        max_connections: args.max_connections,
        reserved: args.reserved,
        concurrency: args.concurrency,
        base_rps: args.base_rps,
    };
    let report = plan(&sweep, &path, &request)?;
    match args.format {
        PlanFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        PlanFormat::Table => print!("{}", render_text(&report, &sweep)),
    }
    Ok(Outcome::Success)
}
