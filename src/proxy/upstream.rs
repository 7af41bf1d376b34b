//! The upstream clients, all over our own connector (TCP with a connect timeout and `TCP_NODELAY`,
//! then TLS with the one rustls `ClientConfig` built at start-up, over a socket read in large gulps
//! while a body streams: [`read_ahead`]), and the translation of their failures into
//! [`UpstreamError`]s a user can act on:
//! - forwarded exchanges go to the streamed client of [`streamed`] when it serves them: plain
//!   `http`/`https` requests, no `Upgrade`, a body of known length up to
//!   [`streamed::MAX_REQUEST_BODY`] (most have none). It runs in the caller's task: no connection
//!   task and no channels between tasks per exchange.
//! - what it does not serve goes to the pooled hyper-util client, decided before anything is sent:
//!   `Upgrade` requests (`proxy/upgrade.rs` takes the upgraded connection from hyper's response),
//!   and request bodies that are larger or of unknown length (hyper writes them while it reads the
//!   answer, so an early answer such as a 413 is heard; the streamed client takes its small bodies
//!   whole first). Its connections are its own.
//! - the hook's whole exchanges (event-queue polls, grid info) go to [`whole`], which shares its
//!   keep-alive pool with the streamed client.
//!
//! This module owns connections to upstream servers. It must not touch records, routes or the client
//! side of the proxy.

use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Request, Response, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::hook::{BoxFuture, SendUpstream, UpstreamError, MAX_REWRITE_BODY};
use super::tap::{BodyError, Inbound, ProxyBody};
use super::wire::{split_authority, strip_hop_by_hop};
use super::{ProxyConfig, ProxyError};

mod read_ahead;
mod streamed;
mod whole;

use read_ahead::ReadAhead;
pub(crate) use streamed::{LeanBody, LeanBodyError};

#[doc(hidden)]
pub use whole::encode_request_for_fuzzing;
#[doc(hidden)]
pub use whole::read_response_for_fuzzing;

/// How the upstream side is set up (taken from [`ProxyConfig`]).
#[derive(Debug, Clone)]
struct Settings {
    connect_timeout: Duration,
    response_timeout: Option<Duration>,
}

/// The proxy's upstream client. Cheap to clone: clones share the connection pool.
#[derive(Clone)]
pub struct UpstreamClient {
    client: Client<Connector, ProxyBody>,
    streamed: streamed::StreamedClient,
    whole: whole::WholeClient,
    settings: Arc<Settings>,
}

impl std::fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamClient")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl UpstreamClient {
    /// Builds the client: loads the platform's roots plus the configured extra CAs, once.
    pub fn new(config: &ProxyConfig) -> Result<Self, ProxyError> {
        let tls = Arc::new(client_tls_config(config)?);
        let connector = Connector {
            tls: TlsConnector::from(tls),
            connect_timeout: config.connect_timeout,
        };
        let whole = whole::WholeClient::new(
            connector.clone(),
            config.idle_timeout,
            config.response_timeout,
            config.body_timeout,
        );
        let streamed =
            streamed::StreamedClient::new(connector.clone(), whole.pool(), config.response_timeout);
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(config.idle_timeout)
            .build(connector);
        Ok(UpstreamClient {
            client,
            streamed,
            whole,
            settings: Arc::new(Settings {
                connect_timeout: config.connect_timeout,
                response_timeout: config.response_timeout,
            }),
        })
    }

    /// Forwards one request (absolute URL, HTTP/1.1) and returns the response head with its streaming
    /// body: on the streamed client when it serves the request ([`streamed::serves`], decided before
    /// anything is sent), else on the hyper-util client.
    pub(crate) async fn forward(
        &self,
        request: Request<ProxyBody>,
    ) -> Result<Response<Inbound>, UpstreamError> {
        if streamed::serves(&request) {
            return Ok(self.streamed.send(request).await?.map(Inbound::from));
        }
        Ok(self.request(request).await?.map(Inbound::from))
    }

    /// Sends one request (absolute URL, HTTP/1.1) on the hyper-util client and returns the response
    /// head with its streaming body (an `Upgrade` needs hyper's own response: `proxy/upgrade.rs`).
    pub(crate) async fn request(
        &self,
        request: Request<ProxyBody>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let host = request
            .uri()
            .authority()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_default();
        let fut = self.client.request(request);
        let result = match self.settings.response_timeout {
            Some(limit) => match tokio::time::timeout(limit, fut).await {
                Ok(r) => r,
                Err(_) => {
                    return Err(UpstreamError::Timeout {
                        host,
                        seconds: limit.as_secs(),
                    })
                }
            },
            None => fut.await,
        };
        let mut response =
            result.map_err(|e| classify(&host, &e, self.settings.connect_timeout))?;
        drop_length_beside_transfer_encoding(response.headers_mut());
        Ok(response)
    }
}

/// Whole exchanges (event-queue polls, grid info) go through [`whole::WholeClient`], not the pooled
/// hyper client: a poll the grid holds open then costs its connection and little else.
impl SendUpstream for UpstreamClient {
    fn send(
        &self,
        request: Request<Bytes>,
    ) -> BoxFuture<'static, Result<Response<Bytes>, UpstreamError>> {
        let whole = self.whole.clone();
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            parts.version = http::Version::HTTP_11;
            strip_hop_by_hop(&mut parts.headers);
            let response = whole
                .send(Request::from_parts(parts, body), MAX_REWRITE_BODY)
                .await?;
            let (mut parts, body) = response.into_parts();
            // The body is handed over whole: its framing headers are this hop's, not the caller's.
            strip_hop_by_hop(&mut parts.headers);
            Ok(Response::from_parts(parts, body))
        })
    }
}

/// RFC 9112 section 6.3: a message with both `Transfer-Encoding` and `Content-Length` is framed by the
/// transfer coding, and the length must be removed before the message is passed on. hyper's client
/// already reads such a body as chunked but leaves the length in the headers; forwarded as is, the
/// proxy's server side would cut the body at that length.
fn drop_length_beside_transfer_encoding(headers: &mut http::HeaderMap) {
    if headers.contains_key(http::header::TRANSFER_ENCODING)
        && headers.remove(http::header::CONTENT_LENGTH).is_some()
    {
        tracing::debug!(
            "upstream sent Transfer-Encoding and Content-Length: the length is dropped"
        );
    }
}

/// Why a body could not be buffered whole.
pub(crate) enum Collect {
    /// Over the limit: what was read so far, and the rest of the body still to read.
    TooLarge { prefix: Bytes, rest: Inbound },
    /// It broke off, for this reason.
    Failed(String),
    /// The sender sent nothing for this long.
    Stalled(Duration),
}

/// Reads a whole body of at most `limit` bytes, giving up when the sender is silent for `idle`.
pub(crate) async fn collect_limited(
    body: impl Into<Inbound>,
    limit: usize,
    idle: Option<Duration>,
) -> Result<Bytes, Collect> {
    let mut body = body.into();
    let mut buf = BytesMut::new();
    loop {
        let next = match idle {
            Some(limit) => tokio::time::timeout(limit, body.frame())
                .await
                .map_err(|_| Collect::Stalled(limit))?,
            None => body.frame().await,
        };
        let Some(frame) = next else {
            break;
        };
        let frame = frame.map_err(|e| Collect::Failed(describe_body(&e)))?;
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
            if buf.len() > limit {
                return Err(Collect::TooLarge {
                    prefix: buf.freeze(),
                    rest: body,
                });
            }
        }
    }
    Ok(buf.freeze())
}

/// The one TLS client configuration: platform roots plus `--upstream-ca`, or no checks at all.
fn client_tls_config(config: &ProxyConfig) -> Result<ClientConfig, ProxyError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ProxyError::Tls(e.to_string()))?;
    let mut tls = if config.insecure_upstream {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerifier(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            tracing::warn!("could not load a platform root certificate: {e}");
        }
        let (added, ignored) = roots.add_parsable_certificates(native.certs);
        tracing::debug!("{added} platform root certificates loaded ({ignored} unusable)");
        for cert in &config.upstream_roots {
            roots
                .add(cert.clone())
                .map_err(|e| ProxyError::UpstreamCa(e.to_string()))?;
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tls)
}

/// `--insecure-upstream`: accepts any certificate (signatures are still checked for form's sake).
#[derive(Debug)]
struct NoVerifier(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Opens upstream connections: TCP (with a timeout and `TCP_NODELAY`), then TLS for `https`.
#[derive(Clone)]
struct Connector {
    tls: TlsConnector,
    connect_timeout: Duration,
}

/// A connection failure, carrying the words for the user (found again by [`classify`]).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct ConnectFailure(UpstreamError);

impl tower_service::Service<Uri> for Connector {
    type Response = UpConn;
    type Error = ConnectFailure;
    type Future = Pin<Box<dyn Future<Output = Result<UpConn, ConnectFailure>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            this.connect(&uri)
                .await
                .map(|s| UpConn(TokioIo::new(s)))
                .map_err(ConnectFailure)
        })
    }
}

impl Connector {
    async fn connect(&self, uri: &Uri) -> Result<Stream, UpstreamError> {
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => {
                return Err(UpstreamError::BadUrl {
                    url: uri.to_string(),
                    reason: "only http and https are forwarded".into(),
                })
            }
        };
        let Some(authority) = uri.authority() else {
            return Err(UpstreamError::BadUrl {
                url: uri.to_string(),
                reason: "it names no host".into(),
            });
        };
        let display = authority.as_str().to_owned();
        let (host, port) = split_authority(authority.as_str(), if tls { 443 } else { 80 });
        let tcp = match tokio::time::timeout(
            self.connect_timeout,
            TcpStream::connect((host.as_str(), port)),
        )
        .await
        {
            Err(_) => {
                return Err(UpstreamError::Timeout {
                    host: display,
                    seconds: self.connect_timeout.as_secs(),
                })
            }
            Ok(Err(e)) => {
                return Err(UpstreamError::Connect {
                    host: display,
                    reason: describe_io(&e),
                })
            }
            Ok(Ok(s)) => s,
        };
        let _ = tcp.set_nodelay(true);
        if !tls {
            return Ok(Stream::Plain(tcp));
        }
        let name = ServerName::try_from(host.clone()).map_err(|_| UpstreamError::BadUrl {
            url: uri.to_string(),
            reason: format!("{host} is not a valid TLS server name"),
        })?;
        match self.tls.connect(name, ReadAhead::new(tcp)).await {
            Ok(s) => Ok(Stream::Tls(Box::new(s))),
            Err(e) => Err(UpstreamError::Tls {
                host,
                reason: describe_tls(&e),
            }),
        }
    }
}

/// An upstream connection, plain or TLS, as tokio sees it (the whole-exchange client uses it as is).
enum Stream {
    Plain(TcpStream),
    /// TLS over a socket read in large gulps while a body streams ([`read_ahead`]).
    Tls(Box<TlsStream<ReadAhead>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }
}

/// An upstream connection as hyper sees it.
struct UpConn(TokioIo<Stream>);

impl Connection for UpConn {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for UpConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for UpConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }
}

/// Turns a client failure into words: the connector's own failure when there is one, else what hyper
/// said happened to the exchange.
fn classify(
    host: &str,
    e: &hyper_util::client::legacy::Error,
    connect_timeout: Duration,
) -> UpstreamError {
    let mut source: Option<&(dyn StdError + 'static)> = e.source();
    while let Some(s) = source {
        if let Some(ConnectFailure(u)) = s.downcast_ref::<ConnectFailure>() {
            return u.clone();
        }
        if let Some(h) = s.downcast_ref::<hyper::Error>() {
            return UpstreamError::Protocol {
                host: host.to_owned(),
                reason: describe_hyper(h),
            };
        }
        source = s.source();
    }
    if e.is_connect() {
        return UpstreamError::Connect {
            host: host.to_owned(),
            reason: format!("{e} (connect timeout {} s)", connect_timeout.as_secs()),
        };
    }
    UpstreamError::Protocol {
        host: host.to_owned(),
        reason: e.to_string(),
    }
}

/// Why a body broke off, in words (hyper's with their cause).
pub(crate) fn describe_body(e: &BodyError) -> String {
    match e {
        BodyError::Hyper(h) => describe_hyper(h),
        other => other.to_string(),
    }
}

/// What hyper said, with its cause (hyper's own message alone is often just "connection error").
pub(crate) fn describe_hyper(e: &hyper::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn describe_io(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused (is the server running?)".into(),
        io::ErrorKind::ConnectionReset => "connection reset by the server".into(),
        io::ErrorKind::TimedOut => "timed out".into(),
        _ => e.to_string(),
    }
}

/// Words for a failed TLS handshake with an upstream server, with what the user can do about it.
fn describe_tls(e: &io::Error) -> String {
    let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return describe_io(e);
    };
    match tls {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => {
                "certificate is not trusted (UnknownIssuer) — add it with --upstream-ca FILE".into()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "certificate is not valid for this host name (NotValidForName)".into()
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "certificate has expired (Expired)".into()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "certificate is not valid yet (NotValidYet)".into()
            }
            other => format!("certificate rejected ({other:?})"),
        },
        rustls::Error::AlertReceived(alert) => format!("the server sent TLS alert {alert:?}"),
        other => other.to_string(),
    }
}
