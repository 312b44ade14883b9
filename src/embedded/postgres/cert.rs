//! The embedded server's TLS certificate: a throwaway CA (EC P-256, CA:TRUE)
//! generated with it, and a server certificate it signs — CN=localhost, SAN
//! DNS:localhost and IP:127.0.0.1, the names `poolbench server` prints —
//! both valid for ten years. Clients use `sslmode=require` (encrypted, not
//! verified); with the CA as `sslrootcert`, `verify-full` works too.

use anyhow::{Context, Result};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

const VALIDITY_DAYS: i64 = 3650;

/// A server certificate, its key and the CA certificate that signed it, in
/// PEM. Given in `EmbeddedOptions::certificate`, or generated at start.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerCertificate {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    /// What clients trust (`sslrootcert`), and with client certificates
    /// what the server trusts (`ssl_ca_file`).
    pub ca_pem: Vec<u8>,
}

impl std::fmt::Debug for ServerCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is a secret: never in a Debug dump.
        f.debug_struct("ServerCertificate").finish_non_exhaustive()
    }
}

pub fn generate() -> Result<ServerCertificate> {
    build().context("generating the embedded server's TLS certificate")
}

fn build() -> Result<ServerCertificate, rcgen::Error> {
    let ca_key = KeyPair::generate()?;
    let mut ca = params("poolbench throwaway CA", &[])?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key)?;

    let key = KeyPair::generate()?;
    let mut leaf = params("localhost", &["localhost", "127.0.0.1"])?;
    leaf.is_ca = IsCa::ExplicitNoCa;
    let leaf_cert = leaf.signed_by(&key, &Issuer::from_params(&ca, &ca_key))?;

    Ok(ServerCertificate {
        cert_pem: leaf_cert.pem().into_bytes(),
        key_pem: key.serialize_pem().into_bytes(),
        ca_pem: ca_cert.pem().into_bytes(),
    })
}

/// A version 3 certificate named `cn`, for the DNS names and IP addresses
/// `names`, valid from now for [`VALIDITY_DAYS`] (its serial number a hash
/// of its freshly generated key).
fn params(cn: &str, names: &[&str]) -> Result<CertificateParams, rcgen::Error> {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
    params.distinguished_name.push(DnType::CommonName, cn);
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now;
    params.not_after = now + time::Duration::days(VALIDITY_DAYS);
    Ok(params)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
    use rustls::RootCertStore;
    use x509_cert::der::Decode;

    use super::*;

    #[test]
    fn the_ca_signs_a_certificate_naming_localhost_and_loopback() {
        let s = generate().unwrap();
        let cert = CertificateDer::from_pem_slice(&s.cert_pem).unwrap();
        let ca = CertificateDer::from_pem_slice(&s.ca_pem).unwrap();
        let parsed = x509_cert::Certificate::from_der(&cert).unwrap();
        let tbs = &parsed.tbs_certificate;
        assert_eq!(tbs.subject.to_string(), "CN=localhost");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        let nine_years = std::time::Duration::from_secs(9 * 365 * 24 * 3600);
        assert!(tbs.validity.not_after.to_unix_duration() > now + nine_years);

        // The chain verifies against the CA alone, for both names.
        let mut roots = RootCertStore::empty();
        roots.add(ca).unwrap();
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(provider),
        )
        .build()
        .unwrap();
        for name in ["localhost", "127.0.0.1"] {
            let name = ServerName::try_from(name).unwrap();
            rustls::client::danger::ServerCertVerifier::verify_server_cert(
                verifier.as_ref(),
                &cert,
                &[],
                &name,
                &[],
                UnixTime::now(),
            )
            .unwrap();
        }
        // The key is the certificate's.
        let key = PrivateKeyDer::from_pem_slice(&s.key_pem).unwrap();
        let signer = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key).unwrap();
        let certified = rustls::sign::CertifiedKey::new(vec![cert], signer);
        certified.keys_match().unwrap();
        assert!(!format!("{s:?}").contains("PRIVATE"));
    }
}
