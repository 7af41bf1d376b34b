//! Real TLS handshakes against `server_config(host)`: a rustls client that trusts only the CA
//! connects over an in-memory pipe and verifies the host name; plus the per-host cache.

use std::sync::Arc;

use capscope_ca::CertificateAuthority;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::HandshakeKind;
use rustls::{ClientConfig, ClientConnection, Connection, RootCertStore, ServerConnection};

/// More round trips than any handshake needs; stops a broken handshake from looping forever.
const MAX_ROUNDS: usize = 10;

fn client_config(
    ca: &CertificateAuthority,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca.cert_der().to_vec()))
        .unwrap();
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Moves every pending TLS byte from `from` to `to` and lets `to` process them.
fn transfer(from: &mut Connection, to: &mut Connection) -> Result<(), rustls::Error> {
    let mut wire = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut wire).unwrap();
    }
    let mut rest = &wire[..];
    while !rest.is_empty() {
        to.read_tls(&mut rest).unwrap();
        to.process_new_packets()?;
    }
    Ok(())
}

/// Runs a handshake (and lets the server's session tickets reach the client).
fn handshake(
    server_config: Arc<rustls::ServerConfig>,
    client_config: Arc<ClientConfig>,
    name: &str,
) -> Result<(Connection, Connection), rustls::Error> {
    let server_name = ServerName::try_from(name.to_owned()).unwrap();
    let client = Connection::Client(ClientConnection::new(client_config, server_name)?);
    let server = Connection::Server(ServerConnection::new(server_config)?);
    finish(client, server)
}

/// Pumps bytes both ways until neither side has a handshake left to do.
fn finish(
    mut client: Connection,
    mut server: Connection,
) -> Result<(Connection, Connection), rustls::Error> {
    for _ in 0..MAX_ROUNDS {
        transfer(&mut client, &mut server)?;
        transfer(&mut server, &mut client)?;
        if !client.is_handshaking() && !server.is_handshaking() && !server.wants_write() {
            return Ok((client, server));
        }
    }
    panic!("the handshake did not finish in {MAX_ROUNDS} rounds");
}

fn all_versions() -> Vec<&'static rustls::SupportedProtocolVersion> {
    rustls::ALL_VERSIONS.to_vec()
}

#[test]
fn a_client_trusting_only_the_ca_accepts_a_dns_host() {
    let ca = CertificateAuthority::generate().unwrap();
    let host = "sim10128.agni.lindenlab.com";
    let (client, _) = handshake(
        ca.server_config(host).unwrap(),
        client_config(&ca, &all_versions()),
        host,
    )
    .unwrap();
    assert_eq!(client.alpn_protocol(), Some(&b"h2"[..]));
    assert_eq!(
        client.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
}

#[test]
fn a_client_trusting_only_the_ca_accepts_ip_hosts() {
    let ca = CertificateAuthority::generate().unwrap();
    for host in ["127.0.0.1", "::1"] {
        let (client, _) = handshake(
            ca.server_config(host).unwrap(),
            client_config(&ca, &all_versions()),
            host,
        )
        .unwrap();
        assert!(!client.is_handshaking(), "{host}");
    }
}

#[test]
fn tls_1_2_clients_are_served_too() {
    let ca = CertificateAuthority::generate().unwrap();
    let host = "grid.example.org";
    let (client, _) = handshake(
        ca.server_config(host).unwrap(),
        client_config(&ca, &[&rustls::version::TLS12]),
        host,
    )
    .unwrap();
    assert_eq!(
        client.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
}

#[test]
fn a_certificate_for_one_host_is_refused_for_another() {
    let ca = CertificateAuthority::generate().unwrap();
    let err = handshake(
        ca.server_config("grid.example.org").unwrap(),
        client_config(&ca, &all_versions()),
        "other.example.org",
    )
    .unwrap_err();
    assert!(
        matches!(err, rustls::Error::InvalidCertificate(_)),
        "{err:?}"
    );
}

#[test]
fn a_client_trusting_another_ca_refuses_the_leaf() {
    let ours = CertificateAuthority::generate().unwrap();
    let theirs = CertificateAuthority::generate().unwrap();
    let err = handshake(
        ours.server_config("grid.example.org").unwrap(),
        client_config(&theirs, &all_versions()),
        "grid.example.org",
    )
    .unwrap_err();
    assert!(
        matches!(err, rustls::Error::InvalidCertificate(_)),
        "{err:?}"
    );
}

#[test]
fn a_second_connection_resumes_the_session() {
    let ca = CertificateAuthority::generate().unwrap();
    let host = "grid.example.org";
    for versions in [all_versions(), vec![&rustls::version::TLS12]] {
        let client_config = client_config(&ca, &versions);
        let (first, _) = handshake(
            ca.server_config(host).unwrap(),
            Arc::clone(&client_config),
            host,
        )
        .unwrap();
        assert_eq!(first.handshake_kind(), Some(HandshakeKind::Full));
        let (second, _) = handshake(ca.server_config(host).unwrap(), client_config, host).unwrap();
        assert_eq!(
            second.handshake_kind(),
            Some(HandshakeKind::Resumed),
            "{:?}",
            second.protocol_version()
        );
    }
}

#[test]
fn the_same_host_gets_the_same_config() {
    let ca = CertificateAuthority::generate().unwrap();
    let a = ca.server_config("grid.example.org").unwrap();
    let b = ca.server_config("grid.example.org").unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    // A trailing dot changes nothing; letter case does (the viewer compares CNs by case).
    let c = ca.server_config("grid.example.org.").unwrap();
    assert!(Arc::ptr_eq(&a, &c));
    let d = ca.server_config("GRID.example.org").unwrap();
    assert!(!Arc::ptr_eq(&a, &d));
    let e = ca.server_config("other.example.org").unwrap();
    assert!(!Arc::ptr_eq(&a, &e));
    assert_eq!(ca.cached_hosts(), 3);
    assert_eq!(a.alpn_protocols, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
}

#[test]
fn the_cache_is_bounded_and_evicts_the_least_recently_used() {
    let ca = CertificateAuthority::generate()
        .unwrap()
        .with_cache_capacity(2);
    let a = ca.server_config("a.example").unwrap();
    let b = ca.server_config("b.example").unwrap();
    // Touch `a`, so `b` is the least recently used when `c` arrives.
    assert!(Arc::ptr_eq(&a, &ca.server_config("a.example").unwrap()));
    ca.server_config("c.example").unwrap();
    assert_eq!(ca.cached_hosts(), 2);
    assert!(Arc::ptr_eq(&a, &ca.server_config("a.example").unwrap()));
    assert!(!Arc::ptr_eq(&b, &ca.server_config("b.example").unwrap()));
    assert_eq!(ca.cached_hosts(), 2);
}

#[test]
fn alpn_can_be_narrowed_for_a_proxy_without_http2() {
    let ca = CertificateAuthority::generate()
        .unwrap()
        .with_alpn(vec![b"http/1.1".to_vec()]);
    let host = "grid.example.org";
    let (client, _) = handshake(
        ca.server_config(host).unwrap(),
        client_config(&ca, &all_versions()),
        host,
    )
    .unwrap();
    assert_eq!(client.alpn_protocol(), Some(&b"http/1.1"[..]));
}

#[test]
fn a_bad_host_is_an_error_not_a_config() {
    let ca = CertificateAuthority::generate().unwrap();
    assert!(ca.server_config("grid.example.org:443").is_err());
    assert_eq!(ca.cached_hosts(), 0);
}

#[test]
fn the_proxy_flow_peeks_the_client_hello_then_picks_the_config() {
    // What the proxy does with tokio-rustls' LazyConfigAcceptor, done here with rustls' own
    // synchronous Acceptor: read the ClientHello, pick the host, hand over that host's config.
    let ca = CertificateAuthority::generate().unwrap();
    let client_config = client_config(&ca, &all_versions());
    for (connect_host, expected_sni) in [
        ("Sim1.Example.org", Some("sim1.example.org")),
        ("10.1.2.3", None),
    ] {
        let server_name = ServerName::try_from(connect_host.to_owned()).unwrap();
        let mut client = ClientConnection::new(Arc::clone(&client_config), server_name).unwrap();
        let mut wire = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut wire).unwrap();
        }
        let mut acceptor = rustls::server::Acceptor::default();
        acceptor.read_tls(&mut &wire[..]).unwrap();
        let accepted = acceptor
            .accept()
            .map_err(|(e, _)| e)
            .unwrap()
            .expect("the whole ClientHello was read");
        // rustls lower-cases SNI and clients send none for IP addresses: the proxy takes the SNI,
        // else the CONNECT host (proxy/connect.rs). A leaf for the lower-cased name satisfies a
        // client that asked for the mixed-case one: clients match the SAN case-insensitively (the
        // viewer's own case-sensitive CN check is off, llappcorehttp.cpp).
        let sni = accepted.client_hello().server_name().map(str::to_owned);
        assert_eq!(sni.as_deref(), expected_sni);
        let host = sni.as_deref().unwrap_or(connect_host);
        let server = accepted
            .into_connection(ca.server_config(host).unwrap())
            .map_err(|(e, _)| e)
            .unwrap();
        let (client, _) = finish(Connection::Client(client), Connection::Server(server)).unwrap();
        assert_eq!(client.alpn_protocol(), Some(&b"h2"[..]), "{connect_host}");
    }
}
