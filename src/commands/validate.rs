//! `poolbench validate`: checks every file (not stopping at the first bad
//! one), prints `ok: …` on stdout for each good file and the errors on
//! stderr for each bad one. Under a good file's line, each pool strategy
//! with lifecycle settings (or a `like` preset) has its effective settings
//! listed, the preset's and the keys given beside it together.

use anyhow::Result;

use crate::backend::Target;
use crate::cli::ValidateArgs;
use crate::error::bad_input;
use crate::report::format::plural;
use crate::scenario;
use crate::Outcome;

pub fn run(args: &ValidateArgs) -> Result<Outcome> {
    let mut errors = Vec::new();
    let env = scenario::Overrides {
        target: scenario::TargetHint::new(None, false),
        ..scenario::Overrides::default()
    };
    for path in &args.scenarios {
        // The scenario's dsn is checked as `run` would read it (no
        // connection is made).
        // DATABASE_URL decides the engine as it does for `run`.
        let checked = scenario::load_with(path, &env).and_then(|s| match &s.database.dsn {
            Some(dsn) => {
                let origin = format!("[database].dsn of {}", path.display());
                Target::parse(dsn, &origin).map(|_| s)
            }
            None => Ok(s),
        });
        match checked {
            Ok(s) => {
                crate::outln!(
                    "ok: {} ({}, {})",
                    path.display(),
                    plural(s.strategies.len(), "strategy", "strategies"),
                    plural(s.queries.len(), "query", "queries"),
                );
                for strategy in &s.strategies {
                    let scenario::StrategyKind::Pool(pool) = &strategy.kind else {
                        continue;
                    };
                    if pool.lifecycle.is_default() {
                        continue;
                    }
                    crate::outln!(
                        "  {}: {}",
                        strategy.name,
                        pool.lifecycle.describe().join(", ")
                    );
                }
            }
            Err(e) => errors.push(e),
        }
    }
    let total = args.scenarios.len();
    match errors.len() {
        0 => Ok(Outcome::Success),
        // One file, one error: main prints it; a summary would only repeat it.
        1 if total == 1 => Err(errors.remove(0)),
        bad => {
            for e in &errors {
                crate::errln!("error: {e:#}\n");
            }
            let verb = if bad == 1 { "is" } else { "are" };
            Err(bad_input(format!(
                "{bad} of {total} scenario files {verb} invalid"
            )))
        }
    }
}
