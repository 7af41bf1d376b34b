//! [`CapsHook`]: the caps layer as the proxy sees it, a [`Hook`].
//!
//! Two modes share one port. In HTTP proxy mode (requests arrive [`Via::Forward`] or [`Via::Tunnel`])
//! nothing is rewritten: login replies, seed responses, upload answers and events are read to learn cap
//! names, and every request is named by longest-prefix match. In login mode (requests arrive
//! [`Via::Direct`]) `/login` goes to the grid and `/cap/<token>` to the cap the token stands for, and
//! every cap URL the viewer is given is rewritten to a `/cap/<token>` URL.
//!
//! EventQueueGet is always run here ([`Route::Handle`]) so no event is lost: the upstream poll runs in
//! its own task, its answer is kept per queue keyed by the `ack` of the viewer poll that started it,
//! and a viewer poll that repeats that `ack` (because it never got the answer) is given it at once, or
//! joins the upstream poll still running. Idle answers (502/504) pass through when upstream gives
//! them; capscope never answers a poll early itself.
//!
//! Owns the caps layer's routing decisions (which cap a request is made to, and the [`Decision`]),
//! the calls to the pure rewriters (login, seed, upload answers, redirects) and the `get_grid_info`
//! exchange. The event-queue poll orchestration is `hook/poll.rs`'s, which this module only hands
//! held polls to. Must not do I/O in [`Hook::decide`], hold a lock across an `await`, or parse
//! bodies itself (the pure modules do).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};

use super::body::decode_content;
use super::event_queue::{QueueState, EVENT_QUEUE_CAP};
use super::grid_info::{self, GRID_INFO_PATH};
use super::login::{self, LOGIN_CAP};
use super::login_llsd;
use super::registry::{self, normalize_url, MatchedCap, Registry, SEED_CAP};
use super::seed::{self, is_upload_cap};
use super::{Action, CapsError};
use crate::llsd;
use crate::proxy::hook::{
    Decision, Forward, Handled, Hook, RequestHead, Rewrite, Route, Upstream, Via,
};
use crate::record::{Bus, Kind};

/// Second Life's main grid login URL.
pub const AGNI_LOGIN: &str = "https://login.agni.lindenlab.com/cgi-bin/login.cgi";
/// Second Life's beta grid login URL.
pub const ADITI_LOGIN: &str = "https://login.aditi.lindenlab.com/cgi-bin/login.cgi";

/// The path of capscope's login endpoint in login mode.
pub const LOGIN_PATH: &str = "/login";

/// The cap name `get_grid_info` requests are recorded under.
pub const GRID_INFO_CAP: &str = "get_grid_info";

/// Which way the viewer reaches capscope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// The viewer's HTTP proxy points at capscope; nothing is rewritten.
    Proxy,
    /// The viewer's login URI is capscope's `/login`, forwarded to `grid`; cap URLs are rewritten.
    /// HTTP proxy requests are still served (learning only).
    Login { grid: Uri },
}

impl Mode {
    /// Login mode for a `--grid` argument: `agni`, `aditi`, or a login URL.
    pub fn login(grid: &str) -> Result<Mode, CapsError> {
        let url = match grid.to_ascii_lowercase().as_str() {
            "agni" => AGNI_LOGIN.to_owned(),
            "aditi" => ADITI_LOGIN.to_owned(),
            _ => grid.to_owned(),
        };
        let uri: Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| CapsError::BadGrid {
                grid: grid.to_owned(),
                reason: e.to_string(),
            })?;
        match (uri.scheme_str(), uri.authority()) {
            (Some("http") | Some("https"), Some(_)) => Ok(Mode::Login { grid: uri }),
            _ => Err(CapsError::BadGrid {
                grid: grid.to_owned(),
                reason: "expected agni, aditi or an http(s) login URL".to_owned(),
            }),
        }
    }
}

/// Counters the UI can show.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapsStats {
    /// Polls upstream answered with 502/504 or that timed out: "no events", not errors.
    pub idle_polls: u64,
    /// Events seen.
    pub events: u64,
    /// Answers given to a viewer poll that repeated an `ack` because it missed them.
    pub replayed: u64,
    /// Viewer polls that joined an upstream poll started by an earlier viewer poll.
    pub joined: u64,
}

#[derive(Debug, Default)]
struct Counters {
    idle_polls: AtomicU64,
    events: AtomicU64,
    replayed: AtomicU64,
    joined: AtomicU64,
}

/// The caps layer's hook. Cheap to clone; clones share one registry.
#[derive(Debug, Clone)]
pub struct CapsHook {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    mode: Mode,
    registry: Mutex<Registry>,
    queues: Mutex<HashMap<String, QueueState>>,
    bus: Arc<Bus>,
    counters: Counters,
}

/// What a request is, as far as caps go.
#[derive(Debug)]
enum Target {
    /// capscope's `/login` (login mode) or an XML-RPC-looking POST seen as a proxy.
    Login {
        to: Option<Uri>,
    },
    /// `/login` while running in proxy mode.
    LoginUnavailable,
    /// `/get_grid_info` or `/login/get_grid_info` in login mode: the grid's own answer with `login`
    /// pointing at capscope, or one made up.
    GridInfo {
        grid: Uri,
    },
    /// A known cap; `url` is where the request goes upstream.
    Cap {
        found: MatchedCap,
        url: String,
    },
    /// A POST to an unknown URL shaped like a seed (capscope started after the login): its bodies
    /// decide.
    MaybeSeed,
    /// `/cap/<token>` with a token this session never issued.
    UnknownToken(String),
    /// `/cap/<token>` with a token of a cap the registry forgot (a used uploader, a region long
    /// left): answered 410 saying why.
    ForgottenToken(String, registry::Forgotten),
    NotMine,
}

impl CapsHook {
    /// A hook in `mode` whose cap URLs start with `proxy_base` (`http://127.0.0.1:PORT`), publishing
    /// event records on `bus`.
    pub fn new(mode: Mode, proxy_base: String, bus: Arc<Bus>) -> Self {
        Self {
            inner: Arc::new(Inner {
                mode,
                registry: Mutex::new(Registry::new(proxy_base)),
                queues: Mutex::new(HashMap::new()),
                bus,
                counters: Counters::default(),
            }),
        }
    }

    /// The mode the hook runs in.
    pub fn mode(&self) -> &Mode {
        &self.inner.mode
    }

    /// The counters (idle polls, events, replays).
    pub fn stats(&self) -> CapsStats {
        let c = &self.inner.counters;
        CapsStats {
            idle_polls: c.idle_polls.load(Ordering::Relaxed),
            events: c.events.load(Ordering::Relaxed),
            replayed: c.replayed.load(Ordering::Relaxed),
            joined: c.joined.load(Ordering::Relaxed),
        }
    }

    /// How many idle polls were seen.
    pub fn idle_polls(&self) -> u64 {
        self.inner.counters.idle_polls.load(Ordering::Relaxed)
    }

    /// A copy of the registry (for the UI, or a report).
    pub fn registry(&self) -> Registry {
        self.inner.registry().clone()
    }

    /// Runs `f` on the registry under its lock (keep it short: no I/O).
    pub fn with_registry<R>(&self, f: impl FnOnce(&mut Registry) -> R) -> R {
        f(&mut self.inner.registry())
    }
}

impl Inner {
    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn queues(&self) -> MutexGuard<'_, HashMap<String, QueueState>> {
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn classify(&self, head: &RequestHead) -> Target {
        self.classify_as(head, Use::Counts)
    }

    /// [`Inner::classify`]; with [`Use::Peek`] it marks nothing as used.
    fn classify_as(&self, head: &RequestHead, use_: Use) -> Target {
        match head.via {
            Via::Direct => self.classify_direct(head, use_),
            Via::Forward | Via::Tunnel { .. } => {
                let found = {
                    let mut reg = self.registry();
                    let found = reg.lookup_uri(&head.uri);
                    if let (Some((f, _)), Use::Counts) = (&found, use_) {
                        reg.touch(f.cap);
                    }
                    found
                };
                if let Some((found, url)) = found {
                    return Target::Cap { found, url };
                }
                if self.looks_like_login(head) {
                    Target::Login { to: None }
                } else if head.method == Method::POST && looks_like_seed_path(head.uri.path()) {
                    Target::MaybeSeed
                } else {
                    Target::NotMine
                }
            }
        }
    }

    fn classify_direct(&self, head: &RequestHead, use_: Use) -> Target {
        let path = head.uri.path();
        let grid_info = path.strip_prefix(LOGIN_PATH).unwrap_or(path);
        if grid_info == GRID_INFO_PATH || grid_info == "/get_grid_info/" {
            return match &self.mode {
                Mode::Proxy => Target::LoginUnavailable,
                Mode::Login { grid } => Target::GridInfo { grid: grid.clone() },
            };
        }
        if path == LOGIN_PATH || path.starts_with("/login/") {
            return match &self.mode {
                Mode::Proxy => Target::LoginUnavailable,
                Mode::Login { grid } => Target::Login {
                    to: Some(with_query(grid, head.uri.query())),
                },
            };
        }
        let pq = head
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or(path);
        let Some((token, rest, query)) = registry::split_cap_path(pq) else {
            return Target::NotMine;
        };
        let mut reg = self.registry();
        match reg.lookup_token(token) {
            Some(found) => {
                if use_ == Use::Counts {
                    reg.touch(found.cap);
                }
                let url = registry::join_upstream(&found.upstream, rest, query);
                Target::Cap { found, url }
            }
            None => match reg.forgotten_token(token) {
                Some(gone) => Target::ForgottenToken(token.to_owned(), gone.clone()),
                None => Target::UnknownToken(token.to_owned()),
            },
        }
    }

    /// A POST that may be an XML-RPC login: `text/xml`, a `login.cgi` path, or the grid's URL. The body
    /// decides later (a reply that is not XML-RPC is left alone).
    fn looks_like_login(&self, head: &RequestHead) -> bool {
        if head.method != Method::POST {
            return false;
        }
        let content_type = head
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|ct| ct.trim_start().to_ascii_lowercase())
            .unwrap_or_default();
        let xml = content_type.starts_with("text/xml");
        // An LLSD login (LibreMetaverse) goes to the grid's login URI: OpenSim's is the port's root,
        // Second Life's a login.cgi. Other LLSD POSTs are caps and stream untouched.
        let path = head.uri.path().to_ascii_lowercase();
        let llsd_login = content_type.starts_with("application/llsd+")
            && (path == "/" || path.contains("login"));
        let grid = match &self.mode {
            Mode::Login { grid } => {
                normalize_url(&grid.to_string()) == normalize_url(&head.uri.to_string())
            }
            Mode::Proxy => false,
        };
        xml || llsd_login || grid || head.uri.path().ends_with("login.cgi")
    }

    fn action(&self, head: &RequestHead) -> Action {
        match (&head.via, &self.mode) {
            (Via::Direct, Mode::Login { .. }) => Action::Rewrite,
            _ => Action::Learn,
        }
    }

    fn grid_name(&self, head: &RequestHead) -> String {
        let host = match (&head.via, &self.mode) {
            (Via::Direct, Mode::Login { grid }) => grid.host().unwrap_or("?").to_owned(),
            _ => head.uri.host().unwrap_or("?").to_owned(),
        };
        match host.as_str() {
            "login.agni.lindenlab.com" => format!("agni ({host})"),
            "login.aditi.lindenlab.com" => format!("aditi ({host})"),
            _ => host,
        }
    }
}

impl Inner {
    /// Reads a login reply, XML-RPC or LLSD (decided by the bytes), learns what it tells and, in login
    /// mode, rewrites its URLs. `direct`: the request was surely a login (capscope's `/login`, a
    /// redirect); otherwise it was only guessed to be one and a reply that is not a login is left
    /// alone without a word.
    fn rewrite_login(
        &self,
        head: &RequestHead,
        direct: bool,
        request_body: &Bytes,
        status: StatusCode,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Rewrite {
        let action = self.action(head);
        let mut rw = Rewrite {
            cap: direct.then(|| LOGIN_CAP.to_owned()),
            ..Rewrite::default()
        };
        if !status.is_success() {
            if direct {
                rw.notes
                    .push(format!("the grid answered the login with HTTP {status}"));
            }
            return rw;
        }
        let decoded = match decode_content(headers, body, "login reply") {
            Ok(d) => d,
            Err(e) => {
                rw.notes
                    .push(format!("login reply forwarded unchanged: {e}"));
                return rw;
            }
        };
        let grid = self.grid_name(head);
        let result = if login::is_xml_rpc(&decoded.bytes) {
            // XML-RPC by its bytes: a login even when it does not parse further.
            rw.cap = Some(LOGIN_CAP.to_owned());
            rw.kind = Some(Kind::Login);
            let request = login::parse_login_request(request_body).ok();
            login::rewrite_login_reply(&decoded.bytes, &mut self.registry(), action)
                .map(|r| Some((request, r, "XML-RPC")))
        } else {
            let request = login_llsd::parse_login_request(request_body).ok();
            match login_llsd::rewrite_login_reply(&decoded.bytes, &mut self.registry(), action) {
                Ok(r) => Ok(r.map(|r| (request, r, "LLSD"))),
                // Only guessed to be a login, and not LLSD either: not ours.
                Err(_) if !direct => Ok(None),
                Err(e) => Err(e),
            }
        };
        match result {
            Ok(Some((request, (out, reply), form))) => {
                rw.cap = Some(LOGIN_CAP.to_owned());
                rw.kind = Some(Kind::Login);
                rw.notes = login::login_notes(request.as_ref(), &grid, &reply);
                rw.region = reply.region.and_then(|r| self.registry().region_label(r));
                rw.agent = reply.agent().or_else(|| {
                    request
                        .as_ref()
                        .filter(|q| q.first.is_some() || q.username.is_some())
                        .map(login::LoginRequest::who)
                });
                rw.notes.push(format!("{form} login"));
                rw.notes.extend(out.notes);
                rw.body = out.body;
            }
            Ok(None) => {
                if direct {
                    rw.notes.push(
                        "login reply forwarded unchanged: it is neither XML-RPC nor an LLSD login"
                            .to_owned(),
                    );
                }
            }
            Err(e) => rw
                .notes
                .push(format!("login reply forwarded unchanged: {e}")),
        }
        rw
    }
}

/// Whether a classification counts as a use of the cap (a request going to it), or is only a look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    Counts,
    Peek,
}

/// The caps whose requests are held long and run whole by the hook (the event queue's long polls):
/// [`Hook::holds`] and [`Hook::decide`]'s [`Route::Handle`] both ask this, so they agree.
fn is_held(found: &MatchedCap) -> bool {
    found.name == EVENT_QUEUE_CAP
}

impl Hook for CapsHook {
    fn holds(&self, head: &RequestHead) -> bool {
        matches!(self.inner.classify_as(head, Use::Peek), Target::Cap { found, .. } if is_held(&found))
    }

    fn decide(&self, head: &RequestHead) -> Decision {
        let inner = &self.inner;
        match inner.classify(head) {
            // A grid manager asking a grid about itself through the proxy: named, not rewritten.
            Target::NotMine if head.uri.path().ends_with(GRID_INFO_PATH) => {
                let mut d = Decision::pass();
                d.cap = Some(GRID_INFO_CAP.to_owned());
                d
            }
            Target::NotMine => Decision::pass(),
            Target::MaybeSeed => Decision::rewritten(Forward::Pass),
            Target::Login { to: Some(grid) } => {
                let mut d = Decision::rewritten(Forward::To(grid.clone()));
                d.notes.push(format!("login forwarded to {grid}"));
                d.cap = Some(LOGIN_CAP.to_owned());
                d.kind = Kind::Login;
                d
            }
            Target::Login { to: None } => Decision::rewritten(Forward::Pass),
            Target::LoginUnavailable => {
                let mut d = Decision::route(Route::Respond(text_response(
                    StatusCode::NOT_FOUND,
                    "capscope runs in HTTP proxy mode and has no login endpoint; start it with \
                     --grid agni|aditi|URL to use login mode\n",
                )));
                d.cap = Some(LOGIN_CAP.to_owned());
                d.notes
                    .push("login mode is off: /login answered 404".to_owned());
                d
            }
            Target::GridInfo { .. } => {
                let mut d = Decision::route(Route::Handle);
                d.cap = Some(GRID_INFO_CAP.to_owned());
                d
            }
            Target::UnknownToken(token) => {
                let mut d = Decision::route(Route::Respond(text_response(
                    StatusCode::NOT_FOUND,
                    &format!(
                        "capscope: no cap with token {token} in this session (a URL from an \
                         earlier capscope run? log in again through capscope)\n"
                    ),
                )));
                d.notes.push(format!("unknown cap token {token}"));
                d
            }
            Target::ForgottenToken(token, gone) => {
                let mut d = Decision::route(Route::Respond(text_response(
                    StatusCode::GONE,
                    &format!(
                        "capscope: cap {} (token {token}) is no longer held: {}. capscope forgot it \
                         at {}; the grid forgets such caps too (docs/caps.md, \"How long caps are \
                         held\")\n",
                        gone.name,
                        gone.why,
                        crate::util::time::iso8601_millis(gone.at_us),
                    ),
                )));
                d.notes.push(format!(
                    "cap forgotten by capscope ({}): answered 410",
                    gone.why
                ));
                d.cap = Some(gone.name);
                d.region = gone.region_label;
                d.agent = gone.agent;
                d
            }
            Target::Cap { found, url } => {
                let forward = if is_held(&found) {
                    Err(Route::Handle)
                } else if head.via == Via::Direct {
                    match url.parse::<Uri>() {
                        Ok(uri) => Ok(Forward::To(uri)),
                        Err(e) => Err(Route::Respond(text_response(
                            StatusCode::BAD_GATEWAY,
                            &format!(
                                "capscope: the upstream URL of cap {} is not usable: {e}\n",
                                found.name
                            ),
                        ))),
                    }
                } else {
                    Ok(Forward::Pass)
                };
                // Uploaders themselves are not read: their requests carry the (large) upload.
                let rewrite = found.name == SEED_CAP
                    || found.name == LOGIN_CAP
                    || (is_upload_cap(&found.name) && found.kind != super::CapKind::Temporary);
                let mut d = match forward {
                    Ok(to) if rewrite => Decision::rewritten(to),
                    Ok(to) => Decision::route(to.into()),
                    Err(route) => Decision::route(route),
                };
                if found.name == LOGIN_CAP {
                    d.kind = Kind::Login;
                    d.notes
                        .push("login retry at the next_url of an earlier reply".to_owned());
                }
                if found.kind == super::CapKind::Temporary {
                    d.notes.push("temporary cap (one-time URL)".to_owned());
                }
                if found.region_left {
                    d.notes.push("cap of a region the avatar left".to_owned());
                }
                d.cap = Some(found.name);
                d.region = found.region_label;
                d.agent = found.agent;
                d
            }
        }
    }

    fn rewrite_response_headers(
        &self,
        head: &RequestHead,
        status: StatusCode,
        headers: &mut HeaderMap,
    ) -> Vec<String> {
        let inner = &self.inner;
        if status.is_success() {
            return inner.retire_one_time(head, status);
        }
        if !status.is_redirection() || inner.action(head) != Action::Rewrite {
            return Vec::new();
        }
        let Some(location) = headers
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
        else {
            return Vec::new();
        };
        let (from, name, region) = match inner.classify(head) {
            Target::Login { to: Some(grid) } => (grid.to_string(), LOGIN_CAP.to_owned(), None),
            Target::Cap { found, url } => (url, found.name, found.region),
            _ => return Vec::new(),
        };
        let target = resolve_location(&from, &location);
        let proxy = {
            let mut reg = inner.registry();
            if name == LOGIN_CAP {
                // A login that moves is still a login, wherever it goes.
                Some(reg.grant_proxied(LOGIN_CAP, &target, None, super::CapKind::Normal))
            } else {
                reg.proxy_for_redirect(&target, &name, region)
            }
        };
        let Some(proxy) = proxy else {
            return vec![format!(
                "redirect to {target} left as sent (not a host of this grid)"
            )];
        };
        match HeaderValue::from_str(&proxy) {
            Ok(v) => {
                headers.insert(http::header::LOCATION, v);
                vec![format!(
                    "rewrote redirect Location {location} -> {proxy} (the follow-up comes back \
                     through capscope)"
                )]
            }
            Err(e) => vec![format!("redirect Location not rewritten: {e}")],
        }
    }

    fn rewrite_response(
        &self,
        head: &RequestHead,
        request_body: &Bytes,
        status: StatusCode,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Rewrite {
        let inner = &self.inner;
        let action = inner.action(head);
        match inner.classify(head) {
            Target::Login { to } => {
                inner.rewrite_login(head, to.is_some(), request_body, status, headers, body)
            }
            // A login redirect's `next_url` (login mode): the retry is a login.
            Target::Cap { found, .. } if found.name == LOGIN_CAP => {
                inner.rewrite_login(head, true, request_body, status, headers, body)
            }
            Target::Cap { found, .. } if status.is_success() => {
                let seed = found.name == SEED_CAP;
                let what = if seed {
                    "seed response"
                } else {
                    "upload cap response"
                };
                let decoded = match decode_content(headers, body, what) {
                    Ok(d) => d,
                    Err(e) => {
                        return Rewrite {
                            notes: vec![format!("{what} forwarded unchanged: {e}")],
                            ..Rewrite::default()
                        }
                    }
                };
                let mut reg = inner.registry();
                let result = if seed {
                    let region = reg
                        .region_of_seed(&found.upstream)
                        .or(found.region)
                        .unwrap_or_else(|| reg.add_region(&found.upstream, None, None));
                    seed::rewrite_seed(&decoded.bytes, region, &mut reg, action).map(|mut out| {
                        let asked = seed::seed_request_names(request_body).len();
                        if asked > 0 {
                            out.notes.push(format!("the viewer asked for {asked} caps"));
                        }
                        out
                    })
                } else {
                    seed::rewrite_uploader(
                        &decoded.bytes,
                        &found.name,
                        found.region,
                        &mut reg,
                        action,
                    )
                };
                drop(reg);
                match result {
                    Ok(out) => Rewrite {
                        body: out.body,
                        notes: out.notes,
                        ..Rewrite::default()
                    },
                    Err(e) => Rewrite {
                        notes: vec![format!("{what} forwarded unchanged: {e}")],
                        ..Rewrite::default()
                    },
                }
            }
            Target::MaybeSeed if status.is_success() => {
                inner.learn_unknown_seed(head, request_body, headers, body)
            }
            _ => Rewrite::default(),
        }
    }

    fn handle(
        &self,
        head: RequestHead,
        body: Bytes,
        upstream: Upstream,
    ) -> crate::proxy::hook::BoxFuture<'static, Handled> {
        let inner = Arc::clone(&self.inner);
        let (found, url) = match inner.classify(&head) {
            Target::Cap { found, url } => (found, url),
            Target::GridInfo { grid } => {
                let login = format!("{}{LOGIN_PATH}", inner.registry().proxy_base());
                return Box::pin(fetch_grid_info(grid, login, head, upstream));
            }
            _ => {
                return Box::pin(async {
                    handled_now(
                        StatusCode::NOT_FOUND,
                        "capscope: this request is not an event-queue poll it knows\n",
                    )
                })
            }
        };
        poll::handle_poll(inner, head, body, upstream, found, url)
    }
}

impl Inner {
    /// A TEMPORARY cap (an uploader, a redirect target) the grid answered with a 2xx was used:
    /// the registry forgets it, as the grid does (OpenSim removes an uploader at its first POST).
    /// A failed attempt keeps it, for the viewer's retry.
    fn retire_one_time(&self, head: &RequestHead, status: StatusCode) -> Vec<String> {
        let mut reg = self.registry();
        if !reg.holds_temporary() {
            return Vec::new();
        }
        let found = match head.via {
            Via::Direct => head
                .uri
                .path_and_query()
                .and_then(|pq| registry::split_cap_path(pq.as_str()))
                .and_then(|(token, _, _)| reg.lookup_token(token)),
            Via::Forward | Via::Tunnel { .. } => reg.lookup_uri(&head.uri).map(|(f, _)| f),
        };
        let again = match head.via {
            Via::Direct => " (a request to its capscope URL again gets 410)",
            Via::Forward | Via::Tunnel { .. } => "",
        };
        match found {
            Some(f) if reg.retire_used(f.cap, status) => vec![format!(
                "temporary cap {} used: capscope forgets it{again}",
                f.name
            )],
            _ => Vec::new(),
        }
    }

    /// A seed capscope was not told about (it started after the login): recognised when the request is
    /// a list of cap names and the answer a map of URLs; learnt, never rewritten.
    fn learn_unknown_seed(
        &self,
        head: &RequestHead,
        request_body: &Bytes,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Rewrite {
        if seed::seed_request_names(request_body).is_empty() {
            return Rewrite::default();
        }
        let Ok(decoded) = decode_content(headers, body, "seed response") else {
            return Rewrite::default();
        };
        let Ok(value) = llsd::from_slice(&decoded.bytes) else {
            return Rewrite::default();
        };
        let is_seed_answer = value.as_map().is_some_and(|m| {
            !m.is_empty()
                && m.iter()
                    .all(|(_, v)| v.as_str().is_some_and(seed::is_http_url))
        });
        if !is_seed_answer {
            return Rewrite::default();
        }
        let url = head.uri.to_string();
        let mut reg = self.registry();
        let region = reg.add_region(&url, None, None);
        let mut notes =
            vec!["seed recognised by its content (capscope started after the login)".to_owned()];
        match seed::rewrite_seed(&decoded.bytes, region, &mut reg, Action::Learn) {
            Ok(out) => notes.extend(out.notes),
            Err(e) => notes.push(format!("seed response not read: {e}")),
        }
        Rewrite {
            body: None,
            notes,
            cap: Some(SEED_CAP.to_owned()),
            ..Rewrite::default()
        }
    }
}

/// Answers `get_grid_info`: Second Life serves none, so capscope makes one up; any other grid is
/// asked at `/get_grid_info` on its login host (where OpenSimulator serves it, whatever the login
/// path), and its answer is passed on with `login` pointing at capscope. If the grid has none (or
/// cannot be reached), a made-up one still lets the viewer add the grid and log in through capscope.
async fn fetch_grid_info(
    grid: Uri,
    login: String,
    head: RequestHead,
    upstream: Upstream,
) -> Handled {
    let host = grid.host().unwrap_or("the grid").to_owned();
    let mut fetched = None;
    let info = if grid_info::second_life_grid(&host).is_some() {
        grid_info::made_up(&host, &login, "Second Life serves no grid info")
    } else {
        let url = format!(
            "{}://{}{GRID_INFO_PATH}",
            grid.scheme_str().unwrap_or("http"),
            grid.authority().map(|a| a.as_str()).unwrap_or(&host)
        );
        match url.parse::<Uri>() {
            Err(e) => grid_info::made_up(&host, &login, &format!("{url} is not usable: {e}")),
            Ok(target) => {
                let mut request = upstream_request(&head, target, Bytes::new());
                *request.method_mut() = Method::GET;
                request.headers_mut().remove(CONTENT_LENGTH);
                // The answer is rewritten: it must come whole, never a 304 (Firestorm sends
                // If-Modified-Since from its saved grid list).
                request
                    .headers_mut()
                    .remove(http::header::IF_MODIFIED_SINCE);
                fetched = Some(url.clone());
                match upstream.send(request).await {
                    Err(e) => grid_info::made_up(&host, &login, &format!("{url}: {e}")),
                    Ok(r) if !r.status().is_success() => {
                        grid_info::made_up(&host, &login, &format!("{url} answered {}", r.status()))
                    }
                    Ok(r) => {
                        let (parts, body) = r.into_parts();
                        let rewritten = decode_content(&parts.headers, body, "grid info")
                            .and_then(|d| grid_info::rewrite(&d.bytes, &login));
                        match rewritten {
                            Ok(mut info) => {
                                info.notes.push(format!("from {url}"));
                                info
                            }
                            Err(e) => grid_info::made_up(&host, &login, &format!("{url}: {e}")),
                        }
                    }
                }
            }
        }
    };
    let mut response = Response::new(Bytes::from(info.body));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/xml; charset=utf-8"),
    );
    let len = response.body().len();
    set_length(response.headers_mut(), len);
    Handled {
        response,
        upstream_url: fetched,
        original_body: None,
        notes: info.notes,
    }
}

/// A `Location` made absolute against the URL the request went to (absolute, scheme-relative,
/// absolute-path and relative-path forms).
fn resolve_location(from: &str, location: &str) -> String {
    let lower = location.get(..8).unwrap_or(location).to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return location.to_owned();
    }
    let (scheme, rest) = from.split_once("://").unwrap_or(("http", from));
    if let Some(tail) = location.strip_prefix("//") {
        return format!("{scheme}://{tail}");
    }
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    if location.starts_with('/') {
        return format!("{scheme}://{authority}{location}");
    }
    let path = rest[authority_end..].split('?').next().unwrap_or("");
    let dir = match path.rfind('/') {
        Some(i) => &path[..=i],
        None => "/",
    };
    format!("{scheme}://{authority}{dir}{location}")
}

/// Whether a path looks like a seed capability: OpenSim's `/CAPS/<uuid>0000/`, Second Life's
/// `/cap/<uuid>`.
fn looks_like_seed_path(path: &str) -> bool {
    let uuid_like =
        |s: &str| s.len() >= 32 && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    if let Some(rest) = path.strip_prefix("/CAPS/") {
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        return rest.ends_with("0000") && uuid_like(rest);
    }
    path.strip_prefix("/cap/").is_some_and(uuid_like)
}

/// The request sent upstream for a poll: the viewer's method, headers (less hop-by-hop ones, `Host`
/// and `Accept-Encoding`, so the answer comes back readable) and body.
fn upstream_request(head: &RequestHead, target: Uri, body: Bytes) -> Request<Bytes> {
    let mut headers = head.headers.clone();
    headers.remove(HOST);
    headers.remove(http::header::ACCEPT_ENCODING);
    if let Some(authority) = target.authority() {
        if let Ok(v) = HeaderValue::from_str(authority.as_str()) {
            headers.insert(HOST, v);
        }
    }
    set_length(&mut headers, body.len());
    let mut request = Request::new(body);
    *request.method_mut() = head.method.clone();
    *request.uri_mut() = target;
    *request.headers_mut() = headers;
    request
}

fn set_length(headers: &mut HeaderMap, len: usize) {
    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
}

fn with_query(uri: &Uri, query: Option<&str>) -> Uri {
    let Some(q) = query.filter(|q| !q.is_empty()) else {
        return uri.clone();
    };
    let base = uri.to_string();
    let sep = if uri.query().is_some() { '&' } else { '?' };
    format!("{base}{sep}{q}")
        .parse()
        .unwrap_or_else(|_| uri.clone())
}

fn text_response(status: StatusCode, text: &str) -> Response<Bytes> {
    let mut r = Response::new(Bytes::from(text.to_owned()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    set_length(r.headers_mut(), text.len());
    r
}

fn handled_now(status: StatusCode, text: &str) -> Handled {
    Handled {
        response: text_response(status, text),
        upstream_url: None,
        original_body: None,
        notes: vec![text.trim().to_owned()],
    }
}

mod poll;

#[cfg(test)]
mod tests;
