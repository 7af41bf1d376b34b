//! LLSD: the value type, the three wire codecs (XML, binary, notation), format detection, typed JSON and
//! the human view.
//!
//! Owns everything about LLSD bytes and values. Knows nothing of the network, HTTP or caps.

mod value;

pub use value::{Date, Map, Value};
