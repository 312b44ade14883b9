//! The checker's state and its entry: a raw scenario in, a checked
//! [`Scenario`] or every problem out. The whole scenario's own checks are
//! here (its name and description, the budgets that weigh sections
//! against each other); each section is checked in its own file.

use std::path::Path;
use std::sync::Arc;

use crate::scenario::diag::{line_col, Diagnostic};
use crate::scenario::limits::{budget_problems, Weighs, MAX_DESCRIPTION_CHARS};
use crate::scenario::model::{CheckedFrom, Query, RunSettings, Scenario, Source};
use crate::scenario::raw::{Given, Origin, RawScenario};

/// Checks `raw`, read at `path` from `from`'s text with its flags' values
/// in place (`Overrides::apply_to`), into a [`Scenario`].
pub fn check(
    raw: RawScenario,
    path: &Path,
    sha256: String,
    from: CheckedFrom,
) -> Result<Scenario, Vec<Diagnostic>> {
    let text = Arc::clone(&from.text);
    let mut checker = Checker {
        text: &text,
        path,
        diagnostics: Vec::new(),
        load_at: None,
        rate_at: None,
        duration_at: None,
        rounds_at: None,
        mysql: false,
    };
    let scenario = checker.scenario(raw, sha256, from);
    if checker.diagnostics.is_empty() {
        Ok(scenario)
    } else {
        // In file order, as a reader goes through the file, then the
        // flags' (stable, so two problems at one place keep the order they
        // were found in).
        checker.diagnostics.sort_by_key(Diagnostic::sort_key);
        Err(checker.diagnostics)
    }
}

pub(super) struct Checker<'t> {
    pub(super) text: &'t str,
    pub(super) path: &'t Path,
    diagnostics: Vec<Diagnostic>,
    /// Where `[run]`'s load (`rate` or `concurrency`), `duration` and
    /// `rounds` came from: the budgets' errors point there.
    pub(super) load_at: Option<Origin>,
    /// Where `rate` came from, when the run is open loop.
    pub(super) rate_at: Option<Origin>,
    pub(super) duration_at: Option<Origin>,
    pub(super) rounds_at: Option<Origin>,
    /// The scenario targets MySQL or MariaDB: `?` placeholders.
    pub(super) mysql: bool,
}

impl Checker<'_> {
    pub(super) fn error(&mut self, at: impl Into<Origin>, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic::new(at, message));
    }

    /// A problem whose source line is not quoted (it may hold a secret).
    pub(super) fn error_unquoted(&mut self, at: impl Into<Origin>, message: impl Into<String>) {
        self.diagnostics
            .push(Diagnostic::new(at, message).without_source());
    }

    /// The file's line of `at` (0 for a flag, which has none).
    pub(super) fn line_of(&self, at: &Origin) -> usize {
        match at {
            Origin::File(span) => line_col(self.text, span.start).0,
            Origin::Flag(_) => 0,
        }
    }

    fn scenario(&mut self, raw: RawScenario, sha256: String, from: CheckedFrom) -> Scenario {
        let name = match &raw.name {
            Some(name) => self.dir_name("scenario `name`", name).unwrap_or_default(),
            None => name_from_path(self.path),
        };
        let description = raw.description.map(|d| self.description(d));
        let run = self.run(raw.run);
        let database = self.database(raw.database);
        self.mysql = database.is_mysql(&from.overrides.target);
        let setup_sql = raw.setup.and_then(|setup| self.setup(setup));
        let pgbouncer = self.pgbouncer(raw.pgbouncer);
        let strategies = self.strategies(raw.strategy, &pgbouncer, &raw.only);
        let queries = self.queries(raw.query);
        let sweep = self.sweep(raw.sweep);
        // The budgets weigh settings against each other: only once each of
        // them is valid on its own.
        if self.diagnostics.is_empty() {
            self.budgets(&run, &queries, strategies.len());
        }
        let network = raw.network.and_then(|n| self.network(n));
        Scenario {
            name,
            description,
            source: Source {
                path: self.path.to_path_buf(),
                sha256,
            },
            run,
            database,
            setup_sql,
            strategies,
            queries,
            sweep,
            pgbouncer,
            network,
            checked_from: from,
        }
    }

    fn description(&mut self, d: Given<String>) -> String {
        let chars = d.get_ref().chars().count();
        if chars > MAX_DESCRIPTION_CHARS {
            self.error(
                d.origin(),
                format!(
                    "the `description` has {chars} characters, more than {MAX_DESCRIPTION_CHARS}"
                ),
            );
        }
        d.into_inner()
    }

    /// Each budget problem points at the value it is about in the file
    /// (the load, or the duration); when a flag gave one of the values it
    /// weighs, it says so instead, naming the file.
    fn budgets(&mut self, run: &RunSettings, queries: &[Query], strategies: usize) {
        for problem in budget_problems(run, queries, strategies) {
            let weighed = match problem.weighs {
                Weighs::MeasuredTime => [self.duration_at.clone(), self.rounds_at.clone()],
                Weighs::Load => [self.load_at.clone(), None],
            };
            let problem = problem.message;
            let flag = weighed.iter().flatten().find_map(|at| match at {
                Origin::Flag(flag) => Some(*flag),
                Origin::File(_) => None,
            });
            match flag {
                Some(flag) => {
                    let message = format!(
                        "{} with the command line's values: {problem}",
                        self.path.display()
                    );
                    self.error(Origin::Flag(flag), message);
                }
                None => {
                    let at = weighed[0].clone().unwrap_or(Origin::File(0..0));
                    self.error(at, problem);
                }
            }
        }
    }
}

/// A character a name that becomes part of a file name may hold.
pub(super) fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// The scenario name when the file has none: its file stem, with characters
/// a directory name should not have replaced by `_`.
fn name_from_path(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name: String = stem
        .chars()
        .map(|c| if is_name_char(c) { c } else { '_' })
        .collect();
    if name.is_empty() {
        "scenario".to_owned()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{errors, flags, ok, BASE};
    use super::*;
    use crate::scenario::Overrides;

    #[test]
    fn name_from_path_uses_the_stem() {
        assert_eq!(
            name_from_path(Path::new("scenarios/checkout.toml")),
            "checkout"
        );
        assert_eq!(name_from_path(Path::new("my scenario.toml")), "my_scenario");
        assert_eq!(name_from_path(Path::new("")), "scenario");
    }

    #[test]
    fn names_hold_what_a_portable_file_name_may() {
        assert!("a-Z_0.9".chars().all(is_name_char));
        for c in [' ', '/', 'é', ':', '*'] {
            assert!(!is_name_char(c), "{c:?}");
        }
    }

    #[test]
    fn the_name_and_description_are_checked() {
        assert_eq!(
            ok(&format!("name = \"a.b-c_1\"\n{BASE}"), &flags()).name,
            "a.b-c_1"
        );
        assert_eq!(
            errors(&format!("name = \"a/b\"\n{BASE}"), &flags())
                .lines()
                .next()
                .unwrap(),
            "t.toml:1:8: scenario `name` \"a/b\" contains '/': use only letters, digits, `.`, \
             `_` and `-` (it becomes part of a directory name)"
        );
        let long = "d".repeat(MAX_DESCRIPTION_CHARS + 1);
        let e = errors(&format!("description = \"{long}\"\n{BASE}"), &flags());
        assert!(
            e.starts_with("t.toml:1:15: the `description` has 10001 characters, more than 10000"),
            "{e}"
        );
    }

    #[test]
    fn a_budget_points_at_the_file_or_names_the_file_for_flags() {
        let file = format!("[run]\nduration = \"12h\"\nrounds = 3\n{BASE}");
        assert_eq!(
            errors(&file, &flags()),
            "t.toml:2:12: duration 12h × 3 rounds × 1 strategy is 36h of measuring, more \
             than 24h: split the run\n  |\n2 | duration = \"12h\"\n  |            ^^^^^"
        );
        let o = Overrides {
            duration: Some(std::time::Duration::from_secs(12 * 3600)),
            rounds: Some(3),
            ..flags()
        };
        assert_eq!(
            errors(BASE, &o),
            "t.toml with the command line's values: duration 12h × 3 rounds × 1 strategy is \
             36h of measuring, more than 24h: split the run"
        );
        // The file's duration, the flag's rounds: the flag is named.
        let file = format!("[run]\nduration = \"12h\"\n{BASE}");
        let o = Overrides {
            rounds: Some(3),
            ..flags()
        };
        assert!(errors(&file, &o).starts_with("t.toml with the command line's values: "));
    }

    #[test]
    fn a_load_budget_points_at_the_load() {
        let big = "[[strategy]]\nname = \"p\"\nkind = \"pool\"\nmax_size = 4\n\n\
                   [[query]]\nname = \"big\"\nsql = \"SELECT $1\"\nparams = [{ text = 1000000 }]\n";
        let file = format!("[run]\nrate = 10\nmax_in_flight = 2000\n{big}");
        assert_eq!(
            errors(&file, &flags()).lines().next().unwrap(),
            "t.toml:3:17: max_in_flight 2000 requests at once × 1000000 bytes of generated \
             text per request (query `big`) is 1.9 GiB, more than 1 GiB: lower one of them"
        );
        // A rate alone, however high and whatever the request_timeout, is
        // no longer refused: the arrival queue is bounded by memory.
        let file = format!("[run]\nrequest_timeout = \"1h\"\nrate = 1000000\n{BASE}");
        let run = ok(&file, &flags()).run;
        assert_eq!(run.arrivals.map(|a| a.rate), Some(1_000_000.0));
    }

    #[test]
    fn file_problems_come_first_then_the_flags() {
        let file = format!("[run]\nwarmup = \"2h\"\n{BASE}");
        let o = Overrides {
            concurrency: Some(0),
            ..flags()
        };
        assert_eq!(
            errors(&file, &o),
            "t.toml:2:10: `warmup` must be at most 1h, found 2h\n  |\n2 | warmup = \"2h\"\n  \
             |          ^^^^\n\n--concurrency must be from 1 to 10000, not 0"
        );
    }
}
