//! In-place replacement of URL strings inside LLSD bytes, in any of the three formats, so a rewritten
//! body differs from the original only where a URL changed (the format, the value's type and every
//! other byte are kept).
//!
//! The technique: the caller decodes the body, decides which string values change (in wire order),
//! and builds the value it expects after the change. Here each old value's encoded form is looked for
//! in the raw bytes (XML text between tags, binary `s`/`l` + length + bytes, notation quoted, `s(N)` or
//! `l"..."` forms) and swapped for the new one encoded the same way. The result is decoded again and
//! compared with the expected value; if a form cannot be found or the check fails, the whole value is
//! re-encoded in the same format and the outcome says why.
//!
//! Owns byte-level splicing only; it knows nothing of caps or which strings to change.

use super::xmlrpc::escape_text;
use crate::llsd::{self, Format, Value};

/// One string value to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub old: String,
    pub new: String,
    /// Whether the value is an LLSD `uri` (else a `string`); the type is kept.
    pub uri: bool,
}

impl Edit {
    /// The new value, of the same LLSD type as the old one.
    pub fn new_value(&self) -> Value {
        if self.uri {
            Value::Uri(self.new.clone())
        } else {
            Value::String(self.new.clone())
        }
    }
}

/// How a splice went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Only the edited values' bytes changed.
    InPlace,
    /// The whole value was written anew in the same format, for this reason.
    ReEncoded(String),
}

/// Applies `edits` (in wire order) to `raw`, which is LLSD in `format`; `expected` is the decoded
/// value with the edits made. Returns the new bytes and how they were made.
pub fn splice(raw: &[u8], format: Format, edits: &[Edit], expected: &Value) -> (Vec<u8>, Outcome) {
    match splice_in_place(raw, format, edits) {
        Ok(bytes) => match llsd::from_slice_as(&bytes, format) {
            Ok(v) if v.same(expected) => (bytes, Outcome::InPlace),
            Ok(_) => (
                llsd::to_vec(expected, format),
                Outcome::ReEncoded("the in-place edit did not decode to the expected value".into()),
            ),
            Err(e) => (
                llsd::to_vec(expected, format),
                Outcome::ReEncoded(format!("the in-place edit did not decode: {e}")),
            ),
        },
        Err(reason) => (llsd::to_vec(expected, format), Outcome::ReEncoded(reason)),
    }
}

fn splice_in_place(raw: &[u8], format: Format, edits: &[Edit]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(raw.len() + edits.len() * 64);
    let mut cursor = 0;
    for edit in edits {
        let mut best: Option<(usize, usize, Vec<u8>)> = None;
        for (pattern, replacement) in forms(format, edit) {
            // Only an earlier match than the best so far matters.
            let limit = best
                .as_ref()
                .map_or(raw.len(), |(s, _, _)| (*s + pattern.len()).min(raw.len()));
            if let Some(at) = memchr::memmem::find(&raw[cursor..limit], &pattern) {
                let start = cursor + at;
                if best.as_ref().is_none_or(|(s, _, _)| start < *s) {
                    best = Some((start, start + pattern.len(), replacement));
                }
            }
        }
        let Some((start, end, replacement)) = best else {
            return Err(format!(
                "the encoded form of {:?} was not found in the {format} body",
                edit.old
            ));
        };
        out.extend_from_slice(&raw[cursor..start]);
        out.extend_from_slice(&replacement);
        cursor = end;
    }
    out.extend_from_slice(&raw[cursor..]);
    Ok(out)
}

/// Every way `edit.old` may be written in `format`, each with `edit.new` written the same way.
fn forms(format: Format, edit: &Edit) -> Vec<(Vec<u8>, Vec<u8>)> {
    let (old, new) = (edit.old.as_str(), edit.new.as_str());
    let mut forms: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    match format {
        Format::Xml => {
            for escape in [escape_text as fn(&str) -> String, xml_full, xml_amp_lt] {
                forms.push((
                    [b">", escape(old).as_bytes(), b"<"].concat(),
                    [b">", escape(new).as_bytes(), b"<"].concat(),
                ));
            }
            forms.push((
                [b"<![CDATA[", old.as_bytes(), b"]]>"].concat(),
                [b"<![CDATA[", new.as_bytes(), b"]]>"].concat(),
            ));
        }
        Format::Binary => {
            let tag = if edit.uri { b'l' } else { b's' };
            if let (Ok(old_len), Ok(new_len)) = (u32::try_from(old.len()), u32::try_from(new.len()))
            {
                forms.push((
                    [&[tag][..], &old_len.to_be_bytes(), old.as_bytes()].concat(),
                    [&[tag][..], &new_len.to_be_bytes(), new.as_bytes()].concat(),
                ));
            }
        }
        Format::Notation => {
            if edit.uri {
                forms.push((
                    format!("l\"{}\"", notation_escape(old, '"')).into_bytes(),
                    format!("l\"{}\"", notation_escape(new, '"')).into_bytes(),
                ));
            } else {
                for quote in ['"', '\''] {
                    forms.push((
                        format!("{quote}{}{quote}", notation_escape(old, quote)).into_bytes(),
                        format!("{quote}{}{quote}", notation_escape(new, quote)).into_bytes(),
                    ));
                }
                forms.push((
                    format!("s({})\"{old}\"", old.len()).into_bytes(),
                    format!("s({})\"{new}\"", new.len()).into_bytes(),
                ));
            }
        }
    }
    forms.dedup();
    forms
}

fn xml_escape(text: &str, quotes: bool, gt: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' if gt => out.push_str("&gt;"),
            '"' if quotes => out.push_str("&quot;"),
            '\'' if quotes => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

fn xml_full(text: &str) -> String {
    xml_escape(text, true, true)
}

fn xml_amp_lt(text: &str) -> String {
    xml_escape(text, false, false)
}

fn notation_escape(text: &str, quote: char) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '\\' || c == quote {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llsd::Map;

    fn edit(old: &str, new: &str, uri: bool) -> Edit {
        Edit {
            old: old.into(),
            new: new.into(),
            uri,
        }
    }

    #[test]
    fn xml_escaped_text_is_replaced_and_the_rest_kept() {
        let raw = b"<?xml version=\"1.0\" ?>\n<llsd><map><key>A</key><string>http://h/a?x=1&amp;y=2</string>\n  <key>B</key><uri>http://h/b</uri></map></llsd>";
        let expected = Value::Map(Map(vec![
            ("A".into(), Value::String("http://p/cap/1".into())),
            ("B".into(), Value::Uri("http://p/cap/2&".into())),
        ]));
        let (out, how) = splice(
            raw,
            Format::Xml,
            &[
                edit("http://h/a?x=1&y=2", "http://p/cap/1", false),
                edit("http://h/b", "http://p/cap/2&", true),
            ],
            &expected,
        );
        assert_eq!(how, Outcome::InPlace);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<?xml version=\"1.0\" ?>\n<llsd><map><key>A</key><string>http://p/cap/1</string>\n  <key>B</key><uri>http://p/cap/2&amp;</uri></map></llsd>"
        );
    }

    #[test]
    fn binary_and_notation_forms_keep_their_type_and_length_prefix() {
        let value = Value::Map(Map(vec![
            ("S".into(), Value::String("http://h/s".into())),
            ("U".into(), Value::Uri("http://h/u".into())),
        ]));
        let expected = Value::Map(Map(vec![
            ("S".into(), Value::String("http://proxy/cap/s".into())),
            ("U".into(), Value::Uri("http://proxy/cap/u".into())),
        ]));
        let edits = [
            edit("http://h/s", "http://proxy/cap/s", false),
            edit("http://h/u", "http://proxy/cap/u", true),
        ];
        for format in Format::ALL {
            let raw = llsd::to_vec(&value, format);
            let (out, how) = splice(&raw, format, &edits, &expected);
            assert_eq!(how, Outcome::InPlace, "{format}");
            assert!(llsd::from_slice_as(&out, format).unwrap().same(&expected));
            assert_eq!(
                out.len(),
                raw.len() + 16,
                "{format}: only the two URLs grew"
            );
        }
        // Notation's other string forms.
        let raw = b"{'S':s(10)\"http://h/s\",'T':'http://h/t'}";
        let expected = Value::Map(Map(vec![
            ("S".into(), Value::String("http://x".into())),
            ("T".into(), Value::String("http://y".into())),
        ]));
        let (out, how) = splice(
            raw,
            Format::Notation,
            &[
                edit("http://h/s", "http://x", false),
                edit("http://h/t", "http://y", false),
            ],
            &expected,
        );
        assert_eq!(how, Outcome::InPlace);
        assert_eq!(&out[..], b"{'S':s(8)\"http://x\",'T':'http://y'}");
    }

    #[test]
    fn a_form_not_found_falls_back_to_re_encoding() {
        // The URL is split by a character reference the patterns do not cover.
        let raw = b"<llsd><map><key>A</key><string>http&#58;//h/a</string></map></llsd>";
        let expected = Value::Map(Map(vec![("A".into(), Value::String("http://p/1".into()))]));
        let (out, how) = splice(
            raw,
            Format::Xml,
            &[edit("http://h/a", "http://p/1", false)],
            &expected,
        );
        assert!(
            matches!(how, Outcome::ReEncoded(ref r) if r.contains("not found")),
            "{how:?}"
        );
        assert!(llsd::from_slice(&out).unwrap().same(&expected));
    }

    #[test]
    fn the_same_url_twice_is_replaced_twice_in_order() {
        let raw =
            b"<llsd><array><string>http://h/a</string><string>http://h/a</string></array></llsd>";
        let expected = Value::Array(vec![
            Value::String("http://p/1".into()),
            Value::String("http://p/1".into()),
        ]);
        let e = edit("http://h/a", "http://p/1", false);
        let (out, how) = splice(raw, Format::Xml, &[e.clone(), e], &expected);
        assert_eq!(how, Outcome::InPlace);
        assert_eq!(
            &out[..],
            &b"<llsd><array><string>http://p/1</string><string>http://p/1</string></array></llsd>"
                [..]
        );
    }
}
