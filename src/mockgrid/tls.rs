//! The simulated grid's own test certificate authority and the TLS server configuration its regions use.
//!
//! Owns the grid's certificates only. It is deliberately separate from capscope's CA (`capscope-ca`):
//! the grid is "someone else's" server, and a viewer pointed at it must trust the grid's CA, while a
//! viewer behind capscope must trust capscope's.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// The host names the grid's leaf certificate covers.
pub const GRID_HOSTS: [&str; 2] = ["127.0.0.1", "localhost"];

/// How long the grid's certificates are valid, counted from a day before now.
const VALIDITY_DAYS: i64 = 30;

/// Why the grid's TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("could not create the grid's test certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("could not build the grid's TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The grid's certificate authority and the server configuration built from it.
pub struct GridTls {
    /// The CA certificate, PEM (what a client trusts to talk to the grid directly).
    pub ca_pem: String,
    /// One configuration shared by every region server.
    pub server_config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for GridTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GridTls").finish_non_exhaustive()
    }
}

/// Creates a fresh CA (ECDSA P-256) and a leaf for [`GRID_HOSTS`] signed by it.
pub fn generate() -> Result<GridTls, TlsError> {
    let now = time::OffsetDateTime::now_utc();
    let not_before = now - time::Duration::days(1);
    let not_after = now + time::Duration::days(VALIDITY_DAYS);

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "capscope mock grid test CA");
    ca_params
        .distinguished_name
        .push(DnType::OrganizationName, "capscope mock grid");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = not_before;
    ca_params.not_after = not_after;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let ca_der = ca_cert.der().clone();
    let ca_pem = ca_cert.pem();
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf_key = KeyPair::generate()?;
    let mut leaf_params =
        CertificateParams::new(GRID_HOSTS.iter().map(|h| h.to_string()).collect::<Vec<_>>())?;
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, GRID_HOSTS[0]);
    leaf_params.use_authority_key_identifier_extension = true;
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf_params.not_before = not_before;
    leaf_params.not_after = not_after;
    let leaf = leaf_params.signed_by(&leaf_key, &issuer)?;

    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der().clone(), ca_der.clone()], key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(GridTls {
        ca_pem,
        server_config: Arc::new(config),
    })
}
