//! The streamed client against scripted raw HTTP servers on 127.0.0.1 (the servers are the whole
//! client's test servers).

use std::sync::atomic::Ordering;

use http::header::CONTENT_LENGTH;
use http::StatusCode;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::super::whole::tests::{read_request, server, tls_server_closing};
use super::super::whole::{Idle, WholeClient};
use super::*;
use crate::proxy::ProxyConfig;

fn client_with(config: &ProxyConfig, response_timeout: Option<Duration>) -> StreamedClient {
    let tls = Arc::new(super::super::client_tls_config(config).expect("TLS config"));
    let connector = Connector {
        tls: tokio_rustls::TlsConnector::from(tls),
        connect_timeout: Duration::from_secs(5),
    };
    let whole = WholeClient::new(
        connector.clone(),
        Duration::from_secs(60),
        None,
        Duration::from_secs(5),
    );
    StreamedClient::new(connector, whole.pool(), response_timeout)
}

fn client() -> StreamedClient {
    client_with(&ProxyConfig::default(), None)
}

fn request(method: Method, url: &str, body: &'static [u8]) -> Request<ProxyBody> {
    let mut r = Request::new(ProxyBody::full(Bytes::from_static(body)));
    *r.method_mut() = method;
    *r.uri_mut() = url.parse().expect("url");
    r
}

fn get(url: &str) -> Request<ProxyBody> {
    request(Method::GET, url, b"")
}

/// The body, frame by frame.
async fn frames(mut body: LeanBody) -> Result<Vec<Bytes>, LeanBodyError> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            out.push(data);
        }
    }
    assert!(body.is_end_stream());
    Ok(out)
}

async fn text(body: LeanBody) -> Vec<u8> {
    frames(body).await.expect("whole body").concat()
}

#[tokio::test]
async fn a_sized_answer_streams_and_its_connection_is_reused() {
    let ok: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello";
    let (base, connections, mut seen) = server(vec![ok, ok], false).await;
    let c = client();
    for _ in 0..2 {
        let r = c
            .send(request(Method::POST, &format!("{base}/eq?x=1"), b"<llsd/>"))
            .await
            .expect("answer");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["x-a"], "b");
        assert_eq!(r.body().size_hint().exact(), Some(5));
        assert_eq!(text(r.into_body()).await, b"hello");
    }
    // The second request went on the first one's connection.
    assert_eq!(connections.load(Ordering::SeqCst), 1, "not reused");
    let request = String::from_utf8(seen.recv().await.expect("request")).expect("text");
    assert!(
        request.starts_with("POST /eq?x=1 HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(
        request.contains(&format!("host: {}\r\n", &base[7..])),
        "{request}"
    );
    assert!(request.contains("content-length: 7\r\n"), "{request}");
    assert!(request.ends_with("\r\n\r\n<llsd/>"), "{request}");
}

#[tokio::test]
async fn a_chunked_answer_is_unchunked_as_it_streams_and_a_length_beside_it_dropped() {
    let chunked: &[u8] =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n\
        5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n";
    let ok: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let (base, connections, _seen) = server(vec![chunked, ok], false).await;
    let c = client();
    let r = c.send(get(&base)).await.expect("answer");
    assert!(!r.headers().contains_key(CONTENT_LENGTH));
    assert_eq!(r.body().size_hint().exact(), None);
    let parts = frames(r.into_body()).await.expect("body");
    assert_eq!(parts.concat(), b"hello world");
    // After the last chunk and its trailers the connection is clean: kept and used again.
    let r = c.send(get(&base)).await.expect("second");
    assert_eq!(text(r.into_body()).await, b"ok");
    assert_eq!(connections.load(Ordering::SeqCst), 1, "not reused");
}

#[tokio::test]
async fn an_answer_without_length_ends_at_the_close_and_is_not_kept() {
    let until_close: &[u8] = b"HTTP/1.1 200 OK\r\n\r\nall of it";
    let ok: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let (base, connections, _seen) = server(vec![until_close, ok], true).await;
    let c = client();
    let r = c.send(get(&base)).await.expect("answer");
    assert_eq!(text(r.into_body()).await, b"all of it");
    let r = c.send(get(&base)).await.expect("second");
    assert_eq!(text(r.into_body()).await, b"ok");
    assert_eq!(connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_answer_without_length_over_tls_needs_close_notify_to_end() {
    let config = ProxyConfig {
        insecure_upstream: true,
        ..ProxyConfig::default()
    };
    let c = client_with(&config, None);
    let unsized_: &[u8] = b"HTTP/1.1 200 OK\r\n\r\nall of it";

    let closed_cleanly = tls_server_closing(unsized_, true).await;
    let r = c.send(get(&closed_cleanly)).await.expect("answer");
    assert_eq!(text(r.into_body()).await, b"all of it");

    // The same bytes, but the end could be a cut: the body breaks off, as hyper and curl refuse it.
    let cut = tls_server_closing(unsized_, false).await;
    let r = c.send(get(&cut)).await.expect("head");
    let e = frames(r.into_body()).await.expect_err("no close_notify");
    assert!(e.to_string().contains("close_notify"), "{e}");

    // A body with a length needs no close_notify: its end is known.
    let sized: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\nall of it";
    let dropped = tls_server_closing(sized, false).await;
    let r = c.send(get(&dropped)).await.expect("sized answer");
    assert_eq!(text(r.into_body()).await, b"all of it");
}

#[tokio::test]
async fn head_204_and_304_have_no_body_and_keep_the_connection() {
    let head: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
    let none: &[u8] = b"HTTP/1.1 204 No Content\r\n\r\n";
    let same: &[u8] = b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n";
    let ok: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let (base, connections, _seen) = server(vec![head, none, same, ok], false).await;
    let c = client();
    for method in [Method::HEAD, Method::GET, Method::GET] {
        let r = c.send(request(method, &base, b"")).await.expect("answer");
        assert!(r.body().is_end_stream(), "{}", r.status());
        assert!(text(r.into_body()).await.is_empty());
    }
    let r = c.send(get(&base)).await.expect("last");
    assert_eq!(text(r.into_body()).await, b"ok");
    assert_eq!(connections.load(Ordering::SeqCst), 1, "not reused");
}

#[tokio::test]
async fn a_100_continue_before_the_answer_is_skipped() {
    let answer: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n\
        HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone";
    let (base, _, _seen) = server(vec![answer], false).await;
    let r = client()
        .send(request(Method::PUT, &base, b"data"))
        .await
        .expect("answer");
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(text(r.into_body()).await, b"done");
}

#[tokio::test]
async fn a_body_dropped_half_way_closes_its_connection() {
    // 4 of 8 bytes come; the reader drops the body after them.
    let part: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nhalf";
    let ok: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let (base, connections, _seen) = server(vec![part, ok], false).await;
    let c = client();
    let r = c.send(get(&base)).await.expect("answer");
    let mut body = r.into_body();
    let first = body.frame().await.expect("a frame").expect("data");
    assert_eq!(first.into_data().expect("data"), "half");
    drop(body);
    let r = c.send(get(&base)).await.expect("second");
    assert_eq!(text(r.into_body()).await, b"ok");
    assert_eq!(
        connections.load(Ordering::SeqCst),
        2,
        "a cut connection was reused"
    );
}

#[tokio::test]
async fn a_body_cut_by_the_server_is_an_error_not_an_end() {
    let cut: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nhalf";
    let (base, _, _seen) = server(vec![cut], true).await;
    let r = client().send(get(&base)).await.expect("head");
    let e = frames(r.into_body()).await.expect_err("cut");
    assert!(
        e.to_string().contains("closed in the middle of the body"),
        "{e}"
    );
}

#[tokio::test]
async fn bad_chunk_framing_breaks_the_body_off() {
    for (answer, words) in [
        (
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"[..],
            "invalid chunk size line",
        ),
        (
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY0\r\n\r\n"[..],
            "does not end in CRLF",
        ),
    ] {
        let leaked: &'static [u8] = Box::leak(answer.to_vec().into_boxed_slice());
        let (base, _, _seen) = server(vec![leaked], false).await;
        let r = client().send(get(&base)).await.expect("head");
        let e = frames(r.into_body()).await.expect_err("bad framing");
        assert!(e.to_string().contains(words), "{e}");
    }
}

#[tokio::test]
async fn a_kept_connection_the_server_closed_is_not_used_again() {
    let ok: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    // The server answers once per connection, then closes it although the answer allowed reuse.
    let (base, connections, mut seen) = server(vec![ok, ok], true).await;
    let c = client();
    let r = c.send(get(&base)).await.expect("first");
    assert_eq!(text(r.into_body()).await, b"ok");
    let _ = seen.recv().await;
    // Wait until the kept connection has the server's close (taken out of the pool as it is).
    let key = base.to_ascii_lowercase();
    let mut kept = c
        .pool
        .lock()
        .get_mut(&key)
        .and_then(Vec::pop)
        .expect("kept");
    let mut rest = Vec::new();
    assert_eq!(kept.stream.read_to_end(&mut rest).await.expect("eof"), 0);
    c.pool.lock().entry(key).or_default().push(kept);
    let r = c
        .send(get(&base))
        .await
        .expect("second, on a fresh connection");
    assert_eq!(text(r.into_body()).await, b"ok");
    assert_eq!(connections.load(Ordering::SeqCst), 2);
}

/// What the scripted server on its own thread does with its second connection.
#[derive(Clone, Copy)]
enum Second {
    /// Reads one request whole, answers it, then reads until the client closes.
    Answer,
    /// Reads the first bytes of the request, then resets the connection (SO_LINGER 0).
    Reset,
}

/// What the scripted server reports to the test.
#[derive(Debug)]
enum Event {
    /// All a connection received, whole requests or not, once it ended.
    Received(usize, Vec<u8>),
    /// The first connection was reset.
    ResetDone,
}

/// A server on a thread and runtime of its own (the tests block their own runtime's thread, and it
/// must act meanwhile). It answers one request on its first connection with keep-alive, resets that
/// connection (SO_LINGER 0) when `reset` says so, then does `second` on its second connection. It
/// counts the connections it accepts; each connection's bytes come back as an [`Event::Received`].
fn resetting_server(
    second: Second,
) -> (
    String,
    Arc<std::sync::atomic::AtomicUsize>,
    std::sync::mpsc::Sender<()>,
    std::sync::mpsc::Receiver<Event>,
) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    listener.set_nonblocking(true).expect("nonblocking");
    let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = Arc::clone(&connections);
    let (reset_tx, reset_rx) = std::sync::mpsc::channel::<()>();
    let (events_tx, events) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("server runtime");
        runtime.block_on(async move {
            let listener = TcpListener::from_std(listener).expect("listener");
            let Ok((mut first, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            let Some(request) = read_request(&mut first).await else {
                return;
            };
            let _ = events_tx.send(Event::Received(1, request));
            let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
            if first.write_all(ok).await.is_err() || reset_rx.recv().is_err() {
                return;
            }
            // Abortive close: an RST, not a FIN.
            let _ = first.set_zero_linger();
            drop(first);
            let _ = events_tx.send(Event::ResetDone);

            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            let mut got = Vec::new();
            match second {
                Second::Answer => {
                    let Some(request) = read_request(&mut s).await else {
                        return;
                    };
                    got = request;
                    if s.write_all(ok).await.is_err() {
                        return;
                    }
                    // Anything more (a request sent twice would show here) until the client closes.
                    let _ = s.read_to_end(&mut got).await;
                }
                Second::Reset => {
                    let mut start = [0u8; 16];
                    if s.read_exact(&mut start).await.is_ok() {
                        got.extend_from_slice(&start);
                    }
                    let _ = s.set_zero_linger();
                    drop(s);
                }
            }
            let _ = events_tx.send(Event::Received(2, got));
            // A third connection would be a loop: counted, and held until the test ends.
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                held.push(s);
            }
        });
    });
    (format!("http://{addr}"), connections, reset_tx, events)
}

/// The next event from the server: what connection `n` received.
fn received(events: &std::sync::mpsc::Receiver<Event>, n: usize) -> String {
    match events.recv_timeout(Duration::from_secs(10)) {
        Ok(Event::Received(m, bytes)) if m == n => String::from_utf8(bytes).expect("text"),
        other => panic!("connection {n}'s bytes, not {other:?}"),
    }
}

/// Has the server reset the connection kept in `c`'s pool for `base`, and waits until this side's
/// kernel knows (a reset connection has no peer any more), blocking this thread all along. Then
/// checks that a checkout still hands the connection out.
///
/// Why it does: checkout's look at a kept connection is one read poll, and tokio answers it from
/// the readiness its reactor last saw (cleared by the short read that ended the first answer), so a
/// reset that came after the reactor last ran is met first by the write. In the proxy that window is
/// short (a reset arriving just as the connection is taken); here the reactor cannot run while the
/// thread is blocked, so the window stays open and the real write fails, with no test hook.
fn reset_kept_connection(
    c: &StreamedClient,
    base: &str,
    reset: &std::sync::mpsc::Sender<()>,
    events: &std::sync::mpsc::Receiver<Event>,
) {
    reset.send(()).expect("server thread");
    match events.recv_timeout(Duration::from_secs(10)) {
        Ok(Event::ResetDone) => {}
        other => panic!("the server did not reset the first connection: {other:?}"),
    }
    let key = base.to_ascii_lowercase();
    let reset_seen = std::time::Instant::now();
    loop {
        let known = match c.pool.lock().get(&key).and_then(|l| l.last()) {
            Some(Idle {
                stream: Stream::Plain(s),
                ..
            }) => s.peer_addr().is_err(),
            _ => panic!("the first connection was not kept"),
        };
        if known {
            break;
        }
        assert!(
            reset_seen.elapsed() < Duration::from_secs(10),
            "the reset never reached the kept connection"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let kept = c
        .pool
        .checkout(&key)
        .expect("the pool noticed the reset at checkout: the write would not fail");
    c.pool.checkin(key, kept);
}

#[tokio::test]
async fn a_request_whose_write_fails_on_a_kept_connection_is_sent_once_more_on_a_fresh_one() {
    let (base, connections, reset, events) = resetting_server(Second::Answer);
    let c = client();
    let r = c.send(get(&format!("{base}/first"))).await.expect("first");
    assert_eq!(text(r.into_body()).await, b"ok");
    let first = received(&events, 1);
    // The kept connection is reset in a way checkout does not see: writing the next request on it
    // fails (ECONNRESET), and only the write tells.
    reset_kept_connection(&c, &base, &reset, &events);
    let r = c
        .send(get(&format!("{base}/second")))
        .await
        .expect("the second request, sent again on a fresh connection");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(text(r.into_body()).await, b"ok");
    assert_eq!(connections.load(Ordering::SeqCst), 2, "a second connection");
    // The server saw each request once, whole: the first on the first connection (reset before
    // anything more came), the second on the second connection, and nothing after it.
    drop(c);
    assert!(first.starts_with("GET /first HTTP/1.1\r\n"), "{first}");
    let second = received(&events, 2);
    assert!(second.starts_with("GET /second HTTP/1.1\r\n"), "{second}");
    assert!(second.ends_with("\r\n\r\n"), "{second}");
    assert_eq!(second.matches("GET ").count(), 1, "{second}");
}

#[tokio::test]
async fn when_the_fresh_connection_fails_too_the_request_fails_without_a_third_try() {
    let (base, connections, reset, events) = resetting_server(Second::Reset);
    let c = client();
    let r = c.send(get(&format!("{base}/first"))).await.expect("first");
    assert_eq!(text(r.into_body()).await, b"ok");
    received(&events, 1);
    reset_kept_connection(&c, &base, &reset, &events);
    // A request far larger than the socket buffers (a 32 MiB header): its write cannot be done
    // before the server has read it, and the server resets the fresh connection after 16 bytes, so
    // the write fails there too, whatever the timing.
    let mut big = get(&format!("{base}/second"));
    big.headers_mut().insert(
        "x-big",
        http::HeaderValue::from_str(&"b".repeat(32 << 20)).expect("value"),
    );
    // (A loop would connect a third time and hang on a connection nobody reads: bounded here.)
    let e = tokio::time::timeout(Duration::from_secs(30), c.send(big))
        .await
        .expect("no answer and no error: tried again and again?")
        .expect_err("both writes failed");
    assert!(
        e.to_string().contains("connection reset by the server"),
        "{e}"
    );
    assert!(
        matches!(&e, UpstreamError::Protocol { reason, .. } if reason.starts_with("sending the request: ")),
        "{e}"
    );
    assert_eq!(
        connections.load(Ordering::SeqCst),
        2,
        "not tried a third time"
    );
    assert_eq!(received(&events, 2), "GET /second HTTP");
}

#[tokio::test]
async fn a_silent_server_is_given_up_after_the_response_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (hold_tx, mut hold_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        if let Ok((mut s, _)) = listener.accept().await {
            if read_request(&mut s).await.is_some() {
                let _ = hold_tx.send(s);
            }
        }
    });
    let e = client_with(&ProxyConfig::default(), Some(Duration::from_millis(200)))
        .send(get(&format!("http://{addr}/")))
        .await
        .expect_err("timeout");
    assert!(matches!(e, UpstreamError::Timeout { .. }), "{e}");
    assert!(hold_rx.recv().await.is_some());
}

#[tokio::test]
async fn malformed_or_missing_answers_are_protocol_errors() {
    for answer in [
        &b"HTTP/1.1 abc\r\n\r\n"[..],
        &b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"[..],
        &b""[..],
    ] {
        let leaked: &'static [u8] = Box::leak(answer.to_vec().into_boxed_slice());
        let (base, _, _seen) = server(vec![leaked], true).await;
        let e = client().send(get(&base)).await.expect_err("malformed");
        assert!(matches!(e, UpstreamError::Protocol { .. }), "{e}");
    }
}

#[tokio::test]
async fn a_large_body_streams_in_many_frames_without_being_held_whole() {
    const SIZE: usize = 4 * 1024 * 1024;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        if let Ok((mut s, _)) = listener.accept().await {
            if read_request(&mut s).await.is_some() {
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {SIZE}\r\n\r\n");
                let _ = s.write_all(head.as_bytes()).await;
                let chunk = vec![b'x'; 64 * 1024];
                for _ in 0..SIZE / chunk.len() {
                    if s.write_all(&chunk).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    let r = client()
        .send(get(&format!("http://{addr}/big")))
        .await
        .expect("head");
    let mut body = r.into_body();
    let (mut total, mut count, mut largest) = (0, 0, 0);
    while let Some(frame) = body.frame().await {
        let data = frame.expect("frame").into_data().expect("data");
        assert!(data.iter().all(|&b| b == b'x'));
        total += data.len();
        largest = largest.max(data.len());
        count += 1;
    }
    assert_eq!(total, SIZE);
    assert!(count > 1, "one frame");
    assert!(largest <= MAX_BODY_READ, "a frame of {largest} bytes");
}

#[test]
fn only_plain_small_requests_are_served() {
    let url = "http://127.0.0.1:1/x";
    assert!(serves(&get(url)));
    assert!(serves(&request(Method::POST, url, b"<llsd/>")));
    assert!(serves(&get("https://example.com/x")));
    // A body over the limit, an Upgrade, CONNECT: hyper-util's.
    let big: &'static [u8] = Box::leak(vec![0u8; MAX_REQUEST_BODY as usize + 1].into_boxed_slice());
    assert!(!serves(&request(Method::POST, url, big)));
    let mut upgrade = get(url);
    upgrade
        .headers_mut()
        .insert(UPGRADE, http::HeaderValue::from_static("websocket"));
    assert!(!serves(&upgrade));
    assert!(!serves(&request(Method::CONNECT, url, b"")));
    assert!(!serves(&get("ftp://example.com/x")));
    let mut old = get(url);
    *old.version_mut() = Version::HTTP_10;
    assert!(!serves(&old));
}

#[tokio::test]
async fn answers_arriving_a_byte_at_a_time_read_the_same() {
    // Every framing, sent one byte per write: the body's reader meets each state split anywhere.
    let answers: [(&[u8], &[u8]); 3] = [
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
              3;x=y\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nA: b\r\nC: d\r\n\r\n",
            b"abc0123456789abcdef",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world",
            b"hello world",
        ),
        (
            b"HTTP/1.1 200 OK\r\n\r\nuntil the close",
            b"until the close",
        ),
    ];
    for (answer, body) in answers {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            if let Ok((mut s, _)) = listener.accept().await {
                let _ = s.set_nodelay(true);
                if read_request(&mut s).await.is_some() {
                    for byte in answer {
                        if s.write_all(std::slice::from_ref(byte)).await.is_err() {
                            return;
                        }
                        tokio::task::yield_now().await;
                    }
                }
            }
        });
        let r = client()
            .send(get(&format!("http://{addr}/")))
            .await
            .expect("head");
        assert_eq!(text(r.into_body()).await, body);
    }
}

#[tokio::test]
async fn a_forwarded_head_may_be_as_large_as_hyper_allowed() {
    // 100 KiB of one header: over the whole client's limit, under hyper's, which forwarded it.
    let long = format!(
        "HTTP/1.1 200 OK\r\nX-Long: {}\r\nContent-Length: 2\r\n\r\nok",
        "a".repeat(100 * 1024)
    );
    let too_long = format!(
        "HTTP/1.1 200 OK\r\nX-Long: {}\r\nContent-Length: 2\r\n\r\nok",
        "a".repeat(MAX_RESPONSE_HEAD)
    );
    let long: &'static [u8] = Box::leak(long.into_bytes().into_boxed_slice());
    let too_long: &'static [u8] = Box::leak(too_long.into_bytes().into_boxed_slice());
    assert!(long.len() > whole::MAX_RESPONSE_HEAD);
    let (base, _, _seen) = server(vec![long, too_long], true).await;
    let r = client().send(get(&base)).await.expect("a long head");
    assert_eq!(r.headers()["x-long"].len(), 100 * 1024);
    assert_eq!(text(r.into_body()).await, b"ok");
    match client().send(get(&base)).await {
        Err(e) => assert!(e.to_string().contains("response head over"), "{e}"),
        Ok(r) => panic!("a head over the limit was taken: {}", r.status()),
    }
}

/// Serves `answer` to one request, in writes of the given sizes (cycled), then closes.
async fn serve_in_pieces(answer: Vec<u8>, pieces: Vec<usize>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        if let Ok((mut s, _)) = listener.accept().await {
            let _ = s.set_nodelay(true);
            if read_request(&mut s).await.is_some() {
                let mut rest = &answer[..];
                for size in pieces.iter().cycle() {
                    if rest.is_empty() {
                        break;
                    }
                    let (now, later) = rest.split_at((*size).clamp(1, rest.len()));
                    if s.write_all(now).await.is_err() {
                        return;
                    }
                    tokio::task::yield_now().await;
                    rest = later;
                }
                let _ = s.shutdown().await;
            }
        }
    });
    format!("http://{addr}/")
}

mod proptests {
    use proptest::prelude::*;

    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    /// One chunk: its data, whether its size is written in upper case, an extension.
    fn chunk() -> impl Strategy<Value = (Vec<u8>, bool, Option<String>)> {
        (
            proptest::collection::vec(any::<u8>(), 1..300),
            any::<bool>(),
            proptest::option::of("[a-z]{1,5}(=[a-z0-9]{0,5})?"),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Any chunked encoding (sizes in either case, extensions, trailers), arriving in any
        /// pieces, reads back as the data it carries.
        #[test]
        fn any_chunked_answer_in_any_pieces_reads_back_whole(
            chunks in proptest::collection::vec(chunk(), 0..12),
            trailers in proptest::collection::vec("[A-Za-z-]{1,8}: [a-z0-9 ]{0,10}", 0..3),
            pieces in proptest::collection::vec(1usize..64, 1..8),
        ) {
            let mut answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            let mut want = Vec::new();
            for (data, upper, ext) in &chunks {
                let size = if *upper { format!("{:X}", data.len()) } else { format!("{:x}", data.len()) };
                answer.extend_from_slice(size.as_bytes());
                if let Some(ext) = ext {
                    answer.push(b';');
                    answer.extend_from_slice(ext.as_bytes());
                }
                answer.extend_from_slice(b"\r\n");
                answer.extend_from_slice(data);
                answer.extend_from_slice(b"\r\n");
                want.extend_from_slice(data);
            }
            answer.extend_from_slice(b"0\r\n");
            for t in &trailers {
                answer.extend_from_slice(t.as_bytes());
                answer.extend_from_slice(b"\r\n");
            }
            answer.extend_from_slice(b"\r\n");
            let got = runtime().block_on(async {
                let url = serve_in_pieces(answer, pieces).await;
                let r = client().send(get(&url)).await.expect("head");
                text(r.into_body()).await
            });
            prop_assert_eq!(got, want);
        }

        /// Whatever bytes follow a head, in whatever pieces, the body ends (data, then an end or
        /// an error) without a panic, and never yields more than the server sent.
        #[test]
        fn any_bytes_after_a_head_end_in_data_or_an_error(
            framing in prop_oneof![
                Just("Transfer-Encoding: chunked\r\n".to_owned()),
                (0u64..400).prop_map(|n| format!("Content-Length: {n}\r\n")),
                Just(String::new()),
            ],
            tail in proptest::collection::vec(
                prop_oneof![any::<u8>(), Just(b'\r'), Just(b'\n'), Just(b'0'), Just(b';')],
                0..600,
            ),
            pieces in proptest::collection::vec(1usize..64, 1..8),
        ) {
            let mut answer = format!("HTTP/1.1 200 OK\r\n{framing}\r\n").into_bytes();
            let sent = tail.len();
            answer.extend_from_slice(&tail);
            let read = runtime().block_on(async {
                let url = serve_in_pieces(answer, pieces).await;
                let r = client().send(get(&url)).await.expect("head");
                let mut body = r.into_body();
                let mut read = 0;
                while let Some(frame) = body.frame().await {
                    match frame {
                        Ok(f) => read += f.into_data().map_or(0, |d| d.len()),
                        Err(_) => break,
                    }
                }
                read
            });
            prop_assert!(read <= sent, "read {} of {} bytes sent", read, sent);
        }
    }
}
