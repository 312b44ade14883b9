//! The layout's one rule a compiler does not check: no two files of `src/`
//! import each other, directly or in a circle (docs/architecture.md). This
//! reads every file's `use` paths (`crate::…`, `super::…`, and a module's
//! own children), resolves each to the file that defines it, and fails on
//! any cycle, naming its files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path (`["engine", "worker"]`) for every `.rs` file under `src/`.
fn modules(root: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            // `tests.rs` files hold unit tests only (`#[cfg(test)] mod tests;`).
            if path.extension().is_none_or(|e| e != "rs") || path.ends_with("tests.rs") {
                continue;
            }
            let rel = path.strip_prefix(root).unwrap().with_extension("");
            let mut segs: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if segs.last().is_some_and(|s| s == "mod") {
                segs.pop();
            }
            if segs == ["lib"] || segs == ["main"] {
                segs.clear();
            }
            out.insert(segs, path);
        }
    }
    out
}

/// The text that counts: up to the in-file unit tests, with `pub(super)`
/// (a visibility, not a path) taken out, and without the bodies of inline
/// modules (`mod x { … }`), whose `super::` is the file itself.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]\nmod tests {") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    let text = text.replace("pub(super)", "");
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(start) = inline_mod(rest) {
        out.push_str(&rest[..start]);
        let body = &rest[start..];
        let mut depth = 0usize;
        let mut end = body.len();
        for (i, c) in body.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &body[end..];
    }
    out.push_str(rest);
    out
}

/// Where the next `mod name {` line begins, if any.
fn inline_mod(text: &str) -> Option<usize> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        let t = t.strip_prefix("pub ").unwrap_or(t);
        if t.starts_with("mod ") && t.trim_end().ends_with('{') {
            return Some(offset + (line.len() - line.trim_start().len()));
        }
        offset += line.len();
    }
    None
}

/// The paths a file names: `crate::a::b`, `super::x`, `super::{a, b::c}`,
/// and `use child::…` of its own child modules.
fn paths(
    text: &str,
    me: &[String],
    is_mod: bool,
    known: &BTreeMap<Vec<String>, PathBuf>,
) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let bytes = text.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut i = 0;
    while i < bytes.len() {
        let starts =
            |w: &str| bytes[i..].starts_with(w.as_bytes()) && (i == 0 || !ident(bytes[i - 1]));
        let (base, after) = if starts("crate::") {
            (Vec::new(), i + "crate::".len())
        } else if starts("super::") {
            // A `mod.rs`'s parent is one level up from its module; a plain
            // file's parent is its directory's module.
            let parent = if is_mod || !me.is_empty() {
                me[..me.len().saturating_sub(1)].to_vec()
            } else {
                Vec::new()
            };
            (parent, i + "super::".len())
        } else {
            i += 1;
            continue;
        };
        let rest = &text[after..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len());
        let mut segs = base.clone();
        segs.extend(
            rest[..end]
                .split("::")
                .filter(|s| !s.is_empty())
                .map(String::from),
        );
        if rest[end..].starts_with('{') {
            let close = rest[end..].find('}').map_or(rest.len(), |c| end + c);
            for item in rest[end + 1..close].split(',') {
                let item = item.split(" as ").next().unwrap_or("").trim();
                let mut s = segs.clone();
                if !item.is_empty() && item != "self" {
                    s.extend(item.split("::").map(|x| x.trim().to_string()));
                }
                found.push(s);
            }
        } else {
            found.push(segs);
        }
        i = after + end;
    }
    // `use child::…` / `pub use child::…` in a module's own file.
    for line in text.lines() {
        let line = line.trim_start();
        let line = line.strip_prefix("pub ").unwrap_or(line);
        let Some(rest) = line.strip_prefix("use ") else {
            continue;
        };
        let rest = rest.strip_prefix("self::").unwrap_or(rest);
        let head: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let mut child = me.to_vec();
        child.push(head);
        if known.contains_key(&child) {
            found.push(child);
        }
    }
    found
}

/// The file that defines a path: its longest prefix that is a module.
fn resolve<'a>(segs: &[String], known: &'a BTreeMap<Vec<String>, PathBuf>) -> Option<&'a PathBuf> {
    (0..=segs.len()).rev().find_map(|n| known.get(&segs[..n]))
}

/// Every file's imports: file → the files it names.
fn file_edges(root: &Path) -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let known = modules(root);
    let mut edges: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for (me, path) in &known {
        let is_mod = path.ends_with("mod.rs");
        let text = code(path);
        let targets = edges.entry(path.clone()).or_default();
        for segs in paths(&text, me, is_mod, &known) {
            if let Some(target) = resolve(&segs, &known).filter(|t| *t != path) {
                targets.insert(target.clone());
            }
        }
    }
    edges
}

/// The top-level module a file belongs to (`engine` for
/// `src/engine/worker.rs`, `session` for `src/session.rs`); None for the
/// crate root (`lib.rs`, `main.rs`), which is above every module.
fn top_module(root: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(root).unwrap();
    let first = rel.components().next()?.as_os_str().to_string_lossy();
    let name = first.strip_suffix(".rs").unwrap_or(&first);
    (!matches!(name, "lib" | "main")).then(|| name.to_string())
}

#[test]
fn no_two_files_of_src_import_each_other() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = file_edges(&root);
    // A depth-first search for a path back to where it started.
    let mut cycles = Vec::new();
    for start in edges.keys() {
        let mut stack = vec![(start, vec![start])];
        let mut seen = BTreeSet::new();
        while let Some((node, trail)) = stack.pop() {
            for next in edges.get(node).into_iter().flatten() {
                if next == start {
                    cycles.push(trail.clone());
                } else if seen.insert(next) {
                    let mut t = trail.clone();
                    t.push(next);
                    stack.push((next, t));
                }
            }
        }
    }
    let shown: BTreeSet<String> = cycles
        .iter()
        .map(|c| {
            let mut names: Vec<String> = c
                .iter()
                .map(|p| p.strip_prefix(&root).unwrap().display().to_string())
                .collect();
            names.sort();
            names.join(" ↔ ")
        })
        .collect();
    assert!(
        shown.is_empty(),
        "files of src/ that import each other:\n{}",
        shown.into_iter().collect::<Vec<_>>().join("\n")
    );
}

/// The top-level modules' graph: module → module it imports → one file
/// of the first importing a file of the second (the first found).
type ModuleGraph = BTreeMap<String, BTreeMap<String, (PathBuf, PathBuf)>>;

fn module_graph(root: &Path) -> ModuleGraph {
    let mut graph = ModuleGraph::new();
    for (from, targets) in file_edges(root) {
        let Some(a) = top_module(root, &from) else {
            continue;
        };
        let out = graph.entry(a.clone()).or_default();
        for to in targets {
            match top_module(root, &to) {
                Some(b) if b != a => {
                    out.entry(b).or_insert_with(|| (from.clone(), to.clone()));
                }
                _ => {}
            }
        }
    }
    graph
}

/// The second rule, one level up: no top-level module of `src/` imports
/// another that imports it back, directly or in a circle (a file of
/// module A naming a file of module B is an edge A → B). A failure names
/// the modules of each circle and, for each step, one file-level import
/// that makes it. Run with `--nocapture` to see the graph
/// docs/architecture.md draws.
#[test]
fn no_two_modules_of_src_import_each_other() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = module_graph(&root);
    let rel = |p: &PathBuf| p.strip_prefix(&root).unwrap().display().to_string();
    println!("module → the modules it imports:");
    for (a, targets) in &graph {
        let names: Vec<&str> = targets.keys().map(String::as_str).collect();
        println!("  {a} → {}", names.join(", "));
    }
    // For each module, the shortest circle back to it (breadth first).
    let mut circles: BTreeMap<BTreeSet<&String>, Vec<&String>> = BTreeMap::new();
    for start in graph.keys() {
        let mut came_from: BTreeMap<&String, &String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        let mut closing = None;
        'search: while let Some(node) = queue.pop_front() {
            for next in graph.get(node).into_iter().flat_map(|t| t.keys()) {
                if next == start {
                    closing = Some(node);
                    break 'search;
                }
                if !came_from.contains_key(next) {
                    came_from.insert(next, node);
                    queue.push_back(next);
                }
            }
        }
        let Some(mut node) = closing else {
            continue;
        };
        let mut circle = vec![node];
        while node != start {
            node = came_from[node];
            circle.push(node);
        }
        circle.reverse();
        circles
            .entry(circle.iter().copied().collect())
            .or_insert(circle);
    }
    let shown: Vec<String> = circles
        .values()
        .map(|circle| {
            let mut lines = vec![circle
                .iter()
                .chain(circle.first())
                .map(|m| m.as_str())
                .collect::<Vec<_>>()
                .join(" → ")];
            for (i, a) in circle.iter().enumerate() {
                let b = circle[(i + 1) % circle.len()];
                let (from, to) = &graph[*a][b];
                lines.push(format!("  {a} → {b}: {} imports {}", rel(from), rel(to)));
            }
            lines.join("\n")
        })
        .collect();
    assert!(
        shown.is_empty(),
        "modules of src/ that import each other:\n{}",
        shown.join("\n")
    );
}
