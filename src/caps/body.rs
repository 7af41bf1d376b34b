//! Undoing a response's `Content-Encoding` before a body is read or rewritten (a rewritten body is
//! sent uncompressed; the proxy drops the header).
//!
//! Owns only decompression with a size limit; knows nothing of what the body means.

use std::io::Read;

use bytes::Bytes;
use http::header::CONTENT_ENCODING;
use http::HeaderMap;

use super::CapsError;
use crate::proxy::hook::MAX_REWRITE_BODY;

/// A body with its `Content-Encoding` undone.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub bytes: Bytes,
    /// The encoding that was undone, if any.
    pub undone: Option<String>,
}

/// Undoes gzip or deflate (at most [`MAX_REWRITE_BODY`] bytes out). `identity`, no header, and the
/// `binary/octet-stream` Second Life puts on bodies that are not encoded at all leave the body as is.
pub fn decode_content(
    headers: &HeaderMap,
    body: Bytes,
    what: &'static str,
) -> Result<Decoded, CapsError> {
    let Some(encoding) = headers
        .get(CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
    else {
        return Ok(Decoded {
            bytes: body,
            undone: None,
        });
    };
    let out = match encoding.as_str() {
        "" | "identity" | "binary/octet-stream" => {
            return Ok(Decoded {
                bytes: body,
                undone: None,
            })
        }
        "gzip" | "x-gzip" => read_limited(
            flate2::read::MultiGzDecoder::new(&body[..]),
            what,
            &encoding,
        )?,
        "deflate" => {
            // "deflate" is zlib-wrapped by the standard, raw in some servers: try both.
            match read_limited(flate2::read::ZlibDecoder::new(&body[..]), what, &encoding) {
                Ok(v) => v,
                Err(_) => read_limited(
                    flate2::read::DeflateDecoder::new(&body[..]),
                    what,
                    &encoding,
                )?,
            }
        }
        other => {
            return Err(CapsError::ContentEncoding {
                what,
                encoding: other.to_owned(),
                reason: "capscope only undoes gzip and deflate".to_owned(),
            })
        }
    };
    Ok(Decoded {
        bytes: out.into(),
        undone: Some(encoding),
    })
}

fn read_limited(
    reader: impl Read,
    what: &'static str,
    encoding: &str,
) -> Result<Vec<u8>, CapsError> {
    let mut out = Vec::new();
    reader
        .take(MAX_REWRITE_BODY as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| CapsError::ContentEncoding {
            what,
            encoding: encoding.to_owned(),
            reason: e.to_string(),
        })?;
    if out.len() > MAX_REWRITE_BODY {
        return Err(CapsError::TooLarge {
            what,
            limit: MAX_REWRITE_BODY,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn headers(enc: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_ENCODING, enc.parse().unwrap());
        h
    }

    #[test]
    fn gzip_and_deflate_are_undone_and_others_left_alone() {
        let plain = b"<llsd><map /></llsd>";
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(plain).unwrap();
        let gz = gz.finish().unwrap();
        let d = decode_content(&headers("gzip"), gz.into(), "seed response").unwrap();
        assert_eq!(&d.bytes[..], plain);
        assert_eq!(d.undone.as_deref(), Some("gzip"));

        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(plain).unwrap();
        let d = decode_content(&headers("deflate"), z.finish().unwrap().into(), "x").unwrap();
        assert_eq!(&d.bytes[..], plain);

        let d = decode_content(
            &headers("binary/octet-stream"),
            Bytes::from_static(plain),
            "x",
        )
        .unwrap();
        assert_eq!((&d.bytes[..], d.undone), (&plain[..], None));
        let d = decode_content(&HeaderMap::new(), Bytes::from_static(plain), "x").unwrap();
        assert_eq!(&d.bytes[..], plain);

        assert!(decode_content(&headers("br"), Bytes::from_static(plain), "x").is_err());
        let e = decode_content(
            &headers("gzip"),
            Bytes::from_static(b"not gzip"),
            "seed response",
        )
        .unwrap_err();
        assert!(e.to_string().contains("seed response"), "{e}");
    }
}
