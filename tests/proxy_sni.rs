//! Which host a minted leaf names (the CA contract: docs/certificates.md, "Which host a leaf is made
//! for"): the ClientHello's SNI, the name the client checks the leaf against; the CONNECT target's host
//! only when there is no SNI (a client sends none for an IP address). Where the request goes is the
//! CONNECT target either way.

mod common;

use common::*;

use capscope::record::State;
use hyper_util::rt::TokioIo;
use x509_parser::extensions::GeneralName;

/// The subjectAltNames of the leaf the proxy presented, as text (IPv4 addresses dotted).
fn leaf_names(tls: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> Vec<String> {
    let certs = tls.get_ref().1.peer_certificates().expect("a leaf");
    let (_, leaf) = x509_parser::parse_x509_certificate(certs[0].as_ref()).unwrap();
    let san = leaf.subject_alternative_name().unwrap().expect("a SAN");
    san.value
        .general_names
        .iter()
        .map(|name| match name {
            GeneralName::DNSName(dns) => dns.to_string(),
            GeneralName::IPAddress(ip) => {
                ip.iter().map(u8::to_string).collect::<Vec<_>>().join(".")
            }
            other => format!("{other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn the_leaf_names_the_sni_and_the_connect_host_only_without_one() {
    let up = start_upstream(true).await;
    let mut proxy = start_proxy(config_trusting(&up)).await;
    let client = proxy.client();

    // An SNI that differs from the CONNECT host (127.0.0.1:port): the leaf is for the SNI, and the
    // client, which checks that name, accepts it; the request still goes to the CONNECT target.
    let tls = client
        .tls_named(&up.authority(), "sim.example", b"http/1.1")
        .await;
    assert_eq!(leaf_names(&tls), ["sim.example"]);
    let (mut h1, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let (resp, body) = send_h1(&mut h1, in_tunnel("GET", "/bytes/10", &up, full(""))).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(&body[..], &pattern(10)[..]);
    let r = proxy.next_final().await;
    assert_eq!(r.state, State::Done);
    assert_eq!(r.request.as_ref().unwrap().url, up.url("/bytes/10"));

    // No SNI (the client connects by IP address): the leaf is for the CONNECT host.
    let tls = client
        .tls_named(&up.authority(), "127.0.0.1", b"http/1.1")
        .await;
    assert_eq!(leaf_names(&tls), ["127.0.0.1"]);
}
