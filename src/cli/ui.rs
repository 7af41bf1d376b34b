//! Starting the terminal UI from `run`, `demo` and `view`: when it is used (stdout and stdin are
//! terminals and `--headless` was not given), where its log goes, and how quitting it ends the
//! session. The UI itself is [`crate::tui`].

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use clap::Args;
use tokio::sync::oneshot;

use super::run::{Session, SharedWriter};
use crate::store::Limits;
use crate::tui::log::{self, Sink};
use crate::tui::state::{App, Source};
use crate::tui::{self, Feed};

/// Whether the UI should run: both ends of the terminal are a terminal and `--headless` is off.
pub fn wanted(headless: bool) -> bool {
    !headless && std::io::stdout().is_terminal() && std::io::stdin().is_terminal()
}

/// The log sink of a UI session, in capscope's data directory, with `tracing` sent to it.
pub fn start_logging(verbose: u8) -> anyhow::Result<Sink> {
    let path = log::log_path(&crate::paths::data_dir()?);
    let sink = Sink::open(&path)
        .with_context(|| format!("cannot open the UI's log file {}", path.display()))?;
    log::init_tracing(&sink, verbose);
    super::out::note(format_args!(
        "capscope: the terminal UI logs to {}",
        path.display()
    ));
    Ok(sink)
}

/// A UI attached to a live session: started by `on_start`, stopped by [`LiveUi::stopped`].
#[derive(Clone)]
pub struct LiveUi {
    sink: Sink,
    stop: Arc<AtomicBool>,
    /// Told when the user quits (or the UI fails): the session should end.
    quit: Arc<Mutex<Option<oneshot::Sender<()>>>>,
    /// Told once the UI thread has restored the terminal.
    restored: Arc<Mutex<Option<oneshot::Receiver<()>>>>,
    /// The filter the UI starts with (`--filter`).
    filter: Option<String>,
}

impl LiveUi {
    /// A UI for a session; `quit` resolves when the user quits.
    pub fn new(sink: Sink) -> (Self, oneshot::Receiver<()>) {
        let (quit_tx, quit_rx) = oneshot::channel();
        (
            Self {
                sink,
                stop: Arc::new(AtomicBool::new(false)),
                quit: Arc::new(Mutex::new(Some(quit_tx))),
                restored: Arc::default(),
                filter: None,
            },
            quit_rx,
        )
    }

    /// Starts the UI with this filter applied (the session's `--filter`).
    pub fn with_filter(mut self, filter: Option<String>) -> Self {
        self.filter = filter;
        self
    }

    /// Starts the UI on its own thread for the session just started.
    pub fn start(&self, s: &Session<'_>, grid: &str) {
        let mut app = App::new(Source::Live, Limits::default());
        app.info.listen = Some(s.addr.to_string());
        app.info.grid = Some(grid.to_owned());
        app.info.capture = s.capture.map(PathBuf::from);
        app.log = self.sink.lines();
        if let Ok(dir) = std::env::current_dir() {
            app.save_dir = dir;
        }
        if let Some(f) = &self.filter {
            app.set_filter(f.clone());
        }
        let feed = Feed::Live {
            records: s.bus.subscribe(),
            bus: Arc::clone(s.bus),
            capture: s.writer.cloned().map(capture_watch),
        };
        let replayer = tokio::runtime::Handle::try_current()
            .ok()
            .map(|rt| replayer(rt, s.addr));
        let (restored_tx, restored_rx) = oneshot::channel();
        *self.restored.lock().unwrap_or_else(|p| p.into_inner()) = Some(restored_rx);
        let (stop, quit, sink) = (self.stop.clone(), self.quit.clone(), self.sink.clone());
        let spawned = std::thread::Builder::new()
            .name("capscope-ui".into())
            .spawn(move || {
                // Whatever happens (a panic included), the session is told and the log goes back
                // to the terminal once the UI has let go of it.
                struct Done(
                    Sink,
                    Arc<Mutex<Option<oneshot::Sender<()>>>>,
                    Option<oneshot::Sender<()>>,
                );
                impl Drop for Done {
                    fn drop(&mut self) {
                        self.0.set_ui_up(false);
                        if let Some(q) = self.1.lock().unwrap_or_else(|p| p.into_inner()).take() {
                            let _ = q.send(());
                        }
                        if let Some(r) = self.2.take() {
                            let _ = r.send(());
                        }
                    }
                }
                let _done = Done(sink, quit, Some(restored_tx));
                if let Err(e) = tui::run(app, feed, stop, replayer) {
                    tui::restore();
                    eprintln!("capscope: the terminal UI failed: {e}");
                }
            });
        if let Err(e) = spawned {
            self.sink.set_ui_up(false);
            tracing::error!("cannot start the terminal UI: {e}");
        }
    }

    /// Stops the UI (if the user did not quit it already) and waits until the terminal is restored.
    pub async fn stopped(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let restored = self
            .restored
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(r) = restored {
            let _ = r.await;
        }
        self.sink.set_ui_up(false);
    }

    /// The log sink (the demo prints its own lines there while the UI is up).
    pub fn sink(&self) -> &Sink {
        &self.sink
    }
}

/// What the UI polls of the capture writer: why it stopped, if it did, and what it lost.
pub fn capture_watch(writer: SharedWriter) -> tui::CaptureWatch {
    Box::new(move || {
        let held = writer.lock().unwrap_or_else(|p| p.into_inner());
        held.as_ref().map(|w| tui::CaptureState {
            failure: w.failure().map(str::to_owned),
            dropped: w.dropped(),
        })
    })
}

/// Headers a replay does not copy (hyper sets them, or they belong to the first connection).
const NOT_REPLAYED: &[&str] = &[
    "host",
    "content-length",
    "connection",
    "transfer-encoding",
    "keep-alive",
    "proxy-connection",
    "te",
    "upgrade",
];

/// Replays a recorded request through capscope, so capscope routes, rewrites and records it like the
/// original, with [`tui::REPLAY_HEADER`] naming the record it replays:
/// - a request the viewer sent to one of capscope's own URLs (login mode: `/cap/<token>`,
///   `/login`) goes there again;
/// - a request the viewer sent through capscope as its HTTP proxy (plain or inside CONNECT) goes to
///   the URL it was for, sent to capscope as a proxy request (`GET https://host/path`): capscope
///   makes the TLS connection upstream itself, checking the certificate as for the viewer.
///
/// The headers are sent as recorded (cookies and `Authorization` included: the replay acts as the
/// viewer did), except those that belong to the first connection ([`NOT_REPLAYED`]).
pub fn replayer(rt: tokio::runtime::Handle, addr: std::net::SocketAddr) -> tui::Replayer {
    use http_body_util::Full;

    Box::new(move |r: &crate::record::Record| {
        let q = r.request.as_ref().ok_or("this record has no request")?;
        if q.body.truncated {
            return Err("the request body was not kept whole, so it cannot be replayed".into());
        }
        let (target, host) = replay_target(q, addr)?;
        let mut builder = hyper::Request::builder()
            .method(q.method.as_str())
            .uri(target.clone())
            .header(hyper::header::HOST, host);
        for h in &q.headers {
            if !NOT_REPLAYED.contains(&h.name.to_ascii_lowercase().as_str()) {
                builder = builder.header(h.name.as_str(), h.value.as_str());
            }
        }
        let request = builder
            .header(tui::REPLAY_HEADER, r.id.to_string())
            .body(Full::new(q.body.data.clone()))
            .map_err(|e| format!("cannot build the replay: {e}"))?;
        let id = r.id;
        rt.spawn(async move {
            match send_to_capscope(addr, request).await {
                Ok(status) => tracing::info!("replay of #{id}: {status}"),
                Err(e) => tracing::warn!("replay of #{id} failed: {e}"),
            }
        });
        let shown = if target.scheme().is_some() {
            format!("{target} (capscope as the proxy)")
        } else {
            format!("http://{addr}{target}")
        };
        Ok(format!(
            "replaying #{id} through capscope: {} {shown}",
            q.method
        ))
    })
}

/// The request target a replay sends to capscope and its `Host`: capscope's own path (login mode),
/// or the absolute URL the viewer asked capscope to proxy.
fn replay_target(
    q: &crate::record::Request,
    addr: std::net::SocketAddr,
) -> Result<(hyper::Uri, String), String> {
    let url = q.client_url.as_deref().unwrap_or(&q.url);
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| format!("cannot replay to {url:?}: {e}"))?;
    match (uri.scheme_str(), uri.authority()) {
        (None, None) if url.starts_with('/') => Ok((uri, addr.to_string())),
        (Some("http" | "https"), Some(authority)) => {
            let host = authority.to_string();
            Ok((uri, host))
        }
        _ => Err(format!(
            "cannot replay to {url:?}: only http and https URLs and capscope's own paths"
        )),
    }
}

/// Sends one request to capscope's listener on a connection of its own and reads the whole answer
/// (so the replay's record finishes as the original did). The request target goes as given:
/// absolute-form asks capscope to proxy it.
async fn send_to_capscope(
    addr: std::net::SocketAddr,
    request: hyper::Request<http_body_util::Full<bytes::Bytes>>,
) -> Result<hyper::StatusCode, String> {
    use http_body_util::BodyExt as _;

    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot connect to capscope at {addr}: {e}"))?;
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let response = send
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        frame.map_err(|e| format!("{status}, then the body failed: {e}"))?;
    }
    Ok(status)
}

/// `capscope view`: a capture file in the UI.
#[derive(Debug, Args)]
pub struct ViewArgs {
    /// The capture to open (`.jsonl` or `.jsonl.zst`).
    pub file: PathBuf,
    /// Keep reading what is appended to the file (`tail -f`), for a capture still being written.
    #[arg(long)]
    pub follow: bool,
    /// Start with this filter applied (see docs/filters.md).
    #[arg(long, value_name = "EXPR")]
    pub filter: Option<String>,
}

pub fn view(args: ViewArgs) -> anyhow::Result<ExitCode> {
    if !wanted(false) {
        anyhow::bail!(
            "capscope view needs a terminal; use `capscope dump {}` to print a capture",
            args.file.display()
        );
    }
    let filter_text = match &args.filter {
        Some(f) => {
            crate::filter::Filter::parse(f).map_err(|e| anyhow::anyhow!("--filter: {e}"))?;
            f.clone()
        }
        None => String::new(),
    };
    let sink = start_logging(0)?;
    let stop = Arc::new(AtomicBool::new(false));
    let (header, rx) = tui::read_file(&args.file, args.follow, stop.clone())
        .with_context(|| format!("cannot open {}", args.file.display()))?;
    let mut app = App::new(
        Source::File {
            path: args.file.clone(),
            follow: args.follow,
        },
        Limits::default(),
    );
    app.log = sink.lines();
    app.info.capture = Some(args.file.clone());
    app.info.listen = header.listen;
    app.info.grid = header.grid;
    if let Ok(dir) = std::env::current_dir() {
        app.save_dir = dir;
    }
    if !filter_text.is_empty() {
        app.set_filter(filter_text);
    }
    let result = tui::run(app, Feed::File(rx), stop.clone(), None);
    stop.store(true, Ordering::SeqCst);
    sink.set_ui_up(false);
    result.context("the terminal UI failed")?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(all(test, unix))]
mod tests {
    use std::io::Read;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::capture::{FileHeader, SaveOptions};
    use crate::record::{Bus, Kind, Record, State};

    /// How long the writer task gets to hit the error.
    const PATIENCE: Duration = Duration::from_secs(20);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_capture_writer_that_stops_is_seen_by_the_ui_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("live.jsonl");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // The capture's "disk" takes the header line, then goes away: every later write fails
        // (a broken pipe, as a full disk or a pulled drive would fail it), mid-session.
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || {
                let mut f = std::fs::File::open(&fifo).unwrap();
                let mut buf = [0u8; 4096];
                assert!(f.read(&mut buf).unwrap() > 0, "the header");
            })
        };
        let bus = Bus::default();
        let options = SaveOptions {
            path: Some(fifo.clone()),
            data_dir: dir.path().to_path_buf(),
            keep_secrets: false,
            filter: None,
        };
        let (handle, _) =
            crate::capture::start_saving(&bus, FileHeader::new(None, None, None), options).unwrap();
        reader.join().unwrap();
        let writer: SharedWriter = Arc::new(Mutex::new(Some(handle)));
        let watch = capture_watch(Arc::clone(&writer));
        assert_eq!(watch(), Some(tui::CaptureState::default()));

        let mut r = Record::new(bus.next_id(), Kind::Http);
        r.state = State::Done;
        bus.publish(r);
        let deadline = Instant::now() + PATIENCE;
        let state = loop {
            match watch() {
                Some(s) if s.failure.is_some() => break s,
                _ => {
                    assert!(Instant::now() < deadline, "the writer never failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        };
        let why = state.failure.unwrap();
        assert!(why.contains("live.jsonl"), "{why}");

        // The session ends: the writer is taken back to be finished, and the UI keeps what it saw.
        let handle = writer.lock().unwrap().take().unwrap();
        assert!(handle.finish().await.is_err());
        assert_eq!(watch(), None);
    }
}
