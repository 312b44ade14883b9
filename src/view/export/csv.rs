//! CSV: summary.csv (one row per strategy × phase) and timeline.csv (one
//! row per strategy × second) of a run, sweep.csv (one row per point) of a
//! sweep (pool sizes, rates or RTTs). Milliseconds with three decimals
//! throughout. Every row goes through one writer, [`Csv`], which keeps a
//! spreadsheet from reading a name as a formula ([`spreadsheet_safe`]).

use std::borrow::Cow;

use anyhow::Result;

use super::Exporter;
use crate::metrics::Phase;
use crate::report::format::{ms3, trimmed};
use crate::report::Report;
use crate::sizing::sweep::{Axis, Sweep, Value};

pub struct SummaryCsv;
pub struct TimelineCsv;
pub struct SweepCsv;

impl Exporter<Report> for SummaryCsv {
    fn file_name(&self) -> &'static str {
        "summary.csv"
    }

    fn serialize(&self, report: &Report) -> Result<Vec<u8>> {
        let mut w = Csv::new();
        w.row([
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
                w.row([
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
        w.finish()
    }
}

impl Exporter<Report> for TimelineCsv {
    fn file_name(&self) -> &'static str {
        "timeline.csv"
    }

    fn serialize(&self, report: &Report) -> Result<Vec<u8>> {
        let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
        let mut w = Csv::new();
        w.row([
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
                w.row([
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
        w.finish()
    }
}

/// sweep.csv of any sweep: one row per point, the axis's columns that
/// the file holds, after the scenario's name.
impl<A: Axis> Exporter<Sweep<A>> for SweepCsv {
    fn file_name(&self) -> &'static str {
        "sweep.csv"
    }

    fn serialize(&self, sweep: &Sweep<A>) -> Result<Vec<u8>> {
        let columns: Vec<_> = A::columns()
            .into_iter()
            .filter(|c| !c.name.is_empty())
            .collect();
        let mut w = Csv::new();
        let mut header = vec!["scenario"];
        header.extend(columns.iter().map(|c| c.name.as_str()));
        w.row(&header)?;
        for p in A::ordered(sweep) {
            let mut row = vec![sweep.scenario.name.clone()];
            row.extend(columns.iter().map(|c| cell(&(c.value)(sweep, p))));
            w.row(&row)?;
        }
        w.finish()
    }
}

/// The one CSV writer of every file poolbench writes: each cell through
/// [`spreadsheet_safe`].
struct Csv(csv::Writer<Vec<u8>>);

impl Csv {
    fn new() -> Csv {
        Csv(csv::Writer::from_writer(Vec::new()))
    }

    fn row<I, S>(&mut self, cells: I) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let cells: Vec<S> = cells.into_iter().collect();
        self.0.write_record(
            cells
                .iter()
                .map(|c| spreadsheet_safe(c.as_ref()).into_owned()),
        )?;
        Ok(())
    }

    fn finish(self) -> Result<Vec<u8>> {
        Ok(self.0.into_inner()?)
    }
}

/// A cell a spreadsheet shows as text: one starting with `=`, `+`, `-`,
/// `@`, a tab or a carriage return (which Excel, LibreOffice and Google
/// Sheets read as the start of a formula) gets a leading `'`, as OWASP
/// recommends ("CSV injection"); a number (`-0.250`) is left as it is, since
/// no formula parses as one.
pub fn spreadsheet_safe(cell: &str) -> Cow<'_, str> {
    let risky = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let number = cell.parse::<f64>().is_ok_and(f64::is_finite);
    if risky && !number {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// A value as sweep.csv holds it: milliseconds with three decimals,
/// rates with one, what was asked for as given, nothing when missing.
fn cell(value: &Value) -> String {
    match value {
        Value::Text(t) => t.clone(),
        Value::Int(n) | Value::Count(n) => n.to_string(),
        Value::Rps(x) => format!("{x:.1}"),
        Value::Rate(x) => x.to_string(),
        Value::Us(us) => ms3(*us),
        Value::MeanUs(us) => format!("{:.3}", us / 1000.0),
        Value::Ms(x) => trimmed(*x, 3),
        Value::Ms3(x) => format!("{x:.3}"),
        Value::Flag(b) => b.to_string(),
        Value::Missing => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Kind;
    use crate::sizing::plan::tests::known_sweep;
    use crate::sizing::sweep::rate::{saturation, RatePoint, RateSweep};
    use crate::sizing::sweep::tests::empty;

    #[test]
    fn cells_that_start_a_formula_are_quoted_numbers_are_not() {
        for (cell, safe) in [
            ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
            ("+1+2", "'+1+2"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tcmd", "'\tcmd"),
            ("\rcmd", "'\rcmd"),
            ("-0.250", "-0.250"),
            ("+3", "+3"),
            ("pool-8", "pool-8"),
            ("", ""),
        ] {
            assert_eq!(spreadsheet_safe(cell), safe, "{cell:?}");
        }
    }

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

    #[test]
    fn a_rate_sweep_csv_has_a_row_per_strategy_and_rate() {
        let mut sweep: RateSweep = empty(serde_json::json!({
            "rates": [100.0, 250.5], "arrival": "poisson", "max_in_flight": 10,
            "duration_s": 1.0, "warmup_s": 0.0, "seed": 1,
        }));
        for (rate, achieved) in [(100.0, 100.0), (250.5, 200.0)] {
            sweep.points.push(RatePoint {
                strategy: "per-request".into(),
                kind: Kind::Fresh,
                rate,
                offered_rate: rate,
                achieved_rate: achieved,
                requests: 10,
                errors: 1,
                total_p50_us: 1500,
                total_p99_us: 2500,
                service_p50_us: 1000,
                service_p99_us: 2000,
                queue_p99_us: 500,
                saturated: achieved < 0.95 * rate,
                generator_saturated: false,
            });
        }
        sweep.analysis.saturation = saturation(&sweep.points);
        let text = String::from_utf8(SweepCsv.serialize(&sweep).unwrap()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "scenario,strategy,kind,rate,offered_rate,achieved_rate,requests,errors,\
                 total_p50_ms,total_p99_ms,service_p50_ms,service_p99_ms,queue_p99_ms,saturated",
                "known,per-request,fresh,100,100.0,100.0,10,1,1.500,2.500,1.000,2.000,0.500,false",
                "known,per-request,fresh,250.5,250.5,200.0,10,1,1.500,2.500,1.000,2.000,0.500,true",
            ]
        );
    }
}
