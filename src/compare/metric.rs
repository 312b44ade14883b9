//! The metrics `compare` judges, their names and bad directions, and the
//! thresholds in force: the defaults, then each `--max-regression`.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// A metric `compare` judges, of the `total` phase or the whole strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(into = "&'static str")]
pub enum Metric {
    P50,
    P99,
    P999,
    Throughput,
    ErrorRate,
}

impl Metric {
    pub const ALL: [Metric; 5] = [
        Metric::P50,
        Metric::P99,
        Metric::P999,
        Metric::Throughput,
        Metric::ErrorRate,
    ];

    /// The name used by `--max-regression` and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::P50 => "p50",
            Metric::P99 => "p99",
            Metric::P999 => "p999",
            Metric::Throughput => "throughput",
            Metric::ErrorRate => "error_rate",
        }
    }

    /// The name used in summaries: "p99", "p99.9", "throughput", "error rate".
    pub fn label_short(self) -> &'static str {
        match self {
            Metric::P999 => "p99.9",
            Metric::ErrorRate => "error rate",
            m => m.as_str(),
        }
    }

    /// The name shown in tables.
    pub fn label(self) -> &'static str {
        match self {
            Metric::P50 => "p50 (ms)",
            Metric::P99 => "p99 (ms)",
            Metric::P999 => "p99.9 (ms)",
            Metric::Throughput => "throughput (req/s)",
            Metric::ErrorRate => "error rate",
        }
    }

    /// The unit of its values in JSON: "us", "rps" or "percent".
    pub fn unit(self) -> &'static str {
        match self {
            Metric::Throughput => "rps",
            Metric::ErrorRate => "percent",
            Metric::P50 | Metric::P99 | Metric::P999 => "us",
        }
    }

    /// +1 when a higher value is worse (latency, errors), −1 when a lower
    /// value is worse (throughput).
    pub fn worse_sign(self) -> f64 {
        match self {
            Metric::Throughput => -1.0,
            _ => 1.0,
        }
    }

    /// Error rate changes in percentage points; the others relative, in %.
    pub fn in_points(self) -> bool {
        self == Metric::ErrorRate
    }

    /// The threshold beyond which a worsening is a regression, if gated by
    /// default: p99 +10%, throughput −10%, error rate +1 point. p50 and p99.9
    /// are informational unless `--max-regression` sets them.
    pub fn default_threshold(self) -> Option<f64> {
        match self {
            Metric::P99 | Metric::Throughput => Some(10.0),
            Metric::ErrorRate => Some(1.0),
            Metric::P50 | Metric::P999 => None,
        }
    }
}

impl From<Metric> for &'static str {
    fn from(m: Metric) -> &'static str {
        m.as_str()
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Metric {
    type Err = String;
    fn from_str(s: &str) -> Result<Metric, String> {
        Metric::ALL
            .into_iter()
            .find(|m| m.as_str() == s || (s == "p99.9" && *m == Metric::P999))
            .ok_or_else(|| {
                format!(
                    "unknown metric `{s}` (expected one of {})",
                    Metric::ALL.map(Metric::as_str).join(", ")
                )
            })
    }
}

/// One `--max-regression METRIC=PCT`: how much worse `metric` may get.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MaxRegression {
    pub metric: Metric,
    /// Percent (relative), or percentage points for error_rate; never negative.
    pub limit: f64,
}

/// Parses `p99=5%`, `throughput=-10`, `error_rate=0.5`. The sign is optional:
/// each metric's bad direction is fixed, so `throughput=10%` and
/// `throughput=-10%` mean the same.
pub fn parse_max_regression(text: &str) -> Result<MaxRegression, String> {
    let (metric, pct) = text
        .split_once('=')
        .ok_or_else(|| format!("expected METRIC=PCT, e.g. p99=5%, got `{text}`"))?;
    let metric: Metric = metric.trim().parse()?;
    let number = pct.trim().trim_end_matches('%').trim();
    let number = number.strip_prefix('+').unwrap_or(number);
    let limit: f64 = number
        .parse()
        .map_err(|_| format!("`{pct}` is not a percentage (expected e.g. 5% or 2.5)"))?;
    if !limit.is_finite() {
        return Err(format!("`{pct}` is not a finite percentage"));
    }
    Ok(MaxRegression {
        metric,
        limit: limit.abs(),
    })
}

/// The thresholds in force: defaults, then each `--max-regression` in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds(Vec<(Metric, Option<f64>)>);

impl Thresholds {
    pub fn new(overrides: &[MaxRegression]) -> Thresholds {
        let mut t: Vec<(Metric, Option<f64>)> = Metric::ALL
            .into_iter()
            .map(|m| (m, m.default_threshold()))
            .collect();
        for o in overrides {
            for (m, limit) in &mut t {
                if *m == o.metric {
                    *limit = Some(o.limit);
                }
            }
        }
        Thresholds(t)
    }

    /// The limit of `metric`, or None when it is informational only.
    pub fn get(&self, metric: Metric) -> Option<f64> {
        self.0.iter().find(|(m, _)| *m == metric).and_then(|t| t.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_regression_parses() {
        let p = parse_max_regression("p99=5%").unwrap();
        assert_eq!((p.metric, p.limit), (Metric::P99, 5.0));
        let p = parse_max_regression("throughput=-12.5").unwrap();
        assert_eq!((p.metric, p.limit), (Metric::Throughput, 12.5));
        let p = parse_max_regression("p99.9=+20%").unwrap();
        assert_eq!((p.metric, p.limit), (Metric::P999, 20.0));
        assert!(parse_max_regression("p98=5")
            .unwrap_err()
            .contains("unknown metric `p98`"));
        assert!(parse_max_regression("p99=fast")
            .unwrap_err()
            .contains("not a percentage"));
        assert!(parse_max_regression("p99")
            .unwrap_err()
            .contains("METRIC=PCT"));
    }

    #[test]
    fn overrides_replace_one_default() {
        let t = Thresholds::new(&[parse_max_regression("p50=3").unwrap()]);
        assert_eq!(t.get(Metric::P50), Some(3.0));
        assert_eq!(t.get(Metric::P99), Some(10.0));
        assert_eq!(t.get(Metric::P999), None);
    }
}
