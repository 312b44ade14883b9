//! Scenario files: the TOML the README documents, parsed into raw
//! serde structs (`raw.rs`), then checked into a [`Scenario`] once
//! (`check.rs`), with errors that point at `file:line:column` (`diag.rs`).

mod check;
mod diag;
pub mod limits;
mod model;
mod raw;
mod sql;
mod sql_mysql;

pub use model::*;
pub use sql_mysql::question_marks;

use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use crate::error::bad_input;

use diag::{line_col, render, Diagnostic};

/// Values from the command line that replace the file's. They are checked
/// as the file's are, and the checked [`Scenario`] holds the result: nothing
/// changes it afterwards.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--duration`.
    pub duration: Option<Duration>,
    /// `--warmup`.
    pub warmup: Option<Duration>,
    /// `--seed`.
    pub seed: Option<u64>,
    /// `--concurrency`.
    pub concurrency: Option<u32>,
    /// `--rounds`.
    pub rounds: Option<u32>,
    /// `--only`: the strategies to keep (all when empty).
    pub only: Vec<String>,
    /// `--rate`: open loop at this many arrivals per second.
    pub rate: Option<f64>,
    /// `--rtt`: the emulated link's round-trip time (the file's jitter is
    /// kept, capped at half of it).
    pub rtt: Option<Duration>,
}

/// Reads and checks the scenario file at `path`. Every error is tagged bad
/// input (exit code 2) and names the path.
pub fn load(path: &Path) -> Result<Scenario> {
    load_with(path, &Overrides::default())
}

/// [`load`], with the command line's values in place of the file's.
pub fn load_with(path: &Path, overrides: &Overrides) -> Result<Scenario> {
    let scenario = read(path)?;
    apply(scenario, overrides)
}

/// `s` with the command line's values in place of the file's, checked like
/// the file's (named by their flag): also what a sweep checks each of its
/// points with.
pub fn with_overrides(s: Scenario, o: &Overrides) -> Result<Scenario> {
    apply(s, o)
}

/// The flags' values, checked like the file's (named by their flag).
fn apply(mut s: Scenario, o: &Overrides) -> Result<Scenario> {
    use limits::{show, MAX_CONCURRENCY, MAX_DURATION, MAX_ROUNDS, MAX_WARMUP};
    if let Some(d) = o.duration {
        if d.is_zero() {
            return Err(bad_input("--duration must be greater than 0"));
        }
        if d > MAX_DURATION {
            return Err(bad_input(format!(
                "--duration must be at most {}, not {}",
                show(MAX_DURATION),
                show(d)
            )));
        }
        s.run.duration = d;
    }
    if let Some(w) = o.warmup {
        if w > MAX_WARMUP {
            return Err(bad_input(format!(
                "--warmup must be at most {}, not {}",
                show(MAX_WARMUP),
                show(w)
            )));
        }
        s.run.warmup = w;
    }
    if let Some(seed) = o.seed {
        s.run.seed = seed;
    }
    if let Some(c) = o.concurrency {
        if c == 0 || c > MAX_CONCURRENCY {
            return Err(bad_input(format!(
                "--concurrency must be from 1 to {MAX_CONCURRENCY}, not {c}"
            )));
        }
        s.run.concurrency = c;
    }
    if let Some(r) = o.rounds {
        if r == 0 || r > MAX_ROUNDS {
            return Err(bad_input(format!(
                "--rounds must be from 1 to {MAX_ROUNDS}, not {r}"
            )));
        }
        s.run.rounds = r;
    }
    if let Some(rate) = o.rate {
        if !(rate.is_finite() && (limits::MIN_RATE..=limits::MAX_RATE).contains(&rate)) {
            return Err(bad_input(check::rate_out_of_range("--rate", rate)));
        }
        s.run.arrivals = Some(match s.run.arrivals {
            Some(a) => Arrivals { rate, ..a },
            None => Arrivals {
                rate,
                process: ArrivalProcess::Poisson,
                max_in_flight: limits::DEFAULT_MAX_IN_FLIGHT,
            },
        });
    }
    if let Some(rtt) = o.rtt {
        if rtt > NetworkSettings::MAX_RTT {
            return Err(bad_input(format!(
                "--rtt must be at most {}, not {}",
                humantime::format_duration(NetworkSettings::MAX_RTT),
                humantime::format_duration(rtt)
            )));
        }
        let jitter = s.network.map_or(Duration::ZERO, |n| n.jitter);
        s.network = Some(NetworkSettings::at(rtt, jitter));
    }
    if !o.only.is_empty() {
        if let Some(name) = o
            .only
            .iter()
            .find(|n| !s.strategies.iter().any(|st| &st.name == *n))
        {
            let known: Vec<&str> = s.strategies.iter().map(|st| st.name.as_str()).collect();
            return Err(bad_input(format!(
                "--only {name}: no such strategy in {} (it has: {})",
                s.source.path.display(),
                known.join(", ")
            )));
        }
        s.strategies.retain(|st| o.only.contains(&st.name));
    }
    // The file's budgets held for its own values; the flags' may not.
    if let Some(problem) = limits::budget_problems(&s.run, &s.queries, s.strategies.len()).first() {
        return Err(bad_input(format!(
            "{} with the command line's values: {problem}",
            s.source.path.display()
        )));
    }
    Ok(s)
}

fn read(path: &Path) -> Result<Scenario> {
    let shown = path.display();
    let bytes = crate::input::read_capped(path, limits::MAX_FILE_BYTES, "scenario file")
        .map_err(|e| bad_input(format!("{shown}: {e}")))?;
    let text = match std::str::from_utf8(&bytes) {
        Ok(text) => text,
        Err(e) => {
            let valid = e.valid_up_to();
            // The prefix up to `valid` is UTF-8 by definition of `valid_up_to`.
            let prefix = std::str::from_utf8(&bytes[..valid]).unwrap_or_default();
            let (line, col) = line_col(prefix, valid);
            return Err(bad_input(format!(
                "{shown}:{line}:{col}: the file is not UTF-8 text (byte 0x{:02x}); \
                 scenario files must be UTF-8 TOML",
                bytes.get(valid).copied().unwrap_or_default()
            )));
        }
    };
    parse(text, path)
}

/// Parses and checks scenario `text`, read from `path` (used for messages,
/// the default name and `source`; not read).
pub fn parse(text: &str, path: &Path) -> Result<Scenario> {
    let fail = |diagnostics: &[Diagnostic]| bad_input(render(path, text, diagnostics));
    if text.trim().is_empty() {
        return Err(fail(&[Diagnostic::new(
            0..0,
            "the file is empty: a scenario needs at least one `[[strategy]]` and one `[[query]]`",
        )]));
    }
    let raw: raw::RawScenario = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        fail(&[Diagnostic::new(span, toml_message(e.message()))])
    })?;
    let sha256 = hex(&openssl::sha::sha256(text.as_bytes()));
    check::check(raw, text, path, sha256).map_err(|diagnostics| fail(&diagnostics))
}

/// toml's messages, reworded where they speak Rust rather than TOML.
fn toml_message(message: &str) -> String {
    let message = message.trim_end();
    if message.contains("$__toml_private_datetime") {
        // See `raw::Node`: only values read as `Node` (params, `rate`) fail so.
        return "a datetime is not allowed here; write it as a string, e.g. \"2024-01-31\""
            .to_owned();
    }
    let replacements = [
        // serde says "field"; a TOML file has keys.
        ("unknown field", "unknown key"),
        ("missing field", "missing key"),
        ("expected i64", "expected an integer"),
        ("expected u64", "expected an integer"),
        ("expected a boolean", "expected true or false"),
        ("expected a sequence", "expected an array"),
        ("expected struct RawScenario", "expected a table"),
        // `raw::Table`: an array where the format has a table.
        (
            "invalid type: sequence, expected a table",
            "found an array where the format has a table",
        ),
    ];
    let mut out = message.to_owned();
    for (from, to) in replacements {
        out = out.replace(from, to);
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const MINIMAL: &str = "[[strategy]]\nname = \"f\"\nkind = \"fresh\"\n\n\
                           [[strategy]]\nname = \"p\"\nkind = \"pool\"\nmax_size = 4\n\n\
                           [[query]]\nname = \"q\"\nsql = \"SELECT 1\"\n";

    fn parse_ok(text: &str) -> Scenario {
        match parse(text, Path::new("dir/minimal.toml")) {
            Ok(s) => s,
            Err(e) => panic!("{e:#}"),
        }
    }

    fn parse_err(text: &str) -> String {
        match parse(text, Path::new("t.toml")) {
            Ok(s) => panic!("parsed: {s:?}"),
            Err(e) => {
                assert_eq!(
                    crate::error::kind_of(&e),
                    Some(crate::error::Kind::BadInput)
                );
                format!("{e:#}")
            }
        }
    }

    #[test]
    fn defaults() {
        let s = parse_ok(MINIMAL);
        assert_eq!(s.name, "minimal");
        assert_eq!(s.description, None);
        assert_eq!(s.run.duration, Duration::from_secs(10));
        assert_eq!(s.run.warmup, Duration::from_secs(2));
        assert_eq!(s.run.concurrency, 8);
        assert_eq!(s.run.seed, 1);
        assert_eq!(s.database.dsn, None);
        assert_eq!(s.database.embedded.auth, AuthMethod::ScramSha256);
        assert!(s.database.embedded.tls);
        assert_eq!(s.database.embedded.max_connections, 100);
        assert_eq!(s.setup_sql, None);
        let StrategyKind::Pool(pool) = &s.strategies[1].kind else {
            panic!("not a pool: {:?}", s.strategies[1])
        };
        assert_eq!(pool.max_size, 4);
        assert_eq!(pool.min_size, 0);
        assert_eq!(pool.wait_timeout, None);
        assert_eq!(pool.recycling, Recycling::Fast);
        let q = &s.queries[0];
        assert_eq!(q.weight, 1);
        assert_eq!(q.mode, QueryMode::Sequential);
        assert_eq!(q.statements.len(), 1);
        assert!(q.statements[0].params.is_empty());
    }

    #[test]
    fn source_has_path_and_sha256_of_the_bytes() {
        let s = parse_ok(MINIMAL);
        assert_eq!(s.source.path, Path::new("dir/minimal.toml"));
        assert_eq!(s.source.sha256.len(), 64);
        assert_eq!(
            hex(&openssl::sha::sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn design_example_parses_to_the_expected_values() {
        let text = include_str!("../../tests/fixtures/good/design-example.toml");
        let s = parse_ok(text);
        assert_eq!(s.name, "quickstart");
        assert_eq!(s.run.duration, Duration::from_secs(20));
        assert_eq!(s.run.warmup, Duration::from_secs(3));
        assert_eq!(s.run.concurrency, 16);
        assert_eq!(s.run.seed, 42);
        assert_eq!(s.database.embedded.max_connections, 100);
        assert!(s
            .setup_sql
            .as_deref()
            .is_some_and(|sql| sql.contains("generate_series")));

        let names: Vec<_> = s.strategies.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["per-request", "pool-10"]);
        assert!(matches!(s.strategies[0].kind, StrategyKind::Fresh));
        let StrategyKind::Pool(pool) = &s.strategies[1].kind else {
            panic!()
        };
        assert_eq!((pool.max_size, pool.min_size), (10, 10));
        assert_eq!(pool.wait_timeout, Some(Duration::from_secs(5)));
        assert_eq!(pool.recycling, Recycling::Fast);

        let q: Vec<_> = s
            .queries
            .iter()
            .map(|q| (q.name.as_str(), q.weight, q.mode, q.statements.len()))
            .collect();
        assert_eq!(
            q,
            [
                ("get_user", 8, QueryMode::Sequential, 1),
                ("dashboard", 1, QueryMode::Parallel, 2),
                ("rename", 1, QueryMode::Transaction, 1),
            ]
        );
        let int = Param::Int { lo: 1, hi: 100000 };
        assert_eq!(
            s.queries[0].statements[0].params,
            std::slice::from_ref(&int)
        );
        assert_eq!(
            s.queries[1].statements[0].params,
            std::slice::from_ref(&int)
        );
        assert!(s.queries[1].statements[1].params.is_empty());
        assert_eq!(
            s.queries[2].statements[0].params,
            [Param::Text { len: 12 }, int]
        );
    }

    #[test]
    fn every_key_reaches_the_model() {
        let s = parse_ok(include_str!("../../tests/fixtures/good/all-features.toml"));
        assert_eq!(s.name, "all.features_1");
        assert_eq!(s.description.as_deref(), Some("Exercises every key"));
        assert_eq!(s.run.duration, Duration::from_secs(90));
        assert_eq!(s.run.warmup, Duration::from_millis(500));
        assert_eq!((s.run.concurrency, s.run.seed), (3, 0));
        assert_eq!(
            s.database.dsn.as_deref(),
            Some("postgres://app@db.internal/app")
        );
        assert_eq!(s.database.embedded.auth, AuthMethod::Md5);
        assert!(!s.database.embedded.tls);
        assert_eq!(s.database.embedded.max_connections, 20);
        let pools: Vec<_> = s
            .strategies
            .iter()
            .filter_map(|s| match &s.kind {
                StrategyKind::Pool(p) => {
                    Some((p.max_size, p.min_size, p.wait_timeout, p.recycling))
                }
                StrategyKind::Fresh => None,
            })
            .collect();
        assert_eq!(
            pools,
            [
                (2, 0, None, Recycling::Verified),
                (8, 8, Some(Duration::from_millis(250)), Recycling::Clean)
            ]
        );
        let modes: Vec<_> = s.queries.iter().map(|q| (q.weight, q.mode)).collect();
        assert_eq!(
            modes,
            [
                (0, QueryMode::Sequential),
                (5, QueryMode::Transaction),
                (1, QueryMode::Parallel)
            ]
        );
        assert_eq!(s.queries[0].statements[0].params.len(), 3);
        assert_eq!(
            s.queries[1].statements[0].params,
            [
                Param::Text { len: 1_000_000 },
                Param::Literal(Literal::Int(-7))
            ]
        );
    }

    #[test]
    fn generators_and_literals() {
        let text = MINIMAL.replace(
            "sql = \"SELECT 1\"",
            "sql = \"SELECT $1, $2, $3, $4, $5, $6, $7\"\n\
             params = [{ zipf = { max = 1000, s = 1.1 } }, { zipf = { s = 2, max = 5 } }, \
             { choice = [1, 'a', true, 2.5] }, 7, -1.5, false, 'x']",
        );
        let s = parse_ok(&text);
        assert_eq!(
            s.queries[0].statements[0].params,
            [
                Param::Zipf { max: 1000, s: 1.1 },
                Param::Zipf { max: 5, s: 2.0 },
                Param::Choice(vec![
                    Literal::Int(1),
                    Literal::Text("a".into()),
                    Literal::Bool(true),
                    Literal::Float(2.5)
                ]),
                Param::Literal(Literal::Int(7)),
                Param::Literal(Literal::Float(-1.5)),
                Param::Literal(Literal::Bool(false)),
                Param::Literal(Literal::Text("x".into())),
            ]
        );
    }

    #[test]
    fn errors_name_the_place_and_come_in_file_order() {
        let text = MINIMAL
            .replace("max_size = 4", "max_size = 4\nmin_size = 5")
            .replace("name = \"f\"", "name = \"a b\"");
        let err = parse_err(&text);
        let first = err.find("t.toml:2:8: strategy `name` \"a b\" contains ' '");
        let second = err.find("t.toml:9:12: `min_size` (5) is larger than `max_size` (4)");
        assert!(
            first.is_some() && second.is_some() && first < second,
            "{err}"
        );
    }

    #[test]
    fn placeholder_errors_point_into_the_sql() {
        let text = MINIMAL.replace("SELECT 1", "SELECT $2, $1") + "params = [1, 2, 3]\n";
        let err = parse_err(&text);
        assert!(
            err.starts_with("t.toml:13:17: 3 params are given but the SQL uses only $1..$2"),
            "{err}"
        );
        let text = MINIMAL.replace("SELECT 1", "SELECT $1, $3") + "params = [1, 2, 3]\n";
        let err = parse_err(&text);
        assert!(
            err.starts_with("t.toml:12:19: the SQL uses $3 but not $2"),
            "{err}"
        );
        // Escapes shift offsets: then the whole string is underlined.
        let text = MINIMAL.replace("SELECT 1", "SELECT \\\"x\\\", $1");
        let err = parse_err(&text);
        assert!(
            err.starts_with("t.toml:12:7: the SQL uses $1 but no `params` are given"),
            "{err}"
        );
    }

    #[test]
    fn dollar_zero_is_not_a_placeholder() {
        let text = MINIMAL.replace("SELECT 1", "SELECT $0") + "params = [1]\n";
        let err = parse_err(&text);
        assert!(
            err.contains("t.toml:12:15: `$0` is not a placeholder"),
            "{err}"
        );
        assert!(
            err.contains("1 param is given but the SQL has no valid placeholders"),
            "{err}"
        );
    }

    #[test]
    fn empty_text_is_refused() {
        assert!(parse_err(" \n\t\n").starts_with("t.toml:1:1: the file is empty"));
    }
}
