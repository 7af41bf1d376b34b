//! capscope's certificate authority: creates or loads a CA on disk, mints leaf certificates for the
//! hosts a viewer connects to, and hands out cached rustls server configurations for them.
//!
//! Owns: the CA's files (`files`), host name parsing (`host`), certificate contents and TLS server
//! settings (`authority`), the per-host cache (`cache`). Knows nothing of HTTP or of the proxy:
//! the proxy peeks the ClientHello and calls [`CertificateAuthority::server_config`] with the SNI
//! host, else (no SNI: clients send none for IP addresses) the CONNECT host. The SNI is the name the
//! client will check the leaf against; a viewer's libcurl sends the CONNECT target's own host as SNI
//! anyway (docs/certificates.md, "Which host a leaf is made for"). The Second Life viewer's own
//! common-name check is switched off for its HTTP traffic (secondlife/viewer
//! indra/newview/llappcorehttp.cpp, `sslVerify`: "Let libcurl do it"), and libcurl/OpenSSL match
//! the SAN case-insensitively, so the lower-cased SNI rustls reports is as good as the host's own
//! spelling.
//!
//! ```no_run
//! # fn main() -> Result<(), capscope_ca::CaError> {
//! let ca = capscope_ca::CertificateAuthority::load_or_create(std::path::Path::new("/tmp/ca"))?;
//! let config = ca.server_config("sim10128.agni.lindenlab.com")?;
//! # let _ = config; Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod authority;
mod cache;
mod error;
mod files;
mod host;

pub use authority::{
    CertificateAuthority, Leaf, BACKDATE, CA_VALIDITY, CREATION_WAIT, DEFAULT_ALPN, LEAF_VALIDITY,
    ORGANIZATION, SERIAL_BYTES, SESSION_CACHE_SIZE,
};
pub use cache::DEFAULT_CACHE_CAPACITY;
pub use error::{CaError, CertProblem, HostProblem, REGENERATE_HINT};
pub use files::{CaFiles, CaWarning, BACKUP_SUFFIX, CERT_DER_FILE, CERT_PEM_FILE, KEY_FILE};
pub use host::{Host, MAX_DNS_NAME_LEN};
