//! The body tap and the record of one exchange.
//!
//! [`Exchange`] holds the record of one request/response pair while it is in flight: the proxy fills in
//! the heads as they pass, the taps add bounded copies of the bodies, and the record is published once
//! when the exchange ends (response body finished, failed, or everything dropped because a side went
//! away). [`ProxyBody`] is the one body type the proxy forwards in both directions; when tapped it clones
//! each `Bytes` frame into the exchange up to the body limit and passes the frame straight on.
//!
//! This module owns the tap and record finalisation (including decoding `Content-Encoding` for the
//! record, off the forwarding path). It must not decide routes or touch sockets.

use std::io::Read;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;

use crate::record::{self, Bus, Record, State};

/// Captured bodies larger than this are assembled (and decoded) on a blocking thread rather than in the
/// forwarding task that finished them.
const INLINE_FINISH_LIMIT: usize = 64 * 1024;

/// Which body of an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Request,
    Response,
}

/// The bounded copy of one body, as the tap saw it on the wire.
#[derive(Debug, Default)]
struct Capture {
    chunks: Vec<Bytes>,
    captured: usize,
    size: u64,
    truncated: bool,
    /// The body's `Content-Encoding`, to undo for the record.
    encoding: Option<String>,
    /// What the sender sent before a rewrite (the chunks are what the receiver got).
    original: Option<Bytes>,
}

impl Capture {
    fn push(&mut self, data: &Bytes, limit: usize) {
        self.size += data.len() as u64;
        let room = limit.saturating_sub(self.captured);
        if room == 0 {
            self.truncated |= !data.is_empty();
            return;
        }
        let take = room.min(data.len());
        if take < data.len() {
            self.truncated = true;
        }
        self.captured += take;
        self.chunks.push(data.slice(..take));
    }

    /// Replaces the capture with a body seen whole.
    fn set_whole(&mut self, data: Bytes, limit: usize) {
        *self = Capture {
            encoding: self.encoding.take(),
            ..Capture::default()
        };
        self.push(&data, limit);
    }

    fn into_body(self, notes: &mut Vec<String>, side: Side) -> record::Body {
        let wire = concat(self.chunks, self.captured);
        let mut body = record::Body {
            data: wire,
            size: self.size,
            truncated: self.truncated,
            content_encoding: None,
            original: self.original,
        };
        if let Some(encoding) = self.encoding {
            match decode(&body.data, &encoding) {
                Decoded::Identity => {}
                Decoded::Data(data) => {
                    body.data = data;
                    body.content_encoding = Some(encoding);
                }
                Decoded::Failed(reason) => notes.push(format!(
                    "{} body: could not undo Content-Encoding {encoding}: {reason} (kept as sent)",
                    side.word()
                )),
            }
        }
        body
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

/// One owned copy of the captured chunks. Always a copy, even of a single chunk: a frame is a slice of
/// the connection's read buffer, and a record that outlives the exchange must not keep that buffer
/// alive.
fn concat(chunks: Vec<Bytes>, len: usize) -> Bytes {
    let mut out = BytesMut::with_capacity(len);
    for c in chunks {
        out.extend_from_slice(&c);
    }
    out.freeze()
}

enum Decoded {
    Identity,
    Data(Bytes),
    Failed(String),
}

/// Undoes a `Content-Encoding` for the record. The result is bounded by the record limit already
/// applied to `data` times [`MAX_DECODE_RATIO`], so a compression bomb cannot blow up memory.
fn decode(data: &Bytes, encoding: &str) -> Decoded {
    let limit = (data.len().saturating_mul(MAX_DECODE_RATIO) as u64).max(MIN_DECODE_LIMIT);
    let mut out = Vec::new();
    let result = match encoding.trim().to_ascii_lowercase().as_str() {
        "gzip" | "x-gzip" => flate2::read::MultiGzDecoder::new(&data[..])
            .take(limit)
            .read_to_end(&mut out),
        "deflate" => {
            // `deflate` is meant to be zlib-wrapped, but some servers send raw deflate.
            let zlib = flate2::read::ZlibDecoder::new(&data[..])
                .take(limit)
                .read_to_end(&mut out);
            if zlib.is_err() {
                out.clear();
                flate2::read::DeflateDecoder::new(&data[..])
                    .take(limit)
                    .read_to_end(&mut out)
            } else {
                zlib
            }
        }
        "zstd" => match zstd::stream::read::Decoder::new(&data[..]) {
            Ok(d) => d.take(limit).read_to_end(&mut out),
            Err(e) => Err(e),
        },
        // `identity`, and Second Life's `binary/octet-stream`, which is not an encoding at all.
        _ => return Decoded::Identity,
    };
    match result {
        Ok(_) => Decoded::Data(Bytes::from(out)),
        // A truncated capture ends mid-stream: keep what decoded.
        Err(_) if !out.is_empty() => Decoded::Data(Bytes::from(out)),
        Err(e) => Decoded::Failed(e.to_string()),
    }
}

/// A decoded body in a record may be at most this many times its encoded capture.
const MAX_DECODE_RATIO: usize = 32;
/// ... but always at least this much.
const MIN_DECODE_LIMIT: u64 = 1024 * 1024;

/// Whether a `Content-Encoding` value is one the record decodes (the wire is never altered).
pub(crate) fn decodable(encoding: &str) -> bool {
    matches!(
        encoding.trim().to_ascii_lowercase().as_str(),
        "gzip" | "x-gzip" | "deflate" | "zstd"
    )
}

/// Undoes a `Content-Encoding` of a whole buffered body (for a hook that reads it). `Err` names why.
pub(crate) fn decode_whole(data: &Bytes, encoding: &str) -> Result<Bytes, String> {
    match decode(data, encoding) {
        Decoded::Identity => Ok(data.clone()),
        Decoded::Data(d) => Ok(d),
        Decoded::Failed(reason) => Err(reason),
    }
}

#[derive(Debug)]
struct Pending {
    /// `None` once published.
    record: Option<Record>,
    request: Capture,
    response: Capture,
}

/// One exchange in flight: its record, its body captures, and the bus it is published on.
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
                request: Capture::default(),
                response: Capture::default(),
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

    /// Names the `Content-Encoding` a body carries, to undo for the record.
    pub(crate) fn set_encoding(&self, side: Side, encoding: Option<String>) {
        let mut p = self.lock();
        p.capture(side).encoding = encoding.filter(|e| decodable(e));
    }

    /// Records a body that was seen whole (buffered), with what the sender sent when it was rewritten.
    pub(crate) fn set_body(&self, side: Side, data: Bytes, original: Option<Bytes>) {
        let limit = self.max_body;
        let mut p = self.lock();
        let c = p.capture(side);
        c.set_whole(data, limit);
        c.original = original;
    }

    fn push(&self, side: Side, data: &Bytes) {
        let limit = self.max_body;
        self.lock().capture(side).push(data, limit);
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
        let heavy = request.captured + response.captured > INLINE_FINISH_LIMIT
            || request.encoding.is_some()
            || response.encoding.is_some();
        let bus = self.bus.clone();
        let publish = move || {
            let mut notes = Vec::new();
            let req_body = request.into_body(&mut notes, Side::Request);
            let resp_body = response.into_body(&mut notes, Side::Response);
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
    fn capture(&mut self, side: Side) -> &mut Capture {
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
        body: Incoming,
    },
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
    pub(crate) fn stream(prefix: Option<Bytes>, body: Incoming) -> Self {
        ProxyBody {
            kind: Kind::Stream {
                prefix: prefix.filter(|p| !p.is_empty()),
                body,
            },
            tap: None,
        }
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
        }
        self.tap = Some(tap);
        self
    }
}

impl HttpBody for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = match &mut this.kind {
            Kind::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Kind::Stream { prefix, body } => match prefix.take() {
                Some(p) => Poll::Ready(Some(Ok(Frame::data(p)))),
                None => Pin::new(body).poll_frame(cx),
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
            Kind::Stream { prefix, body } => {
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
            Kind::Stream { prefix, body } => prefix.is_none() && body.is_end_stream(),
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

    #[test]
    fn capture_counts_true_size_and_truncates_at_limit() {
        let mut c = Capture::default();
        c.push(&Bytes::from_static(b"hello "), 8);
        c.push(&Bytes::from_static(b"world"), 8);
        c.push(&Bytes::from_static(b"!!"), 8);
        let body = c.into_body(&mut Vec::new(), Side::Response);
        assert_eq!(&body.data[..], b"hello wo");
        assert_eq!(body.size, 13);
        assert!(body.truncated);
    }

    #[test]
    fn gzip_is_undone_for_the_record_and_bogus_encodings_are_kept() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(b"<llsd><integer>1</integer></llsd>").unwrap();
        let gz = Bytes::from(enc.finish().unwrap());
        match decode(&gz, "gzip") {
            Decoded::Data(d) => assert_eq!(&d[..], b"<llsd><integer>1</integer></llsd>"),
            _ => panic!("gzip not decoded"),
        }
        assert!(matches!(
            decode(&Bytes::from_static(b"abc"), "binary/octet-stream"),
            Decoded::Identity
        ));
        assert!(!decodable("binary/octet-stream"));
        assert!(matches!(
            decode(&Bytes::from_static(b"not gzip"), "gzip"),
            Decoded::Failed(_)
        ));
    }

    #[test]
    fn a_compression_bomb_is_cut_at_the_decode_limit() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![0u8; 64 * 1024 * 1024]).unwrap();
        let gz = Bytes::from(enc.finish().unwrap());
        match decode(&gz, "gzip") {
            Decoded::Data(d) => {
                assert!(d.len() as u64 <= MIN_DECODE_LIMIT.max(gz.len() as u64 * 32))
            }
            _ => panic!("not decoded"),
        }
    }
}
