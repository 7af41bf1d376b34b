//! Binary LLSD (`application/llsd+binary`): reading and writing.
//!
//! One type tag byte per value; lengths and counts are big-endian i32, integers big-endian i32, reals
//! big-endian f64, dates *little-endian* f64 seconds (as the reference writes them). The header
//! `<?llsd/binary?>\n` is optional on reading (any case and spacing) and always written.
//!
//! Owns the binary wire form only. Every length is checked against the bytes present before anything
//! is borrowed or allocated (see [`Reader`]); nesting is limited to
//! [`MAX_DEPTH`](super::MAX_DEPTH).

use std::borrow::Cow;

use super::build::{owned_scalars, Build};
use super::error::{Error, ErrorKind, Found};
use super::notation::read_delimited;
use super::reader::{check_depth, header_len, Reader};
use super::{Key, Map, Value};

/// The header written before every binary body.
pub const HEADER: &[u8] = b"<?llsd/binary?>\n";

/// The buffer `to_vec` starts with.
const INITIAL_CAPACITY: usize = 1024;

/// The most elements (or entries) preallocated from a count field: a count is only a promise, so the
/// vector grows past this from the bytes actually present.
const MAX_PREALLOC: usize = 4096;

/// Decodes one binary LLSD value, with or without the header. Trailing bytes other than whitespace
/// are an error.
pub fn from_slice(bytes: &[u8]) -> Result<Value, Error> {
    decode(bytes, &mut Tree)
}

/// Reads `bytes` as [`from_slice`] does, giving what it reads to `b` (the tree, or a writer of
/// another format: `llsd::transcode`).
pub(crate) fn decode<B: Build>(bytes: &[u8], b: &mut B) -> Result<B::Node, Error> {
    let mut r = Reader::new(bytes);
    r.advance(header_len(bytes, b"llsd/binary").unwrap_or(0));
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

/// Builds the owned tree: each container's vector is reserved from its count (bounded by the
/// bytes present), so it is allocated once.
struct Tree;

impl Build for Tree {
    type Node = Value;
    type Array = Vec<Value>;
    type Map = Vec<(Key, Value)>;
    type Key = Key;

    owned_scalars!();
    #[inline]
    fn array_begin(&mut self, capacity: usize) -> Vec<Value> {
        Vec::with_capacity(capacity)
    }
    #[inline]
    fn array_push(&mut self, array: &mut Vec<Value>, item: Value) {
        array.push(item);
    }
    #[inline]
    fn array_end(&mut self, array: Vec<Value>) -> Value {
        Value::Array(array)
    }
    #[inline]
    fn map_begin(&mut self, capacity: usize) -> Vec<(Key, Value)> {
        Vec::with_capacity(capacity)
    }
    #[inline]
    fn map_key(&mut self, _map: &mut Vec<(Key, Value)>, key: Cow<'_, str>) -> Key {
        match key {
            Cow::Borrowed(k) => Key::new(k),
            Cow::Owned(k) => Key::from(k),
        }
    }
    #[inline]
    fn map_insert(&mut self, map: &mut Vec<(Key, Value)>, key: Key, value: Value) {
        map.push((key, value));
    }
    #[inline]
    fn map_end(&mut self, map: Vec<(Key, Value)>) -> Value {
        Value::Map(Map(map))
    }
}

/// Encodes a value as binary LLSD, header included.
pub fn to_vec(value: &Value) -> Vec<u8> {
    // Growing the buffer costs less than a second walk over the tree to size it (the walk is
    // bound by cache misses on large values).
    let mut out = Vec::with_capacity(INITIAL_CAPACITY);
    out.extend_from_slice(HEADER);
    write_value(&mut out, value);
    out
}

/// Encodes a value as binary LLSD without the header, appending to `out`.
pub fn write_value(out: &mut Vec<u8>, value: &Value) {
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
        Value::Uuid(u) => {
            out.push(b'u');
            out.extend_from_slice(u.as_bytes());
        }
        Value::String(s) => write_sized(out, b's', s.as_bytes()),
        // The reference writes uris as strings; we keep the type with the 'l' tag the format defines
        // (and read both).
        Value::Uri(s) => write_sized(out, b'l', s.as_bytes()),
        Value::Date(d) => {
            out.push(b'd');
            out.extend_from_slice(&d.0.to_le_bytes());
        }
        Value::Binary(b) => write_sized(out, b'b', b),
        Value::Array(items) => {
            out.push(b'[');
            out.extend_from_slice(&wire_len(items.len()).to_be_bytes());
            for item in items {
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Map(map) => {
            out.push(b'{');
            out.extend_from_slice(&wire_len(map.len()).to_be_bytes());
            for (k, v) in &map.0 {
                write_sized(out, b'k', k.as_bytes());
                write_value(out, v);
            }
            out.push(b'}');
        }
    }
}

/// Lengths on the wire are i32: longer things (over 2 GiB) cannot be written faithfully; the count is
/// clamped (documented in docs/llsd.md; nothing that size passes through a proxy body).
pub(crate) fn wire_len(n: usize) -> u32 {
    u32::try_from(n.min(i32::MAX as usize)).unwrap_or(i32::MAX as u32)
}

#[inline]
pub(crate) fn write_sized(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.push(tag);
    out.extend_from_slice(&wire_len(bytes.len()).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Reads a big-endian i32 length and checks it is not negative.
#[inline]
fn read_len(r: &mut Reader<'_>, what: &'static str) -> Result<usize, Error> {
    let at = r.pos();
    let n = i32::from_be_bytes(r.array(what)?);
    usize::try_from(n).map_err(|_| Error::new(at, ErrorKind::NegativeLength(i64::from(n))))
}

/// Reads a length-prefixed byte run, borrowing only bytes that are present.
#[inline]
fn read_sized<'a>(r: &mut Reader<'a>, what: &'static str) -> Result<&'a [u8], Error> {
    let n = read_len(r, what)?;
    r.take(n, what)
}

/// A length-prefixed UTF-8 run, borrowed from the input.
#[inline]
fn borrow_str<'a>(r: &mut Reader<'a>, what: &'static str) -> Result<&'a str, Error> {
    let at = r.pos();
    let bytes = read_sized(r, what)?;
    std::str::from_utf8(bytes)
        .map_err(|e| Error::new(at + 4 + e.valid_up_to(), ErrorKind::InvalidUtf8(what)))
}

/// One value. Only containers recurse, through small frames; scalars are read in a separate,
/// non-inlined function so deep nesting stays cheap on the stack (even in debug builds).
fn parse_value<B: Build>(r: &mut Reader<'_>, b: &mut B, depth: usize) -> Result<B::Node, Error> {
    let at = r.pos();
    match r.peek() {
        Some(b'[') => {
            r.advance(1);
            parse_array(r, b, at, depth)
        }
        Some(b'{') => {
            r.advance(1);
            parse_map(r, b, at, depth)
        }
        _ => parse_scalar(r, b),
    }
}

#[inline(never)]
fn parse_scalar<B: Build>(r: &mut Reader<'_>, b: &mut B) -> Result<B::Node, Error> {
    let at = r.pos();
    let tag = r.byte("a value")?;
    Ok(match tag {
        b'!' => b.undef(),
        b'1' => b.boolean(true),
        b'0' => b.boolean(false),
        b'i' => b.integer(i32::from_be_bytes(r.array("an integer")?)),
        b'r' => b.real(f64::from_be_bytes(r.array("a real")?)),
        b'u' => b.uuid(uuid::Uuid::from_bytes(r.array("a uuid")?)),
        b's' => b.string(Cow::Borrowed(borrow_str(r, "a string")?)),
        b'l' => b.uri(Cow::Borrowed(borrow_str(r, "a uri")?)),
        b'd' => b.date(f64::from_le_bytes(r.array("a date")?)),
        b'b' => b.binary(Cow::Borrowed(read_sized(r, "binary data")?)),
        b'\'' | b'"' => b.string(read_delimited(r, tag)?),
        other => return Err(Error::new(at, ErrorKind::UnknownTag(Found::Byte(other)))),
    })
}

fn parse_array<B: Build>(
    r: &mut Reader<'_>,
    b: &mut B,
    at: usize,
    depth: usize,
) -> Result<B::Node, Error> {
    check_depth(at, depth)?;
    let count = read_len(r, "an array count")?;
    // Every element takes at least one byte.
    let mut items = b.array_begin(count.min(r.left()).min(MAX_PREALLOC));
    for _ in 0..count {
        if r.at_end() {
            return Err(r.eof("an array"));
        }
        let item = parse_value(r, b, depth + 1)?;
        b.array_push(&mut items, item);
    }
    match r.byte("an array")? {
        b']' => Ok(b.array_end(items)),
        _ => Err(too_many(r.pos() - 1, "array", count)),
    }
}

#[cold]
#[inline(never)]
fn too_many(at: usize, container: &'static str, count: usize) -> Error {
    Error::new(
        at,
        ErrorKind::CountMismatch {
            container,
            expected: wire_len(count),
            found: "more follow (no closing bracket after them)",
        },
    )
}

/// A map key (`k` and a length, or a quoted string); `None` at the map's `}`.
#[inline(never)]
fn map_key<'a>(r: &mut Reader<'a>) -> Result<Option<Cow<'a, str>>, Error> {
    let key_at = r.pos();
    Ok(Some(match r.byte("a map")? {
        b'k' => Cow::Borrowed(borrow_str(r, "a map key")?),
        q @ (b'\'' | b'"') => read_delimited(r, q)?,
        b'}' => return Ok(None),
        _ => return Err(r.unexpected_at(key_at, "a map", "'k' and a key, or '}'")),
    }))
}

fn parse_map<B: Build>(
    r: &mut Reader<'_>,
    b: &mut B,
    at: usize,
    depth: usize,
) -> Result<B::Node, Error> {
    check_depth(at, depth)?;
    let count = read_len(r, "a map count")?;
    // Every entry takes at least six bytes ('k', a length, a value tag).
    let mut entries = b.map_begin(count.min(r.left() / 6).min(MAX_PREALLOC));
    let mut n = 0;
    let mut closed = false;
    while n < count {
        // The reference stops at '}' even when fewer entries than counted came.
        let Some(key) = map_key(r)? else {
            closed = true;
            break;
        };
        let key = b.map_key(&mut entries, key);
        let value = parse_value(r, b, depth + 1)?;
        b.map_insert(&mut entries, key, value);
        n += 1;
    }
    if !closed && r.byte("a map")? != b'}' {
        return Err(too_many(r.pos() - 1, "map", count));
    }
    Ok(b.map_end(entries))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llsd::{Date, MAX_DEPTH};

    fn bin(body: &[u8]) -> Vec<u8> {
        [HEADER, body].concat()
    }

    #[test]
    fn header_optional_and_any_case() {
        assert_eq!(from_slice(b"i\0\0\0\x05").unwrap(), Value::Integer(5));
        assert_eq!(
            from_slice(b"<? LLSD/Binary ?>\ni\0\0\0\x05").unwrap(),
            Value::Integer(5)
        );
        assert_eq!(from_slice(b"<?llsd/binary?>\n!").unwrap(), Value::Undef);
    }

    #[test]
    fn dates_are_little_endian_and_rest_big_endian() {
        let mut body = vec![b'd'];
        body.extend_from_slice(&1_138_804_193.0f64.to_le_bytes());
        assert_eq!(
            from_slice(&bin(&body)).unwrap(),
            Value::Date(Date(1_138_804_193.0))
        );
        let v = Value::Date(Date(1.5));
        assert_eq!(&to_vec(&v)[HEADER.len() + 1..], &1.5f64.to_le_bytes());
        assert_eq!(
            &to_vec(&Value::Real(1.5))[HEADER.len() + 1..],
            &1.5f64.to_be_bytes()
        );
    }

    #[test]
    fn uri_written_with_l_and_string_read_too() {
        let uri = Value::Uri("https://x/".into());
        let bytes = to_vec(&uri);
        assert_eq!(bytes[HEADER.len()], b'l');
        assert_eq!(from_slice(&bytes).unwrap(), uri);
        assert_eq!(
            from_slice(&bin(b"s\0\0\0\x03abc")).unwrap(),
            Value::String("abc".into())
        );
    }

    #[test]
    fn map_may_close_early_like_the_reference() {
        let v = from_slice(&bin(b"{\0\0\0\x02k\0\0\0\x01ai\0\0\0\x01}")).unwrap();
        assert_eq!(v.get("a"), Some(&Value::Integer(1)));
        assert!(from_slice(&bin(b"{\0\0\0\x01k\0\0\0\x01ai\0\0\0\x01!}")).is_err());
    }

    #[test]
    fn delimited_strings_and_keys_accepted() {
        let v = from_slice(&bin(b"{\0\0\0\x01'k\\'ey's\0\0\0\0}")).unwrap();
        assert_eq!(v.get("k'ey"), Some(&Value::String(String::new())));
    }

    #[test]
    fn hostile_lengths_fail_without_allocating() {
        let e = from_slice(&bin(b"b\x7f\xff\xff\xffabc")).unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::UnexpectedEof(_)), "{e}");
        let e = from_slice(&bin(b"s\xff\xff\xff\xff")).unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::NegativeLength(-1));
        assert_eq!(e.offset(), HEADER.len() + 1);
        assert!(from_slice(&bin(b"[\x7f\xff\xff\xff")).is_err());
        assert!(from_slice(&bin(b"{\x7f\xff\xff\xff")).is_err());
    }

    #[test]
    fn errors_name_the_offset() {
        let e = from_slice(&bin(b"[\0\0\0\x01Z]")).unwrap_err();
        assert_eq!(e.offset(), HEADER.len() + 5);
        assert!(e
            .to_string()
            .ends_with(&format!("at byte {}", HEADER.len() + 5)));
        let e = from_slice(&bin(b"s\0\0\0\x02\xff\xfe")).unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::InvalidUtf8(_)));
        assert!(from_slice(&bin(b"!!")).is_err(), "trailing data");
        assert!(from_slice(b"").is_err());
    }

    #[test]
    fn depth_limit() {
        let mut ok = bin(&b"[\0\0\0\x01".repeat(MAX_DEPTH));
        ok.push(b'!');
        ok.extend(std::iter::repeat_n(b']', MAX_DEPTH));
        assert!(from_slice(&ok).is_ok());
        let mut deep = bin(&b"[\0\0\0\x01".repeat(MAX_DEPTH + 1));
        deep.push(b'!');
        deep.extend(std::iter::repeat_n(b']', MAX_DEPTH + 1));
        let e = from_slice(&deep).unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::TooDeep { limit: MAX_DEPTH });
    }
}
