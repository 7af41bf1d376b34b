//! Typed JSON: a lossless JSON spelling of LLSD values, as the project's test vectors use it. Every
//! node is an object with one key naming the LLSD type: `{"integer": 42}`, `{"real": 1.5}` (or
//! `"nan"`, `"inf"`, `"-inf"`), `{"date": 1138804193.0}` (seconds since the epoch), `{"binary":
//! "<base64>"}`, `{"map": {"key": ...}}` (key order kept), and so on.
//!
//! Owns the conversion between [`Value`] and `serde_json::Value`, and the writer of typed JSON text
//! as a decoder reads a body ([`transcode`]).

use std::borrow::Cow;

use base64::Engine as _;
use serde_json::{json, Value as Json};

use super::build::Build;
use super::error::{Error, ErrorKind};
use super::{Date, Format, Key, Map, Value, MAX_DEPTH};

/// Spaces per level of `serde_json`'s pretty printer, which [`transcode`] writes like.
const INDENT: usize = 2;
/// The most keys a map may have for [`transcode`] to look for duplicates in it as it writes; a
/// larger map (rare in LLSD) sends the whole body down the tree path.
const MAX_STREAMED_KEYS: usize = 64;

/// Decodes a body in the format `from` and appends its typed JSON to `out` as
/// `serde_json::to_writer_pretty(out, &to_json(&from_slice_as(bytes, from)?))` would write it, and
/// the same error for a body that does not decode. On an error `out` is left as it was.
///
/// Written as the body is read, without the tree, except for a body with a map that has a key twice
/// (JSON keeps one entry per key: the first position, the last value, which a writer that has
/// already written the first value cannot give) or more than [`MAX_STREAMED_KEYS`] keys: that body
/// is decoded again into the tree and written from it.
pub fn transcode(bytes: &[u8], from: Format, out: &mut Vec<u8>) -> Result<(), Error> {
    let start = out.len();
    let mut writer = JsonWriter {
        out,
        level: 0,
        in_array: false,
        keys: Vec::new(),
        needs_tree: false,
    };
    let done = super::decode_into(bytes, from, &mut writer);
    let needs_tree = writer.needs_tree;
    if done.is_err() || needs_tree {
        out.truncate(start);
    }
    done?;
    if needs_tree {
        let value = super::from_slice_as(bytes, from)?;
        // Writing JSON text into a `Vec` cannot fail.
        let _ = serde_json::to_writer_pretty(&mut *out, &to_json(&value));
    }
    Ok(())
}

/// Writes typed JSON text, laid out as `serde_json::to_writer_pretty` lays out [`to_json`]'s tree:
/// each node an object on lines of its own, `{`, the type's key and value one level in, `}`.
struct JsonWriter<'o> {
    out: &'o mut Vec<u8>,
    /// Nesting level (in JSON objects and arrays) of the node being written.
    level: usize,
    /// Whether the node being written is an array's item (so it starts its own line).
    in_array: bool,
    /// Where the keys of the maps being written are in `out` (escaped, with quotes), innermost
    /// map last.
    keys: Vec<(usize, usize)>,
    /// Set on a map the writer cannot write alone (a duplicate key, too many keys).
    needs_tree: bool,
}

/// An array or map being written.
struct Open {
    any: bool,
    parent_in_array: bool,
    /// Where the map's keys start in [`JsonWriter::keys`].
    keys: usize,
}

impl JsonWriter<'_> {
    #[inline]
    fn newline(&mut self, level: usize) {
        self.out.push(b'\n');
        self.out.resize(self.out.len() + level * INDENT, b' ');
    }

    /// `{`, then the type's key on the next line, one level in: `"integer": `.
    #[inline]
    fn node(&mut self, ty: &str) {
        if self.in_array {
            self.newline(self.level);
        }
        self.out.push(b'{');
        self.newline(self.level + 1);
        self.out.push(b'"');
        self.out.extend_from_slice(ty.as_bytes());
        self.out.extend_from_slice(b"\": ");
    }

    /// The end of a node: `}` on a line of its own.
    #[inline]
    fn end(&mut self) {
        self.newline(self.level);
        self.out.push(b'}');
    }

    #[inline]
    fn scalar(&mut self, ty: &str, value: &[u8]) {
        self.node(ty);
        self.out.extend_from_slice(value);
        self.end();
    }

    #[inline]
    fn real(&mut self, ty: &str, r: f64) {
        self.node(ty);
        if r.is_nan() {
            self.out.extend_from_slice(b"\"nan\"");
        } else if r.is_infinite() {
            self.out
                .extend_from_slice(if r > 0.0 { b"\"inf\"" } else { b"\"-inf\"" });
        } else {
            // serde_json's own spelling of a finite f64; a `Vec` cannot fail.
            let _ = serde_json::to_writer(&mut *self.out, &r);
        }
        self.end();
    }

    #[inline]
    fn text(&mut self, ty: &str, s: &str) {
        self.node(ty);
        let _ = serde_json::to_writer(&mut *self.out, s);
        self.end();
    }

    #[inline]
    fn open(&mut self, ty: &str, tag: u8, in_array: bool) -> Open {
        self.node(ty);
        self.out.push(tag);
        self.level += 2;
        Open {
            any: false,
            parent_in_array: std::mem::replace(&mut self.in_array, in_array),
            keys: self.keys.len(),
        }
    }

    #[inline]
    fn close(&mut self, open: Open, tag: u8) {
        self.level -= 2;
        self.in_array = open.parent_in_array;
        self.keys.truncate(open.keys);
        if open.any {
            self.out.pop();
            self.newline(self.level + 1);
        }
        self.out.push(tag);
        self.end();
    }
}

impl Build for &mut JsonWriter<'_> {
    type Node = ();
    type Array = Open;
    type Map = Open;
    type Key = ();

    fn undef(&mut self) {
        self.scalar("undef", b"null");
    }

    fn boolean(&mut self, b: bool) {
        self.scalar("boolean", if b { b"true" } else { b"false" });
    }

    fn integer(&mut self, i: i32) {
        self.scalar("integer", itoa::Buffer::new().format(i).as_bytes());
    }

    fn real(&mut self, r: f64) {
        JsonWriter::real(self, "real", r);
    }

    fn uuid(&mut self, u: uuid::Uuid) {
        let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH + 2];
        buf[0] = b'"';
        buf[uuid::fmt::Hyphenated::LENGTH + 1] = b'"';
        u.hyphenated()
            .encode_lower(&mut buf[1..=uuid::fmt::Hyphenated::LENGTH]);
        self.scalar("uuid", &buf);
    }

    fn date(&mut self, secs: f64) {
        JsonWriter::real(self, "date", secs);
    }

    fn string(&mut self, s: Cow<'_, str>) {
        self.text("string", &s);
    }

    fn uri(&mut self, s: Cow<'_, str>) {
        self.text("uri", &s);
    }

    fn binary(&mut self, b: Cow<'_, [u8]>) {
        self.node("binary");
        self.out.push(b'"');
        super::text::push_base64(self.out, &b);
        self.out.push(b'"');
        self.end();
    }

    fn array_begin(&mut self, _capacity: usize) -> Open {
        self.open("array", b'[', true)
    }

    fn array_push(&mut self, array: &mut Open, (): ()) {
        array.any = true;
        self.out.push(b',');
    }

    fn array_end(&mut self, array: Open) {
        self.close(array, b']');
    }

    fn map_begin(&mut self, _capacity: usize) -> Open {
        self.open("map", b'{', false)
    }

    fn map_key(&mut self, map: &mut Open, key: Cow<'_, str>) {
        self.newline(self.level);
        let at = self.out.len();
        let _ = serde_json::to_writer(&mut *self.out, &*key);
        let len = self.out.len() - at;
        let written = &self.out[at..];
        let earlier = &self.keys[map.keys..];
        if earlier.len() >= MAX_STREAMED_KEYS
            || earlier
                .iter()
                .any(|&(s, l)| l == len && &self.out[s..s + l] == written)
        {
            self.needs_tree = true;
        }
        self.keys.push((at, len));
        self.out.extend_from_slice(b": ");
    }

    fn map_insert(&mut self, map: &mut Open, (): (), (): ()) {
        map.any = true;
        self.out.push(b',');
    }

    fn map_end(&mut self, map: Open) {
        self.close(map, b'}');
    }
}

/// The typed JSON of a value. A map with duplicate keys keeps the first position and the last value
/// of each key (JSON objects have unique keys).
pub fn to_json(value: &Value) -> Json {
    // Containers recurse through this small frame; scalars are built in `scalar_json`.
    let (ty, inner) = match value {
        Value::Array(items) => ("array", Json::Array(items.iter().map(to_json).collect())),
        Value::Map(map) => (
            "map",
            Json::Object(
                map.0
                    .iter()
                    .map(|(k, v)| (k.to_string(), to_json(v)))
                    .collect(),
            ),
        ),
        scalar => return scalar_json(scalar),
    };
    let mut obj = serde_json::Map::with_capacity(1);
    obj.insert(ty.to_string(), inner);
    Json::Object(obj)
}

#[inline(never)]
fn scalar_json(value: &Value) -> Json {
    match value {
        Value::Undef => json!({ "undef": null }),
        Value::Boolean(b) => json!({ "boolean": b }),
        Value::Integer(i) => json!({ "integer": i }),
        Value::Real(r) => json!({ "real": real_json(*r) }),
        Value::String(s) => json!({ "string": s }),
        Value::Uuid(u) => json!({ "uuid": u.hyphenated().to_string() }),
        Value::Date(d) => json!({ "date": real_json(d.0) }),
        Value::Uri(s) => json!({ "uri": s }),
        Value::Binary(b) => {
            json!({ "binary": base64::engine::general_purpose::STANDARD.encode(b) })
        }
        Value::Array(_) | Value::Map(_) => to_json(value),
    }
}

fn real_json(r: f64) -> Json {
    if r.is_nan() {
        Json::from("nan")
    } else if r.is_infinite() {
        Json::from(if r > 0.0 { "inf" } else { "-inf" })
    } else {
        Json::from(r)
    }
}

/// A failure inside `from_json`: the path segments (innermost first) and what was wrong.
struct Bad(Vec<String>, String);

fn bad<T>(problem: impl Into<String>) -> Result<T, Bad> {
    Err(Bad(Vec::new(), problem.into()))
}

/// Reads typed JSON back into a value. Errors name the JSON path (`$.map.events.array[0]`); their
/// byte offset is 0 (the input is a JSON tree, not bytes).
pub fn from_json(json: &Json) -> Result<Value, Error> {
    node(json, 0).map_err(|Bad(mut path, problem)| {
        path.push("$".into());
        path.reverse();
        Error::new(
            0,
            ErrorKind::TypedJson {
                path: path.concat(),
                problem,
            },
        )
    })
}

fn node(json: &Json, depth: usize) -> Result<Value, Bad> {
    let Json::Object(obj) = json else {
        return bad("expected an object like {\"integer\": 1}");
    };
    let mut entries = obj.iter();
    let (Some((ty, v)), None) = (entries.next(), entries.next()) else {
        return bad("expected exactly one key, the LLSD type");
    };
    match (ty.as_str(), v) {
        ("array", Json::Array(_)) | ("map", Json::Object(_)) if depth >= MAX_DEPTH => {
            under(ty, bad(format!("nesting deeper than {MAX_DEPTH} levels")))
        }
        ("array", Json::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                out.push(under(
                    ty,
                    node(item, depth + 1).map_err(|Bad(mut path, p)| {
                        path.push(format!("[{i}]"));
                        Bad(path, p)
                    }),
                )?);
            }
            Ok(Value::Array(out))
        }
        ("map", Json::Object(fields)) => {
            let mut out = Vec::with_capacity(fields.len());
            for (k, item) in fields {
                let v = under(
                    ty,
                    node(item, depth + 1).map_err(|Bad(mut path, p)| {
                        path.push(format!(".{k}"));
                        Bad(path, p)
                    }),
                )?;
                out.push((Key::from(k.as_str()), v));
            }
            Ok(Value::Map(Map(out)))
        }
        _ => scalar_node(ty, v),
    }
}

/// A typed JSON node that is not a container (or is malformed).
#[inline(never)]
fn scalar_node(ty: &str, v: &Json) -> Result<Value, Bad> {
    let value = match (ty, v) {
        ("undef", Json::Null) => Value::Undef,
        ("boolean", Json::Bool(b)) => Value::Boolean(*b),
        ("integer", Json::Number(n)) => match n.as_i64().and_then(|i| i32::try_from(i).ok()) {
            Some(i) => Value::Integer(i),
            None => return under(ty, bad(format!("{n} is not a 32-bit integer"))),
        },
        ("real", r) => Value::Real(under(ty, real(r))?),
        ("date", Json::String(s)) => match super::text::parse_date(s.as_bytes()) {
            Some(d) => Value::Date(Date(d)),
            None => Value::Date(Date(under(ty, real(v))?)),
        },
        ("date", r) => Value::Date(Date(under(ty, real(r))?)),
        ("string", Json::String(s)) => Value::String(s.clone()),
        ("uri", Json::String(s)) => Value::Uri(s.clone()),
        ("uuid", Json::String(s)) => match uuid::Uuid::try_parse(s) {
            Ok(u) => Value::Uuid(u),
            Err(_) => return under(ty, bad(format!("{s:?} is not a uuid"))),
        },
        ("binary", Json::String(s)) => match super::text::decode_base64(s.as_bytes()) {
            Some(b) => Value::Binary(b),
            None => return under(ty, bad("invalid base64")),
        },
        (
            "undef" | "boolean" | "integer" | "string" | "uri" | "uuid" | "binary" | "array"
            | "map",
            other,
        ) => return under(ty, bad(format!("unexpected JSON {}", json_kind(other)))),
        (other, _) => return bad(format!("unknown LLSD type {other:?}")),
    };
    Ok(value)
}

/// Prefixes a failure's path with the type key it happened under.
fn under<T>(ty: &str, r: Result<T, Bad>) -> Result<T, Bad> {
    r.map_err(|Bad(mut path, p)| {
        path.push(format!(".{ty}"));
        Bad(path, p)
    })
}

fn real(json: &Json) -> Result<f64, Bad> {
    match json {
        Json::Number(n) => n.as_f64().map_or_else(|| bad("number out of range"), Ok),
        Json::String(s) => match s.as_str() {
            "nan" => Ok(f64::NAN),
            "inf" => Ok(f64::INFINITY),
            "-inf" => Ok(f64::NEG_INFINITY),
            _ => bad(format!(
                "{s:?} is not a number, \"nan\", \"inf\" or \"-inf\""
            )),
        },
        other => bad(format!("unexpected JSON {}", json_kind(other))),
    }
}

fn json_kind(j: &Json) -> &'static str {
    match j {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_shape() {
        let v = Value::Map(Map(vec![
            ("z".into(), Value::Real(f64::NEG_INFINITY)),
            ("a".into(), Value::Binary(vec![200, 15, 5, 72])),
            ("d".into(), Value::Date(Date(1.5))),
            ("u".into(), Value::Uri("x".into())),
        ]));
        let j = to_json(&v);
        assert_eq!(
            j.to_string(),
            r#"{"map":{"z":{"real":"-inf"},"a":{"binary":"yA8FSA=="},"d":{"date":1.5},"u":{"uri":"x"}}}"#
        );
        assert!(from_json(&j).unwrap().same(&v));
    }

    #[test]
    fn errors_name_the_path() {
        let j: Json =
            serde_json::from_str(r#"{"map":{"a":{"array":[{"integer":1},{"integer":"x"}]}}}"#)
                .unwrap();
        let e = from_json(&j).unwrap_err();
        assert!(e.to_string().contains("$.map.a.array[1].integer"), "{e}");
        assert!(from_json(&json!({"integer": 1u64 << 40})).is_err());
        assert!(from_json(&json!({"frob": 1})).is_err());
        assert!(from_json(&json!({"integer": 1, "real": 2})).is_err());
        assert!(from_json(&json!([1])).is_err());
    }
}
