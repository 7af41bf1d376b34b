//! A small XML-RPC reader that keeps, for every element, where its content lies in the input bytes, so
//! a login reply can be rewritten in place (only the bytes of the values changed move).
//!
//! Owns XML-RPC structure only (struct members, scalar values); it knows nothing of logins or caps.

use std::ops::Range;

use quick_xml::events::Event;
use quick_xml::Reader;

use super::CapsError;

/// How deep an XML-RPC document may nest (login replies nest about 8 levels).
pub const MAX_XML_DEPTH: usize = 64;

/// One element, with the byte range of its content (between its start and end tags).
#[derive(Debug, Clone, PartialEq)]
pub struct Element {
    pub name: String,
    /// The bytes between `<name ...>` and `</name>` (empty, at the tag's end, for `<name/>`).
    pub content: Range<usize>,
    pub children: Vec<Node>,
}

/// A piece of an element's content.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Element(Element),
    /// Text with entity and character references resolved.
    Text(String),
}

impl Element {
    /// The element's own text (its text children joined; child elements skipped).
    pub fn text(&self) -> String {
        let mut s = String::new();
        for node in &self.children {
            if let Node::Text(t) = node {
                s.push_str(t);
            }
        }
        s
    }

    /// The child elements.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// The first child element named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.elements().find(|e| e.name == name)
    }

    /// Follows a path of child names.
    pub fn path(&self, names: &[&str]) -> Option<&Element> {
        let mut at = self;
        for name in names {
            at = at.child(name)?;
        }
        Some(at)
    }
}

/// A scalar XML-RPC value: its type tag (`string` when untyped), its text and where the text lies.
#[derive(Debug, Clone, PartialEq)]
pub struct Scalar {
    pub kind: String,
    pub text: String,
    pub span: Range<usize>,
}

/// The scalar inside a `<value>` element, or `None` for a struct or array.
pub fn scalar(value: &Element) -> Option<Scalar> {
    match value.elements().next() {
        None => Some(Scalar {
            kind: "string".to_owned(),
            text: value.text(),
            span: value.content.clone(),
        }),
        Some(typed) if typed.name != "struct" && typed.name != "array" => Some(Scalar {
            kind: typed.name.clone(),
            text: typed.text(),
            span: typed.content.clone(),
        }),
        Some(_) => None,
    }
}

/// The members of a `<struct>`: name and `<value>` element, in document order.
pub fn members(structure: &Element) -> Vec<(String, &Element)> {
    structure
        .elements()
        .filter(|m| m.name == "member")
        .filter_map(|m| Some((m.child("name")?.text(), m.child("value")?)))
        .collect()
}

/// The name of the document's root element, if the bytes start like XML (after an optional BOM,
/// whitespace, declaration and comments). Cheap: reads only up to the root's start tag.
pub fn root_name(bytes: &[u8]) -> Option<String> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let mut reader = Reader::from_reader(bytes);
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => {
                return Some(String::from_utf8_lossy(e.name().as_ref()).into_owned())
            }
            Ok(Event::Decl(_))
            | Ok(Event::Comment(_))
            | Ok(Event::PI(_))
            | Ok(Event::DocType(_)) => {}
            Ok(Event::Text(t)) if t.iter().all(u8::is_ascii_whitespace) => {}
            _ => return None,
        }
    }
}

/// Parses a whole document into its root element. `what` names the body in errors.
pub fn parse(bytes: &[u8], what: &'static str) -> Result<Element, CapsError> {
    parse_to_depth(bytes, what, MAX_XML_DEPTH)
}

/// Parses a whole document, checking all of it but keeping only elements at most `keep` levels deep
/// (the root is level 1): a login reply's members are at level 8, and its inventory skeleton below
/// them need not be built.
pub fn parse_to_depth(bytes: &[u8], what: &'static str, keep: usize) -> Result<Element, CapsError> {
    let bom = if bytes.starts_with(b"\xef\xbb\xbf") {
        3
    } else {
        0
    };
    let input = &bytes[bom..];
    let mut reader = Reader::from_reader(input);
    let err = |reader: &Reader<&[u8]>, reason: String| CapsError::Xml {
        what,
        offset: reader.error_position().max(reader.buffer_position()) + bom as u64,
        reason,
    };
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    // Levels open below the kept ones.
    let mut skipped = 0usize;
    loop {
        let before = reader.buffer_position() as usize + bom;
        let event = reader
            .read_event()
            .map_err(|e| err(&reader, e.to_string()))?;
        let after = reader.buffer_position() as usize + bom;
        match event {
            Event::Start(e) => {
                if stack.len() + skipped >= MAX_XML_DEPTH {
                    return Err(CapsError::TooDeep {
                        what,
                        limit: MAX_XML_DEPTH,
                    });
                }
                if skipped > 0 || stack.len() >= keep {
                    skipped += 1;
                    continue;
                }
                stack.push(Element {
                    name: String::from_utf8_lossy(e.name().as_ref()).into_owned(),
                    content: after..after,
                    children: Vec::new(),
                });
            }
            Event::Empty(_) if skipped > 0 || stack.len() >= keep => {}
            Event::End(_) if skipped > 0 => skipped -= 1,
            Event::Text(_) | Event::CData(_) | Event::GeneralRef(_) if skipped > 0 => {}
            Event::Empty(e) => {
                let el = Element {
                    name: String::from_utf8_lossy(e.name().as_ref()).into_owned(),
                    content: after..after,
                    children: Vec::new(),
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(Node::Element(el)),
                    None if root.is_none() => root = Some(el),
                    None => return Err(err(&reader, "a second root element".into())),
                }
            }
            Event::End(_) => {
                let Some(mut el) = stack.pop() else {
                    return Err(err(&reader, "an end tag with no start".into()));
                };
                el.content.end = before;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(Node::Element(el)),
                    None if root.is_none() => root = Some(el),
                    None => return Err(err(&reader, "a second root element".into())),
                }
            }
            Event::Text(t) => {
                let text = t.decode().map_err(|e| err(&reader, e.to_string()))?;
                push_text(&mut stack, &text);
            }
            Event::CData(t) => {
                let text = t.decode().map_err(|e| err(&reader, e.to_string()))?;
                push_text(&mut stack, &text);
            }
            Event::GeneralRef(r) => {
                let resolved = if r.is_char_ref() {
                    r.resolve_char_ref()
                        .map_err(|e| err(&reader, e.to_string()))?
                        .map(String::from)
                } else {
                    let name = r.decode().map_err(|e| err(&reader, e.to_string()))?;
                    predefined_entity(&name).map(String::from)
                };
                let Some(text) = resolved else {
                    return Err(err(&reader, "an unknown entity reference".into()));
                };
                push_text(&mut stack, &text);
            }
            Event::Eof => break,
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(err(&reader, "the document ends inside an element".into()));
    }
    root.ok_or_else(|| err(&reader, "no root element".into()))
}

fn push_text(stack: &mut [Element], text: &str) {
    let Some(el) = stack.last_mut() else {
        return; // whitespace between prolog items
    };
    if let Some(Node::Text(prev)) = el.children.last_mut() {
        prev.push_str(text);
    } else {
        el.children.push(Node::Text(text.to_owned()));
    }
}

fn predefined_entity(name: &str) -> Option<&'static str> {
    Some(match name {
        "amp" => "&",
        "lt" => "<",
        "gt" => ">",
        "quot" => "\"",
        "apos" => "'",
        _ => return None,
    })
}

/// Escapes text for XML element content (`&`, `<`, `>`).
pub fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_cover_exactly_the_content() {
        let doc = b"<?xml version=\"1.0\"?>\n<methodResponse><params><param><value><struct>\
<member><name>a</name><value><string>x &amp; y</string></value></member>\
<member><name>b</name><value>plain</value></member>\
<member><name>c</name><value><i4>7</i4></value></member>\
<member><name>d</name><value><array><data/></array></value></member>\
</struct></value></param></params></methodResponse>";
        let root = parse(doc, "test").unwrap();
        assert_eq!(root.name, "methodResponse");
        let st = root.path(&["params", "param", "value", "struct"]).unwrap();
        let m = members(st);
        assert_eq!(m.len(), 4);
        let a = scalar(m[0].1).unwrap();
        assert_eq!((a.kind.as_str(), a.text.as_str()), ("string", "x & y"));
        assert_eq!(&doc[a.span.clone()], b"x &amp; y");
        let b = scalar(m[1].1).unwrap();
        assert_eq!(&doc[b.span.clone()], b"plain");
        let c = scalar(m[2].1).unwrap();
        assert_eq!((c.kind.as_str(), &doc[c.span.clone()]), ("i4", &b"7"[..]));
        assert!(scalar(m[3].1).is_none());
        assert_eq!(root_name(doc).as_deref(), Some("methodResponse"));
        assert_eq!(root_name(b"<llsd><map/></llsd>").as_deref(), Some("llsd"));
        assert_eq!(root_name(b"\x00binary"), None);
    }

    #[test]
    fn deep_content_is_checked_but_not_kept() {
        let doc = b"<a><b><c><d>text</d></c><e>kept</e></b></a>";
        let root = parse_to_depth(doc, "x", 2).unwrap();
        let b = root.child("b").unwrap();
        assert!(b.children.is_empty(), "{b:?}");
        let root = parse_to_depth(doc, "x", 3).unwrap();
        let b = root.child("b").unwrap();
        assert_eq!(b.child("e").unwrap().text(), "kept");
        assert!(b.child("c").unwrap().children.is_empty());
        assert!(parse_to_depth(b"<a><b><c></b></c></a>", "x", 1).is_err());
    }

    #[test]
    fn malformed_xml_is_an_error_with_an_offset() {
        for bad in [
            &b"<methodResponse><params>"[..],
            b"<a></b>",
            b"<a>&bogus;</a>",
            b"",
        ] {
            let e = parse(bad, "login reply").unwrap_err();
            assert!(e.to_string().contains("login reply"), "{e}");
        }
        let deep = "<a>".repeat(MAX_XML_DEPTH + 1);
        assert!(matches!(
            parse(deep.as_bytes(), "x"),
            Err(CapsError::TooDeep { .. })
        ));
    }
}
