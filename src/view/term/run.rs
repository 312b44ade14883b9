//! The terminal view of a run: the header (and the lines of it a sweep
//! shares), the progress line per strategy, the strategy table, a latency
//! table per phase, where a per-request connection's time goes, and the
//! one-line verdict.

use crate::metrics::Phase;
use crate::report::build_profile;
use crate::report::format::{ms, ms_trimmed, plural, render, rps, thousands, trimmed};
use crate::report::model::{CpuShare, Explanation};
use crate::report::{Comparison, Kind, Report, Server, StrategyReport};
use crate::scenario::{ArrivalProcess, NetworkSettings, Scenario};

/// The first line of a header: "poolbench 0.1.0 (release build) · {what}".
pub fn title_line(what: &str) -> String {
    format!(
        "poolbench {} ({} build) · {what}\n",
        env!("CARGO_PKG_VERSION"),
        build_profile()
    )
}

/// The server: version, where it runs (and where that came from), auth,
/// TLS, max_connections.
pub fn server_line(server: &Server) -> String {
    format!(
        "server    {} {} · {} · auth {} · TLS {} · max_connections {}\n",
        server.engine_name(),
        server.version,
        server.location(),
        server.auth_method,
        if server.ssl { "on" } else { "off" },
        server.max_connections
    )
}

/// The warning a debug build's header ends with (empty for a release build).
pub fn debug_build_line() -> &'static str {
    if cfg!(debug_assertions) {
        "warning   this is a debug build: connection setup (SCRAM) is several times slower; \
         use `cargo build --release` for real numbers\n"
    } else {
        ""
    }
}

/// What `run` prints before measuring: the tool, the server, the workload.
pub fn header(s: &Scenario, server: &Server, threads: usize) -> String {
    let mut out = title_line(&format!(
        "scenario {} ({})",
        s.name,
        s.source.path.display()
    ));
    out.push_str(&server_line(server));
    let load = match s.run.arrivals {
        Some(a) => format!(
            "open loop: {} req/s ({}), max_in_flight {}, on {}",
            rps(a.rate),
            match a.process {
                ArrivalProcess::Poisson => "poisson",
                ArrivalProcess::Uniform => "uniform",
            },
            thousands(u64::from(a.max_in_flight)),
            plural(threads, "thread", "threads")
        ),
        None => format!(
            "{} on {}",
            plural(s.run.concurrency as usize, "worker", "workers"),
            plural(threads.min(s.run.concurrency as usize), "thread", "threads")
        ),
    };
    out.push_str(&format!(
        "workload  {load} · {} warm-up + {} per strategy{} · seed {} · {} · {}\n",
        humantime::format_duration(s.run.warmup),
        humantime::format_duration(s.run.duration),
        if s.run.rounds > 1 {
            format!(" × {} rounds", s.run.rounds)
        } else {
            String::new()
        },
        s.run.seed,
        plural(s.strategies.len(), "strategy", "strategies"),
        plural(s.queries.len(), "query", "queries")
    ));
    if let Some(n) = &s.network {
        out.push_str(&network_line(n));
    }
    out.push_str(debug_build_line());
    out.push('\n');
    out
}

/// A strategy as the header shows it before measuring.
pub struct StrategyTarget {
    pub name: String,
    /// Its own target, redacted (None: the run's).
    pub target: Option<String>,
    /// Through the embedded PgBouncer.
    pub via_pgbouncer: bool,
    /// The most server connections it may hold (None: a pooler decides).
    pub max_server_connections: Option<u64>,
}

/// One line per strategy with its own target or its connection budget
/// against the server's `max_connections`.
pub fn strategy_lines(strategies: &[StrategyTarget], max_connections: u32) -> String {
    let mut out = String::new();
    for s in strategies {
        let budget = match s.max_server_connections {
            Some(n) if max_connections > 0 && n > u64::from(max_connections) => format!(
                "may hold {n} server connections, more than max_connections {max_connections}: \
                 expect connection errors"
            ),
            Some(n) if max_connections > 0 => {
                format!("may hold {n} of max_connections {max_connections} server connections")
            }
            Some(n) => format!("may hold {n} server connections"),
            None => "server connections as its target's pooler allows".into(),
        };
        let target = match (&s.target, s.via_pgbouncer) {
            (Some(t), true) => format!(" · through the embedded PgBouncer at {t}"),
            (Some(t), false) => format!(" · target {t}"),
            (None, _) => String::new(),
        };
        out.push_str(&format!("strategy  {}: {budget}{target}\n", s.name));
    }
    out
}

/// The emulated link, when there is one.
pub fn network_line(n: &NetworkSettings) -> String {
    let us = |d: std::time::Duration| d.as_secs_f64() * 1e6;
    format!(
        "network   +{} ms RTT emulated{} on every measured connection (poolbench's \
         in-process link emulator; the monitor connection is direct)\n",
        ms_trimmed(us(n.rtt)),
        if n.jitter.is_zero() {
            String::new()
        } else {
            format!(", ±{} ms jitter", ms_trimmed(us(n.jitter)))
        }
    )
}

/// One line on stderr per measured strategy (or sweep point).
pub fn progress_line(label: &str, requests: u64, throughput_rps: f64, errors: u64) -> String {
    format!(
        "{label:>16}  {} requests, {} req/s, {} errors",
        thousands(requests),
        rps(throughput_rps),
        thousands(errors)
    )
}

/// The strategy and latency tables.
pub fn tables(report: &Report) -> String {
    let mut rows = vec![[
        "strategy",
        "kind",
        "requests",
        "req/s",
        "errors",
        "connections",
        "pool fill",
    ]
    .map(String::from)
    .to_vec()];
    for s in &report.strategies {
        rows.push(vec![
            s.name.clone(),
            s.kind.to_string(),
            thousands(s.requests),
            rps(s.throughput_rps),
            thousands(s.error_count()),
            thousands(s.connections_opened),
            startup(s),
        ]);
    }
    let mut out = render(&rows, 2);
    if let Some(note) = counts_note(report) {
        out.push_str(&format!("({note})\n"));
    }

    let mut rows = vec![[
        "latency (ms)",
        "",
        "count",
        "mean",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "max",
    ]
    .map(String::from)
    .to_vec()];
    for s in &report.strategies {
        let mut first = true;
        for phase in Phase::ALL.map(Phase::as_str) {
            let Some(p) = s.phases.get(phase) else {
                continue;
            };
            rows.push(vec![
                if first { s.name.clone() } else { String::new() },
                phase.to_string(),
                thousands(p.count),
                ms(p.mean_us),
                ms(p.p50_us as f64),
                ms(p.p90_us as f64),
                ms(p.p99_us as f64),
                ms(p.p999_us as f64),
                ms(p.max_us as f64),
            ]);
            first = false;
        }
    }
    out.push('\n');
    out.push_str(&render(&rows, 2));

    for e in &report.explanation {
        out.push('\n');
        out.push_str(&explanation(e, &report.server));
    }
    for s in &report.strategies {
        let lines = crate::report::explain::pool_lines(s, report.network.as_ref());
        if !lines.is_empty() {
            out.push('\n');
            for line in lines {
                out.push_str(&line);
                out.push('\n');
            }
        }
    }

    let errors: Vec<String> = report.strategies.iter().filter_map(error_line).collect();
    if !errors.is_empty() {
        out.push('\n');
        for line in errors {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// Whose CPU a connect used: "client 2.3 ms (SCRAM 1.9), server 3.1 ms;
/// the other 58 ms of the connect waiting (…)".
pub fn cpu_words(cpu: &CpuShare) -> String {
    let n = |ms: f64| trimmed(ms, if ms >= 10.0 { 1 } else { 2 });
    format!(
        "client {} ms{}, {}; the other {} ms of the connect waiting (round trips, and \
         queueing for the {})",
        n(cpu.client_ms),
        cpu.client_scram_ms
            .map(|s| format!(" (SCRAM {})", n(s)))
            .unwrap_or_default(),
        match (cpu.server_ms, &cpu.server_absent) {
            (Some(s), _) => format!("server {} ms{}", n(s), logged(cpu)),
            (None, Some(why)) => format!("server not visible: {why}"),
            (None, None) => "server not visible".to_string(),
        },
        n(cpu.waiting_ms),
        plural(cpu.cpus, "CPU", "CPUs"),
    )
}

/// PostgreSQL 18's logged fork and authentication times beside the
/// server's CPU: " (logged wall times: fork 0.6, auth 1.8)" — wall, not
/// CPU, so said apart (authentication waits for the client); empty when
/// not logged.
fn logged(cpu: &CpuShare) -> String {
    let n = |ms: f64| trimmed(ms, if ms >= 10.0 { 1 } else { 2 });
    match (cpu.server_fork_ms, cpu.server_auth_ms) {
        (Some(fork), Some(auth)) => {
            format!(" (logged wall times: fork {}, auth {})", n(fork), n(auth))
        }
        _ => String::new(),
    }
}

/// Where a per-request connection's time goes (means, in ms), in the
/// words of `server`'s engine.
pub fn explanation(e: &Explanation, server: &Server) -> String {
    // A close that took 0.004 ms is not "0 ms".
    let n = |ms: f64| match ms {
        m if m >= 10.0 => trimmed(m, 1),
        m if m >= 0.01 => trimmed(m, 2),
        _ => "< 0.01".into(),
    };
    let mut out = format!("where {}'s time goes (means):\n", e.strategy);
    // The pooler as people write it.
    let pooler = e.via.as_ref().map(|v| match v.as_str() {
        "pgbouncer" => "PgBouncer".to_string(),
        other => other.to_string(),
    });
    let mut steps = Vec::new();
    for (name, value) in [
        ("tcp", e.tcp_ms),
        ("tls", e.tls_ms),
        ("startup", e.startup_ms),
    ] {
        if let Some(v) = value {
            steps.push(format!("{name} {}", n(v)));
        }
    }
    let postgres = server.engine == "postgresql";
    if steps.is_empty() {
        // A connection whose steps were not timed apart (none today).
        out.push_str(&format!("  connect  {} ms\n", n(e.connect_ms)));
    } else {
        let startup = match (pooler.as_deref(), postgres) {
            // PgBouncer authenticates the client itself and lends it a
            // server connection already open: no backend starts.
            (Some(pooler), _) => format!("authentication by {pooler}, no backend started"),
            (None, true) => "authentication and the backend's start".into(),
            (None, false) => "the greeting and authentication".into(),
        };
        let request = if postgres {
            "SSLRequest"
        } else {
            "SSL request"
        };
        // Only the steps that happened: no tls step with TLS off, and only
        // the request when the server refused TLS (sslmode=prefer).
        let tls = e.tls_ms.map(|_| {
            if server.ssl {
                format!("{request} and TLS handshake")
            } else {
                format!("{request}, refused")
            }
        });
        let words: Vec<String> = ["TCP handshake".to_string()]
            .into_iter()
            .chain(tls)
            .chain([startup])
            .collect();
        out.push_str(&format!(
            "  connect  {} ms = {} ({})\n",
            n(e.connect_ms),
            steps.join(" + "),
            words.join("; ")
        ));
    }
    let why = match (pooler.as_deref(), e.statement_cache) {
        (Some(pooler), false) => format!(
            "{pooler} lends it one of its server connections, waiting for one if none is free; \
             its statements are unnamed, parsed on every query, pooled or not"
        ),
        (Some(pooler), true) => format!(
            "{pooler} lends it one of its server connections, waiting for one if none is free; \
             statements prepared again"
        ),
        (None, false) => "caches cold; its statements are unnamed, parsed on every query, \
                          pooled or not"
            .into(),
        (None, true) => "statements prepared again, caches cold".into(),
    };
    match (&e.pool, e.pool_query_ms, e.first_query_extra_ms) {
        (Some(pool), Some(pool_query), Some(extra)) if extra > 0.0 => out.push_str(&format!(
            "  query    {} ms against {} ms on {pool}: +{} ms for the first query on a new \
             connection ({why})\n",
            n(e.query_ms),
            n(pool_query),
            n(extra)
        )),
        _ => out.push_str(&format!("  query    {} ms\n", n(e.query_ms))),
    }
    if let Some(cpu) = &e.cpu {
        out.push_str(&format!("  cpu      {}\n", cpu_words(cpu)));
    }
    if let Some(close) = e.close_ms {
        out.push_str(&format!("  close    {} ms\n", n(close)));
    }
    if let Some(rt) = &e.network {
        let rtt = trimmed(rt.rtt_ms, 3);
        out.push_str(&format!(
            "  network  +{rtt} ms RTT: connecting is {} × {rtt} ms = {} ms of its {} ms; \
             a request {} × {rtt} ms = {} ms of its {} ms\n",
            plural(rt.connect_round_trips as usize, "round trip", "round trips"),
            n(rt.connect_round_trips_ms),
            n(e.connect_ms),
            plural(rt.request_round_trips as usize, "round trip", "round trips"),
            n(rt.request_round_trips_ms),
            n(e.total_ms),
        ));
        if let (Some(pool), Some(count), Some(ms_rt), Some(total)) = (
            &e.pool,
            rt.pool_request_round_trips,
            rt.pool_request_round_trips_ms,
            rt.pool_total_ms,
        ) {
            out.push_str(&format!(
                "           on {pool}: {} × {rtt} ms = {} ms of its {} ms\n",
                plural(count as usize, "round trip", "round trips"),
                n(ms_rt),
                n(total)
            ));
        }
    }
    out
}

pub fn error_line(s: &StrategyReport) -> Option<String> {
    let startup = (!s.startup_errors.is_empty()).then(|| {
        let classes: Vec<String> = s
            .startup_errors
            .iter()
            .map(|(k, v)| format!("{k} {}", thousands(*v)))
            .collect();
        format!(
            "before measuring, {} failed: {}",
            s.name,
            classes.join(", ")
        )
    });
    if s.errors.is_empty() {
        return startup;
    }
    let classes: Vec<String> = s
        .errors
        .iter()
        .map(|(k, v)| format!("{k} {}", thousands(*v)))
        .collect();
    let sample = s
        .error_samples
        .values()
        .flatten()
        .next()
        .map(|m| format!(" (e.g. \"{m}\")"))
        .unwrap_or_default();
    let line = format!(
        "errors in {}: {} of {} requests ({:.2}%): {}{sample}",
        s.name,
        thousands(s.error_count()),
        thousands(s.requests + s.error_count()),
        s.error_rate() * 100.0,
        classes.join(", ")
    );
    Some(match startup {
        Some(before) => format!("{before}\n{line}"),
        None => line,
    })
}

/// The one-line verdict: the first fresh strategy against the pool with the
/// highest throughput; or, when most requests of a strategy failed, that
/// there is no valid comparison.
pub fn headline(report: &Report) -> Option<String> {
    let behind: Vec<String> = report
        .strategies
        .iter()
        .filter_map(StrategyReport::fell_behind)
        .collect();
    let line = report.not_comparable().or_else(|| comparison_line(report));
    match (line, behind.is_empty()) {
        (line, true) => line,
        (None, false) => Some(behind.join("\n")),
        (Some(line), false) => Some(format!("{line}\n{}", behind.join("\n"))),
    }
}

/// What the strategy table's counts are, when `connections` exceeds
/// `requests` (warm-up's connections are in one and not the other).
pub fn counts_note(report: &Report) -> Option<&'static str> {
    report
        .strategies
        .iter()
        .any(|s| s.connections_opened > s.requests)
        .then_some(
            "connections: every one opened, warm-up and pool fill included; requests: the \
             measured window's. pool fill: opening the pool's min_size before measuring",
        )
}

/// The time a strategy took to open its connections before measuring: a
/// pool's min_size; none for a strategy that opens one per request.
pub fn startup(s: &StrategyReport) -> String {
    match s.kind {
        Kind::Pool => format!("{:.1} ms", s.startup_ms),
        Kind::Fresh | Kind::Observed => "-".into(),
    }
}

fn comparison_line(report: &Report) -> Option<String> {
    let best_pool = Comparison::best_pool(&report.strategies)?;
    let c = report
        .comparison
        .iter()
        .find(|c| c.pool == best_pool.name)?;
    Some(verdict(c))
}

pub fn verdict(c: &Comparison) -> String {
    let added = c.setup_cost_p50_us as f64 / 1000.0;
    let latency = if c.setup_cost_p50_us >= 0 {
        format!("add {added:.1} ms at p50 ({:.0}x)", c.p50_ratio)
    } else {
        format!("save {:.1} ms at p50 ({:.2}x)", -added, c.p50_ratio)
    };
    let throughput = if c.throughput_ratio <= 1.0 {
        format!(
            "cut throughput by {}%",
            percent((1.0 - c.throughput_ratio) * 100.0)
        )
    } else {
        format!(
            "raise throughput by {:.0}%",
            (c.throughput_ratio - 1.0) * 100.0
        )
    };
    format!(
        "{} connections {latency} and {throughput} versus {}",
        c.fresh, c.pool
    )
}

/// A percentage that does not round 99.6 up to a misleading 100.
fn percent(p: f64) -> String {
    if (99.0..100.0).contains(&p) {
        format!("{:.1}", (p * 10.0).floor() / 10.0)
    } else {
        format!("{p:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_read_well() {
        assert_eq!(percent(99.96), "99.9");
        assert_eq!(percent(96.2), "96");
    }

    fn explained(via: Option<&str>, statement_cache: bool) -> String {
        explanation(&sample(via, statement_cache), &server("postgresql"))
    }

    fn server(engine: &str) -> Server {
        let json = format!(
            r#"{{"engine": "{engine}", "version": "x", "auth_method": "a", "ssl": true,
                "max_connections": 100, "embedded": true, "dsn": "d"}}"#
        );
        serde_json::from_str(&json).unwrap()
    }

    fn sample(via: Option<&str>, statement_cache: bool) -> Explanation {
        Explanation {
            strategy: "per-request".into(),
            pool: Some("pool-10".into()),
            connect_ms: 30.0,
            tcp_ms: Some(1.0),
            tls_ms: Some(9.0),
            startup_ms: Some(20.0),
            query_ms: 3.0,
            pool_query_ms: Some(1.0),
            first_query_extra_ms: Some(2.0),
            close_ms: Some(0.1),
            total_ms: 33.1,
            network: None,
            via: via.map(str::to_string),
            statement_cache,
            cpu: None,
        }
    }

    #[test]
    fn the_connects_cpu_is_said_whose_it_was() {
        let mut e = sample(None, true);
        e.cpu = Some(CpuShare {
            client_ms: 2.3,
            client_scram_ms: Some(1.9),
            server_ms: Some(3.1),
            server_fork_ms: Some(0.6),
            server_auth_ms: Some(1.8),
            server_absent: None,
            waiting_ms: 24.6,
            cpus: 2,
        });
        let text = explanation(&e, &server("postgresql"));
        assert!(
            text.contains(
                "  cpu      client 2.3 ms (SCRAM 1.9), server 3.1 ms (logged wall times: fork \
                 0.6, auth 1.8); the \
                 other 24.6 ms of the connect waiting (round trips, and queueing for the 2 CPUs)\n"
            ),
            "{text}"
        );
        let cpu = e.cpu.as_mut().unwrap();
        cpu.server_ms = None;
        cpu.server_absent = Some("the server is at db.example.com, not on this machine".into());
        assert!(explanation(&e, &server("postgresql"))
            .contains("server not visible: the server is at db.example.com"));
    }

    #[test]
    fn the_connect_line_names_only_the_steps_that_happened() {
        let mut e = sample(None, true);
        let tls_on = explanation(&e, &server("postgresql"));
        assert!(
            tls_on.contains("(TCP handshake; SSLRequest and TLS handshake; authentication"),
            "{tls_on}"
        );
        // sslmode=prefer against a server without TLS: the request, refused.
        let mut plain = server("postgresql");
        plain.ssl = false;
        let refused = explanation(&e, &plain);
        assert!(
            refused.contains("(TCP handshake; SSLRequest, refused; authentication"),
            "{refused}"
        );
        // sslmode=disable: no tls step, no word of TLS.
        e.tls_ms = None;
        let off = explanation(&e, &plain);
        assert!(
            off.contains("= tcp 1 + startup 20 (TCP handshake; authentication and the"),
            "{off}"
        );
        assert!(!off.contains("SSL") && !off.contains("TLS"), "{off}");
    }

    #[test]
    fn the_first_query_is_explained_by_what_happened() {
        let direct = explained(None, true);
        assert!(
            direct.contains("authentication and the backend's start"),
            "{direct}"
        );
        assert!(
            direct.contains("(statements prepared again, caches cold)"),
            "{direct}"
        );
        // statement_cache = false: nothing is prepared, on either side.
        let unnamed = explained(None, false);
        assert!(!unnamed.contains("prepared again"), "{unnamed}");
        assert!(
            unnamed.contains("unnamed, parsed on every query"),
            "{unnamed}"
        );
        // Through PgBouncer: no backend starts, and the first query waits
        // for one of its server connections, not for a backend.
        let pooled = explained(Some("pgbouncer"), false);
        assert!(!pooled.contains("prepared again"), "{pooled}");
        assert!(!pooled.contains("backend's start"), "{pooled}");
        assert!(
            pooled.contains("authentication by PgBouncer, no backend started"),
            "{pooled}"
        );
        assert!(
            pooled.contains("PgBouncer lends it one of its server connections"),
            "{pooled}"
        );
        assert!(pooled.contains("  close    0.1 ms"), "{pooled}");
        let quick = Explanation {
            close_ms: Some(0.004),
            ..sample(None, true)
        };
        assert!(explanation(&quick, &server("postgresql")).contains("  close    < 0.01 ms"));
        // MySQL's steps in MySQL's words.
        let mysql = explanation(&sample(None, true), &server("mariadb"));
        assert!(
            mysql.contains(
                "(TCP handshake; SSL request and TLS handshake; the greeting and \
                 authentication)"
            ),
            "{mysql}"
        );
    }

    #[test]
    fn verdict_says_cost_and_ratio() {
        let c = Comparison {
            fresh: "per-request".into(),
            pool: "pool-10".into(),
            setup_cost_p50_us: 21_400,
            p50_ratio: 140.2,
            p99_ratio: 50.0,
            throughput_ratio: 0.04,
        };
        assert_eq!(
            verdict(&c),
            "per-request connections add 21.4 ms at p50 (140x) and cut throughput by 96% versus pool-10"
        );
    }
}
