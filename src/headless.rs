//! The headless log: one line per finished record, mitmdump-style (time, client, method, URL or cap,
//! status, size, duration), written to standard output so that `capscope run > flows.log` and pipes
//! get the records alone (the `tracing` log, on standard error, carries only diagnostics); and
//! [`LogOutput`], the non-blocking writer both streams go out through.
//!
//! A [`Bus`](crate::record::Bus) subscriber like any other consumer. It owns only the line format, its
//! loop and the output side; it must not touch the proxy or change records.
//!
//! Nothing that forwards traffic ever waits for the terminal: lines are put on a bounded queue and a
//! thread of its own writes the queue out. The lines of the records waiting at a wake-up go as one
//! batch (one hand-off to that thread, one write), not one per record; the batch's buffer itself is
//! handed over, and the thread gives emptied buffers back for the next batches. When the queue is
//! full (stdout is a pipe nobody reads, or a terminal scrolled back and paused) new lines are dropped
//! and counted; the count is written as soon as the output moves again, and on exit.

use std::fmt::Write as _;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use time::OffsetDateTime;

use crate::filter::Filter;
use crate::record::{Kind, Received, Record, State, Subscriber};

/// The `tracing` target of the log's own diagnostics (a lag, a closed output).
pub const TARGET: &str = "capscope::headless";

/// Writes every finished record (every one that `filter` keeps, when there is one: by
/// [`crate::filter::keeps`], the rule the UI uses too) to standard output until the stream ends,
/// through the process's non-blocking [`LogOutput::stdout`].
pub async fn run(records: Subscriber, filter: Option<Filter>) {
    match LogOutput::stdout() {
        // Each batch is handed to the output's thread as it is, not copied into its queue.
        Some(out) => run_batches(records, filter, |batch| out.queue_batch(batch)).await,
        None => run_to(records, filter, std::io::stdout()).await,
    }
}

/// [`run`] with the output passed in (a [`LogOutput`] in the binary, so that a terminal or pipe that
/// does not keep up never holds up a worker thread).
///
/// The lines of the records that are waiting are written together, in one `write` of up to
/// [`LOG_BATCH_BYTES`]: one hand-off to the output's thread per batch, not per record.
pub async fn run_to(records: Subscriber, filter: Option<Filter>, mut out: impl Write) {
    run_batches(records, filter, |batch| {
        // A LogOutput never fails a write; a plain writer's failure loses the lines.
        let _ = out.write_all(batch.as_bytes());
        batch.clear();
    })
    .await
}

/// The log's loop: the lines of the records waiting at each wake-up, gathered into one batch of up to
/// [`LOG_BATCH_BYTES`] and given to `hand_over`, which leaves the batch empty (it may swap in another
/// buffer).
async fn run_batches(
    mut records: Subscriber,
    filter: Option<Filter>,
    mut hand_over: impl FnMut(&mut String),
) {
    let mut kept = crate::filter::KeptIds::default();
    let mut batch = String::new();
    while let Some(first) = records.recv().await {
        let mut next = Some(first);
        while let Some(received) = next {
            match received {
                Received::Record(r) => {
                    if kept.keep(filter.as_ref(), &r) {
                        push_line(&mut batch, &r);
                    }
                }
                Received::Lagged(n) => {
                    tracing::warn!(target: TARGET, "the log fell behind: {n} records not shown")
                }
            }
            next = if batch.len() < LOG_BATCH_BYTES {
                records.try_recv()
            } else {
                None
            };
        }
        if !batch.is_empty() {
            hand_over(&mut batch);
        }
    }
}

/// The most bytes of record lines handed to the output at once.
pub const LOG_BATCH_BYTES: usize = 64 * 1024;

/// Appends the record's line (and its newline) to `batch`; nothing while the record is open.
fn push_line(batch: &mut String, r: &Record) {
    if write_line(batch, r) {
        batch.push('\n');
    }
}

/// The process's stdout writer (records), once started.
static STDOUT: OnceLock<Option<LogOutput>> = OnceLock::new();

/// The process's stderr writer (the `tracing` log), once started.
static STDERR: OnceLock<Option<LogOutput>> = OnceLock::new();

/// How many emptied batch buffers the writing thread keeps for reuse.
const SPARE_BUFFERS: usize = 4;

/// How many log lines may wait for the output before new ones are dropped.
pub const LOG_QUEUE_LINES: usize = 1024;

/// A non-blocking, line-oriented writer: every `write` is one line put on a bounded queue (never
/// waiting), and a thread of its own writes the queue to the real output. Cheap to clone; usable as a
/// `tracing_subscriber` writer.
pub struct LogOutput {
    inner: Arc<OutputInner>,
    /// The part of a line written so far (a line is queued whole, when its newline comes).
    partial: Vec<u8>,
}

impl Clone for LogOutput {
    fn clone(&self) -> Self {
        LogOutput {
            inner: self.inner.clone(),
            partial: Vec::new(),
        }
    }
}

struct OutputInner {
    tx: SyncSender<Vec<u8>>,
    /// Emptied batch buffers the writing thread gives back, for [`LogOutput::queue_batch`] to reuse
    /// (at most [`SPARE_BUFFERS`], none larger than twice [`LOG_BATCH_BYTES`]).
    spare: Mutex<Vec<Vec<u8>>>,
    dropped: AtomicU64,
    /// Lines queued and not yet written (for [`LogOutput::flush_for`], and the queue's bound).
    pending: Mutex<usize>,
    capacity: usize,
    written: Condvar,
}

impl std::fmt::Debug for LogOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogOutput")
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

impl LogOutput {
    /// A writer to `out`, with room for `capacity` lines in waiting. Starts the writing thread.
    pub fn new(out: impl Write + Send + 'static, capacity: usize) -> std::io::Result<LogOutput> {
        let (tx, rx) = sync_channel(capacity.max(1));
        let inner = Arc::new(OutputInner {
            tx,
            spare: Mutex::new(Vec::new()),
            dropped: AtomicU64::new(0),
            pending: Mutex::new(0),
            capacity: capacity.max(1),
            written: Condvar::new(),
        });
        let for_thread = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("capscope-log".into())
            .spawn(move || write_lines(rx, out, for_thread))?;
        Ok(LogOutput {
            inner,
            partial: Vec::new(),
        })
    }

    /// The process's one writer to stdout (started on first use; `None` if its thread could not be).
    pub fn stdout() -> Option<LogOutput> {
        STDOUT
            .get_or_init(|| LogOutput::new(std::io::stdout(), LOG_QUEUE_LINES).ok())
            .clone()
    }

    /// The process's one writer to stderr, for the `tracing` log (started on first use).
    pub fn stderr() -> Option<LogOutput> {
        STDERR
            .get_or_init(|| LogOutput::new(std::io::stderr(), LOG_QUEUE_LINES).ok())
            .clone()
    }

    /// How many lines were dropped because the output did not keep up.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Waits up to `limit` for the lines queued so far to be written; `false` if some were not.
    pub fn flush_for(&self, limit: Duration) -> bool {
        let pending = self.inner.pending.lock().unwrap_or_else(|p| p.into_inner());
        let (pending, _) = self
            .inner
            .written
            .wait_timeout_while(pending, limit, |n| *n > 0)
            .unwrap_or_else(|p| p.into_inner());
        *pending == 0
    }

    /// Queues `lines` (one or more whole lines) unless that would put more than the capacity's worth
    /// of lines in waiting; then they are dropped and counted.
    fn queue(&self, lines: &[u8]) {
        self.queue_owned(lines.to_vec());
    }

    /// Queues the whole lines in `batch` as [`LogOutput::queue`] does, without copying them: the
    /// buffer itself goes to the writing thread and `batch` is left empty, with a buffer that thread
    /// gave back when there is one.
    fn queue_batch(&self, batch: &mut String) {
        let spare = self
            .inner
            .spare
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default();
        let full = std::mem::replace(batch, spare);
        self.queue_owned(full.into_bytes());
    }

    fn queue_owned(&self, lines: Vec<u8>) {
        let inner = &self.inner;
        let n = line_count(&lines);
        {
            let mut pending = inner.pending.lock().unwrap_or_else(|p| p.into_inner());
            if *pending > 0 && *pending + n > inner.capacity {
                inner.dropped.fetch_add(n as u64, Ordering::Relaxed);
                return;
            }
            *pending += n;
        }
        match inner.tx.try_send(lines) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                inner.dropped.fetch_add(n as u64, Ordering::Relaxed);
                inner.lines_done(n);
            }
        }
    }
}

/// How many lines `text` holds (a last line without its newline counts too).
fn line_count(text: &[u8]) -> usize {
    let newlines = text.iter().filter(|&&b| b == b'\n').count();
    newlines + usize::from(text.last().is_some_and(|&b| b != b'\n'))
}

impl OutputInner {
    fn lines_done(&self, n: usize) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        *pending = pending.saturating_sub(n);
        if *pending == 0 {
            self.written.notify_all();
        }
    }
}

impl Write for LogOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match buf.iter().rposition(|&b| b == b'\n') {
            // The common case (one `tracing` event): whole lines in one write.
            Some(end) if self.partial.is_empty() && end + 1 == buf.len() => self.queue(buf),
            Some(end) => {
                self.partial.extend_from_slice(&buf[..=end]);
                let lines = std::mem::take(&mut self.partial);
                self.queue(&lines);
                self.partial.extend_from_slice(&buf[end + 1..]);
            }
            None => self.partial.extend_from_slice(buf),
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogOutput {
    fn drop(&mut self) {
        if !self.partial.is_empty() {
            let rest = std::mem::take(&mut self.partial);
            self.queue(&rest);
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogOutput {
    type Writer = LogOutput;

    fn make_writer(&'a self) -> LogOutput {
        self.clone()
    }
}

/// The writing thread: writes lines as they come (batched while more are waiting), and says how many
/// were dropped whenever that count grew. When the output breaks (a closed pipe: `capscope run |
/// head`) it says so once on standard error and stops writing; the proxy goes on. Ends when every
/// [`LogOutput`] is gone.
fn write_lines(rx: Receiver<Vec<u8>>, out: impl Write, inner: std::sync::Weak<OutputInner>) {
    let mut out = std::io::BufWriter::new(out);
    let mut reported = 0;
    let mut broken = false;
    while let Ok(line) = rx.recv() {
        let mut batch = vec![line];
        batch.extend(rx.try_iter().take(LOG_QUEUE_LINES));
        let Some(inner) = inner.upgrade() else {
            return;
        };
        if !broken {
            let dropped = inner.dropped.load(Ordering::Relaxed);
            let mut wrote = batch.iter().try_for_each(|line| out.write_all(line));
            if dropped > reported {
                wrote = wrote.and_then(|()| {
                    writeln!(
                        out,
                        "capscope: {} log lines dropped: the output was not read fast enough",
                        dropped - reported
                    )
                });
                reported = dropped;
            }
            // A broken output loses the lines; the log must never take the process down.
            if let Err(e) = wrote.and_then(|()| out.flush()) {
                broken = true;
                eprintln!(
                    "capscope: cannot write records to the output any more ({e}); the proxy goes \
                     on and the capture still gets them"
                );
            }
        }
        let written = batch.iter().map(|lines| line_count(lines)).sum();
        {
            let mut spare = inner.spare.lock().unwrap_or_else(|p| p.into_inner());
            for mut buffer in batch {
                if spare.len() < SPARE_BUFFERS && buffer.capacity() <= 2 * LOG_BATCH_BYTES {
                    buffer.clear();
                    spare.push(buffer);
                }
            }
        }
        inner.lines_done(written);
    }
}

/// Writes what the process's stdout and stderr writers still hold (waiting up to `limit` for each),
/// and says on stderr how many record lines were dropped, if any.
pub fn finish_stdout(limit: Duration) {
    if let Some(Some(err)) = STDERR.get() {
        err.flush_for(limit);
    }
    let Some(Some(out)) = STDOUT.get() else {
        return;
    };
    out.flush_for(limit);
    let dropped = out.dropped();
    if dropped > 0 {
        eprintln!(
            "capscope: {dropped} log lines were dropped because the output was not read fast enough"
        );
    }
}

/// The line for a record; `None` while it is still open.
pub fn line(r: &Record) -> Option<String> {
    let mut out = String::new();
    write_line(&mut out, r).then_some(out)
}

/// Appends the record's line (without a newline) to `out`, written straight into it: the log formats
/// every finished record, and a `String` per field was most of its cost. `false`, and nothing
/// written, while the record is open.
fn write_line(out: &mut String, r: &Record) -> bool {
    if r.state == State::Open {
        return false;
    }
    write_clock(out, r.started_us);
    out.push(' ');
    out.push_str(r.client.as_deref().unwrap_or("-"));
    out.push(' ');
    match r.kind {
        Kind::Http | Kind::Login => {
            let (method, target) = match &r.request {
                Some(req) => (req.method.as_str(), req.url.as_str()),
                None => ("-", "-"),
            };
            out.push_str(method);
            out.push(' ');
            if let Some(cap) = &r.cap {
                let _ = write!(out, "[{cap}] ");
            }
            out.push_str(target);
            match &r.response {
                Some(resp) => {
                    let _ = write!(out, " {} ", resp.status);
                }
                None => out.push_str(" - "),
            }
            write_size(out, r.response.as_ref().map_or(0, |resp| resp.body.size));
            out.push(' ');
            write_took(out, r);
        }
        Kind::Event => {
            out.push_str("EVENT ");
            out.push_str(r.event.as_ref().map_or("-", |e| e.message.as_str()));
        }
        Kind::Tunnel => match &r.tunnel {
            Some(t) => {
                let _ = write!(out, "TUNNEL {} up ", t.target);
                write_size(out, t.bytes_up);
                out.push_str(" down ");
                write_size(out, t.bytes_down);
                out.push(' ');
                write_took(out, r);
            }
            None => out.push_str("TUNNEL"),
        },
        Kind::Error => out.push_str("ERROR"),
    }
    match (&r.state, &r.error) {
        (State::Failed, Some(e)) => {
            let _ = write!(out, " FAILED: {e}");
        }
        (State::Failed, None) => out.push_str(" FAILED"),
        _ => {}
    }
    if let Some((first, rest)) = r.notes.split_first() {
        out.push_str(" (");
        out.push_str(first);
        for note in rest {
            out.push_str("; ");
            out.push_str(note);
        }
        out.push(')');
    }
    true
}

fn write_clock(out: &mut String, us: i64) {
    match OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000) {
        Ok(t) => {
            let _ = write!(
                out,
                "{:02}:{:02}:{:02}.{:03}",
                t.hour(),
                t.minute(),
                t.second(),
                t.millisecond()
            );
        }
        Err(_) => out.push_str("--:--:--.---"),
    }
}

/// How long the exchange took (nothing when it has no end time).
fn write_took(out: &mut String, r: &Record) {
    let Some(us) = r.timings.done_us else {
        return;
    };
    let _ = if us < 1000 {
        write!(out, "{us}us")
    } else if us < 10_000_000 {
        write!(out, "{}ms", us / 1000)
    } else {
        write!(out, "{:.1}s", us as f64 / 1e6)
    };
}

fn write_size(out: &mut String, bytes: u64) {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    let _ = if bytes < 1024 {
        write!(out, "{bytes}b")
    } else if b < KIB * KIB {
        write!(out, "{:.1}k", b / KIB)
    } else {
        write!(out, "{:.1}M", b / KIB / KIB)
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Body, Request, Response, TunnelInfo};

    /// An output that takes nothing until the test opens it, then collects everything.
    struct Gate {
        open: std::sync::mpsc::Receiver<()>,
        opened: bool,
        out: Arc<Mutex<Vec<u8>>>,
    }

    impl Gate {
        /// A gate that takes nothing until a `()` is sent on the sender; and what it wrote.
        fn closed() -> (std::sync::mpsc::Sender<()>, Self, Arc<Mutex<Vec<u8>>>) {
            let (open, gate) = std::sync::mpsc::channel();
            let out = Arc::new(Mutex::new(Vec::new()));
            let gate = Gate {
                open: gate,
                opened: false,
                out: out.clone(),
            };
            (open, gate, out)
        }
    }

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if !self.opened {
                let _ = self.open.recv();
                self.opened = true;
            }
            self.out.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stuck_output_drops_and_counts_lines_and_never_blocks_the_writer() {
        let (open, gate, out) = Gate::closed();
        let mut log = LogOutput::new(gate, 4).unwrap();
        // The output takes nothing: every write still returns at once.
        for i in 0..100 {
            writeln!(log, "line {i}").unwrap();
        }
        assert!(log.dropped() >= 90, "{} dropped", log.dropped());
        open.send(()).unwrap();
        assert!(log.flush_for(Duration::from_secs(10)));
        writeln!(log, "after").unwrap();
        assert!(log.flush_for(Duration::from_secs(10)));
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        assert!(text.starts_with("line 0\n"), "{text}");
        assert!(
            text.lines()
                .all(|l| l.starts_with("line ") || l.contains("log lines dropped") || l == "after"),
            "lines are whole: {text}"
        );
        assert!(text.contains("log lines dropped"), "{text}");
        assert!(text.ends_with("after\n"), "{text}");
    }

    /// An output that keeps every `write` call apart.
    #[derive(Clone, Default)]
    struct Calls(Arc<Mutex<Vec<String>>>);

    impl Write for Calls {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap()
                .push(String::from_utf8_lossy(buf).into_owned());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn done(id: u64) -> Record {
        let mut r = Record::new(id, Kind::Http);
        r.state = State::Done;
        r
    }

    #[tokio::test]
    async fn the_lines_of_waiting_records_go_out_in_one_write() {
        let bus = crate::record::Bus::new(16);
        let sub = bus.subscribe();
        bus.publish(Record::new(1, Kind::Http)); // open: no line
        for id in 1..=3 {
            bus.publish(done(id));
        }
        drop(bus);
        let out = Calls::default();
        run_to(sub, None, out.clone()).await;
        let calls = out.0.lock().unwrap().clone();
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert_eq!(calls[0].lines().count(), 3, "{calls:?}");
        assert!(calls[0].ends_with('\n'), "{calls:?}");
    }

    #[test]
    fn a_batch_that_does_not_fit_is_dropped_and_counted_line_by_line() {
        let (open, gate, out) = Gate::closed();
        let mut log = LogOutput::new(gate, 4).unwrap();
        writeln!(log, "first").unwrap(); // held by the stuck output
        log.write_all(b"a\nb\nc\nd\ne\n").unwrap(); // five lines: more than fit
        assert_eq!(log.dropped(), 5);
        log.write_all(b"x\ny\n").unwrap();
        assert_eq!(log.dropped(), 5, "two more lines fit");
        open.send(()).unwrap();
        assert!(log.flush_for(Duration::from_secs(10)));
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        assert!(text.starts_with("first\nx\ny\n"), "{text}");
    }

    #[test]
    fn a_batch_is_handed_over_whole_and_its_buffer_comes_back_for_the_next() {
        let out = Calls::default();
        let log = LogOutput::new(out.clone(), 16).unwrap();
        let mut batch = String::with_capacity(4096);
        batch.push_str("one\ntwo\n");
        let first = batch.as_ptr();
        log.queue_batch(&mut batch);
        assert!(batch.is_empty());
        assert!(log.flush_for(Duration::from_secs(10)));
        // The thread gave the written buffer back: the next batch is made in it, not in a new one.
        batch.push_str("three\n");
        log.queue_batch(&mut batch);
        assert_eq!(batch.as_ptr(), first, "the buffer written first is reused");
        assert!(batch.capacity() >= 4096);
        assert!(log.flush_for(Duration::from_secs(10)));
        assert_eq!(out.0.lock().unwrap().concat(), "one\ntwo\nthree\n");
        assert_eq!(log.dropped(), 0);
    }

    #[test]
    fn an_http_record_makes_one_line_with_the_essentials() {
        let mut r = Record::new(1, Kind::Http);
        assert!(line(&r).is_none(), "open records make no line");
        r.started_us = 3_600_000_000 + 61_500_000; // 01:01:01.500 UTC on 1970-01-01
        r.state = State::Done;
        r.client = Some("127.0.0.1:5000".into());
        r.request = Some(Request {
            method: "POST".into(),
            url: "https://sim.example:12043/cap/abc".into(),
            ..Request::default()
        });
        r.response = Some(Response {
            status: 200,
            body: Body::whole(vec![0u8; 2048]),
            ..Response::default()
        });
        r.timings.done_us = Some(35_000);
        r.cap = Some("EventQueueGet".into());
        assert_eq!(
            line(&r).unwrap(),
            "01:01:01.500 127.0.0.1:5000 POST [EventQueueGet] https://sim.example:12043/cap/abc 200 2.0k 35ms"
        );
    }

    #[test]
    fn missing_parts_events_errors_and_notes_keep_their_places() {
        let mut r = Record::new(3, Kind::Login);
        r.started_us = 59_999; // 00:00:00.059
        r.state = State::Failed;
        r.request = Some(Request {
            method: "GET".into(),
            url: "http://g/login".into(),
            ..Request::default()
        });
        r.notes = vec!["a".into(), "b".into()];
        assert_eq!(
            line(&r).unwrap(),
            "00:00:00.059 - GET http://g/login - 0b  FAILED (a; b)"
        );
        let mut e = Record::new(4, Kind::Event);
        e.state = State::Done;
        e.started_us = 0;
        e.client = Some("c".into());
        assert_eq!(line(&e).unwrap(), "00:00:00.000 c EVENT -");
        let mut x = Record::new(5, Kind::Error);
        x.state = State::Failed;
        x.started_us = 0;
        x.error = Some("garbage".into());
        x.notes = vec!["n".into()];
        assert_eq!(
            line(&x).unwrap(),
            "00:00:00.000 - ERROR FAILED: garbage (n)"
        );
        // The batch gets the same line and its newline; an open record adds nothing.
        let mut batch = String::new();
        push_line(&mut batch, &x);
        push_line(&mut batch, &Record::new(6, Kind::Http));
        assert_eq!(batch, format!("{}\n", line(&x).unwrap()));
    }

    #[test]
    fn failures_and_tunnels_say_what_happened() {
        let mut r = Record::new(2, Kind::Tunnel);
        r.started_us = 0;
        r.state = State::Failed;
        r.error = Some("could not connect".into());
        r.tunnel = Some(TunnelInfo {
            target: "h:22".into(),
            bytes_up: 10,
            bytes_down: 3 * 1024 * 1024,
        });
        r.timings.done_us = Some(12_000_000);
        assert_eq!(
            line(&r).unwrap(),
            "00:00:00.000 - TUNNEL h:22 up 10b down 3.0M 12.0s FAILED: could not connect"
        );
    }
}
