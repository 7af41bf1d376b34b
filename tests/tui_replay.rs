//! The UI's replay (`r`) of requests a viewer sent through capscope as its HTTP proxy: plain HTTP
//! in absolute form, and HTTPS inside an intercepted CONNECT. The replay goes to the recorded URL
//! through capscope again, so it is forwarded, answered and recorded like the original, marked with
//! the id of the record it replays.

mod common;

use capscope::record::Record;
use capscope::tui::REPLAY_HEADER;
use common::*;

/// A replay of `original` through the proxy: its final record.
async fn replayed(proxy: &mut TestProxy, original: &Record) -> std::sync::Arc<Record> {
    let replay = capscope::cli::ui::replayer(tokio::runtime::Handle::current(), proxy.addr());
    let said = replay(original).expect("the replay starts");
    assert!(said.contains("replaying"), "{said}");
    proxy.next_final().await
}

fn check_replay(original: &Record, again: &Record) {
    let (q0, q1) = (
        original.request.as_ref().unwrap(),
        again.request.as_ref().unwrap(),
    );
    assert_eq!(q1.url, q0.url, "the same URL, upstream");
    assert_eq!(q1.method, "POST");
    assert_eq!(&q1.body.data[..], b"hello again");
    let marker = q1
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(REPLAY_HEADER))
        .expect("the replay is marked");
    assert_eq!(marker.value, original.id.to_string());
    assert!(
        q1.headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case("x-viewer") && h.value == "1"),
        "the recorded headers go with it: {:?}",
        q1.headers
    );
    let p = again.response.as_ref().expect("answered");
    assert_eq!(p.status, 200);
    assert_eq!(&p.body.data[..], b"hello again", "the upstream echoed it");
}

#[tokio::test]
async fn a_plain_http_proxy_request_replays_to_its_url_through_capscope() {
    let upstream = start_upstream(false).await;
    let mut proxy = start_proxy(config_trusting(&upstream)).await;
    let mut client = proxy.client().plain().await;
    let mut req = request("POST", &upstream.url("/echo"), "hello again");
    req.headers_mut().insert("x-viewer", "1".parse().unwrap());
    let (resp, _) = send_h1(&mut client, req).await;
    assert_eq!(resp.status(), 200);
    let original = proxy.next_final().await;
    assert!(original.request.as_ref().unwrap().client_url.is_none());

    let again = replayed(&mut proxy, &original).await;
    check_replay(&original, &again);
}

#[tokio::test]
async fn an_https_request_made_inside_connect_replays_through_capscope_which_verifies_upstream() {
    let upstream = start_upstream(true).await;
    let mut proxy = start_proxy(config_trusting(&upstream)).await;
    let mut client = proxy.client().https(&upstream.authority()).await;
    let mut req = in_tunnel("POST", "/echo", &upstream, full("hello again"));
    req.headers_mut().insert("x-viewer", "1".parse().unwrap());
    let (resp, _) = send_h1(&mut client, req).await;
    assert_eq!(resp.status(), 200);
    let original = loop {
        // The CONNECT itself may come first as a record of its own.
        let r = proxy.next_final().await;
        if r.request.as_ref().is_some_and(|q| q.url.ends_with("/echo")) {
            break r;
        }
    };
    assert!(original
        .request
        .as_ref()
        .unwrap()
        .url
        .starts_with("https://"));

    let again = replayed(&mut proxy, &original).await;
    check_replay(&original, &again);

    // An upstream whose certificate capscope does not trust: the replay is refused upstream, as
    // the viewer's own request would be, and recorded as failed.
    let mut untrusting = start_proxy(capscope::proxy::ProxyConfig::default()).await;
    let failed = replayed(&mut untrusting, &original).await;
    assert!(
        failed.response.as_ref().is_none_or(|p| p.status >= 500),
        "{failed:?}"
    );
}
