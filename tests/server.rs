//! The embedded server against the machine's real PostgreSQL binaries: each
//! auth mode and TLS setting as a client sees it, cleanup after `stop()` and
//! after a plain drop, and `poolbench server` as a user runs it.
//!
//! Every test starts its own server on a free port, so they run in parallel.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use poolbench::backend::postgres::Target;
use poolbench::embedded::{EmbeddedOptions, EmbeddedServer};
use poolbench::error::{kind_of, Kind};
use poolbench::scenario::AuthMethod;
use tokio::io::AsyncBufReadExt;
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config};

const BIN: &str = env!("CARGO_BIN_EXE_poolbench");

fn options(auth: AuthMethod, tls: bool, max_connections: u32) -> EmbeddedOptions {
    EmbeddedOptions {
        auth,
        tls,
        port: None,
        max_connections,
        ..EmbeddedOptions::default()
    }
}

async fn start(opts: &EmbeddedOptions) -> EmbeddedServer {
    let started = Instant::now();
    let server = match EmbeddedServer::start(opts).await {
        Ok(server) => server,
        Err(e) => panic!("embedded server did not start: {e:#}"),
    };
    let t = server.start_timings();
    eprintln!(
        "started {:?} in {} ms (initdb {} ms, postgres until ready {} ms)",
        opts,
        started.elapsed().as_millis(),
        t.initdb.as_millis(),
        (t.total - t.initdb).as_millis()
    );
    server
}

async fn connect(server: &EmbeddedServer) -> Client {
    match server.target().connect().await {
        Ok(client) => client,
        Err(e) => panic!("connect: {e}"),
    }
}

async fn show(client: &Client, setting: &str) -> String {
    client
        .query_one(&format!("SHOW {setting}"), &[])
        .await
        .unwrap()
        .get(0)
}

async fn uses_ssl(client: &Client) -> bool {
    client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// The method pg_hba.conf gives TCP connections from 127.0.0.1.
async fn hba_method(client: &Client) -> String {
    client
        .query_one(
            "SELECT auth_method FROM pg_hba_file_rules \
             WHERE type = 'host' AND address = '127.0.0.1'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

async fn stored_password(client: &Client) -> String {
    client
        .query_one(
            "SELECT rolpassword FROM pg_authid WHERE rolname = current_user",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

async fn assert_wrong_password_rejected(server: &EmbeddedServer) {
    let mut config = server.target().config().clone();
    config.password("not-the-password");
    let target = Target::from_config(config).unwrap();
    let err = target
        .connect()
        .await
        .expect_err("a wrong password was accepted");
    assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err}");
}

/// Command lines of live `postgres` processes that mention `needle`.
fn postgres_processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        let program = cmdline.split(' ').next().unwrap_or("");
        if program.ends_with("postgres") && cmdline.contains(needle) {
            found.push(cmdline);
        }
    }
    found
}

fn assert_gone(pid: u32, dir: &Path) {
    assert_ne!(pid, 0);
    // SAFETY: probing a pid with signal 0 sends nothing.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    let errno = std::io::Error::last_os_error().raw_os_error();
    assert!(
        rc == -1 && errno == Some(libc::ESRCH),
        "postmaster {pid} still exists (a zombie unless reaped)"
    );
    let left = postgres_processes_mentioning(&dir.display().to_string());
    assert!(left.is_empty(), "postgres processes left: {left:?}");
    assert!(!dir.exists(), "{} still exists", dir.display());
}

/// `Uid:` and `Groups:` of /proc/<pid>/status.
fn uid_and_groups(pid: u32) -> (String, String) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or("")
            .trim()
            .to_string()
    };
    (field("Uid:"), field("Groups:"))
}

#[tokio::test(flavor = "multi_thread")]
async fn default_is_scram_over_tls_and_stop_removes_everything() {
    let server = start(&options(AuthMethod::ScramSha256, true, 100)).await;
    let client = connect(&server).await;

    assert!(uses_ssl(&client).await, "not TLS");
    assert_eq!(show(&client, "password_encryption").await, "scram-sha-256");
    assert_eq!(hba_method(&client).await, "scram-sha-256");
    assert!(stored_password(&client).await.starts_with("SCRAM-SHA-256$"));
    let version = show(&client, "server_version").await;
    assert!(
        version.starts_with(server.version()),
        "{version} vs {}",
        server.version()
    );
    assert_eq!(server.target().ssl_mode(), "require");
    assert_wrong_password_rejected(&server).await;

    // PostgreSQL refuses root: as root it runs as a system user, with root's
    // supplementary groups dropped.
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let (uid, groups) = uid_and_groups(server.pid());
        assert!(!uid.starts_with("0\t") && !uid.starts_with("0 "), "{uid}");
        assert_eq!(groups, "", "supplementary groups kept");
    }

    // The password appears nowhere but where it must.
    let log = std::fs::read_to_string(server.dir().join("postgres.log")).unwrap();
    assert!(!log.contains(server.password()));
    assert!(!format!("{server:?}").contains(server.password()));
    assert!(!server.target().redacted().contains(server.password()));
    assert!(server
        .dsn_with_password()
        .contains(&format!(":{}@", server.password())));

    let (pid, dir) = (server.pid(), server.dir().to_path_buf());
    assert!(dir.join("data").is_dir());
    assert_eq!(
        postgres_processes_mentioning(&dir.display().to_string()).len(),
        1
    );
    drop(client);
    server.stop().await.unwrap();
    assert_gone(pid, &dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn drop_without_stop_removes_everything() {
    let server = start(&options(AuthMethod::ScramSha256, true, 10)).await;
    let client = connect(&server).await;
    client.simple_query("SELECT 1").await.unwrap();
    let (pid, dir) = (server.pid(), server.dir().to_path_buf());
    drop(server);
    assert_gone(pid, &dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn drop_on_panic_removes_everything() {
    let server = start(&options(AuthMethod::Trust, false, 10)).await;
    let (pid, dir) = (server.pid(), server.dir().to_path_buf());
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _server = server;
        panic!("a bug while the server runs");
    }));
    assert!(unwound.is_err());
    assert_gone(pid, &dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn trust_needs_no_password() {
    let server = start(&options(AuthMethod::Trust, true, 10)).await;
    let mut config = Config::new();
    config
        .host(server.host())
        .port(server.port())
        .user(server.user())
        .dbname(server.dbname())
        .ssl_mode(SslMode::Require);
    let target = Target::from_config(config).unwrap();
    let client = target.connect().await.unwrap();
    assert_eq!(hba_method(&client).await, "trust");
    assert!(uses_ssl(&client).await);
    drop(client);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn md5_really_is_md5() {
    let server = start(&options(AuthMethod::Md5, true, 10)).await;
    let client = connect(&server).await;
    assert_eq!(hba_method(&client).await, "md5");
    assert_eq!(show(&client, "password_encryption").await, "md5");
    let stored = stored_password(&client).await;
    assert!(stored.starts_with("md5"), "stored as {}", &stored[..6]);
    assert_wrong_password_rejected(&server).await;
    drop(client);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn no_tls_is_plain_tcp() {
    let server = start(&options(AuthMethod::ScramSha256, false, 10)).await;
    assert_eq!(server.target().ssl_mode(), "disable");
    assert!(server.dsn_with_password().ends_with("sslmode=disable"));
    let client = connect(&server).await;
    assert!(!uses_ssl(&client).await);
    assert_eq!(show(&client, "ssl").await, "off");
    drop(client);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn max_connections_is_honoured_even_at_one() {
    let server = start(&options(AuthMethod::ScramSha256, true, 1)).await;
    // The start-up check's backend may still be exiting, holding the only
    // slot for a moment: retry "too many clients".
    let deadline = Instant::now() + Duration::from_secs(10);
    let client = loop {
        match server.target().connect().await {
            Ok(client) => break client,
            Err(e)
                if e.code() == Some(&SqlState::TOO_MANY_CONNECTIONS)
                    && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(show(&client, "max_connections").await, "1");
    assert_eq!(show(&client, "superuser_reserved_connections").await, "0");
    // The one slot is taken: a second connection is refused.
    let err = server.target().connect().await.err().unwrap();
    assert_eq!(err.code(), Some(&SqlState::TOO_MANY_CONNECTIONS));
    drop(client);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn max_connections_is_honoured() {
    let server = start(&options(AuthMethod::ScramSha256, true, 7)).await;
    let client = connect(&server).await;
    assert_eq!(show(&client, "max_connections").await, "7");
    assert_eq!(show(&client, "superuser_reserved_connections").await, "3");
    drop(client);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_taken_port_is_an_environment_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut opts = options(AuthMethod::Trust, false, 10);
    opts.port = Some(port);
    let err = EmbeddedServer::start(&opts).await.unwrap_err();
    assert_eq!(kind_of(&err), Some(Kind::Environment));
    let text = format!("{err:#}");
    assert!(text.contains("in use"), "{text}");
    assert!(
        postgres_processes_mentioning(&format!("port={port}")).is_empty(),
        "a postgres is left running"
    );
}

/// Reads the seven connection lines `poolbench server` prints.
async fn read_connection_lines(stdout: tokio::process::ChildStdout) -> Vec<String> {
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut out = Vec::new();
    while out.len() < 7 {
        match tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await {
            Ok(Ok(Some(line))) => out.push(line),
            other => panic!("poolbench server printed {out:?}, then {other:?}"),
        }
    }
    out
}

/// Starts `poolbench server ARGS` and reads its connection lines.
/// It leads its own process group, as a shell job does, so a test can send
/// a terminal's Ctrl-C: SIGINT to the whole group.
async fn spawn_server_command(args: &[&str]) -> (tokio::process::Child, Vec<String>) {
    let mut child = tokio::process::Command::new(BIN)
        .process_group(0)
        .arg("server")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let lines = read_connection_lines(child.stdout.take().unwrap()).await;
    (child, lines)
}

fn port_of(lines: &[String]) -> u16 {
    lines
        .iter()
        .find_map(|l| l.strip_prefix("PGPORT="))
        .unwrap()
        .parse()
        .unwrap()
}

/// The postmaster serving `port`, and its temporary directory.
fn postmaster_on(port: u16) -> (libc::pid_t, PathBuf) {
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<libc::pid_t>() else {
            continue;
        };
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = raw
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.iter().any(|a| *a == format!("port={port}")) {
            let data = args.iter().skip_while(|a| *a != "-D").nth(1).unwrap();
            let dir = Path::new(data).parent().unwrap().to_path_buf();
            return (pid, dir);
        }
    }
    panic!("no postmaster on port {port}");
}

async fn stderr_of(child: &mut tokio::process::Child) -> String {
    let mut stderr = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr)
        .await
        .unwrap();
    stderr
}

/// SIGTERM to `poolbench server`, which exits 0 within 15 s; its stderr.
async fn stopped_by_sigterm(child: &mut tokio::process::Child) -> String {
    // SAFETY: signalling our own child.
    assert_eq!(
        unsafe { libc::kill(child.id().unwrap() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .unwrap()
        .unwrap();
    let stderr = stderr_of(child).await;
    assert_eq!(status.code(), Some(0), "{stderr}");
    stderr
}

/// `--auth password`, as the embedded levers' `auth = "password"`: the
/// hba line says `password`, and poolbench's DSN logs in with it.
#[tokio::test(flavor = "multi_thread")]
async fn server_command_serves_password_authentication() {
    let (mut child, lines) =
        spawn_server_command(&["--auth", "password", "--max-connections", "5"]).await;
    let client = Target::parse(&lines[0], "test")
        .unwrap()
        .connect()
        .await
        .unwrap();
    assert_eq!(hba_method(&client).await, "password");
    assert!(uses_ssl(&client).await);
    drop(client);
    let stderr = stopped_by_sigterm(&mut child).await;
    assert!(stderr.contains("(password, TLS"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn server_command_stops_on_sigterm_without_tls() {
    let (mut child, lines) =
        spawn_server_command(&["--no-tls", "--auth", "md5", "--max-connections", "5"]).await;
    assert!(lines[0].ends_with("?sslmode=disable"), "{}", lines[0]);
    assert_eq!(lines[6], "PGSSLMODE=disable");
    let port = port_of(&lines);
    let (pid, dir) = postmaster_on(port);
    let client = Target::parse(&lines[0], "test")
        .unwrap()
        .connect()
        .await
        .unwrap();
    assert!(!uses_ssl(&client).await);
    assert_eq!(show(&client, "max_connections").await, "5");
    drop(client);

    let stderr = stopped_by_sigterm(&mut child).await;
    assert!(stderr.contains("(md5, no TLS)"), "{stderr}");
    assert!(stderr.contains("server stopped"), "{stderr}");
    assert_gone(pid as u32, &dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn server_command_exits_3_when_postgres_dies() {
    let (mut child, lines) = spawn_server_command(&["--auth", "trust"]).await;
    let (pid, dir) = postmaster_on(port_of(&lines));
    // SAFETY: killing the postmaster our child started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .unwrap()
        .unwrap();
    let stderr = stderr_of(&mut child).await;
    assert_eq!(status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("exited unexpectedly"), "{stderr}");
    assert!(!dir.exists(), "{} left behind", dir.display());
}

/// Whether `pid` runs. An orphan's zombie counts as gone: reaping it is up
/// to whichever process adopted it.
fn is_running(pid: libc::pid_t) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S ...": the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_goes_down_when_poolbench_is_killed() {
    let (mut child, lines) = spawn_server_command(&[]).await;
    let port = port_of(&lines);
    let (pid, dir) = postmaster_on(port);
    child.kill().await.unwrap(); // SIGKILL: no cleanup of poolbench's own
    let deadline = Instant::now() + Duration::from_secs(15);
    while is_running(pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let alive = is_running(pid);
    // A SIGKILLed poolbench cannot remove its directory: the test does.
    if alive {
        // SAFETY: as above; do not leave a server behind on failure.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    std::thread::sleep(Duration::from_millis(200));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!alive, "postmaster {pid} outlived poolbench");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn server_command_prints_how_to_connect_and_stops_on_ctrl_c() {
    let (mut child, lines) = spawn_server_command(&[]).await;

    let dsn = &lines[0];
    assert!(
        dsn.starts_with("postgres://poolbench:") && dsn.ends_with("/postgres?sslmode=require"),
        "{dsn}"
    );
    let vars: Vec<(String, String)> = lines[1..]
        .iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    let names: Vec<&str> = vars.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "PGHOST",
            "PGPORT",
            "PGUSER",
            "PGPASSWORD",
            "PGDATABASE",
            "PGSSLMODE"
        ]
    );
    let var = |name: &str| vars.iter().find(|(k, _)| k == name).unwrap().1.clone();
    assert_eq!(var("PGHOST"), "127.0.0.1");
    assert_eq!(var("PGUSER"), "poolbench");
    assert_eq!(var("PGDATABASE"), "postgres");
    assert_eq!(var("PGSSLMODE"), "require");
    let port: u16 = var("PGPORT").parse().unwrap();
    assert!(dsn.contains(&format!(":{}@127.0.0.1:{port}/", var("PGPASSWORD"))));

    // The DSN line works with tokio-postgres...
    let target = Target::parse(dsn, "poolbench server").unwrap();
    let client = target.connect().await.unwrap();
    assert!(uses_ssl(&client).await);
    drop(client);

    // ...and the variables with psql.
    if which("psql").is_some() {
        let out = std::process::Command::new("psql")
            .args(["-X", "-tAc", "SELECT 1"])
            .envs(vars.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
    }

    // Ctrl-C in a terminal: SIGINT to the foreground process group. The
    // postmaster has a group of its own, so only poolbench gets it and
    // stops the server in order (else it would report an unexpected exit).
    let pgid = child.id().unwrap() as libc::pid_t;
    // SAFETY: signalling our own child's process group.
    assert_eq!(unsafe { libc::killpg(pgid, libc::SIGINT) }, 0);
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("poolbench server did not stop within 15 s")
        .unwrap();
    let stderr = stderr_of(&mut child).await;
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("embedded PostgreSQL"), "{stderr}");
    assert!(stderr.contains("server stopped"), "{stderr}");
    assert!(!stderr.contains(&var("PGPASSWORD")));
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port {port} still accepts connections"
    );
    assert!(postgres_processes_mentioning(&format!("port={port}")).is_empty());
}

#[test]
fn server_command_with_a_wrong_pg_bin_exits_3() {
    let out = std::process::Command::new(BIN)
        .arg("server")
        .env("POOLBENCH_PG_BIN", "/nonexistent")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("POOLBENCH_PG_BIN=/nonexistent"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_failing_initdb_exits_3_with_its_message() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // As root the scripts run as the postgres user, who must reach them.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    script("postgres", "#!/bin/sh\necho 'postgres (PostgreSQL) 99.1'\n");
    script(
        "initdb",
        "#!/bin/sh\necho 'initdb: error: the disk is on fire' >&2\nexit 1\n",
    );
    let out = std::process::Command::new(BIN)
        .arg("server")
        .env("POOLBENCH_PG_BIN", dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("the disk is on fire"), "{stderr}");
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}
