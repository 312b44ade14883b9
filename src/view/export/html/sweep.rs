//! sweep.html, for every sweep whatever its axis: the axis's sections
//! (each with its plots, as inline SVG, and its findings), the table of
//! the points as the terminal shows it, and the facts. A pure function of
//! sweep.json's model.

use std::time::Duration;

use anyhow::Result;

use super::charts::{color, line_chart, Axis as ChartAxis, Legend, Line, LineChart, Rule};
use super::page::{escape, facts, Page, Table};
use crate::sizing::sweep::{Axis, Plot, Sweep};
use crate::view::term::sweep::{is_text, shown, text};

pub fn render<A: Axis>(sweep: &Sweep<A>) -> Result<String> {
    let title = format!("poolbench {}: {}", A::TITLE, sweep.scenario.name);
    let mut page = Page::new(&title);
    page.raw(&format!(
        "<h1>{}</h1>\n<p class=\"sub\">{} · {}</p>\n",
        escape(&title),
        escape(&sweep.started_at),
        escape(&A::grid(sweep)),
    ));
    if sweep.interrupted {
        page.raw(
            "<p class=\"banner bad\" id=\"interrupted\">Interrupted: the sweep was cut short; \
             this page shows the points measured until then.</p>\n",
        );
    }
    for w in A::warnings(sweep) {
        page.paragraph("banner", &format!("warning: {w}"));
    }
    for section in A::sections(sweep) {
        if let Some(title) = &section.title {
            page.heading(2, &section.id, title);
        }
        for plot in &section.plots {
            if plot.curves.iter().all(|c| c.points.is_empty()) {
                continue;
            }
            page.figure(&chart(plot)?, &plot.title);
        }
        for paragraph in &section.notes {
            let text = paragraph
                .iter()
                .map(|l| l.trim())
                .collect::<Vec<_>>()
                .join(" · ");
            let class = if text.starts_with("warning") {
                "banner"
            } else {
                "note"
            };
            page.paragraph(class, &text);
        }
    }
    table(&mut page, sweep);
    let server = &sweep.server;
    let secs = |s: f64| humantime::format_duration(Duration::from_secs_f64(s)).to_string();
    page.heading(2, "facts", "The sweep");
    page.raw(&facts(&[
        (
            "server",
            format!(
                "{} {} · {} · auth {} · TLS {} · max_connections {}",
                server.engine_name(),
                server.version,
                if server.embedded {
                    "embedded"
                } else {
                    "external"
                },
                server.auth_method,
                if server.ssl { "on" } else { "off" },
                server.max_connections
            ),
        ),
        (
            "points",
            format!(
                "{} warm-up + {} per point · seed {}",
                secs(sweep.settings.warmup_s),
                secs(sweep.settings.duration_s),
                sweep.settings.seed,
            ),
        ),
        (
            "scenario",
            format!("{} ({})", sweep.scenario.name, sweep.scenario.path),
        ),
        (
            "build",
            format!(
                "{} {} ({} build)",
                sweep.tool.name, sweep.tool.version, sweep.tool.build
            ),
        ),
    ]));
    Ok(page.finish())
}

/// A plot of the axis as an SVG line chart, from zero on both axes.
fn chart(plot: &Plot) -> Result<String> {
    let points = || plot.curves.iter().flat_map(|c| c.points.iter());
    let right = points().map(|p| p.0).fold(0.0, f64::max);
    let top = points().map(|p| p.1).fold(0.0, f64::max);
    let lines = plot
        .curves
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut line = Line::new(&c.name, color(i * 2), c.points.clone());
            line.dashed = c.fitted;
            line.dots = !c.fitted;
            line
        })
        .collect();
    line_chart(&LineChart {
        title: plot.title.clone(),
        x: ChartAxis::linear(&plot.x, 0.0, if right > 0.0 { right } else { 1.0 }),
        y: ChartAxis::linear(&plot.y, 0.0, if top > 0.0 { top * 1.1 } else { 1.0 }),
        lines,
        rules: plot
            .marks
            .iter()
            .map(|m| Rule {
                x: m.x,
                label: m.label.clone(),
            })
            .collect(),
        height: 320,
        legend: if plot.rising {
            Legend::LowerRight
        } else {
            Legend::UpperRight
        },
    })
}

/// The points as the terminal's table shows them, each number found by
/// its column's name (`data-stat`), each row by the axis's keys.
fn table<A: Axis>(page: &mut Page, sweep: &Sweep<A>) {
    page.heading(2, "table", "Points (latencies in ms)");
    let columns = shown::<A>();
    let points = A::ordered(sweep);
    let numeric = |i: usize| {
        points
            .first()
            .is_none_or(|p| !is_text(&(columns[i].value)(sweep, p)))
    };
    let head: Vec<(&str, bool)> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| (c.heading.as_deref().unwrap_or(""), numeric(i)))
        .collect();
    let mut t = Table::new(&head);
    let mut group = None;
    for p in points {
        let keys = A::keys(p);
        let attrs: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (*k, v.as_str())).collect();
        // A rule above each new value of the first key.
        let first = keys.first().map(|k| &k.1) != group.as_ref();
        group = keys.first().map(|k| k.1.clone());
        t.row(&attrs, first);
        for c in &columns {
            let value = (c.value)(sweep, p);
            if is_text(&value) {
                t.text(&text(&value));
            } else {
                t.num(&c.name, &text(&value));
            }
        }
    }
    page.table(&t);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Kind;
    use crate::sizing::plan::tests::known_sweep;
    use crate::sizing::sweep::pool_size::analyse_all;
    use crate::sizing::sweep::rtt::{setup_cost_fits, RttPoint, RttSweep};
    use crate::sizing::sweep::tests::empty;
    use crate::sizing::sweep::Percentiles;

    #[test]
    fn a_pool_size_sweep_page_draws_each_concurrency_and_marks_the_knee() {
        let mut sweep = known_sweep(5000);
        sweep.analysis.per_concurrency = analyse_all(&sweep);
        let knee = sweep.analysis.per_concurrency[0].knee_pool_size;
        let html = render(&sweep).unwrap();
        assert_eq!(html.matches("<svg").count(), 2, "{html}");
        assert!(html.contains(&format!("knee: pool {knee}")));
        assert!(html.contains("USL fit"));
        for size in [1, 2, 4, 8] {
            assert!(
                html.contains(&format!("data-pool=\"{size}\"")),
                "pool {size}"
            );
        }
    }

    /// The number after `name="` in an SVG tag.
    fn attr(tag: &str, name: &str) -> f64 {
        let start = tag.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
        tag[start..].split('"').next().unwrap().parse().unwrap()
    }

    #[test]
    fn the_knee_label_is_never_under_the_legend() {
        // The knee at pool 8 of 1..10: far right, where an upper-right
        // legend sits.
        let mut sweep = known_sweep(5000);
        let mut last = sweep.points[sweep.points.len() - 1].clone();
        sweep.points.iter_mut().last().unwrap().throughput_rps = 8000.0;
        last.pool_size = 10;
        last.throughput_rps = 8000.0;
        sweep.points.push(last);
        sweep.settings.axis.pool_sizes.push(10);
        sweep.analysis.per_concurrency = analyse_all(&sweep);
        assert_eq!(sweep.analysis.per_concurrency[0].knee_pool_size, 8);
        let html = render(&sweep).unwrap();
        let mut checked = 0;
        for svg in html.split("<svg").skip(1) {
            let Some(label) = svg.find("knee: pool") else {
                continue;
            };
            let tag = &svg[svg[..label].rfind("<text").unwrap()..label];
            // The label's box, 13 px type about 7.5 px a character, on the
            // side its anchor says.
            let (x, y) = (attr(tag, "x"), attr(tag, "y"));
            let width = 7.5 * "knee: pool 8 ".len() as f64;
            let (left, right) = if tag.contains("text-anchor=\"end\"") {
                (x - width, x)
            } else {
                (x, x + width)
            };
            // The legend's box: the one rect filled with the page's paper.
            let legend = svg
                .split("<rect")
                .skip(1)
                .find(|r| r[..r.find("/>").unwrap()].contains("#FFFFFE"))
                .unwrap();
            let (lx, ly) = (attr(legend, "x"), attr(legend, "y"));
            let (w, h) = (attr(legend, "width"), attr(legend, "height"));
            let apart = right < lx || left > lx + w || y + 16.0 < ly || y - 16.0 > ly + h;
            assert!(
                apart,
                "knee label {left}..{right} at y {y} under the legend at ({lx}, {ly}) {w}×{h}"
            );
            assert!(
                right <= 880.0 && left >= 0.0,
                "the label runs off the chart"
            );
            checked += 1;
        }
        assert_eq!(checked, 2, "both charts mark the knee");
    }

    #[test]
    fn an_rtt_sweep_page_draws_the_setup_cost_and_its_fit() {
        let mut sweep: RttSweep = empty(serde_json::json!({
            "rtts_ms": [0.0, 10.0], "jitter_ms": 0.0, "concurrency": 1,
            "duration_s": 1.0, "warmup_s": 0.0, "seed": 1,
        }));
        sweep.interrupted = true;
        for rtt in [0.0, 10.0] {
            for (name, kind, p50_ms) in [
                ("per-request", Kind::Fresh, 10.0 + 8.0 * rtt),
                ("pool-2", Kind::Pool, 0.1 + rtt),
            ] {
                sweep.points.push(RttPoint {
                    rtt_ms: rtt,
                    strategy: name.into(),
                    kind,
                    requests: 10,
                    errors: 0,
                    throughput_rps: 1000.0 / p50_ms,
                    total: Percentiles {
                        p50_us: (p50_ms * 1000.0) as u64,
                        ..Percentiles::default()
                    },
                    connect: None,
                    connect_round_trips: Some(7),
                    request_round_trips: Some(1),
                });
            }
        }
        sweep.analysis.fits = setup_cost_fits(&sweep.points);
        let html = render(&sweep).unwrap();
        assert_eq!(html.matches("<svg").count(), 3, "{html}");
        assert!(html.contains("id=\"interrupted\""));
        assert!(html.contains("per-request against pool-2: setup cost = 9.9 ms + 7 × RTT"));
        assert_eq!(html.matches("data-rtt=\"10\"").count(), 2, "{html}");
    }
}
