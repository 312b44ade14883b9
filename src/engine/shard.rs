//! Thread-per-core, like pgbench's `-j`: each shard is an OS thread with a
//! single-threaded runtime, its share of the workers and its own service,
//! so a request and its connection's I/O stay on one thread. [`run`] starts
//! the shards, lets them ready their services, starts every worker at one
//! common instant, and hands their results to the collector.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::api::{GeneratorLag, Observer, Pacing, RoundResult, Service, Settings};
use super::collector::collect;
use super::launcher;
use super::open_loop::{self, Share};
use super::tally::{Tally, WorkerEnd};
use super::window::{after, Live, Window};
use super::worker::Worker;
use crate::metrics::{ErrorClass, ErrorCounts, Interval, Recorder, RequestError};

/// Runs one round on `services` (one per shard; a worker goes to shard
/// `index % shards`) and returns what it measured.
pub async fn run<S: Service>(
    settings: &Settings,
    services: Vec<Arc<S>>,
    observer: &mut dyn Observer,
) -> RoundResult {
    let shards = services.len().max(1);
    let (tx, rx) = mpsc::unbounded_channel::<Interval>();
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<Result<Duration, RequestError>>();
    let mut go = Vec::new();
    let mut done = Vec::new();
    let mut lives = Vec::new();
    let mut recorder = Recorder::new(0);
    // Shards may share connections (one pool for every thread), each
    // connection's I/O driven by the runtime that opened it: so no runtime
    // ends before every shard is done.
    let finished = CancellationToken::new();
    let _finish_on_return = finished.clone().drop_guard();
    let mut failures = ErrorCounts::default();
    let cpus = cpus_for(shards);
    for (shard, service) in services.iter().enumerate() {
        // One set of live counters per shard, so no cache line bounces
        // between cores on every request; the collector adds them up.
        let live = Arc::new(Live::default());
        let load = match settings.pacing {
            Pacing::ClosedLoop => Load::Workers {
                workers: (0..settings.concurrency)
                    .filter(|index| *index as usize % shards == shard)
                    .map(|index| Worker::new(service.clone(), settings, index))
                    .collect(),
                live: live.clone(),
                tx: tx.clone(),
            },
            Pacing::OpenLoop(arrivals) => Load::Arrivals {
                share: Share {
                    arrivals,
                    shard,
                    shards,
                },
                settings: settings.clone(),
                live: live.clone(),
                tx: tx.clone(),
            },
        };
        let (go_tx, go_rx) = oneshot::channel::<Window>();
        let (done_tx, done_rx) = oneshot::channel::<Vec<WorkerEnd>>();
        let service = service.clone();
        let ready_tx = ready_tx.clone();
        let cancel = settings.cancel.clone();
        let finished = finished.clone();
        let cpu = cpus.as_ref().map(|cpus| cpus[shard]);
        let spawned = launcher::spawn(format!("poolbench-{shard}"), move || {
            if let Some(cpu) = cpu {
                pin_to(cpu);
            }
            run_shard(service, load, cancel, ready_tx, go_rx, done_tx, finished)
        });
        match spawned {
            Ok(_) => {
                go.push(go_tx);
                done.push(done_rx);
                lives.push(live);
            }
            Err(e) => failures.count(
                &ErrorClass::Other,
                &format!("cannot start a worker thread: {e}"),
            ),
        }
    }
    drop(tx);
    drop(ready_tx);

    // Every shard readies its service at once; the slowest is the startup.
    let mut startup = Duration::ZERO;
    for _ in 0..go.len() {
        match ready_rx.recv().await {
            Some(Ok(d)) => startup = startup.max(d),
            // A pool that cannot fill still runs: its requests will show
            // why. The fill is not a request: it is kept apart.
            Some(Err(e)) => failures.count(&e.class, &format!("before measuring: {}", e.message)),
            None => break,
        }
    }
    let begin = start_instant(settings.start_at);
    let window = Window::new(begin, settings.warmup, settings.duration);
    for g in go {
        let _ = g.send(window);
    }
    let started_at = wall_clock(window.measure_start);

    let mut setups = Recorder::new(0);
    let seconds = collect(
        matches!(settings.pacing, Pacing::OpenLoop(_)),
        &services,
        rx,
        &lives,
        observer,
        window,
        &mut setups,
    )
    .await;

    let mut last_end: Option<Instant> = None;
    let mut generator: Option<GeneratorLag> = None;
    let mut offered: Vec<u64> = Vec::new();
    let mut completed_in_window = 0;
    for d in done {
        match d.await {
            Ok(ends) => {
                for end in ends {
                    recorder.merge(&end.recorder);
                    failures.merge(&end.failures);
                    last_end = last_end.max(end.last_end);
                    completed_in_window += end.completed_in_window;
                    if let Some(lag) = end.lag {
                        generator
                            .get_or_insert_with(GeneratorLag::default)
                            .merge(&lag);
                    }
                    offered.resize(offered.len().max(end.offered.len()), 0);
                    for (all, n) in offered.iter_mut().zip(&end.offered) {
                        *all += n;
                    }
                }
            }
            Err(_) => failures.count(
                &ErrorClass::Other,
                "a worker thread ended without its results",
            ),
        }
    }
    finished.cancel();
    for service in &services {
        service.drain_setups(&mut setups);
    }
    recorder.merge(&setups);
    let measured = last_end
        .map(|end| end.saturating_duration_since(window.measure_start))
        .unwrap_or_else(|| {
            Instant::now()
                .min(window.deadline)
                .saturating_duration_since(window.measure_start)
        });
    let mut seconds = seconds.trimmed_to(measured);
    for s in &mut seconds {
        if let Some(n) = s.offered.as_mut() {
            *n = offered.get(s.second as usize).copied().unwrap_or(0);
        }
    }
    RoundResult {
        recorder,
        failures,
        seconds,
        measured,
        completed_in_window,
        // Now is past the deadline unless the round was cut short.
        window: Instant::now()
            .min(window.deadline)
            .saturating_duration_since(window.measure_start),
        started_at,
        connections_opened: services.iter().map(|s| s.connections_opened()).sum(),
        startup,
        shards: shards as u32,
        // What the schedule really offered in the window (a Poisson
        // schedule's count varies around rate × duration).
        offered_rate: match settings.pacing {
            Pacing::OpenLoop(_) => Some(
                lives
                    .iter()
                    .map(|l| l.offered.load(std::sync::atomic::Ordering::Relaxed))
                    .sum::<u64>() as f64
                    / settings.duration.as_secs_f64().max(1e-9),
            ),
            Pacing::ClosedLoop => None,
        },
        generator,
    }
}

/// The CPUs the shards are pinned to, one each: when there are exactly as
/// many shards as CPUs this process may run on (the default, one thread
/// per CPU), each shard keeps to its own, as a thread-per-core runtime's
/// threads do. A shard opens its connections from its CPU, one at a time
/// (`source::pool`), with a clean wake history (`launcher`), so a server on
/// the same machine tends to have their backends woken onto that CPU, and
/// pinned, the shard stays there with them (in most runs, not all: see
/// `launcher`). With fewer shards than CPUs
/// (`--threads`, or a CPU quota), none is pinned: the kernel places them.
/// (sched_getaffinity and sched_setaffinity are Linux's: so is poolbench,
/// `lib.rs` refuses to build elsewhere.)
fn cpus_for(shards: usize) -> Option<Vec<usize>> {
    let mut set = no_cpus();
    // SAFETY: the kernel writes at most the size it is given.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return None;
    }
    // SAFETY: `set` is initialised and every index is below its capacity.
    let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect();
    (cpus.len() == shards && shards > 1).then_some(cpus)
}

/// Keeps the calling thread on `cpu`. Best effort: a thread that cannot be
/// pinned (a container's seccomp, say) runs where the kernel puts it.
fn pin_to(cpu: usize) {
    let mut set = no_cpus();
    // SAFETY: `cpu` came from this process's own set, so it is below the
    // set's capacity; the kernel reads the size it is given.
    unsafe {
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// An empty CPU set.
fn no_cpus() -> libc::cpu_set_t {
    // SAFETY: cpu_set_t is a plain bit array; all zeroes is the empty set.
    unsafe { std::mem::zeroed() }
}

/// The instant warm-up begins: now, or the wall-clock `start_at` when it is
/// still ahead.
fn start_instant(start_at: Option<SystemTime>) -> Instant {
    let now = Instant::now();
    match start_at.and_then(|at| at.duration_since(SystemTime::now()).ok()) {
        Some(ahead) => after(now, ahead),
        None => now,
    }
}

/// The wall-clock time of a (past or future) monotonic instant.
fn wall_clock(at: Instant) -> SystemTime {
    let now = Instant::now();
    if at >= now {
        SystemTime::now() + (at - now)
    } else {
        SystemTime::now() - (now - at)
    }
}

/// What a shard runs: closed-loop workers, or its share of the arrivals.
// One per shard, made once and moved to its thread: the size is no cost.
#[allow(clippy::large_enum_variant)]
enum Load<S: Service> {
    Workers {
        workers: Vec<Worker<S>>,
        live: Arc<Live>,
        tx: mpsc::UnboundedSender<Interval>,
    },
    Arrivals {
        share: Share,
        settings: Settings,
        live: Arc<Live>,
        tx: mpsc::UnboundedSender<Interval>,
    },
}

/// One shard's thread: ready its service, report ready, wait for the
/// common start, run its load to the end, close the service, hand back
/// what was measured, and keep driving its connections until every shard
/// is done (`finished`).
fn run_shard<S: Service>(
    service: Arc<S>,
    load: Load<S>,
    cancel: CancellationToken,
    ready: mpsc::UnboundedSender<Result<Duration, RequestError>>,
    go: oneshot::Receiver<Window>,
    done: oneshot::Sender<Vec<WorkerEnd>>,
    finished: CancellationToken,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(RequestError::new(
                ErrorClass::Other,
                format!("cannot start a worker runtime: {e}"),
            )));
            return;
        }
    };
    runtime.block_on(async move {
        let _ = ready.send(service.warm_up().await);
        drop(ready);
        let Ok(window) = go.await else {
            finished.cancelled().await;
            return;
        };
        tokio::select! {
            () = tokio::time::sleep_until(window.begin) => {}
            () = cancel.cancelled() => {}
        }
        let ends = match load {
            Load::Workers { workers, live, tx } => {
                let tally = Rc::new(RefCell::new(Tally::new(window, live, tx)));
                let local = tokio::task::LocalSet::new();
                local
                    .run_until(run_workers(workers, window, cancel, tally))
                    .await
            }
            Load::Arrivals {
                share,
                settings,
                live,
                tx,
            } => {
                let (stop_tx, stop_rx) = oneshot::channel::<()>();
                tokio::spawn(async move {
                    cancel.cancelled().await;
                    drop(stop_tx);
                });
                let local = tokio::task::LocalSet::new();
                let end = local
                    .run_until(open_loop::serve(
                        service.clone(),
                        share,
                        &settings,
                        window,
                        live,
                        tx,
                        stop_rx,
                    ))
                    .await;
                vec![end]
            }
        };
        service.close();
        let _ = done.send(ends);
        finished.cancelled().await;
    });
}

/// Closed loop: every worker of the shard to the deadline (or until the
/// token is cancelled), all recording into the shard's tally. Must run
/// inside a `LocalSet`.
async fn run_workers<S: Service>(
    workers: Vec<Worker<S>>,
    window: Window,
    cancel: CancellationToken,
    tally: Rc<RefCell<Tally>>,
) -> Vec<WorkerEnd> {
    // The token's future takes a lock shared by every thread each time it
    // is polled; workers instead watch a oneshot of their own, which one
    // task per shard closes when the token is cancelled.
    let mut stops = Vec::with_capacity(workers.len());
    let handles: Vec<_> = workers
        .into_iter()
        .map(|w| {
            let (stop_tx, stop_rx) = oneshot::channel::<()>();
            stops.push(stop_tx);
            tokio::task::spawn_local(w.run(window, stop_rx, tally.clone()))
        })
        .collect();
    tokio::spawn(async move {
        cancel.cancelled().await;
        drop(stops);
    });
    let mut lost = ErrorCounts::default();
    for h in handles {
        if let Err(e) = h.await {
            lost.count(&ErrorClass::Other, &format!("worker failed: {e}"));
        }
    }
    let mut end = tally.borrow_mut().finish();
    end.failures.merge(&lost);
    vec![end]
}

#[cfg(test)]
mod tests {
    use super::{cpus_for, pin_to};

    /// Pinned only with one shard per CPU this process may use, each to a
    /// different one of them; and pinning does keep a thread there.
    #[test]
    fn one_shard_per_allowed_cpu_is_pinned_to_it() {
        let allowed = crate::placement::cpus();
        assert_eq!(cpus_for(allowed + 1), None);
        assert_eq!(cpus_for(1), None);
        let Some(cpus) = cpus_for(allowed) else {
            // One CPU, or a CPU quota below the affinity mask: nothing to pin.
            return;
        };
        let mut distinct = cpus.clone();
        distinct.dedup();
        assert_eq!(distinct.len(), allowed);
        let last = *cpus.last().unwrap();
        let on = std::thread::spawn(move || {
            pin_to(last);
            // SAFETY: sched_getcpu has no preconditions.
            unsafe { libc::sched_getcpu() }
        })
        .join()
        .unwrap();
        assert_eq!(on, last as i32);
    }
}
