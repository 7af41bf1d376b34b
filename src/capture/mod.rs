//! Capture files: the on-disk format, the writer that records a session, the reader, and HAR export.
//!
//! A capture is line-framed JSON: one header line, then one line per finished record (or a marker
//! saying the writer lost records), appended and flushed as records finish, so a capture killed
//! mid-session is still readable. Since format version 2 a record's bodies are not inside its line:
//! the line says `{"raw": LEN}` for each, and their bytes follow the line as they are (no base64, no
//! JSON escaping), then a newline. Secrets are masked on the way to disk unless the user asked to keep them. The format
//! is specified in `docs/capture-format.md`; its version ([`FORMAT_VERSION`]) is kept apart from the
//! crate version and older versions are migrated on reading (see [`reader`]).
//!
//! This module owns the file format and everything that reads or writes it. It must not touch the
//! forwarding path: the writer is a [`Bus`](crate::record::Bus) subscriber on its own task, and never
//! slows a producer. It knows nothing of how records are produced.

pub mod har;
mod line;
pub mod reader;
pub mod secrets;
pub mod writer;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::record::Record;
use crate::util::time::{self, iso8601_millis};

pub use reader::{Capture, Reader, Records, Warning};
pub use writer::{spawn_writer, Writer, WriterHandle, WriterStats};

/// The format name written in every header line.
pub const FORMAT_NAME: &str = "capscope-capture";

/// The version of the capture format written by this build. Bump it (and add a migration in
/// [`reader`]) whenever the meaning or shape of a line changes.
pub const FORMAT_VERSION: u32 = 2;

/// The first format version whose record lines may be followed by raw body bytes.
pub const RAW_BODIES_SINCE: u32 = 2;

/// The file-name suffix that turns on zstd compression.
pub const ZSTD_SUFFIX: &str = ".zst";

/// How many bodies one record line can carry: request `data` and `original`, response `data` and
/// `original` (an event record carries one).
pub const BODIES_PER_LINE: usize = 4;

/// The most bytes one body byte can take in a line: JSON escapes a control character as `\u00XX`
/// (base64, used for bodies that are not UTF-8, takes 4 per 3).
pub const JSON_EXPANSION: usize = 6;

/// The most raw body bytes that may follow one record line (version 2): the writer saves a record
/// whose bodies add up to more without them (with a note), and the reader skips such a record with a
/// warning, never holding more than this of it. Four bodies of the default `--max-body` fit 8 times.
pub const MAX_RAW_BYTES: usize = 128 * 1024 * 1024;

/// The body size a capture line is sized for: `--max-body`'s default (`proxy::DEFAULT_MAX_BODY`).
pub const LINE_BODY_BUDGET: usize = 4 * 1024 * 1024;

/// The longest line in a capture: room for [`BODIES_PER_LINE`] bodies of [`LINE_BODY_BUDGET`] bytes at
/// the worst [`JSON_EXPANSION`] (96 MiB), plus headers, rounded up to 128 MiB. The writer never
/// writes a longer line (a record that would need one is saved without its bodies, with a note), and
/// the reader skips a longer one with a warning, never holding more than this of it in memory.
pub const MAX_LINE_BYTES: usize = 128 * 1024 * 1024;

/// The directory under the data directory where sessions are saved by default.
pub const CAPTURES_DIR: &str = "captures";

/// What can go wrong writing or reading a capture.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("cannot create capture file {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open capture file {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write capture file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read capture file {path} at line {line}: {source}")]
    Read {
        path: PathBuf,
        line: u64,
        source: std::io::Error,
    },
    #[error("{path} is empty: a capture starts with a header line")]
    Empty { path: PathBuf },
    #[error("{path} is not a capscope capture: {reason}")]
    NotACapture { path: PathBuf, reason: String },
    #[error(
        "{path} was written in capture format version {found}, newer than this capscope reads \
         (up to {supported}); upgrade capscope to read it"
    )]
    TooNew {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("{path}, line {line}: {reason}")]
    BadLine {
        path: PathBuf,
        line: u64,
        reason: String,
    },
    #[error("cannot migrate {path}, line {line}, from format version {from}: {reason}")]
    Migration {
        path: PathBuf,
        line: u64,
        from: u32,
        reason: String,
    },
    #[error("the capture writer task stopped abnormally: {0}")]
    Task(String),
}

/// The first line of every capture: what wrote it and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileHeader {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// The capture format version, see [`FORMAT_VERSION`].
    pub format_version: u32,
    /// The capscope release that wrote the file (informational; readers dispatch on `format_version`).
    pub capscope_version: String,
    /// When the session started, microseconds since the Unix epoch (UTC).
    pub started_us: i64,
    /// The same instant as ISO 8601 UTC text, for people reading the file.
    pub started: String,
    /// The proxy's listen address (`127.0.0.1:8080`), when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// The proxy mode (`login`, `proxy`, ...), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// The grid (its login URI or name), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grid: Option<String>,
    /// Whether secrets were written as seen (`--keep-secrets`) instead of masked.
    pub secrets_kept: bool,
    /// The filter that limited what was recorded, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

impl FileHeader {
    /// A header for a session starting now. `secrets_kept` is set by [`Writer::create`].
    pub fn new(listen: Option<String>, mode: Option<String>, grid: Option<String>) -> Self {
        let started_us = crate::record::now_us();
        Self {
            format: FORMAT_NAME.to_owned(),
            format_version: FORMAT_VERSION,
            capscope_version: env!("CARGO_PKG_VERSION").to_owned(),
            started_us,
            started: iso8601_millis(started_us),
            listen,
            mode,
            grid,
            secrets_kept: false,
            filter: None,
        }
    }
}

/// A line after the header (current format version).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Line {
    /// One finished record.
    Record(Box<Record>),
    /// The writer fell behind the record stream and lost `dropped` records just before this point.
    Lagged(LagMarker),
}

/// Where and how many records the writer lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LagMarker {
    /// How many records were lost.
    pub dropped: u64,
    /// When the writer noticed, microseconds since the Unix epoch (UTC).
    pub at_us: i64,
}

/// How many names [`start_saving`] tries for a default capture before giving up (the first is the
/// timestamp alone, then `-2`, `-3`, ...).
pub const DEFAULT_NAME_ATTEMPTS: u32 = 100;

/// `<data_dir>/captures/capscope-YYYYMMDD-HHMMSS-mmm.jsonl`, named after the current UTC time to the
/// millisecond. [`start_saving`] never overwrites a file of that name: it adds `-2`, `-3`, ...
pub fn default_path(data_dir: &Path) -> PathBuf {
    default_path_numbered(data_dir, crate::record::now_us(), 1)
}

fn default_path_numbered(data_dir: &Path, us: i64, n: u32) -> PathBuf {
    let stamp = time::compact(us).unwrap_or_else(|| "00000000-000000".into());
    let millis = us.rem_euclid(1_000_000) / 1000;
    let suffix = if n > 1 {
        format!("-{n}")
    } else {
        String::new()
    };
    data_dir
        .join(CAPTURES_DIR)
        .join(format!("capscope-{stamp}-{millis:03}{suffix}.jsonl"))
}

/// What the `run` command needs to save a session.
#[derive(Debug, Clone)]
pub struct SaveOptions {
    /// Where to write; `None` means [`default_path`] under `data_dir`.
    pub path: Option<PathBuf>,
    /// capscope's data directory (used when `path` is `None`).
    pub data_dir: PathBuf,
    /// Write secrets as seen instead of masking them.
    pub keep_secrets: bool,
    /// Record only what matches this filter.
    pub filter: Option<crate::filter::Filter>,
}

/// Starts saving everything published on `bus` from now on, as `run` does: creates the file (and its
/// directory), writes the header, and spawns the writer task. Must be called inside a tokio runtime.
/// Returns the handle (its counters are for the UI and the log) and the path written.
pub fn start_saving(
    bus: &crate::record::Bus,
    mut header: FileHeader,
    options: SaveOptions,
) -> Result<(WriterHandle, PathBuf), CaptureError> {
    header.filter = options.filter.as_ref().map(|f| f.to_string());
    let keep = options.keep_secrets;
    let mut writer = match options.path {
        Some(path) => {
            create_parent(&path)?;
            Writer::create(&path, header, keep)?
        }
        None => {
            // Two sessions started in the same millisecond must not share (and truncate) a file:
            // the default name is created only if new, and numbered when taken.
            let now = crate::record::now_us();
            let mut n = 1;
            loop {
                let path = default_path_numbered(&options.data_dir, now, n);
                create_parent(&path)?;
                match Writer::create_new(&path, header.clone(), keep) {
                    Ok(writer) => break writer,
                    Err(CaptureError::Create { source, .. })
                        if source.kind() == std::io::ErrorKind::AlreadyExists
                            && n < DEFAULT_NAME_ATTEMPTS =>
                    {
                        n += 1;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    };
    if let Some(filter) = options.filter {
        writer = writer.with_filter(filter);
    }
    let path = writer.path().to_path_buf();
    // Subscribe only after the file exists, so a failure to create it leaves no idle subscriber.
    let handle = spawn_writer(writer, bus.subscribe());
    Ok((handle, path))
}

/// Creates the directory a capture goes in (and its parents), private when new: its files hold cap
/// URLs (bearer secrets).
fn create_parent(path: &Path) -> Result<(), CaptureError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(|source| CaptureError::Create {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    Ok(())
}

/// The bodies of a record, in the order their raw bytes follow its line: the request's, the
/// response's, the event's (each present only when the record has that part).
pub(crate) fn bodies(record: &Record) -> impl Iterator<Item = &crate::record::Body> {
    let request = record.request.as_ref().map(|r| &r.body);
    let response = record.response.as_ref().map(|r| &r.body);
    let event = record.event.as_ref().map(|e| &e.body);
    [request, response, event].into_iter().flatten()
}

/// The bytes a version 2 record line is followed by, in order: for each of [`bodies`], its `data`
/// then its `original`, each only when not empty (an empty one is written `""` in the line).
pub(crate) fn raw_parts(record: &Record) -> impl Iterator<Item = &bytes::Bytes> {
    bodies(record)
        .flat_map(|b| [Some(&b.data), b.original.as_ref()])
        .flatten()
        .filter(|b| !b.is_empty())
}

/// `record`'s capture line as the writer writes it, and as serde_json writes the same line (the
/// reference the writer's hand-written line must equal byte for byte). For the fuzz target
/// `capture_line`; not part of the API.
#[doc(hidden)]
pub fn record_lines_for_fuzzing(record: &Record) -> (Vec<u8>, Vec<u8>) {
    let mut written = Vec::new();
    line::write_record(&mut written, record);
    let mut reference = Vec::new();
    // Serialising borrowed strings and integers into a Vec cannot fail; an empty reference would
    // make the comparison fail loudly.
    let _ = line::write_record_serde(&mut reference, record);
    (written, reference)
}

/// Whether `path` names a zstd-compressed capture.
pub fn is_zstd_path(path: &Path) -> bool {
    path.to_str().is_some_and(|s| s.ends_with(ZSTD_SUFFIX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_path_is_under_captures_with_a_timestamped_name() {
        let p = default_path(Path::new("/data"));
        assert_eq!(p.parent(), Some(Path::new("/data/captures")));
        let name = p.file_name().and_then(|n| n.to_str()).unwrap();
        assert!(
            name.starts_with("capscope-") && name.ends_with(".jsonl"),
            "{name}"
        );
        assert_eq!(name.len(), "capscope-YYYYMMDD-HHMMSS-mmm.jsonl".len());
        let second = default_path_numbered(Path::new("/data"), 951_827_696_789_000, 2);
        assert_eq!(
            second,
            Path::new("/data/captures/capscope-20000229-123456-789-2.jsonl")
        );
    }
}
