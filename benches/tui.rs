//! The terminal UI's side of a busy session: how many records per second its update takes in with
//! its history full (so every record also pays for eviction), what one frame costs to draw, and what
//! a key press costs up to its frame. No terminal: frames are drawn into ratatui's test buffer, so
//! this is the UI's own work, not the terminal's.
//!
//! `cargo bench --bench tui` (docs/tui.md, "UI under load", has the figures and the live
//! measurement with the proxy.)

use bytes::Bytes;
use capscope::record::{Body, EventInfo, Header, Kind, Record, Request, Response, State};
use capscope::store::Limits;
use capscope::tui::state::Source;
use capscope::tui::{render, App};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;

/// Exchanges per measured batch (each is two versions: open, then final).
const BATCH: u64 = 10_000;

/// A viewer's login traffic: texture and mesh fetches with their bodies (one shared buffer, as the
/// tap shares frames), inventory calls, and an event-queue poll with an event now and then.
fn versions(first_id: u64, n: u64, body: &Bytes) -> Vec<Record> {
    let mut out = Vec::with_capacity(2 * n as usize);
    for id in first_id..first_id + n {
        let cap = match id % 10 {
            0 => "EventQueueGet",
            1 => "FetchInventoryDescendents2",
            2..=5 => "ViewerAsset",
            _ => "GetMesh2",
        };
        let mut r = Record::new(id, Kind::Http);
        r.started_us = 1_796_040_241_000_000 + id as i64 * 50;
        r.cap = Some(cap.into());
        r.region = Some("Capscope Plaza (1000, 1000)".into());
        r.request = Some(Request {
            method: "GET".into(),
            url: format!("https://asset-cdn.example.org/viewerasset/?texture_id={id:032x}"),
            client_url: None,
            version: "HTTP/1.1".into(),
            headers: vec![
                Header {
                    name: "Accept".into(),
                    value: "image/x-j2c".into(),
                },
                Header {
                    name: "User-Agent".into(),
                    value: "SecondLife/7.1.11 (bench)".into(),
                },
            ],
            body: Body::default(),
        });
        out.push(r.clone());
        r.state = State::Done;
        r.response = Some(Response {
            status: 200,
            version: "HTTP/1.1".into(),
            headers: vec![Header {
                name: "Content-Type".into(),
                value: "image/x-j2c".into(),
            }],
            body: Body::whole(body.clone()),
        });
        r.timings.done_us = Some(1_500);
        if id % 10 == 0 && id % 30 == 0 {
            let mut ev = Record::new(id + 1_000_000_000, Kind::Event);
            ev.state = State::Done;
            ev.parent = Some(id);
            ev.event = Some(EventInfo {
                message: "EnableSimulator".into(),
                body: Body::whole(&b"<llsd><map/></llsd>"[..]),
                ..EventInfo::default()
            });
            out.push(ev);
        }
        out.push(r);
    }
    out
}

/// A UI 120x40 whose history is full (100,000 records, the default limit).
fn full_app(body: &Bytes) -> (App, u64) {
    let mut app = App::new(Source::Live, Limits::default());
    app.resize(120, 40);
    let n = Limits::default().records as u64;
    for r in versions(1, n, body) {
        app.take(&r);
    }
    (app, n + 1)
}

fn bench(c: &mut Criterion) {
    let body = Bytes::from(vec![0x5a; 16 * 1024]);
    let (mut app, mut next) = full_app(&body);
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).expect("a test terminal");

    let mut group = c.benchmark_group("tui");
    group.throughput(Throughput::Elements(BATCH));
    group.bench_function("take_exchanges_history_full", |b| {
        b.iter_batched(
            || {
                let batch = versions(next, BATCH, &body);
                next += BATCH;
                batch
            },
            |batch| {
                for r in &batch {
                    app.take(r);
                }
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();

    let mut group = c.benchmark_group("tui");
    group.bench_function("frame_120x40_history_full", |b| {
        b.iter(|| {
            terminal.draw(|f| render::draw(f, &app)).expect("drawn");
        })
    });
    group.bench_function("key_up_then_frame", |b| {
        b.iter(|| {
            app.key(KeyEvent::new(KeyCode::Up, KeyModifiers::NONE));
            terminal.draw(|f| render::draw(f, &app)).expect("drawn");
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
