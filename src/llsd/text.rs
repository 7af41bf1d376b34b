//! Scalar spellings shared by the two text formats (XML and notation): dates, reals, integers,
//! base64 and base16.
//!
//! Owns the text form of scalars only; no container syntax, no I/O.

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;

use crate::util::time;

/// Base64 as LLSD writers produce it: standard alphabet; on reading, padding optional and stray
/// trailing bits accepted (the reference's decoder is just as forgiving).
pub(crate) const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Decodes base64, ignoring ASCII whitespace (pretty writers wrap long lines). `None` when invalid.
pub(crate) fn decode_base64(text: &[u8]) -> Option<Vec<u8>> {
    if text.iter().any(|b| b.is_ascii_whitespace()) {
        let compact: Vec<u8> = text
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        BASE64.decode(compact).ok()
    } else {
        BASE64.decode(text).ok()
    }
}

/// Decodes base16 (either case, whitespace ignored). `None` when invalid.
pub(crate) fn decode_base16(text: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 2);
    let mut high: Option<u8> = None;
    for &b in text {
        if b.is_ascii_whitespace() {
            continue;
        }
        let nibble = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => return None,
        };
        match high.take() {
            Some(h) => out.push(h << 4 | nibble),
            None => high = Some(nibble),
        }
    }
    if high.is_some() {
        return None;
    }
    Some(out)
}

/// Appends the decimal form of `i`.
#[inline]
pub(crate) fn push_integer(out: &mut Vec<u8>, i: i32) {
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(i).as_bytes());
}

/// Appends a real spelled as the reference (Python's `repr`) spells it: shortest round-trip digits,
/// fixed notation for exponents -4..16 (always with a fraction, `1.0`), otherwise `1e+300` /
/// `5e-324` with a sign and at least two exponent digits; `nan`, `inf`, `-inf` in lowercase.
pub(crate) fn push_real(out: &mut Vec<u8>, r: f64) {
    if r.is_nan() {
        out.extend_from_slice(b"nan");
        return;
    }
    if r.is_infinite() {
        out.extend_from_slice(if r > 0.0 { b"inf" } else { b"-inf" });
        return;
    }
    // LowerExp gives the shortest round-trip digits: "-1.5e-7", "0e0", "1e16".
    let sci = format!("{r:e}");
    let (negative, body) = match sci.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, sci.as_str()),
    };
    let (mantissa, exp) = body.split_once('e').unwrap_or((body, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    if negative {
        out.push(b'-');
    }
    if (-4..16).contains(&exp) {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            for i in 0..int_len {
                out.push(*digits.get(i).unwrap_or(&b'0'));
            }
            out.push(b'.');
            match digits.get(int_len..) {
                Some(frac) if !frac.is_empty() => out.extend_from_slice(frac),
                _ => out.push(b'0'),
            }
        } else {
            out.extend_from_slice(b"0.");
            for _ in 0..(-exp - 1) {
                out.push(b'0');
            }
            out.extend_from_slice(&digits);
        }
    } else {
        out.push(digits[0]);
        if digits.len() > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        out.push(if exp < 0 { b'-' } else { b'+' });
        let e = exp.unsigned_abs();
        if e < 10 {
            out.push(b'0');
        }
        let mut buf = itoa::Buffer::new();
        out.extend_from_slice(buf.format(e).as_bytes());
    }
}

/// Parses a real: decimal with optional exponent, or `nan` / `inf` / `infinity` in any case with an
/// optional sign. `None` when it is none of those.
pub(crate) fn parse_real(text: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(text).ok()?;
    s.parse::<f64>().ok()
}

/// Seconds from the epoch to 0001-01-01T00:00:00Z and to 10000-01-01T00:00:00Z: the range a
/// `YYYY-MM-DD` spelling can carry.
const MIN_ISO_SECS: f64 = -62_135_596_800.0;
const END_ISO_SECS: f64 = 253_402_300_800.0;

/// The whole seconds and the fraction of a date that has an ISO 8601 spelling with a four-digit
/// year and whose fraction reads back exactly (whole + fraction == secs); `None` otherwise.
fn iso_parts(secs: f64) -> Option<(i64, f64)> {
    if !secs.is_finite() {
        return None;
    }
    let whole = secs.floor();
    if !(MIN_ISO_SECS..END_ISO_SECS).contains(&whole) {
        return None;
    }
    let frac = secs - whole;
    // For tiny negative dates `frac` rounds up to 1.0: such a date has no exact ISO spelling.
    if frac >= 1.0 || whole + frac != secs {
        return None;
    }
    // In range by the check above, so the cast is exact.
    Some((whole as i64, frac))
}

/// Whether a date (seconds since the epoch) is written in ISO 8601 form (see [`push_date`]).
pub(crate) fn date_has_iso_form(secs: f64) -> bool {
    iso_parts(secs).is_some()
}

/// Appends `bytes` as padded base64 (the form both text formats write binary values in).
pub(crate) fn push_base64(out: &mut Vec<u8>, bytes: &[u8]) {
    use base64::Engine as _;
    let start = out.len();
    out.resize(start + bytes.len().div_ceil(3) * 4, 0);
    // Sized for the padded encoding just above, so this cannot fail.
    let n = BASE64.encode_slice(bytes, &mut out[start..]).unwrap_or(0);
    out.truncate(start + n);
}

/// Appends a date as `YYYY-MM-DDTHH:MM:SS[.f]Z`. The fraction, when there is one, is written with
/// as many digits as it takes to read back the same f64 exactly (the reference writes 6 digits,
/// which loses precision; readers accept any number of digits). A date without such a spelling
/// (non-finite, a year outside 1..=9999, or a fraction too close to a whole second to survive)
/// is written as its number of seconds instead; see docs/llsd.md.
pub(crate) fn push_date(out: &mut Vec<u8>, secs: f64) {
    use std::io::Write as _;
    let Some((whole, frac)) = iso_parts(secs) else {
        push_real(out, secs);
        return;
    };
    let Some(c) = time::civil(whole) else {
        // Unreachable: `iso_parts` keeps to the years 1..=9999, all of which have fields.
        push_real(out, secs);
        return;
    };
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    );
    if frac > 0.0 {
        let digits = format!("{frac}");
        // `frac` is in (0, 1), so Display gives "0.ddd"; keep ".ddd".
        out.extend_from_slice(digits.get(1..).unwrap_or("").as_bytes());
    }
    out.push(b'Z');
}

/// Parses a date: empty (the epoch), `YYYY-MM-DDTHH:MM:SS[.f][Z]`, or, for dates that have no ISO
/// spelling only, a number of seconds (what [`push_date`] writes for those). `None` when invalid.
pub(crate) fn parse_date(text: &[u8]) -> Option<f64> {
    if text.is_empty() {
        return Some(0.0);
    }
    if let Some(secs) = parse_iso_date(text) {
        return Some(secs);
    }
    let secs = parse_real(text)?;
    // Only dates that cannot be spelled in ISO form may be numbers, so "2006" stays an error.
    (!date_has_iso_form(secs)).then_some(secs)
}

fn digits(text: &[u8], at: usize, n: usize) -> Option<i64> {
    let part = text.get(at..at + n)?;
    let mut v: i64 = 0;
    for &b in part {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(b - b'0');
    }
    Some(v)
}

fn parse_iso_date(t: &[u8]) -> Option<f64> {
    // YYYY-MM-DDTHH:MM:SS
    // 0123456789012345678
    if t.len() < 19 || t[4] != b'-' || t[7] != b'-' || t[10] != b'T' || t[13] != b':' {
        return None;
    }
    if t[16] != b':' {
        return None;
    }
    // Each field is at most four digits, so every conversion below is exact.
    let field = |at, n| digits(t, at, n).and_then(|v| u8::try_from(v).ok());
    let civil = time::Civil {
        year: i32::try_from(digits(t, 0, 4)?).ok()?,
        month: field(5, 2)?,
        day: field(8, 2)?,
        hour: field(11, 2)?,
        minute: field(14, 2)?,
        second: field(17, 2)?,
    };
    // `None` for a date that does not exist (2023-02-29, 24:00:00, a leap second).
    let whole = time::unix_secs(civil)?;
    let mut rest = &t[19..];
    let mut frac = 0.0;
    if let Some(after_dot) = rest.strip_prefix(b".") {
        let n = after_dot.iter().take_while(|b| b.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        let mut s = String::with_capacity(n + 2);
        s.push_str("0.");
        // ASCII digits, checked above.
        s.extend(after_dot[..n].iter().map(|&b| b as char));
        frac = s.parse::<f64>().ok()?;
        rest = &after_dot[n..];
    }
    if !(rest.is_empty() || rest == b"Z") {
        return None;
    }
    Some(whole as f64 + frac)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date_text(secs: f64) -> String {
        let mut v = Vec::new();
        push_date(&mut v, secs);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn dates_match_the_reference_spelling() {
        assert_eq!(date_text(1_138_804_193.0), "2006-02-01T14:29:53Z");
        assert_eq!(date_text(0.0), "1970-01-01T00:00:00Z");
        assert_eq!(date_text(-1.0), "1969-12-31T23:59:59Z");
        assert_eq!(date_text(951_782_400.0), "2000-02-29T00:00:00Z");
        assert_eq!(date_text(1_138_804_193.5), "2006-02-01T14:29:53.5Z");
    }

    #[test]
    fn impossible_dates_are_refused_and_real_ones_read() {
        for bad in [
            "2023-02-29T00:00:00Z",
            "2024-02-30T00:00:00Z",
            "2024-04-31T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-00-01T00:00:00Z",
            "2024-01-00T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T23:60:00Z",
            "2024-01-01T23:59:60Z",
            "2024-01-01 00:00:00Z",
            "2024-1-01T00:00:00Z",
            "2024-01-01T00:00:00+01:00",
            "2024-01-01T00:00:00.Z",
            "+024-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_date(bad.as_bytes()), None, "{bad}");
        }
        assert_eq!(parse_date(b"2024-02-29T23:59:59Z"), Some(1_709_251_199.0));
        assert_eq!(parse_date(b"2000-02-29T00:00:00"), Some(951_782_400.0));
        assert_eq!(parse_date(b"0001-01-01T00:00:00Z"), Some(MIN_ISO_SECS));
        assert_eq!(
            parse_date(b"9999-12-31T23:59:59.5Z"),
            Some(END_ISO_SECS - 0.5)
        );
    }

    #[test]
    fn dates_read_back_exactly() {
        for secs in [
            0.0,
            1_138_804_193.0,
            1_138_804_193.123_456,
            -12_345.678_9,
            1e-7,
            MIN_ISO_SECS,
            END_ISO_SECS - 0.25,
        ] {
            let text = date_text(secs);
            assert_eq!(parse_date(text.as_bytes()), Some(secs), "{text}");
        }
        for secs in [f64::NAN, f64::INFINITY, -1e300, END_ISO_SECS, -3.28e-271] {
            let text = date_text(secs);
            let back = parse_date(text.as_bytes()).unwrap();
            assert!(back == secs || (back.is_nan() && secs.is_nan()), "{text}");
        }
    }

    #[test]
    fn date_forms_accepted_and_rejected() {
        assert_eq!(parse_date(b""), Some(0.0));
        assert_eq!(parse_date(b"2006-02-01T14:29:53"), Some(1_138_804_193.0));
        assert_eq!(
            parse_date(b"2006-02-01T14:29:53.250000Z"),
            Some(1_138_804_193.25)
        );
        assert_eq!(parse_date(b"2006"), None, "in-range dates must be ISO");
        assert_eq!(parse_date(b"2006-02-30T00:00:00Z"), None);
        assert_eq!(parse_date(b"2006-02-01T24:00:00Z"), None);
        assert_eq!(parse_date(b"2006-02-01T14:29:53.Z"), None);
        assert_eq!(parse_date(b"2006-02-01T14:29:53Zjunk"), None);
    }

    #[test]
    fn reals_spelled_for_other_readers() {
        let text = |r: f64| {
            let mut v = Vec::new();
            push_real(&mut v, r);
            String::from_utf8(v).unwrap()
        };
        assert_eq!(text(f64::NAN), "nan");
        assert_eq!(text(f64::NEG_INFINITY), "-inf");
        assert_eq!(text(1.5), "1.5");
        assert_eq!(text(-0.0), "-0.0");
        assert_eq!(text(0.0), "0.0");
        assert_eq!(text(100.0), "100.0");
        assert_eq!(text(1e300), "1e+300");
        assert_eq!(text(5e-324), "5e-324");
        assert_eq!(text(1e16), "1e+16");
        assert_eq!(text(1e15), "1000000000000000.0");
        assert_eq!(text(0.0001), "0.0001");
        assert_eq!(text(1e-5), "1e-05");
        assert_eq!(text(-1.25e-7), "-1.25e-07");
        assert_eq!(text(123_456_789.125), "123456789.125");
        for r in [1e300, 5e-324, 1e-5, 0.1, 1.0 / 3.0, -2.5e21, 6.02e23] {
            assert_eq!(
                parse_real(&{
                    let mut v = Vec::new();
                    push_real(&mut v, r);
                    v
                }),
                Some(r)
            );
        }
        assert_eq!(parse_real(b"1e+300"), Some(1e300));
        assert_eq!(parse_real(b"-Infinity"), Some(f64::NEG_INFINITY));
        assert!(parse_real(b"NaN").unwrap().is_nan());
        assert_eq!(parse_real(b"1.5x"), None);
    }

    #[test]
    fn base16_and_base64_leniency() {
        assert_eq!(decode_base16(b"0aFf"), Some(vec![0x0a, 0xff]));
        assert_eq!(decode_base16(b"0aF"), None);
        assert_eq!(decode_base16(b"zz"), None);
        assert_eq!(decode_base64(b"yA8F\nSA=="), Some(vec![200, 15, 5, 72]));
        assert_eq!(decode_base64(b"yA8FSA"), Some(vec![200, 15, 5, 72]));
        assert_eq!(decode_base64(b"y!"), None);
    }
}
