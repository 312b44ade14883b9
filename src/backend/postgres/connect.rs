//! Opening a PostgreSQL connection: poolbench's one dialer. Every
//! connection to PostgreSQL comes through here: the measured ones
//! ([`open`]), each step timed where it happens — `tcp` (name resolution
//! and the TCP connect, across the link emulator when there is one), `tls`
//! (the SSLRequest and the TLS handshake) and `startup` (StartupMessage to
//! ReadyForQuery) — and poolbench's own ([`own`]: the start-up check, the
//! monitor, the authentication probe, the embedded servers' readiness
//! checks, PgBouncer's admin console), which keep the driver's `Client`.
//! The socket is poolbench's own, lent to tokio-postgres' `connect_raw`
//! with the target's rustls connector (`tls.rs`), which notes when its
//! handshake ends: the bytes on the wire are the driver's, unchanged. A
//! measured connection's stream (TLS or not) is taken back once the session
//! is ready, and the session runs on [`Wire`], in the request's own task.
//! Hosts, ports, `hostaddr`, Unix-domain sockets, the per-address
//! `connect_timeout`, keepalives, `load_balance_hosts` and
//! `target_session_attrs` are handled as the driver's own `connect` does.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use socket2::{SockRef, TcpKeepalive};
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_postgres::config::{Host, LoadBalanceHosts, SslMode, SslNegotiation, TargetSessionAttrs};
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::{ChannelBinding, TlsConnect};
use tokio_postgres::{Client, Config, Connection, SimpleQueryMessage};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::cpu::{is_backend_of, process_cpu_ns, CpuMeter, Metered, ServerView, Sniffer, Tie};
use super::wire::{Io, Wire, WireError};
use super::{io_error_class, request_error, wire_request_error, Target};
use crate::metrics::{micros, ErrorClass, RequestError, Setup, SetupCpu};
use crate::net::{Emulator, Turns};
use crate::rng::Rng;

/// A connection opened for measuring: its session, how its setup went,
/// and its round-trip counter when it crosses the link emulator.
pub struct Opened {
    pub wire: Wire,
    pub setup: Setup,
    /// When it was ready for queries: `connect` runs from the caller's
    /// start to here, the interval tcp, tls and startup divide.
    pub ready_at: Instant,
    pub turns: Option<Turns>,
}

/// Why a connection could not be opened.
#[derive(Debug)]
pub enum ConnectError {
    /// Resolving the host, or its TCP (or Unix-domain) connect.
    Socket(io::Error),
    /// The server, the TLS handshake or authentication said no.
    Postgres(tokio_postgres::Error),
    /// The DSN's hosts cannot be tried (as the driver would refuse them).
    Config(String),
    /// The session, once open: its target_session_attrs check, or a
    /// pooled connection's recycle check.
    Wire(WireError),
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Socket(e) => write!(f, "error connecting to server: {e}"),
            ConnectError::Postgres(e) => f.write_str(&super::describe_pg_error(e)),
            ConnectError::Config(m) => write!(f, "invalid configuration: {m}"),
            ConnectError::Wire(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ConnectError {}

impl ConnectError {
    /// The server's SQLSTATE, when the server refused the session.
    pub fn code(&self) -> Option<&SqlState> {
        match self {
            ConnectError::Postgres(e) => e.code(),
            _ => None,
        }
    }

    /// Whether the server refused the login itself (SQLSTATE 28P01 or
    /// 28000): waiting or retrying will not change it.
    pub fn is_auth_failure(&self) -> bool {
        matches!(self.code().map(|c| c.code()), Some("28P01" | "28000"))
    }

    /// The error as a request counts it: its class and description.
    pub fn request_error(&self) -> RequestError {
        match self {
            ConnectError::Postgres(e) => request_error(e),
            ConnectError::Wire(e) => wire_request_error(e),
            ConnectError::Socket(e) => RequestError::new(io_error_class(e), self.to_string()),
            ConnectError::Config(_) => RequestError::new(ErrorClass::Other, self.to_string()),
        }
    }
}

impl From<tokio_postgres::Error> for ConnectError {
    fn from(e: tokio_postgres::Error) -> Self {
        ConnectError::Postgres(e)
    }
}

/// Opens one connection to `target` (through `link` when given) for
/// measuring, trying its hosts and addresses in turn as the driver does.
/// `started` is when the caller began (the `tcp` phase runs from it). Not
/// bounded as a whole: the caller puts its timeout around it. The opening
/// thread's CPU time is metered poll by poll (`cpu.rs`).
pub async fn open(
    target: &Target,
    link: Option<&Emulator>,
    started: Instant,
) -> Result<Opened, ConnectError> {
    let meter = Arc::new(CpuMeter::default());
    let attempts = each_address(target.config(), |dial, hostname| {
        let meter = meter.clone();
        async move { measured(target, link, &dial, hostname.as_deref(), started, meter).await }
    });
    Metered::new(attempts, meter.clone()).await
}

/// One of poolbench's own connections, not measured.
pub struct Own {
    /// The driver's client; a spawned task drives its connection and ends
    /// when the client is dropped.
    pub client: Client,
    /// Whether the session is encrypted.
    pub encrypted: bool,
}

/// Opens one of poolbench's own connections to `target`, trying its hosts
/// and addresses in turn as the driver does. `transcript`, when given,
/// records what the server sends (the authentication probe reads it). Not
/// bounded as a whole: the caller puts its timeout around it.
pub async fn own(target: &Target, transcript: Option<&Transcript>) -> Result<Own, ConnectError> {
    each_address(target.config(), |dial, hostname| async move {
        let session = handshake(target, None, &dial, hostname.as_deref(), transcript, None).await?;
        let encrypted = session.marks.tls_done.get().is_some();
        let connection = session.connection;
        tokio::spawn(async move {
            // The connection's error surfaces on the client's next call.
            let _ = connection.await;
        });
        let read_only = match target.config().get_target_session_attrs() {
            TargetSessionAttrs::Any => None,
            _ => session
                .client
                .simple_query("SHOW transaction_read_only")
                .await?
                .iter()
                .find_map(|message| match message {
                    SimpleQueryMessage::Row(row) => row.get(0).map(|v| v == "on"),
                    _ => None,
                }),
        };
        session_attrs(target.config(), read_only)?;
        Ok(Own {
            client: session.client,
            encrypted,
        })
    })
    .await
}

/// Runs `attempt` on each address of each host in the driver's order until
/// one connects; the last error otherwise.
async fn each_address<T, F, Fut>(config: &Config, mut attempt: F) -> Result<T, ConnectError>
where
    F: FnMut(Dial, Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<T, ConnectError>>,
{
    let mut last = None;
    for candidate in candidates(config)? {
        let dials = match &candidate.addr {
            Host::Tcp(name) => match tokio::net::lookup_host((name.as_str(), candidate.port)).await
            {
                Ok(addrs) => {
                    let mut addrs: Vec<Dial> = addrs.map(Dial::Tcp).collect();
                    if config.get_load_balance_hosts() == LoadBalanceHosts::Random {
                        shuffle(&mut addrs);
                    }
                    addrs
                }
                Err(e) => {
                    last = Some(ConnectError::Socket(e));
                    continue;
                }
            },
            Host::Unix(dir) => vec![Dial::Unix(dir.join(format!(".s.PGSQL.{}", candidate.port)))],
        };
        for dial in dials {
            match attempt(dial, candidate.hostname.clone()).await {
                Ok(done) => return Ok(done),
                Err(e) => last = Some(e),
            }
        }
    }
    Err(last.unwrap_or_else(|| {
        ConnectError::Socket(io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve any addresses",
        ))
    }))
}

/// One host to try: where to connect, the name TLS checks, the port.
struct Candidate {
    addr: Host,
    hostname: Option<String>,
    port: u16,
}

/// The hosts in the order the driver tries them (`hostaddr` over `host`
/// for the connect, `host` for TLS; shuffled with load_balance_hosts).
fn candidates(config: &Config) -> Result<Vec<Candidate>, ConnectError> {
    let (hosts, addrs, ports) = (
        config.get_hosts(),
        config.get_hostaddrs(),
        config.get_ports(),
    );
    if hosts.is_empty() && addrs.is_empty() {
        return Err(ConnectError::Config(
            "both host and hostaddr are missing".into(),
        ));
    }
    if !hosts.is_empty() && !addrs.is_empty() && hosts.len() != addrs.len() {
        return Err(ConnectError::Config(format!(
            "number of hosts ({}) is different from number of hostaddrs ({})",
            hosts.len(),
            addrs.len()
        )));
    }
    let n = hosts.len().max(addrs.len());
    if ports.len() > 1 && ports.len() != n {
        return Err(ConnectError::Config("invalid number of ports".into()));
    }
    let mut list: Vec<Candidate> = (0..n)
        .map(|i| {
            let host = hosts.get(i);
            Candidate {
                addr: match (addrs.get(i), host) {
                    (Some(ip), _) => Host::Tcp(ip.to_string()),
                    (None, Some(h)) => h.clone(),
                    // n > 0 and one of the two lists has entry i.
                    (None, None) => Host::Tcp("localhost".into()),
                },
                hostname: match host {
                    Some(Host::Tcp(h)) => Some(h.clone()),
                    _ => None,
                },
                port: ports.get(i).or(ports.first()).copied().unwrap_or(5432),
            }
        })
        .collect();
    if config.get_load_balance_hosts() == LoadBalanceHosts::Random {
        shuffle(&mut list);
    }
    Ok(list)
}

fn shuffle<T>(items: &mut [T]) {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut rng = Rng::new(seed);
    for i in (1..items.len()).rev() {
        items.swap(i, rng.below(i as u64 + 1) as usize);
    }
}

/// One address to connect to.
enum Dial {
    Tcp(std::net::SocketAddr),
    Unix(PathBuf),
}

impl Dial {
    /// The connect itself, bounded by `connect_timeout` as the driver does
    /// (per address), with its socket options.
    async fn connect(&self, config: &Config) -> io::Result<Socket> {
        let limit = config.get_connect_timeout().copied();
        match self {
            Dial::Tcp(addr) => {
                let stream = bounded(TcpStream::connect(*addr), limit).await?;
                stream.set_nodelay(true)?;
                if let Ok(local) = stream.local_addr() {
                    crate::placement::note_connection(local.port());
                }
                let sock = SockRef::from(&stream);
                if let Some(t) = config.get_tcp_user_timeout() {
                    sock.set_tcp_user_timeout(Some(*t))?;
                }
                if config.get_keepalives() {
                    let mut keepalive = TcpKeepalive::new().with_time(config.get_keepalives_idle());
                    if let Some(i) = config.get_keepalives_interval() {
                        keepalive = keepalive.with_interval(i);
                    }
                    if let Some(r) = config.get_keepalives_retries() {
                        keepalive = keepalive.with_retries(r);
                    }
                    sock.set_tcp_keepalive(&keepalive)?;
                }
                Ok(Socket::Tcp(stream))
            }
            Dial::Unix(path) => {
                let stream = bounded(UnixStream::connect(path), limit).await?;
                Ok(Socket::Unix(stream))
            }
        }
    }
}

async fn bounded<T>(
    connect: impl std::future::Future<Output = io::Result<T>>,
    limit: Option<Duration>,
) -> io::Result<T> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, connect)
            .await
            .unwrap_or_else(|_| {
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection timed out",
                ))
            }),
        None => connect.await,
    }
}

/// A session the driver set up on poolbench's socket: its two halves, the
/// streams lent to it, and when the TCP connect and the handshake ended.
struct Session {
    client: Client,
    connection: Connection<Lent<Marked>, Lent<Encrypted>>,
    plain: Lent<Marked>,
    encrypted: Lent<Encrypted>,
    marks: Arc<Marks>,
    tcp_done: Instant,
    turns: Option<Turns>,
    /// How its backend is recognised among this machine's processes.
    tie: Tie,
}

/// A measured connection's CPU probes: the meter of its future, the
/// sniffer of its messages, and the meter's reading when the TCP connect
/// ended.
struct Probe {
    meter: Arc<CpuMeter>,
    sniffer: Arc<Sniffer>,
    tcp_done_ns: OnceLock<u64>,
}

/// Connects to one address and has the driver set up the session on it:
/// TLS as the target's sslmode asks, then the startup and authentication.
async fn handshake(
    target: &Target,
    link: Option<&Emulator>,
    dial: &Dial,
    hostname: Option<&str>,
    transcript: Option<&Transcript>,
    probe: Option<&Probe>,
) -> Result<Session, ConnectError> {
    let config = target.config();
    let socket = dial.connect(config).await.map_err(ConnectError::Socket)?;
    // Taken before the link emulator wraps the socket: the server sees
    // this one's port.
    let tie = socket.tie();
    let (socket, turns) = match link {
        Some(link) => {
            let (stream, turns) = link.relay(socket).await;
            (Socket::Link(stream), Some(turns))
        }
        None => (socket, None),
    };
    let tcp_done = Instant::now();
    let sniffer = probe.map(|p| {
        let _ = p.tcp_done_ns.set(p.meter.now_ns());
        p.sniffer.clone()
    });

    let marks = Arc::new(Marks {
        meter: probe.map(|p| p.meter.clone()),
        ..Marks::default()
    });
    let encrypted = Lent::empty(transcript, sniffer.clone());
    let tls = TimedTls {
        connector: TlsConnector::from(target.tls().config()),
        domain: hostname.unwrap_or(""),
        marks: marks.clone(),
        encrypted: encrypted.clone(),
    };
    let plain = Lent::new(
        Marked {
            inner: socket,
            marks: Some(marks.clone()),
        },
        transcript,
        sniffer,
    );
    let (client, connection) = config
        .connect_raw(plain.clone(), tls)
        .await
        .map_err(|e| refused_direct(config, e.into()))?;
    Ok(Session {
        client,
        connection,
        plain,
        encrypted,
        marks,
        tcp_done,
        turns,
        tie,
    })
}

/// Connects to one address and opens a measured session on it.
async fn measured(
    target: &Target,
    link: Option<&Emulator>,
    dial: &Dial,
    hostname: Option<&str>,
    started: Instant,
    meter: Arc<CpuMeter>,
) -> Result<Opened, ConnectError> {
    let config = target.config();
    // The first byte read answers the SSLRequest, when one is sent.
    let ssl_request = config.get_ssl_mode() != SslMode::Disable
        && config.get_ssl_negotiation() != SslNegotiation::Direct;
    let probe = Probe {
        sniffer: Arc::new(Sniffer::new(meter.clone(), ssl_request)),
        meter,
        tcp_done_ns: OnceLock::new(),
    };
    let session = handshake(target, link, dial, hostname, None, Some(&probe)).await?;
    let (marks, tcp_done, turns, tie) =
        (session.marks, session.tcp_done, session.turns, session.tie);
    // The session is ready and the server sends nothing more until asked:
    // the driver's halves are dropped unpolled (so they send nothing) and
    // the stream is taken back, encrypted if the handshake happened.
    drop((session.client, session.connection));
    let stream: Box<dyn super::wire::Io> = match (session.encrypted.take(), session.plain.take()) {
        (Some(tls), _) => Box::new(tls),
        (None, Some(socket)) => Box::new(socket),
        (None, None) => {
            return Err(ConnectError::Config(
                "the driver kept the connection's stream".into(),
            ))
        }
    };
    let mut wire = Wire::new(stream);
    check_session_attrs(&mut wire, config).await?;
    let end = Instant::now();

    // With an SSLRequest sent, `tls` ends when the handshake does, or when
    // the server's refusal ('N') arrived (sslmode=prefer against a server
    // without TLS).
    let tls_end = match config.get_ssl_mode() {
        SslMode::Disable => None,
        _ => marks
            .tls_done
            .get()
            .or(marks.first_read.get())
            .copied()
            .map(|at| at.clamp(tcp_done, end)),
    };
    let startup_from = tls_end.unwrap_or(tcp_done);
    let cpu = setup_cpu(target, &probe, &marks, tls_end.is_some(), tie);
    Ok(Opened {
        wire,
        setup: Setup {
            tcp_us: micros(tcp_done - started),
            tls_us: tls_end.map(|at| micros(at - tcp_done)),
            startup_us: micros(end - startup_from),
            round_trips: turns.as_ref().map(Turns::now),
            cpu: Some(cpu),
        },
        ready_at: end,
        turns,
    })
}

/// Whose CPU the setup used, read at ReadyForQuery: the client's from the
/// meter (split where the tcp and tls steps ended), then the backend's from
/// /proc when the server runs here and the pid is the connection's backend
/// (read after the client's total, so its cost is not the client's setup),
/// and the server's logged setup durations when it logs them.
fn setup_cpu(target: &Target, probe: &Probe, marks: &Marks, tls: bool, tie: Tie) -> SetupCpu {
    let total_ns = probe.meter.now_ns();
    let tcp_ns = probe.tcp_done_ns.get().copied().unwrap_or(0).min(total_ns);
    let tls_end_ns = tls.then(|| {
        marks
            .tls_done_ns
            .get()
            .or(marks.first_read_ns.get())
            .copied()
            .unwrap_or(tcp_ns)
            .clamp(tcp_ns, total_ns)
    });
    let seen = probe.sniffer.seen();
    // The steps' ends in whole µs, so that the steps add up to the total.
    let us = |ns: u64| ns / 1_000;
    let (total_us, tcp_us) = (us(total_ns), us(tcp_ns));
    let tls_end_us = tls_end_ns.map(us);
    let backend = seen.backend_pid.filter(|&pid| match target.server_view() {
        ServerView::Embedded => true,
        ServerView::Local => is_backend_of(pid, tie),
        ServerView::Remote => false,
    });
    let logged = backend
        .zip(target.details().setup_log.as_ref())
        .and_then(|(pid, log)| log.take(pid));
    let server_us = backend.and_then(process_cpu_ns).map(us);
    // Its backend on this thread's CPU from its first query on, after its
    // setup's CPU was read (`placement`: poolbench's own server only).
    if let Some(pid) = backend {
        let port = match tie {
            Tie::ClientPort(port) => Some(port),
            _ => None,
        };
        crate::placement::pin_backend(pid, port);
    }
    SetupCpu {
        client_us: total_us,
        client_tcp_us: tcp_us,
        client_tls_us: tls_end_us.map(|end| end - tcp_us),
        client_startup_us: total_us - tls_end_us.unwrap_or(tcp_us),
        client_scram_us: seen.scram_ns.map(us),
        server_us,
        server_fork_us: logged.map(|l| l.fork_us),
        server_auth_us: logged.map(|l| l.auth_us),
    }
}

/// A direct TLS handshake (sslnegotiation=direct) that the server answered
/// by closing the connection: a server before PostgreSQL 17, which reads
/// the TLS ClientHello as a malformed startup packet. Said so, since the
/// driver's own error is only "unexpected EOF".
fn refused_direct(config: &Config, e: ConnectError) -> ConnectError {
    if config.get_ssl_negotiation() != SslNegotiation::Direct {
        return e;
    }
    let closed = match &e {
        ConnectError::Postgres(pg) => {
            // The driver's error and its cause (rustls' own words).
            let text = super::describe_pg_error(pg);
            // rustls' "tls handshake eof", or a reset.
            pg.code().is_none()
                && ["handshake eof", "unexpected EOF", "onnection reset"]
                    .iter()
                    .any(|closed| text.contains(closed))
        }
        _ => false,
    };
    if !closed {
        return e;
    }
    ConnectError::Socket(io::Error::new(
        io::ErrorKind::ConnectionAborted,
        format!(
            "sslnegotiation=direct: the server closed the connection at the TLS handshake \
             ({e}); direct TLS needs PostgreSQL 17 or later (use sslnegotiation=postgres for \
             an older server)"
        ),
    ))
}

/// target_session_attrs=read-write or read-only: checked as the driver
/// does, with `SHOW transaction_read_only` (part of `startup`).
async fn check_session_attrs(wire: &mut Wire, config: &Config) -> Result<(), ConnectError> {
    if config.get_target_session_attrs() == TargetSessionAttrs::Any {
        return Ok(());
    }
    let read_only = wire
        .simple("SHOW transaction_read_only")
        .await
        .map_err(ConnectError::Wire)?
        .map(|v| v == "on");
    session_attrs(config, read_only)
}

/// Whether a session whose `transaction_read_only` is `read_only` is one
/// target_session_attrs accepts, in the driver's words when not.
fn session_attrs(config: &Config, read_only: Option<bool>) -> Result<(), ConnectError> {
    let refused = match (config.get_target_session_attrs(), read_only) {
        (TargetSessionAttrs::ReadWrite, Some(true)) => Some("database does not allow writes"),
        (TargetSessionAttrs::ReadOnly, Some(false)) => Some("database is not read only"),
        _ => None,
    };
    match refused {
        Some(why) => Err(ConnectError::Socket(io::Error::new(
            io::ErrorKind::PermissionDenied,
            why,
        ))),
        None => Ok(()),
    }
}

/// When the TLS handshake ended, and when the first bytes from the server
/// arrived (the answer to the SSLRequest).
#[derive(Default)]
struct Marks {
    tls_done: OnceLock<Instant>,
    first_read: OnceLock<Instant>,
    /// A measured connection's CPU meter, read at the same two moments.
    meter: Option<Arc<CpuMeter>>,
    tls_done_ns: OnceLock<u64>,
    first_read_ns: OnceLock<u64>,
}

impl Marks {
    fn cpu_at(&self, mark: &OnceLock<u64>) {
        if let Some(meter) = &self.meter {
            let _ = mark.set(meter.now_ns());
        }
    }
}

/// The TLS handshake (rustls, see `tls.rs`), noting when it ends. It takes
/// the socket it is lent, and lends the driver the encrypted stream in
/// turn.
struct TimedTls<'a> {
    connector: TlsConnector,
    domain: &'a str,
    marks: Arc<Marks>,
    encrypted: Lent<Encrypted>,
}

impl TlsConnect<Lent<Marked>> for TimedTls<'_> {
    type Stream = Lent<Encrypted>;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = BoxFuture<'static, Result<Self::Stream, Self::Error>>;

    fn connect(self, stream: Lent<Marked>) -> Self::Future {
        let TimedTls {
            connector,
            domain,
            marks,
            encrypted,
        } = self;
        let name = super::tls::server_name(domain);
        Box::pin(async move {
            let socket = stream.take().ok_or("the socket was taken before TLS")?;
            let result = connector.connect(name, socket).await;
            let _ = marks.tls_done.set(Instant::now());
            marks.cpu_at(&marks.tls_done_ns);
            encrypted.put(result?);
            Ok(encrypted)
        })
    }
}

/// A connection's encrypted stream. rustls reads the socket only
/// when tokio says it is readable, so a read with nothing to read yet (the
/// one right after a query is sent, and the pool's closed-connection check
/// before every request) costs no system call.
type Encrypted = TlsStream<Marked>;

/// SCRAM's channel binding (`tls-server-end-point`, RFC 5929): the hash of
/// the server's certificate with its signature's digest, SHA-256 in place
/// of MD5 and SHA-1; none for a signature without one digest (Ed25519,
/// RSASSA-PSS), as postgres-openssl computed it.
fn tls_server_end_point(der: &[u8]) -> Option<Vec<u8>> {
    use sha2::Digest;
    use x509_cert::der::oid::db::rfc5912::{
        ECDSA_WITH_SHA_224, ECDSA_WITH_SHA_256, ECDSA_WITH_SHA_384, ECDSA_WITH_SHA_512,
        MD_5_WITH_RSA_ENCRYPTION, SHA_1_WITH_RSA_ENCRYPTION, SHA_224_WITH_RSA_ENCRYPTION,
        SHA_256_WITH_RSA_ENCRYPTION, SHA_384_WITH_RSA_ENCRYPTION, SHA_512_WITH_RSA_ENCRYPTION,
    };
    use x509_cert::der::{oid::ObjectIdentifier, Decode};
    const ECDSA_WITH_SHA_1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.1");

    let cert = x509_cert::Certificate::from_der(der).ok()?;
    Some(match cert.signature_algorithm.oid {
        MD_5_WITH_RSA_ENCRYPTION
        | SHA_1_WITH_RSA_ENCRYPTION
        | ECDSA_WITH_SHA_1
        | SHA_256_WITH_RSA_ENCRYPTION
        | ECDSA_WITH_SHA_256 => sha2::Sha256::digest(der).to_vec(),
        SHA_224_WITH_RSA_ENCRYPTION | ECDSA_WITH_SHA_224 => sha2::Sha224::digest(der).to_vec(),
        SHA_384_WITH_RSA_ENCRYPTION | ECDSA_WITH_SHA_384 => sha2::Sha384::digest(der).to_vec(),
        SHA_512_WITH_RSA_ENCRYPTION | ECDSA_WITH_SHA_512 => sha2::Sha512::digest(der).to_vec(),
        _ => return None,
    })
}

/// What the server sent on one of poolbench's own connections, up to
/// [`TRANSCRIPT_LIMIT`] bytes: the answer to the SSLRequest, if one was
/// sent, then the session's messages (decrypted, over TLS). The
/// authentication probe reads the authentication request in it.
#[derive(Clone, Default)]
pub struct Transcript(Arc<Mutex<Vec<u8>>>);

/// Enough for the messages before and during authentication.
const TRANSCRIPT_LIMIT: usize = 16 * 1024;

impl Transcript {
    pub fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn record(&self, read: &[u8]) {
        let mut log = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let room = TRANSCRIPT_LIMIT.saturating_sub(log.len());
        log.extend_from_slice(&read[..read.len().min(room)]);
    }
}

/// A stream lent to the driver: for a measured connection's setup, taken
/// back after it; for poolbench's own, for the connection's life. Both
/// holders share it, locked for each poll only (the driver is its one user
/// until it is taken back). Its reads go to the transcript, if any.
struct Lent<S> {
    stream: Arc<Mutex<Option<S>>>,
    transcript: Option<Transcript>,
    sniffer: Option<Arc<Sniffer>>,
}

impl<S> Clone for Lent<S> {
    fn clone(&self) -> Self {
        Lent {
            stream: self.stream.clone(),
            transcript: self.transcript.clone(),
            sniffer: self.sniffer.clone(),
        }
    }
}

impl<S> Lent<S> {
    fn new(stream: S, transcript: Option<&Transcript>, sniffer: Option<Arc<Sniffer>>) -> Lent<S> {
        Lent {
            stream: Arc::new(Mutex::new(Some(stream))),
            transcript: transcript.cloned(),
            sniffer,
        }
    }

    fn empty(transcript: Option<&Transcript>, sniffer: Option<Arc<Sniffer>>) -> Lent<S> {
        Lent {
            stream: Arc::new(Mutex::new(None)),
            transcript: transcript.cloned(),
            sniffer,
        }
    }

    fn put(&self, stream: S) {
        *self.stream.lock().unwrap_or_else(|e| e.into_inner()) = Some(stream);
    }

    fn take(&self) -> Option<S> {
        self.stream.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Runs `f` on the stream, or fails as a closed socket once it was
    /// taken back.
    fn with<T>(&self, f: impl FnOnce(Pin<&mut S>) -> Poll<io::Result<T>>) -> Poll<io::Result<T>>
    where
        S: Unpin,
    {
        match self
            .stream
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            Some(stream) => f(Pin::new(stream)),
            None => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the stream was taken back",
            ))),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Lent<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = self.with(|s| s.poll_read(cx, buf));
        if let Some(transcript) = &self.transcript {
            transcript.record(&buf.filled()[before..]);
        }
        if let Some(sniffer) = &self.sniffer {
            sniffer.read(&buf.filled()[before..]);
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Lent<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = self.with(|s| s.poll_write(cx, buf));
        if let (Some(sniffer), Poll::Ready(Ok(n))) = (&self.sniffer, &poll) {
            sniffer.write(&buf[..*n]);
        }
        poll
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.with(|s| s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.with(|s| s.poll_shutdown(cx))
    }
}

impl tokio_postgres::tls::TlsStream for Lent<Encrypted> {
    fn channel_binding(&self) -> ChannelBinding {
        let stream = self.stream.lock().unwrap_or_else(|e| e.into_inner());
        match stream
            .as_ref()
            .and_then(|s| s.get_ref().1.peer_certificates()?.first())
            .and_then(|cert| tls_server_end_point(cert))
        {
            Some(hash) => ChannelBinding::tls_server_end_point(hash),
            None => ChannelBinding::none(),
        }
    }
}

/// The socket to the server, or the link emulator's end of its pipe.
#[derive(Debug)]
enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
    Link(DuplexStream),
}

impl Socket {
    /// What identifies the connection on the server's side: the local
    /// port of a TCP socket, the listener's pid of a Unix-domain one.
    fn tie(&self) -> Tie {
        match self {
            Socket::Tcp(s) => s
                .local_addr()
                .map_or(Tie::Unknown, |a| Tie::ClientPort(a.port())),
            Socket::Unix(s) => s
                .peer_cred()
                .ok()
                .and_then(|c| c.pid())
                .and_then(|pid| u32::try_from(pid).ok())
                .filter(|&pid| pid > 0)
                .map_or(Tie::Unknown, Tie::Listener),
            Socket::Link(_) => Tie::Unknown,
        }
    }
}

/// The socket as the driver uses it, noting when its first bytes arrive
/// (then it forgets the marks: a plain pass-through for the connection's
/// life).
#[derive(Debug)]
struct Marked {
    inner: Socket,
    marks: Option<Arc<Marks>>,
}

impl fmt::Debug for Marks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Marks")
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Socket::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Socket::Link(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl Io for Socket {
    fn may_be_readable(&self) -> bool {
        match self {
            Socket::Tcp(s) => s.may_be_readable(),
            Socket::Unix(s) => s.may_be_readable(),
            Socket::Link(s) => s.may_be_readable(),
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Socket::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Socket::Link(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Socket::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Socket::Link(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Socket::Tcp(s) => s.is_write_vectored(),
            Socket::Unix(s) => s.is_write_vectored(),
            Socket::Link(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_flush(cx),
            Socket::Unix(s) => Pin::new(s).poll_flush(cx),
            Socket::Link(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Socket::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Socket::Link(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

impl AsyncRead for Marked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            if let Some(marks) = this.marks.take() {
                let _ = marks.first_read.set(Instant::now());
                marks.cpu_at(&marks.first_read_ns);
            }
        }
        poll
    }
}

impl Io for Marked {
    fn may_be_readable(&self) -> bool {
        self.inner.may_be_readable()
    }
}

impl AsyncWrite for Marked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
