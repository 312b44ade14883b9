//! TLS as libpq does it, on OpenSSL (postgres-openssl): the six `sslmode`s,
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

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Result;
use openssl::error::ErrorStack;
use openssl::pkey::PKey;
use openssl::ssl::{
    ConnectConfiguration, SslConnector, SslConnectorBuilder, SslMethod, SslVerifyMode, SslVersion,
};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::X509;
use postgres_openssl::MakeTlsConnector;

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

/// OpenSSL's connector and what libpq sets on each connection: whether the
/// host name is checked, and SNI. The driver's own connections (the
/// monitor, the start-up check) take it as postgres-openssl's
/// [`MakeTlsConnector`]; the measured ones, whose stream poolbench reads
/// itself, are configured with [`Connector::configure`].
#[derive(Clone)]
pub struct Connector {
    openssl: SslConnector,
    check_host: bool,
    sni: bool,
}

impl Connector {
    /// One connection's TLS settings; `into_ssl` with the host name then
    /// makes its session when the server has agreed to TLS.
    pub fn configure(&self) -> Result<ConnectConfiguration, ErrorStack> {
        let mut config = self.openssl.configure()?;
        per_connection(&mut config, self.check_host, self.sni);
        Ok(config)
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
    keep_buffers(&mut builder);
    Ok(Connector {
        openssl: builder.build(),
        check_host: false,
        sni: true,
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
                rootcert = Some("system".to_string());
            }
            explicit => {
                let path = explicit
                    .map(PathBuf::from)
                    .or_else(|| home_file("root.crt"));
                match path.filter(|p| p.exists()) {
                    Some(path) => {
                        let store = load_roots(&path)?;
                        builder.set_cert_store(store);
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
            client_cert = Some(cert);
        }
    }

    keep_buffers(&mut builder);
    let connector = Connector {
        openssl: builder.build(),
        check_host: verify == Verify::ChainAndHost,
        sni: opts.sni,
    };
    Ok(Tls {
        connector,
        verify,
        rootcert,
        client_cert,
    })
}

/// rust-openssl's connector has OpenSSL free a connection's read and
/// write buffers each time they empty (`SSL_MODE_RELEASE_BUFFERS`), to save
/// memory between records; then every record allocates and frees them
/// again, about 1,000 instructions per request. libpq keeps them (it sets
/// only `SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER`), and so does poolbench, at
/// about 34 KB per open connection.
fn keep_buffers(builder: &mut SslConnectorBuilder) {
    // SSL_CTX_clear_mode is a macro over SSL_CTX_ctrl (openssl/ssl.h);
    // rust-openssl has no wrapper for it.
    const SSL_CTRL_CLEAR_MODE: libc::c_int = 78;
    // SAFETY: the builder owns a valid SSL_CTX, and this command only
    // clears bits of its mode (the pointer argument is unused).
    unsafe {
        openssl_sys::SSL_CTX_ctrl(
            builder.as_ptr(),
            SSL_CTRL_CLEAR_MODE,
            openssl::ssl::SslMode::RELEASE_BUFFERS.bits() as libc::c_long,
            std::ptr::null_mut(),
        );
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

/// Every certificate of a PEM file, as the only trusted roots.
fn load_roots(path: &Path) -> Result<openssl::x509::store::X509Store> {
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
    let mut store = X509StoreBuilder::new().map_err(|e| unreadable(&e))?;
    for cert in certs {
        store.add_cert(cert).map_err(|e| unreadable(&e))?;
    }
    Ok(store.build())
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
