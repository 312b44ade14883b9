//! `poolbench compare BASELINE CANDIDATE`: the CI regression gate. Reads
//! two report.json files (`load.rs`), refuses incompatible ones, and decides
//! a verdict per strategy and metric (`metric.rs` names the metrics and
//! their thresholds; `verdict.rs` judges them, with the bootstrap of
//! `stats.rs` when both reports have rounds) into a [`Diff`], which
//! `view::term::compare`, `view::export::markdown` and the JSON exporter
//! print. Exit code 1 on any regression.

mod load;
mod metric;
pub mod stats;
mod verdict;

pub use load::{check_compatible, load_report, Difference, LoadedReport};
pub use metric::{parse_max_regression, MaxRegression, Metric, Thresholds};
pub use verdict::{compare, Diff, Markup, Method, MetricDiff, StrategyDiff, Verdict};
