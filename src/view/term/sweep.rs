//! The terminal view of every sweep, whatever its axis: the header (what
//! is swept, the server, the grid), then the table (one row per point,
//! the axis's columns that have a heading), then the axis's findings (the
//! knee and the USL fit, the setup-cost fit, where each rate saturates).

use std::time::Duration;

use super::run::{debug_build_line, server_line, title_line};
use crate::report::format::{ms, render, rps, thousands, trimmed};
use crate::sizing::sweep::{Axis, Column, Sweep, Value};

/// What `sweep` prints before measuring: the tool, the server, the grid,
/// and the axis's warnings.
pub fn header<A: Axis>(sweep: &Sweep<A>) -> String {
    let mut out = title_line(&format!(
        "{} of {} ({})",
        A::TITLE,
        sweep.scenario.name,
        sweep.scenario.path
    ));
    out.push_str(&server_line(&sweep.server));
    let secs = |s: f64| humantime::format_duration(Duration::from_secs_f64(s));
    out.push_str(&format!(
        "grid      {} · {} warm-up + {} per point · seed {}\n",
        A::grid(sweep),
        secs(sweep.settings.warmup_s),
        secs(sweep.settings.duration_s),
        sweep.settings.seed,
    ));
    for w in A::warnings(sweep) {
        out.push_str(&format!("warning   {w}\n"));
    }
    out.push_str(debug_build_line());
    out.push('\n');
    out
}

/// The columns the tables show: those with a heading.
pub fn shown<A: Axis>() -> Vec<Column<A>> {
    A::columns()
        .into_iter()
        .filter(|c| c.heading.is_some())
        .collect()
}

/// Whether a column reads as text (an RTT, a strategy's name), left-aligned,
/// judged by its value at a point.
pub fn is_text(value: &Value) -> bool {
    matches!(value, Value::Text(_) | Value::Ms(_))
}

/// The table and the findings.
pub fn table<A: Axis>(sweep: &Sweep<A>) -> String {
    let columns = shown::<A>();
    let heading = |c: &Column<A>| c.heading.clone().unwrap_or_default();
    let mut rows = vec![columns.iter().map(heading).collect::<Vec<_>>()];
    let points = A::ordered(sweep);
    for p in &points {
        rows.push(columns.iter().map(|c| text(&(c.value)(sweep, p))).collect());
    }
    let left = points.first().map_or(0, |p| {
        columns
            .iter()
            .take_while(|c| is_text(&(c.value)(sweep, p)))
            .count()
    });
    let mut out = String::from("latencies in ms\n");
    out.push_str(&render(&rows, left));
    for section in A::sections(sweep) {
        for paragraph in section.notes {
            out.push('\n');
            for line in paragraph {
                out.push_str(&line);
                out.push('\n');
            }
        }
    }
    if sweep.interrupted {
        out.push_str("\ninterrupted: the sweep was cut short; the files hold what was measured\n");
    }
    out
}

/// A value as the tables show it: latencies in ms, rates as req/s, counts
/// with thousands separators.
pub fn text(value: &Value) -> String {
    match value {
        Value::Text(t) => t.clone(),
        Value::Int(n) => n.to_string(),
        Value::Count(n) => thousands(*n),
        Value::Rps(x) | Value::Rate(x) => rps(*x),
        Value::Us(us) => ms(*us as f64),
        Value::MeanUs(us) => ms(*us),
        Value::Ms(x) => format!("{} ms", trimmed(*x, 3)),
        Value::Ms3(x) => ms(x * 1000.0),
        Value::Flag(b) => b.to_string(),
        Value::Missing => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sizing::plan::tests::known_sweep;
    use crate::sizing::sweep::pool_size::analyse_all;

    #[test]
    fn a_pool_size_sweep_marks_its_knee_and_its_partial_point() {
        let mut sweep = known_sweep(5000);
        sweep.analysis.per_concurrency = analyse_all(&sweep);
        let knee = sweep.analysis.per_concurrency[0].knee_pool_size;
        let text = table(&sweep);
        let line = text
            .lines()
            .find(|l| l.contains("◀ knee"))
            .unwrap_or_else(|| panic!("no knee in {text}"));
        let pool = line.split_whitespace().nth(1);
        assert_eq!(pool, Some(knee.to_string().as_str()), "{line}");
        assert!(text.contains("USL fit"), "{text}");
        assert!(text.contains("fresh"), "{text}");
        for p in sweep.points.iter_mut().filter(|p| p.pool_size == knee) {
            p.partial = true;
        }
        sweep.analysis.per_concurrency = analyse_all(&sweep);
        let text = table(&sweep);
        assert!(text.contains("partial: interrupted"), "{text}");
        assert!(!text.contains("interrupted: the sweep"), "{text}");
    }
}
