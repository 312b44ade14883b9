//! What the embedded server is and how it is reached, shared by the files
//! that make, run and wait for it: the options it is started with, the
//! address, user and database clients use, the marker setting, and the
//! system user it runs as. A leaf: it imports no other part of the server.

use super::cert::ServerCertificate;
use crate::scenario::{
    AuthMethod, ChannelBindingLever, EmbeddedSettings, SslNegotiationLever, TlsVersion,
};

/// The only address the server listens on.
pub const HOST: &str = "127.0.0.1";

/// The setting that marks every server poolbench starts as a throwaway:
/// the backend reads it (`backend::postgres::admin`).
pub use crate::backend::postgres::admin::THROWAWAY_SETTING;

/// What kind of server to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedOptions {
    pub auth: AuthMethod,
    pub tls: bool,
    /// `None`: a free port, chosen at start.
    pub port: Option<u16>,
    /// The server's max_connections (>= 1).
    pub max_connections: u32,
    /// The TLS certificate to serve; `None`: one generated at start, signed
    /// by a CA generated with it.
    pub certificate: Option<ServerCertificate>,
    /// TCP clients log in with a certificate signed by the certificate's CA
    /// and naming their user (pg_hba `hostssl … cert`), without a password.
    pub client_certificates: bool,
    /// The stored SCRAM verifier's iteration count (initdb's 4096 when None).
    pub scram_iterations: Option<u32>,
    /// The one TLS version the server accepts.
    pub tls_version: Option<TlsVersion>,
    /// How poolbench's connections start TLS (direct: PostgreSQL >= 17).
    pub sslnegotiation: SslNegotiationLever,
    pub channel_binding: ChannelBindingLever,
}

impl Default for EmbeddedOptions {
    fn default() -> EmbeddedOptions {
        EmbeddedOptions::from(&EmbeddedSettings::default())
    }
}

impl From<&EmbeddedSettings> for EmbeddedOptions {
    fn from(s: &EmbeddedSettings) -> EmbeddedOptions {
        EmbeddedOptions {
            auth: s.auth,
            tls: s.tls,
            port: None,
            max_connections: s.max_connections,
            certificate: None,
            client_certificates: false,
            scram_iterations: s.scram_iterations,
            tls_version: s.tls_version,
            sslnegotiation: s.sslnegotiation,
            channel_binding: s.channel_binding,
        }
    }
}

/// The system user initdb and postgres run as when poolbench runs as root
/// (PostgreSQL refuses to run as root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// The superuser initdb creates; poolbench connects as it.
pub const USER: &str = "poolbench";
/// The database clients connect to.
pub const DBNAME: &str = "postgres";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_from_scenario_settings_pick_a_free_port() {
        let settings = EmbeddedSettings {
            engine: crate::scenario::EmbeddedEngine::Postgresql,
            auth: AuthMethod::Md5,
            tls: false,
            max_connections: 7,
            ..EmbeddedSettings::default()
        };
        assert_eq!(
            EmbeddedOptions::from(&settings),
            EmbeddedOptions {
                auth: AuthMethod::Md5,
                tls: false,
                port: None,
                max_connections: 7,
                certificate: None,
                client_certificates: false,
                scram_iterations: None,
                tls_version: None,
                sslnegotiation: SslNegotiationLever::Postgres,
                channel_binding: ChannelBindingLever::Prefer,
            }
        );
    }
}
