//! Helpers the integration tests share: the built binary run with a
//! controlled environment, a real embedded server, scenario files in a
//! temporary directory, and reading what a run wrote and printed.

#![allow(dead_code)] // each test crate uses its own subset

pub mod schema;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use poolbench::embedded::{EmbeddedOptions, EmbeddedServer};
use poolbench::scenario::AuthMethod;
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_poolbench");

/// The binary with `args`, run from the package directory (so relative
/// fixture paths appear in messages as given), without the caller's
/// DATABASE_URL, JOB_COMPLETION_INDEX or POOLBENCH_DURATION/_WARMUP (they
/// would change which server it reaches, which copy it is or how long it
/// measures), stdin closed, stdout and stderr piped.
pub fn blocking_command<I, S>(args: I) -> std::process::Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("DATABASE_URL")
        .env_remove("JOB_COMPLETION_INDEX")
        .env_remove("POOLBENCH_DURATION")
        .env_remove("POOLBENCH_WARMUP")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// [`blocking_command`] for the async runtime: spawn it, read its lines,
/// signal it.
pub fn command<I, S>(args: I) -> tokio::process::Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    blocking_command(args).into()
}

/// `poolbench server ARGS` in the background (killed when dropped, stderr
/// discarded), and the lines it prints to read.
pub fn spawn_poolbench_server(
    args: &[&str],
) -> (
    tokio::process::Child,
    tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
) {
    use tokio::io::AsyncBufReadExt;
    let mut server = command(std::iter::once("server").chain(args.iter().copied()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let lines = tokio::io::BufReader::new(server.stdout.take().unwrap()).lines();
    (server, lines)
}

/// Runs the binary to its end without blocking the runtime's threads; the
/// JSON it wrote or printed is checked against its schema.
pub async fn poolbench<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<S> = args.into_iter().collect();
    let started = std::time::SystemTime::now();
    let o = command(&args).output().await.expect("run poolbench");
    schema::check_outputs(&args, started, &o);
    o
}

/// Runs the binary to its end, for tests outside a runtime; the JSON it
/// wrote or printed is checked against its schema.
pub fn poolbench_blocking<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<S> = args.into_iter().collect();
    let started = std::time::SystemTime::now();
    let o = blocking_command(&args).output().expect("run poolbench");
    schema::check_outputs(&args, started, &o);
    o
}

/// `poolbench <command> <scenario> --dsn <dsn> --out <out> <extra…>`.
pub async fn on_server(
    command: &str,
    scenario: &Path,
    dsn: &str,
    out: &Path,
    extra: &[&str],
) -> Output {
    let mut args: Vec<&OsStr> = vec![
        command.as_ref(),
        scenario.as_os_str(),
        "--dsn".as_ref(),
        dsn.as_ref(),
        "--out".as_ref(),
        out.as_os_str(),
    ];
    args.extend(extra.iter().map(OsStr::new));
    poolbench(args).await
}

/// Owned arguments from string literals.
pub fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit code, stdout and stderr, for an assertion's message.
pub fn show(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    )
}

/// Fails unless the run ended without a panic or a hint of one.
pub fn no_panic(o: &Output) {
    let all = show(o);
    assert!(
        !["panicked", "RUST_BACKTRACE", "internal error"]
            .iter()
            .any(|p| all.contains(p)),
        "{all}"
    );
}

/// A SCRAM + TLS embedded server, as the default run gets.
pub async fn start_server(max_connections: u32) -> EmbeddedServer {
    let opts = EmbeddedOptions {
        auth: AuthMethod::ScramSha256,
        tls: true,
        port: None,
        max_connections,
        ..EmbeddedOptions::default()
    };
    match EmbeddedServer::start(&opts).await {
        Ok(s) => s,
        Err(e) => panic!("embedded server did not start: {e:#}"),
    }
}

/// Whether a process whose command line names `dir` (a postgres serving a
/// cluster there) is still running.
pub fn postgres_running_in(dir: &Path) -> bool {
    let needle = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
        std::fs::read(entry.path().join("cmdline"))
            .map(|c| String::from_utf8_lossy(&c).contains(&needle))
            .unwrap_or(false)
    })
}

/// Writes `<dir>/<name>.toml` and returns its path.
pub fn write_scenario(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, body).unwrap();
    path
}

/// A JSON file, parsed; a report.json or sweep.json checked against its
/// schema.
pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if let Some(doc) = schema::Doc::of_file(path) {
        schema::check(doc, &json, &path.display().to_string());
    }
    json
}

/// The report.json of a run directory, parsed.
pub fn read_report(dir: &Path) -> Value {
    read_json(&dir.join("report.json"))
}

/// The strategy called `name` in a report.
pub fn strategy<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["strategies"]
        .as_array()
        .expect("a report has strategies")
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no strategy {name} in {report}"))
}

pub fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

pub fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}
