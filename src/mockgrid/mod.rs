//! The simulated grid: an in-process Second Life / OpenSimulator grid on 127.0.0.1, and a scripted
//! viewer that drives it, used by `capscope demo` and by the end-to-end tests.
//!
//! The grid behaves like the real ones as the project's wire notes describe them, quirks included:
//! XML-RPC login at any path labelled `application/llsd+xml`; three HTTPS regions with their own test
//! CA; OpenSim-shaped cap URLs that do not share the seed's prefix (`/CAPS/<id>0000/`, `/CE/<id>`,
//! `/<id>/`); LLSD XML served as `text/html;charset=UTF-8`; an event queue that holds idle polls and
//! answers an empty 502, forgets events once an answer is written, and answers a stale first poll with
//! an empty 502 at once; binary LLSD, gzip and a large streamed body; a one-time uploader cap.
//!
//! This module owns the simulated grid and viewer only. It must not reach into the proxy or the caps
//! layer: it talks to capscope over sockets, as a real grid and viewer would. LLSD bodies go through
//! the public API of [`crate::llsd`]; XML-RPC through its own small reader ([`lite`]).
//!
//! Demo account: any first and last name (e.g. `Demo Resident`) with the password [`DEMO_PASSWORD`].

mod bodies;
mod client;
pub mod lite;
pub mod script;
mod server;
mod state;
mod tls;
pub mod viewer;
mod websocket;

pub use server::WEBSOCKET_PATH;
pub use websocket::websocket_accept;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use bodies::region_handle;
pub use client::{ClientError, HttpClient, Reply};
pub use server::asset_byte;
pub use state::{CapKind, Delivered, ScriptError};

/// The demo account's password; any first and last name is accepted with it.
pub const DEMO_PASSWORD: &str = "capscope";
/// The demo account's first name, as the demo and tests use it.
pub const DEMO_FIRST: &str = "Demo";
/// The demo account's last name.
pub const DEMO_LAST: &str = "Resident";

/// The regions' names and grid coordinates (x, y in region units of 256 m).
const REGIONS: [(&str, u32, u32); 3] = [
    ("Capscope Plaza", 1000, 1000),
    ("Capscope Dunes", 1001, 1000),
    ("Capscope Harbour", 1001, 1001),
];

/// What the grid should do; [`MockGridConfig::default`] is the demo's, [`MockGridConfig::for_tests`]
/// keeps polls short and bodies small.
#[derive(Debug, Clone)]
pub struct MockGridConfig {
    /// How long an idle event-queue poll is held before the empty 502 (OpenSim: about 58 s).
    pub eq_hold: Duration,
    /// Answer the first poll of each queue with an empty 502 at once, as OpenSim does when a queue is
    /// left from an earlier session.
    pub stale_first_poll: bool,
    /// The size of the ViewerAsset body, in bytes.
    pub asset_size: usize,
    /// Answer a login at any path but [`LOGIN_RETRY_PATH`] with `login` = `indeterminate` and a
    /// `next_url` there (the redirect the Linden viewer follows in lllogin.cpp).
    pub login_redirect: bool,
    /// Announce the last region by the host name `localhost` instead of `127.0.0.1`: a teleport there
    /// lands on another host, as a Hypergrid jump lands on another grid's simulator. (Its server still
    /// listens on 127.0.0.1; its certificate names both.)
    pub other_host_region: bool,
    /// Second Life style MFA: a login without this `token` is answered `login` = `false`, `reason` =
    /// `mfa_challenge` (the viewer asks for the code and logs in again with `token`).
    pub mfa_token: Option<String>,
}

/// Where the mock grid's login redirect points.
pub const LOGIN_RETRY_PATH: &str = "/login-retry";

impl Default for MockGridConfig {
    fn default() -> Self {
        Self {
            eq_hold: Duration::from_secs(20),
            stale_first_poll: true,
            asset_size: 4 * 1024 * 1024,
            login_redirect: false,
            mfa_token: None,
            other_host_region: false,
        }
    }
}

impl MockGridConfig {
    /// Short holds and a smaller asset, for tests.
    pub fn for_tests() -> Self {
        Self {
            eq_hold: Duration::from_secs(2),
            stale_first_poll: true,
            asset_size: 3 * 1024 * 1024 + 17,
            login_redirect: false,
            mfa_token: None,
            other_host_region: false,
        }
    }
}

/// One region of the grid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionInfo {
    pub name: String,
    /// The region's HTTPS port (also given as its UDP `sim_port`; nothing listens for UDP).
    pub port: u16,
    /// `https://127.0.0.1:<port>`.
    pub base_url: String,
    pub grid_x: u32,
    pub grid_y: u32,
}

impl RegionInfo {
    /// The region's handle (x << 32 | y, in metres).
    pub fn handle(&self) -> u64 {
        region_handle(self.grid_x, self.grid_y)
    }
}

/// A reply the grid can be told to send malformed, once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breakage {
    /// The next login reply is cut off in the middle.
    LoginReply = 0,
    /// The next seed reply is cut off in the middle.
    SeedReply = 1,
    /// The next event-queue poll is answered at once with a 200 whose body is cut off.
    EventBody = 2,
    /// The next event-queue poll's connection is closed early: a 200 announces a body it never
    /// sends.
    PollClosed = 3,
    /// The next event-queue poll is answered 404, as for a region that is gone.
    PollGone = 4,
}

impl Breakage {
    const COUNT: usize = 5;
}

/// Why the grid could not start.
#[derive(Debug, thiserror::Error)]
pub enum MockGridError {
    #[error("could not bind the mock grid's {what} on 127.0.0.1: {source}")]
    Bind {
        what: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// The simulated grid.
#[derive(Debug)]
pub struct MockGrid;

impl MockGrid {
    /// Starts the grid on ephemeral ports of 127.0.0.1.
    pub async fn start(config: MockGridConfig) -> Result<MockGridHandle, MockGridError> {
        let grid_tls = tls::generate()?;
        let bind = |what: &'static str| async move {
            TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|source| MockGridError::Bind { what, source })
        };
        let login_listener = bind("login server").await?;
        let login_addr = local_addr(&login_listener, "login server")?;
        let mut region_listeners = Vec::new();
        let mut regions = Vec::new();
        for (i, (name, x, y)) in REGIONS.into_iter().enumerate() {
            let listener = bind("region server").await?;
            let addr = local_addr(&listener, "region server")?;
            let host = if config.other_host_region && i + 1 == REGIONS.len() {
                "localhost"
            } else {
                "127.0.0.1"
            };
            regions.push(RegionInfo {
                name: name.to_owned(),
                port: addr.port(),
                base_url: format!("https://{host}:{}", addr.port()),
                grid_x: x,
                grid_y: y,
            });
            region_listeners.push(listener);
        }
        let grid = Arc::new(state::Grid::new(config, regions.clone(), login_addr.port()));
        let (shutdown, watch_rx) = watch::channel(false);
        let mut tasks = vec![tokio::spawn(server::serve(
            login_listener,
            None,
            grid.clone(),
            None,
            watch_rx.clone(),
        ))];
        let acceptor = tokio_rustls::TlsAcceptor::from(grid_tls.server_config.clone());
        for (i, listener) in region_listeners.into_iter().enumerate() {
            tasks.push(tokio::spawn(server::serve(
                listener,
                Some(acceptor.clone()),
                grid.clone(),
                Some(i),
                watch_rx.clone(),
            )));
        }
        tracing::debug!(login = %login_addr, "mock grid started");
        Ok(MockGridHandle {
            login_url: format!("http://{login_addr}/"),
            login_addr,
            regions,
            ca_pem: grid_tls.ca_pem,
            grid,
            shutdown,
            tasks,
        })
    }
}

fn local_addr(listener: &TcpListener, what: &'static str) -> Result<SocketAddr, MockGridError> {
    listener
        .local_addr()
        .map_err(|source| MockGridError::Bind { what, source })
}

/// A running grid: its addresses, its CA, its script controls and its shutdown.
#[derive(Debug)]
pub struct MockGridHandle {
    /// The XML-RPC login URL (`http://127.0.0.1:<port>/`; any path works).
    pub login_url: String,
    pub login_addr: SocketAddr,
    /// The three regions, in order; the agent starts in region 0.
    pub regions: Vec<RegionInfo>,
    /// The grid's test CA certificate (PEM): trust it to talk to the regions directly.
    pub ca_pem: String,
    grid: Arc<state::Grid>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl MockGridHandle {
    /// Teleports the most recently logged-in agent to `region`: a `TeleportFinish` carrying the
    /// region's seed is queued on the region it leaves.
    pub fn trigger_teleport(&self, region: usize) -> Result<(), ScriptError> {
        self.grid.teleport(region)
    }

    /// Walks the most recently logged-in agent into `region`: a `CrossedRegion` is queued on the region
    /// it leaves.
    pub fn trigger_crossing(&self, region: usize) -> Result<(), ScriptError> {
        self.grid.cross(region)
    }

    /// Queues a group chat line (`ChatterBoxInvitation`) for the latest agent.
    pub fn send_group_chat(&self, from_name: &str, text: &str) -> Result<(), ScriptError> {
        self.grid.group_chat(from_name, text)
    }

    /// Queues any event for the latest agent, on the region it is in.
    pub fn push_event(&self, message: &str, body: crate::llsd::Value) -> Result<(), ScriptError> {
        self.grid.push_event(message, body)
    }

    /// Answers every event-queue poll the grid holds now (idle, as when its hold ends), and every
    /// later poll at once: a load test ends its held polls with it.
    pub fn release_polls(&self) {
        self.grid.release_polls();
    }

    /// How long the grid holds an idle event-queue poll.
    pub fn eq_hold(&self) -> Duration {
        self.grid.config.eq_hold
    }

    /// Makes the next reply of this kind malformed (once).
    pub fn break_next(&self, what: Breakage) {
        self.grid.break_next(what);
    }

    /// The region the latest agent is in.
    pub fn current_region(&self) -> Option<usize> {
        self.grid.current_region()
    }

    /// Waits until `pred` holds (checked whenever a poll arrives or events are written), or `limit`
    /// passes; returns whether it held. Lets tests wait for the grid without sleeping.
    pub async fn wait_until(
        &self,
        limit: Duration,
        pred: impl Fn(&MockGridHandle) -> bool,
    ) -> bool {
        self.grid.wait_until(limit, |_| pred(self)).await
    }

    /// How many event-queue polls reached the grid for the latest agent (all regions).
    pub fn polls_received(&self) -> u64 {
        self.grid.polls_received()
    }

    /// Every seed and cap URL the grid handed out so far (upstream URLs, as capscope sees them).
    pub fn issued_urls(&self) -> Vec<String> {
        self.grid.issued()
    }

    /// Every event scripted so far, as (region, message).
    pub fn scripted_events(&self) -> Vec<(usize, String)> {
        self.grid.scripted()
    }

    /// Every event written in an event-queue answer so far.
    pub fn delivered_events(&self) -> Vec<Delivered> {
        self.grid.delivered_events()
    }

    /// Stops every server and waits for them.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

impl Drop for MockGridHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// Seconds since the Unix epoch, now.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
