//! An external server's authentication method, as far as a client can know
//! it: one probe connection records what the server asked for during
//! authentication (SCRAM, md5, a clear-text password, nothing), and on
//! PostgreSQL 16 and later `SYSTEM_USER` names the method that established
//! an identity (`cert`, `peer`, `ldap`…). pg_hba.conf itself is readable
//! only by superusers, and which of its lines applied cannot be told from
//! it, so what the server did is the better witness. The probe is opened
//! by the one dialer (`connect.rs`), which keeps its transcript.

use tokio_postgres::config::Host;
use tokio_postgres::Client;

use super::connect::{self, Transcript};
use super::Target;

/// The method the server used for poolbench's user, or "unknown (why)".
pub async fn method(target: &Target) -> String {
    let socket = matches!(target.config().get_hosts().first(), Some(Host::Unix(_)));
    let transcript = Transcript::default();
    let probe = tokio::time::timeout(
        target.connect_timeout(),
        connect::own(target, Some(&transcript)),
    )
    .await;
    match probe {
        Ok(Ok(own)) => {
            let identity = system_user(&own.client).await;
            let client_cert = own.encrypted && target.details().client_cert.is_some();
            let asked = asked_for(&transcript.bytes());
            describe(asked, identity.as_deref(), client_cert, socket)
        }
        Ok(Err(e)) => format!("unknown (the probe connection failed: {e})"),
        Err(_) => "unknown (the probe connection timed out)".into(),
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
    // A connection that asked for TLS first reads the server's one-byte
    // answer (S: go ahead, N: no TLS here) before any message.
    if matches!(rest.first(), Some(b'S' | b'N')) {
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
        // Over TLS: the server's yes to the SSLRequest, then the session.
        let mut tls = b"S".to_vec();
        tls.extend(auth(5, b"salt"));
        assert_eq!(asked_for(&tls), Asked::Method("md5"));
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
