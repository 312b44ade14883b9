//! `poolbench watch` in a terminal: the lines an application needs to reach
//! the proxy (stdout, in one write, like `server`'s), what is watched
//! (stderr), and at the end the verdict in the application's terms.

use std::fmt::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::report::format::{duration_us, ms, thousands, trimmed};
use crate::report::{Kind, Report};

/// What the connection lines say.
pub struct Lines<'a> {
    pub host: &'a str,
    pub port: u16,
    pub user: &'a str,
    /// Printed only for the embedded server's throwaway password; an
    /// application of your own brings its own.
    pub password: Option<&'a str>,
    pub dbname: &'a str,
    pub ca_file: Option<&'a Path>,
    /// The proxy speaks TLS to the server: a libpq client that could bind
    /// its channel must be told not to (the server would refuse the
    /// downgrade it sees).
    pub channel_binding_off: bool,
}

/// The URL for the application, then the PG* lines, in one write.
pub fn connection_lines(l: &Lines) -> String {
    let password = l.password.map(|p| format!(":{p}")).unwrap_or_default();
    let mut text = format!(
        "postgres://{}{password}@{}:{}/{}?sslmode=require\nPGHOST={}\nPGPORT={}\nPGUSER={}\n",
        l.user, l.host, l.port, l.dbname, l.host, l.port, l.user
    );
    if let Some(p) = l.password {
        let _ = writeln!(text, "PGPASSWORD={p}");
    }
    let _ = writeln!(text, "PGDATABASE={}\nPGSSLMODE=require", l.dbname);
    if let Some(ca) = l.ca_file {
        let _ = writeln!(text, "PGSSLROOTCERT={}", ca.display());
    }
    if l.channel_binding_off {
        text.push_str("PGCHANNELBINDING=disable\n");
    }
    text
}

/// What is watched, and how it ends (stderr).
pub fn watching(
    addr: &SocketAddr,
    server: &str,
    rtt: Option<Duration>,
    duration: Option<Duration>,
) -> String {
    let across = rtt
        .map(|r| format!(" across an emulated {} RTT", humantime::format_duration(r)))
        .unwrap_or_default();
    let until = match duration {
        Some(d) => format!("for {}, or until Ctrl-C", humantime::format_duration(d)),
        None => "until Ctrl-C".into(),
    };
    format!(
        "poolbench: watching on {addr}, relaying to {server}{across}, {until}; then the report\n\
         poolbench: its certificate names 127.0.0.1 and localhost (PGSSLMODE=verify-full works with \
         PGSSLROOTCERT); SCRAM is relayed, offering SCRAM-SHA-256 only: channel binding \
         (SCRAM-SHA-256-PLUS) cannot cross the proxy's TLS"
    )
}

/// The verdict: connections per transaction, setup's share of the database
/// time, and the pool that would have held the peak.
pub fn verdict(report: &Report) -> String {
    let mut out = String::new();
    for s in report
        .strategies
        .iter()
        .filter(|s| s.kind == Kind::Observed)
    {
        let transactions = s.transactions.unwrap_or(s.requests);
        let statements = s.statements.unwrap_or(0);
        // Summed times: the watch's own, or (a merged report, which keeps
        // no `observed`) each phase's mean × count.
        let summed_ms = |phase: &str| {
            s.phases
                .get(phase)
                .map_or(0.0, |p| p.mean_us * p.count as f64 / 1000.0)
        };
        let (setup_ms, statements_ms) = match &s.observed {
            Some(o) => (o.setup_ms, o.statements_ms),
            None => (summed_ms("connect"), summed_ms("query")),
        };
        let _ = writeln!(
            out,
            "the app opened {} connections in {} s ({} per transaction); {} transactions, {} statements, {} errors",
            thousands(s.connections_opened),
            trimmed(s.measured_s, 1),
            if transactions > 0 {
                format!("{:.2}", s.connections_opened as f64 / transactions as f64)
            } else {
                "no transaction".into()
            },
            thousands(transactions),
            thousands(statements),
            thousands(s.error_count()),
        );
        if let Some(connect) = s.phases.get("connect").filter(|c| c.count > 0) {
            let _ = writeln!(
                out,
                "setup took {:.0}% of its database time (setup p50 {}, p99 {}; {} ms setting up, {} ms in statements)",
                setup_ms * 100.0 / (setup_ms + statements_ms).max(f64::MIN_POSITIVE),
                duration_us(connect.p50_us),
                duration_us(connect.p99_us),
                ms(setup_ms * 1000.0),
                ms(statements_ms * 1000.0),
            );
        }
        if let Some(q) = s.phases.get("query").filter(|q| q.count > 0) {
            let _ = writeln!(
                out,
                "statements: p50 {}, p99 {} per round trip to ReadyForQuery",
                duration_us(q.p50_us),
                duration_us(q.p99_us)
            );
        }
        let Some(o) = &s.observed else { continue };
        if transactions > 0 {
            let _ = writeln!(
                out,
                "a pool of {} would have held its peak of {} concurrent transactions (busiest second: {} on average)",
                o.peak_concurrent_transactions.max(1),
                o.peak_concurrent_transactions,
                trimmed(o.busiest_second_concurrency, 2),
            );
        }
        let ended: Vec<String> = o
            .ended
            .iter()
            .map(|(how, n)| format!("{how} {n}"))
            .collect();
        if !ended.is_empty() {
            let _ = writeln!(out, "connections ended: {}", ended.join(", "));
        }
        if o.cancel_requests > 0 {
            let _ = writeln!(out, "cancel requests forwarded: {}", o.cancel_requests);
        }
    }
    out
}
