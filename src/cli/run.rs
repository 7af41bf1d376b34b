//! `capscope run`: parse the proxy's flags, load the CA, start the proxy and the terminal UI (or, with
//! `--headless` or no terminal, the headless log), and stop cleanly on Ctrl-C, SIGTERM or the UI's
//! `q`, finishing the records in flight.
//!
//! Owns only the command-line side: the engine is [`crate::proxy`], the log [`crate::headless`], the
//! UI [`crate::tui`] (started through [`super::ui`]).
//! Later features add their flags here: add a field (or a flattened group) to [`RunArgs`].

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use capscope_ca::CertificateAuthority;
use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args};
use rustls::pki_types::CertificateDer;
use tokio::net::TcpListener;

use super::exit::usage;
use super::{out, CaDirArg};
use crate::caps::hook::{CapsHook, Mode};
use crate::capture::writer::WriterHandle;
use crate::capture::{self, FileHeader, SaveOptions};
use crate::filter::Filter;
use crate::proxy::{self, Proxy, ProxyConfig, ProxyHandle};
use crate::record::{self, Bus};
use crate::{headless, paths};

/// How long, after the proxy stopped, the log gets to print the last records.
const LOG_DRAIN: Duration = Duration::from_secs(2);

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub proxy: ProxyArgs,

    /// Print one line per finished exchange (mitmdump-style) instead of opening the terminal UI
    /// (also what happens when standard output is not a terminal).
    #[arg(long, env = "CAPSCOPE_HEADLESS", value_parser = BoolishValueParser::new())]
    pub headless: bool,

    /// More detail in the log: -v debug, -vv trace (RUST_LOG, when set, wins).
    #[arg(short, long, action = ArgAction::Count, env = "CAPSCOPE_VERBOSE")]
    pub verbose: u8,

    /// Errors only on standard error: no banner, no info or warning lines (records still go to
    /// standard output).
    #[arg(
        short,
        long,
        conflicts_with = "verbose",
        env = "CAPSCOPE_QUIET",
        value_parser = BoolishValueParser::new(),
    )]
    pub quiet: bool,

    #[command(flatten)]
    pub caps: CapsArgs,

    #[command(flatten)]
    pub capture: CaptureArgs,
}

/// Which grid login mode forwards to.
#[derive(Debug, Clone, Args)]
pub struct CapsArgs {
    /// The grid that `http://ADDR/login` forwards to: `agni` (Second Life), `aditi` (its beta grid)
    /// or a login URL (`http://127.0.0.1:9000/` for an OpenSimulator standalone). HTTP proxy mode
    /// works on the same port whatever this says.
    #[arg(
        long,
        value_name = "agni|aditi|URL",
        default_value = "agni",
        env = "CAPSCOPE_GRID"
    )]
    pub grid: String,
}

/// Where and what the session is saved.
#[derive(Debug, Clone, Args)]
pub struct CaptureArgs {
    /// Write the capture to FILE (`.jsonl`, or `.jsonl.zst` for zstd) [default: a timestamped file
    /// in the data directory's captures/]
    #[arg(
        short = 'w',
        long = "write",
        value_name = "FILE",
        conflicts_with = "no_save",
        env = "CAPSCOPE_WRITE"
    )]
    pub write: Option<PathBuf>,

    /// Save no capture at all.
    #[arg(long, env = "CAPSCOPE_NO_SAVE", value_parser = BoolishValueParser::new())]
    pub no_save: bool,

    /// Keep secrets (the login passwd, session ids and circuit code, MFA and web tokens, voice
    /// passwords, cookies, Authorization; docs/capture-format.md lists them) in the capture instead of
    /// masking them. Cap URLs are bearer secrets whatever this says.
    #[arg(long, env = "CAPSCOPE_KEEP_SECRETS", value_parser = BoolishValueParser::new())]
    pub keep_secrets: bool,

    /// Record and log only what matches this filter expression (see docs/filters.md).
    #[arg(long, value_name = "EXPR", env = "CAPSCOPE_FILTER")]
    pub filter: Option<String>,
}

/// The proxy's own flags.
#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Address to listen on (the viewer's HTTP proxy setting).
    #[arg(
        long,
        value_name = "ADDR:PORT",
        default_value_t = proxy::DEFAULT_LISTEN,
        env = "CAPSCOPE_LISTEN",
    )]
    pub listen: SocketAddr,

    /// Allow a listen address that other machines can reach (anyone who reaches it can use the
    /// proxy and read what passes through it).
    #[arg(long, env = "CAPSCOPE_ALLOW_REMOTE", value_parser = BoolishValueParser::new())]
    pub allow_remote: bool,

    /// How much of each body a record keeps, in bytes (suffixes k, M, G: binary multiples); the
    /// true size is always counted.
    #[arg(
        long,
        value_name = "SIZE",
        default_value = "4M",
        value_parser = parse_size,
        env = "CAPSCOPE_MAX_BODY",
    )]
    pub max_body: usize,

    /// How many bytes of bodies finished records may hold while the capture writer (or the UI) has
    /// not taken them yet; past it, records are saved without their bodies, counted and noted, so a
    /// disk slower than the network never slows the viewer [default: 8 x --max-body, at least 16M]
    #[arg(
        long,
        value_name = "SIZE",
        value_parser = parse_size,
        env = "CAPSCOPE_BODY_BUDGET",
    )]
    pub body_budget: Option<usize>,

    /// Also trust the CA certificates in this PEM file for upstream servers (repeatable; the
    /// environment variable names one file).
    #[arg(long, value_name = "FILE", env = "CAPSCOPE_UPSTREAM_CA")]
    pub upstream_ca: Vec<PathBuf>,

    /// Do not verify upstream certificates at all (testing only: anyone on the path can read and
    /// change the traffic).
    #[arg(long, env = "CAPSCOPE_INSECURE_UPSTREAM", value_parser = BoolishValueParser::new())]
    pub insecure_upstream: bool,

    /// Tunnel hosts matching this glob without intercepting them (repeatable, or comma-separated:
    /// `*.example.com,10.0.0.?`).
    #[arg(
        long,
        value_name = "HOST-GLOB",
        env = "CAPSCOPE_PASSTHROUGH",
        value_delimiter = ','
    )]
    pub passthrough: Vec<String>,

    /// Seconds to wait for a TCP connection to an upstream server.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = proxy::DEFAULT_CONNECT_TIMEOUT.as_secs(),
        env = "CAPSCOPE_CONNECT_TIMEOUT",
    )]
    pub connect_timeout: u64,

    /// Seconds an idle connection (upstream pool, raw tunnel) stays open. Responses themselves have
    /// no time limit: grids hold event-queue polls open on purpose.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = proxy::DEFAULT_IDLE_TIMEOUT.as_secs(),
        env = "CAPSCOPE_IDLE_TIMEOUT",
    )]
    pub idle_timeout: u64,

    /// Seconds a client may take to send a request head (also how long an idle HTTP/1 keep-alive
    /// connection from a client is kept).
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = proxy::DEFAULT_HEADER_TIMEOUT.as_secs(),
        env = "CAPSCOPE_HEADER_TIMEOUT",
    )]
    pub header_timeout: u64,

    /// The largest request head a client may send, in bytes (suffixes k, M).
    #[arg(
        long,
        value_name = "SIZE",
        default_value = "64k",
        value_parser = parse_size,
        env = "CAPSCOPE_MAX_HEADER_SIZE",
    )]
    pub max_header_size: usize,

    /// How many client connections (tunnels included) are served at once; more wait until one
    /// ends. Each needs an upstream connection too: keep it under half of `ulimit -n`.
    #[arg(
        long,
        value_name = "N",
        default_value_t = proxy::DEFAULT_MAX_CONNECTIONS,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..),
        env = "CAPSCOPE_MAX_CONNECTIONS",
    )]
    pub max_connections: usize,

    /// Seconds a request body may send nothing before the exchange is given up (the client gets a
    /// 408, the upstream an aborted body); likewise an upstream silent inside a response body (the
    /// client's connection is cut, the record fails).
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = proxy::DEFAULT_BODY_TIMEOUT.as_secs(),
        env = "CAPSCOPE_BODY_TIMEOUT",
    )]
    pub body_timeout: u64,
}

impl ProxyArgs {
    /// The record stream's body budget: `--body-budget`, else [`record::body_budget_for`] the body
    /// limit.
    pub fn body_budget(&self) -> usize {
        self.body_budget
            .unwrap_or_else(|| record::body_budget_for(self.max_body))
    }

    /// The engine's configuration, with the upstream CA files read.
    pub fn config(&self) -> anyhow::Result<ProxyConfig> {
        let mut upstream_roots = Vec::new();
        for path in &self.upstream_ca {
            upstream_roots.extend(proxy::load_pem_certs(path)?);
        }
        Ok(ProxyConfig {
            listen: self.listen,
            allow_remote: self.allow_remote,
            max_body: self.max_body,
            upstream_roots,
            insecure_upstream: self.insecure_upstream,
            passthrough: self.passthrough.clone(),
            connect_timeout: Duration::from_secs(self.connect_timeout),
            idle_timeout: Duration::from_secs(self.idle_timeout),
            header_timeout: Duration::from_secs(self.header_timeout),
            max_header_size: self.max_header_size,
            max_connections: self.max_connections,
            body_timeout: Duration::from_secs(self.body_timeout),
            ..ProxyConfig::default()
        })
    }
}

/// `4M`, `64k`, `1G`, `1000`, `1.5M`, `4 MiB` (binary multiples whatever the spelling: `4MB` is
/// 4 MiB too; the unit is case-insensitive), on `parse-size`.
pub(crate) fn parse_size(text: &str) -> Result<usize, String> {
    let bytes = parse_size::Config::new()
        .with_binary()
        .parse_size(text.trim())
        .map_err(|e| format!("{text:?} is not a size ({e}; e.g. 4M, 64k, 1000)"))?;
    usize::try_from(bytes).map_err(|_| format!("{text:?} is too large"))
}

pub fn run(args: RunArgs, ca_dir: &CaDirArg) -> anyhow::Result<ExitCode> {
    let ui = if super::ui::wanted(args.headless) {
        let (ui, quit) = super::ui::LiveUi::new(super::ui::start_logging(args.verbose)?);
        Some((ui.with_filter(args.capture.filter.clone()), quit))
    } else {
        init_tracing(&args);
        None
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // The signal handlers are installed before the session starts, so a SIGTERM during start-up
    // ends it cleanly instead of killing the process.
    let signal = {
        let _inside = runtime.enter();
        shutdown_signal()
    };
    match ui {
        None => runtime.block_on(serve(args, ca_dir, Extras::default(), signal, |_| {}))?,
        Some((ui, quit)) => {
            let grid = args.caps.grid.clone();
            let stopping = ui.clone();
            let shutdown = async move {
                tokio::select! {
                    () = signal => {}
                    _ = quit => {}
                }
                stopping.stopped().await;
            };
            let extras = Extras {
                no_log: true,
                ..Extras::default()
            };
            runtime.block_on(serve(args, ca_dir, extras, shutdown, |s| {
                ui.start(s, &grid)
            }))?
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Sets up the log on standard error (`capscope demo` shares it).
pub(crate) fn init_tracing(args: &RunArgs) {
    out::init(out::Verbosity {
        verbose: args.verbose,
        quiet: args.quiet,
    });
}

/// What a caller adds to a session beyond its command line (the demo's simulated grid).
#[derive(Default)]
pub struct Extras {
    /// More roots to trust upstream (e.g. the simulated grid's test CA).
    pub upstream_roots: Vec<CertificateDer<'static>>,
    /// No headless log (the terminal UI shows the records instead).
    pub no_log: bool,
}

/// The capture writer, shared with the UI (which polls it for a failure or lost records) until the
/// session ends and takes it back to finish the file.
pub type SharedWriter = Arc<std::sync::Mutex<Option<WriterHandle>>>;

/// A running session, as `on_start` sees it.
pub struct Session<'a> {
    /// Where the proxy listens.
    pub addr: SocketAddr,
    /// The record stream.
    pub bus: &'a Arc<Bus>,
    /// The caps layer (its registry and counters).
    pub caps: &'a CapsHook,
    /// The capture being written, if any.
    pub capture: Option<&'a Path>,
    /// Its writer, if any.
    pub writer: Option<&'a SharedWriter>,
}

/// Runs a whole session (CA, caps layer, proxy, capture writer, headless log) until `shutdown`
/// resolves; `capscope run` and `capscope demo` both come through here.
pub async fn serve(
    args: RunArgs,
    ca_dir: &CaDirArg,
    extras: Extras,
    shutdown: impl Future<Output = ()>,
    on_start: impl FnOnce(&Session<'_>),
) -> anyhow::Result<()> {
    let mut config = args.proxy.config()?;
    config.upstream_roots.extend(extras.upstream_roots);
    if config.insecure_upstream {
        tracing::warn!("--insecure-upstream: upstream certificates are NOT checked");
    }
    let reach = proxy::check_listen(config.listen, config.allow_remote).map_err(usage)?;
    if reach == proxy::Reach::Remote {
        tracing::warn!(
            "listening on {}: other machines can use this proxy and read what passes through it",
            config.listen
        );
    }
    let mode = Mode::login(&args.caps.grid).map_err(|e| usage(format_args!("--grid: {e}")))?;
    let grid_url = match &mode {
        Mode::Login { grid } => grid.to_string(),
        Mode::Proxy => String::new(),
    };
    let filter = match &args.capture.filter {
        Some(expr) => Some(Filter::parse(expr).map_err(|e| usage(format_args!("--filter: {e}")))?),
        None => None,
    };

    let dir = paths::ca_dir(ca_dir.ca_dir.as_deref())?;
    let ca = CertificateAuthority::load_or_create(&dir)
        .with_context(|| format!("cannot load the CA from {}", dir.display()))?;
    for w in ca.warnings() {
        tracing::warn!("{w}");
    }
    let ca = Arc::new(ca);
    let cert_path = capscope_ca::CaFiles::in_dir(&dir).cert_pem;

    // Bind first: the caps layer mints cap URLs on the address actually bound (port 0 included).
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener
        .local_addr()
        .with_context(|| format!("cannot read the address bound for {}", config.listen))?;
    let bus = Arc::new(Bus::with_body_budget(
        record::DEFAULT_BUS_CAPACITY,
        args.proxy.body_budget(),
    ));
    let caps = CapsHook::new(mode, proxy_base(addr), bus.clone());

    let log_filter = filter.clone();
    let capture = if args.capture.no_save {
        None
    } else {
        let header = FileHeader::new(
            Some(addr.to_string()),
            Some("login+proxy".to_owned()),
            Some(grid_url.clone()),
        );
        let options = SaveOptions {
            path: args.capture.write.clone(),
            data_dir: paths::data_dir()?,
            keep_secrets: args.capture.keep_secrets,
            filter,
        };
        Some(capture::start_saving(&bus, header, options).context("cannot start the capture")?)
    };
    let log = (!extras.no_log).then(|| tokio::spawn(headless::run(bus.subscribe(), log_filter)));

    let builder = Proxy::builder(config)
        .ca(ca)
        .bus(bus.clone())
        .hook(Arc::new(caps.clone()))
        .with_listener(listener);
    let (writer, capture_path): (Option<SharedWriter>, Option<PathBuf>) = match capture {
        Some((handle, path)) => (
            Some(Arc::new(std::sync::Mutex::new(Some(handle)))),
            Some(path),
        ),
        None => (None, None),
    };
    let announce = |handle: &ProxyHandle| {
        let addr = handle.local_addr();
        out::note(format_args!("capscope is listening on {addr}"));
        out::note(format_args!(
            "  login mode:      set the viewer's login URI to {}/login (forwards to {grid_url})",
            proxy_base(addr)
        ));
        out::note(format_args!(
            "  HTTP proxy mode: set the viewer's HTTP proxy to {} port {} and trust the CA \
             (`capscope ca install-viewer DIR`)",
            addr.ip(),
            addr.port()
        ));
        out::note(format_args!("  CA certificate:  {}", cert_path.display()));
        match &capture_path {
            Some(path) => out::note(format_args!("  capture:         {}", path.display())),
            None => out::note("  capture:         none (--no-save)"),
        }
        out::note("  Ctrl-C stops it");
        on_start(&Session {
            addr,
            bus: &bus,
            caps: &caps,
            capture: capture_path.as_deref(),
            writer: writer.as_ref(),
        });
    };
    proxy::run_until_shutdown(builder, shutdown, announce).await?;

    let handle = writer.and_then(|w| w.lock().unwrap_or_else(|p| p.into_inner()).take());
    if let (Some(writer), Some(path)) = (handle, capture_path) {
        match writer.finish().await {
            // Losing records is worth a warning even under -q.
            Ok(stats) if stats.dropped > 0 || stats.shed > 0 => tracing::warn!(
                "capture saved: {} ({} records{})",
                path.display(),
                stats.written,
                losses(&stats, bus.body_budget())
            ),
            Ok(stats) => out::note(format_args!(
                "capture saved: {} ({} records)",
                path.display(),
                stats.written
            )),
            Err(e) => eprintln!(
                "capscope: the capture {} may be incomplete: {e}",
                path.display()
            ),
        }
    }
    let (held_caps, held_regions) = caps.with_registry(|r| (r.cap_count(), r.region_count()));
    out::note(format_args!(
        "cap registry: {held_caps} caps of {held_regions} regions held at the end"
    ));
    drop(caps);
    drop(bus);
    if let Some(log) = log {
        let _ = tokio::time::timeout(LOG_DRAIN, log).await;
    }
    Ok(())
}

/// What a capture lost, for the line that says it was saved: "; N lost ...; M saved without their
/// bodies ...".
fn losses(stats: &capture::WriterStats, body_budget: usize) -> String {
    let mut text = String::new();
    if stats.dropped > 0 {
        text.push_str(&format!(
            "; {} lost because the writer fell behind",
            stats.dropped
        ));
    }
    if stats.shed > 0 {
        text.push_str(&format!(
            "; {} saved without their bodies because the writer fell behind and the record \
             stream's body budget of {} MiB was full (--body-budget)",
            stats.shed,
            body_budget >> 20
        ));
    }
    text
}

/// The base of every URL capscope mints: the bound address, with a wildcard address replaced by
/// loopback (a viewer cannot connect to 0.0.0.0).
fn proxy_base(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

/// Ctrl-C, or SIGTERM on unix. The handlers are installed when this is called, not when the
/// future is first polled, so a signal that comes while the session is still starting is not lost
/// (before, a SIGTERM right after the banner killed the process outright). Call it inside the
/// runtime.
fn shutdown_signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            match (interrupt, terminate) {
                (Ok(mut int), Ok(mut term)) => {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(args: &[&str]) -> RunArgs {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from(["capscope", "run"].iter().chain(args)).unwrap();
        match cli.command {
            crate::cli::Command::Run(run) => run,
            other => panic!("{other:?}"),
        }
    }

    /// The record stream's body budget is eight bodies at `--max-body` unless `--body-budget` says.
    #[test]
    fn the_body_budget_follows_max_body_unless_given() {
        assert_eq!(run_args(&[]).proxy.body_budget(), 32 << 20);
        assert_eq!(
            run_args(&["--max-body", "16M"]).proxy.body_budget(),
            128 << 20
        );
        assert_eq!(
            run_args(&["--max-body", "64k"]).proxy.body_budget(),
            record::MIN_BODY_BUDGET
        );
        assert_eq!(
            run_args(&["--body-budget", "1G"]).proxy.body_budget(),
            1 << 30
        );
    }

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("4M"), Ok(4 << 20));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        // Spellings the hand-written parser also took.
        assert_eq!(parse_size("4m"), Ok(4 << 20));
        assert_eq!(parse_size("4MB"), Ok(4 << 20));
        assert_eq!(parse_size("4MiB"), Ok(4 << 20));
        assert_eq!(parse_size("64 kb"), Ok(64 << 10));
        assert_eq!(parse_size(" 7b "), Ok(7));
        // New with the crate: fractions and spaces.
        assert_eq!(parse_size("1.5M"), Ok(3 << 19));
        assert_eq!(parse_size("4 MiB"), Ok(4 << 20));
        for bad in ["4X", "", "M", "-1", "4MM", "1e400"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        // 2^64 bytes overflows.
        assert!(parse_size("16E").is_err());
    }
}
