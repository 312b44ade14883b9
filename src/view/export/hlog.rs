//! hlog/<strategy>.<phase>.hlog: HdrHistogram interval logs, the text format
//! of HdrHistogram's HistogramLogWriter (version 1.3): `#[StartTime: …]`,
//! `#[BaseTime: …]`, a legend line, then one tagged, compressed (V2 +
//! DEFLATE, base64) histogram per second of the timeline. HistogramLogProcessor
//! and the Java, Python, Go and Rust log readers read them; the intervals of
//! a file add up to the report's histogram of that phase. Values are
//! microseconds (the Interval_Max column is in milliseconds, as Java's
//! writer puts it). Each file is written line by line as its seconds are
//! decoded: a long run's logs are never held in memory.

use std::io::Write;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{anyhow, Context, Result};
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;

use super::{Dir, Subdir};
use crate::error::bad_input;
use crate::metrics::decode_histogram;
use crate::metrics::packed::Hdr;
use crate::report::{Report, StrategyReport};

/// The directory beside report.json.
pub const DIR: &str = "hlog";

/// The logs, as the results directory's checks see them.
pub const FILES: Subdir = Subdir {
    name: DIR,
    suffix: ".hlog",
};

/// One interval log, before it is written: its name (the file's, without
/// `.hlog`, and the intervals' tag), whose it is, and its intervals.
struct Log<'a> {
    name: String,
    strategy: &'a str,
    phase: &'a str,
    intervals: Vec<Interval<'a>>,
}

/// Writes every strategy's and phase's log into `dir/hlog/`.
pub fn write(dir: &Dir, report: &Report) -> Result<()> {
    let mut hlog = None;
    for log in logs(report) {
        let log = log?;
        if hlog.is_none() {
            hlog = Some(dir.subdir(DIR)?);
        }
        if let Some(hlog) = &hlog {
            hlog.write_with(&format!("{}.hlog", log.name), |out| {
                write_log(out, report, &log)
            })?;
        }
    }
    Ok(())
}

/// The logs of a report: one per strategy and phase with samples, each
/// made when it is to be written.
fn logs(report: &Report) -> impl Iterator<Item = Result<Log<'_>>> {
    report.strategies.iter().flat_map(move |s| {
        s.phases
            .iter()
            .filter(|(_, summary)| summary.count > 0)
            .map(move |(phase, _)| {
                let intervals = intervals(report, s, phase)
                    .with_context(|| format!("hlog of strategy {} phase {phase}", s.name))?;
                Ok(Log {
                    name: format!("{}.{}", file_safe(&s.name), file_safe(phase)),
                    strategy: &s.name,
                    phase,
                    intervals,
                })
            })
    })
}

/// A histogram and when it was recorded. A second's stays encoded until
/// its line is written: decoded, a histogram takes 16–90 KB, and holding
/// every second of a long run at once made the end of the run's memory
/// grow with its length.
struct Interval<'a> {
    start_unix_ms: u64,
    length: Duration,
    histogram: Hist<'a>,
}

enum Hist<'a> {
    Encoded(&'a Hdr),
    Decoded(Histogram<u64>),
}

/// The phase's histogram of each second, at its wall-clock time. A report
/// without per-second histograms (written before they were recorded) gives
/// one interval holding the whole measured window.
fn intervals<'a>(report: &Report, s: &'a StrategyReport, phase: &str) -> Result<Vec<Interval<'a>>> {
    let run_start = humantime::parse_rfc3339(&report.started_at)
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64);
    let round_start = |round: u32| {
        s.rounds
            .iter()
            .find(|r| r.round == round)
            .map(|r| r.started_unix_ms)
            .filter(|ms| *ms > 0)
            .unwrap_or(run_start)
    };
    let mut out = Vec::new();
    for row in &s.timeline {
        let Some(hdr) = row.hdr.get(phase) else {
            continue;
        };
        let empty = hdr
            .decode()
            .with_context(|| format!("round {} second {}", row.round, row.second))?
            .is_empty();
        if empty {
            continue;
        }
        out.push(Interval {
            start_unix_ms: round_start(row.round) + row.second * 1000,
            length: Duration::from_secs(1),
            histogram: Hist::Encoded(hdr),
        });
    }
    if out.is_empty() {
        let summary = &s.phases[phase];
        // A merged report's window comes from the reports given to merge:
        // one beyond any length of time is theirs, not a bug.
        let length = Duration::try_from_secs_f64(s.measured_s.max(0.0)).map_err(|_| {
            bad_input(format!(
                "strategy {}: measured_s {:e} is not a length of time",
                s.name, s.measured_s
            ))
        })?;
        out.push(Interval {
            start_unix_ms: s.rounds.first().map_or(run_start, |r| round_start(r.round)),
            length,
            histogram: Hist::Decoded(decode_histogram(&summary.hdr)?),
        });
    }
    out.sort_by_key(|i| i.start_unix_ms);
    Ok(out)
}

/// Writes `log`'s text to `out`: the header, then one line per interval.
fn write_log(mut out: &mut dyn Write, report: &Report, log: &Log) -> Result<()> {
    let tag = Tag::new(&log.name).ok_or_else(|| anyhow!("`{}` cannot be an hlog tag", log.name))?;
    let base_ms = log.intervals.first().map_or(0, |i| i.start_unix_ms);
    let base = UNIX_EPOCH + Duration::from_millis(base_ms);
    let seconds = base_ms as f64 / 1000.0;
    // The header as Java's HistogramLogWriter writes it (outputComment,
    // outputLogFormatVersion, outputStartTime, outputBaseTime, outputLegend).
    write!(
        out,
        "#[Logged with {} {}: scenario {}, strategy {}, phase {}; values in microseconds]\n\
         #[Histogram log format version 1.3]\n\
         #[StartTime: {seconds:.3} (seconds since epoch), {}]\n\
         #[BaseTime: {seconds:.3} (seconds since epoch)]\n\
         \"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n",
        report.tool.name,
        report.tool.version,
        report.scenario.name,
        log.strategy,
        log.phase,
        humantime::format_rfc3339_millis(base),
    )?;
    let mut serializer = V2DeflateSerializer::new();
    // The header is written above; the crate writes the interval lines.
    let mut writer = IntervalLogWriterBuilder::new()
        .with_max_value_divisor(1000.0)
        .begin_log_with(&mut out, &mut serializer)?;
    for i in &log.intervals {
        let offset = Duration::from_millis(i.start_unix_ms - base_ms);
        let decoded;
        let histogram = match &i.histogram {
            Hist::Encoded(hdr) => {
                decoded = hdr.decode()?;
                &decoded
            }
            Hist::Decoded(h) => h,
        };
        writer
            .write_histogram(histogram, offset, i.length, Some(tag))
            .map_err(|e| anyhow!("cannot write an interval: {e}"))?;
    }
    Ok(())
}

/// A strategy or phase name as part of a file name and a tag: letters,
/// digits, `.`, `_` and `-` are kept, anything else becomes `_`.
fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    use hdrhistogram::serialization::Deserializer;

    use super::*;
    use crate::metrics::{encode_histogram, new_histogram, record, Summary};
    use crate::report::{RoundStats, TimelineRow};

    /// One interval log as written: its file name inside `hlog/` and its text.
    struct LogFile {
        name: String,
        text: String,
    }

    /// The logs `write` writes, in memory.
    fn files(report: &Report) -> Result<Vec<LogFile>> {
        logs(report)
            .map(|log| {
                let log = log?;
                let mut text = Vec::new();
                write_log(&mut text, report, &log)?;
                Ok(LogFile {
                    name: format!("{}.hlog", log.name),
                    text: String::from_utf8(text)?,
                })
            })
            .collect()
    }

    fn report_with_seconds() -> Report {
        let text = include_str!("../../../results/baseline/report.json");
        let mut report: Report = serde_json::from_str(text).unwrap();
        report.strategies.truncate(1);
        let s = &mut report.strategies[0];
        s.rounds = vec![
            RoundStats {
                round: 1,
                requests: 0,
                errors: 0,
                throughput_rps: 0.0,
                p50_us: 0,
                p99_us: 0,
                started_unix_ms: 1_763_700_000_250,
            },
            RoundStats {
                round: 2,
                requests: 0,
                errors: 0,
                throughput_rps: 0.0,
                p50_us: 0,
                p99_us: 0,
                started_unix_ms: 1_763_700_010_500,
            },
        ];
        let mut whole = new_histogram();
        s.timeline.clear();
        for (round, second) in [(1u32, 0u64), (1, 1), (2, 0), (2, 1)] {
            let mut h = new_histogram();
            for v in 0..(100 * u64::from(round) + second) {
                record(&mut h, 1000 + v * 37 + second * 5000);
            }
            whole.add(&h).unwrap();
            s.timeline.push(TimelineRow {
                round,
                second,
                rps: 0.0,
                errors: 0,
                p50_us: None,
                p99_us: None,
                pool_size: None,
                pool_available: None,
                pool_waiting: None,
                server_backends: None,
                pgbouncer: None,
                in_flight: None,
                queued: None,
                offered: None,
                achieved: None,
                expired: None,
                churn: Default::default(),
                hdr: BTreeMap::from([("total".to_string(), Hdr::text(encode_histogram(&h)))]),
            });
        }
        s.phases = BTreeMap::from([("total".to_string(), Summary::of(&whole))]);
        report
    }

    /// Reads a log back with the hdrhistogram crate's own log reader.
    fn read(text: &str) -> (Vec<(Duration, String)>, Histogram<u64>, Option<Duration>) {
        let mut sum = new_histogram();
        let mut intervals = Vec::new();
        let mut start = None;
        for entry in IntervalLogIterator::new(text.as_bytes()) {
            match entry.expect("every line parses") {
                LogEntry::StartTime(t) => start = Some(t),
                LogEntry::BaseTime(_) => {}
                LogEntry::Interval(i) => {
                    let bytes = base64::Engine::decode(
                        &base64::engine::general_purpose::STANDARD,
                        i.encoded_histogram(),
                    )
                    .unwrap();
                    let h: Histogram<u64> = Deserializer::new()
                        .deserialize(&mut bytes.as_slice())
                        .unwrap();
                    sum.add(&h).unwrap();
                    intervals.push((i.start_timestamp(), i.tag().unwrap().to_string()));
                }
            }
        }
        (intervals, sum, start)
    }

    #[test]
    fn intervals_add_up_to_the_phase_histogram() {
        let report = report_with_seconds();
        let files = files(&report).unwrap();
        assert_eq!(files.len(), 1);
        let f = &files[0];
        assert_eq!(f.name, "per-request.total.hlog");
        let (intervals, sum, start) = read(&f.text);
        let whole = decode_histogram(&report.strategies[0].phases["total"].hdr).unwrap();
        assert_eq!(sum, whole);
        // Seconds at their wall-clock offsets from the first round's start.
        let offsets: Vec<u128> = intervals.iter().map(|i| i.0.as_millis()).collect();
        assert_eq!(offsets, [0, 1000, 10_250, 11_250]);
        assert!(intervals.iter().all(|i| i.1 == "per-request.total"));
        assert_eq!(start.unwrap().as_millis(), 1_763_700_000_250);
        let lines: Vec<&str> = f.text.lines().collect();
        assert_eq!(lines[1], "#[Histogram log format version 1.3]");
        assert!(lines[2].starts_with("#[StartTime: 1763700000.250 (seconds since epoch), 2025-"));
        assert_eq!(
            lines[4],
            "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\""
        );
        assert!(f.text.contains("\nTag=per-request.total,0.000,1.000,"));
    }

    #[test]
    fn a_report_without_seconds_gives_one_interval() {
        let text = include_str!("../../../results/baseline/report.json");
        let report: Report = serde_json::from_str(text).unwrap();
        let files = files(&report).unwrap();
        // Two strategies × (fresh: connect, query, close, total; pool:
        // acquire, query, total).
        assert_eq!(
            files.len(),
            7,
            "{:?}",
            files.iter().map(|f| &f.name).collect::<Vec<_>>()
        );
        for f in &files {
            let (intervals, sum, _) = read(&f.text);
            assert_eq!(intervals.len(), 1);
            let (strategy, phase) = f.name.trim_end_matches(".hlog").split_once('.').unwrap();
            let s = report
                .strategies
                .iter()
                .find(|s| s.name == strategy)
                .unwrap();
            assert_eq!(sum.len(), s.phases[phase].count, "{}", f.name);
        }
    }

    #[test]
    fn names_are_safe_for_files_and_tags() {
        assert_eq!(file_safe("4 workers x pool/10"), "4_workers_x_pool_10");
        assert_eq!(file_safe("pool-10.a_b"), "pool-10.a_b");
    }
}
