//! `run`'s flags from `CAPSCOPE_*` environment variables, through the real binary: every flag has
//! one and `--help` shows it, the variables take effect, a flag on the command line wins, and a bad
//! value is a usage error.

use std::process::{Command, Output};

fn capscope(home: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_capscope"));
    c.env("CAPSCOPE_HOME", home).env_remove("RUST_LOG");
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn every_run_flag_shows_its_environment_variable_in_help() {
    let home = tempfile::tempdir().unwrap();
    let out = capscope(home.path())
        .args(["run", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = text(&out.stdout);
    // An option starts a line; its `[env: ...]` is on that line or, in long help, below it.
    let mut flags = Vec::new();
    let mut current: Option<(String, bool)> = None;
    for line in help.lines() {
        let t = line.trim_start();
        if t.starts_with('-') && line.starts_with("  ") && !line.starts_with("          ") {
            flags.extend(current.take());
            let name = t
                .split([' ', ','])
                .find(|w| w.starts_with("--"))
                .unwrap_or(t);
            current = Some((name.to_owned(), t.contains("[env: CAPSCOPE_")));
        } else if let Some((_, has_env)) = current.as_mut() {
            *has_env |= t.contains("[env: CAPSCOPE_");
        }
    }
    flags.extend(current.take());
    assert!(flags.len() >= 18, "too few flags found in:\n{help}");
    let missing: Vec<&str> = flags
        .iter()
        .filter(|(name, has_env)| !has_env && name != "--help")
        .map(|(name, _)| name.as_str())
        .collect();
    assert!(
        missing.is_empty(),
        "every run flag needs `env = \"CAPSCOPE_...\"` (docs/cli.md); missing: {missing:?}"
    );
}

#[test]
fn variables_set_flags_and_the_command_line_wins() {
    let home = tempfile::tempdir().unwrap();
    let capture = home.path().join("from-env.jsonl");
    let out: Output = capscope(home.path())
        .env("CAPSCOPE_WRITE", &capture)
        .env("CAPSCOPE_FILTER", "cap:Seed")
        .env("CAPSCOPE_QUIET", "1")
        // A remote address would be refused: that the demo runs shows --listen won.
        .env("CAPSCOPE_LISTEN", "0.0.0.0:1")
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--steps",
            "1",
            "--every",
            "0",
        ])
        .args(["--eq-hold", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "", "CAPSCOPE_QUIET=1 is -q");
    let saved =
        capscope::capture::Reader::open(&capture).expect("CAPSCOPE_WRITE names the capture");
    assert!(!saved.records.is_empty());
    for r in &saved.records {
        assert_eq!(
            r.cap.as_deref(),
            Some("Seed"),
            "CAPSCOPE_FILTER applies: {r:?}"
        );
    }

    // Without the flag, the variable's remote address is used, and refused.
    let out = capscope(home.path())
        .env("CAPSCOPE_LISTEN", "0.0.0.0:1")
        .env("CAPSCOPE_NO_SAVE", "true")
        .arg("run")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--allow-remote"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_bad_value_in_a_variable_is_a_usage_error() {
    let home = tempfile::tempdir().unwrap();
    for (var, value) in [
        ("CAPSCOPE_MAX_BODY", "4X"),
        ("CAPSCOPE_NO_SAVE", "perhaps"),
        ("CAPSCOPE_CONNECT_TIMEOUT", "soon"),
    ] {
        let out = capscope(home.path())
            .env(var, value)
            .arg("run")
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{var}={value}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(value),
            "{var}: {}",
            text(&out.stderr)
        );
    }
}
