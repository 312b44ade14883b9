//! The manual kept true to the program. README.md and docs/ are read as
//! Markdown (pulldown-cmark) and held against what the code says:
//!
//! - docs/cli.md is generated from the clap definitions (as `--help`, the
//!   man pages and the completions are) and must equal what they generate
//!   now (`POOLBENCH_BLESS=1 cargo test --test docs` writes it again);
//! - every long flag of every command appears in the hand-written pages;
//! - every key of the scenario format appears in docs/scenarios.md's
//!   reference, and no key the format lacks: the keys are read from the
//!   parser itself (an unknown key in each table makes serde list the
//!   table's keys), the parameter generators from the checker's message;
//! - every relative link of README.md and docs/ names a file that exists,
//!   and its `#anchor` a heading of that file (GitHub's slugs);
//! - every command of README.md's `sh` blocks parses: a `poolbench` line by
//!   clap as the binary would parse it, the scenario files it names load
//!   and check, the scripts it names exist and are executable, each `cargo`
//!   line builds with `--locked`; and the install block runs as written in
//!   a fresh home, so its completion scripts and man pages land where the
//!   shells and `man` look;
//! - every other command of README.md runs as written in a directory laid
//!   out as a fresh clone's (each measuring for a second, through
//!   POOLBENCH_DURATION), but for those that name the reader's own server,
//!   and each report it writes matches its schema.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::CommandFactory;
use pulldown_cmark::{CodeBlockKind, Event, Parser, Tag, TagEnd};

use poolbench::cli::Cli;

const BIN: &str = env!("CARGO_BIN_EXE_poolbench");

mod common;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// README.md and every Markdown file under docs/, as paths from the root.
fn manual() -> Vec<PathBuf> {
    let mut files = vec![PathBuf::from("README.md"), PathBuf::from("CHANGELOG.md")];
    let mut dirs = vec![root().join("docs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                files.push(path.strip_prefix(root()).unwrap().to_path_buf());
            }
        }
    }
    files.sort();
    files
}

/// The pages a person wrote: the manual without the generated reference.
fn prose() -> String {
    manual()
        .iter()
        .filter(|p| !p.ends_with("docs/cli.md"))
        .map(|p| read(&root().join(p)))
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------- the CLI

fn cli_markdown() -> String {
    let options = clap_markdown::MarkdownOptions::new()
        .title("Command-line reference".to_string())
        .show_footer(false);
    let body = clap_markdown::help_markdown_command_custom(&Cli::command(), &options);
    format!(
        "<!-- Generated from the clap definitions in src/cli.rs by tests/docs.rs: \
         do not edit. Regenerate with `POOLBENCH_BLESS=1 cargo test --test docs`. -->\n\n{}",
        body.trim_start()
    )
}

#[test]
fn the_cli_reference_is_what_clap_generates() {
    let path = root().join("docs/cli.md");
    let generated = cli_markdown();
    if std::env::var_os("POOLBENCH_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let written = std::fs::read_to_string(&path).unwrap_or_default();
    if written != generated {
        let line = written
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(written.lines().count().min(generated.lines().count()));
        panic!(
            "docs/cli.md differs from what src/cli.rs generates (first at line {}: {:?} \
             where the code gives {:?}); regenerate it with \
             `POOLBENCH_BLESS=1 cargo test --test docs` and commit it",
            line + 1,
            written.lines().nth(line).unwrap_or("<end of file>"),
            generated.lines().nth(line).unwrap_or("<end of file>"),
        );
    }
}

/// Every long flag of every command, with the commands that take it.
fn flags() -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let cli = Cli::command();
    for command in cli.get_subcommands() {
        for arg in command.get_arguments() {
            if arg.is_hide_set() {
                continue;
            }
            if let Some(long) = arg.get_long() {
                out.entry(format!("--{long}"))
                    .or_default()
                    .insert(command.get_name().to_string());
            }
        }
    }
    out
}

#[test]
fn every_flag_is_in_the_hand_written_pages() {
    let text = prose();
    let flags = flags();
    assert!(flags.len() > 30, "{flags:?}");
    let missing: Vec<String> = flags
        .iter()
        .filter(|(flag, _)| {
            // A whole flag: `--rate` is not found inside `--rates`.
            !text.match_indices(flag.as_str()).any(|(i, _)| {
                let next = text[i + flag.len()..].chars().next();
                !next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            })
        })
        .map(|(flag, commands)| format!("{flag} (of {commands:?})"))
        .collect();
    assert!(
        missing.is_empty(),
        "flags no page of README.md or docs/ (docs/cli.md aside) mentions: {missing:?}"
    );
}

// ------------------------------------------------------- the scenario keys

/// The keys serde accepts in the table that `prefix` opens: an unknown key
/// put there makes the parser name them all.
fn keys_of(prefix: &str) -> BTreeSet<String> {
    keys_in(&format!("{prefix}zzz_not_a_key = 1\n"))
}

/// The keys serde names when it meets `zzz_not_a_key` in `text`.
fn keys_in(text: &str) -> BTreeSet<String> {
    let err = poolbench::scenario::parse(text, Path::new("keys.toml"))
        .err()
        .unwrap_or_else(|| panic!("{text:?} was accepted"));
    let message = format!("{err:#}");
    // serde: "expected one of `a`, `b`", "expected `a` or `b`", "expected `a`".
    let list = message
        .split_once("`, expected ")
        .unwrap_or_else(|| panic!("no key list in {message:?}"))
        .1
        .lines()
        .next()
        .unwrap();
    let keys: BTreeSet<String> = list
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    assert!(!keys.is_empty(), "{message}");
    keys
}

/// The scenario format's tables, as a TOML header that opens each (an
/// inline table for a statement), and how docs/scenarios.md's reference
/// names them.
const TABLES: &[(&str, &str)] = &[
    ("", ""),
    ("[run]\n", "run"),
    ("[run.retry]\n", "run.retry"),
    ("[database]\n", "database"),
    ("[database.embedded]\n", "database.embedded"),
    ("[setup]\n", "setup"),
    ("[[strategy]]\n", "strategy"),
    ("[[query]]\n", "query"),
    ("[sweep]\n", "sweep"),
    ("[pgbouncer]\n", "pgbouncer"),
    ("[network]\n", "network"),
];

/// The first ```toml block of docs/scenarios.md: the reference with every key.
fn reference_block() -> toml::Table {
    let text = read(&root().join("docs/scenarios.md"));
    let mut inside = false;
    let mut block = String::new();
    for event in Parser::new(&text) {
        match event {
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(lang))) if &*lang == "toml" => {
                inside = true
            }
            Event::Text(t) if inside => block.push_str(&t),
            Event::End(TagEnd::CodeBlock) if inside => break,
            _ => {}
        }
    }
    assert!(!block.is_empty(), "docs/scenarios.md has no ```toml block");
    block
        .parse()
        .unwrap_or_else(|e| panic!("docs/scenarios.md's reference is not TOML: {e}"))
}

/// The keys the reference gives the table at `path` ("run.retry"; "" for
/// the top level), arrays of tables merged.
fn documented_keys(reference: &toml::Table, path: &str) -> BTreeSet<String> {
    let mut tables: Vec<&toml::Table> = vec![reference];
    for segment in path.split('.').filter(|s| !s.is_empty()) {
        tables = tables
            .iter()
            .filter_map(|t| t.get(segment))
            .flat_map(|v| match v {
                toml::Value::Table(t) => vec![t],
                toml::Value::Array(items) => items.iter().filter_map(|i| i.as_table()).collect(),
                _ => vec![],
            })
            .collect();
    }
    tables.iter().flat_map(|t| t.keys().cloned()).collect()
}

#[test]
fn every_scenario_key_is_in_the_reference() {
    let reference = reference_block();
    let mut problems = Vec::new();
    for (header, path) in TABLES {
        let code = keys_of(header);
        let docs = documented_keys(&reference, path);
        let table = if path.is_empty() { "top level" } else { path };
        for key in code.difference(&docs) {
            problems.push(format!(
                "[{table}] {key}: a key of the format, not in the reference"
            ));
        }
        for key in docs.difference(&code) {
            problems.push(format!(
                "[{table}] {key}: in the reference, not a key of the format"
            ));
        }
    }
    // A statement of `statements = [...]` is an inline table.
    let code = keys_in("[[query]]\nstatements = [{ zzz_not_a_key = 1 }]\n");
    let docs: BTreeSet<String> = reference["query"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|q| q.get("statements"))
        .flat_map(|s| s.as_array().unwrap().iter())
        .flat_map(|s| s.as_table().unwrap().keys().cloned())
        .collect();
    if code != docs {
        problems.push(format!(
            "a statement's keys: format {code:?}, reference {docs:?}"
        ));
    }
    assert!(problems.is_empty(), "docs/scenarios.md: {problems:#?}");
}

#[test]
fn every_parameter_generator_is_in_the_reference() {
    let text =
        "[[query]]\nname = \"q\"\nsql = \"SELECT $1\"\nparams = [{ zzz_not_a_generator = 1 }]\n";
    let err = poolbench::scenario::parse(text, Path::new("generators.toml")).unwrap_err();
    let message = format!("{err:#}");
    let list = message
        .split_once("expected one of ")
        .unwrap_or_else(|| panic!("no generator list in {message:?}"))
        .1;
    let generators: Vec<&str> = list
        .split('`')
        .skip(1)
        .step_by(2)
        .take_while(|g| g.starts_with('{'))
        .collect();
    assert!(generators.len() >= 4, "{message}");
    let page = read(&root().join("docs/scenarios.md"));
    for generator in generators {
        // The message writes `...` where the page writes `…`.
        let shown = generator.replace("...", "…");
        assert!(
            page.contains(&format!("`{shown}`")),
            "docs/scenarios.md does not show the generator `{shown}`"
        );
    }
}

// ------------------------------------------------------------------ links

/// GitHub's anchor for a heading: lower case, punctuation dropped (hyphens
/// and underscores kept), spaces turned into hyphens; a repeated one gets
/// -1, -2 ….
fn slug(heading: &str) -> String {
    heading
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

struct Page {
    anchors: BTreeSet<String>,
    /// (link target, line) of every link and image.
    links: Vec<(String, usize)>,
}

fn page(text: &str) -> Page {
    let mut anchors = BTreeSet::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut links = Vec::new();
    let mut heading: Option<String> = None;
    for (event, range) in Parser::new(text).into_offset_iter() {
        match event {
            Event::Start(Tag::Heading { .. }) => heading = Some(String::new()),
            Event::Text(t) | Event::Code(t) => {
                if let Some(h) = heading.as_mut() {
                    h.push_str(&t)
                }
            }
            Event::End(TagEnd::Heading(_)) => {
                let base = slug(&heading.take().unwrap());
                let n = seen.entry(base.clone()).or_insert(0);
                anchors.insert(if *n == 0 { base } else { format!("{base}-{n}") });
                *n += 1;
            }
            Event::Start(Tag::Link { dest_url, .. })
            | Event::Start(Tag::Image { dest_url, .. }) => {
                let line = text[..range.start].matches('\n').count() + 1;
                links.push((dest_url.to_string(), line));
            }
            Event::Html(html) | Event::InlineHtml(html) => {
                // An explicit anchor: <a id="…"></a>.
                for part in html.split("id=\"").skip(1) {
                    if let Some((id, _)) = part.split_once('"') {
                        anchors.insert(id.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    Page { anchors, links }
}

#[test]
fn every_relative_link_resolves() {
    let files = manual();
    let pages: BTreeMap<PathBuf, Page> = files
        .iter()
        .map(|p| (p.clone(), page(&read(&root().join(p)))))
        .collect();
    let mut broken = Vec::new();
    let mut checked = 0;
    for (file, page) in &pages {
        for (target, line) in &page.links {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (path, anchor) = match target.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (target.as_str(), None),
            };
            let resolved = if path.is_empty() {
                file.clone()
            } else {
                let joined = file.parent().unwrap().join(path);
                // Lexically: docs/../README.md → README.md.
                let mut out = PathBuf::new();
                for c in joined.components() {
                    match c {
                        std::path::Component::ParentDir => {
                            out.pop();
                        }
                        std::path::Component::CurDir => {}
                        c => out.push(c),
                    }
                }
                out
            };
            let at = format!("{}:{line}: {target}", file.display());
            if !root().join(&resolved).exists() {
                broken.push(format!("{at}: no file {}", resolved.display()));
                continue;
            }
            if let Some(anchor) = anchor {
                match pages.get(&resolved) {
                    Some(p) if p.anchors.contains(anchor) => {}
                    Some(_) => broken.push(format!(
                        "{at}: no heading of {} has the anchor #{anchor}",
                        resolved.display()
                    )),
                    None => {
                        broken.push(format!("{at}: an anchor into a file that is not Markdown"))
                    }
                }
            }
        }
    }
    assert!(checked > 50, "only {checked} relative links found");
    assert!(broken.is_empty(), "broken links: {broken:#?}");
}

#[test]
fn slugs_are_githubs() {
    assert_eq!(
        slug("Why a connection costs 50–200 ms"),
        "why-a-connection-costs-50200-ms"
    );
    assert_eq!(slug("The `[run]` table"), "the-run-table");
    assert_eq!(slug("MySQL and MariaDB"), "mysql-and-mariadb");
    assert_eq!(
        slug("Pools, instances, PgBouncer"),
        "pools-instances-pgbouncer"
    );
    let p = page("# A\n## A\n[x](#a-1)\n");
    assert!(p.anchors.contains("a") && p.anchors.contains("a-1"));
    assert_eq!(p.links, [("#a-1".to_string(), 3)]);
}

// ------------------------------------------------- the README's commands

/// The commands of README.md's ```sh blocks, one per logical line
/// (continuations joined, comments and blank lines dropped).
fn readme_commands() -> Vec<String> {
    let text = read(&root().join("README.md"));
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for event in Parser::new(&text) {
        match event {
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(lang))) if &*lang == "sh" => {
                current = Some(String::new())
            }
            Event::Text(t) => {
                if let Some(c) = current.as_mut() {
                    c.push_str(&t)
                }
            }
            Event::End(TagEnd::CodeBlock) => blocks.extend(current.take()),
            _ => {}
        }
    }
    let mut commands = Vec::new();
    for block in blocks {
        let mut line = String::new();
        for raw in block.lines() {
            if let Some(head) = raw.strip_suffix('\\') {
                line.push_str(head);
                line.push(' ');
                continue;
            }
            line.push_str(raw);
            let trimmed = line.trim();
            if !trimmed.is_empty() && !trimmed.starts_with('#') {
                commands.push(trimmed.to_string());
            }
            line.clear();
        }
    }
    commands
}

/// A command's words up to its first shell operator or redirection, with
/// leading `VAR=value` assignments and any trailing comment dropped.
fn words(command: &str) -> Vec<String> {
    let words = shlex::split(command).unwrap_or_else(|| panic!("cannot split {command:?}"));
    words
        .into_iter()
        .skip_while(|w| {
            w.split_once('=').is_some_and(|(name, _)| {
                !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_')
            })
        })
        .take_while(|w| {
            !matches!(w.as_str(), "|" | "||" | "&&" | ";" | "&")
                && !w.starts_with('#')
                && !w.starts_with('>')
                && !w.starts_with("2>")
                && !w.starts_with('<')
        })
        .collect()
}

#[test]
fn the_readme_commands_parse_and_name_files_that_exist() {
    let commands = readme_commands();
    let mut checked = BTreeMap::<&str, usize>::new();
    let mut problems = Vec::new();
    for command in &commands {
        let words = words(command);
        let Some(program) = words.first() else {
            continue;
        };
        let program = program.as_str();
        if program == "poolbench" || program.ends_with("/poolbench") {
            *checked.entry("poolbench").or_default() += 1;
            if let Err(e) = <Cli as clap::Parser>::try_parse_from(&words) {
                problems.push(format!("{command:?}: clap refuses it: {e}"));
            }
            for word in &words[1..] {
                let value = word.rsplit_once('=').map_or(word.as_str(), |(_, v)| v);
                if value.ends_with(".toml") {
                    match poolbench::scenario::load(&root().join(value)) {
                        Ok(_) => *checked.entry("scenario files loaded").or_default() += 1,
                        Err(e) => problems.push(format!("{command:?}: {value}: {e:#}")),
                    }
                }
            }
        } else if program.starts_with("scripts/") {
            *checked.entry("scripts").or_default() += 1;
            let path = root().join(program);
            let executable = std::fs::metadata(&path)
                .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0);
            if !matches!(executable, Ok(true)) {
                problems.push(format!("{command:?}: {program} is not an executable file"));
            }
            for word in &words[1..] {
                if word.ends_with(".toml") && !root().join(word).is_file() {
                    problems.push(format!("{command:?}: no file {word}"));
                }
            }
        } else if program == "cargo" {
            *checked.entry("cargo").or_default() += 1;
            if !words.iter().any(|w| w == "--locked") {
                problems.push(format!(
                    "{command:?}: without --locked (CI builds with the committed Cargo.lock)"
                ));
            }
            if let Some(path) = words.iter().skip_while(|w| *w != "--path").nth(1) {
                if !root().join(path).join("Cargo.toml").is_file() {
                    problems.push(format!("{command:?}: no crate at {path}"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "README.md's commands: {problems:#?}");
    assert!(
        checked.get("poolbench").copied().unwrap_or(0) >= 5 && checked.contains_key("cargo"),
        "too few commands found in README.md's sh blocks: {checked:?} of {commands:#?}"
    );
    // The test command .ci/run runs is the README's.
    assert!(
        commands.iter().any(|c| c == "cargo test --locked"),
        "README.md lost `cargo test --locked`"
    );
    let ci = read(&root().join(".ci/run"));
    assert!(
        ci.lines().any(|l| l.trim() == "cargo test --locked"),
        ".ci/run"
    );
}

/// README's install block, run as written in an empty home with the built
/// binary where `cargo install` puts it: the completion scripts and the man
/// pages land in directories that did not exist, and `man` finds the pages
/// there without a MANPATH (when the machine has `man`).
#[test]
fn the_readme_install_block_runs_in_a_fresh_home() {
    let commands = readme_commands();
    let install: Vec<&String> = commands
        .iter()
        .filter(|c| {
            let w = words(c);
            w.first().is_some_and(|p| p == "poolbench" || p == "mkdir")
                && (c.contains("completions") || c.contains(" man "))
        })
        .collect();
    assert!(
        install.iter().any(|c| c.contains("completions bash"))
            && install.iter().any(|c| c.contains("man --dir")),
        "README.md has no install block with completions and man pages: {install:#?}"
    );
    let home = tempfile::tempdir().unwrap();
    let bin = home.path().join(".cargo/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(BIN, bin.join("poolbench")).unwrap();
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display());
    let script = format!(
        "set -eu\n{}\n",
        install
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    let o = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .env_clear()
        .env("HOME", home.path())
        .env("PATH", &path)
        .current_dir(home.path())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{script}\nexit {:?}\n{}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let h = home.path();
    let bash = h.join(".local/share/bash-completion/completions/poolbench");
    assert!(read(&bash).contains("_poolbench"), "{}", bash.display());
    let man_dir = h.join(".cargo/share/man/man1");
    for page in ["poolbench.1", "poolbench-run.1", "poolbench-sweep.1"] {
        assert!(
            man_dir.join(page).is_file(),
            "no {page} in {}",
            man_dir.display()
        );
    }
    if Command::new("man").arg("--version").output().is_ok() {
        let o = Command::new("man")
            .args(["-w", "poolbench-run"])
            .env_clear()
            .env("HOME", h)
            .env("PATH", &path)
            .output()
            .unwrap();
        let found = String::from_utf8_lossy(&o.stdout);
        assert!(
            found
                .trim_end()
                .ends_with(".cargo/share/man/man1/poolbench-run.1"),
            "man -w poolbench-run: {found}{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// Copies a directory tree (files and directories only).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            copy_tree(&path, &to.join(entry.file_name()));
        } else {
            std::fs::copy(&path, to.join(entry.file_name())).unwrap();
        }
    }
}

/// Every command of README.md, run as written, in order, from a directory
/// holding what a fresh clone gives them (scenarios/ and results/baseline),
/// with the built binary where the commands name it (`poolbench` on the
/// PATH, `./target/release/poolbench`), each measuring for one second
/// (POOLBENCH_DURATION, so the command is the README's word for word).
/// Left out, and said why: cargo's (CI builds and tests; the install block
/// has its test above) and those naming the reader's own server (`--dsn`,
/// `watch --to`).
#[test]
fn the_readme_commands_run_as_written() {
    let clone = tempfile::tempdir().unwrap();
    let at = clone.path();
    copy_tree(&root().join("scenarios"), &at.join("scenarios"));
    copy_tree(
        &root().join("results/baseline"),
        &at.join("results/baseline"),
    );
    let bin = at.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(at.join("target/release")).unwrap();
    std::os::unix::fs::symlink(BIN, bin.join("poolbench")).unwrap();
    std::os::unix::fs::symlink(BIN, at.join("target/release/poolbench")).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let mut ran = Vec::new();
    for command in readme_commands() {
        let words = words(&command);
        let Some(program) = words.first() else {
            continue;
        };
        let is_poolbench = program == "poolbench" || program.ends_with("/poolbench");
        let installs = command.contains("completions") || words.get(1).is_some_and(|w| w == "man");
        let own_server = words.iter().any(|w| w.starts_with("--dsn") || w == "--to");
        if !is_poolbench || installs || own_server {
            continue;
        }
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(format!("set -eu\n{command}"))
            .current_dir(at)
            .env("PATH", &path)
            .env("HOME", at)
            .env("POOLBENCH_DURATION", "1s")
            .env("POOLBENCH_WARMUP", "0s");
        // The embedded server, whatever the caller's environment says.
        for (name, _) in std::env::vars() {
            if name == "DATABASE_URL" || name == "JOB_COMPLETION_INDEX" || name.starts_with("PG") {
                cmd.env_remove(name);
            }
        }
        let o = cmd.output().unwrap();
        // compare exits 1 on a regression: a debug build against the
        // release baseline may be one; 2 would be a refusal. plan answers
        // by measuring: on a loaded machine (a test suite beside it) no
        // size may meet the target, and plan says so (exit 1).
        let stderr = String::from_utf8_lossy(&o.stderr);
        let ok = match (words.get(1).map(String::as_str), o.status.code()) {
            (_, Some(0)) | (Some("compare"), Some(1)) => true,
            (Some("plan"), Some(1)) => {
                stderr.contains("no pool size") || stderr.contains("missed its target")
            }
            _ => false,
        };
        assert!(
            ok,
            "{command}\nexit {:?}\n{}{}",
            o.status.code(),
            String::from_utf8_lossy(&o.stdout),
            stderr
        );
        ran.push(words[1..].join(" "));
    }
    for expected in [
        "run scenarios/quickstart.toml",
        "validate scenarios/lookup.toml",
        "run scenarios/workers.toml",
        "compare results/baseline results/candidate --format markdown",
    ] {
        assert!(
            ran.iter().any(|r| r == expected),
            "{expected} not run: {ran:#?}"
        );
    }
    assert!(
        ran.iter()
            .any(|r| r.starts_with("plan scenarios/sizing.toml")),
        "{ran:#?}"
    );
    // What they wrote is what the schemas say.
    let mut reports = 0;
    for dir in std::fs::read_dir(at.join("results")).unwrap().flatten() {
        for name in ["report.json", "sweep.json"] {
            let file = dir.path().join(name);
            if file.is_file() && dir.file_name() != "baseline" {
                common::read_json(&file);
                reports += 1;
            }
        }
    }
    // (plan writes no report without --out; the sweep it replaced did.)
    assert!(reports >= 6, "{reports} reports in results/");
}

/// Whether `text` holds a calendar date (2026-11-22) that is not part of an
/// example timestamp (2026-11-22T10:00:00Z), or a month and year.
fn has_date(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |from: usize, n: usize| {
        b.get(from..from + n)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    };
    let iso = (0..b.len()).any(|i| {
        digits(i, 4)
            && b.get(i + 4) == Some(&b'-')
            && digits(i + 5, 2)
            && b.get(i + 7) == Some(&b'-')
            && digits(i + 8, 2)
            && b.get(i + 10) != Some(&b'T')
            && (i == 0 || !b[i - 1].is_ascii_digit())
    });
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    iso || MONTHS.iter().any(|m| {
        text.match_indices(m).any(|(i, _)| {
            let after = text[i + m.len()..].trim_start();
            after.len() >= 4 && after[..4].chars().all(|c| c.is_ascii_digit())
        })
    })
}

/// Dated measurements go in docs/performance.md, with the script that
/// reproduces them; a comment in src/ that quotes one goes stale.
#[test]
fn no_comment_in_src_is_dated() {
    assert!(has_date("// measured 2026-11-22: 1.2 ms"));
    assert!(has_date("/// in November 2026, 40% faster"));
    assert!(!has_date("/// e.g. 2026-11-22T10:00:00Z"));
    let mut dated = Vec::new();
    let mut stack = vec![root().join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                for (n, line) in read(&path).lines().enumerate() {
                    let comment = line.find("//").map(|i| &line[i..]);
                    if comment.is_some_and(has_date) {
                        dated.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                    }
                }
            }
        }
    }
    assert!(
        dated.is_empty(),
        "dated comments (move them to docs/performance.md): {dated:#?}"
    );
}
