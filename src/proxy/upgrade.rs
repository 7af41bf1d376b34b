//! HTTP/1.1 `Upgrade` (WebSocket and any other protocol): the handshake goes upstream like any request,
//! and after a `101 Switching Protocols` both upgraded connections are relayed byte for byte, both ways,
//! until either side closes.
//!
//! The viewer's built-in browser (CEF: web profiles, search, marketplace, media on a prim) uses the
//! viewer's proxy settings, and pages open WebSockets; a proxy that drops the upgrade breaks them. This
//! works over plain HTTP (absolute-form), inside intercepted TLS tunnels (`wss:`), and for requests
//! the hook routes elsewhere.
//!
//! The record is the handshake (request and `101` heads), then on close the byte counts each way (in
//! `tunnel`) and, for WebSocket, the number of messages each way and the start of the first few text
//! messages (frame headers are read as the bytes pass; nothing is buffered or delayed).
//!
//! Owns the upgrade path only. It must not decide routes (the hook did) nor hold caps knowledge.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONNECTION, HOST, UPGRADE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::exchange::{record_response, upstream_failure, Ctx};
use super::hook::{RequestHead, UpstreamError};
use super::relay::{self, Direction};
use super::tap::{Exchange, ProxyBody, Side};
use super::wire::strip_hop_by_hop;
use crate::record::TunnelInfo;

/// How many text messages per direction a record shows the start of.
const MAX_PREVIEWS: usize = 8;
/// How much of each previewed text message the record shows, in bytes.
const PREVIEW_BYTES: usize = 160;

/// The protocol a request asks to upgrade to (`websocket`, ...), when it asks for one: an `Upgrade`
/// header and `Connection: upgrade` (HTTP/1.1 only).
pub(crate) fn requested(version: Version, headers: &HeaderMap) -> Option<String> {
    if version != Version::HTTP_11 {
        return None;
    }
    let wants = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    let protocol = headers.get(UPGRADE)?.to_str().ok()?.trim().to_owned();
    (wants && !protocol.is_empty()).then_some(protocol)
}

/// Puts the two upgrade headers back after the hop-by-hop ones were stripped.
fn keep_upgrade(headers: &mut HeaderMap, protocol: &str) {
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    if let Ok(v) = HeaderValue::from_str(protocol) {
        headers.insert(UPGRADE, v);
    }
}

/// Sends the handshake upstream and, on `101`, relays both upgraded connections in a task of their own
/// that finishes the record when they close. Any other answer is forwarded as a normal response.
pub(crate) async fn relay(
    ctx: &Ctx,
    exchange: Arc<Exchange>,
    head: RequestHead,
    mut req: Request<Incoming>,
    uri: Uri,
    routed: bool,
    protocol: String,
) -> Response<ProxyBody> {
    let client_side = hyper::upgrade::on(&mut req);
    let (mut parts, body) = req.into_parts();
    let client_version = parts.version;
    strip_hop_by_hop(&mut parts.headers);
    keep_upgrade(&mut parts.headers, &protocol);
    if routed {
        parts.headers.remove(HOST);
    }
    parts.uri = uri;
    parts.version = Version::HTTP_11;
    let up_body = ProxyBody::stream(None, body).tapped(exchange.clone(), Side::Request, false);
    exchange.update(|r| r.timings.request_sent_us = Some(r.elapsed_us()));
    let mut resp = match ctx
        .shared
        .upstream
        .request(Request::from_parts(parts, up_body))
        .await
    {
        Ok(r) => r,
        Err(e) => return upstream_failure(&exchange, &e),
    };
    record_response(&exchange, resp.status(), resp.version(), resp.headers());
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let (mut parts, body) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        parts.version = client_version;
        exchange.update(|r| {
            r.notes
                .push(format!("asked to upgrade to {protocol}; upstream declined"))
        });
        return Response::from_parts(
            parts,
            ProxyBody::stream(None, body).tapped(exchange, Side::Response, true),
        );
    }
    let upstream_side = hyper::upgrade::on(&mut resp);
    let (mut parts, _) = resp.into_parts();
    let accepted = parts
        .headers
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or(&protocol)
        .to_owned();
    strip_hop_by_hop(&mut parts.headers);
    keep_upgrade(&mut parts.headers, &accepted);
    parts.version = client_version;
    let websocket = accepted.eq_ignore_ascii_case("websocket");
    let target = head
        .uri
        .authority()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let (life, idle, host) = (
        ctx.life.clone(),
        ctx.shared.config.idle_timeout,
        target.clone(),
    );
    tokio::spawn(async move {
        let result = match (client_side.await, upstream_side.await) {
            (Ok(c), Ok(u)) => {
                let (mut c, mut u) = (TokioIo::new(c), TokioIo::new(u));
                let mut meters = Meters::new(websocket);
                let Meters { bytes, up, down } = &mut meters;
                let r = relay::pump(&mut c, &mut u, idle, &life, bytes, |way, chunk| {
                    let meter = match way {
                        Direction::Up => up.as_mut(),
                        Direction::Down => down.as_mut(),
                    };
                    if let Some(m) = meter {
                        m.feed(chunk);
                    }
                })
                .await;
                finish(&exchange, &target, &accepted, &meters);
                r
            }
            (Err(e), _) => Err(format!("the client's side of the upgrade failed: {e}")),
            (_, Err(e)) => Err(format!(
                "{}",
                UpstreamError::Protocol {
                    host,
                    reason: format!("the upgrade failed: {e}"),
                }
            )),
        };
        exchange.finish(result.err());
    });
    Response::from_parts(parts, ProxyBody::full(Bytes::new()))
}

/// Writes the relay's counts into the record.
fn finish(exchange: &Exchange, target: &str, protocol: &str, meters: &Meters) {
    exchange.update(|r| {
        r.tunnel = Some(TunnelInfo {
            target: target.to_owned(),
            bytes_up: meters.bytes.0,
            bytes_down: meters.bytes.1,
        });
        let mut note = format!(
            "upgraded to {protocol}: {} bytes up, {} bytes down",
            meters.bytes.0, meters.bytes.1
        );
        if let (Some(up), Some(down)) = (&meters.up, &meters.down) {
            let plural = if up.messages == 1 { "" } else { "s" };
            note.push_str(&format!(
                "; {} message{plural} up, {} down",
                up.messages, down.messages
            ));
        }
        r.notes.push(note);
        for (arrow, ws) in [("up", &meters.up), ("down", &meters.down)] {
            for p in ws.iter().flat_map(|w| w.previews.iter()) {
                r.notes.push(format!("{arrow}: {p}"));
            }
        }
    });
}

/// What the relay counts: bytes each way (up: client to server) and, for WebSocket, messages.
struct Meters {
    bytes: (u64, u64),
    up: Option<WsMeter>,
    down: Option<WsMeter>,
}

impl Meters {
    fn new(websocket: bool) -> Self {
        Self {
            bytes: (0, 0),
            up: websocket.then(WsMeter::default),
            down: websocket.then(WsMeter::default),
        }
    }
}

/// Reads WebSocket frame headers (RFC 6455 §5.2) as bytes pass, counting messages and keeping the
/// start of the first few text messages. Never holds more than a frame header and a preview.
#[derive(Debug, Default)]
struct WsMeter {
    /// Data messages completed (a final text, binary or continuation frame).
    messages: u64,
    previews: Vec<String>,
    header: Vec<u8>,
    frame: Option<Frame>,
    /// The text of the message in progress, while it is being previewed.
    preview: Option<Vec<u8>>,
    /// Set when the stream stopped looking like WebSocket frames; counting stops.
    lost: bool,
}

#[derive(Debug)]
struct Frame {
    fin: bool,
    opcode: u8,
    remaining: u64,
    mask: Option<[u8; 4]>,
    offset: u64,
}

impl WsMeter {
    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() && !self.lost {
            match self.frame.as_mut() {
                None => {
                    let need = self.header_len().unwrap_or(2);
                    let take = need.saturating_sub(self.header.len()).min(data.len());
                    self.header.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if let Some(need) = self.header_len() {
                        if self.header.len() >= need {
                            self.start_frame();
                        }
                    }
                }
                Some(frame) => {
                    let n = frame.remaining.min(data.len() as u64) as usize;
                    if let Some(preview) = self.preview.as_mut() {
                        for (i, b) in data[..n].iter().enumerate() {
                            if preview.len() >= PREVIEW_BYTES {
                                break;
                            }
                            let k = frame
                                .mask
                                .map_or(0, |m| m[((frame.offset + i as u64) % 4) as usize]);
                            preview.push(b ^ k);
                        }
                    }
                    frame.offset += n as u64;
                    frame.remaining -= n as u64;
                    data = &data[n..];
                    if frame.remaining == 0 {
                        self.end_frame();
                    }
                }
            }
        }
    }

    /// The full header length once its first two bytes are known.
    fn header_len(&self) -> Option<usize> {
        let b1 = *self.header.get(1)?;
        let ext = match b1 & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        Some(2 + ext + if b1 & 0x80 != 0 { 4 } else { 0 })
    }

    fn start_frame(&mut self) {
        let h = std::mem::take(&mut self.header);
        let (b0, b1) = (h[0], h[1]);
        if b0 & 0x70 != 0 && self.messages == 0 {
            // Reserved bits on the very first frame: not plain WebSocket (or an extension we do
            // not know). Count nothing rather than nonsense.
            self.lost = true;
            return;
        }
        let (len, at) = match b1 & 0x7f {
            126 => (u64::from(u16::from_be_bytes([h[2], h[3]])), 4),
            127 => (
                u64::from_be_bytes([h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]]),
                10,
            ),
            n => (u64::from(n), 2),
        };
        let mask = (b1 & 0x80 != 0).then(|| [h[at], h[at + 1], h[at + 2], h[at + 3]]);
        let opcode = b0 & 0x0f;
        if opcode != 0 && opcode < 8 {
            self.preview = (opcode == 1 && self.previews.len() < MAX_PREVIEWS).then(Vec::new);
        }
        self.frame = Some(Frame {
            fin: b0 & 0x80 != 0,
            opcode,
            remaining: len,
            mask,
            offset: 0,
        });
        if len == 0 {
            self.end_frame();
        }
    }

    fn end_frame(&mut self) {
        let Some(frame) = self.frame.take() else {
            return;
        };
        let data = frame.opcode < 8;
        if data && frame.fin {
            self.messages += 1;
            if let Some(p) = self.preview.take() {
                let mut text = String::from_utf8_lossy(&p).into_owned();
                if p.len() >= PREVIEW_BYTES {
                    text.push('…');
                }
                self.previews.push(format!("text {text:?}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame as a client sends it (masked) or a server (not).
    fn frame(fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut out = vec![(if fin { 0x80 } else { 0 }) | opcode];
        let m = if mask.is_some() { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => out.push(m | n as u8),
            n if n <= 0xffff => {
                out.push(m | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(m | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        match mask {
            Some(k) => {
                out.extend_from_slice(&k);
                out.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
            }
            None => out.extend_from_slice(payload),
        }
        out
    }

    #[test]
    fn messages_are_counted_and_text_previewed_whatever_the_chunking() {
        let mut wire = Vec::new();
        wire.extend(frame(true, 1, b"hello", Some([1, 2, 3, 4])));
        wire.extend(frame(false, 2, &[0u8; 300], Some([9, 9, 9, 9])));
        wire.extend(frame(true, 9, b"ping", Some([5, 6, 7, 8]))); // control, between fragments
        wire.extend(frame(true, 0, &[1u8; 70_000], Some([1, 1, 1, 1])));
        wire.extend(frame(true, 1, "wörld".as_bytes(), None));
        for chunk in [1usize, 3, 7, 4096, wire.len()] {
            let mut m = WsMeter::default();
            for piece in wire.chunks(chunk) {
                m.feed(piece);
            }
            assert_eq!(m.messages, 3, "chunk {chunk}");
            assert_eq!(
                m.previews,
                vec!["text \"hello\"".to_owned(), "text \"wörld\"".to_owned()],
                "chunk {chunk}"
            );
            assert!(m.frame.is_none() && m.header.is_empty());
        }
    }

    #[test]
    fn non_websocket_bytes_are_not_miscounted_and_never_panic() {
        let mut m = WsMeter::default();
        m.feed(&[0xff; 64]);
        assert_eq!(m.messages, 0);
        let mut m = WsMeter::default();
        m.feed(&[0x81, 0xff]); // a 64-bit length still to come
        m.feed(&[0x7f; 3]);
        assert_eq!(m.messages, 0);
    }

    #[test]
    fn upgrade_requests_are_recognised() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
        h.insert(UPGRADE, HeaderValue::from_static("websocket"));
        assert_eq!(
            requested(Version::HTTP_11, &h).as_deref(),
            Some("websocket")
        );
        assert_eq!(requested(Version::HTTP_2, &h), None);
        h.insert(CONNECTION, HeaderValue::from_static("keep-alive"));
        assert_eq!(requested(Version::HTTP_11, &h), None);
    }
}
