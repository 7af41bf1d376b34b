//! The human view of a value, for the UI and `capscope decode`: indented, notation-like text.
//!
//! Strings are quoted with Rust-style escapes (`"a\nb"`), uris read `uri "..."`, integers bare,
//! reals always with a decimal point or exponent (`1.0`, `nan`), uuids and dates bare
//! (`2006-02-01T14:29:53Z`), binary as its size and a hex preview. Not a wire format: nothing
//! parses it.
//!
//! Owns presentation only.

use std::fmt::Write as _;

use super::Value;

/// Bytes of a binary value shown in hex before `…`.
pub const BINARY_PREVIEW: usize = 16;
/// Spaces per nesting level.
const INDENT: usize = 2;

/// The indented human view of a value (no trailing newline).
pub fn pretty(value: &Value) -> String {
    let mut out = String::new();
    write(&mut out, value, 0);
    out
}

fn newline(out: &mut String, level: usize) {
    out.push('\n');
    for _ in 0..level * INDENT {
        out.push(' ');
    }
}

fn write(out: &mut String, value: &Value, level: usize) {
    match value {
        Value::Undef => out.push_str("undef"),
        Value::Boolean(b) => {
            let _ = write!(out, "{b}");
        }
        Value::Integer(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Real(r) => push_real(out, *r),
        Value::String(s) => {
            let _ = write!(out, "{s:?}");
        }
        Value::Uri(s) => {
            let _ = write!(out, "uri {s:?}");
        }
        Value::Uuid(u) => {
            let _ = write!(out, "{u}");
        }
        Value::Date(d) => {
            let mut buf = Vec::new();
            super::text::push_date(&mut buf, d.0);
            if super::text::date_has_iso_form(d.0) {
                out.push_str(&String::from_utf8_lossy(&buf));
            } else {
                let _ = write!(out, "date {}", String::from_utf8_lossy(&buf));
            }
        }
        Value::Binary(b) => {
            let _ = write!(out, "binary({} bytes)", b.len());
            if !b.is_empty() {
                out.push(' ');
                for (i, byte) in b.iter().take(BINARY_PREVIEW).enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    let _ = write!(out, "{byte:02x}");
                }
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
                write(out, item, level + 1);
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
                let _ = write!(out, "{k:?}: ");
                write(out, v, level + 1);
            }
            newline(out, level);
            out.push('}');
        }
    }
}

fn push_real(out: &mut String, r: f64) {
    if r.is_nan() {
        out.push_str("nan");
    } else if r.is_infinite() {
        out.push_str(if r > 0.0 { "inf" } else { "-inf" });
    } else {
        let _ = write!(out, "{r:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llsd::{Date, Map};

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
