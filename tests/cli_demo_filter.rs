//! The real binary with `--filter`: the headless log and the capture both keep only what matches.

use std::process::Command;

fn capscope() -> Command {
    Command::new(env!("CARGO_BIN_EXE_capscope"))
}

#[test]
fn demo_with_a_filter_logs_and_saves_only_matching_records() {
    let home = tempfile::tempdir().unwrap();
    let capture = home.path().join("seeds.jsonl");
    let out = capscope()
        .env("CAPSCOPE_HOME", home.path())
        .env_remove("RUST_LOG")
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--steps",
            "3",
            "--every",
            "0",
        ])
        .args(["--eq-hold", "2", "--filter", "cap:Seed", "-w"])
        .arg(&capture)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The log: record lines (they start with the time, `HH:MM:SS.mmm`) name a record's cap in
    // brackets; only Seed may appear.
    let caps: Vec<&str> = stdout
        .lines()
        .filter(|l| l.as_bytes().get(2) == Some(&b':') && l.as_bytes().get(8) == Some(&b'.'))
        .filter_map(|l| l.split_once(" [").map(|(_, rest)| rest))
        .filter_map(|rest| rest.split_once(']').map(|(cap, _)| cap))
        .collect();
    assert!(caps.contains(&"Seed"), "no Seed line in the log:\n{stdout}");
    assert!(
        caps.iter().all(|c| *c == "Seed"),
        "the log shows records the filter excludes: {caps:?}"
    );
    assert!(
        !stdout.contains("EVENT "),
        "events are not Seed records:\n{stdout}"
    );

    // The capture: every record in it a Seed exchange (bodies follow their lines since format
    // version 2, so it is read with the reader, not line by line).
    let c = capscope::capture::Reader::open(&capture).unwrap();
    assert!(
        c.warnings.is_empty() && c.lags.is_empty(),
        "{:?}",
        c.warnings
    );
    assert!(!c.records.is_empty());
    for r in &c.records {
        assert_eq!(r.cap.as_deref(), Some("Seed"), "{r:?}");
    }
}
