//! `compare --format html`: the comparison as a page — the summary, each
//! change drawn with its confidence interval against its threshold, the
//! table the terminal prints, and how the verdicts were reached.

use anyhow::Result;

use super::charts::{color, interval_chart, IntervalChart, IntervalRow, Rgb};
use super::page::{escape, facts, Page, Table};
use crate::compare::{Diff, Verdict};
use crate::view::term::compare::{rows, HEADINGS};

fn verdict_color(v: Verdict) -> Rgb {
    match v {
        Verdict::Regression => color(4),
        Verdict::Improvement => color(0),
        Verdict::WithinNoise => color(1),
        Verdict::Ok | Verdict::Info | Verdict::NotComparable => color(6),
    }
}

pub fn render(diff: &Diff) -> Result<String> {
    let mut page = Page::new(&format!("poolbench compare · {}", diff.candidate.scenario));
    page.raw(&format!(
        "<h1>poolbench compare: {}</h1>\n",
        escape(&diff.candidate.scenario)
    ));
    let class = if diff.regression {
        "headline verdict-regression"
    } else {
        "headline"
    };
    page.paragraph(class, &diff.summary);
    let differences = diff.difference_lines();
    if !differences.is_empty() {
        page.paragraph(
            "banner",
            &format!(
                "Compared although the run conditions differ (--allow-different): {}",
                differences.join("; ")
            ),
        );
    }
    page.raw(&facts(&[
        ("baseline", diff.baseline_text()),
        ("candidate", diff.candidate_text()),
    ]));

    let mut chart_rows = Vec::new();
    for s in &diff.strategies {
        for m in &s.metrics {
            let Some(change) = m.change.filter(|c| c.is_finite()) else {
                continue;
            };
            chart_rows.push(IntervalRow {
                label: format!("{} {}", s.name, m.metric.label_short()),
                estimate: change,
                interval: m.ci_low.zip(m.ci_high),
                limit: m.threshold,
                color: verdict_color(m.verdict),
            });
        }
    }
    page.heading(2, "changes", "Changes");
    if chart_rows.is_empty() {
        page.paragraph("note", "Nothing to compare.");
    } else {
        let legend = [
            Verdict::Regression,
            Verdict::Improvement,
            Verdict::WithinNoise,
            Verdict::Ok,
        ]
        .into_iter()
        .map(|v| {
            let name = match v {
                // Its grey is info's and n/a's too.
                Verdict::Ok => "ok, info (no threshold)".to_string(),
                v => v.as_str().to_string(),
            };
            (name, verdict_color(v))
        })
        .collect();
        let svg = interval_chart(&IntervalChart {
            title: "Change of each metric, candidate against baseline".into(),
            x_label: "change, candidate vs baseline (%; error rate in points; symmetric log scale)"
                .into(),
            rows: chart_rows,
            legend,
        })?;
        page.figure(
            &svg,
            "Dots: the change, coloured by verdict; bars: its 95% confidence interval over the \
             rounds (when both reports have enough rounds); black ticks: the threshold in the \
             worse direction (a regression is an interval wholly beyond it). Latency and error \
             rate are worse to the right, throughput to the left. The scale is symmetric-log, \
             so a change of a few percent and one of hundreds read on one chart.",
        );
    }

    page.heading(2, "table", "Table");
    let head: Vec<(&str, bool)> = HEADINGS
        .iter()
        .enumerate()
        .map(|(i, h)| (*h, i >= 3))
        .collect();
    let mut t = Table::new(&head);
    let mut metrics = diff.strategies.iter().flat_map(|s| {
        s.metrics
            .iter()
            .enumerate()
            .map(move |(i, m)| (s.name.as_str(), i == 0, m))
    });
    for cells in rows(diff) {
        let Some((strategy, first, m)) = metrics.next() else {
            break;
        };
        t.row(
            &[("strategy", strategy), ("metric", m.metric.as_str())],
            first,
        );
        for (i, cell) in cells.iter().enumerate() {
            match i {
                2 => t.html(format!(
                    "<span class=\"verdict-{}\">{}</span>",
                    m.verdict.as_str().replace(' ', "-"),
                    escape(cell)
                )),
                0..=2 => t.text(cell),
                _ => t.num(HEADINGS[i], cell),
            };
        }
    }
    page.table(&t);
    for line in diff.only_in(&crate::compare::Markup::PLAIN) {
        page.paragraph("note", &line);
    }
    for w in &diff.warnings {
        page.paragraph("banner", &format!("warning: {w}"));
    }
    for line in diff.power_lines(&crate::compare::Markup::PLAIN) {
        page.paragraph("note", &line);
    }
    page.paragraph("note", &diff.test);
    Ok(page.finish())
}
