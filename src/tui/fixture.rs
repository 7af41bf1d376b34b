//! A small made-up session for the UI's tests and snapshots: a login, a seed that capscope rewrote,
//! event-queue polls (one with a teleport, one idle), cap calls and a body that is not LLSD. Fixed
//! times and ids, so screens are the same on every run.

use bytes::Bytes;

use crate::llsd::{self, Format, Value};
use crate::record::{Body, EventInfo, Header, Kind, Record, Request, Response, State};

/// 2026-11-30 12:04:01 UTC, in microseconds.
pub const T0: i64 = 1_796_040_241_000_000;

fn xml(v: &Value) -> Body {
    Body::whole(llsd::to_vec(v, Format::Xml))
}

fn map(items: Vec<(&str, Value)>) -> Value {
    Value::Map(items.into_iter().collect())
}

fn http(id: u64, at_ms: i64, method: &str, cap: &str, url: &str) -> Record {
    let mut r = Record::new(id, Kind::Http);
    r.started_us = T0 + at_ms * 1000;
    r.client = Some("127.0.0.1:50000".into());
    r.cap = Some(cap.into());
    r.region = Some("Capscope Plaza".into());
    r.request = Some(Request {
        method: method.into(),
        url: url.into(),
        client_url: Some(format!("http://127.0.0.1:8080/cap/{id:032x}")),
        version: "HTTP/1.1".into(),
        headers: vec![Header {
            name: "Content-Type".into(),
            value: "application/llsd+xml".into(),
        }],
        body: Body::default(),
    });
    r
}

fn done(mut r: Record, status: u16, body: Body, took_us: u64) -> Record {
    r.state = State::Done;
    r.response = Some(Response {
        status,
        version: "HTTP/1.1".into(),
        headers: vec![Header {
            name: "Content-Type".into(),
            value: "application/llsd+xml".into(),
        }],
        body,
    });
    r.timings.done_us = Some(took_us);
    r
}

/// The records of the session, each version in the order a bus would publish them.
pub fn session() -> Vec<Record> {
    let mut out = Vec::new();
    let mut login = Record::new(1, Kind::Login);
    login.started_us = T0;
    login.state = State::Done;
    login.request = Some(Request {
        method: "POST".into(),
        url: "https://login.agni.example/cgi-bin/login.cgi".into(),
        client_url: Some("http://127.0.0.1:8080/login".into()),
        version: "HTTP/1.1".into(),
        headers: Vec::new(),
        body: Body::whole(
            &b"<methodCall><params><param><value><struct><member><name>first</name><value>\
<string>Demo</string></value></member><member><name>last</name><value><string>Resident</string>\
</value></member></struct></value></param></params></methodCall>"[..],
        ),
    });
    login.response = Some(Response {
        status: 200,
        body: Body::whole(&b"<methodResponse/>"[..]),
        ..Response::default()
    });
    login.timings.done_us = Some(120_000);
    out.push(login);

    let upstream = map(vec![
        (
            "EventQueueGet",
            Value::Uri("https://sim1.example:12043/CE/3b50".into()),
        ),
        (
            "FetchInventoryDescendents2",
            Value::Uri("https://sim1.example:12043/cap/32e8".into()),
        ),
    ]);
    let rewritten = map(vec![
        (
            "EventQueueGet",
            Value::Uri("http://127.0.0.1:8080/cap/aaaa".into()),
        ),
        (
            "FetchInventoryDescendents2",
            Value::Uri("http://127.0.0.1:8080/cap/bbbb".into()),
        ),
    ]);
    let mut seed_body = xml(&rewritten);
    seed_body.original = Some(Bytes::from(llsd::to_vec(&upstream, Format::Xml)));
    let mut seed = http(
        2,
        112,
        "POST",
        "Seed",
        "https://sim1.example:12043/cap/seed",
    );
    seed.notes.push("rewrote 2 cap URLs in place (xml)".into());
    out.push(seed.clone());
    out.push(done(seed, 200, seed_body, 800));

    let poll = http(
        3,
        120,
        "POST",
        "EventQueueGet",
        "https://sim1.example:12043/CE/3b50",
    );
    out.push(poll.clone());
    let fetch = http(
        4,
        130,
        "POST",
        "FetchInventoryDescendents2",
        "https://sim1.example:12043/cap/32e8",
    );
    out.push(fetch.clone());
    out.push(done(
        fetch,
        200,
        xml(&map(vec![("folders", Value::Array(vec![]))])),
        700,
    ));

    let mut tp = Record::new(5, Kind::Event);
    tp.started_us = T0 + 5_120_000;
    tp.state = State::Done;
    tp.parent = Some(3);
    tp.cap = Some("EventQueueGet".into());
    tp.region = Some("Capscope Plaza".into());
    tp.notes
        .push("Info[0].RegionHandle = (1001, 1000) [256256, 256000 m]".into());
    tp.event = Some(EventInfo {
        message: "TeleportFinish".into(),
        index: 0,
        queue_id: Some(7),
        body: xml(&map(vec![(
            "Info",
            Value::Array(vec![map(vec![
                (
                    "RegionHandle",
                    Value::Binary(vec![0, 3, 0xe9, 0, 0, 3, 0xe8, 0]),
                ),
                ("SimIP", Value::Binary(vec![127, 0, 0, 1])),
                ("SimPort", Value::Integer(13005)),
                ("TeleportFlags", Value::Binary(vec![0, 0, 0x20, 0x08])),
                (
                    "SeedCapability",
                    Value::Uri("http://127.0.0.1:8080/cap/cccc".into()),
                ),
            ])]),
        )])),
    });
    out.push(tp);
    let mut poll_done = done(poll, 200, Body::whole(vec![b'x'; 754]), 5_000_000);
    poll_done.notes.push("1 event, id 7: TeleportFinish".into());
    out.push(poll_done);

    let idle = http(
        6,
        5_200,
        "POST",
        "EventQueueGet",
        "https://sim2.example:12043/CE/9f00",
    );
    out.push(idle.clone());
    let mut idle = done(idle, 502, Body::default(), 20_000_000);
    idle.notes.push("idle poll (502)".into());
    out.push(idle);

    let asset = http(
        7,
        6_000,
        "GET",
        "ViewerAsset",
        "https://asset.example/vwr?texture_id=1",
    );
    let mut asset = done(
        asset,
        200,
        Body::whole(vec![0xffu8, 0xd8, 0xff, 0xe0, 0, 16]),
        14_000,
    );
    asset.region = Some("Capscope Dunes".into());
    out.push(asset);

    let broken = http(
        8,
        6_500,
        "POST",
        "GetObjectCost",
        "https://sim2.example:12043/cap/cost",
    );
    let mut broken = done(
        broken,
        500,
        Body::whole(&b"<llsd><map><key>error</key><string>oops"[..]),
        2_100,
    );
    broken.region = Some("Capscope Dunes".into());
    out.push(broken);
    out
}
