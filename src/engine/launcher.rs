//! Where the worker threads come from: a thread made when the process
//! starts, before poolbench has woken anything.
//!
//! Linux counts, for each thread, how often it switched between the tasks
//! it wakes ("wakee flips", halved once a second), and a new thread starts
//! with its parent's count. When a thread with many flips wakes a backend
//! of a server on the same machine, the kernel stops placing the backend
//! next to it (`wake_wide()`), and the backend stays on whatever CPU it was
//! forked onto. A worker thread spawned by the thread that has just opened
//! the session (the monitor connection, the checks, the runtime's own
//! threads) started with 13 flips, and most runs then had a backend or
//! more on the other CPU for their whole length: each query an interrupt
//! to the other CPU and back, and pooled throughput well below pgbench's
//! (measured in docs/performance.md, "Where the kernel runs the backends").
//! Spawned from here, a worker thread starts with none,
//! like pgbench's, and opens its connections one at a time
//! (`source::pool`), so the kernel may wake each backend onto its client's
//! CPU. It does not always: a backend whose previous CPU is idle is woken
//! there, and the other CPU is often idle while connections open
//! (docs/performance.md, "What still sends runs into the slow mode").

use std::io;
use std::sync::mpsc;
use std::sync::OnceLock;

type Job = Box<dyn FnOnce() + Send>;

static LAUNCHER: OnceLock<mpsc::Sender<Job>> = OnceLock::new();

/// Starts the launcher thread. Call it first thing in `main`; without it
/// (tests, a failed start), threads are spawned by their caller.
pub fn start() {
    let (tx, rx) = mpsc::channel::<Job>();
    let started = std::thread::Builder::new()
        .name("poolbench-launcher".into())
        .spawn(move || {
            for job in rx {
                job();
            }
        });
    if started.is_ok() {
        let _ = LAUNCHER.set(tx);
    }
}

/// Spawns a named thread running `body`, from the launcher when there is
/// one.
pub fn spawn(name: String, body: impl FnOnce() + Send + 'static) -> io::Result<()> {
    let Some(launcher) = LAUNCHER.get() else {
        return std::thread::Builder::new().name(name).spawn(body).map(drop);
    };
    let (reply_tx, reply_rx) = mpsc::sync_channel::<io::Result<()>>(1);
    let job: Job = Box::new(move || {
        let spawned = std::thread::Builder::new().name(name).spawn(body).map(drop);
        let _ = reply_tx.send(spawned);
    });
    // Should the launcher have ended, the caller spawns the thread itself.
    if let Err(mpsc::SendError(job)) = launcher.send(job) {
        job();
    }
    reply_rx
        .recv()
        .unwrap_or_else(|_| Err(io::Error::other("the launcher thread has ended")))
}
