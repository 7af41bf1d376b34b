//! Undoing a body's `Content-Encoding` with a hard limit on what comes out: the one decoder capscope
//! has. The tap uses it to fill a record (limit: `--max-body`), the proxy before a rewrite and the caps
//! layer before reading a body (limit: [`MAX_REWRITE_BODY`](super::hook::MAX_REWRITE_BODY)).
//!
//! Decompression stops as soon as the limit is reached, so a compression bomb costs at most the limit
//! in memory and the time to produce it. Decoding is CPU work: callers on the async runtime run it on a
//! blocking thread (`tokio::task::spawn_blocking`), never on a request-handling worker.
//!
//! This module owns only decompression. It must not know what a body means or where it goes.

use std::io::Read;

use bytes::Bytes;

/// A `Content-Encoding` capscope can undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    /// zlib-wrapped as the standard says, or raw deflate as some servers send it.
    Deflate,
    Zstd,
}

impl Coding {
    /// The coding a `Content-Encoding` value names; `None` for `identity`, for the
    /// `binary/octet-stream` Second Life puts on bodies that are not encoded at all, and for anything
    /// capscope does not undo (a list of several codings included).
    pub fn parse(value: &str) -> Option<Coding> {
        match value.trim().to_ascii_lowercase().as_str() {
            "gzip" | "x-gzip" => Some(Coding::Gzip),
            "deflate" => Some(Coding::Deflate),
            "zstd" => Some(Coding::Zstd),
            _ => None,
        }
    }

    /// Whether a `Content-Encoding` value says the body is not encoded: none, `identity`, or the
    /// `binary/octet-stream` Second Life puts on bodies that are not encoded at all. A value that is
    /// neither this nor a [`Coding::parse`] coding names an encoding capscope cannot undo.
    pub fn is_identity(value: &str) -> bool {
        matches!(
            value.trim().to_ascii_lowercase().as_str(),
            "" | "identity" | "binary/octet-stream"
        )
    }

    /// The coding's name as a header spells it.
    pub fn name(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Zstd => "zstd",
        }
    }
}

/// Why decoding stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// The encoded data ended properly: `bytes` is the whole body.
    End,
    /// The decoded body reached the limit: `bytes` holds its first `limit` bytes, the rest was never
    /// decompressed.
    Limit,
    /// The encoded data is broken or cut short (as a record's copy is when the wire body was longer
    /// than `--max-body`): `bytes` holds what decoded before that.
    Broken(String),
}

/// What came out of [`decode_limited`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub bytes: Bytes,
    pub stop: Stop,
}

/// Undoes `coding` on `data`, producing at most `limit` bytes.
pub fn decode_limited(data: &[u8], coding: Coding, limit: usize) -> Decoded {
    match coding {
        Coding::Gzip => read_limited(flate2::read::MultiGzDecoder::new(data), limit),
        Coding::Deflate if is_zlib_header(data) => {
            let zlib = read_limited(flate2::read::ZlibDecoder::new(data), limit);
            match zlib.stop {
                // A raw deflate stream can start like a zlib header by chance: try it as raw too.
                Stop::Broken(_) if zlib.bytes.is_empty() => {
                    let raw = read_limited(flate2::read::DeflateDecoder::new(data), limit);
                    if raw.bytes.is_empty() {
                        zlib
                    } else {
                        raw
                    }
                }
                _ => zlib,
            }
        }
        Coding::Deflate => read_limited(flate2::read::DeflateDecoder::new(data), limit),
        Coding::Zstd => match zstd::stream::read::Decoder::new(data) {
            Ok(d) => read_limited(d, limit),
            Err(e) => Decoded {
                bytes: Bytes::new(),
                stop: Stop::Broken(e.to_string()),
            },
        },
    }
}

/// A zlib stream header: compression method 8 and a check value that makes the pair a multiple of 31.
pub fn is_zlib_header(body: &[u8]) -> bool {
    match body {
        [cmf, flg, ..] => cmf & 0x0f == 8 && ((u16::from(*cmf) << 8) | u16::from(*flg)) % 31 == 0,
        _ => false,
    }
}

/// How much decoded output is read at a time.
const READ_CHUNK: usize = 64 * 1024;

fn read_limited(mut reader: impl Read, limit: usize) -> Decoded {
    let mut out = Vec::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        // Read one byte past the limit, to tell "exactly the limit" from "more than the limit".
        let want = (limit + 1 - out.len()).min(READ_CHUNK);
        match reader.read(&mut chunk[..want]) {
            Ok(0) => return finish(out, Stop::End),
            Ok(n) => {
                out.extend_from_slice(&chunk[..n]);
                if out.len() > limit {
                    out.truncate(limit);
                    return finish(out, Stop::Limit);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return finish(out, Stop::Broken(e.to_string())),
        }
    }
}

fn finish(out: Vec<u8>, stop: Stop) -> Decoded {
    Decoded {
        bytes: Bytes::from(out),
        stop,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(plain: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(plain).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn codings_are_named_and_non_codings_are_not() {
        assert_eq!(Coding::parse(" GZIP "), Some(Coding::Gzip));
        assert_eq!(Coding::parse("x-gzip"), Some(Coding::Gzip));
        assert_eq!(Coding::parse("deflate"), Some(Coding::Deflate));
        assert_eq!(Coding::parse("zstd"), Some(Coding::Zstd));
        assert_eq!(Coding::parse("identity"), None);
        assert_eq!(Coding::parse("binary/octet-stream"), None);
        assert_eq!(Coding::parse("gzip, br"), None);
        for identity in ["", " Identity", "binary/octet-stream"] {
            assert!(Coding::is_identity(identity), "{identity:?}");
        }
        for other in ["gzip", "br", "gzip, br"] {
            assert!(!Coding::is_identity(other), "{other:?}");
        }
    }

    #[test]
    fn each_coding_decodes_whole_under_the_limit() {
        let plain = b"<llsd><map><key>a</key><integer>1</integer></map></llsd>";
        let d = decode_limited(&gzip(plain), Coding::Gzip, 1024);
        assert_eq!((&d.bytes[..], d.stop), (&plain[..], Stop::End));

        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(plain).unwrap();
        let d = decode_limited(&z.finish().unwrap(), Coding::Deflate, 1024);
        assert_eq!((&d.bytes[..], d.stop), (&plain[..], Stop::End));

        let mut raw =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        raw.write_all(plain).unwrap();
        let d = decode_limited(&raw.finish().unwrap(), Coding::Deflate, 1024);
        assert_eq!((&d.bytes[..], d.stop), (&plain[..], Stop::End));

        let zs = zstd::encode_all(&plain[..], 3).unwrap();
        let d = decode_limited(&zs, Coding::Zstd, 1024);
        assert_eq!((&d.bytes[..], d.stop), (&plain[..], Stop::End));

        // Exactly the limit is still the whole body.
        let d = decode_limited(&gzip(plain), Coding::Gzip, plain.len());
        assert_eq!(d.stop, Stop::End);
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        let member = gzip(&vec![0u8; 1 << 20]);
        // 64 members: 64 MiB once decoded, from a few tens of KiB.
        let bomb: Vec<u8> = std::iter::repeat_n(&member[..], 64)
            .flatten()
            .copied()
            .collect();
        let d = decode_limited(&bomb, Coding::Gzip, 100_000);
        assert_eq!(d.bytes.len(), 100_000);
        assert_eq!(d.stop, Stop::Limit);
        let zs = zstd::encode_all(&vec![7u8; 1 << 22][..], 3).unwrap();
        let d = decode_limited(&zs, Coding::Zstd, 4096);
        assert_eq!((d.bytes.len(), d.stop), (4096, Stop::Limit));
    }

    #[test]
    fn broken_or_cut_data_keeps_what_decoded() {
        let gz = gzip(
            &(0..200_000u32)
                .map(|i| (i * 7 % 251) as u8)
                .collect::<Vec<_>>(),
        );
        let cut = &gz[..gz.len() / 2];
        let d = decode_limited(cut, Coding::Gzip, 1 << 20);
        assert!(!d.bytes.is_empty());
        assert!(matches!(d.stop, Stop::Broken(_)), "{:?}", d.stop);
        let d = decode_limited(b"not gzip at all", Coding::Gzip, 1 << 20);
        assert!(d.bytes.is_empty() && matches!(d.stop, Stop::Broken(_)));
    }
}
