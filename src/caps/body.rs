//! Undoing a body's `Content-Encoding` before the caps layer reads it (event-queue answers it fetched
//! itself; a body the proxy decoded for a rewrite arrives already decoded, with the header gone).
//!
//! Owns only the choice of what to undo; the decoding itself, with its size limit, is the proxy's one
//! decoder ([`crate::proxy::decode`]). Knows nothing of what the body means. It undoes every encoding
//! the record tap undoes — gzip, deflate, zstd — so no body is readable in a record yet passes a
//! rewriter unrewritten.

use bytes::Bytes;
use http::header::CONTENT_ENCODING;
use http::HeaderMap;

use super::CapsError;
use crate::proxy::decode::{decode_limited, is_zlib_header, Coding, Stop};
use crate::proxy::hook::MAX_REWRITE_BODY;

/// A body with its `Content-Encoding` undone.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub bytes: Bytes,
    /// The encoding that was undone, if any.
    pub undone: Option<String>,
}

/// Undoes gzip, deflate or zstd — every encoding the record tap undoes (at most [`MAX_REWRITE_BODY`] bytes out). `identity`, no header, and the
/// `binary/octet-stream` Second Life puts on bodies that are not encoded at all leave the body as is.
///
/// A body whose bytes show it is not encoded after all (no gzip magic; no zlib header and plain LLSD
/// or XML text) is taken as is: the proxy may already have undone the encoding while passing the
/// original headers on.
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
    let coding = match encoding.as_str() {
        "" | "identity" | "binary/octet-stream" => {
            return Ok(Decoded {
                bytes: body,
                undone: None,
            })
        }
        "gzip" | "x-gzip" if !body.starts_with(GZIP_MAGIC) => return Ok(as_is(body)),
        "deflate" if !is_zlib_header(&body) && looks_plain(&body) => return Ok(as_is(body)),
        "zstd" if !body.starts_with(ZSTD_MAGIC) => return Ok(as_is(body)),
        "gzip" | "x-gzip" => Coding::Gzip,
        "deflate" => Coding::Deflate,
        "zstd" => Coding::Zstd,
        other => {
            return Err(CapsError::ContentEncoding {
                what,
                encoding: other.to_owned(),
                reason: "capscope only undoes gzip, deflate and zstd".to_owned(),
            })
        }
    };
    let decoded = decode_limited(&body, coding, MAX_REWRITE_BODY);
    match decoded.stop {
        Stop::End => Ok(Decoded {
            bytes: decoded.bytes,
            undone: Some(encoding),
        }),
        Stop::Limit => Err(CapsError::TooLarge {
            what,
            limit: MAX_REWRITE_BODY,
        }),
        Stop::Broken(reason) => Err(CapsError::ContentEncoding {
            what,
            encoding,
            reason,
        }),
    }
}

/// The first two bytes of every gzip member.
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
/// The first four bytes of every zstd frame (RFC 8878).
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

fn as_is(bytes: Bytes) -> Decoded {
    Decoded {
        bytes,
        undone: None,
    }
}

/// Whether a body already reads as LLSD or XML text (what the caps layer reads is never raw deflate
/// that starts like this in practice).
fn looks_plain(body: &[u8]) -> bool {
    matches!(
        body.iter().find(|b| !b.is_ascii_whitespace()),
        Some(b'<' | b'{' | b'[') | None
    )
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

    fn gz_bytes(plain: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(plain).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn gzip_and_deflate_are_undone_and_others_left_alone() {
        let plain = b"<llsd><map /></llsd>";
        let gz = gz_bytes(plain);
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

        // zstd: every encoding the record tap undoes, the rewriters undo too.
        let zs = zstd::encode_all(&plain[..], 3).unwrap();
        let d = decode_content(&headers("zstd"), zs.into(), "seed response").unwrap();
        assert_eq!(
            (&d.bytes[..], d.undone.as_deref()),
            (&plain[..], Some("zstd"))
        );
        let mut broken = zstd::encode_all(&plain[..], 3).unwrap();
        broken.truncate(6);
        assert!(decode_content(&headers("zstd"), broken.into(), "x").is_err());
        let mut broken = gz_bytes(plain);
        broken.truncate(12);
        let e = decode_content(&headers("gzip"), broken.into(), "seed response").unwrap_err();
        assert!(e.to_string().contains("seed response"), "{e}");

        // Already undone (the proxy decodes before the hook sees it, headers unchanged).
        for enc in ["gzip", "deflate", "zstd"] {
            let d = decode_content(&headers(enc), Bytes::from_static(plain), "x").unwrap();
            assert_eq!((&d.bytes[..], d.undone), (&plain[..], None), "{enc}");
        }
    }
}
