//! One relayed connection: bytes from the client (its end of the pipe) go
//! to the server and back, each chunk released a one-way delay after it
//! arrived, in order, in both directions at once; a flight from the server
//! after one from the client is a round trip. One task per connection,
//! polling both directions: at rtt = 0 a chunk is written as soon as it is
//! read.
//!
//! When either side closes, what is still in flight towards the other is
//! delivered, the other side is shut down, and the task ends, closing both
//! sockets.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Sleep;
use tokio_util::io::poll_read_buf;

use super::{Delays, Turns};
use crate::timer::{PreciseTimer, TOO_CLOSE};

/// Which end a flight of bytes came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Server,
}

/// The relay of one connection, as a future that ends when it is closed.
pub struct Relay<U, C> {
    client: C,
    server: U,
    /// Client → server, and server → client.
    up: Flow,
    down: Flow,
    link: Link,
}

/// What both directions share: who spoke last, the delays, the count.
struct Link {
    delays: Delays,
    last: Option<Side>,
    turns: Turns,
    /// When the relay started: the TCP handshake had just ended.
    started: Instant,
}

impl Link {
    /// A chunk arrived from `side`: a new flight when the other side spoke
    /// last (a round trip when that flight is the server's answer); its
    /// delay is drawn once per flight, so jitter never reorders a flight.
    /// Returns when the chunk may start its way: now, except for a server
    /// that speaks first (MySQL's greeting), which answers the TCP
    /// handshake's last ACK: that reaches it rtt/2 after the handshake,
    /// and the two make a round trip.
    fn arrived(&mut self, side: Side, flow: &mut Flow, now: Instant) -> Instant {
        let mut from = now;
        if self.last != Some(side) {
            if side == Side::Server {
                self.turns.add_one();
                if self.last.is_none() {
                    from = from.max(self.started + self.delays.one_way);
                }
            }
            flow.delay = self.delays.draw();
            self.last = Some(side);
        }
        from
    }
}

/// Read buffer growth: enough for a typical flight in one read.
const CHUNK: usize = 16 * 1024;

/// One direction: chunks read, waiting for their release.
struct Flow {
    side: Side,
    buf: BytesMut,
    queue: VecDeque<(Instant, Bytes)>,
    /// The current flight's one-way delay.
    delay: Duration,
    /// The release time of the last chunk queued: never earlier, so the
    /// order holds whatever the jitter.
    last_release: Option<Instant>,
    eof: bool,
    timer: Option<Timer>,
}

impl Flow {
    fn new(side: Side) -> Flow {
        Flow {
            side,
            buf: BytesMut::new(),
            queue: VecDeque::new(),
            delay: Duration::ZERO,
            last_release: None,
            eof: false,
            timer: None,
        }
    }

    /// Moves bytes from `from` to `to` as far as it can now; ready when
    /// this direction is finished (its reader closed and all delivered, or
    /// an error).
    fn poll<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        link: &mut Link,
        mut from: Pin<&mut R>,
        mut to: Pin<&mut W>,
    ) -> Poll<io::Result<()>>
    where
        R: AsyncRead,
        W: AsyncWrite,
    {
        while !self.eof {
            if self.buf.capacity() - self.buf.len() < CHUNK / 4 {
                self.buf.reserve(CHUNK);
            }
            match poll_read_buf(from.as_mut(), cx, &mut self.buf) {
                Poll::Ready(Ok(0)) => self.eof = true,
                Poll::Ready(Ok(_)) => {
                    let now = Instant::now();
                    let from = link.arrived(self.side, self, now);
                    let release = (from + self.delay).max(self.last_release.unwrap_or(now));
                    self.last_release = Some(release);
                    self.queue.push_back((release, self.buf.split().freeze()));
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => break,
            }
        }
        while let Some((release, chunk)) = self.queue.front_mut() {
            if *release > Instant::now() + TOO_CLOSE {
                let at = *release;
                match self.timer.get_or_insert_with(Timer::new).poll_until(cx, at) {
                    Poll::Ready(()) => continue,
                    Poll::Pending => return Poll::Pending,
                }
            }
            match to.as_mut().poll_write(cx, chunk) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    chunk.advance(n);
                    if chunk.is_empty() {
                        self.queue.pop_front();
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        if self.eof {
            return to.poll_shutdown(cx);
        }
        Poll::Pending
    }
}

impl<U, C> Relay<U, C> {
    pub fn new(client: C, server: U, delays: Delays, turns: Turns) -> Relay<U, C> {
        Relay {
            client,
            server,
            up: Flow::new(Side::Client),
            down: Flow::new(Side::Server),
            link: Link {
                delays,
                last: None,
                turns,
                started: Instant::now(),
            },
        }
    }
}

impl<U, C> Future for Relay<U, C>
where
    U: AsyncRead + AsyncWrite + Unpin,
    C: AsyncRead + AsyncWrite + Unpin,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let up = this.up.poll(
            cx,
            &mut this.link,
            Pin::new(&mut this.client),
            Pin::new(&mut this.server),
        );
        let down = this.down.poll(
            cx,
            &mut this.link,
            Pin::new(&mut this.server),
            Pin::new(&mut this.client),
        );
        // Either side closed (or failed): the task ends and both sockets
        // close with it.
        if up.is_ready() || down.is_ready() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// Wakes the relay when the next chunk is due: the precise timer, or
/// tokio's millisecond one if no timerfd can be had.
enum Timer {
    Precise(PreciseTimer),
    Coarse(Option<Pin<Box<Sleep>>>),
}

impl Timer {
    fn new() -> Timer {
        match PreciseTimer::new() {
            Ok(t) => Timer::Precise(t),
            Err(_) => Timer::Coarse(None),
        }
    }

    fn poll_until(&mut self, cx: &mut Context<'_>, at: Instant) -> Poll<()> {
        match self {
            Timer::Precise(t) => match t.poll_until(cx, at) {
                Poll::Ready(Ok(())) => Poll::Ready(()),
                Poll::Pending => Poll::Pending,
                Poll::Ready(Err(_)) => {
                    *self = Timer::Coarse(None);
                    self.poll_until(cx, at)
                }
            },
            Timer::Coarse(sleep) => {
                let sleep =
                    sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at.into())));
                if sleep.deadline() != at.into() {
                    sleep.as_mut().reset(at.into());
                }
                sleep.as_mut().poll(cx)
            }
        }
    }
}
