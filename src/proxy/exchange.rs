//! One request through the proxy: where it was meant to go, what the hook decides, forwarding it
//! upstream (bodies streaming, or buffered where the hook asked to rewrite), and its record.
//!
//! This module owns the per-request path. It must not accept connections or terminate TLS (that is
//! `server` and `connect`), and knows nothing of caps beyond the [`Hook`](super::hook::Hook).

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, HOST};
use http::uri::{Authority, Scheme};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;

use super::connect;
use super::decode::{decode_limited, Coding, Stop};
use super::hook::{
    Decision, Hook, RequestHead, Rewrite, Route, UpstreamError, Via, MAX_REWRITE_BODY,
};
use super::server::{Life, Shared, Slot};
use super::tap::{Exchange, ProxyBody, Side};
use super::upgrade;
use super::upstream::{collect_limited, Collect};
use super::wire::{
    content_encoding, record_headers, split_authority, strip_hop_by_hop, text_response,
    version_name,
};
use crate::record::{self, Record};

/// Where a connection's requests come from.
#[derive(Debug, Clone)]
pub(crate) enum Origin {
    /// The proxy's listener: absolute-form (forward), CONNECT, or origin-form (to capscope itself).
    Listener,
    /// Inside a CONNECT tunnel to `authority`; `tls` when capscope terminated TLS. The authority is
    /// shared: each request's [`Via::Tunnel`] names it without a copy.
    Tunnel { authority: Arc<str>, tls: bool },
}

/// What each request on a connection needs: cheap to clone.
#[derive(Clone)]
pub(crate) struct Ctx(Arc<CtxInner>);

pub(crate) struct CtxInner {
    pub(crate) shared: Arc<Shared>,
    pub(crate) life: Life,
    pub(crate) client: SocketAddr,
    /// `client` as records write it, formatted once per connection (inline: no allocation to copy).
    client_text: record::HeaderText,
    origin: Origin,
    /// In a tunnel: the scheme and the parsed authority every request's URL is built from, so that a
    /// request costs no URL text and no parse (`None` when the authority does not parse: each request
    /// then gets the error).
    tunnel_base: Option<(Scheme, Authority)>,
    /// The connection's place under the connection limit (the listener's connections).
    pub(crate) slot: Option<Slot>,
}

impl Ctx {
    pub(crate) fn new(
        shared: Arc<Shared>,
        life: Life,
        client: SocketAddr,
        origin: Origin,
        slot: Option<Slot>,
    ) -> Self {
        let tunnel_base = match &origin {
            Origin::Listener => None,
            Origin::Tunnel { authority, tls } => Authority::try_from(&**authority)
                .ok()
                .map(|a| (if *tls { Scheme::HTTPS } else { Scheme::HTTP }, a)),
        };
        Ctx(Arc::new(CtxInner {
            shared,
            life,
            client,
            client_text: compact_str::ToCompactString::to_compact_string(&client),
            origin,
            tunnel_base,
            slot,
        }))
    }
}

impl std::ops::Deref for Ctx {
    type Target = CtxInner;
    fn deref(&self) -> &CtxInner {
        &self.0
    }
}

/// The service for one request (hyper's path; the front serves held polls itself, through the same
/// [`request_head`], [`decide`], [`open`] and route functions).
pub(crate) async fn serve(
    ctx: Ctx,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    if req.method() == Method::CONNECT {
        return Ok(match ctx.origin {
            Origin::Listener => connect::accept(&ctx, req),
            Origin::Tunnel { .. } => local(text_response(
                StatusCode::METHOD_NOT_ALLOWED,
                "capscope: CONNECT inside a tunnel is not supported\n".into(),
            )),
        });
    }
    let mut head = match request_head(
        &ctx,
        req.method().clone(),
        req.uri(),
        req.version(),
        req.headers().clone(),
    ) {
        Ok(h) => h,
        Err(reason) => return Ok(local(bad_target(&ctx, reason))),
    };
    let decision = decide(&ctx, &mut head);
    let exchange = open(&ctx, &head, &decision);
    let rewrite = decision.rewrites_response();
    let response = match decision.route {
        Route::Respond(resp) => local(respond(&exchange, resp)),
        Route::Pass if head.via == Via::Direct => local(no_such_endpoint(&exchange, &head)),
        Route::Handle => Box::pin(handle(&ctx, exchange, head, req.into_body())).await,
        Route::Pass => {
            let uri = head.uri.clone();
            Box::pin(forward(&ctx, exchange, head, req, uri, false, rewrite)).await
        }
        Route::To(uri) => Box::pin(forward(&ctx, exchange, head, req, uri, true, rewrite)).await,
    };
    Ok(response)
}

/// What the hook is shown of a request before any decision: how it came and where it was meant to go.
/// Its `record_id` is 0 until [`decide`] gives it one. `Err`: the target cannot be served (the words
/// for [`bad_target`]).
pub(crate) fn request_head(
    ctx: &Ctx,
    method: Method,
    uri: &Uri,
    version: Version,
    headers: http::HeaderMap,
) -> Result<RequestHead, String> {
    let (via, uri) = target(ctx, uri)?;
    Ok(RequestHead {
        record_id: 0,
        client: ctx.client,
        via,
        method,
        uri,
        version,
        headers,
    })
}

/// The answer to a request whose target cannot be served, with its error record.
pub(crate) fn bad_target(ctx: &Ctx, reason: String) -> Response<Bytes> {
    ctx.shared.error_record(ctx.client, reason.clone());
    text_response(StatusCode::BAD_REQUEST, format!("capscope: {reason}\n"))
}

/// Gives the request its record id and asks the hook where it goes.
pub(crate) fn decide(ctx: &Ctx, head: &mut RequestHead) -> Decision {
    head.record_id = ctx.shared.bus.next_id();
    ctx.shared.hook.decide(head)
}

/// Opens the exchange: its record is published, open, with what the hook decided.
pub(crate) fn open(ctx: &Ctx, head: &RequestHead, decision: &Decision) -> Arc<Exchange> {
    let exchange = Exchange::open(
        ctx.shared.bus.clone(),
        ctx.shared.config.max_body,
        open_record(ctx, head, decision),
    );
    exchange.set_encoding(Side::Request, content_encoding(&head.headers));
    exchange
}

/// [`Route::Respond`]: the hook's answer, recorded.
pub(crate) fn respond(exchange: &Exchange, resp: Response<Bytes>) -> Response<Bytes> {
    answer_locally(exchange, resp, &["answered by the hook"])
}

/// A request to capscope itself that no endpoint takes: a 404 that says what capscope is.
fn no_such_endpoint(exchange: &Exchange, head: &RequestHead) -> Response<Bytes> {
    let path = head.uri.path().to_owned();
    answer_locally(
        exchange,
        text_response(
            StatusCode::NOT_FOUND,
            format!(
                "capscope: no such endpoint {path}. capscope is an HTTP(S) proxy: point the \
                 client's proxy setting at this address.\n"
            ),
        ),
        &["no such capscope endpoint"],
    )
}

/// Where a request was meant to go: how it came, and its absolute URL (or, for requests to capscope
/// itself, the target as sent).
fn target(ctx: &Ctx, uri: &Uri) -> Result<(Via, Uri), String> {
    match &ctx.origin {
        Origin::Listener => match (uri.scheme_str(), uri.authority()) {
            (Some("http" | "https"), Some(authority)) => {
                if is_self(authority.as_str(), ctx.shared.local_addr) {
                    let path = uri
                        .path_and_query()
                        .map_or("/", |p| p.as_str())
                        .parse()
                        .map_err(|e| format!("bad request target: {e}"))?;
                    Ok((Via::Direct, path))
                } else {
                    Ok((Via::Forward, uri.clone()))
                }
            }
            (Some(other), _) => Err(format!("cannot proxy {other}: URLs (only http and https)")),
            (None, _) => Ok((Via::Direct, uri.clone())),
        },
        Origin::Tunnel { authority, tls } => {
            let uri = tunnel_target(ctx.tunnel_base.as_ref(), authority, *tls, uri)?;
            Ok((
                Via::Tunnel {
                    authority: authority.clone(),
                },
                uri,
            ))
        }
    }
}

/// The absolute URL of a request inside a tunnel to `authority`: built from the parts already parsed
/// (`base`, the request's path) when it can be, else written out and parsed, which gives the error.
fn tunnel_target(
    base: Option<&(Scheme, Authority)>,
    authority: &str,
    tls: bool,
    target: &Uri,
) -> Result<Uri, String> {
    let pq = target.path_and_query();
    if let (Some((scheme, parsed)), Some(pq)) = (base, pq) {
        if pq.as_str().starts_with('/') {
            let mut parts = http::uri::Parts::default();
            parts.scheme = Some(scheme.clone());
            parts.authority = Some(parsed.clone());
            parts.path_and_query = Some(pq.clone());
            if let Ok(uri) = Uri::from_parts(parts) {
                return Ok(uri);
            }
        }
    }
    let scheme = if tls { "https" } else { "http" };
    let path = pq.map_or("/", |p| p.as_str());
    format!("{scheme}://{authority}{path}")
        .parse()
        .map_err(|e| format!("bad request target in the tunnel to {authority}: {e}"))
}

/// Whether an absolute-form request names the proxy itself (a client whose login URI is capscope and
/// whose proxy is capscope too): serving it is right, forwarding it would loop.
fn is_self(authority: &str, local: SocketAddr) -> bool {
    let (host, port) = split_authority(authority, 80);
    if port != local.port() {
        return false;
    }
    if host.eq_ignore_ascii_case("localhost") {
        return local.ip().is_loopback();
    }
    match host.parse::<IpAddr>() {
        Ok(ip) => ip == local.ip() || (ip.is_loopback() && local.ip().is_loopback()),
        Err(_) => false,
    }
}

fn open_record(ctx: &Ctx, head: &RequestHead, decision: &Decision) -> Record {
    let mut r = Record::new(head.record_id, decision.kind);
    r.client = Some(ctx.client_text.clone());
    // Routed elsewhere: the record's URL is where the request went, and it keeps what was asked.
    let (url, client_url) = match &decision.route {
        Route::To(u) => (uri_text(u), Some(uri_text(&head.uri))),
        _ => (uri_text(&head.uri), None),
    };
    r.request = Some(record::Request {
        method: head.method.as_str().into(),
        url,
        client_url,
        version: version_name(head.version).into(),
        headers: record_headers(&head.headers),
        body: record::Body::default(),
    });
    r.cap = decision.cap.clone();
    r.region = decision.region.clone();
    r.agent = decision.agent.clone();
    r.notes = decision.notes.clone();
    r
}

/// The URI as text (its `Display`), written into a string sized for it at once: `to_string` grew
/// it from empty, a few reallocations per record.
fn uri_text(uri: &Uri) -> String {
    use std::fmt::Write as _;
    let mut text = String::with_capacity(uri_text_room(uri));
    // Writing into a String cannot fail.
    let _ = write!(text, "{uri}");
    text
}

/// At least the length of the URI's `Display` text.
fn uri_text_room(uri: &Uri) -> usize {
    uri.scheme_str().map_or(0, |s| s.len() + "://".len())
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path_and_query().map_or(1, |p| p.as_str().len() + 1)
}

fn local(resp: Response<Bytes>) -> Response<ProxyBody> {
    let (mut parts, body) = resp.into_parts();
    // hyper sizes a whole body itself; a stale length from a hook would break the connection.
    parts.headers.remove(CONTENT_LENGTH);
    Response::from_parts(parts, ProxyBody::full(body))
}

pub(super) fn record_response(
    exchange: &Exchange,
    status: StatusCode,
    version: Version,
    headers: &http::HeaderMap,
) {
    exchange.update(|r| {
        r.timings.response_headers_us = Some(r.elapsed_us());
        r.response = Some(record::Response {
            status: status.as_u16(),
            version: version_name(version).into(),
            headers: record_headers(headers),
            body: record::Body::default(),
        });
    });
}

/// Answers without going upstream, and finishes the record.
fn answer_locally(exchange: &Exchange, resp: Response<Bytes>, notes: &[&str]) -> Response<Bytes> {
    record_response(exchange, resp.status(), resp.version(), resp.headers());
    exchange.set_body(Side::Response, resp.body().clone(), None);
    exchange.update(|r| r.notes.extend(notes.iter().map(|n| (*n).to_owned())));
    exchange.finish(None);
    resp
}

/// Fails the exchange with `status` and a reason the client can read.
fn fail(exchange: &Exchange, status: StatusCode, error: String) -> Response<ProxyBody> {
    local(fail_whole(exchange, status, error))
}

/// [`fail`], as a whole response.
fn fail_whole(exchange: &Exchange, status: StatusCode, error: String) -> Response<Bytes> {
    exchange.finish(Some(error.clone()));
    text_response(status, format!("capscope: {error}\n"))
}

pub(super) fn upstream_failure(exchange: &Exchange, e: &UpstreamError) -> Response<ProxyBody> {
    let status = match e {
        UpstreamError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        UpstreamError::BadUrl { .. } => StatusCode::BAD_REQUEST,
        _ => StatusCode::BAD_GATEWAY,
    };
    fail(exchange, status, format!("upstream {e}"))
}

/// The client stopped sending its request body: it gets a 408, the upstream (if the request had
/// started) an aborted body, and the record says why.
fn stalled(exchange: &Exchange, limit: std::time::Duration) -> Response<ProxyBody> {
    local(stalled_whole(exchange, limit))
}

fn stalled_whole(exchange: &Exchange, limit: std::time::Duration) -> Response<Bytes> {
    fail_whole(
        exchange,
        StatusCode::REQUEST_TIMEOUT,
        format!(
            "the client sent no request body data for {} s (--body-timeout); the exchange was \
             given up",
            limit.as_secs()
        ),
    )
}

/// Why a request body for [`Route::Handle`] could not be read whole.
pub(crate) enum BodyFailure {
    /// No data for this long (`--body-timeout`).
    Stalled(std::time::Duration),
    /// Over [`MAX_REWRITE_BODY`].
    TooLarge,
    /// It broke off, for this reason.
    Broken(String),
}

/// The answer (and the failed record) when a handled request's body could not be read whole.
pub(crate) fn body_failed(exchange: &Exchange, why: BodyFailure) -> Response<Bytes> {
    match why {
        BodyFailure::Stalled(limit) => stalled_whole(exchange, limit),
        BodyFailure::TooLarge => fail_whole(
            exchange,
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is over {MAX_REWRITE_BODY} bytes, too large to handle"),
        ),
        BodyFailure::Broken(reason) => fail_whole(
            exchange,
            StatusCode::BAD_REQUEST,
            format!("the request body broke off: {reason}"),
        ),
    }
}

/// [`Route::Handle`] on hyper's path: buffer the request body, then [`handle_whole`].
async fn handle(
    ctx: &Ctx,
    exchange: Arc<Exchange>,
    head: RequestHead,
    body: Incoming,
) -> Response<ProxyBody> {
    let collected =
        collect_limited(body, MAX_REWRITE_BODY, Some(ctx.shared.config.body_timeout)).await;
    let resp = match collected {
        Ok(body) => handle_whole(ctx, &exchange, head, body).await,
        Err(Collect::Stalled(limit)) => body_failed(&exchange, BodyFailure::Stalled(limit)),
        Err(Collect::TooLarge { .. }) => body_failed(&exchange, BodyFailure::TooLarge),
        Err(Collect::Failed(e)) => body_failed(&exchange, BodyFailure::Broken(e)),
    };
    local(resp)
}

/// The hook runs the exchange with the request body whole; what comes back is recorded.
pub(crate) async fn handle_whole(
    ctx: &Ctx,
    exchange: &Exchange,
    head: RequestHead,
    body: Bytes,
) -> Response<Bytes> {
    exchange.set_body(Side::Request, body.clone(), None);
    let handled = ctx
        .shared
        .hook
        .handle(head, body, ctx.shared.upstream_dyn.clone())
        .await;
    let resp = handled.response;
    record_response(exchange, resp.status(), resp.version(), resp.headers());
    exchange.set_encoding(Side::Response, content_encoding(resp.headers()));
    exchange.set_body(Side::Response, resp.body().clone(), handled.original_body);
    exchange.update(|r| {
        r.notes.extend(handled.notes);
        if let (Some(url), Some(req)) = (handled.upstream_url, r.request.as_mut()) {
            req.client_url = Some(std::mem::replace(&mut req.url, url));
        }
    });
    exchange.finish(None);
    resp
}

/// Forwards a request upstream and streams the response back (or buffers it for the hook).
async fn forward(
    ctx: &Ctx,
    exchange: Arc<Exchange>,
    head: RequestHead,
    req: Request<Incoming>,
    uri: Uri,
    routed: bool,
    mut rewrite: bool,
) -> Response<ProxyBody> {
    if let Some(protocol) = upgrade::requested(req.version(), req.headers()) {
        return upgrade::relay(ctx, exchange, head, req, uri, routed, protocol).await;
    }
    let (mut parts, body) = req.into_parts();
    let client_version = parts.version;
    strip_hop_by_hop(&mut parts.headers);
    if routed {
        // The new target's host, not the one the client addressed.
        parts.headers.remove(HOST);
    }
    parts.uri = uri;
    parts.version = Version::HTTP_11;

    let body_timeout = ctx.shared.config.body_timeout;
    let mut request_body = Bytes::new();
    let up_body = if rewrite {
        match collect_limited(body, MAX_REWRITE_BODY, Some(body_timeout)).await {
            Err(Collect::Stalled(limit)) => return stalled(&exchange, limit),
            Ok(b) => {
                exchange.set_body(Side::Request, b.clone(), None);
                request_body = b.clone();
                ProxyBody::full(b)
            }
            Err(Collect::TooLarge { prefix, rest }) => {
                rewrite = false;
                exchange.update(|r| {
                    r.notes.push(format!(
                        "request body over {MAX_REWRITE_BODY} bytes: forwarded untouched, response \
                         not rewritten"
                    ))
                });
                ProxyBody::stream(Some(prefix), rest)
                    .idle_timeout(body_timeout)
                    .tapped(exchange.clone(), Side::Request, false)
            }
            Err(Collect::Failed(e)) => {
                return fail(
                    &exchange,
                    StatusCode::BAD_REQUEST,
                    format!("the request body broke off: {e}"),
                )
            }
        }
    } else {
        ProxyBody::stream(None, body)
            .idle_timeout(body_timeout)
            .tapped(exchange.clone(), Side::Request, false)
    };

    exchange.update(|r| r.timings.request_sent_us = Some(r.elapsed_us()));
    let resp = match ctx
        .shared
        .upstream
        .forward(Request::from_parts(parts, up_body))
        .await
    {
        Ok(r) => r,
        Err(_) if exchange.request_stalled() => return stalled(&exchange, body_timeout),
        Err(e) => return upstream_failure(&exchange, &e),
    };
    let (mut parts, body) = resp.into_parts();
    record_response(&exchange, parts.status, parts.version, &parts.headers);
    exchange.set_encoding(Side::Response, content_encoding(&parts.headers));
    strip_hop_by_hop(&mut parts.headers);
    parts.version = client_version;
    let header_notes =
        ctx.shared
            .hook
            .rewrite_response_headers(&head, parts.status, &mut parts.headers);
    if !header_notes.is_empty() {
        exchange.update(|r| r.notes.extend(header_notes));
    }

    if !rewrite {
        // An upstream silent inside the body for `--body-timeout` breaks it off (the timer runs only
        // while the client's side waits for data, so a slow client never trips it).
        return Response::from_parts(
            parts,
            ProxyBody::stream(None, body)
                .idle_timeout(body_timeout)
                .tapped(exchange, Side::Response, true),
        );
    }
    let wire = match collect_limited(body, MAX_REWRITE_BODY, None).await {
        Ok(b) => b,
        Err(Collect::TooLarge { prefix, rest }) => {
            exchange.update(|r| {
                r.notes.push(format!(
                    "response body over {MAX_REWRITE_BODY} bytes: forwarded untouched, not rewritten"
                ))
            });
            return Response::from_parts(
                parts,
                ProxyBody::stream(Some(prefix), rest)
                    .idle_timeout(body_timeout)
                    .tapped(exchange, Side::Response, true),
            );
        }
        Err(e) => {
            let reason = match e {
                Collect::Failed(e) => e,
                _ => "it stalled".to_owned(),
            };
            return upstream_failure(
                &exchange,
                &UpstreamError::Protocol {
                    host: head
                        .uri
                        .authority()
                        .map(|a| a.to_string())
                        .unwrap_or_default(),
                    reason: format!("the response body broke off: {reason}"),
                },
            );
        }
    };
    // Decoding and the hook's parsing are CPU work on up to MAX_REWRITE_BODY bytes: a blocking
    // thread does them, so no request-handling worker waits for them.
    let hook = ctx.shared.hook.clone();
    let status = parts.status;
    let headers = parts.headers.clone();
    let input = wire.clone();
    let (rw, readable, mut notes) = match tokio::task::spawn_blocking(move || {
        rewrite_blocking(&*hook, &head, &request_body, status, headers, input)
    })
    .await
    {
        Ok(done) => done,
        Err(e) => (
            Rewrite::default(),
            None,
            vec![format!(
                "the rewrite failed ({e}): response forwarded unchanged"
            )],
        ),
    };
    notes.extend(rw.notes);
    let sent = match rw.body {
        Some(new) => {
            parts.headers.remove(CONTENT_LENGTH);
            parts.headers.remove(CONTENT_ENCODING);
            exchange.set_encoding(Side::Response, None);
            exchange.set_body(Side::Response, new.clone(), readable);
            new
        }
        None => {
            exchange.set_body(Side::Response, wire.clone(), None);
            wire
        }
    };
    exchange.update(|r| {
        r.notes.extend(notes);
        if rw.cap.is_some() {
            r.cap = rw.cap;
        }
        if let Some(kind) = rw.kind {
            r.kind = kind;
        }
        if rw.agent.is_some() {
            r.agent = rw.agent;
        }
        if rw.region.is_some() {
            r.region = rw.region;
        }
    });
    exchange.finish(None);
    Response::from_parts(parts, ProxyBody::full(sent))
}

/// Undoes the response's `Content-Encoding` (at most [`MAX_REWRITE_BODY`] bytes out) and asks the hook
/// for a rewrite; runs on a blocking thread. The hook sees the body decoded and headers without the
/// `Content-Encoding` it no longer has. Returns the rewrite, the decoded body it read (what the sender
/// sent, for the record), and notes.
fn rewrite_blocking(
    hook: &dyn Hook,
    head: &RequestHead,
    request_body: &Bytes,
    status: StatusCode,
    mut headers: http::HeaderMap,
    wire: Bytes,
) -> (Rewrite, Option<Bytes>, Vec<String>) {
    let mut notes = Vec::new();
    let encoding = content_encoding(&headers);
    let readable = match encoding.as_deref().and_then(Coding::parse) {
        None => wire,
        Some(coding) => {
            let decoded = decode_limited(&wire, coding, MAX_REWRITE_BODY);
            match decoded.stop {
                Stop::End => {
                    headers.remove(CONTENT_ENCODING);
                    decoded.bytes
                }
                Stop::Limit => {
                    notes.push(format!(
                        "response body over {MAX_REWRITE_BODY} bytes once its Content-Encoding {} \
                         is undone: forwarded unchanged, not rewritten",
                        coding.name()
                    ));
                    return (Rewrite::default(), None, notes);
                }
                Stop::Broken(reason) => {
                    notes.push(format!(
                        "could not undo Content-Encoding {} for the rewrite ({reason}): forwarded \
                         unchanged",
                        coding.name()
                    ));
                    return (Rewrite::default(), None, notes);
                }
            }
        }
    };
    let rw = hook.rewrite_response(head, request_body, status, &headers, readable.clone());
    (rw, Some(readable), notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_text_is_the_uris_display() {
        for text in [
            "https://sim.example:12043/cap/abc?x=1&y=%20",
            "http://127.0.0.1:9000",
            "http://h/",
            "/only/a/path?q",
            "*",
            "h:1",
            "https://user:pw@host:8443/p",
        ] {
            let uri: Uri = text.parse().unwrap();
            let written = uri_text(&uri);
            assert_eq!(written, uri.to_string());
            assert!(
                uri_text_room(&uri) >= written.len(),
                "{text}: room for it at once"
            );
        }
    }

    #[test]
    fn tunnel_urls_from_parsed_parts_equal_the_written_out_ones() {
        let targets = [
            "/",
            "/a/b?c=d&e",
            "/cap/x%20y",
            "https://other.example/p?q",
            "*",
        ];
        for (authority, tls) in [
            ("sim.example:12043", true),
            ("Sim.Example", false),
            ("[::1]:443", true),
            ("127.0.0.1:9000", false),
        ] {
            let base = Authority::try_from(authority)
                .map(|a| (if tls { Scheme::HTTPS } else { Scheme::HTTP }, a))
                .unwrap();
            for target in targets {
                let target: Uri = target.parse().unwrap();
                let fast = tunnel_target(Some(&base), authority, tls, &target);
                let written = tunnel_target(None, authority, tls, &target);
                assert_eq!(fast, written, "{authority} {target}");
                if let Ok(uri) = fast {
                    assert_eq!(uri.to_string(), written.unwrap().to_string());
                }
            }
        }
        // An authority that does not parse fails every request the same way as before.
        let target: Uri = "/x".parse().unwrap();
        let err = tunnel_target(None, "bad host:1", true, &target).unwrap_err();
        assert!(
            err.contains("bad request target in the tunnel to bad host:1"),
            "{err}"
        );
    }
}
