//! The proxy end to end over real sockets on 127.0.0.1: methods, statuses, body framings, keep-alive,
//! plain HTTP, HTTP/2 from the client, and what the records say.

mod common;

use common::*;

use capscope::proxy::ProxyConfig;
use capscope::record::{Kind, State};
use http_body_util::BodyExt;

#[tokio::test]
async fn methods_and_bodies_arrive_byte_for_byte_through_a_tls_tunnel() {
    let up = start_upstream(true).await;
    let mut proxy = start_proxy(config_trusting(&up)).await;
    let mut client = proxy.client().https(&up.authority()).await;

    let (resp, body) = send_h1(&mut client, in_tunnel("GET", "/bytes/5000", &up, full(""))).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(&body[..], &pattern(5000)[..]);
    let r = proxy.next_final().await;
    assert_eq!(r.kind, Kind::Http);
    assert_eq!(r.state, State::Done);
    let req = r.request.as_ref().unwrap();
    assert_eq!(req.method, "GET");
    assert_eq!(req.url, up.url("/bytes/5000"));
    let res = r.response.as_ref().unwrap();
    assert_eq!(res.status, 200);
    assert_eq!(res.body.size, 5000);
    assert_eq!(&res.body.data[..], &pattern(5000)[..]);
    assert!(r.cap.is_none());
    assert!(r.timings.done_us.is_some());
    // The client's address, an IPv4 one here, is kept inside the record: no allocation of its own
    // to build the record or to clone it (docs/performance.md, "Small requests", fourth round).
    let address = r.client.as_ref().unwrap();
    assert!(address.starts_with("127.0.0.1:"), "{address}");
    assert!(!address.is_heap_allocated(), "{address}");

    for method in ["POST", "PUT", "DELETE"] {
        let sent = pattern(70_000);
        let (resp, body) = send_h1(
            &mut client,
            in_tunnel(method, "/echo", &up, full(sent.clone())),
        )
        .await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-method"], method);
        assert_eq!(&body[..], &sent[..], "{method} body came back changed");
        let r = proxy.next_final().await;
        let req = r.request.as_ref().unwrap();
        assert_eq!(req.method, method);
        assert_eq!(req.body.size, 70_000);
        assert_eq!(&req.body.data[..], &sent[..]);
        assert_eq!(r.response.as_ref().unwrap().body.size, 70_000);
    }

    let (resp, body) = send_h1(&mut client, in_tunnel("HEAD", "/bytes/100", &up, full(""))).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-length"], "100");
    assert!(body.is_empty());
    let r = proxy.next_final().await;
    assert_eq!(r.state, State::Done);
    assert_eq!(r.response.as_ref().unwrap().body.size, 0);
}

#[tokio::test]
async fn no_content_and_not_modified_have_no_body() {
    let up = start_upstream(true).await;
    let mut proxy = start_proxy(config_trusting(&up)).await;
    let mut client = proxy.client().https(&up.authority()).await;
    for status in [204u16, 304] {
        let (resp, body) = send_h1(
            &mut client,
            in_tunnel("GET", &format!("/status/{status}"), &up, full("")),
        )
        .await;
        assert_eq!(resp.status(), status);
        assert!(body.is_empty());
        let r = proxy.next_final().await;
        assert_eq!(r.state, State::Done);
        assert_eq!(r.response.as_ref().unwrap().status, status);
    }
    // The connection is still good afterwards.
    let (resp, _) = send_h1(&mut client, in_tunnel("GET", "/bytes/10", &up, full(""))).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn chunked_and_streamed_request_bodies_pass_whole() {
    let up = start_upstream(true).await;
    let mut proxy = start_proxy(config_trusting(&up)).await;
    let mut client = proxy.client().https(&up.authority()).await;

    let (resp, body) = send_h1(
        &mut client,
        in_tunnel("GET", "/chunked/300000", &up, full("")),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("content-length").is_none());
    assert_eq!(&body[..], &pattern(300_000)[..]);
    let r = proxy.next_final().await;
    assert_eq!(r.response.as_ref().unwrap().body.size, 300_000);

    // A request body of unknown length goes up chunked and arrives whole.
    let mut streamed = PatternBody::new(123_457, 4096);
    streamed.exact = false;
    let (resp, body) = send_h1(
        &mut client,
        in_tunnel("POST", "/echo", &up, streamed.boxed()),
    )
    .await;
    assert_eq!(resp.headers()["x-request-bytes"], "123457");
    assert_eq!(&body[..], &pattern(123_457)[..]);
    let r = proxy.next_final().await;
    assert_eq!(r.request.as_ref().unwrap().body.size, 123_457);
}

#[tokio::test]
async fn keep_alive_reuses_one_upstream_connection() {
    let up = start_upstream(true).await;
    let mut proxy = start_proxy(config_trusting(&up)).await;
    let proxy_client = proxy.client();
    let mut client = proxy_client.https(&up.authority()).await;
    for _ in 0..20 {
        let (resp, _) = send_h1(&mut client, in_tunnel("GET", "/bytes/1024", &up, full(""))).await;
        assert_eq!(resp.status(), 200);
        proxy.next_final().await;
    }
    // A second client connection is served from the same upstream pool.
    let mut second = proxy_client.https(&up.authority()).await;
    let (_, count) = send_h1(&mut second, in_tunnel("GET", "/count", &up, full(""))).await;
    assert_eq!(
        &count[..],
        b"1",
        "the proxy opened more than one upstream connection"
    );
}

#[tokio::test]
async fn plain_http_absolute_form_is_forwarded() {
    let up = start_upstream(false).await;
    let mut proxy = start_proxy(ProxyConfig::default()).await;
    let mut client = proxy.client().plain().await;
    let (resp, body) = send_h1(&mut client, request("POST", &up.url("/echo"), "hello")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(&body[..], b"hello");
    let r = proxy.next_final().await;
    assert_eq!(r.request.as_ref().unwrap().url, up.url("/echo"));
    assert_eq!(r.request.as_ref().unwrap().version, "HTTP/1.1");
    // The record keeps the client's headers as sent, hop-by-hop ones included.
    let mut req = request("GET", &up.url("/bytes/3"), "");
    req.headers_mut()
        .insert("proxy-connection", "keep-alive".parse().unwrap());
    let (resp, _) = send_h1(&mut client, req).await;
    assert_eq!(resp.status(), 200);
    let r = proxy.next_final().await;
    assert!(r
        .request
        .as_ref()
        .unwrap()
        .headers
        .iter()
        .any(|h| h.name == "proxy-connection"));
}

#[tokio::test]
async fn http2_clients_are_served_over_h2() {
    let up = start_upstream(true).await;
    let mut proxy = start_proxy(config_trusting(&up)).await;
    let client = proxy.client().https_h2(&up.authority()).await;
    let mut tasks = Vec::new();
    for i in 0..8u64 {
        let mut c = client.clone();
        let path = format!("/bytes/{}", 1000 + i);
        let req = http::Request::builder()
            .uri(format!("https://{}{path}", up.authority()))
            .body(full(""))
            .unwrap();
        tasks.push(tokio::spawn(async move { (i, send_h2(&mut c, req).await) }));
    }
    for t in tasks {
        let (i, (resp, body)) = t.await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), http::Version::HTTP_2);
        assert_eq!(&body[..], &pattern(1000 + i as usize)[..]);
    }
    for _ in 0..8 {
        let r = proxy.next_final().await;
        assert_eq!(r.state, State::Done);
        assert_eq!(r.request.as_ref().unwrap().version, "HTTP/2.0");
    }
}

#[tokio::test]
async fn records_keep_at_most_max_body_but_count_everything() {
    let up = start_upstream(true).await;
    let config = ProxyConfig {
        max_body: 1000,
        ..config_trusting(&up)
    };
    let mut proxy = start_proxy(config).await;
    let mut client = proxy.client().https(&up.authority()).await;
    let (_, body) = send_h1(&mut client, in_tunnel("GET", "/bytes/5000", &up, full(""))).await;
    assert_eq!(body.len(), 5000, "the client gets the whole body");
    let r = proxy.next_final().await;
    let b = &r.response.as_ref().unwrap().body;
    assert_eq!(b.size, 5000);
    assert!(b.truncated);
    assert_eq!(&b.data[..], &pattern(1000)[..]);
}

#[tokio::test]
async fn compressed_bodies_are_decoded_for_the_record_only() {
    let up = start_upstream(true).await;
    let mut proxy = start_proxy(config_trusting(&up)).await;
    let mut client = proxy.client().https(&up.authority()).await;
    let (resp, body) = send_h1(&mut client, in_tunnel("GET", "/gzip", &up, full(""))).await;
    assert_eq!(resp.headers()["content-encoding"], "gzip");
    assert_eq!(&body[..2], &[0x1f, 0x8b], "the wire keeps the gzip bytes");
    let r = proxy.next_final().await;
    let b = &r.response.as_ref().unwrap().body;
    assert_eq!(&b.data[..], GZIP_TEXT.as_bytes());
    assert_eq!(b.content_encoding.as_deref(), Some("gzip"));
    assert_eq!(b.size, body.len() as u64);

    let (_, body) = send_h1(&mut client, in_tunnel("GET", "/octet", &up, full(""))).await;
    assert_eq!(&body[..], b"not compressed at all");
    let r = proxy.next_final().await;
    let b = &r.response.as_ref().unwrap().body;
    assert_eq!(&b.data[..], b"not compressed at all");
    assert!(b.content_encoding.is_none());
}

#[tokio::test]
async fn requests_to_the_proxy_itself_get_a_clear_404() {
    let mut proxy = start_proxy(ProxyConfig::default()).await;
    let mut client = proxy.client().plain().await;
    let req = http::Request::builder()
        .uri("/nothing-here")
        .header("host", proxy.addr().to_string())
        .body(full(""))
        .unwrap();
    let (resp, body) = send_h1(&mut client, req).await;
    assert_eq!(resp.status(), 404);
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("capscope") && text.contains("/nothing-here"),
        "{text}"
    );
    let r = proxy.next_final().await;
    assert_eq!(r.response.as_ref().unwrap().status, 404);

    // The same in absolute form, addressed to the proxy's own address: no loop, the same answer.
    let (resp, _) = send_h1(
        &mut client,
        request("GET", &format!("http://{}/x", proxy.addr()), ""),
    )
    .await;
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn a_response_body_cut_by_the_client_still_finishes_its_record() {
    let up = start_upstream(true).await;
    let mut proxy = start_proxy(config_trusting(&up)).await;
    let mut client = proxy.client().https(&up.authority()).await;
    client.ready().await.unwrap();
    let resp = client
        .send_request(in_tunnel("GET", "/bytes/50000000", &up, full("")))
        .await
        .unwrap();
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert!(first.is_data());
    drop(body);
    drop(client);
    let r = proxy.next_final().await;
    assert_eq!(r.state, State::Failed);
    assert!(
        r.error.as_ref().unwrap().contains("went away"),
        "{:?}",
        r.error
    );
}

#[tokio::test]
async fn the_hooks_upstream_handle_sends_whole_exchanges() {
    let up = start_upstream(true).await;
    let proxy = start_proxy(config_trusting(&up)).await;
    let upstream = proxy.handle.upstream();
    let req = http::Request::builder()
        .method("POST")
        .uri(up.url("/echo"))
        .body(bytes::Bytes::from_static(b"<llsd><undef /></llsd>"))
        .unwrap();
    let resp = upstream.send(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(&resp.body()[..], b"<llsd><undef /></llsd>");

    let relative = http::Request::builder()
        .uri("/echo")
        .body(bytes::Bytes::new())
        .unwrap();
    let err = upstream.send(relative).await.unwrap_err();
    assert!(err.to_string().contains("not usable"), "{err}");
}
