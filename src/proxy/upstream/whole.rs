//! Whole exchanges for the hook (event-queue polls, grid info): one buffered request, one buffered
//! response, spoken as HTTP/1.1 straight over the upstream connection inside the caller's task, with
//! a small keep-alive pool of its own.
//!
//! Why not the pooled hyper client: an event-queue poll is held open by the grid for up to 30 s (and
//! by thousands of viewers at once), and through hyper each held poll keeps a connection task, a
//! request queue block (about 12 KiB) and two 8 KiB buffers. Here a held poll keeps its connection
//! and its task's future; the read buffer is taken when the answer starts to arrive. See
//! docs/reliability.md for the figures.
//!
//! This module owns those exchanges and their idle connections. It must not touch records, routes
//! or the client side of the proxy, and it serves only exchanges whose bodies are buffered whole:
//! streamed forwarding stays on the hyper client.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Version};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};

use super::{describe_io, Connector, Stream};
use crate::proxy::hook::UpstreamError;
use crate::proxy::wire::decimal_length;

/// The read buffer a response starts with, taken once its first bytes arrive (an idle poll holds
/// none while it waits).
pub(super) const FIRST_READ: usize = 1024;
/// The most a response head may take (status line and headers).
pub(super) const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// The most header lines a response head may have (hyper's limit too).
const MAX_RESPONSE_HEADERS: usize = 100;
/// The most a chunk-size line or a trailer line may take.
pub(super) const MAX_CHUNK_LINE: usize = 4 * 1024;
/// The most the trailers after the last chunk may take (they are read and dropped).
pub(super) const MAX_TRAILERS: usize = 64 * 1024;
/// Why a body that runs until the close is refused when a TLS upstream closed without close_notify.
pub(super) const UNSURE_END: &str = "the body had no length and the TLS connection closed without \
    close_notify, so it may be cut short";
/// Idle connections kept per upstream host (`scheme://authority`).
const MAX_IDLE_PER_HOST: usize = 32;
/// The least time between two sweeps of idle connections.
const MIN_SWEEP: Duration = Duration::from_secs(1);

/// The whole-exchange client: the shared connector and a keep-alive pool.
#[derive(Clone)]
pub(super) struct WholeClient {
    connector: Connector,
    pool: Arc<Pool>,
    response_timeout: Option<Duration>,
    /// How long a response body may send nothing once its head came (`--body-timeout`).
    body_timeout: Duration,
}

impl WholeClient {
    pub(super) fn new(
        connector: Connector,
        idle_timeout: Duration,
        response_timeout: Option<Duration>,
        body_timeout: Duration,
    ) -> Self {
        WholeClient {
            connector,
            pool: Pool::new(idle_timeout),
            response_timeout,
            body_timeout,
        }
    }

    /// The keep-alive pool, shared with the streamed client ([`super::streamed`]): both speak
    /// HTTP/1.1 on the same kind of connection, so one idle connection serves either.
    pub(super) fn pool(&self) -> Arc<Pool> {
        self.pool.clone()
    }

    /// Sends `request` (absolute `http`/`https` URL) and reads the whole response, its body at most
    /// `limit` bytes once its transfer coding is undone. The response keeps its headers as sent,
    /// except a `Content-Length` beside a `Transfer-Encoding` (RFC 9112 section 6.3).
    pub(super) async fn send(
        &self,
        request: Request<Bytes>,
        limit: usize,
    ) -> Result<Response<Bytes>, UpstreamError> {
        let uri = request.uri().clone();
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(UpstreamError::BadUrl {
                url: uri.to_string(),
                reason: "it is not an absolute http(s) URL".into(),
            });
        };
        let host = authority.as_str().to_owned();
        let key = pool_key(scheme, &host);
        let head_only = request.method() == Method::HEAD;
        let (head, body) = encode_request(request);
        let exchange = async {
            let (mut stream, reused) = match self.pool.checkout(&key) {
                Some(s) => (s, true),
                None => (self.connect(&uri).await?, false),
            };
            if let Err(e) = write_request(&mut stream, &head, &body).await {
                if !reused {
                    return Err(broke(&host, "sending the request", &e));
                }
                // The server closed the idle connection as it was taken: once more on a new one
                // (nothing of the request reached it).
                tracing::debug!("idle connection to {host} was closed; connecting again");
                stream = self.connect(&uri).await?;
                write_request(&mut stream, &head, &body)
                    .await
                    .map_err(|e| broke(&host, "sending the request", &e))?;
            }
            let mut reader = Reader {
                stream,
                buf: BytesMut::new(),
                body_timeout: self.body_timeout,
            };
            let head = reader.read_head(&host, MAX_RESPONSE_HEAD).await?;
            Ok((reader, head))
        };
        let (mut reader, head) = match self.response_timeout {
            Some(limit) => tokio::time::timeout(limit, exchange).await.map_err(|_| {
                UpstreamError::Timeout {
                    host: host.clone(),
                    seconds: limit.as_secs(),
                }
            })??,
            None => exchange.await?,
        };
        let framing = framing(&head, head_only).map_err(|reason| UpstreamError::Protocol {
            host: host.clone(),
            reason,
        })?;
        let body = reader.read_body(framing, limit, &host).await?;
        let reusable = framing != Framing::UntilClose && keep_alive(&head) && reader.buf.is_empty();
        if reusable {
            self.pool.checkin(key, reader.stream);
        }
        Ok(head.into_response(body))
    }
}

impl WholeClient {
    /// Connects, with the connecting future boxed: it is large (TCP and TLS handshakes) and done
    /// once, while the exchange's own future lives as long as the grid holds the poll.
    async fn connect(&self, uri: &http::Uri) -> Result<Stream, UpstreamError> {
        Box::pin(self.connector.connect(uri)).await
    }
}

pub(super) fn broke(host: &str, doing: &str, e: &io::Error) -> UpstreamError {
    UpstreamError::Protocol {
        host: host.to_owned(),
        reason: format!("{doing}: {}", describe_io(e)),
    }
}

pub(super) fn malformed(host: &str, reason: impl Into<String>) -> UpstreamError {
    UpstreamError::Protocol {
        host: host.to_owned(),
        reason: reason.into(),
    }
}

/// The request head as bytes, and the body. The headers are sent as given (the caller removed the
/// hop-by-hop ones), with `Host` from the URL when missing and the framing capscope's own.
fn encode_request(request: Request<Bytes>) -> (Vec<u8>, Bytes) {
    let (parts, body) = request.into_parts();
    let head = encode_head(&parts, body.len() as u64, Vec::with_capacity(256));
    (head, body)
}

/// Writes the request head for `parts` with a body of `length` bytes at the end of `head` (the
/// headers as given, `Host` from the URL when missing, the framing capscope's own: a
/// `Content-Length`, left out for an empty body of a method that has none, as hyper does).
pub(super) fn encode_head(parts: &http::request::Parts, length: u64, mut head: Vec<u8>) -> Vec<u8> {
    let target = parts.uri.path_and_query().map_or("", |p| p.as_str());
    head.extend_from_slice(parts.method.as_str().as_bytes());
    head.push(b' ');
    // Origin form starts with the path: `http://host?x` is `/?x` (found by the fuzz target).
    if !target.starts_with('/') {
        head.push(b'/');
    }
    head.extend_from_slice(target.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\n");
    if !parts.headers.contains_key(HOST) {
        if let Some(authority) = parts.uri.authority() {
            // Host and port, never the URL's user info (RFC 9110 7.2; the fuzz target checks it).
            head.extend_from_slice(b"host: ");
            head.extend_from_slice(authority.host().as_bytes());
            if let Some(port) = authority.port() {
                head.push(b':');
                head.extend_from_slice(port.as_str().as_bytes());
            }
            head.extend_from_slice(b"\r\n");
        }
    }
    for (name, value) in &parts.headers {
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING || name == CONNECTION {
            continue;
        }
        push_header(&mut head, name.as_str(), value.as_bytes());
    }
    // As hyper does: no length for an empty body of a method that has none.
    let bodiless = matches!(
        parts.method,
        Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS | Method::TRACE
    );
    if length > 0 || !bodiless {
        let mut n = itoa::Buffer::new();
        push_header(
            &mut head,
            CONTENT_LENGTH.as_str(),
            n.format(length).as_bytes(),
        );
    }
    head.extend_from_slice(b"\r\n");
    head
}

fn push_header(head: &mut Vec<u8>, name: &str, value: &[u8]) {
    head.extend_from_slice(name.as_bytes());
    head.extend_from_slice(b": ");
    head.extend_from_slice(value);
    head.extend_from_slice(b"\r\n");
}

async fn write_request(stream: &mut Stream, head: &[u8], body: &[u8]) -> io::Result<()> {
    stream.write_all(head).await?;
    stream.write_all(body).await?;
    stream.flush().await
}

/// A response head.
#[derive(Debug)]
pub(super) struct Head {
    pub(super) status: StatusCode,
    pub(super) version: Version,
    pub(super) headers: HeaderMap,
}

impl Head {
    /// The response this head starts, with `body`: the headers as sent, except a `Content-Length`
    /// beside a `Transfer-Encoding` (RFC 9112 section 6.3: the length is to be ignored).
    pub(super) fn into_response<B>(self, body: B) -> Response<B> {
        let mut response = Response::new(body);
        *response.status_mut() = self.status;
        *response.version_mut() = self.version;
        *response.headers_mut() = self.headers;
        super::drop_length_beside_transfer_encoding(response.headers_mut());
        response
    }
}

/// How a response body ends (RFC 9112 section 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

pub(super) fn framing(head: &Head, head_only: bool) -> Result<Framing, String> {
    if head_only
        || head.status.is_informational()
        || head.status == StatusCode::NO_CONTENT
        || head.status == StatusCode::NOT_MODIFIED
    {
        return Ok(Framing::Empty);
    }
    if head.headers.contains_key(TRANSFER_ENCODING) {
        let last = head
            .headers
            .get_all(TRANSFER_ENCODING)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .map(|c| c.trim_ascii())
            .rfind(|c| !c.is_empty());
        return Ok(match last {
            Some(c) if c.eq_ignore_ascii_case(b"chunked") => Framing::Chunked,
            _ => Framing::UntilClose,
        });
    }
    let mut length = None;
    for value in head.headers.get_all(CONTENT_LENGTH) {
        for part in value.as_bytes().split(|&b| b == b',') {
            let n = decimal_length(part).ok_or_else(|| {
                format!(
                    "invalid Content-Length {:?}",
                    String::from_utf8_lossy(value.as_bytes())
                )
            })?;
            if length.is_some_and(|l| l != n) {
                return Err("Content-Length headers that disagree".into());
            }
            length = Some(n);
        }
    }
    Ok(match length {
        Some(0) => Framing::Empty,
        Some(n) => Framing::Length(n),
        None => Framing::UntilClose,
    })
}

/// Whether the connection may carry another exchange after this one.
pub(super) fn keep_alive(head: &Head) -> bool {
    head.version == Version::HTTP_11
        && !head
            .headers
            .get_all(CONNECTION)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
}

/// Parses a response head at the start of `buf`: `None` while it is incomplete, else the head,
/// taken off the front of `buf`. Header values are slices of the head's bytes, not copies (one
/// allocation fewer per header; hyper's client does the same). (Not async: the parser's header
/// array stays off the task's future.)
fn parse_head(buf: &mut BytesMut) -> Result<Option<Head>, String> {
    let mut lines = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut response = httparse::Response::new(&mut lines);
    let used = match response.parse(buf) {
        Ok(httparse::Status::Partial) => return Ok(None),
        Ok(httparse::Status::Complete(n)) => n,
        Err(e) => return Err(format!("malformed response head: {e}")),
    };
    let code = response.code.unwrap_or(0);
    let status = StatusCode::from_u16(code).map_err(|_| format!("invalid status {code}"))?;
    let version = match response.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    // Where each header's name and value lie in `buf`, so that they can be sliced out of the head
    // once it is split off (the parser borrows `buf` until then).
    let start = buf.as_ptr() as usize;
    let mut spots = [(0usize, 0usize, 0usize, 0usize); MAX_RESPONSE_HEADERS];
    let count = response.headers.len();
    for (spot, line) in spots.iter_mut().zip(response.headers.iter()) {
        let name = (line.name.as_ptr() as usize).wrapping_sub(start);
        let value = (line.value.as_ptr() as usize).wrapping_sub(start);
        *spot = (
            name,
            name.saturating_add(line.name.len()),
            value,
            value.saturating_add(line.value.len()),
        );
    }
    let head = buf.split_to(used).freeze();
    let mut headers = HeaderMap::with_capacity(count);
    for &(name_start, name_end, value_start, value_end) in &spots[..count] {
        let name_bytes = head.get(name_start..name_end).unwrap_or_default();
        let name = HeaderName::from_bytes(name_bytes).map_err(|_| {
            format!(
                "invalid header name {:?}",
                String::from_utf8_lossy(name_bytes)
            )
        })?;
        let value = if value_start < value_end && value_end <= head.len() {
            HeaderValue::from_maybe_shared(head.slice(value_start..value_end))
        } else {
            Ok(HeaderValue::from_static(""))
        };
        let value = value.map_err(|_| format!("invalid value of header {:?}", name.as_str()))?;
        headers.append(name, value);
    }
    Ok(Some(Head {
        status,
        version,
        headers,
    }))
}

/// A connection with what has been read from it and not used yet.
pub(super) struct Reader<S = Stream> {
    pub(super) stream: S,
    pub(super) buf: BytesMut,
    /// How long the body may send nothing (the head may take as long as the grid holds the poll).
    pub(super) body_timeout: Duration,
}

/// What the reader reads from: an upstream connection, or bytes already in memory (fuzzing).
pub(super) trait Source: AsyncRead + Unpin {
    /// Waits until a read would find something, without taking a buffer.
    async fn readable(&self) -> io::Result<()>;
}

impl Source for Stream {
    async fn readable(&self) -> io::Result<()> {
        // Nothing of the answer can be inside rustls yet: the connection came back empty from the
        // pool (see `still_open`) or fresh from its handshake, and the server answers only after
        // the request.
        match self {
            Stream::Plain(s) => s.readable().await,
            Stream::Tls(s) => s.get_ref().0.readable().await,
        }
    }
}

impl Source for &[u8] {
    async fn readable(&self) -> io::Result<()> {
        Ok(())
    }
}

impl<S: Source> Reader<S> {
    /// Reads more into the buffer (growing it when full, up to `max` held); 0 at the end. The
    /// first read waits for the socket to be readable before the buffer is taken.
    async fn fill(&mut self, max: usize) -> io::Result<usize> {
        if self.buf.capacity() == 0 {
            self.stream.readable().await?;
        }
        if self.buf.len() == self.buf.capacity() {
            let more = self.buf.len().clamp(FIRST_READ, max.max(FIRST_READ));
            self.buf.reserve(more);
        }
        self.stream.read_buf(&mut self.buf).await
    }

    /// [`Reader::fill`] for the body: an upstream that stops sending in the middle of a body would
    /// otherwise hold the exchange (and the viewer's poll) forever.
    async fn fill_body(&mut self, max: usize) -> io::Result<usize> {
        let limit = self.body_timeout;
        match tokio::time::timeout(limit, self.fill(max)).await {
            Ok(read) => read,
            // Not `TimedOut`: `describe_io` would say only "timed out".
            Err(_) => Err(io::Error::other(format!(
                "nothing of it came for {} s (--body-timeout)",
                limit.as_secs()
            ))),
        }
    }

    /// The final response head of at most `max` bytes (1xx heads are skipped).
    pub(super) async fn read_head(
        &mut self,
        host: &str,
        max: usize,
    ) -> Result<Head, UpstreamError> {
        loop {
            let held = self.buf.len();
            match parse_head(&mut self.buf).map_err(|r| malformed(host, r))? {
                // Whole, but longer than allowed (it came in one read).
                Some(_) if held - self.buf.len() > max => {
                    return Err(malformed(host, format!("response head over {max} bytes")))
                }
                Some(head) => {
                    if head.status == StatusCode::SWITCHING_PROTOCOLS {
                        return Err(malformed(host, "unexpected 101 Switching Protocols"));
                    }
                    if head.status.is_informational() {
                        continue;
                    }
                    return Ok(head);
                }
                None if self.buf.len() >= max => {
                    return Err(malformed(host, format!("response head over {max} bytes")))
                }
                None => {}
            }
            let n = self
                .fill(max)
                .await
                .map_err(|e| broke(host, "reading the response head", &e))?;
            if n == 0 {
                return Err(malformed(
                    host,
                    "the connection closed before a response head came",
                ));
            }
        }
    }

    async fn read_body(
        &mut self,
        framing: Framing,
        limit: usize,
        host: &str,
    ) -> Result<Bytes, UpstreamError> {
        let too_large = || UpstreamError::TooLarge {
            host: host.to_owned(),
            limit,
        };
        let broke_off = |e: io::Error| broke(host, "reading the response body", &e);
        let closed = || malformed(host, "the connection closed in the middle of the body");
        match framing {
            Framing::Empty => Ok(Bytes::new()),
            Framing::Length(n) => {
                let n = usize::try_from(n)
                    .ok()
                    .filter(|&n| n <= limit)
                    .ok_or_else(too_large)?;
                while self.buf.len() < n {
                    if self.fill_body(n).await.map_err(broke_off)? == 0 {
                        return Err(closed());
                    }
                }
                Ok(self.buf.split_to(n).freeze())
            }
            Framing::UntilClose => {
                loop {
                    if self.buf.len() > limit {
                        return Err(too_large());
                    }
                    match self.fill_body(limit).await {
                        Ok(0) => break,
                        Ok(_) => {}
                        // Over TLS only close_notify tells the body's end from a cut (rustls
                        // says UnexpectedEof without it): refused, as hyper and curl refuse it.
                        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                            return Err(malformed(host, UNSURE_END))
                        }
                        Err(e) => return Err(broke_off(e)),
                    }
                }
                Ok(self.buf.split().freeze())
            }
            Framing::Chunked => {
                let mut body = BytesMut::new();
                loop {
                    let line = self.read_line(MAX_CHUNK_LINE, host).await?;
                    let size = chunk_size(&line).ok_or_else(|| {
                        malformed(
                            host,
                            format!(
                                "invalid chunk size line {:?}",
                                String::from_utf8_lossy(&line)
                            ),
                        )
                    })?;
                    if size == 0 {
                        break;
                    }
                    let size = usize::try_from(size)
                        .ok()
                        .filter(|&s| s <= limit.saturating_sub(body.len()))
                        .ok_or_else(too_large)?;
                    while self.buf.len() < size + 2 {
                        if self.fill_body(size + 2).await.map_err(broke_off)? == 0 {
                            return Err(closed());
                        }
                    }
                    body.extend_from_slice(&self.buf[..size]);
                    if &self.buf[size..size + 2] != b"\r\n" {
                        return Err(malformed(host, "a chunk does not end in CRLF"));
                    }
                    self.buf.advance(size + 2);
                }
                let mut trailers = 0;
                loop {
                    let line = self.read_line(MAX_CHUNK_LINE, host).await?;
                    if line.is_empty() {
                        break;
                    }
                    trailers += line.len();
                    if trailers > MAX_TRAILERS {
                        return Err(malformed(
                            host,
                            format!("trailers over {MAX_TRAILERS} bytes"),
                        ));
                    }
                }
                Ok(body.freeze())
            }
        }
    }

    /// One line ending in CRLF (or a bare LF), without its end.
    async fn read_line(&mut self, max: usize, host: &str) -> Result<Bytes, UpstreamError> {
        loop {
            if let Some(end) = memchr::memchr(b'\n', &self.buf) {
                let mut line = self.buf.split_to(end + 1).freeze();
                line.truncate(end);
                if line.last() == Some(&b'\r') {
                    line.truncate(end - 1);
                }
                return Ok(line);
            }
            if self.buf.len() > max {
                return Err(malformed(host, format!("a chunk line over {max} bytes")));
            }
            let n = self
                .fill_body(max)
                .await
                .map_err(|e| broke(host, "reading the response body", &e))?;
            if n == 0 {
                return Err(malformed(
                    host,
                    "the connection closed in the middle of the body",
                ));
            }
        }
    }
}

/// Reads `data` as an upstream's answer, as [`WholeClient::send`] does (head, framing, body of at
/// most `limit` bytes): the status and body length, or the error's words. For the fuzz target
/// `upstream_response`; not part of the API.
#[doc(hidden)]
pub fn read_response_for_fuzzing(
    data: &[u8],
    head_only: bool,
    limit: usize,
) -> Result<(u16, usize), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let mut reader = Reader {
            stream: data,
            buf: BytesMut::new(),
            body_timeout: Duration::from_secs(1),
        };
        let host = "fuzz";
        let head = reader
            .read_head(host, MAX_RESPONSE_HEAD)
            .await
            .map_err(|e| e.to_string())?;
        let framing = framing(&head, head_only).map_err(|reason| reason.to_string())?;
        let body = reader
            .read_body(framing, limit, host)
            .await
            .map_err(|e| e.to_string())?;
        Ok((head.status.as_u16(), body.len()))
    })
}

/// The bytes [`WholeClient::send`] writes for `request` (head, then body), as they go on the
/// wire. For the fuzz target `upstream_request`; not part of the API.
#[doc(hidden)]
pub fn encode_request_for_fuzzing(request: Request<Bytes>) -> Vec<u8> {
    let (mut head, body) = encode_request(request);
    head.extend_from_slice(&body);
    head
}

/// The size on a chunk-size line (hex digits, then maybe `;extensions`).
pub(super) fn chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.split(|&b| b == b';').next()?.trim_ascii();
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    let text = std::str::from_utf8(digits).ok()?;
    if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(text, 16).ok()
}

/// The pool's key for connections to `scheme://authority` (lower case): one function, since the
/// whole and the streamed clients share the pool and must name a host alike.
pub(super) fn pool_key(scheme: &str, authority: &str) -> String {
    let mut key = String::with_capacity(scheme.len() + "://".len() + authority.len());
    key.push_str(scheme);
    key.push_str("://");
    key.push_str(authority);
    key.make_ascii_lowercase();
    key
}

/// Idle keep-alive connections by `scheme://authority`, newest last.
pub(super) struct Pool {
    idle: Mutex<HashMap<String, Vec<Idle>>>,
    idle_timeout: Duration,
    /// Whether the task that closes expired connections runs.
    sweeping: AtomicBool,
}

pub(super) struct Idle {
    pub(super) stream: Stream,
    since: Instant,
}

impl Idle {
    /// Whether it may carry another exchange: kept for less than `idle_timeout` and still open.
    fn usable(&mut self, idle_timeout: Duration) -> bool {
        self.since.elapsed() < idle_timeout && still_open(&mut self.stream)
    }
}

impl Pool {
    fn new(idle_timeout: Duration) -> Arc<Self> {
        Arc::new(Pool {
            idle: Mutex::new(HashMap::new()),
            idle_timeout,
            sweeping: AtomicBool::new(false),
        })
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Idle>>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The newest idle connection to `key` still open, if any (the others found closed are dropped).
    pub(super) fn checkout(&self, key: &str) -> Option<Stream> {
        let mut dropped = Vec::new();
        let found = {
            let mut idle = self.lock();
            let list = idle.get_mut(key)?;
            let mut found = None;
            while let Some(mut conn) = list.pop() {
                if conn.usable(self.idle_timeout) {
                    found = Some(conn.stream);
                    break;
                }
                dropped.push(conn);
            }
            if list.is_empty() {
                idle.remove(key);
            }
            found
        };
        drop(dropped);
        found
    }

    pub(super) fn checkin(self: &Arc<Self>, key: String, stream: Stream) {
        let evicted = {
            let mut idle = self.lock();
            let list = idle.entry(key).or_default();
            list.push(Idle {
                stream,
                since: Instant::now(),
            });
            (list.len() > MAX_IDLE_PER_HOST).then(|| list.remove(0))
        };
        drop(evicted);
        self.start_sweeping();
    }

    /// Closes the connections idle too long or closed by the server.
    fn sweep(&self) {
        let mut dropped = Vec::new();
        {
            let mut idle = self.lock();
            for list in idle.values_mut() {
                let mut kept = Vec::with_capacity(list.len());
                for mut conn in list.drain(..) {
                    if conn.usable(self.idle_timeout) {
                        kept.push(conn);
                    } else {
                        dropped.push(conn);
                    }
                }
                *list = kept;
            }
            idle.retain(|_, list| !list.is_empty());
        }
        drop(dropped);
    }

    /// Starts the sweeping task once, on the runtime the first connection was kept from. It holds
    /// the pool weakly and ends with it.
    fn start_sweeping(self: &Arc<Self>) {
        if self.sweeping.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.sweeping.store(false, Ordering::Release);
            return;
        };
        let pool: Weak<Pool> = Arc::downgrade(self);
        let period = (self.idle_timeout / 2).max(MIN_SWEEP);
        runtime.spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(pool) = pool.upgrade() else {
                    break;
                };
                pool.sweep();
            }
        });
    }
}

/// Whether an idle connection is still open: nothing to read (a close, a reset or stray bytes all
/// make it unusable). Polls once without waiting.
fn still_open(stream: &mut Stream) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    let mut byte = [0u8; 1];
    let mut buf = ReadBuf::new(&mut byte);
    matches!(Pin::new(stream).poll_read(&mut cx, &mut buf), Poll::Pending)
}

#[cfg(test)]
pub(super) mod tests;
