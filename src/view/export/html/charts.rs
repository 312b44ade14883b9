//! The charts of the HTML pages, drawn by plotters into inline SVG: line
//! charts on linear or logarithmic axes (percentile spectra, timelines,
//! sweeps), stacked horizontal bars (where a request's time goes) and
//! intervals against a threshold (compare). Every chart has axes with units
//! and a legend; colours are fixed here so the page's stylesheet can turn the
//! ink and grid light in dark mode.

use std::ops::Range;

use anyhow::{anyhow, Result};
use plotters::coord::ranged1d::{
    IntoSegmentedCoord, Ranged, SegmentValue, SegmentedCoord, ValueFormatter,
};
use plotters::coord::types::{RangedCoordf64, RangedCoordusize};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// A series colour.
pub type Rgb = RGBColor;

/// Axes, labels and text. The page's dark-mode stylesheet recolours this
/// exact value, so it is used for nothing else.
pub const INK: RGBColor = RGBColor(0x00, 0x00, 0x00);
/// Grid lines (recoloured in dark mode like `INK`).
pub const GRID: RGBColor = RGBColor(0xDD, 0xDD, 0xDD);
/// The legend's background (recoloured in dark mode like `INK`).
pub const PAPER: RGBColor = RGBColor(0xFF, 0xFF, 0xFE);

/// Series colours that read on a light and a dark background alike
/// (Okabe–Ito, which colour-blind readers can tell apart).
pub const PALETTE: [RGBColor; 7] = [
    RGBColor(0x00, 0x72, 0xB2), // blue
    RGBColor(0xE6, 0x9F, 0x00), // orange
    RGBColor(0x00, 0x9E, 0x73), // green
    RGBColor(0xCC, 0x79, 0xA7), // purple
    RGBColor(0xD5, 0x5E, 0x00), // vermillion
    RGBColor(0x56, 0xB4, 0xE9), // sky blue
    RGBColor(0x99, 0x99, 0x99), // grey
];

/// The `i`th series colour, cycling.
pub fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

const FONT: &str = "sans-serif";
const WIDTH: u32 = 880;

/// One axis: its label (with the unit), scale, range and tick labels.
#[derive(Debug, Clone)]
pub struct Axis {
    pub label: String,
    pub log: bool,
    /// Symmetric log: the axis runs in [`symlog`] units, labelled with the
    /// values they stand for.
    pub symlog: bool,
    pub range: Range<f64>,
    pub ticks: Vec<(f64, String)>,
}

impl Axis {
    /// A linear axis from `lo` to at least `hi`, with round ticks.
    pub fn linear(label: impl Into<String>, lo: f64, hi: f64) -> Axis {
        let hi = if hi > lo { hi } else { lo + 1.0 };
        let step = nice_step((hi - lo) / 5.0);
        let hi = (hi / step).ceil() * step;
        let mut ticks = Vec::new();
        let mut v = (lo / step).ceil() * step;
        while v <= hi + step * 1e-9 {
            ticks.push((v, number(v)));
            v += step;
        }
        Axis {
            label: label.into(),
            log: false,
            symlog: false,
            range: lo..hi,
            ticks,
        }
    }

    /// A symmetric-log axis covering `lo..hi` (values, not units): linear
    /// within ±1, one unit per decade beyond, so +2% and −900% both read.
    pub fn symlog(label: impl Into<String>, lo: f64, hi: f64) -> Axis {
        let (lo, hi) = (symlog(lo).floor(), symlog(hi).ceil());
        let hi = if hi > lo { hi } else { lo + 1.0 };
        Axis {
            label: label.into(),
            log: false,
            symlog: true,
            range: lo..hi,
            ticks: ((lo as i32)..=(hi as i32))
                .map(|u| (f64::from(u), number(symlog_value(f64::from(u)))))
                .collect(),
        }
    }

    /// A base-10 logarithmic axis covering `lo..hi` (both > 0), widened to
    /// whole decades, ticks at 1, 2 and 5 per decade when few decades.
    pub fn log(label: impl Into<String>, lo: f64, hi: f64) -> Axis {
        let lo = 10f64.powf(lo.max(1e-9).log10().floor());
        let hi = 10f64.powf(hi.max(lo * 10.0).log10().ceil());
        let decades = (hi / lo).log10().round() as i32;
        let steps: &[f64] = if decades <= 2 {
            &[1.0, 2.0, 5.0]
        } else {
            &[1.0]
        };
        let mut ticks = Vec::new();
        for d in 0..=decades {
            let base = lo * 10f64.powi(d);
            for s in steps {
                let v = base * s;
                if v <= hi * (1.0 + 1e-9) {
                    ticks.push((v, number(v)));
                }
            }
        }
        Axis {
            label: label.into(),
            log: true,
            symlog: false,
            range: lo..hi,
            ticks,
        }
    }

    /// The percentile axis of an HdrHistogram plot: x = 1 / (1 − q) on a log
    /// scale, from 0% to 99.99%.
    pub fn percentile() -> Axis {
        Axis {
            label: "percentile (log scale: 90%, 99%, 99.9% … equally spaced)".into(),
            log: true,
            symlog: false,
            range: 1.0..PERCENTILE_MAX_X,
            ticks: ["0%", "90%", "99%", "99.9%", "99.99%"]
                .iter()
                .enumerate()
                .map(|(i, label)| (10f64.powi(i as i32), label.to_string()))
                .collect(),
        }
    }

    fn label_of(&self, v: f64) -> String {
        if self.symlog {
            let x = symlog_value(v);
            // Two significant digits: a tick between decades reads "3.2".
            let digits = (2 - x.abs().max(1e-9).log10().floor() as i32 - 1).max(0) as usize;
            return number(format!("{x:.digits$}").parse().unwrap_or(x));
        }
        if !self.log {
            return number(v);
        }
        self.ticks
            .iter()
            .min_by(|a, b| distance(a.0, v, self.log).total_cmp(&distance(b.0, v, self.log)))
            .map(|t| t.1.clone())
            .unwrap_or_default()
    }
}

/// The symmetric log of `x`: `x` within ±1, ±(1 + log10 |x|) beyond.
pub fn symlog(x: f64) -> f64 {
    if x.abs() <= 1.0 {
        x
    } else {
        x.signum() * (1.0 + x.abs().log10())
    }
}

/// The value at `u` on a symmetric-log axis: the inverse of [`symlog`].
pub fn symlog_value(u: f64) -> f64 {
    if u.abs() <= 1.0 {
        u
    } else {
        u.signum() * 10f64.powf(u.abs() - 1.0)
    }
}

/// The right end of the percentile axis: 1 / (1 − 0.9999).
pub const PERCENTILE_MAX_X: f64 = 10_000.0;

/// Where quantile `q` goes on the percentile axis.
pub fn percentile_x(q: f64) -> f64 {
    if q >= 1.0 - 1.0 / PERCENTILE_MAX_X {
        PERCENTILE_MAX_X
    } else {
        1.0 / (1.0 - q)
    }
}

fn distance(a: f64, b: f64, log: bool) -> f64 {
    if log {
        (a.max(1e-12).ln() - b.max(1e-12).ln()).abs()
    } else {
        (a - b).abs()
    }
}

/// 1, 2, 2.5 or 5 × 10^k, the smallest at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if !raw.is_finite() || raw <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * magnitude)
}

/// A tick label: 0.05, 2.5, 40, 1,200 — no trailing zeros.
pub fn number(v: f64) -> String {
    if v.abs() >= 1000.0 {
        return crate::report::format::thousands(v.round() as u64);
    }
    let text = format!("{v:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.into()
    }
}

/// One line of a line chart.
#[derive(Debug, Clone)]
pub struct Line {
    pub name: String,
    pub color: RGBColor,
    pub points: Vec<(f64, f64)>,
    pub dashed: bool,
    /// Draw a dot at each point (measured points, as opposed to a model).
    pub dots: bool,
}

impl Line {
    pub fn new(name: impl Into<String>, color: RGBColor, points: Vec<(f64, f64)>) -> Line {
        Line {
            name: name.into(),
            color,
            points,
            dashed: false,
            dots: false,
        }
    }
}

/// A vertical rule across the plot, labelled at the top (a knee, the start
/// of a round).
#[derive(Debug, Clone)]
pub struct Rule {
    pub x: f64,
    pub label: String,
}

#[derive(Debug, Clone)]
pub struct LineChart {
    /// What the chart shows, for screen readers (the page gives a caption).
    pub title: String,
    pub x: Axis,
    pub y: Axis,
    pub lines: Vec<Line>,
    pub rules: Vec<Rule>,
    pub height: u32,
    pub legend: Legend,
}

/// Where the legend goes.
#[derive(Debug, Clone, Copy)]
pub enum Legend {
    UpperLeft,
    UpperRight,
    LowerRight,
}

impl Legend {
    fn position(self) -> SeriesLabelPosition {
        match self {
            Legend::UpperLeft => SeriesLabelPosition::UpperLeft,
            Legend::UpperRight => SeriesLabelPosition::UpperRight,
            Legend::LowerRight => SeriesLabelPosition::LowerRight,
        }
    }
}

/// Renders a line chart as an `<svg>` element.
pub fn line_chart(chart: &LineChart) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, chart.height)).into_drawing_area();
        let (x, y) = (&chart.x, &chart.y);
        let xr = x.range.clone();
        let yr = y.range.clone();
        let xt: Vec<f64> = x.ticks.iter().map(|t| t.0).collect();
        let yt: Vec<f64> = y.ticks.iter().map(|t| t.0).collect();
        // plotters types a log axis differently from a linear one: one call
        // per combination, the drawing itself written once. Linear axes take
        // plotters' own round ticks; log axes get the decades chosen here.
        match (x.log, y.log) {
            (false, false) => draw_lines(
                &root,
                chart,
                RangedCoordf64::from(xr),
                RangedCoordf64::from(yr),
            ),
            (true, false) => draw_lines(
                &root,
                chart,
                xr.log_scale().with_key_points(xt),
                RangedCoordf64::from(yr),
            ),
            (false, true) => draw_lines(
                &root,
                chart,
                RangedCoordf64::from(xr),
                yr.log_scale().with_key_points(yt),
            ),
            (true, true) => draw_lines(
                &root,
                chart,
                xr.log_scale().with_key_points(xt),
                yr.log_scale().with_key_points(yt),
            ),
        }?;
        root.present().map_err(plot_error)?;
    }
    Ok(labelled(svg, &chart.title))
}

fn draw_lines<X, Y>(
    root: &DrawingArea<SVGBackend, Shift>,
    spec: &LineChart,
    x: X,
    y: Y,
) -> Result<()>
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(root)
        .margin(12)
        .margin_right(24)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(x, y)
        .map_err(plot_error)?;
    let x_label = |v: &f64| spec.x.label_of(*v);
    let y_label = |v: &f64| spec.y.label_of(*v);
    chart
        .configure_mesh()
        .x_desc(spec.x.label.as_str())
        .y_desc(spec.y.label.as_str())
        .x_label_formatter(&x_label)
        .y_label_formatter(&y_label)
        .x_labels(spec.x.ticks.len().max(2))
        .y_labels(spec.y.ticks.len().max(2))
        .disable_x_mesh()
        .bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
        .axis_style(INK)
        .label_style((FONT, 13).into_font().color(&INK))
        .axis_desc_style((FONT, 14).into_font().color(&INK))
        .draw()
        .map_err(plot_error)?;

    let (y_lo, y_hi) = (spec.y.range.start, spec.y.range.end);
    // A rule's label at the top, unless the legend is there: then just
    // above the x axis, so the legend's box never covers it.
    let label_y = match spec.legend {
        Legend::LowerRight => y_hi,
        Legend::UpperLeft | Legend::UpperRight if spec.y.log => y_lo * (y_hi / y_lo).powf(0.08),
        Legend::UpperLeft | Legend::UpperRight => y_lo + (y_hi - y_lo) * 0.08,
    };
    let x_mid = (spec.x.range.start + spec.x.range.end) / 2.0;
    for rule in &spec.rules {
        chart
            .draw_series(DashedLineSeries::new(
                [(rule.x, y_lo), (rule.x, y_hi)],
                4,
                4,
                INK.mix(0.6).stroke_width(1),
            ))
            .map_err(plot_error)?;
        // Beside the rule on the side with room: right of it in the left
        // half, left of it in the right half (never cut off by the edge).
        let (text, anchor) = if rule.x > x_mid {
            (format!("{} ", rule.label), HPos::Right)
        } else {
            (format!(" {}", rule.label), HPos::Left)
        };
        chart
            .draw_series(std::iter::once(Text::new(
                text,
                (rule.x, label_y),
                (FONT, 13)
                    .into_font()
                    .color(&INK)
                    .pos(Pos::new(anchor, VPos::Top)),
            )))
            .map_err(plot_error)?;
    }

    for line in &spec.lines {
        let style = line.color.stroke_width(2);
        let points = line.points.iter().copied().filter(|(x, y)| {
            x.is_finite() && y.is_finite() && (!spec.y.log || *y > 0.0) && (!spec.x.log || *x > 0.0)
        });
        let drawn = if line.dashed {
            chart.draw_series(DashedLineSeries::new(points.clone(), 8, 5, style))
        } else {
            chart.draw_series(LineSeries::new(points.clone(), style))
        }
        .map_err(plot_error)?;
        let color = line.color;
        drawn
            .label(line.name.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(3)));
        if line.dots {
            chart
                .draw_series(points.map(|p| Circle::new(p, 3, line.color.filled())))
                .map_err(plot_error)?;
        }
    }
    if spec.lines.iter().any(|l| !l.name.is_empty()) {
        chart
            .configure_series_labels()
            .position(spec.legend.position())
            .background_style(PAPER.mix(0.85))
            .border_style(GRID)
            .label_font((FONT, 13).into_font().color(&INK))
            .draw()
            .map_err(plot_error)?;
    }
    Ok(())
}

/// One bar of a stacked bar chart: segments laid end to end.
#[derive(Debug, Clone)]
pub struct Bar {
    pub label: String,
    /// (index into the chart's `parts`, length).
    pub segments: Vec<(usize, f64)>,
    /// Written after the bar's end, e.g. its total.
    pub note: String,
}

#[derive(Debug, Clone)]
pub struct BarChart {
    pub title: String,
    /// The label of the value axis, with its unit.
    pub x_label: String,
    /// The segment kinds: name and colour, in legend order.
    pub parts: Vec<(String, RGBColor)>,
    pub bars: Vec<Bar>,
}

/// Renders horizontal stacked bars as an `<svg>` element.
pub fn bar_chart(spec: &BarChart) -> Result<String> {
    let longest = spec
        .bars
        .iter()
        .map(|b| b.segments.iter().map(|s| s.1.max(0.0)).sum::<f64>())
        .fold(0.0, f64::max);
    // Room on the right for the notes after the longest bar.
    let axis = Axis::linear(spec.x_label.clone(), 0.0, longest * 1.25);
    let labels: Vec<&str> = spec.bars.iter().map(|b| b.label.as_str()).collect();
    let frame = Rows {
        title: &spec.title,
        axis: &axis,
        labels: &labels,
        row_height: 34,
        max_label_width: 320,
        legend: Some(SeriesLabelPosition::LowerRight),
    };
    frame.draw(|chart, slot_of| {
        for (part, (name, color)) in spec.parts.iter().enumerate() {
            let mut rects = Vec::new();
            for (row, bar) in spec.bars.iter().enumerate() {
                let slot = slot_of(row);
                let mut start = 0.0;
                for (kind, len) in &bar.segments {
                    let len = len.max(0.0);
                    if *kind == part && len > 0.0 {
                        let mut r = Rectangle::new(
                            [
                                (start, SegmentValue::Exact(slot)),
                                (start + len, SegmentValue::Exact(slot + 1)),
                            ],
                            color.filled(),
                        );
                        r.set_margin(6, 6, 0, 0);
                        rects.push(r);
                    }
                    start += len;
                }
            }
            let color = *color;
            chart
                .draw_series(rects)
                .map_err(plot_error)?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled())
                });
        }
        for (row, bar) in spec.bars.iter().enumerate() {
            let end: f64 = bar.segments.iter().map(|s| s.1.max(0.0)).sum();
            chart
                .draw_series(std::iter::once(Text::new(
                    format!("  {}", bar.note),
                    (end, SegmentValue::CenterOf(slot_of(row))),
                    (FONT, 13)
                        .into_font()
                        .color(&INK)
                        .pos(Pos::new(HPos::Left, VPos::Center)),
                )))
                .map_err(plot_error)?;
        }
        Ok(())
    })
}

/// One row of an interval chart: a point estimate, its interval, a limit.
#[derive(Debug, Clone)]
pub struct IntervalRow {
    pub label: String,
    pub estimate: f64,
    pub interval: Option<(f64, f64)>,
    /// The threshold (same unit), drawn as a tick: beyond it is worse.
    pub limit: Option<f64>,
    pub color: RGBColor,
}

#[derive(Debug, Clone)]
pub struct IntervalChart {
    pub title: String,
    pub x_label: String,
    pub rows: Vec<IntervalRow>,
    /// Legend entries: name and colour of the estimate dots.
    pub legend: Vec<(String, RGBColor)>,
}

/// Renders estimates with their intervals and thresholds (a forest plot)
/// as an `<svg>` element, on a symmetric-log axis: changes of a few percent
/// and of several hundred read on one chart. The legend names every colour
/// of the rows, then the threshold tick.
pub fn interval_chart(spec: &IntervalChart) -> Result<String> {
    let finite = |v: f64| v.is_finite().then_some(v);
    let values: Vec<f64> = spec
        .rows
        .iter()
        .flat_map(|r| {
            [
                finite(r.estimate),
                r.interval.and_then(|i| finite(i.0)),
                r.interval.and_then(|i| finite(i.1)),
                r.limit,
            ]
        })
        .flatten()
        .chain([0.0])
        .collect();
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let axis = Axis::symlog(spec.x_label.clone(), lo, hi);
    // Empty rows on top hold the legend, so that it hides no row.
    let legend_rows = (spec.legend.len() + 1).div_ceil(2);
    let labels: Vec<&str> = std::iter::repeat_n("", legend_rows)
        .chain(spec.rows.iter().map(|r| r.label.as_str()))
        .collect();
    let rows = labels.len().max(1);
    let frame = Rows {
        title: &spec.title,
        axis: &axis,
        labels: &labels,
        row_height: 30,
        max_label_width: 360,
        legend: Some(SeriesLabelPosition::UpperRight),
    };
    frame.draw(|chart, slot_of| {
        // "No change", across the rows (not the legend's).
        chart
            .draw_series(std::iter::once(PathElement::new(
                [
                    (0.0, SegmentValue::Exact(0)),
                    (0.0, SegmentValue::Exact(rows - legend_rows)),
                ],
                INK.stroke_width(1),
            )))
            .map_err(plot_error)?;
        let at = |v: f64| symlog(v).clamp(axis.range.start, axis.range.end);
        for (i, row) in spec.rows.iter().enumerate() {
            let slot = slot_of(i + legend_rows);
            let center = || SegmentValue::CenterOf(slot);
            if let Some((low, high)) = row.interval {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        [(at(low), center()), (at(high), center())],
                        row.color.stroke_width(3),
                    )))
                    .map_err(plot_error)?;
            }
            if let Some(limit) = row.limit {
                chart
                    .draw_series(std::iter::once(
                        EmptyElement::at((at(limit), center())) + threshold_tick(),
                    ))
                    .map_err(plot_error)?;
            }
            chart
                .draw_series(std::iter::once(Circle::new(
                    (at(row.estimate), center()),
                    5,
                    row.color.filled(),
                )))
                .map_err(plot_error)?;
        }
        for (name, color) in &spec.legend {
            let color = *color;
            chart
                .draw_series(std::iter::empty::<Circle<(f64, SegmentValue<usize>), i32>>())
                .map_err(plot_error)?
                .label(name.as_str())
                .legend(move |(x, y)| Circle::new((x + 6, y), 5, color.filled()));
        }
        chart
            .draw_series(std::iter::empty::<Circle<(f64, SegmentValue<usize>), i32>>())
            .map_err(plot_error)?
            .label("threshold (worse beyond it)")
            .legend(|(x, y)| Rectangle::new([(x + 5, y - 8), (x + 8, y + 8)], INK.filled()));
        Ok(())
    })
}

/// The threshold's mark, in pixels around its point: a bar 3 px wide
/// across most of a row.
fn threshold_tick() -> Rectangle<(i32, i32)> {
    Rectangle::new([(-1, -11), (2, 11)], INK.filled())
}

/// A chart with one row per label, listed top to bottom, against a value
/// axis: the frame bar and interval charts share.
struct Rows<'a> {
    title: &'a str,
    /// The value axis (horizontal).
    axis: &'a Axis,
    labels: &'a [&'a str],
    row_height: u32,
    /// The most room the row labels may take, in pixels.
    max_label_width: u32,
    /// Where the legend goes, if there is one.
    legend: Option<SeriesLabelPosition>,
}

/// The coordinates of a [`Rows`] chart: the value, and the row's segment.
type RowsChart<'a, 'b> =
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, SegmentedCoord<RangedCoordusize>>>;

impl Rows<'_> {
    /// Draws the frame (axes, row labels, grid), then `marks` (given the
    /// chart and a row's index → its segment), then the legend: an `<svg>`.
    fn draw(
        self,
        marks: impl FnOnce(&mut RowsChart<'_, '_>, &dyn Fn(usize) -> usize) -> Result<()>,
    ) -> Result<String> {
        let rows = self.labels.len().max(1);
        let height = 110 + self.row_height * rows as u32;
        let label_width = self
            .labels
            .iter()
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(4) as u32
            * 8
            + 16;
        // Rows are listed top to bottom; plotters counts upwards.
        let slot_of = |row: usize| rows - 1 - row;
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
            let mut chart = ChartBuilder::on(&root)
                .margin(12)
                .margin_right(24)
                .x_label_area_size(48)
                .y_label_area_size(label_width.min(self.max_label_width))
                .build_cartesian_2d(
                    RangedCoordf64::from(self.axis.range.clone()),
                    // One segment per row: plotters includes the range's end
                    // (a single row gets a spare one, as 0..0 would be no
                    // range).
                    (0..rows.max(2) - 1).into_segmented(),
                )
                .map_err(plot_error)?;
            let x_label = |v: &f64| self.axis.label_of(*v);
            let y_label = |v: &SegmentValue<usize>| match v {
                SegmentValue::CenterOf(i) if *i < rows => self
                    .labels
                    .get(slot_of(*i))
                    .map(|l| l.to_string())
                    .unwrap_or_default(),
                _ => String::new(),
            };
            chart
                .configure_mesh()
                .x_desc(self.axis.label.as_str())
                .x_label_formatter(&x_label)
                .y_label_formatter(&y_label)
                .x_labels(self.axis.ticks.len().max(2))
                .y_labels(rows)
                .disable_y_mesh()
                .bold_line_style(GRID)
                .light_line_style(TRANSPARENT)
                .axis_style(INK)
                .label_style((FONT, 13).into_font().color(&INK))
                .axis_desc_style((FONT, 14).into_font().color(&INK))
                .draw()
                .map_err(plot_error)?;
            marks(&mut chart, &slot_of)?;
            if let Some(position) = self.legend {
                chart
                    .configure_series_labels()
                    .position(position)
                    .background_style(PAPER.mix(0.85))
                    .border_style(GRID)
                    .label_font((FONT, 13).into_font().color(&INK))
                    .draw()
                    .map_err(plot_error)?;
            }
            root.present().map_err(plot_error)?;
        }
        Ok(labelled(svg, self.title))
    }
}

fn plot_error<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("cannot draw a chart: {e:?}")
}

/// Makes the chart an accessible image that scales with the page.
fn labelled(svg: String, title: &str) -> String {
    let title = super::page::escape(title);
    svg.replacen(
        "<svg ",
        &format!("<svg role=\"img\" aria-label=\"{title}\" class=\"chart\" "),
        1,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symmetric_log_axis_reads_small_and_large_changes() {
        assert_eq!(symlog(0.5), 0.5);
        assert_eq!(symlog(-100.0), -3.0);
        assert!((symlog_value(symlog(37.0)) - 37.0).abs() < 1e-9);
        let a = Axis::symlog("%", -92.7, 4.0);
        assert_eq!(a.range, -3.0..2.0);
        let labels: Vec<&str> = a.ticks.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(labels, ["-100", "-10", "-1", "0", "1", "10"]);
        assert_eq!(a.label_of(1.5), "3.2");
        assert_eq!(a.label_of(-2.0), "-10");
    }

    #[test]
    fn ticks_are_round() {
        let a = Axis::linear("ms", 0.0, 87.0);
        let labels: Vec<&str> = a.ticks.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(labels, ["0", "20", "40", "60", "80", "100"]);
        let a = Axis::log("ms", 0.3, 140.0);
        assert_eq!(a.range, 0.1..1000.0);
        assert_eq!(a.ticks.first().unwrap().1, "0.1");
        assert_eq!(a.label_of(99.0), "100");
        assert_eq!(number(0.05), "0.05");
        assert_eq!(number(2.5), "2.5");
        assert_eq!(number(1200.0), "1,200");
    }

    #[test]
    fn percentiles_sit_where_hdrhistogram_puts_them() {
        let a = Axis::percentile();
        assert_eq!(a.label_of(percentile_x(0.99)), "99%");
        assert_eq!(a.label_of(percentile_x(0.999)), "99.9%");
        assert_eq!(percentile_x(1.0), PERCENTILE_MAX_X);
        assert_eq!(percentile_x(0.0), 1.0);
    }

    #[test]
    fn a_line_chart_is_an_svg_with_axes_and_legend() {
        let svg = line_chart(&LineChart {
            title: "latency".into(),
            x: Axis::percentile(),
            y: Axis::log("latency (ms)", 0.2, 80.0),
            lines: vec![Line::new(
                "pool-10",
                color(0),
                vec![(1.0, 0.4), (10.0, 0.9), (100.0, 1.8)],
            )],
            rules: vec![Rule {
                x: 10.0,
                label: "knee".into(),
            }],
            height: 320,
            legend: Legend::UpperLeft,
        })
        .unwrap();
        assert!(svg.starts_with("<svg role=\"img\" aria-label=\"latency\""));
        for text in ["99.9%", "latency (ms)", "pool-10", "knee", "<polyline"] {
            assert!(svg.contains(text), "{text} missing");
        }
    }

    #[test]
    fn bars_and_intervals_render() {
        let svg = bar_chart(&BarChart {
            title: "where time goes".into(),
            x_label: "ms".into(),
            parts: vec![("connect".into(), color(4)), ("query".into(), color(0))],
            bars: vec![Bar {
                label: "per-request mean".into(),
                segments: vec![(0, 42.0), (1, 15.0)],
                note: "total 64.2 ms".into(),
            }],
        })
        .unwrap();
        assert!(svg.contains("per-request mean") && svg.contains("total 64.2 ms"));
        assert!(svg.matches("<rect").count() >= 2);
        let svg = interval_chart(&IntervalChart {
            title: "changes".into(),
            x_label: "change (%)".into(),
            rows: vec![IntervalRow {
                label: "pool p99".into(),
                estimate: 34.0,
                interval: Some((20.0, 48.0)),
                limit: Some(10.0),
                color: color(4),
            }],
            legend: vec![("regression".into(), color(4))],
        })
        .unwrap();
        assert!(svg.contains("pool p99") && svg.contains("regression"));
    }
}
