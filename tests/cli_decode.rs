//! `capscope decode` through the real binary: files and standard input, every output form, and the
//! one-line error with a byte offset.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use capscope::llsd::{self, Format, Value};

const SEED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/seed-response.xml");

fn capscope(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_capscope"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start capscope");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn seed_value() -> Value {
    llsd::from_slice(&std::fs::read(SEED).unwrap()).unwrap()
}

#[test]
fn pretty_view_of_the_example_seed_response() {
    let out = capscope(&["decode", SEED], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text, format!("{}\n", llsd::pretty(&seed_value())));
    assert!(text
        .starts_with("{\n  \"AgentPreferences\": \"https://sim10.aditi.lindenlab.com:12043/cap/"));
    assert_eq!(text.matches("/cap/").count(), 15);
}

#[test]
fn every_output_form_reads_back() {
    let value = seed_value();
    for (to, format) in [
        ("xml", Format::Xml),
        ("binary", Format::Binary),
        ("notation", Format::Notation),
    ] {
        let out = capscope(&["decode", SEED, "--to", to], b"");
        assert!(out.status.success(), "{to}");
        assert_eq!(
            llsd::from_slice_as(&out.stdout, format).unwrap(),
            value,
            "{to}"
        );
    }
    let out = capscope(&["decode", SEED, "--to", "typed-json"], b"");
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(llsd::typed_json::from_json(&json).unwrap(), value);
}

#[test]
fn standard_input_and_explicit_formats() {
    let value = seed_value();
    let binary = llsd::to_vec(&value, Format::Binary);
    let out = capscope(&["decode", "-", "--to", "notation"], &binary);
    assert!(out.status.success());
    assert_eq!(llsd::from_slice(&out.stdout).unwrap(), value);

    let out = capscope(&["decode", "--from", "notation"], b"[i1, 'two']");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "[\n  1,\n  \"two\"\n]\n"
    );

    // Forcing the wrong format is the user's call, and fails like any bad body.
    let out = capscope(&["decode", "--from", "binary"], b"[i1]");
    assert!(!out.status.success());
}

#[test]
fn errors_are_one_line_with_the_offset() {
    let out = capscope(&["decode"], b"<llsd><map><key>a</key><frob/></map></llsd>");
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("unknown element <frob> at byte 23"), "{err}");
    assert!(out.stdout.is_empty());

    let out = capscope(&["decode"], b"hello");
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("not LLSD") && err.contains("at byte 0"),
        "{err}"
    );

    let out = capscope(&["decode", "/nonexistent/body.xml"], b"");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/body.xml"));
}
