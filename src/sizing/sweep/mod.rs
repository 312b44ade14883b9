//! Every sweep, over any axis: one model ([`Sweep`], sweep.json), one
//! list of steps the `sweep` command measures in order, and what every
//! view of a sweep shows (its table's rows as typed [`Field`]s, its
//! sections of plots and notes), so that one CSV, one terminal view and
//! one HTML page (in `view/`) serve every axis.
//!
//! An axis is one file implementing [`Axis`]: `pool_size.rs` (pool sizes
//! × concurrency, the USL fit and the knee; what `plan` reads),
//! `rtt.rs` (every strategy at each emulated RTT, the setup cost fitted
//! against it), `rate.rs` (every strategy in open loop at each arrival
//! rate, where each saturates) and `levers.rs` (a fresh connection under
//! each setting of the embedded server that changes its cost, each on a
//! server of its own).

pub mod levers;
pub mod pool_size;
pub mod rate;
pub mod rtt;

use std::fmt::Debug;
use std::ops::Deref;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::metrics::Summary;
use crate::report::{self, StrategyReport};
use crate::scenario::{EmbeddedSettings, NetworkSettings, RunSettings, Scenario, Strategy};

pub const SWEEP_SCHEMA_VERSION: u32 = 1;

/// What a sweep varies. The implementing type is the sweep's plan,
/// resolved from the scenario and the flags: it lists the steps and turns
/// each measured step into the model; the associated functions describe a
/// sweep of this axis to the views.
pub trait Axis: Sized + 'static {
    /// sweep.json's `kind`.
    const KIND: &'static str;
    /// How titles name the sweep: "sweep", "RTT sweep".
    const TITLE: &'static str;
    /// What `scenario` records beyond the name, path and sha256.
    type Scenario: Debug + Clone + Serialize + DeserializeOwned;
    /// What `settings` records beyond the duration, warm-up and seed.
    type Settings: Debug + Clone + Serialize + DeserializeOwned;
    /// One measured point of `points`.
    type Point: Debug + Clone + Serialize + DeserializeOwned;
    /// What is derived from the points, beside them in sweep.json.
    type Analysis: Debug + Clone + Default + Serialize + DeserializeOwned;
    /// Where a step lies on the axis.
    type At;

    fn scenario(&self) -> Self::Scenario;
    fn settings(&self) -> Self::Settings;
    /// Every strategy to measure, at each point of the axis, in order.
    fn steps(&self, scenario: &Scenario) -> Vec<Step<Self::At>>;
    /// Records the strategy measured at `at` (cut short by an interruption
    /// when `interrupted`).
    fn record(&self, sweep: &mut Sweep<Self>, at: &Self::At, r: &StrategyReport, interrupted: bool);
    /// The analysis of the points recorded so far.
    fn analyse(sweep: &Sweep<Self>) -> Self::Analysis;

    /// The grid, for the header and the page's subtitle: "pool sizes
    /// 1,2,4 × concurrency 8".
    fn grid(sweep: &Sweep<Self>) -> String;
    /// What the header warns of before anything is measured.
    fn warnings(_sweep: &Sweep<Self>) -> Vec<String> {
        Vec::new()
    }
    /// The columns of sweep.csv and of the tables, in order.
    fn columns() -> Vec<Column<Self>>;
    /// The points in the order of sweep.csv and the tables.
    fn ordered(sweep: &Sweep<Self>) -> Vec<&Self::Point> {
        sweep.points.iter().collect()
    }
    /// What finds a point's row in the page (`data-pool="4"`).
    fn keys(point: &Self::Point) -> Vec<(&'static str, String)>;
    /// The plots and the findings (the terminal prints the findings).
    fn sections(sweep: &Sweep<Self>) -> Vec<Section>;
}

/// One strategy measured at one point of the axis.
#[derive(Debug, Clone)]
pub struct Step<At> {
    pub at: At,
    pub strategy: Strategy,
    /// The scenario's run settings at this point (concurrency, arrivals).
    pub run: RunSettings,
    /// The emulated link at this point.
    pub network: Option<NetworkSettings>,
    /// How the progress line names it: "pool-4 c=8".
    pub label: String,
    /// The embedded server it runs on, when not the session's (a lever): a
    /// session of its own.
    pub server: Option<EmbeddedSettings>,
}

/// sweep.json, any axis; schema_version 1.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Sweep<A: Axis> {
    pub schema_version: u32,
    /// The axis's kind: "sweep", "rtt-sweep", "rate-sweep".
    pub kind: String,
    pub tool: report::Tool,
    pub started_at: String,
    /// True when the sweep did not finish: Ctrl-C or SIGTERM cut it short,
    /// or (the files are written so until the last write) it stopped on an
    /// error such as a full disk, or was killed.
    pub interrupted: bool,
    pub host: report::Host,
    pub server: report::Server,
    pub scenario: SweepScenario<A::Scenario>,
    pub settings: SweepSettings<A::Settings>,
    /// In the order measured.
    pub points: Vec<A::Point>,
    #[serde(flatten)]
    pub analysis: A::Analysis,
    /// `--instance-index`, `--start-at` and the clock offset, for a sweep
    /// run as one of several synchronised copies.
    #[serde(flatten)]
    pub copies: report::Copies,
}

/// Where and when a sweep runs, known before its first point.
pub struct Start {
    pub started_at: String,
    pub server: report::Server,
    pub copies: report::Copies,
}

impl<A: Axis> Sweep<A> {
    /// A sweep of `axis` over `scenario`, nothing measured yet.
    pub fn new(axis: &A, scenario: &Scenario, start: Start) -> Sweep<A> {
        Sweep {
            schema_version: SWEEP_SCHEMA_VERSION,
            kind: A::KIND.into(),
            tool: report::Tool::current(),
            started_at: start.started_at,
            interrupted: false,
            host: report::Host::current(),
            server: start.server,
            scenario: SweepScenario {
                name: scenario.name.clone(),
                path: scenario.source.path.display().to_string(),
                sha256: scenario.source.sha256.clone(),
                axis: axis.scenario(),
            },
            settings: SweepSettings {
                axis: axis.settings(),
                duration_s: scenario.run.duration.as_secs_f64(),
                warmup_s: scenario.run.warmup.as_secs_f64(),
                seed: scenario.run.seed,
            },
            points: Vec::new(),
            analysis: A::Analysis::default(),
            copies: start.copies,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepScenario<S> {
    pub name: String,
    pub path: String,
    pub sha256: String,
    #[serde(flatten)]
    pub axis: S,
}

impl<S> Deref for SweepScenario<S> {
    type Target = S;

    fn deref(&self) -> &S {
        &self.axis
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepSettings<S> {
    #[serde(flatten)]
    pub axis: S,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub seed: u64,
}

impl<S> Deref for SweepSettings<S> {
    type Target = S;

    fn deref(&self) -> &S {
        &self.axis
    }
}

/// An axis that records nothing beyond the common fields.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Nothing {}

/// Percentiles of one phase, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
}

impl From<&Summary> for Percentiles {
    fn from(s: &Summary) -> Percentiles {
        Percentiles {
            mean_us: s.mean_us,
            p50_us: s.p50_us,
            p90_us: s.p90_us,
            p99_us: s.p99_us,
            p999_us: s.p999_us,
        }
    }
}

/// Whether a point measured when the sweep was interrupted is kept: only
/// if it measured something.
pub fn worth_keeping(r: &StrategyReport, interrupted: bool) -> bool {
    !interrupted || r.requests > 0
}

/// A column of a sweep's table and of sweep.csv: a typed value of each
/// point, which each view formats its own way.
pub struct Column<A: Axis> {
    /// sweep.csv's column, and the page's `data-stat`; empty for a column
    /// the file does not hold.
    pub name: String,
    /// The tables' heading; None for a column only the file holds.
    pub heading: Option<String>,
    pub value: ValueOf<A>,
}

/// A column's value of one point (of the sweep, for its analysis).
pub type ValueOf<A> = Box<dyn Fn(&Sweep<A>, &<A as Axis>::Point) -> Value>;

impl<A: Axis> Column<A> {
    /// In the file and the tables.
    pub fn new(
        name: impl Into<String>,
        heading: impl Into<String>,
        value: impl Fn(&Sweep<A>, &A::Point) -> Value + 'static,
    ) -> Column<A> {
        Column {
            name: name.into(),
            heading: Some(heading.into()),
            value: Box::new(value),
        }
    }

    /// In the file only.
    pub fn file(
        name: impl Into<String>,
        value: impl Fn(&Sweep<A>, &A::Point) -> Value + 'static,
    ) -> Column<A> {
        Column {
            name: name.into(),
            heading: None,
            value: Box::new(value),
        }
    }

    /// In the tables only (a mark such as "◀ knee").
    pub fn table(
        heading: impl Into<String>,
        value: impl Fn(&Sweep<A>, &A::Point) -> Value + 'static,
    ) -> Column<A> {
        Column {
            name: String::new(),
            heading: Some(heading.into()),
            value: Box::new(value),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    /// An index on the axis (a pool size, a worker count).
    Int(u64),
    /// A count (requests, errors).
    Count(u64),
    /// A measured rate, requests per second.
    Rps(f64),
    /// A rate asked for, requests per second, exactly as given.
    Rate(f64),
    /// A latency in microseconds.
    Us(u64),
    /// A mean latency in microseconds.
    MeanUs(f64),
    /// Milliseconds as given (an RTT).
    Ms(f64),
    /// Milliseconds computed (a setup cost), shown to three decimals.
    Ms3(f64),
    Flag(bool),
    /// Not measured or not applicable.
    Missing,
}

impl Value {
    pub fn or_missing<T>(v: Option<T>, f: impl FnOnce(T) -> Value) -> Value {
        v.map_or(Value::Missing, f)
    }
}

/// A part of the page (a heading, plots, paragraphs); the terminal prints
/// its notes after the table.
#[derive(Debug, Clone, Default)]
pub struct Section {
    /// The page's anchor.
    pub id: String,
    /// The page's heading; None for notes about the whole sweep.
    pub title: Option<String>,
    pub plots: Vec<Plot>,
    /// Paragraphs of lines.
    pub notes: Vec<Vec<String>>,
}

/// A line chart, as data.
#[derive(Debug, Clone)]
pub struct Plot {
    pub title: String,
    pub x: String,
    pub y: String,
    pub curves: Vec<Curve>,
    /// Vertical rules (the knee).
    pub marks: Vec<Mark>,
    /// The curves mostly rise (the legend goes below them).
    pub rising: bool,
}

#[derive(Debug, Clone)]
pub struct Curve {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// A model or a reference, not measured points: dashed, no dots.
    pub fitted: bool,
}

impl Curve {
    pub fn measured(name: impl Into<String>, points: Vec<(f64, f64)>) -> Curve {
        Curve {
            name: name.into(),
            points,
            fitted: false,
        }
    }

    pub fn fitted(name: impl Into<String>, points: Vec<(f64, f64)>) -> Curve {
        Curve {
            name: name.into(),
            points,
            fitted: true,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Mark {
    pub x: f64,
    pub label: String,
}

/// The strategies of `points` in the order first measured.
pub fn strategies<'a, P>(points: &'a [P], name: impl Fn(&'a P) -> &'a str) -> Vec<&'a str> {
    let mut names: Vec<&str> = Vec::new();
    for p in points {
        let n = name(p);
        if !names.contains(&n) {
            names.push(n);
        }
    }
    names
}

/// One measured curve per strategy: `xy` of each of its points.
pub fn per_strategy<'a, P>(
    points: &'a [P],
    name: impl Fn(&'a P) -> &'a str + Copy,
    xy: impl Fn(&P) -> (f64, f64),
) -> Vec<Curve> {
    strategies(points, name)
        .into_iter()
        .map(|s| {
            let mine = points.iter().filter(|p| name(p) == s).map(&xy).collect();
            Curve::measured(s, mine)
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests;
