//! The LLSD value type shared by every codec, the caps rewriters, the filter language and the UI.
//!
//! Owns the in-memory shape of LLSD only: no parsing, no writing, no I/O.

use std::fmt;

/// A map key. LLSD keys are short names (`folder_id`, `EventQueueGet`), so a key of up to 24 bytes is
/// kept inline, without an allocation of its own: a large inventory body has more than a million
/// keys, and allocating (then freeing) each one was most of what decoding it cost.
pub type Key = compact_str::CompactString;

/// An ordered LLSD map. Wire order is kept (it matters for byte-faithful rewriting and for showing a
/// body as it was sent), and lookups are linear: LLSD maps on the wire are small, and a `Vec` keeps
/// decoding allocation-light. Duplicate keys are kept as sent; [`Map::get`] returns the first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Map(pub Vec<(Key, Value)>);

impl Map {
    /// An empty map.
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// The value of the first entry named `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The value of the first entry named `key`, mutably.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.0.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Appends an entry (keeps any earlier entry of the same name).
    pub fn push(&mut self, key: impl Into<Key>, value: Value) {
        self.0.push((key.into(), value));
    }

    /// Sets `key` to `value`: replaces the first entry of that name, or appends one.
    pub fn insert(&mut self, key: impl Into<Key>, value: Value) {
        let key = key.into();
        match self.get_mut(&key) {
            Some(slot) => *slot = value,
            None => self.0.push((key, value)),
        }
    }

    /// Entries in wire order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the map has no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<K: Into<Key>> FromIterator<(K, Value)> for Map {
    fn from_iter<T: IntoIterator<Item = (K, Value)>>(iter: T) -> Self {
        Self(iter.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
}

/// A date: seconds since the Unix epoch (UTC), as the reference implementation keeps it (binary LLSD
/// carries it as a little-endian f64).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Date(pub f64);

/// One LLSD value. `Uri` stays distinct from `String` so a rewriter can keep the type it was sent as.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    #[default]
    Undef,
    Boolean(bool),
    Integer(i32),
    Real(f64),
    String(String),
    Uuid(uuid::Uuid),
    Date(Date),
    Uri(String),
    Binary(Vec<u8>),
    Array(Vec<Value>),
    Map(Map),
}

impl Value {
    /// The LLSD type name as it appears in XML and typed JSON (`"undef"`, `"map"`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Undef => "undef",
            Value::Boolean(_) => "boolean",
            Value::Integer(_) => "integer",
            Value::Real(_) => "real",
            Value::String(_) => "string",
            Value::Uuid(_) => "uuid",
            Value::Date(_) => "date",
            Value::Uri(_) => "uri",
            Value::Binary(_) => "binary",
            Value::Array(_) => "array",
            Value::Map(_) => "map",
        }
    }

    /// The entry `key` when this is a map.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(m) => m.get(key),
            _ => None,
        }
    }

    /// The element `index` when this is an array.
    pub fn index(&self, index: usize) -> Option<&Value> {
        match self {
            Value::Array(a) => a.get(index),
            _ => None,
        }
    }

    /// The text of a string or uri.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) | Value::Uri(s) => Some(s),
            _ => None,
        }
    }

    /// The map, when this is one.
    pub fn as_map(&self) -> Option<&Map> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The array, when this is one.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The integer, when this is one.
    pub fn as_integer(&self) -> Option<i32> {
        match self {
            Value::Integer(i) => Some(*i),
            _ => None,
        }
    }

    /// Structural equality where NaN equals NaN (what the test vectors ask for).
    pub fn same(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Real(a), Value::Real(b)) => a == b || (a.is_nan() && b.is_nan()),
            (Value::Date(a), Value::Date(b)) => a.0 == b.0 || (a.0.is_nan() && b.0.is_nan()),
            (Value::Array(a), Value::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same(y))
            }
            (Value::Map(a), Value::Map(b)) => {
                a.len() == b.len()
                    && a.0
                        .iter()
                        .zip(&b.0)
                        .all(|((ka, va), (kb, vb))| ka == kb && va.same(vb))
            }
            _ => self == other,
        }
    }
}

impl fmt::Display for Value {
    /// A one-line summary, for log lines and table cells (not a wire format).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Undef => f.write_str("undef"),
            Value::Boolean(b) => write!(f, "{b}"),
            Value::Integer(i) => write!(f, "{i}"),
            Value::Real(r) => write!(f, "{r}"),
            Value::String(s) => write!(f, "{s:?}"),
            Value::Uuid(u) => write!(f, "{u}"),
            Value::Date(d) => write!(f, "date({})", d.0),
            Value::Uri(u) => write!(f, "uri({u:?})"),
            Value::Binary(b) => write!(f, "binary({} bytes)", b.len()),
            Value::Array(a) => write!(f, "[{} items]", a.len()),
            Value::Map(m) => write!(f, "{{{} keys}}", m.len()),
        }
    }
}
