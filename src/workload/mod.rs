//! The query mix and the execution of one request: pick a query by weight,
//! draw its parameters, get connection(s) from the strategy's source, run
//! the statements (one after another, in a transaction, or in parallel),
//! give the connection(s) back. The `query` phase is timed here; the
//! source times its own phases (connect or acquire, close).

pub mod params;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use smallvec::SmallVec;
use tokio_util::sync::CancellationToken;

use crate::backend::{Admin, Connection, Described, Statements};
use crate::engine::Service;
use crate::error::bad_input;
use crate::metrics::{
    micros, ErrorClass, Phase, PhaseTimings, PoolStatus, Recorder, RequestError, SqlState,
};
use crate::rng::Rng;
use crate::scenario::{Query, QueryMode};
use crate::source::{ConnectionSource, Lease};
use params::{Generator, Value};

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

impl QueryPlan {
    /// Each statement with its values, from a query's values as
    /// [`Mix::draw`] drew them.
    pub fn with_values<'a>(
        &'a self,
        values: &'a [Value],
    ) -> impl Iterator<Item = (&'a StatementPlan, &'a [Value])> + 'a {
        let mut rest = values;
        self.statements.iter().map(move |s| {
            let (mine, after) = rest.split_at(s.params.len().min(rest.len()));
            rest = after;
            (s, mine)
        })
    }
}

/// A request's parameter values, every statement's in one list: held in
/// place up to four (a point select's one), so drawing a request allocates
/// nothing (two `Vec`s a request before, one per statement and one around
/// them: docs/performance.md).
pub type Values = SmallVec<[Value; 4]>;

#[derive(Debug, Clone)]
pub struct StatementPlan {
    pub sql: String,
    pub params: Vec<Generator>,
    /// What the server said of its parameters (learnt by `check_against`):
    /// on PostgreSQL their types, which the values are encoded as and
    /// unnamed statements send so that they take one round trip.
    pub described: Described,
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
                        described: Described::default(),
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

    /// Draws every parameter of a query, its statements' one after
    /// another (`QueryPlan::with_values` splits them again).
    pub fn draw(&self, query: usize, rng: &mut Rng) -> Values {
        self.queries[query]
            .statements
            .iter()
            .flat_map(|s| &s.params)
            .map(|g| g.draw(rng))
            .collect()
    }

    /// Prepares every statement once on the session's `admin` connection
    /// and checks the server expects as many parameters as the scenario
    /// gives, and that each generator's values can be bound to the type the
    /// server expects (PostgreSQL's; MySQL reports none), so a mismatch
    /// stops the run before it starts (exit 2).
    pub async fn check_against(&mut self, admin: &impl Admin) -> Result<()> {
        for q in &mut self.queries {
            for (i, s) in q.statements.iter_mut().enumerate() {
                let where_ = format!("query `{}`, statement {}", q.name, i + 1);
                let described = admin.describe(&s.sql).await.map_err(|e| {
                    bad_input(format!("{where_}: the server rejects it: {}", e.message))
                })?;
                if described.param_count() != s.params.len() {
                    return Err(bad_input(format!(
                        "{where_}: the server expects {} parameters, the scenario gives {}",
                        described.param_count(),
                        s.params.len()
                    )));
                }
                for (n, (generator, ty)) in s.params.iter().zip(described.params()).enumerate() {
                    let samples: Vec<Value> = match generator {
                        Generator::Choice(items) => items.clone(),
                        g => vec![g.draw(&mut Rng::new(0))],
                    };
                    if let Some(bad) = samples.iter().find(|v| !ty.accepts(v)) {
                        return Err(bad_input(format!(
                            "{where_}: ${} has type {ty} on the server, and {bad:?} cannot be \
                             bound to it (poolbench binds integers, floats, booleans and text; \
                             cast in SQL otherwise, e.g. ${}::text::{ty})",
                            n + 1,
                            n + 1
                        )));
                    }
                    // A range wider than the column's type would fail at
                    // run time, request after request.
                    if let (Some((lo, hi)), Some((min, max))) =
                        (generator.int_range(), ty.int_bounds())
                    {
                        if lo < min || hi > max {
                            return Err(bad_input(format!(
                                "{where_}: ${} has type {ty} on the server, which holds \
                                 {min}..{max}, and its parameter draws {lo}..{hi}: narrow the \
                                 range, or cast in SQL (e.g. ${}::int8)",
                                n + 1,
                                n + 1
                            )));
                        }
                    }
                }
                s.described = described;
            }
        }
        Ok(())
    }
}

/// The requests of one strategy on one worker thread: the scenario's mix
/// run on connections from the strategy's source. This is what the engine
/// serves.
pub struct Requests {
    source: Arc<dyn ConnectionSource>,
    mix: Arc<Mix>,
    statements: Statements,
    /// Cancels the strategy's round: a pooler that loses named statements
    /// would fail every request the same way, so the first failure stops it.
    stop: CancellationToken,
}

/// Why a named statement went missing, and the fix.
const LOST_STATEMENT: &str = "the target lost a named prepared statement between two \
    requests: it is a pooler in transaction or statement mode without prepared-statement \
    support, which runs the next transaction on another server connection; the strategy \
    was stopped. Set `statement_cache = false` (unnamed statements) for it";

/// One drawn request: which query, and every statement's values.
pub struct Request {
    query: usize,
    values: Values,
}

impl Requests {
    pub fn new(
        source: Arc<dyn ConnectionSource>,
        mix: Arc<Mix>,
        statements: Statements,
        stop: CancellationToken,
    ) -> Requests {
        Requests {
            source,
            mix,
            statements,
            stop,
        }
    }

    /// One service per source (per worker thread); `stop` cancels the
    /// round.
    pub fn for_sources(
        sources: Vec<Arc<dyn ConnectionSource>>,
        mix: &Arc<Mix>,
        statements: Statements,
        stop: &CancellationToken,
    ) -> Vec<Arc<Requests>> {
        sources
            .into_iter()
            .map(|source| Arc::new(Requests::new(source, mix.clone(), statements, stop.clone())))
            .collect()
    }
}

impl Service for Requests {
    type Request = Request;

    fn draw(&self, rng: &mut Rng) -> Request {
        let query = self.mix.pick(rng);
        Request {
            query,
            values: self.mix.draw(query, rng),
        }
    }

    fn query_of(request: &Request) -> usize {
        request.query
    }

    // Not `async fn`s: each would be one more level around `run`'s future,
    // set up and moved on every request.
    fn call<'a>(
        &'a self,
        request: &'a Request,
    ) -> impl Future<Output = Result<PhaseTimings, RequestError>> + Send + 'a {
        self.run(request, None)
    }

    fn call_by<'a>(
        &'a self,
        request: &'a Request,
        start_by: tokio::time::Instant,
    ) -> impl Future<Output = Result<PhaseTimings, RequestError>> + Send + 'a {
        self.run(request, Some(start_by))
    }

    fn warm_up(&self) -> impl Future<Output = Result<Duration, RequestError>> + Send + '_ {
        self.source.warm_up()
    }

    fn pool_status(&self) -> Option<PoolStatus> {
        self.source.pool_status()
    }

    fn admits(&self) -> usize {
        self.source.admits()
    }

    fn hold(&self, n: usize) {
        self.source.hold(n);
    }

    fn poll_freed(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        self.source.poll_freed(cx)
    }

    fn connections_opened(&self) -> u64 {
        self.source.connections_opened()
    }

    fn drain_setups(&self, into: &mut Recorder) {
        self.source.drain_setups(into);
    }

    fn close(&self) {
        self.source.close();
    }
}

impl Requests {
    /// One request, its connection got by `start_by` when given.
    async fn run(
        &self,
        request: &Request,
        start_by: Option<tokio::time::Instant>,
    ) -> Result<PhaseTimings, RequestError> {
        let source = &*self.source;
        let plan = &self.mix.queries[request.query];
        let values = &request.values;
        // The modes' futures side by side in this one (no level of its own).
        let result = match plan.mode {
            QueryMode::Sequential | QueryMode::Transaction => {
                on_one_connection(source, plan, values, self.statements, start_by).await
            }
            QueryMode::Parallel => {
                in_parallel(source, plan, values, self.statements, start_by).await
            }
        };
        match result {
            Err(e)
                if self.statements == Statements::Named
                    && e.sqlstate == Some(SqlState::INVALID_SQL_STATEMENT_NAME) =>
            {
                self.stop.cancel();
                Err(RequestError {
                    message: format!("{}: {LOST_STATEMENT}", e.message),
                    ..e
                })
            }
            other => other,
        }
    }
}

/// A connection from `source`, given up at `start_by`: the timer is set
/// only when the connection is not there at once (nor is `acquire`'s
/// future, when the source has one ready).
async fn acquire_by(
    source: &dyn ConnectionSource,
    start_by: Option<tokio::time::Instant>,
) -> Result<(Lease, PhaseTimings), RequestError> {
    if let Some(got) = source.ready() {
        return Ok(got);
    }
    let mut acquire = source.acquire();
    let Some(by) = start_by else {
        return acquire.await;
    };
    if let Some(got) = futures_util::FutureExt::now_or_never(&mut acquire) {
        return got;
    }
    match tokio::time::timeout_at(by, acquire).await {
        Ok(got) => got,
        Err(_) => Err(RequestError::new(
            ErrorClass::RequestTimeout,
            "expired: still waiting for a connection when its request_timeout ran out; not sent",
        )),
    }
}

/// Acquire, run every statement (in a transaction when asked), release.
async fn on_one_connection(
    source: &dyn ConnectionSource,
    plan: &QueryPlan,
    values: &[Value],
    statements: Statements,
    start_by: Option<tokio::time::Instant>,
) -> Result<PhaseTimings, RequestError> {
    let (mut lease, mut t) = acquire_by(source, start_by).await?;
    // Where `acquire` ended, when the source read the clock there.
    let started = lease.got_at().unwrap_or_else(Instant::now);
    let result = if plan.mode == QueryMode::Transaction {
        // Boxed, as every path most requests do not take (the backend boxes
        // its MySQL calls for the same reason).
        Box::pin(in_transaction(&mut lease, plan, values, statements)).await
    } else {
        run_statements(&mut lease, plan.with_values(values), statements).await
    };
    t.set(Phase::Query, micros(started.elapsed()));
    let released = lease.release().await;
    result?;
    released.record(&mut t);
    Ok(t)
}

async fn in_transaction(
    lease: &mut Lease,
    plan: &QueryPlan,
    values: &[Value],
    statements: Statements,
) -> Result<(), RequestError> {
    lease.conn().simple("BEGIN").await?;
    match run_statements(lease, plan.with_values(values), statements).await {
        Ok(()) => lease.conn().simple("COMMIT").await,
        Err(e) => {
            // Leave the connection clean for its next user; if it is broken,
            // the pool's recycle check drops it.
            let _ = lease.conn().simple("ROLLBACK").await;
            Err(e)
        }
    }
}

async fn run_statements<'a>(
    lease: &mut Lease,
    plans: impl Iterator<Item = (&'a StatementPlan, &'a [Value])>,
    statements: Statements,
) -> Result<(), RequestError> {
    for (s, v) in plans {
        run_statement(lease, s, v, statements).await?;
    }
    Ok(())
}

/// Prepares (or reuses) the statement, binds the values and reads every row,
/// as an application reading its result would; or, unnamed, sends the SQL
/// with the values (and, on PostgreSQL, their types) at once.
fn run_statement<'a>(
    lease: &'a mut Lease,
    s: &'a StatementPlan,
    values: &'a [Value],
    statements: Statements,
) -> impl Future<Output = Result<(), RequestError>> + Send + 'a {
    // The connection's future itself: an `async fn` here would be one more
    // level around it, set up and moved on every request.
    lease.conn().run(&s.sql, &s.described, values, statements)
}

/// Every statement at once, each on its own connection, as
/// `asyncio.gather` over a pool does. Each phase of the request is that of
/// its slowest branch (and its round trips those of the branch with most).
async fn in_parallel(
    source: &dyn ConnectionSource,
    plan: &QueryPlan,
    values: &[Value],
    statements: Statements,
    start_by: Option<tokio::time::Instant>,
) -> Result<PhaseTimings, RequestError> {
    let branches = plan.with_values(values).map(|(s, v)| async move {
        let (mut lease, mut t) = acquire_by(source, start_by).await?;
        let started = lease.got_at().unwrap_or_else(Instant::now);
        let result = run_statement(&mut lease, s, v, statements).await;
        t.set(Phase::Query, micros(started.elapsed()));
        let released = lease.release().await;
        result?;
        released.record(&mut t);
        Ok::<_, RequestError>(t)
    });
    let mut t = PhaseTimings::default();
    for branch in futures_util::future::join_all(branches).await {
        let branch = branch?;
        for (phase, us) in branch.iter() {
            t.set_max(phase, us);
        }
        if let Some(n) = branch.round_trips() {
            t.set_round_trips(n);
        }
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Monitor;
    use crate::metrics::ErrorClass;
    use crate::scenario::{Param, Statement};

    /// A server that describes every statement the same way, and rejects
    /// the SQL `bad`.
    struct Describes(Described);

    struct NoMonitor;

    impl Monitor for NoMonitor {
        async fn backends(&mut self) -> Option<u64> {
            None
        }
    }

    impl Admin for Describes {
        type Target = Described;
        type Monitor<'a> = NoMonitor;

        async fn reach(target: &Described) -> Result<Describes> {
            Ok(Describes(target.clone()))
        }
        async fn facts(&self, _: Option<&str>) -> crate::report::Server {
            unreachable!("check_against asks only for descriptions")
        }
        async fn is_throwaway(&self) -> bool {
            unreachable!("check_against asks only for descriptions")
        }
        async fn setup(&self, _: &str) -> Result<(), RequestError> {
            unreachable!("check_against asks only for descriptions")
        }
        async fn describe(&self, sql: &str) -> Result<Described, RequestError> {
            if sql == "bad" {
                return Err(RequestError::new(
                    ErrorClass::Query("42601".into()),
                    "ERROR (42601): syntax error",
                )
                .with_sqlstate("42601"));
            }
            Ok(self.0.clone())
        }
        async fn clock_ms(&self) -> Option<f64> {
            None
        }
        fn monitor(&self) -> NoMonitor {
            NoMonitor
        }
    }

    #[tokio::test]
    async fn queries_are_checked_against_what_the_server_describes() {
        let mut mix = Mix::new(&[query("a", 1)]);
        let two = Describes::reach(&Described::MySql { params: 2 })
            .await
            .unwrap();
        let err = mix.check_against(&two).await.unwrap_err();
        assert_eq!(
            crate::error::kind_of(&err),
            Some(crate::error::Kind::BadInput)
        );
        assert_eq!(
            err.to_string(),
            "query `a`, statement 1: the server expects 2 parameters, the scenario gives 1"
        );

        let one = Describes(Described::MySql { params: 1 });
        mix.check_against(&one).await.unwrap();
        assert_eq!(
            mix.queries[0].statements[0].described,
            Described::MySql { params: 1 }
        );

        let mut bad = query("b", 1);
        bad.statements[0].sql = "bad".into();
        let err = Mix::new(&[bad]).check_against(&one).await.unwrap_err();
        assert_eq!(
            crate::error::kind_of(&err),
            Some(crate::error::Kind::BadInput)
        );
        assert_eq!(
            err.to_string(),
            "query `b`, statement 1: the server rejects it: ERROR (42601): syntax error"
        );
    }

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
    fn each_statement_gets_its_own_values() {
        let mut q = query("two", 1);
        q.statements.push(Statement {
            sql: "SELECT $1, $2".into(),
            params: vec![Param::Int { lo: 20, hi: 20 }, Param::Int { lo: 30, hi: 30 }],
        });
        let mix = Mix::new(&[q]);
        let values = mix.draw(0, &mut Rng::new(1));
        let split: Vec<(&str, &[Value])> = mix.queries[0]
            .with_values(&values)
            .map(|(s, v)| (s.sql.as_str(), v))
            .collect();
        assert_eq!(split.len(), 2);
        assert_eq!(split[0].0, "SELECT $1");
        assert!(matches!(split[0].1, [Value::Int(1..=10)]));
        assert_eq!(
            split[1],
            ("SELECT $1, $2", &[Value::Int(20), Value::Int(30)][..])
        );
        assert!(!values.spilled(), "four values or fewer are held in place");
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
