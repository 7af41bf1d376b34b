//! The real binary's exit codes and streams: 0 success, 1 a failure at run time, 2 a usage error;
//! records and command output on stdout, the banner, logs and errors on stderr; `-q` leaves stderr
//! to errors; a closed stdout pipe neither kills the proxy nor turns into a failure.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Output, Stdio};

fn capscope(home: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_capscope"));
    c.env("CAPSCOPE_HOME", home).env_remove("RUST_LOG");
    c
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The lines of a headless log: they start with the time of day, `HH:MM:SS.mmm `.
/// Asserts a failure as the CLI conventions want it: exit code `code`, nothing on stdout, and
/// stderr starting with `prefix`.
fn fails_with(args: &[&str], out: &std::process::Output, code: i32, prefix: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{args:?}: {}",
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out.stdout));
    assert!(
        text(&out.stderr).starts_with(prefix),
        "{args:?}: {}",
        text(&out.stderr)
    );
}

fn is_record_line(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 13
        && b[2] == b':'
        && b[5] == b':'
        && b[8] == b'.'
        && b[12] == b' '
        && b[..2].iter().all(u8::is_ascii_digit)
}

#[test]
fn exit_codes_say_success_failure_or_usage() {
    let home = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| -> Output { capscope(home.path()).args(args).output().unwrap() };

    // Usage errors from clap: code 2, the message on stderr, nothing on stdout.
    for args in [
        &["--no-such-flag"][..],
        &["no-such-command"],
        &["dump"],
        &["run", "--listen", "not-an-address"],
        &["run", "--max-body", "4X"],
        &["run", "-q", "-v"],
    ] {
        fails_with(args, &run(args), 2, "error: ");
    }

    // A value refused after parsing is a usage error too.
    let capture = home.path().join("empty.jsonl");
    std::fs::write(&capture, "").unwrap();
    for args in [
        &["dump", capture.to_str().unwrap(), "--filter", "cap:("][..],
        &[
            "export",
            "--har",
            capture.to_str().unwrap(),
            "--filter",
            "status:",
        ],
        &["run", "--no-save", "--listen", "0.0.0.0:0"],
        &[
            "run",
            "--no-save",
            "--listen",
            "127.0.0.1:0",
            "--grid",
            "ftp://x/",
        ],
        &[
            "run",
            "--no-save",
            "--listen",
            "127.0.0.1:0",
            "--filter",
            "((",
        ],
    ] {
        fails_with(args, &run(args), 2, "capscope: ");
    }

    // Failures at run time: code 1, one line on stderr, nothing on stdout.
    let missing = home.path().join("missing.jsonl");
    let garbage = home.path().join("garbage.bin");
    std::fs::write(&garbage, b"\x00\x01 not llsd").unwrap();
    for args in [
        &["dump", missing.to_str().unwrap()][..],
        &["export", "--har", missing.to_str().unwrap()],
        &["decode", garbage.to_str().unwrap()],
    ] {
        fails_with(args, &run(args), 1, "capscope: ");
    }

    // Success, and help: on stdout, code 0, and it documents the exit codes.
    for args in [
        &["--help"][..],
        &["run", "--help"],
        &["dump", "--help"],
        &["ca", "path", "--help"],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(out.stderr.is_empty(), "{args:?}: {}", text(&out.stderr));
        let help = text(&out.stdout);
        assert!(
            help.contains("Exit status: 0 success, 1 failure at run time, 2 usage error"),
            "{args:?}: {help}"
        );
    }
    let v1 = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/captures/v1.jsonl");
    let out = run(&["dump", v1]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!out.stdout.is_empty());
}

/// `capscope run` as a user runs it with `> flows.log`: the records, and only they, on stdout.
#[cfg(unix)]
#[test]
fn run_writes_records_to_stdout_and_the_banner_and_log_to_stderr() {
    let home = tempfile::tempdir().unwrap();
    let mut child = capscope(home.path())
        .args(["run", "--no-save", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut banner = String::new();
    let addr = loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "no banner: {banner}"
        );
        banner.push_str(&line);
        if let Some(addr) = line.trim().strip_prefix("capscope is listening on ") {
            break addr.to_owned();
        }
    };

    // A request to capscope itself that nothing claims: one 404 record.
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        conn,
        "GET /nothing-here HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    conn.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 404"), "{reply}");

    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut record = String::new();
    stdout.read_line(&mut record).unwrap();
    assert!(is_record_line(&record), "{record:?}");
    assert!(
        record.contains("GET ") && record.contains("/nothing-here 404"),
        "{record}"
    );

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(
        rest.lines().all(is_record_line),
        "not a record line on stdout: {rest}"
    );
    stderr.read_to_string(&mut banner).unwrap();
    assert!(banner.contains("CA certificate:"), "{banner}");
    assert!(
        banner.contains("shutting down"),
        "the log belongs on stderr: {banner}"
    );
    assert!(
        !banner.lines().any(is_record_line),
        "a record on stderr: {banner}"
    );
}

#[test]
fn quiet_leaves_stderr_to_errors_and_records_on_stdout() {
    let home = tempfile::tempdir().unwrap();
    let out = capscope(home.path())
        .args(["demo", "-q", "--no-save", "--listen", "127.0.0.1:0"])
        .args(["--steps", "1", "--every", "0", "--eq-hold", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        "",
        "-q must leave stderr empty when all goes well"
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| is_record_line(l) && l.contains("[Seed]")),
        "{stdout}"
    );
    assert!(
        !stdout.contains("INFO") && !stdout.contains("listening on"),
        "{stdout}"
    );
}

#[test]
fn a_closed_stdout_pipe_is_not_a_failure() {
    let home = tempfile::tempdir().unwrap();
    let mut child = capscope(home.path())
        .args(["demo", "--no-save", "--listen", "127.0.0.1:0"])
        // Rounds keep coming after the pipe is closed (the demo writes records until it ends).
        .args(["--steps", "3", "--every", "0.3", "--eq-hold", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Like `| head -1`: read one line, then close the pipe.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("cannot write records"), "{err}");
}

#[test]
fn every_command_ends_quietly_with_0_when_stdout_is_closed() {
    let home = tempfile::tempdir().unwrap();
    let seed = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/seed-response.xml");
    let v1 = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/captures/v1.jsonl");
    for args in [
        &["ca", "path"][..],
        &["decode", seed],
        &["dump", v1],
        &["export", "--har", v1],
        &["completions", "bash"],
        &["man"],
    ] {
        // Like `| head -0`: the reading end is gone before capscope writes (it is closed right
        // after the start, long before the process has loaded).
        let mut child = capscope(home.path())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert_eq!(text(&out.stderr), "", "{args:?}");
    }
}
