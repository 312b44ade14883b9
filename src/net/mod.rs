//! The link emulator (`[network] rtt`, `jitter`, `--rtt`): an in-process
//! relay that puts an emulated network between poolbench and its
//! database, and counts each connection's round trips.
//!
//! A measured connection is opened to the database as usual (the real TCP
//! connect, or a Unix-domain socket), then handed to [`Emulator::relay`]:
//! the driver gets the near end of an in-memory pipe instead, and a relay
//! task (`relay.rs`) moves bytes between the pipe and the real socket,
//! every chunk released `rtt/2` after it arrived, in each direction, in
//! order, without a bandwidth cap (delays overlap; they never add up chunk
//! after chunk). It only moves bytes, so TLS passes through untouched. The
//! TCP handshake's round trip is charged by `relay` itself: it returns one
//! RTT later, and counts it.
//!
//! Why a pipe, not a loopback TCP connection to a relay listening on
//! 127.0.0.1: the relay's own cost must stay small (at rtt = 0 a pooled
//! request's p50 may rise by 50 µs at most, its throughput fall by 10% at
//! most), and a loopback hop costs two more TCP writes and reads per round
//! trip, several times what the pipe costs (measured in
//! docs/performance.md, "the link emulator's overhead"). The relay
//! task runs on the caller's runtime, next to the connection it serves, so
//! no byte crosses threads.

mod relay;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, DuplexStream};

use crate::rng::Rng;
use crate::timer::PreciseTimer;

/// Round trips counted on one relayed connection: a flight of bytes from
/// the client followed by a flight from the server is one (the TCP
/// handshake counts as the first). Cheap to clone and to read from any
/// thread.
#[derive(Debug, Clone)]
pub struct Turns(Arc<AtomicU32>);

impl Turns {
    fn new() -> Turns {
        // The TCP handshake: SYN, then SYN-ACK.
        Turns(Arc::new(AtomicU32::new(1)))
    }

    /// Round trips so far. A server flight is counted as it reaches the
    /// relay, before the client sees it, so once the client has its answer
    /// the count includes it.
    pub fn now(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }

    fn add_one(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// An emulated link: the RTT it adds and its jitter.
pub struct Emulator {
    rtt: Duration,
    jitter: Duration,
    /// Each relayed connection's jitter draws from its own stream.
    connections: AtomicU64,
}

/// Separates the jitter's random stream from every other seeded stream.
const JITTER_STREAM: u64 = 0x11_4E_71_77_E5;

/// What the pipe holds before the relay has read it: far more than a
/// flight, so it never limits bandwidth (the relay reads as bytes come).
const PIPE_BYTES: usize = 1 << 20;

impl Emulator {
    /// A link adding `rtt`; `jitter` (capped at rtt/2) moves each flight
    /// of bytes by up to ± that much.
    pub fn new(rtt: Duration, jitter: Duration) -> Emulator {
        Emulator {
            rtt,
            jitter: jitter.min(rtt / 2),
            connections: AtomicU64::new(0),
        }
    }

    pub fn rtt(&self) -> Duration {
        self.rtt
    }

    pub fn jitter(&self) -> Duration {
        self.jitter
    }

    /// Puts the link between the caller and `upstream`, a connection to
    /// the database already open: returns the stream to use in its place
    /// and its round-trip counter. Returns one RTT later, as a TCP
    /// handshake across the link would. Must run inside a tokio runtime
    /// (the relay is a task of it).
    pub async fn relay<U>(&self, upstream: U) -> (DuplexStream, Turns)
    where
        U: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (near, far) = tokio::io::duplex(PIPE_BYTES);
        let n = self.connections.fetch_add(1, Ordering::Relaxed);
        let mut delays = Delays::new(self.rtt / 2, self.jitter, Rng::for_stream(JITTER_STREAM, n));
        let handshake = delays.draw() + delays.draw();
        sleep(handshake).await;
        // Started once the handshake is over: a server that speaks first
        // answers its last ACK from then on.
        let turns = Turns::new();
        tokio::spawn(relay::Relay::new(far, upstream, delays, turns.clone()));
        (near, turns)
    }
}

/// The one-way delay of each flight: rtt/2, moved by a uniform draw in
/// ± jitter when there is jitter.
struct Delays {
    one_way: Duration,
    jitter: Duration,
    rng: Rng,
}

impl Delays {
    fn new(one_way: Duration, jitter: Duration, rng: Rng) -> Delays {
        Delays {
            one_way,
            jitter: jitter.min(one_way),
            rng,
        }
    }

    fn draw(&mut self) -> Duration {
        if self.jitter.is_zero() {
            return self.one_way;
        }
        let offset = self.jitter.mul_f64(2.0 * self.rng.next_f64());
        (self.one_way + offset).saturating_sub(self.jitter)
    }
}

/// Sleeps precisely (falling back to tokio's millisecond timer when no
/// timerfd can be had).
async fn sleep(d: Duration) {
    if d.is_zero() {
        return;
    }
    let until = Instant::now() + d;
    let precise = match PreciseTimer::new() {
        Ok(mut t) => t.sleep_until(until).await.is_ok(),
        Err(_) => false,
    };
    if !precise {
        tokio::time::sleep_until(until.into()).await;
    }
}

#[cfg(test)]
mod tests;
