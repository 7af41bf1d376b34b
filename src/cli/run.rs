//! `capscope run`: parse the proxy's flags, load the CA, start the proxy and the headless log, and stop
//! cleanly on Ctrl-C (or SIGTERM), finishing the records in flight.
//!
//! Owns only the command-line side: the engine is [`crate::proxy`], the log [`crate::headless`].
//! Later features add their flags here: add a field (or a flattened group) to [`RunArgs`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use capscope_ca::CertificateAuthority;
use clap::{ArgAction, Args};

use super::CaDirArg;
use crate::proxy::{self, Proxy, ProxyConfig, ProxyHandle};
use crate::record::Bus;
use crate::{headless, paths};

/// How long, after the proxy stopped, the log gets to print the last records.
const LOG_DRAIN: Duration = Duration::from_secs(2);

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub proxy: ProxyArgs,

    /// Print one line per finished exchange (mitmdump-style). There is no terminal UI yet, so run
    /// always behaves as if this were given.
    #[arg(long)]
    pub headless: bool,

    /// More detail in the log: -v debug, -vv trace (RUST_LOG, when set, wins).
    #[arg(short, long, action = ArgAction::Count)]
    pub verbose: u8,
}

/// The proxy's own flags.
#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Address to listen on (the viewer's HTTP proxy setting).
    #[arg(long, value_name = "ADDR:PORT", default_value_t = proxy::DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// Allow a listen address that other machines can reach (anyone who reaches it can use the
    /// proxy and read what passes through it).
    #[arg(long)]
    pub allow_remote: bool,

    /// How much of each body a record keeps, in bytes (suffixes k, M, G); the true size is always
    /// counted.
    #[arg(long, value_name = "SIZE", default_value = "4M", value_parser = parse_size)]
    pub max_body: usize,

    /// Also trust the CA certificates in this PEM file for upstream servers (repeatable).
    #[arg(long, value_name = "FILE")]
    pub upstream_ca: Vec<PathBuf>,

    /// Do not verify upstream certificates at all (testing only: anyone on the path can read and
    /// change the traffic).
    #[arg(long)]
    pub insecure_upstream: bool,

    /// Tunnel hosts matching this glob without intercepting them (repeatable; `*.example.com`).
    #[arg(long, value_name = "HOST-GLOB")]
    pub passthrough: Vec<String>,

    /// Seconds to wait for a TCP connection to an upstream server.
    #[arg(long, value_name = "SECS", default_value_t = proxy::DEFAULT_CONNECT_TIMEOUT.as_secs())]
    pub connect_timeout: u64,

    /// Seconds an idle connection (upstream pool, raw tunnel) stays open. Responses themselves have
    /// no time limit: grids hold event-queue polls open on purpose.
    #[arg(long, value_name = "SECS", default_value_t = proxy::DEFAULT_IDLE_TIMEOUT.as_secs())]
    pub idle_timeout: u64,

    /// Seconds a client may take to send a request head (also how long an idle HTTP/1 keep-alive
    /// connection from a client is kept).
    #[arg(long, value_name = "SECS", default_value_t = proxy::DEFAULT_HEADER_TIMEOUT.as_secs())]
    pub header_timeout: u64,

    /// The largest request head a client may send, in bytes (suffixes k, M).
    #[arg(long, value_name = "SIZE", default_value = "64k", value_parser = parse_size)]
    pub max_header_size: usize,
}

impl ProxyArgs {
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
            ..ProxyConfig::default()
        })
    }
}

/// `4M`, `64k`, `1G`, `1000` (binary multiples).
fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: usize = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. 4M, 64k, 1000)"))?;
    let mult: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("unknown size unit {other:?} (use k, M or G)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{text:?} is too large"))
}

pub fn run(args: RunArgs, ca_dir: &CaDirArg) -> anyhow::Result<ExitCode> {
    init_tracing(args.verbose);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(args, ca_dir))?;
    Ok(ExitCode::SUCCESS)
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_target(false)
        .without_time()
        .try_init();
}

async fn serve(args: RunArgs, ca_dir: &CaDirArg) -> anyhow::Result<()> {
    let config = args.proxy.config()?;
    if config.insecure_upstream {
        tracing::warn!("--insecure-upstream: upstream certificates are NOT checked");
    }
    if !config.listen.ip().is_loopback() && config.allow_remote {
        tracing::warn!(
            "listening on {}: other machines can use this proxy and read what passes through it",
            config.listen
        );
    }
    let dir = paths::ca_dir(ca_dir.ca_dir.as_deref())?;
    let ca = Arc::new(
        CertificateAuthority::load_or_create(&dir)
            .with_context(|| format!("cannot load the CA from {}", dir.display()))?,
    );
    let cert_path = capscope_ca::CaFiles::in_dir(&dir).cert_pem;
    let bus = Arc::new(Bus::default());
    let log = tokio::spawn(headless::run(bus.subscribe()));

    let builder = Proxy::builder(config).ca(ca).bus(bus.clone());
    let announce = |handle: &ProxyHandle| {
        let addr = handle.local_addr();
        println!("capscope is listening on {addr}");
        println!("  CA certificate: {}", cert_path.display());
        println!(
            "  point a viewer at it: HTTP proxy {} port {} (and make it trust the CA: \
             `capscope ca install-viewer DIR`)",
            addr.ip(),
            addr.port()
        );
        println!("  Ctrl-C stops it");
    };
    proxy::run_until_shutdown(builder, shutdown_signal(), announce).await?;
    drop(bus);
    let _ = tokio::time::timeout(LOG_DRAIN, log).await;
    Ok(())
}

/// Ctrl-C, or SIGTERM on unix.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("4M"), Ok(4 << 20));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("4X").is_err());
        assert!(parse_size("").is_err());
    }
}
