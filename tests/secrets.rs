//! A password given to poolbench — in --dsn, in DATABASE_URL, in a
//! scenario's dsn, in PGPASSWORD, in a .pgpass file — appears in none of its
//! output: stdout, stderr, report
//! files, sweep files, --help. (`poolbench server` is the one exception: it
//! prints the throwaway password it generated, and is not run here.)

use std::path::Path;
use std::process::Output;

mod common;
use common::{blocking_command, start_server};

fn poolbench(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = blocking_command(args);
    for var in [
        "PGHOST",
        "PGPORT",
        "PGUSER",
        "PGPASSWORD",
        "PGPASSFILE",
        "PGDATABASE",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run poolbench")
}

fn assert_clean(what: &str, o: &Output, password: &str) {
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !out.contains(password),
        "{what}: password on stdout:\n{out}"
    );
    assert!(
        !err.contains(password),
        "{what}: password on stderr:\n{err}"
    );
}

/// Every file under `dir` (report.html and hlog/ included).
fn assert_files_clean(dir: &Path, password: &str) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        if entry.path().is_dir() {
            assert_files_clean(&entry.path(), password);
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap();
        assert!(
            !text.contains(password),
            "password in {}",
            entry.path().display()
        );
    }
}

const BODY: &str = r#"
[run]
duration = "1s"
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
name = "q"
sql = "SELECT 1"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn no_subcommand_reveals_the_password() {
    let server = start_server(50).await;
    let password = server.password().to_string();
    let dsn = server.dsn_with_password();
    assert!(dsn.contains(&password));
    let tmp = tempfile::tempdir().unwrap();
    let plain = tmp.path().join("plain.toml");
    std::fs::write(&plain, BODY).unwrap();
    let with_dsn = tmp.path().join("with-dsn.toml");
    std::fs::write(&with_dsn, format!("[database]\ndsn = \"{dsn}\"\n{BODY}")).unwrap();
    let dir = |name: &str| tmp.path().join(name).display().to_string();
    let plain_s = plain.display().to_string();
    let with_dsn_s = with_dsn.display().to_string();
    // The same server without a password in the DSN: it comes from
    // PGPASSWORD or the password file.
    let bare = dsn.replace(&format!(":{password}@"), "@");
    assert!(!bare.contains(&password));
    let pgpass = tmp.path().join("pgpass");
    std::fs::write(&pgpass, format!("*:*:*:*:{password}\n")).unwrap();
    std::fs::set_permissions(&pgpass, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let pgpass_s = pgpass.display().to_string();
    // A scenario with a bad DSN holding the password: validate names the
    // option without quoting the line.
    let bad_dsn = tmp.path().join("bad-dsn.toml");
    std::fs::write(
        &bad_dsn,
        format!("[database]\ndsn = \"{dsn}&sslcrl=x\"\n{BODY}"),
    )
    .unwrap();

    // Blocking calls are fine here: the server is another process, and the
    // runtime has other threads.
    {
        // run: the DSN from the flag, from DATABASE_URL, from the scenario.
        type Env<'a> = Vec<(&'a str, String)>;
        let runs: [(&str, Vec<String>, Env); 5] = [
            (
                "run --dsn",
                vec![
                    "run".into(),
                    plain_s.clone(),
                    "--dsn".into(),
                    dsn.clone(),
                    "--out".into(),
                    dir("a"),
                ],
                vec![],
            ),
            (
                "run DATABASE_URL",
                vec!["run".into(), plain_s.clone(), "--out".into(), dir("b")],
                vec![("DATABASE_URL", dsn.clone())],
            ),
            (
                "run [database].dsn",
                vec!["run".into(), with_dsn_s.clone(), "--out".into(), dir("c")],
                vec![],
            ),
            (
                "run PGPASSWORD",
                vec![
                    "run".into(),
                    plain_s.clone(),
                    "--dsn".into(),
                    bare.clone(),
                    "--out".into(),
                    dir("d"),
                ],
                vec![("PGPASSWORD", password.clone())],
            ),
            (
                "run .pgpass",
                vec![
                    "run".into(),
                    plain_s.clone(),
                    "--dsn".into(),
                    bare.clone(),
                    "--out".into(),
                    dir("e"),
                ],
                vec![("PGPASSFILE", pgpass_s.clone())],
            ),
        ];
        for (what, args, env) in &runs {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let o = poolbench(&args, &env);
            assert_eq!(
                o.status.code(),
                Some(0),
                "{what}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            assert_clean(what, &o, &password);
        }
        for d in ["a", "b", "c", "d", "e"] {
            assert_files_clean(&tmp.path().join(d), &password);
        }
        let report = std::fs::read_to_string(tmp.path().join("c/report.json")).unwrap();
        assert!(
            report.contains(":****@"),
            "the report keeps the DSN redacted"
        );

        let o = poolbench(&["validate", &with_dsn_s], &[]);
        assert_eq!(o.status.code(), Some(0));
        assert_clean("validate", &o, &password);
        let o = poolbench(&["validate", &bad_dsn.display().to_string()], &[]);
        assert_eq!(o.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&o.stderr).contains("sslcrl"));
        assert_clean("validate with a bad dsn", &o, &password);

        let o = poolbench(
            &["compare", &dir("a"), &dir("b")],
            &[("DATABASE_URL", dsn.as_str())],
        );
        assert!(
            matches!(o.status.code(), Some(0 | 1)),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_clean("compare", &o, &password);
        let o = poolbench(
            &["compare", &dir("d"), &dir("e")],
            &[("PGPASSWORD", password.as_str()), ("PGPASSFILE", &pgpass_s)],
        );
        assert!(matches!(o.status.code(), Some(0 | 1)));
        assert_clean("compare with PGPASSWORD", &o, &password);

        let o = poolbench(
            &[
                "sweep",
                &plain_s,
                "--dsn",
                &dsn,
                "--pool-sizes",
                "1,2",
                "--duration",
                "1s",
                "--warmup",
                "0s",
                "--out",
                &dir("s"),
            ],
            &[],
        );
        assert_eq!(
            o.status.code(),
            Some(0),
            "sweep: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_clean("sweep", &o, &password);
        assert_files_clean(&tmp.path().join("s"), &password);
        let o = poolbench(
            &[
                "sweep",
                &plain_s,
                "--dsn",
                &bare,
                "--pool-sizes",
                "1",
                "--duration",
                "1s",
                "--warmup",
                "0s",
                "--out",
                &dir("s2"),
            ],
            &[("PGPASSFILE", &pgpass_s)],
        );
        assert_eq!(
            o.status.code(),
            Some(0),
            "sweep .pgpass: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_clean("sweep .pgpass", &o, &password);
        assert_files_clean(&tmp.path().join("s2"), &password);
        let o = poolbench(
            &[
                "plan",
                "--sweep",
                &dir("s"),
                "--rps",
                "100",
                "--p99",
                "50ms",
            ],
            &[],
        );
        assert_clean("plan", &o, &password);

        // A wrong password in the DSN is not echoed in the error either.
        let wrong = dsn.replace(&password, "Wr0ng-Pa55word-Canary");
        let o = poolbench(&["run", &plain_s, "--dsn", &wrong, "--out", &dir("w")], &[]);
        assert_eq!(o.status.code(), Some(3));
        assert_clean("run with a wrong password", &o, "Wr0ng-Pa55word-Canary");
        let o = poolbench(
            &["run", &plain_s, "--dsn", &bare, "--out", &dir("w2")],
            &[("PGPASSWORD", "Wr0ng-Pa55word-Canary")],
        );
        assert_eq!(o.status.code(), Some(3));
        assert_clean("run with a wrong PGPASSWORD", &o, "Wr0ng-Pa55word-Canary");
        std::fs::write(&pgpass, "*:*:*:*:Wr0ng-Pa55word-Canary\n").unwrap();
        let o = poolbench(
            &["run", &plain_s, "--dsn", &bare, "--out", &dir("w3")],
            &[("PGPASSFILE", &pgpass_s)],
        );
        assert_eq!(o.status.code(), Some(3));
        assert_clean("run with a wrong .pgpass", &o, "Wr0ng-Pa55word-Canary");
        // A .pgpass others can read is refused; its contents are not shown.
        std::fs::write(&pgpass, format!("*:*:*:*:{password}\n")).unwrap();
        std::fs::set_permissions(&pgpass, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        let o = poolbench(
            &["run", &plain_s, "--dsn", &bare, "--out", &dir("w4")],
            &[("PGPASSFILE", &pgpass_s)],
        );
        assert_eq!(o.status.code(), Some(3));
        assert_clean("run with a readable .pgpass", &o, &password);

        for sub in ["run", "validate", "compare", "server", "sweep", "plan"] {
            let o = poolbench(
                &[sub, "--help"],
                &[
                    ("DATABASE_URL", dsn.as_str()),
                    ("PGPASSWORD", password.as_str()),
                ],
            );
            assert_eq!(o.status.code(), Some(0), "{sub} --help");
            assert_clean(&format!("{sub} --help"), &o, &password);
        }
        let o = poolbench(&["--help"], &[("DATABASE_URL", dsn.as_str())]);
        assert_clean("--help", &o, &password);
    }
    server.stop().await.unwrap();
}
