//! Serde helpers for body bytes: UTF-8 bodies are written as a JSON string (readable, greppable),
//! anything else as `{"base64": "..."}`.
//!
//! The capture file (format version 2) keeps bodies outside the JSON instead, each written as the
//! marker `{"raw": LEN}` with its bytes after the line; `capture::line` writes and reads that form
//! itself. Reading here accepts the marker too and gives an empty body for it (the bytes are not in
//! the JSON).
//!
//! Written by hand rather than with an untagged enum: captures hold millions of bodies, and this
//! way a body is neither copied to be written nor buffered to be read.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserializer, Serializer};

/// The key of the non-UTF-8 form.
const BASE64_KEY: &str = "base64";

/// The key of the marker of a body written after the line (capture format version 2).
const RAW_KEY: &str = "raw";

fn serialize_bytes<S: Serializer>(data: &[u8], s: S) -> Result<S::Ok, S::Error> {
    match std::str::from_utf8(data) {
        Ok(text) => s.serialize_str(text),
        Err(_) => {
            let mut map = s.serialize_map(Some(1))?;
            map.serialize_entry(BASE64_KEY, &STANDARD.encode(data))?;
            map.end()
        }
    }
}

struct BodyVisitor;

impl<'de> Visitor<'de> for BodyVisitor {
    type Value = Bytes;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a body: a string, {\"base64\": \"...\"} or {\"raw\": LEN}")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Bytes, E> {
        Ok(Bytes::copy_from_slice(v.as_bytes()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Bytes, E> {
        Ok(Bytes::from(v))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Bytes, A::Error> {
        let mut data = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if data.is_some() {
                return Err(de::Error::duplicate_field(BASE64_KEY));
            }
            if key == RAW_KEY {
                // Its bytes follow the line; the capture reader puts them in place.
                map.next_value::<u64>()?;
                data = Some(Bytes::new());
                continue;
            }
            if key != BASE64_KEY {
                return Err(de::Error::unknown_field(&key, &[BASE64_KEY, RAW_KEY]));
            }
            let text = map.next_value::<std::borrow::Cow<'de, str>>()?;
            data = Some(
                STANDARD
                    .decode(text.as_bytes())
                    .map(Bytes::from)
                    .map_err(|e| de::Error::custom(format!("body is not valid base64: {e}")))?,
            );
        }
        data.ok_or_else(|| de::Error::missing_field(BASE64_KEY))
    }
}

struct OptBodyVisitor;

impl<'de> Visitor<'de> for OptBodyVisitor {
    type Value = Option<Bytes>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("null or a body")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(BodyVisitor).map(Some)
    }
}

pub mod bytes_as_text_or_base64 {
    use super::*;

    pub fn serialize<S: Serializer>(data: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        serialize_bytes(data, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        d.deserialize_any(BodyVisitor)
    }
}

pub mod opt_bytes_as_text_or_base64 {
    use super::*;

    pub fn serialize<S: Serializer>(data: &Option<Bytes>, s: S) -> Result<S::Ok, S::Error> {
        match data {
            Some(d) => s.serialize_some(&Wrapped(d)),
            None => s.serialize_none(),
        }
    }

    struct Wrapped<'a>(&'a Bytes);

    impl serde::Serialize for Wrapped<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            serialize_bytes(self.0, s)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Bytes>, D::Error> {
        d.deserialize_option(OptBodyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use crate::record::Body;
    use bytes::Bytes;

    #[test]
    fn text_and_base64_forms_read_back_and_bad_forms_are_refused() {
        let text = Body::whole(&b"<llsd />"[..]);
        let json = serde_json::to_string(&text).unwrap();
        assert_eq!(json, r#"{"data":"<llsd />","size":8}"#);
        assert_eq!(serde_json::from_str::<Body>(&json).unwrap(), text);

        let binary = Body {
            original: Some(Bytes::from_static(&[0xff, 0])),
            ..Body::whole(vec![0u8, 159, 146, 150])
        };
        let json = serde_json::to_string(&binary).unwrap();
        assert_eq!(
            json,
            r#"{"data":{"base64":"AJ+Slg=="},"size":4,"original":{"base64":"/wA="}}"#
        );
        assert_eq!(serde_json::from_str::<Body>(&json).unwrap(), binary);

        // Escapes in the text form, and an explicit null original.
        let b: Body =
            serde_json::from_str(r#"{"data":"a\"\u00e9","size":4,"original":null}"#).unwrap();
        assert_eq!(&b.data[..], "a\"é".as_bytes());
        assert_eq!(b.original, None);

        for bad in [
            r#"{"data":{"base64":"!!"},"size":1}"#,
            r#"{"data":{"hex":"00"},"size":1}"#,
            r#"{"data":{},"size":1}"#,
            r#"{"data":5,"size":1}"#,
        ] {
            assert!(serde_json::from_str::<Body>(bad).is_err(), "{bad}");
        }
    }
}
