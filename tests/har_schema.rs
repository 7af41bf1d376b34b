//! `capscope export --har` output checked against the HAR 1.2 JSON schema (tests/data/har/, written
//! from the HAR 1.2 specification) with the `jsonschema` crate: the v1 fixture, an exchange cut off
//! mid-flight, and a whole live demo session.

use std::path::Path;
use std::process::Command;

use capscope::capture::{self, FileHeader, Writer};
use capscope::record::{Bus, Header as H, Kind, Record, Request, State, Timings};
use serde_json::{json, Value};

const TOKEN: &str = "0123456789abcdef0123456789abcdef";

fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(include_str!("data/har/har-1.2.schema.json")).unwrap();
    jsonschema::draft7::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

fn errors(har: &Value) -> Vec<String> {
    validator()
        .iter_errors(har)
        .map(|e| {
            // Messages quote the offending value whole: keep them short enough to read.
            let text: String = e.to_string().chars().take(300).collect();
            format!("{}: {text}", e.instance_path())
        })
        .collect()
}

fn assert_valid(har: &Value) {
    let errs = errors(har);
    assert!(errs.is_empty(), "not valid HAR 1.2:\n{}", errs.join("\n"));
}

fn export(capture: &Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_capscope"))
        .args(["export", "--har"])
        .arg(capture)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn write_capture(path: &Path, listen: Option<&str>, records: &[Record]) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let bus = Bus::new(64);
        let header = FileHeader::new(listen.map(str::to_owned), Some("login".into()), None);
        let writer = Writer::create(path, header, false).unwrap();
        let handle = capture::spawn_writer(writer, bus.subscribe());
        for r in records {
            bus.publish(r.clone());
        }
        let stats = handle.finish().await.unwrap();
        assert_eq!(stats.written, records.len() as u64);
    });
}

/// An event-queue poll as the proxy leaves it when the viewer goes away before the grid answers:
/// the request was addressed to capscope itself (`/cap/<token>`) and never reached upstream.
fn cut_off_poll(id: u64) -> Record {
    let mut r = Record::new(id, Kind::Http);
    r.state = State::Failed;
    r.started_us = 1_795_615_323_000_000;
    r.timings = Timings {
        request_sent_us: None,
        response_headers_us: None,
        done_us: Some(20_000_000),
    };
    r.cap = Some("EventQueueGet".into());
    r.request = Some(Request {
        method: "POST".into(),
        url: format!("/cap/{TOKEN}"),
        version: "HTTP/1.1".into(),
        headers: vec![H {
            name: "Content-Type".into(),
            value: "application/llsd+xml".into(),
        }],
        body: capscope::record::Body::whole("<llsd><map><key>ack</key><undef /></map></llsd>"),
        ..Request::default()
    });
    r.error =
        Some("the exchange was cut off before the response was complete (a side went away)".into());
    r
}

/// The smallest document the specification allows, with one entry.
fn minimal() -> Value {
    json!({"log": {
        "version": "1.2",
        "creator": {"name": "t", "version": "1"},
        "entries": [{
            "startedDateTime": "2026-11-25T14:02:03.000Z",
            "time": 1.5,
            "request": {"method": "GET", "url": "http://127.0.0.1:8080/cap/x", "httpVersion": "HTTP/1.1",
                        "cookies": [], "headers": [], "queryString": [], "headersSize": -1, "bodySize": 0},
            "response": {"status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1", "cookies": [],
                         "headers": [], "content": {"size": 0, "mimeType": "x-unknown"},
                         "redirectURL": "", "headersSize": -1, "bodySize": 0},
            "cache": {},
            "timings": {"send": 0.5, "wait": 1, "receive": 0, "dns": -1}
        }]
    }})
}

#[test]
fn the_schema_rejects_what_the_specification_forbids() {
    assert_valid(&minimal());
    let with = |path: &str, value: Value| {
        let mut doc = minimal();
        *doc.pointer_mut(path).unwrap() = value;
        doc
    };
    let mut custom = minimal();
    custom["log"]["entries"][0]["_capscope"] = json!({"anything": 1});
    assert_valid(&custom);

    for (what, doc) in [
        (
            "a relative URL",
            with("/log/entries/0/request/url", json!("/cap/x")),
        ),
        (
            "a date that is not ISO 8601",
            with("/log/entries/0/startedDateTime", json!("yesterday")),
        ),
        (
            "a negative send time",
            with("/log/entries/0/timings/send", json!(-1)),
        ),
        (
            "a fractional status",
            with("/log/entries/0/response/status", json!(200.5)),
        ),
        (
            "an unknown field",
            with("/log/entries/0/cache", json!({"hits": 1})),
        ),
        (
            "postData with both params and text",
            with("/log/entries/0/request/bodySize", json!(3)),
        ),
    ] {
        let doc = if what.starts_with("postData") {
            let mut d = doc;
            d["log"]["entries"][0]["request"]["postData"] =
                json!({"mimeType": "text/plain", "params": [], "text": "abc"});
            d
        } else {
            doc
        };
        assert!(!errors(&doc).is_empty(), "{what} passed the schema");
    }
    let mut missing = minimal();
    missing["log"]["entries"][0]
        .as_object_mut()
        .unwrap()
        .remove("timings");
    assert!(
        !errors(&missing).is_empty(),
        "an entry without timings passed"
    );
}

#[test]
fn the_v1_fixture_exports_valid_har() {
    let v1 = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/captures/v1.jsonl");
    assert_valid(&export(&v1));
}

#[test]
fn an_exchange_cut_off_mid_flight_exports_with_an_absolute_url() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.jsonl");
    write_capture(&path, Some("127.0.0.1:8080"), &[cut_off_poll(1)]);
    let har = export(&path);
    assert_valid(&har);
    let entry = &har["log"]["entries"][0];
    assert_eq!(
        entry["request"]["url"],
        format!("http://127.0.0.1:8080/cap/{TOKEN}")
    );
    assert_eq!(entry["response"]["status"], 0);

    // A capture whose header does not say where capscope listened still gets an absolute URL.
    let path = dir.path().join("no-listen.jsonl");
    write_capture(&path, None, &[cut_off_poll(1)]);
    let har = export(&path);
    assert_valid(&har);
    let url = har["log"]["entries"][0]["request"]["url"].as_str().unwrap();
    assert!(
        url.starts_with("http://") && url.ends_with(&format!("/cap/{TOKEN}")),
        "{url}"
    );
}

#[test]
fn a_live_demo_session_exports_valid_har() {
    let home = tempfile::tempdir().unwrap();
    let capture = home.path().join("demo.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_capscope"))
        .env("CAPSCOPE_HOME", home.path())
        .env_remove("RUST_LOG")
        .args([
            "demo",
            "-q",
            "--listen",
            "127.0.0.1:0",
            "--steps",
            "2",
            "--every",
            "0",
        ])
        .args(["--eq-hold", "1", "-w"])
        .arg(&capture)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let har = export(&capture);
    let entries = har["log"]["entries"].as_array().unwrap();
    assert!(entries.len() > 10, "{har}");
    assert!(entries.iter().any(|e| e["request"]["postData"].is_object()));
    assert_valid(&har);
}
