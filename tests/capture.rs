//! Capture files end to end: writer -> file -> reader, secrets, crashes (a real SIGKILL), zstd, lag
//! markers, the v1 fixture, HAR export and `capscope dump`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use capscope::capture::{
    self, har, CaptureError, FileHeader, Line, Reader, Warning, Writer, FORMAT_VERSION,
};
use capscope::filter::Filter;
use capscope::record::{
    Body, Bus, EventInfo, Header as H, Kind, Record, Request, Response, State, Timings, TunnelInfo,
};

const PASSWD: &str = "$1$5f4dcc3b5aa765d61d8327deb882cf99";
const SECURE_ID: &str = "9b0a8c3e-1d2f-4a5b-8c7d-6e5f4a3b2c1d";
const COOKIE_VALUE: &str = "agni-session-0123456789";

fn h(name: &str, value: &str) -> H {
    H {
        name: name.into(),
        value: value.into(),
    }
}

fn done(id: u64, kind: Kind) -> Record {
    let mut r = Record::new(id, kind);
    r.state = State::Done;
    r.started_us = 1_795_615_323_000_000 + id as i64 * 1000;
    r.timings = Timings {
        request_sent_us: Some(100),
        response_headers_us: Some(1500),
        done_us: Some(2100),
    };
    r
}

fn login_record(id: u64) -> Record {
    let mut r = done(id, Kind::Login);
    r.client = Some("127.0.0.1:53312".into());
    r.request = Some(Request {
        method: "POST".into(),
        url: "http://127.0.0.1:9000/".into(),
        client_url: Some("http://127.0.0.1:8080/login".into()),
        version: "HTTP/1.1".into(),
        headers: vec![h("Content-Type", "text/xml"), h("Cookie", &format!("s={COOKIE_VALUE}"))],
        body: Body::whole(format!(
            "<?xml version=\"1.0\"?><methodCall><methodName>login_to_simulator</methodName><params>\
             <param><value><struct><member><name>first</name><value><string>Ann</string></value></member>\
             <member><name>passwd</name><value><string>{PASSWD}</string></value></member>\
             </struct></value></param></params></methodCall>"
        )),
    });
    r.response = Some(Response {
        status: 200,
        version: "HTTP/1.1".into(),
        headers: vec![
            h("Content-Type", "application/llsd+xml"),
            h("Set-Cookie", &format!("sid={COOKIE_VALUE}; Path=/; HttpOnly")),
        ],
        body: Body::whole(format!(
            "<?xml version=\"1.0\"?><methodResponse><params><param><value><struct>\
             <member><name>login</name><value><string>true</string></value></member>\
             <member><name>secure_session_id</name><value><string>{SECURE_ID}</string></value></member>\
             <member><name>seed_capability</name><value><string>http://127.0.0.1:9000/CAPS/abc0000/</string></value></member>\
             </struct></value></param></params></methodResponse>"
        )),
    });
    r
}

fn seed_record(id: u64) -> Record {
    let mut r = done(id, Kind::Http);
    r.cap = Some("Seed".into());
    r.region = Some("Da Boom".into());
    r.request = Some(Request {
        method: "POST".into(),
        url: "http://127.0.0.1:9000/CAPS/abc0000/".into(),
        version: "HTTP/1.1".into(),
        headers: vec![h("Content-Type", "application/llsd+xml")],
        body: Body::whole(
            "<llsd><array><string>EventQueueGet</string><string>FetchInventoryDescendents2</string></array></llsd>",
        ),
        ..Request::default()
    });
    r.response = Some(Response {
        status: 200,
        version: "HTTP/1.1".into(),
        headers: vec![h("Content-Type", "text/html;charset=UTF-8")],
        body: Body {
            original: Some(Bytes::from_static(
                b"<llsd><map><key>EventQueueGet</key><string>http://127.0.0.1:9000/CE/1</string></map></llsd>",
            )),
            ..Body::whole(
                "<llsd><map><key>EventQueueGet</key><string>http://127.0.0.1:8080/cap/t1</string></map></llsd>",
            )
        },
    });
    r.notes = vec!["rewritten".into()];
    r
}

fn poll_record(id: u64) -> Record {
    let mut r = done(id, Kind::Http);
    r.cap = Some("EventQueueGet".into());
    r.region = Some("Da Boom".into());
    r.request = Some(Request {
        method: "POST".into(),
        url: "http://127.0.0.1:9000/CE/1?x=a%20b&y".into(),
        version: "HTTP/1.1".into(),
        headers: vec![h("Authorization", "Bearer tok-123")],
        body: Body::whole("<llsd><map><key>ack</key><integer>41</integer><key>done</key><boolean>false</boolean></map></llsd>"),
        ..Request::default()
    });
    r.response = Some(Response {
        status: 200,
        version: "HTTP/1.1".into(),
        headers: vec![h("Content-Type", "application/llsd+xml")],
        body: Body::whole("<llsd><map><key>events</key><array><map><key>message</key><string>TeleportFinish</string><key>body</key><map><key>Info</key><array><map><key>SimPort</key><integer>13005</integer></map></array></map></map></array><key>id</key><integer>42</integer></map></llsd>"),
    });
    r
}

fn event_record(id: u64, parent: u64, index: usize, message: &str) -> Record {
    let mut r = done(id, Kind::Event);
    r.parent = Some(parent);
    r.region = Some("Da Boom".into());
    r.event = Some(EventInfo {
        message: message.into(),
        index,
        queue_id: Some(42),
        body: Body::whole(format!(
            "<llsd><map><key>Info</key><array><map><key>SimPort</key><integer>13005</integer></map></array>\
             <key>secure_session_id</key><uuid>{SECURE_ID}</uuid></map></llsd>"
        )),
    });
    r
}

fn failed_record(id: u64) -> Record {
    let mut r = done(id, Kind::Http);
    r.state = State::Failed;
    r.cap = Some("GetTexture".into());
    r.request = Some(Request {
        method: "GET".into(),
        url: "https://sim.example:12043/cap/tex?texture_id=1".into(),
        version: "HTTP/1.1".into(),
        ..Request::default()
    });
    r.error = Some("upstream sim.example:12043 refused the connection".into());
    r
}

fn binary_record(id: u64) -> Record {
    let mut r = done(id, Kind::Http);
    r.cap = Some("GetMesh".into());
    r.request = Some(Request {
        method: "GET".into(),
        url: "https://asset.example/mesh?id=7".into(),
        version: "HTTP/2.0".into(),
        ..Request::default()
    });
    r.response = Some(Response {
        status: 206,
        version: "HTTP/2.0".into(),
        headers: vec![h("Content-Type", "application/vnd.ll.mesh")],
        body: Body {
            data: Bytes::from_static(&[0, 159, 146, 150, 255, 1]),
            size: 1_000_000,
            truncated: true,
            content_encoding: Some("gzip".into()),
            original: None,
        },
    });
    r
}

fn tunnel_record(id: u64) -> Record {
    let mut r = done(id, Kind::Tunnel);
    r.tunnel = Some(TunnelInfo {
        target: "voice.example:443".into(),
        bytes_up: 1200,
        bytes_down: 34000,
    });
    r
}

fn error_record(id: u64) -> Record {
    let mut r = done(id, Kind::Error);
    r.state = State::Failed;
    r.client = Some("127.0.0.1:50000".into());
    r.error = Some("TLS handshake with the viewer failed: unknown CA".into());
    r
}

/// One finished record of every kind (plus a failed exchange and a binary body).
fn sample() -> Vec<Record> {
    vec![
        login_record(1),
        seed_record(2),
        poll_record(3),
        event_record(4, 3, 0, "TeleportFinish"),
        event_record(5, 3, 1, "EnableSimulator"),
        failed_record(6),
        binary_record(7),
        tunnel_record(8),
        error_record(9),
    ]
}

/// Where `needle` occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn header() -> FileHeader {
    FileHeader::new(
        Some("127.0.0.1:8080".into()),
        Some("login".into()),
        Some("http://127.0.0.1:9000/".into()),
    )
}

fn write_capture(path: &Path, records: &[Record], keep_secrets: bool) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let bus = Bus::new(1024);
        let writer = Writer::create(path, header(), keep_secrets).unwrap();
        let handle = capture::spawn_writer(writer, bus.subscribe());
        let mut open = records[0].clone();
        open.state = State::Open;
        open.id = 100;
        bus.publish(open); // never written: not finished
        for r in records {
            bus.publish(r.clone());
        }
        let stats = handle.finish().await.unwrap();
        assert_eq!(stats.written, records.len() as u64);
        assert_eq!(stats.dropped, 0);
    });
}

#[test]
fn every_kind_round_trips_plain_and_zstd() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["s.jsonl", "s.jsonl.zst"] {
        let path = dir.path().join(name);
        write_capture(&path, &sample(), true);
        let c = Reader::open(&path).unwrap();
        assert_eq!(c.records, sample(), "{name}");
        assert!(c.warnings.is_empty(), "{name}: {:?}", c.warnings);
        assert!(c.lags.is_empty());
        assert_eq!(c.header.format, "capscope-capture");
        assert_eq!(c.header.format_version, FORMAT_VERSION);
        assert_eq!(c.header.listen.as_deref(), Some("127.0.0.1:8080"));
        assert_eq!(c.header.mode.as_deref(), Some("login"));
        assert!(c.header.secrets_kept);
        let raw = std::fs::read(&path).unwrap();
        if name.ends_with(".zst") {
            assert_eq!(&raw[..4], &[0x28, 0xb5, 0x2f, 0xfd], "a zstd frame");
            let plain = std::fs::read(dir.path().join("s.jsonl")).unwrap();
            assert!(raw.len() < plain.len(), "compressed is smaller");
        } else {
            assert!(raw.starts_with(b"{\"format\":\"capscope-capture\",\"format_version\":2,"));
            assert!(raw.ends_with(b"\n"));
            // Bodies are written as they are: the binary one verbatim, no base64.
            let mesh = &binary_record(0).response.unwrap().body.data;
            assert!(
                find(&raw, mesh).is_some(),
                "the binary body is in the file as it is"
            );
            assert!(find(&raw, b"base64").is_none());
        }
    }
}

#[test]
fn secrets_are_masked_unless_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("masked.jsonl");
    write_capture(&path, &sample(), false);
    let file = std::fs::read(&path).unwrap();
    for secret in [PASSWD, SECURE_ID, COOKIE_VALUE, "tok-123"] {
        assert!(
            find(&file, secret.as_bytes()).is_none(),
            "{secret} leaked into the capture"
        );
    }
    let c = Reader::open(&path).unwrap();
    assert!(!c.header.secrets_kept);
    let login = &c.records[0];
    let req = login.request.as_ref().unwrap();
    let body = std::str::from_utf8(&req.body.data).unwrap();
    assert!(body.contains("<name>passwd</name><value><string>********</string></value>"));
    assert!(
        body.contains("<string>Ann</string>"),
        "the rest of the body stays"
    );
    assert_eq!(req.headers[1].value, "s=********");
    let resp = login.response.as_ref().unwrap();
    assert!(std::str::from_utf8(&resp.body.data)
        .unwrap()
        .contains("<name>secure_session_id</name><value><string>********</string>"));
    assert_eq!(resp.headers[1].value, "sid=********; Path=/; HttpOnly");
    assert_eq!(
        resp.body.size,
        sample()[0].response.as_ref().unwrap().body.size,
        "true size kept"
    );
    let ev = c.records[3].event.as_ref().unwrap();
    assert!(std::str::from_utf8(&ev.body.data)
        .unwrap()
        .contains("<key>secure_session_id</key><uuid>ffffffff-ffff-ffff-ffff-ffffffffffff</uuid>"));
    let poll = &c.records[2];
    assert_eq!(
        poll.request.as_ref().unwrap().headers[0].value,
        "Bearer ********"
    );
    // Records without secrets are written unchanged.
    assert_eq!(c.records[1], sample()[1]);
    assert_eq!(c.records[7..], sample()[7..]);

    let kept = dir.path().join("kept.jsonl");
    write_capture(&kept, &sample(), true);
    let file = std::fs::read(&kept).unwrap();
    assert!(
        find(&file, PASSWD.as_bytes()).is_some() && find(&file, SECURE_ID.as_bytes()).is_some()
    );
}

#[test]
fn a_torn_last_line_is_a_warning_and_a_bad_middle_line_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("torn.jsonl");
    write_capture(&path, &sample(), true);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    let torn = b"{\"record\":{\"id\":10,\"kind\":\"ht";
    f.write_all(torn).unwrap();
    drop(f);
    let c = Reader::open(&path).unwrap();
    assert_eq!(c.records, sample());
    assert_eq!(
        c.warnings,
        vec![Warning::TornLastLine {
            line: 2 + sample().len() as u64,
            bytes: torn.len()
        }]
    );

    let bad = dir.path().join("bad.jsonl");
    let mut text = serde_json::to_string(&header()).unwrap();
    let lag = "{\"lagged\":{\"dropped\":1,\"at_us\":1}}";
    text += &format!("\n{lag}\n{lag}\n{{\"record\": not json}}\n{lag}\n");
    std::fs::write(&bad, text).unwrap();
    match Reader::open(&bad) {
        Err(CaptureError::BadLine { line, .. }) => assert_eq!(line, 4),
        other => panic!("expected a bad line 4, got {other:?}"),
    }
}

/// Cutting a finished capture anywhere after its header leaves a readable prefix of its records.
#[test]
fn every_cut_of_a_capture_reads_as_a_prefix() {
    let dir = tempfile::tempdir().unwrap();
    for (name, step) in [("cut.jsonl", 7), ("cut.jsonl.zst", 1)] {
        let full_path = dir.path().join(name);
        // Flush after every record, as the writer task does after every batch.
        let mut w = Writer::create(&full_path, header(), true).unwrap();
        let header_len = std::fs::metadata(&full_path).unwrap().len() as usize;
        for r in sample() {
            w.write_record(&r).unwrap();
            w.flush().unwrap();
        }
        let flushed = std::fs::read(&full_path).unwrap();
        w.finish().unwrap();
        let full = std::fs::read(&full_path).unwrap();
        let cut_path = dir.path().join(format!("part-{name}"));
        let mut best = 0;
        for len in (header_len..=full.len()).step_by(step).chain([full.len()]) {
            std::fs::write(&cut_path, &full[..len]).unwrap();
            let c = Reader::open(&cut_path)
                .unwrap_or_else(|e| panic!("{name} cut at {len} of {}: {e}", full.len()));
            assert_eq!(
                c.records[..],
                sample()[..c.records.len()],
                "{name} cut at {len}"
            );
            best = best.max(c.records.len());
            if !name.ends_with(".zst") && full[len - 1] != b'\n' {
                // Cut inside a line or inside the bodies after it: said. Cut just before the newline
                // that ends a record: the record is whole, nothing to say.
                let torn = matches!(
                    c.warnings[..],
                    [Warning::TornLastLine { .. }] | [Warning::TornBodies { .. }]
                );
                assert!(
                    torn || (c.warnings.is_empty() && full[len] == b'\n'),
                    "{name} cut at {len}: {:?}",
                    c.warnings
                );
            }
        }
        assert_eq!(best, sample().len());
        // What a SIGKILL leaves in zstd mode: flushed blocks, no frame epilogue.
        std::fs::write(&cut_path, &flushed).unwrap();
        let c = Reader::open(&cut_path).unwrap();
        assert_eq!(c.records, sample(), "{name}: everything flushed survives");
        if name.ends_with(".zst") {
            assert_eq!(
                c.warnings,
                vec![Warning::TruncatedCompressed {
                    line: 1 + sample().len() as u64
                }]
            );
        }
    }
}

#[test]
fn a_lagging_writer_counts_and_marks_what_it_lost() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lag.jsonl");
    // A single-threaded runtime: the writer cannot run while we publish, so it must lag.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stats = rt.block_on(async {
        let bus = Bus::new(4);
        let writer = Writer::create(&path, header(), true).unwrap();
        let handle = capture::spawn_writer(writer, bus.subscribe());
        for i in 1..=20 {
            bus.publish(tunnel_record(i));
        }
        let dropped = handle.dropped.clone();
        let stats = handle.finish().await.unwrap();
        assert_eq!(dropped.load(std::sync::atomic::Ordering::Relaxed), 16);
        stats
    });
    assert_eq!((stats.written, stats.dropped), (4, 16));
    let c = Reader::open(&path).unwrap();
    assert_eq!(c.lags.len(), 1);
    assert_eq!(c.lags[0].dropped, 16);
    let ids: Vec<u64> = c.records.iter().map(|r| r.id).collect();
    assert_eq!(ids, vec![17, 18, 19, 20]);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text
        .lines()
        .nth(1)
        .unwrap()
        .starts_with("{\"lagged\":{\"dropped\":16,"));
}

#[test]
fn the_writer_records_only_what_its_filter_matches() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("filtered.jsonl");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let bus = Bus::default();
        let (handle, written_to) = capture::start_saving(
            &bus,
            header(),
            capture::SaveOptions {
                path: Some(path.clone()),
                data_dir: dir.path().to_path_buf(),
                keep_secrets: false,
                filter: Some(Filter::parse("cap:Seed | kind:tunnel | cap:EventQueueGet").unwrap()),
            },
        )
        .unwrap();
        assert_eq!(written_to, path);
        for r in sample() {
            bus.publish(r);
        }
        // An event of a poll that was not recorded stays out.
        bus.publish(event_record(10, 6, 0, "TeleportFinish"));
        handle.finish().await.unwrap();
    });
    let c = Reader::open(&path).unwrap();
    let ids: Vec<u64> = c.records.iter().map(|r| r.id).collect();
    // The poll (3) brings its events (4, 5), which match none of the terms themselves.
    assert_eq!(ids, vec![2, 3, 4, 5, 8]);
    assert_eq!(
        c.header.filter.as_deref(),
        Some("cap:Seed | kind:tunnel | cap:EventQueueGet")
    );
}

#[test]
fn start_saving_creates_the_default_directory() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let path = rt.block_on(async {
        let bus = Bus::default();
        let (handle, path) = capture::start_saving(
            &bus,
            header(),
            capture::SaveOptions {
                path: None,
                data_dir: dir.path().join("data"),
                keep_secrets: false,
                filter: None,
            },
        )
        .unwrap();
        bus.publish(tunnel_record(1));
        drop(bus); // the stream closes: the writer ends by itself
        assert_eq!(handle.finish().await.unwrap().written, 1);
        path
    });
    assert!(path.starts_with(dir.path().join("data").join("captures")));
    assert_eq!(Reader::open(&path).unwrap().records.len(), 1);
    #[cfg(unix)]
    {
        // Captures hold cap URLs (bearer secrets): owner-only, file and new directory alike.
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600, "capture file mode");
        assert_eq!(
            mode(path.parent().unwrap()),
            0o700,
            "captures directory mode"
        );
    }
}

/// Two sessions started in the same second (two `capscope run` at once, or one quickly restarted)
/// each get their own default capture: neither overwrites the other.
#[test]
fn sessions_started_together_get_distinct_default_captures() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let bus = Bus::default();
        let start = |id| {
            let mut h = header();
            h.grid = Some(format!("grid-{id}"));
            capture::start_saving(
                &bus,
                h,
                capture::SaveOptions {
                    path: None,
                    data_dir: dir.path().to_path_buf(),
                    keep_secrets: false,
                    filter: None,
                },
            )
            .unwrap()
        };
        let sessions: Vec<_> = (0..5).map(start).collect();
        let mut paths: Vec<PathBuf> = sessions.iter().map(|(_, p)| p.clone()).collect();
        for (handle, _) in sessions {
            handle.finish().await.unwrap();
        }
        for (i, path) in paths.iter().enumerate() {
            let grid = Reader::open(path).unwrap().header.grid;
            assert_eq!(grid, Some(format!("grid-{i}")), "{}", path.display());
        }
        paths.sort();
        paths.dedup();
        assert_eq!(paths.len(), 5, "distinct files: {paths:?}");
    });
}

/// `-w FILE` over an existing file that others could read: the capture is private all the same.
#[cfg(unix)]
#[test]
fn an_existing_file_is_made_private_when_written_over() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.jsonl");
    std::fs::write(&path, "old contents\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let writer = Writer::create(&path, header(), false).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "mode {mode:o}");
    writer.finish().unwrap();
    assert!(Reader::open(&path).unwrap().records.is_empty());
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/captures")
        .join(name)
}

/// The v1 file stays readable by every later version (through the migration chain).
#[test]
fn the_v1_fixture_reads() {
    assert_eq!(Reader::stream(fixture("v1.jsonl")).unwrap().file_version, 1);
    let c = Reader::open(fixture("v1.jsonl")).unwrap();
    assert_eq!(
        c.header.format_version, FORMAT_VERSION,
        "migrated to the current version"
    );
    assert!(!c.header.secrets_kept);
    assert!(c.warnings.is_empty());
    let kinds: Vec<Kind> = c.records.iter().map(|r| r.kind).collect();
    for k in [
        Kind::Http,
        Kind::Event,
        Kind::Login,
        Kind::Tunnel,
        Kind::Error,
    ] {
        assert!(kinds.contains(&k), "the fixture has a {k:?} record");
    }
    assert_eq!(c.records.len(), sample().len());
    assert_eq!(c.lags.len(), 1);
    let seed = c
        .records
        .iter()
        .find(|r| r.cap.as_deref() == Some("Seed"))
        .unwrap();
    assert!(seed.response.as_ref().unwrap().body.original.is_some());
    let mesh = c
        .records
        .iter()
        .find(|r| r.cap.as_deref() == Some("GetMesh"))
        .unwrap();
    let body = &mesh.response.as_ref().unwrap().body;
    assert_eq!(
        (body.truncated, body.size, &body.data[..2]),
        (true, 1_000_000, &[0u8, 159][..])
    );
}

/// The v2 fixture: `sample()` with its secrets masked and a lag marker, written by this version's
/// writer. Writing the same records again gives the same bytes, so a change in how v2 is written shows
/// as a test failure to review (CAPSCOPE_UPDATE_GOLDEN=1 rewrites the fixture after an intended one);
/// the file stays readable by every later version.
#[test]
fn the_v2_fixture_reads_and_is_what_the_writer_writes() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("v2.jsonl");
    let mut h = header();
    h.started_us = 1_795_615_323_000_000;
    h.started = "2026-11-25T14:02:03.000Z".into();
    h.capscope_version = "0.1.0".into();
    let mut w = Writer::create(&fresh, h, false).unwrap();
    for (i, r) in sample().iter().enumerate() {
        if i == 5 {
            w.write_lag_at(3, 1_795_615_323_005_500).unwrap();
        }
        w.write_record(r).unwrap();
    }
    w.finish().unwrap();
    let golden = fixture("v2.jsonl");
    if std::env::var_os("CAPSCOPE_UPDATE_GOLDEN").is_some() {
        std::fs::copy(&fresh, &golden).unwrap();
    }
    assert!(
        std::fs::read(&fresh).unwrap() == std::fs::read(&golden).unwrap(),
        "the v2 writer no longer writes {}",
        golden.display()
    );

    assert_eq!(Reader::stream(&golden).unwrap().file_version, 2);
    let c = Reader::open(&golden).unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(c.lags.len(), 1);
    assert_eq!(c.records.len(), sample().len());
    // Masked where secrets were, the same bytes everywhere else.
    assert_eq!(c.records[1], sample()[1]);
    assert_eq!(c.records[6], binary_record(7));
    let login = std::str::from_utf8(&c.records[0].request.as_ref().unwrap().body.data).unwrap();
    assert!(login.contains("<name>passwd</name><value><string>********</string></value>"));
    let seed = c.records[1].response.as_ref().unwrap();
    assert!(
        seed.body.original.is_some(),
        "the original of a rewritten body"
    );
    // The v1 fixture holds the same session: both read the same, but for the masking of the event
    // (v1's fixture was written by hand) and the header's start.
    let v1 = Reader::open(fixture("v1.jsonl")).unwrap();
    let ids = |c: &capture::Capture| c.records.iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(ids(&v1), ids(&c));
    assert_eq!(
        v1.records[6], c.records[6],
        "the binary body, from base64 and from raw bytes"
    );
}

/// A version 2 capture read through a pipe that hands it over a few bytes at a time (what
/// `view --follow` sees of a file being written): a record whose line or bodies are not all there
/// yet is waited for, never reported as damaged.
#[test]
fn a_record_still_being_written_is_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slow.jsonl");
    write_capture(&path, &sample(), true);
    let file = std::fs::read(&path).unwrap();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
    struct Pipe(std::sync::mpsc::Receiver<Vec<u8>>, Vec<u8>);
    impl std::io::Read for Pipe {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.1.is_empty() {
                match self.0.recv() {
                    Ok(chunk) => self.1 = chunk,
                    Err(_) => return Ok(0),
                }
            }
            let n = buf.len().min(self.1.len());
            buf[..n].copy_from_slice(&self.1[..n]);
            self.1.drain(..n);
            Ok(n)
        }
    }
    let sender = std::thread::spawn(move || {
        for chunk in file.chunks(5) {
            if tx.send(chunk.to_vec()).is_err() {
                return;
            }
        }
    });
    let mut lines = Reader::from_reader("slow.jsonl", Pipe(rx, Vec::new()), false).unwrap();
    let records: Vec<Record> = lines
        .by_ref()
        .map(|l| match l.unwrap() {
            Line::Record(r) => *r,
            Line::Lagged(_) => panic!("no lag in this capture"),
        })
        .collect();
    sender.join().unwrap();
    assert!(lines.warnings.is_empty(), "{:?}", lines.warnings);
    assert!(records == sample(), "every record, whole");
}

#[test]
fn newer_and_foreign_files_are_refused_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.jsonl");
    std::fs::write(
        &p,
        "{\"format\":\"capscope-capture\",\"format_version\":99}\n",
    )
    .unwrap();
    assert!(matches!(
        Reader::open(&p),
        Err(CaptureError::TooNew { found: 99, .. })
    ));
    std::fs::write(&p, "{\"log\":{}}\n").unwrap();
    assert!(matches!(
        Reader::open(&p),
        Err(CaptureError::NotACapture { .. })
    ));
    std::fs::write(&p, "").unwrap();
    assert!(matches!(Reader::open(&p), Err(CaptureError::Empty { .. })));
    assert!(matches!(
        Reader::open(dir.path().join("missing.jsonl")),
        Err(CaptureError::Open { .. })
    ));
}

#[test]
fn streaming_reader_yields_lines_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.jsonl.zst");
    write_capture(&path, &sample(), true);
    let mut lines = Reader::stream(&path).unwrap();
    assert_eq!(lines.file_version, FORMAT_VERSION);
    let ids: Vec<u64> = lines
        .by_ref()
        .map(|l| match l.unwrap() {
            Line::Record(r) => r.id,
            Line::Lagged(_) => 0,
        })
        .collect();
    assert_eq!(ids, (1..=9).collect::<Vec<_>>());
    assert!(lines.warnings.is_empty());
}

// ---- HAR ----

fn har_json(records: Vec<Record>) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.jsonl");
    write_capture(&path, &records, false);
    let out = dir.path().join("h.har");
    let cli = <capscope::cli::Cli as clap::Parser>::parse_from([
        "capscope",
        "export",
        "--har",
        path.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    capscope::cli::dispatch(cli).unwrap();
    serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap()
}

fn assert_fields(v: &serde_json::Value, fields: &[&str], what: &str) {
    for f in fields {
        assert!(
            v.get(f).is_some(),
            "{what} lacks the required field {f}: {v}"
        );
    }
}

#[test]
fn har_has_every_required_field_and_folds_events_into_their_poll() {
    let har = har_json(sample());
    let log = &har["log"];
    assert_eq!(log["version"], "1.2");
    assert_fields(log, &["version", "creator", "entries"], "log");
    assert_fields(&log["creator"], &["name", "version"], "creator");
    let entries = log["entries"].as_array().unwrap();
    // login, seed, poll, failed, binary: tunnels and errors are not entries, events are folded.
    assert_eq!(entries.len(), 5);
    assert_eq!(log["_capscope"]["skipped"]["tunnel"], 1);
    assert_eq!(log["_capscope"]["skipped"]["error"], 1);
    for e in entries {
        assert_fields(
            e,
            &[
                "startedDateTime",
                "time",
                "request",
                "response",
                "cache",
                "timings",
            ],
            "entry",
        );
        assert_fields(
            &e["request"],
            &[
                "method",
                "url",
                "httpVersion",
                "cookies",
                "headers",
                "queryString",
                "headersSize",
                "bodySize",
            ],
            "request",
        );
        assert_fields(
            &e["response"],
            &[
                "status",
                "statusText",
                "httpVersion",
                "cookies",
                "headers",
                "content",
                "redirectURL",
                "headersSize",
                "bodySize",
            ],
            "response",
        );
        assert_fields(&e["response"]["content"], &["size", "mimeType"], "content");
        assert_fields(&e["timings"], &["send", "wait", "receive"], "timings");
        let started = e["startedDateTime"].as_str().unwrap();
        assert!(
            started.starts_with("2026-11-25T14:02:03.") && started.ends_with('Z'),
            "{started}"
        );
        let t = &e["timings"];
        let sum = t["send"].as_f64().unwrap()
            + t["wait"].as_f64().unwrap()
            + t["receive"].as_f64().unwrap();
        assert!((e["time"].as_f64().unwrap() - sum).abs() < 1e-9);
    }
    let login = &entries[0];
    assert_eq!(login["request"]["postData"]["mimeType"], "text/xml");
    assert!(login["request"]["postData"]["text"]
        .as_str()
        .unwrap()
        .contains("********"));
    assert_eq!(login["request"]["cookies"][0]["name"], "s");
    assert_eq!(login["response"]["cookies"][0]["name"], "sid");
    assert_eq!(login["response"]["statusText"], "OK");
    assert_eq!(login["_capscope"]["kind"], "login");
    assert_eq!(entries[1]["_capscope"]["rewritten"], true);

    let poll = &entries[2];
    assert_eq!(poll["_capscope"]["cap"], "EventQueueGet");
    assert_eq!(
        poll["request"]["queryString"],
        serde_json::json!([{"name": "x", "value": "a b"}, {"name": "y", "value": ""}])
    );
    let events = poll["_events"].as_array().unwrap();
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["TeleportFinish", "EnableSimulator"]);
    // Event bodies are decoded into LLSD typed JSON (secrets were masked before writing).
    assert_eq!(
        events[0]["body"]["map"]["Info"]["array"][0]["map"]["SimPort"],
        serde_json::json!({"integer": 13005})
    );
    assert_eq!(
        events[1]["body"]["map"]["secure_session_id"],
        serde_json::json!({"uuid": "ffffffff-ffff-ffff-ffff-ffffffffffff"})
    );

    let failed = &entries[3];
    assert_eq!(failed["response"]["status"], 0);
    assert!(failed["_capscope"]["error"]
        .as_str()
        .unwrap()
        .contains("refused"));

    let mesh = &entries[4];
    assert_eq!(mesh["response"]["content"]["encoding"], "base64");
    assert_eq!(mesh["response"]["content"]["text"], "AJ+Slv8B");
    assert_eq!(mesh["response"]["bodySize"], 1_000_000);
    assert!(mesh["response"]["content"]["comment"]
        .as_str()
        .unwrap()
        .contains("6 of 1000000"));
    assert!(
        mesh["request"].get("postData").is_none(),
        "a GET without body has no postData"
    );

    // And it loads back into the typed model.
    let back: har::Har = serde_json::from_value(har).unwrap();
    assert_eq!(back.log.entries.len(), 5);
}

// ---- dump ----

fn dump(path: &Path, filter: Option<&str>, format: &str) -> String {
    let cli = <capscope::cli::Cli as clap::Parser>::parse_from(
        [
            "capscope",
            "dump",
            path.to_str().unwrap(),
            "--format",
            format,
        ]
        .into_iter()
        .chain(filter.map(|f| ["--filter", f]).into_iter().flatten()),
    );
    let capscope::cli::Command::Dump(args) = cli.command else {
        panic!("not a dump command")
    };
    let f = args.filter.as_deref().map(|f| Filter::parse(f).unwrap());
    let mut out = Vec::new();
    capscope::cli::dump::dump(&args, f.as_ref(), &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn dump_prints_one_aligned_line_per_record_and_filters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.jsonl");
    write_capture(&path, &sample(), false);
    let text = dump(&path, None, "text");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), sample().len());
    let poll: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(
        poll,
        [
            "2026-11-25T14:02:03.003Z",
            "http",
            "POST",
            "EventQueueGet",
            "200",
            poll[5],
            "2.1ms",
            "Da",
            "Boom"
        ]
    );
    assert_eq!(
        poll[5],
        sample()[2].response.as_ref().unwrap().body.size.to_string()
    );
    assert!(lines[3].contains(" event ") && lines[3].contains("TeleportFinish"));
    assert!(lines[5].contains(" ERR ") && lines[5].contains("error: upstream"));
    assert!(lines[7].contains("CONNECT") && lines[7].contains("voice.example:443"));
    // Columns line up: the kind column starts at the same offset on every line.
    let kind_at: Vec<usize> = lines.iter().map(|l| l.find(' ').unwrap()).collect();
    assert!(kind_at.windows(2).all(|w| w[0] == w[1]));

    let only = dump(&path, Some("kind:event"), "text");
    assert_eq!(only.lines().count(), 2);
    let json = dump(&path, Some("cap:EventQueueGet | kind:tunnel"), "json");
    let ids: Vec<u64> = json
        .lines()
        .map(|l| serde_json::from_str::<Record>(l).unwrap().id)
        .collect();
    assert_eq!(ids, vec![3, 8]);
}

// ---- a real crash ----

const CHILD_ENV: &str = "CAPSCOPE_TEST_KILL_CHILD_PATH";
const CHILD_FIRST: u64 = 50;

/// Not a test on its own: the body of the child process `killed_writer_leaves_a_readable_capture`
/// starts. Without the environment variable it does nothing.
#[test]
fn kill_child_writer() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let bus = Bus::default();
        let writer = Writer::create(&path, header(), true).unwrap();
        let handle = capture::spawn_writer(writer, bus.subscribe());
        for i in 1..=CHILD_FIRST {
            bus.publish(poll_record(i));
        }
        while handle.written() < CHILD_FIRST {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        println!("READY {}", handle.written());
        std::io::stdout().flush().unwrap();
        // Keep writing until the parent kills us.
        let mut i = CHILD_FIRST;
        loop {
            i += 1;
            bus.publish(poll_record(i));
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    });
}

#[test]
fn killed_writer_leaves_a_readable_capture() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["killed.jsonl", "killed.jsonl.zst"] {
        let path = dir.path().join(name);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "kill_child_writer",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut ready = false;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            // libtest prints "test kill_child_writer ... " on the same line.
            if line.contains("READY") {
                ready = true;
                break;
            }
        }
        assert!(ready, "the child never reported its first records written");
        // Let it write a little more, then SIGKILL it mid-stream.
        std::thread::sleep(Duration::from_millis(30));
        child.kill().unwrap(); // SIGKILL on Unix
        let status = child.wait().unwrap();
        assert!(!status.success());

        let c = Reader::open(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            c.records.len() as u64 >= CHILD_FIRST,
            "{name}: {}",
            c.records.len()
        );
        // The first batch is all there; after it, records are whole and in order (a lag under a
        // loaded machine would show as a marker and a gap, never as a damaged record).
        for (i, r) in c.records.iter().take(CHILD_FIRST as usize).enumerate() {
            assert_eq!(r.id, i as u64 + 1, "{name}");
        }
        for w in c.records.windows(2) {
            assert!(w[0].id < w[1].id, "{name}: ids in order");
        }
        for r in &c.records {
            assert_eq!(*r, poll_record(r.id), "{name}: record {}", r.id);
        }
        if name.ends_with(".zst") {
            assert!(
                c.warnings
                    .iter()
                    .any(|w| matches!(w, Warning::TruncatedCompressed { .. })),
                "{name}: {:?}",
                c.warnings
            );
        }
    }
}

/// The HAR of the v1 fixture is kept as a golden file: a change in the mapping shows up as a diff
/// to review (set CAPSCOPE_UPDATE_GOLDEN=1 to rewrite it after an intended change).
#[test]
fn har_of_the_v1_fixture_matches_the_golden_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("v1.har");
    let cli = <capscope::cli::Cli as clap::Parser>::parse_from([
        "capscope",
        "export",
        "--har",
        fixture("v1.jsonl").to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    capscope::cli::dispatch(cli).unwrap();
    let mut got: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    // The creator's version follows releases; the mapping is what the golden file pins.
    got["log"]["creator"]["version"] = serde_json::json!("(any)");
    let golden = fixture("v1.har");
    if std::env::var_os("CAPSCOPE_UPDATE_GOLDEN").is_some() {
        let text = serde_json::to_string_pretty(&got).unwrap() + "\n";
        std::fs::write(&golden, text).unwrap();
    }
    let want: serde_json::Value = serde_json::from_slice(&std::fs::read(&golden).unwrap()).unwrap();
    assert_eq!(
        got,
        want,
        "HAR of v1.jsonl differs from {}",
        golden.display()
    );
}

/// A record whose body once made the secret masker panic (a short binary LLSD body whose string value
/// holds a second secret key), followed by ordinary records: the writer keeps recording all of them.
#[test]
fn a_hostile_body_never_stops_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostile.jsonl");
    let mut hostile = b"k\0\0\0\x06passwds\0\0\0\x14".to_vec();
    hostile.extend_from_slice(b"k\0\0\0\x06passwds\0\0\0\x01X...");
    let mut first = binary_record(1);
    first.response.as_mut().unwrap().body = Body::whole(hostile.clone());
    let mut notation = binary_record(2);
    notation.response.as_mut().unwrap().body =
        Body::whole(&b"{'passwd':s(14)\"'passwd':'x'..\"}"[..]);
    let records = vec![first, notation, tunnel_record(3), seed_record(4)];
    write_capture(&path, &records, false);
    let c = Reader::open(&path).unwrap();
    let ids: Vec<u64> = c.records.iter().map(|r| r.id).collect();
    assert_eq!(
        ids,
        vec![1, 2, 3, 4],
        "every record after the hostile one is kept"
    );
    assert_eq!(c.records[2], records[2]);
}

/// A few kilobytes of zstd that expand into one line longer than any capture line (the file that took
/// `dump` past 1 GB): the line is skipped with a warning and the records around it are read.
#[test]
fn a_zstd_bomb_line_is_skipped_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bomb.jsonl.zst");
    let mut enc =
        zstd::stream::write::Encoder::new(std::fs::File::create(&path).unwrap(), 1).unwrap();
    serde_json::to_writer(&mut enc, &header()).unwrap();
    enc.write_all(b"\n").unwrap();
    serde_json::to_writer(&mut enc, &Line::Record(Box::new(tunnel_record(1)))).unwrap();
    enc.write_all(b"\n").unwrap();
    let chunk = vec![b'['; 1 << 20];
    let long = capture::MAX_LINE_BYTES + (1 << 20);
    for _ in 0..long / chunk.len() {
        enc.write_all(&chunk).unwrap();
    }
    enc.write_all(b"\n").unwrap();
    serde_json::to_writer(&mut enc, &Line::Record(Box::new(tunnel_record(2)))).unwrap();
    enc.write_all(b"\n").unwrap();
    enc.finish().unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size < 64 * 1024, "a small file: {size} bytes");

    let c = Reader::open(&path).unwrap();
    let ids: Vec<u64> = c.records.iter().map(|r| r.id).collect();
    assert_eq!(ids, vec![1, 2]);
    assert_eq!(
        c.warnings,
        vec![Warning::LongLine {
            line: 3,
            bytes: long as u64
        }]
    );
    assert!(c.warnings[0].to_string().contains("was skipped"));
}
