//! Undoing a body's `Content-Encoding` before the caps layer reads it. The hook sees every body in
//! one state, its headers saying what it is: a response the proxy decoded for
//! [`Hook::rewrite_response`](crate::proxy::hook::Hook::rewrite_response) comes without the
//! `Content-Encoding` it no longer has, and an answer the hook fetched itself (event-queue polls,
//! grid info) comes as upstream sent it. So this undoes what the header names, no more.
//!
//! Owns only that choice; the names a header may give ([`Coding::parse`], [`Coding::is_identity`])
//! and the decoding with its size limit are the proxy's one decoder's ([`crate::proxy::decode`]), so
//! the caps layer undoes every encoding the record tap undoes — gzip, deflate, zstd — and no body is
//! readable in a record yet passes a rewriter unrewritten. Knows nothing of what the body means.

use bytes::Bytes;
use http::header::CONTENT_ENCODING;
use http::HeaderMap;

use super::CapsError;
use crate::proxy::decode::{decode_limited, Coding, Stop};
use crate::proxy::hook::MAX_REWRITE_BODY;

/// A body with its `Content-Encoding` undone.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub bytes: Bytes,
    /// The encoding that was undone, if any.
    pub undone: Option<String>,
}

/// Undoes the gzip, deflate or zstd `headers` name (at most [`MAX_REWRITE_BODY`] bytes out). No
/// header, `identity`, and the `binary/octet-stream` Second Life puts on bodies that are not encoded
/// at all leave the body as is. A body that is not what its header says is an error, as is an
/// encoding capscope does not undo.
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
    let coding = match Coding::parse(&encoding) {
        Some(coding) => coding,
        None if Coding::is_identity(&encoding) => {
            return Ok(Decoded {
                bytes: body,
                undone: None,
            })
        }
        None => {
            return Err(CapsError::ContentEncoding {
                what,
                encoding,
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

        // A body that is not what its header says is not guessed at: the proxy hands the hook
        // headers that describe the body (it drops the encoding it undid), so this is upstream's error.
        for enc in ["gzip", "deflate", "zstd"] {
            let e = decode_content(&headers(enc), Bytes::from_static(plain), "seed response")
                .unwrap_err();
            assert!(
                matches!(&e, CapsError::ContentEncoding { encoding, .. } if encoding == enc),
                "{enc}: {e}"
            );
        }
    }
}
