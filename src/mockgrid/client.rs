//! The scripted viewer's HTTP client: one HTTP/1.1 exchange per connection, straight to the server or
//! through an HTTP proxy (absolute-form for `http://`, CONNECT then TLS for `https://`), trusting only
//! the CA certificates it is given.
//!
//! Owns the viewer's sockets. Knows nothing of caps, LLSD or the grid.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::websocket::{self, websocket_accept};

/// The largest response body the viewer reads.
pub const MAX_RESPONSE_BODY: usize = 64 * 1024 * 1024;
/// The longest CONNECT answer head the viewer reads.
const MAX_CONNECT_HEAD: usize = 16 * 1024;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{url} is not a usable URL: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("could not connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("the proxy refused CONNECT {target}: {status_line}")]
    ConnectRefused { target: String, status_line: String },
    #[error("CONNECT {target} through the proxy failed: {reason}")]
    ConnectBroken { target: String, reason: String },
    #[error("TLS with {host} failed: {source}")]
    Tls {
        host: String,
        source: std::io::Error,
    },
    #[error("the HTTP exchange with {url} failed: {reason}")]
    Http { url: String, reason: String },
    #[error("{url} did not answer within {seconds} s")]
    Timeout { url: String, seconds: u64 },
    #[error("no usable CA certificate in the PEM given to the viewer: {0}")]
    Trust(String),
}

/// A whole response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A small HTTP client that goes through a proxy when told to.
#[derive(Clone)]
pub struct HttpClient {
    proxy: Option<SocketAddr>,
    tls: tokio_rustls::TlsConnector,
    timeout: Duration,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("proxy", &self.proxy)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// A client trusting only the certificates in `trusted_pems`.
    pub fn new(
        proxy: Option<SocketAddr>,
        trusted_pems: &[String],
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let mut roots = rustls::RootCertStore::empty();
        for pem in trusted_pems {
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| ClientError::Trust(e.to_string()))?;
                roots
                    .add(cert)
                    .map_err(|e| ClientError::Trust(e.to_string()))?;
            }
        }
        if roots.is_empty() && !trusted_pems.is_empty() {
            return Err(ClientError::Trust("no CERTIFICATE block".into()));
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Trust(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Self {
            proxy,
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            timeout,
        })
    }

    /// Sends one request and reads the whole response.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        content_type: Option<&'static str>,
        body: Bytes,
    ) -> Result<Reply, ClientError> {
        let seconds = self.timeout.as_secs();
        tokio::time::timeout(
            self.timeout,
            self.send_inner(method, url, content_type, body),
        )
        .await
        .map_err(|_| ClientError::Timeout {
            url: url.to_owned(),
            seconds,
        })?
    }

    async fn send_inner(
        &self,
        method: Method,
        url: &str,
        content_type: Option<&'static str>,
        body: Bytes,
    ) -> Result<Reply, ClientError> {
        let (io, target, authority) = self.open(url).await?;
        let bad = |reason: &str| ClientError::BadUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let mut request = Request::builder()
            .method(method)
            .uri(target)
            .body(Full::new(body))
            .map_err(|e| bad(&e.to_string()))?;
        let headers = request.headers_mut();
        headers.insert(
            HOST,
            HeaderValue::from_str(&authority).map_err(|_| bad("its host is not a header value"))?,
        );
        headers.insert("accept-encoding", HeaderValue::from_static("deflate, gzip"));
        headers.insert(
            "user-agent",
            HeaderValue::from_static("capscope-scripted-viewer/1.0 (SecondLife-compatible)"),
        );
        if let Some(ct) = content_type {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        exchange(io, request, url).await
    }

    /// Opens a connection for `url`: straight to its host, or through the proxy (absolute-form for
    /// plain HTTP, CONNECT then TLS for HTTPS). Returns the connection, the request target to use
    /// (absolute-form only for plain HTTP through a proxy; origin-form everywhere else) and
    /// `host:port`.
    async fn open(&self, url: &str) -> Result<(Box<dyn Io>, Uri, String), ClientError> {
        let bad = |reason: &str| ClientError::BadUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: Uri = url.parse().map_err(|_| bad("it does not parse"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad("only http and https are supported")),
        };
        let host = uri.host().ok_or_else(|| bad("it has no host"))?.to_owned();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let authority = format!("{host}:{port}");
        let connect_to = match self.proxy {
            Some(p) => p.to_string(),
            None => authority.clone(),
        };
        let mut tcp =
            TcpStream::connect(&connect_to)
                .await
                .map_err(|source| ClientError::Connect {
                    addr: connect_to.clone(),
                    source,
                })?;
        let _ = tcp.set_nodelay(true);
        let target: Uri = if self.proxy.is_some() && !https {
            uri.clone()
        } else {
            uri.path_and_query()
                .map(|pq| pq.as_str())
                .unwrap_or("/")
                .parse()
                .map_err(|_| bad("its path does not parse"))?
        };
        if !https {
            return Ok((Box::new(tcp), target, authority));
        }
        if self.proxy.is_some() {
            connect_tunnel(&mut tcp, &authority).await?;
        }
        let name = ServerName::try_from(host.clone()).map_err(|_| bad("bad TLS name"))?;
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|source| ClientError::Tls {
                host: host.clone(),
                source,
            })?;
        Ok((Box::new(tls), target, authority))
    }

    /// Opens a WebSocket at `url` (as a web page in the viewer's built-in browser would), sends
    /// `text` and returns what comes back, then closes. Checks the server's `Sec-WebSocket-Accept`.
    pub async fn websocket_echo(&self, url: &str, text: &str) -> Result<String, ClientError> {
        let seconds = self.timeout.as_secs();
        tokio::time::timeout(self.timeout, self.websocket_inner(url, text))
            .await
            .map_err(|_| ClientError::Timeout {
                url: url.to_owned(),
                seconds,
            })?
    }

    async fn websocket_inner(&self, url: &str, text: &str) -> Result<String, ClientError> {
        use base64::Engine as _;
        let http = |reason: String| ClientError::Http {
            url: url.to_owned(),
            reason,
        };
        let (io, target, authority) = self.open(url).await?;
        let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>());
        let request = Request::builder()
            .method(Method::GET)
            .uri(target)
            .header(HOST, authority)
            .header(http::header::CONNECTION, "Upgrade")
            .header(http::header::UPGRADE, "websocket")
            .header("sec-websocket-key", key.as_str())
            .header("sec-websocket-version", "13")
            .body(Full::new(Bytes::new()))
            .map_err(|e| http(e.to_string()))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| http(e.to_string()))?;
        let conn = tokio::spawn(conn.with_upgrades());
        let mut response = sender
            .send_request(request)
            .await
            .map_err(|e| http(e.to_string()))?;
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            conn.abort();
            return Err(http(format!("the handshake got {}", response.status())));
        }
        let accept = response
            .headers()
            .get("sec-websocket-accept")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if accept != websocket_accept(&key) {
            conn.abort();
            return Err(http(format!("wrong Sec-WebSocket-Accept {accept:?}")));
        }
        let upgraded = hyper::upgrade::on(&mut response)
            .await
            .map_err(|e| http(e.to_string()))?;
        let mut ws = TokioIo::new(upgraded);
        let io_err = |e: std::io::Error| http(e.to_string());
        ws.write_all(&websocket::frame(
            0x81,
            text.as_bytes(),
            Some(rand::random()),
        ))
        .await
        .map_err(io_err)?;
        let (first, payload) = websocket::read_frame(&mut ws).await.map_err(io_err)?;
        let opcode = first & 0x0f;
        if opcode != 0x1 {
            return Err(http(format!("the echo came back with opcode {opcode}")));
        }
        ws.write_all(&websocket::frame(0x88, &[], Some(rand::random())))
            .await
            .map_err(io_err)?;
        let (first, _) = websocket::read_frame(&mut ws).await.map_err(io_err)?;
        let opcode = first & 0x0f;
        if opcode != 0x8 {
            return Err(http(format!("the close came back with opcode {opcode}")));
        }
        let _ = ws.shutdown().await;
        String::from_utf8(payload).map_err(|e| http(e.to_string()))
    }
}

/// A connection the client can speak HTTP over (plain TCP or TLS).
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Asks the proxy for a tunnel and reads its answer head byte by byte (so no TLS byte is eaten).
async fn connect_tunnel(tcp: &mut TcpStream, target: &str) -> Result<(), ClientError> {
    let broken = |reason: String| ClientError::ConnectBroken {
        target: target.to_owned(),
        reason,
    };
    let head = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    tcp.write_all(head.as_bytes())
        .await
        .map_err(|e| broken(e.to_string()))?;
    let mut answer = Vec::new();
    while !answer.ends_with(b"\r\n\r\n") {
        if answer.len() >= MAX_CONNECT_HEAD {
            return Err(broken(format!(
                "its answer is over {MAX_CONNECT_HEAD} bytes"
            )));
        }
        let byte = tcp.read_u8().await.map_err(|e| broken(e.to_string()))?;
        answer.push(byte);
    }
    let text = String::from_utf8_lossy(&answer);
    let status_line = text.lines().next().unwrap_or("").to_owned();
    let ok = status_line
        .split_whitespace()
        .nth(1)
        .is_some_and(|code| code.starts_with('2'));
    if ok {
        Ok(())
    } else {
        Err(ClientError::ConnectRefused {
            target: target.to_owned(),
            status_line,
        })
    }
}

async fn exchange<I>(io: I, request: Request<Full<Bytes>>, url: &str) -> Result<Reply, ClientError>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let http = |e: &dyn std::fmt::Display| ClientError::Http {
        url: url.to_owned(),
        reason: e.to_string(),
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| http(&e))?;
    let conn = tokio::spawn(conn);
    let result = async {
        let response = sender.send_request(request).await.map_err(|e| http(&e))?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_RESPONSE_BODY)
            .collect()
            .await
            .map_err(|e| http(&*e))?
            .to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
    .await;
    drop(sender);
    conn.abort();
    result
}
