//! The link emulator (`[network] rtt`, `jitter`, `--rtt`): an in-process
//! TCP relay on 127.0.0.1 that puts an emulated network between poolbench
//! and its database, and counts each connection's round trips.
//!
//! A measured connection is opened to the database as usual (the real TCP
//! connect, or a Unix-domain socket), then handed to [`Emulator::relay`],
//! which connects a loopback socket to the emulator's listener and relays
//! bytes between the two (`relay.rs`): every chunk is released `rtt/2`
//! after it arrived, in each direction, in order, without a bandwidth cap
//! (delays overlap; they never add up chunk after chunk). It only moves
//! bytes, so TLS passes through untouched. The TCP handshake's round trip
//! is charged by `relay` itself: it returns one RTT later, and counts it.
//!
//! Which accepted socket belongs to which `relay` call is known by port:
//! the caller binds its loopback socket first and registers the port, the
//! accept thread hands the socket accepted from that port back to it. The
//! relay task then runs on the caller's runtime, next to the connection
//! it serves, so no byte crosses threads.

mod relay;

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::oneshot;

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

/// An emulated link: the RTT it adds and its jitter, and the relay's
/// listener. Dropping it stops the listener; connections already relayed
/// keep going until either side closes.
pub struct Emulator {
    rtt: Duration,
    jitter: Duration,
    listener: SocketAddr,
    shared: Arc<Shared>,
    /// Each relayed connection's jitter draws from its own stream.
    connections: AtomicU64,
}

/// What the accept thread and the `relay` calls share.
#[derive(Default)]
struct Shared {
    /// Loopback sockets being connected, by their local port.
    waiting: Mutex<HashMap<u16, oneshot::Sender<std::net::TcpStream>>>,
    stopping: AtomicBool,
}

impl Shared {
    fn waiting(&self) -> MutexGuard<'_, HashMap<u16, oneshot::Sender<std::net::TcpStream>>> {
        // Nothing is left half-done under this lock: a panic elsewhere
        // cannot have broken the map.
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Separates the jitter's random stream from every other seeded stream.
const JITTER_STREAM: u64 = 0x11_4E_71_77_E5;

impl Emulator {
    /// Starts the relay's listener on 127.0.0.1 (a free port) and its
    /// accept thread. `jitter` (at most rtt/2) moves each flight of bytes
    /// by up to ± that much.
    pub fn start(rtt: Duration, jitter: Duration) -> io::Result<Emulator> {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let accepting = shared.clone();
        std::thread::Builder::new()
            .name("poolbench-link".into())
            .spawn(move || accept(listener, &accepting))?;
        Ok(Emulator {
            rtt,
            jitter: jitter.min(rtt / 2),
            listener: addr,
            shared,
            connections: AtomicU64::new(0),
        })
    }

    pub fn rtt(&self) -> Duration {
        self.rtt
    }

    pub fn jitter(&self) -> Duration {
        self.jitter
    }

    /// Puts the link between the caller and `upstream`, a connection to
    /// the database already open: returns the loopback stream to use in
    /// its place and its round-trip counter. Returns one RTT after the
    /// loopback connect, as a TCP handshake across the link would.
    pub async fn relay<U>(&self, upstream: U) -> io::Result<(TcpStream, Turns)>
    where
        U: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let socket = TcpSocket::new_v4()?;
        socket.bind((Ipv4Addr::LOCALHOST, 0).into())?;
        let port = socket.local_addr()?.port();
        let (tx, rx) = oneshot::channel();
        self.shared.waiting().insert(port, tx);
        let registered = Registered {
            shared: &self.shared,
            port,
        };
        let client = socket.connect(self.listener).await?;
        let accepted = rx
            .await
            .map_err(|_| io::Error::other("the link emulator stopped"))?;
        drop(registered);
        client.set_nodelay(true)?;
        accepted.set_nodelay(true)?;
        accepted.set_nonblocking(true)?;
        let accepted = TcpStream::from_std(accepted)?;

        let n = self.connections.fetch_add(1, Ordering::Relaxed);
        let mut delays = Delays::new(self.rtt / 2, self.jitter, Rng::for_stream(JITTER_STREAM, n));
        let handshake = delays.draw() + delays.draw();
        let turns = Turns::new();
        tokio::spawn(relay::Relay::new(accepted, upstream, delays, turns.clone()));
        sleep(handshake).await;
        Ok((client, turns))
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::Relaxed);
        // Wakes the accept thread, which sees the flag and ends.
        let _ = std::net::TcpStream::connect_timeout(&self.listener, Duration::from_secs(1));
    }
}

/// Unregisters a port whose `relay` call gave up before its socket was
/// accepted (cancelled, or the connect failed).
struct Registered<'a> {
    shared: &'a Shared,
    port: u16,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.shared.waiting().remove(&self.port);
    }
}

/// The accept thread: hands each accepted socket to the `relay` call that
/// connected it (known by its port). A socket nobody waits for is closed.
fn accept(listener: std::net::TcpListener, shared: &Shared) {
    for conn in listener.incoming() {
        if shared.stopping.load(Ordering::Relaxed) {
            return;
        }
        let Ok(stream) = conn else {
            // Out of descriptors, most likely: the connect that caused it
            // fails by itself; give the others a moment.
            std::thread::sleep(Duration::from_millis(1));
            continue;
        };
        let Ok(peer) = stream.peer_addr() else {
            continue;
        };
        if let Some(tx) = shared.waiting().remove(&peer.port()) {
            let _ = tx.send(stream);
        }
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
