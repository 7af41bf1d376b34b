//! The terminal UI: live inspection of a session (`capscope run`, `capscope demo`) and of capture
//! files (`capscope view`).
//!
//! Three parts kept apart (the gitui / ratatui-template shape): [`state`] is everything a frame is
//! drawn from; [`update`] turns records, keys, mouse events and explicit ticks into new state; and
//! [`render`] draws the state and changes nothing. Keys are data ([`keys::BINDINGS`]): the same table
//! dispatches and writes the `?` help. History lives in a [`crate::store::Store`] with its own limits.
//!
//! [`run`] owns the terminal: raw mode, the alternate screen and mouse capture behind a drop guard,
//! plus a panic hook, so the terminal is restored on every way out. Each frame drains what records
//! are pending (bounded in count and time: [`MAX_DRAIN`], [`DRAIN_BUDGET`]), draws at most [`FRAME`]
//! apart, and polls keys until the next frame; a key is drawn at once, after at most
//! [`KEY_DRAIN_BUDGET`] of records. Log output goes to [`log`] (a file and the header), never over the UI.
//!
//! This module must not touch the proxy or the network; it reads records from a
//! [`crate::record::Subscriber`] or a capture file.

pub mod detail;
pub mod keys;
pub mod log;
pub mod render;
pub mod state;
pub mod update;
pub mod views;

#[cfg(test)]
mod fixture;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, TryRecvError};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use base64::Engine as _;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{
    self, DisableMouseCapture, EnableMouseCapture, Event, KeyEventKind,
};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::Terminal;

pub use state::App;

use crate::capture::{Line, Reader, Records};
use crate::record::{now_us, Bus, Received, Record, Subscriber};

/// The shortest time between two frames (about 30 frames a second).
pub const FRAME: Duration = Duration::from_millis(33);

/// How often time-driven state is refreshed (lost finals, caps and timeline views, capture size).
pub const TICK: Duration = Duration::from_millis(500);

/// The most records taken in per frame, so a burst cannot delay a frame (or a key) for long; the
/// rest waits for the next frame.
pub const MAX_DRAIN: usize = 50_000;

/// The longest a frame spends taking in records: half a frame, so drawing and keys keep their share
/// when records come faster than the UI takes them in (the stream then holds the rest, up to its
/// capacity, and says how many it dropped past that).
pub const DRAIN_BUDGET: Duration = Duration::from_millis(16);

/// The longest the frame right after a key spends taking in records before drawing the key's
/// effect, so a backlog of records never delays what the user asked for.
pub const KEY_DRAIN_BUDGET: Duration = Duration::from_millis(2);

/// Records taken in between two looks at the clock while draining.
const DRAIN_CLOCK_EVERY: usize = 64;

/// Records per batch when reading a file.
const FILE_BATCH: usize = 2048;

/// Batches a file reader may have waiting (so reading a huge file holds bounded memory in flight).
const FILE_BATCHES_WAITING: usize = 16;

/// How often `view --follow` looks for new bytes at the end of the file.
pub const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// Sends a recorded request again through capscope (so the replay is recorded like any request,
/// with the [`REPLAY_HEADER`]); answers what it did, in words for the footer.
pub type Replayer = Box<dyn Fn(&Record) -> Result<String, String> + Send>;

/// The request header a replay carries: the id of the record it replays.
pub const REPLAY_HEADER: &str = "x-capscope-replay";

/// The capture writer as the UI sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureState {
    /// Why the writer stopped before the session did: from then on nothing is saved.
    pub failure: Option<String>,
    /// Records the writer lost because it fell behind the record stream.
    pub dropped: u64,
}

/// Reads the capture writer's state; polled every frame, so a failure shows at once. `None` once
/// the writer is gone (the session is ending): the UI keeps what it last saw.
pub type CaptureWatch = Box<dyn Fn() -> Option<CaptureState> + Send>;

/// Where records come from.
pub enum Feed {
    /// A live session's record stream, and its capture writer when it saves one.
    Live {
        records: Subscriber,
        bus: Arc<Bus>,
        capture: Option<CaptureWatch>,
    },
    /// A capture file read on its own thread.
    File(Receiver<FileMsg>),
}

/// What a file reader sends.
#[derive(Debug)]
pub enum FileMsg {
    Records(Vec<Record>),
    Lagged(u64),
    /// Something went wrong reading (shown; what was read stays).
    Error(String),
    End,
}

/// Restores the terminal when dropped.
struct Guard;

impl Guard {
    fn enter() -> io::Result<Self> {
        install_panic_hook();
        let guard = Guard;
        enter()?;
        Ok(guard)
    }
}

/// Raw mode, the alternate screen and mouse capture.
fn enter() -> io::Result<()> {
    enable_raw_mode()?;
    execute!(io::stdout(), EnterAlternateScreen, EnableMouseCapture)
}

/// `R`: the record's request as text in `$EDITOR` (`$VISUAL`, else `vi`), read back as a record to
/// replay. The terminal is handed to the editor meanwhile; the caller takes it back.
fn edit_in_editor(record: &Record) -> Result<Record, String> {
    let text = detail::request_text(record).ok_or("this record has no request")?;
    let file = tempfile_path(record.id);
    std::fs::write(&file, &text).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    restore();
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".to_owned());
    let mut words = editor.split_whitespace();
    let program = words.next().unwrap_or("vi");
    let status = std::process::Command::new(program)
        .args(words)
        .arg(&file)
        .status();
    let edited = std::fs::read_to_string(&file);
    let _ = std::fs::remove_file(&file);
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => return Err(format!("{editor} exited with {s}; nothing replayed")),
        Err(e) => return Err(format!("cannot run {editor}: {e}")),
    }
    let edited = edited.map_err(|e| format!("cannot read the edited request: {e}"))?;
    detail::request_from_text(record, &edited)
}

/// A private scratch file for one edit.
fn tempfile_path(id: u64) -> PathBuf {
    std::env::temp_dir().join(format!("capscope-replay-{}-{id}.http", std::process::id()))
}

impl Drop for Guard {
    fn drop(&mut self) {
        UI_UP.store(false, Ordering::SeqCst);
        UI_THREAD.with(|t| t.set(false));
        restore();
    }
}

/// Leaves raw mode, the alternate screen and mouse capture (harmless when not in them).
pub fn restore() {
    let _ = execute!(
        io::stdout(),
        DisableMouseCapture,
        LeaveAlternateScreen,
        ratatui::crossterm::cursor::Show
    );
    let _ = disable_raw_mode();
}

/// Whether a UI owns the terminal now.
static UI_UP: AtomicBool = AtomicBool::new(false);

std::thread_local! {
    /// Set on the thread that runs the UI.
    static UI_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A panic on the UI's own thread restores the terminal before the previous hook prints, so the
/// message is readable. A panic elsewhere while the UI is up (a connection's task) goes to the log
/// instead of being printed over the UI, which goes on.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if UI_UP.load(Ordering::SeqCst) && !UI_THREAD.with(|t| t.get()) {
                tracing::error!("a task panicked: {info}");
                return;
            }
            restore();
            previous(info);
        }));
    });
}

/// Runs the UI on the current thread until the user quits or `stop` is set. The terminal is
/// restored before this returns, whatever happens.
pub fn run(
    mut app: App,
    mut feed: Feed,
    stop: Arc<AtomicBool>,
    replayer: Option<Replayer>,
) -> io::Result<App> {
    let _guard = Guard::enter()?;
    UI_THREAD.with(|t| t.set(true));
    UI_UP.store(true, Ordering::SeqCst);
    let mut terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
    terminal.clear()?;
    let size = terminal.size()?;
    app.resize(size.width, size.height);
    app.tick(now_us());
    let mut last_tick = Instant::now();
    let mut dirty = true;
    let mut keyed = false;
    while !app.quit && !stop.load(Ordering::SeqCst) {
        let frame_start = Instant::now();
        let budget = if std::mem::take(&mut keyed) {
            KEY_DRAIN_BUDGET
        } else {
            DRAIN_BUDGET
        };
        dirty |= drain_for(&mut app, &mut feed, budget) > 0;
        if let Feed::Live {
            capture: Some(watch),
            ..
        } = &feed
        {
            dirty |= app.capture_state(watch());
        }
        if last_tick.elapsed() >= TICK {
            last_tick = Instant::now();
            if let Feed::Live { bus, .. } = &feed {
                app.info.bus_shed = bus.bodies_shed();
            }
            if let Some(p) = &app.info.capture {
                app.info.capture_size = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            }
            app.tick(now_us());
            dirty = true;
        }
        if let Some(seq) = app.replay_wanted.take() {
            let edit = std::mem::take(&mut app.replay_edit);
            let result = match (&replayer, app.store.get(seq)) {
                (Some(replay), Some(e)) if edit => {
                    let edited = edit_in_editor(&e.record);
                    // The editor had the terminal: take it back and redraw everything.
                    enter()?;
                    terminal.clear()?;
                    edited.and_then(|r| replay(&r))
                }
                (Some(replay), Some(e)) => replay(&e.record),
                (None, _) => Err("replay is not available here".to_owned()),
                (_, None) => Err("that record is no longer held".to_owned()),
            };
            app.replayed(result);
            dirty = true;
        }
        if let Some(text) = app.clipboard.take() {
            // OSC 52: the terminal puts the text on the clipboard (where it supports it).
            let b64 = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
            let mut out = io::stdout();
            let _ = write!(out, "\x1b]52;c;{b64}\x07");
            let _ = out.flush();
        }
        if dirty {
            terminal.draw(|f| render::draw(f, &app))?;
            dirty = false;
        }
        // Wait for input until the next frame; a key is drawn at once.
        let deadline = frame_start + FRAME;
        loop {
            let timeout = deadline.saturating_duration_since(Instant::now());
            if !event::poll(timeout)? {
                break;
            }
            match event::read()? {
                Event::Key(k) if k.kind != KeyEventKind::Release => {
                    app.key(k);
                    dirty = true;
                    keyed = true;
                    break;
                }
                Event::Mouse(m) => {
                    app.mouse(m);
                    dirty = true;
                }
                Event::Resize(w, h) => {
                    app.resize(w, h);
                    terminal.autoresize()?;
                    dirty = true;
                }
                _ => {}
            }
            if app.quit {
                break;
            }
        }
    }
    Ok(app)
}

/// Takes in what the feed has pending, at most [`MAX_DRAIN`] records. Returns how many.
pub fn drain(app: &mut App, feed: &mut Feed) -> usize {
    drain_for(app, feed, Duration::MAX)
}

/// Like [`drain`], but stops once `budget` has passed (looking at the clock every
/// [`DRAIN_CLOCK_EVERY`] records, or file batch).
pub fn drain_for(app: &mut App, feed: &mut Feed, budget: Duration) -> usize {
    let start = Instant::now();
    let spent = |n: usize, every: usize| n % every == 0 && start.elapsed() >= budget;
    let mut n = 0;
    match feed {
        Feed::Live { records, .. } => {
            while n < MAX_DRAIN {
                if n > 0 && spent(n, DRAIN_CLOCK_EVERY) {
                    break;
                }
                match records.try_recv() {
                    Some(Received::Record(r)) => {
                        app.take(&r);
                        n += 1;
                    }
                    Some(Received::Lagged(lost)) => app.lagged(lost),
                    None => break,
                }
            }
        }
        Feed::File(rx) => {
            while n < MAX_DRAIN {
                if n > 0 && spent(0, 1) {
                    break;
                }
                match rx.try_recv() {
                    Ok(FileMsg::Records(batch)) => {
                        n += batch.len();
                        for r in &batch {
                            app.take(r);
                        }
                    }
                    Ok(FileMsg::Lagged(lost)) => app.lagged(lost),
                    Ok(FileMsg::Error(e)) => {
                        if let Ok(mut ring) = app.log.lock() {
                            ring.push_back(e);
                        }
                        n += 1;
                    }
                    Ok(FileMsg::End) => {
                        app.end();
                        n += 1;
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        if !app.ended {
                            app.end();
                            n += 1;
                        }
                        break;
                    }
                }
            }
        }
    }
    n
}

/// Records read but not sent yet, shared by the reader thread and [`Tail`] (which sends them before
/// it waits at the end of the file, so a followed file shows everything written so far).
#[derive(Clone)]
struct Pending {
    batch: Arc<std::sync::Mutex<Vec<Record>>>,
    tx: std::sync::mpsc::SyncSender<FileMsg>,
}

impl Pending {
    fn push(&self, r: Record) -> usize {
        match self.batch.lock() {
            Ok(mut b) => {
                b.push(r);
                b.len()
            }
            Err(_) => 0,
        }
    }

    /// Sends what is pending; `false` once the UI is gone.
    fn flush(&self) -> bool {
        let batch = match self.batch.lock() {
            Ok(mut b) => std::mem::take(&mut *b),
            Err(_) => return false,
        };
        batch.is_empty() || self.tx.send(FileMsg::Records(batch)).is_ok()
    }
}

/// A file that, at its end, waits for more bytes (`tail -f`) until `stop` is set.
struct Tail {
    file: File,
    stop: Arc<AtomicBool>,
    pending: Pending,
}

impl Read for Tail {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let n = self.file.read(buf)?;
            if n > 0 || buf.is_empty() || self.stop.load(Ordering::SeqCst) {
                return Ok(n);
            }
            if !self.pending.flush() {
                return Ok(0);
            }
            std::thread::sleep(FOLLOW_POLL);
        }
    }
}

/// Opens `path` and reads it on its own thread, sending batches of records. With `follow`, keeps
/// reading what is appended until `stop` is set. An error opening the file is returned at once;
/// so is the file's header.
pub fn read_file(
    path: &Path,
    follow: bool,
    stop: Arc<AtomicBool>,
) -> Result<(crate::capture::FileHeader, Receiver<FileMsg>), crate::capture::CaptureError> {
    let (tx, rx) = sync_channel(FILE_BATCHES_WAITING);
    let pending = Pending {
        batch: Arc::default(),
        tx: tx.clone(),
    };
    let mut records: Records = if follow {
        let file = File::open(path).map_err(|source| crate::capture::CaptureError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Reader::from_reader(
            PathBuf::from(path),
            Tail {
                file,
                stop: Arc::clone(&stop),
                pending: pending.clone(),
            },
            crate::capture::is_zstd_path(path),
        )?
    } else {
        Reader::stream(path)?
    };
    let header = records.header.clone();
    std::thread::Builder::new()
        .name("capscope-view-reader".into())
        .spawn(move || {
            let mut last_send = Instant::now();
            loop {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                match records.next() {
                    Some(Ok(Line::Record(r))) => {
                        let n = pending.push(*r);
                        if n >= FILE_BATCH || last_send.elapsed() >= FRAME {
                            last_send = Instant::now();
                            if !pending.flush() {
                                return;
                            }
                        }
                    }
                    Some(Ok(Line::Lagged(l))) => {
                        pending.flush();
                        let _ = tx.send(FileMsg::Lagged(l.dropped));
                    }
                    Some(Err(e)) => {
                        pending.flush();
                        let _ = tx.send(FileMsg::Error(e.to_string()));
                        let _ = tx.send(FileMsg::End);
                        return;
                    }
                    None => {
                        pending.flush();
                        for w in &records.warnings {
                            let _ = tx.send(FileMsg::Error(format!("warning: {w}")));
                        }
                        let _ = tx.send(FileMsg::End);
                        return;
                    }
                }
            }
        })
        .map_err(|source| crate::capture::CaptureError::Open {
            path: path.to_path_buf(),
            source,
        })?;
    Ok((header, rx))
}
