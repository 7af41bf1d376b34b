//! `capscope demo`: a simulated grid, capscope and a scripted viewer in one process, so a newcomer sees
//! real-looking caps traffic with no viewer and no grid.
//!
//! capscope here is exactly `capscope run` (the same session stack, [`run::serve`], and the same flags),
//! pointed at the simulated grid of [`crate::mockgrid`], which it trusts like an `--upstream-ca`. The
//! scripted viewer logs in through it and keeps busy until Ctrl-C, `--for` or `--steps`. Holds no
//! protocol logic of its own.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::run::{self, Extras, RunArgs, Session};
use super::ui::LiveUi;
use super::CaDirArg;
use crate::mockgrid::script::{self, Step};
use crate::mockgrid::viewer::{LoginForm, Viewer, ViewerConfig};
use crate::mockgrid::{
    MockGrid, MockGridConfig, MockGridHandle, DEMO_FIRST, DEMO_LAST, DEMO_PASSWORD,
};
use crate::record::{Kind, Received, State, Subscriber};
use crate::tui::log::LineWriter;

/// How long the demo waits, once the last step ran, for the viewer to receive the last events.
const SETTLE: Duration = Duration::from_secs(5);

/// How the scripted viewer reaches capscope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DemoMode {
    /// The viewer logs in at capscope's /login; capscope rewrites every cap URL it hands out.
    Login,
    /// The viewer uses capscope as its HTTP proxy (CONNECT) and the grid's own login URL.
    Proxy,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// `capscope run`'s flags (`--grid` is set to the simulated grid).
    #[command(flatten)]
    pub run: RunArgs,
    /// How the scripted viewer reaches capscope.
    #[arg(long, value_enum, default_value_t = DemoMode::Login)]
    pub mode: DemoMode,
    /// Seconds between the viewer's rounds of activity.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    pub every: f64,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long = "for", value_name = "SECONDS")]
    pub for_seconds: Option<f64>,
    /// Stop after this many rounds of activity (default: run until Ctrl-C).
    #[arg(long, value_name = "N")]
    pub steps: Option<u64>,
    /// How long the simulated grid holds an idle event-queue poll before its empty 502, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 20.0)]
    pub eq_hold: f64,
    /// How the scripted viewer logs in: XML-RPC (the Linden viewer, Firestorm) or an LLSD map
    /// (LibreMetaverse). Either way it first asks get_grid_info as Firestorm does, is redirected once
    /// and answers an MFA challenge.
    #[arg(long = "login", value_enum, default_value_t = DemoLogin::Xmlrpc)]
    pub login: DemoLogin,
}

/// The login form the scripted viewer uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DemoLogin {
    /// XML-RPC `login_to_simulator`.
    Xmlrpc,
    /// An LLSD map, `application/llsd+xml`.
    Llsd,
}

/// How the demo's summary counts WebSocket records (they belong to no cap).
pub const WEBSOCKET_TALLY: &str = "(WebSocket)";

/// The MFA code the demo's grid asks for and its viewer gives.
const DEMO_MFA_TOKEN: &str = "123456";

/// What a demo session did, from both ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// What stopped it: `the last step`, `--for` or `Ctrl-C`.
    pub stopped_by: String,
    /// Requests the viewer made, and how many failed (no answer, or an error status other than the
    /// event queue's idle 502/504).
    pub requests: usize,
    pub failed: usize,
    /// Events the viewer received, and region changes it made.
    pub events: usize,
    pub region_switches: usize,
    /// Finished exchange records capscope made, by cap name (`-` when unnamed).
    pub records_by_cap: BTreeMap<String, usize>,
    /// Event records capscope made, by message.
    pub events_by_message: BTreeMap<String, usize>,
}

/// Runs the demo, printing to stdout.
pub fn run(args: DemoArgs, ca_dir: &CaDirArg) -> anyhow::Result<ExitCode> {
    let ui = if super::ui::wanted(args.run.headless) {
        let (ui, quit) = LiveUi::new(super::ui::start_logging(args.run.verbose)?);
        Some((ui.with_filter(args.run.capture.filter.clone()), quit))
    } else {
        run::init_tracing(&args.run);
        None
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let out: Box<dyn Write + Send> = match &ui {
        // While the UI is up, the demo's lines go to its log; after, to the terminal.
        Some((ui, _)) => Box::new(LineWriter::new(ui.sink().clone())),
        None => Box::new(std::io::stdout()),
    };
    runtime.block_on(session_with_ui(args, ca_dir, out, ui))?;
    Ok(ExitCode::SUCCESS)
}

type Out = Arc<Mutex<Box<dyn Write + Send>>>;

fn say(out: &Out, line: impl AsRef<str>) {
    let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
    let _ = writeln!(out, "{}", line.as_ref());
    let _ = out.flush();
}

fn seconds(what: &str, s: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(s)
        .map_err(|_| super::exit::usage(format_args!("--{what} {s} is not a usable duration")))
}

/// What `on_start` sets up, for the end of the session.
struct Started {
    viewer: Viewer,
    /// The viewer's timeline; taken (and stopped) before capscope stops.
    driver: Option<JoinHandle<()>>,
    tally_stop: oneshot::Sender<()>,
    tally: JoinHandle<(BTreeMap<String, usize>, BTreeMap<String, usize>)>,
}

/// Runs one demo session, printing the demo's own lines to `out` (capscope's record log goes through
/// `tracing`, as with `capscope run`), and returns what happened.
pub async fn session(
    args: DemoArgs,
    ca_dir: &CaDirArg,
    out: Box<dyn Write + Send>,
) -> anyhow::Result<Summary> {
    session_with_ui(args, ca_dir, out, None).await
}

/// [`session`], shown in the terminal UI when `ui` is given (quitting it ends the demo).
pub async fn session_with_ui(
    mut args: DemoArgs,
    ca_dir: &CaDirArg,
    out: Box<dyn Write + Send>,
    ui: Option<(LiveUi, oneshot::Receiver<()>)>,
) -> anyhow::Result<Summary> {
    let out: Out = Arc::new(Mutex::new(out));
    let every = seconds("every", args.every)?;
    let stop_after = args.for_seconds.map(|s| seconds("for", s)).transpose()?;
    let grid = Arc::new(
        MockGrid::start(MockGridConfig {
            eq_hold: seconds("eq-hold", args.eq_hold)?,
            login_redirect: true,
            mfa_token: Some(DEMO_MFA_TOKEN.to_owned()),
            other_host_region: true,
            ..MockGridConfig::default()
        })
        .await
        .context("could not start the simulated grid")?,
    );
    args.run.caps.grid = grid.login_url.clone();
    let mut upstream_roots = Vec::new();
    for cert in CertificateDer::pem_slice_iter(grid.ca_pem.as_bytes()) {
        upstream_roots.push(cert.context("the simulated grid's CA does not parse")?);
    }
    let ca_pem_path =
        capscope_ca::CaFiles::in_dir(&crate::paths::ca_dir(ca_dir.ca_dir.as_deref())?).cert_pem;

    let (done_tx, done_rx) = oneshot::channel::<()>();
    let started: Arc<Mutex<Option<anyhow::Result<Started>>>> = Arc::default();
    let stopped_by: Arc<Mutex<&'static str>> = Arc::new(Mutex::new("Ctrl-C"));
    let (ui, quit_rx) = match ui {
        Some((ui, quit)) => (Some(ui), Some(quit)),
        None => (None, None),
    };
    let no_log = ui.is_some();
    let shutdown = {
        let (stopped_by, started, ui) = (stopped_by.clone(), started.clone(), ui.clone());
        async move {
            let why = tokio::select! {
                _ = done_rx => "the last step",
                () = sleep_or_forever(stop_after) => "--for",
                _ = tokio::signal::ctrl_c() => "Ctrl-C",
                _ = quit_or_forever(quit_rx) => "q",
            };
            *stopped_by.lock().unwrap_or_else(|p| p.into_inner()) = why;
            // The scripted viewer stops first, so none of its requests meets a capscope that is
            // shutting down (and fails for that reason alone).
            let driver = started
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_mut()
                .and_then(|s| s.as_mut().ok())
                .and_then(|s| s.driver.take());
            if let Some(driver) = driver {
                driver.abort();
                let _ = driver.await;
            }
            if let Some(ui) = ui {
                ui.stopped().await;
            }
        }
    };
    let on_start = {
        let (grid, out, started) = (grid.clone(), out.clone(), started.clone());
        let (mode, steps) = ((args.mode, args.login), args.steps);
        let grid_url = grid.login_url.clone();
        move |s: &Session<'_>| {
            // The UI subscribes before the viewer logs in, so it sees the login.
            if let Some(ui) = &ui {
                ui.start(s, &grid_url);
            }
            let result = start_viewer(s, &grid, &out, mode, &ca_pem_path, every, steps, done_tx);
            *started.lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
        }
    };
    run::serve(
        args.run,
        ca_dir,
        Extras {
            upstream_roots,
            no_log,
        },
        shutdown,
        on_start,
    )
    .await?;

    let started = started
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
        .context("capscope stopped before the demo started")??;
    if let Some(driver) = started.driver {
        driver.abort();
        let _ = driver.await;
    }
    let _ = started.tally_stop.send(());
    let (records_by_cap, events_by_message) = started.tally.await.unwrap_or_default();
    let journal = started.viewer.journal();
    let summary = Summary {
        stopped_by: (*stopped_by.lock().unwrap_or_else(|p| p.into_inner())).to_owned(),
        requests: journal.requests.len(),
        failed: journal
            .requests
            .iter()
            .filter(|r| r.status.is_none_or(|s| s >= 400 && s != 502 && s != 504))
            .count(),
        events: journal.events.len(),
        region_switches: journal.region_switches.len(),
        records_by_cap,
        events_by_message,
    };
    say(
        &out,
        format!(
            "\ncapscope demo stopped ({}): the viewer made {} requests ({} failed), received {} \
             events and changed region {} times; capscope recorded {} exchanges over {} caps and {} \
             events.\nNext: point a real viewer at `capscope run` (docs/viewer-setup.md).",
            summary.stopped_by,
            summary.requests,
            summary.failed,
            summary.events,
            summary.region_switches,
            summary.records_by_cap.values().sum::<usize>(),
            summary.records_by_cap.len(),
            summary.events_by_message.values().sum::<usize>(),
        ),
    );
    if let Ok(grid) = Arc::try_unwrap(grid) {
        grid.shutdown().await;
    }
    Ok(summary)
}

/// Sets up the viewer for the session just started and spawns its timeline.
#[allow(clippy::too_many_arguments)]
fn start_viewer(
    s: &Session<'_>,
    grid: &Arc<MockGridHandle>,
    out: &Out,
    (mode, login): (DemoMode, DemoLogin),
    ca_pem_path: &std::path::Path,
    every: Duration,
    steps: Option<u64>,
    done: oneshot::Sender<()>,
) -> anyhow::Result<Started> {
    let ca_pem = std::fs::read_to_string(ca_pem_path)
        .with_context(|| format!("cannot read capscope's CA at {}", ca_pem_path.display()))?;
    let proxy_base = format!("http://{}", s.addr);
    let mut config = match mode {
        DemoMode::Login => ViewerConfig::new(format!("{proxy_base}/login"), ca_pem),
        DemoMode::Proxy => {
            let mut c = ViewerConfig::new(grid.login_url.clone(), ca_pem);
            c.http_proxy = Some(s.addr);
            // The built-in browser uses the same proxy: a page's WebSocket goes through capscope.
            c.web_socket = Some(format!(
                "{}{}",
                grid.login_url.trim_end_matches('/'),
                crate::mockgrid::WEBSOCKET_PATH
            ));
            c
        }
    };
    // Outlast the grid's hold, so an idle poll ends with the grid's 502, not the viewer's timeout.
    config.request_timeout = grid_hold_margin(grid);
    config.grid_info = true;
    config.mfa_token = Some(DEMO_MFA_TOKEN.to_owned());
    config.login_form = match login {
        DemoLogin::Xmlrpc => LoginForm::XmlRpc,
        DemoLogin::Llsd => LoginForm::Llsd,
    };
    let viewer = Viewer::new(config).context("could not set up the scripted viewer")?;
    intro(out, grid, &proxy_base, mode);

    let (tally_stop, stop_rx) = oneshot::channel();
    let tally = tokio::spawn(tally(s.bus.subscribe(), stop_rx));
    let driver = tokio::spawn(drive(
        grid.clone(),
        viewer.clone(),
        out.clone(),
        every,
        steps,
        done,
    ));
    Ok(Started {
        viewer,
        driver: Some(driver),
        tally_stop,
        tally,
    })
}

/// Logs in, then runs the timeline; tells `done` when the last step ran and the viewer caught up.
async fn drive(
    grid: Arc<MockGridHandle>,
    viewer: Viewer,
    out: Out,
    every: Duration,
    steps: Option<u64>,
    done: oneshot::Sender<()>,
) {
    let running = match viewer.start().await {
        Ok(r) => r,
        Err(e) => {
            say(
                &out,
                format!("  demo     the scripted viewer could not log in: {e}"),
            );
            let _ = done.send(());
            return;
        }
    };
    say(
        &out,
        format!("  demo     {DEMO_FIRST} {DEMO_LAST} logged in; the viewer polls the event queue"),
    );
    script::run(&grid, &viewer, &running, every, steps, |step| {
        say(&out, format!("  demo     {step}"));
        if let Step::Activity { failed, .. } = step {
            for e in viewer.journal().errors.iter().rev().take(failed) {
                say(&out, format!("  demo     the viewer: {e}"));
            }
        }
    })
    .await;
    // Let the viewer receive what the grid already queued (and follow any move), so the summary is
    // whole.
    let scripted = grid.scripted_events();
    let moves = scripted
        .iter()
        .filter(|(_, m)| m == "TeleportFinish" || m == "CrossedRegion")
        .count();
    viewer
        .wait_until(SETTLE, |j| {
            j.events.len() >= scripted.len() && j.region_switches.len() >= moves
        })
        .await;
    drop(running);
    let _ = done.send(());
}

/// Counts finished records by cap and events by message until told to stop.
async fn tally(
    mut sub: Subscriber,
    mut stop: oneshot::Receiver<()>,
) -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
    let mut by_cap = BTreeMap::new();
    let mut by_event = BTreeMap::new();
    let mut count = |received: Received| {
        if let Received::Record(r) = received {
            if r.state == State::Open {
                return;
            }
            match (&r.kind, &r.event) {
                (Kind::Event, Some(e)) => *by_event.entry(e.message.clone()).or_insert(0) += 1,
                (Kind::Http | Kind::Login, _) => {
                    // Web traffic has no cap; a web page's WebSocket is still worth a line.
                    let upgraded = r.response.as_ref().is_some_and(|resp| resp.status == 101);
                    let cap = r
                        .cap
                        .clone()
                        .unwrap_or_else(|| if upgraded { WEBSOCKET_TALLY } else { "-" }.to_owned());
                    *by_cap.entry(cap).or_insert(0) += 1;
                }
                _ => {}
            }
        }
    };
    loop {
        tokio::select! {
            received = sub.recv() => match received {
                Some(received) => count(received),
                None => break,
            },
            _ = &mut stop => {
                while let Some(received) = sub.try_recv() {
                    count(received);
                }
                break;
            }
        }
    }
    (by_cap, by_event)
}

fn grid_hold_margin(grid: &MockGridHandle) -> Duration {
    const MARGIN: Duration = Duration::from_secs(10);
    const VIEWER_DEFAULT: Duration = Duration::from_secs(30);
    (grid.eq_hold() + MARGIN).max(VIEWER_DEFAULT)
}

async fn quit_or_forever(quit: Option<oneshot::Receiver<()>>) {
    match quit {
        Some(q) => {
            let _ = q.await;
        }
        None => std::future::pending().await,
    }
}

async fn sleep_or_forever(limit: Option<Duration>) {
    match limit {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

fn intro(out: &Out, grid: &MockGridHandle, proxy_base: &str, mode: DemoMode) {
    say(
        out,
        "\ncapscope demo: a simulated grid, capscope and a scripted viewer, all in this process.",
    );
    say(
        out,
        format!(
            "  grid     XML-RPC and LLSD login at {} (get_grid_info too; redirects the first login \
             once, then asks for MFA code {DEMO_MFA_TOKEN})",
            grid.login_url
        ),
    );
    for r in &grid.regions {
        say(
            out,
            format!(
                "           region {:<17} {} (its own test CA)",
                r.name, r.base_url
            ),
        );
    }
    say(
        out,
        match mode {
            DemoMode::Login => format!(
                "  viewer   logs in at {proxy_base}/login as {DEMO_FIRST} {DEMO_LAST} (password \
                 \"{DEMO_PASSWORD}\") and only ever sees capscope's /cap/<token> URLs"
            ),
            DemoMode::Proxy => format!(
                "  viewer   uses capscope as its HTTP proxy (CONNECT), trusts only capscope's CA, and \
                 logs in at the grid as {DEMO_FIRST} {DEMO_LAST} (password \"{DEMO_PASSWORD}\")"
            ),
        },
    );
    say(
        out,
        "  Each log line is a record capscope made: method, [cap] URL, status, size, time, (notes).\n",
    );
}
