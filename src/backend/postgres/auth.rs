//! An external server's authentication method, as far as a client can know
//! it: one probe connection records what the server asked for during
//! authentication (SCRAM, md5, a clear-text password, nothing), and on
//! PostgreSQL 16 and later `SYSTEM_USER` names the method that established
//! an identity (`cert`, `peer`, `ldap`…). pg_hba.conf itself is readable
//! only by superusers, and which of its lines applied cannot be told from
//! it, so what the server did is the better witness.

use std::fmt::Debug;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use openssl::error::ErrorStack;
use postgres_openssl::{MakeTlsConnector, TlsConnector};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::config::Host;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use tokio_postgres::{Client, NoTls};

use super::Target;

/// The bytes a connection read before and during authentication: enough
/// for the messages that matter, not the whole session.
const RECORD_LIMIT: usize = 16 * 1024;

type Log = Arc<Mutex<Vec<u8>>>;

/// The method the server used for poolbench's user, or "unknown (why)".
pub async fn method(target: &Target) -> String {
    let socket = matches!(target.config().get_hosts().first(), Some(Host::Unix(_)));
    let plain = socket || target.ssl_mode() == "disable";
    let mut attempt = probe(target, plain).await;
    // sslmode=prefer or allow against a server without TLS: the connection
    // went on unencrypted, past the recording; look again without TLS.
    if let Ok((_, log, _)) = &attempt {
        if !plain && log.lock().is_ok_and(|l| l.is_empty()) {
            attempt = probe(target, true).await;
        }
    }
    match attempt {
        Ok((client, log, client_cert)) => {
            let identity = system_user(&client).await;
            let asked = log.lock().map(|l| asked_for(&l)).unwrap_or(Asked::Unknown);
            describe(asked, identity.as_deref(), client_cert, socket)
        }
        Err(why) => format!("unknown ({why})"),
    }
}

/// What the server's first authentication request was.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Asked {
    /// AuthenticationOk straight away: no password asked.
    Nothing,
    Method(&'static str),
    /// SASL with these mechanisms, none of them SCRAM-SHA-256.
    Sasl(String),
    Unknown,
}

fn describe(asked: Asked, identity: Option<&str>, client_cert: bool, socket: bool) -> String {
    // SYSTEM_USER is "method:identity" when the method established one.
    if let Some((method, _)) = identity.and_then(|i| i.split_once(':')) {
        return method.to_string();
    }
    match asked {
        Asked::Method(m) => m.to_string(),
        Asked::Sasl(mechanisms) => format!("sasl ({mechanisms})"),
        Asked::Nothing if client_cert => {
            "cert or trust (no password asked; a client certificate was sent)".into()
        }
        Asked::Nothing if socket => {
            "peer or trust (no password asked over a Unix-domain socket)".into()
        }
        Asked::Nothing => "trust (no password asked)".into(),
        Asked::Unknown => "unknown (the server's authentication request was not seen)".into(),
    }
}

/// Parses the backend messages read until AuthenticationOk.
fn asked_for(log: &[u8]) -> Asked {
    let mut rest = log;
    // A plain connection that first asked for TLS reads the server's
    // one-byte refusal before any message.
    if rest.first() == Some(&b'N') {
        rest = &rest[1..];
    }
    while rest.len() >= 5 {
        let kind = rest[0];
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        if len < 4 || rest.len() < 1 + len {
            break;
        }
        let body = &rest[5..1 + len];
        rest = &rest[1 + len..];
        if kind != b'R' || body.len() < 4 {
            continue;
        }
        let code = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        return match code {
            0 => Asked::Nothing,
            2 => Asked::Method("krb5"),
            3 => Asked::Method("password"),
            5 => Asked::Method("md5"),
            7 => Asked::Method("gss"),
            9 => Asked::Method("sspi"),
            10 => {
                let mechanisms: Vec<String> = body[4..]
                    .split(|b| *b == 0)
                    .filter(|m| !m.is_empty())
                    .map(|m| String::from_utf8_lossy(m).into_owned())
                    .collect();
                if mechanisms.iter().any(|m| m.starts_with("SCRAM-SHA-256")) {
                    Asked::Method("scram-sha-256")
                } else {
                    Asked::Sasl(mechanisms.join(", "))
                }
            }
            _ => Asked::Unknown,
        };
    }
    Asked::Unknown
}

/// `SELECT system_user` (PostgreSQL 16+); `None` when older or unset.
async fn system_user(client: &Client) -> Option<String> {
    client
        .query_one("SELECT system_user", &[])
        .await
        .ok()
        .and_then(|row| row.try_get::<_, Option<String>>(0).ok().flatten())
}

/// One connection whose reads are recorded. Over TLS, the recording sits
/// above the encryption; over a plain socket, on the socket itself.
async fn probe(target: &Target, plain: bool) -> Result<(Client, Log, bool), String> {
    let log: Log = Arc::new(Mutex::new(Vec::new()));
    let config = target.config();
    let timeout = target.connect_timeout();
    let connect = async {
        if plain {
            let stream = open_plain(target)
                .await
                .map_err(|e| format!("the probe connection failed: {e}"))?;
            let stream = Recorded {
                inner: stream,
                log: log.clone(),
            };
            let (client, connection) = config.connect_raw(stream, NoTls).await.map_err(|e| {
                format!(
                    "the probe connection failed: {}",
                    super::describe_pg_error(&e)
                )
            })?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            Ok::<Client, String>(client)
        } else {
            let tls = Recording {
                inner: target.tls().driver(),
                log: log.clone(),
            };
            let (client, connection) = config.connect(tls).await.map_err(|e| {
                format!(
                    "the probe connection failed: {}",
                    super::describe_pg_error(&e)
                )
            })?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            Ok(client)
        }
    };
    let client = tokio::time::timeout(timeout, connect)
        .await
        .map_err(|_| "the probe connection timed out".to_string())??;
    let client_cert = !plain && target.details().client_cert.is_some();
    Ok((client, log, client_cert))
}

/// A plain stream to the first host: its Unix-domain socket file, or TCP.
async fn open_plain(target: &Target) -> io::Result<PlainStream> {
    let config = target.config();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    match (config.get_hosts().first(), config.get_hostaddrs().first()) {
        (Some(Host::Unix(dir)), _) => {
            let path = dir.join(format!(".s.PGSQL.{port}"));
            Ok(PlainStream::Unix(
                tokio::net::UnixStream::connect(path).await?,
            ))
        }
        (_, Some(addr)) => Ok(PlainStream::Tcp(
            tokio::net::TcpStream::connect((*addr, port)).await?,
        )),
        (Some(Host::Tcp(host)), None) => Ok(PlainStream::Tcp(
            tokio::net::TcpStream::connect((host.as_str(), port)).await?,
        )),
        (None, None) => Err(io::Error::other("no host")),
    }
}

enum PlainStream {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

impl AsyncRead for PlainStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PlainStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            PlainStream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for PlainStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            PlainStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            PlainStream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PlainStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            PlainStream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PlainStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            PlainStream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// A stream whose reads are copied into a log (up to [`RECORD_LIMIT`]).
struct Recorded<S> {
    inner: S,
    log: Log,
}

impl<S: AsyncRead + Unpin> AsyncRead for Recorded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &result {
            if let Ok(mut log) = this.log.lock() {
                let new = &buf.filled()[before..];
                let room = RECORD_LIMIT.saturating_sub(log.len());
                log.extend_from_slice(&new[..new.len().min(room)]);
            }
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Recorded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<S: TlsStream + Unpin> TlsStream for Recorded<S> {
    fn channel_binding(&self) -> ChannelBinding {
        self.inner.channel_binding()
    }
}

/// postgres-openssl's connector, with the decrypted reads recorded.
struct Recording {
    inner: MakeTlsConnector,
    log: Log,
}

impl<S> MakeTlsConnect<S> for Recording
where
    S: AsyncRead + AsyncWrite + Unpin + Debug + 'static + Sync + Send,
{
    type Stream = Recorded<postgres_openssl::TlsStream<S>>;
    type TlsConnect = RecordingConnect;
    type Error = ErrorStack;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RecordingConnect, ErrorStack> {
        Ok(RecordingConnect {
            inner: MakeTlsConnect::<S>::make_tls_connect(&mut self.inner, domain)?,
            log: self.log.clone(),
        })
    }
}

struct RecordingConnect {
    inner: TlsConnector,
    log: Log,
}

impl<S> TlsConnect<S> for RecordingConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Recorded<postgres_openssl::TlsStream<S>>;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    #[allow(clippy::type_complexity)]
    type Future = Pin<Box<dyn Future<Output = Result<Self::Stream, Self::Error>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        let log = self.log;
        let handshake = self.inner.connect(stream);
        Box::pin(async move {
            let inner = handshake.await?;
            Ok(Recorded { inner, log })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    fn auth(code: i32, rest: &[u8]) -> Vec<u8> {
        let mut body = code.to_be_bytes().to_vec();
        body.extend_from_slice(rest);
        message(b'R', &body)
    }

    #[test]
    fn the_first_authentication_request_names_the_method() {
        let scram = auth(10, b"SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0");
        assert_eq!(asked_for(&scram), Asked::Method("scram-sha-256"));
        assert_eq!(asked_for(&auth(5, b"salt")), Asked::Method("md5"));
        assert_eq!(asked_for(&auth(3, b"")), Asked::Method("password"));
        let mut ok = b"N".to_vec();
        ok.extend(auth(0, b""));
        ok.extend(message(b'S', b"server_version\x0016\x00"));
        assert_eq!(asked_for(&ok), Asked::Nothing);
        assert_eq!(asked_for(&message(b'E', b"SFATAL\0")), Asked::Unknown);
        assert_eq!(asked_for(&[b'R', 0, 0]), Asked::Unknown, "truncated");
    }

    #[test]
    fn system_user_wins_and_nothing_asked_is_qualified() {
        assert_eq!(
            describe(Asked::Nothing, Some("cert:CN=app"), true, false),
            "cert"
        );
        assert_eq!(
            describe(Asked::Method("scram-sha-256"), None, false, false),
            "scram-sha-256"
        );
        assert!(describe(Asked::Nothing, None, false, true).starts_with("peer or trust"));
        assert!(describe(Asked::Nothing, None, false, false).starts_with("trust"));
    }
}
