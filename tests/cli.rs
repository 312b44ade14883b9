//! The generated documentation a user installs: shell completion scripts
//! and man pages, from the same clap definitions as `--help`.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_poolbench");

fn stdout_of(args: &[&str]) -> String {
    let o = Command::new(BIN)
        .args(args)
        .output()
        .expect("run poolbench");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).expect("utf-8")
}

#[test]
fn completions_for_every_shell_know_the_commands_and_flags() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = stdout_of(&["completions", shell]);
        for word in ["poolbench", "sweep", "dsn", "embedded"] {
            assert!(script.contains(word), "{shell}: no {word}");
        }
    }
    let o = Command::new(BIN)
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "an unknown shell is bad input");
}

#[test]
fn man_pages_describe_every_command() {
    let page = stdout_of(&["man"]);
    assert!(page.contains(".TH poolbench 1"), "{page}");
    assert!(page.contains("completions"));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man1");
    stdout_of(&["man", "--dir", out.to_str().unwrap()]);
    for name in ["poolbench.1", "poolbench-run.1", "poolbench-server.1"] {
        let text = std::fs::read_to_string(out.join(name)).expect(name);
        assert!(text.contains(".TH"), "{name}");
    }
    let run = std::fs::read_to_string(out.join("poolbench-run.1")).unwrap();
    assert!(run.contains("PGHOST") && run.contains("embedded"), "{run}");
}
