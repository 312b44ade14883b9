//! `poolbench validate` as a user sees it: the built binary run on the
//! fixtures in `tests/fixtures/`, the exit code and what it prints. Also a
//! robustness test of `scenario::parse` on mutated good files (no panics).

use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::{poolbench_blocking, stderr, stdout};

/// Bad fixture, and where its (first) error must point: line, column
/// (None where the column is not the point), and a phrase of the message.
const BAD: &[(&str, usize, Option<usize>, &str)] = &[
    ("toml-syntax", 2, Some(13), "invalid basic string"),
    ("unknown-top-key", 3, Some(1), "unknown key `concurency`"),
    (
        "unknown-strategy-key",
        10,
        Some(1),
        "unknown key `min_sise`",
    ),
    ("wrong-type", 3, Some(15), "expected an integer"),
    ("bad-duration", 3, Some(12), "is not a duration"),
    (
        "zero-duration",
        3,
        Some(12),
        "`duration` must be longer than 0",
    ),
    (
        "zero-concurrency",
        3,
        Some(15),
        "`concurrency` must be at least 1",
    ),
    ("rate", 3, Some(8), "`rate` must be from 0.01 to 1000000"),
    (
        "network-jitter",
        4,
        Some(10),
        "must be at most half the rtt (5ms), found 6ms",
    ),
    ("weights-sum-to-zero", 19, Some(10), "weights sum to 0"),
    (
        "min-size-above-max-size",
        10,
        Some(12),
        "`min_size` (20) is larger than `max_size` (4)",
    ),
    (
        "duplicate-strategy",
        12,
        Some(8),
        "`per-request` is used twice (first on line 3)",
    ),
    (
        "duplicate-query",
        17,
        Some(8),
        "`get_user` is used twice (first on line 12)",
    ),
    (
        "placeholder-without-param",
        13,
        Some(50),
        "the SQL uses $3 but 2 params are given",
    ),
    (
        "extra-params",
        14,
        Some(36),
        "3 params are given but the SQL uses only $1..$2",
    ),
    (
        "placeholder-in-string-only",
        14,
        Some(11),
        "the SQL has no placeholders",
    ),
    (
        "placeholder-gap",
        13,
        Some(19),
        "the SQL uses $3 but not $2",
    ),
    ("no-query", 1, None, "no `[[query]]`"),
    (
        "bad-dsn",
        3,
        Some(7),
        "invalid `dsn`: option \"sslcrl\" is not supported by poolbench",
    ),
    ("no-strategy", 1, None, "no `[[strategy]]`"),
    ("unknown-kind", 13, Some(8), "expected \"fresh\""),
    (
        "pool-keys-on-fresh",
        5,
        Some(12),
        "`max_size` only applies to kind = \"pool\"",
    ),
    ("pool-without-max-size", 2, Some(1), "needs `max_size`"),
    (
        "bad-recycling",
        10,
        Some(13),
        "expected \"fast\", \"verified\" or \"clean\"",
    ),
    (
        "sql-and-statements",
        14,
        Some(14),
        "either `sql` (with `params`) or `statements`, not both",
    ),
    (
        "neither-sql-nor-statements",
        11,
        Some(1),
        "needs `sql = \"...\"` or `statements",
    ),
    ("empty-statements", 13, Some(14), "`statements` is empty"),
    ("blank-sql", 13, Some(7), "`sql` is blank"),
    (
        "transaction-and-parallel",
        14,
        Some(12),
        "cannot be combined",
    ),
    (
        "bad-generator",
        14,
        Some(13),
        "unknown parameter generator `uniform`",
    ),
    (
        "two-generators",
        14,
        Some(11),
        "exactly one generator, found 2 keys",
    ),
    ("zipf-s-zero", 14, Some(38), "`s` must be a number > 0"),
    (
        "int-lo-above-hi",
        14,
        Some(19),
        "lo (100) is larger than hi (1)",
    ),
    (
        "text-too-long",
        14,
        Some(20),
        "`text` needs a length from 1 to 1000000",
    ),
    ("empty-choice", 14, Some(22), "`choice` is empty"),
    (
        "bad-auth",
        3,
        Some(8),
        "expected \"scram-sha-256\", \"md5\", \"password\" or \"trust\"",
    ),
    (
        "bad-scenario-name",
        2,
        Some(8),
        "it becomes part of a directory name",
    ),
    (
        "negative-weight",
        13,
        Some(10),
        "`weight` must be at least 0",
    ),
    (
        "datetime-param",
        14,
        Some(11),
        "a datetime is not allowed here",
    ),
    ("empty", 1, Some(1), "the file is empty"),
    (
        "setup-array",
        2,
        Some(9),
        "found an array where the format has a table `[setup]`",
    ),
    (
        "run-array",
        2,
        Some(7),
        "found an array where the format has a table `[run]`",
    ),
    (
        "database-array",
        2,
        Some(12),
        "found an array where the format has a table `[database]`",
    ),
    (
        "statement-array",
        8,
        Some(15),
        "found an array where the format has a table `{ sql = \"...\" }`",
    ),
];

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// What every failure must look like: exit 2, no panic, no backtrace hint.
fn problems_with_failure(out: &Output) -> Vec<String> {
    let mut problems = Vec::new();
    if out.status.code() != Some(2) {
        problems.push(format!("exit code {:?}, expected 2", out.status.code()));
    }
    let err = stderr(out);
    for forbidden in ["panicked", "RUST_BACKTRACE", "internal error"] {
        if err.contains(forbidden) {
            problems.push(format!("stderr contains {forbidden:?}"));
        }
    }
    problems
}

#[test]
fn every_bad_fixture_fails_with_its_location_and_message() {
    let mut failures = Vec::new();
    for &(name, line, col, phrase) in BAD {
        let file = format!("tests/fixtures/bad/{name}.toml");
        let out = poolbench_blocking(["validate", &file]);
        let err = stderr(&out);
        let mut problems = problems_with_failure(&out);
        let location = match col {
            Some(col) => format!("error: {file}:{line}:{col}: "),
            None => format!("error: {file}:{line}:"),
        };
        if !err.starts_with(&location) {
            problems.push(format!("stderr does not start with {location:?}"));
        }
        if !err.contains(phrase) {
            problems.push(format!("stderr lacks {phrase:?}"));
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{name}: {}\n--- stderr:\n{err}",
                problems.join("; ")
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

#[test]
fn every_bad_fixture_is_in_the_table() {
    let dir = manifest_dir().join("tests/fixtures/bad");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("read fixtures/bad") {
        let path = entry.expect("dir entry").path();
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        if path.extension().is_some_and(|e| e == "toml") && !BAD.iter().any(|b| b.0 == stem) {
            missing.push(stem.to_owned());
        }
    }
    assert!(
        missing.is_empty(),
        "fixtures without an expectation: {missing:?}"
    );
    assert!(BAD.len() >= 18);
}

#[test]
fn errors_show_the_source_line_and_a_caret() {
    let file = "tests/fixtures/bad/min-size-above-max-size.toml";
    let out = poolbench_blocking(["validate", file]);
    let expected = format!(
        "error: {file}:10:12: `min_size` (20) is larger than `max_size` (4)\n   |\n10 | min_size = 20\n   |            ^^\n"
    );
    assert_eq!(stderr(&out), expected);
}

#[test]
fn non_utf8_file_names_the_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("latin1.toml");
    std::fs::write(&path, b"name = \"caf\xe9\"\n").expect("write");
    let shown = path.display().to_string();
    let out = poolbench_blocking(["validate", &shown]);
    let err = stderr(&out);
    assert!(problems_with_failure(&out).is_empty(), "{err}");
    assert!(err.contains(&format!("{shown}:1:12: ")), "{err}");
    assert!(err.contains("not UTF-8"), "{err}");
}

#[test]
fn missing_file_names_the_path() {
    let out = poolbench_blocking(["validate", "tests/fixtures/no-such-file.toml"]);
    let err = stderr(&out);
    assert!(problems_with_failure(&out).is_empty(), "{err}");
    assert!(err.contains("tests/fixtures/no-such-file.toml"), "{err}");
    assert!(err.contains("No such file"), "{err}");
}

#[test]
fn directory_names_the_path() {
    let out = poolbench_blocking(["validate", "tests/fixtures"]);
    let err = stderr(&out);
    assert!(problems_with_failure(&out).is_empty(), "{err}");
    assert!(err.contains("tests/fixtures: is a directory"), "{err}");
}

#[test]
fn good_and_bad_files_are_all_reported() {
    let good = "tests/fixtures/good/design-example.toml";
    let bad = "tests/fixtures/bad/duplicate-query.toml";
    let missing = "tests/fixtures/missing.toml";
    let out = poolbench_blocking(["validate", good, bad, missing]);
    let err = stderr(&out);
    assert!(problems_with_failure(&out).is_empty(), "{err}");
    assert_eq!(
        stdout(&out),
        format!("ok: {good} (2 strategies, 3 queries)\n")
    );
    assert!(err.contains(&format!("{bad}:17:8: ")), "{err}");
    assert!(err.contains(missing), "{err}");
    assert!(
        err.trim_end()
            .ends_with("error: 2 of 3 scenario files are invalid"),
        "{err}"
    );
}

#[test]
fn design_example_validates() {
    let good = "tests/fixtures/good/design-example.toml";
    let out = poolbench_blocking(["validate", good]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("ok: {good} (2 strategies, 3 queries)\n")
    );
    assert_eq!(stderr(&out), "");
}

#[test]
fn every_good_fixture_validates() {
    let out = poolbench_blocking([
        "validate",
        "tests/fixtures/good/all-features.toml",
        "tests/fixtures/good/design-example.toml",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "ok: tests/fixtures/good/all-features.toml (3 strategies, 3 queries)\n\
         ok: tests/fixtures/good/design-example.toml (2 strategies, 3 queries)\n"
    );
}

#[test]
fn every_example_scenario_validates() {
    let dir = manifest_dir().join("scenarios");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("read scenarios/")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| {
            format!(
                "scenarios/{}",
                p.file_name().unwrap_or_default().to_string_lossy()
            )
        })
        .collect();
    files.sort();
    if files.is_empty() {
        eprintln!("scenarios/ has no .toml files yet; nothing to check");
        return;
    }
    let mut args = vec!["validate"];
    args.extend(files.iter().map(String::as_str));
    let out = poolbench_blocking(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for file in &files {
        assert!(
            stdout(&out).contains(&format!("ok: {file} (")),
            "{}",
            stdout(&out)
        );
    }
}

/// xorshift64: deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Bytes that matter to TOML and to the checker's SQL lexer.
const INTERESTING: &[&[u8]] = &[
    b"\"",
    b"'",
    b"[",
    b"]",
    b"{",
    b"}",
    b"=",
    b",",
    b"\n",
    b"#",
    b"$",
    b"$1",
    b"$9",
    b"$$",
    b"--",
    b"/*",
    b"0",
    b"-1",
    b"99999999999999999999",
    b"1e400",
    b"nan",
    b"\\",
    b"\xc3\xa9",
    b"\"\"\"",
    b"[[strategy]]\n",
    b"[[query]]\n",
    b"1979-05-27",
    b"true",
    b" = ",
    b"{ int = [",
    b"{ zipf = { max = 0, s = -1 } }",
    b"\t",
    b"\r\n",
];

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut bytes = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(7) {
            0 if at < bytes.len() => {
                bytes.remove(at);
            }
            1 => {
                let len = rng.below(40).min(bytes.len() - at.min(bytes.len()));
                bytes.drain(at..at + len);
            }
            2 => {
                let piece = INTERESTING[rng.below(INTERESTING.len())];
                bytes.splice(at..at, piece.iter().copied());
            }
            3 if at < bytes.len() => bytes[at] = (rng.next() & 0x7f) as u8,
            4 | 5 => {
                // Delete, duplicate or swap whole lines: the structural edits
                // a user makes when editing by hand.
                let mut lines: Vec<Vec<u8>> =
                    bytes.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
                let i = rng.below(lines.len());
                let j = rng.below(lines.len());
                match rng.below(3) {
                    0 => {
                        lines.remove(i);
                    }
                    1 => {
                        let line = lines[i].clone();
                        lines.insert(j, line);
                    }
                    _ => lines.swap(i, j),
                }
                bytes = lines.join(&b'\n');
            }
            _ => {
                let piece = INTERESTING[rng.below(INTERESTING.len())];
                let end = (at + piece.len()).min(bytes.len());
                bytes.splice(at..end, piece.iter().copied());
            }
        }
    }
    bytes
}

#[test]
fn mutated_scenarios_never_panic() {
    let dir = manifest_dir().join("tests/fixtures/good");
    let mut seeds: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .expect("read fixtures/good")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| {
            let bytes = std::fs::read(&p).expect("read fixture");
            (p, bytes)
        })
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty());

    // POOLBENCH_MUTATIONS=200000 for a longer hunt; the default keeps
    // `cargo test` quick.
    let cases = std::env::var("POOLBENCH_MUTATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(4000);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut ok, mut err) = (0, 0);
    for case in 0..cases {
        let (path, original) = &seeds[case % seeds.len()];
        let bytes = mutate(&mut rng, original);
        // parse takes text; the bytes' UTF-8 check is load's (tested above).
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let result = std::panic::catch_unwind(|| {
            poolbench::scenario::parse(&text, path)
                .map(|_| ())
                .map_err(|e| format!("{e:#}"))
        });
        match result {
            Ok(Ok(())) => ok += 1,
            Ok(Err(message)) => {
                assert!(!message.is_empty(), "case {case}: empty error for:\n{text}");
                err += 1;
            }
            Err(_) => panic!("case {case}: parse panicked on:\n{text}"),
        }
    }
    // Most mutations must break something, and some must survive: otherwise
    // the mutator is not exercising the checker.
    eprintln!("{cases} mutations: {ok} parsed, {err} refused");
    assert!(err > cases / 4 && ok > cases / 400, "ok {ok}, err {err}");
}

/// A scenario with `run`, `strategy` and `query` spliced in.
fn scenario_with(run: &str, strategy: &str, query: &str) -> String {
    let max_size = if strategy.contains("max_size") {
        ""
    } else {
        "max_size = 4\n"
    };
    format!(
        "[run]\n{run}\n\n[[strategy]]\nname = \"p\"\nkind = \"pool\"\n{max_size}{strategy}\n\n\
         [[query]]\nname = \"q\"\nsql = \"SELECT $1\"\nparams = [1]\n{query}\n"
    )
}

fn check(text: &str) -> Result<poolbench::scenario::Scenario, String> {
    poolbench::scenario::parse(text, Path::new("edge.toml")).map_err(|e| format!("{e:#}"))
}

/// Every limit at its edge: the largest (or smallest) allowed value is
/// accepted, one step beyond is refused with the limit named. `validate`
/// and `run` both check through this one parser.
#[test]
fn limits_hold_at_their_edges() {
    use poolbench::scenario::limits::*;
    let name = |n: usize| "n".repeat(n);
    let many = |n: usize, f: &dyn Fn(usize) -> String| (0..n).map(f).collect::<String>();
    let query_n = |i: usize| format!("[[query]]\nname = \"q{i}\"\nsql = \"SELECT 1\"\n");
    let strategy_n = |i: usize| format!("[[strategy]]\nname = \"s{i}\"\nkind = \"fresh\"\n");
    let statements = |n: usize| {
        format!(
            "[[query]]\nname = \"many\"\nstatements = [{}]\n",
            vec!["{ sql = \"SELECT 1\" }"; n].join(", ")
        )
    };
    let params = |n: usize| {
        let sql: Vec<String> = (1..=n).map(|i| format!("${i}::int")).collect();
        format!(
            "[[query]]\nname = \"wide\"\nsql = \"SELECT {}\"\nparams = [{}]\n",
            sql.join(", "),
            vec!["1"; n].join(", ")
        )
    };
    let text = |len: i64, c: u32| {
        format!("[[query]]\nname = \"big\"\nsql = \"SELECT $1\"\nparams = [{{ text = {len} }}]\n")
            + &format!("# concurrency {c}\n")
    };
    // (run, strategy keys, queries) within the limits, then beyond them
    // with the phrase the error must carry.
    let c = MAX_CONCURRENCY;
    let at_once = (MAX_TEXT_AT_ONCE / MAX_TEXT_LEN as u64) as u32;
    let cases: Vec<([String; 3], [String; 3], String)> = vec![
        (
            [format!("concurrency = {c}"), "".into(), "".into()],
            [format!("concurrency = {}", c + 1), "".into(), "".into()],
            format!("`concurrency` must be at most {c}"),
        ),
        (
            ["duration = \"24h\"".into(), "".into(), "".into()],
            ["duration = \"24h 1s\"".into(), "".into(), "".into()],
            "`duration` must be at most 24h".into(),
        ),
        (
            ["warmup = \"1h\"".into(), "".into(), "".into()],
            ["warmup = \"61m\"".into(), "".into(), "".into()],
            "`warmup` must be at most 1h".into(),
        ),
        (
            [
                "rounds = 1000\nduration = \"1s\"".into(),
                "".into(),
                "".into(),
            ],
            [
                "rounds = 1001\nduration = \"1s\"".into(),
                "".into(),
                "".into(),
            ],
            "`rounds` must be at most 1000".into(),
        ),
        (
            ["request_timeout = \"1ms\"".into(), "".into(), "".into()],
            ["request_timeout = \"999us\"".into(), "".into(), "".into()],
            "`request_timeout` must be at least 1ms".into(),
        ),
        (
            ["request_timeout = \"1h\"".into(), "".into(), "".into()],
            ["request_timeout = \"1h 1s\"".into(), "".into(), "".into()],
            "`request_timeout` must be at most 1h".into(),
        ),
        (
            ["rate = 0.01".into(), "".into(), "".into()],
            ["rate = 0.0099".into(), "".into(), "".into()],
            "`rate` must be from 0.01 to 1000000".into(),
        ),
        (
            [
                format!("rate = 1000000\nrequest_timeout = \"1h\"\nmax_in_flight = {at_once}"),
                "".into(),
                text(MAX_TEXT_LEN, at_once),
            ],
            [
                format!("rate = 1\nmax_in_flight = {}", at_once + 1),
                "".into(),
                text(MAX_TEXT_LEN, at_once + 1),
            ],
            "bytes of generated text per request (query `big`)".into(),
        ),
        (
            [
                format!("rate = 1\nmax_in_flight = {MAX_IN_FLIGHT}"),
                "".into(),
                "".into(),
            ],
            [
                format!("rate = 1\nmax_in_flight = {}", MAX_IN_FLIGHT + 1),
                "".into(),
                "".into(),
            ],
            format!("`max_in_flight` must be at most {MAX_IN_FLIGHT}"),
        ),
        (
            [
                "[run.retry]\non = [\"pool_timeout\"]\nbackoff = \"1m\"".into(),
                "".into(),
                "".into(),
            ],
            [
                "[run.retry]\non = [\"pool_timeout\"]\nbackoff = \"61s\"".into(),
                "".into(),
                "".into(),
            ],
            "`backoff` must be at most 1m".into(),
        ),
        (
            [
                "".into(),
                format!("min_size = {MAX_POOL_SIZE}\nmax_size = {MAX_POOL_SIZE}"),
                "".into(),
            ],
            [
                "".into(),
                format!("max_size = {}", MAX_POOL_SIZE + 1),
                "".into(),
            ],
            format!("`max_size` must be at most {MAX_POOL_SIZE}"),
        ),
        (
            ["".into(), "wait_timeout = \"1ms\"".into(), "".into()],
            ["".into(), "wait_timeout = \"0s\"".into(), "".into()],
            "`wait_timeout` must be longer than 0: a pool that does not wait".into(),
        ),
        (
            ["".into(), "wait_timeout = \"1h\"".into(), "".into()],
            ["".into(), "wait_timeout = \"2h\"".into(), "".into()],
            "`wait_timeout` must be at most 1h".into(),
        ),
        (
            ["".into(), "".into(), many(MAX_QUERIES - 1, &query_n)],
            ["".into(), "".into(), many(MAX_QUERIES, &query_n)],
            format!("{} queries, more than {MAX_QUERIES}", MAX_QUERIES + 1),
        ),
        (
            ["".into(), "".into(), many(MAX_STRATEGIES - 1, &strategy_n)],
            ["".into(), "".into(), many(MAX_STRATEGIES, &strategy_n)],
            format!(
                "{} strategies, more than {MAX_STRATEGIES}",
                MAX_STRATEGIES + 1
            ),
        ),
        (
            ["".into(), "".into(), statements(MAX_STATEMENTS)],
            ["".into(), "".into(), statements(MAX_STATEMENTS + 1)],
            format!("more than {MAX_STATEMENTS} in one query"),
        ),
        (
            ["".into(), "".into(), params(MAX_PARAMS)],
            ["".into(), "".into(), params(MAX_PARAMS + 1)],
            format!("more than {MAX_PARAMS} in one statement"),
        ),
        (
            ["concurrency = 1".into(), "".into(), text(MAX_TEXT_LEN, 1)],
            [
                "concurrency = 1".into(),
                "".into(),
                text(MAX_TEXT_LEN + 1, 1),
            ],
            format!("`text` needs a length from 1 to {MAX_TEXT_LEN}"),
        ),
        (
            [
                format!("concurrency = {at_once}"),
                "".into(),
                text(MAX_TEXT_LEN, at_once),
            ],
            [
                format!("concurrency = {}", at_once + 1),
                "".into(),
                text(MAX_TEXT_LEN, at_once + 1),
            ],
            "bytes of generated text per request (query `big`)".into(),
        ),
        (
            [
                "duration = \"12h\"\nrounds = 2".into(),
                "".into(),
                "".into(),
            ],
            [
                "duration = \"12h\"\nrounds = 3".into(),
                "".into(),
                "".into(),
            ],
            "of measuring, more than 24h".into(),
        ),
        (
            [
                "".into(),
                "".into(),
                format!(
                    "[[query]]\nname = \"{}\"\nsql = \"SELECT 1\"\n",
                    name(MAX_NAME_CHARS)
                ),
            ],
            [
                "".into(),
                "".into(),
                format!(
                    "[[query]]\nname = \"{}\"\nsql = \"SELECT 1\"\n",
                    name(MAX_NAME_CHARS + 1)
                ),
            ],
            format!("query `name` is longer than {MAX_NAME_CHARS} characters"),
        ),
    ];
    for (ok, bad, phrase) in &cases {
        let good = scenario_with(&ok[0], &ok[1], &ok[2]);
        if let Err(e) = check(&good) {
            panic!("at the limit, refused:\n{good}\n{e}");
        }
        let over = scenario_with(&bad[0], &bad[1], &bad[2]);
        match check(&over) {
            Ok(_) => panic!("beyond the limit, accepted:\n{over}"),
            Err(e) => assert!(e.contains(phrase.as_str()), "{phrase:?} not in:\n{e}"),
        }
    }
    // Names that become directory names, and the description.
    let top = |extra: &str| format!("{extra}\n{}", scenario_with("", "", ""));
    assert!(check(&top(&format!("name = \"{}\"", name(MAX_NAME_CHARS)))).is_ok());
    let e = check(&top(&format!("name = \"{}\"", name(MAX_NAME_CHARS + 1)))).unwrap_err();
    assert!(e.contains("scenario `name` is longer than 100"), "{e}");
    assert!(check(&top(&format!(
        "description = \"{}\"",
        name(MAX_DESCRIPTION_CHARS)
    )))
    .is_ok());
    let e = check(&top(&format!(
        "description = \"{}\"",
        name(MAX_DESCRIPTION_CHARS + 1)
    )))
    .unwrap_err();
    assert!(e.contains("more than 10000"), "{e}");
}

/// The file's size is capped before it is parsed: exactly the cap is read,
/// one byte more is refused with the cap named, and so is a device that
/// never ends.
#[test]
fn the_scenario_file_is_read_with_a_cap() {
    use poolbench::scenario::limits::MAX_FILE_BYTES;
    let dir = tempfile::tempdir().unwrap();
    let body = scenario_with("", "", "");
    let padded = |total: u64| {
        let mut text = body.clone();
        text.push('#');
        while (text.len() as u64) < total - 1 {
            text.push('x');
        }
        text.push('\n');
        text
    };
    let at = dir.path().join("at.toml");
    std::fs::write(&at, padded(MAX_FILE_BYTES)).unwrap();
    let over = dir.path().join("over.toml");
    std::fs::write(&over, padded(MAX_FILE_BYTES + 1)).unwrap();
    let out = poolbench_blocking(["validate", at.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for path in [over.to_str().unwrap(), "/dev/zero"] {
        let out = poolbench_blocking(["validate", path]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("is larger than poolbench reads (1 MiB)"),
            "{}",
            stderr(&out)
        );
    }
}

/// Edge values that a limit stands for.
const EDGE_NUMBERS: &[&str] = &[
    "0",
    "1",
    "-1",
    "100",
    "101",
    "1000",
    "1001",
    "10000",
    "10001",
    "100000",
    "100001",
    "1000000",
    "1000001",
    "4294967296",
    "9223372036854775807",
    "0.001",
    "1e300",
];
const EDGE_DURATIONS: &[&str] = &[
    "0s",
    "1ns",
    "999us",
    "1ms",
    "59m",
    "1h",
    "61m",
    "24h",
    "25h",
    "1000000years",
    "18446744073709551615s",
];

/// Each number and duration of the good fixtures replaced by an edge value,
/// thousands of times: the checker never panics, and whatever it accepts
/// is within every limit (so nothing it lets through can abort a run).
#[test]
fn mutated_limits_never_pass_beyond_them() {
    use poolbench::scenario::limits::*;
    use poolbench::scenario::{Param, StrategyKind};
    let dir = manifest_dir().join("tests/fixtures/good");
    let mut seeds: Vec<(PathBuf, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect();
    seeds.sort();
    let cases = std::env::var("POOLBENCH_MUTATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3000);
    let mut rng = Rng(0x51ed_2701_f00d_beef);
    let (mut ok, mut refused) = (0, 0);
    for case in 0..cases {
        let (path, original) = &seeds[case % seeds.len()];
        let mut text = original.clone();
        for _ in 0..1 + rng.below(3) {
            text = mutate_value(&mut rng, &text);
        }
        let parsed = std::panic::catch_unwind(|| poolbench::scenario::parse(&text, path));
        let s = match parsed {
            Err(_) => panic!("case {case}: parse panicked on:\n{text}"),
            Ok(Err(_)) => {
                refused += 1;
                continue;
            }
            Ok(Ok(s)) => s,
        };
        ok += 1;
        let r = &s.run;
        let fail = |what: &str| panic!("case {case}: {what} beyond its limit in:\n{text}");
        if r.concurrency > MAX_CONCURRENCY || r.concurrency == 0 {
            fail("concurrency");
        }
        if r.duration > MAX_DURATION || r.duration.is_zero() || r.warmup > MAX_WARMUP {
            fail("duration or warmup");
        }
        if r.request_timeout < MIN_TIMEOUT || r.request_timeout > MAX_TIMEOUT {
            fail("request_timeout");
        }
        if r.rounds > MAX_ROUNDS {
            fail("rounds");
        }
        if let Some(a) = r.arrivals {
            if !(MIN_RATE..=MAX_RATE).contains(&a.rate) || a.max_in_flight > MAX_IN_FLIGHT {
                fail("rate or max_in_flight");
            }
        }
        if r.retry.as_ref().is_some_and(|p| p.backoff > MAX_BACKOFF) {
            fail("backoff");
        }
        for st in &s.strategies {
            if let StrategyKind::Pool(p) = &st.kind {
                if p.max_size > MAX_POOL_SIZE
                    || p.min_size > p.max_size
                    || p.wait_timeout
                        .is_some_and(|w| w < MIN_TIMEOUT || w > MAX_TIMEOUT)
                {
                    fail("pool settings");
                }
            }
        }
        let texts = s
            .queries
            .iter()
            .flat_map(|q| q.statements.iter().flat_map(|st| st.params.iter()));
        for p in texts {
            if matches!(p, Param::Text { len } if *len as i64 > MAX_TEXT_LEN) {
                fail("text length");
            }
        }
        if s.sweep.pool_sizes.iter().any(|&n| n > MAX_POOL_SIZE)
            || s.sweep.concurrency.iter().any(|&n| n > MAX_CONCURRENCY)
        {
            fail("[sweep]");
        }
        if !budget_problems(r, &s.queries, s.strategies.len()).is_empty() {
            fail("a budget");
        }
    }
    eprintln!("{cases} edge mutations: {ok} accepted, {refused} refused");
    assert!(
        ok > cases / 20 && refused > cases / 4,
        "ok {ok}, refused {refused}"
    );
}

/// One number or duration string of `text`, chosen at random, replaced by
/// an edge value.
fn mutate_value(rng: &mut Rng, text: &str) -> String {
    let bytes = text.as_bytes();
    // Candidate spans: a run of digits (with a point or exponent) that
    // follows `= `, `[`, `, ` or `{ x = `; or the inside of a quoted
    // duration ("30s", "1m 30s").
    let mut spans = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let prev = if i > 0 { bytes[i - 1] } else { b'\n' };
        if (c.is_ascii_digit() || c == b'-') && matches!(prev, b' ' | b'[' | b'=') {
            let start = i;
            i += 1;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.') {
                i += 1;
            }
            let token = &text[start..i];
            if token.parse::<f64>().is_ok() {
                spans.push((start, i, false));
            }
            continue;
        }
        if c == b'"' && i + 1 < bytes.len() && bytes[i + 1].is_ascii_digit() {
            let start = i + 1;
            let end = text[start..].find('"').map_or(start, |n| start + n);
            if humantime::parse_duration(&text[start..end]).is_ok() {
                spans.push((start, end, true));
            }
            i = end + 1;
            continue;
        }
        i += 1;
    }
    if spans.is_empty() {
        return text.to_owned();
    }
    let (start, end, duration) = spans[rng.below(spans.len())];
    let value = if duration {
        EDGE_DURATIONS[rng.below(EDGE_DURATIONS.len())]
    } else {
        EDGE_NUMBERS[rng.below(EDGE_NUMBERS.len())]
    };
    format!("{}{value}{}", &text[..start], &text[end..])
}
