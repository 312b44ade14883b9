//! Where a per-request connection's time goes, from what the report
//! measured: its connect split into tcp, tls and startup; the extra its
//! first query pays on a new backend (against the pool's query); its close;
//! and, across an emulated link, how much of the connect and of the whole
//! request is round trips. A pure function of the report, stored in
//! report.json and printed after the table. For a pool strategy,
//! [`pool_lines`]: its `acquire` split into wait, open and check, its
//! `reset`, the connections it closed by cause and its storms.

use super::format;
use super::model::{
    round, Comparison, CpuShare, Explanation, Kind, Network, Report, RoundTripShare, StrategyReport,
};
use crate::metrics::Phase;

/// One fresh strategy's cost, explained. Times are means in milliseconds
/// (means add up; percentiles do not).
impl Explanation {
    /// One per fresh strategy that completed requests.
    pub fn all(report: &Report) -> Vec<Explanation> {
        let pool = Comparison::best_pool(&report.strategies).filter(|p| p.requests > 0);
        report
            .strategies
            .iter()
            .filter(|s| match s.kind {
                Kind::Fresh => true,
                // A watched application's setup is in its own verdict.
                Kind::Pool | Kind::Observed => false,
            })
            .filter_map(|s| {
                let mut e = Explanation::of(s, pool, report.network.as_ref())?;
                e.via = via(report, &s.name);
                e.statement_cache = s.settings.get("statement_cache") != Some(&false.into());
                e.cpu = CpuShare::of(s, e.connect_ms, report.host.cpus);
                Some(e)
            })
            .collect()
    }

    pub fn of(
        fresh: &StrategyReport,
        pool: Option<&StrategyReport>,
        network: Option<&Network>,
    ) -> Option<Explanation> {
        let mean = |s: &StrategyReport, p: Phase| {
            s.phases
                .get(p.as_str())
                .filter(|x| x.count > 0)
                .map(|x| round(x.mean_us / 1000.0, 3))
        };
        let connect_ms = mean(fresh, Phase::Connect)?;
        let query_ms = mean(fresh, Phase::Query)?;
        let total_ms = mean(fresh, Phase::Total)?;
        let pool_query_ms = pool.and_then(|p| mean(p, Phase::Query));
        let network = network.and_then(|n| {
            let rt = fresh.round_trips.as_ref()?;
            let (connect, request) = (rt.connect.as_ref()?, rt.request.as_ref()?);
            let pool_rt = pool
                .and_then(|p| p.round_trips.as_ref())
                .and_then(|r| r.request.as_ref());
            let at_rtt = |count: u64| round(count as f64 * n.rtt_ms, 3);
            Some(RoundTripShare {
                rtt_ms: n.rtt_ms,
                connect_round_trips: connect.p50,
                connect_round_trips_ms: at_rtt(connect.p50),
                request_round_trips: request.p50,
                request_round_trips_ms: at_rtt(request.p50),
                pool_request_round_trips: pool_rt.map(|c| c.p50),
                pool_request_round_trips_ms: pool_rt.map(|c| at_rtt(c.p50)),
                pool_total_ms: pool.and_then(|p| mean(p, Phase::Total)),
            })
        });
        Some(Explanation {
            strategy: fresh.name.clone(),
            pool: pool.map(|p| p.name.clone()),
            connect_ms,
            tcp_ms: mean(fresh, Phase::Tcp),
            tls_ms: mean(fresh, Phase::Tls),
            startup_ms: mean(fresh, Phase::Startup),
            query_ms,
            pool_query_ms,
            first_query_extra_ms: pool_query_ms.map(|p| round(query_ms - p, 3)),
            close_ms: mean(fresh, Phase::Close),
            total_ms,
            network,
            via: None,
            statement_cache: true,
            cpu: None,
        })
    }
}

impl CpuShare {
    /// The means of the strategy's setup CPU, when it was measured.
    pub fn of(s: &StrategyReport, connect_ms: f64, cpus: usize) -> Option<CpuShare> {
        let mean = |key: &str| {
            s.setup_cpu
                .get(key)
                .filter(|x| x.count > 0)
                .map(|x| round(x.mean_us / 1000.0, 3))
        };
        let client_ms = mean("client_us")?;
        let server_ms = mean("server_us");
        Some(CpuShare {
            client_ms,
            client_scram_ms: mean("client_scram_us"),
            server_ms,
            server_fork_ms: mean("server_fork_us"),
            server_auth_ms: mean("server_auth_us"),
            server_absent: s.server_cpu_absent.clone(),
            waiting_ms: round(
                (connect_ms - client_ms - server_ms.unwrap_or(0.0)).max(0.0),
                3,
            ),
            cpus,
        })
    }
}

/// The pooler a strategy connected through (its `via` in the scenario as
/// run), if any.
fn via(report: &Report, strategy: &str) -> Option<String> {
    report.scenario.resolved["strategies"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == strategy)?
        .get("via")?
        .as_str()
        .map(str::to_string)
}

/// Where a pool strategy's `acquire` and release time goes, and its
/// storms: lines for the terminal after the tables (none for a pool that
/// only waited, as every pool without lifecycle settings). A part of
/// `acquire` paid by every request is given by its p50 (a check with its
/// round trip); one paid by some requests by how many and its p50.
pub fn pool_lines(s: &StrategyReport, network: Option<&Network>) -> Vec<String> {
    let phase = |p: Phase| s.phases.get(p.as_str()).filter(|x| x.count > 0);
    let Some(acquire) = phase(Phase::Acquire) else {
        return Vec::new();
    };
    // The round trips each part makes are known from the settings (a check
    // is one query; a reset one per statement it sends): said beside the
    // time, which on a loaded machine is more than their count × the RTT.
    let rtt = network
        .filter(|n| n.rtt_ms > 0.0)
        .map(|n| {
            format!(
                ", at {} RTT",
                format::duration_us((n.rtt_ms * 1000.0).round() as u64)
            )
        })
        .unwrap_or_default();
    let trips = |n: usize, per: &str| {
        format!(
            " ({} per {per}{rtt})",
            format::plural(n, "round trip", "round trips")
        )
    };
    let lifecycle = &s.settings["lifecycle"];
    let reset_trips = match &lifecycle["reset"] {
        serde_json::Value::Object(o) => o
            .get("statements")
            .and_then(serde_json::Value::as_array)
            .map_or(1, Vec::len),
        _ => 1,
    };
    let mut every = Vec::new();
    let mut some = Vec::new();
    for (p, what) in [
        (Phase::Wait, "waiting for a free connection"),
        (Phase::Open, "a connection the pool opened"),
        (Phase::Check, "the checkout check"),
    ] {
        let Some(x) = phase(p) else { continue };
        // A part of every acquire, named when it is a real share of it (a
        // wait of a microsecond is none).
        if x.count >= acquire.count && x.p50_us >= 50 && x.p50_us * 20 >= acquire.p50_us {
            let said = match p {
                Phase::Check => trips(1, "checkout"),
                _ => String::new(),
            };
            every.push(format!(
                "{} {}{said}",
                p.as_str(),
                format::duration_us(x.p50_us),
            ));
        } else if x.count < acquire.count && p != Phase::Wait {
            some.push(format!(
                "  {} p50 {} on {} of {} acquires ({what})",
                p.as_str(),
                format::duration_us(x.p50_us),
                format::thousands(x.count),
                format::thousands(acquire.count)
            ));
        }
    }
    let reset = phase(Phase::Reset);
    let closed = s
        .timeline
        .iter()
        .filter_map(|t| t.churn.closed_by)
        .fold(crate::metrics::ClosedBy::default(), |a, b| a.plus(b));
    if every.is_empty() && some.is_empty() && reset.is_none() && closed.total() == 0 {
        return Vec::new();
    }
    let mut lines = vec![format!("where {}'s pool time goes (p50):", s.name)];
    if !every.is_empty() {
        lines.push(format!(
            "  acquire p50 {} = {}",
            format::duration_us(acquire.p50_us),
            every.join(" + ")
        ));
    }
    lines.extend(some);
    if let Some(r) = reset {
        lines.push(format!(
            "  reset p50 {} per release{}",
            format::duration_us(r.p50_us),
            trips(reset_trips, "release")
        ));
    }
    if closed.total() > 0 {
        lines.push(format!(
            "  closed {} in the measured seconds: {} lifetime, {} idle, {} failed check, {} error",
            format::plural(closed.total() as usize, "connection", "connections"),
            closed.lifetime,
            closed.idle,
            closed.check,
            closed.error
        ));
    }
    for storm in &s.storms {
        let p99 = |us: Option<u64>| us.map_or_else(|| "none".to_string(), format::duration_us);
        lines.push(format!(
            "  storm: round {} second {} replaced {}: p99 {} against {} (the other seconds' \
             median p99)",
            storm.round,
            storm.second,
            format::plural(storm.replaced as usize, "connection", "connections"),
            p99(storm.p99_us),
            p99(storm.others_p99_us)
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn baseline() -> Report {
        serde_json::from_str(include_str!("../../results/baseline/report.json")).unwrap()
    }

    #[test]
    fn a_fresh_strategy_through_a_pooler_is_explained_as_one() {
        let direct = Explanation::all(&baseline());
        assert_eq!(direct.len(), 1);
        assert_eq!(
            (direct[0].via.as_deref(), direct[0].statement_cache),
            (None, true)
        );

        let mut report = baseline();
        let fresh = report.strategies[0].name.clone();
        for s in report.scenario.resolved["strategies"]
            .as_array_mut()
            .unwrap()
        {
            if s["name"] == fresh.as_str() {
                s["via"] = "pgbouncer".into();
                s["statement_cache"] = false.into();
            }
        }
        report.strategies[0].settings["statement_cache"] = false.into();
        let e = &Explanation::all(&report)[0];
        assert_eq!(
            (e.via.as_deref(), e.statement_cache),
            (Some("pgbouncer"), false)
        );
        // In report.json: written when they say something, read back.
        let json = serde_json::to_value(e).unwrap();
        assert_eq!(
            (&json["via"], &json["statement_cache"]),
            (&"pgbouncer".into(), &false.into())
        );
        let plain = serde_json::to_value(&direct[0]).unwrap();
        assert!(plain.get("via").is_none() && plain.get("statement_cache").is_none());
        let back: Explanation = serde_json::from_value(plain).unwrap();
        assert!(back.statement_cache);
    }
}
