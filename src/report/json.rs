//! report.json: the whole report, pretty-printed.

use anyhow::Result;

use super::{Exporter, Report};

pub struct Json;

impl Exporter for Json {
    fn file_name(&self) -> &'static str {
        "report.json"
    }

    fn serialize(&self, report: &Report) -> Result<Vec<u8>> {
        let mut bytes = serde_json::to_vec_pretty(report)?;
        bytes.push(b'\n');
        Ok(bytes)
    }
}
