//! One application connection through the proxy: its first messages (TLS
//! with the proxy's certificate when it asks, a cancel request forwarded),
//! the server dialled, then every frame relayed both ways in one task and
//! observed on the way — the setup until the first ReadyForQuery, each
//! round of statements until its ReadyForQuery, transactions by the status
//! that ReadyForQuery carries, errors, idle time, and how it ended.
//!
//! SCRAM is relayed message by message: the proxy never sees a password
//! (it reads only the mechanism names and the channel-binding flag), and
//! it offers the application SCRAM-SHA-256 alone, as channel binding
//! (SCRAM-SHA-256-PLUS) cannot cross a TLS terminator.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::frames::{self, First, Flow, Frames, Malformed, Need};
use super::tally::{Ended, SetupTimes, Tally};
use super::upstream::Upstream;
use crate::backend::postgres::wire::Io;
use crate::backend::postgres::{io_error_class, sqlstate_class};
use crate::metrics::{micros, ErrorClass};

/// How long an application may take to send its first messages.
const FIRST_MESSAGE_LIMIT: Duration = Duration::from_secs(60);

/// How long a forwarded cancel request waits for the server to take it.
const CANCEL_LIMIT: Duration = Duration::from_secs(5);

/// What every session shares.
pub struct Shared {
    pub upstream: Upstream,
    pub tls: Option<TlsAcceptor>,
    pub tally: Arc<Tally>,
    pub stop: CancellationToken,
    /// The server_version the server reported, from the first session.
    pub server_version: std::sync::OnceLock<String>,
}

/// Relays and observes one accepted connection until it ends.
pub async fn serve(tcp: TcpStream, shared: Arc<Shared>) {
    let accepted = Instant::now();
    let _ = tcp.set_nodelay(true);
    let turns = Arc::new(AtomicU32::new(1));
    let app = Counted {
        inner: tcp,
        heard: false,
        turns: turns.clone(),
    };
    let mut conn = Conn::new(accepted, turns);
    let how = conn.run(Box::new(app), &shared).await;
    if let Some(how) = how {
        conn.end(how, &shared.tally);
    }
}

/// A connection's state as the proxy follows it.
struct Conn {
    accepted: Instant,
    /// Round trips on the application's side (its socket's turns).
    turns: Arc<AtomicU32>,
    /// Set at the first ReadyForQuery.
    ready: bool,
    tls_us: Option<u64>,
    tcp_us: u64,
    /// The server sent AuthenticationSASL and the application has not yet
    /// answered it: its next password message is the SASLInitialResponse.
    sasl_initial: bool,
    refused: bool,
    terminated: bool,
    /// ReadyForQuery still owed (one per Query, Sync or FunctionCall).
    pending: u32,
    busy_since: Option<Instant>,
    statements: u64,
    in_transaction: bool,
    transaction_since: Instant,
    /// Statements run in the transaction so far.
    transaction_statements: u64,
    idle_since: Instant,
    idle_us: u64,
    upstream_encrypted: bool,
}

impl Conn {
    fn new(accepted: Instant, turns: Arc<AtomicU32>) -> Conn {
        Conn {
            accepted,
            turns,
            ready: false,
            tls_us: None,
            tcp_us: 0,
            sasl_initial: false,
            refused: false,
            terminated: false,
            pending: 0,
            busy_since: None,
            statements: 0,
            in_transaction: false,
            transaction_since: accepted,
            transaction_statements: 0,
            idle_since: accepted,
            idle_us: 0,
            upstream_encrypted: false,
        }
    }

    /// The session; None when there was no session to count (a cancel
    /// request, or nothing sent).
    async fn run(&mut self, mut app: Box<dyn Io>, shared: &Shared) -> Option<Ended> {
        let startup = loop {
            let first =
                match tokio::time::timeout(FIRST_MESSAGE_LIMIT, frames::read_first(&mut app)).await
                {
                    Ok(Ok(Ok(first))) => first,
                    Ok(Ok(Err(_))) => return Some(Ended::Malformed),
                    Ok(Err(_)) | Err(_) => return None,
                };
            match first {
                First::Ssl => {
                    let started = Instant::now();
                    let Some(acceptor) = &shared.tls else {
                        app.write_all(b"N").await.ok()?;
                        continue;
                    };
                    app.write_all(b"S").await.ok()?;
                    app = match acceptor.accept(app).await {
                        Ok(tls) => Box::new(tls),
                        Err(_) => return Some(Ended::Malformed),
                    };
                    self.tls_us = Some(micros(started.elapsed()));
                }
                First::GssEnc => app.write_all(b"N").await.ok()?,
                First::Cancel(bytes) => {
                    forward_cancel(&bytes, shared).await;
                    return None;
                }
                First::Startup(bytes) => break bytes,
            }
        };
        let mut server = match shared.upstream.dial().await {
            Ok(dialed) => {
                self.tcp_us = dialed.tcp_us;
                if let Some(us) = dialed.tls_us {
                    self.upstream_encrypted = true;
                    self.tls_us = Some(self.tls_us.unwrap_or(0) + us);
                }
                dialed.stream
            }
            Err(e) => {
                let message = format!("poolbench watch could not reach the server: {e}");
                shared.tally.error(io_error_class(&e), &message);
                let _ = app.write_all(&frames::fatal("08006", &message)).await;
                let _ = app.shutdown().await;
                return Some(Ended::Unreachable);
            }
        };
        if server.write_all(&startup).await.is_err() {
            return Some(Ended::ServerClosed);
        }
        let how = self.relay(&mut app, &mut server, shared).await;
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            let _ = app.shutdown().await;
            let _ = server.shutdown().await;
        })
        .await;
        Some(how)
    }

    async fn relay(
        &mut self,
        app: &mut Box<dyn Io>,
        server: &mut Box<dyn Io>,
        shared: &Shared,
    ) -> Ended {
        let (mut from_app, mut from_server) =
            (BytesMut::with_capacity(8192), BytesMut::with_capacity(8192));
        let (mut app_frames, mut server_frames) = (Frames::default(), Frames::default());
        let mut out = BytesMut::with_capacity(8192);
        loop {
            tokio::select! {
                () = shared.stop.cancelled() => return self.ended(Ended::Stopped),
                read = app.read_buf(&mut from_app) => {
                    match read {
                        Ok(0) | Err(_) => {
                            return self.ended(Ended::ClientClosed);
                        }
                        Ok(_) => {}
                    }
                    let ready = self.ready;
                    let go = app_frames.relay(&mut from_app, &mut out, |tag| app_need(ready, tag), |tag, body, out| {
                        self.heard_from_app(tag, body, out, &shared.tally)
                    });
                    let go = match go {
                        Ok(go) => go,
                        Err(_) => return Ended::Malformed,
                    };
                    if !go {
                        // A refusal of the proxy's own went to the application.
                        let _ = app.write_all(&out).await;
                        return Ended::Malformed;
                    }
                    if !out.is_empty() {
                        if server.write_all(&out).await.is_err() {
                            return Ended::ServerClosed;
                        }
                        out.clear();
                    }
                }
                read = server.read_buf(&mut from_server) => {
                    match read {
                        Ok(0) | Err(_) => {
                            return self.ended(Ended::ServerClosed);
                        }
                        Ok(_) => {}
                    }
                    let ready = self.ready;
                    let go = server_frames.relay(&mut from_server, &mut out, |tag| server_need(ready, tag), |tag, body, out| {
                        self.heard_from_server(tag, body, out, shared)
                    });
                    if go.is_err() {
                        return Ended::Malformed;
                    }
                    if !out.is_empty() {
                        if app.write_all(&out).await.is_err() {
                            return self.ended(Ended::ClientClosed);
                        }
                        out.clear();
                    }
                }
            }
        }
    }

    /// How the session ended, when `otherwise` is what was seen first:
    /// after a Terminate, whichever side's close is the answer to it; after
    /// the server refused the session before it was ready (a wrong
    /// password), it was refused, whether the server's close, the
    /// application's, or the watch's stop came first.
    fn ended(&self, otherwise: Ended) -> Ended {
        if self.terminated {
            Ended::Terminated
        } else if self.refused {
            Ended::Refused
        } else {
            otherwise
        }
    }

    /// A frame from the application.
    fn heard_from_app(
        &mut self,
        tag: u8,
        body: Option<&[u8]>,
        out: &mut BytesMut,
        tally: &Tally,
    ) -> Result<Flow, Malformed> {
        if !self.ready {
            if tag == b'p' && std::mem::take(&mut self.sasl_initial) {
                let body = body.unwrap_or_default();
                if self.upstream_encrypted && frames::gs2_flag(body) == Some(b'y') {
                    // The server would refuse it as a downgrade: say why.
                    out.clear();
                    out.extend_from_slice(&frames::fatal(
                        "08P01",
                        "poolbench watch relays SCRAM across its own TLS, which cannot carry channel \
                         binding, and this client offers it: connect with channel_binding=disable \
                         (PGCHANNELBINDING=disable)",
                    ));
                    return Ok(Flow::Stop);
                }
            }
            if tag == b'X' {
                self.terminated = true;
            }
            return Ok(Flow::Pass);
        }
        if tag == b'X' {
            self.terminated = true;
            return Ok(Flow::Pass);
        }
        let now = Instant::now();
        if self.busy_since.is_none() {
            self.busy_since = Some(now);
            self.idle_us += micros(now.saturating_duration_since(self.idle_since));
            if !self.in_transaction {
                self.in_transaction = true;
                self.transaction_since = now;
                tally.began();
            }
        }
        match tag {
            b'Q' => {
                self.statements += 1;
                self.pending += 1;
            }
            b'E' => self.statements += 1,
            b'S' | b'F' => self.pending += 1,
            _ => {}
        }
        Ok(Flow::Pass)
    }

    /// A frame from the server.
    fn heard_from_server(
        &mut self,
        tag: u8,
        body: Option<&[u8]>,
        out: &mut BytesMut,
        shared: &Shared,
    ) -> Result<Flow, Malformed> {
        let body = body.unwrap_or_default();
        match tag {
            b'R' if !self.ready => {
                if let Some((msg, _)) = frames::without_channel_binding(body)? {
                    self.sasl_initial = true;
                    out.extend_from_slice(&msg);
                    return Ok(Flow::Replaced);
                }
            }
            b'S' if !self.ready => {
                if let Some((b"server_version", version)) = frames::parameter(body) {
                    let _ = shared
                        .server_version
                        .set(String::from_utf8_lossy(version).into_owned());
                }
            }
            b'E' => {
                let (code, message) = frames::error_fields(body);
                let class = if code.is_empty() {
                    ErrorClass::Other
                } else {
                    sqlstate_class(&code)
                };
                if !self.ready {
                    self.refused = true;
                }
                shared.tally.error(class, &message);
            }
            b'Z' => self.ready_for_query(body.first().copied(), &shared.tally),
            _ => {}
        }
        Ok(Flow::Pass)
    }

    fn ready_for_query(&mut self, status: Option<u8>, tally: &Tally) {
        let now = Instant::now();
        if !self.ready {
            self.ready = true;
            self.idle_since = now;
            let connect_us = micros(now.duration_since(self.accepted));
            let tls_us = self.tls_us;
            tally.opened(&SetupTimes {
                connect_us,
                tcp_us: self.tcp_us,
                tls_us,
                startup_us: connect_us.saturating_sub(self.tcp_us + tls_us.unwrap_or(0)),
                // The flight carrying this ReadyForQuery answers the
                // application's last message and is not yet written.
                round_trips: self.turns.load(Ordering::Relaxed) + 1,
            });
            return;
        }
        self.pending = self.pending.saturating_sub(1);
        if self.pending > 0 {
            return;
        }
        let Some(since) = self.busy_since.take() else {
            return;
        };
        self.idle_since = now;
        let statements = std::mem::take(&mut self.statements);
        self.transaction_statements += statements;
        let ended = status == Some(b'I');
        // A round that ran no statement (a Parse and Sync: a driver
        // preparing one) ends no transaction.
        let transaction = (ended && self.transaction_statements > 0)
            .then(|| micros(now.duration_since(self.transaction_since)));
        if ended {
            self.in_transaction = false;
            self.transaction_statements = 0;
        }
        tally.answered(
            statements,
            micros(now.duration_since(since)),
            ended,
            transaction,
        );
    }

    fn end(&mut self, how: Ended, tally: &Tally) {
        let now = Instant::now();
        if self.ready && self.busy_since.is_none() {
            self.idle_us += micros(now.saturating_duration_since(self.idle_since));
        }
        tally.closed(
            how,
            self.ready,
            self.in_transaction,
            self.idle_us,
            micros(now.duration_since(self.accepted)),
        );
    }
}

/// What the proxy reads of the application's frames: the password
/// messages of the setup whole (the SASL flag), the others' tags.
fn app_need(ready: bool, tag: u8) -> Need {
    if !ready && tag == b'p' {
        Need::Body
    } else {
        Need::Tag
    }
}

/// What it reads of the server's: ReadyForQuery and errors whole, and in
/// the setup the authentication requests and parameters.
fn server_need(ready: bool, tag: u8) -> Need {
    match tag {
        b'Z' | b'E' => Need::Body,
        b'R' | b'S' if !ready => Need::Body,
        _ => Need::Tag,
    }
}

/// Forwards a CancelRequest to the server on a connection of its own, and
/// waits (briefly) for the server to close it, as it does once it has
/// taken the request.
async fn forward_cancel(bytes: &[u8], shared: &Shared) {
    let Ok(mut dialed) = shared.upstream.dial().await else {
        return;
    };
    if dialed.stream.write_all(bytes).await.is_ok() {
        shared.tally.cancelled();
        let mut rest = [0u8; 64];
        let _ = tokio::time::timeout(CANCEL_LIMIT, dialed.stream.read(&mut rest)).await;
    }
}

/// The application's socket, counting round trips: each write that follows
/// a read is an answer to something heard, one turn.
struct Counted {
    inner: TcpStream,
    heard: bool,
    turns: Arc<AtomicU32>,
}

/// The proxy never asks (it reads its sockets by polling them).
impl Io for Counted {}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.heard = true;
        }
        polled
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) && self.heard {
            self.heard = false;
            self.turns.fetch_add(1, Ordering::Relaxed);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
