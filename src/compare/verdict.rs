//! The result of a comparison, independent of how it is printed: per strategy
//! in both reports, per metric, the two values, the change, its confidence
//! interval when the rounds allow one, the threshold and the verdict. It is
//! the model of `compare --format json`, serialised as it is; the table and
//! the markdown are views of it (`view::term::compare`,
//! `view::export::markdown`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Serialize, Serializer};

use crate::report::format::{ms, plural as count, rps, thousands, trimmed};
use crate::report::{Kind, StrategyReport};

use super::load::Difference;
use super::load::LoadedReport;
use super::metric::{Metric, Thresholds};
use super::stats::{self, Change, Interval, MIN_ROUNDS};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(into = "&'static str")]
pub enum Verdict {
    /// Worse beyond the threshold: with rounds, the whole interval is.
    Regression,
    /// Better beyond the threshold: with rounds, the whole interval is.
    Improvement,
    /// Beyond the threshold, but the interval reaches back within it: the
    /// rounds do not show the change exceeds the threshold.
    WithinNoise,
    /// Changed no more than the threshold.
    Ok,
    /// No threshold: shown, never a failure.
    Info,
    /// A side has no successful request to measure latency on.
    NotComparable,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Regression => "regression",
            Verdict::Improvement => "improvement",
            Verdict::WithinNoise => "within noise",
            Verdict::Ok => "ok",
            Verdict::Info => "info",
            Verdict::NotComparable => "n/a",
        }
    }
}

impl From<Verdict> for &'static str {
    fn from(v: Verdict) -> &'static str {
        v.as_str()
    }
}

/// How a metric's change was judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(into = "&'static str")]
pub enum Method {
    /// Bootstrap interval over the rounds of both reports.
    Bootstrap,
    /// One value against one value: no noise estimate.
    Single,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Bootstrap => "bootstrap",
            Method::Single => "single",
        }
    }
}

impl From<Method> for &'static str {
    fn from(m: Method) -> &'static str {
        m.as_str()
    }
}

/// One metric of one strategy. Latencies are in microseconds, throughput in
/// requests/s, error rate in percent; `change`, the interval and `threshold`
/// are percent, except for error_rate where they are percentage points.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricDiff {
    pub metric: Metric,
    /// The unit of `base` and `candidate`: "us", "rps" or "percent".
    pub unit: &'static str,
    /// With rounds, the mean over rounds.
    pub base: f64,
    pub candidate: f64,
    /// None when not comparable.
    #[serde(rename = "change_pct")]
    pub change: Option<f64>,
    /// The unit of `change`: "percent" or "points".
    pub change_unit: &'static str,
    /// The confidence interval of `change`, when tested on rounds.
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    /// The allowed change in the metric's bad direction, signed (+10 for
    /// p99, −10 for throughput); None: informational.
    pub threshold: Option<f64>,
    /// Power: the interval's half-width (same unit as `change`), the
    /// smallest change these rounds tell from noise; None without rounds.
    pub detectable_change_pct: Option<f64>,
    /// Power: the rounds each report would need for that margin to shrink
    /// to the threshold (an estimate from this noise); None without a
    /// threshold or without rounds.
    pub rounds_for_threshold: Option<u32>,
    pub method: Method,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StrategyDiff {
    pub name: String,
    pub kind: Kind,
    /// The rounds of every baseline run, pooled.
    #[serde(rename = "baseline_rounds")]
    pub base_rounds: usize,
    /// The baseline runs the strategy was found in (1 unless several
    /// baselines were given).
    #[serde(rename = "baseline_runs")]
    pub base_runs: usize,
    /// The rounds of every candidate run, pooled.
    pub candidate_rounds: usize,
    /// The candidate runs the strategy was found in (1 unless several
    /// candidate runs were given, `--candidate-runs`).
    pub candidate_runs: usize,
    pub metrics: Vec<MetricDiff>,
}

/// Where a side of the comparison came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Source {
    #[serde(serialize_with = "display_path")]
    pub path: PathBuf,
    pub scenario: String,
    pub sha256: String,
    pub started_at: String,
}

/// A path as text, whatever bytes it holds.
fn display_path<S: Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&path.display())
}

/// `compare --format json`'s format (docs/schema/compare.schema.json).
pub const COMPARE_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diff {
    pub schema_version: u32,
    /// Any metric of any strategy regressed: the one field a script needs.
    pub regression: bool,
    /// The summary line (the regressions, improvements, changes in noise).
    pub summary: String,
    /// How the verdicts were reached.
    pub test: String,
    /// The (first) baseline run.
    pub baseline: Source,
    /// Every baseline run, the first included: several runs of the same
    /// build make a baseline whose rounds are pooled.
    pub baselines: Vec<Source>,
    /// The (first) candidate run.
    pub candidate: Source,
    /// Every candidate run, the first included (`--candidate-runs`):
    /// pooled as the baseline's are.
    pub candidates: Vec<Source>,
    pub strategies: Vec<StrategyDiff>,
    pub only_in_baseline: Vec<String>,
    pub only_in_candidate: Vec<String>,
    /// The run conditions in which the two reports differ, compared
    /// anyway (`--allow-different`); empty when they match.
    pub differences: Vec<Difference>,
    pub warnings: Vec<String>,
}

/// Compares every strategy present in the baseline and the candidate. Each
/// side is one run or several (`baselines`, `candidates`, neither empty):
/// a strategy's rounds from every run of a side that has it are pooled into
/// one sample, and its single values are the runs' mean.
pub fn compare(
    baselines: &[LoadedReport],
    candidates: &[LoadedReport],
    thresholds: &Thresholds,
    differences: Vec<Difference>,
    warnings: Vec<String>,
) -> Diff {
    let names = |side: &[LoadedReport]| -> BTreeSet<String> {
        side.iter()
            .flat_map(|l| &l.report.strategies)
            .map(|s| s.name.clone())
            .collect()
    };
    let (in_b, in_c) = (names(baselines), names(candidates));
    // In the first baseline's order, then any the other runs add.
    let mut order: Vec<&String> = Vec::new();
    for s in baselines.iter().flat_map(|l| &l.report.strategies) {
        if !order.contains(&&s.name) {
            order.push(&s.name);
        }
    }
    let strategies = order
        .into_iter()
        .filter_map(|name| {
            let cs = runs_of(candidates, name);
            (!cs.is_empty()).then(|| compare_strategy(&runs_of(baselines, name), &cs, thresholds))
        })
        .collect();
    let source = |l: &LoadedReport| Source {
        path: l.path.clone(),
        scenario: l.report.scenario.name.clone(),
        sha256: l.report.scenario.sha256.clone(),
        started_at: l.report.started_at.clone(),
    };
    let mut diff = Diff {
        schema_version: COMPARE_SCHEMA_VERSION,
        regression: false,
        summary: String::new(),
        test: String::new(),
        // Neither side is empty (the command line requires a path for each).
        baseline: source(&baselines[0]),
        baselines: baselines.iter().map(source).collect(),
        candidate: source(&candidates[0]),
        candidates: candidates.iter().map(source).collect(),
        strategies,
        only_in_baseline: in_b.difference(&in_c).cloned().collect(),
        only_in_candidate: in_c.difference(&in_b).cloned().collect(),
        differences,
        warnings,
    };
    diff.regression = diff.count(Verdict::Regression) > 0;
    diff.summary = diff.summary_line(&Markup::PLAIN);
    diff.test = diff.method_note(&Markup::PLAIN);
    diff
}

/// A strategy as each run of a side has it.
fn runs_of<'a>(side: &'a [LoadedReport], name: &str) -> Vec<&'a StrategyReport> {
    side.iter()
        .filter_map(|l| l.report.strategies.iter().find(|s| s.name == name))
        .collect()
}

/// One strategy: `b` and `c` hold it as each baseline and each candidate
/// run has it (at least one each).
fn compare_strategy(b: &[&StrategyReport], c: &[&StrategyReport], t: &Thresholds) -> StrategyDiff {
    let rounds = |side: &[&StrategyReport]| -> usize { side.iter().map(|s| s.rounds.len()).sum() };
    let (base_rounds, candidate_rounds) = (rounds(b), rounds(c));
    let tested = base_rounds >= MIN_ROUNDS && candidate_rounds >= MIN_ROUNDS;
    // Every run's rounds of a side, one sample; None if a metric has none.
    let pooled = |side: &[&StrategyReport], metric: Metric| -> Option<Vec<f64>> {
        let runs = side
            .iter()
            .map(|s| per_round(s, metric))
            .collect::<Option<Vec<_>>>()?;
        Some(runs.concat())
    };
    // A single value of a side: the mean of its runs'.
    let single_of = |side: &[&StrategyReport], metric: Metric| {
        stats::mean(&side.iter().map(|s| single(s, metric)).collect::<Vec<_>>())
    };
    let metrics = Metric::ALL
        .into_iter()
        .map(|metric| {
            let threshold = t.get(metric);
            let change_kind = if metric.in_points() {
                Change::Absolute
            } else {
                Change::Relative
            };
            let latency_missing = metric != Metric::Throughput
                && metric != Metric::ErrorRate
                && b.iter().chain(c).any(|s| successes(s) == 0);
            let (method, base, candidate, interval) =
                match (tested, pooled(b, metric), pooled(c, metric)) {
                    (true, Some(bx), Some(cx)) => (
                        Method::Bootstrap,
                        stats::mean(&bx),
                        stats::mean(&cx),
                        stats::bootstrap(&bx, &cx, change_kind),
                    ),
                    _ => (
                        Method::Single,
                        single_of(b, metric),
                        single_of(c, metric),
                        None,
                    ),
                };
            let change = interval.map_or(change_kind.of(base, candidate), |i| i.estimate);
            let verdict = if latency_missing {
                Verdict::NotComparable
            } else {
                decide(metric, change, interval, threshold)
            };
            let margin = interval
                .map(|i| i.margin())
                .filter(|m| m.is_finite() && !latency_missing);
            let rounds_for_threshold = margin
                .zip(threshold)
                .and_then(|(m, t)| stats::rounds_for(m, base_rounds, candidate_rounds, t));
            MetricDiff {
                metric,
                unit: metric.unit(),
                base,
                candidate,
                change: (!latency_missing).then_some(change),
                change_unit: if metric.in_points() {
                    "points"
                } else {
                    "percent"
                },
                ci_low: interval.map(|i| i.low),
                ci_high: interval.map(|i| i.high),
                threshold: threshold.map(|t| t * metric.worse_sign()),
                detectable_change_pct: margin,
                rounds_for_threshold,
                method,
                verdict,
            }
        })
        .collect();
    StrategyDiff {
        name: c[0].name.clone(),
        kind: c[0].kind,
        base_rounds,
        base_runs: b.len(),
        candidate_rounds,
        candidate_runs: c.len(),
        metrics,
    }
}

/// The verdict of a change. Without an interval (single values) a change
/// beyond the threshold counts. With one, a change counts only when the
/// whole interval lies beyond the threshold: the evidence says the change
/// exceeds it, not just that there is a change. A change beyond the
/// threshold on average whose interval reaches back within it is "within
/// noise" and passes. (Under no change, the interval's low end passes 0 in
/// at most 2.5% of comparisons if the bootstrap's coverage held; it must
/// pass the threshold too, which leaves room for the drift between two runs
/// that the rounds of one run cannot see. docs/ci.md has the measured
/// false-alarm rate.)
pub fn decide(
    metric: Metric,
    change: f64,
    interval: Option<Interval>,
    threshold: Option<f64>,
) -> Verdict {
    let Some(limit) = threshold else {
        return Verdict::Info;
    };
    let sign = metric.worse_sign();
    let worse = change * sign;
    if worse.abs() <= limit {
        return Verdict::Ok;
    }
    let Some(i) = interval else {
        return if worse > 0.0 {
            Verdict::Regression
        } else {
            Verdict::Improvement
        };
    };
    // The interval turned so that "worse" is positive.
    let (low, high) = if sign > 0.0 {
        (i.low, i.high)
    } else {
        (-i.high, -i.low)
    };
    if worse > 0.0 && low > limit {
        Verdict::Regression
    } else if worse < 0.0 && high < -limit {
        Verdict::Improvement
    } else {
        Verdict::WithinNoise
    }
}

fn successes(s: &StrategyReport) -> u64 {
    s.total().map_or(0, |t| t.count)
}

/// The per-round samples of a metric; None for p99.9, which rounds do not keep.
fn per_round(s: &StrategyReport, metric: Metric) -> Option<Vec<f64>> {
    let values = s.rounds.iter().map(|r| match metric {
        Metric::P50 => Some(r.p50_us as f64),
        Metric::P99 => Some(r.p99_us as f64),
        Metric::P999 => None,
        Metric::Throughput => Some(r.throughput_rps),
        Metric::ErrorRate => {
            let all = r.requests + r.errors;
            Some(if all == 0 {
                0.0
            } else {
                r.errors as f64 / all as f64 * 100.0
            })
        }
    });
    values.collect()
}

/// The whole run's value of a metric.
fn single(s: &StrategyReport, metric: Metric) -> f64 {
    let total = s.total();
    let latency = |f: fn(&crate::metrics::Summary) -> u64| total.map_or(0.0, |t| f(t) as f64);
    match metric {
        Metric::P50 => latency(|t| t.p50_us),
        Metric::P99 => latency(|t| t.p99_us),
        Metric::P999 => latency(|t| t.p999_us),
        Metric::Throughput => s.throughput_rps,
        Metric::ErrorRate => s.error_rate() * 100.0,
    }
}

impl MetricDiff {
    fn value_text(&self, v: f64) -> String {
        match self.metric {
            Metric::P50 | Metric::P99 | Metric::P999 => ms(v),
            Metric::Throughput => rps(v),
            Metric::ErrorRate => format!("{v:.2}%"),
        }
    }

    /// The metric's name in tables, saying when the values are the means
    /// of the rounds' values (what the bootstrap compares) rather than the
    /// whole run's: a mean of per-round p99s is not the run's p99.
    pub fn label(&self) -> String {
        let label = self.metric.label();
        match (self.method, self.metric) {
            (Method::Single, _) => label.to_string(),
            (Method::Bootstrap, Metric::P50) => format!("{label}, mean of round p50s"),
            (Method::Bootstrap, Metric::P99) => format!("{label}, mean of round p99s"),
            (Method::Bootstrap, _) => format!("{label}, mean of rounds"),
        }
    }

    pub fn base_text(&self) -> String {
        self.value_text(self.base)
    }

    pub fn candidate_text(&self) -> String {
        self.value_text(self.candidate)
    }

    fn signed(&self, x: f64) -> String {
        if self.metric.in_points() {
            format!("{x:+.2} pt")
        } else {
            format!("{x:+.1}%")
        }
    }

    pub fn change_text(&self) -> String {
        self.change.map_or("n/a".into(), |c| self.signed(c))
    }

    pub fn ci_text(&self) -> String {
        match (self.ci_low, self.ci_high) {
            (Some(low), Some(high)) if self.change.is_some() => {
                format!("{} .. {}", self.signed(low), self.signed(high))
            }
            _ => "-".into(),
        }
    }

    /// "±9.0%": the smallest change told from noise, or "-" without rounds.
    pub fn detectable_text(&self) -> String {
        match self.detectable_change_pct {
            Some(m) if self.metric.in_points() => format!("±{m:.2} pt"),
            Some(m) => format!("±{m:.1}%"),
            None => "-".into(),
        }
    }

    /// The rounds for the threshold, or "-".
    pub fn rounds_text(&self) -> String {
        self.rounds_for_threshold
            .map_or("-".into(), |n| thousands(u64::from(n)))
    }

    /// "+10%", "-10%", "+1 pt", or "-" when informational.
    pub fn threshold_text(&self) -> String {
        let Some(limit) = self.threshold else {
            return "-".into();
        };
        let sign = if self.metric.worse_sign() > 0.0 {
            '+'
        } else {
            '-'
        };
        let unit = if self.metric.in_points() { " pt" } else { "%" };
        format!("{sign}{}{unit}", trimmed(limit.abs(), 2))
    }
}

/// "8", or "24 (3 runs)" for a side of several runs.
fn rounds_text(rounds: usize, runs: usize) -> String {
    if runs > 1 {
        format!("{rounds} ({runs} runs)")
    } else {
        rounds.to_string()
    }
}

/// A side for a header: "path (scenario, started)", or for several runs
/// each path and the first's scenario and start.
fn side_text(runs: &[Source]) -> String {
    let Some(first) = runs.first() else {
        return String::new();
    };
    if runs.len() > 1 {
        let paths: Vec<String> = runs.iter().map(|s| s.path.display().to_string()).collect();
        format!(
            "{} runs, {} ({}, first started {})",
            runs.len(),
            paths.join(", "),
            first.scenario,
            first.started_at
        )
    } else {
        format!(
            "{} ({}, {})",
            first.path.display(),
            first.scenario,
            first.started_at
        )
    }
}

impl StrategyDiff {
    /// "8", or "24 (3 runs)" for a baseline of several runs.
    pub fn base_rounds_text(&self) -> String {
        rounds_text(self.base_rounds, self.base_runs)
    }

    /// The same for the candidate.
    pub fn candidate_rounds_text(&self) -> String {
        rounds_text(self.candidate_rounds, self.candidate_runs)
    }
}

impl Diff {
    /// The baseline for a header (see [`side_text`]).
    pub fn baseline_text(&self) -> String {
        side_text(&self.baselines)
    }

    /// The candidate for a header (see [`side_text`]).
    pub fn candidate_text(&self) -> String {
        side_text(&self.candidates)
    }

    fn count(&self, verdict: Verdict) -> usize {
        self.strategies
            .iter()
            .flat_map(|s| &s.metrics)
            .filter(|m| m.verdict == verdict)
            .count()
    }

    /// Per strategy, its metrics with `verdict`: "in pool-10: p99 +34.2%
    /// (threshold +10%)".
    fn listed(&self, verdict: Verdict, m: &Markup) -> String {
        let groups: Vec<String> = self
            .strategies
            .iter()
            .filter_map(|s| {
                let items: Vec<String> = s
                    .metrics
                    .iter()
                    .filter(|d| d.verdict == verdict)
                    .map(|d| {
                        format!(
                            "{} {} (threshold {})",
                            d.metric.label_short(),
                            d.change_text(),
                            d.threshold_text()
                        )
                    })
                    .collect();
                (!items.is_empty())
                    .then(|| format!("in {}: {}", (m.name)(&s.name), items.join(", ")))
            })
            .collect();
        groups.join("; ")
    }

    /// One line: the regressions (or that there are none, or that nothing
    /// could be compared), then improvements and changes within noise.
    pub fn summary_line(&self, m: &Markup) -> String {
        let regressions = self.count(Verdict::Regression);
        let mut line = if regressions > 0 {
            format!(
                "{} {}",
                (m.strong)(&count(regressions, "regression", "regressions")),
                self.listed(Verdict::Regression, m)
            )
        } else if let Some(why) = self.nothing_compared(m) {
            (m.strong)(&why)
        } else {
            (m.strong)("No regression")
        };
        let improvements = self.count(Verdict::Improvement);
        if improvements > 0 {
            line.push_str(&format!(
                "; {} {}",
                count(improvements, "improvement", "improvements"),
                self.listed(Verdict::Improvement, m)
            ));
        }
        let noise = self.count(Verdict::WithinNoise);
        if noise > 0 {
            line.push_str(&format!(
                "; {} beyond a threshold but within noise",
                count(noise, "change", "changes")
            ));
        }
        line
    }

    /// Why this comparison showed nothing a gate may pass on, when it did
    /// not: no strategy in common, or a strategy in common with no
    /// successful request on a side (its latencies are "n/a"; with every
    /// request failed on both sides, its error rate is unchanged at 100%).
    /// `compare` exits 2 then, unless a regression was found.
    pub fn nothing_compared(&self, m: &Markup) -> Option<String> {
        if self.strategies.is_empty() {
            return Some("Nothing compared: no strategy in common".into());
        }
        let unmeasured: Vec<String> = self
            .strategies
            .iter()
            .filter(|s| {
                s.metrics
                    .iter()
                    .any(|d| d.verdict == Verdict::NotComparable)
            })
            .map(|s| (m.name)(&s.name))
            .collect();
        (!unmeasured.is_empty()).then(|| {
            format!(
                "Nothing compared for {}: no request succeeded in the baseline, the candidate \
                 or both, so there are no latencies to compare",
                unmeasured.join(", ")
            )
        })
    }

    /// How the verdicts were reached: the test, or why there was none.
    pub fn method_note(&self, m: &Markup) -> String {
        let (tested, single): (Vec<&StrategyDiff>, Vec<&StrategyDiff>) = self
            .strategies
            .iter()
            .partition(|s| s.metrics.iter().any(|m| m.method == Method::Bootstrap));
        let mut notes = Vec::new();
        if let Some(s) = tested.first() {
            notes.push(format!(
                "Noise test: bootstrap {:.0}% confidence interval of the change of the mean over rounds \
                 (baseline {}, candidate {} rounds; {} resamples); a regression is a change whose whole \
                 interval lies beyond its threshold. Detectable: the interval's half-width, the smallest \
                 change these rounds tell from noise; rounds for threshold: the rounds each report would \
                 need for it to shrink to the threshold (estimated from this noise). p99.9 has no \
                 per-round values and is compared on single values.",
                stats::CONFIDENCE * 100.0,
                s.base_rounds_text(),
                s.candidate_rounds_text(),
                thousands(stats::RESAMPLES as u64),
            ));
        }
        if let Some(s) = single.first() {
            let names: Vec<String> = single.iter().map(|s| (m.name)(&s.name)).collect();
            notes.push(format!(
                "Single-run comparison{} (baseline {}, candidate {}): no noise estimate, so any \
                 difference beyond a threshold counts. Run with `rounds = 5` ([run] rounds or --rounds 5) \
                 to let compare tell a change from noise.",
                if tested.is_empty() {
                    String::new()
                } else {
                    format!(" for {}", names.join(", "))
                },
                s.base_rounds_text(),
                if s.candidate_runs > 1 {
                    s.candidate_rounds_text()
                } else {
                    count(s.candidate_rounds, "round", "rounds")
                },
            ));
        }
        let informational: Vec<&str> = Metric::ALL
            .into_iter()
            .filter(|m| {
                self.strategies
                    .iter()
                    .flat_map(|s| &s.metrics)
                    .any(|d| d.metric == *m && d.threshold.is_none())
            })
            .map(Metric::label_short)
            .collect();
        if !informational.is_empty() {
            notes.push(format!(
                "{} {} informational (no threshold; set one with --max-regression).",
                informational.join(" and "),
                if informational.len() == 1 {
                    "is"
                } else {
                    "are"
                }
            ));
        }
        notes.join(" ")
    }

    /// Per strategy, the power of its gated metrics: "power in pool-8: p99
    /// ±9.0% detectable with 3 rounds, 7 rounds for +5%; …". Nothing for
    /// single-run comparisons (no noise estimate: the method note says so).
    pub fn power_lines(&self, m: &Markup) -> Vec<String> {
        self.strategies
            .iter()
            .filter_map(|s| {
                let of_runs = |rounds: usize, runs: usize| {
                    if runs > 1 {
                        format!("{rounds} rounds of {runs} runs")
                    } else {
                        count(rounds, "round", "rounds")
                    }
                };
                let rounds = if s.base_rounds == s.candidate_rounds
                    && s.base_runs == 1
                    && s.candidate_runs == 1
                {
                    count(s.base_rounds, "round", "rounds")
                } else {
                    format!(
                        "{} and {}",
                        of_runs(s.base_rounds, s.base_runs),
                        of_runs(s.candidate_rounds, s.candidate_runs)
                    )
                };
                let items: Vec<String> = s
                    .metrics
                    .iter()
                    .filter(|d| d.threshold.is_some() && d.detectable_change_pct.is_some())
                    .map(|d| {
                        let mut item = format!(
                            "{} {} detectable with {rounds}",
                            d.metric.label_short(),
                            d.detectable_text()
                        );
                        if let Some(n) = d.rounds_for_threshold {
                            item.push_str(&format!(
                                ", {} for {}",
                                count(n as usize, "round", "rounds"),
                                d.threshold_text()
                            ));
                        }
                        item
                    })
                    .collect();
                (!items.is_empty())
                    .then(|| format!("power in {}: {}", (m.name)(&s.name), items.join("; ")))
            })
            .collect()
    }

    /// The differences in run conditions, one line each: "emulated RTT:
    /// baseline 0 ms, candidate 1 ms".
    pub fn difference_lines(&self) -> Vec<String> {
        self.differences.iter().map(Difference::to_string).collect()
    }

    /// "only in baseline: x, y" lines.
    pub fn only_in(&self, m: &Markup) -> Vec<String> {
        let names = |list: &[String]| -> String {
            list.iter()
                .map(|n| (m.name)(n))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut lines = Vec::new();
        if !self.only_in_baseline.is_empty() {
            lines.push(format!(
                "only in baseline: {}",
                names(&self.only_in_baseline)
            ));
        }
        if !self.only_in_candidate.is_empty() {
            lines.push(format!(
                "only in candidate: {}",
                names(&self.only_in_candidate)
            ));
        }
        lines
    }
}

/// How a view writes the summary, the method note and the "only in"
/// lines: its emphasis, and how it shows a name taken from a report (the
/// markdown view escapes it; the terminal's escaping is `output.rs`'s).
pub struct Markup {
    pub strong: fn(&str) -> String,
    pub name: fn(&str) -> String,
}

impl Markup {
    /// Plain text: the terminal table and the JSON's `summary` and `test`.
    pub const PLAIN: Markup = Markup {
        strong: str::to_string,
        name: str::to_string,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(low: f64, estimate: f64, high: f64) -> Option<Interval> {
        Some(Interval {
            estimate,
            low,
            high,
        })
    }

    #[test]
    fn single_values_against_thresholds() {
        let t = Some(10.0);
        assert_eq!(decide(Metric::P99, 34.2, None, t), Verdict::Regression);
        assert_eq!(decide(Metric::P99, 9.9, None, t), Verdict::Ok);
        assert_eq!(decide(Metric::P99, -20.0, None, t), Verdict::Improvement);
        assert_eq!(
            decide(Metric::Throughput, -11.0, None, t),
            Verdict::Regression
        );
        assert_eq!(
            decide(Metric::Throughput, 11.0, None, t),
            Verdict::Improvement
        );
        assert_eq!(
            decide(Metric::ErrorRate, 1.5, None, Some(1.0)),
            Verdict::Regression
        );
        assert_eq!(decide(Metric::P50, 90.0, None, None), Verdict::Info);
    }

    #[test]
    fn intervals_decide_between_change_and_noise() {
        use Metric::{Throughput, P99};
        use Verdict::{Improvement, Ok, Regression, WithinNoise};
        // (metric, change, interval low, high, verdict) at a 10% threshold.
        let cases = [
            (P99, 30.0, 20.0, 40.0, Regression),
            // Beyond the threshold on average, but the interval includes 0.
            (P99, 30.0, -5.0, 60.0, WithinNoise),
            // Significant and beyond the threshold on average, but the
            // interval reaches back within it: not shown to exceed it.
            (P99, 15.0, 5.0, 25.0, WithinNoise),
            (Throughput, -15.0, -25.0, -5.0, WithinNoise),
            (P99, -15.0, -25.0, -5.0, WithinNoise),
            // Significant but small: within the threshold.
            (P99, 5.0, 2.0, 8.0, Ok),
            // Throughput: worse is down, the interval is turned.
            (Throughput, -30.0, -40.0, -20.0, Regression),
            (Throughput, 30.0, 20.0, 40.0, Improvement),
            (Throughput, -30.0, -50.0, 1.0, WithinNoise),
        ];
        for (metric, change, lo, hi, verdict) in cases {
            assert_eq!(
                decide(metric, change, interval(lo, change, hi), Some(10.0)),
                verdict,
                "{metric:?} {change}% in {lo}..{hi}"
            );
        }
    }

    #[test]
    fn texts() {
        let d = MetricDiff {
            metric: Metric::Throughput,
            base: 42_065.5,
            candidate: 30_000.0,
            unit: "rps",
            change: Some(-28.7),
            change_unit: "percent",
            ci_low: Some(-35.0),
            ci_high: Some(-20.26),
            threshold: Some(-10.0),
            detectable_change_pct: Some(7.37),
            rounds_for_threshold: Some(5),
            method: Method::Bootstrap,
            verdict: Verdict::Regression,
        };
        assert_eq!(d.base_text(), "42,066");
        assert_eq!(d.change_text(), "-28.7%");
        assert_eq!(d.ci_text(), "-35.0% .. -20.3%");
        assert_eq!(d.threshold_text(), "-10%");
        assert_eq!(d.detectable_text(), "±7.4%");
        assert_eq!(d.rounds_text(), "5");
        let e = MetricDiff {
            metric: Metric::ErrorRate,
            base: 0.0,
            candidate: 2.5,
            unit: "percent",
            change: Some(2.5),
            change_unit: "points",
            ci_low: None,
            ci_high: None,
            threshold: Some(0.5),
            detectable_change_pct: None,
            rounds_for_threshold: None,
            method: Method::Single,
            verdict: Verdict::Regression,
        };
        assert_eq!(e.candidate_text(), "2.50%");
        assert_eq!(e.change_text(), "+2.50 pt");
        assert_eq!(e.threshold_text(), "+0.5 pt");
        assert_eq!(e.ci_text(), "-");
        assert_eq!(
            (e.detectable_text(), e.rounds_text()),
            ("-".into(), "-".into())
        );
    }

    #[test]
    fn a_metric_serialises_to_the_json_scripts_read() {
        let d = MetricDiff {
            metric: Metric::Throughput,
            unit: Metric::Throughput.unit(),
            base: 1000.0,
            candidate: 850.0,
            change: Some(-15.0),
            change_unit: "percent",
            ci_low: Some(-20.0),
            ci_high: Some(-10.0),
            threshold: Some(-10.0),
            detectable_change_pct: Some(5.0),
            rounds_for_threshold: Some(3),
            method: Method::Bootstrap,
            verdict: Verdict::WithinNoise,
        };
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            serde_json::json!({
                "metric": "throughput",
                "unit": "rps",
                "base": 1000.0,
                "candidate": 850.0,
                "change_pct": -15.0,
                "change_unit": "percent",
                "ci_low": -20.0,
                "ci_high": -10.0,
                "threshold": -10.0,
                "detectable_change_pct": 5.0,
                "rounds_for_threshold": 3,
                "method": "bootstrap",
                "verdict": "within noise",
            })
        );
        let source = Source {
            path: PathBuf::from("base/report.json"),
            scenario: "select1".into(),
            sha256: "ab".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
        };
        assert_eq!(
            serde_json::to_value(&source).unwrap()["path"],
            "base/report.json"
        );
    }
}
