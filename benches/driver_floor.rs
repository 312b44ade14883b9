//! tokio-postgres alone: how fast its pooled `SELECT 1` runs with none of
//! poolbench around it (no pool, no timing, no histograms, no request
//! timeout), on the same thread-per-core layout poolbench uses — one
//! single-threaded runtime per thread, each client a task driving one
//! connection whose I/O task runs on the same thread.
//!
//! `scripts/bench-vs-pgbench.sh` runs it beside pgbench and poolbench. It
//! is the evidence for poolbench's own query path (`wire.rs`): this loop
//! stayed below pgbench (0.83–0.91× its throughput, 1.12–1.23× its CPU per
//! request), because of the driver's design — a connection task and two
//! channel hops per query, where libpq writes and reads the socket in the
//! caller's loop — so no change inside poolbench could reach pgbench while
//! every query went through it. (Those figures were measured when the
//! driver spoke TLS through OpenSSL; its connections now open through
//! poolbench's dialer, on rustls, as every poolbench connection does.)
//!
//! Usage: cargo bench --bench driver_floor -- DSN [CLIENTS] [THREADS] [SECONDS]
//! Prints one line: `requests <n> seconds <s> rps <r> cpu_us_per_request <c>`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use poolbench::backend::postgres::Target;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let Some(dsn) = args.first().cloned() else {
        eprintln!("usage: driver_floor DSN [CLIENTS] [THREADS] [SECONDS]");
        std::process::exit(2);
    };
    let number = |i: usize, default: u64| -> u64 {
        args.get(i)
            .map(|a| {
                a.parse().unwrap_or_else(|_| {
                    eprintln!("driver_floor: not a number: {a}");
                    std::process::exit(2)
                })
            })
            .unwrap_or(default)
    };
    let clients = number(1, 8) as usize;
    let threads = number(2, 2).max(1) as usize;
    let seconds = number(3, 10);

    // Opened as poolbench opens its own connections (libpq's DSN rules,
    // TLS by rustls): the queries are the driver's alone.
    let target = Target::parse(&dsn, "the DSN").unwrap_or_else(|e| {
        eprintln!("driver_floor: bad DSN: {e:#}");
        std::process::exit(2)
    });

    let done = Arc::new(AtomicU64::new(0));
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let share = clients / threads + usize::from(t < clients % threads);
            let target = target.clone();
            let (done, measuring, stop) = (done.clone(), measuring.clone(), stop.clone());
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime");
                rt.block_on(async move {
                    let mut tasks = Vec::new();
                    for _ in 0..share {
                        let client = target.connect().await.expect("a connection");
                        let (done, measuring, stop) =
                            (done.clone(), measuring.clone(), stop.clone());
                        tasks.push(tokio::spawn(async move {
                            let stmt = client.prepare("SELECT 1").await.expect("prepare");
                            let mut n = 0u64;
                            while !stop.load(Ordering::Relaxed) {
                                let rows = client
                                    .query_raw(&stmt, std::iter::empty::<i32>())
                                    .await
                                    .expect("query");
                                futures_util::pin_mut!(rows);
                                while let Some(row) = futures_util::StreamExt::next(&mut rows).await
                                {
                                    row.expect("row");
                                }
                                if measuring.load(Ordering::Relaxed) {
                                    n += 1;
                                }
                            }
                            done.fetch_add(n, Ordering::Relaxed);
                        }));
                    }
                    for t in tasks {
                        let _ = t.await;
                    }
                });
            })
        })
        .collect();

    // One second to connect and warm up, then the measured window.
    std::thread::sleep(Duration::from_secs(1));
    let cpu_before = cpu_us();
    let started = Instant::now();
    measuring.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(seconds));
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_us() - cpu_before;
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    let n = done.load(Ordering::Relaxed);
    println!(
        "requests {n} seconds {elapsed:.2} rps {:.1} cpu_us_per_request {:.2}",
        n as f64 / elapsed,
        cpu / n.max(1) as f64
    );
}

/// User + system CPU time of this process so far, in microseconds.
fn cpu_us() -> f64 {
    let mut u = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole rusage into the pointer it is given.
    let u = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, u.as_mut_ptr());
        u.assume_init()
    };
    let us = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    us(u.ru_utime) + us(u.ru_stime)
}
