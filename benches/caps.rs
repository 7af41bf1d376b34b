//! The only body work on capscope's forwarding path is rewriting login, seed and event-queue bodies
//! (docs/caps.md); these measure it, plus the per-request cap lookup.
//!
//! Run: `cargo bench --bench caps`.

use std::hint::black_box;

use capscope::caps::event_queue::rewrite_events;
use capscope::caps::login::rewrite_login_reply;
use capscope::caps::registry::{CapKind, Registry};
use capscope::caps::seed::rewrite_seed;
use capscope::caps::Action;
use capscope::llsd::{self, Format, Map, Value};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};

const BASE: &str = "http://127.0.0.1:8080";
const SEED: &str = "http://127.0.0.1:9000/CAPS/11111111-2222-3333-4444-5555555555550000/";
/// OpenSim grants 48 caps to a current viewer's request.
const CAPS: usize = 48;

fn seed_value() -> Value {
    Value::Map(
        (0..CAPS)
            .map(|i| {
                (
                    format!("Cap{i}"),
                    Value::String(format!(
                        "http://127.0.0.1:9000/{i:08x}-0000-1111-2222-333344445555/"
                    )),
                )
            })
            .collect(),
    )
}

fn login_reply() -> Vec<u8> {
    // About the size of a real reply: an inventory skeleton of 300 folders around the seed.
    let mut s =
        String::from("<?xml version=\"1.0\"?><methodResponse><params><param><value><struct>");
    s.push_str("<member><name>inventory-skeleton</name><value><array><data>");
    for i in 0..300 {
        s.push_str(&format!(
            "<value><struct><member><name>name</name><value><string>Folder {i}</string></value></member>\
<member><name>folder_id</name><value><string>{i:08x}-0000-1111-2222-333344445555</string></value></member></struct></value>"
        ));
    }
    s.push_str("</data></array></value></member>");
    s.push_str(&format!(
        "<member><name>seed_capability</name><value><string>{SEED}</string></value></member>\
<member><name>region_x</name><value><i4>256000</i4></value></member>\
<member><name>region_y</name><value><i4>256000</i4></value></member>\
<member><name>login</name><value><string>true</string></value></member>\
</struct></value></param></params></methodResponse>"
    ));
    s.into_bytes()
}

fn events_body() -> Vec<u8> {
    let event = |message: &str, body: Value| {
        Value::Map(Map(vec![
            ("message".into(), Value::String(message.into())),
            ("body".into(), body),
        ]))
    };
    let eac = Value::Map(Map(vec![
        (
            "seed-capability".into(),
            Value::String("http://127.0.0.1:9001/CAPS/b0000/".into()),
        ),
        (
            "sim-ip-and-port".into(),
            Value::String("127.0.0.1:9001".into()),
        ),
    ]));
    let chat = Value::Map(Map(vec![(
        "Message".into(),
        Value::String("hello".repeat(20)),
    )]));
    let v = Value::Map(Map(vec![
        (
            "events".into(),
            Value::Array(vec![
                event("ChatterBoxInvitation", chat.clone()),
                event("EstablishAgentCommunication", eac),
                event("ChatterBoxInvitation", chat),
            ]),
        ),
        ("id".into(), Value::Integer(7)),
    ]));
    llsd::to_vec(&v, Format::Xml)
}

fn bench(c: &mut Criterion) {
    let reply = login_reply();
    c.bench_function("login reply rewrite (~40 KB XML-RPC)", |b| {
        b.iter_batched(
            || Registry::new(BASE),
            |mut reg| black_box(rewrite_login_reply(&reply, &mut reg, Action::Rewrite)),
            BatchSize::SmallInput,
        )
    });

    for format in Format::ALL {
        let body = llsd::to_vec(&seed_value(), format);
        let mut base = Registry::new(BASE);
        let region = base.add_region(SEED, None, None);
        c.bench_function(
            &format!("seed rewrite, {CAPS} caps, first time ({format})"),
            |b| {
                b.iter_batched(
                    || base.clone(),
                    |mut reg| black_box(rewrite_seed(&body, region, &mut reg, Action::Rewrite)),
                    BatchSize::SmallInput,
                )
            },
        );
    }

    let events = events_body();
    c.bench_function("event-queue rewrite, 3 events, one seed (xml)", |b| {
        let mut reg = Registry::new(BASE);
        b.iter(|| black_box(rewrite_events(&events, None, &mut reg, Action::Rewrite)))
    });

    let mut reg = Registry::new(BASE);
    let region = reg.add_region(SEED, None, None);
    for i in 0..CAPS {
        reg.grant(
            &format!("Cap{i}"),
            &format!("http://127.0.0.1:9000/{i:08x}-0000-1111-2222-333344445555/"),
            Some(region),
            CapKind::Normal,
        );
    }
    let url = "http://127.0.0.1:9000/0000002a-0000-1111-2222-333344445555/?texture_id=1";
    c.bench_function("cap lookup by URL among 49 caps on one host", |b| {
        b.iter(|| black_box(reg.lookup_url(black_box(url))))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
