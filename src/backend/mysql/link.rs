//! A measured MySQL connection across the link emulator, its setup timed
//! from its bytes. mysql_async dials its own socket and takes no stream
//! from its caller, so poolbench connects to the server itself (the `tcp`
//! phase, with the emulated TCP handshake), listens on a loopback port of
//! its own and points the driver there: the relay (`net/`) sits between
//! the driver's socket and the server's, delays each flight, counts the
//! round trips, and its tap sees the setup's bytes, as the client sent and
//! got them. From those, `tls` runs from the client's SSL request packet
//! (sent after the server's greeting) to the end of the TLS handshake —
//! the client's first bytes after the server's last flight holding a TLS
//! handshake record (TLS 1.3: its Finished; TLS 1.2: its first
//! application data) — and `startup` is the rest: the greeting before it,
//! authentication (the plugin's exchange, as many round trips as it takes)
//! and the driver's settings query after it. Once the driver has its
//! connection the tap is stopped: a request pays for the relay's loopback
//! hop, never for the tap.

use std::io;
use std::net::Ipv4Addr;
use std::time::Instant;

use mysql_async::{Conn, Opts, OptsBuilder};
use tokio::net::{TcpListener, TcpStream};

use super::target::Target;
use crate::metrics::{micros, Setup};
use crate::net::{Emulator, Seen, Tap, Turns};

/// A connection opened across the link: the driver's, its setup, when it
/// was ready, and its round-trip counter.
pub struct Linked {
    pub conn: Conn,
    pub setup: Setup,
    pub ready_at: Instant,
    pub turns: Turns,
}

/// Opens one connection to `target` across `link`, its setup timed from
/// `started` (tcp includes any attempt the target made before: a
/// PREFERRED connection to a server without TLS is made twice, once).
pub async fn open(
    target: &Target,
    link: &Emulator,
    started: Instant,
) -> Result<Linked, mysql_async::Error> {
    target.connect_by(|opts| attempt(link, opts, started)).await
}

/// One attempt with `opts`: the server's socket, the link, the driver
/// pointed at the relay.
async fn attempt(
    link: &Emulator,
    opts: Opts,
    started: Instant,
) -> Result<Linked, mysql_async::Error> {
    let upstream = TcpStream::connect((opts.ip_or_hostname(), opts.tcp_port())).await?;
    upstream.set_nodelay(true)?;
    let handshaken = link.handshake().await;
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let via = via_port(&opts, listener.local_addr()?.port());
    let tap = Tap::default();
    let relayed = {
        let tap = tap.clone();
        async move {
            let (socket, _) = listener.accept().await?;
            socket.set_nodelay(true)?;
            let tcp_done = Instant::now();
            Ok::<_, io::Error>((tcp_done, handshaken.start(socket, upstream, Some(tap))))
        }
    };
    let driver = Conn::new(via);
    let (conn, (tcp_done, turns)) = futures_util::future::try_join(driver, async {
        relayed.await.map_err(mysql_async::Error::from)
    })
    .await?;
    let ready_at = Instant::now();
    let seen = tap.stop();
    let tls = seen.as_deref().and_then(tls_interval);
    let connect = ready_at.saturating_duration_since(tcp_done);
    let tls_time = tls.map(|(from, to)| {
        to.clamp(tcp_done, ready_at)
            .saturating_duration_since(from.clamp(tcp_done, ready_at))
    });
    Ok(Linked {
        conn,
        setup: Setup {
            tcp_us: micros(tcp_done.saturating_duration_since(started)),
            tls_us: tls_time.map(micros),
            startup_us: micros(connect.saturating_sub(tls_time.unwrap_or_default())),
            round_trips: Some(turns.now()),
            // The driver connects in one step: its CPU is not metered.
            cpu: None,
        },
        ready_at,
        turns,
    })
}

/// `opts` with the driver pointed at the relay's loopback `port`, TLS still
/// checking the server's name (the one it was given, unless the target
/// already chose another).
fn via_port(opts: &Opts, port: u16) -> Opts {
    let ssl = opts.ssl_opts().map(|ssl| {
        if ssl.tls_hostname_override().is_some() {
            ssl.clone()
        } else {
            ssl.clone()
                .with_danger_tls_hostname_override(Some(opts.ip_or_hostname().to_string()))
        }
    });
    OptsBuilder::from_opts(opts.clone())
        .ip_or_hostname(Ipv4Addr::LOCALHOST.to_string())
        .tcp_port(port)
        .ssl_opts(ssl)
        .into()
}

/// A MySQL packet's payload length (its header's first three bytes).
fn payload_len(header: &[u8]) -> Option<usize> {
    match header {
        [a, b, c, ..] => Some(usize::from(*a) | usize::from(*b) << 8 | usize::from(*c) << 16),
        _ => None,
    }
}

/// The SSL request's payload: capabilities, max packet, charset, filler.
/// A handshake response is longer (it names the user).
const SSL_REQUEST_LEN: usize = 32;

/// TLS record content types.
const TLS_HANDSHAKE: u8 = 22;

/// When TLS began and ended as the client saw it: the client's SSL request
/// (its first packet, after the server's greeting) to its first bytes
/// after the server's last flight holding a TLS handshake record. None
/// without an SSL request (ssl-mode DISABLED, or a server without TLS), or
/// when the bytes are not MySQL's and TLS's as expected.
fn tls_interval(seen: &[Seen]) -> Option<(Instant, Instant)> {
    let request = seen.iter().find(|c| !c.from_server)?;
    if payload_len(&request.bytes)? != SSL_REQUEST_LEN {
        return None;
    }
    // The server's bytes in order, each chunk's place in `seen`, and the
    // offset each chunk ends at.
    let server: Vec<(usize, &Seen)> = seen
        .iter()
        .enumerate()
        .filter(|(_, c)| c.from_server)
        .collect();
    let bytes: Vec<u8> = server
        .iter()
        .flat_map(|(_, c)| c.bytes.iter().copied())
        .collect();
    let mut ends = Vec::with_capacity(server.len());
    let mut total = 0;
    for (_, c) in &server {
        total += c.bytes.len();
        ends.push(total);
    }
    // The greeting is one packet; TLS records follow it.
    let mut at = 4 + payload_len(&bytes)?;
    let mut last_handshake = None;
    while let Some(header) = bytes.get(at..at + 5) {
        let end = at + 5 + (usize::from(header[3]) << 8 | usize::from(header[4]));
        if header[0] == TLS_HANDSHAKE {
            last_handshake = Some(end.min(bytes.len()));
        }
        at = end;
    }
    let last_handshake = last_handshake?;
    let chunk = ends.iter().position(|&end| end >= last_handshake)?;
    // The client's first bytes after that chunk (in the order the relay
    // saw them, and not before the client got it).
    let (index, got) = (server[chunk].0, server[chunk].1.at);
    let answered = seen[index..]
        .iter()
        .find(|c| !c.from_server && c.at >= got)
        .map_or(got, |c| c.at);
    Some((request.at, answered))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::time::Duration;

    fn seen(from_server: bool, ms: u64, bytes: &[u8], t0: Instant) -> Seen {
        Seen {
            from_server,
            at: t0 + Duration::from_millis(ms),
            bytes: Bytes::copy_from_slice(bytes),
        }
    }

    fn packet(len: usize) -> Vec<u8> {
        let mut p = vec![len as u8, 0, 0, 0];
        p.resize(4 + len, 7);
        p
    }

    fn record(kind: u8, len: usize) -> Vec<u8> {
        let mut r = vec![kind, 3, 3, (len >> 8) as u8, len as u8];
        r.resize(5 + len, 1);
        r
    }

    #[test]
    fn tls_runs_from_the_ssl_request_to_the_client_after_the_last_handshake_flight() {
        let t0 = Instant::now();
        // TLS 1.3: greeting; SslRequest + ClientHello; ServerHello (22),
        // then encrypted records (23) split over two chunks; the client's
        // Finished; the handshake response; the server's OK.
        let mut hello = record(TLS_HANDSHAKE, 90);
        hello.extend(record(23, 20));
        let log = [
            seen(true, 1, &packet(70)[..50], t0),
            seen(true, 1, &packet(70)[50..], t0),
            seen(false, 2, &packet(SSL_REQUEST_LEN), t0),
            seen(false, 2, &record(TLS_HANDSHAKE, 200), t0),
            seen(true, 4, &hello, t0),
            seen(true, 4, &record(23, 1500), t0),
            seen(false, 5, &record(23, 53), t0),
            seen(false, 5, &record(23, 120), t0),
            seen(true, 7, &record(23, 30), t0),
        ];
        let (from, to) = tls_interval(&log).unwrap();
        assert_eq!(from, t0 + Duration::from_millis(2));
        assert_eq!(to, t0 + Duration::from_millis(5));
    }

    #[test]
    fn no_tls_without_an_ssl_request() {
        let t0 = Instant::now();
        let log = [
            seen(true, 1, &packet(70), t0),
            seen(false, 2, &packet(80), t0),
            seen(true, 3, &packet(7), t0),
        ];
        assert_eq!(tls_interval(&log), None);
    }
}
