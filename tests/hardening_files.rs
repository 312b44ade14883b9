//! What an adversary tries with files (issue 28, classes 1, 2, 3 and 7):
//! links planted where poolbench writes, two runs on one --out, --force
//! beside an earlier run, a write that fails mid-run, a FIFO named as a
//! certificate or a service file, and a killed run's PgBouncer directory.
//! Each test runs the binary against a real server and fails without its
//! fix.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod common;
use poolbench::embedded::EmbeddedServer;

use common::{
    command, no_panic, postgres_running_in, read_report, show, start_server, write_scenario,
};

/// Three short strategies: a run takes a few seconds, and a report of
/// fewer than three is partial.
const THREE: &str = "[run]\nduration = \"1s\"\nwarmup = \"0s\"\nconcurrency = 2\n\n\
                     [[strategy]]\nname = \"a\"\nkind = \"pool\"\nmax_size = 2\n\n\
                     [[strategy]]\nname = \"b\"\nkind = \"pool\"\nmax_size = 2\n\n\
                     [[strategy]]\nname = \"c\"\nkind = \"pool\"\nmax_size = 2\n\n\
                     [[query]]\nname = \"q\"\nsql = \"SELECT 1\"\n";

fn mkfifo(path: &Path) {
    let c_path = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string and mode.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
}

/// A server, its DSN, a temporary directory and [`THREE`] in it.
async fn bench() -> (EmbeddedServer, String, tempfile::TempDir, String) {
    let server = start_server(20).await;
    let dsn = server.dsn_with_password();
    let tmp = tempfile::tempdir().unwrap();
    let file = write_scenario(tmp.path(), "three", THREE);
    let file = file.to_str().unwrap().to_string();
    (server, dsn, tmp, file)
}

/// `poolbench run FILE --dsn DSN --out OUT EXTRA…`.
fn run_on(file: &str, dsn: &str, out: &Path, extra: &[&str]) -> tokio::process::Command {
    let mut cmd = command(["run", file, "--dsn", dsn, "--out", out.to_str().unwrap()]);
    cmd.args(extra);
    cmd
}

/// Fails unless the run ended without a panic, with `code`, and saying
/// `phrase`.
fn ended(o: &std::process::Output, code: i32, phrase: &str) {
    no_panic(o);
    assert_eq!(o.status.code(), Some(code), "{}", show(o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(phrase),
        "{}",
        show(o)
    );
}

/// Waits up to `limit` for `cond`.
async fn wait_for(limit: Duration, cond: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !cond() {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Class 1: nothing planted in --out sends a write outside it (a link at
/// the temporary name, a link for hlog/); a second run on the same --out
/// exits 3 naming the first; --force leaves nothing of the earlier run.
#[tokio::test(flavor = "multi_thread")]
async fn files_stay_in_out_and_one_run_owns_it() {
    let (server, dsn, tmp, file) = bench().await;
    let file = file.as_str();
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let victim = outside.join("victim");
    std::fs::write(&victim, "precious").unwrap();

    // A link at the name the temporary file had (its pid's): not followed.
    let out = tmp.path().join("shared");
    std::fs::create_dir(&out).unwrap();
    let child = run_on(file, &dsn, &out, &[]).spawn().unwrap();
    let pid = child.id().unwrap();
    for name in ["report.json", "summary.csv", "timeline.csv", "report.html"] {
        std::os::unix::fs::symlink(&victim, out.join(format!(".{name}.tmp-{pid}"))).unwrap();
    }
    let o = child.wait_with_output().await.unwrap();
    no_panic(&o);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(std::fs::symlink_metadata(out.join("report.json"))
        .unwrap()
        .is_file());
    assert_eq!(read_report(&out)["strategies"].as_array().unwrap().len(), 3);

    // A link for hlog/: refused before anything is measured.
    let linked = tmp.path().join("linked");
    std::fs::create_dir(&linked).unwrap();
    std::os::unix::fs::symlink(&outside, linked.join("hlog")).unwrap();
    let started = Instant::now();
    let o = run_on(file, &dsn, &linked, &[]).output().await.unwrap();
    ended(&o, 3, "hlog");
    assert!(started.elapsed() < Duration::from_secs(3), "measured first");
    assert_eq!(names(&outside), ["victim"]);

    // Two runs on one --out: the second stops at once, naming the first.
    let both = tmp.path().join("both");
    let first = run_on(file, &dsn, &both, &[]).spawn().unwrap();
    let first_pid = first.id().unwrap();
    assert!(
        wait_for(Duration::from_secs(20), || both
            .join(".poolbench.lock")
            .exists())
        .await,
        "the first run claims its directory"
    );
    let o = run_on(file, &dsn, &both, &["--force"])
        .output()
        .await
        .unwrap();
    ended(
        &o,
        3,
        &format!("another poolbench (pid {first_pid}, scenario three"),
    );
    let o = first.wait_with_output().await.unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(
        !both.join(".poolbench.lock").exists(),
        "the lock goes with its run"
    );
    assert!(both.join("report.html").exists() && both.join("hlog").is_dir());

    // --force: the earlier run's files go (its report.html, an hlog of a
    // strategy the new run does not have), others' stay.
    std::fs::write(both.join("hlog/gone.total.hlog"), "").unwrap();
    std::fs::write(both.join("notes.txt"), "mine").unwrap();
    let o = run_on(file, &dsn, &both, &["--force", "--no-html", "--only", "a"])
        .output()
        .await
        .unwrap();
    no_panic(&o);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(
        names(&both),
        [
            "hlog",
            "notes.txt",
            "report.json",
            "summary.csv",
            "timeline.csv"
        ]
    );
    assert!(names(&both.join("hlog"))
        .iter()
        .all(|n| n.starts_with("a.")));
    assert_eq!(
        read_report(&both)["strategies"].as_array().unwrap().len(),
        1
    );
    server.stop().await.unwrap();
}

/// Class 2: a write that fails mid-run (here an hlog file's name taken by
/// a directory after the first strategy) exits 3 and leaves a report that
/// says it is partial.
#[tokio::test(flavor = "multi_thread")]
async fn a_report_left_by_a_failed_write_says_it_is_partial() {
    let (server, dsn, tmp, file) = bench().await;
    let out = tmp.path().join("out");
    let child = run_on(&file, &dsn, &out, &[]).spawn().unwrap();
    assert!(
        wait_for(Duration::from_secs(30), || out.join("report.json").exists()).await,
        "the first strategy's report"
    );
    std::fs::create_dir_all(out.join("hlog/b.total.hlog/in-the-way")).unwrap();
    let o = child.wait_with_output().await.unwrap();
    no_panic(&o);
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    let report = read_report(&out);
    let strategies = report["strategies"].as_array().unwrap().len();
    assert!(strategies < 3, "{report}");
    assert_eq!(report["interrupted"], true, "{strategies} of 3, unmarked");
    server.stop().await.unwrap();
}

/// Class 3: a FIFO named as a root certificate or a service file is
/// refused at once (exit 3 or 2), rather than blocking the run past a
/// SIGTERM.
#[tokio::test(flavor = "multi_thread")]
async fn a_fifo_for_a_certificate_or_a_service_file_does_not_block() {
    let (server, dsn, tmp, file) = bench().await;
    let file = file.as_str();
    let fifo = tmp.path().join("fifo");
    mkfifo(&fifo);
    let fifo = fifo.to_str().unwrap();
    let sep = if dsn.contains('?') { '&' } else { '?' };
    // Flags, and environment variables.
    type Case<'a> = (Vec<String>, Vec<(&'a str, &'a str)>);
    let cases: Vec<Case> = vec![
        (
            vec![
                "--dsn".into(),
                format!("{dsn}{sep}sslmode=verify-ca&sslrootcert={fifo}"),
            ],
            vec![],
        ),
        (
            vec![],
            vec![
                ("PGSERVICEFILE", fifo),
                ("PGSERVICE", "shop"),
                ("PGSYSCONFDIR", "/nonexistent"),
            ],
        ),
    ];
    for (flags, env) in cases {
        let out = tmp.path().join("out");
        let mut cmd = command(["run", file, "--out", out.to_str().unwrap()]);
        cmd.args(&flags)
            .envs(env.iter().copied())
            .kill_on_drop(true);
        let mut child = cmd.spawn().unwrap();
        let pid = child.id().unwrap() as libc::pid_t;
        let ended = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
        if ended.is_err() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let after_term = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
            panic!(
                "{flags:?} {env:?}: blocked; after SIGTERM: {}",
                if after_term.is_ok() {
                    "ended"
                } else {
                    "still blocked"
                }
            );
        }
        let o = child.wait_with_output().await.unwrap();
        no_panic(&o);
        assert!(
            matches!(o.status.code(), Some(2 | 3)),
            "{flags:?} {env:?}: {}",
            show(&o)
        );
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("not a regular file"),
            "{flags:?} {env:?}: {}",
            show(&o)
        );
        assert!(!out.exists());
    }
    server.stop().await.unwrap();
}

/// The directories under `tmp` whose name starts with `prefix`.
fn dirs_named(tmp: &Path, prefix: &str) -> Vec<PathBuf> {
    names(tmp)
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .map(|n| tmp.join(n))
        .collect()
}

/// Class 7: the embedded PgBouncer's directory of a poolbench killed
/// outright is removed by the next embedded start.
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_run_s_pgbouncer_directory_is_removed_by_the_next() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bouncer = write_scenario(
        tmp.path(),
        "bouncer",
        "[run]\nduration = \"60s\"\nwarmup = \"0s\"\nconcurrency = 2\n\n\
         [[strategy]]\nname = \"via\"\nkind = \"pool\"\nmax_size = 2\nvia = \"pgbouncer\"\nstatement_cache = false\n\n\
         [[query]]\nname = \"q\"\nsql = \"SELECT 1\"\n",
    );
    let mut child = command([
        "run",
        bouncer.to_str().unwrap(),
        "--out",
        tmp.path().join("killed").to_str().unwrap(),
    ])
    .env("TMPDIR", tmp.path())
    .kill_on_drop(true)
    .spawn()
    .unwrap();
    let out = tmp.path().join("killed/report.json");
    // PgBouncer is up once it logs; the run then measures.
    let started = wait_for(Duration::from_secs(60), || {
        dirs_named(tmp.path(), "poolbench-pgbouncer-")
            .iter()
            .any(|d| std::fs::metadata(d.join("pgbouncer.log")).is_ok_and(|m| m.len() > 0))
    })
    .await;
    assert!(started, "PgBouncer started: {:?}", names(tmp.path()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    child.kill().await.unwrap();
    let left = dirs_named(tmp.path(), "poolbench-pgbouncer-");
    assert_eq!(left.len(), 1, "SIGKILL leaves PgBouncer's directory");
    assert!(!out.exists());
    // PgBouncer follows its poolbench down (parent-death signal).
    let down = wait_for(Duration::from_secs(30), || !postgres_running_in(&left[0])).await;
    assert!(down, "PgBouncer outlived its poolbench");

    let short = write_scenario(
        tmp.path(),
        "short",
        "[run]\nduration = \"1s\"\nwarmup = \"0s\"\nconcurrency = 2\n\n\
         [[strategy]]\nname = \"pool\"\nkind = \"pool\"\nmax_size = 2\n\n\
         [[query]]\nname = \"q\"\nsql = \"SELECT 1\"\n",
    );
    let o = command([
        "run",
        short.to_str().unwrap(),
        "--out",
        tmp.path().join("next").to_str().unwrap(),
        "--quiet",
        "--force",
    ])
    .env("TMPDIR", tmp.path())
    .output()
    .await
    .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(
        !left[0].exists(),
        "the dead poolbench's PgBouncer directory was removed"
    );
}
