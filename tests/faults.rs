//! Faults not covered elsewhere (docs/reliability.md lists every fault and its test). Each ends with the
//! proxy still serving: a following normal request succeeds and its record is published.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use capscope::proxy::ProxyConfig;
use capscope::record::State;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Far longer than anything here takes: only a proxy that never answers reaches it.
const HANG: Duration = Duration::from_secs(30);

/// A normal request through the proxy succeeds and its record is published.
async fn still_serves(proxy: &mut TestProxy) {
    let up = start_upstream(false).await;
    let mut client = proxy.client().plain().await;
    let (resp, body) = send_h1(&mut client, request("GET", &up.url("/bytes/10"), "")).await;
    assert_eq!((resp.status().as_u16(), &body[..]), (200, &pattern(10)[..]));
    let r = loop {
        let r = proxy.next_final().await;
        if r.request
            .as_ref()
            .is_some_and(|q| q.url.ends_with("/bytes/10"))
        {
            break r;
        }
    };
    assert_eq!(r.state, State::Done);
}

/// A fake upstream on raw TCP: reads a request head, then does `then` with the socket.
async fn raw_upstream<F, Fut>(then: F) -> (std::net::SocketAddr, Arc<AtomicUsize>)
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let heads = Arc::new(AtomicUsize::new(0));
    let seen = heads.clone();
    let then = Arc::new(then);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let then = then.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                seen.fetch_add(1, Ordering::SeqCst);
                then(s).await;
            });
        }
    });
    (addr, heads)
}

#[tokio::test]
async fn an_upstream_that_answers_garbage_gives_502_and_a_failed_record() {
    let (addr, _) = raw_upstream(|mut s| async move {
        let _ = s.write_all(b"this is not HTTP at all\r\n\r\n").await;
    })
    .await;
    let mut proxy = start_proxy(ProxyConfig::default()).await;
    let mut client = proxy.client().plain().await;
    let (resp, body) = send_h1(&mut client, request("GET", &format!("http://{addr}/x"), "")).await;
    assert_eq!(resp.status(), 502, "{}", String::from_utf8_lossy(&body));
    let r = proxy.next_final().await;
    assert_eq!(r.state, State::Failed);
    assert!(r.error.is_some());
    still_serves(&mut proxy).await;
}

#[tokio::test]
async fn an_upstream_that_stalls_is_given_up_with_the_client_and_recorded() {
    // The upstream reads the request and never answers (nor closes).
    let (addr, heads) = raw_upstream(|s| async move {
        std::future::pending::<()>().await;
        drop(s);
    })
    .await;
    let mut proxy = start_proxy(ProxyConfig::default()).await;
    let mut client = proxy.client().plain().await;
    let url = format!("http://{addr}/held");
    let waiting = tokio::spawn(async move {
        let _ = send_h1(&mut client, request("GET", &url, "")).await;
    });
    let deadline = tokio::time::Instant::now() + HANG;
    while heads.load(Ordering::SeqCst) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "never forwarded");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The client gives up; the exchange ends and its record says so.
    waiting.abort();
    let r = proxy.next_final().await;
    assert_eq!(r.state, State::Failed);
    assert!(
        r.error.as_ref().unwrap().contains("cut off"),
        "{:?}",
        r.error
    );
    still_serves(&mut proxy).await;
}

#[tokio::test]
async fn an_upstream_that_stalls_past_the_response_timeout_gives_504() {
    let (addr, _) = raw_upstream(|s| async move {
        std::future::pending::<()>().await;
        drop(s);
    })
    .await;
    let mut proxy = start_proxy(ProxyConfig {
        response_timeout: Some(Duration::from_secs(1)),
        ..ProxyConfig::default()
    })
    .await;
    let mut client = proxy.client().plain().await;
    let (resp, _) = send_h1(
        &mut client,
        request("GET", &format!("http://{addr}/held"), ""),
    )
    .await;
    assert_eq!(resp.status(), 504);
    assert_eq!(proxy.next_final().await.state, State::Failed);
    still_serves(&mut proxy).await;
}

#[tokio::test]
async fn a_client_that_drops_mid_request_body_leaves_a_failed_record() {
    let up = start_upstream(false).await;
    let mut proxy = start_proxy(ProxyConfig::default()).await;
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Length: 100000\r\n\r\n",
        up.url("/sink"),
        up.authority()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&pattern(1000)).await.unwrap();
    drop(s);
    let r = proxy.next_final().await;
    assert_eq!(r.state, State::Failed);
    let req = r.request.as_ref().unwrap();
    assert_eq!(req.body.size, 1000, "what came is counted");
    still_serves(&mut proxy).await;
}

#[tokio::test]
async fn connections_that_send_nothing_are_closed_after_the_header_timeout() {
    let mut proxy = start_proxy(ProxyConfig {
        header_timeout: Duration::from_secs(1),
        ..ProxyConfig::default()
    })
    .await;
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(TcpStream::connect(proxy.addr()).await.unwrap());
    }
    // The proxy closes each of them (read gives end of file, or a reset).
    for mut s in silent {
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(HANG, s.read(&mut buf))
            .await
            .expect("a silent connection was never closed");
        assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    }
    let deadline = tokio::time::Instant::now() + HANG;
    while proxy.handle.open_connections() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "connections kept open"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    still_serves(&mut proxy).await;
}

/// The capture file's size limit in the disk-full test, in 512-byte blocks (`ulimit -f` in sh).
const CAPTURE_BLOCKS: usize = 64;

/// The disk fills under the capture mid-session (simulated with a file-size limit: writes past it fail
/// with EFBIG as they would with ENOSPC): forwarding goes on and the error names the file.
#[tokio::test]
async fn a_capture_that_cannot_be_written_stops_nothing_and_is_reported() {
    let up = start_upstream(false).await;
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("c.jsonl");
    // SIGXFSZ ignored: the write fails instead of killing the process.
    let (mut child, addr, lines) = spawn_run(
        dir.path(),
        Some(&format!("trap '' XFSZ; ulimit -f {CAPTURE_BLOCKS}")),
        &["-w", capture.to_str().unwrap()],
    );
    let ca = capscope_ca::CertificateAuthority::generate().unwrap();
    let mut client = ProxyClient::new(addr, &ca).plain().await;
    // Far more records than fit under the limit; every request is still answered.
    for i in 0..200 {
        let (resp, body) = send_h1(&mut client, request("GET", &up.url("/llsd/2000"), "")).await;
        assert_eq!(resp.status(), 200, "request {i}");
        assert!(body.len() >= 1900);
    }
    let size = std::fs::metadata(&capture).unwrap().len();
    assert!(size <= (CAPTURE_BLOCKS * 512) as u64, "{size}");

    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    // Every line stderr had (the reading thread ends at its end).
    let everything = lines.iter().collect::<Vec<_>>().join("\n");
    assert!(
        everything.contains(&capture.display().to_string())
            && (everything.contains("too large") || everything.contains("No space")),
        "no clear error about the capture: {everything}"
    );
}

#[test]
fn a_capture_path_that_cannot_be_written_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_capscope"))
        .args(["--ca-dir", dir.path().join("ca").to_str().unwrap()])
        .args(["run", "--listen", "127.0.0.1:0", "-w", "/dev/full"])
        .env("CAPSCOPE_HOME", dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/dev/full"), "{stderr}");
}
