//! Failures end to end: every one gives the client a clear status, leaves a record, and leaves the
//! proxy serving. Also raw tunnels, passthrough hosts, the hook contract and graceful shutdown.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use capscope::proxy::hook::{Decision, Forward, Hook, RequestHead, Rewrite, Route, Via};
use capscope::proxy::{Proxy, ProxyConfig};
use capscope::record::{Bus, Kind, State};
use common::*;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The proxy still forwards after whatever a test did to it.
async fn still_serves(proxy: &mut TestProxy, up: &Upstream) {
    let mut client = proxy.client().https(&up.authority()).await;
    let (resp, body) = send_h1(&mut client, in_tunnel("GET", "/bytes/10", up, full(""))).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(&body[..], &pattern(10)[..]);
    assert_eq!(proxy.next_final().await.state, State::Done);
}

#[tokio::test]
async fn an_upstream_that_is_down_gives_502_and_a_failed_record() {
    let up = start_upstream(true).await;
    let mut proxy = start_proxy(config_trusting(&up)).await;
    let dead = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);

    let mut client = proxy.client().plain().await;
    let (resp, body) = send_h1(
        &mut client,
        request("GET", &format!("http://{dead_addr}/x"), ""),
    )
    .await;
    assert_eq!(resp.status(), 502);
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("could not connect") && text.contains(&dead_addr.to_string()),
        "{text}"
    );
    let r = proxy.next_final().await;
    assert_eq!(r.state, State::Failed);
    assert!(
        r.error.as_ref().unwrap().contains("could not connect"),
        "{:?}",
        r.error
    );
    still_serves(&mut proxy, &up).await;
}

#[tokio::test]
async fn an_untrusted_upstream_certificate_gives_502_with_the_reason() {
    let up = start_upstream(true).await;
    // This proxy does not trust the upstream's test CA.
    let mut proxy = start_proxy(ProxyConfig::default()).await;
    let mut client = proxy.client().https(&up.authority()).await;
    let (resp, body) = send_h1(&mut client, in_tunnel("GET", "/bytes/10", &up, full(""))).await;
    assert_eq!(resp.status(), 502);
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("TLS with 127.0.0.1")
            && text.contains("UnknownIssuer")
            && text.contains("--upstream-ca"),
        "{text}"
    );
    let r = proxy.next_final().await;
    assert_eq!(r.state, State::Failed);
    assert!(r.error.as_ref().unwrap().contains("UnknownIssuer"));
}

#[tokio::test]
async fn an_upstream_certificate_for_another_name_gives_502_with_the_reason() {
    let up = start_upstream_as(true, "other.example").await;
    let mut proxy = start_proxy(config_trusting(&up)).await;
    let mut client = proxy.client().https(&up.authority()).await;
    let (resp, body) = send_h1(&mut client, in_tunnel("GET", "/bytes/10", &up, full(""))).await;
    assert_eq!(resp.status(), 502);
    assert!(String::from_utf8_lossy(&body).contains("NotValidForName"));
    assert_eq!(proxy.next_final().await.state, State::Failed);
}

#[tokio::test]
async fn an_upstream_that_breaks_off_mid_body_fails_the_record_and_the_proxy_serves_on() {
    let up = start_upstream(true).await;
    let mut proxy = start_proxy(config_trusting(&up)).await;
    let mut client = proxy.client().https(&up.authority()).await;
    client.ready().await.unwrap();
    let resp = client
        .send_request(in_tunnel("GET", "/reset", &up, full("")))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let got = resp.into_body().collect().await;
    assert!(got.is_err(), "the client must see the body break off");
    let r = proxy.next_final().await;
    assert_eq!(r.state, State::Failed);
    assert_eq!(r.response.as_ref().unwrap().body.size, 1000);
    assert!(
        r.error.as_ref().unwrap().contains("broke off"),
        "{:?}",
        r.error
    );
    still_serves(&mut proxy, &up).await;
}

#[tokio::test]
async fn garbage_from_a_client_is_an_error_record_and_the_proxy_serves_on() {
    let up = start_upstream(true).await;
    let mut proxy = start_proxy(config_trusting(&up)).await;
    let mut tcp = TcpStream::connect(proxy.addr()).await.unwrap();
    tcp.write_all(b"\x00\x01\x02 this is not http\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "answered {answer:?}");
    let r = proxy.next_final().await;
    assert_eq!(r.kind, Kind::Error);
    assert!(
        r.error.as_ref().unwrap().contains("not HTTP"),
        "{:?}",
        r.error
    );

    // A client that sends garbage instead of a TLS ClientHello after CONNECT.
    let mut tunnel = proxy.client().connect(&up.authority()).await;
    tunnel
        .write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5])
        .await
        .unwrap();
    let r = proxy.next_final().await;
    assert_eq!(r.kind, Kind::Error);
    assert!(r.error.as_ref().unwrap().contains("TLS"), "{:?}", r.error);
    still_serves(&mut proxy, &up).await;
}

/// A TCP server that answers every chunk it reads with the same bytes upper-cased.
async fn start_shouter() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let _ = s.write_all(&buf[..n].to_ascii_uppercase()).await;
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_tunnel_that_is_not_tls_or_http_is_passed_through_raw() {
    let shouter = start_shouter().await;
    let mut proxy = start_proxy(ProxyConfig::default()).await;
    let mut tunnel = proxy.client().connect(&shouter.to_string()).await;
    tunnel.write_all(b"ssh-2.0-hello\r\n").await.unwrap();
    let mut buf = [0u8; 15];
    tunnel.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"SSH-2.0-HELLO\r\n");
    tunnel.write_all(b"more").await.unwrap();
    let mut buf = [0u8; 4];
    tunnel.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"MORE");
    drop(tunnel);
    let r = proxy.next_final().await;
    assert_eq!(r.kind, Kind::Tunnel);
    let t = r.tunnel.as_ref().unwrap();
    assert_eq!(t.target, shouter.to_string());
    assert_eq!((t.bytes_up, t.bytes_down), (19, 19));
}

#[tokio::test]
async fn passthrough_hosts_are_tunnelled_without_interception() {
    let up = start_upstream(true).await;
    let config = ProxyConfig {
        passthrough: vec!["127.0.0.*".into()],
        ..ProxyConfig::default()
    };
    let mut proxy = start_proxy(config).await;
    // The client trusts the upstream's own CA: the proxy must not put its leaf in between.
    let client = ProxyClient::new(proxy.addr(), &up.ca);
    let mut h1 = client.https(&up.authority()).await;
    let (resp, body) = send_h1(&mut h1, in_tunnel("GET", "/bytes/100", &up, full(""))).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(&body[..], &pattern(100)[..]);
    drop(h1);
    let r = proxy.next_final().await;
    assert_eq!(r.kind, Kind::Tunnel);
    assert!(r.notes.iter().any(|n| n.contains("passthrough")));
    assert!(r.tunnel.as_ref().unwrap().bytes_down > 100);
}

/// A hook in the way the caps layer uses it: answers `/login` itself, routes `/cap/x` to the upstream,
/// and rewrites what the cap answers.
struct TestHook {
    upstream: String,
}

impl Hook for TestHook {
    fn decide(&self, head: &RequestHead) -> Decision {
        match (head.via.clone(), head.uri.path()) {
            (Via::Direct, "/login") => Decision::route(Route::Respond(Response::new(
                Bytes::from_static(b"hello from the hook"),
            ))),
            (Via::Direct, "/cap/x") => {
                let mut d = Decision::rewritten(Forward::To(
                    format!("http://{}/echo", self.upstream).parse().unwrap(),
                ));
                d.cap = Some("TestCap".into());
                d
            }
            _ => Decision::pass(),
        }
    }

    fn rewrite_response(
        &self,
        _head: &RequestHead,
        request_body: &Bytes,
        status: StatusCode,
        _headers: &HeaderMap,
        body: Bytes,
    ) -> Rewrite {
        assert_eq!(status, 200);
        assert_eq!(request_body, &body);
        Rewrite {
            body: Some(Bytes::from(format!(
                "rewritten: {}",
                String::from_utf8_lossy(&body)
            ))),
            notes: vec!["rewritten by the test".into()],
            ..Rewrite::default()
        }
    }
}

#[tokio::test]
async fn the_hook_can_answer_route_and_rewrite() {
    let up = start_upstream(false).await;
    let ca = Arc::new(capscope_ca::CertificateAuthority::generate().unwrap());
    let bus = Arc::new(Bus::default());
    let mut records = bus.subscribe();
    let handle = Proxy::builder(ProxyConfig::default())
        .ca(ca.clone())
        .bus(bus)
        .hook(Arc::new(TestHook {
            upstream: up.authority(),
        }))
        .with_listener(TcpListener::bind("127.0.0.1:0").await.unwrap())
        .start()
        .await
        .unwrap();
    let mut client = ProxyClient::new(handle.local_addr(), &ca).plain().await;
    let direct = |path: &str, body: &'static str| {
        http::Request::builder()
            .method("POST")
            .uri(path)
            .header("host", handle.local_addr().to_string())
            .body(full(body))
            .unwrap()
    };

    let (resp, body) = send_h1(&mut client, direct("/login", "")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(&body[..], b"hello from the hook");

    // Routed to the upstream's /echo, which the hook also rewrites.
    let (resp, body) = send_h1(&mut client, direct("/cap/x", "ping")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(&body[..], b"rewritten: ping");
    assert_eq!(resp.headers()["content-length"], "15");

    let mut finals = Vec::new();
    while finals.len() < 2 {
        if let Some(capscope::record::Received::Record(r)) = records.recv().await {
            if r.is_final() {
                finals.push(r);
            }
        }
    }
    let routed = &finals[1];
    assert_eq!(routed.cap.as_deref(), Some("TestCap"));
    let req = routed.request.as_ref().unwrap();
    assert_eq!(req.url, format!("http://{}/echo", up.authority()));
    assert_eq!(req.client_url.as_deref(), Some("/cap/x"));
    let body = &routed.response.as_ref().unwrap().body;
    assert_eq!(&body.data[..], b"rewritten: ping");
    assert_eq!(body.original.as_deref(), Some(&b"ping"[..]));
    assert!(routed.notes.iter().any(|n| n == "rewritten by the test"));
    handle.shutdown().await;
}

#[tokio::test]
async fn shutdown_lets_an_exchange_in_flight_finish() {
    let up = start_upstream(true).await;
    let proxy = start_proxy(config_trusting(&up)).await;
    let mut client = proxy.client().https(&up.authority()).await;
    client.ready().await.unwrap();
    let resp = client
        .send_request(in_tunnel("GET", "/bytes/2000000", &up, full("")))
        .await
        .unwrap();
    let TestProxy {
        handle,
        mut records,
        ..
    } = proxy;
    let shutdown = tokio::spawn(handle.shutdown());
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body.len(), 2_000_000);
    shutdown.await.unwrap();
    let mut done = false;
    while let Some(capscope::record::Received::Record(r)) = records.try_recv() {
        done |= r.state == State::Done;
    }
    assert!(done, "the exchange in flight was recorded as done");
}

#[tokio::test]
async fn an_oversized_request_head_is_refused_with_431_and_recorded() {
    let up = start_upstream(true).await;
    let config = ProxyConfig {
        max_header_size: 16 * 1024,
        ..config_trusting(&up)
    };
    let mut proxy = start_proxy(config).await;
    let mut tcp = TcpStream::connect(proxy.addr()).await.unwrap();
    let big = "x".repeat(64 * 1024);
    let head = format!(
        "GET http://{}/bytes/1 HTTP/1.1\r\nHost: a\r\nX-Big: {big}\r\n\r\n",
        up.authority()
    );
    let _ = tcp.write_all(head.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "answered {answer:?}");
    let r = proxy.next_final().await;
    assert_eq!(r.kind, Kind::Error);
    still_serves(&mut proxy, &up).await;
}

/// Rewrites every response, checking it sees the body decoded.
struct Decoding;

impl Hook for Decoding {
    fn decide(&self, _head: &RequestHead) -> Decision {
        Decision::rewritten(Forward::Pass)
    }

    fn rewrite_response(
        &self,
        _head: &RequestHead,
        _request_body: &Bytes,
        _status: StatusCode,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Rewrite {
        // One state: the body is decoded and the headers no longer name the encoding.
        assert!(headers.get("content-encoding").is_none());
        assert_eq!(
            &body[..],
            GZIP_TEXT.as_bytes(),
            "the hook sees the decoded body"
        );
        Rewrite {
            body: Some(Bytes::from_static(b"<llsd><undef /></llsd>")),
            ..Rewrite::default()
        }
    }
}

#[tokio::test]
async fn a_rewrite_sees_the_body_decoded_and_sends_it_plain() {
    let up = start_upstream(true).await;
    let ca = Arc::new(capscope_ca::CertificateAuthority::generate().unwrap());
    let handle = Proxy::builder(config_trusting(&up))
        .ca(ca.clone())
        .hook(Arc::new(Decoding))
        .with_listener(TcpListener::bind("127.0.0.1:0").await.unwrap())
        .start()
        .await
        .unwrap();
    let mut client = ProxyClient::new(handle.local_addr(), &ca)
        .https(&up.authority())
        .await;
    let (resp, body) = send_h1(&mut client, in_tunnel("GET", "/gzip", &up, full(""))).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("content-encoding").is_none());
    assert_eq!(&body[..], b"<llsd><undef /></llsd>");
    handle.shutdown().await;
}
