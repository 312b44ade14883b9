//! Scenario files: the TOML docs/scenarios.md documents, parsed into raw
//! serde structs (`raw.rs`), the command line's values put in place of the
//! file's (`flags.rs`), then checked into a [`Scenario`] once, by one
//! checker (`check/`), with errors that point at `file:line:column` or
//! name the flag (`diag.rs`).

mod check;
mod diag;
mod flags;
mod humantime_serde_compat;
mod lifecycle;
pub mod limits;
mod model;
mod raw;
mod sql;
mod sql_mysql;

pub use flags::{Overrides, TargetHint};
pub use lifecycle::{Check, CheckQuery, Library, Lifecycle, Reset};
pub use model::*;
pub use sql_mysql::question_marks;

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use sha2::Digest;

use crate::error::bad_input;

use diag::{line_col, render, Diagnostic};

/// Reads and checks the scenario file at `path`. Every error is tagged bad
/// input (exit code 2) and names the path.
pub fn load(path: &Path) -> Result<Scenario> {
    load_with(path, &Overrides::default())
}

/// [`load`], with the command line's values in place of the file's.
pub fn load_with(path: &Path, overrides: &Overrides) -> Result<Scenario> {
    let text = read(path)?;
    parse_with(&text, path, overrides)
}

/// `s` checked again with `o`'s values on top of the command line's it was
/// checked with (named by their flag): what a sweep checks each of its
/// points with.
pub fn with_overrides(s: Scenario, o: &Overrides) -> Result<Scenario> {
    let from = &s.checked_from;
    parse_with(&from.text, &s.source.path, &from.overrides.then(o))
}

/// The file's text: at most `MAX_FILE_BYTES`, UTF-8.
fn read(path: &Path) -> Result<String> {
    let shown = path.display();
    let bytes = crate::input::read_capped(path, limits::MAX_FILE_BYTES, "scenario file")
        .map_err(|e| bad_input(format!("{shown}: {e}")))?;
    match String::from_utf8(bytes) {
        Ok(text) => Ok(text),
        Err(e) => {
            let bytes = e.as_bytes();
            let e = e.utf8_error();
            let valid = e.valid_up_to();
            // The prefix up to `valid` is UTF-8 by definition of `valid_up_to`.
            let prefix = std::str::from_utf8(&bytes[..valid]).unwrap_or_default();
            let (line, col) = line_col(prefix, valid);
            Err(bad_input(format!(
                "{shown}:{line}:{col}: the file is not UTF-8 text (byte 0x{:02x}); \
                 scenario files must be UTF-8 TOML",
                bytes.get(valid).copied().unwrap_or_default()
            )))
        }
    }
}

/// Parses and checks scenario `text`, read from `path` (used for messages,
/// the default name and `source`; not read).
pub fn parse(text: &str, path: &Path) -> Result<Scenario> {
    parse_with(text, path, &Overrides::default())
}

/// [`parse`], with the command line's values in place of the file's.
pub fn parse_with(text: &str, path: &Path, overrides: &Overrides) -> Result<Scenario> {
    let fail = |diagnostics: &[Diagnostic]| bad_input(render(path, text, diagnostics));
    if text.trim().is_empty() {
        return Err(fail(&[Diagnostic::new(
            0..0,
            "the file is empty: a scenario needs at least one `[[strategy]]` and one `[[query]]`",
        )]));
    }
    let mut raw: raw::RawScenario = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        fail(&[Diagnostic::new(span, toml_message(e.message()))])
    })?;
    overrides.apply_to(&mut raw);
    let sha256 = hex(&sha2::Sha256::digest(text.as_bytes()));
    let from = CheckedFrom {
        text: Arc::from(text),
        overrides: overrides.clone(),
    };
    check::check(raw, path, sha256, from).map_err(|diagnostics| fail(&diagnostics))
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
            hex(&sha2::Sha256::digest(b"abc")),
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
    fn empty_text_is_refused() {
        assert!(parse_err(" \n\t\n").starts_with("t.toml:1:1: the file is empty"));
    }

    #[test]
    fn load_with_reads_the_file_and_puts_the_flags_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.toml");
        std::fs::write(&path, format!("[run]\nconcurrency = 3\n{MINIMAL}")).unwrap();
        let o = Overrides {
            concurrency: Some(5),
            duration: Some(Duration::from_secs(90)),
            ..Overrides::default()
        };
        let s = load_with(&path, &o).unwrap();
        assert_eq!(
            (s.run.concurrency, s.run.duration),
            (5, Duration::from_secs(90))
        );
        assert_eq!(s.name, "f");
        let e = load_with(
            &path,
            &Overrides {
                concurrency: Some(0),
                ..Overrides::default()
            },
        )
        .unwrap_err();
        assert_eq!(
            crate::error::kind_of(&e),
            Some(crate::error::Kind::BadInput)
        );
        assert_eq!(
            format!("{e:#}"),
            "--concurrency must be from 1 to 10000, not 0"
        );
        std::fs::write(&path, b"name = \"\xff\"\n").unwrap();
        let e = load(&path).unwrap_err();
        assert!(
            format!("{e:#}").ends_with("f.toml:1:9: the file is not UTF-8 text (byte 0xff); scenario files must be UTF-8 TOML"),
            "{e:#}"
        );
    }

    #[test]
    fn with_overrides_checks_a_point_on_top_of_the_command_line() {
        let o = Overrides {
            duration: Some(Duration::from_secs(5)),
            rtt: Some(Duration::from_millis(4)),
            ..Overrides::default()
        };
        let s = parse_with(MINIMAL, Path::new("t.toml"), &o).unwrap();
        let point = Overrides {
            concurrency: Some(64),
            ..Overrides::default()
        };
        let at = with_overrides(s.clone(), &point).unwrap();
        // The command line's values stay; the point's are added.
        assert_eq!(
            (at.run.concurrency, at.run.duration),
            (64, Duration::from_secs(5))
        );
        assert_eq!(at.network.map(|n| n.rtt), Some(Duration::from_millis(4)));
        assert_eq!(at.source.sha256, s.source.sha256);
        // A point is checked like the flag it stands for.
        let e = with_overrides(
            s.clone(),
            &Overrides {
                rate: Some(0.0),
                ..Overrides::default()
            },
        )
        .unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            "--rate must be from 0.01 to 1000000 arrivals per second, not 0"
        );
        // Of two flags that weigh a budget together, the point's is one.
        let long = parse_with(
            MINIMAL,
            Path::new("t.toml"),
            &Overrides {
                duration: Some(Duration::from_secs(12 * 3600)),
                ..Overrides::default()
            },
        )
        .unwrap();
        let e = with_overrides(
            long,
            &Overrides {
                rounds: Some(2),
                ..Overrides::default()
            },
        )
        .unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            "t.toml with the command line's values: duration 12h × 2 rounds × 2 strategies is \
             48h of measuring, more than 24h: split the run"
        );
    }

    #[test]
    fn the_checked_scenario_does_not_show_its_text() {
        let text = MINIMAL.to_owned() + "[database]\ndsn = \"postgres://u:hunter2@h/d\"\n";
        let s = parse_ok(&text);
        // (The dsn itself is in `database`, never serialised.)
        assert!(!format!("{:?}", s.checked_from).contains("hunter2"));
        assert!(!serde_json::to_string(&s).unwrap().contains("hunter2"));
    }
}
