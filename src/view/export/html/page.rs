//! The frame every HTML page shares: one self-contained document (its only
//! style inline, no script, nothing fetched: a Content-Security-Policy says
//! so to the browser), light and dark colour schemes, print rules, and the
//! building blocks pages are written with (escaped text, tables, figures).

use std::fmt::Write;

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An HTML document being written: sections of body text, then `finish`.
pub struct Page {
    title: String,
    body: String,
}

impl Page {
    pub fn new(title: &str) -> Page {
        Page {
            title: title.to_string(),
            body: String::new(),
        }
    }

    /// Appends raw, already-escaped HTML.
    pub fn raw(&mut self, html: &str) {
        self.body.push_str(html);
    }

    pub fn heading(&mut self, level: u8, id: &str, text: &str) {
        let _ = writeln!(
            self.body,
            "<h{level} id=\"{}\">{}</h{level}>",
            escape(id),
            escape(text)
        );
    }

    pub fn paragraph(&mut self, class: &str, text: &str) {
        let _ = writeln!(
            self.body,
            "<p class=\"{}\">{}</p>",
            escape(class),
            escape(text)
        );
    }

    /// A chart (an `<svg>` from `charts`) with its caption.
    pub fn figure(&mut self, svg: &str, caption: &str) {
        let _ = writeln!(
            self.body,
            "<figure>{svg}<figcaption>{}</figcaption></figure>",
            escape(caption)
        );
    }

    pub fn table(&mut self, table: &Table) {
        self.body.push_str(&table.render());
    }

    /// The whole document.
    pub fn finish(self) -> String {
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <meta name=\"color-scheme\" content=\"light dark\">\n\
             <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n{}</main>\n</body>\n</html>\n",
            escape(&self.title),
            self.body
        )
    }
}

/// Nothing may be loaded from anywhere: the page is its own style and
/// inline SVG, readable offline and safe to attach to a pull request.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

/// The page's one stylesheet. Charts draw their ink and grid in fixed
/// colours (see `charts::INK`, `GRID`, `PAPER`) that dark mode recolours
/// here; print is always light.
const STYLE: &str = r##"
:root { color-scheme: light dark; --bg: #ffffff; --fg: #1b1b1f; --muted: #5d6168; --line: #d8dbe0;
  --card: #f5f6f8; --accent: #0072b2; --bad: #b3261e; --warn: #8a5a00; }
@media screen and (prefers-color-scheme: dark) {
  :root { --bg: #16181d; --fg: #e6e7ea; --muted: #a3a8b1; --line: #3a3e47; --card: #20232a;
    --accent: #56b4e9; --bad: #ff8a80; --warn: #f0c060; }
  svg.chart [stroke="#000000"] { stroke: #e6e7ea; }
  svg.chart [fill="#000000"] { fill: #e6e7ea; }
  svg.chart [stroke="#DDDDDD"] { stroke: #3a3e47; }
  svg.chart [fill="#FFFFFE"] { fill: #20232a; }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 960px; margin: 0 auto; padding: 24px 20px 48px; }
h1 { font-size: 1.6em; margin: 0 0 4px; }
h2 { font-size: 1.3em; margin: 40px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 1.05em; margin: 24px 0 6px; }
p { margin: 6px 0; }
.sub, figcaption, .note { color: var(--muted); font-size: 0.92em; }
.headline { font-size: 1.35em; font-weight: 600; margin: 16px 0; }
.banner { border: 1px solid var(--warn); color: var(--warn); border-radius: 6px; padding: 8px 12px; margin: 12px 0; }
.banner.bad { border-color: var(--bad); color: var(--bad); }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 12px 0; }
.card { background: var(--card); border-radius: 8px; padding: 10px 14px; flex: 1 1 150px; }
.card .value { font-size: 1.5em; font-weight: 600; font-variant-numeric: tabular-nums; }
.card .label { color: var(--muted); font-size: 0.88em; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 8px 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
figure { margin: 12px 0 20px; }
svg.chart { display: block; width: 100%; height: auto; max-width: 880px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-variant-numeric: tabular-nums; }
th, td { padding: 3px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { text-align: left; font-weight: 600; }
td.num, th.num { text-align: right; }
tr.first td { border-top: 2px solid var(--line); }
code, pre { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 0.9em; }
ul.samples { margin: 0; padding-left: 18px; }
.verdict-regression { color: var(--bad); font-weight: 600; }
.verdict-improvement { color: var(--accent); font-weight: 600; }
nav { margin: 8px 0 0; }
nav a { color: var(--accent); margin-right: 14px; text-decoration: none; }
@media print {
  :root { color-scheme: light; }
  main { max-width: none; padding: 0; }
  nav { display: none; }
  figure, table, .cards { break-inside: avoid; }
  h2 { break-after: avoid; }
}
"##;

/// A table: a header row, then rows of cells. Cells may carry a `data-`
/// key so a reader (or a test) can find a number without parsing layout.
#[derive(Debug, Default)]
pub struct Table {
    id: Option<String>,
    head: Vec<(String, bool)>,
    rows: Vec<Row>,
}

#[derive(Debug, Default)]
struct Row {
    attrs: String,
    cells: Vec<Cell>,
    first: bool,
}

#[derive(Debug)]
struct Cell {
    html: String,
    numeric: bool,
    key: Option<String>,
}

impl Table {
    /// Columns: name, and whether it holds numbers (right-aligned).
    pub fn new(head: &[(&str, bool)]) -> Table {
        Table {
            id: None,
            head: head.iter().map(|(h, n)| (h.to_string(), *n)).collect(),
            rows: Vec::new(),
        }
    }

    /// Names the table, for links and for readers looking for it.
    pub fn with_id(mut self, id: &str) -> Table {
        self.id = Some(id.to_string());
        self
    }

    /// Starts a row; `attrs` are `data-` pairs for the `<tr>`; `first`
    /// marks the first row of a group with a rule above it.
    pub fn row(&mut self, attrs: &[(&str, &str)], first: bool) -> &mut Table {
        let attrs = attrs
            .iter()
            .map(|(k, v)| format!(" data-{}=\"{}\"", escape(k), escape(v)))
            .collect();
        self.rows.push(Row {
            attrs,
            cells: Vec::new(),
            first,
        });
        self
    }

    /// A text cell.
    pub fn text(&mut self, text: &str) -> &mut Table {
        self.push(escape(text), false, None)
    }

    /// A raw HTML cell (already escaped).
    pub fn html(&mut self, html: String) -> &mut Table {
        self.push(html, false, None)
    }

    /// A number cell, right-aligned, found by `data-stat="key"`.
    pub fn num(&mut self, key: &str, text: &str) -> &mut Table {
        self.push(escape(text), true, Some(key.to_string()))
    }

    fn push(&mut self, html: String, numeric: bool, key: Option<String>) -> &mut Table {
        if let Some(row) = self.rows.last_mut() {
            row.cells.push(Cell { html, numeric, key });
        }
        self
    }

    /// The `<table>` element.
    pub fn render(&self) -> String {
        let mut out = match &self.id {
            Some(id) => format!("<table id=\"{}\">\n<thead><tr>", escape(id)),
            None => String::from("<table>\n<thead><tr>"),
        };
        for (h, numeric) in &self.head {
            let _ = write!(
                out,
                "<th{}>{}</th>",
                if *numeric { " class=\"num\"" } else { "" },
                escape(h)
            );
        }
        out.push_str("</tr></thead>\n<tbody>\n");
        for row in &self.rows {
            let _ = write!(
                out,
                "<tr{}{}>",
                if row.first { " class=\"first\"" } else { "" },
                row.attrs
            );
            for cell in &row.cells {
                let key = cell
                    .key
                    .as_ref()
                    .map(|k| format!(" data-stat=\"{}\"", escape(k)))
                    .unwrap_or_default();
                let class = if cell.numeric { " class=\"num\"" } else { "" };
                let _ = write!(out, "<td{class}{key}>{}</td>", cell.html);
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</tbody>\n</table>\n");
        out
    }
}

/// A definition list of facts: term → value.
pub fn facts(items: &[(&str, String)]) -> String {
    let mut out = String::from("<dl class=\"facts\">\n");
    for (term, value) in items {
        let _ = writeln!(out, "<dt>{}</dt><dd>{}</dd>", escape(term), escape(value));
    }
    out.push_str("</dl>\n");
    out
}

/// A row of headline numbers: value and what it means.
pub fn cards(items: &[(String, String)]) -> String {
    let mut out = String::from("<div class=\"cards\">\n");
    for (value, label) in items {
        let _ = writeln!(
            out,
            "<div class=\"card\"><div class=\"value\">{}</div><div class=\"label\">{}</div></div>",
            escape(value),
            escape(label)
        );
    }
    out.push_str("</div>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape("<b>\"a\" & 'b'</b>"),
            "&lt;b&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/b&gt;"
        );
    }

    #[test]
    fn a_page_loads_nothing() {
        let mut page = Page::new("t <x>");
        page.paragraph("headline", "a & b");
        let html = page.finish();
        assert!(html.contains("<title>t &lt;x&gt;</title>"));
        assert!(html.contains("default-src 'none'"));
        assert!(!html.contains("<script") && !html.contains("<link"));
        assert!(!html.contains("http://") && !html.contains("https://"));
    }

    #[test]
    fn tables_carry_keys() {
        let mut t = Table::new(&[("strategy", false), ("p50", true)]);
        t.row(&[("strategy", "pool")], true)
            .text("pool")
            .num("p50", "0.4");
        let html = t.render();
        assert!(html.contains("<tr class=\"first\" data-strategy=\"pool\">"));
        assert!(html.contains("<td class=\"num\" data-stat=\"p50\">0.4</td>"));
    }
}
