//! Reaching a database the way psql does, against real servers: libpq's
//! variables alone, `.pgpass` (and its refusal when others can read it),
//! Unix-domain sockets, the authentication method the server used,
//! certificate verification (exit 3 with the reason), and DSN options named
//! in errors (exit 2).
//!
//! Every poolbench run here gets a clean environment: no PG* variable, no
//! DATABASE_URL, and a HOME of its own (so the machine's ~/.pgpass and
//! ~/.postgresql play no part).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use poolbench::scenario::AuthMethod;
use poolbench::embedded::{EmbeddedOptions, EmbeddedServer};
use serde_json::Value;

mod common;
use common::{read_report, start_server, write_scenario};

const BIN: &str = env!("CARGO_BIN_EXE_poolbench");

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

/// Runs the binary, off the runtime's threads, with only `env` of libpq's
/// variables and `home` as HOME.
async fn poolbench(args: &[&str], env: &[(&str, &str)], home: &Path) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let home = home.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new(BIN);
        cmd.args(&args).env("HOME", &home);
        for var in LIBPQ_VARIABLES {
            cmd.env_remove(var);
        }
        cmd.envs(env);
        cmd.output().expect("run poolbench")
    })
    .await
    .expect("join")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
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
async fn md5_is_observed_and_a_self_signed_certificate_fails_verification() {
    let server = match EmbeddedServer::start(&EmbeddedOptions {
        auth: AuthMethod::Md5,
        tls: true,
        port: None,
        max_connections: 20,
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

    // The embedded server's certificate is self-signed: no trust store
    // vouches for it.
    let verify = dsn.replace("sslmode=require", "sslmode=verify-full&sslrootcert=system");
    let (o, _) = run(tmp.path(), "system", &["--dsn", &verify], &[]).await;
    assert_exit(&o, 3, "verify-full against the system roots");
    let err = stderr(&o);
    assert!(
        err.contains("certificate failed verification: self-signed certificate"),
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
