//! The real `capscope run` binary as a child process: a 100 MB body each way streams through with
//! bounded memory, the headless log prints it, SIGTERM stops it cleanly; and a remote listen address
//! is refused without --allow-remote.

mod common;

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use capscope_ca::CertificateAuthority;
use common::*;
use http_body_util::BodyExt;

const BIG: u64 = 100 * 1024 * 1024;
/// Peak resident memory the proxy may reach while 100 MB pass each way (records keep 4 MiB of each).
const MAX_PEAK_KIB: u64 = 60 * 1024;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_for(addr: SocketAddr, child: &mut Child) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("capscope exited early: {status}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("capscope did not listen on {addr}");
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
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut child = spawn(
        &[
            "--listen",
            &addr.to_string(),
            "--upstream-ca",
            up_ca.to_str().unwrap(),
        ],
        &ca_dir,
    );
    wait_for(addr, &mut child).await;
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
        let (mut out, mut err) = (String::new(), String::new());
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        (status, out, err)
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
