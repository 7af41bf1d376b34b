//! The simulated grid's HTTP side: accept loops (plain for login, TLS for regions) and one handler per
//! kind of request.
//!
//! Owns the grid's sockets and the shape of its HTTP answers (status, headers, quirks). What the grid
//! remembers lives in `state.rs`; the bodies are built in `bodies.rs`.

use std::convert::Infallible;
use std::io::Write as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use uuid::Uuid;

use super::bodies::random_uuid;

use super::bodies;
use super::lite::{self, Rpc};
use super::state::{CapEntry, CapKind, Grid, PollAnswer};
use super::websocket::{self, websocket_accept};
use super::{unix_now, Breakage, DEMO_PASSWORD, LOGIN_RETRY_PATH};
use crate::llsd::{self, Value};

/// The largest request body the grid reads (uploads included).
const MAX_REQUEST_BODY: usize = 8 * 1024 * 1024;
/// The chunk size of the streamed asset body.
const ASSET_CHUNK: usize = 64 * 1024;

/// OpenSim's label for LLSD XML caps (and the seed).
const OPENSIM_LLSD: &str = "text/html;charset=UTF-8";
const LLSD_XML: &str = "application/llsd+xml";
const LLSD_BINARY: &str = "application/llsd+binary";

type GridBody = BoxBody<Bytes, Infallible>;

/// Accepts connections until shutdown; `tls` for regions, `None` for the login server.
pub async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    grid: Arc<Grid>,
    region: Option<usize>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let grid = grid.clone();
                    let tls = tls.clone();
                    conns.spawn(async move {
                        let _ = stream.set_nodelay(true);
                        let service = service_fn(move |req| {
                            let grid = grid.clone();
                            async move { Ok::<_, Infallible>(handle(grid, region, req).await) }
                        });
                        let builder = hyper::server::conn::http1::Builder::new();
                        let result = match tls {
                            Some(acceptor) => match acceptor.accept(stream).await {
                                Ok(tls_stream) => {
                                    builder
                                        .serve_connection(TokioIo::new(tls_stream), service)
                                        .with_upgrades()
                                        .await
                                }
                                Err(e) => {
                                    tracing::debug!(%peer, "mock grid TLS handshake failed: {e}");
                                    return;
                                }
                            },
                            None => {
                                builder
                                    .serve_connection(TokioIo::new(stream), service)
                                    .with_upgrades()
                                    .await
                            }
                        };
                        if let Err(e) = result {
                            tracing::debug!(%peer, "mock grid connection ended: {e}");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!("mock grid accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.shutdown().await;
}

fn full(body: impl Into<Bytes>) -> GridBody {
    Full::new(body.into()).boxed()
}

fn reply(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<GridBody> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    if !content_type.is_empty() {
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    response
}

fn llsd(content_type: &'static str, value: &Value) -> Response<GridBody> {
    reply(StatusCode::OK, content_type, llsd::xml::to_vec(value))
}

fn not_found() -> Response<GridBody> {
    reply(
        StatusCode::NOT_FOUND,
        "text/html",
        "<html><body>404 Not Found</body></html>",
    )
}

fn bad_request(why: String) -> Response<GridBody> {
    reply(StatusCode::BAD_REQUEST, "text/plain", why)
}

/// An empty 502, the way OpenSim ends an idle poll.
fn idle_502() -> Response<GridBody> {
    reply(StatusCode::BAD_GATEWAY, "", Bytes::new())
}

async fn read_body(body: Incoming) -> Result<Bytes, String> {
    Limited::new(body, MAX_REQUEST_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| format!("could not read the request body: {e}"))
}

async fn handle(
    grid: Arc<Grid>,
    region: Option<usize>,
    req: Request<Incoming>,
) -> Response<GridBody> {
    if req.uri().path() == WEBSOCKET_PATH {
        return websocket_echo(req);
    }
    let (parts, body) = req.into_parts();
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(why) => return bad_request(why),
    };
    match region {
        None if parts.method == Method::GET && parts.uri.path() == "/get_grid_info" => {
            grid_info(&grid)
        }
        None => login(&grid, &parts, &body),
        Some(r) => {
            let path = parts.uri.path();
            match grid.cap(r, path) {
                Some(entry) => cap(&grid, entry, &parts, body).await,
                None => not_found(),
            }
        }
    }
}

/// Where every server of the grid (login and regions) answers a WebSocket that echoes each message
/// back, as the web pages the viewer's built-in browser shows may open.
pub const WEBSOCKET_PATH: &str = "/ws";

/// Answers a WebSocket handshake with 101 and echoes every data frame back unmasked until a close.
fn websocket_echo(mut req: Request<Incoming>) -> Response<GridBody> {
    let key = req
        .headers()
        .get("sec-websocket-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let upgrade = req
        .headers()
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let Some(key) = key.filter(|_| upgrade) else {
        return bad_request("a WebSocket endpoint: send an Upgrade: websocket handshake\n".into());
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut io = TokioIo::new(upgraded);
        if let Err(e) = echo_frames(&mut io).await {
            tracing::debug!("mock grid WebSocket ended: {e}");
        }
    });
    let mut response = reply(StatusCode::SWITCHING_PROTOCOLS, "", Bytes::new());
    let h = response.headers_mut();
    h.insert(
        http::header::CONNECTION,
        HeaderValue::from_static("Upgrade"),
    );
    h.insert(http::header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&websocket_accept(&key)) {
        h.insert("sec-websocket-accept", v);
    }
    response
}

/// Reads client frames (masked) and writes each data frame back unmasked; answers a close with a close.
async fn echo_frames<I>(io: &mut I) -> std::io::Result<()>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncWriteExt;
    loop {
        let (first, payload) = websocket::read_frame(io).await?;
        io.write_all(&websocket::frame(first, &payload, None))
            .await?;
        if first & 0x0f == 8 {
            io.shutdown().await?;
            return Ok(());
        }
    }
}

/// `/get_grid_info` as OpenSimulator writes it: one element per setting, no declaration, text escaped,
/// `application/xml` (opensim/opensim OpenSim/Server/Handlers/Grid/GridInfoHandlers.cs).
fn grid_info(grid: &Grid) -> Response<GridBody> {
    let login = format!("http://127.0.0.1:{}/", grid.login_port);
    let body = format!(
        "<gridinfo><platform>OpenSim</platform><login>{login}</login>\
<gridname>capscope mock grid</gridname><gridnick>mockgrid</gridnick>\
<welcome>{login}welcome</welcome><economy>{login}</economy>\
<register>{login}register?a=1&amp;b=2</register></gridinfo>"
    );
    reply(StatusCode::OK, "application/xml", body)
}

/// `login_to_simulator`, at any path: XML-RPC, or an LLSD map (LibreMetaverse's form, which OpenSim
/// answers with an LLSD map of the same members: opensim/opensim
/// OpenSim/Server/Handlers/Login/LLLoginHandlers.cs `HandleLLSDLogin`).
fn login(grid: &Grid, parts: &http::request::Parts, body: &[u8]) -> Response<GridBody> {
    if parts.method != Method::POST {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "the mock grid's login server takes XML-RPC or LLSD POSTs\n",
        );
    }
    let llsd_form = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/llsd+"));
    let params = if llsd_form {
        match llsd::from_slice(body) {
            Ok(v @ Value::Map(_)) => lite::llsd_to_rpc(&v),
            Ok(other) => {
                return bad_request(format!(
                    "an LLSD login is a map, not {}\n",
                    other.type_name()
                ))
            }
            Err(e) => return bad_request(format!("not LLSD: {e}\n")),
        }
    } else {
        let (name, params) = match lite::rpc_parse(body) {
            Ok(parsed) => parsed,
            Err(e) => return bad_request(format!("not an XML-RPC call: {e}\n")),
        };
        if name.as_deref() != Some("login_to_simulator") {
            return bad_request(format!("unknown XML-RPC method {name:?}\n"));
        }
        params
    };
    let answer = login_answer(grid, parts.uri.path(), &params);
    let mut bytes = if llsd_form {
        llsd::xml::to_vec(&lite::rpc_to_llsd(&answer))
    } else {
        lite::rpc_response(&answer).into_bytes()
    };
    if grid.take_breakage(Breakage::LoginReply) {
        bytes.truncate(bytes.len() * 2 / 3);
    }
    // Second Life labels its XML-RPC login reply as LLSD XML; OpenSim its LLSD one too.
    reply(StatusCode::OK, LLSD_XML, bytes)
}

/// The login reply's members: a redirect, an MFA challenge, a refusal or the way in.
fn login_answer(grid: &Grid, path: &str, params: &Rpc) -> Rpc {
    let text = |k: &str| params.member(k).and_then(Rpc::as_str).unwrap_or("");
    if grid.config.login_redirect && path != LOGIN_RETRY_PATH {
        let next = format!("http://127.0.0.1:{}{LOGIN_RETRY_PATH}", grid.login_port);
        return bodies::login_redirect(&next);
    }
    let (first, last) = match params.member("username").and_then(Rpc::as_str) {
        Some(user) => {
            let mut it = user.splitn(2, ['.', ' ']);
            (
                it.next().unwrap_or("").to_owned(),
                it.next().unwrap_or("Resident").to_owned(),
            )
        }
        None => (text("first").to_owned(), text("last").to_owned()),
    };
    let expected = format!("$1${:x}", md5::compute(DEMO_PASSWORD));
    if text("passwd") != expected || first.is_empty() {
        tracing::debug!(%first, %last, "mock grid: login refused (wrong password)");
        return bodies::login_failed();
    }
    if let Some(token) = &grid.config.mfa_token {
        if text("token") != token {
            tracing::debug!(%first, %last, "mock grid: MFA challenge");
            return bodies::mfa_challenge();
        }
    }
    let idx = grid.login(&first, &last);
    let seed = grid.seed_url(idx, 0);
    let region = &grid.regions[0];
    let answer = grid.with_session(idx, |s| {
        bodies::login_ok(&bodies::LoginFacts {
            first: &s.first,
            last: &s.last,
            agent_id: s.agent_id,
            session_id: s.session_id,
            secure_session_id: s.secure_session_id,
            circuit_code: s.circuit_code,
            sim_port: region.port,
            region_x: region.grid_x * 256,
            region_y: region.grid_y * 256,
            seed_capability: &seed,
            http_port: grid.login_port,
            now: unix_now(),
        })
    });
    tracing::debug!(%first, %last, "mock grid: login accepted");
    answer.unwrap_or_else(bodies::login_failed)
}

/// One cap request.
async fn cap(
    grid: &Arc<Grid>,
    entry: CapEntry,
    parts: &http::request::Parts,
    body: Bytes,
) -> Response<GridBody> {
    let Some(agent_id) = grid.with_session(entry.session, |s| s.agent_id) else {
        return not_found();
    };
    let query = parts.uri.query().unwrap_or("");
    match entry.kind {
        CapKind::Seed => seed(grid, entry, &body),
        CapKind::EventQueueGet => event_queue(grid, entry, &body).await,
        CapKind::FetchInventoryDescendents2 => match folder_ids(&body) {
            Ok(ids) => llsd(LLSD_XML, &bodies::inventory_descendents(agent_id, &ids)),
            Err(why) => bad_request(why),
        },
        CapKind::FetchLibDescendents2 => match folder_ids(&body) {
            Ok(ids) => gzip_llsd(&bodies::inventory_descendents(agent_id, &ids)),
            Err(why) => bad_request(why),
        },
        CapKind::GetDisplayNames => {
            let ids: Vec<Uuid> = query
                .split('&')
                .filter_map(|kv| kv.strip_prefix("ids="))
                .filter_map(|v| v.parse().ok())
                .collect();
            llsd(LLSD_XML, &bodies::display_names(&ids, unix_now()))
        }
        CapKind::SimulatorFeatures => llsd(
            OPENSIM_LLSD,
            &bodies::simulator_features(&grid.regions[entry.region].name),
        ),
        CapKind::GetObjectCost => {
            let ids = match llsd::xml::from_slice(&body) {
                Ok(v) => v
                    .get("object_ids")
                    .and_then(Value::as_array)
                    .unwrap_or(&[])
                    .iter()
                    .filter_map(|v| match v {
                        Value::Uuid(u) => Some(*u),
                        other => other.as_str().and_then(|s| s.parse().ok()),
                    })
                    .collect::<Vec<_>>(),
                Err(e) => return bad_request(format!("GetObjectCost wants LLSD XML: {e}\n")),
            };
            reply(
                StatusCode::OK,
                LLSD_BINARY,
                lite::to_binary(&bodies::object_cost(&ids)),
            )
        }
        // Asked to redirect: a 302 elsewhere on this host under the same cap, as an asset service
        // that moved a texture would answer.
        CapKind::ViewerAsset if query.split('&').any(|kv| kv == "redirect=1") => {
            let kept: Vec<&str> = query.split('&').filter(|kv| *kv != "redirect=1").collect();
            let cap_root = parts.uri.path().trim_end_matches('/');
            let location = format!("{cap_root}/moved?{}", kept.join("&"));
            let mut response = reply(StatusCode::FOUND, "text/plain", "moved\n");
            if let Ok(v) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(http::header::LOCATION, v);
            }
            response
        }
        CapKind::ViewerAsset => asset(grid.config.asset_size, query),
        CapKind::NewFileAgentInventory => {
            let uploader = grid.uploader(entry.session, entry.region);
            llsd(OPENSIM_LLSD, &bodies::upload_offer(&uploader))
        }
        CapKind::Uploader => {
            // A one-time cap: gone once used.
            grid.revoke(entry.region, parts.uri.path());
            let asset = random_uuid();
            tracing::debug!(bytes = body.len(), %asset, "mock grid: upload received");
            llsd(
                OPENSIM_LLSD,
                &bodies::upload_complete(
                    asset,
                    bodies::derived_uuid("uploaded-item", body.len() as u64),
                ),
            )
        }
    }
}

fn seed(grid: &Grid, entry: CapEntry, body: &[u8]) -> Response<GridBody> {
    let asked: Vec<String> = match llsd::xml::from_slice(body) {
        Ok(Value::Array(names)) => names
            .iter()
            .filter_map(|n| n.as_str().map(str::to_owned))
            .collect(),
        Ok(other) => {
            return bad_request(format!(
                "a seed request is an LLSD array of cap names, not {}\n",
                other.type_name()
            ))
        }
        Err(e) => return bad_request(format!("a seed request is LLSD XML: {e}\n")),
    };
    let granted = grid.grant(entry.session, entry.region, &asked);
    grid.greet(entry.session, entry.region);
    let value = Value::Map(
        granted
            .into_iter()
            .map(|(name, url)| (name, Value::String(url)))
            .collect(),
    );
    let mut bytes = llsd::xml::to_vec(&value);
    if grid.take_breakage(Breakage::SeedReply) {
        bytes.truncate(bytes.len() / 2);
    }
    reply(StatusCode::OK, OPENSIM_LLSD, bytes)
}

async fn event_queue(grid: &Arc<Grid>, entry: CapEntry, body: &[u8]) -> Response<GridBody> {
    let Some(queue) = grid.queue(entry.session, entry.region) else {
        return not_found();
    };
    if let Ok(v) = llsd::xml::from_slice(body) {
        if matches!(v.get("done"), Some(Value::Boolean(true))) {
            return idle_502();
        }
    }
    let first = queue.count_poll();
    grid.note_change();
    if first && grid.config.stale_first_poll {
        return idle_502();
    }
    if grid.take_breakage(Breakage::PollGone) {
        return not_found();
    }
    if grid.take_breakage(Breakage::PollClosed) {
        // hyper closes the connection when the body ends short of the announced length.
        let mut response = reply(StatusCode::OK, LLSD_XML, "<?xml version=\"1.0\" ?><llsd>");
        response
            .headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from_static("4096"));
        return response;
    }
    if grid.take_breakage(Breakage::EventBody) {
        let id = queue.take_id();
        let broken = format!(
            "<?xml version=\"1.0\" ?><llsd><map><key>id</key><integer>{id}</integer><key>events</key><array><map><key>message</key><string>ChatterBoxInv"
        );
        return reply(StatusCode::OK, LLSD_XML, broken);
    }
    let answer = tokio::select! {
        answer = queue.poll(grid.config.eq_hold) => answer,
        () = grid.polls_released() => PollAnswer::Idle,
    };
    match answer {
        PollAnswer::Events(id, events) => {
            grid.delivered(entry.region, id, &events);
            llsd(LLSD_XML, &bodies::event_queue_reply(id, &events))
        }
        PollAnswer::Idle => idle_502(),
    }
}

/// The folder ids of a FetchInventoryDescendents2 request (`{folders: [{folder_id, ...}]}`).
fn folder_ids(body: &[u8]) -> Result<Vec<Uuid>, String> {
    let v = llsd::xml::from_slice(body)
        .map_err(|e| format!("inventory fetches are LLSD XML: {e}\n"))?;
    let folders = v
        .get("folders")
        .and_then(Value::as_array)
        .ok_or("an inventory fetch needs a `folders` array\n")?;
    Ok(folders
        .iter()
        .filter_map(|f| match f.get("folder_id") {
            Some(Value::Uuid(u)) => Some(*u),
            Some(other) => other.as_str().and_then(|s| s.parse().ok()),
            None => None,
        })
        .collect())
}

fn gzip_llsd(value: &Value) -> Response<GridBody> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let compressed = encoder
        .write_all(&llsd::xml::to_vec(value))
        .and_then(|()| encoder.finish());
    match compressed {
        Ok(bytes) => {
            let mut response = reply(StatusCode::OK, LLSD_XML, bytes);
            response
                .headers_mut()
                .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            response
        }
        Err(e) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            format!("could not compress: {e}\n"),
        ),
    }
}

/// A large body made of a repeating pattern, streamed in chunks.
struct PatternBody {
    sent: usize,
    size: usize,
    seed: u8,
}

impl PatternBody {
    fn byte(&self, at: usize) -> u8 {
        (at as u8).wrapping_mul(31).wrapping_add(self.seed)
    }
}

impl Body for PatternBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.sent >= self.size {
            return Poll::Ready(None);
        }
        let n = ASSET_CHUNK.min(self.size - self.sent);
        let chunk: Vec<u8> = (self.sent..self.sent + n).map(|at| self.byte(at)).collect();
        self.sent += n;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(chunk)))))
    }

    fn is_end_stream(&self) -> bool {
        self.sent >= self.size
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact((self.size - self.sent) as u64)
    }
}

/// What the asset body's byte at `at` is, for a given texture id (tests check the body with it).
pub fn asset_byte(texture_id: &str, at: usize) -> u8 {
    PatternBody {
        sent: 0,
        size: 0,
        seed: asset_seed(texture_id),
    }
    .byte(at)
}

fn asset_seed(texture_id: &str) -> u8 {
    md5::compute(texture_id).0[0]
}

fn asset(size: usize, query: &str) -> Response<GridBody> {
    let Some(id) = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("texture_id="))
        .filter(|id| id.parse::<Uuid>().is_ok())
    else {
        return bad_request("ViewerAsset needs ?texture_id=<uuid>\n".into());
    };
    let body = PatternBody {
        sent: 0,
        size,
        seed: asset_seed(id),
    };
    let mut response = Response::new(body.boxed());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("image/x-j2c"));
    // Second Life labels some bodies with this "encoding" although they are not encoded at all.
    headers.insert(
        CONTENT_ENCODING,
        HeaderValue::from_static("binary/octet-stream"),
    );
    headers.insert(CONTENT_LENGTH, HeaderValue::from(size));
    response
}
