//! `poolbench plan --sweep sweep.json --rps R --p99 T`: pool sizes from a
//! measured sweep, printed as reasoning (table) or as JSON.

use anyhow::Result;

use crate::cli::{PlanArgs, PlanFormat};
use crate::report::{export::json, term};
use crate::sizing::plan::{plan, read_sweep, sweep_path, PlanRequest};
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
        PlanFormat::Json => print!("{}", json::to_string(&report)?),
        PlanFormat::Table => print!("{}", term::plan::render(&report, &sweep)),
    }
    Ok(Outcome::Success)
}
