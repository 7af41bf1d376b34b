//! The front of every HTTP/1 client connection: it reads request heads itself and serves the
//! requests the hook holds (event-queue long polls) without a general HTTP server, then hands the
//! connection to hyper at the first request it does not serve.
//!
//! Why: a long poll is held open for up to a minute or more, and thousands of viewers each keep one.
//! Under hyper's HTTP/1 server each held poll kept a head write buffer, a read buffer reserved to
//! notice an early close, a connection task and the request's future (about 22 KiB). Here a held poll
//! costs its connection task's future, the socket, the boxed route future and nothing else: heads are
//! read into a buffer that is given back once the request is read, and an early close is noticed with
//! a read of a few bytes.
//!
//! What it serves itself: a complete head the hook [`holds`](super::hook::Hook::holds) that is plain
//! (HTTP/1.0 or 1.1, GET or POST, a `Content-Length` or no body, no `Transfer-Encoding`, no `Upgrade`,
//! no `Expect` but `100-continue`), with a route of [`Route::Handle`] or [`Route::Respond`] from the
//! same per-request code hyper's path runs (`exchange`). Everything else (other requests, CONNECT,
//! garbage, heads over the limit, a route the hook changed its mind about) goes to hyper with the bytes
//! already read, so hyper answers and records it exactly as before.
//!
//! This module owns reading heads and sized bodies on the client's connection, writing whole answers,
//! keep-alive, and noticing a client that leaves while its answer is awaited. It must not decide
//! routes or touch records (that is `exchange` and the hook), nor serve streamed or upgraded exchanges
//! (that is hyper's, through `server`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH, DATE, EXPECT, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, Uri, Version};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use super::exchange::{self, BodyFailure, Ctx};
use super::hook::{RequestHead, Route, MAX_REWRITE_BODY};
use super::server::Phase;
use super::tap::Exchange;
use super::wire::decimal_length;
use crate::record::now_us;
use crate::util::time::http_date;

/// The most header lines a head may have (hyper's server allows as many; more go to hyper, which
/// refuses them as before).
pub(crate) const MAX_HEADERS: usize = 100;
/// How much the head buffer grows by for each read while a head arrives.
const HEAD_READ: usize = 1024;
/// How many bytes one read takes while an answer is awaited (it is there to notice a close; bytes
/// that do come, a pipelined request, are kept for the next head).
const WATCH_READ: usize = 16;
/// The most the body buffer grows by before a read: what a `Content-Length` claims is reserved only
/// as its bytes arrive (a claim of 16 MiB on thousands of connections must not cost 16 MiB each).
const BODY_READ: usize = 16 * 1024;
/// The `date` written if the clock is outside what an HTTP date can say.
const EPOCH_DATE: &str = "Thu, 01 Jan 1970 00:00:00 GMT";
/// Bodies up to this size are written with their head in one write.
const JOIN_WRITE: usize = 8 * 1024;

/// How a connection's front ended.
pub(crate) enum Ended<I> {
    /// The connection is done (closed by either side, timed out, or the proxy stopped).
    Closed,
    /// A request the front does not serve: hyper takes the connection, these bytes first.
    HandOver(I, Bytes),
}

/// What the bytes of a head so far are.
#[derive(Debug)]
pub(crate) enum Parsed {
    /// Not a whole head yet.
    Partial,
    /// A whole head the front could serve itself.
    Plain(Box<PlainHead>),
    /// Anything else (not HTTP/1, too large, a body framing or a method the front leaves to hyper).
    Other,
}

/// A whole, plain request head.
#[derive(Debug)]
pub(crate) struct PlainHead {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub headers: HeaderMap,
    /// The head's length in bytes (the body starts here).
    pub len: usize,
    /// The body's length (`Content-Length`, else 0).
    pub body_len: u64,
    /// `Expect: 100-continue` was sent.
    pub expect_continue: bool,
    /// The client wants the connection kept open after the answer (HTTP/1.1 unless
    /// `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`).
    pub keep_alive: bool,
}

/// Reads the head at the start of `buf` (at most `max_head` bytes, as hyper's `max_buf_size`).
pub(crate) fn parse_head(buf: &[u8], max_head: usize) -> Parsed {
    let mut lines = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut lines);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Partial) if buf.len() <= max_head => return Parsed::Partial,
        Ok(httparse::Status::Complete(len)) if len <= max_head => len,
        _ => return Parsed::Other,
    };
    let method = match req.method {
        Some("GET") => Method::GET,
        Some("POST") => Method::POST,
        _ => return Parsed::Other,
    };
    let version = match req.version {
        Some(0) => Version::HTTP_10,
        Some(1) => Version::HTTP_11,
        _ => return Parsed::Other,
    };
    let Some(uri) = req.path.and_then(|p| Uri::try_from(p).ok()) else {
        return Parsed::Other;
    };
    let mut headers = HeaderMap::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_bytes(h.value),
        ) else {
            return Parsed::Other;
        };
        headers.append(name, value);
    }
    if headers.contains_key(TRANSFER_ENCODING) || headers.contains_key(UPGRADE) {
        return Parsed::Other;
    }
    let mut body_len = None;
    for v in headers.get_all(CONTENT_LENGTH) {
        let n = match decimal_length(v.as_bytes()) {
            Some(n) => n,
            None => return Parsed::Other,
        };
        if body_len.is_some_and(|b| b != n) {
            return Parsed::Other;
        }
        body_len = Some(n);
    }
    let mut expect_continue = false;
    for v in headers.get_all(EXPECT) {
        if v.as_bytes().eq_ignore_ascii_case(b"100-continue") {
            expect_continue = true;
        } else {
            return Parsed::Other;
        }
    }
    let wants = |token: &str| {
        headers.get_all(CONNECTION).iter().any(|v| {
            v.to_str()
                .unwrap_or("")
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        })
    };
    let keep_alive = match version {
        Version::HTTP_11 => !wants("close"),
        _ => wants("keep-alive") && !wants("close"),
    };
    Parsed::Plain(Box::new(PlainHead {
        method,
        uri,
        version,
        body_len: body_len.unwrap_or(0),
        len,
        expect_continue,
        keep_alive,
        headers,
    }))
}

/// For the fuzz target: reads `bytes` as the front reads a head, and checks what it says of itself
/// (a plain head is no longer than the bytes and the limit). `Some((head length, body length))` for
/// a plain head.
#[doc(hidden)]
pub fn parse_head_for_fuzzing(bytes: &[u8], max_head: usize) -> Option<(usize, u64)> {
    match parse_head(bytes, max_head) {
        Parsed::Plain(p) => {
            assert!(
                p.len <= bytes.len() && p.len <= max_head,
                "a head longer than its bytes"
            );
            assert!(p.method == Method::GET || p.method == Method::POST);
            // What the front would write back for it is well-formed.
            let head = answer_head(
                p.version,
                StatusCode::OK,
                &p.headers,
                0,
                false,
                p.keep_alive,
            );
            assert!(head.ends_with(b"\r\n\r\n"));
            Some((p.len, p.body_len))
        }
        Parsed::Partial => {
            assert!(bytes.len() <= max_head);
            None
        }
        Parsed::Other => None,
    }
}

/// What reading a head gave.
enum Head {
    Plain(Box<PlainHead>),
    /// Hand the connection to hyper.
    Other,
    Close,
}

/// Serves a client connection's requests until one is not a held poll (then hyper gets it) or the
/// connection ends.
pub(crate) async fn serve<I>(ctx: &Ctx, mut io: I) -> Ended<I>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf: Vec<u8> = Vec::new();
    let mut phase = ctx.life.phase_watch();
    // What is held across an await here is in every connection's task for its whole life: the
    // steps that are not the wait for an answer are boxed (an allocation each, for a moment), and
    // what a request needs is kept to its parts.
    loop {
        let plain = match Box::pin(read_head(ctx, &mut io, &mut buf, &mut phase)).await {
            Head::Plain(p) => p,
            Head::Other => return Ended::HandOver(io, Bytes::from(buf)),
            Head::Close => return Ended::Closed,
        };
        let Some(mut lean) = take(ctx, plain) else {
            return Ended::HandOver(io, Bytes::from(buf));
        };
        buf.drain(..lean.len);
        let version = lean.version;
        let mut keep_alive = lean.keep_alive;
        let answer = if let Some(resp) = lean.route.take() {
            Some(respond_now(lean, resp, &mut buf, &mut keep_alive))
        } else {
            let read = Box::pin(read_body(
                &mut io,
                &mut buf,
                lean.body_len,
                lean.expect_continue,
                ctx.shared.config.body_timeout,
            ));
            match read.await {
                Err(why) => {
                    keep_alive = false;
                    Some(exchange::body_failed(&lean.exchange, why))
                }
                Ok(body) => {
                    let route = route(ctx, lean, body);
                    match await_answer(ctx, &mut io, &mut buf, &mut phase, route).await {
                        Awaited::Answer(resp) => Some(resp),
                        Awaited::Gone => None,
                    }
                }
            }
        };
        let Some(resp) = answer else {
            return Ended::Closed;
        };
        let keep_alive = keep_alive && *phase.borrow() == Phase::Running;
        let write = Box::pin(write_answer(&mut io, version, resp, keep_alive, &mut phase));
        if write.await.is_err() || !keep_alive {
            let _ = io.shutdown().await;
            return Ended::Closed;
        }
        if buf.is_empty() {
            // Give the head buffer back while the connection waits.
            buf = Vec::new();
        }
    }
}

/// A request the front serves, its exchange open.
struct Lean {
    /// `Some`: the hook's own answer ([`Route::Respond`]); `None`: [`Route::Handle`].
    route: Option<Response<Bytes>>,
    exchange: Arc<Exchange>,
    head: RequestHead,
    len: usize,
    body_len: u64,
    expect_continue: bool,
    keep_alive: bool,
    version: Version,
}

/// Asks the hook whether it holds the request and, when it does, where it goes; opens the exchange
/// when the front serves it. `None`: hyper's (nothing was recorded).
fn take(ctx: &Ctx, plain: Box<PlainHead>) -> Option<Box<Lean>> {
    let PlainHead {
        method,
        uri,
        version,
        headers,
        len,
        body_len,
        expect_continue,
        keep_alive,
    } = *plain;
    let mut head = exchange::request_head(ctx, method, &uri, version, headers).ok()?;
    if !ctx.shared.hook.holds(&head) {
        return None;
    }
    let decision = exchange::decide(ctx, &mut head);
    if !matches!(decision.route, Route::Handle | Route::Respond(_)) {
        // The hook changed its mind between `holds` and `decide` (what the request is made to
        // changed in between): the general path serves it, and asks again. The record id given
        // here is left unused.
        tracing::debug!(
            "{} {}: held, then routed otherwise; served by the general path",
            head.method,
            head.uri
        );
        return None;
    }
    let exchange = exchange::open(ctx, &head, &decision);
    let route = match decision.route {
        Route::Respond(resp) => Some(resp),
        _ => None,
    };
    Some(Box::new(Lean {
        route,
        exchange,
        head,
        len,
        body_len,
        expect_continue,
        keep_alive,
        version,
    }))
}

/// [`Route::Respond`]: the hook's answer, recorded. The body was not needed: it is skipped when it
/// is here already, else the connection closes after the answer (reading a body nobody wants could
/// take long).
fn respond_now(
    lean: Box<Lean>,
    resp: Response<Bytes>,
    buf: &mut Vec<u8>,
    keep_alive: &mut bool,
) -> Response<Bytes> {
    match usize::try_from(lean.body_len) {
        Ok(n) if n <= buf.len() => drop(buf.drain(..n)),
        _ => *keep_alive = false,
    }
    exchange::respond(&lean.exchange, resp)
}

/// [`Route::Handle`]'s future, boxed: it owns the exchange, so dropping it (the client left) ends the
/// record as hyper's path does.
fn route<'a>(
    ctx: &'a Ctx,
    lean: Box<Lean>,
    body: Bytes,
) -> Pin<Box<dyn Future<Output = Response<Bytes>> + Send + 'a>> {
    let Lean { exchange, head, .. } = *lean;
    Box::pin(async move { exchange::handle_whole(ctx, &exchange, head, body).await })
}

/// Reads until `buf` starts with a whole head, within `--header-timeout` (as hyper counts it: from
/// the moment the connection waits for a head, so a silent connection is closed too).
async fn read_head<I>(
    ctx: &Ctx,
    io: &mut I,
    buf: &mut Vec<u8>,
    phase: &mut watch::Receiver<Phase>,
) -> Head
where
    I: AsyncRead + Unpin,
{
    let config = &ctx.shared.config;
    let max_head = config.max_header_size.max(super::MIN_MAX_HEADER_SIZE);
    let deadline = tokio::time::Instant::now() + config.header_timeout;
    let mut phase_live = true;
    loop {
        if !buf.is_empty() {
            match parse_head(buf, max_head) {
                Parsed::Partial => {}
                Parsed::Plain(p) => return Head::Plain(p),
                Parsed::Other => return Head::Other,
            }
        }
        if *phase.borrow_and_update() != Phase::Running {
            // Draining: a connection between requests closes (as hyper's graceful shutdown does).
            return Head::Close;
        }
        buf.reserve(HEAD_READ);
        tokio::select! {
            read = io.read_buf(buf) => match read {
                Ok(0) | Err(_) if buf.is_empty() => return Head::Close,
                // hyper reads the end (or the error) itself and ends the connection as before.
                Ok(0) | Err(_) => return Head::Other,
                Ok(_) => {}
            },
            () = tokio::time::sleep_until(deadline) => {
                tracing::debug!(
                    "connection from {}: no whole request head within {} s; closed",
                    ctx.client,
                    config.header_timeout.as_secs()
                );
                return Head::Close;
            }
            changed = phase.changed(), if phase_live => phase_live = changed.is_ok(),
        }
    }
}

/// Reads a body of `len` bytes (at most [`MAX_REWRITE_BODY`]), each read within `limit`
/// (`--body-timeout`). The buffer grows as the bytes come, never to the length a client only claims.
async fn read_body<I>(
    io: &mut I,
    buf: &mut Vec<u8>,
    len: u64,
    expect_continue: bool,
    limit: Duration,
) -> Result<Bytes, BodyFailure>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let len = match usize::try_from(len) {
        Ok(n) if n <= MAX_REWRITE_BODY => n,
        _ => return Err(BodyFailure::TooLarge),
    };
    if buf.len() < len && expect_continue {
        io.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .await
            .map_err(|e| BodyFailure::Broken(format!("writing 100 Continue failed: {e}")))?;
    }
    while buf.len() < len {
        let want = len - buf.len();
        buf.reserve(want.min(BODY_READ));
        let read = tokio::time::timeout(limit, (&mut *io).take(want as u64).read_buf(buf)).await;
        match read {
            Err(_) => return Err(BodyFailure::Stalled(limit)),
            Ok(Ok(0)) => {
                return Err(BodyFailure::Broken(format!(
                    "the client closed the connection after {} of {len} bytes",
                    buf.len()
                )))
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(BodyFailure::Broken(e.to_string())),
        }
    }
    // A copy: the body outlives the request (in the record, with the hook), and the buffer around
    // it is a head's size.
    let body = Bytes::copy_from_slice(&buf[..len]);
    buf.drain(..len);
    if buf.is_empty() {
        *buf = Vec::new();
    }
    Ok(body)
}

enum Awaited {
    Answer(Response<Bytes>),
    /// The client left (or the proxy stopped): the route was dropped.
    Gone,
}

/// Awaits the route's answer while watching the client: a close drops the route (as hyper drops the
/// service's future), and so does the proxy stopping.
async fn await_answer<I, F>(
    ctx: &Ctx,
    io: &mut I,
    buf: &mut Vec<u8>,
    phase: &mut watch::Receiver<Phase>,
    mut route: Pin<Box<F>>,
) -> Awaited
where
    I: AsyncRead + Unpin,
    F: Future<Output = Response<Bytes>> + ?Sized,
{
    let max_keep = ctx
        .shared
        .config
        .max_header_size
        .max(super::MIN_MAX_HEADER_SIZE);
    let mut watching = true;
    let mut phase_live = true;
    let mut small = [0u8; WATCH_READ];
    loop {
        if *phase.borrow_and_update() == Phase::Stopped {
            return Awaited::Gone;
        }
        tokio::select! {
            resp = route.as_mut() => return Awaited::Answer(resp),
            read = io.read(&mut small), if watching => match read {
                Ok(0) | Err(_) => {
                    tracing::debug!("the client {} left while its answer was awaited", ctx.client);
                    return Awaited::Gone;
                }
                Ok(n) => {
                    // A pipelined request: kept for the next head, up to a head's limit.
                    buf.extend_from_slice(&small[..n]);
                    watching = buf.len() < max_keep;
                }
            },
            changed = phase.changed(), if phase_live => phase_live = changed.is_ok(),
        }
    }
}

/// Writes a whole answer as hyper would: the request's version, `content-length`, `date`, and a
/// `connection` header when the connection's fate differs from the version's default.
async fn write_answer<I>(
    io: &mut I,
    version: Version,
    resp: Response<Bytes>,
    keep_alive: bool,
    phase: &mut watch::Receiver<Phase>,
) -> std::io::Result<()>
where
    I: AsyncWrite + Unpin,
{
    let (parts, body) = resp.into_parts();
    let bodiless = parts.status.is_informational()
        || parts.status == StatusCode::NO_CONTENT
        || parts.status == StatusCode::NOT_MODIFIED;
    let body: &[u8] = if bodiless { &[] } else { &body };
    let mut out = answer_head(
        version,
        parts.status,
        &parts.headers,
        body.len(),
        bodiless,
        keep_alive,
    );
    let write = async {
        if body.len() <= JOIN_WRITE {
            out.extend_from_slice(body);
            io.write_all(&out).await?;
        } else {
            io.write_all(&out).await?;
            io.write_all(body).await?;
        }
        io.flush().await
    };
    let stopped = async {
        if phase.wait_for(|p| *p == Phase::Stopped).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        written = write => written,
        () = stopped => Err(std::io::Error::other("the proxy stopped")),
    }
}

/// The status line and headers of an answer.
pub(crate) fn answer_head(
    version: Version,
    status: StatusCode,
    headers: &HeaderMap,
    body_len: usize,
    bodiless: bool,
    keep_alive: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + headers.len() * 48);
    out.extend_from_slice(if version == Version::HTTP_10 {
        b"HTTP/1.0 "
    } else {
        b"HTTP/1.1 "
    });
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        // The front frames the body and says what becomes of the connection itself.
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING || name == CONNECTION {
            continue;
        }
        line(&mut out, name.as_str(), value.as_bytes());
    }
    if !bodiless {
        line(&mut out, "content-length", body_len.to_string().as_bytes());
    }
    match (version, keep_alive) {
        (Version::HTTP_10, true) => line(&mut out, "connection", b"keep-alive"),
        (Version::HTTP_10, false) => {}
        (_, false) => line(&mut out, "connection", b"close"),
        (_, true) => {}
    }
    if !headers.contains_key(DATE) {
        let date = http_date(now_us().div_euclid(1_000_000));
        line(
            &mut out,
            "date",
            date.as_deref().unwrap_or(EPOCH_DATE).as_bytes(),
        );
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn line(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_claimed_body_length_is_not_reserved_before_its_bytes_come() {
        let (mut client, mut server) = tokio::io::duplex(1024);
        client.write_all(b"0123456789").await.unwrap();
        let mut buf = Vec::new();
        let claimed = MAX_REWRITE_BODY as u64;
        let read = read_body(
            &mut server,
            &mut buf,
            claimed,
            false,
            Duration::from_millis(50),
        )
        .await;
        assert!(matches!(read, Err(BodyFailure::Stalled(_))));
        assert_eq!(buf, b"0123456789");
        assert!(
            buf.capacity() <= 2 * BODY_READ,
            "{} bytes reserved for 10 that came",
            buf.capacity()
        );
        drop(client);
    }

    #[tokio::test]
    async fn a_body_is_read_whole_across_reads() {
        let (mut client, mut server) = tokio::io::duplex(64);
        let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let sent = body.clone();
        let writer = tokio::spawn(async move { client.write_all(&sent).await.unwrap() });
        let mut buf = b"abc".to_vec();
        let read = read_body(
            &mut server,
            &mut buf,
            100_003,
            false,
            Duration::from_secs(30),
        )
        .await;
        writer.await.unwrap();
        let Ok(got) = read else {
            panic!("the body was not read")
        };
        assert_eq!(&got[..3], b"abc");
        assert_eq!(&got[3..], &body[..]);
        assert!(buf.is_empty());
    }

    #[test]
    fn plain_heads_are_told_from_the_rest() {
        let max = 8192;
        let Parsed::Plain(p) = parse_head(
            b"POST /cap/abc HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\nbody",
            max,
        ) else {
            panic!("a plain POST");
        };
        assert_eq!(
            (p.body_len, p.keep_alive, p.expect_continue),
            (12, true, false)
        );
        assert_eq!(p.len, 55);
        let Parsed::Plain(p) = parse_head(b"GET / HTTP/1.0\r\n\r\n", max) else {
            panic!("a plain GET");
        };
        assert!(!p.keep_alive);
        let Parsed::Plain(p) = parse_head(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", max)
        else {
            panic!("1.0 keep-alive");
        };
        assert!(p.keep_alive);
        let Parsed::Plain(p) = parse_head(
            b"POST / HTTP/1.1\r\nConnection: close\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n",
            max,
        ) else {
            panic!("close and expect");
        };
        assert!(!p.keep_alive && p.expect_continue);
        assert!(matches!(
            parse_head(b"POST / HTTP/1.1\r\nHo", max),
            Parsed::Partial
        ));
        for other in [
            &b"CONNECT a:443 HTTP/1.1\r\n\r\n"[..],
            b"PUT / HTTP/1.1\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n",
            b"POST / HTTP/1.1\r\nExpect: something\r\n\r\n",
            b"this is not HTTP at all\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        ] {
            assert!(
                matches!(parse_head(other, max), Parsed::Other),
                "{}",
                String::from_utf8_lossy(other)
            );
        }
        // A head longer than the limit, whole or not, is hyper's to refuse.
        let long = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(200));
        assert!(matches!(parse_head(long.as_bytes(), 100), Parsed::Other));
        assert!(matches!(
            parse_head(&long.as_bytes()[..150], 100),
            Parsed::Other
        ));
    }

    #[test]
    fn answer_heads_say_what_becomes_of_the_connection() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/llsd+xml"),
        );
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("999"));
        let text = |v, ka| {
            String::from_utf8(answer_head(v, StatusCode::OK, &headers, 5, false, ka)).unwrap()
        };
        let kept = text(Version::HTTP_11, true);
        assert!(kept.starts_with("HTTP/1.1 200 OK\r\ncontent-type: application/llsd+xml\r\ncontent-length: 5\r\ndate: "), "{kept}");
        assert!(
            !kept.contains("connection") && !kept.contains("999"),
            "{kept}"
        );
        assert!(text(Version::HTTP_11, false).contains("\r\nconnection: close\r\n"));
        assert!(text(Version::HTTP_10, true).starts_with("HTTP/1.0 200 OK\r\n"));
        assert!(text(Version::HTTP_10, true).contains("\r\nconnection: keep-alive\r\n"));
        assert!(!text(Version::HTTP_10, false).contains("connection"));
    }
}
