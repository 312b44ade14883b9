//! The sweep's points: each measured strategy's report turned into a point
//! of sweep.json, and the analysis of every concurrency. The command that
//! runs the grid is `commands/sweep.rs`; its files are written by
//! `view::export`, its table by `view::term::sweep`.

use super::model::*;
use crate::metrics::Phase;
use crate::report::{self, StrategyReport};
use crate::scenario::{QueryMode, Scenario};

fn phase(r: &StrategyReport, phase: Phase) -> Percentiles {
    r.phases
        .get(phase.as_str())
        .map(Percentiles::from)
        .unwrap_or_default()
}

pub fn pool_point(concurrency: u32, size: usize, r: &StrategyReport) -> SweepPoint {
    let query = phase(r, Phase::Query);
    SweepPoint {
        concurrency,
        pool_size: size,
        requests: r.requests,
        errors: r.error_count(),
        error_classes: r.errors.clone(),
        throughput_rps: r.throughput_rps,
        total: phase(r, Phase::Total),
        acquire: phase(r, Phase::Acquire),
        query,
        service_time_mean_us: query.mean_us,
        startup_ms: r.startup_ms,
        partial: false,
    }
}

pub fn fresh_point(concurrency: u32, r: &StrategyReport, connections: f64) -> FreshPoint {
    FreshPoint {
        concurrency,
        requests: r.requests,
        errors: r.error_count(),
        throughput_rps: r.throughput_rps,
        total: phase(r, Phase::Total),
        connect: phase(r, Phase::Connect),
        query: phase(r, Phase::Query),
        close: phase(r, Phase::Close),
        connections_per_request: connections,
    }
}

/// Connections a fresh request opens, weighted over the mix: one, or one
/// per statement for a parallel query. (Counted from the scenario, because
/// the strategy's own count includes the warm-up.)
pub fn connections_per_request(s: &Scenario) -> f64 {
    let (mut weighted, mut weights) = (0.0, 0.0);
    for q in &s.queries {
        let n = match q.mode {
            QueryMode::Parallel => q.statements.len(),
            QueryMode::Sequential | QueryMode::Transaction => 1,
        };
        weighted += f64::from(q.weight) * n as f64;
        weights += f64::from(q.weight);
    }
    if weights > 0.0 {
        report::round(weighted / weights, 3)
    } else {
        1.0
    }
}

pub fn analyse_all(sweep: &SweepReport) -> Vec<Analysis> {
    sweep
        .settings
        .concurrency
        .iter()
        .filter_map(|&c| {
            // A point cut short is shown, but neither fitted nor a knee.
            let whole: Vec<&SweepPoint> = sweep
                .points_at(c)
                .into_iter()
                .filter(|p| !p.partial)
                .collect();
            analyse(c, &whole)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_point_is_shown_but_never_the_knee() {
        let mut sweep = crate::sizing::plan::tests::known_sweep(5000);
        let knee = analyse_all(&sweep)[0].knee_pool_size;
        for p in sweep.points.iter_mut().filter(|p| p.pool_size == knee) {
            p.partial = true;
        }
        let cut = analyse_all(&sweep);
        assert_ne!(cut[0].knee_pool_size, knee);
        let table = crate::view::term::sweep::table(&sweep);
        assert!(table.contains("partial: interrupted"), "{table}");
    }
}
