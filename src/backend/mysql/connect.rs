//! A measured MySQL connection's setup, spoken by poolbench itself on a
//! socket it opened (through the link emulator when given: one code path
//! for both), each phase timed where it happens: `tcp` until the socket is
//! connected (and relayed), `tls` from the SSLRequest packet to the end of
//! the TLS handshake, `startup` the rest — the server's greeting (protocol
//! 10) and authentication (the plugin's exchange, an auth switch included,
//! as many round trips as it takes) until the server's OK. The opening
//! thread's CPU is metered poll by poll and split at the same points, as
//! on PostgreSQL (`postgres/cpu.rs`); MariaDB's connections are threads of
//! one process, so the server's share is not read.
//!
//! Authentication: mysql_native_password; caching_sha2_password's fast
//! path, and its full path over TLS (the password in clear, as the mysql
//! client sends it there); mysql_clear_password over TLS only. The full
//! path without TLS needs the server's RSA key, which this client does not
//! do: it says so and how to avoid it (TLS).

use std::sync::Arc;
use std::time::Instant;

use bytes::BufMut;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::auth::{scramble_native, scramble_sha2};
use super::target::{SslMode, Target};
use super::wire::{caps, protocol, Wire, WireError};
use crate::backend::postgres::cpu::{CpuMeter, Metered};
use crate::backend::postgres::tls::server_name;
use crate::metrics::{micros, Setup, SetupCpu};
use crate::net::{Emulator, Turns};

/// A session ready for queries, how its setup went, when it was ready,
/// and its round-trip counter across the link.
pub struct Opened {
    pub wire: Wire,
    pub setup: Setup,
    pub ready_at: Instant,
    pub turns: Option<Turns>,
}

/// The character set the session asks for: utf8mb4_general_ci.
const UTF8MB4: u8 = 45;

/// The largest packet the client says it takes.
const MAX_PACKET: u32 = 1 << 24;

/// Opens one connection to `target` (across `link` when given), its phases
/// timed from `started`, bounded by the target's connect timeout.
pub async fn open(
    target: &Target,
    link: Option<&Emulator>,
    started: Instant,
) -> Result<Opened, WireError> {
    let meter = Arc::new(CpuMeter::default());
    let opening = Metered::new(measured(target, link, started, meter.clone()), meter);
    match tokio::time::timeout(target.connect_timeout(), opening).await {
        Ok(opened) => opened,
        Err(_) => Err(WireError::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "no answer within the connect timeout ({})",
                humantime::format_duration(target.connect_timeout())
            ),
        ))),
    }
}

/// The server's greeting (protocol 10), the parts the client uses.
struct Greeting {
    caps: u32,
    /// MariaDB's extended capabilities (0 from MySQL).
    mariadb_caps: u32,
    /// The authentication plugin's data (20 bytes for both plugins).
    scramble: Vec<u8>,
    plugin: String,
}

async fn measured(
    target: &Target,
    link: Option<&Emulator>,
    started: Instant,
    meter: Arc<CpuMeter>,
) -> Result<Opened, WireError> {
    let d = target.details();
    let socket = TcpStream::connect((d.host.as_str(), d.port)).await?;
    socket.set_nodelay(true)?;
    if let Ok(local) = socket.local_addr() {
        // Its server thread is kept on this thread's CPU (`placement`).
        crate::placement::note_connection(local.port());
    }
    let (stream, turns): (Box<dyn super::wire::Io>, _) = match link {
        Some(link) => {
            let (stream, turns) = link.relay(socket).await;
            (Box::new(stream), Some(turns))
        }
        None => (Box::new(socket), None),
    };
    let tcp_done = Instant::now();
    let tcp_done_ns = meter.now_ns();
    let mut wire = Wire::new(stream);

    let greeting = greeting(&mut wire).await?;
    let mut client = caps::LONG_PASSWORD
        | caps::LONG_FLAG
        | caps::PROTOCOL_41
        | caps::TRANSACTIONS
        | caps::SECURE_CONNECTION
        | caps::MULTI_RESULTS
        | caps::PS_MULTI_RESULTS
        | caps::PLUGIN_AUTH
        | caps::PLUGIN_AUTH_LENENC_DATA
        | caps::DEPRECATE_EOF;
    if d.db.is_some() {
        client |= caps::CONNECT_WITH_DB;
    }
    let tls_wanted = d.ssl_mode != SslMode::Disabled;
    let tls_offered = greeting.caps & caps::SSL != 0;
    if tls_wanted && !tls_offered && d.ssl_mode != SslMode::Preferred {
        return Err(protocol(format!(
            "the server does not support TLS, which ssl-mode={} requires",
            d.ssl_mode.as_str()
        )));
    }
    let tls = tls_wanted && tls_offered;
    if tls {
        client |= caps::SSL;
    }
    let agreed = client & greeting.caps;
    let mariadb = greeting.mariadb_caps & caps::MARIADB_CACHE_METADATA;
    wire.agree(agreed, mariadb != 0);

    // TLS: the SSLRequest (the response's first 32 bytes), then the
    // handshake on the same stream.
    let mut tls_end = None;
    if tls {
        wire.send(|out| fixed_part(out, agreed, mariadb)).await?;
        let seq = 2;
        let connector = TlsConnector::from(target.tls_config().map_err(protocol)?);
        let plain = wire.take_stream()?;
        let encrypted = connector
            .connect(server_name(&d.host), plain)
            .await
            .map_err(WireError::Io)?;
        wire.put_stream(Box::new(encrypted));
        wire.set_seq(seq);
        tls_end = Some((Instant::now(), meter.now_ns()));
    }

    authenticate(&mut wire, target, &greeting, agreed, mariadb, tls).await?;
    let end = Instant::now();
    let total_ns = meter.now_ns();

    let us = |ns: u64| ns / 1_000;
    let tcp_us = us(tcp_done_ns);
    let tls_end_us = tls_end.map(|(_, ns)| us(ns.clamp(tcp_done_ns, total_ns)));
    let total_us = us(total_ns);
    let tls_at = tls_end.map(|(at, _)| at.clamp(tcp_done, end));
    Ok(Opened {
        wire,
        setup: Setup {
            tcp_us: micros(tcp_done - started),
            tls_us: tls_at.map(|at| micros(at - tcp_done)),
            startup_us: micros(end - tls_at.unwrap_or(tcp_done)),
            round_trips: turns.as_ref().map(Turns::now),
            cpu: Some(SetupCpu {
                client_us: total_us,
                client_tcp_us: tcp_us,
                client_tls_us: tls_end_us.map(|e| e - tcp_us),
                client_startup_us: total_us - tls_end_us.unwrap_or(tcp_us),
                client_scram_us: None,
                server_us: None,
                server_fork_us: None,
                server_auth_us: None,
            }),
        },
        ready_at: end,
        turns,
    })
}

/// Reads the server's greeting: an ERR (too many connections, a host
/// blocked) is the server's error.
async fn greeting(wire: &mut Wire) -> Result<Greeting, WireError> {
    let len = wire.packet().await?;
    let p = wire.payload(len);
    if p.first() == Some(&0xff) {
        return Err(wire.error(len));
    }
    let parsed = parse_greeting(p);
    wire.consume(len);
    parsed
}

fn parse_greeting(p: &[u8]) -> Result<Greeting, WireError> {
    let malformed = || protocol("the server's greeting is not MySQL's protocol 10");
    let (&version, rest) = p.split_first().ok_or_else(malformed)?;
    if version != 10 {
        return Err(protocol(format!(
            "the server speaks protocol {version}, not MySQL's protocol 10"
        )));
    }
    // The server's version (NUL-terminated), the connection id.
    let nul = rest.iter().position(|&b| b == 0).ok_or_else(malformed)?;
    let rest = rest.get(nul + 1 + 4..).ok_or_else(malformed)?;
    let (part1, rest) = (rest.get(..8).ok_or_else(malformed)?, &rest[8..]);
    // Filler, the capabilities' low half, the character set, the status,
    // the high half, the plugin data's length, ten bytes reserved (the
    // last four MariaDB's extended capabilities).
    let fixed = rest
        .get(..1 + 2 + 1 + 2 + 2 + 1 + 10)
        .ok_or_else(malformed)?;
    let low = u32::from(u16::from_le_bytes([fixed[1], fixed[2]]));
    let high = u32::from(u16::from_le_bytes([fixed[6], fixed[7]]));
    let caps = low | high << 16;
    let data_len = usize::from(fixed[8]);
    let mariadb_caps = if caps & caps::LONG_PASSWORD == 0 {
        u32::from_le_bytes([fixed[15], fixed[16], fixed[17], fixed[18]])
    } else {
        0
    };
    let rest = &rest[fixed.len()..];
    let mut scramble = part1.to_vec();
    let mut plugin = String::from("mysql_native_password");
    if caps & caps::SECURE_CONNECTION != 0 {
        let n = data_len.saturating_sub(8).max(13);
        let part2 = rest.get(..n).ok_or_else(malformed)?;
        // Its last byte is a NUL terminator.
        scramble.extend_from_slice(&part2[..n - 1]);
        if caps & caps::PLUGIN_AUTH != 0 {
            let name = &rest[n..];
            let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
            plugin = String::from_utf8_lossy(&name[..end]).into_owned();
        }
    }
    Ok(Greeting {
        caps,
        mariadb_caps,
        scramble,
        plugin,
    })
}

/// The handshake response's fixed part (all of an SSLRequest):
/// capabilities, the largest packet, the character set, 19 bytes of
/// filler and MariaDB's extended capabilities.
fn fixed_part(out: &mut bytes::BytesMut, caps: u32, mariadb: u32) {
    out.put_u32_le(caps);
    out.put_u32_le(MAX_PACKET);
    out.put_u8(UTF8MB4);
    out.put_bytes(0, 19);
    out.put_u32_le(mariadb);
}

/// The handshake response and the plugin's exchange, until the server's
/// OK.
async fn authenticate(
    wire: &mut Wire,
    target: &Target,
    greeting: &Greeting,
    caps: u32,
    mariadb: u32,
    tls: bool,
) -> Result<(), WireError> {
    let d = target.details();
    let password = target.password().unwrap_or("");
    let mut plugin = greeting.plugin.clone();
    let mut scramble = greeting.scramble.clone();
    let response = auth_response(&plugin, password, &scramble, tls)?;
    wire.send(|out| {
        fixed_part(out, caps, mariadb);
        out.put_slice(d.user.as_bytes());
        out.put_u8(0);
        super::wire::put_lenenc(out, response.len() as u64);
        out.put_slice(&response);
        if let Some(db) = &d.db {
            out.put_slice(db.as_bytes());
            out.put_u8(0);
        }
        out.put_slice(plugin.as_bytes());
        out.put_u8(0);
    })
    .await?;
    loop {
        let len = wire.packet().await?;
        let p = wire.payload(len);
        match p.first().copied() {
            Some(0x00) => {
                wire.consume(len);
                return Ok(());
            }
            Some(0xff) => return Err(wire.error(len)),
            // Auth switch: another plugin, with its own data.
            Some(0xfe) => {
                let rest = &p[1..];
                let end = rest.iter().position(|&b| b == 0).ok_or_else(|| {
                    protocol("the server asked for an authentication method older than 4.1 (mysql_old_password), which poolbench does not do")
                })?;
                plugin = String::from_utf8_lossy(&rest[..end]).into_owned();
                let data = &rest[end + 1..];
                scramble = data.strip_suffix(&[0]).unwrap_or(data).to_vec();
                wire.consume(len);
                let response = auth_response(&plugin, password, &scramble, tls)?;
                wire.send(|out| out.put_slice(&response)).await?;
            }
            // More data: caching_sha2_password's verdict.
            Some(0x01) if plugin == "caching_sha2_password" => {
                let verdict = p.get(1).copied();
                wire.consume(len);
                match verdict {
                    // Fast path: the server had the password's hash cached.
                    Some(3) => {}
                    // Full path: the password itself, over TLS only.
                    Some(4) if tls => {
                        wire.send(|out| {
                            out.put_slice(password.as_bytes());
                            out.put_u8(0);
                        })
                        .await?
                    }
                    Some(4) => {
                        return Err(protocol(
                            "caching_sha2_password's full authentication without TLS needs the \
                             server's RSA public key, which poolbench does not do: use \
                             ssl-mode=REQUIRED (or any TLS mode)",
                        ))
                    }
                    _ => return Err(protocol("caching_sha2_password: an unexpected answer")),
                }
            }
            _ => {
                return Err(protocol(format!(
                    "an unexpected packet during authentication ({plugin})"
                )))
            }
        }
    }
}

/// What the client answers `plugin`'s challenge with.
fn auth_response(
    plugin: &str,
    password: &str,
    scramble: &[u8],
    tls: bool,
) -> Result<Vec<u8>, WireError> {
    let nonce = scramble.get(..20).unwrap_or(scramble);
    match plugin {
        "mysql_native_password" => Ok(scramble_native(password, nonce)),
        "caching_sha2_password" => Ok(scramble_sha2(password, nonce)),
        "mysql_clear_password" if tls => {
            let mut clear = password.as_bytes().to_vec();
            clear.push(0);
            Ok(clear)
        }
        "mysql_clear_password" => Err(protocol(
            "the server asked for the password in clear (mysql_clear_password) on a \
             connection without TLS: refused (use ssl-mode=REQUIRED)",
        )),
        other => Err(protocol(format!(
            "the server asked for the authentication plugin {other}, which poolbench's MySQL \
             client does not do (it does mysql_native_password and caching_sha2_password)"
        ))),
    }
}
