//! The proxy's side towards the server: one connection per application
//! connection, to the `--to` target's first host, across the link emulator
//! with `--rtt`, and TLS as libpq would speak it for the target's sslmode
//! (an SSLRequest; `S` → the handshake with the target's rustls
//! configuration, which checks what its sslmode and sslrootcert say; `N` →
//! plain, refused under require and the verify modes).

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio_postgres::config::Host;
use tokio_rustls::TlsConnector;

use crate::backend::postgres::tls::{server_name, SslMode};
use crate::backend::postgres::wire::Io;
use crate::backend::postgres::Target;
use crate::metrics::micros;
use crate::net::Emulator;

const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 4, 210, 22, 47];

/// Where and how the proxy reaches the server.
pub struct Upstream {
    address: Address,
    mode: SslMode,
    tls: TlsConnector,
    name: ServerName<'static>,
    link: Option<Arc<Emulator>>,
}

enum Address {
    Tcp(String, u16),
    Unix(PathBuf),
}

/// A connection to the server, and what opening it took.
pub struct Dialed {
    pub stream: Box<dyn Io>,
    pub tcp_us: u64,
    /// The SSLRequest and handshake; None when the session is plain.
    pub tls_us: Option<u64>,
}

impl Upstream {
    /// The target's first host (or hostaddr) and port.
    pub fn new(target: &Target, link: Option<Arc<Emulator>>) -> Upstream {
        let config = target.config();
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let host = config.get_hosts().first();
        let address = match (config.get_hostaddrs().first(), host) {
            (Some(ip), _) => Address::Tcp(ip.to_string(), port),
            (None, Some(Host::Tcp(h))) => Address::Tcp(h.clone(), port),
            (None, Some(Host::Unix(dir))) => Address::Unix(dir.join(format!(".s.PGSQL.{port}"))),
            (None, None) => Address::Tcp("localhost".into(), port),
        };
        let name = match host {
            Some(Host::Tcp(h)) => server_name(h),
            _ => server_name(""),
        };
        Upstream {
            address,
            mode: target.details().ssl_mode,
            tls: TlsConnector::from(target.tls().config()),
            name,
            link,
        }
    }

    /// Whether sessions to the server may be encrypted.
    pub fn may_encrypt(&self) -> bool {
        self.mode != SslMode::Disable && matches!(self.address, Address::Tcp(..))
    }

    /// Opens one connection, ready for the StartupMessage.
    pub async fn dial(&self) -> io::Result<Dialed> {
        let started = Instant::now();
        let socket: Box<dyn Io> = match &self.address {
            Address::Tcp(host, port) => {
                let tcp = TcpStream::connect((host.as_str(), *port)).await?;
                tcp.set_nodelay(true)?;
                match &self.link {
                    Some(link) => Box::new(link.relay(tcp).await.0),
                    None => Box::new(tcp),
                }
            }
            Address::Unix(path) => Box::new(UnixStream::connect(path).await?),
        };
        let tcp_us = micros(started.elapsed());
        if !self.may_encrypt() {
            return Ok(Dialed {
                stream: socket,
                tcp_us,
                tls_us: None,
            });
        }
        let started = Instant::now();
        let mut socket = socket;
        socket.write_all(&SSL_REQUEST).await?;
        let mut answer = [0u8; 1];
        socket.read_exact(&mut answer).await?;
        match answer[0] {
            b'S' => {
                let tls = self.tls.connect(self.name.clone(), socket).await?;
                Ok(Dialed {
                    stream: Box::new(tls),
                    tcp_us,
                    tls_us: Some(micros(started.elapsed())),
                })
            }
            b'N' if matches!(self.mode, SslMode::Allow | SslMode::Prefer) => Ok(Dialed {
                stream: socket,
                tcp_us,
                tls_us: None,
            }),
            b'N' => Err(io::Error::other(format!(
                "the server does not support SSL, but sslmode={} requires it",
                self.mode.as_str()
            ))),
            other => Err(io::Error::other(format!(
                "the server answered the SSLRequest with {:?}",
                char::from(other)
            ))),
        }
    }
}
