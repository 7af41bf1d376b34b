//! Just enough LLSD (XML and binary writing, XML reading) and XML-RPC for the simulated grid and the
//! scripted viewer to talk to each other.
//!
//! This is test-support code with a narrow purpose: build the bodies a grid sends and read the few
//! fields a viewer needs. It is not capscope's codec (that is [`crate::llsd`], which the proxy uses) and
//! must not grow into one: the grid deliberately speaks through a separate implementation, so a bug in
//! the codec cannot hide itself by being on both ends of a test.

use std::fmt::Write as _;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use quick_xml::events::Event;
use quick_xml::Reader;

use crate::llsd::{Map, Value};

/// The deepest XML nesting read before giving up.
pub const MAX_XML_DEPTH: usize = 64;
/// The most XML elements read from one document.
pub const MAX_XML_ELEMENTS: usize = 200_000;

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LiteError {
    #[error("XML is not well-formed at byte {offset}: {reason}")]
    Xml { offset: u64, reason: String },
    #[error("XML nests deeper than {MAX_XML_DEPTH} elements")]
    TooDeep,
    #[error("XML has more than {MAX_XML_ELEMENTS} elements")]
    TooManyElements,
    #[error("the document has no root element")]
    NoRoot,
    #[error("expected <{expected}>, found <{found}>")]
    Unexpected {
        expected: &'static str,
        found: String,
    },
    #[error("<{element}> holds {text:?}, which is not a valid {element}")]
    BadScalar { element: String, text: String },
    #[error("unknown LLSD element <{0}>")]
    UnknownElement(String),
}

/// One XML element, read whole.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    /// The element's own text (concatenated, entities resolved).
    pub text: String,
}

impl Element {
    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads a whole XML document into its root element.
pub fn parse_xml(bytes: &[u8]) -> Result<Element, LiteError> {
    let mut reader = Reader::from_reader(bytes);
    let mut stack: Vec<Element> = Vec::new();
    let mut count = 0usize;
    let xml_err = |reader: &Reader<&[u8]>, e: &dyn std::fmt::Display| LiteError::Xml {
        offset: reader.buffer_position(),
        reason: e.to_string(),
    };
    loop {
        let event = reader.read_event().map_err(|e| xml_err(&reader, &e))?;
        match event {
            Event::Start(start) => {
                count += 1;
                stack.push(open_element(&reader, &start, stack.len(), count)?);
            }
            Event::Empty(start) => {
                count += 1;
                let element = open_element(&reader, &start, stack.len(), count)?;
                if stack.is_empty() {
                    return Ok(element);
                }
                stack.push(element);
                close(&mut stack);
            }
            Event::End(_) => {
                if stack.len() == 1 {
                    return stack.pop().ok_or(LiteError::NoRoot);
                }
                close(&mut stack);
            }
            Event::Text(text) => {
                if let Some(top) = stack.last_mut() {
                    top.text
                        .push_str(&text.decode().map_err(|e| xml_err(&reader, &e))?);
                }
            }
            Event::CData(data) => {
                if let Some(top) = stack.last_mut() {
                    top.text
                        .push_str(&data.decode().map_err(|e| xml_err(&reader, &e))?);
                }
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().map_err(|e| xml_err(&reader, &e))? {
                    Some(c) => c.to_string(),
                    None => {
                        let name = r.decode().map_err(|e| xml_err(&reader, &e))?;
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or_else(|| LiteError::Xml {
                                offset: reader.buffer_position(),
                                reason: format!("unknown entity &{name};"),
                            })?
                            .to_owned()
                    }
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&resolved);
                }
            }
            Event::Eof => {
                return match stack.len() {
                    0 => Err(LiteError::NoRoot),
                    _ => Err(LiteError::Xml {
                        offset: reader.buffer_position(),
                        reason: format!("the document ends inside <{}>", stack[0].name),
                    }),
                };
            }
            _ => {}
        }
    }
}

/// Pops the innermost open element into its parent (the root stays on the stack).
fn close(stack: &mut Vec<Element>) {
    if stack.len() > 1 {
        if let Some(done) = stack.pop() {
            if let Some(parent) = stack.last_mut() {
                parent.children.push(done);
            }
        }
    }
}

/// Builds the element a start tag opens, within the depth and count limits.
fn open_element(
    reader: &Reader<&[u8]>,
    start: &quick_xml::events::BytesStart<'_>,
    depth: usize,
    count: usize,
) -> Result<Element, LiteError> {
    if count > MAX_XML_ELEMENTS {
        return Err(LiteError::TooManyElements);
    }
    if depth >= MAX_XML_DEPTH {
        return Err(LiteError::TooDeep);
    }
    let xml_err = |e: &dyn std::fmt::Display| LiteError::Xml {
        offset: reader.buffer_position(),
        reason: e.to_string(),
    };
    let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
    let mut attrs = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| xml_err(&e))?;
        let key = String::from_utf8_lossy(attr.key.local_name().as_ref()).into_owned();
        let value = attr.unescape_value().map_err(|e| xml_err(&e))?.into_owned();
        attrs.push((key, value));
    }
    Ok(Element {
        name,
        attrs,
        ..Element::default()
    })
}

// ---------------------------------------------------------------------------------------------
// LLSD XML

/// Writes `value` as an LLSD XML document.
pub fn to_xml(value: &Value) -> String {
    let mut out = String::from("<?xml version=\"1.0\" ?><llsd>");
    write_xml(&mut out, value);
    out.push_str("</llsd>");
    out
}

fn write_xml(out: &mut String, value: &Value) {
    match value {
        Value::Undef => out.push_str("<undef />"),
        Value::Boolean(b) => {
            let _ = write!(
                out,
                "<boolean>{}</boolean>",
                if *b { "true" } else { "false" }
            );
        }
        Value::Integer(i) => {
            let _ = write!(out, "<integer>{i}</integer>");
        }
        Value::Real(r) => {
            let _ = write!(out, "<real>{r}</real>");
        }
        Value::String(s) => {
            let _ = write!(out, "<string>{}</string>", quick_xml::escape::escape(s));
        }
        Value::Uuid(u) => {
            let _ = write!(out, "<uuid>{u}</uuid>");
        }
        Value::Date(d) => {
            let when = time::OffsetDateTime::from_unix_timestamp(d.0 as i64)
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
            let _ = write!(
                out,
                "<date>{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z</date>",
                when.year(),
                u8::from(when.month()),
                when.day(),
                when.hour(),
                when.minute(),
                when.second()
            );
        }
        Value::Uri(u) => {
            let _ = write!(out, "<uri>{}</uri>", quick_xml::escape::escape(u));
        }
        Value::Binary(b) => {
            let _ = write!(
                out,
                "<binary encoding=\"base64\">{}</binary>",
                STANDARD.encode(b)
            );
        }
        Value::Array(a) => {
            out.push_str("<array>");
            for v in a {
                write_xml(out, v);
            }
            out.push_str("</array>");
        }
        Value::Map(m) => {
            out.push_str("<map>");
            for (k, v) in m.iter() {
                let _ = write!(out, "<key>{}</key>", quick_xml::escape::escape(k));
                write_xml(out, v);
            }
            out.push_str("</map>");
        }
    }
}

/// Reads an LLSD XML document.
pub fn from_xml(bytes: &[u8]) -> Result<Value, LiteError> {
    let root = parse_xml(bytes)?;
    if root.name != "llsd" {
        return Err(LiteError::Unexpected {
            expected: "llsd",
            found: root.name,
        });
    }
    match root.children.first() {
        Some(first) => llsd_element(first),
        None => Ok(Value::Undef),
    }
}

fn llsd_element(e: &Element) -> Result<Value, LiteError> {
    let text = e.text.trim();
    let bad = || LiteError::BadScalar {
        element: e.name.clone(),
        text: text.to_owned(),
    };
    Ok(match e.name.as_str() {
        "undef" => Value::Undef,
        "boolean" => Value::Boolean(matches!(text, "true" | "1")),
        "integer" if text.is_empty() => Value::Integer(0),
        "integer" => Value::Integer(text.parse().map_err(|_| bad())?),
        "real" if text.is_empty() => Value::Real(0.0),
        "real" => Value::Real(text.parse().map_err(|_| bad())?),
        "string" => Value::String(e.text.clone()),
        "uri" => Value::Uri(e.text.clone()),
        "uuid" if text.is_empty() => Value::Uuid(uuid::Uuid::nil()),
        "uuid" => Value::Uuid(text.parse().map_err(|_| bad())?),
        "date" if text.is_empty() => Value::Date(crate::llsd::Date(0.0)),
        "date" => Value::Date(crate::llsd::Date(parse_date(text).ok_or_else(bad)?)),
        "binary" => {
            let encoding = e.attr("encoding").unwrap_or("base64");
            if encoding != "base64" {
                return Err(bad());
            }
            let compact: String = text.split_whitespace().collect();
            Value::Binary(STANDARD.decode(compact).map_err(|_| bad())?)
        }
        "array" => Value::Array(
            e.children
                .iter()
                .map(llsd_element)
                .collect::<Result<_, _>>()?,
        ),
        "map" => {
            let mut map = Map::new();
            let mut it = e.children.iter();
            while let Some(key) = it.next() {
                if key.name != "key" {
                    return Err(LiteError::Unexpected {
                        expected: "key",
                        found: key.name.clone(),
                    });
                }
                let value = match it.next() {
                    Some(v) => llsd_element(v)?,
                    None => Value::Undef,
                };
                map.push(key.text.clone(), value);
            }
            Value::Map(map)
        }
        other => return Err(LiteError::UnknownElement(other.to_owned())),
    })
}

/// Seconds since the epoch of an LLSD date (`YYYY-MM-DDTHH:MM:SS[.fff]Z`).
fn parse_date(text: &str) -> Option<f64> {
    let text = text.strip_suffix('Z')?;
    let (date, clock) = text.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i32>().ok());
    let (year, month, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = match clock.split_once('.') {
        Some((hms, frac)) => (hms, format!("0.{frac}").parse::<f64>().ok()?),
        None => (clock, 0.0),
    };
    let mut t = hms.splitn(3, ':').map(|p| p.parse::<u8>().ok());
    let (h, mi, s) = (t.next()??, t.next()??, t.next()??);
    let month = time::Month::try_from(u8::try_from(month).ok()?).ok()?;
    let date = time::Date::from_calendar_date(year, month, u8::try_from(day).ok()?).ok()?;
    let clock = time::Time::from_hms(h, mi, s).ok()?;
    let when = time::PrimitiveDateTime::new(date, clock).assume_utc();
    Some(when.unix_timestamp() as f64 + frac)
}

// ---------------------------------------------------------------------------------------------
// LLSD binary (writing only: the grid sends it, the viewer only checks it arrived)

/// The header of a binary LLSD document.
pub const BINARY_HEADER: &[u8] = b"<? LLSD/Binary ?>\n";

/// Writes `value` as a binary LLSD document (with its header).
pub fn to_binary(value: &Value) -> Vec<u8> {
    let mut out = BINARY_HEADER.to_vec();
    write_binary(&mut out, value);
    out
}

fn write_len(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
}

fn write_binary(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Undef => out.push(b'!'),
        Value::Boolean(b) => out.push(if *b { b'1' } else { b'0' }),
        Value::Integer(i) => {
            out.push(b'i');
            out.extend_from_slice(&i.to_be_bytes());
        }
        Value::Real(r) => {
            out.push(b'r');
            out.extend_from_slice(&r.to_be_bytes());
        }
        Value::String(s) => {
            out.push(b's');
            write_len(out, s.len());
            out.extend_from_slice(s.as_bytes());
        }
        Value::Uri(s) => {
            out.push(b'l');
            write_len(out, s.len());
            out.extend_from_slice(s.as_bytes());
        }
        Value::Uuid(u) => {
            out.push(b'u');
            out.extend_from_slice(u.as_bytes());
        }
        Value::Date(d) => {
            out.push(b'd');
            out.extend_from_slice(&d.0.to_le_bytes());
        }
        Value::Binary(b) => {
            out.push(b'b');
            write_len(out, b.len());
            out.extend_from_slice(b);
        }
        Value::Array(a) => {
            out.push(b'[');
            write_len(out, a.len());
            for v in a {
                write_binary(out, v);
            }
            out.push(b']');
        }
        Value::Map(m) => {
            out.push(b'{');
            write_len(out, m.len());
            for (k, v) in m.iter() {
                out.push(b'k');
                write_len(out, k.len());
                out.extend_from_slice(k.as_bytes());
                write_binary(out, v);
            }
            out.push(b'}');
        }
    }
}

// ---------------------------------------------------------------------------------------------
// XML-RPC

/// An XML-RPC value, as far as login needs them.
#[derive(Debug, Clone, PartialEq)]
pub enum Rpc {
    Str(String),
    Int(i32),
    Bool(bool),
    Array(Vec<Rpc>),
    Struct(Vec<(String, Rpc)>),
}

impl Rpc {
    /// A string value.
    pub fn s(text: impl Into<String>) -> Self {
        Rpc::Str(text.into())
    }

    /// The member `name` of a struct.
    pub fn member(&self, name: &str) -> Option<&Rpc> {
        match self {
            Rpc::Struct(members) => members.iter().find(|(k, _)| k == name).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The text of a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Rpc::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The number of an int value.
    pub fn as_int(&self) -> Option<i32> {
        match self {
            Rpc::Int(i) => Some(*i),
            _ => None,
        }
    }
}

fn write_rpc(out: &mut String, value: &Rpc) {
    out.push_str("<value>");
    match value {
        Rpc::Str(s) => {
            let _ = write!(out, "<string>{}</string>", quick_xml::escape::escape(s));
        }
        Rpc::Int(i) => {
            let _ = write!(out, "<i4>{i}</i4>");
        }
        Rpc::Bool(b) => {
            let _ = write!(out, "<boolean>{}</boolean>", u8::from(*b));
        }
        Rpc::Array(items) => {
            out.push_str("<array><data>");
            for item in items {
                write_rpc(out, item);
            }
            out.push_str("</data></array>");
        }
        Rpc::Struct(members) => {
            out.push_str("<struct>");
            for (name, v) in members {
                let _ = write!(
                    out,
                    "<member><name>{}</name>",
                    quick_xml::escape::escape(name)
                );
                write_rpc(out, v);
                out.push_str("</member>");
            }
            out.push_str("</struct>");
        }
    }
    out.push_str("</value>");
}

/// Writes an XML-RPC `methodCall` with one parameter.
pub fn rpc_call(method: &str, param: &Rpc) -> String {
    let mut out = format!(
        "<?xml version=\"1.0\"?><methodCall><methodName>{}</methodName><params><param>",
        quick_xml::escape::escape(method)
    );
    write_rpc(&mut out, param);
    out.push_str("</param></params></methodCall>");
    out
}

/// Writes an XML-RPC `methodResponse` with one parameter.
pub fn rpc_response(param: &Rpc) -> String {
    let mut out =
        String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?><methodResponse><params><param>");
    write_rpc(&mut out, param);
    out.push_str("</param></params></methodResponse>");
    out
}

/// Reads an XML-RPC call or response: the method name (for a call) and the first parameter.
pub fn rpc_parse(bytes: &[u8]) -> Result<(Option<String>, Rpc), LiteError> {
    let root = parse_xml(bytes)?;
    let method = root.child("methodName").map(|m| m.text.trim().to_owned());
    let value = root
        .child("params")
        .and_then(|p| p.child("param"))
        .and_then(|p| p.child("value"))
        .ok_or(LiteError::Unexpected {
            expected: "params",
            found: root.name.clone(),
        })?;
    Ok((method, rpc_value(value)?))
}

fn rpc_value(value: &Element) -> Result<Rpc, LiteError> {
    let Some(inner) = value.children.first() else {
        // A bare <value>text</value> is a string.
        return Ok(Rpc::Str(value.text.clone()));
    };
    let text = inner.text.trim();
    let bad = || LiteError::BadScalar {
        element: inner.name.clone(),
        text: text.to_owned(),
    };
    Ok(match inner.name.as_str() {
        "string" => Rpc::Str(inner.text.clone()),
        "i4" | "int" => Rpc::Int(text.parse().map_err(|_| bad())?),
        "boolean" => Rpc::Bool(text == "1"),
        "array" => {
            let data = inner.child("data").ok_or_else(bad)?;
            Rpc::Array(
                data.children
                    .iter()
                    .map(rpc_value)
                    .collect::<Result<_, _>>()?,
            )
        }
        "struct" => {
            let mut members = Vec::new();
            for m in &inner.children {
                let name = m.child("name").map(|n| n.text.clone()).unwrap_or_default();
                let v = match m.child("value") {
                    Some(v) => rpc_value(v)?,
                    None => Rpc::Str(String::new()),
                };
                members.push((name, v));
            }
            Rpc::Struct(members)
        }
        other => return Err(LiteError::UnknownElement(other.to_owned())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        let mut inner = Map::new();
        inner.push("SimIP", Value::Binary(vec![127, 0, 0, 1]));
        inner.push("SeedCapability", Value::Uri("https://h:1/CAPS/a&b/".into()));
        inner.push("Name", Value::String("<Ahern> & co".into()));
        inner.push("Port", Value::Integer(-9000));
        inner.push("Ok", Value::Boolean(true));
        inner.push("Id", Value::Uuid(uuid::Uuid::from_u128(42)));
        inner.push("Nothing", Value::Undef);
        inner.push(
            "Pos",
            Value::Array(vec![Value::Real(1.5), Value::Real(-2.0)]),
        );
        Value::Map(Map(vec![(
            "Info".into(),
            Value::Array(vec![Value::Map(inner)]),
        )]))
    }

    #[test]
    fn llsd_xml_round_trips_through_the_reader() {
        let v = sample();
        let back = from_xml(to_xml(&v).as_bytes()).unwrap();
        assert!(back.same(&v), "{back:?}");
    }

    #[test]
    fn empty_elements_are_defaults() {
        let v =
            from_xml(b"<llsd><array><integer /><string/><uuid /><undef/></array></llsd>").unwrap();
        assert_eq!(
            v,
            Value::Array(vec![
                Value::Integer(0),
                Value::String(String::new()),
                Value::Uuid(uuid::Uuid::nil()),
                Value::Undef
            ])
        );
    }

    #[test]
    fn truncated_xml_is_an_error_not_a_panic() {
        let full = to_xml(&sample());
        for cut in 0..full.len() {
            let _ = from_xml(&full.as_bytes()[..cut]);
        }
        assert!(from_xml(&full.as_bytes()[..full.len() / 2]).is_err());
    }

    #[test]
    fn binary_starts_with_the_header_and_keeps_big_endian_integers() {
        let b = to_binary(&Value::Integer(1));
        assert_eq!(&b[..BINARY_HEADER.len()], BINARY_HEADER);
        assert_eq!(&b[BINARY_HEADER.len()..], &[b'i', 0, 0, 0, 1]);
    }

    #[test]
    fn xml_rpc_round_trips() {
        let v = Rpc::Struct(vec![
            ("first".into(), Rpc::s("Demo")),
            ("n".into(), Rpc::Int(7)),
            (
                "options".into(),
                Rpc::Array(vec![Rpc::s("a"), Rpc::s("b&c")]),
            ),
        ]);
        let (m, back) = rpc_parse(rpc_call("login_to_simulator", &v).as_bytes()).unwrap();
        assert_eq!(m.as_deref(), Some("login_to_simulator"));
        assert_eq!(back, v);
        let (m, back) = rpc_parse(rpc_response(&v).as_bytes()).unwrap();
        assert_eq!(m, None);
        assert_eq!(back, v);
    }
}
