//! How a record is laid out in a capture line (format version 2), in both directions.
//!
//! A record line holds the serde form of a [`Record`] (`src/record/`) with one difference: a body is
//! not in the line. Each non-empty body is the marker `{"raw": LEN}`, and its LEN bytes follow the
//! line ([`raw_parts`](super::raw_parts) order); an empty body is `""`. Reading also accepts the version 1 forms (a
//! JSON string, `{"base64": "..."}`).
//!
//! The two directions are explicit types rather than a mode hidden in the record's own serde code:
//! [`write_record`] serialises a [`RecordOut`], a borrowed view of the record whose bodies are
//! markers, and [`read_line`] deserialises a [`LineIn`], which keeps each marker's length beside the
//! record so that a line is parsed once. Both list `Record`'s fields one by one; the tests check
//! that they list all of them (a field added to `Record` fails them until it is added here).
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
    Body, EventInfo, Header, Kind, Record, Request, Response, State, Timings, TunnelInfo,
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
pub(crate) fn write_record(out: &mut Vec<u8>, record: &Record) -> serde_json::Result<()> {
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
    client: Option<String>,
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
    method: String,
    url: String,
    #[serde(default)]
    client_url: Option<String>,
    version: String,
    headers: Vec<Header>,
    body: BodyIn,
}

#[derive(Deserialize)]
struct ResponseIn {
    status: u16,
    version: String,
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
        write_record(&mut out, &r).unwrap();
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
        write_record(&mut out, &r).unwrap();
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
}
