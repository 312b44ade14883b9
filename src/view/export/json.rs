//! JSON, for every command's model: report.json (run), sweep.json (sweep),
//! and the `--format json` of plan and compare. Pretty-printed, fields in
//! the model's order, one trailing newline.

use std::io::Write;

use anyhow::Result;
use serde::Serialize;

use super::Exporter;

/// The JSON file of a model, under its file name.
pub struct Json(pub &'static str);

impl<M: Serialize> Exporter<M> for Json {
    fn file_name(&self) -> &'static str {
        self.0
    }

    fn serialize(&self, model: &M) -> Result<Vec<u8>> {
        Ok(to_string(model)?.into_bytes())
    }

    /// Written as it is serialised: the text of a long run's timeline is
    /// never held whole.
    fn write(&self, model: &M, out: &mut dyn Write) -> Result<()> {
        serde_json::to_writer_pretty(&mut *out, model)?;
        out.write_all(b"\n")?;
        Ok(())
    }
}

/// The JSON text of a model, as written to a file or stdout.
pub fn to_string<M: Serialize + ?Sized>(model: &M) -> Result<String> {
    let mut text = serde_json::to_string_pretty(model)?;
    text.push('\n');
    Ok(text)
}
