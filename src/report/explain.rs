//! Where a per-request connection's time goes, from what the report
//! measured: its connect split into tcp, tls and startup; the extra its
//! first query pays on a new backend (against the pool's query); its close;
//! and, across an emulated link, how much of the connect and of the whole
//! request is round trips. A pure function of the report, stored in
//! report.json and printed after the table.

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
