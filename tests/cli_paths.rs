//! Where the binary keeps its data, through the real environment: `CAPSCOPE_HOME` first, then the
//! platform's data directory (on Linux the XDG rules, which must not change now that the
//! `directories` crate resolves them).

use std::path::Path;
use std::process::Command;

/// `capscope ca path`'s first line, the CA directory, with `env` set and the locating variables
/// otherwise cleared.
fn ca_dir_with(env: &[(&str, &Path)]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_capscope"));
    cmd.args(["ca", "path"])
        .env_remove("CAPSCOPE_HOME")
        .env_remove("XDG_DATA_HOME")
        .env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .next()
        .and_then(|l| l.strip_prefix("CA directory:"))
        .map(|d| d.trim().to_owned())
        .unwrap_or_else(|| panic!("no CA directory line: {text}"))
}

#[test]
fn capscope_home_wins_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("portable");
    let xdg = dir.path().join("xdg");
    let got = ca_dir_with(&[("CAPSCOPE_HOME", &home), ("XDG_DATA_HOME", &xdg)]);
    assert_eq!(got, home.join("ca").display().to_string());
}

#[cfg(all(unix, not(target_os = "macos")))]
#[test]
fn linux_keeps_the_xdg_data_directory_and_its_home_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let xdg = dir.path().join("xdg");
    let got = ca_dir_with(&[("HOME", &home), ("XDG_DATA_HOME", &xdg)]);
    assert_eq!(got, xdg.join("capscope").join("ca").display().to_string());

    let got = ca_dir_with(&[("HOME", &home)]);
    let want = home.join(".local/share/capscope/ca");
    assert_eq!(got, want.display().to_string());

    // A relative XDG_DATA_HOME is ignored, as the XDG specification says.
    let got = ca_dir_with(&[
        ("HOME", &home),
        ("XDG_DATA_HOME", Path::new("relative/xdg")),
    ]);
    assert_eq!(got, want.display().to_string());
}
