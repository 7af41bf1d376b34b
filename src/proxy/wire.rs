//! Small HTTP helpers for the forwarding path: hop-by-hop headers, lengths, header copies for
//! records, version names, local responses, `Content-Encoding` and authorities. (Host globs for
//! `--passthrough` are `util::glob`'s, the matcher the filter language uses too.)
//!
//! This module owns no state and no I/O. It must not know about records' lifecycle or routing.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode, Version};

use crate::record::Header;

/// How many names [`HOP_BY_HOP`] holds.
const HOP_COUNT: usize = 8;
/// Headers that concern one connection only, never forwarded (RFC 9110 section 7.6.1, plus
/// `Proxy-Connection` and `Proxy-Authorization`, which are meant for the proxy).
const HOP_BY_HOP: [HeaderName; HOP_COUNT] = [
    header::CONNECTION,
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("keep-alive"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
];

/// Removes the hop-by-hop headers, and any header the `Connection` header names.
///
/// This runs twice per exchange, on the forwarding path, and most messages carry only
/// `Connection: keep-alive` of all this: one pass over the names finds what is there, only those are
/// removed, and a `Connection` token that is itself hop-by-hop (or `close`) is not parsed into a name.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let hop = HOP_BY_HOP;
    let mut present = [false; HOP_COUNT];
    for name in headers.keys() {
        if let Some(i) = hop.iter().position(|h| h == name) {
            present[i] = true;
        }
    }
    if !present.contains(&true) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|token| {
            !token.eq_ignore_ascii_case("close")
                && !hop.iter().any(|h| token.eq_ignore_ascii_case(h.as_str()))
        })
        .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for (name, there) in hop.iter().zip(present) {
        if there {
            headers.remove(name);
        }
    }
}

/// A `Content-Length` value, or one item of a comma-separated list of them: ASCII digits only (no
/// sign, nothing inside), spaces around allowed, as hyper reads it. `None` for anything else.
pub(crate) fn decimal_length(text: &[u8]) -> Option<u64> {
    let digits = text.trim_ascii();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The headers as a record keeps them (values that are not UTF-8 are kept lossily).
pub(crate) fn record_headers(headers: &HeaderMap) -> Vec<Header> {
    headers
        .iter()
        .map(|(name, value)| Header {
            name: name.as_str().into(),
            // Borrowed when the value is UTF-8 (nearly always): no copy on the way in.
            value: String::from_utf8_lossy(value.as_bytes()).as_ref().into(),
        })
        .collect()
}

/// `HTTP/1.1`, `HTTP/2.0`, ...
pub(crate) fn version_name(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/?",
    }
}

/// A response capscope writes itself, with a plain-text reason.
pub(crate) fn text_response(status: StatusCode, text: String) -> Response<Bytes> {
    let mut resp = Response::new(Bytes::from(text));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// The `Content-Encoding` of a message, when it has one.
pub(crate) fn content_encoding(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Splits `host:port` (or `[v6]:port`), with `default_port` when there is none.
pub(crate) fn split_authority(authority: &str, default_port: u16) -> (String, u16) {
    if let Some(rest) = authority.strip_prefix('[') {
        if let Some((host, tail)) = rest.split_once(']') {
            let port = tail
                .strip_prefix(':')
                .and_then(|p| p.parse().ok())
                .unwrap_or(default_port);
            return (host.to_owned(), port);
        }
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => {
            (host.to_owned(), port.parse().unwrap_or(default_port))
        }
        _ => (authority.to_owned(), default_port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_lengths_are_digits_only() {
        assert_eq!(decimal_length(b"0"), Some(0));
        assert_eq!(decimal_length(b" 42\t"), Some(42));
        for bad in [
            &b""[..],
            b" ",
            b"+1",
            b"-1",
            b"1 2",
            b"0x10",
            b"1e3",
            b"\xd9\xa1",
        ] {
            assert_eq!(decimal_length(bad), None, "{bad:?}");
        }
        // Beyond u64: not a length.
        assert_eq!(decimal_length(b"18446744073709551616"), None);
    }

    #[test]
    fn hop_by_hop_headers_and_those_named_by_connection_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, X-Foo"),
        );
        h.insert("x-foo", HeaderValue::from_static("1"));
        h.insert("proxy-connection", HeaderValue::from_static("keep-alive"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key(header::CONTENT_TYPE));

        // Several `Connection` lines, hop-by-hop and `close` tokens among the names, any case.
        let mut h = HeaderMap::new();
        h.append(header::CONNECTION, HeaderValue::from_static("close"));
        h.append(
            header::CONNECTION,
            HeaderValue::from_static(" TE , Keep-Alive,x-bar,, X-Baz"),
        );
        for name in ["te", "keep-alive", "x-bar", "x-baz", "x-kept", "close"] {
            h.insert(name, HeaderValue::from_static("1"));
        }
        strip_hop_by_hop(&mut h);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["x-kept", "close"]);
    }

    #[test]
    fn each_hop_by_hop_header_alone_is_removed_and_others_are_left() {
        for name in HOP_BY_HOP {
            let mut h = HeaderMap::new();
            h.insert(name.clone(), HeaderValue::from_static("x"));
            h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
            strip_hop_by_hop(&mut h);
            assert!(!h.contains_key(&name), "{name} kept");
            assert!(h.contains_key(header::ACCEPT), "{name}: accept lost");
        }
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("h"));
        h.append("x-a", HeaderValue::from_static("1"));
        h.append("x-a", HeaderValue::from_static("2"));
        let before = h.clone();
        strip_hop_by_hop(&mut h);
        assert_eq!(h, before);
    }

    #[test]
    fn authorities_split_with_default_ports() {
        assert_eq!(split_authority("h:443", 80), ("h".into(), 443));
        assert_eq!(split_authority("h", 443), ("h".into(), 443));
        assert_eq!(split_authority("[::1]:8080", 80), ("::1".into(), 8080));
        assert_eq!(split_authority("[::1]", 80), ("::1".into(), 80));
    }
}
