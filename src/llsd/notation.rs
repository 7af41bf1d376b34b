//! Notation LLSD (`application/llsd+notation`): reading and writing.
//!
//! Reads every form the reference reads: `!`; booleans `1 0 t f T F true false TRUE FALSE`; `i42`;
//! `r1.5` (also `rnan`, `rinf`, `r-inf`); `u<uuid>`; strings `'...'`, `"..."` (backslash escapes
//! `\a \b \f \n \r \t \v \xNN`, any other escaped byte stands for itself) and `s(N)"..."`; `l"uri"`;
//! `d"date"`; binary `b64"..."`, `b16"..."`, `b(N)"..."`; `[...]` and `{'key':value}` with
//! whitespace and commas between items. An optional `<?llsd/notation?>` header is skipped. Writes the
//! reference's compact form (no header).
//!
//! Owns the notation wire form only; every length is checked against the bytes present, nesting is
//! limited to [`MAX_DEPTH`](super::MAX_DEPTH).

use std::borrow::Cow;

use super::build::{walk, Build, StackTree};
use super::error::{snippet, Error, ErrorKind};
use super::reader::{check_depth, header_len, Reader};
use super::text;
use super::Value;

/// The most decimal digits accepted in an `s(N)` or `b(N)` length.
const MAX_LEN_DIGITS: usize = 10;

/// Decodes one notation value, with or without the `<?llsd/notation?>` header; whitespace around it
/// is allowed, anything else after it is an error.
pub fn from_slice(bytes: &[u8]) -> Result<Value, Error> {
    decode(bytes, &mut StackTree::default())
}

/// Reads `bytes` as [`from_slice`] does, giving what it reads to `b` (the tree, or a writer of
/// another format: `llsd::transcode`).
pub(crate) fn decode<B: Build>(bytes: &[u8], b: &mut B) -> Result<B::Node, Error> {
    let mut r = Reader::new(bytes);
    r.advance(header_len(bytes, b"llsd/notation").unwrap_or(0));
    r.skip_ws();
    if r.at_end() {
        return Err(r.err(ErrorKind::Empty));
    }
    let value = parse_value(&mut r, b, 0)?;
    r.skip_ws();
    if !r.at_end() {
        return Err(r.err(ErrorKind::TrailingData));
    }
    Ok(value)
}

/// Encodes a value as notation (no header), the way the reference writes it.
pub fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_value(&mut out, value);
    out
}

/// Appends the notation form of a value to `out`.
pub fn write_value(out: &mut Vec<u8>, value: &Value) {
    walk(value, &mut NotationWriter::new(out));
}

/// Writes notation for what it is given: from a tree ([`write_value`]) or as a decoder reads another
/// body (`llsd::transcode`), so both write the same bytes for the same value. The reference's
/// compact form: items and map entries separated by `,`, nothing else between tokens. The comma is
/// written after each item and the last one taken back when the container closes (a builder hears
/// of an item only once it is written).
pub(crate) struct NotationWriter<'o> {
    out: &'o mut Vec<u8>,
}

impl<'o> NotationWriter<'o> {
    pub(crate) fn new(out: &'o mut Vec<u8>) -> Self {
        Self { out }
    }

    /// Closes an array or map that has items (`any`): the comma after its last item goes.
    #[inline]
    fn close(&mut self, any: bool, tag: u8) {
        if any {
            self.out.pop();
        }
        self.out.push(tag);
    }
}

impl Build for NotationWriter<'_> {
    type Node = ();
    /// Whether the array or map has items yet.
    type Array = bool;
    type Map = bool;
    type Key = ();

    #[inline]
    fn undef(&mut self) {
        self.out.push(b'!');
    }

    #[inline]
    fn boolean(&mut self, b: bool) {
        self.out
            .extend_from_slice(if b { b"true" } else { b"false" });
    }

    #[inline]
    fn integer(&mut self, i: i32) {
        self.out.push(b'i');
        text::push_integer(self.out, i);
    }

    #[inline]
    fn real(&mut self, r: f64) {
        self.out.push(b'r');
        text::push_real(self.out, r);
    }

    #[inline]
    fn uuid(&mut self, u: uuid::Uuid) {
        self.out.push(b'u');
        let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
        self.out
            .extend_from_slice(u.hyphenated().encode_lower(&mut buf).as_bytes());
    }

    #[inline]
    fn date(&mut self, secs: f64) {
        self.out.extend_from_slice(b"d\"");
        text::push_date(self.out, secs);
        self.out.push(b'"');
    }

    #[inline]
    fn string(&mut self, s: Cow<'_, str>) {
        write_quoted(self.out, b'\'', s.as_bytes());
    }

    #[inline]
    fn uri(&mut self, s: Cow<'_, str>) {
        self.out.push(b'l');
        write_quoted(self.out, b'"', s.as_bytes());
    }

    #[inline]
    fn binary(&mut self, b: Cow<'_, [u8]>) {
        self.out.extend_from_slice(b"b64\"");
        text::push_base64(self.out, &b);
        self.out.push(b'"');
    }

    #[inline]
    fn array_begin(&mut self, _capacity: usize) -> bool {
        self.out.push(b'[');
        false
    }

    #[inline]
    fn array_push(&mut self, any: &mut bool, (): ()) {
        self.out.push(b',');
        *any = true;
    }

    #[inline]
    fn array_end(&mut self, any: bool) {
        self.close(any, b']');
    }

    #[inline]
    fn map_begin(&mut self, _capacity: usize) -> bool {
        self.out.push(b'{');
        false
    }

    #[inline]
    fn map_key(&mut self, _any: &mut bool, key: Cow<'_, str>) {
        write_quoted(self.out, b'\'', key.as_bytes());
        self.out.push(b':');
    }

    #[inline]
    fn map_insert(&mut self, any: &mut bool, (): (), (): ()) {
        self.out.push(b',');
        *any = true;
    }

    #[inline]
    fn map_end(&mut self, any: bool) {
        self.close(any, b'}');
    }
}

/// Writes `delim`-quoted text, escaping only the backslash and the delimiter (as the reference does).
fn write_quoted(out: &mut Vec<u8>, delim: u8, bytes: &[u8]) {
    out.push(delim);
    let mut rest = bytes;
    while let Some(i) = memchr::memchr2(b'\\', delim, rest) {
        out.extend_from_slice(&rest[..i]);
        out.push(b'\\');
        out.push(rest[i]);
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
    out.push(delim);
}

/// One value. Only containers recurse, through small frames; scalars are read in a separate,
/// non-inlined function so deep nesting stays cheap on the stack (even in debug builds).
fn parse_value<B: Build>(r: &mut Reader<'_>, b: &mut B, depth: usize) -> Result<B::Node, Error> {
    let at = r.pos();
    match r.peek() {
        Some(b'{') => {
            r.advance(1);
            parse_map(r, b, at, depth)
        }
        Some(b'[') => {
            r.advance(1);
            parse_array(r, b, at, depth)
        }
        _ => parse_scalar(r, b),
    }
}

#[inline(never)]
fn parse_scalar<B: Build>(r: &mut Reader<'_>, b: &mut B) -> Result<B::Node, Error> {
    let at = r.pos();
    let c = r.byte("a value")?;
    Ok(match c {
        b'!' => b.undef(),
        b'1' => b.boolean(true),
        b'0' => b.boolean(false),
        b't' => b.boolean(bool_word(r, at, b"true", true)?),
        b'T' => b.boolean(bool_word(r, at, b"TRUE", true)?),
        b'f' => b.boolean(bool_word(r, at, b"false", false)?),
        b'F' => b.boolean(bool_word(r, at, b"FALSE", false)?),
        b'i' => b.integer(parse_integer(r)?),
        b'r' => b.real(parse_real(r)?),
        b'u' => b.uuid(parse_uuid(r)?),
        b'\'' | b'"' => b.string(read_delimited(r, c)?),
        b's' => b.string(Cow::Owned(read_sized_string(r)?)),
        b'l' => b.uri(read_any_str(r, "a uri")?),
        b'd' => {
            let date_at = r.pos();
            let s = read_any_str(r, "a date")?;
            match text::parse_date(s.as_bytes()) {
                Some(secs) => b.date(secs),
                None => {
                    return Err(Error::new(
                        date_at,
                        ErrorKind::InvalidDate(snippet(s.as_bytes())),
                    ))
                }
            }
        }
        b'b' => b.binary(Cow::Owned(parse_binary(r)?)),
        _ => return Err(r.unexpected_at(at, "notation", "a value")),
    })
}

/// Skips whitespace and commas (the reference ignores both between items).
#[inline]
fn skip_separators(r: &mut Reader<'_>) {
    while let Some(b) = r.peek() {
        if b == b',' || super::reader::is_ws(b) {
            r.advance(1);
        } else {
            break;
        }
    }
}

fn parse_array<B: Build>(
    r: &mut Reader<'_>,
    b: &mut B,
    at: usize,
    depth: usize,
) -> Result<B::Node, Error> {
    check_depth(at, depth)?;
    let mut items = b.array_begin(0);
    loop {
        skip_separators(r);
        match r.peek() {
            None => return Err(r.eof("an array")),
            Some(b']') => {
                r.advance(1);
                return Ok(b.array_end(items));
            }
            Some(_) => {
                let v = parse_value(r, b, depth + 1)?;
                b.array_push(&mut items, v);
            }
        }
    }
}

fn parse_map<B: Build>(
    r: &mut Reader<'_>,
    b: &mut B,
    at: usize,
    depth: usize,
) -> Result<B::Node, Error> {
    check_depth(at, depth)?;
    let mut entries = b.map_begin(0);
    loop {
        let Some(key) = map_key(r)? else {
            return Ok(b.map_end(entries));
        };
        let key = b.map_key(&mut entries, key);
        let value = parse_value(r, b, depth + 1)?;
        b.map_insert(&mut entries, key, value);
    }
}

/// A map key and the `:` after it (separators before it skipped); `None` after the map's `}`.
#[inline(never)]
fn map_key<'a>(r: &mut Reader<'a>) -> Result<Option<Cow<'a, str>>, Error> {
    skip_separators(r);
    let key_at = r.pos();
    let key = match r.peek() {
        None => return Err(r.eof("a map")),
        Some(b'}') => {
            r.advance(1);
            return Ok(None);
        }
        Some(q @ (b'\'' | b'"')) => {
            r.advance(1);
            read_delimited(r, q)?
        }
        Some(b's') => {
            r.advance(1);
            Cow::Owned(read_sized_string(r)?)
        }
        Some(_) => return Err(r.unexpected_at(key_at, "a map", "a quoted key or '}'")),
    };
    r.skip_ws();
    let colon_at = r.pos();
    if r.byte("a map")? != b':' {
        return Err(r.unexpected_at(colon_at, "a map", "':' after the key"));
    }
    r.skip_ws();
    Ok(Some(key))
}

/// `t`/`T`/`f`/`F` alone, or the whole word in the same case (`true`, `TRUE`, ...).
fn bool_word(r: &mut Reader<'_>, at: usize, word: &[u8], value: bool) -> Result<bool, Error> {
    let rest = &word[1..];
    if r.peek() == Some(rest[0]) {
        if r.rest().starts_with(rest) {
            r.advance(rest.len());
        } else {
            let n = r.left().min(rest.len());
            return Err(Error::new(
                at,
                ErrorKind::InvalidBoolean(snippet(r.take(n, "a boolean")?)),
            ));
        }
    }
    Ok(value)
}

/// The run of bytes after the type letter that looks like a number.
fn number_span(rest: &[u8], allow_fraction: bool) -> usize {
    let mut i = 0;
    if matches!(rest.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    if allow_fraction && rest.get(i).is_some_and(|b| b.is_ascii_alphabetic()) {
        // nan, inf, infinity
        while rest.get(i).is_some_and(|b| b.is_ascii_alphabetic()) {
            i += 1;
        }
        return i;
    }
    while rest.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    if !allow_fraction {
        return i;
    }
    if rest.get(i) == Some(&b'.') {
        i += 1;
        while rest.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    if matches!(rest.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(rest.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        if rest.get(j).is_some_and(u8::is_ascii_digit) {
            while rest.get(j).is_some_and(u8::is_ascii_digit) {
                j += 1;
            }
            i = j;
        }
    }
    i
}

fn parse_integer(r: &mut Reader<'_>) -> Result<i32, Error> {
    let at = r.pos();
    let n = number_span(r.rest(), false);
    let span = r.take(n, "an integer")?;
    let digits = std::str::from_utf8(span).unwrap_or("");
    match digits.parse::<i32>() {
        Ok(i) => Ok(i),
        Err(e) => {
            use std::num::IntErrorKind::{NegOverflow, PosOverflow};
            let kind = if matches!(e.kind(), PosOverflow | NegOverflow) {
                ErrorKind::IntegerOutOfRange(snippet(span))
            } else {
                // Show what follows the 'i' so the user sees the bad token.
                let shown = &r.rest()[..r.left().min(8)];
                ErrorKind::InvalidInteger(snippet(if span.is_empty() { shown } else { span }))
            };
            Err(Error::new(at, kind))
        }
    }
}

fn parse_real(r: &mut Reader<'_>) -> Result<f64, Error> {
    let at = r.pos();
    let n = number_span(r.rest(), true);
    let span = r.take(n, "a real")?;
    text::parse_real(span).ok_or_else(|| {
        let shown = if span.is_empty() {
            &r.rest()[..r.left().min(8)]
        } else {
            span
        };
        Error::new(at, ErrorKind::InvalidReal(snippet(shown)))
    })
}

fn parse_uuid(r: &mut Reader<'_>) -> Result<uuid::Uuid, Error> {
    let at = r.pos();
    let bytes = r.take(36, "a uuid")?;
    uuid::Uuid::try_parse_ascii(bytes)
        .map_err(|_| Error::new(at, ErrorKind::InvalidUuid(snippet(bytes))))
}

/// A string in any of the forms a uri or date may take: `"..."`, `'...'` or `s(N)"..."`, borrowing
/// the input where there is nothing to unescape.
fn read_any_str<'a>(r: &mut Reader<'a>, what: &'static str) -> Result<Cow<'a, str>, Error> {
    let at = r.pos();
    match r.byte(what)? {
        q @ (b'\'' | b'"') => read_delimited(r, q),
        b's' => read_sized_string(r).map(Cow::Owned),
        _ => Err(r.unexpected_at(at, what, "a quoted string")),
    }
}

/// Reads `(N)` and returns N.
fn read_paren_len(r: &mut Reader<'_>, what: &'static str) -> Result<usize, Error> {
    let at = r.pos();
    if r.byte(what)? != b'(' {
        return Err(r.unexpected_at(at, what, "'(' and a length"));
    }
    let digits_at = r.pos();
    let n = r
        .rest()
        .iter()
        .take(MAX_LEN_DIGITS + 1)
        .take_while(|b| b.is_ascii_digit())
        .count();
    let digits = r.take(n, what)?;
    let close_at = r.pos();
    if r.byte(what)? != b')' || n == 0 || n > MAX_LEN_DIGITS {
        if n == 0 || n > MAX_LEN_DIGITS {
            return Err(Error::new(
                digits_at,
                ErrorKind::InvalidLength(snippet(digits)),
            ));
        }
        return Err(r.unexpected_at(close_at, what, "')' after the length"));
    }
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .ok_or_else(|| Error::new(digits_at, ErrorKind::InvalidLength(snippet(digits))))
}

/// `s(N)"raw bytes"`, after the `s`: N raw bytes between matching quotes.
fn read_sized_string(r: &mut Reader<'_>) -> Result<String, Error> {
    let n = read_paren_len(r, "a sized string")?;
    let q_at = r.pos();
    let q = r.byte("a sized string")?;
    if q != b'"' && q != b'\'' {
        return Err(r.unexpected_at(q_at, "a sized string", "a quote"));
    }
    let body_at = r.pos();
    let body = r.take(n, "a sized string")?;
    let end_at = r.pos();
    if r.byte("a sized string")? != q {
        return Err(r.unexpected_at(end_at, "a sized string", "the closing quote"));
    }
    std::str::from_utf8(body).map(str::to_owned).map_err(|e| {
        Error::new(
            body_at + e.valid_up_to(),
            ErrorKind::InvalidUtf8("a string"),
        )
    })
}

fn parse_binary(r: &mut Reader<'_>) -> Result<Vec<u8>, Error> {
    let at = r.pos();
    if r.peek() == Some(b'(') {
        let n = read_paren_len(r, "binary data")?;
        let q_at = r.pos();
        let q = r.byte("binary data")?;
        if q != b'"' && q != b'\'' {
            return Err(r.unexpected_at(q_at, "binary data", "a quote"));
        }
        let body = r.take(n, "binary data")?;
        let end_at = r.pos();
        if r.byte("binary data")? != q {
            return Err(r.unexpected_at(end_at, "binary data", "the closing quote"));
        }
        return Ok(body.to_vec());
    }
    let base = r.take(2, "binary data")?;
    let encoding = match base {
        b"64" => "base64",
        b"16" => "base16",
        b"85" => {
            return Err(Error::new(
                at,
                ErrorKind::UnsupportedEncoding("base85".into()),
            ))
        }
        _ => return Err(r.unexpected_at(at, "binary data", "64, 16 or (length)")),
    };
    let q_at = r.pos();
    let q = r.byte("binary data")?;
    if q != b'"' && q != b'\'' {
        return Err(r.unexpected_at(q_at, "binary data", "a quote"));
    }
    let body_at = r.pos();
    let len = memchr::memchr(q, r.rest()).ok_or_else(|| r.eof("binary data"))?;
    let body = r.take(len, "binary data")?;
    r.advance(1);
    let decoded = if encoding == "base64" {
        text::decode_base64(body)
    } else {
        text::decode_base16(body)
    };
    decoded.ok_or_else(|| Error::new(body_at, ErrorKind::InvalidEncoding { encoding }))
}

/// Reads a quoted string after its opening `delim`, resolving backslash escapes. Shared with the
/// binary decoder, which accepts such strings too.
///
/// Borrows the input when the string has no escapes (the common case), so a map key can be kept
/// inline without an allocation in between.
pub(crate) fn read_delimited<'a>(r: &mut Reader<'a>, delim: u8) -> Result<Cow<'a, str>, Error> {
    let start = r.pos();
    let rest = r.rest();
    // Fast path: no escapes before the closing quote.
    let Some(i) = memchr::memchr2(delim, b'\\', rest) else {
        return Err(r.eof("a quoted string"));
    };
    if rest[i] == delim {
        r.advance(i + 1);
        return std::str::from_utf8(&rest[..i])
            .map(Cow::Borrowed)
            .map_err(|e| Error::new(start + e.valid_up_to(), ErrorKind::InvalidUtf8("a string")));
    }
    let mut buf = Vec::with_capacity(i + 16);
    loop {
        let rest = r.rest();
        let Some(i) = memchr::memchr2(delim, b'\\', rest) else {
            return Err(r.eof("a quoted string"));
        };
        buf.extend_from_slice(&rest[..i]);
        r.advance(i + 1);
        if rest[i] == delim {
            break;
        }
        let esc_at = r.pos() - 1;
        let c = r.byte("a quoted string")?;
        let b = match c {
            b'a' => 0x07,
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'v' => 0x0b,
            b'x' => {
                let hex = r.take(2, "a \\x escape")?;
                match text::decode_base16(hex).as_deref() {
                    Some([b]) => *b,
                    _ => {
                        return Err(Error::new(
                            esc_at,
                            ErrorKind::InvalidEncoding {
                                encoding: "\\x escape",
                            },
                        ))
                    }
                }
            }
            other => other,
        };
        buf.push(b);
    }
    String::from_utf8(buf).map(Cow::Owned).map_err(|e| {
        Error::new(
            start + e.utf8_error().valid_up_to(),
            ErrorKind::InvalidUtf8("a string"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llsd::{Date, Map, MAX_DEPTH};

    fn n(s: &str) -> Value {
        from_slice(s.as_bytes()).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn s(v: &str) -> Value {
        Value::String(v.into())
    }

    #[test]
    fn booleans_every_spelling() {
        for t in ["1", "t", "T", "true", "TRUE"] {
            assert_eq!(n(t), Value::Boolean(true), "{t}");
        }
        for f in ["0", "f", "F", "false", "FALSE"] {
            assert_eq!(n(f), Value::Boolean(false), "{f}");
        }
        assert_eq!(
            n("[t,f,TRUE]"),
            Value::Array(vec![
                Value::Boolean(true),
                Value::Boolean(false),
                Value::Boolean(true)
            ])
        );
        assert!(from_slice(b"tru").is_err());
        assert!(from_slice(b"True").is_err());
    }

    #[test]
    fn scalars() {
        assert_eq!(n("!"), Value::Undef);
        assert_eq!(n("i-42"), Value::Integer(-42));
        assert_eq!(n("i+7"), Value::Integer(7));
        assert_eq!(n("r1.5e2"), Value::Real(150.0));
        assert_eq!(n("r-.5"), Value::Real(-0.5));
        assert!(matches!(n("rnan"), Value::Real(r) if r.is_nan()));
        assert_eq!(n("r-inf"), Value::Real(f64::NEG_INFINITY));
        assert_eq!(
            n("u6a5c3f4e-1111-2222-3333-444455556666"),
            Value::Uuid(uuid::Uuid::parse_str("6a5c3f4e-1111-2222-3333-444455556666").unwrap())
        );
        assert_eq!(
            n("d\"2006-02-01T14:29:53Z\""),
            Value::Date(Date(1_138_804_193.0))
        );
        assert_eq!(n("d''"), Value::Date(Date(0.0)));
        assert_eq!(n("l\"https://a/b\""), Value::Uri("https://a/b".into()));
        assert_eq!(n("l'x'"), Value::Uri("x".into()));
    }

    #[test]
    fn integer_overflow_is_an_error() {
        let e = from_slice(b"i2147483648").unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::IntegerOutOfRange(_)), "{e}");
        assert_eq!(e.offset(), 1);
        assert!(from_slice(b"i").is_err());
        assert!(from_slice(b"ix").is_err());
    }

    #[test]
    fn strings_every_form() {
        assert_eq!(n("'a\\'b'"), s("a'b"));
        assert_eq!(n("\"a\\\"b\""), s("a\"b"));
        assert_eq!(
            n("'\\a\\b\\f\\n\\r\\t\\v\\x41\\q\\\\'"),
            s("\x07\x08\x0c\n\r\t\x0bAq\\")
        );
        assert_eq!(n("s(5)\"he\"lo\""), s("he\"lo"));
        assert_eq!(n("s(3)'abc'"), s("abc"));
        assert_eq!(n("'h\u{e9}llo'"), s("h\u{e9}llo"));
        assert!(from_slice(b"'\\xZZ'").is_err());
        assert!(from_slice(b"'\\xff'").is_err(), "invalid UTF-8");
        assert!(from_slice(b"s(10)\"abc\"").is_err());
        assert!(from_slice(b"s(99999999999)\"abc\"").is_err());
        assert!(from_slice(b"s()\"\"").is_err());
    }

    #[test]
    fn binary_every_form() {
        let b = |v: &[u8]| Value::Binary(v.to_vec());
        assert_eq!(n("b64\"yA8FSA==\""), b(&[200, 15, 5, 72]));
        assert_eq!(n("b16\"c80f0548\""), b(&[200, 15, 5, 72]));
        assert_eq!(n("b16\"C80F0548\""), b(&[200, 15, 5, 72]));
        assert_eq!(n("b(3)\"a\"c\""), b(b"a\"c"));
        assert_eq!(n("b64\"\""), b(b""));
        assert!(from_slice(b"b85\"abc\"").is_err());
        assert!(from_slice(b"b64\"!!\"").is_err());
        assert!(from_slice(b"b(5)\"ab\"").is_err());
    }

    #[test]
    fn containers_with_loose_separators() {
        let v = n("{ 'a' : i1 , \"b\":[ i2 i3 ,, ] , s(1)'c':! }");
        assert_eq!(v.get("a"), Some(&Value::Integer(1)));
        assert_eq!(
            v.get("b"),
            Some(&Value::Array(vec![Value::Integer(2), Value::Integer(3)]))
        );
        assert_eq!(v.get("c"), Some(&Value::Undef));
        assert_eq!(n("<?llsd/notation?>\n[]"), Value::Array(vec![]));
        assert_eq!(n("  <? LLSD/Notation ?> {} \n"), Value::Map(Map::new()));
    }

    #[test]
    fn errors() {
        assert_eq!(from_slice(b"[i1,@]").unwrap_err().offset(), 4);
        assert!(from_slice(b"{'a' i1}").is_err());
        assert!(from_slice(b"{i1:i1}").is_err());
        assert!(from_slice(b"[i1").is_err());
        assert!(from_slice(b"i1 i2").is_err(), "trailing data");
        assert!(from_slice(b"").is_err());
        assert!(from_slice(b"u1234").is_err());
        assert!(from_slice(b"d\"yesterday\"").is_err());
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(
            from_slice(deep.as_bytes()).unwrap_err().kind(),
            &ErrorKind::TooDeep { limit: MAX_DEPTH }
        );
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(from_slice(ok.as_bytes()).is_ok());
    }

    #[test]
    fn writes_like_the_reference() {
        let v = Value::Map(Map(vec![
            ("a'".into(), Value::String("it's \\".into())),
            ("u".into(), Value::Uri("x\"y".into())),
            ("b".into(), Value::Binary(vec![200, 15, 5, 72])),
            ("r".into(), Value::Real(f64::NAN)),
        ]));
        assert_eq!(
            String::from_utf8(to_vec(&v)).unwrap(),
            r#"{'a\'':'it\'s \\','u':l"x\"y",'b':b64"yA8FSA==",'r':rnan}"#
        );
    }
}
