//! What the LLSD decoders build as they read, and the walk that feeds a tree to the same builders.
//!
//! The decoders are generic over [`Build`]: the owned tree ([`Value`]: [`StackTree`] for notation
//! and XML, binary's own builder that reserves from the counts it reads), and a writer per wire
//! format ([`BinaryWriter`] here, `xml::XmlWriter`, `notation::NotationWriter`), which writes that
//! format as the input is read (`llsd::transcode`). Every check on the input (lengths, depth, UTF-8,
//! counts, the errors and their offsets) is in the decoders, so a transcoded body is accepted or
//! refused exactly as the tree decoder would accept or refuse it. The XML and notation encoders of a
//! tree are [`walk`] over those same writers, so a tree and a transcoded body are written by one
//! piece of code.
//!
//! Owns the builder interface, the tree walk and the binary writer for it; no parsing.

use std::borrow::Cow;

use super::binary::{wire_len, write_sized};
use super::{Key, Map, Value};

/// Receives what a decoder reads, in input order. `Node` is what one finished value becomes; an
/// array or map in progress is an `Array` or `Map`, and a key read but not yet given its value a
/// `Key`. Strings and binary data come borrowed from the input when nothing had to be unescaped.
pub(crate) trait Build {
    type Node;
    type Array;
    type Map;
    type Key;

    fn undef(&mut self) -> Self::Node;
    fn boolean(&mut self, b: bool) -> Self::Node;
    fn integer(&mut self, i: i32) -> Self::Node;
    fn real(&mut self, r: f64) -> Self::Node;
    fn uuid(&mut self, u: uuid::Uuid) -> Self::Node;
    /// Seconds since the epoch.
    fn date(&mut self, secs: f64) -> Self::Node;
    fn string(&mut self, s: Cow<'_, str>) -> Self::Node;
    fn uri(&mut self, s: Cow<'_, str>) -> Self::Node;
    fn binary(&mut self, b: Cow<'_, [u8]>) -> Self::Node;

    /// An array starts; `capacity` is how many elements may safely be reserved (already bounded
    /// by the decoder against the bytes present).
    fn array_begin(&mut self, capacity: usize) -> Self::Array;
    fn array_push(&mut self, array: &mut Self::Array, item: Self::Node);
    fn array_end(&mut self, array: Self::Array) -> Self::Node;

    /// A map starts; `capacity` as for [`Build::array_begin`].
    fn map_begin(&mut self, capacity: usize) -> Self::Map;
    fn map_key(&mut self, map: &mut Self::Map, key: Cow<'_, str>) -> Self::Key;
    fn map_insert(&mut self, map: &mut Self::Map, key: Self::Key, value: Self::Node);
    fn map_end(&mut self, map: Self::Map) -> Self::Node;
}

/// The scalar half of a [`Build`] whose `Node` is the owned [`Value`]: the same for every builder
/// of the owned tree (they differ only in how containers are collected).
macro_rules! owned_scalars {
    () => {
        #[inline]
        fn undef(&mut self) -> $crate::llsd::Value {
            $crate::llsd::Value::Undef
        }
        #[inline]
        fn boolean(&mut self, b: bool) -> $crate::llsd::Value {
            $crate::llsd::Value::Boolean(b)
        }
        #[inline]
        fn integer(&mut self, i: i32) -> $crate::llsd::Value {
            $crate::llsd::Value::Integer(i)
        }
        #[inline]
        fn real(&mut self, r: f64) -> $crate::llsd::Value {
            $crate::llsd::Value::Real(r)
        }
        #[inline]
        fn uuid(&mut self, u: uuid::Uuid) -> $crate::llsd::Value {
            $crate::llsd::Value::Uuid(u)
        }
        #[inline]
        fn date(&mut self, secs: f64) -> $crate::llsd::Value {
            $crate::llsd::Value::Date($crate::llsd::Date(secs))
        }
        #[inline]
        fn string(&mut self, s: std::borrow::Cow<'_, str>) -> $crate::llsd::Value {
            $crate::llsd::Value::String(s.into_owned())
        }
        #[inline]
        fn uri(&mut self, s: std::borrow::Cow<'_, str>) -> $crate::llsd::Value {
            $crate::llsd::Value::Uri(s.into_owned())
        }
        #[inline]
        fn binary(&mut self, b: std::borrow::Cow<'_, [u8]>) -> $crate::llsd::Value {
            $crate::llsd::Value::Binary(b.into_owned())
        }
    };
}
pub(crate) use owned_scalars;

/// Builds the owned tree for the notation and XML decoders. Those formats give no counts, so the
/// containers being read collect their children on two shared stacks, and each finished array or
/// map is one exact-size allocation instead of a chain of reallocations.
#[derive(Default)]
pub(crate) struct StackTree {
    items: Vec<Value>,
    entries: Vec<(Key, Value)>,
}

impl Build for StackTree {
    type Node = Value;
    /// Where the array's elements start on the stack.
    type Array = usize;
    type Map = usize;
    type Key = Key;

    owned_scalars!();
    #[inline]
    fn array_begin(&mut self, _capacity: usize) -> usize {
        self.items.len()
    }
    #[inline]
    fn array_push(&mut self, _base: &mut usize, item: Value) {
        self.items.push(item);
    }
    #[inline]
    fn array_end(&mut self, base: usize) -> Value {
        Value::Array(self.items.drain(base..).collect())
    }
    #[inline]
    fn map_begin(&mut self, _capacity: usize) -> usize {
        self.entries.len()
    }
    #[inline]
    fn map_key(&mut self, _base: &mut usize, key: Cow<'_, str>) -> Key {
        match key {
            Cow::Borrowed(k) => Key::new(k),
            Cow::Owned(k) => Key::from(k),
        }
    }
    #[inline]
    fn map_insert(&mut self, _base: &mut usize, key: Key, value: Value) {
        self.entries.push((key, value));
    }
    #[inline]
    fn map_end(&mut self, base: usize) -> Value {
        Value::Map(Map(self.entries.drain(base..).collect()))
    }
}

/// Writes binary LLSD (no header) as a decoder reads, byte for byte what
/// [`binary::write_value`](super::binary::write_value) writes for the tree the same input decodes
/// to. Array and map counts are written when the container closes (the input's count may be
/// absent, as in notation, or larger than what came, as a binary map closed early).
pub(crate) struct BinaryWriter<'o> {
    pub(crate) out: &'o mut Vec<u8>,
}

/// An open container: where its count goes and how many children it has so far.
pub(crate) struct Open {
    count_at: usize,
    n: usize,
}

impl BinaryWriter<'_> {
    #[inline]
    fn open(&mut self, tag: u8) -> Open {
        self.out.push(tag);
        let count_at = self.out.len();
        self.out.extend_from_slice(&[0; 4]);
        Open { count_at, n: 0 }
    }

    #[inline]
    fn close(&mut self, open: Open, tag: u8) {
        let count = wire_len(open.n).to_be_bytes();
        self.out[open.count_at..open.count_at + 4].copy_from_slice(&count);
        self.out.push(tag);
    }
}

impl Build for BinaryWriter<'_> {
    type Node = ();
    type Array = Open;
    type Map = Open;
    type Key = ();

    #[inline]
    fn undef(&mut self) {
        self.out.push(b'!');
    }

    #[inline]
    fn boolean(&mut self, b: bool) {
        self.out.push(if b { b'1' } else { b'0' });
    }

    #[inline]
    fn integer(&mut self, i: i32) {
        self.out.push(b'i');
        self.out.extend_from_slice(&i.to_be_bytes());
    }

    #[inline]
    fn real(&mut self, r: f64) {
        self.out.push(b'r');
        self.out.extend_from_slice(&r.to_be_bytes());
    }

    #[inline]
    fn uuid(&mut self, u: uuid::Uuid) {
        self.out.push(b'u');
        self.out.extend_from_slice(u.as_bytes());
    }

    #[inline]
    fn date(&mut self, secs: f64) {
        self.out.push(b'd');
        self.out.extend_from_slice(&secs.to_le_bytes());
    }

    #[inline]
    fn string(&mut self, s: Cow<'_, str>) {
        write_sized(self.out, b's', s.as_bytes());
    }

    #[inline]
    fn uri(&mut self, s: Cow<'_, str>) {
        write_sized(self.out, b'l', s.as_bytes());
    }

    #[inline]
    fn binary(&mut self, b: Cow<'_, [u8]>) {
        write_sized(self.out, b'b', &b);
    }

    #[inline]
    fn array_begin(&mut self, _capacity: usize) -> Open {
        self.open(b'[')
    }

    #[inline]
    fn array_push(&mut self, array: &mut Open, (): ()) {
        array.n += 1;
    }

    #[inline]
    fn array_end(&mut self, array: Open) {
        self.close(array, b']');
    }

    #[inline]
    fn map_begin(&mut self, _capacity: usize) -> Open {
        self.open(b'{')
    }

    #[inline]
    fn map_key(&mut self, _map: &mut Open, key: Cow<'_, str>) {
        write_sized(self.out, b'k', key.as_bytes());
    }

    #[inline]
    fn map_insert(&mut self, map: &mut Open, (): (), (): ()) {
        map.n += 1;
    }

    #[inline]
    fn map_end(&mut self, map: Open) {
        self.close(map, b'}');
    }
}

/// Gives a tree to a builder in the order a decoder reading it would: what a writer of a wire format
/// writes for the tree is then what it writes while transcoding a body that decodes to it.
pub(crate) fn walk<B: Build>(value: &Value, b: &mut B) -> B::Node {
    match value {
        Value::Undef => b.undef(),
        Value::Boolean(v) => b.boolean(*v),
        Value::Integer(i) => b.integer(*i),
        Value::Real(r) => b.real(*r),
        Value::Uuid(u) => b.uuid(*u),
        Value::Date(d) => b.date(d.0),
        Value::String(s) => b.string(Cow::Borrowed(s)),
        Value::Uri(s) => b.uri(Cow::Borrowed(s)),
        Value::Binary(d) => b.binary(Cow::Borrowed(d)),
        Value::Array(items) => {
            let mut array = b.array_begin(items.len());
            for item in items {
                let node = walk(item, b);
                b.array_push(&mut array, node);
            }
            b.array_end(array)
        }
        Value::Map(map) => {
            let mut open = b.map_begin(map.0.len());
            for (k, v) in &map.0 {
                let key = b.map_key(&mut open, Cow::Borrowed(k.as_str()));
                let node = walk(v, b);
                b.map_insert(&mut open, key, node);
            }
            b.map_end(open)
        }
    }
}
