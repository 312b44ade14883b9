//! report.html: a run's report as a page — the headline and the run's
//! facts, where a request's time goes, the latency percentile spectra, the
//! timeline of each strategy, the errors, and the terminal's tables. A pure
//! function of the report model; histograms are decoded from their `hdr`.

use std::collections::BTreeMap;

use anyhow::Result;
use hdrhistogram::Histogram;
use serde_json::Value;

use super::charts::{
    self, bar_chart, color, line_chart, percentile_x, Axis, Bar, BarChart, Legend, Line, LineChart,
    Rule,
};
use super::page::{cards, escape, facts, Page, Table};
use crate::metrics::{decode_histogram, Phase, Summary};
use crate::report::format::{ms, plural, rps, thousands, trimmed};
use crate::report::{Comparison, Kind, Report, StrategyReport};
use crate::view::term::run::{counts_note, cpu_words, startup, verdict};

pub fn render(report: &Report) -> Result<String> {
    let mut page = Page::new(&format!("poolbench · {}", report.scenario.name));
    page.raw(&format!(
        "<h1>poolbench: {}</h1>\n<p class=\"sub\">{} · {} {}</p>\n",
        escape(&report.scenario.name),
        escape(&report.started_at),
        plural(report.strategies.len(), "strategy", "strategies"),
        escape(&description(report)),
    ));
    page.raw(
        "<nav><a href=\"#time\">where time goes</a><a href=\"#spectrum\">latency</a>\
         <a href=\"#timeline\">timeline</a><a href=\"#errors\">errors</a>\
         <a href=\"#tables\">tables</a><a href=\"#facts\">facts</a></nav>\n",
    );
    if report.interrupted {
        page.raw(
            "<p class=\"banner bad\" id=\"interrupted\">Interrupted: the run was cut short \
             (Ctrl-C or SIGTERM). This report holds what was measured until then.</p>\n",
        );
    }
    if report.tool.build == "debug" {
        page.raw(
            "<p class=\"banner\">Measured with a debug build: connection setup (SCRAM) is \
             several times slower than in a release build.</p>\n",
        );
    }
    copies(&mut page, report);
    headline(&mut page, report);
    time_goes(&mut page, report)?;
    spectra(&mut page, report)?;
    timelines(&mut page, report)?;
    errors(&mut page, report);
    tables(&mut page, report);
    run_facts(&mut page, report);
    page.raw(&format!(
        "<p class=\"note\">Written by {} {} from report.json beside this file; \
         the raw latencies are in hlog/ (HdrHistogram interval logs, microseconds).</p>\n",
        escape(&report.tool.name),
        escape(&report.tool.version)
    ));
    Ok(page.finish())
}

fn description(report: &Report) -> String {
    match report
        .scenario
        .resolved
        .get("description")
        .and_then(Value::as_str)
    {
        Some(d) if !d.is_empty() => format!("· {d}"),
        _ => String::new(),
    }
}

/// The comparison the terminal's headline states: the first fresh strategy
/// against the pool with the highest throughput.
fn headline_comparison(report: &Report) -> Option<&Comparison> {
    let best_pool = Comparison::best_pool(&report.strategies)?;
    report.comparison.iter().find(|c| c.pool == best_pool.name)
}

fn headline(page: &mut Page, report: &Report) {
    if let Some(why) = report.not_comparable() {
        page.paragraph("headline", &why);
        return;
    }
    // A watched application has no strategies to compare: its verdict.
    let watched = crate::view::term::watch::verdict(report);
    let mut lines = watched.lines();
    if let Some(first) = lines.next() {
        page.paragraph("headline", first);
        for line in lines {
            page.paragraph("note", line);
        }
        return;
    }
    let Some(c) = headline_comparison(report) else {
        page.paragraph(
            "headline",
            "No comparison: it needs a fresh and a pool strategy that both completed requests.",
        );
        return;
    };
    page.paragraph("headline", &verdict(c));
    let added = c.setup_cost_p50_us as f64 / 1000.0;
    let change = (c.throughput_ratio - 1.0) * 100.0;
    page.raw(&cards(&[
        (
            format!("{added:+.1} ms"),
            format!("per request at p50: {} against {}", c.fresh, c.pool),
        ),
        (
            format!("{:.1}x", c.p50_ratio),
            "p50 latency, fresh / pool".into(),
        ),
        (
            format!("{:.1}x", c.p99_ratio),
            "p99 latency, fresh / pool".into(),
        ),
        (
            format!("{change:+.1}%"),
            format!("throughput of {} against {}", c.fresh, c.pool),
        ),
    ]));
}

/// The report's phases in the order of `Phase::ALL`, then any other name.
fn phases_in_order(s: &StrategyReport) -> Vec<(&str, &Summary)> {
    let known: Vec<&str> = Phase::ALL.iter().map(|p| p.as_str()).collect();
    let mut out: Vec<(&str, &Summary)> = known
        .iter()
        .filter_map(|name| s.phases.get_key_value(*name))
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    out.extend(
        s.phases
            .iter()
            .filter(|(k, _)| !known.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v)),
    );
    out
}

/// The phases a request's `total` is made of, one after another: every
/// phase of a request but `total` itself and the steps of another phase
/// (tcp, tls and startup are inside connect).
fn is_part_of_total(phase: &str) -> bool {
    Phase::ALL.iter().any(|p| {
        *p != Phase::Total && p.within().is_none() && p.of_request() && p.as_str() == phase
    })
}

/// How a phase is drawn, the same on every chart: its colour, and whether
/// dashed. No two phases look alike: a connection's `tcp`, `tls` and
/// `startup` (drawn beside the `connect` they make up) are dashed, each in
/// a colour of its own (`startup`, most of a connect, in connect's), as
/// are open loop's `service` (in query's) and the `total`.
/// A grey as dark as the palette's colours, for the phases beyond its pairs.
const SLATE: charts::Rgb = plotters::style::RGBColor(0x66, 0x66, 0x66);

fn phase_style(phase: &str) -> (charts::Rgb, bool) {
    let p = charts::PALETTE;
    match phase {
        "connect" => (p[4], false),
        "tcp" => (p[5], true),
        "tls" => (p[3], true),
        "startup" => (p[4], true),
        "acquire" => (p[2], false),
        // The parts of acquire dashed, as connect's are.
        "wait" => (p[2], true),
        "open" => (p[1], true),
        "check" => (p[3], false),
        "query" => (p[0], false),
        "close" => (p[1], false),
        "reset" => (p[5], false),
        "queue" => (p[6], false),
        "service" => (p[0], true),
        "total" => (charts::INK, true),
        "lag" => (p[6], true),
        // `watch`'s, per connection: the palette's pairs are all taken.
        "idle" => (charts::INK, false),
        "lifetime" => (SLATE, true),
        _ => (SLATE, false),
    }
}

fn phase_color(phase: &str) -> charts::Rgb {
    phase_style(phase).0
}

fn time_goes(page: &mut Page, report: &Report) -> Result<()> {
    page.heading(2, "time", "Where a request's time goes");
    // Every strategy's parts, in the order of `Phase::ALL`.
    let mut parts: Vec<String> = Vec::new();
    for s in &report.strategies {
        for (name, _) in phases_in_order(s) {
            if is_part_of_total(name) && !parts.iter().any(|p| p == name) {
                parts.push(name.to_string());
            }
        }
    }
    let rank = |p: &String| Phase::ALL.iter().position(|k| k.as_str() == p);
    parts.sort_by_key(rank);
    let mut bars = Vec::new();
    // A watched application's setup and statements are not laid end to
    // end in its transactions (a pooled one connects once for many).
    let laid_end_to_end = |s: &&StrategyReport| match s.kind {
        Kind::Fresh | Kind::Pool => true,
        Kind::Observed => false,
    };
    for s in report.strategies.iter().filter(laid_end_to_end) {
        let Some(total) = s.total().filter(|t| t.count > 0) else {
            continue;
        };
        let stat = |f: fn(&Summary) -> f64, label: &str, total_value: f64| {
            let segments: Vec<(usize, f64)> = parts
                .iter()
                .enumerate()
                .filter_map(|(i, p)| s.phases.get(p).map(|sum| (i, f(sum) / 1000.0)))
                .collect();
            Bar {
                label: format!("{} {label}", s.name),
                segments,
                note: format!("total {label} {} ms", ms(total_value)),
            }
        };
        bars.push(stat(|p| p.mean_us, "mean", total.mean_us));
        bars.push(stat(|p| p.p99_us as f64, "p99", total.p99_us as f64));
    }
    if bars.is_empty() {
        let why = if report.strategies.iter().any(|s| !laid_end_to_end(&s)) {
            "A watched application's transactions are not its phases laid end to end (a pooled \
             one opens a connection for many): its verdict is above, each phase's percentiles below."
        } else {
            "No strategy completed a request."
        };
        page.paragraph("note", why);
        return Ok(());
    }
    let svg = bar_chart(&BarChart {
        title: "Where a request's time goes, per strategy: phases stacked, mean and p99".into(),
        x_label: "milliseconds".into(),
        parts: parts.iter().map(|p| (p.clone(), phase_color(p))).collect(),
        bars,
    })?;
    page.figure(
        &svg,
        "Each bar lays a strategy's phases end to end. Means add up to the mean total; \
         the p99 bar stacks each phase's own p99 (the slowest requests of one phase are not \
         always those of another), so its length is an upper bound of the total's p99 \
         written after it.",
    );
    for e in &report.explanation {
        if let Some(cpu) = &e.cpu {
            page.paragraph(
                "cpu",
                &format!(
                    "{}'s connect, {} ms (means per connection), in CPU: {}.",
                    e.strategy,
                    ms(e.connect_ms * 1000.0),
                    cpu_words(cpu)
                ),
            );
        }
    }
    Ok(())
}

/// (x on the percentile axis, latency in ms) from the histogram's
/// percentile iteration, as HdrHistogram's percentile output lists it.
fn spectrum(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    h.iter_quantiles(5)
        .map(|v| {
            (
                percentile_x(v.quantile_iterated_to()),
                v.value_iterated_to() as f64 / 1000.0,
            )
        })
        .collect()
}

/// A latency axis: logarithmic when the lines span more than 20x.
fn latency_axis(lines: &[Line]) -> Axis {
    let ys = lines.iter().flat_map(|l| l.points.iter().map(|p| p.1));
    let (lo, hi) = ys.fold((f64::INFINITY, 0.0f64), |(lo, hi), y| {
        (lo.min(y), hi.max(y))
    });
    if lo.is_finite() && lo > 0.0 && hi / lo > 20.0 {
        Axis::log("latency (ms, log scale)", lo, hi)
    } else {
        Axis::linear("latency (ms)", 0.0, hi.max(0.001) * 1.05)
    }
}

fn decode(summary: &Summary) -> Option<Histogram<u64>> {
    decode_histogram(&summary.hdr).ok()
}

fn spectra(page: &mut Page, report: &Report) -> Result<()> {
    page.heading(2, "spectrum", "Latency percentile spectrum");
    page.paragraph(
        "note",
        "Read left to right: the latency a request stays under at each percentile. The \
         percentile axis is logarithmic in 1/(1−q), as HdrHistogram plots it, so 90%, 99%, \
         99.9% and 99.99% are equally spaced and the tail gets room.",
    );
    let lines: Vec<Line> = report
        .strategies
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let h = decode(s.total()?)?;
            Some(Line::new(s.name.clone(), color(i), spectrum(&h)))
        })
        .filter(|l| !l.points.is_empty())
        .collect();
    if lines.is_empty() {
        page.paragraph("note", "No latency was recorded.");
        return Ok(());
    }
    let svg = line_chart(&LineChart {
        title: "Total latency by percentile, every strategy".into(),
        x: Axis::percentile(),
        y: latency_axis(&lines),
        lines,
        rules: Vec::new(),
        height: 380,
        legend: Legend::UpperLeft,
    })?;
    page.figure(
        &svg,
        "total: what the application sees, start to finish, per strategy",
    );

    for s in &report.strategies {
        let lines: Vec<Line> = phases_in_order(s)
            .into_iter()
            .filter_map(|(name, summary)| {
                let h = decode(summary)?;
                let (color, dashed) = phase_style(name);
                let mut line = Line::new(name, color, spectrum(&h));
                line.dashed = dashed;
                Some(line)
            })
            .filter(|l| !l.points.is_empty())
            .collect();
        if lines.is_empty() {
            continue;
        }
        page.heading(3, &format!("spectrum-{}", s.name), &s.name);
        let svg = line_chart(&LineChart {
            title: format!("{}: latency of each phase by percentile", s.name),
            x: Axis::percentile(),
            y: latency_axis(&lines),
            lines,
            rules: Vec::new(),
            height: 340,
            legend: Legend::UpperLeft,
        })?;
        page.figure(
            &svg,
            &format!(
                "{} ({}): each phase's latency by percentile",
                s.name, s.kind
            ),
        );
    }
    Ok(())
}

fn timelines(page: &mut Page, report: &Report) -> Result<()> {
    page.heading(2, "timeline", "Timeline");
    let counted = if report.server.engine == "postgresql" {
        "pg_stat_activity"
    } else {
        "Threads_connected"
    };
    page.paragraph(
        "note",
        &format!(
            "Once a second during the measured window: completed requests and errors, latency \
             percentiles of that second, and connections — the pool's, and the server's client \
             backends ({counted}, poolbench's monitor excluded)."
        ),
    );
    let mut any = false;
    for s in &report.strategies {
        if s.timeline.is_empty() {
            continue;
        }
        any = true;
        page.heading(3, &format!("timeline-{}", s.name), &s.name);
        // Rounds follow one another on the time axis.
        let mut offsets: BTreeMap<u32, f64> = BTreeMap::new();
        let mut next = 0.0;
        let mut lengths: BTreeMap<u32, u64> = BTreeMap::new();
        for row in &s.timeline {
            let len = lengths.entry(row.round).or_insert(0);
            *len = (*len).max(row.second + 1);
        }
        for (round, len) in &lengths {
            offsets.insert(*round, next);
            next += *len as f64;
        }
        let x_of =
            |round: u32, second: u64| offsets.get(&round).copied().unwrap_or(0.0) + second as f64;
        let rules: Vec<Rule> = if offsets.len() > 1 {
            offsets
                .iter()
                .map(|(r, x)| Rule {
                    x: *x,
                    label: format!("round {r}"),
                })
                .collect()
        } else {
            Vec::new()
        };
        let x_axis = Axis::linear("seconds into the measured window", 0.0, next.max(1.0));
        let series = |f: &dyn Fn(&crate::report::TimelineRow) -> Option<f64>| -> Vec<(f64, f64)> {
            s.timeline
                .iter()
                .filter_map(|r| f(r).map(|v| (x_of(r.round, r.second), v)))
                .collect()
        };

        // The three charts share the time axis, the round marks and a size.
        let mut figure = |title: String,
                          y: Axis,
                          lines,
                          legend,
                          caption: String,
                          marks: &[Rule]|
         -> Result<()> {
            let chart = LineChart {
                title,
                x: x_axis.clone(),
                y,
                lines,
                rules: rules.iter().chain(marks).cloned().collect(),
                height: 240,
                legend,
            };
            page.figure(&line_chart(&chart)?, &caption);
            Ok(())
        };

        let throughput = vec![
            Line::new("requests/s", color(0), series(&|r| Some(r.rps))),
            Line::new("errors/s", color(4), series(&|r| Some(r.errors as f64))),
        ];
        figure(
            format!("{}: throughput and errors per second", s.name),
            Axis::linear("per second", 0.0, max_y(&throughput) * 1.1),
            throughput,
            Legend::LowerRight,
            format!("{}: requests completed and failed, per second", s.name),
            &[],
        )?;

        // Storms, marked at their second on the latency chart.
        let storms: Vec<Rule> = s
            .storms
            .iter()
            .map(|st| Rule {
                x: x_of(st.round, st.second),
                label: format!("storm: {} replaced", st.replaced),
            })
            .collect();
        let latency = vec![
            Line::new(
                "p50",
                color(0),
                series(&|r| r.p50_us.map(|v| v as f64 / 1000.0)),
            ),
            Line::new(
                "p99",
                color(4),
                series(&|r| r.p99_us.map(|v| v as f64 / 1000.0)),
            ),
        ];
        figure(
            format!("{}: total latency p50 and p99 per second", s.name),
            Axis::linear("latency (ms)", 0.0, max_y(&latency) * 1.1),
            latency,
            Legend::UpperRight,
            if s.storms.is_empty() {
                format!("{}: total latency of the requests of each second", s.name)
            } else {
                format!(
                    "{}: total latency of the requests of each second; each storm (a second \
                     in which the pool replaced more than a third of its connections) is marked",
                    s.name
                )
            },
            &storms,
        )?;

        let connections: Vec<Line> = [
            (
                "pool size",
                0,
                (|r| r.pool_size) as fn(&crate::report::TimelineRow) -> Option<u64>,
            ),
            ("pool available", 2, |r| r.pool_available),
            ("pool waiting", 4, |r| r.pool_waiting),
            ("server backends", 3, |r| r.server_backends),
            // Open loop: requests being served, and arrivals waiting.
            ("in flight", 1, |r| r.in_flight),
            ("queued", 5, |r| r.queued),
            // A pool's connections opened and closed in the second.
            ("opened", 6, |r| r.churn.opened),
            ("closed", 7, |r| r.churn.closed),
        ]
        .into_iter()
        .map(|(name, c, f)| Line::new(name, color(c), series(&|r| f(r).map(|v| v as f64))))
        .filter(|l| !l.points.is_empty())
        .collect();
        if !connections.is_empty() {
            let caption = connections_caption(s, &connections);
            figure(
                format!("{}: connections per second", s.name),
                Axis::linear("connections", 0.0, (max_y(&connections) * 1.1).max(1.0)),
                connections,
                Legend::UpperRight,
                caption,
                &[],
            )?;
        }
    }
    if !any {
        page.paragraph("note", "No timeline was recorded.");
    }
    Ok(())
}

/// What the connections chart of a strategy shows, from the lines drawn (a
/// fresh strategy has no pool, a closed loop no queue).
fn connections_caption(s: &StrategyReport, lines: &[Line]) -> String {
    let has = |name: &str| lines.iter().any(|l| l.name == name);
    let mut parts = Vec::new();
    if has("pool size") {
        parts.push(
            "the pool's connections (open; available: idle and promised to no request) and \
             the requests waiting for one"
                .to_string(),
        );
    }
    if has("server backends") {
        parts.push("the server's client backends".into());
    }
    if has("in flight") {
        parts.push("requests in service and arrivals queued for a handler".into());
    }
    if has("opened") {
        parts.push("the connections the pool opened and closed in the second".into());
    }
    format!("{}: {}", s.name, parts.join("; "))
}

fn max_y(lines: &[Line]) -> f64 {
    lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .fold(0.0, f64::max)
        .max(1.0)
}

fn errors(page: &mut Page, report: &Report) {
    page.heading(2, "errors", "Errors");
    if report.strategies.iter().all(|s| s.errors.is_empty()) {
        page.paragraph("note", "No request failed.");
        return;
    }
    let mut t = Table::new(&[
        ("strategy", false),
        ("class", false),
        ("count", true),
        ("share", true),
        ("sample messages", false),
    ])
    .with_id("errors-table");
    for s in &report.strategies {
        let all = s.requests + s.error_count();
        for (i, (class, count)) in s.errors.iter().enumerate() {
            let samples: String = s
                .error_samples
                .get(class)
                .map(|m| {
                    m.iter()
                        .map(|m| format!("<li>{}</li>", escape(m)))
                        .collect::<String>()
                })
                .unwrap_or_default();
            t.row(&[("strategy", &s.name), ("class", class)], i == 0)
                .text(if i == 0 { &s.name } else { "" })
                .html(format!("<code>{}</code>", escape(class)))
                .num("count", &thousands(*count))
                .num(
                    "share",
                    &format!("{:.2}%", *count as f64 / all.max(1) as f64 * 100.0),
                )
                .html(format!("<ul class=\"samples\">{samples}</ul>"));
        }
    }
    page.table(&t);
}

fn settings_text(s: &StrategyReport) -> String {
    match &s.settings {
        Value::Object(map) => map
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| match v {
                Value::String(text) => format!("{k} {text}"),
                other => format!("{k} {other}"),
            })
            .collect::<Vec<_>>()
            .join(", "),
        _ => String::new(),
    }
}

fn tables(page: &mut Page, report: &Report) {
    page.heading(2, "tables", "Tables");
    let mut t = Table::new(&[
        ("strategy", false),
        ("kind", false),
        ("requests", true),
        ("req/s", true),
        ("errors", true),
        ("connections", true),
        ("pool fill", true),
        ("settings", false),
    ])
    .with_id("strategies-table");
    for s in &report.strategies {
        t.row(&[("strategy", &s.name)], false)
            .text(&s.name)
            .text(s.kind.as_str())
            .num("requests", &thousands(s.requests))
            .num("throughput_rps", &rps(s.throughput_rps))
            .num("errors", &thousands(s.error_count()))
            .num("connections_opened", &thousands(s.connections_opened))
            .num("startup_ms", &startup(s))
            .text(&settings_text(s));
    }
    page.table(&t);
    if let Some(note) = counts_note(report) {
        page.paragraph("note", &format!("{}.", capitalised(note)));
    }

    page.heading(3, "latency-table", "Latency of each phase (ms)");
    let phases = report
        .strategies
        .iter()
        .map(|s| (s.name.as_str(), phases_in_order(s)));
    page.table(&latency_table("phase", phases));

    if report.strategies.iter().any(|s| s.per_query.len() > 1) {
        page.heading(3, "query-table", "Total latency of each query (ms)");
        let queries = report.strategies.iter().map(|s| {
            let rows = s.per_query.iter().map(|(q, p)| (q.as_str(), p)).collect();
            (s.name.as_str(), rows)
        });
        page.table(&latency_table("query", queries));
    }

    if report.strategies.iter().any(|s| s.rounds.len() > 1) {
        page.heading(3, "rounds-table", "Rounds");
        let mut t = Table::new(&[
            ("strategy", false),
            ("round", true),
            ("requests", true),
            ("errors", true),
            ("req/s", true),
            ("p50 (ms)", true),
            ("p99 (ms)", true),
        ]);
        for s in &report.strategies {
            for (i, r) in s.rounds.iter().enumerate() {
                t.row(&[("strategy", &s.name)], i == 0)
                    .text(if i == 0 { &s.name } else { "" })
                    .num("round", &r.round.to_string())
                    .num("requests", &thousands(r.requests))
                    .num("errors", &thousands(r.errors))
                    .num("throughput_rps", &rps(r.throughput_rps))
                    .num("p50_us", &ms(r.p50_us as f64))
                    .num("p99_us", &ms(r.p99_us as f64));
            }
        }
        page.table(&t);
    }
}

/// A row of a latency table, each number keyed by its report.json field.
/// Latencies in ms, a row per (strategy, phase or query): `what` is the
/// second column's heading ("phase" or "query").
fn latency_table<'a>(
    what: &str,
    strategies: impl Iterator<Item = (&'a str, Vec<(&'a str, &'a Summary)>)>,
) -> Table {
    let mut t = Table::new(&[
        ("strategy", false),
        (what, false),
        ("count", true),
        ("mean", true),
        ("p50", true),
        ("p90", true),
        ("p99", true),
        ("p99.9", true),
        ("max", true),
    ]);
    for (strategy, rows) in strategies {
        for (i, (name, p)) in rows.into_iter().enumerate() {
            let first = i == 0;
            t.row(&[("strategy", strategy), ("phase", name)], first)
                .text(if first { strategy } else { "" })
                .text(name)
                .num("count", &thousands(p.count))
                .num("mean_us", &ms(p.mean_us))
                .num("p50_us", &ms(p.p50_us as f64))
                .num("p90_us", &ms(p.p90_us as f64))
                .num("p99_us", &ms(p.p99_us as f64))
                .num("p999_us", &ms(p.p999_us as f64))
                .num("max_us", &ms(p.max_us as f64));
        }
    }
    t
}

/// A field of the resolved scenario, e.g. `["run", "concurrency"]`.
fn resolved<'a>(report: &'a Report, path: &[&str]) -> Option<&'a Value> {
    path.iter()
        .try_fold(&report.scenario.resolved, |v, key| v.get(*key))
        .filter(|v| !v.is_null())
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The sentence with its first letter in capitals.
fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// A wall-clock instant in milliseconds since the epoch, RFC 3339 UTC.
fn unix_ms(ms: u64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(at).to_string()
}

/// A merged report says so first: how many copies, their measured windows
/// and clock offsets, each copy in a row; a copy's own report says which
/// copy it is.
fn copies(page: &mut Page, report: &Report) {
    let c = &report.copies;
    let inputs = &c.inputs;
    if inputs.is_empty() {
        if let Some(index) = c.instance_index {
            let mut line = format!("Copy {index} of a synchronised run");
            if let Some(at) = &c.start_at {
                line.push_str(&format!(", started at {at}"));
            }
            if let Some(offset) = c.clock_offset_ms {
                line.push_str(&format!(
                    "; clock offset (the server's clock minus this machine's) {} ms",
                    trimmed(offset, 1)
                ));
            }
            page.paragraph("banner", &format!("{line}."));
        }
        return;
    }
    let recorded: Vec<&crate::report::MergedInput> = inputs
        .iter()
        .filter(|i| i.window_start_unix_ms > 0)
        .collect();
    let window = match (
        recorded.iter().map(|i| i.window_start_unix_ms).min(),
        recorded.iter().map(|i| i.window_end_unix_ms).max(),
    ) {
        (Some(a), Some(b)) => format!(", measured from {} to {}", unix_ms(a), unix_ms(b)),
        _ => String::new(),
    };
    let offsets: Vec<f64> = inputs.iter().filter_map(|i| i.clock_offset_ms).collect();
    let spread = match (
        offsets.iter().copied().reduce(f64::min),
        offsets.iter().copied().reduce(f64::max),
    ) {
        (Some(lo), Some(hi)) => format!(
            "; clock offsets (the server's clock minus each copy's) {} to {} ms",
            trimmed(lo, 1),
            trimmed(hi, 1)
        ),
        _ => String::new(),
    };
    page.raw(&format!(
        "<p class=\"banner\" id=\"merged\">{}</p>\n",
        escape(&format!(
            "Merged: the reports of {}{window}{spread}. Every number below is of them all.",
            plural(inputs.len(), "copy", "copies")
        ))
    ));
    let mut t = Table::new(&[
        ("copy", false),
        ("host", false),
        ("report", false),
        ("window (UTC)", false),
        ("clock offset (ms)", true),
        ("requests", true),
    ])
    .with_id("copies-table");
    for i in inputs {
        let index = i.instance_index.map_or("-".into(), |n| n.to_string());
        let window = if i.window_start_unix_ms > 0 {
            format!(
                "{} – {}",
                unix_ms(i.window_start_unix_ms),
                unix_ms(i.window_end_unix_ms)
            )
        } else {
            "not recorded".into()
        };
        let requests: u64 = i.strategies.iter().map(|s| s.requests).sum();
        t.row(&[("copy", &index)], false)
            .text(&index)
            .text(i.host.name.as_deref().unwrap_or("-"))
            .text(&i.path)
            .text(&window)
            .num(
                "clock_offset_ms",
                &i.clock_offset_ms.map_or("-".into(), |o| trimmed(o, 1)),
            )
            .num("requests", &thousands(requests));
    }
    page.table(&t);
}

fn run_facts(page: &mut Page, report: &Report) {
    page.heading(2, "facts", "The run");
    let server = &report.server;
    let text = |path: &[&str]| resolved(report, path).map(value_text);
    let mut workload = Vec::new();
    if let Some(c) = resolved(report, &["run", "concurrency"]).and_then(Value::as_u64) {
        // A merged report ran the scenario's workers in each copy.
        workload.push(match report.copies.inputs.len() {
            0 | 1 => plural(c as usize, "worker", "workers"),
            n => format!(
                "{} in all: {} in each of {n} copies",
                plural((c as usize) * n, "worker", "workers"),
                thousands(c)
            ),
        });
    }
    if let (Some(w), Some(d)) = (text(&["run", "warmup"]), text(&["run", "duration"])) {
        workload.push(format!("{w} warm-up + {d} per strategy"));
    }
    if let Some(r) = text(&["run", "rounds"]).filter(|r| r != "1") {
        workload.push(format!("{r} rounds, interleaved"));
    }
    if let Some(s) = text(&["run", "seed"]) {
        workload.push(format!("seed {s}"));
    }
    let queries: Vec<String> = resolved(report, &["queries"])
        .and_then(Value::as_array)
        .map(|qs| {
            qs.iter()
                .map(|q| {
                    format!(
                        "{} (weight {})",
                        q.get("name").map(value_text).unwrap_or_default(),
                        q.get("weight").map(value_text).unwrap_or_default()
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let network = resolved(report, &["network"])
        .map(value_text)
        .unwrap_or_else(|| "no emulated delay (the machine's own network)".into());
    let mut items = vec![
        (
            "server",
            format!(
                "{} {} · {}",
                server.engine_name(),
                server.version,
                if server.embedded {
                    "embedded (started by poolbench)"
                } else {
                    "external"
                }
            ),
        ),
        ("target", server.dsn.clone()),
        ("auth", server.auth_method.clone()),
        ("TLS", if server.ssl { "on" } else { "off" }.to_string()),
        ("max_connections", server.max_connections.to_string()),
        ("network", network),
        ("workload", workload.join(" · ")),
    ];
    if !queries.is_empty() {
        items.push(("queries", queries.join(", ")));
    }
    items.extend([
        (
            "scenario",
            format!(
                "{} ({}, sha256 {})",
                report.scenario.name,
                report.scenario.path,
                report
                    .scenario
                    .sha256
                    .get(..12)
                    .unwrap_or(&report.scenario.sha256)
            ),
        ),
        ("started", report.started_at.clone()),
        (
            "build",
            format!(
                "{} {} ({} build)",
                report.tool.name, report.tool.version, report.tool.build
            ),
        ),
        (
            "host",
            format!(
                "{} · {} · {}",
                plural(report.host.cpus, "CPU", "CPUs"),
                report.host.os,
                report.host.arch
            ),
        ),
    ]);
    page.raw(&facts(&items));
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn baseline() -> Report {
        let text = include_str!("../../../../results/baseline/report.json");
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn a_real_report_renders_every_section() {
        let report = baseline();
        let html = render(&report).unwrap();
        for id in ["time", "spectrum", "timeline", "errors", "tables", "facts"] {
            assert!(html.contains(&format!("id=\"{id}\"")), "section {id}");
        }
        let headline = crate::view::term::run::headline(&report).unwrap();
        assert!(html.contains(&escape(&headline)), "{headline}");
        // The total chart, a phase chart per strategy, the bars, and three
        // timeline charts per strategy.
        assert!(html.matches("<svg").count() >= 1 + 2 + 1 + 2 * 2);
        let pool = &report.strategies[1];
        let p99 = ms(pool.phases["total"].p99_us as f64);
        assert!(html.contains(&format!("data-stat=\"p99_us\">{p99}<")));
        assert!(!html.contains("id=\"interrupted\""));
        assert!(!html.contains("<script"));
        // The per-request strategy has no pool to speak of.
        assert!(html.contains("per-request: the server&#39;s client backends<"));
        assert!(!html.contains("per-request: the pool"));
        // Its fresh strategy opened more connections than it measured.
        assert!(html.contains("Connections: every one opened, warm-up and pool fill included"));
        assert!(html.contains("pool-8: the pool&#39;s connections"));
    }

    #[test]
    fn a_merged_report_names_its_copies_and_every_worker() {
        let mut report = baseline();
        let workers = report.scenario.resolved["run"]["concurrency"]
            .as_u64()
            .unwrap();
        let input = |index: u32, start: u64, offset: f64| crate::report::MergedInput {
            path: format!("copy-{index}/report.json"),
            host: crate::report::Host {
                name: Some(format!("pod-{index}")),
                cpus: 2,
                os: "linux".into(),
                arch: "x86_64".into(),
            },
            instance_index: Some(index),
            started_at: report.started_at.clone(),
            start_at: Some("2026-11-22T10:00:00Z".into()),
            clock_offset_ms: Some(offset),
            interrupted: false,
            window_start_unix_ms: start,
            window_end_unix_ms: start + 10_000,
            strategies: Vec::new(),
        };
        report.copies.inputs = (0..4)
            .map(|i| input(i, 1_795_000_000_000 + u64::from(i) * 40, f64::from(i) - 1.5))
            .collect();
        let html = render(&report).unwrap();
        assert!(html.contains("id=\"merged\""), "no merge banner");
        assert!(html.contains(
            "Merged: the reports of 4 copies, measured from \
             2026-11-18T11:06:40.000Z to 2026-11-18T11:06:50.120Z; clock offsets"
        ));
        assert!(html.contains("-1.5 to 1.5 ms"));
        assert!(html.contains("id=\"copies-table\""));
        for i in 0..4 {
            assert!(html.contains(&format!("pod-{i}")), "pod-{i}");
        }
        let all = thousands(workers * 4);
        assert!(
            html.contains(&format!(
                "{all} workers in all: {workers} in each of 4 copies"
            )),
            "the worker count"
        );
        // A plain run's page says none of it.
        let plain = render(&baseline()).unwrap();
        assert!(!plain.contains("id=\"merged\""));
        assert!(plain.contains(&format!(">{workers} workers · ")));
    }

    #[test]
    fn an_empty_or_interrupted_report_still_renders() {
        let mut report = baseline();
        report.interrupted = true;
        report.strategies.truncate(1);
        report.strategies[0].timeline.clear();
        report.strategies[0].requests = 0;
        report.strategies[0].phases.clear();
        report.comparison.clear();
        let html = render(&report).unwrap();
        assert!(html.contains("id=\"interrupted\""));
        assert!(html.contains("No comparison"));
    }

    #[test]
    fn no_two_phases_are_drawn_alike() {
        let styles: Vec<_> = Phase::ALL.iter().map(|p| phase_style(p.as_str())).collect();
        for (i, a) in styles.iter().enumerate() {
            for (j, b) in styles.iter().enumerate().skip(i + 1) {
                assert_ne!(
                    a,
                    b,
                    "{} and {}",
                    Phase::ALL[i].as_str(),
                    Phase::ALL[j].as_str()
                );
            }
        }
    }

    /// The lines of a chart's SVG by colour: (polylines, the most points
    /// in one). plotters draws a solid line as one polyline through every
    /// point, a dashed one as a polyline per dash, a few points each; the
    /// legend's swatches are wider.
    fn strokes(svg: &str) -> BTreeMap<String, (usize, usize)> {
        let mut found = BTreeMap::new();
        for tag in svg.split("<polyline").skip(1) {
            let tag = &tag[..tag.find("/>").unwrap()];
            let attr = |name: &str| {
                let start = tag
                    .find(&format!("{name}=\""))
                    .map(|i| i + name.len() + 2)?;
                Some(tag[start..].split('"').next().unwrap().to_string())
            };
            if attr("stroke-width").as_deref() != Some("2") {
                continue;
            }
            let points = attr("points").unwrap().split_whitespace().count();
            let entry = found.entry(attr("stroke").unwrap()).or_insert((0, 0));
            entry.0 += 1;
            entry.1 = entry.1.max(points);
        }
        found
    }

    #[test]
    fn tcp_tls_and_startup_are_drawn_apart_in_the_svg() {
        let mut report = baseline();
        let fresh = &mut report.strategies[0];
        let connect = fresh.phases["connect"].clone();
        for phase in ["tcp", "tls", "startup"] {
            fresh.phases.insert(phase.into(), connect.clone());
        }
        let html = render(&report).unwrap();
        let start = html.find("id=\"spectrum-per-request\"").unwrap();
        let svg = &html[start..];
        let svg = &svg[svg.find("<svg").unwrap()..svg.find("</svg>").unwrap()];
        let strokes = strokes(svg);
        let hex = |c: charts::Rgb| format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2);
        for phase in [
            "connect", "tcp", "tls", "startup", "query", "close", "total",
        ] {
            let (color, dashed) = phase_style(phase);
            let (polylines, longest) = strokes
                .get(&hex(color))
                .copied()
                .unwrap_or_else(|| panic!("{phase}: no line in {}: {strokes:?}", hex(color)));
            if dashed {
                // A dash per few pixels: dozens of polylines.
                assert!(polylines > 10, "{phase} is not dashed: {strokes:?}");
            } else {
                // One polyline through the spectrum's points.
                assert!(longest > 30, "{phase} is not a solid line: {strokes:?}");
            }
            let in_legend = svg.split("<text").skip(1).any(|t| {
                let text = &t[t.find('>').unwrap() + 1..t.find("</text>").unwrap()];
                text.trim() == phase
            });
            assert!(in_legend, "{phase} not in the legend");
        }
        // tcp, tls and startup in three colours, none of them grey.
        let colors: BTreeSet<_> = ["tcp", "tls", "startup"]
            .iter()
            .map(|p| phase_style(p).0)
            .map(hex)
            .collect();
        assert_eq!(colors.len(), 3);
        assert!(!colors.contains(&hex(charts::PALETTE[6])));
    }

    #[test]
    fn spectrum_reaches_the_tail() {
        let mut h = crate::metrics::new_histogram();
        for v in 1..=100_000u64 {
            crate::metrics::record(&mut h, v);
        }
        let points = spectrum(&h);
        let last = points.last().unwrap();
        assert_eq!(last.0, charts::PERCENTILE_MAX_X);
        assert!((last.1 - 100.0).abs() < 0.2, "{last:?}");
        let p90 = points.iter().find(|p| p.0 >= 10.0).unwrap();
        assert!((p90.1 - 90.0).abs() < 1.0, "{p90:?}");
    }
}
