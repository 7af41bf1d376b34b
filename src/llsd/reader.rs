//! A cursor over an input slice for the binary and notation decoders, in the style of rustls'
//! `codec::Reader`: every read checks the bytes left first, and [`Reader::take`] only ever borrows
//! bytes that are present, so a length field from the wire can never make us allocate or read past
//! the end.
//!
//! Owns bounds checking, and the one nesting check every decoder makes ([`check_depth`]); knows
//! nothing of LLSD types.

use super::error::{Error, ErrorKind, Found};
use super::MAX_DEPTH;

/// A position in a borrowed byte slice.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Offset of the next byte from the start of the input.
    #[inline]
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes not yet read.
    #[inline]
    pub(crate) fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The unread rest of the input, without consuming it.
    #[inline]
    pub(crate) fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    #[inline]
    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// The next byte, without consuming it.
    #[inline]
    pub(crate) fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// Consumes one byte; `what` names the thing being read for the error.
    #[inline]
    pub(crate) fn byte(&mut self, what: &'static str) -> Result<u8, Error> {
        match self.buf.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => Err(self.eof(what)),
        }
    }

    /// Borrows the next `n` bytes if they are all present; otherwise an error and nothing consumed.
    #[inline]
    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Error> {
        if n > self.left() {
            return Err(Error::new(self.buf.len(), ErrorKind::UnexpectedEof(what)));
        }
        let start = self.pos;
        self.pos += n;
        Ok(&self.buf[start..self.pos])
    }

    /// The next `N` bytes as an array.
    #[inline]
    pub(crate) fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], Error> {
        let bytes = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// Skips `n` bytes the caller has already looked at (never past the end).
    #[inline]
    pub(crate) fn advance(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
    }

    /// Skips ASCII whitespace.
    #[inline]
    pub(crate) fn skip_ws(&mut self) {
        while let Some(b) = self.buf.get(self.pos) {
            if !is_ws(*b) {
                break;
            }
            self.pos += 1;
        }
    }

    /// An error at the current position.
    #[inline]
    pub(crate) fn err(&self, kind: ErrorKind) -> Error {
        Error::new(self.pos, kind)
    }

    /// "Unexpected end of input" at the end of the input.
    #[inline]
    pub(crate) fn eof(&self, what: &'static str) -> Error {
        Error::new(self.buf.len(), ErrorKind::UnexpectedEof(what))
    }

    /// "Unexpected byte" for the byte at `at` (or end of input).
    pub(crate) fn unexpected_at(
        &self,
        at: usize,
        context: &'static str,
        expected: &'static str,
    ) -> Error {
        let found = Found::from(self.buf.get(at).copied());
        if found == Found::End {
            return Error::new(self.buf.len(), ErrorKind::UnexpectedEof(context));
        }
        Error::new(
            at,
            ErrorKind::Unexpected {
                found,
                context,
                expected,
            },
        )
    }
}

/// The nesting check of all three decoders: a container opened at byte `at` with `depth`
/// containers around it is an error ([`ErrorKind::TooDeep`]) once `depth` reaches [`MAX_DEPTH`].
#[inline]
pub(crate) fn check_depth(at: usize, depth: usize) -> Result<(), Error> {
    if depth >= MAX_DEPTH {
        return Err(Error::new(at, ErrorKind::TooDeep { limit: MAX_DEPTH }));
    }
    Ok(())
}

/// ASCII whitespace as the reference's `isspace()` sees it (space, \t, \n, \v, \f, \r).
#[inline]
pub(crate) fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Skips a `<? llsd/NAME ?>` header (any case, any whitespace inside and around, as the reference
/// matches it) at the start of `bytes`; returns how many bytes it covers, or `None` when there is no
/// such header. `name` is lowercase, e.g. `b"llsd/binary"`.
pub(crate) fn header_len(bytes: &[u8], name: &[u8]) -> Option<usize> {
    let mut i = 0;
    let skip = |i: &mut usize| {
        while bytes.get(*i).is_some_and(|b| is_ws(*b)) {
            *i += 1;
        }
    };
    skip(&mut i);
    for chunk in [&b"<?"[..], name, b"?>"] {
        skip(&mut i);
        let got = bytes.get(i..i + chunk.len())?;
        if !got.eq_ignore_ascii_case(chunk) {
            return None;
        }
        i += chunk.len();
    }
    skip(&mut i);
    Some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_never_borrows_missing_bytes() {
        let mut r = Reader::new(b"abc");
        assert_eq!(r.take(2, "t").unwrap(), b"ab");
        let e = r.take(usize::MAX, "big").unwrap_err();
        assert_eq!(e.offset(), 3);
        assert_eq!(r.pos(), 2, "a failed take consumes nothing");
        assert_eq!(r.take(1, "t").unwrap(), b"c");
        assert!(r.at_end());
        assert!(r.byte("b").is_err());
    }

    #[test]
    fn depth_limit_is_max_depth_containers() {
        assert!(check_depth(7, MAX_DEPTH - 1).is_ok());
        let e = check_depth(7, MAX_DEPTH).unwrap_err();
        assert_eq!(e.offset(), 7);
        assert_eq!(e.kind(), &ErrorKind::TooDeep { limit: MAX_DEPTH });
    }

    #[test]
    fn headers_any_case_and_spacing() {
        assert_eq!(header_len(b"<?llsd/binary?>\n!", b"llsd/binary"), Some(16));
        assert_eq!(
            header_len(b"<? LLSD/Binary ?>\n!", b"llsd/binary"),
            Some(18)
        );
        assert_eq!(
            header_len(b"  <?  llsd/binary  ?>!", b"llsd/binary"),
            Some(21)
        );
        assert_eq!(header_len(b"<?llsd/notation?>", b"llsd/notation"), Some(17));
        assert_eq!(header_len(b"<?llsd/bin", b"llsd/binary"), None);
        assert_eq!(header_len(b"!", b"llsd/binary"), None);
    }
}
