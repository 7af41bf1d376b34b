//! Filter evaluation throughput over synthetic records: name terms (no body decoding), path
//! predicates (one LLSD XML decode per record), and free text. Reported as records/s.
//!
//! `cargo bench --bench filter`

use capscope::filter::Filter;
use capscope::record::{Body, EventInfo, Kind, Record, Request, Response, State};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

/// Records per benchmark iteration.
const RECORDS: usize = 10_000;

const CAPS: &[&str] = &[
    "EventQueueGet",
    "FetchInventoryDescendents2",
    "GetTexture",
    "SimulatorFeatures",
    "Seed",
    "GetMesh2",
];

fn records() -> Vec<Record> {
    (0..RECORDS)
        .map(|i| {
            if i % 4 == 3 {
                let mut r = Record::new(i as u64, Kind::Event);
                r.state = State::Done;
                r.parent = Some(i as u64 - 1);
                r.event = Some(EventInfo {
                    message: if i % 8 == 3 { "TeleportFinish" } else { "ParcelProperties" }.into(),
                    index: 0,
                    queue_id: Some(i as i64),
                    body: Body::whole(format!(
                        "<llsd><map><key>Info</key><array><map><key>SimPort</key><integer>{}</integer>\
                         <key>SimIP</key><binary>fwAAAQ==</binary><key>SeedCapability</key>\
                         <uri>http://127.0.0.1:9000/CAPS/{i:08}0000/</uri><key>LocationID</key>\
                         <integer>4</integer></map></array></map></llsd>",
                        13000 + i % 10
                    )),
                });
                r
            } else {
                let mut r = Record::new(i as u64, Kind::Http);
                r.state = State::Done;
                r.cap = Some(CAPS[i % CAPS.len()].into());
                r.region = Some(format!("Region {}", i % 7));
                r.request = Some(Request {
                    method: if i % 3 == 0 { "GET" } else { "POST" }.into(),
                    url: format!("https://sim{}.example.org:12043/cap/{i:08x}", i % 5),
                    version: "HTTP/1.1".into(),
                    body: Body::whole(format!(
                        "<llsd><map><key>ack</key><integer>{}</integer><key>done</key><boolean>false</boolean></map></llsd>",
                        i % 100
                    )),
                    ..Request::default()
                });
                r.response = Some(Response {
                    status: if i % 10 == 0 { 502 } else { 200 },
                    version: "HTTP/1.1".into(),
                    body: Body::whole(format!(
                        "<llsd><map><key>folders</key><array><map><key>items</key><array>\
                         <map><key>name</key><string>Object {i}</string></map>\
                         <map><key>name</key><string>Box</string></map></array></map></array></map></llsd>"
                    )),
                    ..Response::default()
                });
                r
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let recs = records();
    let mut group = c.benchmark_group("filter");
    group.throughput(Throughput::Elements(RECORDS as u64));
    for (name, expr) in [
        ("cap_glob", "cap:Fetch*"),
        (
            "names_combined",
            "cap:EventQueueGet & status:5xx | event:Teleport* & !method:GET",
        ),
        (
            "event_path",
            "event:TeleportFinish & body.Info[0].SimPort == 13005",
        ),
        ("path_every_record", "body.Info[0].SimPort == 13005"),
        (
            "path_wildcards",
            "body.folders[*].items[*].name ~ \"Object 1*\"",
        ),
        ("req_path", "req.ack > 40"),
        ("free_text", "teleport"),
    ] {
        let f = Filter::parse(expr).unwrap();
        group.bench_function(name, |b| {
            b.iter(|| recs.iter().filter(|r| f.matches(black_box(r))).count())
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
