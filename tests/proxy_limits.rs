//! Limits under hostile input: decoded bodies stay within `--max-body` in records and within
//! `MAX_REWRITE_BODY` for a rewrite, decoding never holds up other requests, and framing the upstream
//! gets wrong (chunked and a length at once) does not cut a body.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use capscope::proxy::hook::{Decision, Forward, Hook, RequestHead, Rewrite, MAX_REWRITE_BODY};
use capscope::proxy::{Proxy, ProxyConfig};
use capscope::record::{Bus, State};
use common::*;
use http::{HeaderMap, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// How many MiB the bombs decode to (more than `MAX_REWRITE_BODY`).
const BOMB_MIB: usize = 40;

#[tokio::test]
async fn a_compressed_body_is_kept_at_most_max_body_once_decoded() {
    let up = start_upstream(true).await;
    let max_body = 64 * 1024;
    let mut proxy = start_proxy(ProxyConfig {
        max_body,
        ..config_trusting(&up)
    })
    .await;
    let mut client = proxy.client().https(&up.authority()).await;
    let path = format!("/gzbomb/{BOMB_MIB}");
    let (resp, body) = send_h1(&mut client, in_tunnel("GET", &path, &up, full(""))).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        body.len(),
        gzip_bomb(BOMB_MIB).len(),
        "the wire is untouched"
    );

    let r = proxy.next_final().await;
    assert_eq!(r.state, State::Done);
    let b = &r.response.as_ref().unwrap().body;
    assert_eq!(b.content_encoding.as_deref(), Some("gzip"));
    assert!(
        b.data.len() <= max_body,
        "the record keeps {} decoded bytes, over --max-body {max_body}",
        b.data.len()
    );
    assert!(b.truncated, "a record cut at the limit says so");
    assert_eq!(b.size, body.len() as u64, "the size is the wire's");
}

/// Rewrites every response, counting what it is given; `hold` makes it wait for the test.
#[derive(Default)]
struct Counting {
    seen: Mutex<Vec<usize>>,
    hold: Option<Hold>,
}

struct Hold {
    entered: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    release: Mutex<mpsc::Receiver<()>>,
    /// The hook went on by itself: nobody released it in time.
    timed_out: AtomicBool,
    returned: AtomicBool,
}

/// How long a held hook waits for the test before giving up (only reached when the test fails).
const HOLD_LIMIT: Duration = Duration::from_secs(15);

impl Hook for Counting {
    fn decide(&self, _head: &RequestHead) -> Decision {
        Decision::rewritten(Forward::Pass)
    }

    fn rewrite_response(
        &self,
        _head: &RequestHead,
        _request_body: &Bytes,
        _status: StatusCode,
        _headers: &HeaderMap,
        body: Bytes,
    ) -> Rewrite {
        self.seen.lock().unwrap().push(body.len());
        if let Some(hold) = &self.hold {
            let first = hold.entered.lock().unwrap().take();
            if let Some(tx) = first {
                let _ = tx.send(());
                let waited = hold.release.lock().unwrap().recv_timeout(HOLD_LIMIT);
                hold.timed_out.store(waited.is_err(), Ordering::SeqCst);
                hold.returned.store(true, Ordering::SeqCst);
            }
        }
        Rewrite::default()
    }
}

async fn proxy_with(hook: Arc<Counting>, config: ProxyConfig) -> (TestProxy, Arc<Counting>) {
    let ca = Arc::new(capscope_ca::CertificateAuthority::generate().unwrap());
    let bus = Arc::new(Bus::default());
    let records = bus.subscribe();
    let handle = Proxy::builder(config)
        .ca(ca.clone())
        .bus(bus)
        .hook(hook.clone())
        .with_listener(TcpListener::bind("127.0.0.1:0").await.unwrap())
        .start()
        .await
        .unwrap();
    (
        TestProxy {
            handle,
            ca,
            records,
        },
        hook,
    )
}

#[tokio::test]
async fn a_rewrite_never_decodes_past_its_limit() {
    let up = start_upstream(true).await;
    let (mut proxy, hook) = proxy_with(Arc::default(), config_trusting(&up)).await;
    let mut client = proxy.client().https(&up.authority()).await;
    let path = format!("/gzbomb/{BOMB_MIB}");
    let (resp, body) = send_h1(&mut client, in_tunnel("GET", &path, &up, full(""))).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-encoding"], "gzip");
    assert_eq!(&body[..], &gzip_bomb(BOMB_MIB)[..], "forwarded unchanged");
    let seen = hook.seen.lock().unwrap().clone();
    assert!(
        seen.is_empty(),
        "the hook was given a body it could not have whole (decoded sizes {seen:?}, limit \
         {MAX_REWRITE_BODY})"
    );
    let r = proxy.next_final().await;
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("over") && n.contains("unchanged")),
        "{:?}",
        r.notes
    );
    let b = &r.response.as_ref().unwrap().body;
    assert!(b.data.len() <= capscope::proxy::DEFAULT_MAX_BODY);
}

/// The hook holds the rewrite of a large gzip body (standing for a long decode and parse) while an
/// unrelated request goes through. The test runs on one thread: if the rewrite ran on the runtime,
/// nothing else could move until the hook gave up.
#[tokio::test]
async fn unrelated_requests_are_served_while_a_big_body_is_decoded() {
    let up = start_upstream(true).await;
    let (entered_tx, entered_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = mpsc::channel();
    let hook = Arc::new(Counting {
        seen: Mutex::default(),
        hold: Some(Hold {
            entered: Mutex::new(Some(entered_tx)),
            release: Mutex::new(release_rx),
            timed_out: AtomicBool::new(false),
            returned: AtomicBool::new(false),
        }),
    });
    let (proxy, hook) = proxy_with(hook, config_trusting(&up)).await;

    let mut big = proxy.client().https(&up.authority()).await;
    let big_req = in_tunnel("GET", "/gzbomb/8", &up, full(""));
    let big_done = tokio::spawn(async move { send_h1(&mut big, big_req).await });
    entered_rx.await.unwrap();

    // While the hook holds: another client, another request, answered.
    let plain = start_upstream(false).await;
    let mut other = proxy.client().plain().await;
    let (resp, body) = send_h1(&mut other, request("GET", &plain.url("/bytes/10"), "")).await;
    let hook_state = hook.hold.as_ref().unwrap();
    let served_while_held = !hook_state.returned.load(Ordering::SeqCst);
    release_tx.send(()).unwrap();
    assert_eq!(
        (resp.status(), &body[..]),
        (StatusCode::OK, &pattern(10)[..])
    );
    assert!(
        served_while_held && !hook_state.timed_out.load(Ordering::SeqCst),
        "the unrelated request waited for the rewrite to end"
    );
    let (resp, body) = big_done.await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(body.len(), gzip_bomb(8).len());
    assert_eq!(hook.seen.lock().unwrap()[0], 8 << 20, "decoded whole");
}

/// A fake upstream on raw TCP: answers every connection with `reply` after reading the request head,
/// and counts connections.
async fn raw_upstream(reply: &'static [u8]) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s.write_all(reply).await;
                let _ = s.shutdown().await;
            });
        }
    });
    (addr, count)
}

#[tokio::test]
async fn chunked_wins_over_content_length_from_upstream() {
    // RFC 9112 section 6.3: with Transfer-Encoding, Content-Length is ignored (and must not be
    // passed on). The body is 26 bytes in two chunks; the length claims 5.
    let (addr, _) = raw_upstream(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\
          Connection: close\r\n\r\n\
          d\r\nabcdefghijklm\r\nd\r\nnopqrstuvwxyz\r\n0\r\n\r\n",
    )
    .await;
    let mut proxy = start_proxy(ProxyConfig::default()).await;
    let mut client = proxy.client().plain().await;
    let (resp, body) = send_h1(&mut client, request("GET", &format!("http://{addr}/x"), "")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(&body[..], b"abcdefghijklmnopqrstuvwxyz");
    assert_ne!(
        resp.headers().get("content-length").map(|v| v.as_bytes()),
        Some(&b"5"[..]),
        "the stale length was passed on"
    );
    let r = proxy.next_final().await;
    assert_eq!(r.state, State::Done);
    assert_eq!(
        &r.response.as_ref().unwrap().body.data[..],
        b"abcdefghijklmnopqrstuvwxyz"
    );
}

/// Far longer than anything here takes: only a proxy that never answers reaches it.
const HANG: Duration = Duration::from_secs(30);

/// Waits (without a deadline of its own: the test harness's is enough) until `cond` holds.
async fn until(mut cond: impl FnMut() -> bool) {
    while !cond() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn connections_past_the_limit_wait_for_one_to_end() {
    let up = start_upstream(false).await;
    let mut proxy = start_proxy(ProxyConfig {
        max_connections: 2,
        ..ProxyConfig::default()
    })
    .await;
    // Two clients connect and send nothing.
    let idle1 = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
    let _idle2 = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
    until(|| proxy.handle.open_connections() == 2).await;

    let mut third = proxy.client().plain().await;
    let url = up.url("/bytes/10");
    let mut answer =
        tokio::spawn(async move { send_h1(&mut third, request("GET", &url, "")).await });
    // At the limit the third connection is not served...
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut answer)
            .await
            .is_err(),
        "a connection past the limit was served"
    );
    assert_eq!(proxy.handle.open_connections(), 2);
    // ... until one of the others ends.
    drop(idle1);
    let (resp, body) = answer.await.unwrap();
    assert_eq!((resp.status().as_u16(), &body[..]), (200, &pattern(10)[..]));
    assert_eq!(proxy.next_final().await.state, State::Done);
}

#[tokio::test]
async fn a_request_body_that_stops_arriving_gets_408_and_a_failed_record() {
    let up = start_upstream(false).await;
    let mut proxy = start_proxy(ProxyConfig {
        body_timeout: Duration::from_secs(1),
        ..ProxyConfig::default()
    })
    .await;
    let mut s = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Length: 100\r\n\r\n0123456789",
        up.url("/sink"),
        up.authority()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    // 90 bytes never come. The proxy answers (a proxy that never does is caught by HANG).
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(HANG, s.read(&mut buf))
            .await
            .expect("no answer to a stalled request body")
            .unwrap();
        assert!(n > 0, "the connection closed without an answer");
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");

    let r = proxy.next_final().await;
    assert_eq!(r.state, State::Failed);
    let error = r.error.clone().unwrap_or_default();
    assert!(error.contains("--body-timeout"), "{error}");

    // The proxy serves on.
    let mut client = proxy.client().plain().await;
    let (resp, _) = send_h1(&mut client, request("GET", &up.url("/bytes/10"), "")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(proxy.next_final().await.state, State::Done);
}

/// The open-file limit the binary runs under in the accept-error test.
const FD_LIMIT: usize = 64;
/// How long the test keeps the proxy out of file descriptors.
const STARVED: Duration = Duration::from_secs(3);

/// What a capscope process still holds of a flood of connections (Linux, from /proc): its open
/// descriptors, and the connections waiting in the accept queue of its listener on 127.0.0.1:`port`
/// (for a listening socket, /proc/net/tcp's `rx_queue` is that queue's length).
fn held(pid: u32, port: u16) -> (usize, usize) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(usize::MAX, |d| d.count());
    let local = format!("0100007F:{port:04X}");
    let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let queued = tcp
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.get(1) == Some(&local.as_str()) && f.get(3) == Some(&"0A"))
        .and_then(|f| f.get(4)?.split(':').nth(1).map(str::to_owned))
        .map(|rx| usize::from_str_radix(&rx, 16).unwrap())
        .expect("the listener in /proc/net/tcp");
    (fds, queued)
}

#[tokio::test]
async fn out_of_file_descriptors_the_accept_loop_backs_off_logs_rarely_and_recovers() {
    let up = start_upstream(false).await;
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr, lines) = spawn_run(
        dir.path(),
        Some(&format!("ulimit -n {FD_LIMIT}")),
        &["--no-save"],
    );
    let next_line = |what: &str| {
        lines
            .recv_timeout(HANG)
            .unwrap_or_else(|_| panic!("no {what} from capscope"))
    };

    // Twice as many idle connections as the proxy has file descriptors.
    let started = std::time::Instant::now();
    let mut idle = Vec::new();
    for _ in 0..FD_LIMIT * 2 {
        idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    let is_failure = |l: &str| l.contains("accepting a connection failed");
    while !is_failure(&next_line("accept failure")) {}
    tokio::time::sleep(STARVED).await;
    drop(idle);
    let starved = started.elapsed();

    // The proxy serves again once the connections are gone: gone from it, not only from this side.
    // Those it accepted close as it reads their end; those still in its accept queue (most of them:
    // it could not accept them) it accepts after its back-off, each taking a descriptor until it
    // closes. A request sent before that may find no descriptor for its upstream connection and is
    // answered 502 "Too many open files" (docs/reliability.md); so wait until the queue is empty
    // and half the descriptors are free.
    let pid = child.id();
    let mut still = held(pid, addr.port());
    while still.0 > FD_LIMIT / 2 || still.1 > 0 {
        assert!(
            started.elapsed() < starved + HANG,
            "capscope still holds the flood: {} descriptors open, {} connections queued",
            still.0,
            still.1
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        still = held(pid, addr.port());
    }
    let ca = capscope_ca::CertificateAuthority::generate().unwrap();
    let mut client = ProxyClient::new(addr, &ca).plain().await;
    let answer = tokio::time::timeout(
        HANG,
        send_h1(&mut client, request("GET", &up.url("/bytes/10"), "")),
    )
    .await
    .expect("the proxy does not serve after running out of file descriptors");
    assert_eq!(answer.0.status(), 200, "{:?}", answer.1);

    let _ = child.kill();
    let _ = child.wait();
    let watched = started.elapsed();
    let failures = 1 + lines.iter().filter(|l| is_failure(l)).count();
    // One report per ACCEPT_LOG_INTERVAL (10 s) at most, however often accepting fails.
    let allowed = 1 + watched.as_secs() as usize / 10;
    assert!(
        failures <= allowed,
        "{failures} accept-failure lines in {watched:?}, {starved:?} of them out of file \
         descriptors (at most {allowed} expected)"
    );
}

#[tokio::test]
async fn a_response_body_that_stops_arriving_is_cut_after_the_body_timeout() {
    // 10 of 100 bytes, then the upstream holds the connection open and sends nothing more.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (held_tx, held_rx) = mpsc::channel();
    tokio::spawn(async move {
        if let Ok((mut s, _)) = listener.accept().await {
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
                .await;
            let _ = held_tx.send(s);
        }
    });
    let mut proxy = start_proxy(ProxyConfig {
        body_timeout: Duration::from_secs(1),
        ..ProxyConfig::default()
    })
    .await;
    let mut s = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
    let head = format!("GET http://{addr}/stall HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    // The client gets the head and the 10 bytes, then the connection is closed: the body cannot be
    // finished. (A proxy that waits forever is caught by HANG.)
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = tokio::time::timeout(HANG, s.read(&mut buf))
            .await
            .expect("a stalled response body was never given up")
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("0123456789"), "{text}");

    let r = proxy.next_final().await;
    assert_eq!(r.state, State::Failed);
    let error = r.error.clone().unwrap_or_default();
    assert!(error.contains("--body-timeout"), "{error}");
    assert!(held_rx.try_recv().is_ok(), "the upstream still held it");
}
