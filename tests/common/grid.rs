//! The simulated grid, capscope (proxy and caps hook) and a scripted viewer on 127.0.0.1, wired as a
//! user wires them in either mode; and the records capscope published, latest version of each.
//! Shared by the end-to-end tests (tests/e2e_caps.rs, tests/e2e_viewers.rs).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use capscope::caps::{CapsHook, Mode};
use capscope::mockgrid::viewer::{Viewer, ViewerConfig};
use capscope::mockgrid::{MockGrid, MockGridConfig, MockGridHandle};
use capscope::proxy::{Proxy, ProxyConfig, ProxyHandle};
use capscope::record::{Bus, Received, Record, Subscriber};
use capscope_ca::CertificateAuthority;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use tokio::net::TcpListener;

/// A safety net for waits that should end much sooner; no test depends on how long anything takes.
pub const WAIT: Duration = Duration::from_secs(30);

/// How the viewer reaches the grid through capscope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestMode {
    /// The viewer's login URI is capscope's `/login`.
    Login,
    /// capscope is the viewer's HTTP proxy.
    HttpProxy,
}

/// A grid, capscope in front of it and a viewer configured for it.
pub struct GridEnv {
    pub grid: MockGridHandle,
    /// capscope's CA (the viewer trusts it).
    pub ca: Arc<CertificateAuthority>,
    pub proxy: ProxyHandle,
    pub proxy_addr: SocketAddr,
    /// `http://<proxy_addr>`: the base of every URL capscope mints.
    pub proxy_base: String,
    pub viewer: Viewer,
    pub records: Records,
}

impl GridEnv {
    /// A grid started with `grid_config`, capscope in `mode` trusting the grid's CA, and a viewer
    /// pointed at capscope as `mode` says, its config then changed by `viewer`.
    pub async fn start(
        mode: TestMode,
        grid_config: MockGridConfig,
        viewer: impl FnOnce(&mut ViewerConfig),
    ) -> GridEnv {
        let grid = MockGrid::start(grid_config).await.unwrap();
        let ca = Arc::new(CertificateAuthority::generate().unwrap());
        let bus = Arc::new(Bus::default());
        let sub = bus.subscribe();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy_addr = listener.local_addr().unwrap();
        let proxy_base = format!("http://{proxy_addr}");
        let config = ProxyConfig {
            upstream_roots: CertificateDer::pem_slice_iter(grid.ca_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap(),
            ..ProxyConfig::default()
        };
        let caps_mode = match mode {
            TestMode::Login => Mode::login(&grid.login_url).unwrap(),
            TestMode::HttpProxy => Mode::Proxy,
        };
        let hook = CapsHook::new(caps_mode, proxy_base.clone(), bus.clone());
        let proxy = Proxy::builder(config)
            .ca(ca.clone())
            .bus(bus)
            .hook(Arc::new(hook))
            .with_listener(listener)
            .start()
            .await
            .unwrap();
        let mut viewer_config = match mode {
            TestMode::Login => ViewerConfig::new(format!("{proxy_base}/login"), ca.cert_pem()),
            TestMode::HttpProxy => {
                let mut c = ViewerConfig::new(grid.login_url.clone(), ca.cert_pem());
                c.http_proxy = Some(proxy_addr);
                c
            }
        };
        viewer(&mut viewer_config);
        GridEnv {
            grid,
            ca,
            proxy,
            proxy_addr,
            proxy_base,
            viewer: Viewer::new(viewer_config).unwrap(),
            records: Records {
                sub,
                by_id: BTreeMap::new(),
            },
        }
    }

    /// Waits until `pred` holds over the records seen so far (see [`Records::wait_for`]).
    pub async fn wait_for(
        &mut self,
        what: &str,
        pred: impl Fn(&BTreeMap<u64, Arc<Record>>) -> bool,
    ) {
        self.records.wait_for(what, pred).await;
    }
}

/// Every record seen, by id, keeping the latest version. A lost record fails the test.
pub struct Records {
    pub sub: Subscriber,
    pub by_id: BTreeMap<u64, Arc<Record>>,
}

impl Records {
    /// Takes in what is waiting.
    pub fn drain(&mut self) {
        while let Some(r) = self.sub.try_recv() {
            self.take(r);
        }
    }

    fn take(&mut self, r: Received) {
        match r {
            Received::Record(r) => {
                self.by_id.insert(r.id, r);
            }
            Received::Lagged(n) => panic!("the test subscriber lost {n} records"),
        }
    }

    /// Waits until `pred` holds over the records seen so far, at most [`WAIT`].
    pub async fn wait_for(
        &mut self,
        what: &str,
        pred: impl Fn(&BTreeMap<u64, Arc<Record>>) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            self.drain();
            if pred(&self.by_id) {
                return;
            }
            match tokio::time::timeout_at(deadline, self.sub.recv()).await {
                Ok(Some(r)) => self.take(r),
                Ok(None) => panic!("the bus closed while waiting for {what}"),
                Err(_) => panic!(
                    "waited too long for {what}; records: {:#?}",
                    self.by_id.values().collect::<Vec<_>>()
                ),
            }
        }
    }

    /// Every record, by id.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Record>> {
        self.by_id.values()
    }
}
