//! Runs one strategy: fills its pool, starts `concurrency` closed-loop
//! workers through warm-up and the measured window, and collects what they
//! measured. Workers never lock or print; each owns a [`Recorder`] and hands
//! the collector one [`Interval`] per second through a channel.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::backend::postgres::Target;
use crate::metrics::Timings;
use crate::metrics::{
    new_histogram, summarize_phases, ErrorClass, Interval, Phase, Recorder, Summary,
};
use crate::report::{round, RoundStats, StrategyReport, TimelineRow};
use crate::scenario::{PoolSettings, RetryPolicy, Strategy, StrategyKind};
use crate::strategy::{PoolStatus, RequestError, Source};
use crate::workload::params::{Rng, Value};
use crate::workload::{execute, Mix};

/// What every strategy of a run shares.
pub struct RunContext<'a> {
    pub target: Target,
    pub mix: Arc<Mix>,
    pub duration: Duration,
    pub warmup: Duration,
    pub concurrency: u32,
    pub seed: u64,
    pub rounds: u32,
    /// Worker threads (shards): one per core by default.
    pub threads: usize,
    pub request_timeout: Duration,
    pub retry: Option<RetryPolicy>,
    /// Cancelled by Ctrl-C / SIGTERM.
    pub cancel: CancellationToken,
    /// Counts client backends once a second; not part of the results.
    pub monitor: Option<&'a Client>,
    pub show_progress: bool,
}

/// One worker thread per core, as pgbench's `-j` is usually set.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Live totals for the progress bar: relaxed atomics, no lock.
#[derive(Default)]
struct Live {
    requests: AtomicU64,
    errors: AtomicU64,
}

/// What one worker hands back.
struct WorkerEnd {
    recorder: Recorder,
    /// When this worker's last measured request ended.
    last_end: Option<Instant>,
}

/// What one round of one strategy measured, before it is summarised.
pub struct RoundResult {
    pub recorder: Recorder,
    pub timeline: Vec<TimelineRow>,
    /// From the start of the measured window to the end of its last request.
    pub measured: Duration,
    pub connections_opened: u64,
    /// Time to fill the pool to min_size (zero for fresh).
    pub startup: Duration,
    /// Threads the workers ran on (and pools the strategy was split into).
    pub shards: u32,
}

/// Runs one round of `strategy`: new sources (new pools, filled to
/// min_size), warm-up, then the measured window.
///
/// The workers run thread-per-core, like pgbench's `-j`: each shard is an
/// OS thread with a single-threaded runtime, its share of the workers, and
/// its own connection source, so a request and its connection's I/O stay on
/// one thread. A pool is split across the shards (max_size and min_size
/// divided as evenly as they go), like an application running one process
/// per core, each with its pool.
pub async fn run_round(ctx: &RunContext<'_>, strategy: &Strategy, round: u32) -> RoundResult {
    let kinds = split_across_shards(&strategy.kind, shard_count(ctx, &strategy.kind));
    let sources: Vec<Arc<Source>> = kinds
        .iter()
        .map(|k| Arc::new(Source::new(k, &ctx.target)))
        .collect();
    let queries = ctx.mix.queries.len();
    // One set of live counters per shard, so no cache line bounces between
    // cores on every request; the collector adds them up.
    let lives: Vec<Arc<Live>> = sources.iter().map(|_| Arc::new(Live::default())).collect();
    let (tx, rx) = mpsc::unbounded_channel::<Interval>();
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<Result<Duration, RequestError>>();
    let mut go = Vec::new();
    let mut done = Vec::new();
    let mut startup_errors = Recorder::new(queries);
    for (shard, (source, kind)) in sources.iter().zip(&kinds).enumerate() {
        let (go_tx, go_rx) = oneshot::channel::<(Instant, Instant)>();
        let (done_tx, done_rx) = oneshot::channel::<Vec<WorkerEnd>>();
        let min_size = match kind {
            StrategyKind::Pool(p) => p.min_size,
            StrategyKind::Fresh => 0,
        };
        let shards = sources.len() as u32;
        let workers: Vec<Worker> = (0..ctx.concurrency)
            .filter(|index| index % shards == shard as u32)
            .map(|index| Worker {
                source: source.clone(),
                mix: ctx.mix.clone(),
                rng: Rng::for_worker(ctx.seed, index),
                jitter: Rng::for_worker(ctx.seed ^ JITTER_STREAM, index),
                request_timeout: ctx.request_timeout,
                retry: ctx.retry.clone(),
                live: lives[shard].clone(),
                tx: tx.clone(),
                // Set for real when every shard is ready.
                measure_start: Instant::now(),
                deadline: Instant::now(),
            })
            .collect();
        let source = source.clone();
        let ready_tx = ready_tx.clone();
        let cancel = ctx.cancel.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("poolbench-{shard}"))
            .spawn(move || run_shard(source, min_size, workers, cancel, ready_tx, go_rx, done_tx));
        match spawned {
            Ok(_) => {
                go.push(go_tx);
                done.push(done_rx);
            }
            Err(e) => startup_errors.errors.count(
                ErrorClass::Other,
                &format!("cannot start a worker thread: {e}"),
            ),
        }
    }
    drop(tx);
    drop(ready_tx);

    // Every shard fills its pool at once; the slowest is the startup time.
    let mut startup = Duration::ZERO;
    for _ in 0..go.len() {
        match ready_rx.recv().await {
            Some(Ok(d)) => startup = startup.max(d),
            // A pool that cannot fill still runs: its requests will show why.
            Some(Err(e)) => startup_errors.errors.count(e.class, &e.message),
            None => break,
        }
    }
    let started = Instant::now();
    let measure_start = started + ctx.warmup;
    let deadline = measure_start + ctx.duration;
    for g in go {
        let _ = g.send((measure_start, deadline));
    }

    let progress = progress_bar(ctx, &strategy.name, round);
    let timeline = collect(
        ctx,
        &sources,
        rx,
        &lives,
        &progress,
        started,
        measure_start,
        deadline,
        round,
    )
    .await;

    let mut recorder = Recorder::new(queries);
    recorder.merge(&startup_errors);
    let mut last_end: Option<Instant> = None;
    for d in done {
        match d.await {
            Ok(ends) => {
                for end in ends {
                    recorder.merge(&end.recorder);
                    last_end = last_end.max(end.last_end);
                }
            }
            Err(_) => recorder.errors.count(
                ErrorClass::Other,
                "a worker thread ended without its results",
            ),
        }
    }
    progress.finish_and_clear();
    let measured = last_end
        .map(|end| end.saturating_duration_since(measure_start))
        .unwrap_or_else(|| {
            Instant::now()
                .min(deadline)
                .saturating_duration_since(measure_start)
        });
    RoundResult {
        recorder,
        timeline,
        measured,
        connections_opened: sources.iter().map(|s| s.connections_opened()).sum(),
        startup,
        shards: sources.len() as u32,
    }
}

/// How many shards (threads) a strategy runs on: one per core, but no more
/// than there are workers, nor than a pool has connections to split.
fn shard_count(ctx: &RunContext<'_>, kind: &StrategyKind) -> usize {
    let mut n = ctx.threads.max(1).min(ctx.concurrency.max(1) as usize);
    if let StrategyKind::Pool(p) = kind {
        n = n.min(p.max_size.max(1));
    }
    n
}

/// The strategy as each of `n` shards runs it: a pool's max_size and
/// min_size divided as evenly as they go (10 over 3 → 4, 3, 3).
fn split_across_shards(kind: &StrategyKind, n: usize) -> Vec<StrategyKind> {
    let share = |total: usize, i: usize| total / n + usize::from(i < total % n);
    (0..n)
        .map(|i| match kind {
            StrategyKind::Fresh => StrategyKind::Fresh,
            StrategyKind::Pool(p) => StrategyKind::Pool(PoolSettings {
                max_size: share(p.max_size, i),
                min_size: share(p.min_size, i),
                ..p.clone()
            }),
        })
        .collect()
}

/// One shard's thread: fill its pool, report ready, wait for the common
/// start, run its workers to the end, close its pool, hand back results.
fn run_shard(
    source: Arc<Source>,
    min_size: usize,
    mut workers: Vec<Worker>,
    cancel: CancellationToken,
    ready: mpsc::UnboundedSender<Result<Duration, RequestError>>,
    go: oneshot::Receiver<(Instant, Instant)>,
    done: oneshot::Sender<Vec<WorkerEnd>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(RequestError {
                class: ErrorClass::Other,
                message: format!("cannot start a worker runtime: {e}"),
            }));
            return;
        }
    };
    runtime.block_on(async move {
        let _ = ready.send(source.warm_up(min_size).await);
        drop(ready);
        let Ok((measure_start, deadline)) = go.await else {
            return;
        };
        // The token's future takes a lock shared by every thread each time
        // it is polled; workers instead watch a oneshot of their own, which
        // one task per shard closes when the token is cancelled.
        let mut stops = Vec::with_capacity(workers.len());
        let handles: Vec<_> = workers
            .drain(..)
            .map(|mut w| {
                w.measure_start = measure_start;
                w.deadline = deadline;
                let (stop_tx, stop_rx) = oneshot::channel::<()>();
                stops.push(stop_tx);
                tokio::spawn(w.run(stop_rx))
            })
            .collect();
        tokio::spawn(async move {
            cancel.cancelled().await;
            drop(stops);
        });
        let mut ends = Vec::with_capacity(handles.len());
        for h in handles {
            match h.await {
                Ok(end) => ends.push(end),
                Err(e) => {
                    let mut recorder = Recorder::new(0);
                    recorder
                        .errors
                        .count(ErrorClass::Other, &format!("worker failed: {e}"));
                    ends.push(WorkerEnd {
                        recorder,
                        last_end: None,
                    });
                }
            }
        }
        source.close();
        let _ = done.send(ends);
    });
}

/// The report of a strategy from all its rounds: histograms merged,
/// throughput over the summed measured time, and each round kept apart.
pub fn assemble(strategy: &Strategy, mix: &Mix, rounds: &[RoundResult]) -> StrategyReport {
    let mut total = Recorder::new(mix.queries.len());
    let mut measured = Duration::ZERO;
    let mut startup = Duration::ZERO;
    let mut connections_opened = 0;
    let mut round_stats = Vec::with_capacity(rounds.len());
    for (i, r) in rounds.iter().enumerate() {
        total.merge(&r.recorder);
        measured += r.measured;
        startup += r.startup;
        connections_opened += r.connections_opened;
        let h = r.recorder.phases.get(Phase::Total);
        let q = |q: f64| {
            if h.is_empty() {
                0
            } else {
                h.value_at_quantile(q)
            }
        };
        round_stats.push(RoundStats {
            round: i as u32 + 1,
            requests: r.recorder.requests,
            errors: r.recorder.errors.total(),
            throughput_rps: rate(r.recorder.requests, r.measured),
            p50_us: q(0.5),
            p99_us: q(0.99),
            started_unix_ms: 0,
        });
    }
    let settings = match &strategy.kind {
        StrategyKind::Fresh => serde_json::json!({}),
        StrategyKind::Pool(p) => serde_json::to_value(p).unwrap_or_default(),
    };
    StrategyReport {
        name: strategy.name.clone(),
        kind: match strategy.kind {
            StrategyKind::Fresh => "fresh".into(),
            StrategyKind::Pool(_) => "pool".into(),
        },
        settings,
        requests: total.requests,
        shards: rounds.iter().map(|r| r.shards).max().unwrap_or(1),
        retries: total.retries,
        errors: total.errors.counts.clone(),
        error_samples: total.errors.samples.clone(),
        throughput_rps: rate(total.requests, measured),
        connections_opened,
        startup_ms: round(
            startup.as_secs_f64() * 1000.0 / rounds.len().max(1) as f64,
            3,
        ),
        measured_s: round(measured.as_secs_f64(), 3),
        phases: summarize_phases(&total.phases),
        per_query: mix
            .queries
            .iter()
            .zip(&total.per_query)
            .map(|(q, h)| (q.name.clone(), Summary::of(h)))
            .collect(),
        rounds: round_stats,
        timeline: rounds
            .iter()
            .flat_map(|r| r.timeline.iter().cloned())
            .collect(),
    }
}

fn rate(requests: u64, over: Duration) -> f64 {
    let s = over.as_secs_f64();
    if s > 0.0 {
        round(requests as f64 / s, 1)
    } else {
        0.0
    }
}

/// Separates the retry jitter's random stream from the query sequence, which
/// must stay the same whatever retries happen.
const JITTER_STREAM: u64 = 0x5EED_0FB4_C0FF;

struct Worker {
    source: Arc<Source>,
    mix: Arc<Mix>,
    rng: Rng,
    jitter: Rng,
    request_timeout: Duration,
    retry: Option<RetryPolicy>,
    live: Arc<Live>,
    tx: mpsc::UnboundedSender<Interval>,
    measure_start: Instant,
    deadline: Instant,
}

impl Worker {
    async fn run(mut self, mut stop: oneshot::Receiver<()>) -> WorkerEnd {
        let mut recorder = Recorder::new(self.mix.queries.len());
        let mut interval = Interval::new(0);
        let mut last_end = None;
        let last_second = (self.deadline - self.measure_start)
            .as_secs()
            .saturating_sub(1);
        while Instant::now() < self.deadline {
            let query = self.mix.pick(&mut self.rng);
            let values = self.mix.draw(query, &mut self.rng);
            let start = Instant::now();
            let (result, retries) = tokio::select! {
                r = self.attempt(query, &values) => r,
                _ = &mut stop => break,
            };
            if start < self.measure_start {
                continue; // warm-up: run, not recorded
            }
            let end = Instant::now();
            last_end = Some(end);
            // A request still running at the deadline counts in the last second.
            let second = (end - self.measure_start).as_secs().min(last_second);
            if second != interval.second {
                let done = std::mem::replace(&mut interval, Interval::new(second));
                let _ = self.tx.send(done);
            }
            recorder.retries += u64::from(retries);
            match result {
                Ok(t) => {
                    recorder.record_success(query, &t);
                    crate::metrics::record(&mut interval.total, t.total_us);
                    interval.requests += 1;
                    self.live.requests.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    recorder.errors.count(e.class, &e.message);
                    interval.errors += 1;
                    self.live.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if interval.requests + interval.errors > 0 {
            let _ = self.tx.send(interval);
        }
        WorkerEnd { recorder, last_end }
    }

    /// One request, bounded by request_timeout, retried as the scenario's
    /// policy says. Its total latency includes the retries and the waits
    /// between them, as the application's caller would see it.
    async fn attempt(
        &mut self,
        query: usize,
        values: &[Vec<Value>],
    ) -> (Result<Timings, RequestError>, u32) {
        let started = Instant::now();
        let mut retries = 0;
        loop {
            let plan = &self.mix.queries[query];
            let result = match tokio::time::timeout(
                self.request_timeout,
                execute(&self.source, plan, values),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => Err(RequestError {
                    class: ErrorClass::RequestTimeout,
                    message: format!(
                        "no answer within request_timeout ({})",
                        humantime::format_duration(self.request_timeout)
                    ),
                }),
            };
            let retry = match (&result, &self.retry) {
                (Err(e), Some(policy))
                    if retries + 1 < policy.max_attempts && policy.on.contains(&e.class.name()) =>
                {
                    policy.backoff
                }
                _ => {
                    let result = result.map(|mut t| {
                        t.total_us = crate::workload::micros(started.elapsed());
                        t
                    });
                    return (result, retries);
                }
            };
            // Exponential backoff with ±50% jitter, so retrying workers do
            // not come back in lockstep.
            let factor = 2f64.powi(retries as i32) * (0.5 + self.jitter.next_f64());
            tokio::time::sleep(retry.mul_f64(factor)).await;
            retries += 1;
        }
    }
}

/// Per-second samples taken by the collector itself.
#[derive(Default, Clone, Copy)]
struct Sample {
    pool: Option<PoolStatus>,
    backends: Option<u64>,
}

/// Merges the workers' intervals, samples pool status and server backends
/// once a second, and drives the progress bar, until every worker is done.
#[allow(clippy::too_many_arguments)]
async fn collect(
    ctx: &RunContext<'_>,
    sources: &[Arc<Source>],
    mut rx: mpsc::UnboundedReceiver<Interval>,
    lives: &[Arc<Live>],
    progress: &ProgressBar,
    started: Instant,
    measure_start: Instant,
    deadline: Instant,
    round: u32,
) -> Vec<TimelineRow> {
    let seconds = ctx.duration.as_secs().max(1);
    let mut merged: BTreeMap<u64, (Histogram<u64>, u64, u64)> = BTreeMap::new();
    let mut samples: BTreeMap<u64, Sample> = BTreeMap::new();
    let mut tick = tokio::time::interval_at(
        started + Duration::from_millis(250),
        Duration::from_millis(250),
    );
    let mut last_rate = (Instant::now(), 0u64);
    let mut reconnected: Option<Client> = None;
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(iv) => {
                    let entry = merged.entry(iv.second).or_insert_with(|| (new_histogram(), 0, 0));
                    let _ = entry.0.add(&iv.total);
                    entry.1 += iv.requests;
                    entry.2 += iv.errors;
                }
                None => break,
            },
            _ = tick.tick() => {
                let now = Instant::now();
                if now >= measure_start && now < deadline {
                    let second = (now - measure_start).as_secs();
                    if !samples.contains_key(&second) && second < seconds {
                        let backends = match (&reconnected, ctx.monitor) {
                            (Some(m), _) | (None, Some(m)) if !m.is_closed() => count_backends(m).await,
                            (_, Some(_)) => {
                                // The server restarted under the monitor: open
                                // another (uncounted) one for the seconds after.
                                reconnected = reconnect(&ctx.target).await;
                                None
                            }
                            (_, None) => None,
                        };
                        samples.insert(second, Sample { pool: pool_status(sources), backends });
                    }
                }
                let requests: u64 = lives.iter().map(|l| l.requests.load(Ordering::Relaxed)).sum();
                let errors: u64 = lives.iter().map(|l| l.errors.load(Ordering::Relaxed)).sum();
                let dt = now.duration_since(last_rate.0).as_secs_f64();
                if dt >= 1.0 {
                    let rate = (requests - last_rate.1) as f64 / dt;
                    last_rate = (now, requests);
                    let phase = if now < measure_start { "warm-up" } else { "measuring" };
                    progress.set_message(format!("{phase} · {} req/s · {} errors",
                        crate::report::format::thousands(rate as u64),
                        crate::report::format::thousands(errors)));
                }
                progress.set_position(now.duration_since(started).as_millis() as u64);
            }
        }
    }
    (0..seconds)
        .map(|second| {
            let (h, requests, errors) = merged
                .remove(&second)
                .unwrap_or_else(|| (new_histogram(), 0, 0));
            let sample = samples.get(&second).copied().unwrap_or_default();
            let q = |q: f64| {
                if h.is_empty() {
                    0
                } else {
                    h.value_at_quantile(q)
                }
            };
            TimelineRow {
                round,
                second,
                rps: requests as f64,
                errors,
                p50_us: q(0.5),
                p99_us: q(0.99),
                pool_size: sample.pool.map(|p| p.size as u64),
                pool_available: sample.pool.map(|p| p.available as u64),
                pool_waiting: sample.pool.map(|p| p.waiting as u64),
                server_backends: sample.backends,
                hdr: BTreeMap::new(),
            }
        })
        .collect()
}

/// The pools of every shard, added up (None for fresh connections).
fn pool_status(sources: &[Arc<Source>]) -> Option<PoolStatus> {
    sources
        .iter()
        .filter_map(|s| s.pool_status())
        .reduce(|a, b| PoolStatus {
            size: a.size + b.size,
            available: a.available + b.available,
            waiting: a.waiting + b.waiting,
        })
}

async fn reconnect(target: &Target) -> Option<Client> {
    match tokio::time::timeout(Duration::from_millis(500), target.connect()).await {
        Ok(Ok(client)) => Some(client),
        _ => None,
    }
}

async fn count_backends(monitor: &Client) -> Option<u64> {
    let query = monitor.query_one(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
        &[],
    );
    match tokio::time::timeout(Duration::from_millis(500), query).await {
        Ok(Ok(row)) => row.try_get::<_, i64>(0).ok().map(|n| n as u64),
        _ => None,
    }
}

fn progress_bar(ctx: &RunContext<'_>, name: &str, round: u32) -> ProgressBar {
    if !ctx.show_progress {
        return ProgressBar::hidden();
    }
    let total_ms = (ctx.warmup + ctx.duration).as_millis() as u64;
    let bar = ProgressBar::with_draw_target(Some(total_ms), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{prefix:>14} [{bar:32}] {percent:>3}% {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    if ctx.rounds > 1 {
        bar.set_prefix(format!("{name} #{round}"));
    } else {
        bar.set_prefix(name.to_string());
    }
    bar.set_message("warm-up");
    bar
}
