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
//! Two TLS libraries apply these rules. The measured connections use
//! rustls (on aws-lc-rs): OpenSSL 3.0 spends about 6,000 instructions of its
//! own on each small record (a cipher context set up again, provider
//! parameters looked up, eight allocations), 13,400 of the 20,600 a pooled
//! `SELECT 1` costs poolbench, where rustls spends a fraction of that; a
//! benchmark client must not pay more per query than the applications it
//! stands for. The driver's own connections (the start-up check, the
//! monitor) stay on OpenSSL through postgres-openssl, whose error words the
//! check reports. Both are built from the same options here. OpenSSL also
//! reads the client key (`sslpassword`, PEM or DER) for both.

use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use openssl::pkey::PKey;
use openssl::ssl::{ConnectConfiguration, SslConnector, SslMethod, SslVerifyMode, SslVersion};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::X509;
use postgres_openssl::MakeTlsConnector;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::error::{bad_input, environment};

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

/// The connectors and what libpq sets on each connection: whether the
/// host name is checked, and SNI. The driver's own connections (the
/// monitor, the start-up check) take OpenSSL's as postgres-openssl's
/// [`MakeTlsConnector`]; the measured ones, whose stream poolbench reads
/// itself, take rustls' ([`Connector::measured`]).
#[derive(Clone)]
pub struct Connector {
    openssl: SslConnector,
    check_host: bool,
    sni: bool,
    rustls: Arc<ClientConfig>,
}

impl Connector {
    /// The measured connections' TLS settings.
    pub fn measured(&self) -> Arc<ClientConfig> {
        self.rustls.clone()
    }

    /// Readies this thread's random generator for the measured
    /// connections' handshakes. aws-lc seeds each thread's generator on its
    /// first use with jitter entropy: about 21 ms (measured with a uprobe
    /// on this machine), which would otherwise land in the `tls` phase of
    /// the first connection each worker thread opens.
    pub fn seed_this_thread(&self) {
        let _ = self
            .rustls
            .crypto_provider()
            .secure_random
            .fill(&mut [0u8; 1]);
    }

    /// The same settings as postgres-openssl's connector, for the driver.
    pub fn driver(&self) -> MakeTlsConnector {
        let mut connector = MakeTlsConnector::new(self.openssl.clone());
        let (check_host, sni) = (self.check_host, self.sni);
        connector.set_callback(move |config, _domain| {
            per_connection(config, check_host, sni);
            Ok(())
        });
        connector
    }
}

/// What libpq sets on each connection: the host name check (verify-full)
/// and SNI (sslsni).
fn per_connection(config: &mut ConnectConfiguration, check_host: bool, sni: bool) {
    config.set_verify_hostname(check_host);
    config.set_use_server_name_indication(sni);
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

/// An OpenSSL connector that encrypts without verifying: libpq's
/// `require` without a root certificate, as the embedded server is reached.
pub fn unverified() -> Result<Connector> {
    let mut builder = SslConnector::builder(SslMethod::tls_client())
        .map_err(|e| environment(format!("initialising OpenSSL: {e}")))?;
    builder.set_verify(SslVerifyMode::NONE);
    Ok(Connector {
        openssl: builder.build(),
        check_host: false,
        sni: true,
        rustls: measured(&Measured {
            versions: rustls::ALL_VERSIONS,
            roots: None,
            check_host: false,
            client: None,
            sni: true,
        })?,
    })
}

/// Builds the connector for `opts`. Errors about files are environment
/// errors (exit 3) with libpq's wording; a contradictory combination of
/// options is bad input (exit 2).
pub fn build(opts: &TlsOptions) -> Result<Tls> {
    let ssl = |what: &str, e: openssl::error::ErrorStack| environment(format!("{what}: {e}"));
    let mut builder = SslConnector::builder(SslMethod::tls_client())
        .map_err(|e| ssl("initialising OpenSSL", e))?;
    let min = protocol(opts.min_version.as_deref())?.or(Some(SslVersion::TLS1_2));
    builder
        .set_min_proto_version(min)
        .map_err(|e| ssl("ssl_min_protocol_version", e))?;
    builder
        .set_max_proto_version(protocol(opts.max_version.as_deref())?)
        .map_err(|e| ssl("ssl_max_protocol_version", e))?;
    let versions = rustls_versions(opts)?;
    // The same trusted roots and client certificate, for rustls.
    let mut roots = None;
    let mut client = None;

    let home_file = |name: &str| opts.home.as_ref().map(|h| h.join(".postgresql").join(name));
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
                let mut store = X509StoreBuilder::new().map_err(|e| ssl("sslrootcert", e))?;
                store
                    .set_default_paths()
                    .map_err(|e| ssl("loading the system's trusted roots", e))?;
                builder.set_cert_store(store.build());
                roots = Some(system_roots());
                rootcert = Some("system".to_string());
            }
            explicit => {
                let path = explicit
                    .map(PathBuf::from)
                    .or_else(|| home_file("root.crt"));
                match path.filter(|p| p.exists()) {
                    Some(path) => {
                        let certs = load_roots(&path)?;
                        roots = Some(root_store(&path, &certs)?);
                        let mut store =
                            X509StoreBuilder::new().map_err(|e| ssl("sslrootcert", e))?;
                        for cert in certs {
                            store.add_cert(cert).map_err(|e| ssl("sslrootcert", e))?;
                        }
                        builder.set_cert_store(store.build());
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
    builder.set_verify(if verify == Verify::Nothing {
        SslVerifyMode::NONE
    } else {
        SslVerifyMode::PEER
    });

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
            builder.set_certificate_chain_file(&cert).map_err(|e| {
                environment(format!(
                    "could not read certificate file \"{}\": {e}",
                    cert.display()
                ))
            })?;
            let key = opts
                .key
                .as_deref()
                .filter(|k| !k.is_empty())
                .map(PathBuf::from)
                .or_else(|| home_file("postgresql.key"))
                .ok_or_else(|| {
                    environment("could not get home directory to locate the client key file")
                })?;
            let pkey = load_key(&key, opts.key_password.as_deref())?;
            builder.set_private_key(&pkey).map_err(|e| {
                environment(format!(
                    "could not load private key file \"{}\": {e}",
                    key.display()
                ))
            })?;
            builder.check_private_key().map_err(|_| {
                environment(format!(
                    "certificate \"{}\" does not match private key file \"{}\"",
                    cert.display(),
                    key.display()
                ))
            })?;
            client = Some(client_auth(&cert, &key, &pkey)?);
            client_cert = Some(cert);
        }
    }

    let check_host = verify == Verify::ChainAndHost;
    let rustls = measured(&Measured {
        versions: &versions,
        roots: if verify == Verify::Nothing {
            None
        } else {
            roots
        },
        check_host,
        client,
        sni: opts.sni,
    })?;
    let connector = Connector {
        openssl: builder.build(),
        check_host,
        sni: opts.sni,
        rustls,
    };
    Ok(Tls {
        connector,
        verify,
        rootcert,
        client_cert,
    })
}

/// What the measured connections' rustls configuration is made of.
struct Measured<'a> {
    versions: &'a [&'static rustls::SupportedProtocolVersion],
    /// The trusted roots when the chain is verified.
    roots: Option<RootCertStore>,
    check_host: bool,
    /// The client certificate's chain and key.
    client: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    sni: bool,
}

fn measured(m: &Measured<'_>) -> Result<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let algorithms = provider.signature_verification_algorithms;
    let verifier = Arc::new(Libpq {
        roots: m.roots.clone().map(Arc::new),
        check_host: m.check_host,
        algorithms,
    });
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(m.versions)
        .map_err(|e| environment(format!("setting up TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match &m.client {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain.clone(), key.clone_key())
            .map_err(|e| environment(format!("loading the client certificate: {e}")))?,
        None => builder.with_no_client_auth(),
    };
    config.enable_sni = m.sni;
    // One session per connection, as libpq opens them: no tickets kept.
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

/// The protocol versions rustls may use: TLS 1.2 and 1.3, within
/// `ssl_min_protocol_version` (TLS 1.2 when unset, as libpq) and
/// `ssl_max_protocol_version`.
fn rustls_versions(opts: &TlsOptions) -> Result<Vec<&'static rustls::SupportedProtocolVersion>> {
    let rank = |v: Option<&str>| match v.filter(|v| !v.is_empty()) {
        Some("TLSv1") => Some(10),
        Some("TLSv1.1") => Some(11),
        Some("TLSv1.2") => Some(12),
        Some("TLSv1.3") => Some(13),
        _ => None,
    };
    let min = rank(opts.min_version.as_deref()).unwrap_or(12);
    let max = rank(opts.max_version.as_deref()).unwrap_or(13);
    let versions: Vec<_> = [(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
        .into_iter()
        .filter(|(rank, _)| (min..=max).contains(rank))
        .map(|(_, version)| version)
        .collect();
    if versions.is_empty() {
        return Err(bad_input(format!(
            "ssl_min_protocol_version={} and ssl_max_protocol_version={} leave no protocol \
             poolbench speaks: its measured connections use TLSv1.2 and TLSv1.3",
            opts.min_version.as_deref().unwrap_or("TLSv1.2"),
            opts.max_version.as_deref().unwrap_or("TLSv1.3"),
        )));
    }
    Ok(versions)
}

/// The system's trusted roots, from the files OpenSSL reads too. None
/// found is no error here, as for OpenSSL: the handshake then fails to
/// verify the server's certificate, and says so.
fn system_roots() -> RootCertStore {
    let mut store = RootCertStore::empty();
    store.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    store
}

fn root_store(path: &Path, certs: &[X509]) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    for cert in certs {
        let der = cert.to_der().map_err(|e| environment(format!("{e}")))?;
        store.add(CertificateDer::from(der)).map_err(|e| {
            environment(format!(
                "could not use root certificate file \"{}\": {e}",
                path.display()
            ))
        })?;
    }
    Ok(store)
}

/// The client certificate chain and key as rustls takes them.
fn client_auth(
    cert: &Path,
    key: &Path,
    pkey: &PKey<openssl::pkey::Private>,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let unreadable = |e: &dyn std::fmt::Display| {
        environment(format!(
            "could not read certificate file \"{}\": {e}",
            cert.display()
        ))
    };
    let pem = fs::read(cert).map_err(|e| unreadable(&e))?;
    let chain = X509::stack_from_pem(&pem)
        .map_err(|e| unreadable(&e))?
        .iter()
        .map(|c| c.to_der().map(CertificateDer::from))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unreadable(&e))?;
    let der = pkey.private_key_to_pkcs8().map_err(|e| {
        environment(format!(
            "could not load private key file \"{}\": {e}",
            key.display()
        ))
    })?;
    Ok((chain, PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der))))
}

/// The server name a measured connection gives rustls: the host's name,
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

fn protocol(version: Option<&str>) -> Result<Option<SslVersion>> {
    Ok(match version.filter(|v| !v.is_empty()) {
        None => None,
        Some("TLSv1") => Some(SslVersion::TLS1),
        Some("TLSv1.1") => Some(SslVersion::TLS1_1),
        Some("TLSv1.2") => Some(SslVersion::TLS1_2),
        Some("TLSv1.3") => Some(SslVersion::TLS1_3),
        Some(other) => {
            return Err(bad_input(format!(
            "invalid SSL protocol version \"{other}\": expected TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3"
        )))
        }
    })
}

/// Every certificate of a PEM file, to be the only trusted roots.
fn load_roots(path: &Path) -> Result<Vec<X509>> {
    let unreadable = |e: &dyn std::fmt::Display| {
        environment(format!(
            "could not read root certificate file \"{}\": {e}",
            path.display()
        ))
    };
    let pem = fs::read(path).map_err(|e| unreadable(&e))?;
    let certs = X509::stack_from_pem(&pem).map_err(|e| unreadable(&e))?;
    if certs.is_empty() {
        return Err(unreadable(&"no certificate in it (expected PEM)"));
    }
    Ok(certs)
}

/// The client key, refused as libpq refuses it when others may read it;
/// PEM (encrypted with `sslpassword` or not) or DER. OpenSSL is never
/// allowed to prompt on the terminal for a passphrase.
fn load_key(path: &Path, password: Option<&str>) -> Result<PKey<openssl::pkey::Private>> {
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
    let bytes = fs::read(path).map_err(|e| {
        environment(format!(
            "could not read private key file \"{}\": {e}",
            path.display()
        ))
    })?;
    let passphrase = password.unwrap_or("").as_bytes().to_vec();
    let pem = PKey::private_key_from_pem_callback(&bytes, |buf| {
        let n = passphrase.len().min(buf.len());
        buf[..n].copy_from_slice(&passphrase[..n]);
        Ok(n)
    });
    pem.or_else(|_| PKey::private_key_from_der(&bytes))
        .map_err(|_| {
            environment(format!(
                "could not load private key file \"{}\" (not a PEM or DER key, or encrypted and \
                 sslpassword is missing or wrong)",
                path.display()
            ))
        })
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

    fn self_signed(dir: &Path) -> PathBuf {
        let group =
            openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap();
        let key = PKey::from_ec_key(openssl::ec::EcKey::generate(&group).unwrap()).unwrap();
        let mut name = openssl::x509::X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "test").unwrap();
        let name = name.build();
        let mut b = openssl::x509::X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        b.sign(&key, openssl::hash::MessageDigest::sha256())
            .unwrap();
        let path = dir.join("ca.pem");
        fs::write(&path, b.build().to_pem().unwrap()).unwrap();
        let key_path = dir.join("key.pem");
        fs::write(&key_path, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
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
        let opts = TlsOptions {
            rootcert: Some(missing.display().to_string()),
            ..options(SslMode::VerifyFull)
        };
        let e = format!("{:#}", build(&opts).err().unwrap());
        assert!(
            e.contains("root certificate file") && e.contains("does not exist"),
            "{e}"
        );
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
    fn ca_and_server() -> (X509, X509) {
        use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectAlternativeName};
        let key = || {
            let group =
                openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap();
            PKey::from_ec_key(openssl::ec::EcKey::generate(&group).unwrap()).unwrap()
        };
        let name = |cn: &str| {
            let mut name = openssl::x509::X509NameBuilder::new().unwrap();
            name.append_entry_by_text("CN", cn).unwrap();
            name.build()
        };
        let builder = |subject: &str, issuer: &str, pubkey: &PKey<openssl::pkey::Private>| {
            let mut b = openssl::x509::X509Builder::new().unwrap();
            b.set_version(2).unwrap();
            b.set_subject_name(&name(subject)).unwrap();
            b.set_issuer_name(&name(issuer)).unwrap();
            b.set_pubkey(pubkey).unwrap();
            b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
                .unwrap();
            b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(1).unwrap())
                .unwrap();
            b
        };
        let (ca_key, server_key) = (key(), key());
        let mut ca = builder("test CA", "test CA", &ca_key);
        ca.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
        ca.append_extension(KeyUsage::new().critical().key_cert_sign().build().unwrap())
            .unwrap();
        ca.sign(&ca_key, openssl::hash::MessageDigest::sha256())
            .unwrap();
        let mut server = builder("db", "test CA", &server_key);
        let san = SubjectAlternativeName::new()
            .dns("db.poolbench.test")
            .build(&server.x509v3_context(None, None))
            .unwrap();
        server.append_extension(san).unwrap();
        server
            .sign(&ca_key, openssl::hash::MessageDigest::sha256())
            .unwrap();
        (ca.build(), server.build())
    }

    /// The measured connections' checks: none, the chain, the chain and
    /// the name, as libpq's modes ask.
    #[test]
    fn the_measured_connections_verify_as_libpq() {
        let (ca, server) = ca_and_server();
        let (other_ca, _) = ca_and_server();
        let der = CertificateDer::from(server.to_der().unwrap());
        let roots = |ca: &X509| {
            let mut store = RootCertStore::empty();
            store
                .add(CertificateDer::from(ca.to_der().unwrap()))
                .unwrap();
            Some(Arc::new(store))
        };
        let verifier = |roots, check_host| Libpq {
            roots,
            check_host,
            algorithms: rustls::crypto::aws_lc_rs::default_provider()
                .signature_verification_algorithms,
        };
        let check = |v: &Libpq, host: &str| {
            v.verify_server_cert(&der, &[], &server_name(host), &[], UnixTime::now())
                .map(|_| ())
        };
        // require: anything.
        assert!(check(&verifier(None, false), "elsewhere.test").is_ok());
        // verify-ca: the chain, whatever the name.
        assert!(check(&verifier(roots(&ca), false), "elsewhere.test").is_ok());
        // (Another CA of the same name: its signature does not match.)
        let e = check(&verifier(roots(&other_ca), false), "db.poolbench.test").unwrap_err();
        assert!(format!("{e}").contains("invalid peer certificate"), "{e}");
        // verify-full: the chain and the name.
        assert!(check(&verifier(roots(&ca), true), "db.poolbench.test").is_ok());
        let e = check(&verifier(roots(&ca), true), "elsewhere.test").unwrap_err();
        assert!(format!("{e}").contains("not valid for name"), "{e}");
        assert!(check(&verifier(roots(&other_ca), true), "db.poolbench.test").is_err());
    }

    #[test]
    fn protocol_versions_within_what_rustls_speaks() {
        let with = |min: Option<&str>, max: Option<&str>| TlsOptions {
            min_version: min.map(String::from),
            max_version: max.map(String::from),
            ..options(SslMode::Require)
        };
        let versions = |min, max| {
            rustls_versions(&with(min, max))
                .map(|v| v.iter().map(|v| v.version).collect::<Vec<_>>())
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
}
