//! XML LLSD (`application/llsd+xml`): reading (through quick-xml) and writing.
//!
//! Reads `<llsd>` with one value inside, with or without an `<?xml ...?>` declaration (and the rare
//! `<? llsd/xml ?>` header the reference skips). Empty elements are the type's default (`<integer />`
//! is 0, `<uuid />` the null uuid, `<date />` the epoch, `<string />` ""); booleans are `true`/`1`
//! (`false`/`0`/empty), any case; `<binary>` is base64 unless `encoding="base16"`; numbers, uuids,
//! dates and binary may have whitespace around them, strings and uris are kept exactly. Unknown
//! elements are an error wherever they are (so a user sees what the body held). Writes the
//! reference's compact form.
//!
//! Owns the XML wire form only; nesting is limited to
//! [`MAX_DEPTH`](super::MAX_DEPTH).

use std::borrow::Cow;

use quick_xml::events::{BytesStart, Event};

use super::build::{walk, Build, StackTree};
use super::error::{snippet, Error, ErrorKind};
use super::reader::{check_depth, header_len};
use super::text;
use super::Value;

/// The declaration and root the writer puts before the value.
pub const PROLOGUE: &[u8] = b"<?xml version=\"1.0\" ?><llsd>";
pub const EPILOGUE: &[u8] = b"</llsd>";

/// Decodes the value of an `<llsd>` document.
pub fn from_slice(bytes: &[u8]) -> Result<Value, Error> {
    decode(bytes, StackTree::default())
}

/// Reads `bytes` as [`from_slice`] does, giving what it reads to `b` (the tree, or a writer of
/// another format: `llsd::transcode`).
pub(crate) fn decode<B: Build>(bytes: &[u8], b: B) -> Result<B::Node, Error> {
    // The reference's own header, `<? llsd/xml ?>`, is not an XML processing instruction: skip it.
    let mut base = header_len(bytes, b"llsd/xml").unwrap_or(0);
    if bytes[base..].starts_with(b"\xEF\xBB\xBF") {
        base += 3;
    }
    let mut p = Parser::new(&bytes[base..], base, b);
    p.document()
}

/// Encodes a value as an LLSD XML document (declaration included).
pub fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(PROLOGUE);
    write_value(&mut out, value);
    out.extend_from_slice(EPILOGUE);
    out
}

/// Appends the XML element(s) for a value (no declaration, no `<llsd>`).
pub fn write_value(out: &mut Vec<u8>, value: &Value) {
    walk(value, &mut XmlWriter { out });
}

/// Writes XML LLSD elements (no declaration, no `<llsd>`) for what it is given: from a tree
/// ([`write_value`]) or as a decoder reads another body (`llsd::transcode`), so both write the same
/// bytes for the same value. The reference's compact form: no whitespace between elements.
pub(crate) struct XmlWriter<'o> {
    pub(crate) out: &'o mut Vec<u8>,
}

impl XmlWriter<'_> {
    #[inline]
    fn element(&mut self, open: &[u8], text: &[u8], close: &[u8]) {
        self.out.extend_from_slice(open);
        push_escaped(self.out, text);
        self.out.extend_from_slice(close);
    }
}

impl Build for XmlWriter<'_> {
    type Node = ();
    type Array = ();
    type Map = ();
    type Key = ();

    #[inline]
    fn undef(&mut self) {
        self.out.extend_from_slice(b"<undef/>");
    }

    #[inline]
    fn boolean(&mut self, b: bool) {
        self.out.extend_from_slice(if b {
            b"<boolean>true</boolean>"
        } else {
            b"<boolean>false</boolean>"
        });
    }

    #[inline]
    fn integer(&mut self, i: i32) {
        self.out.extend_from_slice(b"<integer>");
        text::push_integer(self.out, i);
        self.out.extend_from_slice(b"</integer>");
    }

    #[inline]
    fn real(&mut self, r: f64) {
        self.out.extend_from_slice(b"<real>");
        text::push_real(self.out, r);
        self.out.extend_from_slice(b"</real>");
    }

    #[inline]
    fn uuid(&mut self, u: uuid::Uuid) {
        if u.is_nil() {
            self.out.extend_from_slice(b"<uuid/>");
            return;
        }
        self.out.extend_from_slice(b"<uuid>");
        let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
        self.out
            .extend_from_slice(u.hyphenated().encode_lower(&mut buf).as_bytes());
        self.out.extend_from_slice(b"</uuid>");
    }

    #[inline]
    fn date(&mut self, secs: f64) {
        self.out.extend_from_slice(b"<date>");
        text::push_date(self.out, secs);
        self.out.extend_from_slice(b"</date>");
    }

    #[inline]
    fn string(&mut self, s: Cow<'_, str>) {
        self.element(b"<string>", s.as_bytes(), b"</string>");
    }

    #[inline]
    fn uri(&mut self, s: Cow<'_, str>) {
        self.element(b"<uri>", s.as_bytes(), b"</uri>");
    }

    #[inline]
    fn binary(&mut self, b: Cow<'_, [u8]>) {
        self.out.extend_from_slice(b"<binary>");
        text::push_base64(self.out, &b);
        self.out.extend_from_slice(b"</binary>");
    }

    #[inline]
    fn array_begin(&mut self, _capacity: usize) {
        self.out.extend_from_slice(b"<array>");
    }

    #[inline]
    fn array_push(&mut self, (): &mut (), (): ()) {}

    #[inline]
    fn array_end(&mut self, (): ()) {
        self.out.extend_from_slice(b"</array>");
    }

    #[inline]
    fn map_begin(&mut self, _capacity: usize) {
        self.out.extend_from_slice(b"<map>");
    }

    #[inline]
    fn map_key(&mut self, (): &mut (), key: Cow<'_, str>) {
        self.element(b"<key>", key.as_bytes(), b"</key>");
    }

    #[inline]
    fn map_insert(&mut self, (): &mut (), (): (), (): ()) {}

    #[inline]
    fn map_end(&mut self, (): ()) {
        self.out.extend_from_slice(b"</map>");
    }
}

/// What each byte needs in XML text: 0 = copy, 1 = escape or drop (see [`push_escaped`]).
static NEEDS_WORK: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = !(i == b'\t' as usize || i == b'\n' as usize);
        i += 1;
    }
    t[b'&' as usize] = true;
    t[b'<' as usize] = true;
    t[b'>' as usize] = true;
    // Lead byte of U+FFFE / U+FFFF (checked in full below).
    t[0xEF] = true;
    t
};

/// Appends text escaped for XML: `& < >` as entities, CR as `&#13;` (so readers do not turn it into
/// LF), and characters XML 1.0 cannot carry at all (C0 controls other than tab, LF and CR, U+FFFE,
/// U+FFFF) dropped, as the reference drops them. See docs/llsd.md.
fn push_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !NEEDS_WORK[b as usize] {
            i += 1;
            continue;
        }
        let (replacement, skip): (&[u8], usize) = match b {
            b'&' => (b"&amp;", 1),
            b'<' => (b"&lt;", 1),
            b'>' => (b"&gt;", 1),
            b'\r' => (b"&#13;", 1),
            0xEF if matches!(bytes.get(i + 1..i + 3), Some([0xBF, 0xBE | 0xBF])) => (b"", 3),
            0xEF => {
                i += 1;
                continue;
            }
            _ => (b"", 1),
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(replacement);
        i += skip;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// The LLSD element types.
#[derive(Clone, Copy, PartialEq)]
enum Tag {
    Undef,
    Boolean,
    Integer,
    Real,
    Uuid,
    String,
    Date,
    Uri,
    Binary,
    Array,
    Map,
    Key,
    Llsd,
}

fn tag_of(name: &[u8]) -> Option<Tag> {
    Some(match name {
        b"undef" => Tag::Undef,
        b"boolean" => Tag::Boolean,
        b"integer" => Tag::Integer,
        b"real" => Tag::Real,
        b"uuid" => Tag::Uuid,
        b"string" => Tag::String,
        b"date" => Tag::Date,
        b"uri" => Tag::Uri,
        b"binary" => Tag::Binary,
        b"array" => Tag::Array,
        b"map" => Tag::Map,
        b"key" => Tag::Key,
        b"llsd" => Tag::Llsd,
        _ => return None,
    })
}

fn is_blank(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| super::reader::is_ws(*b))
}

fn trim(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_ascii_whitespace())
}

/// An element start (or empty element) as the value parser needs it.
struct Open<'a> {
    tag: Tag,
    empty: bool,
    at: usize,
    start: BytesStart<'a>,
}

struct Parser<'a, B> {
    rd: quick_xml::Reader<&'a [u8]>,
    /// Offset of `rd`'s input within the caller's input.
    base: usize,
    /// Offset (in the caller's input) where the last event began.
    at: usize,
    /// What the values read become (the tree, or binary LLSD).
    b: B,
}

impl<'a, B: Build> Parser<'a, B> {
    fn new(input: &'a [u8], base: usize, b: B) -> Self {
        let mut rd = quick_xml::Reader::from_reader(input);
        let cfg = rd.config_mut();
        cfg.trim_text(false);
        cfg.expand_empty_elements = false;
        cfg.check_end_names = true;
        Self {
            rd,
            base,
            at: base,
            b,
        }
    }

    fn err(&self, kind: ErrorKind) -> Error {
        Error::new(self.at, kind)
    }

    /// The next event, skipping comments, processing instructions, declarations and doctypes.
    fn next(&mut self) -> Result<Event<'a>, Error> {
        loop {
            self.at = self.base + usize::try_from(self.rd.buffer_position()).unwrap_or(0);
            match self.rd.read_event() {
                Ok(Event::Comment(_) | Event::PI(_) | Event::Decl(_) | Event::DocType(_)) => {}
                Ok(ev) => return Ok(ev),
                Err(e) => {
                    let pos = usize::try_from(self.rd.error_position()).unwrap_or(0);
                    return Err(Error::new(self.base + pos, ErrorKind::Xml(e.to_string())));
                }
            }
        }
    }

    /// The next element start inside a container (skipping blank text). `None` at the container's
    /// end tag.
    fn next_open(&mut self, context: &'static str) -> Result<Option<Open<'a>>, Error> {
        loop {
            let ev = self.next()?;
            let (start, empty) = match ev {
                Event::Start(s) => (s, false),
                Event::Empty(s) => (s, true),
                Event::End(_) => return Ok(None),
                Event::Text(t) if is_blank(&t) => continue,
                Event::Text(t) => {
                    return Err(
                        self.err(ErrorKind::UnexpectedText(snippet(trim_bytes(&t)), context))
                    )
                }
                Event::CData(_) | Event::GeneralRef(_) => {
                    return Err(self.err(ErrorKind::UnexpectedText("&...;".into(), context)))
                }
                Event::Eof => return Err(self.err(ErrorKind::UnexpectedEof(context))),
                // Skipped by `next`.
                Event::Comment(_) | Event::PI(_) | Event::Decl(_) | Event::DocType(_) => continue,
            };
            let name = start.name();
            let Some(tag) = tag_of(name.as_ref()) else {
                return Err(self.err(ErrorKind::UnknownElement(snippet(name.as_ref()))));
            };
            return Ok(Some(Open {
                tag,
                empty,
                at: self.at,
                start,
            }));
        }
    }

    fn document(&mut self) -> Result<B::Node, Error> {
        // Find the root element.
        let root = loop {
            match self.next()? {
                Event::Start(s) => break (s, false),
                Event::Empty(s) => break (s, true),
                Event::Text(t) if is_blank(&t) => {}
                Event::Eof => return Err(self.err(ErrorKind::Empty)),
                Event::Text(t) => {
                    return Err(self.err(ErrorKind::UnexpectedText(
                        snippet(trim_bytes(&t)),
                        "the XML prologue",
                    )))
                }
                _ => return Err(self.err(ErrorKind::NotLlsd)),
            }
        };
        if root.0.name().as_ref() != b"llsd" {
            return Err(self.err(ErrorKind::NotLlsdRoot(snippet(root.0.name().as_ref()))));
        }
        // `<llsd/>` and `<llsd></llsd>` hold undef.
        let value = if root.1 {
            self.b.undef()
        } else {
            match self.next_open("<llsd>")? {
                None => self.b.undef(),
                Some(open) => {
                    let v = self.value(open, 0, "<llsd>")?;
                    if let Some(extra) = self.next_open("<llsd>")? {
                        return Err(Error::new(
                            extra.at,
                            ErrorKind::UnexpectedElement {
                                found: snippet(extra.start.name().as_ref()),
                                context: "<llsd> after its one value",
                            },
                        ));
                    }
                    v
                }
            }
        };
        // Only blank text, comments and processing instructions may follow.
        loop {
            match self.next()? {
                Event::Eof => return Ok(value),
                Event::Text(t) if is_blank(&t) => {}
                _ => return Err(self.err(ErrorKind::TrailingData)),
            }
        }
    }

    /// One value from its opening tag. Containers recurse through small frames; scalars are read
    /// in a separate, non-inlined function so deep nesting stays cheap on the stack.
    fn value(
        &mut self,
        open: Open<'a>,
        depth: usize,
        context: &'static str,
    ) -> Result<B::Node, Error> {
        match open.tag {
            Tag::Array => {
                check_depth(open.at, depth)?;
                self.array(open.empty, depth)
            }
            Tag::Map => {
                check_depth(open.at, depth)?;
                self.map(open.empty, depth)
            }
            _ => self.scalar(open, context),
        }
    }

    fn array(&mut self, empty: bool, depth: usize) -> Result<B::Node, Error> {
        let mut items = self.b.array_begin(0);
        if !empty {
            while let Some(child) = self.next_open("<array>")? {
                let v = self.value(child, depth + 1, "<array>")?;
                self.b.array_push(&mut items, v);
            }
        }
        Ok(self.b.array_end(items))
    }

    fn map(&mut self, empty: bool, depth: usize) -> Result<B::Node, Error> {
        let mut entries = self.b.map_begin(0);
        if !empty {
            while let Some(key) = self.next_open("<map>")? {
                if key.tag != Tag::Key {
                    return Err(Error::new(
                        key.at,
                        ErrorKind::UnexpectedElement {
                            found: snippet(key.start.name().as_ref()),
                            context: "<map> where a <key> belongs",
                        },
                    ));
                }
                let name = self.text(&key)?;
                let Some(child) = self.next_open("<map>")? else {
                    return Err(self.err(ErrorKind::MissingValue(snippet(name.as_bytes()))));
                };
                let name = self.b.map_key(&mut entries, name);
                let v = self.value(child, depth + 1, "<map>")?;
                self.b.map_insert(&mut entries, name, v);
            }
        }
        Ok(self.b.map_end(entries))
    }

    #[inline(never)]
    fn scalar(&mut self, open: Open<'a>, context: &'static str) -> Result<B::Node, Error> {
        let at = open.at;
        match open.tag {
            // Containers are handled by `value`; they and misplaced tags are errors here.
            Tag::Array | Tag::Map | Tag::Key | Tag::Llsd => Err(Error::new(
                at,
                ErrorKind::UnexpectedElement {
                    found: snippet(open.start.name().as_ref()),
                    context,
                },
            )),
            Tag::String => {
                let t = self.text(&open)?;
                Ok(self.b.string(t))
            }
            Tag::Uri => {
                let t = self.text(&open)?;
                Ok(self.b.uri(t))
            }
            Tag::Undef => {
                self.text(&open)?;
                Ok(self.b.undef())
            }
            Tag::Boolean => {
                let t = self.text(&open)?;
                let t = trim(&t);
                let v = if t.eq_ignore_ascii_case("true") || t == "1" || t == "1.0" {
                    true
                } else if t.eq_ignore_ascii_case("false") || t.is_empty() || t == "0" || t == "0.0"
                {
                    false
                } else {
                    return Err(Error::new(
                        at,
                        ErrorKind::InvalidBoolean(snippet(t.as_bytes())),
                    ));
                };
                Ok(self.b.boolean(v))
            }
            Tag::Integer => {
                let t = self.text(&open)?;
                let t = trim(&t);
                if t.is_empty() {
                    return Ok(self.b.integer(0));
                }
                let i = t.parse::<i32>().map_err(|e| {
                    use std::num::IntErrorKind::{NegOverflow, PosOverflow};
                    let shown = snippet(t.as_bytes());
                    let kind = if matches!(e.kind(), PosOverflow | NegOverflow) {
                        ErrorKind::IntegerOutOfRange(shown)
                    } else {
                        ErrorKind::InvalidInteger(shown)
                    };
                    Error::new(at, kind)
                })?;
                Ok(self.b.integer(i))
            }
            Tag::Real => {
                let t = self.text(&open)?;
                let t = trim(&t);
                if t.is_empty() {
                    return Ok(self.b.real(0.0));
                }
                let r = text::parse_real(t.as_bytes())
                    .ok_or_else(|| Error::new(at, ErrorKind::InvalidReal(snippet(t.as_bytes()))))?;
                Ok(self.b.real(r))
            }
            Tag::Uuid => {
                let t = self.text(&open)?;
                let t = trim(&t);
                if t.is_empty() {
                    return Ok(self.b.uuid(uuid::Uuid::nil()));
                }
                let u = uuid::Uuid::try_parse(t)
                    .map_err(|_| Error::new(at, ErrorKind::InvalidUuid(snippet(t.as_bytes()))))?;
                Ok(self.b.uuid(u))
            }
            Tag::Date => {
                let t = self.text(&open)?;
                let t = trim(&t);
                let secs = text::parse_date(t.as_bytes())
                    .ok_or_else(|| Error::new(at, ErrorKind::InvalidDate(snippet(t.as_bytes()))))?;
                Ok(self.b.date(secs))
            }
            Tag::Binary => {
                let encoding = match open.start.try_get_attribute("encoding") {
                    Ok(None) => Cow::Borrowed("base64"),
                    Ok(Some(a)) => match a.unescape_value() {
                        Ok(v) => Cow::Owned(v.into_owned()),
                        Err(e) => return Err(Error::new(at, ErrorKind::Xml(e.to_string()))),
                    },
                    Err(e) => return Err(Error::new(at, ErrorKind::Xml(e.to_string()))),
                };
                let t = self.text(&open)?;
                let t = trim(&t).as_bytes();
                let (decoded, name) = match &*encoding {
                    "base64" => (text::decode_base64(t), "base64"),
                    "base16" => (text::decode_base16(t), "base16"),
                    other => {
                        return Err(Error::new(
                            at,
                            ErrorKind::UnsupportedEncoding(snippet(other.as_bytes())),
                        ))
                    }
                };
                let decoded = decoded
                    .ok_or_else(|| Error::new(at, ErrorKind::InvalidEncoding { encoding: name }))?;
                Ok(self.b.binary(Cow::Owned(decoded)))
            }
        }
    }

    /// The text content of a scalar element up to its end tag: entities and character references
    /// resolved, line ends normalized as XML 1.0 does. Borrows from the input when it can.
    fn text(&mut self, open: &Open<'a>) -> Result<Cow<'a, str>, Error> {
        if open.empty {
            return Ok(Cow::Borrowed(""));
        }
        let mut acc: Cow<'a, str> = Cow::Borrowed("");
        loop {
            match self.next()? {
                Event::End(_) => return Ok(acc),
                Event::Text(t) => {
                    let s = t
                        .xml10_content()
                        .map_err(|_| self.err(ErrorKind::InvalidUtf8("XML text")))?;
                    if acc.is_empty() {
                        acc = s;
                    } else {
                        acc.to_mut().push_str(&s);
                    }
                }
                Event::CData(c) => {
                    let s = c
                        .xml10_content()
                        .map_err(|_| self.err(ErrorKind::InvalidUtf8("XML CDATA")))?;
                    acc.to_mut().push_str(&s);
                }
                Event::GeneralRef(r) => {
                    let ch = r
                        .resolve_char_ref()
                        .map_err(|e| self.err(ErrorKind::Xml(e.to_string())))?;
                    match ch {
                        Some(c) => acc.to_mut().push(c),
                        None => {
                            let name = r
                                .decode()
                                .map_err(|_| self.err(ErrorKind::InvalidUtf8("an XML entity")))?;
                            match quick_xml::escape::resolve_predefined_entity(&name) {
                                Some(s) => acc.to_mut().push_str(s),
                                None => {
                                    return Err(self.err(ErrorKind::Xml(format!(
                                        "unknown entity &{};",
                                        snippet(name.as_bytes())
                                    ))))
                                }
                            }
                        }
                    }
                }
                Event::Start(s) | Event::Empty(s) => {
                    return Err(self.err(ErrorKind::UnexpectedElement {
                        found: snippet(s.name().as_ref()),
                        context: "a scalar element (only text belongs there)",
                    }))
                }
                Event::Eof => return Err(self.err(ErrorKind::UnexpectedEof("an XML element"))),
                Event::Comment(_) | Event::PI(_) | Event::Decl(_) | Event::DocType(_) => {}
            }
        }
    }
}

fn trim_bytes(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end.max(start)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llsd::{Date, Map, MAX_DEPTH};

    fn x(body: &str) -> Value {
        let doc = format!("<llsd>{body}</llsd>");
        from_slice(doc.as_bytes()).unwrap_or_else(|e| panic!("{doc}: {e}"))
    }

    fn xe(body: &str) -> Error {
        let doc = format!("<llsd>{body}</llsd>");
        from_slice(doc.as_bytes()).expect_err(&doc)
    }

    #[test]
    fn empty_elements_are_defaults() {
        assert_eq!(x("<integer />"), Value::Integer(0));
        assert_eq!(x("<integer></integer>"), Value::Integer(0));
        assert_eq!(x("<real/>"), Value::Real(0.0));
        assert_eq!(x("<uuid />"), Value::Uuid(uuid::Uuid::nil()));
        assert_eq!(x("<date />"), Value::Date(Date(0.0)));
        assert_eq!(x("<string />"), Value::String(String::new()));
        assert_eq!(x("<uri/>"), Value::Uri(String::new()));
        assert_eq!(x("<boolean/>"), Value::Boolean(false));
        assert_eq!(x("<binary/>"), Value::Binary(vec![]));
        assert_eq!(x("<array/>"), Value::Array(vec![]));
        assert_eq!(x("<map/>"), Value::Map(Map::new()));
        assert_eq!(x("<undef/>"), Value::Undef);
        assert_eq!(x(""), Value::Undef);
        assert_eq!(from_slice(b"<llsd/>").unwrap(), Value::Undef);
    }

    #[test]
    fn booleans_numbers_and_whitespace() {
        assert_eq!(x("<boolean>1</boolean>"), Value::Boolean(true));
        assert_eq!(x("<boolean>true</boolean>"), Value::Boolean(true));
        assert_eq!(x("<boolean> TRUE </boolean>"), Value::Boolean(true));
        assert_eq!(x("<boolean>0</boolean>"), Value::Boolean(false));
        assert!(matches!(
            xe("<boolean>yes</boolean>").kind(),
            ErrorKind::InvalidBoolean(_)
        ));
        assert_eq!(x("<integer> -7 </integer>"), Value::Integer(-7));
        let e = xe("<integer>2147483648</integer>");
        assert!(matches!(e.kind(), ErrorKind::IntegerOutOfRange(_)));
        assert_eq!(e.offset(), 6);
        assert!(matches!(x("<real>nan</real>"), Value::Real(r) if r.is_nan()));
        assert_eq!(x("<real>-Infinity</real>"), Value::Real(f64::NEG_INFINITY));
        assert_eq!(x("<real>1e+300</real>"), Value::Real(1e300));
    }

    #[test]
    fn strings_keep_whitespace_and_resolve_entities() {
        assert_eq!(x("<string> a </string>"), Value::String(" a ".into()));
        assert_eq!(
            x("<string>&lt;a&gt; &amp; &quot;&apos; &#65;&#x42;</string>"),
            Value::String("<a> & \"' AB".into())
        );
        assert_eq!(
            x("<string><![CDATA[<x>]]></string>"),
            Value::String("<x>".into())
        );
        assert_eq!(
            x("<string>a\r\nb\rc&#13;</string>"),
            Value::String("a\nb\nc\r".into())
        );
        assert!(matches!(
            xe("<string>&bogus;</string>").kind(),
            ErrorKind::Xml(_)
        ));
    }

    #[test]
    fn binary_encodings() {
        assert_eq!(
            x("<binary>yA8FSA==</binary>"),
            Value::Binary(vec![200, 15, 5, 72])
        );
        assert_eq!(
            x("<binary encoding=\"base64\">\n  yA8F\n  SA==\n</binary>"),
            Value::Binary(vec![200, 15, 5, 72])
        );
        assert_eq!(
            x("<binary encoding=\"base16\">c80f0548</binary>"),
            Value::Binary(vec![200, 15, 5, 72])
        );
        assert!(matches!(
            xe("<binary encoding=\"base85\">abc</binary>").kind(),
            ErrorKind::UnsupportedEncoding(_)
        ));
        assert!(xe("<binary>!!!</binary>").to_string().contains("base64"));
    }

    #[test]
    fn documents_with_and_without_prologue() {
        let v = Value::Integer(1);
        assert_eq!(from_slice(b"<llsd><integer>1</integer></llsd>").unwrap(), v);
        assert_eq!(
            from_slice(b"\xEF\xBB\xBF <?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE llsd>\n<!-- c -->\n<llsd>\n  <integer>1</integer>\n</llsd>\n")
                .unwrap(),
            v
        );
        assert_eq!(
            from_slice(b"<? LLSD/XML ?>\n<llsd><integer>1</integer></llsd>").unwrap(),
            v
        );
        let pretty = "<llsd>\n <map>\n  <key>a</key>\n  <array>\n   <integer>1</integer>\n  </array>\n </map>\n</llsd>";
        let v = from_slice(pretty.as_bytes()).unwrap();
        assert_eq!(v.get("a"), Some(&Value::Array(vec![Value::Integer(1)])));
    }

    #[test]
    fn unknown_and_misplaced_elements_are_errors() {
        let e = xe("<map><key>a</key><frob>1</frob></map>");
        assert_eq!(e.kind(), &ErrorKind::UnknownElement("frob".into()));
        assert_eq!(e.offset(), 23);
        assert!(matches!(
            xe("<map><integer>1</integer></map>").kind(),
            ErrorKind::UnexpectedElement { .. }
        ));
        assert!(matches!(
            xe("<map><key>a</key></map>").kind(),
            ErrorKind::MissingValue(_)
        ));
        assert!(matches!(
            xe("<key>a</key>").kind(),
            ErrorKind::UnexpectedElement { .. }
        ));
        assert!(matches!(
            xe("<array>text</array>").kind(),
            ErrorKind::UnexpectedText(..)
        ));
        assert!(matches!(
            xe("<integer>1</integer><integer>2</integer>").kind(),
            ErrorKind::UnexpectedElement { .. }
        ));
        assert!(matches!(
            xe("<string><b/></string>").kind(),
            ErrorKind::UnexpectedElement { .. }
        ));
        assert!(matches!(
            from_slice(b"<methodResponse/>").unwrap_err().kind(),
            ErrorKind::NotLlsdRoot(_)
        ));
        assert!(from_slice(b"<llsd><integer>1</integer></llsd><x/>").is_err());
        assert!(from_slice(b"").is_err());
    }

    #[test]
    fn depth_limit() {
        let ok = format!(
            "{}{}",
            "<array>".repeat(MAX_DEPTH),
            "</array>".repeat(MAX_DEPTH)
        );
        assert!(from_slice(format!("<llsd>{ok}</llsd>").as_bytes()).is_ok());
        let deep = format!(
            "{}{}",
            "<array>".repeat(MAX_DEPTH + 1),
            "</array>".repeat(MAX_DEPTH + 1)
        );
        let e = from_slice(format!("<llsd>{deep}</llsd>").as_bytes()).unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::TooDeep { limit: MAX_DEPTH });
    }

    #[test]
    fn writer_escapes_and_drops_what_xml_cannot_carry() {
        let v = Value::String("a<b>&c\r\u{1}\u{fffe}\u{ffff}\u{fffd}\tz".into());
        let bytes = to_vec(&v);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.contains("<string>a&lt;b&gt;&amp;c&#13;\u{fffd}\tz</string>"),
            "{text}"
        );
        assert_eq!(
            from_slice(&bytes).unwrap(),
            Value::String("a<b>&c\r\u{fffd}\tz".into())
        );
        assert_eq!(
            to_vec(&Value::Uuid(uuid::Uuid::nil())),
            b"<?xml version=\"1.0\" ?><llsd><uuid/></llsd>"
        );
    }
}
