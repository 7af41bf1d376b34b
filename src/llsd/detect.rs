//! Which LLSD format a body is in, judged from its bytes first and its Content-Type second (grids
//! label bodies wrongly: OpenSim serves LLSD XML as `text/html`, Second Life labels XML-RPC replies
//! `application/llsd+xml`).
//!
//! Owns format sniffing only; never decodes more than a small scalar.

use super::reader::{header_len, is_ws};
use super::Format;

/// The format of `bytes`, or `None` when they are not LLSD.
///
/// - A `<?llsd/binary?>` / `<?llsd/notation?>` / `<? llsd/xml ?>` header decides.
/// - XML decides when the first element (after any declaration, comments and doctype) is `<llsd>`;
///   any other XML (XML-RPC, HTML) is not LLSD whatever the header says.
/// - A container without a header: binary when the byte after `[`/`{` is 0 (the high byte of a
///   count), notation otherwise.
/// - A scalar without a header: the format it decodes in, the Content-Type breaking a tie.
/// - A body labelled JSON is never taken for headerless notation (`{"a":"b"}` is valid in both).
pub fn detect(content_type: Option<&str>, bytes: &[u8]) -> Option<Format> {
    let declared = content_type.and_then(Format::from_mime);
    let json = content_type.is_some_and(|ct| {
        let ct = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        ct == "application/json" || ct.ends_with("+json") || ct == "text/json"
    });
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let start = body.iter().position(|b| !is_ws(*b))?;
    let body = &body[start..];

    if header_len(body, b"llsd/binary").is_some() {
        return Some(Format::Binary);
    }
    if header_len(body, b"llsd/notation").is_some() {
        return Some(Format::Notation);
    }
    if header_len(body, b"llsd/xml").is_some() || xml_root_is_llsd(body) {
        return Some(Format::Xml);
    }
    if json {
        return None;
    }
    match body[0] {
        b'[' | b'{' => match body.get(1) {
            Some(0) => Some(Format::Binary),
            // Notation's first byte after the bracket: space, a quote, a value or the close.
            Some(_) => Some(Format::Notation),
            None => None,
        },
        _ => {
            let notation = super::notation::from_slice(body).is_ok();
            let binary = super::binary::from_slice(body).is_ok();
            match (notation, binary) {
                (true, false) => Some(Format::Notation),
                (false, true) => Some(Format::Binary),
                (true, true) => Some(match declared {
                    Some(Format::Binary) => Format::Binary,
                    _ => Format::Notation,
                }),
                (false, false) => None,
            }
        }
    }
}

/// Whether the body is XML whose first element (after declarations, comments and doctypes) is
/// `<llsd>`.
fn xml_root_is_llsd(body: &[u8]) -> bool {
    let mut rest = body;
    loop {
        let skip = rest.iter().position(|b| !is_ws(*b)).unwrap_or(rest.len());
        rest = &rest[skip..];
        if !rest.starts_with(b"<") {
            return false;
        }
        let end = if rest.starts_with(b"<?") {
            find(rest, b"?>").map(|i| i + 2)
        } else if rest.starts_with(b"<!--") {
            find(rest, b"-->").map(|i| i + 3)
        } else if rest.starts_with(b"<!") {
            find(rest, b">").map(|i| i + 1)
        } else {
            let name = &rest[1..];
            let is_llsd = name.starts_with(b"llsd")
                && name
                    .get(4)
                    .is_none_or(|b| is_ws(*b) || *b == b'>' || *b == b'/');
            return is_llsd;
        };
        match end {
            Some(e) => rest = &rest[e..],
            None => return false,
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_win() {
        assert_eq!(detect(None, b"<?llsd/binary?>\n!"), Some(Format::Binary));
        assert_eq!(
            detect(Some("application/llsd+xml"), b"<? LLSD/Binary ?>\n!"),
            Some(Format::Binary)
        );
        assert_eq!(
            detect(None, b"<?llsd/notation?>\n!"),
            Some(Format::Notation)
        );
        assert_eq!(detect(None, b"<? llsd/xml ?><llsd/>"), Some(Format::Xml));
    }

    #[test]
    fn xml_only_with_an_llsd_root() {
        let xml = b"<?xml version=\"1.0\"?>\n<!-- c --><!DOCTYPE llsd><llsd><map/></llsd>";
        assert_eq!(
            detect(Some("text/html;charset=UTF-8"), xml),
            Some(Format::Xml)
        );
        assert_eq!(detect(None, b"<llsd/>"), Some(Format::Xml));
        let rpc = b"<?xml version=\"1.0\"?><methodResponse><params/></methodResponse>";
        assert_eq!(detect(Some("application/llsd+xml"), rpc), None);
        assert_eq!(detect(None, b"<html><body/></html>"), None);
        assert_eq!(detect(None, b"<llsdx/>"), None);
    }

    #[test]
    fn headerless_bodies() {
        assert_eq!(detect(None, b"{'a':i1}"), Some(Format::Notation));
        assert_eq!(detect(None, b"[\0\0\0\0]"), Some(Format::Binary));
        assert_eq!(detect(None, b"i42"), Some(Format::Notation));
        assert_eq!(detect(None, b"i\0\0\0\x2a"), Some(Format::Binary));
        assert_eq!(detect(None, b"!"), Some(Format::Notation));
        assert_eq!(
            detect(Some("application/llsd+binary"), b"!"),
            Some(Format::Binary)
        );
        assert_eq!(detect(Some("application/json"), b"{\"a\":\"b\"}"), None);
        assert_eq!(detect(None, b""), None);
        assert_eq!(detect(None, b"   "), None);
        assert_eq!(detect(None, b"hello world"), None);
    }
}
