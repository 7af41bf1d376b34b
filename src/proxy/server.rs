//! The proxy's outer shell: the builder, the accept loop, serving one client connection, and a graceful
//! shutdown that lets exchanges in flight finish.
//!
//! This module owns connection lifetimes. It must not look inside requests (that is `exchange`) or
//! handle CONNECT tunnels (that is `connect`).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use super::connect::Rewind;
use super::exchange::{self, Origin};
use super::front;
use super::hook::{Hook, NoopHook, Upstream};
use super::upstream::UpstreamClient;
use super::{CertIssuer, ProxyConfig, ProxyError, MIN_MAX_HEADER_SIZE};
use crate::record::{Bus, Kind, Record, State};

/// How long, after the grace period, stopped connections get to publish their last records.
const STOP_SETTLE: Duration = Duration::from_secs(1);
/// The first pause after an accept error (e.g. out of file descriptors) before accepting again; it
/// doubles with each error in a row, up to [`ACCEPT_BACKOFF_MAX`].
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
/// The longest pause after accept errors.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Accept errors, and the connection limit being reached, are logged at most once per interval.
const ACCEPT_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Entry point: `Proxy::builder(config)`.
#[derive(Debug)]
pub struct Proxy;

impl Proxy {
    /// A builder for a proxy with `config`.
    pub fn builder(config: ProxyConfig) -> ProxyBuilder {
        ProxyBuilder {
            config,
            ca: None,
            hook: Arc::new(NoopHook),
            bus: None,
            listener: None,
        }
    }
}

/// Collects what a proxy needs, then [`ProxyBuilder::start`]s it.
pub struct ProxyBuilder {
    config: ProxyConfig,
    ca: Option<Arc<dyn CertIssuer>>,
    hook: Arc<dyn Hook>,
    bus: Option<Arc<Bus>>,
    listener: Option<TcpListener>,
}

impl ProxyBuilder {
    /// The certificate authority that mints leaves for intercepted hosts (required).
    pub fn ca(mut self, ca: Arc<dyn CertIssuer>) -> Self {
        self.ca = Some(ca);
        self
    }

    /// The hook called for every request ([`NoopHook`] unless set).
    pub fn hook(mut self, hook: Arc<dyn Hook>) -> Self {
        self.hook = hook;
        self
    }

    /// The stream records go to (a fresh one unless set).
    pub fn bus(mut self, bus: Arc<Bus>) -> Self {
        self.bus = Some(bus);
        self
    }

    /// Serve on this listener instead of binding `config.listen` (tests bind `127.0.0.1:0`).
    pub fn with_listener(mut self, listener: TcpListener) -> Self {
        self.listener = Some(listener);
        self
    }

    /// Binds (unless given a listener), builds the upstream client and starts accepting.
    pub async fn start(self) -> Result<ProxyHandle, ProxyError> {
        let ca = self.ca.ok_or(ProxyError::NoCa)?;
        let listener = match self.listener {
            Some(l) => l,
            None => {
                check_listen(self.config.listen, self.config.allow_remote)?;
                TcpListener::bind(self.config.listen)
                    .await
                    .map_err(|source| ProxyError::Bind {
                        addr: self.config.listen.to_string(),
                        source,
                    })?
            }
        };
        let local_addr = listener.local_addr().map_err(|source| ProxyError::Bind {
            addr: self.config.listen.to_string(),
            source,
        })?;
        check_listen(local_addr, self.config.allow_remote)?;
        let upstream = UpstreamClient::new(&self.config)?;
        let bus = self.bus.unwrap_or_default();
        let (phase_tx, phase_rx) = watch::channel(Phase::Running);
        let (alive_tx, alive_rx) = mpsc::channel(1);
        let life = Life {
            phase: phase_rx,
            _alive: alive_tx,
        };
        let shared = Arc::new(Shared::new(
            self.config,
            ca,
            self.hook,
            bus,
            upstream,
            local_addr,
        ));
        let accept = tokio::spawn(accept_loop(listener, shared.clone(), life));
        Ok(ProxyHandle {
            local_addr,
            shared,
            phase: phase_tx,
            alive: alive_rx,
            accept,
        })
    }
}

/// Whether the proxy may listen on `addr`: a loopback address always, any other only when
/// `allow_remote` says so (then other machines can use the proxy: the answer says so, for a warning).
/// The one loopback rule: the builder asks it before binding and again for the bound address, and
/// the command line asks it before anything starts.
pub fn check_listen(addr: SocketAddr, allow_remote: bool) -> Result<Reach, ProxyError> {
    if addr.ip().is_loopback() {
        Ok(Reach::Loopback)
    } else if allow_remote {
        Ok(Reach::Remote)
    } else {
        Err(ProxyError::RemoteNotAllowed { addr })
    }
}

/// Who can reach a listen address [`check_listen`] allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Only this machine.
    Loopback,
    /// Other machines too (`allow_remote`).
    Remote,
}

/// A running proxy. Dropping it without [`ProxyHandle::shutdown`] stops accepting new connections
/// and leaves the ones open to run to their end.
pub struct ProxyHandle {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    phase: watch::Sender<Phase>,
    alive: mpsc::Receiver<()>,
    accept: JoinHandle<()>,
}

impl std::fmt::Debug for ProxyHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyHandle")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl ProxyHandle {
    /// The address the proxy listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The upstream client, as a hook may use it.
    pub fn upstream(&self) -> Upstream {
        self.shared.upstream_dyn.clone()
    }

    /// The record stream.
    pub fn bus(&self) -> Arc<Bus> {
        self.shared.bus.clone()
    }

    /// How many client connections are being served now (at most `max_connections`).
    pub fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::Relaxed)
    }

    /// Stops accepting, lets exchanges in flight finish for up to the grace period, then cuts what is
    /// left (their records are published as failed).
    pub async fn shutdown(mut self) {
        let _ = self.phase.send(Phase::Draining);
        let grace = self.shared.config.shutdown_grace;
        let drained = tokio::time::timeout(grace, self.alive.recv()).await.is_ok();
        if !drained {
            tracing::info!(
                "exchanges still in flight after {} s; cutting them off",
                grace.as_secs()
            );
            let _ = self.phase.send(Phase::Stopped);
            let _ = tokio::time::timeout(STOP_SETTLE, self.alive.recv()).await;
        }
        self.accept.abort();
    }
}

/// Runs a proxy until `signal` resolves, then shuts it down gracefully (what `capscope run` does).
pub async fn run_until_shutdown(
    builder: ProxyBuilder,
    signal: impl Future<Output = ()>,
    on_start: impl FnOnce(&ProxyHandle),
) -> Result<(), ProxyError> {
    let handle = builder.start().await?;
    on_start(&handle);
    signal.await;
    tracing::info!("shutting down: finishing exchanges in flight");
    handle.shutdown().await;
    Ok(())
}

/// The phases of a proxy's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Running,
    /// Accept nothing new; let exchanges in flight finish.
    Draining,
    /// Cut everything.
    Stopped,
}

/// What every connection task holds: the phase to obey, and a token whose drop tells the shutdown
/// that this task has ended.
#[derive(Clone)]
pub(crate) struct Life {
    phase: watch::Receiver<Phase>,
    _alive: mpsc::Sender<()>,
}

impl Life {
    /// Drives a connection to its end: asks it to finish gracefully when draining starts, drops it
    /// when the proxy stops. `None` when it was cut.
    pub(crate) async fn drive<F: Future>(
        &self,
        conn: F,
        graceful: impl Fn(Pin<&mut F>),
    ) -> Option<F::Output> {
        let mut conn = pin!(conn);
        let mut phase = self.phase.clone();
        let mut asked = false;
        loop {
            let now = *phase.borrow_and_update();
            match now {
                Phase::Stopped => return None,
                Phase::Draining if !asked => {
                    asked = true;
                    graceful(conn.as_mut());
                }
                _ => {}
            }
            tokio::select! {
                out = conn.as_mut() => return Some(out),
                changed = phase.changed() => {
                    if changed.is_err() {
                        // The handle is gone without a shutdown: run to the end.
                        return Some(conn.await);
                    }
                }
            }
        }
    }

    /// The proxy's phase, to watch (the front of HTTP/1 connections obeys it itself).
    pub(crate) fn phase_watch(&self) -> watch::Receiver<Phase> {
        self.phase.clone()
    }

    /// Resolves once the proxy stops (the grace period is over).
    pub(crate) async fn stopped(&self) {
        let mut phase = self.phase.clone();
        if phase.wait_for(|p| *p == Phase::Stopped).await.is_err() {
            // The handle was dropped without a shutdown: nothing will ever stop this.
            std::future::pending::<()>().await;
        }
    }

    /// Resolves once the proxy drains or stops (raw tunnels end then: they have no graceful end).
    pub(crate) async fn ending(&self) {
        let mut phase = self.phase.clone();
        let _ = phase.wait_for(|p| *p != Phase::Running).await;
    }
}

/// Everything the connection tasks share.
pub(crate) struct Shared {
    pub(crate) config: ProxyConfig,
    pub(crate) ca: Arc<dyn CertIssuer>,
    pub(crate) hook: Arc<dyn Hook>,
    pub(crate) bus: Arc<Bus>,
    pub(crate) upstream: UpstreamClient,
    /// The hook's view of `upstream`, built once.
    pub(crate) upstream_dyn: Upstream,
    pub(crate) local_addr: SocketAddr,
    /// One permit per client connection being served.
    connections: Arc<Semaphore>,
    max_connections: usize,
    /// Client connections being served.
    open: Arc<AtomicUsize>,
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
}

impl Shared {
    fn new(
        config: ProxyConfig,
        ca: Arc<dyn CertIssuer>,
        hook: Arc<dyn Hook>,
        bus: Arc<Bus>,
        upstream: UpstreamClient,
        local_addr: SocketAddr,
    ) -> Self {
        let mut h1 = http1::Builder::new();
        h1.timer(TokioTimer::new())
            .header_read_timeout(config.header_timeout)
            .max_buf_size(config.max_header_size.max(MIN_MAX_HEADER_SIZE))
            .keep_alive(true);
        let mut h2 = http2::Builder::new(TokioExecutor::new());
        h2.timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(config.max_header_size).unwrap_or(u32::MAX))
            .keep_alive_interval(config.idle_timeout)
            .keep_alive_timeout(config.header_timeout);
        let max_connections = config.max_connections.clamp(1, Semaphore::MAX_PERMITS);
        Shared {
            connections: Arc::new(Semaphore::new(max_connections)),
            max_connections,
            open: Arc::new(AtomicUsize::new(0)),
            upstream_dyn: Arc::new(upstream.clone()),
            config,
            ca,
            hook,
            bus,
            upstream,
            local_addr,
            http1: h1,
            http2: h2,
        }
    }

    /// Publishes a finished error record (a failure that belongs to no exchange).
    pub(crate) fn error_record(&self, client: SocketAddr, error: String) {
        let mut r = Record::new(self.bus.next_id(), Kind::Error);
        r.state = State::Failed;
        r.client = Some(client.to_string().into());
        r.error = Some(error);
        self.bus.publish(r);
    }
}

/// A client connection's place under the connection limit, held for as long as the connection (or the
/// tunnel it became) is served.
pub(crate) type Slot = Arc<Place>;

/// A permit of the connection limit, counted in [`ProxyHandle::open_connections`].
pub(crate) struct Place {
    _permit: OwnedSemaphorePermit,
    open: Arc<AtomicUsize>,
}

impl Place {
    fn new(permit: OwnedSemaphorePermit, open: Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        Place {
            _permit: permit,
            open,
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, life: Life) {
    let ending = life.clone();
    let mut ending = pin!(ending.ending());
    let mut trouble = AcceptTrouble::default();
    loop {
        let permit = match shared.connections.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                trouble.limit_reached(shared.max_connections);
                tokio::select! {
                    p = shared.connections.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                    _ = &mut ending => break,
                }
            }
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut ending => break,
        };
        match accepted {
            Ok((stream, client)) => {
                trouble.accepted();
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let life = life.clone();
                let slot = Arc::new(Place::new(permit, shared.open.clone()));
                tokio::spawn(async move {
                    serve_http1(shared, life, stream, client, Origin::Listener, Some(slot)).await
                });
            }
            Err(e) => {
                drop(permit);
                let pause = trouble.failed(&e);
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = &mut ending => break,
                }
            }
        }
    }
    tracing::debug!("no longer accepting connections");
}

/// Accept errors in a row (out of file descriptors, mostly) and the connection limit: how long to
/// pause, and when to say so.
#[derive(Debug, Default)]
struct AcceptTrouble {
    /// The pause after the last error in a row; zero after a success.
    backoff: Duration,
    last_error_log: Option<Instant>,
    errors_unlogged: u64,
    last_limit_log: Option<Instant>,
}

impl AcceptTrouble {
    fn accepted(&mut self) {
        self.backoff = Duration::ZERO;
    }

    /// Logs (at most once per [`ACCEPT_LOG_INTERVAL`]) and says how long to pause.
    fn failed(&mut self, e: &std::io::Error) -> Duration {
        self.backoff = (self.backoff * 2).clamp(ACCEPT_BACKOFF_MIN, ACCEPT_BACKOFF_MAX);
        if due(&mut self.last_error_log) {
            let more = std::mem::take(&mut self.errors_unlogged);
            let hint = if e.raw_os_error() == Some(EMFILE) || e.raw_os_error() == Some(ENFILE) {
                " (out of file descriptors: raise the limit with `ulimit -n`, or lower \
                 --max-connections)"
            } else {
                ""
            };
            let more = if more > 0 {
                format!("; {more} more since the last report")
            } else {
                String::new()
            };
            tracing::warn!(
                "accepting a connection failed: {e}{hint}; retrying in up to {} ms{more}",
                self.backoff.as_millis()
            );
        } else {
            self.errors_unlogged += 1;
        }
        self.backoff
    }

    fn limit_reached(&mut self, limit: usize) {
        if due(&mut self.last_limit_log) {
            tracing::warn!(
                "{limit} client connections open (--max-connections): new ones wait until one ends"
            );
        }
    }
}

/// "Too many open files" for the process and for the system (Linux and the BSDs agree on these).
const EMFILE: i32 = 24;
const ENFILE: i32 = 23;

/// Whether a rate-limited message may be logged now (and notes that it was).
fn due(last: &mut Option<Instant>) -> bool {
    let now = Instant::now();
    match last {
        Some(t) if now.duration_since(*t) < ACCEPT_LOG_INTERVAL => false,
        _ => {
            *last = Some(now);
            true
        }
    }
}

/// Serves HTTP/1.1 on a connection (with CONNECT upgrades when it is the listener's): the front serves
/// held polls itself and hands the connection to hyper at the first other request.
pub(crate) async fn serve_http1<I>(
    shared: Arc<Shared>,
    life: Life,
    io: I,
    client: SocketAddr,
    origin: Origin,
    slot: Option<Slot>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ctx = exchange::Ctx::new(shared.clone(), life.clone(), client, origin, slot);
    match front::serve(&ctx, io).await {
        front::Ended::Closed => {}
        front::Ended::HandOver(io, first) => {
            // Boxed: a connection that stays with the front does not carry hyper's connection inline.
            Box::pin(serve_hyper(shared, life, ctx, Rewind::new(first, io))).await
        }
    }
}

/// hyper's HTTP/1 server on a connection, `io` starting with what the front read.
async fn serve_hyper<I>(shared: Arc<Shared>, life: Life, ctx: exchange::Ctx, io: Rewind<I>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let client = ctx.client;
    let service = service_fn(move |req| exchange::serve(ctx.clone(), req));
    let conn = shared
        .http1
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    if let Some(Err(e)) = life.drive(conn, |c| c.graceful_shutdown()).await {
        connection_error(&shared, client, &e);
    }
}

/// Serves HTTP/2 on a TLS connection whose client chose `h2`.
pub(crate) async fn serve_http2<I>(
    shared: Arc<Shared>,
    life: Life,
    io: I,
    client: SocketAddr,
    origin: Origin,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ctx = exchange::Ctx::new(shared.clone(), life.clone(), client, origin, None);
    let service = service_fn(move |req| exchange::serve(ctx.clone(), req));
    let conn = shared.http2.serve_connection(TokioIo::new(io), service);
    if let Some(Err(e)) = life.drive(conn, |c| c.graceful_shutdown()).await {
        connection_error(&shared, client, &e);
    }
}

/// A client connection ended with an error: garbage or an oversized head becomes an error record;
/// a client that simply went away or idled out is only logged.
fn connection_error(shared: &Shared, client: SocketAddr, e: &hyper::Error) {
    if e.is_parse() || e.is_parse_too_large() {
        shared.error_record(
            client,
            format!(
                "the client sent something that is not HTTP: {}",
                super::upstream::describe_hyper(e)
            ),
        );
    } else {
        tracing::debug!("connection from {client} ended: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_listens_without_allow_remote() {
        for addr in ["127.0.0.1:8080", "127.3.4.5:0", "[::1]:8080"] {
            let addr: SocketAddr = addr.parse().unwrap();
            assert_eq!(
                check_listen(addr, false).unwrap(),
                Reach::Loopback,
                "{addr}"
            );
            assert_eq!(check_listen(addr, true).unwrap(), Reach::Loopback, "{addr}");
        }
        for addr in ["0.0.0.0:8080", "[::]:8080", "192.168.1.2:8080"] {
            let addr: SocketAddr = addr.parse().unwrap();
            let e = check_listen(addr, false).unwrap_err();
            assert!(e.to_string().contains("--allow-remote"), "{e}");
            assert_eq!(check_listen(addr, true).unwrap(), Reach::Remote, "{addr}");
        }
    }
}
