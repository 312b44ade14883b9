//! The throwaway cluster on disk: `initdb` with a generated password, the
//! `pg_hba.conf` poolbench writes over initdb's, files only the server user
//! may read (password file, TLS key), and the free port the server takes.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
use base64::Engine;

use super::options::{RunAs, HOST, USER};
use super::process;
use super::ready::{last_lines, LOG_TAIL_LINES};
use crate::cleanup;
use crate::error::{self, ResultExt};
use crate::scenario::AuthMethod;

/// 24 URL-safe characters (18 random bytes): no quoting needed in a URL, a
/// shell or an SQL literal.
pub fn generate_password() -> Result<String> {
    let mut bytes = [0u8; 18];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("generating a password")
        .environment()?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// A SCRAM-SHA-256 verifier of `password` with `iterations` (RFC 5802,
/// RFC 7677; PostgreSQL's `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`),
/// so that any server version, PostgreSQL 15 included (whose
/// `scram_iterations` setting came in 16), asks its clients for that count.
/// The password is initdb's generated one: no SASLprep needed.
pub fn scram_verifier(password: &str, iterations: u32, salt: &[u8; 16]) -> String {
    use hmac::{KeyInit, Mac};
    use sha2::Digest;
    type HmacSha256 = hmac::Hmac<sha2::Sha256>;
    let mac = |key: &[u8], data: &[&[u8]]| -> [u8; 32] {
        // Cannot fail: HMAC (RFC 2104) takes a key of any length, hashing a
        // long one; `new_from_slice` errs only for fixed-key MACs.
        let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
        for d in data {
            m.update(d);
        }
        m.finalize().into_bytes().into()
    };
    // Hi(password, salt, i): PBKDF2 with HMAC-SHA-256, one block.
    let mut u = mac(password.as_bytes(), &[salt, &1u32.to_be_bytes()]);
    let mut salted = u;
    for _ in 1..iterations {
        u = mac(password.as_bytes(), &[&u]);
        salted.iter_mut().zip(&u).for_each(|(s, x)| *s ^= x);
    }
    let client_key = mac(&salted, &[b"Client Key"]);
    let stored_key = sha2::Sha256::digest(client_key);
    let server_key = mac(&salted, &[b"Server Key"]);
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        b64(salt),
        b64(&stored_key),
        b64(&server_key)
    )
}

/// Runs initdb to its end. A forced exit (a second Ctrl-C) meanwhile stops
/// it first, so that it does not write on into the directory being removed.
async fn run_initdb(cmd: std::process::Command) -> std::io::Result<std::process::Output> {
    let child = tokio::process::Command::from(cmd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let _forced = child.id().map(|pid| {
        cleanup::on_forced_exit(move || {
            cleanup::stop_process(
                pid,
                &[
                    (libc::SIGTERM, Duration::from_secs(2)),
                    (libc::SIGKILL, Duration::from_secs(2)),
                ],
            )
        })
    });
    child.wait_with_output().await
}

pub async fn init_cluster(
    bin_dir: &Path,
    dir: &Path,
    run_as: Option<&RunAs>,
    auth: AuthMethod,
    password: &str,
) -> Result<()> {
    let pwfile = dir.join("pwfile");
    write_private(&pwfile, password.as_bytes(), run_as)?;
    let initdb = bin_dir.join("initdb");
    let mut cmd = std::process::Command::new(&initdb);
    cmd.arg("-D")
        .arg(dir.join("data"))
        .args(["-U", USER])
        .arg(format!("--pwfile={}", pwfile.display()))
        .args([
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            "--auth-local=trust",
        ])
        .arg(format!("--auth-host={}", auth.as_str()))
        .current_dir(dir)
        .env_remove("PGDATA")
        .stdin(Stdio::null());
    process::configure(&mut cmd, run_as);
    let output = run_initdb(cmd).await;
    let removed = std::fs::remove_file(&pwfile);
    let output = output
        .with_context(|| format!("running {}", initdb.display()))
        .environment()?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let hint = match run_as {
            Some(user) => format!(
                "\n(poolbench runs as root, so initdb ran as the user `{}`, \
                 who needs access to {} and {})",
                user.name,
                bin_dir.display(),
                dir.display()
            ),
            None => String::new(),
        };
        return Err(error::environment(format!(
            "{} failed ({}): {}{hint}",
            initdb.display(),
            output.status,
            last_lines(&format!("{stdout}{stderr}"), LOG_TAIL_LINES)
        )));
    }
    removed
        .with_context(|| format!("removing {}", pwfile.display()))
        .environment()
}

/// pg_hba.conf, replacing initdb's: trust on the unix socket (in a directory
/// only the server user can enter), the chosen method on TCP, or with
/// `client_certificates` a client certificate over TLS (`hostssl … cert`).
pub fn write_hba(
    data: &Path,
    auth: AuthMethod,
    client_certificates: bool,
    run_as: Option<&RunAs>,
) -> Result<()> {
    let (kind, method) = if client_certificates {
        ("hostssl", "cert")
    } else {
        ("host   ", auth.as_str())
    };
    let text = format!(
        "# Written by poolbench for a throwaway server.\n\
         # TYPE  DATABASE  USER  ADDRESS       METHOD\n\
         local   all       all                 trust\n\
         {kind} all       all   127.0.0.1/32  {method}\n\
         {kind} all       all   ::1/128       {method}\n"
    );
    write_private(&data.join("pg_hba.conf"), text.as_bytes(), run_as)
}

/// Writes a file readable by its owner only (PostgreSQL insists on that for
/// the TLS key), owned by the server user.
pub fn write_private(path: &Path, contents: &[u8], run_as: Option<&RunAs>) -> Result<()> {
    let write = || -> std::io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.write_all(contents)
    };
    write()
        .with_context(|| format!("writing {}", path.display()))
        .environment()?;
    process::chown(path, run_as)
}

/// A port that was free a moment ago: bind port 0, read it, let it go.
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind((HOST, 0))
        .context("finding a free port on 127.0.0.1")
        .environment()?;
    Ok(listener
        .local_addr()
        .context("finding a free port on 127.0.0.1")
        .environment()?
        .port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scram_verifiers_match_an_independent_pbkdf2() {
        // RFC 7677's salt and password; the keys computed apart with
        // Python's hashlib.pbkdf2_hmac and hmac.
        let salt = base64::engine::general_purpose::STANDARD
            .decode("W22ZaJ0SNY7soEsUEjb6gQ==")
            .unwrap();
        let salt: [u8; 16] = salt.try_into().unwrap();
        assert_eq!(
            scram_verifier("pencil", 4096, &salt),
            "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$\
             WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
        );
        assert_eq!(
            scram_verifier("pencil", 1024, &salt),
            "SCRAM-SHA-256$1024:W22ZaJ0SNY7soEsUEjb6gQ==$\
             llAXcs6+hDTOv51UhFCp4RyXbOMpDH+gvtdk3Z3th94=:apfdudzlpWNq9OjUOgrqnMyWRqXs6T4HJT7Xe47rWCw="
        );
    }

    #[test]
    fn password_is_24_url_safe_chars() {
        let a = generate_password().unwrap();
        let b = generate_password().unwrap();
        assert_eq!(a.len(), 24);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_ne!(a, b);
    }
}
