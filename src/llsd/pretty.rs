//! The human view of a value, for the UI and `capscope decode`: indented, notation-like text.
//!
//! Strings are quoted with Rust-style escapes (`"a\nb"`), uris read `uri "..."`, integers bare,
//! reals always with a decimal point or exponent (`1.0`, `nan`), uuids and dates bare
//! (`2006-02-01T14:29:53Z`), binary as its size and a hex preview. Not a wire format: nothing
//! parses it.
//!
//! Owns presentation only: the writer of the view, from a tree or as a decoder reads a body.

use std::borrow::Cow;
use std::io::Write as _;

use super::build::{walk, Build};
use super::Value;

/// Bytes of a binary value shown in hex before `…`.
pub const BINARY_PREVIEW: usize = 16;
/// Spaces per nesting level.
const INDENT: usize = 2;

/// The indented human view of a value (no trailing newline).
pub fn pretty(value: &Value) -> String {
    let mut out = Vec::new();
    walk(value, &mut PrettyWriter::new(&mut out));
    into_string(out)
}

/// The writer's bytes as text: they are UTF-8 by construction (valid strings and keys, escaped
/// by `Debug`, and ASCII), so the lossy path is never taken.
pub(crate) fn into_string(out: Vec<u8>) -> String {
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Writes the human view for what it is given: from a tree ([`pretty`]) or as a decoder reads a
/// body (`llsd::transcode_pretty`), so both give the same text. A container's items each start on
/// a line of their own, indented one level more than it; the comma after each item is written with
/// it and the last one taken back when the container closes (a builder hears of an item only once
/// it is written).
pub(crate) struct PrettyWriter<'o> {
    out: &'o mut Vec<u8>,
    /// Nesting level of the value being written.
    level: usize,
    /// Whether the value being written is an array's item (so it starts its own line); a map's
    /// value follows its key on the key's line.
    in_array: bool,
}

/// An array or map being written: whether it has items, and whether its parent is an array.
pub(crate) struct Open {
    any: bool,
    parent_in_array: bool,
}

impl<'o> PrettyWriter<'o> {
    pub(crate) fn new(out: &'o mut Vec<u8>) -> Self {
        Self {
            out,
            level: 0,
            in_array: false,
        }
    }

    #[inline]
    fn newline(&mut self, level: usize) {
        self.out.push(b'\n');
        self.out.resize(self.out.len() + level * INDENT, b' ');
    }

    /// What goes before a value: its own line when it is an array's item.
    #[inline]
    fn start(&mut self) {
        if self.in_array {
            self.newline(self.level);
        }
    }

    #[inline]
    fn open(&mut self, tag: u8, in_array: bool) -> Open {
        self.start();
        self.out.push(tag);
        self.level += 1;
        let parent_in_array = std::mem::replace(&mut self.in_array, in_array);
        Open {
            any: false,
            parent_in_array,
        }
    }

    #[inline]
    fn close(&mut self, open: Open, tag: u8) {
        self.level -= 1;
        self.in_array = open.parent_in_array;
        if open.any {
            self.out.pop();
            self.newline(self.level);
        }
        self.out.push(tag);
    }
}

/// A string as Rust's `Debug` quotes it (`"a\"b\n"`). Printable ASCII other than `"` and `\` is
/// written as it is, which is what `Debug` writes for it; anything else goes through `Debug`.
#[inline]
fn push_quoted(out: &mut Vec<u8>, s: &str) {
    if s.bytes()
        .all(|b| matches!(b, b' '..=b'~') && b != b'"' && b != b'\\')
    {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        let _ = write!(out, "{s:?}");
    }
}

impl Build for PrettyWriter<'_> {
    type Node = ();
    type Array = Open;
    type Map = Open;
    type Key = ();

    fn undef(&mut self) {
        self.start();
        self.out.extend_from_slice(b"undef");
    }

    fn boolean(&mut self, b: bool) {
        self.start();
        self.out
            .extend_from_slice(if b { b"true" } else { b"false" });
    }

    fn integer(&mut self, i: i32) {
        self.start();
        self.out
            .extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
    }

    fn real(&mut self, r: f64) {
        self.start();
        if r.is_nan() {
            self.out.extend_from_slice(b"nan");
        } else if r.is_infinite() {
            self.out
                .extend_from_slice(if r > 0.0 { b"inf" } else { b"-inf" });
        } else {
            let _ = write!(self.out, "{r:?}");
        }
    }

    fn uuid(&mut self, u: uuid::Uuid) {
        self.start();
        let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
        self.out
            .extend_from_slice(u.hyphenated().encode_lower(&mut buf).as_bytes());
    }

    fn date(&mut self, secs: f64) {
        self.start();
        if !super::text::date_has_iso_form(secs) {
            self.out.extend_from_slice(b"date ");
        }
        super::text::push_date(self.out, secs);
    }

    fn string(&mut self, s: Cow<'_, str>) {
        self.start();
        push_quoted(self.out, &s);
    }

    fn uri(&mut self, s: Cow<'_, str>) {
        self.start();
        self.out.extend_from_slice(b"uri ");
        push_quoted(self.out, &s);
    }

    fn binary(&mut self, b: Cow<'_, [u8]>) {
        self.start();
        let _ = write!(self.out, "binary({} bytes)", b.len());
        if !b.is_empty() {
            self.out.push(b' ');
            for (i, byte) in b.iter().take(BINARY_PREVIEW).enumerate() {
                if i > 0 {
                    self.out.push(b' ');
                }
                let _ = write!(self.out, "{byte:02x}");
            }
            if b.len() > BINARY_PREVIEW {
                self.out.extend_from_slice(" …".as_bytes());
            }
        }
    }

    fn array_begin(&mut self, _capacity: usize) -> Open {
        self.open(b'[', true)
    }

    fn array_push(&mut self, array: &mut Open, (): ()) {
        array.any = true;
        self.out.push(b',');
    }

    fn array_end(&mut self, array: Open) {
        self.close(array, b']');
    }

    fn map_begin(&mut self, _capacity: usize) -> Open {
        self.open(b'{', false)
    }

    fn map_key(&mut self, _map: &mut Open, key: Cow<'_, str>) {
        self.newline(self.level);
        push_quoted(self.out, &key);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llsd::{Date, Map};
    use proptest::prelude::*;
    use std::fmt::Write as _;

    /// The view as it was written before the writer (a recursive walk over the tree): the writer
    /// must give the same text, since the UI and `capscope decode` show it.
    fn reference(out: &mut String, value: &Value, level: usize) {
        let newline = |out: &mut String, level: usize| {
            out.push('\n');
            out.push_str(&" ".repeat(level * INDENT));
        };
        match value {
            Value::Undef => out.push_str("undef"),
            Value::Boolean(b) => write!(out, "{b}").unwrap(),
            Value::Integer(i) => write!(out, "{i}").unwrap(),
            Value::Real(r) if r.is_nan() => out.push_str("nan"),
            Value::Real(r) if r.is_infinite() => {
                out.push_str(if *r > 0.0 { "inf" } else { "-inf" })
            }
            Value::Real(r) => write!(out, "{r:?}").unwrap(),
            Value::String(s) => write!(out, "{s:?}").unwrap(),
            Value::Uri(s) => write!(out, "uri {s:?}").unwrap(),
            Value::Uuid(u) => write!(out, "{u}").unwrap(),
            Value::Date(d) => {
                let mut buf = Vec::new();
                crate::llsd::text::push_date(&mut buf, d.0);
                let text = String::from_utf8(buf).unwrap();
                if crate::llsd::text::date_has_iso_form(d.0) {
                    out.push_str(&text);
                } else {
                    write!(out, "date {text}").unwrap();
                }
            }
            Value::Binary(b) => {
                write!(out, "binary({} bytes)", b.len()).unwrap();
                if !b.is_empty() {
                    let hex: Vec<String> = b
                        .iter()
                        .take(BINARY_PREVIEW)
                        .map(|x| format!("{x:02x}"))
                        .collect();
                    write!(out, " {}", hex.join(" ")).unwrap();
                    if b.len() > BINARY_PREVIEW {
                        out.push_str(" …");
                    }
                }
            }
            Value::Array(items) if items.is_empty() => out.push_str("[]"),
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, level + 1);
                    reference(out, item, level + 1);
                }
                newline(out, level);
                out.push(']');
            }
            Value::Map(map) if map.is_empty() => out.push_str("{}"),
            Value::Map(map) => {
                out.push('{');
                for (i, (k, v)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, level + 1);
                    write!(out, "{k:?}: ").unwrap();
                    reference(out, v, level + 1);
                }
                newline(out, level);
                out.push('}');
            }
        }
    }

    fn any_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Undef),
            any::<bool>().prop_map(Value::Boolean),
            any::<i32>().prop_map(Value::Integer),
            any::<f64>().prop_map(Value::Real),
            ".{0,8}".prop_map(Value::String),
            // Printable ASCII with quotes and backslashes: the writer's own fast path.
            "[ -~]{0,8}".prop_map(Value::String),
            ".{0,8}".prop_map(Value::Uri),
            any::<u128>().prop_map(|u| Value::Uuid(uuid::Uuid::from_u128(u))),
            prop_oneof![any::<f64>(), -1e10f64..1e11].prop_map(|d| Value::Date(Date(d))),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::Binary),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec(("[a-z\"\\\n]{0,4}", inner), 0..6)
                    .prop_map(|entries| Value::Map(entries.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn the_writer_gives_the_view_as_it_was(v in any_value()) {
            let mut expected = String::new();
            reference(&mut expected, &v, 0);
            prop_assert_eq!(pretty(&v), expected);
        }
    }

    #[test]
    fn shows_every_type() {
        let v = Value::Map(Map(vec![
            ("s".into(), Value::String("a\"b\n".into())),
            ("i".into(), Value::Integer(42)),
            ("r".into(), Value::Real(1.0)),
            ("u".into(), Value::Uuid(uuid::Uuid::nil())),
            ("d".into(), Value::Date(Date(0.0))),
            ("l".into(), Value::Uri("https://x/".into())),
            ("b".into(), Value::Binary((0u8..20).collect())),
            (
                "a".into(),
                Value::Array(vec![Value::Undef, Value::Boolean(true)]),
            ),
            ("e".into(), Value::Array(vec![])),
        ]));
        let expected = r#"{
  "s": "a\"b\n",
  "i": 42,
  "r": 1.0,
  "u": 00000000-0000-0000-0000-000000000000,
  "d": 1970-01-01T00:00:00Z,
  "l": uri "https://x/",
  "b": binary(20 bytes) 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f …,
  "a": [
    undef,
    true
  ],
  "e": []
}"#;
        assert_eq!(pretty(&v), expected);
    }
}
