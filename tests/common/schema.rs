//! The JSON Schemas of docs/schema/ held to what poolbench writes: every
//! run of the binary through these helpers has its report.json or
//! sweep.json (in `--out`) and its `plan`/`compare --format json` output
//! checked, and so has every report.json or sweep.json a test reads. A
//! field the schema does not allow fails the test that wrote it.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Output;
use std::sync::OnceLock;
use std::time::SystemTime;

use jsonschema::Validator;
use serde_json::Value;

/// Which of poolbench's JSON outputs a document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Doc {
    Report,
    Sweep,
    Plan,
    Compare,
}

impl Doc {
    pub const ALL: [Doc; 4] = [Doc::Report, Doc::Sweep, Doc::Plan, Doc::Compare];

    /// Its schema, under docs/schema/.
    pub fn schema_file(self) -> &'static str {
        match self {
            Doc::Report => "report.schema.json",
            Doc::Sweep => "sweep.schema.json",
            Doc::Plan => "plan.schema.json",
            Doc::Compare => "compare.schema.json",
        }
    }

    /// The document a results file holds, by its name.
    pub fn of_file(path: &Path) -> Option<Doc> {
        match path.file_name()?.to_str()? {
            "report.json" => Some(Doc::Report),
            "sweep.json" => Some(Doc::Sweep),
            _ => None,
        }
    }

    fn index(self) -> usize {
        Doc::ALL.iter().position(|d| *d == self).unwrap()
    }
}

/// The schema's text, parsed.
pub fn schema(doc: Doc) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/schema")
        .join(doc.schema_file());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn validator(doc: Doc) -> &'static Validator {
    static VALIDATORS: [OnceLock<Validator>; 4] = [const { OnceLock::new() }; 4];
    VALIDATORS[doc.index()].get_or_init(|| {
        jsonschema::draft202012::new(&schema(doc)).unwrap_or_else(|e| {
            panic!(
                "docs/schema/{} is not a valid schema: {e}",
                doc.schema_file()
            )
        })
    })
}

/// What in `json` the schema refuses, one line each ("/strategies/0/kind:
/// "pgbouncer" is not one of …").
pub fn violations(doc: Doc, json: &Value) -> Vec<String> {
    validator(doc)
        .iter_errors(json)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// Fails unless `json` (`what`, for the message) matches its schema.
pub fn check(doc: Doc, json: &Value, what: &str) {
    let found = violations(doc, json);
    assert!(
        found.is_empty(),
        "{what} does not match docs/schema/{}:\n{}",
        doc.schema_file(),
        found.join("\n")
    );
}

/// After the binary ran with `args` from `started`: the report.json and
/// sweep.json it wrote in its `--out` directory (not one a test put there
/// for it to refuse), and its stdout when it is `plan` or `compare` with
/// `--format json`.
pub fn check_outputs<S: AsRef<OsStr>>(args: &[S], started: SystemTime, o: &Output) {
    let args: Vec<&str> = args.iter().filter_map(|a| a.as_ref().to_str()).collect();
    let value_of = |flag: &str| {
        let joined = format!("{flag}=");
        args.iter()
            .enumerate()
            .find_map(|(i, a)| match a.strip_prefix(&joined) {
                Some(v) => Some(v),
                None if *a == flag => args.get(i + 1).copied(),
                None => None,
            })
    };
    if let Some(out) = value_of("--out") {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(out);
        for name in ["report.json", "sweep.json"] {
            let path = dir.join(name);
            let written = std::fs::metadata(&path).and_then(|m| m.modified());
            if !written.is_ok_and(|t| t >= started) {
                continue;
            }
            if let Ok(text) = std::fs::read_to_string(&path) {
                let json: Value = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                check(
                    Doc::of_file(&path).unwrap(),
                    &json,
                    &path.display().to_string(),
                );
            }
        }
    }
    let command = args.iter().find(|a| !a.starts_with('-')).copied();
    let doc = match command {
        Some("plan") => Doc::Plan,
        Some("compare") => Doc::Compare,
        _ => return,
    };
    if value_of("--format") != Some("json") || o.stdout.is_empty() {
        return;
    }
    let json: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{command:?} --format json printed what is not JSON ({e}):\n{}",
            String::from_utf8_lossy(&o.stdout)
        )
    });
    check(doc, &json, &format!("the output of {args:?}"));
}
