//! The terminal view of a plan: the pool sizes measured (each with its
//! rounds, the model's prediction and the verdict), the answer and the
//! settings in each pool library's own names; and a sweep's Erlang C plan,
//! the prior, as reasoning step by step (load, the candidate pool sizes,
//! min size, connection budget, break-even).

use std::fmt::Write;

use crate::report::format::{ms, ms_trimmed, plural, render as render_rows, rps};
use crate::sizing::measured::{BurstPoint, MeasuredPlan, Point};
use crate::sizing::plan::{PlanReport, MAX_UTILISATION};
use crate::sizing::sweep::pool_size::SweepReport;

/// The reasoning, step by step, then a block per library.
pub fn render(r: &PlanReport, sweep: &SweepReport) -> String {
    let mut o = String::new();
    let t = &r.target;
    let _ = writeln!(
        o,
        "plan: {} req/s at p99 ≤ {} ms over {}, from {}",
        rps(t.rps),
        ms_trimmed(t.p99_ms * 1000.0),
        plural(t.instances as usize, "instance", "instances"),
        r.sweep
    );
    let sizes: Vec<String> = sweep
        .points_at(r.concurrency)
        .iter()
        .map(|p| p.pool_size.to_string())
        .collect();
    let _ = writeln!(
        o,
        "      scenario {} measured at {} workers, pool sizes {}; {} {}\n",
        r.scenario,
        r.concurrency,
        sizes.join(","),
        sweep.server.engine_name(),
        sweep.server.version
    );
    let _ = writeln!(
        o,
        "1. load per instance    λ = R / K = {} / {} = {} req/s",
        rps(t.rps),
        t.instances,
        rps(t.rps_per_instance)
    );
    let _ = writeln!(
        o,
        "2. pool size (max)      the smallest c with ρ = λ·S/c ≤ {MAX_UTILISATION} and \
         query p99 + acquire p99 ≤ {} ms,",
        ms_trimmed(t.p99_ms * 1000.0)
    );
    let _ = writeln!(
        o,
        "                        S = mean query time measured at pool size ≥ c; acquire p99 \
         by Erlang C (M/M/c):\n                        P(W > t) = P(wait)·e^(−(c−λS)·t/S)"
    );
    let mut rows = vec![[
        "c",
        "from pool",
        "S ms",
        "query p99",
        "ρ",
        "P(wait)",
        "acquire p99",
        "predicted p99",
    ]
    .map(String::from)
    .to_vec()];
    let mut verdicts = vec![String::new()];
    for c in &r.candidates {
        rows.push(vec![
            c.pool_size.to_string(),
            c.measured_pool_size.to_string(),
            format!("{:.3}", c.service_time_mean_ms),
            format!("{:.3}", c.query_p99_ms),
            format!("{:.2}", c.utilisation),
            c.p_wait.map_or("-".into(), |p| format!("{p:.3}")),
            c.acquire_p99_ms.map_or("∞".into(), |v| format!("{v:.3}")),
            c.predicted_p99_ms.map_or("∞".into(), |v| format!("{v:.3}")),
        ]);
        verdicts.push(if c.ok {
            "◀ meets the target".into()
        } else if c.p_wait.is_none() {
            "ρ ≥ 1: the queue grows without bound".into()
        } else if c.utilisation > MAX_UTILISATION {
            format!("ρ > {MAX_UTILISATION}")
        } else {
            "p99 too high".into()
        });
    }
    // The verdict stays outside the table so that it is left-aligned.
    for (line, verdict) in render_rows(&rows, 0).lines().zip(&verdicts) {
        let row = format!("{line}  {verdict}");
        let _ = writeln!(o, "                        {}", row.trim_end());
    }
    let _ = writeln!(o, "                        → max = {}", r.max_size);
    let _ = writeln!(o, "3. min size             {}", r.min_reason);
    let _ = writeln!(o, "                        → min = {}", r.min_size);
    let b = &r.budget;
    match (b.max_connections, b.available, b.fits) {
        (Some(m), Some(a), Some(fits)) => {
            let _ = writeln!(
                o,
                "4. connection budget    K × max = {} × {} = {} {} max_connections − reserved = {m} − {} = {a}{}",
                t.instances,
                r.max_size,
                b.needed,
                if fits { "≤" } else { ">" },
                b.reserved,
                if fits { ": fits" } else { ": DOES NOT FIT" }
            );
        }
        _ => {
            let _ = writeln!(
                o,
                "4. connection budget    unknown max_connections: K × max = {} (pass --max-connections)",
                b.needed
            );
        }
    }
    if let Some(p) = &r.pgbouncer {
        if p.recommended {
            let _ = writeln!(
                o,
                "                        → put PgBouncer in transaction pooling mode between the \
                 instances and the server:\n                          default_pool_size = {} server \
                 connections serve the total {} req/s (same rule, λ = R), max_client_conn ≥ {}",
                p.default_pool_size,
                rps(t.rps),
                p.max_client_conn
            );
        }
    }
    match &r.break_even {
        Some(be) => {
            let _ = writeln!(
                o,
                "5. break-even           a connection per request: total p50 {:.3} ms vs pooled query p50 \
                 {:.3} ms\n                        (the service time, without the wait for a connection \
                 that the sweep's closed loop adds)",
                be.fresh_total_p50_ms, be.pool_query_p50_ms
            );
            let _ = writeln!(
                o,
                "                        pooling saves {:.3} ms per request; at {} req/s that is {} ms \
                 of waiting per second of traffic\n                        (= {:.2} requests fewer in \
                 flight at any moment, Little's law), and {} connections/s not opened",
                be.saved_ms_per_request,
                rps(t.rps),
                rps(be.saved_ms_per_request * t.rps),
                be.saved_s_per_s,
                rps(be.connections_per_s)
            );
            if be.fresh_throughput_rps * f64::from(t.instances) < t.rps {
                let _ = writeln!(
                    o,
                    "                        the per-request design reached only {} req/s in the \
                     sweep: it could not carry {} req/s on {} at all",
                    rps(be.fresh_throughput_rps),
                    rps(t.rps),
                    plural(t.instances as usize, "instance", "instances")
                );
            }
        }
        None => {
            let _ = writeln!(
                o,
                "5. break-even           the scenario has no fresh strategy: nothing to compare"
            );
        }
    }
    for w in &r.warnings {
        let _ = writeln!(o, "warning: {w}");
    }
    let _ = writeln!(o, "\nsettings per instance");
    for l in &r.libraries {
        let settings: Vec<String> = l
            .settings
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect();
        let _ = writeln!(o, "  {:<36} {}", l.library, settings.join(", "));
        if let Some(note) = &l.note {
            let _ = writeln!(o, "  {:<36} ({note})", "");
        }
    }
    o
}

/// One measured point as the search reports it on stderr, and as the
/// table lists it: size, measured p99 with its spread, the model's
/// prediction and ratio, the verdict, a rate shortfall.
pub fn point_line(p: &Point, target_ms: f64) -> String {
    let predicted = match (p.predicted_p99_ms, p.model_ratio) {
        (Some(v), Some(r)) => format!("model {} ms (measured {r:.2}x)", ms(v * 1000.0)),
        _ => format!("model: unbounded queue (ρ {:.2})", p.predicted_utilisation),
    };
    let mut line = format!(
        "  pool {:>4}: {}; {predicted}; {}",
        p.pool_size,
        p.measured(),
        if p.met {
            format!("met (≤ {} ms)", ms_trimmed(target_ms * 1000.0))
        } else {
            format!("MISSED (> {} ms)", ms_trimmed(target_ms * 1000.0))
        }
    );
    if let Some(n) = p.noise() {
        let _ = write!(line, "; noisy: {n}");
    }
    if let Some(s) = p.shortfall() {
        let _ = write!(line, "; {s}");
    }
    line
}

/// One min measured by the burst: the step's first seconds on a pool that
/// started at that min.
pub fn burst_line(p: &BurstPoint, target_ms: f64) -> String {
    let mut line = format!(
        "  step {}; {}",
        p.measured(),
        if p.met {
            format!("met (≤ {} ms)", ms_trimmed(target_ms * 1000.0))
        } else {
            format!("MISSED (> {} ms)", ms_trimmed(target_ms * 1000.0))
        }
    );
    let short = p.rounds.iter().filter(|r| r.short()).count();
    if short > 0 {
        let _ = write!(
            line,
            "; {short} of {} rounds achieved over 2% below the offered rate",
            p.rounds.len()
        );
    }
    line
}

/// The measured plan: what was measured, the verdict, the settings.
pub fn measured(r: &MeasuredPlan) -> String {
    let mut o = String::new();
    let t = &r.target;
    let _ = writeln!(
        o,
        "plan: {} req/s at p99 ≤ {} ms over {} ({} req/s each), scenario {}, {}",
        rps(t.rps),
        ms_trimmed(t.p99_ms * 1000.0),
        plural(t.instances as usize, "instance", "instances"),
        rps(t.rps_per_instance),
        r.scenario,
        r.server
    );
    let m = &r.model;
    if let Some(c) = &m.contended {
        let _ = writeln!(
            o,
            "calibration: at {} req/s on a pool of {} the query phase took mean {} ms, p99 {} ms, \
             {:.1}x its time on {} connections: the server ran more queries at once than it has \
             CPUs for; the model takes the {}'s",
            rps(c.achieved_rate),
            c.pool_size,
            ms(c.service_time_mean_ms * 1000.0),
            ms(c.service_time_p99_ms * 1000.0),
            c.service_time_mean_ms / m.service_time_mean_ms.max(f64::MIN_POSITIVE),
            m.calibration_pool_size,
            m.calibration_pool_size
        );
    }
    let _ = writeln!(
        o,
        "model: service time (query phase) at {} req/s on a pool of {}: mean {} ms, p99 {} ms; \
         M/G/c simulation proposes {}{}",
        rps(m.calibration_achieved_rate),
        m.calibration_pool_size,
        ms(m.service_time_mean_ms * 1000.0),
        ms(m.service_time_p99_ms * 1000.0),
        m.proposal
            .map_or("no size".into(), |c| format!("max_size {c}")),
        m.erlang_c_proposal
            .map(|c| format!(" (the sweep's Erlang C plan: {c})"))
            .unwrap_or_default()
    );
    let s = &r.search;
    let _ = writeln!(
        o,
        "measured in open loop (Poisson), {} per size, each {}s warm-up + {}s; {} in {:.0} s:",
        plural(s.rounds as usize, "round", "rounds"),
        s.warmup_s,
        s.duration_s,
        plural(r.points.len(), "size", "sizes"),
        s.elapsed_s
    );
    let mut points: Vec<&Point> = r.points.iter().collect();
    points.sort_by_key(|p| p.pool_size);
    for p in points {
        let _ = writeln!(o, "{}", point_line(p, t.p99_ms));
    }
    for w in &r.warnings {
        let _ = writeln!(o, "warning: {w}");
    }
    match &r.recommended {
        Some(rec) => {
            if let Some(b) = &r.burst {
                let _ = writeln!(
                    o,
                    "\nmin by a burst: {} → {} req/s, each min measured over the step's first {} s:",
                    rps(b.base_rate),
                    rps(b.rate),
                    b.window_s
                );
                let mut points: Vec<&BurstPoint> = b.points.iter().collect();
                points.sort_by_key(|p| p.min_size);
                for p in points {
                    let _ = writeln!(o, "{}", burst_line(p, t.p99_ms));
                }
            }
            let _ = writeln!(o, "\nmeasured: {}", r.reason);
            let _ = writeln!(o, "min size: {}", r.min_reason);
            let _ = writeln!(
                o,
                "\nsettings per instance (max_size {}, min_size {})",
                rec.max_size, rec.min_size
            );
            for (library, settings) in &r.settings {
                let _ = writeln!(o, "  {library:<36} {settings}");
            }
            if let Some(l) = &r.lifecycle {
                let check = match &l.check_run {
                    Some(c) => format!(
                        "{} (a check measured: p50 {} ms, p99 with it {} ms)",
                        l.check,
                        ms(c.check_p50_ms * 1000.0),
                        ms(c.p99_ms * 1000.0)
                    ),
                    None => format!("{} (its cost not measured)", l.check),
                };
                let _ = writeln!(
                    o,
                    "\nlifecycle: lifetime 30 min, jitter {} (≤ {:.2} replacements/s); idle timeout {}; \
                     check {check}\n  (why and what each costs, in each library's names: --format json, \
                     \"lifecycle\")",
                    l.lifetime_jitter,
                    l.replacements_max_per_s,
                    l.idle_timeout_s
                        .map_or("none (min = max)".into(), |s| format!("{s:.0} s")),
                );
            }
        }
        None => {
            let _ = writeln!(o, "\nno recommendation: {}", r.reason);
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::sizing::plan::tests::{four_instances, known_sweep, one_instance};
    use crate::sizing::plan::{plan, PlanRequest};

    fn lines(req: PlanRequest) -> Vec<String> {
        let sweep = known_sweep(5000);
        let r = plan(&sweep, Path::new("known/sweep.json"), &req).unwrap();
        render(&r, &sweep).lines().map(str::to_string).collect()
    }

    fn has(lines: &[String], wanted: &str) {
        assert!(
            lines.iter().any(|l| l == wanted),
            "no line `{wanted}` in\n{}",
            lines.join("\n")
        );
    }

    #[test]
    fn the_reasoning_ends_in_the_chosen_sizes() {
        // The numbers of `sizing::plan::tests::one_instance_…`, worked there.
        let l = lines(one_instance());
        let pad = " ".repeat(24);
        has(
            &l,
            "plan: 2,000 req/s at p99 ≤ 5 ms over 1 instance, from known/sweep.json",
        );
        has(
            &l,
            "1. load per instance    λ = R / K = 2,000 / 1 = 2,000 req/s",
        );
        has(
            &l,
            &format!(
                "{pad}c  from pool   S ms  query p99     ρ  P(wait)  acquire p99  predicted p99"
            ),
        );
        has(&l, &format!("{pad}1          1  0.900      1.500  1.80        -            ∞              ∞  ρ ≥ 1: the queue grows without bound"));
        has(&l, &format!("{pad}2          2  0.950      1.800  0.95    0.926       43.015         44.815  ρ > 0.8"));
        has(&l, &format!("{pad}3          4  1.000      2.000  0.67    0.444        3.794          5.794  p99 too high"));
        has(&l, &format!("{pad}4          4  1.000      2.000  0.50    0.174        1.428          3.428  ◀ meets the target"));
        has(&l, &format!("{pad}→ max = 4"));
        has(&l, &format!("{pad}→ min = 2"));
        has(&l, "4. connection budget    K × max = 1 × 4 = 4 ≤ max_connections − reserved = 10 − 3 = 7: fits");
        has(&l, "5. break-even           a connection per request: total p50 8.000 ms vs pooled query p50 1.000 ms");
        has(
            &l,
            "  sqlx (Rust)                          max_connections = 4, min_connections = 2",
        );
        has(
            &l,
            "  HikariCP (Java)                      maximumPoolSize = 4, minimumIdle = 2",
        );
        has(
            &l,
            "  SQLAlchemy (Python)                  pool_size = 2, max_overflow = 2",
        );
        // The pools fit: no PgBouncer advice, no warning.
        assert!(!l.iter().any(|l| l.contains("put PgBouncer")), "{l:?}");
        assert!(!l.iter().any(|l| l.starts_with("warning")), "{l:?}");
    }

    #[test]
    fn a_budget_that_does_not_fit_says_so_and_sizes_pgbouncer() {
        let l = lines(four_instances());
        let pad = " ".repeat(24);
        has(
            &l,
            "1. load per instance    λ = R / K = 7,600 / 4 = 1,900 req/s",
        );
        has(&l, &format!("{pad}→ max = 4"));
        has(&l, &format!("{pad}→ min = 2"));
        has(&l, "4. connection budget    K × max = 4 × 4 = 16 > max_connections − reserved = 15 − 3 = 12: DOES NOT FIT");
        has(&l, &format!("{pad}  default_pool_size = 10 server connections serve the total 7,600 req/s (same rule, λ = R), max_client_conn ≥ 16"));
        has(&l, "  PgBouncer (pool_mode = transaction)  default_pool_size = 10, min_pool_size = 8, max_client_conn = 16");
        has(&l, "warning: the 4 instances share one database server, which delivered at most 4,000 req/s to one client in the sweep; 7,600 req/s in total was never measured");
    }
}
