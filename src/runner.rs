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
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::db::Target;
use crate::metrics::Timings;
use crate::metrics::{
    new_histogram, summarize_phases, ErrorClass, Interval, Phase, Recorder, Summary,
};
use crate::report::{round, RoundStats, StrategyReport, TimelineRow};
use crate::scenario::{RetryPolicy, Strategy, StrategyKind};
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
    pub request_timeout: Duration,
    pub retry: Option<RetryPolicy>,
    /// Cancelled by Ctrl-C / SIGTERM.
    pub cancel: CancellationToken,
    /// Counts client backends once a second; not part of the results.
    pub monitor: Option<&'a Client>,
    pub show_progress: bool,
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
}

/// Runs one round of `strategy`: a new source (a new pool, filled to
/// min_size), warm-up, then the measured window.
pub async fn run_round(ctx: &RunContext<'_>, strategy: &Strategy, round: u32) -> RoundResult {
    let source = Arc::new(Source::new(&strategy.kind, &ctx.target));
    let queries = ctx.mix.queries.len();
    let mut startup_errors = Recorder::new(queries);
    let min_size = match &strategy.kind {
        StrategyKind::Pool(p) => p.min_size,
        StrategyKind::Fresh => 0,
    };
    let startup = match source.warm_up(min_size).await {
        Ok(d) => d,
        Err(e) => {
            // A pool that cannot fill still runs: its requests will show why.
            startup_errors.errors.count(e.class, &e.message);
            Duration::ZERO
        }
    };

    let started = Instant::now();
    let measure_start = started + ctx.warmup;
    let deadline = measure_start + ctx.duration;
    let live = Arc::new(Live::default());
    let (tx, rx) = mpsc::unbounded_channel::<Interval>();

    let progress = progress_bar(ctx, &strategy.name, round);
    let workers: Vec<_> = (0..ctx.concurrency)
        .map(|index| {
            let worker = Worker {
                source: source.clone(),
                mix: ctx.mix.clone(),
                rng: Rng::for_worker(ctx.seed, index),
                jitter: Rng::for_worker(ctx.seed ^ JITTER_STREAM, index),
                request_timeout: ctx.request_timeout,
                retry: ctx.retry.clone(),
                live: live.clone(),
                tx: tx.clone(),
                cancel: ctx.cancel.clone(),
                measure_start,
                deadline,
            };
            tokio::spawn(worker.run())
        })
        .collect();
    drop(tx);

    let timeline = collect(
        ctx,
        &source,
        rx,
        &live,
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
    for w in workers {
        match w.await {
            Ok(end) => {
                recorder.merge(&end.recorder);
                last_end = last_end.max(end.last_end);
            }
            Err(e) => recorder
                .errors
                .count(ErrorClass::Other, &format!("worker failed: {e}")),
        }
    }
    progress.finish_and_clear();
    source.close();
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
        connections_opened: source.connections_opened(),
        startup,
    }
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
    cancel: CancellationToken,
    measure_start: Instant,
    deadline: Instant,
}

impl Worker {
    async fn run(mut self) -> WorkerEnd {
        let mut recorder = Recorder::new(self.mix.queries.len());
        let mut interval = Interval::new(0);
        let mut last_end = None;
        let last_second = (self.deadline - self.measure_start)
            .as_secs()
            .saturating_sub(1);
        let cancel = self.cancel.clone();
        while Instant::now() < self.deadline {
            let query = self.mix.pick(&mut self.rng);
            let values = self.mix.draw(query, &mut self.rng);
            let start = Instant::now();
            let (result, retries) = tokio::select! {
                r = self.attempt(query, &values) => r,
                () = cancel.cancelled() => break,
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
    source: &Source,
    mut rx: mpsc::UnboundedReceiver<Interval>,
    live: &Live,
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
                        let backends = match &ctx.monitor {
                            Some(m) => count_backends(m).await,
                            None => None,
                        };
                        samples.insert(second, Sample { pool: source.pool_status(), backends });
                    }
                }
                let requests = live.requests.load(Ordering::Relaxed);
                let errors = live.errors.load(Ordering::Relaxed);
                let dt = now.duration_since(last_rate.0).as_secs_f64();
                if dt >= 1.0 {
                    let rate = (requests - last_rate.1) as f64 / dt;
                    last_rate = (now, requests);
                    let phase = if now < measure_start { "warm-up" } else { "measuring" };
                    progress.set_message(format!("{phase} · {} req/s · {} errors",
                        crate::report::table::thousands(rate as u64),
                        crate::report::table::thousands(errors)));
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
            }
        })
        .collect()
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
