//! TLS as libpq does it: the six `sslmode`s,
//! the root certificate (`sslrootcert` — a file, `system` for the OS trust
//! store, or `~/.postgresql/root.crt`), the client certificate and key
//! (`sslcert`, `sslkey`, `sslpassword`, or `~/.postgresql/postgresql.crt`
//! and `.key`), SNI and the protocol versions.
//!
//! libpq's rules kept here: with a root certificate present, every mode
//! that encrypts also verifies the chain (so `require` acts as
//! `verify-ca`); `verify-full` also checks the host name against the
//! certificate's names (IP addresses included); a missing client
//! certificate is not an error but a key without permissions u=rw is.
//!
//! One TLS library applies these rules to every PostgreSQL connection
//! poolbench opens, measured or its own (the start-up check, the monitor,
//! the authentication probe, the embedded servers' checks): rustls, on
//! aws-lc-rs. OpenSSL 3.0 does work of its own on each small record (a
//! cipher context set up again, provider parameters looked up,
//! allocations) that cost poolbench more per pooled `SELECT 1` than all
//! the rest of its request, where rustls spends a fraction of that
//! (measured in docs/performance.md, "TLS: rustls under the measured
//! connections"); a benchmark client must not pay more per query than the
//! applications it stands for.
//! The client key is read here too (PEM or DER; PKCS#8, encrypted with
//! `sslpassword` or not, PKCS#1 or SEC1), and a refused certificate is
//! described in OpenSSL's words, as libpq reports it ([`verify_failure`]).

use std::fmt::Display;
use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use pkcs8::{pkcs5, EncryptedPrivateKeyInfo};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, InconsistentKeys, RootCertStore,
    SignatureScheme,
};

use crate::error::{bad_input, environment};
use crate::input::{read_file, MAX_SETTINGS_FILE_BYTES};

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn parse(text: &str) -> Option<SslMode> {
        Some(match text {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// The driver's mode. tokio-postgres has no `allow` (try without TLS,
    /// then with it): poolbench tries TLS first, as `prefer` does. Both
    /// end encrypted when the server insists and plain when it has no TLS.
    pub fn driver(self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as Driver;
        match self {
            SslMode::Disable => Driver::Disable,
            SslMode::Allow | SslMode::Prefer => Driver::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => Driver::Require,
        }
    }

    fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

/// The TLS options of a connection string, after libpq's defaults.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    pub mode: SslMode,
    /// `sslrootcert` as given: a path or `system`.
    pub rootcert: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
    /// `sslpassword`: the client key's passphrase.
    pub key_password: Option<String>,
    /// `sslcertmode=disable`: never send a client certificate.
    pub no_client_cert: bool,
    /// `sslsni`.
    pub sni: bool,
    pub min_version: Option<String>,
    pub max_version: Option<String>,
    /// Where `~/.postgresql/` is, for the default file names.
    pub home: Option<PathBuf>,
}

/// What a connection checks of the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    Nothing,
    Chain,
    ChainAndHost,
}

/// The TLS settings of every connection to a target, as one rustls
/// configuration: libpq's checks of the server's certificate, the client
/// certificate, SNI and the protocol versions.
#[derive(Clone)]
pub struct Connector {
    config: Arc<ClientConfig>,
}

impl Connector {
    /// The rustls configuration a connection's handshake takes.
    pub fn config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }

    /// Readies this thread's random generator for the handshakes of the
    /// connections it opens. aws-lc seeds each thread's generator on its
    /// first use with jitter entropy, milliseconds of work (measured in
    /// docs/performance.md) that would otherwise land in the `tls` phase of
    /// the first connection each worker thread opens.
    pub fn seed_this_thread(&self) {
        let _ = self
            .config
            .crypto_provider()
            .secure_random
            .fill(&mut [0u8; 1]);
    }
}

/// The connector and what it does, for display.
pub struct Tls {
    pub connector: Connector,
    pub verify: Verify,
    /// The root certificates in use: a file, or "system".
    pub rootcert: Option<String>,
    /// The client certificate sent, if any.
    pub client_cert: Option<PathBuf>,
}

/// A connector that encrypts without verifying: libpq's `require` without
/// a root certificate, as the embedded server is reached.
pub fn unverified() -> Result<Connector> {
    connector(Settings {
        versions: rustls::ALL_VERSIONS,
        roots: None,
        check_host: false,
        client: None,
        sni: true,
    })
}

/// The rustls configuration of a MySQL connection: the chain checked
/// against `roots` when given (its `ssl-ca`, PEM), the host's name too with
/// `check_host`; no ALPN (MySQL's TLS begins after its own greeting).
pub fn for_mysql(roots: Option<&[u8]>, check_host: bool) -> Result<Arc<ClientConfig>> {
    let roots = match roots {
        Some(pem) => {
            let mut store = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| environment(format!("reading ssl-ca: {e}")))?;
                store
                    .add(cert)
                    .map_err(|e| environment(format!("reading ssl-ca: {e}")))?;
            }
            Some(store)
        }
        None => None,
    };
    let connector = connector(Settings {
        versions: rustls::ALL_VERSIONS,
        roots,
        check_host,
        client: None,
        sni: true,
    })?;
    let mut config = (*connector.config).clone();
    config.alpn_protocols.clear();
    Ok(Arc::new(config))
}

/// Builds the connector for `opts`. Errors about files are environment
/// errors (exit 3) with libpq's wording; a contradictory combination of
/// options is bad input (exit 2).
pub fn build(opts: &TlsOptions) -> Result<Tls> {
    let versions = versions(opts)?;
    let home_file = |name: &str| opts.home.as_ref().map(|h| h.join(".postgresql").join(name));
    let mut roots = None;
    let mut rootcert = None;
    if opts.mode != SslMode::Disable {
        match opts.rootcert.as_deref().filter(|r| !r.is_empty()) {
            Some("system") => {
                if opts.mode != SslMode::VerifyFull {
                    return Err(bad_input(format!(
                        "weak sslmode \"{}\" may not be used with sslrootcert=system (use \"verify-full\")",
                        opts.mode.as_str()
                    )));
                }
                roots = Some(system_roots());
                rootcert = Some("system".to_string());
            }
            explicit => {
                let path = explicit
                    .map(PathBuf::from)
                    .or_else(|| home_file("root.crt"));
                match path.filter(|p| p.exists()) {
                    Some(path) => {
                        roots = Some(root_store(&path)?);
                        rootcert = Some(path.display().to_string());
                    }
                    None if opts.mode.verifies() => {
                        let what = match explicit
                            .map(PathBuf::from)
                            .or_else(|| home_file("root.crt"))
                        {
                            Some(p) => {
                                format!("root certificate file \"{}\" does not exist", p.display())
                            }
                            None => "could not get home directory to locate root certificate file"
                                .to_string(),
                        };
                        return Err(environment(format!(
                            "{what}\nEither provide the file, use the system's trusted roots with \
                             sslrootcert=system, or change sslmode to disable server certificate \
                             verification."
                        )));
                    }
                    None => {}
                }
            }
        }
    }
    let verify = match (&rootcert, opts.mode) {
        (_, SslMode::Disable) | (None, _) => Verify::Nothing,
        (Some(_), SslMode::VerifyFull) => Verify::ChainAndHost,
        (Some(_), _) => Verify::Chain,
    };

    let mut client = None;
    let mut client_cert = None;
    if opts.mode != SslMode::Disable && !opts.no_client_cert {
        let cert = opts
            .cert
            .as_deref()
            .filter(|c| !c.is_empty())
            .map(PathBuf::from)
            .or_else(|| home_file("postgresql.crt"));
        // libpq goes on without a client certificate when the file is
        // missing, even one named explicitly.
        if let Some(cert) = cert.filter(|c| c.exists()) {
            let key_file = opts
                .key
                .as_deref()
                .filter(|k| !k.is_empty())
                .map(PathBuf::from)
                .or_else(|| home_file("postgresql.key"))
                .ok_or_else(|| {
                    environment("could not get home directory to locate the client key file")
                })?;
            client = Some(ClientAuth {
                chain: certificates(&cert, "certificate file")?,
                key: load_key(&key_file, opts.key_password.as_deref())?,
                key_file,
                cert: cert.clone(),
            });
            client_cert = Some(cert);
        }
    }

    let connector = connector(Settings {
        versions: &versions,
        roots: roots.filter(|_| verify != Verify::Nothing),
        check_host: verify == Verify::ChainAndHost,
        client,
        sni: opts.sni,
    })?;
    Ok(Tls {
        connector,
        verify,
        rootcert,
        client_cert,
    })
}

/// What a connector is made of.
struct Settings<'a> {
    versions: &'a [&'static rustls::SupportedProtocolVersion],
    /// The trusted roots when the chain is verified.
    roots: Option<RootCertStore>,
    check_host: bool,
    client: Option<ClientAuth>,
    sni: bool,
}

/// The client certificate's chain and key, and the files they came from.
struct ClientAuth {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cert: PathBuf,
    key_file: PathBuf,
}

fn connector(s: Settings<'_>) -> Result<Connector> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let algorithms = provider.signature_verification_algorithms;
    let verifier = Arc::new(Libpq {
        roots: s.roots.map(Arc::new),
        check_host: s.check_host,
        algorithms,
    });
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(s.versions)
        .map_err(|e| environment(format!("setting up TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match s.client {
        Some(c) => builder
            .with_client_auth_cert(c.chain, c.key)
            .map_err(|e| match e {
                rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch) => {
                    environment(format!(
                        "certificate \"{}\" does not match private key file \"{}\"",
                        c.cert.display(),
                        c.key_file.display()
                    ))
                }
                e => environment(format!(
                    "could not load private key file \"{}\": {e}",
                    c.key_file.display()
                )),
            })?,
        None => builder.with_no_client_auth(),
    };
    config.enable_sni = s.sni;
    // One session per connection, as libpq opens them: no tickets kept.
    config.resumption = rustls::client::Resumption::disabled();
    // ALPN "postgresql", as libpq 17 sends it: PostgreSQL 17 requires it
    // of a direct TLS handshake (sslnegotiation=direct); older servers,
    // and the SSLRequest path, ignore it.
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(Connector {
        config: Arc::new(config),
    })
}

/// The protocol versions rustls may use: TLS 1.2 and 1.3, within
/// `ssl_min_protocol_version` (TLS 1.2 when unset, as libpq) and
/// `ssl_max_protocol_version`.
fn versions(opts: &TlsOptions) -> Result<Vec<&'static rustls::SupportedProtocolVersion>> {
    let rank = |v: Option<&str>, unset: u8| match v.filter(|v| !v.is_empty()) {
        None => Ok(unset),
        Some("TLSv1") => Ok(10),
        Some("TLSv1.1") => Ok(11),
        Some("TLSv1.2") => Ok(12),
        Some("TLSv1.3") => Ok(13),
        Some(other) => Err(bad_input(format!(
            "invalid SSL protocol version \"{other}\": expected TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3"
        ))),
    };
    let min = rank(opts.min_version.as_deref(), 12)?;
    let max = rank(opts.max_version.as_deref(), 13)?;
    let versions: Vec<_> = [(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
        .into_iter()
        .filter(|(rank, _)| (min..=max).contains(rank))
        .map(|(_, version)| version)
        .collect();
    if versions.is_empty() {
        return Err(bad_input(format!(
            "ssl_min_protocol_version={} and ssl_max_protocol_version={} leave no protocol \
             poolbench speaks: its TLS library (rustls) speaks TLSv1.2 and TLSv1.3",
            opts.min_version.as_deref().unwrap_or("TLSv1.2"),
            opts.max_version.as_deref().unwrap_or("TLSv1.3"),
        )));
    }
    Ok(versions)
}

/// The system's trusted roots, from the files OpenSSL would read. None
/// found is no error here, as for OpenSSL: the handshake then fails to
/// verify the server's certificate, and says so.
fn system_roots() -> RootCertStore {
    let mut store = RootCertStore::empty();
    store.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    store
}

/// Every certificate of a PEM root certificate file, to be the only
/// trusted roots.
fn root_store(path: &Path) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    for cert in certificates(path, "root certificate file")? {
        store.add(cert).map_err(|e| {
            environment(format!(
                "could not use root certificate file \"{}\": {e}",
                path.display()
            ))
        })?;
    }
    Ok(store)
}

/// The certificates of a PEM file; `what` names the file in errors.
fn certificates(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let unreadable =
        |e: &dyn Display| environment(format!("could not read {what} \"{}\": {e}", path.display()));
    let pem = read_file(path, MAX_SETTINGS_FILE_BYTES).map_err(|e| unreadable(&e))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unreadable(&e))?;
    if certs.is_empty() {
        return Err(unreadable(&"no certificate in it (expected PEM)"));
    }
    Ok(certs)
}

/// Why the server's certificate was refused, in OpenSSL's words as libpq
/// reports them ("unable to get local issuer certificate", "hostname
/// mismatch", "certificate has expired"), when that is why `e` failed.
pub fn verify_failure(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    certificate_error(e).map(certificate_refusal)
}

/// rustls' refusal of the server's certificate, when that is why `e` (or
/// an error it wraps) failed. A handshake's error is an I/O error wrapping
/// rustls' own, which `source()` skips: it is looked for inside.
pub fn certificate_error<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a CertificateError> {
    let mut next = Some(e);
    while let Some(err) = next {
        let rustls_error = err.downcast_ref::<rustls::Error>().or_else(|| {
            err.downcast_ref::<io::Error>()
                .and_then(io::Error::get_ref)
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(rustls::Error::InvalidCertificate(why)) = rustls_error {
            return Some(why);
        }
        next = err.source();
    }
    None
}

fn certificate_refusal(why: &CertificateError) -> String {
    use CertificateError::*;
    match why {
        UnknownIssuer => "unable to get local issuer certificate".into(),
        NotValidForName => "hostname mismatch".into(),
        NotValidForNameContext { presented, .. } => match certified_names(presented)[..] {
            [] => "hostname mismatch (the certificate names no host)".into(),
            ref names => format!(
                "hostname mismatch (the certificate names {})",
                names.join(", ")
            ),
        },
        Expired | ExpiredContext { .. } => "certificate has expired".into(),
        NotValidYet | NotValidYetContext { .. } => "certificate is not yet valid".into(),
        BadSignature => "certificate signature failure".into(),
        Revoked => "certificate revoked".into(),
        InvalidPurpose | InvalidPurposeContext { .. } => "unsupported certificate purpose".into(),
        other => other.to_string(),
    }
}

/// The DNS names and IP addresses of a certificate that does not name the
/// host, from rustls' refusal (`NotValidForNameContext`), which lists its
/// subjectAltName entries as webpki shows them: `DnsName("db.example")`,
/// `IpAddress(127.0.0.1)`.
pub fn certified_names(presented: &[String]) -> Vec<&str> {
    presented
        .iter()
        .filter_map(|entry| {
            entry
                .strip_prefix("DnsName(\"")
                .and_then(|rest| rest.strip_suffix("\")"))
                .or_else(|| {
                    entry
                        .strip_prefix("IpAddress(")
                        .and_then(|rest| rest.strip_suffix(')'))
                })
        })
        .collect()
}

/// The server name a connection gives rustls: the host's name,
/// sent as SNI when `sslsni` is on and checked under `verify-full`. An IP
/// address is never sent as SNI; without a host name (a `hostaddr` alone),
/// nothing is sent and verify-full has nothing to match, as in libpq.
pub fn server_name(host: &str) -> ServerName<'static> {
    ServerName::try_from(host.to_string()).unwrap_or(ServerName::IpAddress(
        IpAddr::V4(Ipv4Addr::UNSPECIFIED).into(),
    ))
}

/// libpq's checks of the server's certificate, for rustls: none, the
/// chain, or the chain and the host name (DNS names and IP addresses of
/// the certificate's subjectAltName). The handshake's signatures are
/// always checked.
#[derive(Debug)]
struct Libpq {
    roots: Option<Arc<RootCertStore>>,
    check_host: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Libpq {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                self.algorithms.all,
            )?;
            if self.check_host {
                rustls::client::verify_server_name(&cert, server_name)?;
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The client key, refused as libpq refuses it when others may read it.
/// Unlike libpq (OpenSSL), rustls' world reads no key in OpenSSL's legacy
/// encrypted PEM (`Proc-Type: 4,ENCRYPTED`): the error says how to convert
/// it.
fn load_key(path: &Path, password: Option<&str>) -> Result<PrivateKeyDer<'static>> {
    let meta = fs::metadata(path).map_err(|_| {
        environment(format!(
            "certificate present, but not private key file \"{}\"",
            path.display()
        ))
    })?;
    if !meta.is_file() {
        return Err(environment(format!(
            "private key file \"{}\" is not a regular file",
            path.display()
        )));
    }
    let mode = meta.permissions().mode();
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    let too_open =
        (meta.uid() == me && mode & 0o077 != 0) || (meta.uid() == 0 && mode & 0o037 != 0);
    if too_open {
        return Err(environment(format!(
            "private key file \"{}\" has group or world access; file must have permissions \
             u=rw (0600) or less if owned by the current user, or permissions u=rw,g=r (0640) \
             or less if owned by root",
            path.display()
        )));
    }
    let bytes = read_file(path, MAX_SETTINGS_FILE_BYTES).map_err(|e| {
        environment(format!(
            "could not read private key file \"{}\": {e}",
            path.display()
        ))
    })?;
    parse_key(&bytes, password).map_err(|why| {
        environment(format!(
            "could not load private key file \"{}\": {why}",
            path.display()
        ))
    })
}

/// What the client key reader accepts, for its errors.
const KEY_FORMATS: &str =
    "PKCS#8 (encrypted with sslpassword or not), PKCS#1 or SEC1, in PEM or DER";

/// The encrypted keys poolbench reads.
const DECRYPTS: &str = "poolbench decrypts PKCS#8 keys encrypted with PBES2 (PBKDF2 or scrypt, \
                        AES or 3DES), as `openssl pkcs8 -topk8` writes them";

/// A client key in any of [`KEY_FORMATS`], or why not.
fn parse_key(bytes: &[u8], password: Option<&str>) -> Result<PrivateKeyDer<'static>, String> {
    let Some(text) = std::str::from_utf8(bytes)
        .ok()
        .filter(|t| t.contains("-----BEGIN "))
    else {
        // DER: an encrypted PKCS#8 structure, or a key in the clear.
        if let Ok(info) = EncryptedPrivateKeyInfo::try_from(bytes) {
            return decrypt(&info, password);
        }
        return PrivateKeyDer::try_from(bytes)
            .map(|key| key.clone_key())
            .map_err(|_| format!("not a private key (expected {KEY_FORMATS})"));
    };
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(format!(
            "it is encrypted in OpenSSL's legacy PEM format (Proc-Type: 4,ENCRYPTED), which \
             poolbench cannot read; convert it to encrypted PKCS#8 with `openssl pkcs8 -topk8 \
             -in OLD -out NEW` (poolbench reads {KEY_FORMATS})"
        ));
    }
    if let Some(section) = pem_section(text, "ENCRYPTED PRIVATE KEY") {
        let (_, der) = pkcs8::der::pem::decode_vec(section.as_bytes())
            .map_err(|e| format!("not a valid PEM block: {e}"))?;
        let info = EncryptedPrivateKeyInfo::try_from(der.as_slice())
            .map_err(|e| format!("its encryption cannot be read ({e}); {DECRYPTS}"))?;
        return decrypt(&info, password);
    }
    PrivateKeyDer::from_pem_slice(bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => format!("no private key in it (expected {KEY_FORMATS})"),
        e => format!("not a valid PEM file: {e}"),
    })
}

/// The PEM block labelled `label` in `text`, BEGIN and END lines included.
fn pem_section<'a>(text: &'a str, label: &str) -> Option<&'a str> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)?;
    let stop = start + text[start..].find(&end)? + end.len();
    Some(&text[start..stop])
}

/// An encrypted PKCS#8 key decrypted with `sslpassword`.
fn decrypt(
    info: &EncryptedPrivateKeyInfo<'_>,
    password: Option<&str>,
) -> Result<PrivateKeyDer<'static>, String> {
    let Some(password) = password else {
        return Err("it is encrypted and sslpassword is not set".into());
    };
    match info.decrypt(password) {
        Ok(key) => Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            key.as_bytes().to_vec(),
        ))),
        // pkcs5 0.7 reports a wrong padding after decryption (a wrong
        // password) as EncryptFailed. About one wrong password in 256 still
        // ends in a valid padding, and the plaintext is then no DER (an
        // ASN.1 error): the algorithm was one poolbench decrypts, so that
        // is a wrong password too.
        Err(
            pkcs8::Error::EncryptedPrivateKey(
                pkcs5::Error::DecryptFailed | pkcs5::Error::EncryptFailed,
            )
            | pkcs8::Error::Asn1(_),
        ) => Err("it could not be decrypted: sslpassword is wrong".into()),
        Err(e) => Err(format!("it could not be decrypted ({e}); {DECRYPTS}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(mode: SslMode) -> TlsOptions {
        TlsOptions {
            mode,
            rootcert: None,
            cert: None,
            key: None,
            key_password: None,
            no_client_cert: false,
            sni: true,
            min_version: None,
            max_version: None,
            home: None,
        }
    }

    /// A self-signed certificate in `dir` (ca.pem), and its key in PKCS#8
    /// PEM (key.pem).
    fn self_signed(dir: &Path) -> PathBuf {
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(vec!["test".to_string()]).unwrap();
        let path = dir.join("ca.pem");
        fs::write(&path, cert.pem()).unwrap();
        let key_path = dir.join("key.pem");
        fs::write(&key_path, signing_key.serialize_pem()).unwrap();
        fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    #[test]
    fn modes_and_what_they_verify() {
        let dir = tempfile::tempdir().unwrap();
        let ca = self_signed(dir.path());
        for (mode, rootcert, expected) in [
            (SslMode::Require, None, Verify::Nothing),
            (SslMode::Require, Some(&ca), Verify::Chain),
            (SslMode::Prefer, Some(&ca), Verify::Chain),
            (SslMode::VerifyCa, Some(&ca), Verify::Chain),
            (SslMode::VerifyFull, Some(&ca), Verify::ChainAndHost),
            (SslMode::Disable, Some(&ca), Verify::Nothing),
        ] {
            let opts = TlsOptions {
                rootcert: rootcert.map(|p| p.display().to_string()),
                ..options(mode)
            };
            let tls = build(&opts).unwrap();
            assert_eq!(tls.verify, expected, "{mode:?} {rootcert:?}");
        }
        // The default root.crt in ~/.postgresql upgrades require too.
        std::fs::create_dir(dir.path().join(".postgresql")).unwrap();
        std::fs::copy(&ca, dir.path().join(".postgresql/root.crt")).unwrap();
        let opts = TlsOptions {
            home: Some(dir.path().to_path_buf()),
            ..options(SslMode::Require)
        };
        assert_eq!(build(&opts).unwrap().verify, Verify::Chain);
    }

    #[test]
    fn libpq_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let empty = dir.path().join("empty.pem");
        fs::write(&empty, "no certificate here\n").unwrap();
        for (rootcert, why) in [
            (&missing, "does not exist"),
            (&empty, "no certificate in it"),
        ] {
            let opts = TlsOptions {
                rootcert: Some(rootcert.display().to_string()),
                ..options(SslMode::VerifyFull)
            };
            let e = format!("{:#}", build(&opts).err().unwrap());
            assert!(
                e.contains("root certificate file") && e.contains(why),
                "{e}"
            );
        }
        let opts = TlsOptions {
            rootcert: Some("system".into()),
            ..options(SslMode::Require)
        };
        let e = build(&opts).err().unwrap();
        assert_eq!(
            crate::error::kind_of(&e),
            Some(crate::error::Kind::BadInput)
        );
        assert!(format!("{e:#}").contains("weak sslmode \"require\""));
        let opts = TlsOptions {
            rootcert: Some("system".into()),
            ..options(SslMode::VerifyFull)
        };
        assert_eq!(build(&opts).unwrap().verify, Verify::ChainAndHost);
    }

    /// A CA, and a server certificate it signs for `db.poolbench.test`.
    fn ca_and_server() -> (CertificateDer<'static>, CertificateDer<'static>) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "test CA");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let server_key = rcgen::KeyPair::generate().unwrap();
        let mut server = rcgen::CertificateParams::new(vec!["db.poolbench.test".into()]).unwrap();
        server
            .distinguished_name
            .push(rcgen::DnType::CommonName, "db");
        let server_cert = server
            .signed_by(&server_key, &rcgen::Issuer::from_params(&ca, &ca_key))
            .unwrap();
        (ca_cert.der().clone(), server_cert.der().clone())
    }

    /// The checks of the server's certificate: none, the chain, the chain
    /// and the name, as libpq's modes ask; refusals in OpenSSL's words.
    #[test]
    fn connections_verify_as_libpq() {
        let (ca, server) = ca_and_server();
        let (other_ca, _) = ca_and_server();
        let roots = |ca: &CertificateDer<'static>| {
            let mut store = RootCertStore::empty();
            store.add(ca.clone()).unwrap();
            Some(Arc::new(store))
        };
        let verifier = |roots, check_host| Libpq {
            roots,
            check_host,
            algorithms: rustls::crypto::aws_lc_rs::default_provider()
                .signature_verification_algorithms,
        };
        let check = |v: &Libpq, host: &str| {
            v.verify_server_cert(&server, &[], &server_name(host), &[], UnixTime::now())
                .map(|_| ())
        };
        let refusal =
            |e: rustls::Error| verify_failure(&io::Error::new(io::ErrorKind::InvalidData, e));
        // require: anything.
        assert!(check(&verifier(None, false), "elsewhere.test").is_ok());
        // verify-ca: the chain, whatever the name.
        assert!(check(&verifier(roots(&ca), false), "elsewhere.test").is_ok());
        // (Another CA of the same name: its signature does not match.)
        let e = check(&verifier(roots(&other_ca), false), "db.poolbench.test").unwrap_err();
        assert!(format!("{e}").contains("invalid peer certificate"), "{e}");
        assert!(refusal(e).is_some());
        // verify-full: the chain and the name.
        assert!(check(&verifier(roots(&ca), true), "db.poolbench.test").is_ok());
        let e = check(&verifier(roots(&ca), true), "elsewhere.test").unwrap_err();
        assert_eq!(
            refusal(e).as_deref(),
            Some("hostname mismatch (the certificate names db.poolbench.test)")
        );
        assert!(check(&verifier(roots(&other_ca), true), "db.poolbench.test").is_err());
        // A certificate no root vouches for, in OpenSSL's words.
        assert_eq!(
            certified_names(&[
                "DnsName(\"localhost\")".into(),
                "IpAddress(127.0.0.1)".into(),
                "UniformResourceIdentifier(\"x:y\")".into(),
            ]),
            ["localhost", "127.0.0.1"]
        );
        let unknown = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        assert_eq!(
            refusal(unknown).as_deref(),
            Some("unable to get local issuer certificate")
        );
        assert_eq!(refusal(rustls::Error::DecryptError), None);
    }

    #[test]
    fn protocol_versions_within_what_rustls_speaks() {
        let with = |min: Option<&str>, max: Option<&str>| TlsOptions {
            min_version: min.map(String::from),
            max_version: max.map(String::from),
            ..options(SslMode::Require)
        };
        let versions = |min, max| {
            versions(&with(min, max)).map(|v| v.iter().map(|v| v.version).collect::<Vec<_>>())
        };
        use rustls::ProtocolVersion::{TLSv1_2, TLSv1_3};
        assert_eq!(versions(None, None).unwrap(), vec![TLSv1_2, TLSv1_3]);
        assert_eq!(
            versions(Some("TLSv1"), None).unwrap(),
            vec![TLSv1_2, TLSv1_3]
        );
        assert_eq!(versions(Some("TLSv1.3"), None).unwrap(), vec![TLSv1_3]);
        assert_eq!(versions(None, Some("TLSv1.2")).unwrap(), vec![TLSv1_2]);
        let e = versions(None, Some("TLSv1.1")).unwrap_err();
        assert_eq!(
            crate::error::kind_of(&e),
            Some(crate::error::Kind::BadInput)
        );
        assert!(format!("{e:#}").contains("TLSv1.2 and TLSv1.3"), "{e:#}");
        assert!(build(&with(None, Some("TLSv1.1"))).is_err());
        let e = versions(Some("SSLv3"), None).unwrap_err();
        assert!(
            format!("{e:#}").contains("invalid SSL protocol version"),
            "{e:#}"
        );
    }

    #[test]
    fn a_readable_client_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cert = self_signed(dir.path());
        let key = dir.path().join("key.pem");
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        let opts = TlsOptions {
            cert: Some(cert.display().to_string()),
            key: Some(key.display().to_string()),
            ..options(SslMode::Require)
        };
        let e = format!("{:#}", build(&opts).err().unwrap());
        assert!(e.contains("has group or world access"), "{e}");
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
        let tls = build(&opts).unwrap();
        assert_eq!(tls.client_cert.as_deref(), Some(cert.as_path()));
        // A missing certificate is no error: no client certificate is sent.
        let opts = TlsOptions {
            cert: Some(dir.path().join("none.crt").display().to_string()),
            ..options(SslMode::Require)
        };
        assert!(build(&opts).unwrap().client_cert.is_none());
    }

    /// The client key's formats: PKCS#8 in PEM and DER, encrypted with
    /// sslpassword or not, SEC1; and the refusals, each saying why.
    #[test]
    fn client_keys_in_each_format_and_sslpassword() {
        let dir = tempfile::tempdir().unwrap();
        let cert = self_signed(dir.path());
        let pkcs8_pem = fs::read_to_string(dir.path().join("key.pem")).unwrap();
        let pkcs8_der = PrivateKeyDer::from_pem_slice(pkcs8_pem.as_bytes())
            .unwrap()
            .secret_der()
            .to_vec();
        let params = pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(
            2048,
            b"saltsalt",
            b"0123456789abcdef",
        )
        .unwrap();
        let encrypted = pkcs8::PrivateKeyInfo::try_from(pkcs8_der.as_slice())
            .unwrap()
            .encrypt_with_params(params, "s3cret")
            .unwrap();
        let encrypted_pem = encrypted
            .to_pem("ENCRYPTED PRIVATE KEY", pkcs8::LineEnding::LF)
            .unwrap();
        // SEC1 ("EC PRIVATE KEY") of the same key, from its PKCS#8 wrapping.
        let sec1 = pkcs8::PrivateKeyInfo::try_from(pkcs8_der.as_slice())
            .unwrap()
            .private_key
            .to_vec();
        let sec1_pem =
            pkcs8::der::pem::encode_string("EC PRIVATE KEY", pkcs8::LineEnding::LF, &sec1).unwrap();
        let legacy = "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\
                      DEK-Info: AES-256-CBC,00000000000000000000000000000000\n\nAAAA\n\
                      -----END EC PRIVATE KEY-----\n";

        let key_file = dir.path().join("client.key");
        let load = |bytes: &[u8], password: Option<&str>| {
            fs::write(&key_file, bytes).unwrap();
            fs::set_permissions(&key_file, fs::Permissions::from_mode(0o600)).unwrap();
            let opts = TlsOptions {
                cert: Some(cert.display().to_string()),
                key: Some(key_file.display().to_string()),
                key_password: password.map(String::from),
                ..options(SslMode::Require)
            };
            build(&opts)
                .map(|tls| tls.client_cert.is_some())
                .map_err(|e| format!("{e:#}"))
        };
        assert_eq!(load(pkcs8_pem.as_bytes(), None), Ok(true));
        assert_eq!(load(&pkcs8_der, None), Ok(true));
        assert_eq!(load(sec1_pem.as_bytes(), None), Ok(true));
        assert_eq!(load(&sec1, None), Ok(true));
        assert_eq!(load(encrypted_pem.as_bytes(), Some("s3cret")), Ok(true));
        assert_eq!(load(encrypted.as_bytes(), Some("s3cret")), Ok(true));

        let refused = |bytes: &[u8], password: Option<&str>, why: &str| {
            let e = load(bytes, password).unwrap_err();
            assert!(
                e.contains("could not load private key file") && e.contains(why),
                "{why}: {e}"
            );
        };
        refused(encrypted_pem.as_bytes(), None, "sslpassword is not set");
        refused(
            encrypted_pem.as_bytes(),
            Some("wrong"),
            "sslpassword is wrong",
        );
        refused(legacy.as_bytes(), Some("s3cret"), "legacy PEM format");
        refused(b"neither PEM nor DER", None, "not a private key");
        // Another key than the certificate's.
        let other = rcgen::KeyPair::generate().unwrap().serialize_pem();
        let e = load(other.as_bytes(), None).unwrap_err();
        assert!(e.contains("does not match private key file"), "{e}");
    }
}
