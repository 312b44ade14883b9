//! The listening side: a TCP listener, the TLS the proxy presents to
//! applications (a certificate signed by the CA it prints), and the accept
//! loop that runs each connection's session as a task until told to stop,
//! then waits for the sessions to record how they ended.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::session::{self, Shared};
use super::tally::Tally;
use super::upstream::Upstream;
use crate::backend::postgres::Target;
use crate::error::ResultExt;
use crate::net::Emulator;

/// How long the sessions still open at the end get to record it.
const WIND_DOWN: Duration = Duration::from_secs(2);

/// The certificate (PEM chain) and key the proxy presents.
pub struct ProxyTls<'a> {
    pub cert_pem: &'a [u8],
    pub key_pem: &'a [u8],
}

/// A bound proxy, not yet accepting.
pub struct Proxy {
    listener: TcpListener,
    shared: Arc<Shared>,
}

impl Proxy {
    /// Listens on `listen`, to relay to `target` (across `link` when given),
    /// presenting `tls` to applications that ask for it.
    pub async fn bind(
        listen: SocketAddr,
        target: &Target,
        link: Option<Emulator>,
        tls: Option<ProxyTls<'_>>,
    ) -> Result<Proxy> {
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen} (--listen)"))
            .environment()?;
        let tls = tls.map(acceptor).transpose()?;
        Ok(Proxy {
            listener,
            shared: Arc::new(Shared {
                upstream: Upstream::new(target, link.map(Arc::new)),
                tls,
                tally: Arc::new(Tally::new()),
                stop: CancellationToken::new(),
                server_version: OnceLock::new(),
            }),
        })
    }

    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    pub fn tally(&self) -> Arc<Tally> {
        self.shared.tally.clone()
    }

    /// Whether the proxy's connections to the server may use TLS.
    pub fn upstream_encrypts(&self) -> bool {
        self.shared.upstream.may_encrypt()
    }

    /// What the server said its version was, once a session started.
    pub fn server_version(&self) -> Option<String> {
        self.shared.server_version.get().cloned()
    }

    /// Accepts and relays until `stop`; then ends every session (each
    /// records that the watch stopped it) and returns once they have.
    pub async fn run(&self, stop: &CancellationToken) {
        let mut sessions = JoinSet::new();
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                accepted = self.listener.accept() => {
                    // A failed accept (out of file descriptors, a connection
                    // reset before it was taken) ends that one, not the proxy.
                    if let Ok((tcp, _)) = accepted {
                        sessions.spawn(session::serve(tcp, self.shared.clone()));
                    }
                }
                Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            }
        }
        self.shared.stop.cancel();
        let _ = tokio::time::timeout(WIND_DOWN, async {
            while sessions.join_next().await.is_some() {}
        })
        .await;
        sessions.abort_all();
    }
}

fn acceptor(tls: ProxyTls<'_>) -> Result<TlsAcceptor> {
    let certs = CertificateDer::pem_slice_iter(tls.cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .context("reading the proxy's certificate")?;
    let key = PrivateKeyDer::from_pem_slice(tls.key_pem).context("reading the proxy's key")?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("the proxy's TLS versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the proxy's certificate and key")?;
    // libpq resumes no session, and tickets sent after the handshake would
    // be a flight of their own in the setup's round trips.
    config.send_tls13_tickets = 0;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
