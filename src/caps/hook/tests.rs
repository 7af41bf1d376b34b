//! CapsHook: routing decisions, rewriting through the hook, and the event-queue guarantee, with a fake
//! upstream whose answers the test releases (no sockets, no sleeps).

use std::collections::VecDeque;
use std::future::pending;
use std::net::SocketAddr;

use http::Version;
use tokio::sync::{oneshot, Notify};

use super::*;
use crate::caps::fields::handle_from_metres;
use crate::llsd::Format;
use crate::llsd::{Map, Value};
use crate::proxy::hook::UpstreamError;
use crate::proxy::hook::{BoxFuture, SendUpstream};
use crate::record::Received;
use http::header::CONTENT_ENCODING;

const BASE: &str = "http://127.0.0.1:8080";
const GRID: &str = "http://127.0.0.1:9000/";
const SEED: &str = "http://127.0.0.1:9000/CAPS/11111111-2222-3333-4444-5555555555550000/";
const EQ: &str = "http://127.0.0.1:9000/CE/aaaaaaaa-0000-0000-0000-000000000001";
const SEED_B: &str = "http://127.0.0.1:9001/CAPS/bbbbbbbb-2222-3333-4444-5555555555550000/";

type Answer = Result<Response<Bytes>, UpstreamError>;

/// An upstream whose answers the test hands over one by one.
#[derive(Default)]
struct FakeUpstream {
    answers: Mutex<VecDeque<oneshot::Receiver<Answer>>>,
    requests: Mutex<Vec<(String, HeaderMap, Bytes)>>,
    sent: Notify,
}

impl FakeUpstream {
    fn new(n: usize) -> (Arc<Self>, VecDeque<oneshot::Sender<Answer>>) {
        let fake = Arc::new(Self::default());
        let mut senders = VecDeque::new();
        for _ in 0..n {
            let (tx, rx) = oneshot::channel();
            senders.push_back(tx);
            fake.answers.lock().unwrap().push_back(rx);
        }
        (fake, senders)
    }

    fn sent_count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

impl SendUpstream for FakeUpstream {
    fn send(&self, request: Request<Bytes>) -> BoxFuture<'static, Answer> {
        self.requests.lock().unwrap().push((
            request.uri().to_string(),
            request.headers().clone(),
            request.body().clone(),
        ));
        let rx = self.answers.lock().unwrap().pop_front();
        self.sent.notify_one();
        Box::pin(async move {
            match rx {
                Some(rx) => rx.await.unwrap_or_else(|_| {
                    Err(UpstreamError::Protocol {
                        host: "fake".into(),
                        reason: "the test dropped the answer".into(),
                    })
                }),
                None => pending().await,
            }
        })
    }
}

fn head(record_id: u64, via: Via, method: Method, uri: &str) -> RequestHead {
    RequestHead {
        record_id,
        client: SocketAddr::from(([127, 0, 0, 1], 50000)),
        via,
        method,
        uri: uri.parse().unwrap(),
        version: Version::HTTP_11,
        headers: HeaderMap::new(),
    }
}

fn login_hook() -> (CapsHook, Arc<Bus>) {
    let bus = Arc::new(Bus::default());
    let hook = CapsHook::new(Mode::login(GRID).unwrap(), BASE.into(), Arc::clone(&bus));
    (hook, bus)
}

fn proxy_hook() -> (CapsHook, Arc<Bus>) {
    let bus = Arc::new(Bus::default());
    (
        CapsHook::new(Mode::Proxy, BASE.into(), Arc::clone(&bus)),
        bus,
    )
}

fn path_of(url: &str) -> String {
    url.strip_prefix(BASE).unwrap().to_owned()
}

/// Registers the seed and event queue as a seed response would, and returns the EQ's proxy path.
fn with_event_queue(hook: &CapsHook) -> String {
    hook.with_registry(|reg| {
        let r = reg.add_region(SEED, Some(handle_from_metres(256_000, 256_000)), None);
        reg.enter_region(r);
        path_of(&reg.grant_proxied(EVENT_QUEUE_CAP, EQ, Some(r), super::super::CapKind::Normal))
    })
}

fn poll_body(ack: Option<i32>) -> Bytes {
    let ack = ack.map(Value::Integer).unwrap_or(Value::Undef);
    let v = Value::Map(Map(vec![
        ("ack".into(), ack),
        ("done".into(), Value::Boolean(false)),
    ]));
    llsd::to_vec(&v, Format::Xml).into()
}

fn ok(body: impl Into<Bytes>) -> Answer {
    let mut r = Response::new(body.into());
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/llsd+xml"),
    );
    Ok(r)
}

fn status(code: u16, body: &'static str) -> Answer {
    let mut r = Response::new(Bytes::from_static(body.as_bytes()));
    *r.status_mut() = StatusCode::from_u16(code).unwrap();
    Ok(r)
}

fn teleport_finish_response(id: i32) -> Vec<u8> {
    let info = Value::Map(Map(vec![
        (
            "RegionHandle".into(),
            Value::Binary(handle_from_metres(256_256, 256_000).to_be_bytes().to_vec()),
        ),
        ("SeedCapability".into(), Value::String(SEED_B.into())),
        ("SimIP".into(), Value::Binary(vec![127, 0, 0, 1])),
        ("SimPort".into(), Value::Integer(9001)),
    ]));
    let event = Value::Map(Map(vec![
        ("message".into(), Value::String("TeleportFinish".into())),
        (
            "body".into(),
            Value::Map(Map(vec![("Info".into(), Value::Array(vec![info]))])),
        ),
    ]));
    let v = Value::Map(Map(vec![
        ("events".into(), Value::Array(vec![event])),
        ("id".into(), Value::Integer(id)),
    ]));
    llsd::to_vec(&v, Format::Xml)
}

#[test]
fn decide_routes_login_caps_and_unknown_tokens() {
    let (hook, _) = login_hook();
    let d = hook.decide(&head(1, Via::Direct, Method::POST, "/login"));
    assert!(matches!(&d.route, Route::To(u) if *u == GRID), "{d:?}");
    assert!(d.rewrites_response());
    assert_eq!(d.cap.as_deref(), Some("login"));

    let d = hook.decide(&head(
        2,
        Via::Direct,
        Method::GET,
        "/cap/0123456789abcdef0123456789abcdef",
    ));
    match d.route {
        Route::Respond(r) => {
            assert_eq!(r.status(), StatusCode::NOT_FOUND);
            assert!(String::from_utf8_lossy(r.body()).contains("0123456789abcdef0123456789abcdef"));
        }
        other => panic!("expected a 404, got {other:?}"),
    }
    assert!(d.notes[0].contains("unknown cap token"));

    let eq_path = with_event_queue(&hook);
    let d = hook.decide(&head(3, Via::Direct, Method::POST, &eq_path));
    assert!(matches!(d.route, Route::Handle));
    assert_eq!(d.cap.as_deref(), Some(EVENT_QUEUE_CAP));
    assert_eq!(d.region.as_deref(), Some("127.0.0.1:9000 (1000, 1000)"));

    // The seed through its token: forwarded with path and query appended, response rewritten.
    let seed_path = hook.with_registry(|reg| {
        let id = reg.lookup_url(SEED).unwrap().cap;
        path_of(&reg.proxy_url(id))
    });
    let d = hook.decide(&head(
        4,
        Via::Direct,
        Method::POST,
        &format!("{seed_path}?x=1"),
    ));
    assert!(
        matches!(&d.route, Route::To(u) if u.to_string() == format!("{SEED}?x=1")),
        "{d:?}"
    );
    assert!(d.rewrites_response());
    assert_eq!(d.cap.as_deref(), Some("Seed"));

    // Anything else addressed to capscope is not the hook's.
    assert!(matches!(
        hook.decide(&head(5, Via::Direct, Method::GET, "/favicon.ico"))
            .route,
        Route::Pass
    ));
}

/// An uploader is a one-time URL: once the grid answered it with a 2xx, capscope forgets it (so the
/// registry does not grow by one cap per upload), and a request to it again is answered at once with
/// a 410 that says why, in the answer and in the record. A failed attempt keeps it for a retry.
#[test]
fn a_used_uploader_is_forgotten_and_a_request_to_it_again_is_told_why() {
    const UPLOADER: &str =
        "http://127.0.0.1:9000/CAPS/upload/aaaa0000-0000-0000-0000-000000000001/";
    let (hook, _) = login_hook();
    with_event_queue(&hook);
    let (held, path) = hook.with_registry(|reg| {
        let region = reg.current_region();
        let url = reg.grant_proxied(
            "NewFileAgentInventoryUploader",
            UPLOADER,
            region,
            super::super::CapKind::Temporary,
        );
        (reg.cap_count(), path_of(&url))
    });
    let upload = head(1, Via::Direct, Method::POST, &path);
    let d = hook.decide(&upload);
    assert!(matches!(&d.route, Route::To(u) if *u == UPLOADER), "{d:?}");

    // The grid fails the first attempt: the uploader stays for the viewer's retry.
    let mut headers = HeaderMap::new();
    let notes =
        hook.rewrite_response_headers(&upload, StatusCode::SERVICE_UNAVAILABLE, &mut headers);
    assert!(notes.is_empty(), "{notes:?}");
    assert!(matches!(hook.decide(&upload).route, Route::To(_)));

    // The retry succeeds: forgotten, and the record says so.
    let notes = hook.rewrite_response_headers(&upload, StatusCode::OK, &mut headers);
    assert!(
        notes
            .iter()
            .any(|n| n.contains("NewFileAgentInventoryUploader used")),
        "{notes:?}"
    );
    assert_eq!(hook.registry().cap_count(), held - 1);

    let again = hook.decide(&head(2, Via::Direct, Method::POST, &path));
    match &again.route {
        Route::Respond(r) => {
            assert_eq!(r.status(), StatusCode::GONE);
            let body = String::from_utf8_lossy(r.body());
            assert!(body.contains("NewFileAgentInventoryUploader"), "{body}");
            assert!(body.contains("already used"), "{body}");
        }
        other => panic!("expected a 410, got {other:?}"),
    }
    assert_eq!(again.cap.as_deref(), Some("NewFileAgentInventoryUploader"));
    assert_eq!(again.region.as_deref(), Some("127.0.0.1:9000 (1000, 1000)"));
    assert!(
        again
            .notes
            .iter()
            .any(|n| n.contains("forgotten") && n.contains("already used")),
        "{:?}",
        again.notes
    );
    // A NORMAL cap answered 200 stays.
    let eq = hook.with_registry(|reg| reg.lookup_url(EQ).map(|f| f.cap));
    assert!(eq.is_some());
}

#[test]
fn proxy_mode_names_requests_and_has_no_login_endpoint() {
    let (hook, _) = proxy_hook();
    let d = hook.decide(&head(1, Via::Direct, Method::POST, "/login"));
    assert!(matches!(d.route, Route::Respond(ref r) if r.status() == StatusCode::NOT_FOUND));

    let tunnel = || Via::Tunnel {
        authority: "127.0.0.1:9000".into(),
    };
    let mut login = head(
        2,
        tunnel(),
        Method::POST,
        "https://login.example/cgi-bin/login.cgi",
    );
    login
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    let d = hook.decide(&login);
    assert!(matches!(d.route, Route::Pass) && d.rewrites_response());

    let d = hook.decide(&head(
        3,
        tunnel(),
        Method::GET,
        "https://elsewhere.example/x",
    ));
    assert!(matches!(d.route, Route::Pass) && !d.rewrites_response() && d.cap.is_none());

    with_event_queue(&hook);
    let d = hook.decide(&head(4, Via::Forward, Method::POST, SEED));
    assert!(matches!(d.route, Route::Pass) && d.rewrites_response());
    assert_eq!(d.cap.as_deref(), Some("Seed"));
    let d = hook.decide(&head(5, Via::Forward, Method::POST, EQ));
    assert!(matches!(d.route, Route::Handle));
}

#[test]
fn login_then_seed_are_rewritten_through_the_hook_and_gzip_is_undone() {
    use std::io::Write;
    let (hook, _) = login_hook();
    let reply = format!(
        "<?xml version=\"1.0\"?><methodResponse><params><param><value><struct>\
<member><name>login</name><value><string>true</string></value></member>\
<member><name>seed_capability</name><value><string>{SEED}</string></value></member>\
<member><name>region_x</name><value><i4>256000</i4></value></member>\
<member><name>region_y</name><value><i4>256000</i4></value></member>\
<member><name>sim_ip</name><value><string>127.0.0.1</string></value></member>\
<member><name>sim_port</name><value><i4>9000</i4></value></member>\
</struct></value></param></params></methodResponse>"
    );
    let request = Bytes::from_static(
        b"<methodCall><methodName>login_to_simulator</methodName><params><param><value><struct>\
<member><name>first</name><value>Ann</value></member><member><name>last</name><value>Tester</value></member>\
<member><name>passwd</name><value>$1$secret</value></member></struct></value></param></params></methodCall>",
    );
    let login = head(1, Via::Direct, Method::POST, "/login");
    let mut headers = HeaderMap::new();
    // Second Life labels the XML-RPC reply as LLSD: the bytes decide.
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/llsd+xml"),
    );
    let rw = hook.rewrite_response(
        &login,
        &request,
        StatusCode::OK,
        &headers,
        reply.clone().into(),
    );
    assert_eq!(rw.cap.as_deref(), Some("login"));
    let new = String::from_utf8(rw.body.unwrap().to_vec()).unwrap();
    let seed_proxy = hook.with_registry(|r| {
        r.cap(r.lookup_url(SEED).unwrap().cap)
            .unwrap()
            .proxy_url
            .clone()
            .unwrap()
    });
    assert_eq!(new, reply.replace(SEED, &seed_proxy));
    let notes = rw.notes.join("\n");
    assert!(
        notes.contains("login of Ann Tester on 127.0.0.1 succeeded"),
        "{notes}"
    );
    assert!(
        notes.contains("(1000, 1000)") && notes.contains("127.0.0.1:9000"),
        "{notes}"
    );
    assert!(!notes.contains("secret"));

    // The seed response comes gzipped: it is decoded, rewritten and sent plain.
    let seed_body =
        format!("<llsd><map><key>EventQueueGet</key><string>{EQ}</string></map></llsd>");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(seed_body.as_bytes()).unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html;charset=UTF-8"),
    );
    let seed_req = head(2, Via::Direct, Method::POST, &path_of(&seed_proxy));
    let asked = Bytes::from_static(
        b"<llsd><array><string>EventQueueGet</string><string>GetMesh</string></array></llsd>",
    );
    let rw = hook.rewrite_response(
        &seed_req,
        &asked,
        StatusCode::OK,
        &headers,
        gz.finish().unwrap().into(),
    );
    let eq_proxy = hook.with_registry(|r| {
        r.cap(r.lookup_url(EQ).unwrap().cap)
            .unwrap()
            .proxy_url
            .clone()
            .unwrap()
    });
    assert_eq!(
        String::from_utf8(rw.body.unwrap().to_vec()).unwrap(),
        seed_body.replace(EQ, &eq_proxy)
    );
    assert!(
        rw.notes.iter().any(|n| n.contains("asked for 2 caps")),
        "{:?}",
        rw.notes
    );

    // A malformed seed is forwarded unchanged with the reason.
    let rw = hook.rewrite_response(
        &seed_req,
        &asked,
        StatusCode::OK,
        &HeaderMap::new(),
        Bytes::from_static(b"<html>busy</html>"),
    );
    assert!(rw.body.is_none());
    assert!(
        rw.notes[0].contains("forwarded unchanged"),
        "{:?}",
        rw.notes
    );
}

#[test]
fn proxy_mode_learns_without_rewriting() {
    let (hook, _) = proxy_hook();
    let reply = format!(
        "<methodResponse><params><param><value><struct>\
<member><name>login</name><value><string>true</string></value></member>\
<member><name>seed_capability</name><value><string>{SEED}</string></value></member>\
</struct></value></param></params></methodResponse>"
    );
    let login = head(
        1,
        Via::Tunnel {
            authority: "login.agni.lindenlab.com:443".into(),
        },
        Method::POST,
        AGNI_LOGIN,
    );
    let rw = hook.rewrite_response(
        &login,
        &Bytes::new(),
        StatusCode::OK,
        &HeaderMap::new(),
        reply.into(),
    );
    assert!(rw.body.is_none());
    assert_eq!(rw.cap.as_deref(), Some("login"));
    assert!(rw.notes[0].contains("on agni"), "{:?}", rw.notes);

    let seed = head(2, Via::Forward, Method::POST, SEED);
    let body = format!("<llsd><map><key>EventQueueGet</key><string>{EQ}</string></map></llsd>");
    let rw = hook.rewrite_response(
        &seed,
        &Bytes::new(),
        StatusCode::OK,
        &HeaderMap::new(),
        body.into(),
    );
    assert!(rw.body.is_none());
    let d = hook.decide(&head(3, Via::Forward, Method::POST, EQ));
    assert_eq!(d.cap.as_deref(), Some(EVENT_QUEUE_CAP));
    assert!(hook.registry().caps().all(|c| c.token.is_none()));
}

/// The guarantee: the viewer's poll goes away mid-flight, upstream answers anyway, and the viewer's
/// next poll (repeating the old ack) gets that answer without a new upstream poll.
#[tokio::test]
async fn an_answer_the_viewer_missed_is_replayed_to_its_next_poll() {
    let (hook, bus) = login_hook();
    let mut sub = bus.subscribe();
    let eq_path = with_event_queue(&hook);
    let (fake, mut answers) = FakeUpstream::new(2);
    let upstream: Upstream = fake.clone();

    let first = hook.handle(
        head(10, Via::Direct, Method::POST, &eq_path),
        poll_body(None),
        Arc::clone(&upstream),
    );
    fake.sent.notified().await;
    drop(first); // the viewer's poll went away
    {
        let requests = fake.requests.lock().unwrap();
        assert_eq!(requests[0].0, EQ);
        assert_eq!(requests[0].1.get(HOST).unwrap(), "127.0.0.1:9000");
    }
    answers
        .pop_front()
        .unwrap()
        .send(ok(teleport_finish_response(1)))
        .unwrap();

    // The event is recorded even though no viewer poll is waiting.
    let event = match sub.recv().await {
        Some(Received::Record(r)) => r,
        other => panic!("expected an event record, got {other:?}"),
    };
    assert_eq!(event.kind, Kind::Event);
    assert_eq!(event.parent, Some(10));
    let info = event.event.as_ref().unwrap();
    assert_eq!(
        (info.message.as_str(), info.index, info.queue_id),
        ("TeleportFinish", 0, Some(1))
    );
    assert!(
        String::from_utf8_lossy(&info.body.data).contains(SEED_B),
        "the event as upstream sent it"
    );
    assert!(
        event
            .notes
            .iter()
            .any(|n| n.contains("RegionHandle = (1001, 1000)")),
        "{:?}",
        event.notes
    );

    // The viewer polls again with the same ack: the stored answer, at once.
    let second = hook
        .handle(
            head(11, Via::Direct, Method::POST, &eq_path),
            poll_body(None),
            Arc::clone(&upstream),
        )
        .await;
    assert_eq!(fake.sent_count(), 1, "no second upstream poll");
    assert_eq!(second.response.status(), StatusCode::OK);
    let body = String::from_utf8(second.response.body().to_vec()).unwrap();
    let seed_b_proxy = hook.with_registry(|r| {
        r.cap(r.lookup_url(SEED_B).unwrap().cap)
            .unwrap()
            .proxy_url
            .clone()
            .unwrap()
    });
    assert!(
        body.contains(&seed_b_proxy),
        "the seed in the event is rewritten: {body}"
    );
    assert!(!body.contains(SEED_B));
    assert!(second
        .original_body
        .unwrap()
        .windows(SEED_B.len())
        .any(|w| w == SEED_B.as_bytes()));
    assert!(
        second
            .notes
            .iter()
            .any(|n| n.contains("replayed") && n.contains("#10")),
        "{:?}",
        second.notes
    );
    assert_eq!(hook.stats().replayed, 1);
    assert_eq!(hook.stats().events, 1);
    // The region the avatar teleported from is marked left, and its caps say so.
    assert!(hook.with_registry(|r| r.region(r.region_of_seed(SEED).unwrap()).unwrap().left));
    let d = hook.decide(&head(13, Via::Direct, Method::POST, &eq_path));
    assert!(
        d.notes.iter().any(|n| n.contains("region the avatar left")),
        "{:?}",
        d.notes
    );

    // Acknowledging id 1 moves on: a new upstream poll, which idles with a 502 passed through as is.
    let third = hook.handle(
        head(12, Via::Direct, Method::POST, &eq_path),
        poll_body(Some(1)),
        Arc::clone(&upstream),
    );
    answers.pop_front().unwrap().send(status(502, "")).unwrap();
    let third = third.await;
    assert_eq!(fake.sent_count(), 2);
    assert!(String::from_utf8_lossy(&fake.requests.lock().unwrap()[1].2)
        .contains("<integer>1</integer>"));
    assert_eq!(third.response.status(), StatusCode::BAD_GATEWAY);
    assert!(
        third.notes.iter().any(|n| n == "idle poll (502)"),
        "{:?}",
        third.notes
    );
    assert_eq!(hook.idle_polls(), 1);
}

/// A viewer poll that gives up while upstream still holds the poll: the next one joins the open
/// upstream poll instead of opening a second, and idle answers are never replayed.
#[tokio::test]
async fn a_repeated_poll_joins_the_open_upstream_poll_and_idles_are_not_replayed() {
    let (hook, _bus) = proxy_hook();
    with_event_queue(&hook);
    let (fake, mut answers) = FakeUpstream::new(2);
    let upstream: Upstream = fake.clone();
    let first = hook.handle(
        head(20, Via::Forward, Method::POST, EQ),
        poll_body(Some(5)),
        Arc::clone(&upstream),
    );
    fake.sent.notified().await;
    drop(first);
    let second = hook.handle(
        head(21, Via::Forward, Method::POST, EQ),
        poll_body(Some(5)),
        Arc::clone(&upstream),
    );
    answers
        .pop_front()
        .unwrap()
        .send(status(502, "Upstream error: "))
        .unwrap();
    let second = second.await;
    assert_eq!(fake.sent_count(), 1);
    assert_eq!(second.response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(&second.response.body()[..], b"Upstream error: ");
    assert!(
        second
            .notes
            .iter()
            .any(|n| n.contains("joined") && n.contains("#20")),
        "{:?}",
        second.notes
    );
    assert_eq!(hook.stats().joined, 1);

    // Same ack again after an idle answer: a fresh upstream poll, not a replay of the 502.
    let third = hook.handle(
        head(22, Via::Forward, Method::POST, EQ),
        poll_body(Some(5)),
        Arc::clone(&upstream),
    );
    answers
        .pop_front()
        .unwrap()
        .send(ok(teleport_finish_response(6)))
        .unwrap();
    let third = third.await;
    assert_eq!(fake.sent_count(), 2);
    assert_eq!(third.response.status(), StatusCode::OK);
    // Proxy mode: the body is passed through untouched.
    assert_eq!(&third.response.body()[..], &teleport_finish_response(6)[..]);
    assert!(third.original_body.is_none());
    assert_eq!(hook.idle_polls(), 1);
}

#[tokio::test]
async fn id_gaps_and_upstream_failures_are_noted() {
    let (hook, _bus) = proxy_hook();
    with_event_queue(&hook);
    let (fake, mut answers) = FakeUpstream::new(3);
    let upstream: Upstream = fake.clone();
    let a = hook.handle(
        head(30, Via::Forward, Method::POST, EQ),
        poll_body(None),
        Arc::clone(&upstream),
    );
    answers
        .pop_front()
        .unwrap()
        .send(ok(teleport_finish_response(41)))
        .unwrap();
    let a = a.await;
    assert!(
        a.notes
            .iter()
            .any(|n| n == "1 event, id 41: TeleportFinish"),
        "{:?}",
        a.notes
    );
    assert!(
        !a.notes.iter().any(|n| n.starts_with("id ")),
        "{:?}",
        a.notes
    );
    let b = hook.handle(
        head(31, Via::Forward, Method::POST, EQ),
        poll_body(Some(41)),
        Arc::clone(&upstream),
    );
    answers
        .pop_front()
        .unwrap()
        .send(ok(teleport_finish_response(43)))
        .unwrap();
    let b = b.await;
    assert!(
        b.notes.iter().any(|n| n == "id gap 41 -> 43"),
        "{:?}",
        b.notes
    );

    let c = hook.handle(
        head(32, Via::Forward, Method::POST, EQ),
        poll_body(Some(43)),
        Arc::clone(&upstream),
    );
    answers
        .pop_front()
        .unwrap()
        .send(Err(UpstreamError::Connect {
            host: "127.0.0.1:9000".into(),
            reason: "connection refused".into(),
        }))
        .unwrap();
    let c = c.await;
    assert_eq!(c.response.status(), StatusCode::BAD_GATEWAY);
    assert!(
        c.notes.iter().any(|n| n.contains("connection refused")),
        "{:?}",
        c.notes
    );
    assert_eq!(hook.idle_polls(), 0, "a failure is not an idle poll");
}

#[test]
fn a_seed_seen_after_the_login_is_recognised_by_its_content() {
    let (hook, _) = proxy_hook();
    let tunnel = Via::Tunnel {
        authority: "127.0.0.1:9000".into(),
    };
    let seed = head(1, tunnel.clone(), Method::POST, SEED);
    let d = hook.decide(&seed);
    assert!(matches!(d.route, Route::Pass) && d.rewrites_response());
    let asked = Bytes::from_static(b"<llsd><array><string>EventQueueGet</string></array></llsd>");
    let body = format!("<llsd><map><key>EventQueueGet</key><string>{EQ}</string></map></llsd>");
    let rw = hook.rewrite_response(
        &seed,
        &asked,
        StatusCode::OK,
        &HeaderMap::new(),
        body.into(),
    );
    assert_eq!(rw.cap.as_deref(), Some("Seed"));
    assert!(rw.body.is_none());
    assert_eq!(
        hook.decide(&head(2, tunnel.clone(), Method::POST, EQ))
            .cap
            .as_deref(),
        Some(EVENT_QUEUE_CAP)
    );

    // Something else at a seed-shaped path is left alone.
    let other = head(
        3,
        tunnel,
        Method::POST,
        "http://127.0.0.1:9000/CAPS/22222222-2222-3333-4444-5555555555550000/",
    );
    let rw = hook.rewrite_response(
        &other,
        &Bytes::from_static(b"{}"),
        StatusCode::OK,
        &HeaderMap::new(),
        Bytes::from_static(b"<llsd><map/></llsd>"),
    );
    assert!(rw.cap.is_none() && rw.notes.is_empty());
    assert!(looks_like_seed_path(
        "/cap/8d8e1f1a-1b2c-4d5e-8f90-a1b2c3d4e5f6"
    ));
    assert!(!looks_like_seed_path(
        "/cap/8d8e1f1a-1b2c-4d5e-8f90-a1b2c3d4e5f6/extra"
    ));
    assert!(!looks_like_seed_path(
        "/CE/8d8e1f1a-1b2c-4d5e-8f90-a1b2c3d4e5f6"
    ));
}

#[test]
fn grid_arguments() {
    assert_eq!(
        Mode::login("agni").unwrap(),
        Mode::Login {
            grid: AGNI_LOGIN.parse().unwrap()
        }
    );
    assert!(
        matches!(Mode::login("ADITI").unwrap(), Mode::Login { grid } if grid.host() == Some("login.aditi.lindenlab.com"))
    );
    assert!(Mode::login("ftp://x").is_err());
    assert!(Mode::login("not a url").is_err());
}

fn body_text(handled: &Handled) -> String {
    String::from_utf8(handled.response.body().to_vec()).unwrap()
}

#[tokio::test]
async fn get_grid_info_is_the_grids_own_with_login_pointing_at_capscope() {
    let (hook, _bus) = login_hook();
    for path in ["/login/get_grid_info", "/get_grid_info"] {
        let h = head(1, Via::Direct, Method::GET, path);
        let d = hook.decide(&h);
        assert!(matches!(d.route, Route::Handle), "{path}: {:?}", d.route);
        assert_eq!(d.cap.as_deref(), Some(GRID_INFO_CAP));
        let (fake, mut answers) = FakeUpstream::new(1);
        let opensim =
            "<gridinfo><login>http://127.0.0.1:9000/</login><gridname>Mock &amp; Co</gridname>\
<gridnick>mock</gridnick></gridinfo>";
        let mut h2 = h.clone();
        h2.headers.insert(
            http::header::IF_MODIFIED_SINCE,
            HeaderValue::from_static("Mon, 30 Nov 2026 10:00:00 GMT"),
        );
        let fut = hook.handle(h2, Bytes::new(), fake.clone());
        answers.pop_front().unwrap().send(ok(opensim)).unwrap();
        let handled = fut.await;
        let (url, headers, _) = fake.requests.lock().unwrap()[0].clone();
        assert_eq!(url, "http://127.0.0.1:9000/get_grid_info");
        assert!(headers.get(http::header::IF_MODIFIED_SINCE).is_none());
        assert_eq!(handled.response.status(), StatusCode::OK);
        assert_eq!(
            body_text(&handled),
            opensim.replace("http://127.0.0.1:9000/<", &format!("{BASE}/login<"))
        );
        assert_eq!(
            handled.upstream_url.as_deref(),
            Some("http://127.0.0.1:9000/get_grid_info")
        );
    }
}

#[tokio::test]
async fn get_grid_info_is_made_up_for_second_life_and_for_grids_without_one() {
    let bus = Arc::new(Bus::default());
    let hook = CapsHook::new(Mode::login("agni").unwrap(), BASE.into(), bus);
    let (fake, _answers) = FakeUpstream::new(0);
    let handled = hook
        .handle(
            head(1, Via::Direct, Method::GET, "/login/get_grid_info"),
            Bytes::new(),
            fake.clone(),
        )
        .await;
    assert_eq!(fake.sent_count(), 0, "Second Life is not asked");
    let text = body_text(&handled);
    assert!(
        text.contains(&format!("<login>{BASE}/login</login>")),
        "{text}"
    );
    assert!(text.contains("<platform>SecondLife</platform>"), "{text}");

    let (hook, _bus) = login_hook();
    let (fake, mut answers) = FakeUpstream::new(1);
    let fut = hook.handle(
        head(1, Via::Direct, Method::GET, "/get_grid_info"),
        Bytes::new(),
        fake,
    );
    answers
        .pop_front()
        .unwrap()
        .send(status(404, "<html>no</html>"))
        .unwrap();
    let handled = fut.await;
    let text = body_text(&handled);
    assert_eq!(handled.response.status(), StatusCode::OK);
    assert!(
        text.contains(&format!("<login>{BASE}/login</login>")),
        "{text}"
    );
    assert!(
        handled.notes.join(" ").contains("404"),
        "{:?}",
        handled.notes
    );
}

#[test]
fn get_grid_info_in_proxy_mode_is_a_404_that_explains() {
    let (hook, _bus) = proxy_hook();
    let d = hook.decide(&head(1, Via::Direct, Method::GET, "/login/get_grid_info"));
    match d.route {
        Route::Respond(r) => assert_eq!(r.status(), StatusCode::NOT_FOUND),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_redirect_to_a_grid_host_comes_back_as_a_capscope_url_in_login_mode_only() {
    let (hook, _bus) = login_hook();
    let asset = "http://127.0.0.1:9000/asset/";
    let proxy = hook.with_registry(|reg| {
        let r = reg.add_region(SEED, None, None);
        reg.grant_proxied("ViewerAsset", asset, Some(r), super::super::CapKind::Normal)
    });
    let h = head(
        1,
        Via::Direct,
        Method::GET,
        &path_of(&format!("{proxy}?texture_id=1")),
    );
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::LOCATION,
        HeaderValue::from_static("/asset/moved?texture_id=1"),
    );
    let notes = hook.rewrite_response_headers(&h, StatusCode::FOUND, &mut headers);
    let location = headers[http::header::LOCATION].to_str().unwrap().to_owned();
    assert_eq!(location, format!("{proxy}moved?texture_id=1"), "{notes:?}");
    // The follow-up is recorded under the same cap and goes to the redirect's target.
    let follow = head(2, Via::Direct, Method::GET, &path_of(&location));
    let d = hook.decide(&follow);
    assert_eq!(d.cap.as_deref(), Some("ViewerAsset"));
    match d.route {
        Route::To(u) => assert_eq!(
            u.to_string(),
            "http://127.0.0.1:9000/asset/moved?texture_id=1"
        ),
        other => panic!("{other:?}"),
    }

    // Off the grid: left alone, with a note.
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::LOCATION,
        HeaderValue::from_static("https://example.org/elsewhere"),
    );
    let notes = hook.rewrite_response_headers(&h, StatusCode::FOUND, &mut headers);
    assert_eq!(
        headers[http::header::LOCATION],
        "https://example.org/elsewhere"
    );
    assert!(notes[0].contains("left as sent"), "{notes:?}");

    // A login that redirects stays a login.
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::LOCATION,
        HeaderValue::from_static("http://127.0.0.1:9100/login2"),
    );
    let login = head(3, Via::Direct, Method::POST, "/login");
    hook.rewrite_response_headers(&login, StatusCode::TEMPORARY_REDIRECT, &mut headers);
    let location = headers[http::header::LOCATION].to_str().unwrap().to_owned();
    let d = hook.decide(&head(4, Via::Direct, Method::POST, &path_of(&location)));
    assert_eq!(d.kind, Kind::Login);
    assert!(d.rewrites_response());

    // HTTP proxy mode rewrites nothing.
    let (hook, _bus) = proxy_hook();
    let mut headers = HeaderMap::new();
    headers.insert(http::header::LOCATION, HeaderValue::from_static("/asset/x"));
    let h = head(1, Via::Forward, Method::GET, "http://127.0.0.1:9000/asset/");
    assert!(hook
        .rewrite_response_headers(&h, StatusCode::FOUND, &mut headers)
        .is_empty());
    assert_eq!(headers[http::header::LOCATION], "/asset/x");
}

#[test]
fn locations_are_resolved_against_the_request_url() {
    let from = "https://h:1/a/b?q=1";
    assert_eq!(resolve_location(from, "https://x/y"), "https://x/y");
    assert_eq!(resolve_location(from, "//x/y"), "https://x/y");
    assert_eq!(resolve_location(from, "/c"), "https://h:1/c");
    assert_eq!(resolve_location(from, "c?d"), "https://h:1/a/c?d");
    assert_eq!(resolve_location("http://h", "c"), "http://h/c");
}

/// The record tap undoes zstd, so the rewriters must too: a zstd seed answer (raw with its header, as
/// the hook's `handle` path sees bodies, or already undone by the proxy, which then drops the header)
/// is rewritten. Before zstd was added to caps/body.rs the raw one went to the viewer unrewritten.
#[test]
fn a_zstd_seed_is_rewritten_like_a_gzip_one() {
    let (hook, _) = login_hook();
    let seed_proxy = hook.with_registry(|reg| {
        let r = reg.add_region(SEED, None, None);
        reg.grant_proxied("Seed", SEED, Some(r), super::super::CapKind::Normal)
    });
    let seed_body =
        format!("<llsd><map><key>EventQueueGet</key><string>{EQ}</string></map></llsd>");
    let mut zstd_headers = HeaderMap::new();
    zstd_headers.insert(CONTENT_ENCODING, HeaderValue::from_static("zstd"));
    let seed_req = head(2, Via::Direct, Method::POST, &path_of(&seed_proxy));
    for (headers, body) in [
        (
            zstd_headers,
            zstd::encode_all(seed_body.as_bytes(), 3).unwrap(),
        ),
        (HeaderMap::new(), seed_body.clone().into_bytes()),
    ] {
        let rw = hook.rewrite_response(
            &seed_req,
            &Bytes::new(),
            StatusCode::OK,
            &headers,
            body.into(),
        );
        let new = String::from_utf8(rw.body.expect("rewritten").to_vec()).unwrap();
        assert!(!new.contains(EQ), "{new}");
        assert!(new.contains(&format!("{BASE}/cap/")), "{new}");
    }
}

/// A poll answer past `proxy::INLINE_BODY_LIMIT` is decoded and rewritten on the blocking pool, never on
/// the runtime's worker. On this one-thread runtime the registry lock is held from another thread
/// while the big answer arrives: read on the worker, the answer would block the only worker on that
/// lock, and the test's own task (an unrelated request's stand-in) could never run again until the
/// holder gave up. Before the answer went to the blocking pool, the holder timed out. The answer is
/// still the one a small body gets: upstream's bytes with only the seed URL spliced.
#[tokio::test]
async fn a_big_poll_answer_is_read_on_the_blocking_pool_and_rewritten_as_a_small_one() {
    use std::sync::mpsc;
    use std::time::Duration;
    const HANG: Duration = Duration::from_secs(20);

    let (hook, _bus) = login_hook();
    let eq_path = with_event_queue(&hook);
    let (fake, mut answers) = FakeUpstream::new(1);
    let upstream: Upstream = fake.clone();
    let poll = tokio::spawn(hook.handle(
        head(10, Via::Direct, Method::POST, &eq_path),
        poll_body(None),
        upstream,
    ));
    fake.sent.notified().await;

    // A TeleportFinish, then an event big enough to make the answer heavy.
    let padding = "x".repeat(crate::proxy::INLINE_BODY_LIMIT + 1);
    let small = String::from_utf8(teleport_finish_response(1)).unwrap();
    // Into the events array (the last one to close).
    let at = small.rfind("</array>").unwrap();
    let big = format!(
        "{}<map><key>message</key><string>Padding</string><key>body</key><map><key>text</key>\
         <string>{padding}</string></map></map>{}",
        &small[..at],
        &small[at..]
    );
    assert!(big.len() > crate::proxy::INLINE_BODY_LIMIT);

    let (locked_tx, locked_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let holder = {
        let hook = hook.clone();
        std::thread::spawn(move || {
            hook.with_registry(|_| {
                let _ = locked_tx.send(());
                release_rx.recv_timeout(HANG).is_ok()
            })
        })
    };
    locked_rx.recv().unwrap();
    answers.pop_front().unwrap().send(ok(big.clone())).unwrap();
    // The upstream poll's task runs first (it was woken before this task yielded).
    for _ in 0..16 {
        tokio::task::yield_now().await;
    }
    let _ = release_tx.send(());
    assert!(
        holder.join().unwrap(),
        "the worker stayed blocked while the big answer was read: it was read on the worker"
    );

    let handled = poll.await.unwrap();
    assert_eq!(handled.response.status(), StatusCode::OK);
    let seed_b_proxy = hook.with_registry(|r| {
        r.cap(r.lookup_url(SEED_B).unwrap().cap)
            .unwrap()
            .proxy_url
            .clone()
            .unwrap()
    });
    let expected = big.replace(SEED_B, &seed_b_proxy);
    assert!(
        handled.response.body()[..] == *expected.as_bytes(),
        "only the seed URL changes"
    );
    assert_eq!(
        handled.response.headers().get(CONTENT_LENGTH).unwrap(),
        &expected.len().to_string()
    );
    assert_eq!(handled.original_body.as_deref(), Some(big.as_bytes()));
    assert_eq!(hook.stats().events, 2);
}

/// `holds` (asked by the proxy's front before `decide`) says yes exactly for the requests `decide`
/// runs whole as long polls: the event queue by its token (login mode) or its URL (proxy mode), and
/// nothing else.
#[test]
fn holds_and_decide_agree_on_the_event_queue() {
    let (hook, _bus) = login_hook();
    let eq_path = with_event_queue(&hook);
    let seed_path = hook.with_registry(|reg| {
        let id = reg.lookup_url(SEED).unwrap().cap;
        path_of(&reg.proxy_url(id))
    });
    let cases = [
        (head(0, Via::Direct, Method::POST, &eq_path), true),
        (head(0, Via::Direct, Method::GET, &eq_path), true),
        (head(0, Via::Forward, Method::POST, EQ), true),
        (
            head(
                0,
                Via::Tunnel {
                    authority: "127.0.0.1:9000".into(),
                },
                Method::POST,
                EQ,
            ),
            true,
        ),
        (head(0, Via::Direct, Method::POST, &seed_path), false),
        (head(0, Via::Direct, Method::POST, "/login"), false),
        (
            head(
                0,
                Via::Direct,
                Method::POST,
                "/cap/0123456789abcdef0123456789abcdef",
            ),
            false,
        ),
        (
            head(0, Via::Forward, Method::GET, "http://example.com/"),
            false,
        ),
    ];
    for (h, held) in cases {
        assert_eq!(hook.holds(&h), held, "{} {:?}", h.uri, h.via);
        let d = hook.decide(&h);
        assert_eq!(
            matches!(d.route, Route::Handle),
            held,
            "{} {:?}: {:?}",
            h.uri,
            h.via,
            d.route
        );
    }
}

/// A route that answers locally or runs the exchange itself has no forwarded response to rewrite, so
/// a decision never asks for one with it (before, a seed whose upstream URL was not usable got a 502
/// `Respond` that still asked for a rewrite, which the proxy ignored without a word).
#[test]
fn only_forwarding_routes_ask_for_a_rewrite() {
    let (hook, _) = login_hook();
    let bad_seed = hook.with_registry(|reg| {
        path_of(&reg.grant_proxied(
            SEED_CAP,
            "http://127.0.0.1:9000/CAPS/not a uri/",
            None,
            crate::caps::CapKind::Normal,
        ))
    });
    let d = hook.decide(&head(1, Via::Direct, Method::POST, &bad_seed));
    assert!(
        matches!(&d.route, Route::Respond(r) if r.status() == StatusCode::BAD_GATEWAY),
        "{d:?}"
    );
    assert!(!d.rewrites_response(), "{d:?}");
}
