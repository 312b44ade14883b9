//! The model of report.json (`model.rs`), merged from copies' reports
//! (`merge.rs`); where a per-request connection's time goes
//! (`explain.rs`); and the number formatting every view shares
//! (`format.rs`). It imports only `metrics` and `error`: the backend
//! describes its server in it, sizing and compare build on it, the views
//! of it (terminal, files) are in `view/`, and a strategy's report is
//! assembled from the engine's rounds in `commands/assemble.rs`.

pub mod explain;
pub mod format;
pub mod merge;
pub mod model;

pub use model::*;

/// RFC 3339 UTC time, to the second: "2026-11-21T05:32:35Z".
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// "2026-11-21T05:32:35Z" → "20261121T053235Z".
pub fn compact_timestamp(rfc3339: &str) -> String {
    rfc3339.chars().filter(|c| *c != '-' && *c != ':').collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_is_compacted() {
        assert_eq!(
            compact_timestamp("2026-11-21T05:32:35Z"),
            "20261121T053235Z"
        );
    }
}
