//! The headless log never holds up forwarding: the real binary, with a stdout that nobody reads, keeps
//! serving requests, drops the log lines that do not fit and says how many on exit.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// Enough requests that their log lines overflow a pipe's buffer (64 KiB on Linux) and the log's queue
/// (`LOG_QUEUE_LINES`).
const REQUESTS: usize = 3000;
/// A request that takes this long means the proxy stalled (it normally takes a millisecond or two).
const STALL: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_stdout_nobody_reads_never_stalls_forwarding() {
    let up = start_upstream(false).await;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_capscope"))
        .args(["--ca-dir", dir.path().join("ca").to_str().unwrap()])
        .args(["run", "--headless", "--no-save", "--listen", "127.0.0.1:0"])
        .env("CAPSCOPE_HOME", dir.path())
        .env_remove("RUST_LOG")
        // One worker thread: a write that blocks anywhere on the runtime stops everything.
        .env("TOKIO_WORKER_THREADS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Records go to stdout, which is never read (the read end stays open: writes block, not fail).
    // The banner with the address is on stderr.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let addr = loop {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "no address line");
        if let Some(a) = line.trim().strip_prefix("capscope is listening on ") {
            break a.parse::<std::net::SocketAddr>().unwrap();
        }
    };

    let ca = capscope_ca::CertificateAuthority::generate().unwrap();
    let mut client = ProxyClient::new(addr, &ca).plain().await;
    for i in 0..REQUESTS {
        let req = request("GET", &up.url("/bytes/10"), "");
        let Ok((resp, body)) = tokio::time::timeout(STALL, send_h1(&mut client, req)).await else {
            let _ = child.kill();
            panic!("request {i} got no answer: the proxy stalled behind its unread stdout");
        };
        assert_eq!((resp.status().as_u16(), &body[..]), (200, &pattern(10)[..]));
    }

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let mut rest = Vec::new();
    let _ = stdout.read_to_end(&mut rest);
    let mut stderr_rest = String::new();
    let _ = stderr.read_to_string(&mut stderr_rest);
    let stderr = stderr_rest;
    assert!(status.status.success(), "{}: {stderr}", status.status);
    assert!(
        stderr.contains("log lines were dropped"),
        "the dropped lines are not counted: {stderr}"
    );
}
