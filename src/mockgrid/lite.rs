//! XML-RPC (login's wire form) for the simulated grid and the scripted viewer, and binary LLSD with
//! Second Life's header spelling.
//!
//! LLSD itself goes through [`crate::llsd`]; this module holds only what that codec does not cover:
//! a small XML element tree read with quick-xml (bounded depth and size) and XML-RPC calls and
//! responses on top of it. It must not grow into a second LLSD codec.
//!
//! `crate::caps::xmlrpc` reads XML-RPC too, but for in-place rewriting (byte ranges) inside capscope.
//! The simulated grid and viewer stand for third parties, and the end-to-end tests compare capscope's
//! rewritten login replies with this reader, so it is kept apart on purpose: a bug in capscope's reader
//! cannot hide itself by being on both ends of a test.

use std::fmt::Write as _;

use quick_xml::events::Event;
use quick_xml::Reader;

use crate::llsd::Value;

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
// LLSD binary

/// The header Second Life writes before a binary LLSD document (the codec reads any spelling).
pub const BINARY_HEADER: &[u8] = b"<? LLSD/Binary ?>\n";

/// Writes `value` as binary LLSD with Second Life's spelling of the header.
pub fn to_binary(value: &Value) -> Vec<u8> {
    let mut out = BINARY_HEADER.to_vec();
    crate::llsd::binary::write_value(&mut out, value);
    out
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

/// An XML-RPC value as LLSD: the LLSD login carries the same members (OpenSim's
/// `LoginResponse.ToOSDMap`).
pub fn rpc_to_llsd(value: &Rpc) -> Value {
    match value {
        Rpc::Str(s) => Value::String(s.clone()),
        Rpc::Int(i) => Value::Integer(*i),
        Rpc::Bool(b) => Value::Boolean(*b),
        Rpc::Array(items) => Value::Array(items.iter().map(rpc_to_llsd).collect()),
        Rpc::Struct(members) => Value::Map(
            members
                .iter()
                .map(|(k, v)| (k.clone(), rpc_to_llsd(v)))
                .collect(),
        ),
    }
}

/// An LLSD value as XML-RPC, as far as login needs (other scalars become their text).
pub fn llsd_to_rpc(value: &Value) -> Rpc {
    match value {
        Value::String(s) | Value::Uri(s) => Rpc::Str(s.clone()),
        Value::Integer(i) => Rpc::Int(*i),
        Value::Boolean(b) => Rpc::Bool(*b),
        Value::Array(items) => Rpc::Array(items.iter().map(llsd_to_rpc).collect()),
        Value::Map(m) => Rpc::Struct(
            m.iter()
                .map(|(k, v)| (k.to_owned(), llsd_to_rpc(v)))
                .collect(),
        ),
        Value::Uuid(u) => Rpc::Str(u.to_string()),
        Value::Real(r) => Rpc::Str(r.to_string()),
        Value::Undef => Rpc::Str(String::new()),
        other => Rpc::Str(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_starts_with_the_header_and_keeps_big_endian_integers() {
        let b = to_binary(&Value::Integer(1));
        assert_eq!(&b[..BINARY_HEADER.len()], BINARY_HEADER);
        assert_eq!(&b[BINARY_HEADER.len()..], &[b'i', 0, 0, 0, 1]);
        assert_eq!(
            crate::llsd::binary::from_slice(&b).unwrap(),
            Value::Integer(1)
        );
    }

    #[test]
    fn truncated_xml_rpc_is_an_error_not_a_panic() {
        let full = rpc_response(&Rpc::Struct(vec![("login".into(), Rpc::s("true"))]));
        for cut in 0..full.len() {
            assert!(rpc_parse(&full.as_bytes()[..cut]).is_err(), "cut at {cut}");
        }
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
