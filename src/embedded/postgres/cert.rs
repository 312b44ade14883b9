//! The embedded server's TLS certificate: a throwaway CA (EC P-256, CA:TRUE)
//! generated with it, and a server certificate it signs — CN=localhost, SAN
//! DNS:localhost and IP:127.0.0.1, the names `poolbench server` prints —
//! both valid for ten years. Clients use `sslmode=require` (encrypted, not
//! verified); with the CA as `sslrootcert`, `verify-full` works too.

use anyhow::{Context, Result};
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, PKeyRef, Private};
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509Builder, X509Name, X509NameBuilder};

const VALIDITY_DAYS: u32 = 3650;

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

fn build() -> Result<ServerCertificate, openssl::error::ErrorStack> {
    let ca_key = ec_key()?;
    let ca_name = name("poolbench throwaway CA")?;
    let mut ca = builder(&ca_name, &ca_name, &ca_key)?;
    ca.append_extension(BasicConstraints::new().critical().ca().build()?)?;
    ca.append_extension(
        KeyUsage::new()
            .critical()
            .key_cert_sign()
            .crl_sign()
            .build()?,
    )?;
    ca.sign(&ca_key, MessageDigest::sha256())?;
    let ca = ca.build();

    let key = ec_key()?;
    let leaf_name = name("localhost")?;
    let mut leaf = builder(&leaf_name, ca.subject_name(), &key)?;
    leaf.append_extension(BasicConstraints::new().critical().build()?)?;
    let san = SubjectAlternativeName::new()
        .dns("localhost")
        .ip("127.0.0.1")
        .build(&leaf.x509v3_context(Some(&ca), None))?;
    leaf.append_extension(san)?;
    leaf.sign(&ca_key, MessageDigest::sha256())?;
    let leaf = leaf.build();

    Ok(ServerCertificate {
        cert_pem: leaf.to_pem()?,
        key_pem: key.private_key_to_pem_pkcs8()?,
        ca_pem: ca.to_pem()?,
    })
}

fn ec_key() -> Result<PKey<Private>, openssl::error::ErrorStack> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    PKey::from_ec_key(EcKey::generate(&group)?)
}

fn name(cn: &str) -> Result<X509Name, openssl::error::ErrorStack> {
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_nid(Nid::COMMONNAME, cn)?;
    Ok(name.build())
}

/// A version 3 certificate for `key`, named `subject`, issued by `issuer`,
/// valid from now for [`VALIDITY_DAYS`], with a random serial number.
fn builder(
    subject: &openssl::x509::X509NameRef,
    issuer: &openssl::x509::X509NameRef,
    key: &PKeyRef<Private>,
) -> Result<X509Builder, openssl::error::ErrorStack> {
    let mut serial = BigNum::new()?;
    serial.rand(127, MsbOption::MAYBE_ZERO, false)?;
    let mut builder = X509Builder::new()?;
    builder.set_version(2)?; // X.509 v3, needed for extensions
    let serial = serial.to_asn1_integer()?;
    let not_before = Asn1Time::days_from_now(0)?;
    let not_after = Asn1Time::days_from_now(VALIDITY_DAYS)?;
    builder.set_serial_number(&serial)?;
    builder.set_subject_name(subject)?;
    builder.set_issuer_name(issuer)?;
    builder.set_pubkey(key)?;
    builder.set_not_before(&not_before)?;
    builder.set_not_after(&not_after)?;
    Ok(builder)
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::stack::Stack;
    use openssl::x509::store::X509StoreBuilder;
    use openssl::x509::{X509StoreContext, X509};

    #[test]
    fn the_ca_signs_a_certificate_naming_localhost_and_loopback() {
        let s = generate().unwrap();
        let cert = X509::from_pem(&s.cert_pem).unwrap();
        let cn = cert
            .subject_name()
            .entries_by_nid(Nid::COMMONNAME)
            .next()
            .unwrap();
        assert_eq!(cn.data().to_string().unwrap(), "localhost");
        let sans = cert.subject_alt_names().unwrap();
        assert!(sans.iter().any(|n| n.dnsname() == Some("localhost")));
        assert!(sans
            .iter()
            .any(|n| n.ipaddress() == Some(&[127, 0, 0, 1][..])));
        let key = PKey::private_key_from_pem(&s.key_pem).unwrap();
        assert!(cert.public_key().unwrap().public_eq(&key));
        let nine_years = Asn1Time::days_from_now(9 * 365).unwrap();
        assert!(cert.not_after() > nine_years);

        // The chain verifies against the CA alone.
        let ca = X509::from_pem(&s.ca_pem).unwrap();
        let mut store = X509StoreBuilder::new().unwrap();
        store.add_cert(ca).unwrap();
        let store = store.build();
        let mut ctx = X509StoreContext::new().unwrap();
        let ok = ctx
            .init(&store, &cert, &Stack::new().unwrap(), |c| c.verify_cert())
            .unwrap();
        assert!(ok, "{}", ctx.error());
        assert!(!format!("{s:?}").contains("PRIVATE"));
    }
}
