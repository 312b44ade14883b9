//! The embedded server's self-signed TLS certificate: an EC P-256 key,
//! CN=localhost, SAN DNS:localhost and IP:127.0.0.1, valid for ten years.
//! Clients use `sslmode=require`, which encrypts without verifying, like most
//! production setups reached by IP.

use anyhow::{Context, Result};
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::x509::extension::{BasicConstraints, SubjectAlternativeName};
use openssl::x509::{X509Builder, X509NameBuilder};

const VALIDITY_DAYS: u32 = 3650;

/// A PEM certificate and its PEM private key.
pub struct SelfSigned {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

pub fn generate() -> Result<SelfSigned> {
    build().context("generating the embedded server's TLS certificate")
}

fn build() -> Result<SelfSigned, openssl::error::ErrorStack> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    let key = PKey::from_ec_key(EcKey::generate(&group)?)?;

    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_nid(Nid::COMMONNAME, "localhost")?;
    let name = name.build();

    let mut serial = BigNum::new()?;
    serial.rand(127, MsbOption::MAYBE_ZERO, false)?;

    let mut builder = X509Builder::new()?;
    builder.set_version(2)?; // X.509 v3, needed for extensions
    let serial = serial.to_asn1_integer()?;
    let not_before = Asn1Time::days_from_now(0)?;
    let not_after = Asn1Time::days_from_now(VALIDITY_DAYS)?;
    builder.set_serial_number(&serial)?;
    builder.set_subject_name(&name)?;
    builder.set_issuer_name(&name)?;
    builder.set_pubkey(&key)?;
    builder.set_not_before(&not_before)?;
    builder.set_not_after(&not_after)?;
    builder.append_extension(BasicConstraints::new().critical().build()?)?;
    let san = SubjectAlternativeName::new()
        .dns("localhost")
        .ip("127.0.0.1")
        .build(&builder.x509v3_context(None, None))?;
    builder.append_extension(san)?;
    builder.sign(&key, MessageDigest::sha256())?;
    let cert = builder.build();

    Ok(SelfSigned {
        cert_pem: cert.to_pem()?,
        key_pem: key.private_key_to_pem_pkcs8()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::x509::X509;

    #[test]
    fn certificate_names_localhost_and_loopback() {
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
        assert!(cert.verify(&key).unwrap());
        let nine_years = Asn1Time::days_from_now(9 * 365).unwrap();
        assert!(cert.not_after() > nine_years);
    }
}
