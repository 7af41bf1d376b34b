//! The minted certificates carry everything the Second Life viewer checks (SKI on every
//! certificate, AKI = CA SKI, key usages, basicConstraints, serverAuth, SAN + CN = host), checked
//! by parsing them with x509-parser.

mod common;

use std::collections::HashSet;

use capscope_ca::{CertificateAuthority, BACKDATE, CA_VALIDITY, LEAF_VALIDITY, ORGANIZATION};
use common::{authority_key_id, common_names, organizations, parse, sans, subject_key_id};
use time::{Duration, OffsetDateTime};

/// Leeway for "when was this made" comparisons: generous, this is about values, not speed.
const SLACK: Duration = Duration::minutes(10);

fn assert_close(actual: OffsetDateTime, expected: OffsetDateTime, what: &str) {
    assert!(
        (actual - expected).abs() < SLACK,
        "{what}: {actual} is not within {SLACK} of {expected}"
    );
}

#[test]
fn the_ca_certificate_is_a_ca_the_viewer_accepts() {
    let before = OffsetDateTime::now_utc();
    let ca = CertificateAuthority::generate().unwrap();
    let cert = parse(ca.cert_der());

    let ski = subject_key_id(&cert).expect("the CA has a Subject Key Identifier");
    assert!(!ski.is_empty());
    // Self-signed, and says so both by name and by key identifier.
    assert_eq!(cert.subject().as_raw(), cert.issuer().as_raw());
    assert_eq!(authority_key_id(&cert), Some(ski));
    cert.verify_signature(None).expect("self-signed");

    let bc = cert.basic_constraints().unwrap().expect("basicConstraints");
    assert!(bc.critical, "basicConstraints must be critical on the CA");
    assert!(bc.value.ca, "CA:TRUE");
    assert_eq!(bc.value.path_len_constraint, Some(0));

    let ku = cert.key_usage().unwrap().expect("key usage");
    assert!(ku.value.key_cert_sign());
    assert!(ku.value.crl_sign());

    let cn = common_names(&cert);
    assert_eq!(cn.len(), 1);
    assert!(cn[0].starts_with("capscope CA ("), "CN was {:?}", cn[0]);
    assert_eq!(cn[0], ca.common_name());
    assert_eq!(organizations(&cert), vec![ORGANIZATION.to_owned()]);

    let validity = cert.validity();
    assert_close(
        validity.not_before.to_datetime(),
        before - BACKDATE,
        "CA not_before",
    );
    assert_close(
        validity.not_after.to_datetime(),
        before + CA_VALIDITY,
        "CA not_after",
    );
    assert_eq!(validity.not_after.to_datetime(), ca.not_after());
    assert!(cert.public_key().parsed().is_ok());
    assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----\n"));
}

/// Asserts every property the viewer checks on a leaf minted by `ca` for `host`.
fn assert_viewer_accepts(ca: &CertificateAuthority, host: &str, expected_san: &str) {
    let before = OffsetDateTime::now_utc();
    let leaf = ca.mint(host).unwrap();
    let ca_cert = parse(ca.cert_der());
    let cert = parse(leaf.cert_der.as_ref());

    // Chained to the CA: by name, by key identifier and by signature.
    assert_eq!(cert.issuer().as_raw(), ca_cert.subject().as_raw());
    let ca_ski = subject_key_id(&ca_cert).unwrap();
    assert_eq!(authority_key_id(&cert), Some(ca_ski), "leaf AKI == CA SKI");
    cert.verify_signature(Some(ca_cert.public_key()))
        .expect("signed by the CA key");

    let ski = subject_key_id(&cert).expect("the leaf has a Subject Key Identifier");
    assert!(!ski.is_empty());
    assert_ne!(ski, ca_ski);

    let bc = cert.basic_constraints().unwrap().expect("basicConstraints");
    assert!(!bc.value.ca, "a leaf is not a CA");

    let ku = cert.key_usage().unwrap().expect("key usage");
    assert!(ku.value.digital_signature());
    assert!(!ku.value.key_cert_sign());

    let eku = cert
        .extended_key_usage()
        .unwrap()
        .expect("extended key usage");
    assert!(eku.value.server_auth);

    assert_eq!(sans(&cert), vec![expected_san.to_owned()]);
    let san_value = expected_san.split_once(':').unwrap().1;
    assert_eq!(common_names(&cert), vec![san_value.to_owned()]);

    let validity = cert.validity();
    assert_close(
        validity.not_before.to_datetime(),
        before - BACKDATE,
        "leaf not_before",
    );
    assert_close(
        validity.not_after.to_datetime(),
        before + LEAF_VALIDITY,
        "leaf not_after",
    );
    assert!(validity.not_after.to_datetime() <= ca.not_after());
    assert!(validity.is_valid());

    assert!(cert.public_key().parsed().is_ok());
    assert_eq!(leaf.chain.len(), 2);
    assert_eq!(leaf.chain[0], leaf.cert_der);
    assert_eq!(leaf.chain[1].as_ref(), ca.cert_der());
}

#[test]
fn a_leaf_for_a_dns_name_has_everything_the_viewer_checks() {
    let ca = CertificateAuthority::generate().unwrap();
    assert_viewer_accepts(
        &ca,
        "sim10128.agni.lindenlab.com",
        "dns:sim10128.agni.lindenlab.com",
    );
}

#[test]
fn a_leaf_for_an_ipv4_address_names_it_as_an_ip_san() {
    let ca = CertificateAuthority::generate().unwrap();
    assert_viewer_accepts(&ca, "192.168.1.20", "ip:192.168.1.20");
}

#[test]
fn a_leaf_for_an_ipv6_address_names_it_as_an_ip_san() {
    let ca = CertificateAuthority::generate().unwrap();
    assert_viewer_accepts(&ca, "[2001:db8::7]", "ip:2001:db8::7");
}

#[test]
fn host_names_lose_a_trailing_dot_but_keep_their_case() {
    // The viewer compares its host with the CN case-sensitively, so the case must survive.
    let ca = CertificateAuthority::generate().unwrap();
    assert_viewer_accepts(&ca, "Login.OSGrid.org.", "dns:Login.OSGrid.org");
}

#[test]
fn a_ca_loaded_from_disk_mints_leaves_the_viewer_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let first = CertificateAuthority::load_or_create(dir.path()).unwrap();
    drop(first);
    let loaded = CertificateAuthority::load_or_create(dir.path()).unwrap();
    assert_viewer_accepts(&loaded, "grid.example.org", "dns:grid.example.org");
    assert_viewer_accepts(&loaded, "10.0.0.5", "ip:10.0.0.5");
}

#[test]
fn serial_numbers_are_random_positive_and_at_least_64_bits() {
    let ca = CertificateAuthority::generate().unwrap();
    let mut serials = HashSet::new();
    serials.insert(parse(ca.cert_der()).raw_serial().to_vec());
    for _ in 0..50 {
        let leaf = ca.mint("grid.example.org").unwrap();
        let cert = parse(leaf.cert_der.as_ref());
        let raw = cert.raw_serial();
        assert!(raw.len() >= 8, "serial of {} bytes", raw.len());
        assert!(raw.len() <= 20, "RFC 5280 caps serials at 20 bytes");
        assert_eq!(raw[0] & 0x80, 0, "serial must be positive");
        assert!(serials.insert(raw.to_vec()), "serial repeated: {raw:02x?}");
    }
}

#[test]
fn each_mint_makes_a_new_key() {
    let ca = CertificateAuthority::generate().unwrap();
    let a = ca.mint("grid.example.org").unwrap();
    let b = ca.mint("grid.example.org").unwrap();
    assert_ne!(a.cert_der, b.cert_der);
    assert_ne!(a.key_der.secret_der(), b.key_der.secret_der());
}

#[test]
fn two_generated_cas_are_different_and_named_apart() {
    let a = CertificateAuthority::generate().unwrap();
    let b = CertificateAuthority::generate().unwrap();
    assert_ne!(a.cert_der(), b.cert_der());
    assert_ne!(a.common_name(), b.common_name());
}

#[test]
fn hosts_that_cannot_be_certified_are_refused_with_the_reason() {
    let ca = CertificateAuthority::generate().unwrap();
    for bad in ["", "grid.example.org:443", "a b", "bad..name", "grïd.org"] {
        let err = ca.mint(bad).unwrap_err();
        assert!(
            matches!(err, capscope_ca::CaError::InvalidHost { .. }),
            "{bad:?}: {err}"
        );
        assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
    }
}

#[test]
fn the_authority_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<CertificateAuthority>();
}
