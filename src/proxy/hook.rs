//! The hook the proxy calls for every request: the one door through which caps logic (or any other
//! inspector) reaches the data path.
//!
//! The proxy knows nothing of caps. For each request it builds a [`RequestHead`], asks the [`Hook`] for a
//! [`Decision`], and obeys it: forward as asked, forward elsewhere, answer locally, buffer and rewrite a
//! (small) response body, or hand the whole exchange to the hook. The default methods do nothing, so
//! [`NoopHook`] is a plain forward proxy and the proxy can be tested without caps.
//!
//! This module owns only the contract. It must not hold proxy machinery or caps knowledge.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};

use crate::record::Kind;

/// A boxed, sendable future (what the hook returns where it has to wait).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The most the proxy buffers for a rewrite or a handled exchange (login, seed and event-queue bodies
/// are small; anything larger is forwarded untouched and the record says why).
pub const MAX_REWRITE_BODY: usize = 16 * 1024 * 1024;

/// How a request reached capscope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// An absolute-form request (`GET http://host/path`): plain HTTP forward proxying.
    Forward,
    /// A request inside a CONNECT tunnel whose TLS capscope terminated; `authority` is the CONNECT
    /// target (`host:port`), shared by the connection's requests.
    Tunnel { authority: Arc<str> },
    /// An origin-form request addressed to capscope itself (`POST /login`, `GET /cap/<token>`).
    Direct,
}

/// What the hook sees of a request before any body byte moves.
#[derive(Debug, Clone)]
pub struct RequestHead {
    /// The id of the record the proxy publishes for this exchange (events of a poll link to it).
    pub record_id: u64,
    pub client: SocketAddr,
    pub via: Via,
    pub method: Method,
    /// For [`Via::Forward`] and [`Via::Tunnel`]: the absolute upstream URL. For [`Via::Direct`]: the
    /// request target as sent (`/cap/<token>/rest?query`).
    pub uri: Uri,
    pub version: Version,
    pub headers: HeaderMap,
}

/// Where a request goes.
#[derive(Debug)]
pub enum Route {
    /// Forward to `head.uri`. For a [`Via::Direct`] request this means "not mine": the proxy answers a
    /// 404 that says capscope has no such endpoint.
    Pass,
    /// Forward to this absolute URL instead (login mode: `/login` to the grid, `/cap/<token>` to the
    /// cap's upstream URL). The body streams as usual.
    To(Uri),
    /// Answer locally; nothing goes upstream.
    Respond(Response<Bytes>),
    /// The hook runs the exchange itself through [`Hook::handle`]; the proxy buffers the request body
    /// (at most [`MAX_REWRITE_BODY`]) and records what the hook returns.
    Handle,
}

impl Route {
    /// Whether the request goes upstream and its response comes back through the proxy
    /// ([`Route::Pass`], [`Route::To`]): the only routes with a response [`Hook::rewrite_response`]
    /// can be given. [`Route::Respond`]'s answer is the hook's own and [`Route::Handle`]'s exchange
    /// the hook runs itself.
    pub fn forwards(&self) -> bool {
        matches!(self, Route::Pass | Route::To(_))
    }
}

/// The routes that forward, for [`Decision::rewritten`]: asking for a rewrite takes one of these, so a
/// rewrite cannot be asked for a route that has no forwarded response.
#[derive(Debug)]
pub enum Forward {
    /// [`Route::Pass`].
    Pass,
    /// [`Route::To`].
    To(Uri),
}

impl From<Forward> for Route {
    fn from(f: Forward) -> Route {
        match f {
            Forward::Pass => Route::Pass,
            Forward::To(uri) => Route::To(uri),
        }
    }
}

/// The hook's answer for one request.
#[derive(Debug)]
pub struct Decision {
    pub route: Route,
    /// The cap the request was made to, for the record.
    pub cap: Option<String>,
    /// The region the cap belongs to, for the record.
    pub region: Option<String>,
    /// The agent the request belongs to, for the record.
    pub agent: Option<String>,
    /// Notes for the record.
    pub notes: Vec<String>,
    /// What the record is: [`Kind::Http`] unless the hook knows better (a login).
    pub kind: Kind,
    /// Buffer the request body and the response body (each at most [`MAX_REWRITE_BODY`]) and pass them
    /// to [`Hook::rewrite_response`] before the response goes to the client. Set only by
    /// [`Decision::rewritten`], whose route forwards; read through [`Decision::rewrites_response`].
    rewrite_response: bool,
}

impl Decision {
    /// Forward as asked, record nothing extra.
    pub fn pass() -> Self {
        Self::route(Route::Pass)
    }

    /// Take `route`, record nothing extra.
    pub fn route(route: Route) -> Self {
        Self {
            route,
            kind: Kind::Http,
            cap: None,
            region: None,
            agent: None,
            notes: Vec::new(),
            rewrite_response: false,
        }
    }

    /// Forward as `to` says, and buffer the response for [`Hook::rewrite_response`] (record nothing
    /// extra). The one way to ask for a rewrite: only a forwarded response has a body to rewrite.
    pub fn rewritten(to: Forward) -> Self {
        Self {
            rewrite_response: true,
            ..Self::route(to.into())
        }
    }

    /// Whether the response is to be buffered and passed to [`Hook::rewrite_response`].
    ///
    /// A decision made by [`Decision::rewritten`] whose `route` was then changed to one that does not
    /// forward ([`Route::forwards`]) would have its rewrite ignored: that is a bug in the hook, so a
    /// debug build panics here, and a release build logs it and does not rewrite. (A [`Route::Pass`]
    /// of a [`Via::Direct`] request, which gets a 404, is not rewritten either.)
    pub fn rewrites_response(&self) -> bool {
        if !self.rewrite_response {
            return false;
        }
        if self.route.forwards() {
            return true;
        }
        debug_assert!(
            false,
            "a rewrite was asked for a route that does not forward: {:?}",
            self.route
        );
        tracing::warn!(
            "hook bug: a rewrite was asked for a route that does not forward ({:?}); not rewritten",
            self.route
        );
        false
    }
}

/// The response to a request whose body the hook saw whole.
#[derive(Debug, Default)]
pub struct Rewrite {
    /// `None`: send the original bytes. `Some`: send these instead (the proxy fixes `Content-Length`
    /// and drops `Content-Encoding`, since a rewritten body is sent uncompressed).
    pub body: Option<Bytes>,
    /// Notes for the record (what was rewritten, or why a body could not be).
    pub notes: Vec<String>,
    /// A cap name learnt only from the body (e.g. a login reply recognised by its content).
    pub cap: Option<String>,
    /// A record kind learnt only from the body (a login reply seen in HTTP proxy mode).
    pub kind: Option<Kind>,
    /// The agent learnt only from the body (a login reply names who logged in).
    pub agent: Option<String>,
    /// The region learnt only from the body (the region a login lands in).
    pub region: Option<String>,
}

/// What [`Hook::handle`] returns.
#[derive(Debug)]
pub struct Handled {
    /// What the client gets.
    pub response: Response<Bytes>,
    /// Where the hook sent the request upstream, when it did and the URL differs from what the
    /// client asked (the record shows it as the request's URL, like a [`Route::To`]).
    pub upstream_url: Option<String>,
    /// When the hook rewrote the upstream body: what upstream sent (kept in the record).
    pub original_body: Option<Bytes>,
    /// Notes for the record.
    pub notes: Vec<String>,
}

/// Why an upstream exchange failed, in words for the 502 body and the record.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    #[error("could not connect to {host}: {reason}")]
    Connect { host: String, reason: String },
    #[error("TLS with {host} failed: {reason}")]
    Tls { host: String, reason: String },
    #[error("{host} did not answer within {seconds} s")]
    Timeout { host: String, seconds: u64 },
    #[error("the exchange with {host} broke off: {reason}")]
    Protocol { host: String, reason: String },
    #[error("the body from {host} is over {limit} bytes")]
    TooLarge { host: String, limit: usize },
    #[error("the upstream URL {url} is not usable: {reason}")]
    BadUrl { url: String, reason: String },
}

/// The proxy's upstream client as the hook may use it: one whole exchange with bodies buffered.
pub trait SendUpstream: Send + Sync {
    /// Sends `request` (absolute URL) upstream and returns the whole response (body at most
    /// [`MAX_REWRITE_BODY`]). Hop-by-hop headers are removed both ways, so neither side's
    /// connection or framing headers leak into the other. The future owns everything it needs, so a hook can `tokio::spawn` it and
    /// keep it running after the client went away.
    fn send(
        &self,
        request: Request<Bytes>,
    ) -> BoxFuture<'static, Result<Response<Bytes>, UpstreamError>>;
}

/// A shareable handle on the upstream client.
pub type Upstream = Arc<dyn SendUpstream>;

/// What the proxy calls. Every method has a do-nothing default.
pub trait Hook: Send + Sync + 'static {
    /// Decides a request's route and annotations. Called once per request, before any body byte moves;
    /// must be quick (no I/O).
    fn decide(&self, head: &RequestHead) -> Decision {
        let _ = head;
        Decision::pass()
    }

    /// Whether this request would be run whole by [`Hook::handle`] and held a long time (a long poll):
    /// the proxy then serves it without a general HTTP server's per-connection buffers (a held poll
    /// costs its task, its socket and the hook's future). Asked once per request head, before
    /// [`Hook::decide`], which must then answer [`Route::Handle`] (or [`Route::Respond`], say when what
    /// the request is made to was forgotten in between); any other route is still served, by the
    /// general path. Must be quick (no I/O) and change nothing that `decide` reads.
    fn holds(&self, head: &RequestHead) -> bool {
        let _ = head;
        false
    }

    /// Rewrites (or only inspects) a buffered response body, when [`Decision::rewrites_response`].
    /// `body` is the response body with any gzip/deflate/zstd `Content-Encoding` already undone (at
    /// most [`MAX_REWRITE_BODY`] bytes once decoded; a larger body is forwarded without a rewrite), and
    /// `headers` no longer name an encoding that was undone; `request_body` is as the client sent it.
    /// Called on a blocking thread: it may parse, but must not wait on I/O.
    fn rewrite_response(
        &self,
        head: &RequestHead,
        request_body: &Bytes,
        status: StatusCode,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Rewrite {
        let _ = (head, request_body, status, headers, body);
        Rewrite::default()
    }

    /// Adjusts a forwarded response's headers before they go to the client (login mode: a redirect's
    /// `Location` pointing back at capscope). Called for every forwarded response, streamed or
    /// buffered, after hop-by-hop headers are gone and before any body byte moves; must be quick (no
    /// I/O). Returns notes for the record (the record keeps the headers as upstream sent them).
    fn rewrite_response_headers(
        &self,
        head: &RequestHead,
        status: StatusCode,
        headers: &mut HeaderMap,
    ) -> Vec<String> {
        let _ = (head, status, headers);
        Vec::new()
    }

    /// Runs a whole exchange, when the route was [`Route::Handle`]. `head.uri` is as the client sent it.
    fn handle(
        &self,
        head: RequestHead,
        body: Bytes,
        upstream: Upstream,
    ) -> BoxFuture<'static, Handled> {
        let _ = (head, body, upstream);
        Box::pin(async {
            let mut response = Response::new(Bytes::from_static(
                b"capscope: this hook handles no requests\n",
            ));
            *response.status_mut() = StatusCode::NOT_IMPLEMENTED;
            Handled {
                response,
                upstream_url: None,
                original_body: None,
                notes: Vec::new(),
            }
        })
    }
}

/// A hook that does nothing: capscope as a plain recording proxy.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopHook;

impl Hook for NoopHook {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewrite_is_asked_only_with_a_forwarding_route() {
        assert!(!Decision::pass().rewrites_response());
        assert!(Decision::rewritten(Forward::Pass).rewrites_response());
        let d = Decision::rewritten(Forward::To("http://127.0.0.1:9/x".parse().unwrap()));
        assert!(matches!(d.route, Route::To(_)) && d.rewrites_response());
        assert!(!Decision::route(Route::Handle).rewrites_response());
    }

    /// The one way left to combine a rewrite with a route that has no forwarded response (changing
    /// the route afterwards) is refused loudly in a debug build, not ignored.
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "does not forward")]
    fn a_rewrite_left_on_a_route_changed_to_handle_panics_in_debug() {
        let mut d = Decision::rewritten(Forward::Pass);
        d.route = Route::Handle;
        let _ = d.rewrites_response();
    }
}
