//! The intercepting proxy: listener, CONNECT and TLS termination, routing, the upstream client and the
//! body tap.
//!
//! Owns the data path from the client's socket to the upstream's and back. Knows nothing of caps beyond
//! the [`hook::Hook`] it calls, and nothing of how records are shown or stored (they go on the
//! [`Bus`](crate::record::Bus)).
//!
//! Start one with [`Proxy::builder`]:
//!
//! ```no_run
//! # async fn demo(ca: std::sync::Arc<dyn capscope::proxy::CertIssuer>) -> Result<(), capscope::proxy::ProxyError> {
//! use capscope::proxy::{Proxy, ProxyConfig};
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| {
//!     capscope::proxy::ProxyError::Bind { addr: "127.0.0.1:0".into(), source: e }
//! })?;
//! let handle = Proxy::builder(ProxyConfig::default()).ca(ca).with_listener(listener).start().await?;
//! println!("proxy on {}", handle.local_addr());
//! handle.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Layout: [`server`] (builder, accept loop, connections, shutdown), `connect` (CONNECT: peek, TLS,
//! raw tunnels), `front` (every HTTP/1 connection's
//! first reader: held polls served without hyper, the rest handed to it), `exchange` (one request: hook,
//! forward, record), `tap` (body tap and record
//! finalisation), [`upstream`] (pooled client and its errors), `upgrade` (WebSocket and other `Upgrade`s relayed after the
//! `101`), `wire` (header helpers).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

mod connect;
pub mod decode;
mod exchange;
mod front;
pub mod hook;
mod relay;
pub mod server;
mod tap;
mod upgrade;
pub mod upstream;
mod wire;

pub use front::parse_head_for_fuzzing as read_front_head_for_fuzzing;
pub use server::{check_listen, run_until_shutdown, Proxy, ProxyBuilder, ProxyHandle, Reach};
pub use upstream::UpstreamClient;

/// Where the proxy listens unless told otherwise.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080);
/// How much of each body a record keeps (the true size is always counted).
pub const DEFAULT_MAX_BODY: usize = 4 * 1024 * 1024;
/// How long to wait for a TCP connection to an upstream server.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an idle connection (upstream pool, raw tunnel, HTTP/2 client) stays open. Long enough that
/// no long poll (EventQueueGet is held ~30-60 s, longer on some grids) is ever cut short.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a client may take to send a request head (slowloris guard; on HTTP/1 it also closes a
/// keep-alive connection that sends no new request for this long).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest request head a client may send.
pub const DEFAULT_MAX_HEADER_SIZE: usize = 64 * 1024;
/// How long [`ProxyHandle::shutdown`] lets exchanges in flight finish.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How many client connections (tunnels included) are served at once; more wait in the listen queue
/// until one ends. nginx's default `worker_connections`; each proxied connection also needs an
/// upstream one, so keep it under half the open-file limit.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// How long a request body may send nothing before the exchange is given up (the client gets a 408,
/// the upstream an aborted body). nginx's `client_body_timeout`. The same limit gives up a forwarded
/// response body whose upstream sends nothing (nginx's `proxy_read_timeout`, per read).
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(60);
/// The smallest head buffer hyper accepts.
pub const MIN_MAX_HEADER_SIZE: usize = 8192;
/// The most body bytes worked on (decompressed, parsed, rewritten, published with their record) by
/// the async worker that holds them; larger bodies, and bodies of unknown decoded size, are worked on
/// tokio's blocking pool, so a big body never stalls the requests that share the worker. Used by the
/// record tap's finish and by the caps layer's event-queue answers.
pub const INLINE_BODY_LIMIT: usize = 64 * 1024;

/// How the proxy behaves. Every field has a named default.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Where to listen when no listener is handed to the builder.
    pub listen: SocketAddr,
    /// Allow a listen address other machines can reach.
    pub allow_remote: bool,
    /// How much of each body a record keeps.
    pub max_body: usize,
    /// Extra CA certificates trusted for upstream servers (beside the platform's roots).
    pub upstream_roots: Vec<CertificateDer<'static>>,
    /// Do not verify upstream certificates at all.
    pub insecure_upstream: bool,
    /// Host globs (`*.example.com`) tunnelled without interception.
    pub passthrough: Vec<String>,
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub header_timeout: Duration,
    pub max_header_size: usize,
    /// How long to wait for an upstream response head. `None` (the default): forever, since long polls
    /// are held open by the server on purpose.
    pub response_timeout: Option<Duration>,
    pub shutdown_grace: Duration,
    /// How many client connections are served at once (at least 1).
    pub max_connections: usize,
    /// How long a request body, or a forwarded response body, may send nothing.
    pub body_timeout: Duration,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN,
            allow_remote: false,
            max_body: DEFAULT_MAX_BODY,
            upstream_roots: Vec::new(),
            insecure_upstream: false,
            passthrough: Vec::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            max_header_size: DEFAULT_MAX_HEADER_SIZE,
            response_timeout: None,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            body_timeout: DEFAULT_BODY_TIMEOUT,
        }
    }
}

/// Where the proxy gets a TLS server configuration (a leaf minted by capscope's CA) for a host.
pub trait CertIssuer: Send + Sync + 'static {
    /// The server configuration to present to a client that asked for `host` (a name or an IP).
    fn server_config(&self, host: &str) -> Result<Arc<rustls::ServerConfig>, IssueError>;
}

/// Why no certificate could be presented for a host. The issuer's own error (a
/// [`capscope_ca::CaError`] for capscope's CA) is kept whole as the
/// [`source`](std::error::Error::source), so a caller can tell what failed
/// ([`IssueError::ca_error`]) and the log and the record name it.
#[derive(Debug, thiserror::Error)]
#[error("could not make a certificate for {host}: {source}")]
pub struct IssueError {
    /// The host the client asked for.
    pub host: String,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl IssueError {
    pub fn new(
        host: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Self {
            host: host.into(),
            source: source.into(),
        }
    }

    /// The CA's error, when capscope's CA is the issuer.
    pub fn ca_error(&self) -> Option<&capscope_ca::CaError> {
        self.source.downcast_ref()
    }
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("could not listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "refusing to listen on {addr}: other machines could use the proxy and read what passes \
         through it, cap URLs (bearer secrets) included; pass --allow-remote if \
         that is what you want"
    )]
    RemoteNotAllowed { addr: SocketAddr },
    #[error("the proxy needs a certificate authority to intercept TLS (ProxyBuilder::ca)")]
    NoCa,
    #[error("could not read upstream CA file {path}: {reason}")]
    UpstreamCaFile { path: PathBuf, reason: String },
    #[error("an upstream CA certificate is unusable: {0}")]
    UpstreamCa(String),
    #[error("TLS set-up failed: {0}")]
    Tls(String),
}

/// Reads every certificate in a PEM file (for `--upstream-ca`).
pub fn load_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ProxyError> {
    let fail = |reason: String| ProxyError::UpstreamCaFile {
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| fail(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(e.to_string()))?;
    if certs.is_empty() {
        return Err(fail("it holds no PEM certificate".into()));
    }
    Ok(certs)
}

impl CertIssuer for capscope_ca::CertificateAuthority {
    fn server_config(&self, host: &str) -> Result<Arc<rustls::ServerConfig>, IssueError> {
        capscope_ca::CertificateAuthority::server_config(self, host)
            .map_err(|e| IssueError::new(host, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CA's error reaches the caller as itself (not flattened into text), and the message names
    /// the host and the reason. Before, `CertIssuer` returned a `String`.
    #[test]
    fn a_certificate_that_cannot_be_made_keeps_the_cas_error() {
        let dir = tempfile::tempdir().unwrap();
        let ca = capscope_ca::CertificateAuthority::load_or_create(dir.path()).unwrap();
        let issuer: &dyn CertIssuer = &ca;
        let Err(e) = issuer.server_config("a..b") else {
            panic!("a host with an empty label got a certificate");
        };
        assert_eq!(e.host, "a..b");
        assert!(
            matches!(
                e.ca_error(),
                Some(capscope_ca::CaError::InvalidHost {
                    reason: capscope_ca::HostProblem::EmptyLabel,
                    ..
                })
            ),
            "{e:?}"
        );
        let source = std::error::Error::source(&e).expect("the CA's error is the source");
        assert!(source.is::<capscope_ca::CaError>());
        let text = e.to_string();
        assert!(
            text.contains("a..b") && text.contains("empty label"),
            "{text}"
        );
        assert!(issuer.server_config("sim.example.org").is_ok());
    }
}
