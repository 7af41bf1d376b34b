//! LLSD: the value type, the three wire codecs (XML, binary, notation), format detection, typed JSON and
//! the human view.
//!
//! Owns everything about LLSD bytes and values. Knows nothing of the network, HTTP or caps.
//!
//! Decoders take a byte slice and return a [`Value`] or an [`Error`] naming the byte offset; they never
//! panic, never read or allocate from a length the input does not back with bytes, and stop at
//! [`MAX_DEPTH`] levels of nesting. Encoders are infallible. docs/llsd.md has the details and the
//! choices made where the format leaves room.

pub mod binary;
mod build;
mod detect;
mod error;
pub mod notation;
mod pretty;
mod reader;
mod text;
pub mod typed_json;
mod value;
pub mod xml;

use std::fmt;

pub use detect::detect;
pub use error::{Error, ErrorKind, Found};
pub use pretty::pretty;
pub use value::{Date, Key, Map, Value};

/// The deepest nesting of arrays and maps a decoder accepts (the reference stops at 200 levels
/// below the top value; we allow a little more so anything it writes reads back).
pub const MAX_DEPTH: usize = 256;

/// The three LLSD wire formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Xml,
    Binary,
    Notation,
}

impl Format {
    /// All formats, in the order the UI offers them.
    pub const ALL: [Format; 3] = [Format::Xml, Format::Binary, Format::Notation];

    /// The MIME type of the format (`application/llsd+xml`, ...).
    pub fn mime(self) -> &'static str {
        match self {
            Format::Xml => "application/llsd+xml",
            Format::Binary => "application/llsd+binary",
            Format::Notation => "application/llsd+notation",
        }
    }

    /// The format a Content-Type names, parameters ignored (`application/llsd+xml; charset=utf-8`).
    /// Plain `application/llsd` is XML, as the reference reads it.
    pub fn from_mime(content_type: &str) -> Option<Format> {
        let mime = content_type.split(';').next()?.trim();
        if mime.eq_ignore_ascii_case("application/llsd+xml")
            || mime.eq_ignore_ascii_case("application/llsd")
        {
            Some(Format::Xml)
        } else if mime.eq_ignore_ascii_case("application/llsd+binary") {
            Some(Format::Binary)
        } else if mime.eq_ignore_ascii_case("application/llsd+notation") {
            Some(Format::Notation)
        } else {
            None
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Xml => "xml",
            Format::Binary => "binary",
            Format::Notation => "notation",
        })
    }
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "xml" => Ok(Format::Xml),
            "binary" => Ok(Format::Binary),
            "notation" => Ok(Format::Notation),
            other => Err(format!(
                "unknown LLSD format {other:?} (expected xml, binary or notation)"
            )),
        }
    }
}

/// Decodes a body in whichever format its bytes are in ([`detect`] without a Content-Type).
pub fn from_slice(bytes: &[u8]) -> Result<Value, Error> {
    match detect(None, bytes) {
        Some(format) => from_slice_as(bytes, format),
        None if bytes.iter().all(|b| b.is_ascii_whitespace()) => {
            Err(Error::new(0, ErrorKind::Empty))
        }
        None => Err(Error::new(0, ErrorKind::NotLlsd)),
    }
}

/// Decodes a body in the given format (a header, if present, is skipped).
pub fn from_slice_as(bytes: &[u8], format: Format) -> Result<Value, Error> {
    match format {
        Format::Xml => xml::from_slice(bytes),
        Format::Binary => binary::from_slice(bytes),
        Format::Notation => notation::from_slice(bytes),
    }
}

/// Decodes a body in the format `from` and appends it to `out` in the format `to`: the bytes
/// [`write_to`]`(&from_slice_as(bytes, from)?, to, out)` appends (header and XML declaration
/// included, as [`to_vec`] writes them), and the same error for a body that does not decode.
///
/// The body is written as it is read, without building the tree: for a large body, allocating,
/// filling and walking millions of tree nodes costs more than reading the input does. The decoder
/// is the same code as [`from_slice_as`] (generic over what it builds), and the writer the same code
/// as [`write_to`]'s, so every check and limit applies alike and the bytes are the same. On an error
/// `out` is left as it was.
pub fn transcode(bytes: &[u8], from: Format, to: Format, out: &mut Vec<u8>) -> Result<(), Error> {
    let start = out.len();
    let done = match to {
        Format::Binary => {
            out.extend_from_slice(binary::HEADER);
            decode_into(bytes, from, build::BinaryWriter { out })
        }
        Format::Xml => {
            out.extend_from_slice(xml::PROLOGUE);
            let done = decode_into(bytes, from, xml::XmlWriter { out });
            out.extend_from_slice(xml::EPILOGUE);
            done
        }
        Format::Notation => decode_into(bytes, from, notation::NotationWriter::new(out)),
    };
    if done.is_err() {
        out.truncate(start);
    }
    done
}

/// Decodes a body in the format `from` and appends its human view to `out`: the text
/// [`pretty`]`(&from_slice_as(bytes, from)?)` gives, written as the body is read (as [`transcode`]
/// does), and the same error for a body that does not decode. On an error `out` is left as it was.
pub fn transcode_pretty(bytes: &[u8], from: Format, out: &mut Vec<u8>) -> Result<(), Error> {
    let start = out.len();
    let done = decode_into(bytes, from, pretty::PrettyWriter::new(out));
    if done.is_err() {
        out.truncate(start);
    }
    done
}

/// [`transcode`] to binary LLSD.
pub fn transcode_to_binary(bytes: &[u8], format: Format, out: &mut Vec<u8>) -> Result<(), Error> {
    transcode(bytes, format, Format::Binary, out)
}

/// Runs the decoder of `format` with the builder `b`.
fn decode_into<B: build::Build>(bytes: &[u8], format: Format, mut b: B) -> Result<B::Node, Error> {
    match format {
        Format::Xml => xml::decode(bytes, b),
        Format::Binary => binary::decode(bytes, &mut b),
        Format::Notation => notation::decode(bytes, &mut b),
    }
}

/// Encodes a value: XML and binary with their header, notation without (as the reference does).
pub fn to_vec(value: &Value, format: Format) -> Vec<u8> {
    match format {
        Format::Xml => xml::to_vec(value),
        Format::Binary => binary::to_vec(value),
        Format::Notation => notation::to_vec(value),
    }
}

/// Encodes a value as [`to_vec`] does, appending to `out`: a caller that can guess the size (from the
/// body it decoded) reserves it once instead of growing the buffer through a chain of copies.
pub fn write_to(value: &Value, format: Format, out: &mut Vec<u8>) {
    match format {
        Format::Xml => {
            out.extend_from_slice(xml::PROLOGUE);
            xml::write_value(out, value);
            out.extend_from_slice(xml::EPILOGUE);
        }
        Format::Binary => {
            out.extend_from_slice(binary::HEADER);
            binary::write_value(out, value);
        }
        Format::Notation => notation::write_value(out, value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_to_appends_what_to_vec_returns() {
        let value = Value::Map(
            [
                ("a", Value::Array(vec![Value::Integer(1), Value::Undef])),
                ("b", Value::String("x<y>'z\"".into())),
            ]
            .into_iter()
            .collect(),
        );
        for format in Format::ALL {
            let mut out = b"prefix".to_vec();
            write_to(&value, format, &mut out);
            assert_eq!(&out[..6], b"prefix");
            assert_eq!(out[6..], to_vec(&value, format)[..], "{format}");
        }
    }

    #[test]
    fn format_names_and_mimes() {
        for f in Format::ALL {
            assert_eq!(f.to_string().parse::<Format>().unwrap(), f);
            assert_eq!(Format::from_mime(f.mime()), Some(f));
        }
        assert_eq!(
            Format::from_mime("Application/LLSD+XML; charset=UTF-8"),
            Some(Format::Xml)
        );
        assert_eq!(Format::from_mime("text/html"), None);
    }

    #[test]
    fn auto_decoding() {
        let v = Value::Array(vec![Value::Integer(1), Value::String("x".into())]);
        for f in Format::ALL {
            assert_eq!(from_slice(&to_vec(&v, f)).unwrap(), v, "{f}");
        }
        assert_eq!(from_slice(b"").unwrap_err().kind(), &ErrorKind::Empty);
        assert_eq!(
            from_slice(b"<html/>").unwrap_err().kind(),
            &ErrorKind::NotLlsd
        );
    }
}
