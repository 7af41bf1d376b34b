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

    // The capture: every line after the header is a record line, and every record a Seed exchange.
    let text = std::fs::read_to_string(&capture).unwrap();
    let records: Vec<serde_json::Value> = text
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!records.is_empty());
    for r in &records {
        assert_eq!(r["record"]["cap"], "Seed", "{r}");
    }
}
