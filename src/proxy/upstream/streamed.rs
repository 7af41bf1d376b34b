//! Forwarded exchanges on capscope's own HTTP/1.1 client: the request goes out and the response head
//! is read inside the task that serves the viewer's request, and the response body is read from the
//! upstream connection as the viewer's side polls it ([`LeanBody`]). No connection task, no channel
//! between tasks, no hyper-util pool: on a small exchange each of those hand-offs cost a task wake-up
//! and a poll of another task (docs/performance.md, "Small requests", third round).
//!
//! What it serves, decided by [`serves`] before a byte is sent (everything else stays on the
//! hyper-util client, see the parent module):
//! - an `http`/`https` request with an absolute URL, not `CONNECT`, not asking for an `Upgrade`
//!   (those need hyper's upgrade machinery: `proxy/upgrade.rs`);
//! - whose body has a known length of at most [`MAX_REQUEST_BODY`] bytes (most are empty: a viewer's
//!   texture, mesh and inventory fetches). That body is taken whole before anything is written, so
//!   the request goes out in one write and can be sent again on a fresh connection when a kept one
//!   turns out to be closed; a larger body, or one sent chunked, streams through hyper-util, which
//!   also reads an answer that comes before the body was all sent.
//!
//! Responses are read as [`whole`](super::whole) reads them, with its head parser, framing rules,
//! chunk-size reader, limits and keep-alive pool (one pool for both clients): bodies framed by
//! `Content-Length`, chunked (trailers read and dropped), or running until the close (over TLS only
//! with close_notify: without it the end cannot be told from a cut); none for `HEAD`, 204 and 304.
//! 1xx answers before the final one are skipped, as hyper does. The connection goes back to the pool
//! when the body ended cleanly and the answer allows keep-alive; a body dropped early, or broken off,
//! closes it.
//!
//! This module owns those exchanges. It must not touch records, routes or the client side of the
//! proxy.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::header::UPGRADE;
use http::{Method, Request, Response, Version};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;

use super::whole::{
    self, broke, chunk_size, malformed, Framing, Pool, Reader, MAX_CHUNK_LINE, MAX_TRAILERS,
    UNSURE_END,
};
use super::{describe_io, Connector, Stream};
use crate::proxy::hook::UpstreamError;
use crate::proxy::tap::ProxyBody;

/// The largest request body the streamed client sends (taken whole first, see the module doc).
pub(super) const MAX_REQUEST_BODY: u64 = 64 * 1024;
/// The most a forwarded response head may take: hyper's client's own limit (its largest read
/// buffer, 8 KiB and 4 KiB per header for 100 headers), so that no answer hyper-util forwarded is
/// refused now. (The whole client keeps its smaller [`whole::MAX_RESPONSE_HEAD`].)
const MAX_RESPONSE_HEAD: usize = 8192 + 4096 * 100;
/// The first read of a response body's bytes beyond what came with the head.
const FIRST_BODY_READ: usize = 16 * 1024;
/// The least room worth another read into the same frame.
const MIN_MORE: usize = 4 * 1024;
/// The most one read of a response body takes: reads double up to it while the socket fills them.
const MAX_BODY_READ: usize = 256 * 1024;

/// Whether the streamed client serves `request` (the module doc says what and why). Decided before
/// anything is sent: what it does not serve goes to hyper-util whole.
pub(super) fn serves(request: &Request<ProxyBody>) -> bool {
    let uri = request.uri();
    matches!(uri.scheme_str(), Some("http" | "https"))
        && uri.authority().is_some()
        && request.method() != Method::CONNECT
        && request.version() == Version::HTTP_11
        && !request.headers().contains_key(UPGRADE)
        && request
            .body()
            .size_hint()
            .exact()
            .is_some_and(|n| n <= MAX_REQUEST_BODY)
}

/// The streamed client: the shared connector and the keep-alive pool it shares with the whole one.
#[derive(Clone)]
pub(super) struct StreamedClient {
    connector: Connector,
    pool: Arc<Pool>,
    response_timeout: Option<Duration>,
}

impl StreamedClient {
    pub(super) fn new(
        connector: Connector,
        pool: Arc<Pool>,
        response_timeout: Option<Duration>,
    ) -> Self {
        StreamedClient {
            connector,
            pool,
            response_timeout,
        }
    }

    /// Sends `request` (one [`serves`] accepts) and reads the response head; the body is read as it
    /// is polled. The response keeps its headers as sent, except a `Content-Length` beside a
    /// `Transfer-Encoding` (RFC 9112 section 6.3).
    pub(super) async fn send(
        &self,
        request: Request<ProxyBody>,
    ) -> Result<Response<LeanBody>, UpstreamError> {
        let (parts, mut body) = request.into_parts();
        let uri = &parts.uri;
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(UpstreamError::BadUrl {
                url: uri.to_string(),
                reason: "it is not an absolute http(s) URL".into(),
            });
        };
        let host = authority.as_str();
        let key = whole::pool_key(scheme, host);
        let head_only = parts.method == Method::HEAD;
        let length = body.size_hint().exact().unwrap_or(0);
        let exchange = async {
            let mut wire = whole::encode_head(&parts, length, Vec::with_capacity(512));
            // The body is small (`serves`): taken whole, so the request is one write, and can be
            // written again if a kept connection turns out closed.
            while let Some(frame) = body.frame().await {
                let frame =
                    frame.map_err(|e| malformed(host, format!("reading the request body: {e}")))?;
                if let Ok(data) = frame.into_data() {
                    wire.extend_from_slice(&data);
                }
            }
            drop(body);
            let (mut stream, reused) = match self.pool.checkout(&key) {
                Some(s) => (s, true),
                None => (self.connect(uri).await?, false),
            };
            if let Err(e) = write(&mut stream, &wire).await {
                if !reused {
                    return Err(broke(host, "sending the request", &e));
                }
                // The server closed the kept connection as it was taken: the request did not reach
                // it whole, so nothing of it was acted on. Once more on a fresh connection (hyper-util
                // retries a request its pooled connection could not send, too).
                tracing::debug!("kept connection to {host} was closed; connecting again");
                stream = self.connect(uri).await?;
                write(&mut stream, &wire)
                    .await
                    .map_err(|e| broke(host, "sending the request", &e))?;
            }
            let mut reader = Reader {
                stream,
                buf: BytesMut::new(),
                body_timeout: Duration::MAX,
            };
            let head = reader.read_head(host, MAX_RESPONSE_HEAD).await?;
            Ok((reader, head))
        };
        let (reader, head) = match self.response_timeout {
            Some(limit) => tokio::time::timeout(limit, exchange).await.map_err(|_| {
                UpstreamError::Timeout {
                    host: host.to_owned(),
                    seconds: limit.as_secs(),
                }
            })??,
            None => exchange.await?,
        };
        let framing = whole::framing(&head, head_only).map_err(|reason| malformed(host, reason))?;
        let state = match framing {
            Framing::Empty => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkSize,
            Framing::UntilClose => State::UntilClose,
        };
        let mut body = LeanBody {
            stream: Some(reader.stream),
            buf: reader.buf,
            state,
            reusable: framing != Framing::UntilClose && whole::keep_alive(&head),
            pool: self.pool.clone(),
            key,
            read_size: FIRST_BODY_READ,
            deferred: None,
        };
        if body.state == State::Done {
            body.release();
        }
        Ok(head.into_response(body))
    }

    /// Connects, with the connecting future boxed: it is large (TCP and TLS handshakes) and only
    /// some exchanges need it.
    async fn connect(&self, uri: &http::Uri) -> Result<Stream, UpstreamError> {
        Box::pin(self.connector.connect(uri)).await
    }
}

async fn write(stream: &mut Stream, wire: &[u8]) -> io::Result<()> {
    stream.write_all(wire).await?;
    stream.flush().await
}

/// Why a streamed response body broke off (the words go into the record's note).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LeanBodyError(String);

/// Where a response body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// This many bytes still to come (`Content-Length`).
    Length(u64),
    /// Chunked: a chunk-size line next.
    ChunkSize,
    /// Chunked: this many bytes of the current chunk still to come.
    ChunkData(u64),
    /// Chunked: the CRLF after a chunk's data next.
    ChunkEnd,
    /// Chunked: trailer lines (this many bytes of them so far) until an empty one.
    Trailers(usize),
    /// Until the connection closes.
    UntilClose,
    /// Ended cleanly.
    Done,
}

/// A response body read from its upstream connection as it is polled ([the module](self)).
pub struct LeanBody {
    /// The connection, `None` once the body ended (it went back to the pool or was closed) or
    /// broke off.
    stream: Option<Stream>,
    /// What was read from the connection and not used yet.
    buf: BytesMut,
    state: State,
    /// The answer allows another exchange on the connection once the body ended.
    reusable: bool,
    pool: Arc<Pool>,
    /// The pool's key for the connection (`scheme://authority`).
    key: String,
    /// How much the next read asks for.
    read_size: usize,
    /// A read error met after some bytes in the same poll, reported by the next read.
    deferred: Option<io::Error>,
}

impl std::fmt::Debug for LeanBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeanBody")
            .field("state", &self.state)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

fn fail<T>(reason: impl Into<String>) -> Poll<Option<Result<T, LeanBodyError>>> {
    Poll::Ready(Some(Err(LeanBodyError(reason.into()))))
}

const CUT: &str = "the connection closed in the middle of the body";

impl LeanBody {
    /// The body ended cleanly: the connection goes back to the pool if the answer allows it and
    /// nothing beyond the body was sent, else it is closed.
    fn release(&mut self) {
        self.state = State::Done;
        if let Some(stream) = self.stream.take() {
            if self.reusable && self.buf.is_empty() {
                self.pool.checkin(std::mem::take(&mut self.key), stream);
            }
        }
    }

    /// The body broke off: the connection is closed, never reused.
    fn broken(&mut self) {
        self.stream = None;
        self.reusable = false;
    }

    /// Reads more from the connection into the buffer: the number of bytes, 0 at the end.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if let Some(e) = self.deferred.take() {
            return Poll::Ready(Err(e));
        }
        let Some(stream) = self.stream.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        if self.buf.capacity() - self.buf.len() < self.read_size / 2 {
            self.buf.reserve(self.read_size);
        }
        // At most `read_size`, whatever the buffer's capacity (a frame is never larger).
        let room = (self.buf.capacity() - self.buf.len()).min(self.read_size);
        let mut n = ready!(tokio_util::io::poll_read_buf(
            Pin::new(&mut *stream),
            cx,
            &mut (&mut self.buf).limit(room)
        ))?;
        // A TLS read gives one record's plaintext (16 KiB at most): what else is ready already goes
        // into the same frame, so a large body passes in a few large frames, not many small ones.
        while n > 0 && room - n >= MIN_MORE {
            match tokio_util::io::poll_read_buf(
                Pin::new(&mut *stream),
                cx,
                &mut (&mut self.buf).limit(room - n),
            ) {
                Poll::Ready(Ok(more)) if more > 0 => n += more,
                // Kept for the next read: what came is passed on first.
                Poll::Ready(Err(e)) => {
                    self.deferred = Some(e);
                    break;
                }
                // Nothing more now, or the end (which the next read meets again).
                _ => break,
            }
        }
        if n == room && self.read_size < MAX_BODY_READ {
            self.read_size *= 2;
        }
        Poll::Ready(Ok(n))
    }
}

/// One line ending in LF (a CR before it dropped) taken from the front of `buf`, if it has one.
fn take_line(buf: &mut BytesMut) -> Option<Bytes> {
    let end = memchr::memchr(b'\n', buf)?;
    let mut line = buf.split_to(end + 1).freeze();
    line.truncate(end);
    if line.last() == Some(&b'\r') {
        line.truncate(end - 1);
    }
    Some(line)
}

impl HttpBody for LeanBody {
    type Data = Bytes;
    type Error = LeanBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, LeanBodyError>>> {
        let this = self.get_mut();
        loop {
            if this.state != State::Done && this.stream.is_none() {
                return fail(CUT);
            }
            match this.state {
                State::Done => return Poll::Ready(None),
                State::Length(left) | State::ChunkData(left) if !this.buf.is_empty() => {
                    let buf = &mut this.buf;
                    let n = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
                    let data = buf.split_to(n).freeze();
                    let left = left - n as u64;
                    this.state = match this.state {
                        State::Length(_) if left == 0 => State::Done,
                        State::Length(_) => State::Length(left),
                        _ if left == 0 => State::ChunkEnd,
                        _ => State::ChunkData(left),
                    };
                    if this.state == State::Done {
                        this.release();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                State::UntilClose if !this.buf.is_empty() => {
                    let data = this.buf.split().freeze();
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                State::ChunkSize | State::Trailers(_) => {
                    if let Some(line) = take_line(&mut this.buf) {
                        match this.state {
                            State::ChunkSize => match chunk_size(&line) {
                                Some(0) => this.state = State::Trailers(0),
                                Some(n) => this.state = State::ChunkData(n),
                                None => {
                                    this.broken();
                                    return fail(format!(
                                        "invalid chunk size line {:?}",
                                        String::from_utf8_lossy(&line)
                                    ));
                                }
                            },
                            State::Trailers(_) if line.is_empty() => {
                                this.release();
                                return Poll::Ready(None);
                            }
                            State::Trailers(so_far) => {
                                let total = so_far + line.len();
                                if total > MAX_TRAILERS {
                                    this.broken();
                                    return fail(format!("trailers over {MAX_TRAILERS} bytes"));
                                }
                                this.state = State::Trailers(total);
                            }
                            _ => {}
                        }
                        continue;
                    }
                    if this.buf.len() > MAX_CHUNK_LINE {
                        this.broken();
                        return fail(format!("a chunk line over {MAX_CHUNK_LINE} bytes"));
                    }
                }
                State::ChunkEnd if this.buf.len() >= 2 => {
                    if &this.buf[..2] != b"\r\n" {
                        this.broken();
                        return fail("a chunk does not end in CRLF");
                    }
                    this.buf.advance(2);
                    this.state = State::ChunkSize;
                    continue;
                }
                _ => {}
            }
            // More bytes needed.
            match ready!(this.poll_fill(cx)) {
                Ok(0) if this.state == State::UntilClose => {
                    // The close ends the body; the connection cannot be kept.
                    this.stream = None;
                    this.state = State::Done;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    this.broken();
                    return fail(CUT);
                }
                Ok(_) => {}
                // Over TLS only close_notify tells the body's end from a cut (rustls says
                // UnexpectedEof without it): refused, as hyper and curl refuse it.
                Err(e)
                    if e.kind() == io::ErrorKind::UnexpectedEof
                        && this.state == State::UntilClose =>
                {
                    this.broken();
                    return fail(UNSURE_END);
                }
                Err(e) => {
                    this.broken();
                    return fail(format!("reading the response body: {}", describe_io(&e)));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.state == State::Done
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Done => SizeHint::with_exact(0),
            State::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests;
