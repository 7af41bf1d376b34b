//! The capture reader: opens plain or zstd captures of any known format version and yields records.
//!
//! Older format versions are brought up to date line by line through a chain of migrations,
//! [`MIGRATIONS`]`[i]` turning version `i + 1` into version `i + 2` (mitmproxy's `io/compat.py` idea).
//! A capture whose writer was killed is read up to its last complete record: a torn last line, bodies
//! cut short after the last line, or a zstd stream that stops early, is reported as a [`Warning`],
//! not an error. Reading blocks while the input does (`view --follow` waits at the end of a file
//! still being written), so a record being written is waited for, never reported as damaged. No line
//! longer than [`MAX_LINE_BYTES`], and no bodies larger than [`MAX_RAW_BYTES`] after one line, are
//! held in memory: they are skipped with a warning.
//!
//! This module owns reading; it must not write captures or interpret bodies.

use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use bytes::Bytes;

use super::line::{self, RawLens};
use super::{
    CaptureError, FileHeader, LagMarker, Line, FORMAT_NAME, FORMAT_VERSION, MAX_RAW_BYTES,
    RAW_BODIES_SINCE,
};
use crate::record::Record;

/// Size of the read buffer.
const READ_BUFFER: usize = 64 * 1024;

/// The most memory reserved for a record's bodies before their bytes are read: larger bodies grow
/// the buffer as they arrive, so a line that declares more than the file holds costs no more than
/// what is there.
const RAW_PREALLOC: usize = 16 * 1024 * 1024;

/// The longest line the reader accepts (the writer never writes a longer one: see
/// [`super::MAX_LINE_BYTES`]). A longer line is skipped with a [`Warning::LongLine`] while holding at
/// most this much of it in memory, so a small compressed file that expands into one huge line cannot
/// exhaust memory.
pub use super::MAX_LINE_BYTES;

/// A migration of one line (as JSON) from one version to the next.
pub type MigrateFn = fn(Json) -> Result<Json, String>;

/// One step of the migration chain: the header line and every other line of version N, as JSON,
/// turned into version N + 1.
pub struct Migration {
    /// The version this step reads (it writes `from + 1`).
    pub from: u32,
    pub header: MigrateFn,
    /// `None`: a line of version N reads as a line of version N + 1 as it is (no detour through JSON).
    pub line: Option<MigrateFn>,
}

/// The migration chain, oldest first: `MIGRATIONS[i].from == i + 1`. Every older version keeps a
/// fixture under `tests/data/captures/` that the tests read.
pub const MIGRATIONS: &[Migration] = &[Migration {
    from: 1,
    header: v1_to_v2_header,
    line: None,
}];

/// Version 2 only adds a way to write bodies (`{"raw": LEN}`, bytes after the line); a version 1 line
/// (bodies as text or `{"base64": ...}`) is a valid version 2 line.
fn v1_to_v2_header(mut header: Json) -> Result<Json, String> {
    header["format_version"] = Json::from(2);
    Ok(header)
}

/// Puts the raw bytes that followed a line into the record's bodies (`raw` holds them back to back,
/// in slot order).
fn fill_raw(record: &mut Record, lens: &RawLens, raw: Bytes) {
    let mut at = 0usize;
    let mut take = |len: u64| {
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let end = at.saturating_add(len).min(raw.len());
        let part = raw.slice(at..end);
        at = end;
        part
    };
    let sides = [
        record.request.as_mut().map(|r| &mut r.body),
        record.response.as_mut().map(|r| &mut r.body),
        record.event.as_mut().map(|e| &mut e.body),
    ];
    for (i, body) in sides.into_iter().enumerate() {
        let Some(body) = body else { continue };
        if lens[2 * i] > 0 {
            body.data = take(lens[2 * i]);
        }
        if lens[2 * i + 1] > 0 {
            body.original = Some(take(lens[2 * i + 1]));
        }
    }
}

/// Something odd but survivable found while reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// The last line was cut off (the writer was stopped mid-line); it was skipped.
    TornLastLine { line: u64, bytes: usize },
    /// The zstd stream ends before its frame does (the writer was stopped before finishing it);
    /// everything up to the last flushed batch was read.
    TruncatedCompressed { line: u64 },
    /// A line longer than [`MAX_LINE_BYTES`] (not written by capscope) was skipped.
    LongLine { line: u64, bytes: u64 },
    /// The bodies after the last record line stop short (the writer was stopped while writing them);
    /// that record was skipped.
    TornBodies {
        line: u64,
        bytes: u64,
        expected: u64,
    },
    /// A record line declared more than [`MAX_RAW_BYTES`] of bodies (not written by capscope); the
    /// record was skipped.
    LargeBodies { line: u64, bytes: u64 },
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Warning::TornLastLine { line, bytes } => write!(
                f,
                "line {line} is incomplete ({bytes} bytes; the writer was stopped mid-line) and was skipped"
            ),
            Warning::LongLine { line, bytes } => write!(
                f,
                "line {line} is {bytes} bytes long, more than the {MAX_LINE_BYTES} a capture line may \
                 hold (capscope never writes one); it was skipped"
            ),
            Warning::TornBodies {
                line,
                bytes,
                expected,
            } => write!(
                f,
                "the bodies of the record at line {line} are incomplete ({bytes} of {expected} \
                 bytes; the writer was stopped mid-record); the record was skipped"
            ),
            Warning::LargeBodies { line, bytes } => write!(
                f,
                "the record at line {line} declares {bytes} bytes of bodies, more than the \
                 {MAX_RAW_BYTES} a capture record may hold (capscope never writes one); it was \
                 skipped"
            ),
            Warning::TruncatedCompressed { line } => write!(
                f,
                "the compressed stream ends early after line {line} (the writer was stopped before \
                 finishing the file); everything before it was read"
            ),
        }
    }
}

/// A whole capture in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Capture {
    pub header: FileHeader,
    /// Finished records in file order.
    pub records: Vec<Record>,
    /// Where the writer lost records.
    pub lags: Vec<LagMarker>,
    pub warnings: Vec<Warning>,
}

/// Opens captures.
#[derive(Debug, Clone, Copy)]
pub struct Reader;

impl Reader {
    /// Reads a whole capture into memory.
    pub fn open(path: impl AsRef<Path>) -> Result<Capture, CaptureError> {
        let mut lines = Self::stream(path)?;
        let mut records = Vec::new();
        let mut lags = Vec::new();
        for line in lines.by_ref() {
            match line? {
                Line::Record(r) => records.push(*r),
                Line::Lagged(l) => lags.push(l),
            }
        }
        Ok(Capture {
            header: lines.header.clone(),
            records,
            lags,
            warnings: lines.warnings,
        })
    }

    /// Opens a capture for reading line by line (for files too big to hold in memory).
    pub fn stream(path: impl AsRef<Path>) -> Result<Records, CaptureError> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|source| CaptureError::Open {
            path: path.clone(),
            source,
        })?;
        let input: Box<dyn BufRead + Send> = if super::is_zstd_path(&path) {
            let decoder =
                zstd::stream::read::Decoder::new(file).map_err(|source| CaptureError::Open {
                    path: path.clone(),
                    source,
                })?;
            Box::new(BufReader::with_capacity(READ_BUFFER, decoder))
        } else {
            Box::new(BufReader::with_capacity(READ_BUFFER, file))
        };
        Records::new(path, input, MAX_LINE_BYTES)
    }

    /// Reads a capture from any byte source (`compressed` selects zstd). For tests and pipes.
    pub fn from_reader(
        name: impl Into<PathBuf>,
        input: impl std::io::Read + Send + 'static,
        compressed: bool,
    ) -> Result<Records, CaptureError> {
        let path = name.into();
        let input: Box<dyn BufRead + Send> = if compressed {
            let decoder =
                zstd::stream::read::Decoder::new(input).map_err(|source| CaptureError::Open {
                    path: path.clone(),
                    source,
                })?;
            Box::new(BufReader::with_capacity(READ_BUFFER, decoder))
        } else {
            Box::new(BufReader::with_capacity(READ_BUFFER, input))
        };
        Records::new(path, input, MAX_LINE_BYTES)
    }
}

/// A capture being read line by line: an iterator of lines after the header.
pub struct Records {
    path: PathBuf,
    input: Box<dyn BufRead + Send>,
    /// The header, migrated to the current version.
    pub header: FileHeader,
    /// The version the file was written in.
    pub file_version: u32,
    /// Warnings found so far (complete once the iterator has ended).
    pub warnings: Vec<Warning>,
    line_no: u64,
    buf: Vec<u8>,
    done: bool,
    /// The longest line accepted ([`MAX_LINE_BYTES`]; smaller in tests).
    max_line: usize,
    /// The most raw body bytes accepted after one line ([`MAX_RAW_BYTES`]; smaller in tests).
    max_raw: usize,
}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Records")
            .field("path", &self.path)
            .field("line", &self.line_no)
            .finish_non_exhaustive()
    }
}

/// One raw line: its bytes (without the newline), whether it was complete, or the end.
enum RawLine {
    Complete,
    Torn,
    /// Longer than the limit: skipped (to its newline or the end), `buf` left empty.
    TooLong(u64),
    End,
}

impl Records {
    fn new(
        path: PathBuf,
        input: Box<dyn BufRead + Send>,
        max_line: usize,
    ) -> Result<Self, CaptureError> {
        let mut this = Records {
            path,
            input,
            header: FileHeader::new(None, None, None),
            file_version: FORMAT_VERSION,
            warnings: Vec::new(),
            line_no: 0,
            buf: Vec::new(),
            done: false,
            max_line,
            max_raw: MAX_RAW_BYTES,
        };
        match this.next_raw()? {
            RawLine::Complete => {}
            RawLine::TooLong(bytes) => {
                return Err(this.not_a_capture(&format!(
                    "the first line is {bytes} bytes long, more than a capture line may hold \
                     ({MAX_LINE_BYTES})"
                )));
            }
            RawLine::Torn | RawLine::End if this.buf.is_empty() => {
                return Err(CaptureError::Empty { path: this.path });
            }
            RawLine::Torn | RawLine::End => {
                return Err(this.not_a_capture("the header line is incomplete"));
            }
        }
        let json: Json = serde_json::from_slice(&this.buf)
            .map_err(|e| this.not_a_capture(&format!("the first line is not JSON ({e})")))?;
        if json.get("format").and_then(Json::as_str) != Some(FORMAT_NAME) {
            return Err(this.not_a_capture(&format!(
                "the first line does not say \"format\": \"{FORMAT_NAME}\""
            )));
        }
        let version = json
            .get("format_version")
            .and_then(Json::as_u64)
            .and_then(|v| u32::try_from(v).ok())
            .filter(|v| *v >= 1)
            .ok_or_else(|| this.not_a_capture("the header has no valid format_version"))?;
        if version > FORMAT_VERSION {
            return Err(CaptureError::TooNew {
                path: this.path,
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        this.file_version = version;
        let json = this.migrate_header(json)?;
        this.header = serde_json::from_value(json).map_err(|e| this.bad_line(e.to_string()))?;
        Ok(this)
    }

    fn not_a_capture(&self, reason: &str) -> CaptureError {
        CaptureError::NotACapture {
            path: self.path.clone(),
            reason: reason.to_owned(),
        }
    }

    fn bad_line(&self, reason: String) -> CaptureError {
        CaptureError::BadLine {
            path: self.path.clone(),
            line: self.line_no,
            reason,
        }
    }

    fn migrate_header(&self, mut json: Json) -> Result<Json, CaptureError> {
        for m in MIGRATIONS.iter().filter(|m| m.from >= self.file_version) {
            json = (m.header)(json).map_err(|reason| CaptureError::Migration {
                path: self.path.clone(),
                line: self.line_no,
                from: m.from,
                reason,
            })?;
        }
        Ok(json)
    }

    /// Reads the next line into `buf` (newline removed), holding at most `max_line` bytes of it: the
    /// rest of a longer line is read and thrown away.
    fn next_raw(&mut self) -> Result<RawLine, CaptureError> {
        self.buf.clear();
        self.line_no += 1;
        let mut total: u64 = 0;
        let mut too_long = false;
        loop {
            let chunk = match self.input.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // A zstd stream cut short: what was decoded is in `buf`; nothing more will come.
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                    self.warnings.push(Warning::TruncatedCompressed {
                        line: self.line_no - 1,
                    });
                    return Ok(match (too_long, total) {
                        (true, _) => RawLine::TooLong(total),
                        (false, 0) => RawLine::End,
                        (false, _) => RawLine::Torn,
                    });
                }
                Err(source) => {
                    return Err(CaptureError::Read {
                        path: self.path.clone(),
                        line: self.line_no,
                        source,
                    })
                }
            };
            if chunk.is_empty() {
                return Ok(match (too_long, total) {
                    (true, _) => RawLine::TooLong(total),
                    (false, 0) => RawLine::End,
                    (false, _) => RawLine::Torn,
                });
            }
            let newline = memchr::memchr(b'\n', chunk);
            let take = newline.map_or(chunk.len(), |i| i + 1);
            total += take as u64;
            if !too_long {
                let content = take - usize::from(newline.is_some());
                if self.buf.len() + content > self.max_line {
                    too_long = true;
                    self.buf = Vec::new();
                } else {
                    self.buf.extend_from_slice(&chunk[..take]);
                }
            }
            self.input.consume(take);
            if newline.is_some() {
                if too_long {
                    return Ok(RawLine::TooLong(total - 1));
                }
                self.buf.pop();
                if self.buf.last() == Some(&b'\r') {
                    self.buf.pop();
                }
                return Ok(RawLine::Complete);
            }
        }
    }

    /// The line in `buf`, and the raw body lengths it declares (one pass over the line).
    fn parse(&self) -> Result<(Line, RawLens), String> {
        let as_is = MIGRATIONS
            .iter()
            .filter(|m| m.from >= self.file_version)
            .all(|m| m.line.is_none());
        let (line, lens) = if as_is {
            line::read_line(&self.buf).map_err(|e| e.to_string())?
        } else {
            let mut json: Json = serde_json::from_slice(&self.buf).map_err(|e| e.to_string())?;
            for m in MIGRATIONS.iter().filter(|m| m.from >= self.file_version) {
                if let Some(step) = m.line {
                    json = step(json).map_err(|reason| {
                        format!("cannot migrate from format version {}: {reason}", m.from)
                    })?;
                }
            }
            line::read_json(json).map_err(|e| e.to_string())?
        };
        if self.file_version < RAW_BODIES_SINCE && lens.iter().any(|l| *l > 0) {
            return Err(format!(
                "a body written as {{\"raw\": LEN}} in a version {} capture (only version \
                 {RAW_BODIES_SINCE} and later write them)",
                self.file_version
            ));
        }
        Ok((line, lens))
    }

    /// Reads the `total` raw body bytes that follow a record line, and the newline after them.
    fn read_raw(&mut self, total: u64) -> Result<Raw, CaptureError> {
        if total > self.max_raw as u64 {
            return self.skip_raw(total);
        }
        let mut raw = Vec::with_capacity(
            usize::try_from(total).map_or(RAW_PREALLOC, |t| t.min(RAW_PREALLOC)),
        );
        let got = match (&mut self.input).take(total).read_to_end(&mut raw) {
            Ok(n) => n as u64,
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                self.warnings
                    .push(Warning::TruncatedCompressed { line: self.line_no });
                raw.len() as u64
            }
            Err(source) => return Err(self.read_err(source)),
        };
        if got < total {
            return Ok(Raw::Torn(got));
        }
        self.end_of_raw(total)?;
        Ok(Raw::Whole(Bytes::from(raw)))
    }

    /// Reads past `total` raw bytes (more than a record may hold) and the newline after them, holding
    /// none of them.
    fn skip_raw(&mut self, total: u64) -> Result<Raw, CaptureError> {
        let got = match std::io::copy(&mut (&mut self.input).take(total), &mut std::io::sink()) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                self.warnings
                    .push(Warning::TruncatedCompressed { line: self.line_no });
                return Ok(Raw::Torn(0));
            }
            Err(source) => return Err(self.read_err(source)),
        };
        if got < total {
            return Ok(Raw::Torn(got));
        }
        self.end_of_raw(total)?;
        Ok(Raw::Skipped)
    }

    /// Consumes the newline that ends a record's raw bytes. The end of the input there is fine (the
    /// writer was stopped just before writing it: the record is whole); anything else is an error.
    fn end_of_raw(&mut self, total: u64) -> Result<(), CaptureError> {
        loop {
            match self.input.fill_buf() {
                Ok([]) => return Ok(()),
                Ok([b'\n', ..]) => {
                    self.input.consume(1);
                    return Ok(());
                }
                Ok(_) => {
                    return Err(self.bad_line(format!(
                        "the {total} body bytes after this line are not followed by a newline \
                         (the lengths in the line do not match the bytes after it)"
                    )))
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                    self.warnings
                        .push(Warning::TruncatedCompressed { line: self.line_no });
                    return Ok(());
                }
                Err(source) => return Err(self.read_err(source)),
            }
        }
    }

    fn read_err(&self, source: std::io::Error) -> CaptureError {
        CaptureError::Read {
            path: self.path.clone(),
            line: self.line_no,
            source,
        }
    }

    /// The line in `buf` with its raw bodies read after it: `None` when the record was skipped (with
    /// a warning) or cut short (then reading is over).
    fn complete(&mut self) -> Option<Result<Line, CaptureError>> {
        let (mut line, lens) = match self.parse() {
            Ok(parsed) => parsed,
            Err(reason) => {
                self.done = true;
                return Some(Err(self.bad_line(reason)));
            }
        };
        let total = lens.iter().fold(0u64, |a, l| a.saturating_add(*l));
        if total == 0 {
            return Some(Ok(line));
        }
        let raw = match self.read_raw(total) {
            Ok(raw) => raw,
            Err(e) => {
                self.done = true;
                return Some(Err(e));
            }
        };
        match raw {
            Raw::Whole(raw) => {
                if let Line::Record(r) = &mut line {
                    fill_raw(r, &lens, raw);
                }
                Some(Ok(line))
            }
            Raw::Skipped => {
                let w = Warning::LargeBodies {
                    line: self.line_no,
                    bytes: total,
                };
                tracing::warn!(path = %self.path.display(), "{w}");
                self.warnings.push(w);
                None
            }
            Raw::Torn(bytes) => {
                self.done = true;
                let w = Warning::TornBodies {
                    line: self.line_no,
                    bytes,
                    expected: total,
                };
                tracing::warn!(path = %self.path.display(), "{w}");
                self.warnings.push(w);
                None
            }
        }
    }
}

/// What followed a record line.
enum Raw {
    Whole(Bytes),
    /// More than a record may hold: read past, not kept.
    Skipped,
    /// The input ended after this many of the bytes.
    Torn(u64),
}

impl Iterator for Records {
    type Item = Result<Line, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let raw = match self.next_raw() {
                Ok(r) => r,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            match raw {
                RawLine::End => self.done = true,
                RawLine::TooLong(bytes) => {
                    let w = Warning::LongLine {
                        line: self.line_no,
                        bytes,
                    };
                    tracing::warn!(path = %self.path.display(), "{w}");
                    self.warnings.push(w);
                }
                RawLine::Complete if self.buf.iter().all(u8::is_ascii_whitespace) => {}
                RawLine::Complete => {
                    if let Some(line) = self.complete() {
                        return Some(line);
                    }
                }
                RawLine::Torn => {
                    self.done = true;
                    // The writer ends every line with a newline, so a line without one was cut
                    // short; it is kept only if it happens to be whole (and has no bodies after it).
                    match self.parse() {
                        Ok((line, lens)) if lens.iter().all(|l| *l == 0) => return Some(Ok(line)),
                        _ => {
                            let w = Warning::TornLastLine {
                                line: self.line_no,
                                bytes: self.buf.len(),
                            };
                            tracing::warn!(path = %self.path.display(), "{w}");
                            self.warnings.push(w);
                        }
                    }
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A small zstd file whose second line expands to `line` bytes of `x`, then a lag marker line.
    fn bomb(line: usize) -> Vec<u8> {
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
        serde_json::to_writer(&mut enc, &FileHeader::new(None, None, None)).unwrap();
        enc.write_all(b"\n").unwrap();
        let chunk = vec![b'x'; 1 << 20];
        let mut left = line;
        while left > 0 {
            let n = left.min(chunk.len());
            enc.write_all(&chunk[..n]).unwrap();
            left -= n;
        }
        enc.write_all(b"\n{\"lagged\":{\"dropped\":3,\"at_us\":1}}\n")
            .unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn a_line_past_the_limit_is_skipped_in_bounded_memory() {
        let limit = 1 << 20;
        let file = bomb(24 << 20);
        assert!(file.len() < 8 * 1024, "bomb-like: {} bytes", file.len());
        let input = BufReader::with_capacity(
            READ_BUFFER,
            zstd::stream::read::Decoder::new(std::io::Cursor::new(file)).unwrap(),
        );
        let mut lines = Records::new("bomb.jsonl.zst".into(), Box::new(input), limit).unwrap();
        let first = lines.next().expect("the line after the long one").unwrap();
        assert!(matches!(first, Line::Lagged(LagMarker { dropped: 3, .. })));
        assert_eq!(
            lines.warnings,
            vec![Warning::LongLine {
                line: 2,
                bytes: 24 << 20
            }]
        );
        assert!(
            lines.buf.capacity() <= limit + READ_BUFFER,
            "held {} bytes of a skipped line",
            lines.buf.capacity()
        );
        assert!(lines.next().is_none());
    }

    #[test]
    fn a_line_of_exactly_the_limit_is_read() {
        let limit = 64;
        let line = format!(
            "{{\"lagged\":{{\"dropped\":1,\"at_us\":1}}{}}}",
            " ".repeat(30)
        );
        assert_eq!(line.len(), limit);
        let mut text = serde_json::to_vec(&FileHeader::new(None, None, None)).unwrap();
        text.push(b'\n');
        text.extend_from_slice(line.as_bytes());
        text.push(b'\n');
        let input = || Box::new(BufReader::new(std::io::Cursor::new(text.clone())));
        // The header line is longer than 64 bytes: it is refused with a reason.
        let err = Records::new("h".into(), input(), limit).unwrap_err();
        assert!(
            err.to_string()
                .contains("more than a capture line may hold"),
            "{err}"
        );
        let mut lines = Records::new("h".into(), input(), 1 << 20).unwrap();
        lines.max_line = limit;
        assert!(matches!(lines.next(), Some(Ok(Line::Lagged(_)))));
        assert!(lines.warnings.is_empty());
    }

    /// A v2 file: the header, then `lines` as given.
    fn v2(lines: &[&[u8]]) -> Vec<u8> {
        let mut file = serde_json::to_vec(&FileHeader::new(None, None, None)).unwrap();
        file.push(b'\n');
        for l in lines {
            file.extend_from_slice(l);
        }
        file
    }

    const LAG: &[u8] = b"{\"lagged\":{\"dropped\":3,\"at_us\":1}}\n";

    fn record_line(len: u64) -> Vec<u8> {
        format!(
            "{{\"record\":{{\"id\":1,\"kind\":\"http\",\"state\":\"done\",\"started_us\":1,\
             \"response\":{{\"status\":200,\"version\":\"HTTP/1.1\",\"headers\":[],\
             \"body\":{{\"data\":{{\"raw\":{len}}},\"size\":{len}}}}}}}}}\n"
        )
        .into_bytes()
    }

    fn records(file: Vec<u8>, max_raw: usize) -> Records {
        let input = Box::new(BufReader::new(std::io::Cursor::new(file)));
        let mut r = Records::new("t.jsonl".into(), input, MAX_LINE_BYTES).unwrap();
        r.max_raw = max_raw;
        r
    }

    /// Bodies larger than a record may hold are read past without being held, with a warning, and
    /// the next line is read.
    #[test]
    fn bodies_past_the_limit_are_skipped_in_bounded_memory() {
        let body = vec![0xabu8; 4096];
        let line = record_line(4096);
        let file = v2(&[&line, &body, b"\n", LAG]);
        let mut lines = records(file, 1024);
        assert!(matches!(lines.next(), Some(Ok(Line::Lagged(_)))));
        assert!(lines.next().is_none());
        assert_eq!(
            lines.warnings,
            vec![Warning::LargeBodies {
                line: 2,
                bytes: 4096
            }]
        );
    }

    /// A length larger than what follows (a hostile line, or a writer stopped mid-body) reads what
    /// is there, reserving no more than that, and says the record is incomplete.
    #[test]
    fn a_length_past_the_end_is_a_torn_record() {
        for len in [u64::MAX, 1 << 40, (MAX_RAW_BYTES as u64) - 1, 100] {
            let line = record_line(len);
            let file = v2(&[LAG, &line, b"only this"]);
            let mut lines = records(file, MAX_RAW_BYTES);
            assert!(matches!(lines.next(), Some(Ok(Line::Lagged(_)))));
            assert!(lines.next().is_none(), "{len}");
            assert_eq!(lines.warnings.len(), 1, "{len}: {:?}", lines.warnings);
            assert!(
                matches!(
                    lines.warnings[0],
                    Warning::TornBodies {
                        line: 3,
                        bytes: 9,
                        ..
                    }
                ),
                "{len}: {:?}",
                lines.warnings
            );
        }
    }

    /// The bytes after a line must end where its lengths say: a mismatch is an error, not a guess.
    #[test]
    fn bodies_not_followed_by_a_newline_are_an_error() {
        let line = record_line(3);
        let file = v2(&[&line, b"abcdef\n", LAG]);
        let mut lines = records(file, MAX_RAW_BYTES);
        match lines.next() {
            Some(Err(CaptureError::BadLine {
                line: 2, reason, ..
            })) => {
                assert!(reason.contains("not followed by a newline"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        assert!(lines.next().is_none());
    }

    /// A version 1 capture never holds raw bodies: a line that says it does is refused.
    #[test]
    fn a_raw_body_in_a_version_1_file_is_an_error() {
        let mut header = serde_json::to_value(FileHeader::new(None, None, None)).unwrap();
        header["format_version"] = Json::from(1);
        let mut file = serde_json::to_vec(&header).unwrap();
        file.push(b'\n');
        file.extend_from_slice(&record_line(3));
        file.extend_from_slice(b"abc\n");
        let mut lines = records(file, MAX_RAW_BYTES);
        assert_eq!(lines.file_version, 1);
        assert!(matches!(
            lines.next(),
            Some(Err(CaptureError::BadLine { .. }))
        ));
    }

    #[test]
    fn the_chain_covers_every_older_version() {
        assert_eq!(MIGRATIONS.len() as u32, FORMAT_VERSION - 1);
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.from, i as u32 + 1);
        }
    }
}
