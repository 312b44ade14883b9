//! `poolbench server`: the embedded PostgreSQL in the foreground, with the
//! lines psql and pgbench need to reach it; or (`--engine mariadb`) the
//! embedded MariaDB and its mysql:// URL.

use std::time::Duration;

use anyhow::{Context, Result};

use crate::cli::{AuthArg, EngineArg, ServerArgs};
use crate::embedded::mariadb::{MariaDb, MariaDbOptions};
use crate::embedded::{EmbeddedOptions, EmbeddedServer, HOST, LOG_TAIL_LINES};
use crate::error::{self, ResultExt};
use crate::scenario::AuthMethod;
use crate::Outcome;

fn options(args: &ServerArgs) -> EmbeddedOptions {
    EmbeddedOptions {
        auth: match args.auth {
            AuthArg::ScramSha256 => AuthMethod::ScramSha256,
            AuthArg::Md5 => AuthMethod::Md5,
            AuthArg::Password => AuthMethod::Password,
            AuthArg::Trust => AuthMethod::Trust,
        },
        tls: args.tls_enabled(),
        port: args.port,
        max_connections: args.max_connections,
        ..EmbeddedOptions::default()
    }
}

/// `poolbench server`: start, print how to connect, run until Ctrl-C or
/// SIGTERM, stop. Stopping on a signal is this command's normal end (exit 0);
/// a stdout or stderr that cannot be written to stops it too (exit 141).
pub async fn run(args: &ServerArgs) -> Result<Outcome> {
    use tokio::signal::unix::{signal, SignalKind};

    let opts = options(args);
    // Listen before starting, so a signal during start-up is not lost.
    let mut sigterm = signal(SignalKind::terminate())
        .context("listening for SIGTERM")
        .environment()?;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let closed = tokio_util::sync::CancellationToken::new();
    crate::output::cancel_on_close(closed.clone());

    if args.engine == EngineArg::Mariadb {
        let opts = MariaDbOptions {
            tls: args.tls_enabled(),
            port: args.port,
            max_connections: args.max_connections,
        };
        let mut server = tokio::select! {
            server = MariaDb::start(&opts) => server?,
            _ = &mut ctrl_c => return Ok(Outcome::Success),
            _ = sigterm.recv() => return Ok(Outcome::Success),
        };
        crate::out!("{}", mariadb_lines(&server));
        crate::errln!(
            "poolbench: embedded MariaDB {} on {HOST}:{} ({}, {}) — Ctrl-C to stop",
            server.version(),
            server.port(),
            crate::embedded::mariadb::AUTH_PLUGIN,
            if opts.tls { "TLS" } else { "no TLS" }
        );
        let ssl_ca = match server.ca_file() {
            Some(ca) => {
                crate::errln!(
                    "poolbench: its certificate names {HOST} and localhost, signed by the CA in \
                     {}: ssl-mode=VERIFY_IDENTITY&ssl-ca={} checks both",
                    ca.display(),
                    ca.display()
                );
                format!(" --ssl-ca={} --ssl-verify-server-cert", ca.display())
            }
            None => " --skip-ssl".into(),
        };
        crate::errln!(
            "poolbench: with the MYSQL_* lines exported: mariadb --user={} --database={}{ssl_ca}",
            crate::embedded::mariadb::USER,
            crate::embedded::mariadb::DBNAME
        );
        let died = serve(&mut ctrl_c, &mut sigterm, &closed, || server.try_wait()).await;
        if let Some(status) = died {
            return Err(error::environment(format!(
                "the embedded MariaDB exited unexpectedly ({status}); its log is in {}",
                server.dir().display()
            )));
        }
        server.stop().await?;
        crate::errln!("poolbench: server stopped");
        return Ok(Outcome::Success);
    }

    let mut server = tokio::select! {
        server = EmbeddedServer::start(&opts) => server?,
        _ = &mut ctrl_c => return Ok(Outcome::Success),
        _ = sigterm.recv() => return Ok(Outcome::Success),
    };

    // One write: a reader that takes the lines and leaves (`| head -7`)
    // cannot make a later one fail.
    crate::out!("{}", connection_lines(&server));
    crate::errln!(
        "poolbench: embedded PostgreSQL {} on {HOST}:{} ({}, {}) — Ctrl-C to stop",
        server.version(),
        server.port(),
        opts.auth.as_str(),
        if opts.tls { "TLS" } else { "no TLS" }
    );
    if let Some(ca) = server.ca_file() {
        crate::errln!(
            "poolbench: its certificate names {HOST} and localhost, signed by the CA in {}: \
             PGSSLMODE=verify-full checks both",
            ca.display()
        );
    }

    let died = serve(&mut ctrl_c, &mut sigterm, &closed, || server.try_wait()).await;
    if let Some(status) = died {
        let tail = server.log_tail(LOG_TAIL_LINES);
        return Err(error::environment(format!(
            "the embedded server exited unexpectedly ({status}); the end of its log:\n{tail}"
        )));
    }
    server.stop().await?;
    crate::errln!("poolbench: server stopped");
    Ok(Outcome::Success)
}

/// Runs until Ctrl-C, SIGTERM or a closed output (None), or until the
/// server exits by itself (its status), checking it twice a second.
async fn serve<F: std::future::Future>(
    ctrl_c: &mut std::pin::Pin<&mut F>,
    sigterm: &mut tokio::signal::unix::Signal,
    closed: &tokio_util::sync::CancellationToken,
    mut exited: impl FnMut() -> Option<std::process::ExitStatus>,
) -> Option<std::process::ExitStatus> {
    let mut check = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = ctrl_c.as_mut() => return None,
            _ = sigterm.recv() => return None,
            () = closed.cancelled() => return None,
            _ = check.tick() => {
                if let Some(status) = exited() {
                    return Some(status);
                }
            }
        }
    }
}

/// The URL and the PG* lines, written in one write: a reader that stops
/// after the lines it knows (as a script reading seven lines does) must not
/// make a later line fail with a closed pipe.
fn connection_lines(server: &EmbeddedServer) -> String {
    let mut text = format!(
        "{}\nPGHOST={}\nPGPORT={}\nPGUSER={}\nPGPASSWORD={}\nPGDATABASE={}\nPGSSLMODE={}\n",
        server.dsn_with_password(),
        server.host(),
        server.port(),
        server.user(),
        server.password(),
        server.dbname(),
        server.ssl_mode()
    );
    if let Some(ca) = server.ca_file() {
        // With it, libpq and poolbench check the certificate's chain even
        // under require, and its name too under verify-full.
        text.push_str(&format!("PGSSLROOTCERT={}\n", ca.display()));
    }
    text
}

/// The URL and the variables the mysql and mariadb clients read
/// (MYSQL_HOST, MYSQL_TCP_PORT, MYSQL_PWD; the user and database go on
/// their command line), in one write as [`connection_lines`].
fn mariadb_lines(server: &MariaDb) -> String {
    format!(
        "{}\nMYSQL_HOST={HOST}\nMYSQL_TCP_PORT={}\nMYSQL_PWD={}\n",
        server.dsn_with_password(),
        server.port(),
        server.password()
    )
}
