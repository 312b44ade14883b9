//! Helpers the integration tests share: a real embedded server, scenario
//! files in a temporary directory, and reading a run's report.json.

#![allow(dead_code)] // each test crate uses its own subset

use std::path::{Path, PathBuf};

use poolbench::embedded::{EmbeddedOptions, EmbeddedServer};
use poolbench::scenario::AuthMethod;
use serde_json::Value;

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

/// Writes `<dir>/<name>.toml` and returns its path.
pub fn write_scenario(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, body).unwrap();
    path
}

/// The report.json of a run directory, parsed.
pub fn read_report(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("report.json")).expect("report.json written");
    serde_json::from_str(&text).expect("report.json is JSON")
}
