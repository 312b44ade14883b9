//! CSV: summary.csv (one row per strategy × phase) and timeline.csv (one
//! row per strategy × second) of a run, sweep.csv (one row per point) of a
//! sweep (pool sizes, rates or RTTs). Milliseconds with three decimals
//! throughout.

use anyhow::Result;

use super::Exporter;
use crate::metrics::Phase;
use crate::report::format::ms3;
use crate::report::Report;
use crate::sizing::model::{RttSweep, SweepReport, SWEEP_PHASES};
use crate::sizing::rates::RateSweep;

pub struct SummaryCsv;
pub struct TimelineCsv;
pub struct SweepCsv;

impl Exporter<Report> for SummaryCsv {
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
            for phase in Phase::ALL.map(Phase::as_str) {
                let Some(p) = s.phases.get(phase) else {
                    continue;
                };
                w.write_record([
                    report.scenario.name.as_str(),
                    &s.name,
                    s.kind.as_str(),
                    phase,
                    &p.count.to_string(),
                    &format!("{:.3}", p.mean_us / 1000.0),
                    &ms3(p.p50_us),
                    &ms3(p.p90_us),
                    &ms3(p.p95_us),
                    &ms3(p.p99_us),
                    &ms3(p.p999_us),
                    &ms3(p.max_us),
                    &format!("{:.1}", s.throughput_rps),
                    &s.error_count().to_string(),
                ])?;
            }
        }
        Ok(w.into_inner()?)
    }
}

impl Exporter<Report> for TimelineCsv {
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
                    &row.p50_us.map(ms3).unwrap_or_default(),
                    &row.p99_us.map(ms3).unwrap_or_default(),
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

impl Exporter<SweepReport> for SweepCsv {
    fn file_name(&self) -> &'static str {
        "sweep.csv"
    }

    fn serialize(&self, sweep: &SweepReport) -> Result<Vec<u8>> {
        let mut w = csv::Writer::from_writer(Vec::new());
        let mut header: Vec<String> = [
            "scenario",
            "concurrency",
            "pool_size",
            "requests",
            "errors",
            "throughput_rps",
        ]
        .map(String::from)
        .to_vec();
        for phase in SWEEP_PHASES.map(Phase::as_str) {
            for p in ["p50", "p90", "p99", "p999"] {
                header.push(format!("{phase}_{p}_ms"));
            }
        }
        header.extend([
            "service_time_mean_ms".into(),
            "knee".into(),
            "partial".into(),
        ]);
        w.write_record(&header)?;
        for p in &sweep.points {
            let knee = sweep
                .analysis
                .iter()
                .any(|a| a.concurrency == p.concurrency && a.knee_pool_size == p.pool_size);
            let mut row = vec![
                sweep.scenario.name.clone(),
                p.concurrency.to_string(),
                p.pool_size.to_string(),
                p.requests.to_string(),
                p.errors.to_string(),
                format!("{:.1}", p.throughput_rps),
            ];
            for ph in SWEEP_PHASES.map(|phase| p.phase(phase)) {
                row.extend([
                    ms3(ph.p50_us),
                    ms3(ph.p90_us),
                    ms3(ph.p99_us),
                    ms3(ph.p999_us),
                ]);
            }
            row.push(format!("{:.3}", p.service_time_mean_us / 1000.0));
            row.push(knee.to_string());
            row.push(p.partial.to_string());
            w.write_record(&row)?;
        }
        Ok(w.into_inner()?)
    }
}

/// sweep.csv of a rate sweep: one row per strategy × rate.
pub struct RateSweepCsv;

impl Exporter<RateSweep> for RateSweepCsv {
    fn file_name(&self) -> &'static str {
        "sweep.csv"
    }

    fn serialize(&self, sweep: &RateSweep) -> Result<Vec<u8>> {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record([
            "scenario",
            "strategy",
            "kind",
            "rate",
            "offered_rate",
            "achieved_rate",
            "requests",
            "errors",
            "total_p50_ms",
            "total_p99_ms",
            "service_p50_ms",
            "service_p99_ms",
            "queue_p99_ms",
            "saturated",
        ])?;
        for p in &sweep.points {
            w.write_record([
                sweep.scenario.name.as_str(),
                &p.strategy,
                p.kind.as_str(),
                &p.rate.to_string(),
                &format!("{:.1}", p.offered_rate),
                &format!("{:.1}", p.achieved_rate),
                &p.requests.to_string(),
                &p.errors.to_string(),
                &ms3(p.total_p50_us),
                &ms3(p.total_p99_us),
                &ms3(p.service_p50_us),
                &ms3(p.service_p99_us),
                &ms3(p.queue_p99_us),
                &p.saturated.to_string(),
            ])?;
        }
        Ok(w.into_inner()?)
    }
}

/// sweep.csv of an RTT sweep: one row per RTT × strategy, with the
/// setup cost against each pool (fresh rows) from the fit's points.
pub struct RttSweepCsv;

impl Exporter<RttSweep> for RttSweepCsv {
    fn file_name(&self) -> &'static str {
        "sweep.csv"
    }

    fn serialize(&self, sweep: &RttSweep) -> Result<Vec<u8>> {
        let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record([
            "scenario",
            "rtt_ms",
            "strategy",
            "kind",
            "requests",
            "errors",
            "throughput_rps",
            "total_p50_ms",
            "total_p99_ms",
            "connect_p50_ms",
            "connect_round_trips",
            "request_round_trips",
            "setup_cost_ms",
        ])?;
        for p in &sweep.points {
            // The first pool's fit gives a fresh row its setup cost.
            let cost = sweep
                .fits
                .iter()
                .find(|f| f.fresh == p.strategy)
                .and_then(|f| f.points.iter().find(|c| c.rtt_ms == p.rtt_ms))
                .map(|c| format!("{:.3}", c.setup_cost_ms))
                .unwrap_or_default();
            w.write_record([
                sweep.scenario.name.as_str(),
                &crate::report::format::trimmed(p.rtt_ms, 3),
                &p.strategy,
                p.kind.as_str(),
                &p.requests.to_string(),
                &p.errors.to_string(),
                &format!("{:.1}", p.throughput_rps),
                &ms3(p.total.p50_us),
                &ms3(p.total.p99_us),
                &p.connect.map(|c| ms3(c.p50_us)).unwrap_or_default(),
                &opt(p.connect_round_trips),
                &opt(p.request_round_trips),
                &cost,
            ])?;
        }
        Ok(w.into_inner()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sizing::plan::tests::known_sweep;

    #[test]
    fn sweep_csv_has_a_row_per_point_under_the_documented_columns() {
        let bytes = SweepCsv.serialize(&known_sweep(5000)).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "scenario,concurrency,pool_size,requests,errors,throughput_rps,\
             total_p50_ms,total_p90_ms,total_p99_ms,total_p999_ms,\
             acquire_p50_ms,acquire_p90_ms,acquire_p99_ms,acquire_p999_ms,\
             query_p50_ms,query_p90_ms,query_p99_ms,query_p999_ms,\
             service_time_mean_ms,knee,partial"
        );
        assert_eq!(lines.len(), 5);
        // Pool 4: total p50 1.5 ms, p99 2.5 ms; acquire 0.05/0.4; query 1/2.
        assert_eq!(
            lines[3],
            "known,8,4,7000,0,3500.0,1.500,2.500,2.500,2.500,0.050,0.400,0.400,0.400,\
             1.000,2.000,2.000,2.000,1.000,false,false"
        );
    }
}
