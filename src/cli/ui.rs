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

use super::run::Session;
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

/// Replays a request the viewer made to one of capscope's own URLs (login mode: `/cap/<token>`,
/// `/login`) by sending it there again, so capscope routes, rewrites and records it like the
/// original, with [`tui::REPLAY_HEADER`] naming the record it replays.
fn replayer(rt: tokio::runtime::Handle, addr: std::net::SocketAddr) -> tui::Replayer {
    use bytes::Bytes;
    use http_body_util::Full;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let base = format!("http://{addr}");
    Box::new(move |r: &crate::record::Record| {
        let q = r.request.as_ref().ok_or("this record has no request")?;
        let url = match q.client_url.as_deref() {
            Some(path) if path.starts_with('/') => format!("{base}{path}"),
            Some(u) if u.starts_with(&base) => u.to_owned(),
            _ => {
                return Err(
                    "only requests the viewer sent to capscope's own URLs (login mode) can be \
                     replayed so far"
                        .to_owned(),
                )
            }
        };
        let mut builder = hyper::Request::builder()
            .method(q.method.as_str())
            .uri(url.as_str());
        for h in &q.headers {
            if !NOT_REPLAYED.contains(&h.name.to_ascii_lowercase().as_str()) {
                builder = builder.header(h.name.as_str(), h.value.as_str());
            }
        }
        if q.body.truncated {
            return Err("the request body was not kept whole, so it cannot be replayed".into());
        }
        let request = builder
            .header(tui::REPLAY_HEADER, r.id.to_string())
            .body(Full::new(q.body.data.clone()))
            .map_err(|e| format!("cannot build the replay: {e}"))?;
        let (client, id) = (client.clone(), r.id);
        rt.spawn(async move {
            match client.request(request).await {
                Ok(resp) => tracing::info!("replay of #{id}: {}", resp.status()),
                Err(e) => tracing::warn!("replay of #{id} failed: {e}"),
            }
        });
        Ok(format!(
            "replaying #{id} through capscope: {} {url}",
            q.method
        ))
    })
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
