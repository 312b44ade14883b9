//! The query mix and the execution of one request: pick a query by weight,
//! draw its parameters, get connection(s) from the strategy's source, run
//! the statements (one after another, in a transaction, or in parallel),
//! give the connection(s) back, and time every phase.

pub mod params;

use std::time::Instant;

use anyhow::Result;
use futures_util::TryStreamExt;
use tokio_postgres::Client;

use crate::error::bad_input;
use crate::metrics::{Phase, Timings};
use crate::scenario::{Query, QueryMode};
use crate::strategy::{Lease, RequestError, Source};
use params::{can_bind, Generator, Rng, Value};

/// The scenario's queries, ready to draw from.
#[derive(Debug, Clone)]
pub struct Mix {
    pub queries: Vec<QueryPlan>,
    /// Running sums of the weights, for picking by weight.
    cumulative: Vec<u64>,
}

#[derive(Debug, Clone)]
pub struct QueryPlan {
    pub name: String,
    pub mode: QueryMode,
    pub statements: Vec<StatementPlan>,
}

#[derive(Debug, Clone)]
pub struct StatementPlan {
    pub sql: String,
    pub params: Vec<Generator>,
}

impl Mix {
    pub fn new(queries: &[Query]) -> Mix {
        let mut total = 0u64;
        let cumulative = queries
            .iter()
            .map(|q| {
                total += u64::from(q.weight);
                total
            })
            .collect();
        let queries = queries
            .iter()
            .map(|q| QueryPlan {
                name: q.name.clone(),
                mode: q.mode,
                statements: q
                    .statements
                    .iter()
                    .map(|s| StatementPlan {
                        sql: s.sql.clone(),
                        params: s.params.iter().map(Generator::new).collect(),
                    })
                    .collect(),
            })
            .collect();
        Mix {
            queries,
            cumulative,
        }
    }

    /// The index of a query, drawn by weight (the scenario guarantees the
    /// weights sum to more than 0).
    pub fn pick(&self, rng: &mut Rng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0);
        if total == 0 {
            return 0;
        }
        let x = rng.below(total);
        self.cumulative.partition_point(|&c| c <= x)
    }

    /// Draws every parameter of a query: one `Vec` per statement.
    pub fn draw(&self, query: usize, rng: &mut Rng) -> Vec<Vec<Value>> {
        self.queries[query]
            .statements
            .iter()
            .map(|s| s.params.iter().map(|g| g.draw(rng)).collect())
            .collect()
    }

    /// Prepares every statement once on `client` and checks that each
    /// generator's values can be bound to the parameter type the server
    /// expects, so a mismatch stops the run before it starts (exit 2).
    pub async fn check_against(&self, client: &Client) -> Result<()> {
        for q in &self.queries {
            for (i, s) in q.statements.iter().enumerate() {
                let where_ = format!("query `{}`, statement {}", q.name, i + 1);
                let stmt = client.prepare(&s.sql).await.map_err(|e| {
                    bad_input(format!(
                        "{where_}: the server rejects it: {}",
                        crate::backend::postgres::describe_pg_error(&e)
                    ))
                })?;
                if stmt.params().len() != s.params.len() {
                    return Err(bad_input(format!(
                        "{where_}: the server expects {} parameters, the scenario gives {}",
                        stmt.params().len(),
                        s.params.len()
                    )));
                }
                for (n, (generator, ty)) in s.params.iter().zip(stmt.params()).enumerate() {
                    let samples: Vec<Value> = match generator {
                        Generator::Choice(items) => items.clone(),
                        g => vec![g.draw(&mut Rng::new(0))],
                    };
                    if let Some(bad) = samples.iter().find(|v| !can_bind(v, ty)) {
                        return Err(bad_input(format!(
                            "{where_}: ${} has type {ty} on the server, and {bad:?} cannot be \
                             bound to it (poolbench binds integers, floats, booleans and text; \
                             cast in SQL otherwise, e.g. ${}::text::{ty})",
                            n + 1,
                            n + 1
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Runs one request of query `query` with the drawn `values`.
pub async fn execute(
    source: &Source,
    plan: &QueryPlan,
    values: &[Vec<Value>],
) -> Result<Timings, RequestError> {
    let started = Instant::now();
    let mut timings = match plan.mode {
        QueryMode::Sequential | QueryMode::Transaction => {
            let t = on_one_connection(source, plan, values).await?;
            t
        }
        QueryMode::Parallel => in_parallel(source, plan, values).await?,
    };
    timings.total_us = micros(started.elapsed());
    Ok(timings)
}

/// Acquire, run every statement (in a transaction when asked), release.
async fn on_one_connection(
    source: &Source,
    plan: &QueryPlan,
    values: &[Vec<Value>],
) -> Result<Timings, RequestError> {
    let started = Instant::now();
    let lease = source.acquire().await?;
    let acquired = Instant::now();
    let result = if plan.mode == QueryMode::Transaction {
        in_transaction(&lease, plan, values).await
    } else {
        run_statements(&lease, plan.statements.iter().zip(values)).await
    };
    let queried = Instant::now();
    let close = lease.release().await;
    result?;
    let mut t = Timings {
        query_us: micros(queried - acquired),
        close_us: close.map(micros),
        ..Timings::default()
    };
    set_acquire(&mut t, source.acquire_phase(), micros(acquired - started));
    Ok(t)
}

async fn in_transaction(
    lease: &Lease,
    plan: &QueryPlan,
    values: &[Vec<Value>],
) -> Result<(), RequestError> {
    let client = lease.client();
    client
        .batch_execute("BEGIN")
        .await
        .map_err(|e| RequestError::pg(&e))?;
    match run_statements(lease, plan.statements.iter().zip(values)).await {
        Ok(()) => client
            .batch_execute("COMMIT")
            .await
            .map_err(|e| RequestError::pg(&e)),
        Err(e) => {
            // Leave the connection clean for its next user; if it is broken,
            // the pool's recycle check drops it.
            let _ = client.batch_execute("ROLLBACK").await;
            Err(e)
        }
    }
}

async fn run_statements<'a>(
    lease: &Lease,
    statements: impl Iterator<Item = (&'a StatementPlan, &'a Vec<Value>)>,
) -> Result<(), RequestError> {
    for (s, v) in statements {
        run_statement(lease, s, v).await?;
    }
    Ok(())
}

/// Prepares (or reuses) the statement, binds the values and reads every row,
/// as an application reading its result would.
async fn run_statement(
    lease: &Lease,
    s: &StatementPlan,
    values: &[Value],
) -> Result<(), RequestError> {
    let stmt = lease
        .prepare(&s.sql)
        .await
        .map_err(|e| RequestError::pg(&e))?;
    let rows = lease
        .client()
        .query_raw(&stmt, values.iter())
        .await
        .map_err(|e| RequestError::pg(&e))?;
    rows.try_for_each(|_| async { Ok(()) })
        .await
        .map_err(|e| RequestError::pg(&e))
}

/// Every statement at once, each on its own connection, as
/// `asyncio.gather` over a pool does. The request's acquire (or connect)
/// and query phases are those of its slowest branch.
async fn in_parallel(
    source: &Source,
    plan: &QueryPlan,
    values: &[Vec<Value>],
) -> Result<Timings, RequestError> {
    let branches = plan.statements.iter().zip(values).map(|(s, v)| async move {
        let started = Instant::now();
        let lease = source.acquire().await?;
        let acquired = Instant::now();
        let result = run_statement(&lease, s, v).await;
        let queried = Instant::now();
        let close = lease.release().await;
        result.map(|()| (acquired - started, queried - acquired, close))
    });
    let results = futures_util::future::join_all(branches).await;
    let mut t = Timings::default();
    let mut acquire_us = 0;
    for r in results {
        let (acquire, query, close) = r?;
        acquire_us = acquire_us.max(micros(acquire));
        t.query_us = t.query_us.max(micros(query));
        if let Some(c) = close {
            t.close_us = Some(t.close_us.unwrap_or(0).max(micros(c)));
        }
    }
    set_acquire(&mut t, source.acquire_phase(), acquire_us);
    Ok(t)
}

fn set_acquire(t: &mut Timings, phase: Phase, us: u64) {
    match phase {
        Phase::Connect => t.connect_us = Some(us),
        _ => t.acquire_us = Some(us),
    }
}

pub fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{Param, Statement};

    fn query(name: &str, weight: u32) -> Query {
        Query {
            name: name.into(),
            weight,
            mode: QueryMode::Sequential,
            statements: vec![Statement {
                sql: "SELECT $1".into(),
                params: vec![Param::Int { lo: 1, hi: 10 }],
            }],
        }
    }

    #[test]
    fn picks_follow_weights() {
        let mix = Mix::new(&[query("a", 8), query("zero", 0), query("b", 2)]);
        let mut rng = Rng::new(42);
        let mut counts = [0u32; 3];
        for _ in 0..100_000 {
            counts[mix.pick(&mut rng)] += 1;
        }
        assert_eq!(counts[1], 0, "a weight-0 query is never picked");
        let share_a = f64::from(counts[0]) / 100_000.0;
        assert!((share_a - 0.8).abs() < 0.01, "{share_a}");
    }

    #[test]
    fn same_seed_draws_the_same_requests() {
        let mix = Mix::new(&[query("a", 1), query("b", 1)]);
        let run = |seed| {
            let mut rng = Rng::for_worker(seed, 0);
            (0..50)
                .map(|_| {
                    let q = mix.pick(&mut rng);
                    (q, mix.draw(q, &mut rng))
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }
}
