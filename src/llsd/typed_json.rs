//! Typed JSON: a lossless JSON spelling of LLSD values, as the project's test vectors use it. Every
//! node is an object with one key naming the LLSD type: `{"integer": 42}`, `{"real": 1.5}` (or
//! `"nan"`, `"inf"`, `"-inf"`), `{"date": 1138804193.0}` (seconds since the epoch), `{"binary":
//! "<base64>"}`, `{"map": {"key": ...}}` (key order kept), and so on.
//!
//! Owns the conversion between [`Value`] and `serde_json::Value` only.

use base64::Engine as _;
use serde_json::{json, Value as Json};

use super::error::{Error, ErrorKind};
use super::{Date, Key, Map, Value, MAX_DEPTH};

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
