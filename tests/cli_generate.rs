//! `capscope completions SHELL` and `capscope man` through the real binary: every shell gets a
//! script that knows the subcommands, and the manual pages describe every command.

use std::process::{Command, Output};

const SUBCOMMANDS: &[&str] = &[
    "demo",
    "run",
    "decode",
    "ca",
    "dump",
    "export",
    "completions",
    "man",
];

fn capscope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_capscope"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn ok_stdout(args: &[&str]) -> String {
    let out = capscope(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn every_shell_gets_a_script_that_knows_the_subcommands_and_run_flags() {
    for (shell, marker) in [
        ("bash", "complete -F _capscope"),
        ("zsh", "#compdef capscope"),
        ("fish", "complete -c capscope"),
        ("powershell", "Register-ArgumentCompleter"),
        ("elvish", "edit:completion:arg-completer[capscope]"),
    ] {
        let script = ok_stdout(&["completions", shell]);
        assert!(script.contains(marker), "{shell}: no {marker:?}");
        for sub in SUBCOMMANDS {
            assert!(script.contains(sub), "{shell}: no {sub}");
        }
        for flag in ["max-body", "passthrough", "keep-secrets"] {
            assert!(script.contains(flag), "{shell}: no --{flag}");
        }
    }
    let out = capscope(&["completions", "tcsh"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

#[cfg(unix)]
#[test]
fn the_bash_script_parses() {
    let script = ok_stdout(&["completions", "bash"]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("capscope.bash");
    std::fs::write(&path, script).unwrap();
    let status = Command::new("bash").arg("-n").arg(&path).status().unwrap();
    assert!(status.success(), "bash -n rejects the completion script");
}

#[test]
fn the_man_page_names_every_command_and_the_exit_codes() {
    let page = ok_stdout(&["man"]);
    assert!(page.contains(".TH capscope 1"), "{page}");
    assert!(page.contains(".SH SUBCOMMANDS"), "{page}");
    for sub in SUBCOMMANDS {
        assert!(
            page.contains(&format!("capscope\\-{sub}(1)")),
            "no {sub} in:\n{page}"
        );
    }
    assert!(page.contains("Exit status: 0 success, 1 failure at run time, 2 usage error"));
}

#[test]
fn man_dir_writes_one_page_per_command() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("man1");
    let stdout = ok_stdout(&["man", "--dir", out_dir.to_str().unwrap()]);
    assert!(stdout.is_empty());
    let run = std::fs::read_to_string(out_dir.join("capscope-run.1")).unwrap();
    assert!(run.contains(".TH capscope-run 1"), "{run}");
    assert!(run.contains("max\\-body"), "{run}");
    for page in [
        "capscope.1",
        "capscope-ca-install-viewer.1",
        "capscope-dump.1",
    ] {
        assert!(out_dir.join(page).is_file(), "no {page}");
    }
}
