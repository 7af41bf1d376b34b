//! The whole-exchange client against scripted raw HTTP servers on 127.0.0.1.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::*;
use crate::proxy::ProxyConfig;

const LIMIT: usize = 1024;

/// How long a test body may stall before the client gives it up.
const BODY_TIMEOUT: Duration = Duration::from_millis(200);

fn client(response_timeout: Option<Duration>) -> WholeClient {
    let config = ProxyConfig::default();
    let tls = Arc::new(super::super::client_tls_config(&config).expect("TLS config"));
    let connector = Connector {
        tls: tokio_rustls::TlsConnector::from(tls),
        connect_timeout: Duration::from_secs(5),
    };
    WholeClient::new(
        connector,
        Duration::from_secs(60),
        response_timeout,
        BODY_TIMEOUT,
    )
}

/// Reads one request head and its `Content-Length` body; `None` when the client closed first.
pub(in crate::proxy::upstream) async fn read_request(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        got.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
    let length: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap_or(0));
    let mut body = vec![0u8; length];
    s.read_exact(&mut body).await.ok()?;
    got.extend_from_slice(&body);
    Some(got)
}

/// A server that answers each request on each connection with the next of `answers` (then closes
/// the connection when `close_after` is set), counting connections and passing on what it received.
pub(in crate::proxy::upstream) async fn server(
    answers: Vec<&'static [u8]>,
    close_after: bool,
) -> (String, Arc<AtomicUsize>, mpsc::UnboundedReceiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let connections = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::unbounded_channel();
    let answers = Arc::new(std::sync::Mutex::new(answers.into_iter()));
    let count = Arc::clone(&connections);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let answers = Arc::clone(&answers);
            let tx = tx.clone();
            tokio::spawn(async move {
                while let Some(request) = read_request(&mut s).await {
                    let _ = tx.send(request);
                    let next = answers.lock().expect("answers").next();
                    let Some(answer) = next else {
                        return;
                    };
                    if s.write_all(answer).await.is_err() {
                        return;
                    }
                    if close_after {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), connections, rx)
}

fn get(url: &str) -> Request<Bytes> {
    let mut r = Request::new(Bytes::new());
    *r.uri_mut() = url.parse().expect("url");
    r
}

fn post(url: &str, body: &'static [u8]) -> Request<Bytes> {
    let mut r = Request::new(Bytes::from_static(body));
    *r.method_mut() = Method::POST;
    *r.uri_mut() = url.parse().expect("url");
    r
}

#[tokio::test]
async fn a_sized_answer_is_read_whole_and_its_connection_reused() {
    let ok: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello";
    let (base, connections, mut seen) = server(vec![ok, ok], false).await;
    let c = client(None);
    for _ in 0..2 {
        let r = c
            .send(post(&format!("{base}/eq?x=1"), b"<llsd/>"), LIMIT)
            .await
            .expect("answer");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(&r.body()[..], b"hello");
        assert_eq!(r.headers()["x-a"], "b");
    }
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
async fn a_get_without_body_sends_no_length_and_keeps_its_headers() {
    let ok: &[u8] = b"HTTP/1.1 204 No Content\r\n\r\n";
    let (base, _, mut seen) = server(vec![ok], false).await;
    let mut request = get(&format!("{base}/"));
    request
        .headers_mut()
        .insert("x-mine", HeaderValue::from_static("yes"));
    request
        .headers_mut()
        .insert(HOST, HeaderValue::from_static("elsewhere.example"));
    let r = client(None).send(request, LIMIT).await.expect("answer");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let request = String::from_utf8(seen.recv().await.expect("request")).expect("text");
    assert!(!request.contains("content-length"), "{request}");
    assert!(request.contains("x-mine: yes\r\n"), "{request}");
    assert_eq!(request.matches("host:").count(), 1, "{request}");
    assert!(request.contains("host: elsewhere.example\r\n"), "{request}");
}

#[tokio::test]
async fn a_chunked_answer_is_unchunked_and_a_length_beside_it_dropped() {
    let chunked: &[u8] =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n\
        4;ext=1\r\nabcd\r\n6\r\nefghij\r\n0\r\nX-Trailer: t\r\n\r\n";
    let ok: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let (base, connections, _) = server(vec![chunked, ok], false).await;
    let c = client(None);
    let r = c.send(get(&base), LIMIT).await.expect("answer");
    assert_eq!(&r.body()[..], b"abcdefghij");
    assert!(r.headers().get(CONTENT_LENGTH).is_none());
    let r = c.send(get(&base), LIMIT).await.expect("second answer");
    assert_eq!(&r.body()[..], b"ok");
    assert_eq!(connections.load(Ordering::SeqCst), 1, "not reused");
}

#[tokio::test]
async fn an_answer_without_length_ends_at_the_close_and_its_connection_is_not_kept() {
    let unsized_: &[u8] = b"HTTP/1.1 200 OK\r\n\r\nto the end";
    let (base, connections, _) = server(vec![unsized_, unsized_], true).await;
    let c = client(None);
    for _ in 0..2 {
        let r = c.send(get(&base), LIMIT).await.expect("answer");
        assert_eq!(&r.body()[..], b"to the end");
    }
    assert_eq!(connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn connection_close_and_http_1_0_answers_are_not_kept() {
    let close: &[u8] = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\na";
    let old: &[u8] = b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nb";
    let ok: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nc";
    let (base, connections, _) = server(vec![close, old, ok], false).await;
    let c = client(None);
    for want in [b"a", b"b", b"c"] {
        let r = c.send(get(&base), LIMIT).await.expect("answer");
        assert_eq!(&r.body()[..], want);
    }
    assert_eq!(connections.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn informational_heads_are_skipped() {
    let answer: &[u8] =
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone";
    let (base, _, _) = server(vec![answer], false).await;
    let r = client(None)
        .send(post(&base, b"x"), LIMIT)
        .await
        .expect("answer");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(&r.body()[..], b"done");
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused_whatever_their_framing() {
    let sized: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n";
    let chunked: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n200\r\n";
    let (base, _, _) = server(vec![sized, chunked], true).await;
    let c = client(None);
    for _ in 0..2 {
        let e = c.send(get(&base), 256).await.expect_err("too large");
        assert!(
            matches!(e, UpstreamError::TooLarge { limit: 256, .. }),
            "{e}"
        );
    }
}

#[tokio::test]
async fn malformed_or_missing_answers_are_protocol_errors() {
    let garbage: &[u8] = b"SPDY/9 what\r\n\r\n";
    let bad_length: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n";
    let bad_chunk: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
    let cut: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
    let (base, _, _) = server(vec![garbage, bad_length, bad_chunk, cut], true).await;
    let c = client(None);
    for want in [
        "malformed response head",
        "disagree",
        "invalid chunk size",
        "middle of the body",
    ] {
        let e = c.send(get(&base), LIMIT).await.expect_err("broken");
        assert!(
            matches!(&e, UpstreamError::Protocol { reason, .. } if reason.contains(want)),
            "{want}: {e}"
        );
    }
    // The server closes without answering (its answers are used up).
    let e = c.send(get(&base), LIMIT).await.expect_err("no answer");
    assert!(e.to_string().contains("before a response head"), "{e}");
}

#[tokio::test]
async fn a_head_over_the_limit_is_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        let _ = read_request(&mut s).await;
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\n").await;
        let line = format!("x-big: {}\r\n", "a".repeat(1000));
        for _ in 0..(MAX_RESPONSE_HEAD / line.len() + 2) {
            if s.write_all(line.as_bytes()).await.is_err() {
                return;
            }
        }
    });
    let e = client(None)
        .send(get(&format!("http://{addr}/")), LIMIT)
        .await
        .expect_err("head too large");
    assert!(e.to_string().contains("response head over"), "{e}");
}

#[tokio::test]
async fn a_silent_server_is_given_up_after_the_response_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (hold_tx, mut hold_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let _ = hold_tx.send(s);
        }
    });
    let e = client(Some(Duration::from_millis(200)))
        .send(get(&format!("http://{addr}/")), LIMIT)
        .await
        .expect_err("timeout");
    assert!(matches!(e, UpstreamError::Timeout { .. }), "{e}");
    assert!(hold_rx.recv().await.is_some());
}

#[tokio::test]
async fn a_body_that_stops_arriving_is_given_up_after_the_body_timeout() {
    let answers: [&'static [u8]; 2] = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n",
    ];
    for answer in answers {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (hold_tx, mut hold_rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            if let Ok((mut s, _)) = listener.accept().await {
                if read_request(&mut s).await.is_some() && s.write_all(answer).await.is_ok() {
                    // Held open, sending nothing more.
                    let _ = hold_tx.send(s);
                }
            }
        });
        let c = client(None);
        let sent = c.send(get(&format!("http://{addr}/")), LIMIT);
        let e = tokio::time::timeout(Duration::from_secs(10), sent)
            .await
            .expect("given up, not held forever")
            .expect_err("a stalled body");
        assert!(e.to_string().contains("--body-timeout"), "{e}");
        assert!(hold_rx.recv().await.is_some(), "the server still held it");
    }
}

#[tokio::test]
async fn a_kept_connection_the_server_closed_is_not_used_again() {
    let ok: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    // The server answers once per connection, then closes it although the answer allowed reuse.
    let (base, connections, mut seen) = server(vec![ok, ok], true).await;
    let c = client(None);
    let r = c.send(get(&base), LIMIT).await.expect("first");
    assert_eq!(&r.body()[..], b"ok");
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
    let r = c.send(get(&base), LIMIT).await.expect("second");
    assert_eq!(&r.body()[..], b"ok");
    assert_eq!(connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn the_sweep_closes_connections_idle_too_long() {
    let ok: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let (base, _, _) = server(vec![ok], false).await;
    let mut c = client(None);
    Arc::get_mut(&mut c.pool).expect("one owner").idle_timeout = Duration::ZERO;
    c.send(get(&base), LIMIT).await.expect("answer");
    assert_eq!(c.pool.lock().values().map(Vec::len).sum::<usize>(), 1);
    c.pool.sweep();
    assert!(c.pool.lock().is_empty());
}

#[test]
fn chunk_sizes_are_hex_with_optional_extensions() {
    assert_eq!(chunk_size(b"1a"), Some(26));
    assert_eq!(chunk_size(b"0"), Some(0));
    assert_eq!(chunk_size(b"FF ; name=value"), Some(255));
    assert_eq!(chunk_size(b""), None);
    assert_eq!(chunk_size(b"-1"), None);
    assert_eq!(chunk_size(b"+1"), None);
    assert_eq!(chunk_size(b"10000000000000000"), None);
}

#[test]
fn the_fuzzing_entry_reads_answers_from_memory_as_from_a_connection() {
    let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    assert_eq!(read_response_for_fuzzing(chunked, false, 10), Ok((200, 3)));
    let until_close = b"HTTP/1.0 502 Bad Gateway\r\n\r\nno events";
    assert_eq!(
        read_response_for_fuzzing(until_close, false, 10),
        Ok((502, 9))
    );
    let cut = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
    let e = read_response_for_fuzzing(cut, false, 10).expect_err("cut short");
    assert!(e.contains("closed in the middle of the body"), "{e}");
    let over = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n";
    assert!(read_response_for_fuzzing(over, false, 10).is_err());
    assert_eq!(read_response_for_fuzzing(over, true, 10), Ok((200, 0)));
}

/// A TLS server (a fresh self-signed certificate for 127.0.0.1) that answers one request with
/// `answer` and then closes: with TLS close_notify when `notify`, else by dropping the TCP socket.
pub(in crate::proxy::upstream) async fn tls_server_closing(
    answer: &'static [u8],
    notify: bool,
) -> String {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()])
        .expect("test certificate");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let Ok(mut tls) = acceptor.accept(tcp).await else {
            return;
        };
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if tls.read(&mut byte).await.unwrap_or(0) == 0 {
                return;
            }
            head.push(byte[0]);
        }
        let _ = tls.write_all(answer).await;
        let _ = tls.flush().await;
        if notify {
            let _ = tls.shutdown().await;
        } else {
            // The TCP socket goes away under the TLS session: no close_notify.
            let (tcp, _) = tls.into_inner();
            drop(tcp);
        }
    });
    format!("https://127.0.0.1:{}/", addr.port())
}

#[tokio::test]
async fn an_answer_without_length_over_tls_needs_close_notify_to_end() {
    let config = ProxyConfig {
        insecure_upstream: true,
        ..ProxyConfig::default()
    };
    let tls = Arc::new(super::super::client_tls_config(&config).expect("TLS config"));
    let c = WholeClient::new(
        Connector {
            tls: tokio_rustls::TlsConnector::from(tls),
            connect_timeout: Duration::from_secs(5),
        },
        Duration::from_secs(60),
        None,
        BODY_TIMEOUT,
    );
    let unsized_: &[u8] = b"HTTP/1.1 200 OK\r\n\r\nall of it";

    let closed_cleanly = tls_server_closing(unsized_, true).await;
    let r = c.send(get(&closed_cleanly), LIMIT).await.expect("answer");
    assert_eq!(&r.body()[..], b"all of it");

    // The same bytes, but the end could be a cut: refused, as hyper and curl refuse it.
    let cut = tls_server_closing(unsized_, false).await;
    match c.send(get(&cut), LIMIT).await {
        Err(UpstreamError::Protocol { reason, .. }) => {
            assert!(reason.contains("close_notify"), "{reason}")
        }
        other => panic!("expected a protocol error, got {other:?}"),
    }

    // A body with a length needs no close_notify: its end is known.
    let sized: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\nall of it";
    let dropped = tls_server_closing(sized, false).await;
    let r = c.send(get(&dropped), LIMIT).await.expect("sized answer");
    assert_eq!(&r.body()[..], b"all of it");
}

/// Found by the `upstream_request` fuzz target: `http://host?x` has the path-and-query `?x`, which
/// was written as the request target as it was (`GET ?x HTTP/1.1`, not HTTP).
#[test]
fn a_url_with_a_query_and_no_path_is_sent_in_origin_form() {
    for (url, line) in [
        (
            "http://sim.example:12043?x=1&y",
            &b"GET /?x=1&y HTTP/1.1\r\n"[..],
        ),
        ("http://sim.example:12043", b"GET / HTTP/1.1\r\n"),
        (
            "http://sim.example:12043/cap/eq?a",
            b"GET /cap/eq?a HTTP/1.1\r\n",
        ),
    ] {
        let (head, _) = encode_request(get(url));
        assert!(
            head.starts_with(line),
            "{url}: {}",
            String::from_utf8_lossy(&head)
        );
    }
}

/// Found by the `upstream_request` fuzz target: the `Host` capscope adds names the URL's host and
/// port, never the user info a URL may carry (`http://user:pw@host/`), which is no part of a
/// `Host` (RFC 9110 section 7.2) and a secret besides.
#[test]
fn the_host_header_never_carries_user_info() {
    for (url, host) in [
        (
            "http://user:pw@sim.example:12043/cap",
            "host: sim.example:12043\r\n",
        ),
        ("http://user@sim.example/cap", "host: sim.example\r\n"),
        ("http://[::1]:9000/", "host: [::1]:9000\r\n"),
    ] {
        let (head, _) = encode_request(get(url));
        let head = String::from_utf8(head).expect("text");
        assert!(head.contains(host), "{url}: {head}");
        assert!(!head.contains("pw"), "{url}: {head}");
    }
}
