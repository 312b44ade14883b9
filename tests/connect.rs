//! Reaching a database the way psql does, against real servers: libpq's
//! variables alone, `.pgpass` (and its refusal when others can read it),
//! Unix-domain sockets, the authentication method the server used,
//! certificate verification against a server with its own CA-signed
//! certificate (verify-full: right CA and name, wrong CA, wrong name — exit 3
//! with the reason), client certificates under pg_hba `cert`, the lines
//! `poolbench server` prints, and DSN options named in errors (exit 2).
//!
//! Every poolbench run here gets a clean environment: no PG* variable, no
//! DATABASE_URL, and a HOME of its own (so the machine's ~/.pgpass and
//! ~/.postgresql play no part).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use poolbench::embedded::{EmbeddedOptions, EmbeddedServer, ServerCertificate};
use poolbench::scenario::AuthMethod;
use serde_json::Value;

mod common;
use common::{command, read_report, start_server, stderr, write_scenario};

const LIBPQ_VARIABLES: &[&str] = &[
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGDATABASE",
    "PGUSER",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGSYSCONFDIR",
    "PGSSLMODE",
    "PGSSLROOTCERT",
    "PGSSLCERT",
    "PGSSLKEY",
    "PGCONNECT_TIMEOUT",
    "PGAPPNAME",
    "PGOPTIONS",
    "DATABASE_URL",
];

const BODY: &str = r#"
[run]
duration = "500ms"
warmup = "0s"
concurrency = 2

[[strategy]]
name = "fresh"
kind = "fresh"

[[strategy]]
name = "pool"
kind = "pool"
max_size = 2

[[query]]
name = "one"
sql = "SELECT 1"
"#;

/// Runs the binary with only `env` of libpq's variables and `home` as HOME.
async fn poolbench(args: &[&str], env: &[(&str, &str)], home: &Path) -> Output {
    let mut cmd = command(args);
    cmd.env("HOME", home);
    for var in LIBPQ_VARIABLES {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    cmd.output().await.expect("run poolbench")
}

fn assert_exit(o: &Output, code: i32, what: &str) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "{what}: stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        stderr(o)
    );
}

/// A run of [`BODY`] into `<dir>/<name>`; returns the output and, when it
/// succeeded, the report.
async fn run(
    dir: &Path,
    name: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (Output, Option<Value>) {
    let scenario = write_scenario(dir, "plain", BODY);
    let out = dir.join(name);
    let mut args = vec![
        "run",
        scenario.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--threads",
        "1",
    ];
    args.extend_from_slice(extra);
    let o = poolbench(&args, env, dir).await;
    let report = (o.status.code() == Some(0)).then(|| read_report(&out));
    (o, report)
}

fn private(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn pg_variables_alone_reach_the_server_and_embedded_forces_its_own() {
    let server = start_server(20).await;
    let tmp = tempfile::tempdir().unwrap();
    let port = server.port().to_string();
    let env = [
        ("PGHOST", "127.0.0.1"),
        ("PGPORT", port.as_str()),
        ("PGUSER", server.user()),
        ("PGPASSWORD", server.password()),
        ("PGDATABASE", server.dbname()),
        ("PGSSLMODE", "require"),
    ];
    let (o, report) = run(tmp.path(), "env", &[], &env).await;
    assert_exit(&o, 0, "PG* variables");
    let report = report.unwrap();
    let s = &report["server"];
    assert_eq!(s["embedded"], false, "{s}");
    assert_eq!(s["source"], "PGHOST,PGPORT,PGDATABASE,PGUSER");
    assert_eq!(s["auth_method"], "scram-sha-256", "observed, not assumed");
    assert_eq!(s["ssl"], true);
    assert_eq!(
        s["dsn"],
        format!("postgres://poolbench:****@127.0.0.1:{port}/postgres?sslmode=require")
    );
    assert!(
        !stderr(&o).contains("starting an embedded"),
        "{}",
        stderr(&o)
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("(from PGHOST,PGPORT,PGDATABASE,PGUSER)"),
        "{stdout}"
    );

    let (o, report) = run(tmp.path(), "forced", &["--embedded"], &env).await;
    assert_exit(&o, 0, "--embedded");
    let s = &report.unwrap()["server"];
    assert_eq!(s["embedded"], true);
    assert_eq!(s["source"], "--embedded");
    assert!(!s["dsn"].as_str().unwrap().contains(&port));
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn pgpass_supplies_the_password_and_a_readable_one_is_refused() {
    let server = start_server(20).await;
    let tmp = tempfile::tempdir().unwrap();
    let port = server.port();
    let dsn = format!("postgres://poolbench@127.0.0.1:{port}/postgres?sslmode=require");
    let line = format!(
        "127.0.0.1:{port}:postgres:poolbench:{}\n",
        server.password()
    );

    // ~/.pgpass, libpq's default file.
    private(
        &tmp.path().join(".pgpass"),
        &format!("# mine\nother:*:*:*:nope\n{line}"),
    );
    let (o, report) = run(tmp.path(), "home", &["--dsn", &dsn], &[]).await;
    assert_exit(&o, 0, "~/.pgpass");
    assert_eq!(report.unwrap()["server"]["auth_method"], "scram-sha-256");
    std::fs::remove_file(tmp.path().join(".pgpass")).unwrap();

    // PGPASSFILE, readable by others: ignored with libpq's warning, and
    // then there is no password (exit 3).
    let file = tmp.path().join("pgpass");
    private(&file, &line);
    let env = [("PGPASSFILE", file.to_str().unwrap())];
    let (o, _) = run(tmp.path(), "passfile", &["--dsn", &dsn], &env).await;
    assert_exit(&o, 0, "PGPASSFILE");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (o, _) = run(tmp.path(), "refused", &["--dsn", &dsn], &env).await;
    assert_exit(&o, 3, "world-readable PGPASSFILE");
    let err = stderr(&o);
    let warning = format!(
        "WARNING: password file \"{}\" has group or world access; permissions should be u=rw (0600) or less",
        file.display()
    );
    assert!(err.contains(&warning), "{err}");
    assert!(err.contains("password missing"), "{err}");
    assert!(!err.contains(server.password()), "{err}");

    // A wrong password from the file: the error says where it came from.
    private(
        &file,
        &format!("127.0.0.1:{port}:postgres:poolbench:Wr0ng-From-File\n"),
    );
    let (o, _) = run(tmp.path(), "wrong", &["--dsn", &dsn], &env).await;
    assert_exit(&o, 3, "wrong password in the file");
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "password retrieved from file \"{}\"",
            file.display()
        )),
        "{err}"
    );
    assert!(!err.contains("Wr0ng-From-File"), "{err}");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_unix_socket_works_and_displays_as_a_valid_dsn() {
    let server = start_server(20).await;
    let tmp = tempfile::tempdir().unwrap();
    let dsn = format!(
        "host={} port={} user=poolbench dbname=postgres",
        server.dir().display(),
        server.port()
    );
    let (o, report) = run(tmp.path(), "socket", &["--dsn", &dsn], &[]).await;
    assert_exit(&o, 0, "unix socket");
    let s = report.unwrap()["server"].clone();
    let shown = s["dsn"].as_str().unwrap().to_string();
    assert_eq!(
        shown,
        format!(
            "postgres://poolbench@/postgres?host={}&port={}&sslmode=prefer",
            server.dir().display(),
            server.port()
        )
    );
    assert_eq!(s["ssl"], false, "no TLS over a socket");
    // The embedded server trusts its socket: nothing was asked.
    assert!(
        s["auth_method"]
            .as_str()
            .unwrap()
            .starts_with("peer or trust"),
        "{s}"
    );
    // What the report shows is a DSN that reaches the same server.
    let (o, _) = run(tmp.path(), "again", &["--dsn", &shown], &[]).await;
    assert_exit(&o, 0, "the redacted socket DSN");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn md5_is_observed_and_an_unknown_ca_fails_verification() {
    let server = match EmbeddedServer::start(&EmbeddedOptions {
        auth: AuthMethod::Md5,
        tls: true,
        port: None,
        max_connections: 20,
        ..EmbeddedOptions::default()
    })
    .await
    {
        Ok(s) => s,
        Err(e) => panic!("embedded server did not start: {e:#}"),
    };
    let tmp = tempfile::tempdir().unwrap();
    let dsn = server.dsn_with_password();
    let (o, report) = run(tmp.path(), "md5", &["--dsn", &dsn], &[]).await;
    assert_exit(&o, 0, "md5");
    assert_eq!(report.unwrap()["server"]["auth_method"], "md5");

    // The embedded server's certificate is signed by its own throwaway CA:
    // no system trust store vouches for it.
    let verify = dsn.replace("sslmode=require", "sslmode=verify-full&sslrootcert=system");
    let (o, _) = run(tmp.path(), "system", &["--dsn", &verify], &[]).await;
    assert_exit(&o, 3, "verify-full against the system roots");
    let err = stderr(&o);
    assert!(
        err.contains("certificate failed verification: unable to get local issuer certificate"),
        "{err}"
    );
    assert!(!err.contains(server.password()), "{err}");
    // verify-ca without any root certificate: libpq's refusal.
    let verify_ca = dsn.replace("sslmode=require", "sslmode=verify-ca");
    let (o, _) = run(tmp.path(), "noroot", &["--dsn", &verify_ca], &[]).await;
    assert_exit(&o, 3, "verify-ca without root.crt");
    assert!(
        stderr(&o).contains("/.postgresql/root.crt\" does not exist"),
        "{}",
        stderr(&o)
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_options_are_named_with_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    for (extra, env, expected) in [
        (
            vec!["--dsn", "host=h password=hunter2 sslcrl=/c.pem"],
            vec![],
            "invalid DSN in --dsn: option \"sslcrl\" is not supported",
        ),
        (
            vec!["--dsn", "postgres://u:hunter2@h/d?sslmode=sometimes"],
            vec![],
            "invalid sslmode value \"sometimes\"",
        ),
        (
            vec!["--dsn", "hots=h password=hunter2"],
            vec![],
            "invalid connection option \"hots\"",
        ),
        (
            vec![],
            vec![
                ("PGHOST", "h"),
                ("PGSSLMODE", "verify"),
                ("PGPASSWORD", "hunter2"),
            ],
            "invalid environment variable PGSSLMODE",
        ),
        (
            vec![],
            vec![("DATABASE_URL", "postgres://u:hunter2@h:port/d")],
            "invalid DSN in DATABASE_URL: invalid port number: \"port\"",
        ),
        (
            vec![],
            vec![("PGSERVICE", "nowhere")],
            "definition of service \"nowhere\" not found",
        ),
    ] {
        let (o, _) = run(tmp.path(), "bad", &extra, &env).await;
        assert_exit(&o, 2, expected);
        let err = stderr(&o);
        assert!(err.contains(expected), "{expected}: {err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}

/// A test certificate authority, and certificates it signs (rcgen, EC
/// P-256, valid for two days).
struct Ca {
    params: rcgen::CertificateParams,
    key: rcgen::KeyPair,
    cert: rcgen::Certificate,
}

/// A version 3 certificate named `cn` for the DNS names `dns`, from now
/// for two days.
fn params(cn: &str, dns: &[&str]) -> rcgen::CertificateParams {
    let names: Vec<String> = dns.iter().map(|d| d.to_string()).collect();
    let mut params = rcgen::CertificateParams::new(names).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now;
    params.not_after = now + time::Duration::days(2);
    params
}

impl Ca {
    fn new(cn: &str) -> Ca {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = params(cn, &[]);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let cert = params.self_signed(&key).unwrap();
        Ca { params, key, cert }
    }

    fn pem(&self) -> Vec<u8> {
        self.cert.pem().into_bytes()
    }

    /// A certificate for `cn` with these DNS names, and its key, in PEM.
    fn sign(&self, cn: &str, dns: &[&str]) -> (Vec<u8>, Vec<u8>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
        let cert = params(cn, dns).signed_by(&key, &issuer).unwrap();
        (cert.pem().into_bytes(), key.serialize_pem().into_bytes())
    }
}

/// A server started with its own CA-signed certificate for
/// `db.poolbench.test`, reached by that name with hostaddr 127.0.0.1.
async fn ca_signed_server(ca: &Ca, client_certificates: bool) -> EmbeddedServer {
    let (cert_pem, key_pem) = ca.sign("db.poolbench.test", &["db.poolbench.test"]);
    let opts = EmbeddedOptions {
        max_connections: 20,
        certificate: Some(ServerCertificate {
            cert_pem,
            key_pem,
            ca_pem: ca.pem(),
        }),
        client_certificates,
        ..EmbeddedOptions::default()
    };
    match EmbeddedServer::start(&opts).await {
        Ok(s) => s,
        Err(e) => panic!("embedded server did not start: {e:#}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_full_checks_the_ca_and_the_host_name() {
    let ca = Ca::new("poolbench test CA");
    let server = ca_signed_server(&ca, false).await;
    let tmp = tempfile::tempdir().unwrap();
    let ca_file = tmp.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let other_ca = tmp.path().join("other-ca.pem");
    std::fs::write(&other_ca, Ca::new("someone else's CA").pem()).unwrap();
    let port = server.port().to_string();
    let dsn = |host: &str, roots: &Path| {
        format!(
            "host={host} hostaddr=127.0.0.1 port={port} user=poolbench password={} \
             dbname=postgres sslmode=verify-full sslrootcert={}",
            server.password(),
            roots.display()
        )
    };

    let (o, report) = run(
        tmp.path(),
        "right",
        &["--dsn", &dsn("db.poolbench.test", &ca_file)],
        &[],
    )
    .await;
    assert_exit(&o, 0, "verify-full with the right CA and host name");
    let s = report.unwrap()["server"].clone();
    assert_eq!(s["ssl"], true);
    assert_eq!(
        s["dsn"],
        format!(
            "postgres://poolbench:****@db.poolbench.test:{port}/postgres?hostaddr=127.0.0.1\
             &sslmode=verify-full&sslrootcert={}",
            ca_file.display()
        )
    );

    let (o, _) = run(
        tmp.path(),
        "wrong-ca",
        &["--dsn", &dsn("db.poolbench.test", &other_ca)],
        &[],
    )
    .await;
    assert_exit(&o, 3, "verify-full with another CA");
    let err = stderr(&o);
    assert!(
        err.contains("failed verification: unable to get local issuer certificate"),
        "{err}"
    );
    assert!(!err.contains(server.password()), "{err}");

    let (o, _) = run(
        tmp.path(),
        "wrong-host",
        &["--dsn", &dsn("other.poolbench.test", &ca_file)],
        &[],
    )
    .await;
    assert_exit(&o, 3, "verify-full with a name the certificate lacks");
    let err = stderr(&o);
    assert!(
        err.contains("failed verification: hostname mismatch"),
        "{err}"
    );
    assert!(
        err.contains("name the host \"other.poolbench.test\""),
        "{err}"
    );

    // verify-ca checks the chain only: the other name passes.
    let verify_ca = dsn("other.poolbench.test", &ca_file).replace("verify-full", "verify-ca");
    let (o, _) = run(tmp.path(), "verify-ca", &["--dsn", &verify_ca], &[]).await;
    assert_exit(&o, 0, "verify-ca with a name the certificate lacks");

    // libpq's variables alone, verify-full included.
    let ca_s = ca_file.display().to_string();
    let env = [
        ("PGHOST", "db.poolbench.test"),
        ("PGHOSTADDR", "127.0.0.1"),
        ("PGPORT", port.as_str()),
        ("PGUSER", "poolbench"),
        ("PGPASSWORD", server.password()),
        ("PGDATABASE", "postgres"),
        ("PGSSLMODE", "verify-full"),
        ("PGSSLROOTCERT", ca_s.as_str()),
    ];
    let (o, report) = run(tmp.path(), "env", &[], &env).await;
    assert_exit(&o, 0, "PG* variables with verify-full");
    let s = report.unwrap()["server"].clone();
    assert_eq!(s["source"], "PGHOST,PGHOSTADDR,PGPORT,PGDATABASE,PGUSER");
    assert_eq!(s["embedded"], false);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_certificate_is_required_and_accepted_under_hba_cert() {
    let ca = Ca::new("poolbench test CA");
    let server = ca_signed_server(&ca, true).await;
    let tmp = tempfile::tempdir().unwrap();
    let ca_file = tmp.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    // pg_hba's cert method: the certificate's CN is the user.
    let (cert, key) = ca.sign("poolbench", &[]);
    let cert_file = tmp.path().join("client.crt");
    std::fs::write(&cert_file, cert).unwrap();
    let key_file = tmp.path().join("client.key");
    private(&key_file, std::str::from_utf8(&key).unwrap());
    let base = format!(
        "host=db.poolbench.test hostaddr=127.0.0.1 port={} user=poolbench dbname=postgres \
         sslmode=verify-full sslrootcert={}",
        server.port(),
        ca_file.display()
    );
    let with_cert = format!(
        "{base} sslcert={} sslkey={}",
        cert_file.display(),
        key_file.display()
    );

    let (o, report) = run(tmp.path(), "cert", &["--dsn", &with_cert], &[]).await;
    assert_exit(&o, 0, "hba cert with a client certificate");
    let s = report.unwrap()["server"].clone();
    let auth = s["auth_method"].as_str().unwrap();
    assert!(auth.starts_with("cert"), "{auth}");
    assert!(
        s["dsn"]
            .as_str()
            .unwrap()
            .contains(&format!("sslcert={}", cert_file.display())),
        "{s}"
    );

    let (o, _) = run(tmp.path(), "no-cert", &["--dsn", &base], &[]).await;
    assert_exit(&o, 3, "hba cert without a client certificate");
    assert!(stderr(&o).contains("certificate"), "{}", stderr(&o));

    // A key others can read is refused as libpq refuses it.
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (o, _) = run(tmp.path(), "open-key", &["--dsn", &with_cert], &[]).await;
    assert_exit(&o, 3, "a group/world-readable client key");
    assert!(
        stderr(&o).contains("has group or world access"),
        "{}",
        stderr(&o)
    );
    server.stop().await.unwrap();
}

/// The issue's "done when": export what `poolbench server` prints, and
/// `poolbench run scenarios/quickstart.toml` uses that server, verify-full
/// included (no --allow-setup: it is poolbench's own throwaway).
#[tokio::test(flavor = "multi_thread")]
async fn the_lines_poolbench_server_prints_reach_it_with_verify_full() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut server, mut lines) = common::spawn_poolbench_server(&["--max-connections", "20"]);
    let mut env: Vec<(String, String)> = Vec::new();
    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(std::time::Duration::from_secs(60), lines.next_line()).await
    {
        if let Some((k, v)) = line.split_once('=').filter(|_| line.starts_with("PG")) {
            env.push((k.to_string(), v.to_string()));
        }
        if line.starts_with("PGSSLROOTCERT=") {
            break;
        }
    }
    assert_eq!(env.len(), 7, "{env:?}");
    env.retain(|(k, _)| k != "PGSSLMODE");
    env.push(("PGSSLMODE".into(), "verify-full".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let quickstart = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/quickstart.toml");
    let out = tmp.path().join("quickstart");
    let o = poolbench(
        &[
            "run",
            quickstart.to_str().unwrap(),
            "--duration",
            "300ms",
            "--warmup",
            "0s",
            "--concurrency",
            "2",
            "--out",
            out.to_str().unwrap(),
        ],
        &env,
        tmp.path(),
    )
    .await;
    assert_exit(&o, 0, "quickstart against poolbench server");
    let s = read_report(&out)["server"].clone();
    assert_eq!(s["embedded"], false, "{s}");
    assert_eq!(s["source"], "PGHOST,PGPORT,PGDATABASE,PGUSER");
    assert!(
        s["dsn"]
            .as_str()
            .unwrap()
            .contains("sslmode=verify-full&sslrootcert="),
        "{s}"
    );
    // SIGTERM: the server stops and removes its directory.
    let pid = server.id().unwrap() as i32;
    // SAFETY: signalling the child this test started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let status = tokio::time::timeout(std::time::Duration::from_secs(30), server.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
}
