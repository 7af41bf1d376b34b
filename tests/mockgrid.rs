//! The simulated grid on its own, with the scripted viewer pointed straight at it: login (accepted and
//! refused), the seed, the event-queue script (neighbour, teleport, crossing, chat), the caps, the
//! one-time uploader, and the malformed replies the grid can be told to send.

use std::time::Duration;

use capscope::llsd::Value;
use capscope::mockgrid::viewer::{PollResult, Viewer, ViewerConfig, ViewerError, CAP_NAMES};
use capscope::mockgrid::{
    asset_byte, lite, Breakage, HttpClient, MockGrid, MockGridConfig, MockGridHandle,
};
use http::Method;

/// A safety net for waits that should end much sooner; no test depends on how long anything takes.
const WAIT: Duration = Duration::from_secs(20);

async fn grid() -> MockGridHandle {
    MockGrid::start(MockGridConfig::for_tests()).await.unwrap()
}

fn viewer(g: &MockGridHandle) -> Viewer {
    Viewer::new(ViewerConfig::new(g.login_url.clone(), g.ca_pem.clone())).unwrap()
}

#[tokio::test]
async fn login_with_the_demo_password_gives_every_member_a_viewer_reads() {
    let g = grid().await;
    let v = viewer(&g);
    let login = v.login().await.unwrap();
    let m = &login.members;
    for name in [
        "sim_ip",
        "seed_capability",
        "agent_id",
        "session_id",
        "secure_session_id",
        "look_at",
        "home",
        "first_name",
        "last_name",
    ] {
        assert!(
            m.member(name).and_then(lite::Rpc::as_str).is_some(),
            "{name}"
        );
    }
    for name in [
        "sim_port",
        "circuit_code",
        "region_x",
        "region_y",
        "seconds_since_epoch",
        "http_port",
    ] {
        assert!(
            m.member(name).and_then(lite::Rpc::as_int).is_some(),
            "{name}"
        );
    }
    assert_eq!(
        m.member("sim_port").and_then(lite::Rpc::as_int),
        Some(i32::from(g.regions[0].port))
    );
    assert_eq!(
        m.member("region_x").and_then(lite::Rpc::as_int),
        Some((g.regions[0].grid_x * 256) as i32)
    );
    let seed = &login.seed_capability;
    assert!(
        seed.starts_with(&format!("{}/CAPS/", g.regions[0].base_url)) && seed.ends_with("0000/"),
        "OpenSim-shaped seed: {seed}"
    );
    // Notation inside strings, as OpenSim and Second Life send them.
    let home = m.member("home").and_then(lite::Rpc::as_str).unwrap();
    assert!(home.contains("'region_handle':[r"), "{home}");
}

#[tokio::test]
async fn login_reply_is_labelled_llsd_xml_but_is_xml_rpc() {
    let g = grid().await;
    let client = HttpClient::new(None, &[], Duration::from_secs(10)).unwrap();
    let call = lite::rpc_call(
        "login_to_simulator",
        &lite::Rpc::Struct(vec![
            ("first".into(), lite::Rpc::s("Demo")),
            ("last".into(), lite::Rpc::s("Resident")),
            (
                "passwd".into(),
                lite::Rpc::s("$1$00000000000000000000000000000000"),
            ),
        ]),
    );
    // Any path works, as on an OpenSim standalone.
    let url = format!("{}some/other/path", g.login_url);
    let reply = client
        .send(Method::POST, &url, Some("text/xml"), call.into())
        .await
        .unwrap();
    assert_eq!(reply.header("content-type"), Some("application/llsd+xml"));
    assert!(reply.body.starts_with(b"<?xml"));
    let (_, members) = lite::rpc_parse(&reply.body).unwrap();
    assert_eq!(
        members.member("login").and_then(lite::Rpc::as_str),
        Some("false")
    );
}

#[tokio::test]
async fn wrong_password_is_refused_with_reason_and_message() {
    let g = grid().await;
    let mut config = ViewerConfig::new(g.login_url.clone(), g.ca_pem.clone());
    config.password = "not the password".into();
    let v = Viewer::new(config).unwrap();
    match v.login().await {
        Err(ViewerError::LoginRefused { reason, message }) => {
            assert_eq!(reason, "key");
            assert!(message.contains("password"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn seed_grants_a_subset_with_urls_outside_the_seed_prefix() {
    let g = grid().await;
    let v = viewer(&g);
    let login = v.login().await.unwrap();
    let caps = v.seed(&login.seed_capability).await.unwrap();
    assert!(caps.len() < CAP_NAMES.len(), "a subset: {caps:?}");
    assert!(caps.keys().all(|k| CAP_NAMES.contains(&k.as_str())));
    let eq = &caps["EventQueueGet"];
    assert!(
        eq.starts_with(&format!("{}/CE/", g.regions[0].base_url)),
        "{eq}"
    );
    for (name, url) in &caps {
        assert!(
            !url.starts_with(&login.seed_capability),
            "{name} shares the seed's prefix: {url}"
        );
    }
    // Asking again gives the same URLs (one upstream URL per session and region).
    assert_eq!(v.seed(&login.seed_capability).await.unwrap(), caps);
    let seed_reply = v
        .journal()
        .requests
        .iter()
        .filter(|r| r.url == login.seed_capability)
        .count();
    assert_eq!(seed_reply, 2);
}

#[tokio::test]
async fn first_poll_is_stale_then_idle_polls_end_in_an_empty_502() {
    let mut config = MockGridConfig::for_tests();
    config.eq_hold = Duration::from_millis(50);
    let g = MockGrid::start(config).await.unwrap();
    let v = viewer(&g);
    let login = v.login().await.unwrap();
    // The seed POST greets the agent (events queued), yet the first poll is answered as stale.
    let caps = v.seed(&login.seed_capability).await.unwrap();
    let eq = &caps["EventQueueGet"];
    match v.poll(eq, None).await.unwrap() {
        PollResult::Idle(s) => assert_eq!(s, http::StatusCode::BAD_GATEWAY),
        other => panic!("the first poll is stale: {other:?}"),
    }
    // The greeting events now arrive, then the queue is idle.
    let id = match v.poll(eq, None).await.unwrap() {
        PollResult::Events { id, events } => {
            let names: Vec<_> = events.iter().map(|(m, _)| m.as_str()).collect();
            assert!(names.contains(&"EstablishAgentCommunication"), "{names:?}");
            id
        }
        other => panic!("expected the greeting: {other:?}"),
    };
    match v.poll(eq, Some(id)).await.unwrap() {
        PollResult::Idle(s) => assert_eq!(s, http::StatusCode::BAD_GATEWAY),
        other => panic!("expected an idle poll: {other:?}"),
    }
}

#[tokio::test]
async fn events_are_lost_once_written_whatever_the_next_ack() {
    let g = grid().await;
    let v = viewer(&g);
    let login = v.login().await.unwrap();
    let caps = v.seed(&login.seed_capability).await.unwrap();
    let eq = &caps["EventQueueGet"];
    let _stale = v.poll(eq, None).await.unwrap();
    let first = v.poll(eq, None).await.unwrap();
    let PollResult::Events { id, .. } = first else {
        panic!("expected events: {first:?}")
    };
    g.send_group_chat("Tester", "hello").unwrap();
    // The viewer "loses" this answer and polls again with the old ack: OpenSim does not resend.
    let lost = v.poll(eq, Some(id)).await.unwrap();
    assert!(matches!(lost, PollResult::Events { .. }), "{lost:?}");
    let again = v.poll(eq, Some(id)).await.unwrap();
    assert!(matches!(again, PollResult::Idle(_)), "{again:?}");
    let delivered = g.delivered_events();
    assert_eq!(
        delivered
            .iter()
            .filter(|d| d.message == "ChatterBoxInvitation")
            .count(),
        1
    );
}

#[tokio::test]
async fn scripted_viewer_follows_neighbour_teleport_and_crossing() {
    let g = grid().await;
    let v = viewer(&g);
    let running = v.start().await.unwrap();
    assert!(
        v.wait_until(WAIT, |j| j.neighbours.len() == 1).await,
        "EstablishAgentCommunication's seed is asked: {:?}",
        v.journal()
    );

    g.trigger_teleport(1).unwrap();
    assert!(v.wait_until(WAIT, |j| j.region_switches.len() == 1).await);
    let j = v.journal();
    let tp = j
        .events
        .iter()
        .find(|e| e.message == "TeleportFinish")
        .unwrap();
    let info = tp.body.get("Info").and_then(|i| i.index(0)).unwrap();
    assert_eq!(info.get("SimIP"), Some(&Value::Binary(vec![127, 0, 0, 1])));
    assert_eq!(
        info.get("RegionHandle"),
        Some(&Value::Binary(g.regions[1].handle().to_be_bytes().to_vec()))
    );
    assert!(matches!(info.get("SeedCapability"), Some(Value::Uri(_))));
    // The neighbour's seed came back in TeleportFinish: the same URL.
    assert_eq!(
        j.region_switches[0],
        *j.neighbours.keys().next().unwrap(),
        "the same upstream seed arrives twice"
    );
    assert!(j.caps["EventQueueGet"].starts_with(&g.regions[1].base_url));

    g.trigger_crossing(2).unwrap();
    assert!(v.wait_until(WAIT, |j| j.region_switches.len() == 2).await);
    let j = v.journal();
    assert!(j.caps["EventQueueGet"].starts_with(&g.regions[2].base_url));
    let crossed = j
        .events
        .iter()
        .find(|e| e.message == "CrossedRegion")
        .unwrap();
    let rd = crossed
        .body
        .get("RegionData")
        .and_then(|r| r.index(0))
        .unwrap();
    assert_eq!(
        rd.get("SimPort").and_then(Value::as_integer),
        Some(i32::from(g.regions[2].port))
    );

    g.send_group_chat("Tester", "welcome").unwrap();
    assert!(
        v.wait_until(WAIT, |j| j
            .events
            .iter()
            .any(|e| e.message == "ChatterBoxInvitation"))
            .await
    );
    // Every event the grid wrote reached the viewer, ids increasing per queue.
    let j = v.journal();
    assert_eq!(g.delivered_events().len(), j.events.len());
    let mut by_queue: std::collections::BTreeMap<&str, Vec<i32>> = Default::default();
    for e in &j.events {
        by_queue.entry(&e.region_seed).or_default().push(e.queue_id);
    }
    for ids in by_queue.values() {
        assert!(ids.windows(2).all(|w| w[0] <= w[1]), "{ids:?}");
    }
    drop(running);
}

#[tokio::test]
async fn caps_answer_like_the_real_ones() {
    let g = grid().await;
    let v = viewer(&g);
    let running = v.start().await.unwrap();
    let root = running.login.inventory_root;
    assert_eq!(v.fetch_inventory(root.unwrap()).await.unwrap(), 5);
    assert_eq!(v.fetch_library(root.unwrap()).await.unwrap(), 5);
    let ids = [uuid::Uuid::from_u128(1), uuid::Uuid::from_u128(2)];
    assert_eq!(v.display_names(&ids).await.unwrap().len(), 2);
    let features = v.simulator_features().await.unwrap();
    assert_eq!(
        features
            .get("OpenSimExtras")
            .and_then(|e| e.get("region-name"))
            .and_then(Value::as_str),
        Some(g.regions[0].name.as_str())
    );
    assert!(v.object_cost(&ids).await.unwrap() > lite::BINARY_HEADER.len());
    let texture = uuid::Uuid::from_u128(99);
    let body = v.asset(texture).await.unwrap();
    assert_eq!(body.len(), MockGridConfig::for_tests().asset_size);
    let t = texture.to_string();
    assert!(body
        .iter()
        .enumerate()
        .step_by(4099)
        .all(|(i, b)| *b == asset_byte(&t, i)));
    v.upload().await.unwrap();
    assert_eq!(v.activity_round(root).await, 0, "{:?}", v.journal().errors);
    drop(running);
}

#[tokio::test]
async fn raw_replies_carry_the_grid_quirks() {
    let g = grid().await;
    let v = viewer(&g);
    let login = v.login().await.unwrap();
    let caps = v.seed(&login.seed_capability).await.unwrap();
    let client = HttpClient::new(
        None,
        std::slice::from_ref(&g.ca_pem),
        Duration::from_secs(10),
    )
    .unwrap();
    let features = client
        .send(
            Method::GET,
            &caps["SimulatorFeatures"],
            None,
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        features.header("content-type"),
        Some("text/html;charset=UTF-8")
    );
    let fetch =
        capscope::llsd::xml::to_vec(&capscope::mockgrid::viewer::fetch_request(uuid::Uuid::nil()));
    let lib = client
        .send(
            Method::POST,
            &caps["FetchLibDescendents2"],
            Some("application/llsd+xml"),
            fetch.into(),
        )
        .await
        .unwrap();
    assert_eq!(lib.header("content-encoding"), Some("gzip"));
    assert_eq!(&lib.body[..2], &[0x1f, 0x8b]);
    let costs = client
        .send(
            Method::POST,
            &caps["GetObjectCost"],
            Some("application/llsd+xml"),
            "<llsd><map><key>object_ids</key><array /></map></llsd>".into(),
        )
        .await
        .unwrap();
    assert_eq!(
        costs.header("content-type"),
        Some("application/llsd+binary")
    );
    assert!(costs.body.starts_with(lite::BINARY_HEADER));
    // Second Life's "binary/octet-stream" Content-Encoding on a body that is not encoded.
    let texture = uuid::Uuid::from_u128(7).to_string();
    let asset = client
        .send(
            Method::GET,
            &format!("{}?texture_id={texture}", caps["ViewerAsset"]),
            None,
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        asset.header("content-encoding"),
        Some("binary/octet-stream")
    );
    assert_eq!(asset.body[5], asset_byte(&texture, 5));
    // Unknown cap paths are 404s.
    let unknown = client
        .send(
            Method::GET,
            &format!("{}/{}/", g.regions[0].base_url, uuid::Uuid::nil()),
            None,
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(unknown.status, http::StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn uploader_is_a_one_time_cap() {
    let g = grid().await;
    let v = viewer(&g);
    let _running = v.start().await.unwrap();
    let (_, uploader) = v.upload().await.unwrap();
    assert!(v.journal().learnt_urls.contains(&uploader));
    let client = HttpClient::new(
        None,
        std::slice::from_ref(&g.ca_pem),
        Duration::from_secs(10),
    )
    .unwrap();
    let second = client
        .send(Method::POST, &uploader, None, "again".into())
        .await
        .unwrap();
    assert_eq!(second.status, http::StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn grid_can_send_malformed_login_seed_and_event_bodies() {
    let g = grid().await;
    let v = viewer(&g);
    g.break_next(Breakage::LoginReply);
    assert!(matches!(
        v.login().await,
        Err(ViewerError::LoginBody { .. })
    ));
    let login = v.login().await.unwrap();
    g.break_next(Breakage::SeedReply);
    assert!(matches!(
        v.seed(&login.seed_capability).await,
        Err(ViewerError::Body { .. })
    ));
    let caps = v.seed(&login.seed_capability).await.unwrap();
    let eq = &caps["EventQueueGet"];
    let _stale = v.poll(eq, None).await.unwrap();
    g.break_next(Breakage::EventBody);
    assert!(matches!(
        v.poll(eq, None).await,
        Err(ViewerError::Body { .. })
    ));
    // The events queued meanwhile are still there for the next poll.
    assert!(matches!(
        v.poll(eq, None).await.unwrap(),
        PollResult::Events { .. }
    ));
}

#[tokio::test]
async fn the_grid_trusts_nobody_else_and_the_viewer_trusts_only_its_ca() {
    let g = grid().await;
    let other = MockGrid::start(MockGridConfig::for_tests()).await.unwrap();
    // A viewer that trusts another grid's CA cannot reach this grid's regions.
    let v = Viewer::new(ViewerConfig::new(g.login_url.clone(), other.ca_pem.clone())).unwrap();
    let login = v.login().await.unwrap();
    assert!(matches!(
        v.seed(&login.seed_capability).await,
        Err(ViewerError::Http(
            capscope::mockgrid::ClientError::Tls { .. }
        ))
    ));
    g.shutdown().await;
    other.shutdown().await;
}
