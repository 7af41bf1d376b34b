//! The body tap and the record of one exchange.
//!
//! [`Exchange`] holds the record of one request/response pair while it is in flight: the proxy fills in
//! the heads as they pass, the taps add bounded copies of the bodies, and the record is published once
//! when the exchange ends (response body finished, failed, or everything dropped because a side went
//! away). [`ProxyBody`] is the one body type the proxy forwards in both directions; when tapped it copies
//! each frame's bytes into the exchange up to the body limit and passes the frame straight on.
//!
//! This module owns the tap and record finalisation (including decoding `Content-Encoding` for the
//! record, off the forwarding path). It must not decide routes or touch sockets.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;

use super::decode::{decode_limited, Coding, Stop};
use super::upstream::{LeanBody, LeanBodyError};
use crate::record::{self, Bus, Record, State};

/// A body's copy keeps at most a quarter of its length as unused capacity; more is given back when the
/// record is made (a shrink in place, not a copy).
const SLACK_DIVISOR: usize = 4;

/// Copies of bodies that announce at least this many bytes are made in buffers kept for reuse
/// ([`BufferPool`]); smaller ones are left to the allocator, which reuses them well.
const POOL_MIN_BUFFER: usize = 64 * 1024;
/// The most buffers the pool keeps while they are not in use.
const POOL_MAX_BUFFERS: usize = 16;
/// The most bytes of buffers the pool keeps while they are not in use: memory capscope holds after a
/// burst of large bodies, in exchange for not faulting fresh pages in for every one.
const POOL_MAX_BYTES: usize = 8 * 1024 * 1024;

/// Buffers for copies of large bodies, given back when the last copy of a record's body is dropped
/// (after the capture writer wrote it). A fresh buffer for every large body cost the proxy's core a
/// page fault and a zeroed page per 4 KiB, and unmapping it afterwards (perf: about a twentieth of
/// its time at 1 MiB bodies); a reused one is already mapped.
struct BufferPool {
    buffers: Mutex<Vec<Vec<u8>>>,
}

/// The pool every tap uses.
static POOL: BufferPool = BufferPool::new();

impl BufferPool {
    const fn new() -> Self {
        BufferPool {
            buffers: Mutex::new(Vec::new()),
        }
    }

    /// The buffers, whole even if a thread panicked while holding them (they are empty).
    fn lock(&self) -> MutexGuard<'_, Vec<Vec<u8>>> {
        self.buffers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An empty buffer of at least `capacity` bytes, if the pool has one. When it has none, its
    /// smallest buffer is let go: bodies have grown past what it holds, and idle buffers of the
    /// wrong size would only add to the memory the larger ones need.
    fn take(&self, capacity: usize) -> Option<Vec<u8>> {
        let mut buffers = self.lock();
        if let Some(i) = buffers.iter().position(|b| b.capacity() >= capacity) {
            return Some(buffers.swap_remove(i));
        }
        let smallest = (0..buffers.len()).min_by_key(|&i| buffers[i].capacity());
        if let Some(i) = smallest {
            buffers.swap_remove(i);
        }
        None
    }

    /// Keeps `buffer` for reuse, unless the pool is full.
    fn give(&self, mut buffer: Vec<u8>) {
        buffer.clear();
        let mut buffers = self.lock();
        let held: usize = buffers.iter().map(Vec::capacity).sum();
        if buffers.len() < POOL_MAX_BUFFERS && held + buffer.capacity() <= POOL_MAX_BYTES {
            buffers.push(buffer);
        }
    }
}

/// A body copy in a buffer that goes back to its pool when the last `Bytes` of it is dropped.
struct Pooled(Vec<u8>, &'static BufferPool);

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.1.give(std::mem::take(&mut self.0));
    }
}

/// Which body of an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Request,
    Response,
}

/// The bounded copy of one body, as the tap saw it on the wire.
///
/// Each frame is copied into `data` as it passes, while its bytes are still in the cache: holding the
/// frames themselves would keep the connection's read buffers (up to hyper's 400 KiB each) alive
/// until the record is dropped, make hyper allocate a fresh buffer for every read meanwhile, and
/// still need a copy later to make one body of them.
#[derive(Debug, Default)]
struct BodyCopy {
    data: Vec<u8>,
    size: u64,
    truncated: bool,
    /// The body's `Content-Encoding`, to undo for the record.
    encoding: Option<String>,
    /// What the sender sent before a rewrite (the chunks are what the receiver got).
    original: Option<Bytes>,
}

impl BodyCopy {
    fn push(&mut self, data: &[u8], limit: usize) {
        self.size += data.len() as u64;
        let room = limit.saturating_sub(self.data.len());
        if room == 0 {
            self.truncated |= !data.is_empty();
            return;
        }
        let take = room.min(data.len());
        if take < data.len() {
            self.truncated = true;
        }
        self.data.extend_from_slice(&data[..take]);
    }

    /// Makes room for the `expected` bytes a body announced (its `Content-Length`), at most `limit`:
    /// one allocation instead of growing by doubling. Only address space until bytes arrive.
    fn expect(&mut self, expected: u64, limit: usize) {
        self.expect_from(expected, limit, &POOL);
    }

    fn expect_from(&mut self, expected: u64, limit: usize, pool: &BufferPool) {
        let want = usize::try_from(expected).unwrap_or(usize::MAX).min(limit);
        if self.data.is_empty() && want >= POOL_MIN_BUFFER && self.data.capacity() < want {
            if let Some(buffer) = pool.take(want) {
                self.data = buffer;
                return;
            }
        }
        self.data
            .reserve_exact(want.saturating_sub(self.data.len()));
    }

    /// The bytes copied. A large copy goes back to the pool once the record lets go of it (if it
    /// mostly holds the body); any other is made the size of its bytes (a body shorter than
    /// announced, or the slack of growing, is given back rather than held by the record).
    fn take_data(&mut self) -> Bytes {
        self.take_data_for(&POOL)
    }

    fn take_data_for(&mut self, pool: &'static BufferPool) -> Bytes {
        let mut data = std::mem::take(&mut self.data);
        let slack = data.capacity() - data.len() > data.len() / SLACK_DIVISOR;
        if data.capacity() >= POOL_MIN_BUFFER && !slack {
            return Bytes::from_owner(Pooled(data, pool));
        }
        if slack {
            data.shrink_to_fit();
        }
        Bytes::from(data)
    }

    /// Replaces the copy with a body seen whole.
    fn set_whole(&mut self, data: Bytes, limit: usize) {
        *self = BodyCopy {
            encoding: self.encoding.take(),
            ..BodyCopy::default()
        };
        self.push(&data, limit);
    }

    /// The record's body: the wire bytes copied, with their `Content-Encoding` undone, at most `limit`
    /// bytes either way (marked truncated when the body was longer).
    fn into_body(mut self, notes: &mut Vec<String>, side: Side, limit: usize) -> record::Body {
        let wire = self.take_data();
        let mut body = record::Body {
            data: wire,
            size: self.size,
            truncated: self.truncated,
            content_encoding: None,
            original: self.original.map(|o| bounded_copy(&o, limit)),
        };
        let Some((encoding, coding)) = self
            .encoding
            .and_then(|e| Coding::parse(&e).map(|c| (e, c)))
        else {
            return body;
        };
        let decoded = decode_limited(&body.data, coding, limit);
        match decoded.stop {
            Stop::Broken(reason) if decoded.bytes.is_empty() => {
                notes.push(format!(
                    "{} body: could not undo Content-Encoding {encoding}: {reason} (kept as sent)",
                    side.word()
                ));
                return body;
            }
            Stop::End => {}
            Stop::Limit => body.truncated = true,
            // A copy cut at the body limit ends mid-stream: that is expected, keep what decoded.
            Stop::Broken(_) if body.truncated => {}
            Stop::Broken(reason) => {
                body.truncated = true;
                notes.push(format!(
                    "{} body: Content-Encoding {encoding} broke off after {} decoded bytes: {reason}",
                    side.word(),
                    decoded.bytes.len()
                ));
            }
        }
        body.data = decoded.bytes;
        body.content_encoding = Some(encoding);
        body
    }
}

/// At most `limit` bytes of `data`, copied (a slice would keep the whole buffer alive).
fn bounded_copy(data: &Bytes, limit: usize) -> Bytes {
    if data.len() <= limit {
        data.clone()
    } else {
        Bytes::copy_from_slice(&data[..limit])
    }
}

impl Side {
    fn word(self) -> &'static str {
        match self {
            Side::Request => "request",
            Side::Response => "response",
        }
    }
}

/// Whether a `Content-Encoding` value is one the record decodes (the wire is never altered).
pub(crate) fn decodable(encoding: &str) -> bool {
    Coding::parse(encoding).is_some()
}

#[derive(Debug)]
struct Pending {
    /// `None` once published.
    record: Option<Record>,
    request: BodyCopy,
    response: BodyCopy,
    /// The request body was given up because the client stopped sending it.
    request_stalled: bool,
}

/// One exchange in flight: its record, its body copies, and the bus it is published on.
#[derive(Debug)]
pub(crate) struct Exchange {
    bus: Arc<Bus>,
    max_body: usize,
    pending: Mutex<Pending>,
}

impl Exchange {
    /// Starts an exchange and publishes its open record.
    pub(crate) fn open(bus: Arc<Bus>, max_body: usize, record: Record) -> Arc<Exchange> {
        bus.publish(record.clone());
        Arc::new(Exchange {
            bus,
            max_body,
            pending: Mutex::new(Pending {
                record: Some(record),
                request: BodyCopy::default(),
                response: BodyCopy::default(),
                request_stalled: false,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic elsewhere while holding the lock must not lose the record.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes the record in flight (does nothing once it was published).
    pub(crate) fn update(&self, f: impl FnOnce(&mut Record)) {
        if let Some(r) = self.lock().record.as_mut() {
            f(r);
        }
    }

    /// Whether the request body was given up because the client stopped sending it.
    pub(crate) fn request_stalled(&self) -> bool {
        self.lock().request_stalled
    }

    /// Names the `Content-Encoding` a body carries, to undo for the record.
    pub(crate) fn set_encoding(&self, side: Side, encoding: Option<String>) {
        let mut p = self.lock();
        p.body_copy(side).encoding = encoding.filter(|e| decodable(e));
    }

    /// Records a body that was seen whole (buffered), with what the sender sent when it was rewritten.
    pub(crate) fn set_body(&self, side: Side, data: Bytes, original: Option<Bytes>) {
        let limit = self.max_body;
        let mut p = self.lock();
        let c = p.body_copy(side);
        c.set_whole(data, limit);
        c.original = original;
    }

    fn push(&self, side: Side, data: &Bytes) {
        let limit = self.max_body;
        self.lock().body_copy(side).push(data, limit);
    }

    /// Tells the tap how long a body says it is, so its copy is allocated once.
    fn expect(&self, side: Side, expected: u64) {
        let limit = self.max_body;
        self.lock().body_copy(side).expect(expected, limit);
    }

    /// Publishes the final record: done, or failed with `error`. Later calls do nothing.
    pub(crate) fn finish(&self, error: Option<String>) {
        let taken = {
            let mut p = self.lock();
            p.record.take().map(|r| {
                (
                    r,
                    std::mem::take(&mut p.request),
                    std::mem::take(&mut p.response),
                )
            })
        };
        let Some((mut record, request, response)) = taken else {
            return;
        };
        record.timings.done_us = Some(record.elapsed_us());
        match error {
            Some(e) => {
                record.state = State::Failed;
                record.error = Some(e);
            }
            None => record.state = State::Done,
        }
        // Large bodies are published from the blocking pool, as when they were assembled here:
        // publishing them inline measured no less CPU and, in some runs, twice the wall time.
        let original = |c: &BodyCopy| c.original.as_ref().map_or(0, Bytes::len);
        let bodies =
            request.data.len() + response.data.len() + original(&request) + original(&response);
        let heavy = bodies > super::INLINE_BODY_LIMIT
            || request.encoding.is_some()
            || response.encoding.is_some();
        let bus = self.bus.clone();
        let limit = self.max_body;
        let publish = move || {
            let mut notes = Vec::new();
            let req_body = request.into_body(&mut notes, Side::Request, limit);
            let resp_body = response.into_body(&mut notes, Side::Response, limit);
            if let Some(r) = record.request.as_mut() {
                r.body = req_body;
            }
            if let Some(r) = record.response.as_mut() {
                r.body = resp_body;
            }
            record.notes.extend(notes);
            bus.publish(record);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) if heavy => {
                rt.spawn_blocking(publish);
            }
            _ => publish(),
        }
    }
}

impl Pending {
    fn body_copy(&mut self, side: Side) -> &mut BodyCopy {
        match side {
            Side::Request => &mut self.request,
            Side::Response => &mut self.response,
        }
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        // Everything holding the exchange is gone without finishing it: a side went away.
        self.finish(Some(
            "the exchange was cut off before the response was complete (a side went away)".into(),
        ));
    }
}

/// The body type the proxy forwards both ways.
#[derive(Debug)]
pub struct ProxyBody {
    kind: Kind,
    tap: Option<Tap>,
}

#[derive(Debug)]
enum Kind {
    Full(Option<Bytes>),
    /// A streamed body, with bytes already read from it (a rewrite buffer that overflowed) first.
    Stream {
        prefix: Option<Bytes>,
        body: Inbound,
        idle: Option<IdleTimer>,
    },
}

/// Where a streamed body's bytes come from: a connection hyper serves (the client's request body,
/// or a response on the hyper-util upstream client), or capscope's own streamed upstream client.
#[derive(Debug)]
pub(crate) enum Inbound {
    Hyper(Incoming),
    Lean(LeanBody),
}

impl From<Incoming> for Inbound {
    fn from(body: Incoming) -> Self {
        Inbound::Hyper(body)
    }
}

impl From<LeanBody> for Inbound {
    fn from(body: LeanBody) -> Self {
        Inbound::Lean(body)
    }
}

impl HttpBody for Inbound {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            Inbound::Hyper(b) => Pin::new(b).poll_frame(cx).map_err(BodyError::from),
            Inbound::Lean(b) => Pin::new(b).poll_frame(cx).map_err(BodyError::from),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Inbound::Hyper(b) => b.is_end_stream(),
            Inbound::Lean(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Inbound::Hyper(b) => b.size_hint(),
            Inbound::Lean(b) => b.size_hint(),
        }
    }
}

/// Gives up on a body whose sender sends nothing for `limit`. Only time spent waiting for the sender
/// counts: the timer starts when the receiver asks for data, so a slow receiver never trips it.
#[derive(Debug)]
struct IdleTimer {
    limit: Duration,
    /// Made the first time the receiver has to wait: a body that is never waited for (a small
    /// answer that came with its head) costs no timer.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    waiting: bool,
}

impl IdleTimer {
    fn new(limit: Duration) -> Self {
        IdleTimer {
            limit,
            sleep: None,
            waiting: false,
        }
    }

    /// Called when the body had nothing to give: the limit, once the sender was silent that long.
    fn expired_now(&mut self, cx: &mut Context<'_>) -> Option<Duration> {
        if !self.waiting {
            self.waiting = true;
            let deadline = tokio::time::Instant::now() + self.limit;
            match self.sleep.as_mut() {
                Some(sleep) => sleep.as_mut().reset(deadline),
                None => self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        let sleep = self.sleep.as_mut()?;
        sleep.as_mut().poll(cx).is_ready().then_some(self.limit)
    }
}

/// Why a forwarded body broke off.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The connection it came on failed.
    #[error(transparent)]
    Hyper(#[from] hyper::Error),
    /// The upstream connection of capscope's streamed client failed, or sent a malformed body.
    #[error(transparent)]
    Upstream(#[from] LeanBodyError),
    /// Its sender sent nothing for this long.
    #[error("the sender sent no body data for {} s (--body-timeout)", .0.as_secs())]
    Stalled(Duration),
}

#[derive(Debug)]
struct Tap {
    exchange: Arc<Exchange>,
    side: Side,
    /// The end of this body ends the exchange (the response side).
    finishes: bool,
    done: bool,
}

impl Tap {
    fn end(&mut self, error: Option<String>) {
        if self.done {
            return;
        }
        self.done = true;
        if self.finishes {
            self.exchange.finish(error);
        } else if let Some(e) = error {
            self.exchange.update(|r| r.notes.push(e));
        }
    }
}

impl ProxyBody {
    pub(crate) fn empty() -> Self {
        Self::full(Bytes::new())
    }

    pub(crate) fn full(data: impl Into<Bytes>) -> Self {
        let data = data.into();
        ProxyBody {
            kind: Kind::Full((!data.is_empty()).then_some(data)),
            tap: None,
        }
    }

    /// A streamed body, not recorded.
    pub(crate) fn stream(prefix: Option<Bytes>, body: impl Into<Inbound>) -> Self {
        ProxyBody {
            kind: Kind::Stream {
                prefix: prefix.filter(|p| !p.is_empty()),
                body: body.into(),
                idle: None,
            },
            tap: None,
        }
    }

    /// Breaks the body off (with [`BodyError::Stalled`]) when its sender sends nothing for `limit`.
    pub(crate) fn idle_timeout(mut self, limit: Duration) -> Self {
        if let Kind::Stream { idle, .. } = &mut self.kind {
            *idle = Some(IdleTimer::new(limit));
        }
        self
    }

    /// Taps this body into `exchange`. With `finishes`, the body's end publishes the record.
    pub(crate) fn tapped(mut self, exchange: Arc<Exchange>, side: Side, finishes: bool) -> Self {
        let mut tap = Tap {
            exchange,
            side,
            finishes,
            done: false,
        };
        if let Kind::Full(data) = &self.kind {
            // Known whole: record it now.
            if let Some(d) = data {
                tap.exchange.push(side, d);
            }
            tap.end(None);
        } else if let Some(expected) = self.size_hint().exact() {
            tap.exchange.expect(side, expected);
        }
        self.tap = Some(tap);
        self
    }
}

impl HttpBody for ProxyBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let polled = match &mut this.kind {
            Kind::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Kind::Stream { prefix, body, idle } => match prefix.take() {
                Some(p) => Poll::Ready(Some(Ok(Frame::data(p)))),
                None => match Pin::new(body).poll_frame(cx) {
                    Poll::Pending => match idle.as_mut().and_then(|t| t.expired_now(cx)) {
                        Some(limit) => Poll::Ready(Some(Err(BodyError::Stalled(limit)))),
                        None => Poll::Pending,
                    },
                    ready => {
                        if let Some(timer) = idle {
                            timer.waiting = false;
                        }
                        ready
                    }
                },
            },
        };
        if let Some(tap) = this.tap.as_mut() {
            match &polled {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        if !tap.done {
                            tap.exchange.push(tap.side, data);
                        }
                    }
                    if this.kind.is_end() {
                        tap.end(None);
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    if matches!(e, BodyError::Stalled(_)) && tap.side == Side::Request {
                        tap.exchange.lock().request_stalled = true;
                    }
                    tap.end(Some(format!("the {} body broke off: {e}", tap.side.word())))
                }
                Poll::Ready(None) => tap.end(None),
                Poll::Pending => {}
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.kind.is_end()
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(None) => SizeHint::with_exact(0),
            Kind::Full(Some(d)) => SizeHint::with_exact(d.len() as u64),
            Kind::Stream { prefix, body, .. } => {
                let extra = prefix.as_ref().map_or(0, |p| p.len() as u64);
                let inner = body.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(inner.lower() + extra);
                if let Some(upper) = inner.upper() {
                    hint.set_upper(upper + extra);
                }
                hint
            }
        }
    }
}

impl Kind {
    fn is_end(&self) -> bool {
        match self {
            Kind::Full(d) => d.is_none(),
            Kind::Stream { prefix, body, .. } => prefix.is_none() && body.is_end_stream(),
        }
    }
}

impl Drop for ProxyBody {
    fn drop(&mut self) {
        if let Some(tap) = self.tap.as_mut() {
            if self.kind.is_end() {
                tap.end(None);
            } else {
                let who = match tap.side {
                    Side::Request => "the request body was not forwarded whole",
                    Side::Response => "the client went away before the response body ended",
                };
                tap.end(Some(who.into()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(plain: &[u8]) -> Bytes {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(plain).unwrap();
        Bytes::from(enc.finish().unwrap())
    }

    fn copy_of(data: &Bytes, encoding: &str, limit: usize) -> BodyCopy {
        let mut c = BodyCopy {
            encoding: Some(encoding.into()),
            ..BodyCopy::default()
        };
        c.push(data, limit);
        c
    }

    #[test]
    fn capture_counts_true_size_and_truncates_at_limit() {
        let mut c = BodyCopy::default();
        c.push(&Bytes::from_static(b"hello "), 8);
        c.push(&Bytes::from_static(b"world"), 8);
        c.push(&Bytes::from_static(b"!!"), 8);
        let body = c.into_body(&mut Vec::new(), Side::Response, 8);
        assert_eq!(&body.data[..], b"hello wo");
        assert_eq!(body.size, 13);
        assert!(body.truncated);
    }

    #[test]
    fn gzip_is_undone_for_the_record_and_bogus_encodings_are_kept() {
        let text = b"<llsd><integer>1</integer></llsd>";
        let gz = gzip(text);
        let body = copy_of(&gz, "gzip", 1024).into_body(&mut Vec::new(), Side::Response, 1024);
        assert_eq!(&body.data[..], text);
        assert_eq!(body.content_encoding.as_deref(), Some("gzip"));
        assert!(!body.truncated);

        let body = copy_of(&Bytes::from_static(b"abc"), "binary/octet-stream", 1024).into_body(
            &mut Vec::new(),
            Side::Response,
            1024,
        );
        assert_eq!((&body.data[..], body.content_encoding), (&b"abc"[..], None));
        assert!(!decodable("binary/octet-stream"));

        let mut notes = Vec::new();
        let body = copy_of(&Bytes::from_static(b"not gzip"), "gzip", 1024).into_body(
            &mut notes,
            Side::Response,
            1024,
        );
        assert_eq!(&body.data[..], b"not gzip");
        assert!(notes[0].contains("could not undo"), "{notes:?}");
    }

    #[test]
    fn a_decoded_body_is_never_kept_past_the_body_limit() {
        // A few KiB of gzip that decode to 64 MiB: the record keeps `limit` bytes, marked truncated.
        let member = gzip(&vec![0u8; 1 << 20]);
        let bomb: Bytes = std::iter::repeat_n(&member[..], 64)
            .flatten()
            .copied()
            .collect();
        let limit = 256 * 1024;
        assert!(
            bomb.len() < limit,
            "the encoded bomb fits the capture whole"
        );
        let body = copy_of(&bomb, "gzip", limit).into_body(&mut Vec::new(), Side::Response, limit);
        assert_eq!(body.data.len(), limit);
        assert!(body.truncated);
        assert_eq!(body.size, bomb.len() as u64);
    }

    /// The copy is the tap's own memory: it never shares (and so never keeps alive) the buffer a frame
    /// was read into.
    #[test]
    fn the_copy_never_shares_the_frames_buffer() {
        let buffer = Bytes::from(vec![3u8; 64 * 1024]);
        let mut c = BodyCopy::default();
        c.push(&buffer.slice(100..200), 1024);
        let body = c.into_body(&mut Vec::new(), Side::Response, 1024);
        assert_eq!(&body.data[..], &[3u8; 100][..]);
        let range = buffer.as_ptr_range();
        assert!(!range.contains(&body.data.as_ptr()));
    }

    /// An announced length reserves the copy once, never past the body limit, and room a shorter body
    /// did not use is given back before the record holds it.
    #[test]
    fn an_announced_length_is_reserved_up_to_the_limit_and_unused_room_is_given_back() {
        let mut c = BodyCopy::default();
        c.expect(u64::MAX, 4096);
        assert!(c.data.capacity() >= 4096 && c.data.capacity() < 8192);
        c.push(&Bytes::from_static(b"short"), 4096);
        let data = c.data.clone();
        assert_eq!(&c.take_data()[..], b"short");
        assert_eq!(data.len(), 5);

        let mut c = BodyCopy::default();
        c.expect(1000, 4096);
        c.push(&Bytes::from(vec![1u8; 1000]), 4096);
        assert_eq!(c.size, 1000);
        assert_eq!(c.take_data().len(), 1000);
    }

    /// A large body's copy is made in a buffer the pool gave, and the buffer goes back to the pool
    /// only when the last copy of the body is dropped; a buffer mostly unused is not pooled.
    #[test]
    fn large_copies_reuse_pooled_buffers_once_every_copy_is_dropped() {
        static TEST_POOL: BufferPool = BufferPool::new();
        let size = 3 * POOL_MIN_BUFFER;
        let fill = |c: &mut BodyCopy, byte: u8| {
            c.expect_from(size as u64, 1 << 20, &TEST_POOL);
            c.push(&vec![byte; size], 1 << 20);
            c.take_data_for(&TEST_POOL)
        };
        let first = fill(&mut BodyCopy::default(), 1);
        let kept = first.slice(10..20);
        drop(first);
        assert!(TEST_POOL.lock().is_empty(), "a slice still holds it");
        let at = kept.as_ptr();
        drop(kept);
        assert_eq!(TEST_POOL.lock().len(), 1);
        let second = fill(&mut BodyCopy::default(), 2);
        assert!(TEST_POOL.lock().is_empty());
        assert_eq!(
            second.as_ptr(),
            at.wrapping_sub(10),
            "the pooled buffer was reused"
        );
        assert_eq!(&second[..], &vec![2u8; size][..]);
        drop(second);

        // Announced far more than it sent: the buffer is mostly room, given back, not pooled.
        let mut c = BodyCopy::default();
        c.expect_from(size as u64 * 4, 1 << 20, &TEST_POOL);
        c.push(&[7u8; 100], 1 << 20);
        assert_eq!(&c.take_data_for(&TEST_POOL)[..], &[7u8; 100][..]);
        assert!(TEST_POOL.lock().iter().all(|b| b.capacity() < size * 4));

        // The pool keeps at most POOL_MAX_BUFFERS.
        let many: Vec<Bytes> = (0..POOL_MAX_BUFFERS + 3)
            .map(|_| fill(&mut BodyCopy::default(), 3))
            .collect();
        drop(many);
        assert_eq!(TEST_POOL.lock().len(), POOL_MAX_BUFFERS);

        // Bodies grew past every pooled buffer: each miss lets the smallest one go.
        assert!(TEST_POOL.take(size * 2).is_none());
        assert_eq!(TEST_POOL.lock().len(), POOL_MAX_BUFFERS - 1);
    }

    #[test]
    fn what_was_sent_before_a_rewrite_is_bounded_too() {
        let mut c = BodyCopy::default();
        c.set_whole(Bytes::from_static(b"new"), 4);
        c.original = Some(Bytes::from(vec![1u8; 100]));
        let body = c.into_body(&mut Vec::new(), Side::Response, 4);
        assert_eq!(body.original.as_deref(), Some(&[1u8; 4][..]));
    }
}
