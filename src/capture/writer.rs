//! The capture writer: appends finished records to a capture file as they complete.
//!
//! [`Writer`] is the synchronous file side (header, record lines, lag markers, masking, optional zstd);
//! [`spawn_writer`] puts it behind a [`Subscriber`] on its own task, where it drains the stream in
//! batches, writes each batch on tokio's blocking pool and flushes after every batch, so a killed
//! process leaves every finished batch readable. It never touches the forwarding path: when it falls
//! behind, the stream drops records for it, and it counts them and writes a marker line.
//!
//! This module owns writing; it must not decide what a record contains, nor read captures back.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{secrets, CaptureError, FileHeader, LagMarker};
use crate::filter::{Filter, KeptIds};
use crate::record::{now_us, Received, Record, Subscriber, DEFAULT_LINGER};

/// The most records written between two flushes. Small enough that a kill loses little, large enough
/// that a burst costs few syscalls.
pub const MAX_BATCH: usize = 256;

/// The zstd level used for `.zst` captures. Level 1: a viewer's large bodies (textures, meshes) are
/// already compressed, and level 3 spent about a quarter more CPU than level 1 failing to compress
/// them (on the proxy's core); on capture text (record lines, LLSD) level 1 took half the CPU of
/// level 3 for a file of about the same size (docs/performance.md, "zstd captures").
pub const ZSTD_LEVEL: i32 = 1;

/// The note on a record saved without its bodies because masking its secrets failed.
pub const MASK_FAILED_NOTE: &str =
    "bodies dropped from the capture: masking their secrets failed (a capscope bug; please report it)";

/// The note on a record saved without its bodies because its line would have been longer than
/// [`super::MAX_LINE_BYTES`].
pub const LINE_TOO_LONG_NOTE: &str =
    "bodies dropped from the capture: the record is larger than a capture line may be";

/// Size of the in-memory write buffer in front of the file.
const WRITE_BUFFER: usize = 64 * 1024;

enum Sink {
    Plain(BufWriter<File>),
    Zstd(zstd::stream::write::Encoder<'static, BufWriter<File>>),
}

impl Sink {
    fn out(&mut self) -> &mut dyn Write {
        match self {
            Sink::Plain(w) => w,
            Sink::Zstd(w) => w,
        }
    }
}

/// A line other than a record's, as written (a record's line is [`super::line::write_record`]'s).
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum LineRef {
    Lagged(LagMarker),
}

/// A capture file open for appending. Synchronous: use it from [`spawn_writer`] (or a blocking context).
pub struct Writer {
    path: PathBuf,
    sink: Sink,
    keep_secrets: bool,
    filter: Option<Filter>,
    /// With a filter: the ids it kept lately, so the events of a kept poll are kept too.
    kept: KeptIds,
    line: Vec<u8>,
    /// How secrets are masked ([`secrets::mask_record`]; tests swap in a failing one).
    mask: fn(&Record) -> Option<Record>,
    /// The longest line written ([`super::MAX_LINE_BYTES`]; smaller in tests).
    max_line: usize,
    /// The most raw body bytes after one line ([`super::MAX_RAW_BYTES`]; smaller in tests).
    max_raw: usize,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("path", &self.path)
            .field("keep_secrets", &self.keep_secrets)
            .field("filter", &self.filter.as_ref().map(|f| f.to_string()))
            .finish_non_exhaustive()
    }
}

impl Writer {
    /// Creates (or truncates) `path`, writes the header line and flushes it. A name ending in `.zst`
    /// selects zstd compression. `keep_secrets` is recorded in the header. The file is readable by
    /// its owner only (0600 on unix), even when it existed before with a wider mode.
    pub fn create(
        path: impl AsRef<Path>,
        header: FileHeader,
        keep_secrets: bool,
    ) -> Result<Writer, CaptureError> {
        Self::open_with(path.as_ref(), header, keep_secrets, false)
    }

    /// Like [`Writer::create`], but fails (a [`CaptureError::Create`] whose source is
    /// `AlreadyExists`) when `path` exists, never touching it.
    pub fn create_new(
        path: impl AsRef<Path>,
        header: FileHeader,
        keep_secrets: bool,
    ) -> Result<Writer, CaptureError> {
        Self::open_with(path.as_ref(), header, keep_secrets, true)
    }

    fn open_with(
        path: &Path,
        mut header: FileHeader,
        keep_secrets: bool,
        new: bool,
    ) -> Result<Writer, CaptureError> {
        let path = path.to_path_buf();
        let create_err = |source| CaptureError::Create {
            path: path.clone(),
            source,
        };
        let file = create_private(&path, new).map_err(create_err)?;
        let buffered = BufWriter::with_capacity(WRITE_BUFFER, file);
        let sink = if super::is_zstd_path(&path) {
            Sink::Zstd(zstd::stream::write::Encoder::new(buffered, ZSTD_LEVEL).map_err(create_err)?)
        } else {
            Sink::Plain(buffered)
        };
        header.secrets_kept = keep_secrets;
        let mut writer = Writer {
            path,
            sink,
            keep_secrets,
            filter: None,
            kept: KeptIds::default(),
            line: Vec::with_capacity(4096),
            mask: secrets::mask_record,
            max_line: super::MAX_LINE_BYTES,
            max_raw: super::MAX_RAW_BYTES,
        };
        let mut line = std::mem::take(&mut writer.line);
        serde_json::to_writer(&mut line, &header).map_err(|e| writer.write_err(e.into()))?;
        line.push(b'\n');
        writer.put(&line)?;
        writer.line = line;
        writer.flush()?;
        Ok(writer)
    }

    /// Records only what `filter` keeps from now on ([`crate::filter::keeps`]: what it matches, plus
    /// the events of a poll it matched, judged on the poll's open version too).
    pub fn with_filter(mut self, filter: Filter) -> Self {
        self.filter = Some(filter);
        self
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write_err(&self, source: std::io::Error) -> CaptureError {
        CaptureError::Write {
            path: self.path.clone(),
            source,
        }
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), CaptureError> {
        let r = self.sink.out().write_all(bytes);
        r.map_err(|e| self.write_err(e))
    }

    fn put_line(&mut self, line: &LineRef) -> Result<(), CaptureError> {
        let mut buf = std::mem::take(&mut self.line);
        buf.clear();
        let r = serde_json::to_writer(&mut buf, line);
        let r = match r {
            Ok(()) => {
                buf.push(b'\n');
                self.put(&buf)
            }
            Err(e) => Err(self.write_err(e.into())),
        };
        self.line = buf;
        r
    }

    /// Appends `record` if it is finished and passes the filter, masking secrets unless they are kept.
    /// Returns whether a line was written. Call [`Writer::flush`] to push it to the file.
    pub fn write_record(&mut self, record: &Record) -> Result<bool, CaptureError> {
        // Every version is judged, open ones too: a poll's events are published before it finishes,
        // and they are kept when its open version was (the rule the log and the UI apply).
        let kept = self.kept.keep(self.filter.as_ref(), record);
        if !kept || !record.is_final() {
            return Ok(false);
        }
        let masked = if self.keep_secrets {
            None
        } else {
            // A masker bug must cost one record's bodies, never the rest of the session.
            let mask = self.mask;
            match std::panic::catch_unwind(|| mask(record)) {
                Ok(masked) => masked,
                Err(_) => {
                    tracing::error!(
                        id = record.id,
                        path = %self.path.display(),
                        "masking secrets failed; the record is saved without its bodies"
                    );
                    Some(secrets::without_bodies(record, MASK_FAILED_NOTE, true))
                }
            }
        };
        let record = masked.as_ref().unwrap_or(record);
        let mut buf = std::mem::take(&mut self.line);
        let r = self.put_record(record, &mut buf);
        self.line = buf;
        r.map(|()| true)
    }

    /// Writes one record: its line, with a `{"raw": LEN}` marker for each body, then the bodies' bytes
    /// as they are ([`super::raw_parts`] order) and a newline. A record whose line or bodies would be
    /// larger than a reader accepts is written without its bodies, with a note.
    fn put_record(&mut self, record: &Record, buf: &mut Vec<u8>) -> Result<(), CaptureError> {
        let raw: usize = super::raw_parts(record).map(|b| b.len()).sum();
        buf.clear();
        super::line::write_record(buf, record);
        if (raw > self.max_raw || buf.len() > self.max_line) && record.body_bytes() > 0 {
            tracing::warn!(
                id = record.id,
                line = buf.len(),
                bodies = raw,
                path = %self.path.display(),
                "record too large for a capture record; saved without its bodies"
            );
            let bodiless = secrets::without_bodies(record, LINE_TOO_LONG_NOTE, !self.keep_secrets);
            return self.put_record(&bodiless, buf);
        }
        buf.push(b'\n');
        self.put(buf)?;
        if raw == 0 {
            return Ok(());
        }
        for part in super::raw_parts(record) {
            self.put(part)?;
        }
        self.put(b"\n")
    }

    /// Appends a marker saying `dropped` records were lost here.
    pub fn write_lag(&mut self, dropped: u64) -> Result<(), CaptureError> {
        self.write_lag_at(dropped, now_us())
    }

    /// Appends a marker saying `dropped` records were lost here, noticed at `at_us`.
    pub fn write_lag_at(&mut self, dropped: u64, at_us: i64) -> Result<(), CaptureError> {
        self.put_line(&LineRef::Lagged(LagMarker { dropped, at_us }))
    }

    /// Pushes everything written so far to the operating system (in zstd mode, ends the current block
    /// so a reader can decode up to here).
    pub fn flush(&mut self) -> Result<(), CaptureError> {
        let r = self.sink.out().flush();
        r.map_err(|e| self.write_err(e))
    }

    /// Ends the file cleanly (finishes the zstd frame), flushes it and asks the OS to store it.
    pub fn finish(self) -> Result<(), CaptureError> {
        let path = self.path;
        let err = |source| CaptureError::Write {
            path: path.clone(),
            source,
        };
        let buffered = match self.sink {
            Sink::Plain(w) => w,
            Sink::Zstd(enc) => enc.finish().map_err(err)?,
        };
        let file = buffered.into_inner().map_err(|e| err(e.into_error()))?;
        file.sync_all().map_err(err)
    }

    /// Writes one batch from the stream and flushes.
    fn write_batch(&mut self, batch: &[Received]) -> Result<BatchCounts, CaptureError> {
        let mut counts = BatchCounts::default();
        for item in batch {
            match item {
                Received::Record(r) => {
                    if self.write_record(r)? {
                        counts.written += 1;
                        if r.bodies_were_shed() {
                            counts.shed += 1;
                        }
                    }
                }
                Received::Lagged(n) => {
                    tracing::warn!(
                        lost = n,
                        path = %self.path.display(),
                        "capture writer fell behind the record stream; records lost"
                    );
                    self.write_lag(*n)?;
                    counts.dropped += n;
                }
            }
        }
        self.flush()?;
        Ok(counts)
    }
}

/// What one batch did.
#[derive(Debug, Default, Clone, Copy)]
struct BatchCounts {
    written: u64,
    dropped: u64,
    /// Records written without their bodies because the record stream shed them.
    shed: u64,
}

/// The least time between two warnings that records are being saved without their bodies: shedding
/// goes on for as long as the disk is slower than the network, and one line per batch would flood
/// the log.
pub const SHED_WARNING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// What a finished writer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterStats {
    pub path: PathBuf,
    /// Records written.
    pub written: u64,
    /// Records the stream dropped because the writer fell behind.
    pub dropped: u64,
    /// Records written without their bodies because the record stream's body budget was held by
    /// records waiting for the writer (each says so in a note; [`crate::record::SHED_NOTE`]).
    pub shed: u64,
}

/// A running writer task. The counters are live (for the UI and the log); [`WriterHandle::finish`]
/// stops it after draining what was already published. Dropping the handle leaves the task running
/// until the stream closes.
#[derive(Debug)]
pub struct WriterHandle {
    /// Records lost because the writer fell behind (each loss is also a marker line in the file).
    pub dropped: Arc<AtomicU64>,
    /// Records written and flushed.
    pub written: Arc<AtomicU64>,
    /// Records written without their bodies because the record stream shed them ([`WriterStats::shed`]).
    pub shed: Arc<AtomicU64>,
    /// Why the writer stopped early, set the moment it did (also logged as an error then).
    failure: Arc<OnceLock<String>>,
    path: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<WriterStats, CaptureError>>,
}

impl WriterHandle {
    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records written and flushed so far.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Records lost so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Records saved without their bodies so far ([`WriterStats::shed`]).
    pub fn shed(&self) -> u64 {
        self.shed.load(Ordering::Relaxed)
    }

    /// Why the writer stopped before being asked to, if it did: from then on nothing is saved. A UI
    /// polls this to show the failure at once (it is also logged at error level when it happens).
    pub fn failure(&self) -> Option<&str> {
        self.failure.get().map(String::as_str)
    }

    /// Stops the writer: writes every record already published, ends the file cleanly and returns
    /// what was written.
    pub async fn finish(mut self) -> Result<WriterStats, CaptureError> {
        if let Some(stop) = self.stop.take() {
            // The task may already have ended (stream closed, or a write error); that is fine.
            let _ = stop.send(());
        }
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(CaptureError::Task(e.to_string())),
        }
    }
}

/// A record carrying at least this many body bytes is written as soon as it arrives instead of
/// waiting out the linger with the records after it: a large body's `write` (the copy into the
/// page cache) costs far more than one wake-up, and costs least while the body is still in the
/// processor's cache from the tap's copy. Written at once, 1 MiB bodies at 4 connections cost the
/// proxy's core 1.91-1.93 ms per exchange against 2.10-2.16 ms when they waited 10 ms for their
/// batch, in alternated runs on a busy machine (docs/performance.md, "Fourth round"). The size
/// from which the tap makes its copies in pooled buffers.
pub const WRITE_AT_ONCE_BODY_BYTES: usize = 64 * 1024;

/// While lingering, how often the writer looks for a large body that should not wait.
const LINGER_STEP: Duration = Duration::from_millis(1);

/// Runs `writer` on its own task, fed by `subscriber`, until the stream closes or
/// [`WriterHandle::finish`] is called. Must be called inside a tokio runtime.
///
/// Records are written in batches: after the first record of a quiet spell the writer waits
/// [`DEFAULT_LINGER`] for more and writes them together, unless a record with a large body is
/// among them ([`WRITE_AT_ONCE_BODY_BYTES`]): then the batch is written at once.
pub fn spawn_writer(writer: Writer, subscriber: Subscriber) -> WriterHandle {
    spawn_writer_with_linger(writer, subscriber, DEFAULT_LINGER)
}

/// [`spawn_writer`] with another linger (tests).
fn spawn_writer_with_linger(
    writer: Writer,
    subscriber: Subscriber,
    linger: Duration,
) -> WriterHandle {
    let dropped = Arc::new(AtomicU64::new(0));
    let written = Arc::new(AtomicU64::new(0));
    let shed = Arc::new(AtomicU64::new(0));
    let failure = Arc::new(OnceLock::new());
    let (stop_tx, stop_rx) = oneshot::channel();
    let path = writer.path().to_path_buf();
    // The writer lingers itself (below), looking at what arrives.
    let subscriber = subscriber.with_linger(Duration::ZERO);
    let task = tokio::spawn(run(
        writer,
        subscriber,
        linger,
        stop_rx,
        Arc::clone(&dropped),
        Arc::clone(&written),
        Arc::clone(&shed),
        Arc::clone(&failure),
    ));
    WriterHandle {
        dropped,
        written,
        shed,
        failure,
        path,
        stop: Some(stop_tx),
        task,
    }
}

/// Whether `item` should be written without waiting for the linger.
fn is_urgent(item: &Received) -> bool {
    matches!(item, Received::Record(r) if r.is_final() && r.body_bytes() >= WRITE_AT_ONCE_BODY_BYTES)
}

/// Takes what is waiting, up to [`MAX_BATCH`]; whether any of it is urgent ([`is_urgent`]).
fn drain(sub: &mut Subscriber, batch: &mut Vec<Received>) -> bool {
    let mut urgent = false;
    while batch.len() < MAX_BATCH {
        match sub.try_recv() {
            Some(item) => {
                urgent |= is_urgent(&item);
                batch.push(item);
            }
            None => break,
        }
    }
    urgent
}

#[allow(clippy::too_many_arguments)]
async fn run(
    mut writer: Writer,
    mut sub: Subscriber,
    linger: Duration,
    mut stop: oneshot::Receiver<()>,
    dropped: Arc<AtomicU64>,
    written: Arc<AtomicU64>,
    shed: Arc<AtomicU64>,
    failure: Arc<OnceLock<String>>,
) -> Result<WriterStats, CaptureError> {
    let path = writer.path().to_path_buf();
    let mut stop_armed = true;
    let mut shed_warning = ShedWarning::default();
    loop {
        let mut batch = Vec::new();
        let mut last = false;
        tokio::select! {
            biased;
            r = &mut stop, if stop_armed => {
                if r.is_ok() {
                    // Drain what was published before the stop, then end.
                    last = true;
                    while let Some(item) = sub.try_recv() {
                        batch.push(item);
                    }
                } else {
                    // The handle was dropped: keep going until the stream closes.
                    stop_armed = false;
                    continue;
                }
            }
            item = sub.recv() => match item {
                None => last = true,
                Some(first) => {
                    let mut urgent = is_urgent(&first);
                    batch.push(first);
                    urgent |= drain(&mut sub, &mut batch);
                    // Linger for the records that follow, to write them together, looking every
                    // LINGER_STEP so that a large body arriving meanwhile does not wait it out.
                    let until = tokio::time::Instant::now() + linger;
                    while !urgent && batch.len() < MAX_BATCH && !last {
                        let now = tokio::time::Instant::now();
                        if now >= until {
                            break;
                        }
                        tokio::select! {
                            biased;
                            r = &mut stop, if stop_armed => {
                                if r.is_ok() {
                                    last = true;
                                } else {
                                    stop_armed = false;
                                }
                            }
                            () = tokio::time::sleep_until(until.min(now + LINGER_STEP)) => {}
                        }
                        urgent |= drain(&mut sub, &mut batch);
                    }
                    if last {
                        while let Some(item) = sub.try_recv() {
                            batch.push(item);
                        }
                    }
                }
            }
        }
        if !batch.is_empty() {
            let joined = tokio::task::spawn_blocking(move || {
                let r = writer.write_batch(&batch);
                (writer, r)
            })
            .await;
            let joined = match joined {
                Ok(joined) => joined,
                Err(e) => {
                    // Said now, not at shutdown: from here on nothing is saved.
                    let e = CaptureError::Task(e.to_string());
                    tracing::error!(error = %e, path = %path.display(), "capture writer stopped; the session is no longer saved");
                    let _ = failure.set(e.to_string());
                    return Err(e);
                }
            };
            writer = joined.0;
            match joined.1 {
                Ok(counts) => {
                    written.fetch_add(counts.written, Ordering::Relaxed);
                    dropped.fetch_add(counts.dropped, Ordering::Relaxed);
                    shed.fetch_add(counts.shed, Ordering::Relaxed);
                    shed_warning.add(counts.shed, shed.load(Ordering::Relaxed), &path);
                }
                Err(e) => {
                    tracing::error!(error = %e, "capture writer stopped; the session is no longer saved");
                    let _ = failure.set(e.to_string());
                    return Err(e);
                }
            }
        }
        if last {
            break;
        }
    }
    tokio::task::spawn_blocking(move || writer.finish())
        .await
        .map_err(|e| CaptureError::Task(e.to_string()))??;
    Ok(WriterStats {
        path,
        written: written.load(Ordering::Relaxed),
        dropped: dropped.load(Ordering::Relaxed),
        shed: shed.load(Ordering::Relaxed),
    })
}

/// Warns that records are being saved without their bodies: at the first one, then at most once per
/// [`SHED_WARNING_INTERVAL`] with the count since the last warning.
#[derive(Debug, Default)]
struct ShedWarning {
    last: Option<std::time::Instant>,
    since: u64,
}

impl ShedWarning {
    fn add(&mut self, shed: u64, total: u64, path: &Path) {
        self.since += shed;
        if self.since == 0
            || self
                .last
                .is_some_and(|t| t.elapsed() < SHED_WARNING_INTERVAL)
        {
            return;
        }
        tracing::warn!(
            records = self.since,
            total,
            path = %path.display(),
            "records saved without their bodies: the capture writer fell behind the network and \
             the record stream's body budget (--body-budget) was full"
        );
        self.last = Some(std::time::Instant::now());
        self.since = 0;
    }
}

/// The mode of a capture file on unix: owner only.
#[cfg(unix)]
pub const CAPTURE_MODE: u32 = 0o600;

/// Creates (or, unless `new`, truncates) a capture file readable by its owner only: captures hold cap
/// URLs, which are bearer secrets, and with `--keep-secrets` the login's secrets too. A file that
/// existed with a wider mode is narrowed before anything is written to it.
fn create_private(path: &Path, new: bool) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    if new {
        options.write(true).create_new(true);
    } else {
        options.write(true).create(true).truncate(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, CAPTURE_MODE);
    let file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // The mode above applies only to a file created now; an existing one keeps its own.
        if file.metadata()?.permissions().mode() & 0o777 != CAPTURE_MODE {
            file.set_permissions(std::fs::Permissions::from_mode(CAPTURE_MODE))?;
        }
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Body, Bus, Kind, Request, State};

    fn record(id: u64, body: &str) -> Record {
        let mut r = Record::new(id, Kind::Http);
        r.state = State::Done;
        r.request = Some(Request {
            method: "POST".into(),
            url: "http://127.0.0.1:9/".into(),
            client_url: None,
            version: "HTTP/1.1".into(),
            headers: vec![crate::record::Header {
                name: "Cookie".into(),
                value: "s=topsecret".into(),
            }],
            body: Body::whole(body.to_owned()),
        });
        r
    }

    /// Events are published before their poll finishes: a filter that keeps the poll keeps them too
    /// (the rule the log and the UI apply), judged on the poll's open version.
    #[test]
    fn a_filtered_writer_keeps_the_events_of_a_kept_poll_published_before_it_finished() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.jsonl");
        let mut writer = Writer::create(&path, FileHeader::new(None, None, None), true)
            .unwrap()
            .with_filter(Filter::parse("method:POST").unwrap());
        let mut poll = record(1, "{ack}");
        poll.state = State::Open;
        let mut event = Record::new(2, Kind::Event);
        event.state = State::Done;
        event.parent = Some(1);
        let mut other = Record::new(3, Kind::Event);
        other.state = State::Done;
        other.parent = Some(7);
        assert!(
            !writer.write_record(&poll).unwrap(),
            "an open record is not written"
        );
        assert!(
            writer.write_record(&event).unwrap(),
            "the event of a kept poll"
        );
        assert!(
            !writer.write_record(&other).unwrap(),
            "an event of a poll not kept"
        );
        poll.state = State::Done;
        assert!(writer.write_record(&poll).unwrap());
    }

    fn panicking_mask(record: &Record) -> Option<Record> {
        if record.id == 1 {
            panic!("masker bug");
        }
        secrets::mask_record(record)
    }

    /// A masker that panics costs that record its bodies (saved with a note), and the writer goes on
    /// recording everything after it.
    #[tokio::test]
    async fn a_failing_masker_drops_one_records_bodies_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.jsonl");
        let mut writer = Writer::create(&path, FileHeader::new(None, None, None), false).unwrap();
        writer.mask = panicking_mask;
        let bus = Bus::new(64);
        let handle = spawn_writer(writer, bus.subscribe());
        bus.publish(record(1, "passwd hidden here"));
        bus.publish(record(2, "plain"));
        assert!(handle.failure().is_none());
        let stats = handle.finish().await.unwrap();
        assert_eq!(stats.written, 2);
        let c = crate::capture::Reader::open(&path).unwrap();
        let ids: Vec<u64> = c.records.iter().map(|r| r.id).collect();
        assert_eq!(ids, vec![1, 2]);
        let first = &c.records[0];
        let req = first.request.as_ref().unwrap();
        assert!(req.body.data.is_empty() && req.body.truncated);
        assert_eq!(req.body.size, "passwd hidden here".len() as u64);
        assert_eq!(req.headers[0].value, "s=********");
        assert!(first.notes.iter().any(|n| n == MASK_FAILED_NOTE));
        assert_eq!(c.records[1].request.as_ref().unwrap().body.data, "plain");
    }

    /// Records the record stream published without their bodies (its budget was full) are saved
    /// with their note and counted, so the end of a session can say how many.
    #[tokio::test]
    async fn records_saved_without_their_shed_bodies_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.jsonl");
        let writer = Writer::create(&path, FileHeader::new(None, None, None), false).unwrap();
        let bus = Bus::with_body_budget(64, 100);
        let handle = spawn_writer(writer, bus.subscribe());
        for id in 1..=3 {
            // 60 bytes each: the first fits the budget, the next two do not while it waits.
            bus.publish(record(id, &"b".repeat(60)));
        }
        let stats = handle.finish().await.unwrap();
        assert_eq!((stats.written, stats.shed), (3, 2));
        let c = crate::capture::Reader::open(&path).unwrap();
        let shed: Vec<bool> = c.records.iter().map(Record::bodies_were_shed).collect();
        assert_eq!(shed, [false, true, true]);
        let body = &c.records[2].request.as_ref().unwrap().body;
        assert!(body.data.is_empty() && body.truncated && body.size == 60);
    }

    /// Waits (at most 20 s) until the writer has written `n` records; whether it did.
    async fn written_soon(handle: &WriterHandle, n: u64) -> bool {
        let wait = async {
            while handle.written() < n {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(20), wait)
            .await
            .is_ok()
    }

    /// A record with a large body is written as soon as it arrives, with whatever lingered before
    /// it, not after the linger (an hour here): its copy into the file is cheapest while the body is
    /// still in the cache.
    #[tokio::test]
    async fn a_large_body_is_written_without_waiting_for_the_linger() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.jsonl");
        let writer = Writer::create(&path, FileHeader::new(None, None, None), true).unwrap();
        let bus = Bus::new(64);
        let hour = Duration::from_secs(3600);
        let handle = spawn_writer_with_linger(writer, bus.subscribe(), hour);
        bus.publish(record(1, &"l".repeat(WRITE_AT_ONCE_BODY_BYTES)));
        assert!(written_soon(&handle, 1).await, "alone");
        bus.publish(record(2, "small"));
        tokio::task::yield_now().await;
        bus.publish(record(3, &"m".repeat(WRITE_AT_ONCE_BODY_BYTES)));
        assert!(
            written_soon(&handle, 3).await,
            "arriving while a small record lingered"
        );
        let stats = handle.finish().await.unwrap();
        assert_eq!(stats.written, 3);
        let c = crate::capture::Reader::open(&path).unwrap();
        let sizes: Vec<u64> = c
            .records
            .iter()
            .map(|r| r.request.as_ref().unwrap().body.size)
            .collect();
        assert_eq!(
            sizes,
            [
                WRITE_AT_ONCE_BODY_BYTES as u64,
                5,
                WRITE_AT_ONCE_BODY_BYTES as u64
            ]
        );
    }

    /// Small records wait for the linger to be written together; stopping the writer meanwhile
    /// writes them at once and ends it.
    #[tokio::test]
    async fn a_stop_during_the_linger_writes_what_lingered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.jsonl");
        let writer = Writer::create(&path, FileHeader::new(None, None, None), true).unwrap();
        let bus = Bus::new(64);
        let handle = spawn_writer_with_linger(writer, bus.subscribe(), Duration::from_secs(3600));
        bus.publish(record(1, "one"));
        bus.publish(record(2, "two"));
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(handle.written(), 0, "small records linger");
        let stats = tokio::time::timeout(Duration::from_secs(20), handle.finish())
            .await
            .expect("the stop ends the linger")
            .unwrap();
        assert_eq!(stats.written, 2);
    }

    /// A record whose bodies are larger than a capture record may hold is saved without them, with a
    /// note, so that every record the writer writes can be read back.
    #[test]
    fn a_record_too_large_for_a_capture_record_is_saved_without_its_bodies() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.jsonl");
        let mut writer = Writer::create(&path, FileHeader::new(None, None, None), false).unwrap();
        writer.max_raw = 4096;
        let big = "y".repeat(8192);
        assert!(writer.write_record(&record(1, &big)).unwrap());
        assert!(writer.write_record(&record(2, "small")).unwrap());
        writer.finish().unwrap();
        let c = crate::capture::Reader::open(&path).unwrap();
        assert!(c.warnings.is_empty());
        let first = &c.records[0];
        let body = &first.request.as_ref().unwrap().body;
        assert!(body.data.is_empty() && body.truncated);
        assert_eq!(body.size, 8192);
        assert!(first.notes.iter().any(|n| n == LINE_TOO_LONG_NOTE));
        assert_eq!(c.records[1].request.as_ref().unwrap().body.data, "small");
        let file = std::fs::read(&path).unwrap();
        assert!(file.len() < 4096, "{} bytes", file.len());
    }

    /// Version 2 writes a body's bytes as they are after its record's line: a binary body costs its
    /// own length in the file (no base64, no JSON escapes), and the line says where it is.
    #[test]
    fn bodies_follow_their_line_as_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raw.jsonl");
        let mut writer = Writer::create(&path, FileHeader::new(None, None, None), true).unwrap();
        let binary: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
        let mut r = record(1, "req\n\"text\"");
        r.response = Some(crate::record::Response {
            status: 200,
            version: "HTTP/1.1".into(),
            headers: Vec::new(),
            body: crate::record::Body {
                original: Some(bytes::Bytes::from_static(b"\0orig")),
                ..crate::record::Body::whole(binary.clone())
            },
        });
        let empty = record(2, "");
        assert!(writer.write_record(&r).unwrap());
        assert!(writer.write_record(&empty).unwrap());
        writer.finish().unwrap();
        let file = std::fs::read(&path).unwrap();
        let header_end = file.iter().position(|b| *b == b'\n').unwrap() + 1;
        let line_end = header_end + file[header_end..].iter().position(|b| *b == b'\n').unwrap();
        let line: serde_json::Value = serde_json::from_slice(&file[header_end..line_end]).unwrap();
        assert_eq!(line["record"]["request"]["body"]["data"]["raw"], 10);
        assert_eq!(line["record"]["response"]["body"]["data"]["raw"], 3000);
        assert_eq!(line["record"]["response"]["body"]["original"]["raw"], 5);
        let mut want = b"req\n\"text\"".to_vec();
        want.extend_from_slice(&binary);
        want.extend_from_slice(b"\0orig\n");
        assert_eq!(&file[line_end + 1..line_end + 1 + want.len()], &want[..]);
        let rest = std::str::from_utf8(&file[line_end + 1 + want.len()..]).unwrap();
        assert!(rest.contains(r#""body":{"data":"","size":0}"#), "{rest}");
        let c = crate::capture::Reader::open(&path).unwrap();
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert!(
            c.records == vec![r, empty],
            "the records read back as written"
        );
    }
}
