//! The capture reader: opens plain or zstd captures of any known format version and yields records.
//!
//! Older format versions are brought up to date line by line through a chain of migrations,
//! [`MIGRATIONS`]`[i]` turning version `i + 1` into version `i + 2` (mitmproxy's `io/compat.py` idea).
//! A capture whose writer was killed is read up to its last complete line: a torn last line, or a zstd
//! stream that stops early, is reported as a [`Warning`], not an error. No line longer than
//! [`MAX_LINE_BYTES`] is held in memory: a longer one is skipped with a warning.
//!
//! This module owns reading; it must not write captures or interpret bodies.

use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind};
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use super::{CaptureError, Header, LagMarker, Line, FORMAT_NAME, FORMAT_VERSION};
use crate::record::Record;

/// Size of the read buffer.
const READ_BUFFER: usize = 64 * 1024;

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
    pub line: MigrateFn,
}

/// The migration chain, oldest first: `MIGRATIONS[i].from == i + 1`. Version 1 is the only version
/// so far, so the chain is empty; the next format version adds `v1_to_v2` here and keeps
/// `tests/data/captures/v1.jsonl` as the fixture it must read.
pub const MIGRATIONS: &[Migration] = &[];

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
    pub header: Header,
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
    pub header: Header,
    /// The version the file was written in.
    pub file_version: u32,
    /// Warnings found so far (complete once the iterator has ended).
    pub warnings: Vec<Warning>,
    line_no: u64,
    buf: Vec<u8>,
    done: bool,
    /// The longest line accepted ([`MAX_LINE_BYTES`]; smaller in tests).
    max_line: usize,
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
            header: Header::new(None, None, None),
            file_version: FORMAT_VERSION,
            warnings: Vec::new(),
            line_no: 0,
            buf: Vec::new(),
            done: false,
            max_line,
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
        let json = this.migrate(json, |m| m.header)?;
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

    fn migrate(
        &self,
        mut json: Json,
        step: fn(&Migration) -> MigrateFn,
    ) -> Result<Json, CaptureError> {
        for m in MIGRATIONS.iter().filter(|m| m.from >= self.file_version) {
            json = step(m)(json).map_err(|reason| CaptureError::Migration {
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

    fn parse(&self) -> Result<Line, String> {
        if self.file_version == FORMAT_VERSION {
            serde_json::from_slice(&self.buf).map_err(|e| e.to_string())
        } else {
            let json: Json = serde_json::from_slice(&self.buf).map_err(|e| e.to_string())?;
            let json = self.migrate(json, |m| m.line).map_err(|e| e.to_string())?;
            serde_json::from_value(json).map_err(|e| e.to_string())
        }
    }
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
                    return Some(self.parse().map_err(|reason| {
                        self.done = true;
                        self.bad_line(reason)
                    }));
                }
                RawLine::Torn => {
                    self.done = true;
                    // The writer ends every line with a newline, so a line without one was cut
                    // short; it is kept only if it happens to be whole.
                    match self.parse() {
                        Ok(line) => return Some(Ok(line)),
                        Err(_) => {
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
        serde_json::to_writer(&mut enc, &Header::new(None, None, None)).unwrap();
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
        let mut text = serde_json::to_vec(&Header::new(None, None, None)).unwrap();
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

    #[test]
    fn the_chain_covers_every_older_version() {
        assert_eq!(MIGRATIONS.len() as u32, FORMAT_VERSION - 1);
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.from, i as u32 + 1);
        }
    }
}
