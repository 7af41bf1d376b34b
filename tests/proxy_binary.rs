//! The real `capscope run` binary as a child process: a 100 MB body each way streams through with
//! bounded memory, the headless log prints it, SIGTERM stops it cleanly; and a remote listen address
//! is refused without --allow-remote.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use capscope_ca::CertificateAuthority;
use common::*;
use http_body_util::BodyExt;

const BIG: u64 = 100 * 1024 * 1024;
/// Peak resident memory the proxy may reach while 100 MB pass each way (records keep 4 MiB of each).
const MAX_PEAK_KIB: u64 = 60 * 1024;

/// Reads the child's stderr until the banner names the address capscope bound (it listens on port
/// 0, so no port is picked and released before the child binds it); the rest of stderr is gathered in
/// the background and handed back by the returned thread.
fn listening_addr(child: &mut Child) -> (SocketAddr, std::thread::JoinHandle<String>) {
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let addr = loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "capscope exited before listening: {seen}"
        );
        seen.push_str(&line);
        if let Some(addr) = line.trim().strip_prefix("capscope is listening on ") {
            break addr.parse().unwrap();
        }
    };
    let rest = std::thread::spawn(move || {
        let mut rest = String::new();
        stderr.read_to_string(&mut rest).unwrap();
        seen + &rest
    });
    (addr, rest)
}

fn peak_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn spawn(args: &[&str], ca_dir: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_capscope"))
        .args(["--ca-dir", ca_dir.to_str().unwrap(), "run", "--headless"])
        .args(args)
        // The session's capture goes under the test's own directory, never the user's home.
        .env("CAPSCOPE_HOME", ca_dir)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn a_100_mb_body_each_way_streams_through_the_binary_with_bounded_memory() {
    let up = start_upstream(true).await;
    let dir = tempfile::tempdir().unwrap();
    let up_ca = dir.path().join("upstream-ca.pem");
    std::fs::write(&up_ca, up.ca.cert_pem()).unwrap();
    let ca_dir = dir.path().join("ca");
    let mut child = spawn(
        &[
            "--listen",
            "127.0.0.1:0",
            "--upstream-ca",
            up_ca.to_str().unwrap(),
        ],
        &ca_dir,
    );
    let (addr, stderr) = listening_addr(&mut child);
    let ca = CertificateAuthority::load_or_create(&ca_dir).unwrap();
    let mut client = ProxyClient::new(addr, &ca).https(&up.authority()).await;

    // Down: 100 MB, checked byte for byte as it streams.
    client.ready().await.unwrap();
    let resp = client
        .send_request(in_tunnel("GET", &format!("/repeat/{BIG}"), &up, full("")))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut offset = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            for (i, b) in data.iter().enumerate() {
                let at = offset + i as u64;
                assert_eq!(
                    *b,
                    pattern_byte(at % REPEAT_BLOCK as u64),
                    "byte {at} changed"
                );
            }
            offset += data.len() as u64;
        }
    }
    assert_eq!(offset, BIG);

    // Up: 100 MB streamed from the client, counted by the upstream.
    let upload = PatternBody::new(BIG, 256 * 1024).boxed();
    let (resp, count) = send_h1(&mut client, in_tunnel("POST", "/sink", &up, upload)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(String::from_utf8_lossy(&count), BIG.to_string());

    let peak = peak_kib(child.id());
    eprintln!("capscope peaked at {peak} KiB (VmHWM) with {BIG} bytes each way");
    assert!(
        peak < MAX_PEAK_KIB,
        "the proxy peaked at {peak} KiB while streaming {BIG} bytes"
    );

    drop(client);
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = tokio::task::spawn_blocking(move || {
        let status = child.wait().unwrap();
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        (status, out, stderr.join().unwrap())
    })
    .await
    .unwrap();
    let (status, out, err) = status;
    assert!(
        status.success(),
        "capscope exited with {status}: {out}\n{err}"
    );
    // The banner is for the person (stderr); stdout holds the records alone.
    assert!(
        err.contains(&format!("capscope is listening on {addr}")),
        "{err}"
    );
    assert!(!out.contains("capscope is listening"), "{out}");
    assert!(
        out.contains(&format!(
            "GET {} 200 100.0M",
            up.url(&format!("/repeat/{BIG}"))
        )),
        "no headless line for the download: {out}"
    );
    assert!(
        out.contains("POST"),
        "no headless line for the upload: {out}"
    );
}

#[test]
fn a_remote_listen_address_needs_allow_remote() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_capscope"))
        .args([
            "--ca-dir",
            dir.path().to_str().unwrap(),
            "run",
            "--listen",
            "0.0.0.0:0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--allow-remote"), "{err}");
}
