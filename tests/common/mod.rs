//! Shared helpers for the proxy's end-to-end tests: a test upstream (HTTP and HTTPS, with its own test
//! CA), a proxy started on 127.0.0.1:0, and a client that speaks through the proxy (absolute-form,
//! CONNECT + TLS with HTTP/1.1 or HTTP/2) trusting only capscope's CA.
#![allow(dead_code)]

use std::io::Write;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use capscope::proxy::{Proxy, ProxyConfig, ProxyHandle};
use capscope::record::{Bus, Received, Record, State, Subscriber};
use capscope_ca::CertificateAuthority;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

pub type TestBody = BoxBody<Bytes, std::io::Error>;

/// A body held whole.
pub fn full(data: impl Into<Bytes>) -> TestBody {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed()
}

/// The byte at `offset` of every pattern body.
pub fn pattern_byte(offset: u64) -> u8 {
    (offset % 251) as u8
}

pub fn pattern(len: usize) -> Vec<u8> {
    (0..len as u64).map(pattern_byte).collect()
}

/// `len` pattern bytes in `chunk`-sized frames, made as they are polled (never held whole); with
/// `exact` false its length is not announced (chunked on HTTP/1.1).
pub struct PatternBody {
    pub left: u64,
    pub offset: u64,
    pub chunk: usize,
    pub exact: bool,
}

impl PatternBody {
    pub fn new(len: u64, chunk: usize) -> Self {
        PatternBody {
            left: len,
            offset: 0,
            chunk,
            exact: true,
        }
    }

    pub fn boxed(self) -> TestBody {
        BodyExt::boxed(self)
    }
}

impl Body for PatternBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = (self.chunk as u64).min(self.left);
        let start = self.offset;
        let data: Vec<u8> = (start..start + n).map(pattern_byte).collect();
        self.left -= n;
        self.offset += n;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(data)))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        if self.exact {
            hyper::body::SizeHint::with_exact(self.left)
        } else {
            hyper::body::SizeHint::default()
        }
    }
}

/// A body fed through a channel.
pub struct ChannelBody(pub tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.0.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data)))
    }
}

impl ChannelBody {
    pub fn boxed(self) -> TestBody {
        BodyExt::boxed(self)
    }
}

/// `members` gzip members of 1 MiB of zeros each (a multi-member gzip stream: `members` MiB decoded
/// from about `members` KiB).
pub fn gzip_bomb(members: usize) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&vec![0u8; 1 << 20]).unwrap();
    let member = enc.finish().unwrap();
    member.repeat(members)
}

/// An LLSD XML map of about `len` bytes, like a small cap response.
pub fn llsd_body(len: usize) -> String {
    let mut out = String::from("<?xml version=\"1.0\" ?><llsd><map>");
    let mut i = 0;
    while out.len() + 24 < len {
        out.push_str(&format!("<key>k{i}</key><integer>{i}</integer>"));
        i += 1;
    }
    out.push_str("</map></llsd>");
    out
}

pub const REPEAT_BLOCK: usize = 256 * 1024;
static REPEAT: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();

/// `left` bytes made of one shared block.
pub struct RepeatBody {
    pub left: u64,
}

impl Body for RepeatBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let block = REPEAT.get_or_init(|| Bytes::from(pattern(REPEAT_BLOCK)));
        let n = (block.len() as u64).min(self.left);
        self.left -= n;
        Poll::Ready(Some(Ok(Frame::data(block.slice(..n as usize)))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.left)
    }
}

impl RepeatBody {
    pub fn boxed(self) -> TestBody {
        BodyExt::boxed(self)
    }
}

/// A test upstream server. Routes:
/// - `/echo`: the request body back, with `x-method` and `x-request-bytes`;
/// - `/bytes/N`: N pattern bytes with a Content-Length; `/chunked/N`: the same, chunked;
/// - `/status/N`: an empty response with status N;
/// - `/gzip`: a gzip-encoded text body; `/gzbomb/N`: N MiB of zeros as N gzip members; `/octet`: a body labelled `Content-Encoding: binary/octet-stream`;
/// - `/reset`: announces 100000 bytes, sends 1000, then breaks off;
/// - `/repeat/N`: N bytes of one shared block; `/llsd/N`: an LLSD body of about N bytes;
/// - `/sink`: reads the request body and answers its size;
/// - `/count`: how many TCP connections this server accepted.
pub struct Upstream {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    pub ca: Arc<CertificateAuthority>,
    pub tls: bool,
}

pub const GZIP_TEXT: &str = "<llsd><map><key>hello</key><string>gzip</string></map></llsd>";

pub async fn start_upstream(tls: bool) -> Upstream {
    start_upstream_as(tls, "127.0.0.1").await
}

/// An upstream whose certificate names `cert_host` (a mismatch makes a bad certificate).
pub async fn start_upstream_as(tls: bool, cert_host: &str) -> Upstream {
    let ca = Arc::new(
        CertificateAuthority::generate()
            .unwrap()
            .with_alpn(vec![b"http/1.1".to_vec()]),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let acceptor = TlsAcceptor::from(ca.server_config(cert_host).unwrap());
    let count = connections.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            let _ = stream.set_nodelay(true);
            let count = count.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| route(req, count.clone()));
                let builder = hyper::server::conn::http1::Builder::new();
                if tls {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                } else {
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                }
            });
        }
    });
    Upstream {
        addr,
        connections,
        ca,
        tls,
    }
}

impl Upstream {
    pub fn authority(&self) -> String {
        self.addr.to_string()
    }

    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.addr)
    }
}

async fn route(
    req: Request<Incoming>,
    connections: Arc<AtomicUsize>,
) -> Result<Response<TestBody>, std::io::Error> {
    let path = req.uri().path().to_owned();
    let number = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|n| n.parse::<u64>().ok())
    };
    let resp = if path == "/echo" {
        let method = req.method().to_string();
        let body = req
            .into_body()
            .collect()
            .await
            .map_err(std::io::Error::other)?
            .to_bytes();
        Response::builder()
            .header("x-method", method)
            .header("x-request-bytes", body.len().to_string())
            .body(full(body))
            .unwrap()
    } else if let Some(n) = number("/bytes/") {
        Response::new(PatternBody::new(n, 64 * 1024).boxed())
    } else if let Some(n) = number("/chunked/") {
        let mut body = PatternBody::new(n, 10_000);
        body.exact = false;
        Response::new(body.boxed())
    } else if let Some(n) = number("/status/") {
        Response::builder()
            .status(StatusCode::from_u16(n as u16).unwrap())
            .body(full(Bytes::new()))
            .unwrap()
    } else if path == "/gzip" {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(GZIP_TEXT.as_bytes()).unwrap();
        Response::builder()
            .header("content-encoding", "gzip")
            .header("content-type", "application/llsd+xml")
            .body(full(enc.finish().unwrap()))
            .unwrap()
    } else if let Some(n) = number("/gzbomb/") {
        // N gzip members of 1 MiB of zeros each: about N KiB on the wire, N MiB once decoded.
        Response::builder()
            .header("content-encoding", "gzip")
            .header("content-type", "application/llsd+xml")
            .body(full(gzip_bomb(n as usize)))
            .unwrap()
    } else if path == "/octet" {
        Response::builder()
            .header("content-encoding", "binary/octet-stream")
            .body(full(&b"not compressed at all"[..]))
            .unwrap()
    } else if path == "/reset" {
        // Headers and 1000 bytes go out; then the body breaks off.
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        tokio::spawn(async move {
            let _ = tx.send(Ok(Bytes::from(pattern(1000)))).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            let _ = tx
                .send(Err(std::io::Error::other("test upstream breaks off")))
                .await;
        });
        Response::builder()
            .header("content-length", "100000")
            .body(ChannelBody(rx).boxed())
            .unwrap()
    } else if let Some(n) = number("/repeat/") {
        // N bytes from one shared block, cheap to serve (for throughput measurements).
        Response::new(RepeatBody { left: n }.boxed())
    } else if let Some(n) = number("/llsd/") {
        Response::builder()
            .header("content-type", "application/llsd+xml")
            .body(full(llsd_body(n as usize)))
            .unwrap()
    } else if path == "/sink" {
        // Reads the request body frame by frame and answers how many bytes came.
        let mut body = req.into_body();
        let mut n = 0u64;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.map_err(std::io::Error::other)?.into_data() {
                n += data.len() as u64;
            }
        }
        Response::new(full(n.to_string()))
    } else if path == "/count" {
        Response::new(full(connections.load(Ordering::SeqCst).to_string()))
    } else {
        Response::builder()
            .status(404)
            .body(full(Bytes::new()))
            .unwrap()
    };
    Ok(resp)
}

/// A proxy on 127.0.0.1:0 trusting `upstream`'s CA, with its own CA, and a subscriber to its records.
pub struct TestProxy {
    pub handle: ProxyHandle,
    pub ca: Arc<CertificateAuthority>,
    pub records: Subscriber,
}

pub fn config_trusting(upstream: &Upstream) -> ProxyConfig {
    ProxyConfig {
        upstream_roots: vec![CertificateDer::from(upstream.ca.cert_der().to_vec())],
        ..ProxyConfig::default()
    }
}

pub async fn start_proxy(config: ProxyConfig) -> TestProxy {
    let ca = Arc::new(CertificateAuthority::generate().unwrap());
    let bus = Arc::new(Bus::default());
    let records = bus.subscribe();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = Proxy::builder(config)
        .ca(ca.clone())
        .bus(bus)
        .with_listener(listener)
        .start()
        .await
        .unwrap();
    TestProxy {
        handle,
        ca,
        records,
    }
}

impl TestProxy {
    pub fn addr(&self) -> SocketAddr {
        self.handle.local_addr()
    }

    /// The next final record (skipping open ones), waiting at most 10 s.
    pub async fn next_final(&mut self) -> Arc<Record> {
        loop {
            let got = tokio::time::timeout(Duration::from_secs(10), self.records.recv())
                .await
                .expect("no record within 10 s");
            match got {
                Some(Received::Record(r)) if r.state != State::Open => return r,
                Some(_) => continue,
                None => panic!("the record stream ended"),
            }
        }
    }

    /// A client that trusts only this proxy's CA.
    pub fn client(&self) -> ProxyClient {
        ProxyClient::new(self.addr(), &self.ca)
    }
}

/// Speaks to upstreams through the proxy.
pub struct ProxyClient {
    pub proxy: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
}

pub type H1 = hyper::client::conn::http1::SendRequest<TestBody>;
pub type H2 = hyper::client::conn::http2::SendRequest<TestBody>;

impl ProxyClient {
    pub fn new(proxy: SocketAddr, ca: &CertificateAuthority) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(ca.cert_der().to_vec()))
            .unwrap();
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        ProxyClient {
            proxy,
            tls: Arc::new(tls),
        }
    }

    /// A plain connection to the proxy (for absolute-form requests).
    pub async fn plain(&self) -> H1 {
        let tcp = TcpStream::connect(self.proxy).await.unwrap();
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        send
    }

    /// Opens a CONNECT tunnel to `authority` and returns the raw stream after the 200.
    pub async fn connect(&self, authority: &str) -> TcpStream {
        let mut tcp = TcpStream::connect(self.proxy).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        tcp.write_all(
            format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(
                tcp.read(&mut byte).await.unwrap(),
                1,
                "proxy closed during CONNECT"
            );
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 200"), "CONNECT answered {head}");
        tcp
    }

    async fn tls(
        &self,
        authority: &str,
        alpn: &[u8],
    ) -> tokio_rustls::client::TlsStream<TcpStream> {
        let host = authority
            .rsplit_once(':')
            .map_or(authority, |(h, _)| h)
            .to_owned();
        self.tls_named(authority, &host, alpn).await
    }

    /// CONNECT to `authority`, then TLS asking for `sni` (the name the proxy mints a leaf for).
    pub async fn tls_named(
        &self,
        authority: &str,
        sni: &str,
        alpn: &[u8],
    ) -> tokio_rustls::client::TlsStream<TcpStream> {
        let tcp = self.connect(authority).await;
        let mut config = (*self.tls).clone();
        config.alpn_protocols = vec![alpn.to_vec()];
        TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from(sni.to_owned()).unwrap(), tcp)
            .await
            .unwrap()
    }

    /// TLS + HTTP/1.1 straight to `addr` (no proxy), trusting this client's CA.
    pub async fn direct_https(&self, addr: SocketAddr) -> H1 {
        let tcp = TcpStream::connect(addr).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let mut config = (*self.tls).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tls = TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from(addr.ip().to_string()).unwrap(), tcp)
            .await
            .unwrap();
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        send
    }

    /// CONNECT + TLS (trusting capscope's CA) + HTTP/1.1.
    pub async fn https(&self, authority: &str) -> H1 {
        let tls = self.tls(authority, b"http/1.1").await;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        send
    }

    /// CONNECT + TLS + HTTP/2 (ALPN h2).
    pub async fn https_h2(&self, authority: &str) -> H2 {
        let tls = self.tls(authority, b"h2").await;
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .unwrap();
        tokio::spawn(conn);
        send
    }
}

/// An absolute-form request with a whole body (plain HTTP through the proxy).
pub fn request(method: &str, url: &str, body: impl Into<Bytes>) -> Request<TestBody> {
    let uri: http::Uri = url.parse().unwrap();
    let host = uri.authority().unwrap().to_string();
    Request::builder()
        .method(method)
        .uri(uri)
        .header("host", host)
        .body(full(body))
        .unwrap()
}

/// An origin-form request for inside a tunnel to `upstream`.
pub fn in_tunnel(
    method: &str,
    path: &str,
    upstream: &Upstream,
    body: TestBody,
) -> Request<TestBody> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", upstream.authority())
        .body(body)
        .unwrap()
}

/// Sends and reads the whole response.
pub async fn send_h1(client: &mut H1, req: Request<TestBody>) -> (Response<()>, Bytes) {
    client.ready().await.unwrap();
    let resp = client.send_request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (Response::from_parts(parts, ()), body)
}

pub async fn send_h2(client: &mut H2, req: Request<TestBody>) -> (Response<()>, Bytes) {
    client.ready().await.unwrap();
    let resp = client.send_request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (Response::from_parts(parts, ()), body)
}

/// How long a spawned capscope may take to print its address.
pub const SPAWN_HANG: Duration = Duration::from_secs(30);

/// `capscope run --headless --listen 127.0.0.1:0 ARGS` as a process, with its data and CA in `dir`.
/// With `shell`, it starts through `sh -c "SHELL && exec capscope ..."` (for `ulimit` and `trap`).
/// The records on stdout are discarded; stderr (the banner and the log) is read line by line on a
/// thread. Returns the child, the address from the banner, and the rest of stderr's lines.
pub fn spawn_run(
    dir: &std::path::Path,
    shell: Option<&str>,
    args: &[&str],
) -> (
    std::process::Child,
    SocketAddr,
    std::sync::mpsc::Receiver<String>,
) {
    use std::process::{Command, Stdio};
    let mut command = match shell {
        Some(prefix) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("{prefix} && exec \"$0\" \"$@\""))
                .arg(env!("CARGO_BIN_EXE_capscope"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_capscope")),
    };
    let mut child = command
        .args(["--ca-dir", dir.join("ca").to_str().unwrap()])
        .args(["run", "--headless", "--listen", "127.0.0.1:0"])
        .args(args)
        .env("CAPSCOPE_HOME", dir)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (addr, lines) = listening_address(&mut child, SPAWN_HANG);
    (child, addr, lines)
}

/// Reads a capscope child's stderr line by line on a thread until its banner names the address it
/// listens on; returns that address and the rest of stderr's lines. The child must have been started
/// with `stderr(Stdio::piped())`.
pub fn listening_address(
    child: &mut std::process::Child,
    hang: Duration,
) -> (SocketAddr, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let addr = loop {
        let line = lines
            .recv_timeout(hang)
            .expect("capscope printed no address");
        if let Some(a) = line.trim().strip_prefix("capscope is listening on ") {
            break a.parse().unwrap();
        }
    };
    (addr, lines)
}

pub mod demo;
pub mod grid;
