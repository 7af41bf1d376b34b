//! The one error type of the LLSD codecs: what went wrong ([`ErrorKind`]) and the byte offset in the
//! input where it was noticed.
//!
//! Owns error reporting for the codecs only; it knows nothing of HTTP or of the callers.

use std::fmt;

/// A decoding failure: its kind and the byte offset (from the start of the input given to the
/// decoder) where it was noticed. `Display` reads like `unexpected end of input in a string at byte 12`.
///
/// Boxed, so an `Error` is one pointer: every decoder step returns a `Result`, and a wide error
/// (offset plus the largest [`ErrorKind`], 48 bytes) made each `Result<Value, Error>` that much
/// wider to move on the hot path, while an error happens at most once per decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(Box<Inner>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Inner {
    offset: usize,
    kind: ErrorKind,
}

impl Error {
    /// An error of `kind` noticed at `offset`.
    #[cold]
    pub fn new(offset: usize, kind: ErrorKind) -> Self {
        Self(Box::new(Inner { offset, kind }))
    }

    /// The byte offset in the input where the error was noticed.
    pub fn offset(&self) -> usize {
        self.0.offset
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.0.kind
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.0.kind, self.0.offset)
    }
}

impl std::error::Error for Error {}

/// What an LLSD decoder (or the typed JSON reader) found wrong with its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input ended in the middle of something.
    #[error("unexpected end of input in {0}")]
    UnexpectedEof(&'static str),
    /// Containers nested deeper than [`MAX_DEPTH`](super::MAX_DEPTH).
    #[error("nesting deeper than {limit} levels")]
    TooDeep { limit: usize },
    /// A byte that cannot start or continue what was being read.
    #[error("unexpected {found} in {context} (expected {expected})")]
    Unexpected {
        found: Found,
        context: &'static str,
        expected: &'static str,
    },
    /// A binary LLSD type tag that does not exist.
    #[error("unknown binary type tag {0}")]
    UnknownTag(Found),
    /// A length or count field below zero.
    #[error("negative length {0}")]
    NegativeLength(i64),
    /// A length in notation (`s(N)`, `b(N)`) that is not a number or too large.
    #[error("invalid length {0:?}")]
    InvalidLength(String),
    /// A binary array or map that has fewer or more entries than its count says.
    #[error("{container} count says {expected} entries but {found}")]
    CountMismatch {
        container: &'static str,
        expected: u32,
        found: &'static str,
    },
    /// Text that should be UTF-8 is not.
    #[error("invalid UTF-8 in {0}")]
    InvalidUtf8(&'static str),
    /// An integer that is not a decimal number.
    #[error("invalid integer {0:?}")]
    InvalidInteger(String),
    /// An integer outside the 32-bit range LLSD integers have.
    #[error("integer {0} does not fit in 32 bits")]
    IntegerOutOfRange(String),
    /// A real that is not a number.
    #[error("invalid real {0:?}")]
    InvalidReal(String),
    /// A uuid that is not 32 hex digits in the usual form.
    #[error("invalid uuid {0:?}")]
    InvalidUuid(String),
    /// A date that is not `YYYY-MM-DDTHH:MM:SS[.fff]Z` (or a number of seconds).
    #[error("invalid date {0:?}")]
    InvalidDate(String),
    /// A boolean that is none of the accepted spellings.
    #[error("invalid boolean {0:?}")]
    InvalidBoolean(String),
    /// Base64 or base16 text that does not decode.
    #[error("invalid {encoding} data")]
    InvalidEncoding { encoding: &'static str },
    /// A binary encoding LLSD names but this codec does not read (base85).
    #[error("unsupported binary encoding {0:?}")]
    UnsupportedEncoding(String),
    /// Something after the one top-level value.
    #[error("trailing data after the value")]
    TrailingData,
    /// The input is empty (or only whitespace).
    #[error("empty input")]
    Empty,
    /// The bytes are none of the three LLSD formats.
    #[error("not LLSD (no XML <llsd> root, binary or notation value found)")]
    NotLlsd,
    /// The XML layer failed (not well-formed XML).
    #[error("malformed XML: {0}")]
    Xml(String),
    /// An XML element that LLSD does not define.
    #[error("unknown element <{0}>")]
    UnknownElement(String),
    /// An XML element where LLSD does not allow it.
    #[error("unexpected element <{found}> in {context}")]
    UnexpectedElement {
        found: String,
        context: &'static str,
    },
    /// Text where only elements may appear.
    #[error("unexpected text {0:?} in {1}")]
    UnexpectedText(String, &'static str),
    /// The XML document's root is not `<llsd>`.
    #[error("the XML root element is <{0}>, not <llsd>")]
    NotLlsdRoot(String),
    /// A map `<key>` without a value after it.
    #[error("map key {0:?} has no value")]
    MissingValue(String),
    /// Typed JSON that does not have the typed shape (`{"type": value}`); the string is the JSON path.
    #[error("typed JSON at {path}: {problem}")]
    TypedJson { path: String, problem: String },
}

/// A byte (or end of input) shown in an error message: printable ASCII as itself, others in hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    Byte(u8),
    End,
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Found::Byte(b) if b.is_ascii_graphic() || *b == b' ' => write!(f, "'{}'", *b as char),
            Found::Byte(b) => write!(f, "byte 0x{b:02x}"),
            Found::End => f.write_str("end of input"),
        }
    }
}

impl From<Option<u8>> for Found {
    fn from(b: Option<u8>) -> Self {
        b.map_or(Found::End, Found::Byte)
    }
}

/// Shortens text copied from the input into an error message (hostile input can be long).
pub(crate) fn snippet(bytes: &[u8]) -> String {
    const MAX: usize = 40;
    let cut = &bytes[..bytes.len().min(MAX)];
    let mut s = String::from_utf8_lossy(cut).into_owned();
    if bytes.len() > MAX {
        s.push('…');
    }
    s
}
