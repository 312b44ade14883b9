//! summary.csv (one row per strategy × phase) and timeline.csv (one row per
//! strategy × second).

use anyhow::Result;

use super::format::ms3 as ms;
use super::{Exporter, Report};

pub struct SummaryCsv;
pub struct TimelineCsv;

impl Exporter for SummaryCsv {
    fn file_name(&self) -> &'static str {
        "summary.csv"
    }

    fn serialize(&self, report: &Report) -> Result<Vec<u8>> {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record([
            "scenario",
            "strategy",
            "kind",
            "phase",
            "count",
            "mean_ms",
            "p50_ms",
            "p90_ms",
            "p95_ms",
            "p99_ms",
            "p999_ms",
            "max_ms",
            "throughput_rps",
            "errors",
        ])?;
        for s in &report.strategies {
            for phase in ["connect", "acquire", "query", "close", "total"] {
                let Some(p) = s.phases.get(phase) else {
                    continue;
                };
                w.write_record([
                    report.scenario.name.as_str(),
                    &s.name,
                    &s.kind,
                    phase,
                    &p.count.to_string(),
                    &format!("{:.3}", p.mean_us / 1000.0),
                    &ms(p.p50_us),
                    &ms(p.p90_us),
                    &ms(p.p95_us),
                    &ms(p.p99_us),
                    &ms(p.p999_us),
                    &ms(p.max_us),
                    &format!("{:.1}", s.throughput_rps),
                    &s.error_count().to_string(),
                ])?;
            }
        }
        Ok(w.into_inner()?)
    }
}

impl Exporter for TimelineCsv {
    fn file_name(&self) -> &'static str {
        "timeline.csv"
    }

    fn serialize(&self, report: &Report) -> Result<Vec<u8>> {
        let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record([
            "scenario",
            "strategy",
            "round",
            "second",
            "rps",
            "errors",
            "p50_ms",
            "p99_ms",
            "pool_size",
            "pool_available",
            "pool_waiting",
            "server_backends",
        ])?;
        for s in &report.strategies {
            for row in &s.timeline {
                w.write_record([
                    report.scenario.name.as_str(),
                    &s.name,
                    &row.round.to_string(),
                    &row.second.to_string(),
                    &format!("{:.1}", row.rps),
                    &row.errors.to_string(),
                    &ms(row.p50_us),
                    &ms(row.p99_us),
                    &opt(row.pool_size),
                    &opt(row.pool_available),
                    &opt(row.pool_waiting),
                    &opt(row.server_backends),
                ])?;
            }
        }
        Ok(w.into_inner()?)
    }
}
