//! The HTML views: report.html for a run (`run.rs`), sweep.html for a sweep
//! (`sweep.rs`) and `compare --format html` (`compare.rs`). Each is one
//! self-contained page (`page.rs`) with inline SVG charts drawn by plotters
//! (`charts.rs`), and a pure function of its model.

pub mod charts;
pub mod compare;
pub mod page;
pub mod run;
pub mod sweep;

use anyhow::Result;

use super::Exporter;
use crate::report::Report;
use crate::sizing::sweep::{Axis, Sweep};

/// report.html.
pub struct ReportHtml;

impl Exporter<Report> for ReportHtml {
    fn file_name(&self) -> &'static str {
        "report.html"
    }

    fn serialize(&self, report: &Report) -> Result<Vec<u8>> {
        Ok(run::render(report)?.into_bytes())
    }
}

/// sweep.html, of any sweep.
pub struct SweepHtml;

impl<A: Axis> Exporter<Sweep<A>> for SweepHtml {
    fn file_name(&self) -> &'static str {
        "sweep.html"
    }

    fn serialize(&self, sweep: &Sweep<A>) -> Result<Vec<u8>> {
        Ok(sweep::render(sweep)?.into_bytes())
    }
}
