//! capscope end to end: the simulated grid, capscope (proxy + caps hook) and the scripted viewer over
//! real sockets on 127.0.0.1, in both modes.
//!
//! - Every request the viewer made went through capscope and is named by its cap.
//! - In login mode the viewer never saw an upstream URL; in HTTP proxy mode nothing is rewritten.
//! - Every event the grid wrote is an Event record.
//! - Rewritten bodies decode and differ from the originals only in the rewritten URLs.
//! - Malformed login, seed and event bodies go through unchanged, are recorded with the decode error,
//!   and do not stop capscope.
//! - A viewer poll dropped mid-flight loses nothing: the next poll gets the event.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use capscope::llsd::{self, Value};
use capscope::mockgrid::lite::{self, Rpc};
use capscope::mockgrid::viewer::{Journal, PollResult, ViewerError};
use capscope::mockgrid::{Breakage, MockGridConfig};
use capscope::record::{Kind, Record, State};
use common::grid::{GridEnv as Env, TestMode, WAIT};

async fn setup(mode: TestMode) -> Env {
    Env::start(mode, MockGridConfig::for_tests(), |_| {}).await
}

/// Whether record `r` is the exchange the viewer made to `url` with `method`.
fn is_exchange_for(r: &Record, method: &str, url: &str) -> bool {
    let Some(req) = &r.request else { return false };
    if req.method != method || !matches!(r.kind, Kind::Http | Kind::Login) {
        return false;
    }
    let same =
        |recorded: &str| recorded == url || (recorded.starts_with('/') && url.ends_with(recorded));
    same(&req.url) || req.client_url.as_deref().is_some_and(same)
}

/// The cap name the viewer used `url` as, from what it learnt.
fn expected_cap(j: &Journal, url: &str) -> Option<String> {
    let base = url.split('?').next().unwrap_or(url);
    let mut all_caps: Vec<&BTreeMap<String, String>> = j.neighbours.values().collect();
    all_caps.push(&j.caps);
    all_caps
        .iter()
        .flat_map(|caps| caps.iter())
        .find(|(_, u)| u.as_str() == base)
        .map(|(name, _)| name.clone())
}

/// A session: login, neighbour, activity, teleport, crossing, chat, activity again.
async fn full_session(env: &mut Env) -> Journal {
    let v = &env.viewer;
    let running = v.start().await.unwrap();
    assert!(
        v.wait_until(WAIT, |j| j.neighbours.len() == 1).await,
        "{:?}",
        v.journal()
    );
    assert_eq!(
        v.activity_round(running.login.inventory_root).await,
        0,
        "{:?}",
        v.journal().errors
    );
    env.grid.trigger_teleport(1).unwrap();
    assert!(
        v.wait_until(WAIT, |j| j.region_switches.len() == 1).await,
        "{:?}",
        v.journal()
    );
    env.grid.trigger_crossing(2).unwrap();
    assert!(
        v.wait_until(WAIT, |j| j.region_switches.len() == 2).await,
        "{:?}",
        v.journal()
    );
    env.grid
        .send_group_chat("Tester", "hello through capscope")
        .unwrap();
    assert!(
        v.wait_until(WAIT, |j| j
            .events
            .iter()
            .any(|e| e.message == "ChatterBoxInvitation"))
            .await
    );
    assert_eq!(
        v.activity_round(running.login.inventory_root).await,
        0,
        "{:?}",
        v.journal().errors
    );
    drop(running);
    v.journal()
}

async fn every_request_is_recorded_and_named(mode: TestMode) {
    let mut env = setup(mode).await;
    let j = full_session(&mut env).await;

    // Every finished request the viewer made has a finished record naming its cap.
    let finished: Vec<_> = j
        .requests
        .iter()
        .filter(|r| r.status.is_some())
        .cloned()
        .collect();
    env.records
        .wait_for("a finished record of every viewer request", |records| {
            finished.iter().all(|req| {
                records
                    .values()
                    .any(|r| r.state != State::Open && is_exchange_for(r, &req.method, &req.url))
            })
        })
        .await;
    // One record per request: requests to the same URL (polls) are matched in order.
    let mut used = std::collections::HashSet::new();
    for req in &finished {
        let rec = env
            .records
            .all()
            .find(|r| {
                !used.contains(&r.id)
                    && r.state != State::Open
                    && is_exchange_for(r, &req.method, &req.url)
                    && r.response.as_ref().map(|resp| resp.status) == req.status
            })
            .unwrap_or_else(|| {
                panic!("no record of {} {} ({:?})", req.method, req.url, req.status)
            });
        used.insert(rec.id);
        let cap = rec.cap.as_deref();
        assert!(
            cap.is_some(),
            "{} {} is not named: {rec:#?}",
            req.method,
            req.url
        );
        if let Some(expected) = expected_cap(&j, &req.url) {
            assert_eq!(cap, Some(expected.as_str()), "{}", req.url);
        }
    }

    // Every event the grid wrote is an Event record (same message, same queue id).
    let delivered = env.grid.delivered_events();
    assert!(delivered.iter().any(|d| d.message == "TeleportFinish"));
    assert!(delivered.iter().any(|d| d.message == "CrossedRegion"));
    env.records
        .wait_for("an Event record of every delivered event", |records| {
            let mut have: HashMap<(String, Option<i64>), usize> = HashMap::new();
            for r in records.values().filter(|r| r.kind == Kind::Event) {
                if let Some(e) = &r.event {
                    *have.entry((e.message.clone(), e.queue_id)).or_default() += 1;
                }
            }
            let mut want: HashMap<(String, Option<i64>), usize> = HashMap::new();
            for d in &delivered {
                *want
                    .entry((d.message.clone(), Some(i64::from(d.queue_id))))
                    .or_default() += 1;
            }
            want.iter()
                .all(|(k, n)| have.get(k).copied().unwrap_or(0) >= *n)
        })
        .await;

    // The login exchange is a login record in both modes (by route in login mode, by its
    // XML-RPC body in HTTP proxy mode), and nothing else is.
    let logins: Vec<_> = env
        .records
        .all()
        .filter(|r| r.kind == Kind::Login)
        .collect();
    assert_eq!(logins.len(), 1, "login records: {logins:#?}");
    assert_eq!(logins[0].cap.as_deref(), Some("login"));

    match mode {
        TestMode::Login => {
            // The viewer never requested nor learnt an upstream URL: everything is capscope's.
            let upstream: Vec<String> = env.grid.issued_urls();
            assert!(!upstream.is_empty());
            for url in j.requests.iter().map(|r| &r.url).chain(&j.learnt_urls) {
                assert!(url.starts_with(&env.proxy_base), "the viewer saw {url}");
                assert!(!upstream.iter().any(|u| url.contains(u.as_str())), "{url}");
            }
            // Event-queue polls, which capscope runs itself, are recorded like every routed
            // request: the upstream URL, and the /cap/ URL the viewer asked for.
            let polls: Vec<_> = env
                .records
                .all()
                .filter(|r| r.cap.as_deref() == Some("EventQueueGet") && r.is_final())
                .filter_map(|r| r.request.as_ref())
                .collect();
            assert!(!polls.is_empty());
            for req in polls {
                assert!(
                    env.grid
                        .regions
                        .iter()
                        .any(|g| req.url.starts_with(&g.base_url)),
                    "poll recorded at {}",
                    req.url
                );
                let asked = req.client_url.as_deref().unwrap_or_default();
                assert!(asked.starts_with("/cap/"), "poll asked at {asked:?}");
            }
            // Rewritten bodies differ from what the grid sent only in the rewritten URLs.
            let rewritten: Vec<_> = env
                .records
                .all()
                .filter(|r| r.kind != Kind::Event)
                .filter_map(|r| r.response.as_ref().map(|resp| (r, resp)))
                .filter(|(_, resp)| resp.body.original.is_some())
                .collect();
            assert!(
                rewritten.len() >= 4,
                "login, seeds, polls: {}",
                rewritten.len()
            );
            for (r, resp) in rewritten {
                let original = resp.body.original.as_ref().unwrap();
                assert_same_but_urls(&resp.body.data, original, &env.proxy_base, r);
            }
        }
        TestMode::HttpProxy => {
            // The viewer used the grid's own URLs, and nothing was rewritten.
            assert!(j.caps["EventQueueGet"].starts_with(&env.grid.regions[2].base_url));
            for r in env.records.all() {
                if let Some(resp) = &r.response {
                    assert!(
                        resp.body.original.is_none(),
                        "rewritten in proxy mode: {r:#?}"
                    );
                }
            }
        }
    }
    env.proxy.shutdown().await;
}

/// Both bodies decode (LLSD or XML-RPC) and are equal once every URL pointing at capscope in `data`
/// is allowed to stand for any URL in `original`.
fn assert_same_but_urls(data: &[u8], original: &[u8], proxy_base: &str, r: &Record) {
    if let (Ok((_, new)), Ok((_, old))) = (lite::rpc_parse(data), lite::rpc_parse(original)) {
        assert!(
            rpc_same_but_urls(&new, &old, proxy_base),
            "login reply {r:#?}"
        );
        return;
    }
    let decode = |b: &[u8]| -> Value {
        let format = llsd::detect(None, b).unwrap_or(llsd::Format::Xml);
        match format {
            llsd::Format::Xml => llsd::xml::from_slice(b),
            llsd::Format::Binary => llsd::binary::from_slice(b),
            llsd::Format::Notation => llsd::notation::from_slice(b),
        }
        .unwrap_or_else(|e| panic!("a rewritten body does not decode: {e}: {r:#?}"))
    };
    let (new, old) = (decode(data), decode(original));
    assert!(
        value_same_but_urls(&new, &old, proxy_base),
        "{new:#?}\nvs\n{old:#?}"
    );
}

fn is_url_swap(new: &str, old: &str, proxy_base: &str) -> bool {
    new == old || (new.starts_with(proxy_base) && old.starts_with("https://127.0.0.1:"))
}

fn value_same_but_urls(new: &Value, old: &Value, proxy_base: &str) -> bool {
    match (new, old) {
        (Value::String(a), Value::String(b)) | (Value::Uri(a), Value::Uri(b)) => {
            is_url_swap(a, b, proxy_base)
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|(x, y)| value_same_but_urls(x, y, proxy_base))
        }
        (Value::Map(a), Value::Map(b)) => {
            a.len() == b.len()
                && a.iter()
                    .zip(b.iter())
                    .all(|((ka, va), (kb, vb))| ka == kb && value_same_but_urls(va, vb, proxy_base))
        }
        _ => new.same(old),
    }
}

fn rpc_same_but_urls(new: &Rpc, old: &Rpc, proxy_base: &str) -> bool {
    match (new, old) {
        (Rpc::Str(a), Rpc::Str(b)) => is_url_swap(a, b, proxy_base),
        (Rpc::Array(a), Rpc::Array(b)) => {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|(x, y)| rpc_same_but_urls(x, y, proxy_base))
        }
        (Rpc::Struct(a), Rpc::Struct(b)) => {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|((ka, va), (kb, vb))| ka == kb && rpc_same_but_urls(va, vb, proxy_base))
        }
        _ => new == old,
    }
}

#[tokio::test]
async fn login_mode_session_is_recorded_named_and_rewritten_only_in_urls() {
    every_request_is_recorded_and_named(TestMode::Login).await;
}

#[tokio::test]
async fn http_proxy_mode_session_is_recorded_and_named_without_rewriting() {
    every_request_is_recorded_and_named(TestMode::HttpProxy).await;
}

async fn malformed_bodies_pass_unchanged(mode: TestMode) {
    let mut env = setup(mode).await;
    let v = env.viewer.clone();

    env.grid.break_next(Breakage::LoginReply);
    assert!(matches!(
        v.login().await,
        Err(ViewerError::LoginBody { .. })
    ));
    let login = v.login().await.unwrap();

    env.grid.break_next(Breakage::SeedReply);
    assert!(matches!(
        v.seed(&login.seed_capability).await,
        Err(ViewerError::Body { .. })
    ));
    let caps = v.seed(&login.seed_capability).await.unwrap();
    let eq = caps["EventQueueGet"].clone();
    assert!(
        matches!(v.poll(&eq, None).await.unwrap(), PollResult::Idle(_)),
        "stale first poll"
    );
    env.grid.break_next(Breakage::EventBody);
    assert!(matches!(
        v.poll(&eq, None).await,
        Err(ViewerError::Body { .. })
    ));
    // capscope is still serving, and the events queued meanwhile arrive.
    assert!(matches!(
        v.poll(&eq, None).await.unwrap(),
        PollResult::Events { .. }
    ));

    // The broken bodies are recorded as sent, with a note saying why they were not understood.
    let seed_url = login.seed_capability.clone();
    env.records
        .wait_for("records of the broken login, seed and poll", |records| {
            let broken = |pred: &dyn Fn(&Record) -> bool| {
                records
                    .values()
                    .any(|r| r.state != State::Open && pred(r) && has_decode_note(r))
            };
            let login_broken = broken(&|r| r.cap.as_deref() == Some("login"));
            let seed_broken = broken(&|r| is_exchange_for(r, "POST", &seed_url));
            let eq_broken = broken(&|r| r.cap.as_deref() == Some("EventQueueGet"));
            login_broken && seed_broken && eq_broken
        })
        .await;
    for r in env.records.all().filter(|r| has_decode_note(r)) {
        let resp = r.response.as_ref().unwrap();
        assert!(
            resp.body.original.is_none(),
            "a broken body was rewritten: {r:#?}"
        );
        assert!(
            llsd::xml::from_slice(&resp.body.data).is_err()
                && lite::rpc_parse(&resp.body.data).is_err(),
            "the recorded body is the broken one: {r:#?}"
        );
    }
    env.proxy.shutdown().await;
}

fn has_decode_note(r: &Record) -> bool {
    r.notes
        .iter()
        .chain(r.error.iter())
        .any(|n| n.contains("unchanged") || n.contains("not LLSD") || n.contains("not well-formed"))
}

#[tokio::test]
async fn malformed_bodies_pass_unchanged_in_login_mode() {
    malformed_bodies_pass_unchanged(TestMode::Login).await;
}

#[tokio::test]
async fn malformed_bodies_pass_unchanged_in_http_proxy_mode() {
    malformed_bodies_pass_unchanged(TestMode::HttpProxy).await;
}

async fn dropped_poll_loses_no_event(mode: TestMode) {
    let env = setup(mode).await;
    let v = env.viewer.clone();
    let login = v.login().await.unwrap();
    let caps = v.seed(&login.seed_capability).await.unwrap();
    let eq = caps["EventQueueGet"].clone();
    let _stale = v.poll(&eq, None).await.unwrap();
    let PollResult::Events { id, .. } = v.poll(&eq, None).await.unwrap() else {
        panic!("the greeting events were queued");
    };

    // A poll goes out and is dropped by the viewer while the grid holds it.
    let before = env.grid.polls_received();
    let in_flight = {
        let v = v.clone();
        let eq = eq.clone();
        tokio::spawn(async move { v.poll(&eq, Some(id)).await })
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    while env.grid.polls_received() == before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the poll never reached the grid"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    in_flight.abort();
    let _ = in_flight.await;

    // The grid writes the event into capscope's upstream poll and forgets it.
    env.grid
        .send_group_chat("Tester", "are you still there?")
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !env
        .grid
        .delivered_events()
        .iter()
        .any(|d| d.message == "ChatterBoxInvitation")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the grid never wrote the event"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // The viewer's next poll repeats the old ack and gets the event capscope kept.
    match v.poll(&eq, Some(id)).await.unwrap() {
        PollResult::Events { events, .. } => assert!(
            events.iter().any(|(m, _)| m == "ChatterBoxInvitation"),
            "{events:?}"
        ),
        other => panic!("the event was lost: {other:?}"),
    }
    env.proxy.shutdown().await;
}

#[tokio::test]
async fn dropped_poll_loses_no_event_in_login_mode() {
    dropped_poll_loses_no_event(TestMode::Login).await;
}

#[tokio::test]
async fn dropped_poll_loses_no_event_in_http_proxy_mode() {
    dropped_poll_loses_no_event(TestMode::HttpProxy).await;
}

/// The grid breaks one poll (`breakage`); the viewer's poll ends (however it ends), the broken poll's
/// record is published, and the next poll gets an event written afterwards: capscope serves on.
async fn a_broken_upstream_poll_is_recorded_and_polling_goes_on(
    mode: TestMode,
    breakage: Breakage,
) -> Vec<Arc<Record>> {
    let mut env = setup(mode).await;
    let v = env.viewer.clone();
    let login = v.login().await.unwrap();
    let caps = v.seed(&login.seed_capability).await.unwrap();
    let eq = caps["EventQueueGet"].clone();
    let _stale = v.poll(&eq, None).await.unwrap();
    let PollResult::Events { id, .. } = v.poll(&eq, None).await.unwrap() else {
        panic!("the greeting events were queued");
    };

    env.grid.break_next(breakage);
    let broken = tokio::time::timeout(WAIT, v.poll(&eq, Some(id)))
        .await
        .expect("the viewer's poll never ended");
    assert!(
        !matches!(broken, Ok(PollResult::Events { .. })),
        "{breakage:?}: {broken:?}"
    );

    env.grid
        .send_group_chat("Tester", "are you still there?")
        .unwrap();
    let mut got = false;
    for _ in 0..5 {
        if let Ok(PollResult::Events { events, .. }) = v.poll(&eq, Some(id)).await {
            got = events.iter().any(|(m, _)| m == "ChatterBoxInvitation");
            break;
        }
    }
    assert!(
        got,
        "{breakage:?}: the event after the broken poll never arrived"
    );
    let finished = |records: &BTreeMap<u64, Arc<Record>>| {
        records
            .values()
            .filter(|r| r.cap.as_deref() == Some("EventQueueGet") && r.state != State::Open)
            .count()
            >= 4
    };
    env.records
        .wait_for("the records of every poll", finished)
        .await;
    let polls = env
        .records
        .all()
        .filter(|r| r.cap.as_deref() == Some("EventQueueGet"))
        .cloned()
        .collect();
    env.proxy.shutdown().await;
    polls
}

#[tokio::test]
async fn a_poll_the_grid_closes_early_is_recorded_and_polling_goes_on() {
    for mode in [TestMode::Login, TestMode::HttpProxy] {
        let polls =
            a_broken_upstream_poll_is_recorded_and_polling_goes_on(mode, Breakage::PollClosed)
                .await;
        assert!(
            polls.iter().all(|r| r.state != State::Open),
            "{mode:?}: a poll record was left open"
        );
    }
}

#[tokio::test]
async fn a_poll_answered_404_region_gone_reaches_the_viewer_and_is_recorded() {
    for mode in [TestMode::Login, TestMode::HttpProxy] {
        let polls =
            a_broken_upstream_poll_is_recorded_and_polling_goes_on(mode, Breakage::PollGone).await;
        assert!(
            polls
                .iter()
                .any(|r| r.response.as_ref().is_some_and(|resp| resp.status == 404)),
            "{mode:?}: no poll record with the 404: {polls:#?}"
        );
    }
}
