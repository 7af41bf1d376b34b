//! Capture throughput: writing records (masking included) and reading them back, plain and zstd.
//! Small LLSD records, and records like the shared bench's small GETs (`https-small-*`: a few
//! request headers, nginx's response headers, 200 bytes), are reported as records/s; 1 MiB binary
//! bodies (what a viewer's textures and meshes look like to the writer, and what the shared bench's
//! `https-1m-c4` workload sends) as bytes/s.
//!
//! `cargo bench --bench capture`

use capscope::capture::{FileHeader, Reader, Writer};
use capscope::record::{Body, Header as H, Kind, Record, Request, Response, State};
use std::path::Path;

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkGroup, Criterion, Throughput,
};

/// Records per benchmark iteration.
const RECORDS: usize = 10_000;

fn records() -> Vec<Record> {
    (0..RECORDS)
        .map(|i| {
            let mut r = Record::new(i as u64, Kind::Http);
            r.state = State::Done;
            r.cap = Some("FetchInventoryDescendents2".into());
            r.region = Some("Da Boom".into());
            r.request = Some(Request {
                method: "POST".into(),
                url: format!("https://sim.example.org:12043/cap/{i:08x}"),
                version: "HTTP/1.1".into(),
                headers: vec![
                    H { name: "Content-Type".into(), value: "application/llsd+xml".into() },
                    H { name: "Cookie".into(), value: "a=1; b=2".into() },
                ],
                body: Body::whole(format!(
                    "<llsd><map><key>folders</key><array><map><key>folder_id</key><uuid>{:08x}-0000-0000-0000-000000000000</uuid></map></array></map></llsd>",
                    i
                )),
                ..Request::default()
            });
            r.response = Some(Response {
                status: 200,
                version: "HTTP/1.1".into(),
                headers: vec![H { name: "Content-Type".into(), value: "application/llsd+xml".into() }],
                body: Body::whole(format!(
                    "<llsd><map><key>folders</key><array><map><key>items</key><array>{}</array></map></array></map></llsd>",
                    (0..8).map(|j| format!("<map><key>name</key><string>Object {i}-{j}</string><key>asset_id</key><uuid>00000000-0000-0000-0000-{j:012}</uuid></map>")).collect::<String>()
                )),
            });
            r
        })
        .collect()
}

/// Records like the shared bench's `https-small-*` workloads leave: a GET through a CONNECT tunnel,
/// the client's few request headers, nginx's response headers and a 200-byte body.
fn small_get_records() -> Vec<Record> {
    let header = |name: &str, value: &str| H {
        name: name.into(),
        value: value.into(),
    };
    (0..RECORDS)
        .map(|i| {
            let mut r = Record::new(i as u64, Kind::Http);
            r.state = State::Done;
            r.client = Some(format!("127.0.0.1:{}", 40000 + i % 16).into());
            r.timings.request_sent_us = Some(40);
            r.timings.response_headers_us = Some(310);
            r.timings.done_us = Some(325);
            r.request = Some(Request {
                method: "GET".into(),
                url: "https://127.0.0.1:39123/small".into(),
                version: "HTTP/1.1".into(),
                headers: vec![
                    header("user-agent", "oha/1.8.0"),
                    header("accept", "*/*"),
                    header("host", "127.0.0.1:39123"),
                ],
                ..Request::default()
            });
            r.response = Some(Response {
                status: 200,
                version: "HTTP/1.1".into(),
                headers: vec![
                    header("server", "nginx/1.22.1"),
                    header("date", "Tue, 01 Dec 2026 05:21:35 GMT"),
                    header("content-type", "application/octet-stream"),
                    header("content-length", "200"),
                    header("last-modified", "Tue, 01 Dec 2026 04:58:12 GMT"),
                    header("etag", "\"692d2e14-c8\""),
                    header("accept-ranges", "bytes"),
                ],
                body: Body::whole(vec![b'x'; 200]),
            });
            r
        })
        .collect()
}

/// Bytes per large body.
const LARGE_BODY: usize = 1024 * 1024;
/// Large-body records per benchmark iteration.
const LARGE_RECORDS: usize = 64;

/// Records with a 1 MiB body that does not compress (the bench's `/1m`: random bytes), a different
/// one each (zstd would otherwise find each body in the one before it).
fn large_records() -> Vec<Record> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut body = || -> bytes::Bytes {
        (0..LARGE_BODY)
            .map(|_| {
                // xorshift: incompressible, and no secret field name by chance.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect::<Vec<u8>>()
            .into()
    };
    (0..LARGE_RECORDS)
        .map(|i| {
            let mut r = Record::new(i as u64, Kind::Http);
            r.state = State::Done;
            r.request = Some(Request {
                method: "GET".into(),
                url: "https://127.0.0.1:8443/1m".into(),
                version: "HTTP/1.1".into(),
                ..Request::default()
            });
            r.response = Some(Response {
                status: 200,
                version: "HTTP/1.1".into(),
                headers: vec![H {
                    name: "Content-Type".into(),
                    value: "application/octet-stream".into(),
                }],
                body: Body::whole(body()),
            });
            r
        })
        .collect()
}

/// Benches writing `recs` to `path` (flushing every `batch` records, as the writer task does after
/// each batch) and reading the finished file back; creating the file and syncing it at the end of a
/// session are left out of the timing.
fn write_and_read(
    group: &mut BenchmarkGroup<'_, WallTime>,
    path: &Path,
    label: &str,
    recs: &[Record],
    batch: usize,
) {
    group.bench_function(format!("write {label}"), |b| {
        b.iter_batched(
            || Writer::create(path, FileHeader::new(None, None, None), false).unwrap(),
            |mut w| {
                for chunk in recs.chunks(batch) {
                    for r in chunk {
                        w.write_record(r).unwrap();
                    }
                    w.flush().unwrap();
                }
                w
            },
            BatchSize::PerIteration,
        )
    });
    // Leave a finished file for the reader.
    let mut w = Writer::create(path, FileHeader::new(None, None, None), false).unwrap();
    for r in recs {
        w.write_record(r).unwrap();
    }
    w.finish().unwrap();
    group.bench_function(format!("read {label}"), |b| {
        b.iter(|| {
            let c = Reader::open(path).unwrap();
            assert_eq!(c.records.len(), recs.len());
        })
    });
}

fn bench_large(c: &mut Criterion) {
    let recs = large_records();
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("capture-large");
    group.throughput(Throughput::Bytes((LARGE_RECORDS * LARGE_BODY) as u64));
    group.sample_size(10);
    for name in ["l.jsonl", "l.jsonl.zst"] {
        let path = dir.path().join(name);
        write_and_read(&mut group, &path, &format!("1 MiB bodies {name}"), &recs, 1);
    }
    group.finish();
}

fn bench(c: &mut Criterion) {
    let recs = records();
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("capture");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.sample_size(10);
    for name in ["b.jsonl", "b.jsonl.zst"] {
        let path = dir.path().join(name);
        write_and_read(&mut group, &path, name, &recs, 256);
    }
    let small = small_get_records();
    let path = dir.path().join("s.jsonl");
    write_and_read(&mut group, &path, "small GETs s.jsonl", &small, 256);
    group.finish();
}

criterion_group!(benches, bench, bench_large);
criterion_main!(benches);
