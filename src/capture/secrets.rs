//! Masking of secrets before a record is written to a capture.
//!
//! Masked: the `Cookie`, `Set-Cookie`, `Authorization` and `Proxy-Authorization` headers (values only;
//! cookie names and the auth scheme stay), and the fields named in [`SECRET_FIELDS`] wherever they occur
//! in a body: XML-RPC members (`<member><name>passwd</name><value><string>…</string></value></member>`,
//! or `<value>…</value>` holding text directly), LLSD XML map entries (`<key>secure_session_id</key>
//! <uuid>…</uuid>`), LLSD binary map entries and LLSD notation map entries. The secret is replaced by a
//! marker of the same LLSD/XML-RPC type, so the body stays well-formed and decodes (see
//! `docs/capture-format.md`). Masking works on the bytes, so everything else in the body is kept exactly.
//!
//! This module owns what counts as a secret and how it is hidden. It must not write files or decide
//! whether masking is wanted (the writer does).

use std::borrow::Cow;

use bytes::Bytes;
use memchr::memmem;

use crate::record::{Body, Header, Record};

/// Body fields whose values are secrets (login request, login reply, LLSD anywhere).
pub const SECRET_FIELDS: &[&str] = &["passwd", "secure_session_id", "mfa_hash"];

/// Headers whose values are secrets (compared case-insensitively).
pub const SECRET_HEADERS: &[&str] = &[
    "cookie",
    "set-cookie",
    "authorization",
    "proxy-authorization",
];

/// What replaces a secret text value.
pub const MASK: &str = "********";

/// What replaces a secret UUID: the "Max UUID" of RFC 9562, never a real session id.
pub const MASKED_UUID: &str = "ffffffff-ffff-ffff-ffff-ffffffffffff";

/// A copy of `record` with its secrets masked, or `None` when it holds none (the common case: no copy).
pub fn mask_record(record: &Record) -> Option<Record> {
    let req_headers = record
        .request
        .as_ref()
        .and_then(|r| mask_headers(&r.headers));
    let req_body = record.request.as_ref().and_then(|r| mask_body(&r.body));
    let resp_headers = record
        .response
        .as_ref()
        .and_then(|r| mask_headers(&r.headers));
    let resp_body = record.response.as_ref().and_then(|r| mask_body(&r.body));
    let event_body = record.event.as_ref().and_then(|e| mask_body(&e.body));
    if req_headers.is_none()
        && req_body.is_none()
        && resp_headers.is_none()
        && resp_body.is_none()
        && event_body.is_none()
    {
        return None;
    }
    // Only records that hold a secret are copied.
    let mut out = record.clone();
    if let Some(req) = out.request.as_mut() {
        if let Some(h) = req_headers {
            req.headers = h;
        }
        if let Some(b) = req_body {
            req.body = b;
        }
    }
    if let Some(resp) = out.response.as_mut() {
        if let Some(h) = resp_headers {
            resp.headers = h;
        }
        if let Some(b) = resp_body {
            resp.body = b;
        }
    }
    if let (Some(ev), Some(b)) = (out.event.as_mut(), event_body) {
        ev.body = b;
    }
    Some(out)
}

/// The headers with secret values masked, or `None` when none is secret.
pub fn mask_headers(headers: &[Header]) -> Option<Vec<Header>> {
    if !headers.iter().any(|h| is_secret_header(&h.name)) {
        return None;
    }
    Some(
        headers
            .iter()
            .map(|h| Header {
                name: h.name.clone(),
                value: if is_secret_header(&h.name) {
                    mask_header_value(&h.name, &h.value)
                } else {
                    h.value.clone()
                },
            })
            .collect(),
    )
}

fn is_secret_header(name: &str) -> bool {
    SECRET_HEADERS.iter().any(|s| s.eq_ignore_ascii_case(name))
}

/// One secret header's value, masked: cookie names and auth schemes stay, values go.
pub fn mask_header_value(name: &str, value: &str) -> String {
    if name.eq_ignore_ascii_case("cookie") {
        value
            .split(';')
            .map(|pair| match pair.split_once('=') {
                Some((n, _)) => format!("{n}={MASK}"),
                None => pair.to_owned(),
            })
            .collect::<Vec<_>>()
            .join(";")
    } else if name.eq_ignore_ascii_case("set-cookie") {
        // Only the first pair is the cookie; the rest are attributes (Path, Expires, ...).
        match value.split_once(';') {
            Some((first, attrs)) => format!("{};{attrs}", mask_pair(first)),
            None => mask_pair(value),
        }
    } else {
        match value.trim_start().split_once(' ') {
            Some((scheme, _)) => format!("{scheme} {MASK}"),
            None => MASK.to_owned(),
        }
    }
}

fn mask_pair(pair: &str) -> String {
    match pair.split_once('=') {
        Some((n, _)) => format!("{n}={MASK}"),
        None => MASK.to_owned(),
    }
}

/// The body with secret fields masked (in `data` and in `original`), or `None` when it holds none.
pub fn mask_body(body: &Body) -> Option<Body> {
    let data = mask_bytes(&body.data);
    let original = body.original.as_ref().and_then(|o| mask_bytes(o));
    if data.is_none() && original.is_none() {
        return None;
    }
    let mut out = body.clone();
    if let Some(d) = data {
        out.data = Bytes::from(d);
    }
    if let Some(o) = original {
        out.original = Some(Bytes::from(o));
    }
    Some(out)
}

/// The bytes with every secret field masked, or `None` when no secret field occurs.
pub fn mask_bytes(data: &[u8]) -> Option<Vec<u8>> {
    let mut current: Cow<'_, [u8]> = Cow::Borrowed(data);
    for field in SECRET_FIELDS {
        if memmem::find(&current, field.as_bytes()).is_none() {
            continue;
        }
        for masker in [mask_xml, mask_binary, mask_notation] {
            if let Some(next) = masker(&current, field) {
                current = Cow::Owned(next);
            }
        }
    }
    match current {
        Cow::Borrowed(_) => None,
        Cow::Owned(v) => Some(v),
    }
}

/// One replacement: bytes `start..end` become `with`.
struct Edit {
    start: usize,
    end: usize,
    with: Vec<u8>,
}

/// Applies non-overlapping edits sorted by position; `None` when there are none.
fn apply(data: &[u8], edits: Vec<Edit>) -> Option<Vec<u8>> {
    if edits.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(data.len());
    let mut at = 0;
    for e in edits {
        out.extend_from_slice(&data[at..e.start]);
        out.extend_from_slice(&e.with);
        at = e.end;
    }
    out.extend_from_slice(&data[at..]);
    Some(out)
}

fn skip_ws(data: &[u8], mut i: usize) -> usize {
    while i < data.len() && data[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

fn skip_ws_back(data: &[u8], mut i: usize) -> usize {
    while i > 0 && data[i - 1].is_ascii_whitespace() {
        i -= 1;
    }
    i
}

/// The marker that replaces the text content of an XML element named `tag`.
fn xml_marker(tag: &[u8]) -> &'static [u8] {
    match tag {
        b"uuid" => MASKED_UUID.as_bytes(),
        b"binary" => b"",
        b"integer" | b"i4" | b"int" | b"real" | b"double" | b"boolean" => b"0",
        _ => MASK.as_bytes(),
    }
}

/// Reads an opening tag at `i` (`<name>` or `<name attr="..">` or `<name/>`): its name, the index just
/// past it, and whether it closes itself.
fn open_tag(data: &[u8], i: usize) -> Option<(&[u8], usize, bool)> {
    if data.get(i) != Some(&b'<') {
        return None;
    }
    let close = i + memchr::memchr(b'>', data.get(i..)?)?;
    let inner = &data[i + 1..close];
    let name_end = inner
        .iter()
        .position(|b| b.is_ascii_whitespace() || *b == b'/')
        .unwrap_or(inner.len());
    let name = &inner[..name_end];
    if name.is_empty() || !name[0].is_ascii_alphabetic() {
        return None;
    }
    Some((name, close + 1, inner.last() == Some(&b'/')))
}

/// XML (XML-RPC members and LLSD XML maps): `<name>FIELD</name><value>…` or `<key>FIELD</key><T>…</T>`.
fn mask_xml(data: &[u8], field: &str) -> Option<Vec<u8>> {
    let mut edits = Vec::new();
    let mut from = 0;
    for pos in memmem::find_iter(data, field.as_bytes()) {
        if pos < from {
            continue;
        }
        let before = skip_ws_back(data, pos);
        let after = skip_ws(data, pos + field.len());
        let (container, close_tag): (&[u8], &[u8]) = if data[..before].ends_with(b"<name>") {
            (b"name", b"</name>")
        } else if data[..before].ends_with(b"<key>") {
            (b"key", b"</key>")
        } else {
            continue;
        };
        if !data[after..].starts_with(close_tag) {
            continue;
        }
        let mut i = skip_ws(data, after + close_tag.len());
        if container == b"name" {
            // XML-RPC: <value> holds either a typed element or the text itself.
            let Some((tag, past, selfclosing)) = open_tag(data, i) else {
                continue;
            };
            if tag != b"value" || selfclosing {
                continue;
            }
            let inner = skip_ws(data, past);
            match open_tag(data, inner) {
                Some((t, p, false)) => {
                    if let Some(e) = element_content(data, t, p) {
                        from = e.end;
                        edits.push(e);
                    }
                }
                Some((_, _, true)) => {}
                None => {
                    if let Some(e) = element_content(data, b"value", past) {
                        from = e.end;
                        edits.push(e);
                    }
                }
            }
        } else {
            let Some((tag, past, selfclosing)) = open_tag(data, i) else {
                continue;
            };
            if selfclosing {
                continue;
            }
            i = past;
            if let Some(e) = element_content(data, tag, i) {
                from = e.end;
                edits.push(e);
            }
        }
    }
    apply(data, edits)
}

/// The edit replacing the content of element `tag` that starts at `start`, up to its closing tag.
fn element_content(data: &[u8], tag: &[u8], start: usize) -> Option<Edit> {
    let mut closing = Vec::with_capacity(tag.len() + 3);
    closing.extend_from_slice(b"</");
    closing.extend_from_slice(tag);
    closing.push(b'>');
    let end = start + memmem::find(data.get(start..)?, &closing)?;
    Some(Edit {
        start,
        end,
        with: xml_marker(tag).to_vec(),
    })
}

/// LLSD binary: `k` + big-endian u32 length + FIELD, then `u` + 16 bytes, or `s`/`b` + length + bytes.
/// Replacements keep every length, so the body stays valid byte for byte.
fn mask_binary(data: &[u8], field: &str) -> Option<Vec<u8>> {
    let len = u32::try_from(field.len()).ok()?;
    let mut key = vec![b'k'];
    key.extend_from_slice(&len.to_be_bytes());
    key.extend_from_slice(field.as_bytes());
    let mut edits = Vec::new();
    for pos in memmem::find_iter(data, &key) {
        let v = pos + key.len();
        match data.get(v) {
            Some(b'u') if data.len() >= v + 17 => edits.push(Edit {
                start: v + 1,
                end: v + 17,
                with: vec![0xff; 16],
            }),
            Some(b's' | b'b') => {
                let Some(n) = data
                    .get(v + 1..v + 5)
                    .and_then(|b| <[u8; 4]>::try_from(b).ok())
                    .map(u32::from_be_bytes)
                    .and_then(|n| usize::try_from(n).ok())
                else {
                    continue;
                };
                let start = v + 5;
                let Some(end) = start.checked_add(n).filter(|e| *e <= data.len()) else {
                    continue;
                };
                edits.push(Edit {
                    start,
                    end,
                    with: vec![b'*'; n],
                });
            }
            _ => {}
        }
    }
    apply(data, edits)
}

/// LLSD notation: `'FIELD':` or `"FIELD":` then `u<uuid>`, a quoted string, or `s(N)"…"`.
fn mask_notation(data: &[u8], field: &str) -> Option<Vec<u8>> {
    let mut edits = Vec::new();
    for pos in memmem::find_iter(data, field.as_bytes()) {
        let Some(&q) = pos.checked_sub(1).and_then(|p| data.get(p)) else {
            continue;
        };
        if (q != b'\'' && q != b'"') || data.get(pos + field.len()) != Some(&q) {
            continue;
        }
        let colon = skip_ws(data, pos + field.len() + 1);
        if data.get(colon) != Some(&b':') {
            continue;
        }
        let v = skip_ws(data, colon + 1);
        match data.get(v) {
            Some(b'u') if data.len() >= v + 37 => edits.push(Edit {
                start: v + 1,
                end: v + 37,
                with: MASKED_UUID.as_bytes().to_vec(),
            }),
            Some(&open @ (b'\'' | b'"')) => {
                if let Some(end) = quoted_end(data, v + 1, open) {
                    edits.push(Edit {
                        start: v + 1,
                        end,
                        with: MASK.as_bytes().to_vec(),
                    });
                }
            }
            Some(b's') if data.get(v + 1) == Some(&b'(') => {
                let Some(close) = memchr::memchr(b')', &data[v..]).map(|c| v + c) else {
                    continue;
                };
                let Some(n) = std::str::from_utf8(&data[v + 2..close])
                    .ok()
                    .and_then(|s| s.parse::<usize>().ok())
                else {
                    continue;
                };
                if !matches!(data.get(close + 1), Some(b'"' | b'\'')) {
                    continue;
                }
                let start = close + 2;
                let Some(end) = start.checked_add(n).filter(|e| *e <= data.len()) else {
                    continue;
                };
                edits.push(Edit {
                    start,
                    end,
                    with: vec![b'*'; n],
                });
            }
            _ => {}
        }
    }
    apply(data, edits)
}

/// The index of the closing quote of a string whose content starts at `i`, honouring backslashes.
fn quoted_end(data: &[u8], mut i: usize, quote: u8) -> Option<usize> {
    while i < data.len() {
        match data[i] {
            b'\\' => i += 2,
            b if b == quote => return Some(i),
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(s: &str) -> String {
        String::from_utf8(mask_bytes(s.as_bytes()).expect("something masked")).unwrap()
    }

    #[test]
    fn xmlrpc_passwd_in_a_string_element() {
        let body = "<methodCall><params><param><value><struct>\
            <member><name>first</name><value><string>Ann</string></value></member>\
            <member><name>passwd</name><value><string>$1$0123456789abcdef</string></value></member>\
            </struct></value></param></params></methodCall>";
        let out = masked(body);
        assert!(!out.contains("0123456789abcdef"), "{out}");
        assert!(out.contains("<name>passwd</name><value><string>********</string></value>"));
        assert!(
            out.contains("<string>Ann</string>"),
            "other members stay: {out}"
        );
    }

    #[test]
    fn xmlrpc_passwd_as_direct_value_text_with_whitespace() {
        let body = "<member>\n <name>passwd</name>\n <value>$1$secret</value>\n</member>";
        assert_eq!(
            masked(body),
            "<member>\n <name>passwd</name>\n <value>********</value>\n</member>"
        );
    }

    #[test]
    fn xmlrpc_reply_secure_session_id() {
        let body = "<member><name>secure_session_id</name><value><string>1e2d3c4b-0000-1111-2222-333344445555</string></value></member>";
        let out = masked(body);
        assert!(!out.contains("1e2d3c4b"), "{out}");
    }

    #[test]
    fn llsd_xml_uuid_is_replaced_by_a_uuid() {
        let body = "<llsd><map><key>agent_id</key><uuid>11111111-2222-3333-4444-555555555555</uuid>\
            <key>secure_session_id</key><uuid>aaaaaaaa-2222-3333-4444-555555555555</uuid></map></llsd>";
        let out = masked(body);
        assert!(out.contains(&format!(
            "<key>secure_session_id</key><uuid>{MASKED_UUID}</uuid>"
        )));
        assert!(out.contains("11111111-2222-3333-4444-555555555555"));
        assert!(!out.contains("aaaaaaaa"));
    }

    #[test]
    fn llsd_xml_empty_element_is_left_alone() {
        assert!(mask_bytes(b"<map><key>secure_session_id</key><uuid /></map>").is_none());
    }

    #[test]
    fn llsd_binary_uuid_and_string_keep_their_length() {
        let mut body = b"{\0\0\0\x02".to_vec();
        body.extend_from_slice(b"k\0\0\0\x11secure_session_idu");
        body.extend_from_slice(&[0x12; 16]);
        body.extend_from_slice(b"k\0\0\0\x06passwds\0\0\0\x03abc}");
        let out = mask_bytes(&body).unwrap();
        assert_eq!(out.len(), body.len());
        assert!(!out.windows(16).any(|w| w == [0x12; 16]));
        assert!(out.windows(16).any(|w| w == [0xff; 16]));
        assert!(out.ends_with(b"s\0\0\0\x03***}"));
    }

    #[test]
    fn llsd_notation_forms() {
        let out = masked(
            "{'secure_session_id':u12345678-1234-1234-1234-123456789abc,\"passwd\":'x\\'y',\
             'mfa_hash':s(3)\"abc\",'other':'keep'}",
        );
        assert_eq!(
            out,
            format!(
                "{{'secure_session_id':u{MASKED_UUID},\"passwd\":'{MASK}',\
                 'mfa_hash':s(3)\"***\",'other':'keep'}}"
            )
        );
    }

    #[test]
    fn bodies_without_secrets_are_not_copied() {
        assert!(
            mask_bytes(b"<llsd><map><key>passwd_hint</key><string>x</string></map></llsd>")
                .is_none()
        );
        assert!(mask_bytes(b"plain text about secure_session_id").is_none());
    }

    #[test]
    fn secret_headers_keep_names_and_schemes() {
        assert_eq!(
            mask_header_value("Cookie", "a=1; b=2"),
            "a=********; b=********"
        );
        assert_eq!(
            mask_header_value("set-cookie", "sid=xyz; Path=/; HttpOnly"),
            "sid=********; Path=/; HttpOnly"
        );
        assert_eq!(
            mask_header_value("Authorization", "Bearer abc.def"),
            "Bearer ********"
        );
        assert_eq!(mask_header_value("Proxy-Authorization", "abc"), "********");
        let hs = vec![
            Header {
                name: "Host".into(),
                value: "h".into(),
            },
            Header {
                name: "COOKIE".into(),
                value: "k=v".into(),
            },
        ];
        let out = mask_headers(&hs).unwrap();
        assert_eq!(out[0].value, "h");
        assert_eq!(out[1].value, "k=********");
        assert!(mask_headers(&hs[..1]).is_none());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_bytes_mask_without_panicking(
                prefix in proptest::collection::vec(any::<u8>(), 0..64),
                field in proptest::sample::select(SECRET_FIELDS),
                suffix in proptest::collection::vec(any::<u8>(), 0..64),
            ) {
                // Arbitrary bytes around a secret field name, in each of the shapes the maskers look for.
                for middle in [
                    format!("<name>{field}</name>"),
                    format!("<key>{field}</key>"),
                    format!("'{field}':"),
                    format!("k\0\0\0{}{field}", char::from(field.len() as u8)),
                ] {
                    let mut body = prefix.clone();
                    body.extend_from_slice(middle.as_bytes());
                    body.extend_from_slice(&suffix);
                    let _ = mask_bytes(&body);
                }
            }

            #[test]
            fn generated_secrets_never_survive(
                secret in "[A-Za-z0-9$]{8,40}",
                field in proptest::sample::select(SECRET_FIELDS),
                ws in "[ \n\t]{0,3}",
            ) {
                for body in [
                    format!("<member>{ws}<name>{field}</name>{ws}<value>{ws}<string>{secret}</string></value></member>"),
                    format!("<member><name>{field}</name><value>{secret}</value></member>"),
                    format!("<map><key>{field}</key>{ws}<string>{secret}</string></map>"),
                    format!("{{'{field}':{ws}'{secret}'}}"),
                    format!("{{\"{field}\":s({})\"{secret}\"}}", secret.len()),
                ] {
                    let out = mask_bytes(body.as_bytes()).expect("masked");
                    let out = String::from_utf8(out).unwrap();
                    prop_assert!(!out.contains(&secret), "{body} -> {out}");
                }
            }
        }
    }
}
