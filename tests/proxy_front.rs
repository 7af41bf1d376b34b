//! The front of HTTP/1 connections (`proxy::front`): requests the hook holds (long polls) are served
//! without hyper's server, the rest handed to hyper on the same connection. Raw bytes on the wire, so
//! what the front writes is what is checked: pipelining, the hand-over, `Expect: 100-continue`, an
//! oversized head and garbage after a held poll, a client that leaves while held, keep-alive against
//! `Connection: close` and HTTP/1.0, the proxy draining.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use capscope::proxy::hook::{BoxFuture, Decision, Handled, Hook, RequestHead, Route, Upstream};
use capscope::proxy::{Proxy, ProxyConfig, ProxyHandle};
use capscope::record::{Bus, Kind, Received, Record, State, Subscriber};
use http::{Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};

/// Far longer than anything here should take.
const HANG: Duration = Duration::from_secs(10);

/// What the hook saw, for the test.
#[derive(Default)]
struct Seen {
    holds_asked: AtomicUsize,
    handled: AtomicUsize,
    /// Route futures dropped before they answered.
    dropped: AtomicUsize,
    dropped_now: Notify,
}

/// Holds `/poll...` (run whole, answered once the test releases the polls) and `/gone` (answered
/// 410 by `decide`); anything else is not its own (capscope's 404 for a request to itself).
struct PollHook {
    seen: Arc<Seen>,
    /// Polls answer once this is true.
    release: watch::Receiver<bool>,
}

fn held_path(head: &RequestHead) -> bool {
    let p = head.uri.path();
    p.starts_with("/poll") || p == "/gone"
}

impl Hook for PollHook {
    fn holds(&self, head: &RequestHead) -> bool {
        self.seen.holds_asked.fetch_add(1, Ordering::SeqCst);
        held_path(head)
    }

    fn decide(&self, head: &RequestHead) -> Decision {
        if head.uri.path() == "/gone" {
            let mut r = Response::new(Bytes::from_static(b"gone\n"));
            *r.status_mut() = StatusCode::GONE;
            return Decision::route(Route::Respond(r));
        }
        if held_path(head) {
            let mut d = Decision::route(Route::Handle);
            d.cap = Some("EventQueueGet".into());
            return d;
        }
        Decision::pass()
    }

    fn handle(&self, head: RequestHead, body: Bytes, _: Upstream) -> BoxFuture<'static, Handled> {
        self.seen.handled.fetch_add(1, Ordering::SeqCst);
        let mut release = self.release.clone();
        let guard = DropGuard(self.seen.clone(), false);
        Box::pin(async move {
            let mut guard = guard;
            let _ = release.wait_for(|go| *go).await;
            guard.1 = true;
            let text = format!(
                "{} answered: {}",
                head.uri.path(),
                String::from_utf8_lossy(&body)
            );
            let mut response = Response::new(Bytes::from(text));
            response
                .headers_mut()
                .insert("content-type", http::HeaderValue::from_static("text/plain"));
            Handled {
                response,
                upstream_url: None,
                original_body: None,
                notes: vec!["held".into()],
            }
        })
    }
}

/// Counts a route future dropped before its answer.
struct DropGuard(Arc<Seen>, bool);

impl Drop for DropGuard {
    fn drop(&mut self) {
        if !self.1 {
            self.0.dropped.fetch_add(1, Ordering::SeqCst);
            self.0.dropped_now.notify_one();
        }
    }
}

struct Front {
    handle: ProxyHandle,
    hook: Arc<Seen>,
    records: Subscriber,
    release: watch::Sender<bool>,
}

/// A proxy with the [`PollHook`]; `held`: polls wait for `release`.
async fn start(config: ProxyConfig, held: bool) -> Front {
    let (release, rx) = watch::channel(!held);
    let seen = Arc::new(Seen::default());
    let ca = Arc::new(capscope_ca::CertificateAuthority::generate().unwrap());
    let bus = Arc::new(Bus::default());
    let records = bus.subscribe();
    let handle = Proxy::builder(config)
        .ca(ca)
        .bus(bus)
        .hook(Arc::new(PollHook {
            seen: seen.clone(),
            release: rx,
        }))
        .with_listener(TcpListener::bind("127.0.0.1:0").await.unwrap())
        .start()
        .await
        .unwrap();
    Front {
        handle,
        hook: seen,
        records,
        release,
    }
}

impl Front {
    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.handle.local_addr()).await.unwrap()
    }

    async fn next_final(&mut self) -> Arc<Record> {
        loop {
            match tokio::time::timeout(HANG, self.records.recv())
                .await
                .expect("no record in time")
            {
                Some(Received::Record(r)) if r.state != State::Open => return r,
                Some(_) => continue,
                None => panic!("the record stream ended"),
            }
        }
    }
}

fn poll(path: &str, body: &str, extra: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: capscope\r\nContent-Length: {}\r\n{extra}\r\n{body}",
        body.len()
    )
}

/// Reads one response (head and a `content-length` body) from `s`, keeping any bytes after it in
/// `rest`.
async fn read_response(s: &mut TcpStream, rest: &mut Vec<u8>) -> (String, String) {
    loop {
        if let Some(end) = find(rest, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&rest[..end + 4]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    n.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if rest.len() >= end + 4 + len {
                let body = String::from_utf8_lossy(&rest[end + 4..end + 4 + len]).into_owned();
                rest.drain(..end + 4 + len);
                return (head, body);
            }
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(HANG, s.read(&mut chunk))
            .await
            .expect("no answer in time")
            .unwrap();
        assert!(
            n > 0,
            "the connection closed; so far {:?}",
            String::from_utf8_lossy(rest)
        );
        rest.extend_from_slice(&chunk[..n]);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Whether the proxy closed `s` (end of file or a reset), reading what is left.
async fn closed(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 256];
    matches!(
        tokio::time::timeout(HANG, s.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test]
async fn pipelined_polls_on_one_connection_are_answered_in_order() {
    let mut front = start(ProxyConfig::default(), false).await;
    let mut s = front.connect().await;
    let two = format!(
        "{}{}",
        poll("/poll/a", "one", ""),
        poll("/poll/b", "two", "")
    );
    s.write_all(two.as_bytes()).await.unwrap();
    let mut rest = Vec::new();
    let (head, body) = read_response(&mut s, &mut rest).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("\r\ndate: "), "{head}");
    assert!(!head.contains("connection:"), "{head}");
    assert_eq!(body, "/poll/a answered: one");
    let (_, body) = read_response(&mut s, &mut rest).await;
    assert_eq!(body, "/poll/b answered: two");
    assert_eq!(front.hook.handled.load(Ordering::SeqCst), 2);
    assert_eq!(front.hook.dropped.load(Ordering::SeqCst), 0);
    assert!(front.hook.holds_asked.load(Ordering::SeqCst) >= 2);
    for _ in 0..2 {
        let r = front.next_final().await;
        assert_eq!(r.state, State::Done);
        assert_eq!(r.cap.as_deref(), Some("EventQueueGet"));
        assert!(r.notes.iter().any(|n| n == "held"), "{:?}", r.notes);
    }
}

#[tokio::test]
async fn a_poll_held_while_the_next_request_arrives_keeps_it() {
    let (front, mut s) = {
        let front = start(ProxyConfig::default(), true).await;
        let s = front.connect().await;
        (front, s)
    };
    s.write_all(poll("/poll/a", "one", "").as_bytes())
        .await
        .unwrap();
    // The next request comes while the first is held; its bytes wait for their turn.
    wait_for(|| front.hook.handled.load(Ordering::SeqCst) == 1).await;
    s.write_all(poll("/poll/b", "two", "").as_bytes())
        .await
        .unwrap();
    tokio::task::yield_now().await;
    front.release.send(true).unwrap();
    let mut rest = Vec::new();
    assert_eq!(
        read_response(&mut s, &mut rest).await.1,
        "/poll/a answered: one"
    );
    assert_eq!(
        read_response(&mut s, &mut rest).await.1,
        "/poll/b answered: two"
    );
}

#[tokio::test]
async fn a_request_after_a_poll_goes_to_hyper_on_the_same_connection() {
    let mut front = start(ProxyConfig::default(), false).await;
    let mut s = front.connect().await;
    let both = format!(
        "{}GET /other HTTP/1.1\r\nHost: capscope\r\n\r\n",
        poll("/poll/a", "one", "")
    );
    s.write_all(both.as_bytes()).await.unwrap();
    let mut rest = Vec::new();
    assert_eq!(
        read_response(&mut s, &mut rest).await.1,
        "/poll/a answered: one"
    );
    // Not held: hyper serves it (capscope's 404 for a path of its own it does not know).
    let (head, body) = read_response(&mut s, &mut rest).await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    assert!(body.contains("no such endpoint /other"), "{body}");
    // hyper keeps serving the connection, held polls too.
    s.write_all(poll("/poll/c", "three", "").as_bytes())
        .await
        .unwrap();
    assert_eq!(
        read_response(&mut s, &mut rest).await.1,
        "/poll/c answered: three"
    );
    let kinds: Vec<_> = [
        front.next_final().await,
        front.next_final().await,
        front.next_final().await,
    ]
    .iter()
    .map(|r| r.request.as_ref().unwrap().url.clone())
    .collect();
    assert_eq!(kinds, ["/poll/a", "/other", "/poll/c"]);
}

#[tokio::test]
async fn expect_100_continue_is_answered_before_the_body_is_read() {
    let front = start(ProxyConfig::default(), false).await;
    let mut s = front.connect().await;
    s.write_all(
        b"POST /poll/e HTTP/1.1\r\nHost: c\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .await
    .unwrap();
    let mut rest = Vec::new();
    let mut chunk = [0u8; 256];
    while find(&rest, b"\r\n\r\n").is_none() {
        let n = tokio::time::timeout(HANG, s.read(&mut chunk))
            .await
            .expect("no 100 Continue")
            .unwrap();
        assert!(n > 0);
        rest.extend_from_slice(&chunk[..n]);
    }
    assert!(rest.starts_with(b"HTTP/1.1 100 Continue\r\n\r\n"));
    rest.drain(..25);
    s.write_all(b"hello").await.unwrap();
    assert_eq!(
        read_response(&mut s, &mut rest).await.1,
        "/poll/e answered: hello"
    );
}

#[tokio::test]
async fn keep_alive_connection_close_and_http_1_0() {
    let front = start(ProxyConfig::default(), false).await;

    // HTTP/1.1 with Connection: close: answered with `connection: close`, then closed.
    let mut s = front.connect().await;
    s.write_all(poll("/poll/a", "x", "Connection: close\r\n").as_bytes())
        .await
        .unwrap();
    let mut rest = Vec::new();
    let (head, _) = read_response(&mut s, &mut rest).await;
    assert!(head.contains("\r\nconnection: close\r\n"), "{head}");
    assert!(closed(&mut s).await);

    // HTTP/1.0: answered in HTTP/1.0, closed.
    let mut s = front.connect().await;
    s.write_all(b"POST /poll/b HTTP/1.0\r\nContent-Length: 1\r\n\r\ny")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let (head, body) = read_response(&mut s, &mut rest).await;
    assert!(head.starts_with("HTTP/1.0 200 OK\r\n"), "{head}");
    assert!(!head.contains("connection:"), "{head}");
    assert_eq!(body, "/poll/b answered: y");
    assert!(closed(&mut s).await);

    // HTTP/1.0 asking for keep-alive: kept, and said so.
    let mut s = front.connect().await;
    let ka = "POST /poll/c HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nz";
    s.write_all(format!("{ka}{ka}").as_bytes()).await.unwrap();
    let mut rest = Vec::new();
    let (head, _) = read_response(&mut s, &mut rest).await;
    assert!(head.contains("\r\nconnection: keep-alive\r\n"), "{head}");
    assert_eq!(
        read_response(&mut s, &mut rest).await.1,
        "/poll/c answered: z"
    );
}

#[tokio::test]
async fn a_client_that_leaves_while_held_drops_the_route_and_leaves_a_failed_record() {
    let mut front = start(ProxyConfig::default(), true).await;
    let mut s = front.connect().await;
    s.write_all(poll("/poll/a", "one", "").as_bytes())
        .await
        .unwrap();
    wait_for(|| front.hook.handled.load(Ordering::SeqCst) == 1).await;
    drop(s);
    tokio::time::timeout(HANG, front.hook.dropped_now.notified())
        .await
        .expect("the held route was never dropped");
    assert_eq!(front.hook.dropped.load(Ordering::SeqCst), 1);
    let r = front.next_final().await;
    assert_eq!(r.state, State::Failed);
    assert!(
        r.error.as_deref().unwrap_or("").contains("cut off"),
        "{:?}",
        r.error
    );
    wait_for(|| front.handle.open_connections() == 0).await;
}

#[tokio::test]
async fn what_the_hook_answers_itself_is_served_and_recorded() {
    let mut front = start(ProxyConfig::default(), false).await;
    let mut s = front.connect().await;
    let both = format!(
        "{}{}",
        poll("/gone", "ignored", ""),
        poll("/poll/a", "one", "")
    );
    s.write_all(both.as_bytes()).await.unwrap();
    let mut rest = Vec::new();
    let (head, body) = read_response(&mut s, &mut rest).await;
    assert!(head.starts_with("HTTP/1.1 410 Gone\r\n"), "{head}");
    assert_eq!(body, "gone\n");
    // Its body was skipped: the next request on the connection is read right.
    assert_eq!(
        read_response(&mut s, &mut rest).await.1,
        "/poll/a answered: one"
    );
    let r = front.next_final().await;
    assert_eq!(r.response.as_ref().unwrap().status, 410);
    assert!(r.notes.iter().any(|n| n == "answered by the hook"));
}

#[tokio::test]
async fn garbage_or_an_oversized_head_after_a_poll_is_refused_as_before() {
    let mut front = start(
        ProxyConfig {
            max_header_size: 16 * 1024,
            ..ProxyConfig::default()
        },
        false,
    )
    .await;
    for (next, status) in [
        ("\x00\x01\x02 this is not http\r\n\r\n".to_owned(), "400"),
        (
            format!(
                "GET /x HTTP/1.1\r\nX-Big: {}\r\n\r\n",
                "x".repeat(64 * 1024)
            ),
            "431",
        ),
    ] {
        let mut s = front.connect().await;
        s.write_all(poll("/poll/a", "one", "").as_bytes())
            .await
            .unwrap();
        let mut rest = Vec::new();
        assert_eq!(
            read_response(&mut s, &mut rest).await.1,
            "/poll/a answered: one"
        );
        assert_eq!(front.next_final().await.state, State::Done);
        let _ = s.write_all(next.as_bytes()).await;
        let (head, _) = read_response(&mut s, &mut rest).await;
        assert!(head.starts_with(&format!("HTTP/1.1 {status}")), "{head}");
        let r = front.next_final().await;
        assert_eq!(r.kind, Kind::Error);
        assert!(
            r.error.as_deref().unwrap_or("").contains("not HTTP"),
            "{:?}",
            r.error
        );
    }
}

#[tokio::test]
async fn draining_lets_a_held_poll_finish_then_closes() {
    let front = start(
        ProxyConfig {
            shutdown_grace: Duration::from_secs(30),
            ..ProxyConfig::default()
        },
        true,
    )
    .await;
    let mut held = front.connect().await;
    held.write_all(poll("/poll/a", "one", "").as_bytes())
        .await
        .unwrap();
    let mut idle = front.connect().await;
    wait_for(|| front.hook.handled.load(Ordering::SeqCst) == 1).await;
    let Front {
        handle, release, ..
    } = front;
    let shutdown = tokio::spawn(handle.shutdown());
    // The idle connection closes; the held poll is answered, with `connection: close`, then closed.
    assert!(closed(&mut idle).await);
    release.send(true).unwrap();
    let mut rest = Vec::new();
    let (head, body) = read_response(&mut held, &mut rest).await;
    assert!(head.contains("\r\nconnection: close\r\n"), "{head}");
    assert_eq!(body, "/poll/a answered: one");
    assert!(closed(&mut held).await);
    tokio::time::timeout(HANG, shutdown)
        .await
        .expect("the shutdown did not end when the poll did")
        .unwrap();
}

async fn wait_for(cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + HANG;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "waited in vain");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
