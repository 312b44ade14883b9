//! A sweep's plan, the prior of `poolbench plan --sweep`: pool sizes from a
//! closed-loop sweep, for a request rate and a p99 target, within the
//! server's connection budget (the search by measurement starts there).
//!
//! Model (M/M/c, Erlang C): requests arrive at λ = R/K per instance and hold
//! a connection for the measured query time S. A pool of c connections is
//! acceptable when its utilisation ρ = λS/c is at most 0.8 and the predicted
//! p99, the measured query p99 plus the Erlang C p99 of the acquire wait,
//! is within the target. The measurements come from a closed loop, so S and
//! the query p99 are taken at the smallest measured pool size ≥ c (the
//! server as busy as that pool makes it, or busier): conservative.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use super::erlang;
use super::sweep::pool_size::*;
use super::sweep::SWEEP_SCHEMA_VERSION;
use crate::error::bad_input;
use crate::report::format::{ms, ms_trimmed, plural, rps};

/// The highest utilisation a pool is planned for: above it, the queue for
/// connections grows sharply with any burst.
pub const MAX_UTILISATION: f64 = 0.8;
/// min = max when opening a connection costs this many service times.
pub const SETUP_COST_FACTOR: f64 = 10.0;
/// The largest pool size searched.
const SEARCH_LIMIT: u32 = 10_000;

/// What to plan for: the flags of `poolbench plan`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanRequest {
    /// Target traffic over all instances, requests per second (> 0).
    pub rps: f64,
    /// Target p99 of a request's database time, microseconds (> 0).
    pub p99_us: f64,
    /// Application instances, each with its own pool (>= 1).
    pub instances: u32,
    /// The server's max_connections; None: the one recorded in the sweep.
    pub max_connections: Option<u32>,
    /// Connections kept free for administration.
    pub reserved: u32,
    /// The sweep concurrency to plan from; None: the highest measured.
    pub concurrency: Option<u32>,
    /// The traffic most of the time, for the min size; None: `rps`.
    pub base_rps: Option<f64>,
}

/// The sweep plan's format: `prior` in plan's JSON
/// (docs/schema/plan.schema.json's `$defs/model_plan`).
pub const PRIOR_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize)]
pub struct PlanReport {
    pub schema_version: u32,
    pub sweep: String,
    pub scenario: String,
    pub concurrency: u32,
    pub target: Target,
    pub max_size: u32,
    pub min_size: u32,
    pub min_reason: String,
    /// The candidate pool sizes tried, up to the chosen one.
    pub candidates: Vec<Candidate>,
    pub budget: Budget,
    pub pgbouncer: Option<PgBouncer>,
    pub libraries: Vec<Library>,
    pub break_even: Option<BreakEven>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub rps: f64,
    pub p99_ms: f64,
    pub instances: u32,
    pub rps_per_instance: f64,
    pub base_rps: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub pool_size: u32,
    /// The measured point whose service time stands for this size.
    pub measured_pool_size: usize,
    pub service_time_mean_ms: f64,
    pub query_p99_ms: f64,
    pub utilisation: f64,
    /// Erlang C; null when the queue is unstable (ρ ≥ 1).
    pub p_wait: Option<f64>,
    pub acquire_p99_ms: Option<f64>,
    pub predicted_p99_ms: Option<f64>,
    pub ok: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Budget {
    /// Null when unknown (not in the sweep and no --max-connections).
    pub max_connections: Option<u32>,
    pub reserved: u32,
    pub available: Option<u32>,
    /// instances × max_size.
    pub needed: u32,
    pub fits: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PgBouncer {
    /// True when the pools do not fit the budget directly.
    pub recommended: bool,
    /// Server connections for the total load R.
    pub default_pool_size: u32,
    pub min_pool_size: u32,
    /// Client connections PgBouncer must accept: instances × max_size.
    pub max_client_conn: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Library {
    pub library: String,
    pub settings: Vec<(String, String)>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BreakEven {
    pub fresh_total_p50_ms: f64,
    /// The chosen pool's query p50: a pooled request's time once it holds
    /// a connection. Not the sweep's total p50, which at a small pool is
    /// mostly the closed loop's wait for a connection, not pooling's cost.
    pub pool_query_p50_ms: f64,
    /// fresh total p50 − pool query p50.
    pub saved_ms_per_request: f64,
    /// saved_ms_per_request × R / 1000: seconds of waiting saved per second
    /// of traffic (= requests no longer in flight, by Little's law).
    pub saved_s_per_s: f64,
    /// Connections a per-request design opens per second at R.
    pub connections_per_s: f64,
    pub fresh_throughput_rps: f64,
}

/// A sweep.json, or the sweep directory holding it.
pub fn sweep_path(p: &Path) -> PathBuf {
    if p.is_dir() {
        p.join("sweep.json")
    } else {
        p.to_path_buf()
    }
}

/// The largest sweep.json read (a sweep keeps no timeline: a few KB per
/// point).
pub const MAX_SWEEP_BYTES: u64 = 64 << 20;

pub fn read_sweep(path: &Path) -> Result<SweepReport> {
    let shown = path.display();
    let bytes = crate::input::read_object_capped(path, MAX_SWEEP_BYTES, "sweep")
        .map_err(|e| bad_input(format!("{shown}: {e}")))?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| bad_input(format!("{shown}: not JSON: {e}")))?;
    if value.get("kind").and_then(|k| k.as_str()) != Some(SWEEP_KIND) {
        return Err(bad_input(format!(
            "{shown}: not a sweep.json (a report.json of `run`?): plan reads the sweep.json \
             written by `poolbench sweep`"
        )));
    }
    match value.get("schema_version").and_then(|v| v.as_u64()) {
        Some(v) if v == u64::from(SWEEP_SCHEMA_VERSION) => {}
        other => {
            return Err(bad_input(format!(
                "{shown}: sweep schema_version {} is not supported (this poolbench reads {})",
                other.map_or("missing".into(), |v| v.to_string()),
                SWEEP_SCHEMA_VERSION
            )))
        }
    }
    serde_json::from_value(value)
        .map_err(|e| bad_input(format!("{shown}: malformed sweep.json: {e}")))
}

/// The measured point standing for pool size `c`: the smallest measured
/// size ≥ c, or the largest.
fn point_for<'a>(points: &[&'a SweepPoint], c: u32) -> Option<&'a SweepPoint> {
    points
        .iter()
        .find(|p| p.pool_size >= c as usize)
        .or_else(|| points.last())
        .copied()
}

fn candidate(
    points: &[&SweepPoint],
    c: u32,
    lambda_per_us: f64,
    target_us: f64,
) -> Option<Candidate> {
    let p = point_for(points, c)?;
    let s = p.service_time_mean_us;
    let a = lambda_per_us * s;
    let rho = a / f64::from(c);
    let pw = erlang::p_wait(c, a);
    let wait = erlang::wait_quantile(c, a, s, 0.99);
    let predicted = wait.map(|w| p.query.p99_us as f64 + w);
    Some(Candidate {
        pool_size: c,
        measured_pool_size: p.pool_size,
        service_time_mean_ms: s / 1000.0,
        query_p99_ms: p.query.p99_us as f64 / 1000.0,
        utilisation: rho,
        p_wait: pw,
        acquire_p99_ms: wait.map(|w| w / 1000.0),
        predicted_p99_ms: predicted.map(|v| v / 1000.0),
        ok: rho <= MAX_UTILISATION && predicted.is_some_and(|v| v <= target_us),
    })
}

/// The smallest pool size meeting the target at `rps`, with the last 12
/// candidates tried.
fn search(points: &[&SweepPoint], rps: f64, target_us: f64) -> (Option<u32>, Vec<Candidate>) {
    let lambda_per_us = rps / 1e6;
    let mut tried = Vec::new();
    for c in 1..=SEARCH_LIMIT {
        let Some(cand) = candidate(points, c, lambda_per_us, target_us) else {
            break;
        };
        let ok = cand.ok;
        tried.push(cand);
        if ok {
            let skip = tried.len().saturating_sub(12);
            return (Some(c), tried.split_off(skip));
        }
    }
    let skip = tried.len().saturating_sub(12);
    (None, tried.split_off(skip))
}

pub fn plan(sweep: &SweepReport, path: &Path, req: &PlanRequest) -> Result<PlanReport> {
    let shown = path.display();
    let mut warnings = Vec::new();
    let concurrency = match req.concurrency {
        Some(c) => {
            if !sweep.points.iter().any(|p| p.concurrency == c) {
                return Err(bad_input(format!(
                    "--concurrency {c}: {shown} has no points at that concurrency (it has {})",
                    list(&sweep.settings.concurrency)
                )));
            }
            c
        }
        None => sweep
            .points
            .iter()
            .map(|p| p.concurrency)
            .max()
            .ok_or_else(|| {
                bad_input(format!(
                    "{shown} has no measured points{}: run the sweep again",
                    if sweep.interrupted {
                        " (it was interrupted)"
                    } else {
                        ""
                    }
                ))
            })?,
    };
    let points: Vec<&SweepPoint> = sweep
        .points_at(concurrency)
        .into_iter()
        .filter(|p| p.requests > 0 && p.service_time_mean_us > 0.0 && !p.partial)
        .collect();
    if points.is_empty() {
        return Err(bad_input(format!(
            "{shown}: no point at concurrency {concurrency} completed a request: nothing to plan from"
        )));
    }
    if sweep.interrupted {
        warnings.push("the sweep was interrupted: some pool sizes were not measured".into());
    }
    let k = req.instances;
    let lambda = req.rps / f64::from(k);
    let target_us = req.p99_us;
    let base_rps = req.base_rps.unwrap_or(req.rps);
    if base_rps > req.rps {
        return Err(bad_input(format!(
            "--base-rps {base_rps} is above --rps {}: the base load is the traffic most of the \
             time, the target its peak",
            req.rps
        )));
    }

    // Impossible targets, each with the number that rules it out.
    let best_query_p99 = points.iter().map(|p| p.query.p99_us).min().unwrap_or(0);
    if target_us < best_query_p99 as f64 {
        return Err(bad_input(format!(
            "--p99 {} ms cannot be met: the measured query phase alone has a p99 of {} ms at \
             best (pool {}), before any wait for a connection; no pool size makes queries \
             faster — make the queries faster or measure on a faster server",
            ms_trimmed(target_us),
            ms(best_query_p99 as f64),
            points
                .iter()
                .find(|p| p.query.p99_us == best_query_p99)
                .map_or(0, |p| p.pool_size)
        )));
    }
    let best = points
        .iter()
        .map(|p| p.throughput_rps)
        .fold(0.0f64, f64::max);
    if lambda > best {
        return Err(bad_input(format!(
            "--rps {} over {} is {} req/s per instance, above the best measured \
             throughput of {} req/s (at {concurrency} workers): the sweep never showed this \
             server doing that; add instances (--instances) or sweep with more workers",
            req.rps,
            plural(k as usize, "instance", "instances"),
            rps(lambda),
            rps(best)
        )));
    }
    if req.rps > best && k > 1 {
        warnings.push(format!(
            "the {k} instances share one database server, which delivered at most {} req/s \
             to one client in the sweep; {} req/s in total was never measured",
            rps(best),
            rps(req.rps)
        ));
    }

    let (found, candidates) = search(&points, lambda, target_us);
    let Some(max_size) = found else {
        let last = candidates.last();
        return Err(bad_input(format!(
            "no pool size up to {SEARCH_LIMIT} meets p99 ≤ {} ms at {} req/s per instance{}",
            ms_trimmed(target_us),
            rps(lambda),
            match last {
                Some(c) => format!(
                    ": the closest, pool {}, predicts {} ms (query p99 {} ms at pool {})",
                    c.pool_size,
                    c.predicted_p99_ms.map_or("∞".into(), |v| format!("{v:.3}")),
                    ms_trimmed(c.query_p99_ms * 1000.0),
                    c.measured_pool_size
                ),
                None => String::new(),
            }
        )));
    };
    let largest = points.last().map_or(0, |p| p.pool_size);
    if max_size as usize > largest {
        warnings.push(format!(
            "max_size {max_size} is above the largest measured pool size {largest}: its \
             service time is extrapolated from pool {largest}; sweep larger pools to confirm"
        ));
    }
    if max_size == 1 {
        warnings.push(
            "max_size 1 queues every request behind the one in flight, however slow: \
             consider 2 for headroom against a slow query"
                .into(),
        );
    }
    // `points` is not empty (checked above).
    let chosen = point_for(&points, max_size).unwrap_or(points[0]);
    let s_us = chosen.service_time_mean_us;

    // Min size: the base load's mean busy connections (Little's law), or
    // all of them when opening one costs many service times.
    let fresh = sweep.fresh_at(concurrency);
    let little = (base_rps / f64::from(k) * s_us / 1e6).ceil().max(1.0) as u32;
    let (min_size, min_reason) = match fresh {
        Some(f) if f.connect.p50_us as f64 >= SETUP_COST_FACTOR * s_us => (
            max_size,
            format!(
                "min = max: opening a connection (connect p50 {} ms) costs {:.0}× the service \
                 time ({} ms), ≥ {SETUP_COST_FACTOR:.0}×; a pool that grows during a burst \
                 makes the burst wait for connects, so keep it full",
                ms(f.connect.p50_us as f64),
                f.connect.p50_us as f64 / s_us,
                ms(s_us)
            ),
        ),
        _ => (
            little.min(max_size),
            format!(
                "min = ⌈λ_base·S⌉ = ⌈{} × {} ms⌉ = {} (Little's law: connections busy on \
                 average at the base load{}){}",
                rps(base_rps / f64::from(k)),
                ms(s_us),
                little,
                if req.base_rps.is_none() {
                    ", --base-rps defaults to --rps"
                } else {
                    ""
                },
                match fresh {
                    Some(f) => format!(
                        "; connect p50 {} ms is under {SETUP_COST_FACTOR:.0}× S",
                        ms(f.connect.p50_us as f64)
                    ),
                    None => "; no fresh strategy measured, so the setup-cost rule was not applied"
                        .into(),
                }
            ),
        ),
    };

    // PgBouncer sizing: one server-side pool for the total load.
    let (total_c, _) = search(&points, req.rps, target_us);
    let m = req
        .max_connections
        .or((sweep.server.max_connections > 0).then_some(sweep.server.max_connections));
    if let Some(m) = m.filter(|m| req.reserved >= *m) {
        return Err(bad_input(format!(
            "--reserved {} is not below max_connections {m} ({}): no connection would be \
             left for the application",
            req.reserved,
            if req.max_connections.is_some() {
                "--max-connections"
            } else {
                "the sweep's server"
            }
        )));
    }
    let available = m.map(|m| m - req.reserved);
    let needed = u32::try_from(crate::scenario::connection_budget(
        k as usize,
        max_size as usize,
    ))
    .unwrap_or(u32::MAX);
    let fits = available.map(|a| needed <= a);
    if m.is_none() {
        warnings.push(
            "the server's max_connections is unknown: pass --max-connections to check the budget"
                .into(),
        );
    }
    let pgbouncer = total_c.map(|c| {
        let total_s = point_for(&points, c).map_or(s_us, |p| p.service_time_mean_us);
        let pgb_min = if min_size == max_size {
            c
        } else {
            ((base_rps * total_s / 1e6).ceil().max(1.0) as u32).min(c)
        };
        PgBouncer {
            recommended: fits == Some(false),
            default_pool_size: c,
            min_pool_size: pgb_min,
            max_client_conn: needed,
        }
    });
    if fits == Some(false) {
        match (&pgbouncer, available) {
            (Some(p), Some(a)) if p.default_pool_size > a => warnings.push(format!(
                "even PgBouncer's {} server connections exceed the budget of {a}: raise \
                 max_connections or lower the load",
                p.default_pool_size
            )),
            (None, _) => warnings.push(
                "the total load cannot be served by one pool within the target either: \
                 PgBouncer alone will not fix this"
                    .into(),
            ),
            _ => {}
        }
    }

    let break_even = fresh.map(|f| {
        let saved = (f.total.p50_us as f64 - chosen.query.p50_us as f64) / 1000.0;
        BreakEven {
            fresh_total_p50_ms: f.total.p50_us as f64 / 1000.0,
            pool_query_p50_ms: chosen.query.p50_us as f64 / 1000.0,
            saved_ms_per_request: saved,
            saved_s_per_s: saved * req.rps / 1000.0,
            connections_per_s: req.rps * f.connections_per_request.max(1.0),
            fresh_throughput_rps: f.throughput_rps,
        }
    });

    Ok(PlanReport {
        schema_version: PRIOR_SCHEMA_VERSION,
        sweep: shown.to_string(),
        scenario: sweep.scenario.name.clone(),
        concurrency,
        target: Target {
            rps: req.rps,
            p99_ms: target_us / 1000.0,
            instances: k,
            rps_per_instance: lambda,
            base_rps,
        },
        max_size,
        min_size,
        min_reason,
        candidates,
        budget: Budget {
            max_connections: m,
            reserved: req.reserved,
            available,
            needed,
            fits,
        },
        libraries: libraries(min_size, max_size, pgbouncer.as_ref(), &sweep.server.engine),
        pgbouncer,
        break_even,
        warnings,
    })
}

/// The pool settings of the libraries applications use on the sweep's
/// engine (`engine` as report.json names it).
pub(crate) fn libraries(min: u32, max: u32, pgb: Option<&PgBouncer>, engine: &str) -> Vec<Library> {
    let lib = |name: &str, settings: &[(&str, String)], note: Option<&str>| Library {
        library: name.into(),
        settings: settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        note: note.map(String::from),
    };
    let sqlx = || {
        lib(
            "sqlx (Rust)",
            &[
                ("max_connections", max.to_string()),
                ("min_connections", min.to_string()),
            ],
            None,
        )
    };
    let hikari = || {
        lib(
            "HikariCP (Java)",
            &[
                ("maximumPoolSize", max.to_string()),
                ("minimumIdle", min.to_string()),
            ],
            None,
        )
    };
    let sqlalchemy = || {
        lib(
            "SQLAlchemy (Python)",
            &[
                ("pool_size", min.to_string()),
                ("max_overflow", (max - min).to_string()),
            ],
            Some("pool_size connections are kept; max_overflow more are opened under load and closed after"),
        )
    };
    if engine != "postgresql" {
        return vec![
            lib(
                "aiomysql (Python)",
                &[("minsize", min.to_string()), ("maxsize", max.to_string())],
                Some("create_pool(minsize=…, maxsize=…)"),
            ),
            hikari(),
            sqlx(),
            lib(
                "mysql_async (Rust)",
                &[("PoolConstraints::new", format!("({min}, {max})"))],
                None,
            ),
            sqlalchemy(),
        ];
    }
    let mut out = vec![
        lib(
            "deadpool-postgres (Rust)",
            &[("max_size", max.to_string())],
            Some("no min setting: acquire min connections at startup to pre-open them"),
        ),
        sqlx(),
        lib(
            "bb8 (Rust)",
            &[
                ("max_size", max.to_string()),
                ("min_idle", format!("Some({min})")),
            ],
            None,
        ),
        hikari(),
        lib(
            "asyncpg (Python)",
            &[("min_size", min.to_string()), ("max_size", max.to_string())],
            None,
        ),
        sqlalchemy(),
    ];
    if let Some(p) = pgb {
        out.push(lib(
            "PgBouncer (pool_mode = transaction)",
            &[
                ("default_pool_size", p.default_pool_size.to_string()),
                ("min_pool_size", p.min_pool_size.to_string()),
                ("max_client_conn", p.max_client_conn.to_string()),
            ],
            Some("server connections for the total load; max_client_conn at least instances × max_size, whose pools then connect to PgBouncer"),
        ));
    }
    out
}

fn list(v: &[u32]) -> String {
    v.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::report::{Host, Server, Tool};
    use crate::sizing::sweep::{Percentiles, SweepScenario, SweepSettings};

    #[test]
    fn mysql_plans_name_aiomysql_and_hikaricp() {
        let libs = libraries(2, 4, None, "mariadb");
        let of = |name: &str| -> Vec<String> {
            let lib = libs.iter().find(|l| l.library.starts_with(name));
            let lib = lib.unwrap_or_else(|| panic!("no {name}"));
            lib.settings
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect()
        };
        assert_eq!(of("aiomysql"), ["minsize=2", "maxsize=4"]);
        assert_eq!(of("HikariCP"), ["maximumPoolSize=4", "minimumIdle=2"]);
        assert!(!libs.iter().any(|l| l.library.starts_with("asyncpg")));
    }

    /// A percentile set with a mean, p50 and p99 (p90 and p99.9 follow).
    fn pct(mean_us: f64, p50_us: u64, p99_us: u64) -> Percentiles {
        Percentiles {
            mean_us,
            p50_us,
            p90_us: p99_us,
            p99_us,
            p999_us: p99_us,
        }
    }

    fn point(pool_size: usize, rps: f64, s_us: f64, query_p99_us: u64) -> SweepPoint {
        SweepPoint {
            concurrency: 8,
            pool_size,
            requests: (rps * 2.0) as u64,
            errors: 0,
            error_classes: BTreeMap::new(),
            throughput_rps: rps,
            total: pct(s_us + 500.0, 1500, query_p99_us + 500),
            acquire: pct(100.0, 50, 400),
            query: pct(s_us, s_us as u64, query_p99_us),
            service_time_mean_us: s_us,
            startup_ms: 10.0,
            partial: false,
        }
    }

    /// A sweep at 8 workers whose numbers make the plan computable by hand:
    ///
    /// | pool | req/s | S (query mean) | query p99 |
    /// |------|-------|----------------|-----------|
    /// | 1    |   900 |  900 µs        | 1.5 ms    |
    /// | 2    | 1,800 |  950 µs        | 1.8 ms    |
    /// | 4    | 3,500 | 1000 µs        | 2.0 ms    |
    /// | 8    | 4,000 | 1000 µs        | 2.0 ms    |
    ///
    /// Pool total p50 is 1.5 ms everywhere; the fresh strategy's total p50 is
    /// 8 ms, its connect p50 `connect_p50_us`, 150 req/s, one connection per
    /// request. The server's max_connections is 10.
    pub(crate) fn known_sweep(connect_p50_us: u64) -> SweepReport {
        SweepReport {
            schema_version: SWEEP_SCHEMA_VERSION,
            kind: SWEEP_KIND.into(),
            tool: Tool::current(),
            started_at: "2026-01-01T00:00:00Z".into(),
            interrupted: false,
            host: Host::current(),
            server: Server {
                engine: "postgresql".into(),
                version: "15.18".into(),
                auth_method: "scram-sha-256".into(),
                ssl: true,
                max_connections: 10,
                embedded: true,
                dsn: "postgres://poolbench:****@127.0.0.1:5432/postgres".into(),
                source: "embedded".into(),
            },
            scenario: SweepScenario {
                name: "known".into(),
                path: "known.toml".into(),
                sha256: "0".repeat(64),
                axis: PoolSizeScenario {
                    template: "pool".into(),
                    recycling: "fast".into(),
                    wait_timeout_ms: None,
                    fresh_strategy: Some("per-request".into()),
                },
            },
            settings: SweepSettings {
                axis: PoolSizeSettings {
                    pool_sizes: vec![1, 2, 4, 8],
                    concurrency: vec![8],
                },
                duration_s: 2.0,
                warmup_s: 0.0,
                seed: 1,
            },
            points: vec![
                point(1, 900.0, 900.0, 1500),
                point(2, 1800.0, 950.0, 1800),
                point(4, 3500.0, 1000.0, 2000),
                point(8, 4000.0, 1000.0, 2000),
            ],
            analysis: PoolSizeAnalysis {
                fresh: vec![FreshPoint {
                    concurrency: 8,
                    requests: 300,
                    errors: 0,
                    throughput_rps: 150.0,
                    total: pct(8200.0, 8000, 12_000),
                    connect: pct(5200.0, connect_p50_us, 9000),
                    query: pct(1000.0, 1000, 2000),
                    close: pct(100.0, 100, 200),
                    connections_per_request: 1.0,
                }],
                per_concurrency: Vec::new(),
            },
            copies: crate::report::Copies::default(),
        }
    }

    /// 2,000 req/s on one instance at p99 ≤ 5 ms, base load 1,500 req/s,
    /// the sweep's max_connections.
    pub(crate) fn one_instance() -> PlanRequest {
        PlanRequest {
            rps: 2000.0,
            p99_us: 5000.0,
            instances: 1,
            max_connections: None,
            reserved: 3,
            concurrency: None,
            base_rps: Some(1500.0),
        }
    }

    /// 7,600 req/s over 4 instances (1,900 each) at p99 ≤ 5 ms, on a server
    /// of 15 connections.
    pub(crate) fn four_instances() -> PlanRequest {
        PlanRequest {
            rps: 7600.0,
            instances: 4,
            max_connections: Some(15),
            base_rps: None,
            ..one_instance()
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6 * b.abs().max(1.0)
    }

    fn plan_of(sweep: &SweepReport, req: &PlanRequest) -> PlanReport {
        plan(sweep, Path::new("known/sweep.json"), req).unwrap()
    }

    fn setting<'a>(r: &'a PlanReport, library: &str) -> Vec<(&'a str, &'a str)> {
        r.libraries
            .iter()
            .find(|l| l.library.starts_with(library))
            .unwrap_or_else(|| panic!("no {library} in {:?}", r.libraries))
            .settings
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn one_instance_gets_the_smallest_pool_meeting_the_target() {
        // λ = 2,000 req/s = 0.002 /µs. Candidate c uses the smallest measured
        // pool ≥ c: a = λ·S, ρ = a/c, Erlang B by B(k) = a·B(k−1)/(k + a·B(k−1)),
        // C = c·B/(c − a(1 − B)), acquire p99 = S/(c − a)·ln(C/0.01).
        // - c = 1 (pool 1, S = 900 µs): a = 1.8 ≥ 1, unstable.
        // - c = 2 (pool 2, S = 950 µs): a = 1.9, ρ = 0.95 > 0.8.
        //   B = 36.1/94.1, C = 72.2/78 = 0.92564.
        // - c = 3 (pool 4, S = 1 ms): a = 2, ρ = 2/3; B = 4/19,
        //   C = (12/19)/(27/19) = 4/9; acquire p99 = 1 ms·ln(400/9) = 3.794 ms;
        //   predicted 2 + 3.794 = 5.794 ms > 5: too slow.
        // - c = 4 (pool 4): ρ = 0.5; B = 2/21, C = (8/21)/(46/21) = 4/23;
        //   acquire p99 = 0.5 ms·ln(400/23) = 1.428 ms; predicted 3.428 ms ≤ 5.
        // max = 4. min: connect p50 5 ms < 10 × S = 10 ms, so Little's law at
        // the base load: ⌈1,500/s × 1 ms⌉ = ⌈1.5⌉ = 2.
        let r = plan_of(&known_sweep(5000), &one_instance());
        assert_eq!((r.max_size, r.min_size), (4, 2));
        assert_eq!(r.concurrency, 8);
        assert!(r.min_reason.contains("Little's law"), "{}", r.min_reason);

        let c = &r.candidates;
        assert_eq!(
            c.iter().map(|c| c.pool_size).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        assert_eq!(
            c.iter().map(|c| c.measured_pool_size).collect::<Vec<_>>(),
            [1, 2, 4, 4]
        );
        assert_eq!(
            c.iter().map(|c| c.ok).collect::<Vec<_>>(),
            [false, false, false, true]
        );
        assert!(close(c[0].utilisation, 1.8));
        assert_eq!(c[0].p_wait, None);
        assert_eq!(c[0].predicted_p99_ms, None);
        assert!(close(c[1].utilisation, 0.95));
        assert!(close(c[1].p_wait.unwrap(), 72.2 / 78.0));
        assert!(close(c[2].utilisation, 2.0 / 3.0));
        assert!(close(c[2].p_wait.unwrap(), 4.0 / 9.0));
        assert!(close(c[2].acquire_p99_ms.unwrap(), (400.0f64 / 9.0).ln()));
        assert!(close(
            c[2].predicted_p99_ms.unwrap(),
            2.0 + (400.0f64 / 9.0).ln()
        ));
        assert!(close(c[3].p_wait.unwrap(), 4.0 / 23.0));
        assert!(close(
            c[3].acquire_p99_ms.unwrap(),
            0.5 * (400.0f64 / 23.0).ln()
        ));
        assert!(close(c[3].predicted_p99_ms.unwrap(), 3.427_985_165_589_416));

        // Budget: 1 × 4 = 4 ≤ 10 − 3 = 7 (the sweep's max_connections).
        let b = &r.budget;
        assert_eq!(
            (b.max_connections, b.available, b.needed, b.fits),
            (Some(10), Some(7), 4, Some(true))
        );
        // PgBouncer for the total load is the same pool here, not needed.
        let p = r.pgbouncer.as_ref().unwrap();
        assert!(!p.recommended);
        assert_eq!(
            (p.default_pool_size, p.min_pool_size, p.max_client_conn),
            (4, 2, 4)
        );

        // Each library's own names for max 4, min 2.
        assert_eq!(setting(&r, "deadpool-postgres"), [("max_size", "4")]);
        assert_eq!(
            setting(&r, "sqlx"),
            [("max_connections", "4"), ("min_connections", "2")]
        );
        assert_eq!(
            setting(&r, "bb8"),
            [("max_size", "4"), ("min_idle", "Some(2)")]
        );
        assert_eq!(
            setting(&r, "HikariCP"),
            [("maximumPoolSize", "4"), ("minimumIdle", "2")]
        );
        assert_eq!(
            setting(&r, "asyncpg"),
            [("min_size", "2"), ("max_size", "4")]
        );
        assert_eq!(
            setting(&r, "SQLAlchemy"),
            [("pool_size", "2"), ("max_overflow", "2")]
        );

        // Break-even: 8 ms fresh against pool 4's query p50 of 1 ms (not
        // its total p50 of 1.5 ms, which holds the sweep's wait for a
        // connection) saves 7 ms per request, 7 ms × 2,000/s = 14 s of
        // waiting per second.
        let be = r.break_even.as_ref().unwrap();
        assert!(close(be.pool_query_p50_ms, 1.0));
        assert!(close(be.saved_ms_per_request, 7.0));
        assert!(close(be.saved_s_per_s, 14.0));
        assert!(close(be.connections_per_s, 2000.0));
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    }

    #[test]
    fn pools_over_the_budget_get_a_pgbouncer_suggestion() {
        // Per instance λ = 1,900 req/s: c = 3 gives a = 1.9, C(3, 1.9) =
        // 0.39855, acquire p99 = 1 ms/1.1·ln(39.855) = 3.350 ms, predicted
        // 5.350 ms > 5; c = 4: C(4, 1.9) = 0.15028, acquire p99 =
        // 1 ms/2.1·ln(15.028) = 1.290 ms, predicted 3.290 ms ≤ 5: max = 4.
        // min = ⌈1,900/s × 1 ms⌉ = 2 (no --base-rps: the base is the peak).
        // Budget: 4 × 4 = 16 > 15 − 3 = 12: does not fit.
        // PgBouncer serves the total λ = 7,600 req/s, a = 7.6 (S = 1 ms for
        // every c ≥ 3): c ≤ 7 unstable; c = 8, ρ = 0.95; c = 9, ρ = 0.844 >
        // 0.8 (although its predicted p99, 2 + 2.844 ms, would pass);
        // c = 10: ρ = 0.76, B(10, 7.6) = 0.10388, C = 0.32569, acquire p99 =
        // 1 ms/2.4·ln(32.569) = 1.451 ms, predicted 3.451 ms ≤ 5:
        // default_pool_size = 10 ≤ 12, min_pool_size = ⌈7.6⌉ = 8,
        // max_client_conn = 4 × 4 = 16.
        let r = plan_of(&known_sweep(5000), &four_instances());
        assert_eq!((r.max_size, r.min_size), (4, 2));
        assert!(close(r.target.rps_per_instance, 1900.0));
        let last = r.candidates.last().unwrap();
        assert!(close(last.p_wait.unwrap(), 0.150_279_638_833_473_6));
        assert!(close(last.predicted_p99_ms.unwrap(), 3.290_434_630_675_302));
        let b = &r.budget;
        assert_eq!(
            (b.max_connections, b.available, b.needed, b.fits),
            (Some(15), Some(12), 16, Some(false))
        );
        let p = r.pgbouncer.as_ref().unwrap();
        assert!(p.recommended);
        assert_eq!(
            (p.default_pool_size, p.min_pool_size, p.max_client_conn),
            (10, 8, 16)
        );
        assert_eq!(
            setting(&r, "PgBouncer"),
            [
                ("default_pool_size", "10"),
                ("min_pool_size", "8"),
                ("max_client_conn", "16")
            ]
        );
        // 7,600 req/s in total is more than the 4,000 the server ever did.
        assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
        assert!(
            r.warnings[0].contains("at most 4,000 req/s"),
            "{:?}",
            r.warnings
        );
        let be = r.break_even.as_ref().unwrap();
        assert!(close(be.saved_s_per_s, 7.0 * 7.6));
    }

    #[test]
    fn costly_connects_keep_the_pool_full() {
        // connect p50 12 ms ≥ 10 × S (1 ms): min = max = 4, and PgBouncer's
        // min_pool_size follows its default_pool_size.
        let r = plan_of(&known_sweep(12_000), &one_instance());
        assert_eq!((r.max_size, r.min_size), (4, 4));
        assert!(r.min_reason.starts_with("min = max"), "{}", r.min_reason);
        let p = r.pgbouncer.as_ref().unwrap();
        assert_eq!((p.default_pool_size, p.min_pool_size), (4, 4));
        assert_eq!(
            setting(&r, "SQLAlchemy"),
            [("pool_size", "4"), ("max_overflow", "0")]
        );
    }

    #[test]
    fn without_a_fresh_strategy_there_is_no_break_even() {
        let mut sweep = known_sweep(5000);
        sweep.analysis.fresh.clear();
        let r = plan_of(&sweep, &one_instance());
        assert_eq!((r.max_size, r.min_size), (4, 2));
        assert!(r.break_even.is_none());
        assert!(
            r.min_reason.contains("no fresh strategy measured"),
            "{}",
            r.min_reason
        );
    }

    #[test]
    fn impossible_targets_are_refused_with_the_number_that_rules_them_out() {
        let sweep = known_sweep(5000);
        let refuse = |req: PlanRequest| {
            let err = plan(&sweep, Path::new("known/sweep.json"), &req).unwrap_err();
            assert_eq!(
                crate::error::kind_of(&err),
                Some(crate::error::Kind::BadInput)
            );
            err.to_string()
        };
        // The fastest query p99 measured is 1.5 ms (pool 1).
        let e = refuse(PlanRequest {
            p99_us: 1000.0,
            ..one_instance()
        });
        assert!(e.contains("--p99 1 ms cannot be met"), "{e}");
        assert!(e.contains("p99 of 1.500 ms at best (pool 1)"), "{e}");
        // 5,000 req/s on one instance: the sweep's best is 4,000.
        let e = refuse(PlanRequest {
            rps: 5000.0,
            base_rps: None,
            ..one_instance()
        });
        assert!(
            e.contains("above the best measured throughput of 4,000 req/s"),
            "{e}"
        );
        let e = refuse(PlanRequest {
            concurrency: Some(3),
            ..one_instance()
        });
        assert!(
            e.contains("no points at that concurrency (it has 8)"),
            "{e}"
        );
        let e = refuse(PlanRequest {
            base_rps: Some(3000.0),
            ..one_instance()
        });
        assert!(e.contains("--base-rps 3000 is above --rps 2000"), "{e}");
    }
}
