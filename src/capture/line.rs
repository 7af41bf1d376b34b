//! How a record is laid out in a capture line (format version 2), in both directions.
//!
//! A record line holds the serde form of a [`Record`] (`src/record/`) with one difference: a body is
//! not in the line. Each non-empty body is the marker `{"raw": LEN}`, and its LEN bytes follow the
//! line ([`raw_parts`](super::raw_parts) order); an empty body is `""`. Reading also accepts the version 1 forms (a
//! JSON string, `{"base64": "..."}`).
//!
//! The two directions are explicit rather than a mode hidden in the record's own serde code:
//! [`write_record`] writes the line by hand, byte for byte what serde_json writes for a
//! [`RecordOut`] (a borrowed view of the record whose bodies are markers; [`write_record_serde`],
//! kept as the reference the tests and a fuzz target compare the two with), and [`read_line`]
//! deserialises a [`LineIn`], which keeps each marker's length beside the record so that a line is
//! parsed once. All of them list `Record`'s fields one by one; the tests check that they list all of
//! them (a field added to `Record` fails them until it is added here).
//!
//! This module owns the shape of a line; it must not do I/O (the writer and the reader do).

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{LagMarker, Line};
use crate::record::{
    Body, EventInfo, Header, HeaderText, Kind, Record, Request, Response, State, Timings,
    TunnelInfo,
};

/// The key of a body written after the line.
const RAW_KEY: &str = "raw";

/// The key of a version 1 body that is not UTF-8.
const BASE64_KEY: &str = "base64";

/// How many body slots a record line has: `data` and `original` of the request, the response and
/// the event, in the order their raw bytes follow the line ([`raw_parts`](super::raw_parts)).
pub(crate) const RAW_SLOTS: usize = 6;

/// The raw body lengths a record line declares, by slot (0: the body is in the line, or empty).
pub(crate) type RawLens = [u64; RAW_SLOTS];

// ---------------------------------------------------------------------------------------------
// Writing

/// Writes `record` as a version 2 record line into `out` (without its newline): every body that is
/// not empty as `{"raw": LEN}`. The caller writes the bytes of those bodies after the line, in
/// [`raw_parts`](super::raw_parts) order, which is the order of the markers in the line.
///
/// Written by hand, byte for byte what serde_json writes for a [`RecordOut`] ([`write_record_serde`],
/// which the tests and the `capture_line` fuzz target compare it with): the keys are literals, and a
/// string with nothing to escape (every header name, nearly every value) is copied in one piece.
/// serde_json escaped each key and looked up every byte of every string: about two fifths of the
/// capture writer's cost per small record (docs/performance.md, "Small requests", "Third round, continued").
pub(crate) fn write_record(out: &mut Vec<u8>, r: &Record) {
    out.extend_from_slice(b"{\"record\":{\"id\":");
    push_u64(out, r.id);
    out.extend_from_slice(b",\"kind\":\"");
    out.extend_from_slice(kind_name(r.kind).as_bytes());
    out.extend_from_slice(b"\",\"state\":\"");
    out.extend_from_slice(state_name(r.state).as_bytes());
    out.extend_from_slice(b"\",\"started_us\":");
    push_i64(out, r.started_us);
    opt_str_field(out, b",\"client\":", r.client.as_deref());
    if let Some(q) = &r.request {
        out.extend_from_slice(b",\"request\":{\"method\":");
        push_str(out, &q.method);
        out.extend_from_slice(b",\"url\":");
        push_str(out, &q.url);
        opt_str_field(out, b",\"client_url\":", q.client_url.as_deref());
        out.extend_from_slice(b",\"version\":");
        push_str(out, &q.version);
        push_headers(out, &q.headers);
        push_body(out, &q.body);
        out.push(b'}');
    }
    if let Some(p) = &r.response {
        out.extend_from_slice(b",\"response\":{\"status\":");
        push_u64(out, u64::from(p.status));
        out.extend_from_slice(b",\"version\":");
        push_str(out, &p.version);
        push_headers(out, &p.headers);
        push_body(out, &p.body);
        out.push(b'}');
    }
    out.extend_from_slice(b",\"timings\":{");
    let mut sep = false;
    for (key, value) in [
        (&b"\"request_sent_us\":"[..], r.timings.request_sent_us),
        (b"\"response_headers_us\":", r.timings.response_headers_us),
        (b"\"done_us\":", r.timings.done_us),
    ] {
        if let Some(v) = value {
            if sep {
                out.push(b',');
            }
            sep = true;
            out.extend_from_slice(key);
            push_u64(out, v);
        }
    }
    out.push(b'}');
    opt_str_field(out, b",\"error\":", r.error.as_deref());
    opt_str_field(out, b",\"cap\":", r.cap.as_deref());
    opt_str_field(out, b",\"region\":", r.region.as_deref());
    opt_str_field(out, b",\"agent\":", r.agent.as_deref());
    if let Some(e) = &r.event {
        out.extend_from_slice(b",\"event\":{\"message\":");
        push_str(out, &e.message);
        out.extend_from_slice(b",\"index\":");
        push_u64(out, e.index as u64);
        if let Some(id) = e.queue_id {
            out.extend_from_slice(b",\"queue_id\":");
            push_i64(out, id);
        }
        push_body(out, &e.body);
        out.push(b'}');
    }
    if let Some(parent) = r.parent {
        out.extend_from_slice(b",\"parent\":");
        push_u64(out, parent);
    }
    if let Some(t) = &r.tunnel {
        out.extend_from_slice(b",\"tunnel\":{\"target\":");
        push_str(out, &t.target);
        out.extend_from_slice(b",\"bytes_up\":");
        push_u64(out, t.bytes_up);
        out.extend_from_slice(b",\"bytes_down\":");
        push_u64(out, t.bytes_down);
        out.push(b'}');
    }
    if !r.notes.is_empty() {
        out.extend_from_slice(b",\"notes\":[");
        for (i, note) in r.notes.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            push_str(out, note);
        }
        out.push(b']');
    }
    out.extend_from_slice(b"}}");
}

/// [`Kind`]'s serde name.
fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Http => "http",
        Kind::Event => "event",
        Kind::Login => "login",
        Kind::Tunnel => "tunnel",
        Kind::Error => "error",
    }
}

/// [`State`]'s serde name.
fn state_name(state: State) -> &'static str {
    match state {
        State::Open => "open",
        State::Done => "done",
        State::Failed => "failed",
    }
}

/// `key` (with its leading comma and colon) and the string, when there is one.
fn opt_str_field(out: &mut Vec<u8>, key: &[u8], value: Option<&str>) {
    if let Some(v) = value {
        out.extend_from_slice(key);
        push_str(out, v);
    }
}

/// `,"headers":[{"name":..,"value":..},..]`
fn push_headers(out: &mut Vec<u8>, headers: &[Header]) {
    out.extend_from_slice(b",\"headers\":[");
    for (i, h) in headers.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"name\":");
        push_str(out, &h.name);
        out.extend_from_slice(b",\"value\":");
        push_str(out, &h.value);
        out.push(b'}');
    }
    out.push(b']');
}

/// `,"body":{..}` as [`BodyOut`] serialises.
fn push_body(out: &mut Vec<u8>, b: &Body) {
    out.extend_from_slice(b",\"body\":{\"data\":");
    push_data(out, b.data.len());
    out.extend_from_slice(b",\"size\":");
    push_u64(out, b.size);
    if b.truncated {
        out.extend_from_slice(b",\"truncated\":true");
    }
    opt_str_field(
        out,
        b",\"content_encoding\":",
        b.content_encoding.as_deref(),
    );
    if let Some(o) = &b.original {
        out.extend_from_slice(b",\"original\":");
        push_data(out, o.len());
    }
    out.push(b'}');
}

/// A body's bytes as [`DataOut`] serialises them.
fn push_data(out: &mut Vec<u8>, len: usize) {
    if len == 0 {
        out.extend_from_slice(b"\"\"");
    } else {
        out.extend_from_slice(b"{\"raw\":");
        push_u64(out, len as u64);
        out.push(b'}');
    }
}

fn push_u64(out: &mut Vec<u8>, v: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut v = v;
    loop {
        at -= 1;
        digits[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

fn push_i64(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    push_u64(out, v.unsigned_abs());
}

/// How many bytes [`push_str`] checks at once for something to escape (a loop without an early exit,
/// which the compiler turns into vector instructions).
const ESCAPE_SCAN_CHUNK: usize = 16;

/// Whether JSON needs `b` escaped in a string: `"`, `\` and the control characters.
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// `s` as a JSON string, as serde_json writes it. A string with nothing to escape (every header
/// name, nearly every value) is copied in one piece; one with something to escape is handed to
/// serde_json itself, so the escaping is its own by construction.
fn push_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let clean = bytes.chunks(ESCAPE_SCAN_CHUNK).all(|chunk| {
        let mut escape = false;
        for &b in chunk {
            escape |= needs_escape(b);
        }
        !escape
    });
    if clean {
        out.push(b'"');
        out.extend_from_slice(bytes);
        out.push(b'"');
    } else if serde_json::to_writer(&mut *out, s).is_err() {
        // Serialising a `str` into a `Vec` cannot fail; should it ever, the line stays valid JSON.
        out.extend_from_slice(b"\"\"");
    }
}

/// [`write_record`]'s line as serde_json writes it from [`RecordOut`]: the reference the hand
/// written line must equal (tests, and the `capture_line` fuzz target through
/// [`super::record_lines_for_fuzzing`]).
pub(crate) fn write_record_serde(out: &mut Vec<u8>, record: &Record) -> serde_json::Result<()> {
    serde_json::to_writer(
        out,
        &LineOut {
            record: RecordOut::new(record),
        },
    )
}

/// `{"record": ...}`, as [`Line::Record`] serialises.
#[derive(Serialize)]
struct LineOut<'a> {
    record: RecordOut<'a>,
}

/// A record as a version 2 line holds it: `Record`'s fields, in its order, with its rules for
/// leaving out empty ones; bodies as [`DataOut`].
#[derive(Serialize)]
struct RecordOut<'a> {
    id: u64,
    kind: Kind,
    state: State,
    started_us: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    client: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request: Option<RequestOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<ResponseOut<'a>>,
    timings: Timings,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cap: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<EventOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tunnel: Option<&'a TunnelInfo>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    notes: &'a [String],
}

#[derive(Serialize)]
struct RequestOut<'a> {
    method: &'a str,
    url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_url: Option<&'a str>,
    version: &'a str,
    headers: &'a [Header],
    body: BodyOut<'a>,
}

#[derive(Serialize)]
struct ResponseOut<'a> {
    status: u16,
    version: &'a str,
    headers: &'a [Header],
    body: BodyOut<'a>,
}

#[derive(Serialize)]
struct EventOut<'a> {
    message: &'a str,
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    queue_id: Option<i64>,
    body: BodyOut<'a>,
}

#[derive(Serialize)]
struct BodyOut<'a> {
    data: DataOut,
    size: u64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_encoding: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    original: Option<DataOut>,
}

/// A body's bytes in a version 2 line: `""` when empty, else `{"raw": LEN}`.
struct DataOut(usize);

impl Serialize for DataOut {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 == 0 {
            return s.serialize_str("");
        }
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry(RAW_KEY, &self.0)?;
        map.end()
    }
}

impl<'a> RecordOut<'a> {
    fn new(r: &'a Record) -> Self {
        RecordOut {
            id: r.id,
            kind: r.kind,
            state: r.state,
            started_us: r.started_us,
            client: r.client.as_deref(),
            request: r.request.as_ref().map(|q| RequestOut {
                method: &q.method,
                url: &q.url,
                client_url: q.client_url.as_deref(),
                version: &q.version,
                headers: &q.headers,
                body: BodyOut::new(&q.body),
            }),
            response: r.response.as_ref().map(|p| ResponseOut {
                status: p.status,
                version: &p.version,
                headers: &p.headers,
                body: BodyOut::new(&p.body),
            }),
            timings: r.timings,
            error: r.error.as_deref(),
            cap: r.cap.as_deref(),
            region: r.region.as_deref(),
            agent: r.agent.as_deref(),
            event: r.event.as_ref().map(|e| EventOut {
                message: &e.message,
                index: e.index,
                queue_id: e.queue_id,
                body: BodyOut::new(&e.body),
            }),
            parent: r.parent,
            tunnel: r.tunnel.as_ref(),
            notes: &r.notes,
        }
    }
}

impl<'a> BodyOut<'a> {
    fn new(b: &'a Body) -> Self {
        BodyOut {
            data: DataOut(b.data.len()),
            size: b.size,
            truncated: b.truncated,
            content_encoding: b.content_encoding.as_deref(),
            original: b.original.as_ref().map(|o| DataOut(o.len())),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reading

/// Parses one line after the header (current version, or migrated to it): the line, and for a
/// record the lengths of the raw bodies that follow it, by slot. The bodies written as
/// `{"raw": LEN}` are left empty for the reader to fill from the bytes after the line.
pub(crate) fn read_line(line: &[u8]) -> serde_json::Result<(Line, RawLens)> {
    serde_json::from_slice::<LineIn>(line).map(LineIn::into_line)
}

/// [`read_line`] for a line that went through a migration as JSON.
pub(crate) fn read_json(line: serde_json::Value) -> serde_json::Result<(Line, RawLens)> {
    serde_json::from_value::<LineIn>(line).map(LineIn::into_line)
}

/// A line after the header, as read: [`Line`] with each body's form kept.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum LineIn {
    Record(Box<RecordIn>),
    Lagged(LagMarker),
}

/// `Record`'s fields, read with each body as a [`DataIn`].
#[derive(Deserialize)]
struct RecordIn {
    id: u64,
    kind: Kind,
    state: State,
    started_us: i64,
    #[serde(default)]
    client: Option<crate::record::HeaderText>,
    #[serde(default)]
    request: Option<RequestIn>,
    #[serde(default)]
    response: Option<ResponseIn>,
    #[serde(default)]
    timings: Timings,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    cap: Option<String>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    agent: Option<String>,
    #[serde(default)]
    event: Option<EventIn>,
    #[serde(default)]
    parent: Option<u64>,
    #[serde(default)]
    tunnel: Option<TunnelInfo>,
    #[serde(default)]
    notes: Vec<String>,
}

#[derive(Deserialize)]
struct RequestIn {
    method: HeaderText,
    url: String,
    #[serde(default)]
    client_url: Option<String>,
    version: HeaderText,
    headers: Vec<Header>,
    body: BodyIn,
}

#[derive(Deserialize)]
struct ResponseIn {
    status: u16,
    version: HeaderText,
    headers: Vec<Header>,
    body: BodyIn,
}

#[derive(Deserialize)]
struct EventIn {
    message: String,
    index: usize,
    #[serde(default)]
    queue_id: Option<i64>,
    body: BodyIn,
}

#[derive(Deserialize)]
struct BodyIn {
    data: DataIn,
    size: u64,
    #[serde(default)]
    truncated: bool,
    #[serde(default)]
    content_encoding: Option<String>,
    #[serde(default)]
    original: Option<DataIn>,
}

/// A body's bytes as a line holds them: in the line (version 1 forms), or after it.
enum DataIn {
    Inline(Bytes),
    Raw(u64),
}

impl LineIn {
    fn into_line(self) -> (Line, RawLens) {
        match self {
            LineIn::Lagged(l) => (Line::Lagged(l), [0; RAW_SLOTS]),
            LineIn::Record(r) => {
                let (record, lens) = r.into_record();
                (Line::Record(Box::new(record)), lens)
            }
        }
    }
}

impl RecordIn {
    fn into_record(self) -> (Record, RawLens) {
        let mut lens = [0; RAW_SLOTS];
        let mut r = Record::started_at(self.id, self.kind, self.started_us);
        r.state = self.state;
        r.client = self.client;
        r.request = self.request.map(|q| Request {
            method: q.method,
            url: q.url,
            client_url: q.client_url,
            version: q.version,
            headers: q.headers,
            body: q.body.into_body(&mut lens[0..2]),
        });
        r.response = self.response.map(|p| Response {
            status: p.status,
            version: p.version,
            headers: p.headers,
            body: p.body.into_body(&mut lens[2..4]),
        });
        r.timings = self.timings;
        r.error = self.error;
        r.cap = self.cap;
        r.region = self.region;
        r.agent = self.agent;
        r.event = self.event.map(|e| EventInfo {
            message: e.message,
            index: e.index,
            queue_id: e.queue_id,
            body: e.body.into_body(&mut lens[4..6]),
        });
        r.parent = self.parent;
        r.tunnel = self.tunnel;
        r.notes = self.notes;
        (r, lens)
    }
}

impl BodyIn {
    /// The body, with raw bodies left empty and their lengths put in `lens` (`data`, `original`).
    fn into_body(self, lens: &mut [u64]) -> Body {
        let mut take = |data: DataIn, slot: usize| match data {
            DataIn::Inline(bytes) => bytes,
            DataIn::Raw(len) => {
                lens[slot] = len;
                Bytes::new()
            }
        };
        Body {
            data: take(self.data, 0),
            size: self.size,
            truncated: self.truncated,
            content_encoding: self.content_encoding,
            original: self.original.map(|o| take(o, 1)),
        }
    }
}

impl<'de> Deserialize<'de> for DataIn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DataVisitor)
    }
}

struct DataVisitor;

impl<'de> Visitor<'de> for DataVisitor {
    type Value = DataIn;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a body: a string, {\"base64\": \"...\"} or {\"raw\": LEN}")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<DataIn, E> {
        Ok(DataIn::Inline(Bytes::copy_from_slice(v.as_bytes())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<DataIn, E> {
        Ok(DataIn::Inline(Bytes::from(v)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<DataIn, A::Error> {
        let mut data = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if data.is_some() {
                return Err(de::Error::duplicate_field(BASE64_KEY));
            }
            if key == RAW_KEY {
                data = Some(DataIn::Raw(map.next_value::<u64>()?));
                continue;
            }
            if key != BASE64_KEY {
                return Err(de::Error::unknown_field(&key, &[BASE64_KEY, RAW_KEY]));
            }
            let text = map.next_value::<std::borrow::Cow<'de, str>>()?;
            let bytes = STANDARD
                .decode(text.as_bytes())
                .map_err(|e| de::Error::custom(format!("body is not valid base64: {e}")))?;
            data = Some(DataIn::Inline(Bytes::from(bytes)));
        }
        data.ok_or_else(|| de::Error::missing_field(BASE64_KEY))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::raw_parts;
    use serde::de::value::Error as DeError;

    /// The field names `T`'s derived `Deserialize` knows, asked of it through a deserializer that
    /// only answers `deserialize_struct`.
    fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
        struct Names<'a>(&'a mut &'static [&'static str]);
        impl<'de> Deserializer<'de> for Names<'_> {
            type Error = DeError;
            fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, DeError> {
                Err(de::Error::custom("not a struct"))
            }
            fn deserialize_struct<V: Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, DeError> {
                *self.0 = fields;
                Err(de::Error::custom("names taken"))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
                byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
                identifier ignored_any
            }
        }
        let mut names: &'static [&'static str] = &[];
        let _ = T::deserialize(Names(&mut names));
        names
    }

    /// A record with every field set (and bodies of distinct non-zero lengths in all six slots).
    fn full_record() -> Record {
        let body = |n: usize| Body {
            data: Bytes::from(vec![b'a'; n]),
            size: 1000 + n as u64,
            truncated: true,
            content_encoding: Some("gzip".into()),
            original: Some(Bytes::from(vec![0xffu8; n + 1])),
        };
        let headers = vec![Header {
            name: "Content-Type".into(),
            value: "application/llsd+xml".into(),
        }];
        let mut r = Record::new(7, Kind::Event);
        r.state = State::Failed;
        r.client = Some("127.0.0.1:5000".into());
        r.request = Some(Request {
            method: "POST".into(),
            url: "https://127.0.0.1:1/cap/x".into(),
            client_url: Some("http://127.0.0.1:2/x".into()),
            version: "HTTP/1.1".into(),
            headers: headers.clone(),
            body: body(10),
        });
        r.response = Some(Response {
            status: 200,
            version: "HTTP/2.0".into(),
            headers,
            body: body(20),
        });
        r.timings = Timings {
            request_sent_us: Some(1),
            response_headers_us: Some(2),
            done_us: Some(3),
        };
        r.error = Some("it broke".into());
        r.cap = Some("EventQueueGet".into());
        r.region = Some("Da Boom".into());
        r.agent = Some("Ann Avatar".into());
        r.event = Some(EventInfo {
            message: "TeleportFinish".into(),
            index: 3,
            queue_id: Some(41),
            body: body(30),
        });
        r.parent = Some(6);
        r.tunnel = Some(TunnelInfo {
            target: "127.0.0.1:9".into(),
            bytes_up: 1,
            bytes_down: 2,
        });
        r.notes = vec!["idle poll".into()];
        r
    }

    /// The keys of a JSON object, sorted.
    fn keys(v: &serde_json::Value) -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    }

    fn sorted(names: &[&str]) -> Vec<String> {
        let mut n: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        n.sort();
        n
    }

    /// `full_record` sets every field `Record` (and each part) has, and the line types know every
    /// one of them: a field added to the record model fails this until this module writes and reads
    /// it too.
    #[test]
    fn the_line_types_know_every_field_of_a_record() {
        let full = serde_json::to_value(full_record()).unwrap();
        let pairs: [(&serde_json::Value, &[&str], &[&str]); 5] = [
            (&full, fields_of::<Record>(), fields_of::<RecordIn>()),
            (
                &full["request"],
                fields_of::<Request>(),
                fields_of::<RequestIn>(),
            ),
            (
                &full["response"],
                fields_of::<Response>(),
                fields_of::<ResponseIn>(),
            ),
            (
                &full["event"],
                fields_of::<EventInfo>(),
                fields_of::<EventIn>(),
            ),
            (
                &full["request"]["body"],
                fields_of::<Body>(),
                fields_of::<BodyIn>(),
            ),
        ];
        for (json, model, line) in pairs {
            assert!(!model.is_empty());
            assert_eq!(keys(json), sorted(model), "full_record sets every field");
            assert_eq!(sorted(line), sorted(model), "the reader reads every field");
        }
    }

    /// Without bodies, a line is exactly the record's own serde form; with them, the same but each
    /// body a marker, in `raw_parts` order.
    #[test]
    fn a_line_is_the_record_with_bodies_as_markers() {
        let mut r = full_record();
        let mut out = Vec::new();
        write_record(&mut out, &r);
        let mut expected = serde_json::to_value(Line::Record(Box::new(r.clone()))).unwrap();
        let lens: Vec<usize> = raw_parts(&r).map(Bytes::len).collect();
        assert_eq!(lens, [10, 11, 20, 21, 30, 31], "raw_parts order");
        let mut i = 0;
        for side in ["request", "response", "event"] {
            for slot in ["data", "original"] {
                expected["record"][side]["body"][slot] = serde_json::json!({ "raw": lens[i] });
                i += 1;
            }
        }
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&out).unwrap(),
            expected
        );

        // Read back: the record without its bodies, and their lengths by slot.
        let (line, read_lens) = read_line(&out).unwrap();
        assert_eq!(read_lens, [10, 11, 20, 21, 30, 31]);
        let Line::Record(back) = line else {
            panic!("{line:?}")
        };
        for b in [
            &mut r.request.as_mut().unwrap().body,
            &mut r.response.as_mut().unwrap().body,
            &mut r.event.as_mut().unwrap().body,
        ] {
            b.data = Bytes::new();
            b.original = Some(Bytes::new());
        }
        assert_eq!(*back, r);

        // Empty bodies: byte for byte the record's serde form, and read back whole.
        out.clear();
        write_record(&mut out, &r);
        let plain = serde_json::to_vec(&Line::Record(Box::new(r.clone()))).unwrap();
        assert_eq!(String::from_utf8(out.clone()), String::from_utf8(plain));
        let (line, lens) = read_line(&out).unwrap();
        assert_eq!(lens, [0; RAW_SLOTS]);
        assert_eq!(line, Line::Record(Box::new(r)));
    }

    /// Version 1 forms read as the record model reads them; bad forms are refused.
    #[test]
    fn version_1_bodies_read_as_the_record_model_reads_them() {
        let mut r = full_record();
        r.request.as_mut().unwrap().body.data = Bytes::from_static(b"<llsd />");
        r.response.as_mut().unwrap().body.data = Bytes::from_static(&[0, 159, 146, 150]);
        let json = serde_json::to_vec(&Line::Record(Box::new(r.clone()))).unwrap();
        let (line, lens) = read_line(&json).unwrap();
        assert_eq!(lens, [0; RAW_SLOTS]);
        assert_eq!(line, Line::Record(Box::new(r)));
        let (lagged, _) = read_line(br#"{"lagged":{"dropped":3,"at_us":1}}"#).unwrap();
        assert_eq!(
            lagged,
            Line::Lagged(LagMarker {
                dropped: 3,
                at_us: 1
            })
        );
        for bad in [
            r#"{"base64":"!!"}"#,
            r#"{"hex":"00"}"#,
            r#"{}"#,
            r#"5"#,
            r#"{"raw":-1}"#,
            r#"{"raw":1,"base64":""}"#,
        ] {
            let line = format!(
                r#"{{"record":{{"id":1,"kind":"http","state":"done","started_us":1,"response":{{"status":200,"version":"HTTP/1.1","headers":[],"body":{{"data":{bad},"size":1}}}}}}}}"#
            );
            assert!(read_line(line.as_bytes()).is_err(), "{bad}");
        }
    }

    /// The hand-written line and serde_json's, for `r`: they must be the same bytes.
    fn assert_same_line(r: &Record) {
        let mut hand = Vec::new();
        write_record(&mut hand, r);
        let mut reference = Vec::new();
        write_record_serde(&mut reference, r).unwrap();
        assert!(
            hand == reference,
            "the hand-written line differs from serde_json's:\n{}\n{}",
            String::from_utf8_lossy(&hand),
            String::from_utf8_lossy(&reference)
        );
    }

    /// Strings that exercise every escape serde_json makes and every byte it leaves alone.
    fn odd_strings() -> Vec<String> {
        let mut all: Vec<String> = [
            "",
            "plain",
            "\"",
            "\\",
            "a\"b\\c",
            "\u{0}",
            "\u{7f}",
            "tab\there",
            "cr\rlf\n",
            "\u{8}\u{c}\u{b}\u{1f}\u{1}",
            "é, 中文, 🦀, \u{2028}\u{2029}",
            "</script>",
            "Tue, 01 Dec 2026 05:21:35 GMT",
            "exactly sixteen!",
            "fifteen bytes!!",
            "seventeen bytes!!",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // Every single byte a string can hold as a character, alone and between plain text at
        // every offset around the scan's chunk boundary.
        for c in (0u8..0x80)
            .map(char::from)
            .chain(['\u{80}', '\u{ff}', '\u{fffd}'])
        {
            all.push(c.to_string());
            for at in [0, 1, 15, 16, 17, 31, 32, 33] {
                let mut s = "x".repeat(at);
                s.push(c);
                s.push_str("yz");
                all.push(s);
            }
        }
        // A header value that was not UTF-8 on the wire, as the proxy records it (lossily).
        all.push(String::from_utf8_lossy(&[0xff, 0xfe, b'a', 0xc3, b'"', 0x80]).into_owned());
        // Huge: clean, and with one escape at the very end.
        all.push("v".repeat(1 << 20));
        all.push(format!("{}\u{1}", "v".repeat(1 << 20)));
        all
    }

    #[test]
    fn the_hand_written_line_is_serde_jsons_for_the_full_record_and_every_odd_string() {
        let full = full_record();
        assert_same_line(&full);
        assert_same_line(&Record::started_at(0, Kind::Http, 0));
        assert_same_line(&Record::started_at(u64::MAX, Kind::Tunnel, i64::MIN));
        assert_same_line(&Record::started_at(1, Kind::Error, i64::MAX));
        for (i, s) in odd_strings().into_iter().enumerate() {
            let mut r = full.clone();
            r.id = i as u64;
            r.client = Some(s.as_str().into());
            r.error = Some(s.clone());
            r.cap = Some(s.clone());
            r.region = Some(s.clone());
            r.agent = Some(s.clone());
            r.notes = vec![s.clone(), String::new(), s.clone()];
            for q in r.request.iter_mut() {
                q.method = s.as_str().into();
                q.url = s.clone();
                q.client_url = Some(s.clone());
                q.version = s.as_str().into();
                q.headers.push(Header {
                    name: s.clone().into(),
                    value: s.clone().into(),
                });
                q.body.content_encoding = Some(s.clone());
            }
            for p in r.response.iter_mut() {
                p.version = s.as_str().into();
                p.headers = vec![
                    Header {
                        name: s.clone().into(),
                        value: "x".into(),
                    };
                    3
                ];
            }
            for e in r.event.iter_mut() {
                e.message = s.clone();
            }
            for t in r.tunnel.iter_mut() {
                t.target = s.clone();
            }
            assert_same_line(&r);
        }
    }

    /// Every combination of present and absent optional parts, empty and non-empty bodies.
    #[test]
    fn the_hand_written_line_is_serde_jsons_with_any_field_left_out() {
        let full = full_record();
        for mask in 0u32..(1 << 16) {
            let on = |bit: u32| mask & (1 << bit) != 0;
            let mut r = full.clone();
            r.state = [State::Open, State::Done, State::Failed][(mask % 3) as usize];
            r.kind = [
                Kind::Http,
                Kind::Event,
                Kind::Login,
                Kind::Tunnel,
                Kind::Error,
            ][(mask % 5) as usize];
            if on(0) {
                r.client = None;
            }
            if on(1) {
                r.request = None;
            } else if on(2) {
                let q = r.request.as_mut().unwrap();
                q.client_url = None;
                q.headers.clear();
                q.body = Body::default();
            }
            if on(3) {
                r.response = None;
            } else if on(4) {
                let p = r.response.as_mut().unwrap();
                p.body.original = Some(Bytes::new());
                p.body.truncated = false;
                p.body.content_encoding = None;
            }
            r.timings.request_sent_us = r.timings.request_sent_us.filter(|_| on(5));
            r.timings.response_headers_us = r.timings.response_headers_us.filter(|_| on(6));
            r.timings.done_us = r.timings.done_us.filter(|_| on(7));
            for (bit, field) in [
                (8, &mut r.error),
                (9, &mut r.cap),
                (10, &mut r.region),
                (11, &mut r.agent),
            ] {
                if on(bit) {
                    *field = None;
                }
            }
            if on(12) {
                r.event = None;
            } else if on(13) {
                r.event.as_mut().unwrap().queue_id = None;
            }
            if on(14) {
                r.parent = None;
                r.tunnel = None;
            }
            if on(15) {
                r.notes.clear();
            }
            assert_same_line(&r);
        }
    }

    mod proptests {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Any strings (any characters, control characters and quotes included) in every
            /// string field, any numbers: the same bytes as serde_json.
            #[test]
            fn the_hand_written_line_is_serde_jsons_for_any_strings(
                strings in proptest::collection::vec(any::<String>(), 12),
                numbers in proptest::collection::vec(any::<u64>(), 6),
                negative in any::<i64>(),
            ) {
                let mut r = full_record();
                r.id = numbers[0];
                r.started_us = negative;
                r.client = Some(strings[0].as_str().into());
                r.error = Some(strings[1].clone());
                r.notes = vec![strings[2].clone(), strings[3].clone()];
                let q = r.request.as_mut().unwrap();
                q.method = strings[4].as_str().into();
                q.url = strings[5].clone();
                q.headers = vec![Header { name: strings[6].clone().into(), value: strings[7].clone().into() }];
                q.body.size = numbers[1];
                let p = r.response.as_mut().unwrap();
                p.status = numbers[2] as u16;
                p.headers.push(Header { name: strings[8].clone().into(), value: strings[9].clone().into() });
                r.timings.done_us = Some(numbers[3]);
                let e = r.event.as_mut().unwrap();
                e.message = strings[10].clone();
                e.queue_id = Some(numbers[4] as i64);
                e.index = numbers[5] as usize;
                r.tunnel.as_mut().unwrap().target = strings[11].clone();
                let mut hand = Vec::new();
                write_record(&mut hand, &r);
                let mut reference = Vec::new();
                write_record_serde(&mut reference, &r).unwrap();
                prop_assert_eq!(hand, reference);
            }
        }
    }
}
