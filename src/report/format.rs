//! Number and word formatting shared by every human-readable output
//! (terminal views, CSV, markdown, error messages): written once here.

use std::fmt::Write;

/// Formats 1234567 as "1,234,567".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Milliseconds with enough digits to read both 0.05 ms and 250 ms.
pub fn ms(us: f64) -> String {
    let ms = us / 1000.0;
    if ms >= 100.0 {
        format!("{ms:.1}")
    } else if ms >= 10.0 {
        format!("{ms:.2}")
    } else {
        format!("{ms:.3}")
    }
}

pub fn rps(x: f64) -> String {
    if x >= 100.0 {
        thousands(x.round() as u64)
    } else {
        format!("{x:.1}")
    }
}

/// Left-aligns the first `left` columns, right-aligns the rest.
pub fn render(rows: &[Vec<String>], left: usize) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c > 0 {
                line.push_str("  ");
            }
            if c < left {
                let _ = write!(line, "{cell:<w$}", w = widths[c]);
            } else {
                let _ = write!(line, "{cell:>w$}", w = widths[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A latency with its unit, for sentences: 850 µs, 12.3 ms, 4.1 s.
pub fn duration_us(us: u64) -> String {
    match us {
        0..=999 => format!("{us} µs"),
        1_000..=999_999 => format!("{:.1} ms", us as f64 / 1e3),
        _ => format!("{:.1} s", us as f64 / 1e6),
    }
}

/// "1 strategy", "3 strategies".
pub fn plural(n: usize, one: &str, many: &str) -> String {
    format!(
        "{} {}",
        thousands(n as u64),
        if n == 1 { one } else { many }
    )
}

/// Milliseconds with three decimals, for CSV columns: 1234 µs → "1.234".
pub fn ms3(us: u64) -> String {
    format!("{:.3}", us as f64 / 1000.0)
}

/// A number with at most `decimals` decimals and no trailing zeros: 10 →
/// "10", 2.5 → "2.5" (thresholds a user typed, targets).
pub fn trimmed(x: f64, decimals: usize) -> String {
    let text = format!("{x:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// A target in milliseconds as a user would write it: 50000 µs → "50",
/// 500 µs → "0.5", 1 µs → "0.001".
pub fn ms_trimmed(us: f64) -> String {
    trimmed(us / 1000.0, 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(ms(21_400.0), "21.40");
        assert_eq!(ms(51.0), "0.051");
        assert_eq!(ms3(1234), "1.234");
        assert_eq!(trimmed(10.0, 2), "10");
        assert_eq!(trimmed(2.5, 2), "2.5");
        assert_eq!(trimmed(100.0, 0), "100");
        assert_eq!(ms_trimmed(50_000.0), "50");
        assert_eq!(ms_trimmed(500.0), "0.5");
        assert_eq!(ms_trimmed(1.0), "0.001");
        assert_eq!(plural(1, "query", "queries"), "1 query");
        assert_eq!(plural(2, "query", "queries"), "2 queries");
        assert_eq!(duration_us(850), "850 µs");
        assert_eq!(duration_us(12_345), "12.3 ms");
        assert_eq!(duration_us(4_100_000), "4.1 s");
    }
}
