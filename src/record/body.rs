//! Serde helpers for body bytes: UTF-8 bodies are written as a JSON string (readable, greppable),
//! anything else as `{"base64": "..."}`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Repr {
    Text(String),
    Base64 { base64: String },
}

fn to_repr(data: &Bytes) -> Repr {
    match std::str::from_utf8(data) {
        Ok(s) => Repr::Text(s.to_owned()),
        Err(_) => Repr::Base64 {
            base64: STANDARD.encode(data),
        },
    }
}

fn from_repr<E: serde::de::Error>(repr: Repr) -> Result<Bytes, E> {
    match repr {
        Repr::Text(s) => Ok(Bytes::from(s)),
        Repr::Base64 { base64 } => STANDARD
            .decode(base64)
            .map(Bytes::from)
            .map_err(|e| E::custom(format!("body is not valid base64: {e}"))),
    }
}

pub mod bytes_as_text_or_base64 {
    use super::*;

    pub fn serialize<S: Serializer>(data: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        to_repr(data).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        from_repr(Repr::deserialize(d)?)
    }
}

pub mod opt_bytes_as_text_or_base64 {
    use super::*;

    pub fn serialize<S: Serializer>(data: &Option<Bytes>, s: S) -> Result<S::Ok, S::Error> {
        data.as_ref().map(to_repr).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Bytes>, D::Error> {
        Option::<Repr>::deserialize(d)?.map(from_repr).transpose()
    }
}
