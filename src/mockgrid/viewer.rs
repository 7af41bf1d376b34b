//! The scripted viewer: logs in, asks a seed for caps, polls the event queue and follows the seeds it is
//! sent, and calls caps, the way a Second Life viewer does, but ONLY ever with URLs it was given (the
//! login URL, then whatever came back in bodies).
//!
//! It keeps a journal of every URL it requested and every URL it learnt, so a test can prove that a
//! viewer behind capscope in login mode never saw an upstream cap URL.
//!
//! Owns the viewer's behaviour. Knows nothing of capscope's insides; it talks HTTP like any client.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::bodies::random_uuid;

use super::client::{ClientError, HttpClient, Reply};
use super::lite::{self, LiteError, Rpc};
use crate::llsd;
use crate::llsd::{Map, Value};

pub use super::client::MAX_RESPONSE_BODY;

/// The cap names the viewer asks a seed for (a real viewer asks for about a hundred; a grid grants a
/// subset).
pub const CAP_NAMES: [&str; 22] = [
    "AgentPreferences",
    "AvatarRenderInfo",
    "ChatSessionRequest",
    "CopyInventoryFromNotecard",
    "DispatchRegionInfo",
    "EnvironmentSettings",
    "EventQueueGet",
    "FetchInventory2",
    "FetchInventoryDescendents2",
    "FetchLib2",
    "FetchLibDescendents2",
    "GetDisplayNames",
    "GetObjectCost",
    "MapLayer",
    "NewFileAgentInventory",
    "ObjectMedia",
    "ParcelPropertiesUpdate",
    "RenderMaterials",
    "SimulatorFeatures",
    "UpdateNotecardAgentInventory",
    "ViewerAsset",
    "ViewerStats",
];

/// The body size a viewer uploads in one go.
const UPLOAD_SIZE: usize = 32 * 1024;

/// How many login requests one login may take (redirects, MFA) before the viewer gives up.
const MAX_LOGIN_STEPS: usize = 5;

/// How the viewer logs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoginForm {
    /// XML-RPC `login_to_simulator` (the Linden viewer, Firestorm).
    #[default]
    XmlRpc,
    /// An LLSD map POSTed as `application/llsd+xml` (LibreMetaverse, late 2025).
    Llsd,
}

/// How the viewer reaches the grid.
#[derive(Debug, Clone)]
pub struct ViewerConfig {
    /// The login URL: the grid's, or capscope's `http://<proxy>/login` in login mode.
    pub login_uri: String,
    pub first: String,
    pub last: String,
    pub password: String,
    /// Use this HTTP proxy for every request (HTTP proxy mode).
    pub http_proxy: Option<SocketAddr>,
    /// The only CA certificates (PEM) the viewer trusts.
    pub trusted_ca_pems: Vec<String>,
    /// The viewer's request timeout (a real viewer's is about 30 s).
    pub request_timeout: Duration,
    /// How long to wait after a failed poll before the next.
    pub poll_retry_delay: Duration,
    /// XML-RPC or LLSD login.
    pub login_form: LoginForm,
    /// Fetch `<login_uri>/get_grid_info` first and log in at its `login`, as Firestorm's grid
    /// manager does (fsgridhandler.cpp).
    pub grid_info: bool,
    /// The code to answer an MFA challenge with.
    pub mfa_token: Option<String>,
    /// A WebSocket URL a web page in the built-in browser opens once per activity round (it uses the
    /// viewer's proxy settings, as CEF does). `None`: no web page.
    pub web_socket: Option<String>,
}

impl ViewerConfig {
    /// A viewer for the demo account on `login_uri`, trusting `ca_pem`.
    pub fn new(login_uri: impl Into<String>, ca_pem: impl Into<String>) -> Self {
        Self {
            login_uri: login_uri.into(),
            first: super::DEMO_FIRST.to_owned(),
            last: super::DEMO_LAST.to_owned(),
            password: super::DEMO_PASSWORD.to_owned(),
            http_proxy: None,
            trusted_ca_pems: vec![ca_pem.into()],
            request_timeout: Duration::from_secs(30),
            poll_retry_delay: Duration::from_millis(200),
            login_form: LoginForm::XmlRpc,
            grid_info: false,
            mfa_token: None,
            web_socket: None,
        }
    }
}

/// Why a viewer step failed.
#[derive(Debug, thiserror::Error)]
pub enum ViewerError {
    #[error(transparent)]
    Http(#[from] ClientError),
    #[error("{what} from {url} is not LLSD: {source}")]
    Body {
        what: &'static str,
        url: String,
        source: llsd::Error,
    },
    #[error("the login reply from {url} is not XML-RPC: {source}")]
    LoginBody { url: String, source: LiteError },
    #[error("the login from {url} took more than {steps} steps (redirects, MFA)")]
    LoginSteps { url: String, steps: usize },
    #[error("the grid info from {url} has no login: {why}")]
    GridInfo { url: String, why: String },
    #[error("{what} from {url} answered {status}")]
    Status {
        what: &'static str,
        url: String,
        status: StatusCode,
    },
    #[error("login refused ({reason}): {message}")]
    LoginRefused { reason: String, message: String },
    #[error("{what} lacks {field}")]
    Missing {
        what: &'static str,
        field: &'static str,
    },
    #[error("the {cap} answer is wrong: {why}")]
    Unexpected { cap: &'static str, why: String },
    #[error("the region granted no {0} cap")]
    NoCap(&'static str),
}

/// One request the viewer made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requested {
    pub method: String,
    pub url: String,
    /// The status, or `None` when the request failed.
    pub status: Option<u16>,
}

/// One event the viewer received.
#[derive(Debug, Clone)]
pub struct ReceivedEvent {
    /// The seed of the region whose queue delivered it.
    pub region_seed: String,
    pub queue_id: i32,
    pub message: String,
    pub body: Value,
}

/// What the viewer did and saw.
#[derive(Debug, Default, Clone)]
pub struct Journal {
    pub requests: Vec<Requested>,
    /// Every URL the viewer learnt from a body (seed, caps, uploader), in order.
    pub learnt_urls: Vec<String>,
    pub events: Vec<ReceivedEvent>,
    /// The seed of the region the viewer is in.
    pub current_seed: Option<String>,
    /// The caps of the region the viewer is in.
    pub caps: BTreeMap<String, String>,
    /// Caps of neighbours learnt from `EstablishAgentCommunication`, by seed.
    pub neighbours: BTreeMap<String, BTreeMap<String, String>>,
    /// Every region switch (the new seed), in order.
    pub region_switches: Vec<String>,
    /// Polls that ended without events (502, 504, timeouts).
    pub idle_polls: u64,
    /// Failures of the poll loop and of activity steps, in words.
    pub errors: Vec<String>,
    /// Activity steps completed, by name (`inventory`, `upload`, ...).
    pub steps: Vec<String>,
    /// What each login request got: `true`, `indeterminate`, `mfa_challenge`, ...
    pub login_steps: Vec<String>,
}

/// The login reply's fields the viewer uses.
#[derive(Debug, Clone)]
pub struct LoginReply {
    pub seed_capability: String,
    pub agent_id: String,
    pub session_id: String,
    pub inventory_root: Option<Uuid>,
    /// Every member as received.
    pub members: Rpc,
}

/// What one poll brought.
#[derive(Debug, Clone)]
pub enum PollResult {
    Events {
        id: i32,
        events: Vec<(String, Value)>,
    },
    /// 502, 504 or another "nothing for you" answer.
    Idle(StatusCode),
    /// 404: the queue is gone; stop polling.
    Gone,
}

/// The scripted viewer.
#[derive(Debug, Clone)]
pub struct Viewer {
    client: HttpClient,
    config: ViewerConfig,
    journal: Arc<Mutex<Journal>>,
    changed: Arc<Notify>,
}

fn lock(j: &Mutex<Journal>) -> MutexGuard<'_, Journal> {
    j.lock().unwrap_or_else(|p| p.into_inner())
}

impl Viewer {
    pub fn new(config: ViewerConfig) -> Result<Self, ViewerError> {
        let client = HttpClient::new(
            config.http_proxy,
            &config.trusted_ca_pems,
            config.request_timeout,
        )?;
        Ok(Self {
            client,
            config,
            journal: Arc::default(),
            changed: Arc::default(),
        })
    }

    /// A copy of the journal.
    pub fn journal(&self) -> Journal {
        lock(&self.journal).clone()
    }

    /// Waits until `pred` holds for the journal, or `limit` passes; returns whether it held.
    pub async fn wait_until(&self, limit: Duration, pred: impl Fn(&Journal) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if pred(&lock(&self.journal)) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return pred(&lock(&self.journal));
            }
        }
    }

    fn update(&self, f: impl FnOnce(&mut Journal)) {
        f(&mut lock(&self.journal));
        self.changed.notify_waiters();
    }

    fn learn(&self, url: &str) {
        self.update(|j| j.learnt_urls.push(url.to_owned()));
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        content_type: Option<&'static str>,
        body: impl Into<Bytes>,
    ) -> Result<Reply, ViewerError> {
        let result = self
            .client
            .send(method.clone(), url, content_type, body.into())
            .await;
        let status = result.as_ref().ok().map(|r| r.status.as_u16());
        self.update(|j| {
            j.requests.push(Requested {
                method: method.to_string(),
                url: url.to_owned(),
                status,
            })
        });
        Ok(result?)
    }

    async fn post_llsd(&self, url: &str, value: &Value) -> Result<Reply, ViewerError> {
        self.send(
            Method::POST,
            url,
            Some("application/llsd+xml"),
            llsd::xml::to_vec(value),
        )
        .await
    }

    fn llsd_body(what: &'static str, url: &str, reply: &Reply) -> Result<Value, ViewerError> {
        if !reply.status.is_success() {
            return Err(ViewerError::Status {
                what,
                url: url.to_owned(),
                status: reply.status,
            });
        }
        let body = decompress(reply).map_err(|e| ViewerError::Unexpected {
            cap: what,
            why: format!("the gzip body does not inflate: {e}"),
        })?;
        llsd::xml::from_slice(&body).map_err(|source| ViewerError::Body {
            what,
            url: url.to_owned(),
            source,
        })
    }

    /// Fetches `<login URI>/get_grid_info` as Firestorm's grid manager does (it appends
    /// `get_grid_info` to the login URI, fsgridhandler.cpp) and returns its `login`.
    pub async fn grid_info_login(&self, login_uri: &str) -> Result<String, ViewerError> {
        let url = format!("{}/get_grid_info", login_uri.trim_end_matches('/'));
        let reply = self.send(Method::GET, &url, None, Bytes::new()).await?;
        if !reply.status.is_success() {
            return Err(ViewerError::Status {
                what: "the grid info",
                url,
                status: reply.status,
            });
        }
        let root = lite::parse_xml(&reply.body).map_err(|e| ViewerError::GridInfo {
            url: url.clone(),
            why: e.to_string(),
        })?;
        let login = root
            .child("login")
            .map(|l| l.text.trim().to_owned())
            .filter(|l| !l.is_empty())
            .ok_or_else(|| ViewerError::GridInfo {
                url: url.clone(),
                why: format!("no <login> in <{}>", root.name),
            })?;
        self.learn(&login);
        Ok(login)
    }

    /// Logs in (XML-RPC or LLSD, as configured), following `indeterminate` redirects to their
    /// `next_url` and answering an MFA challenge with the configured token.
    pub async fn login(&self) -> Result<LoginReply, ViewerError> {
        let mut url = self.config.login_uri.clone();
        if self.config.grid_info {
            url = self.grid_info_login(&url).await?;
        }
        let mut token = None;
        for _ in 0..MAX_LOGIN_STEPS {
            let members = self.login_once(&url, token.as_deref()).await?;
            let text = |k: &str| members.member(k).and_then(Rpc::as_str).map(str::to_owned);
            let outcome = match text("login").as_deref() {
                Some("false") => text("reason").unwrap_or_else(|| "false".into()),
                other => other.unwrap_or("").to_owned(),
            };
            self.update(|j| j.login_steps.push(outcome.clone()));
            match outcome.as_str() {
                "true" => return self.login_reply(members),
                "indeterminate" => {
                    url = text("next_url").ok_or(ViewerError::Missing {
                        what: "the indeterminate login reply",
                        field: "next_url",
                    })?;
                    self.learn(&url);
                }
                "mfa_challenge" if token.is_none() && self.config.mfa_token.is_some() => {
                    token = self.config.mfa_token.clone();
                }
                _ => {
                    return Err(ViewerError::LoginRefused {
                        reason: text("reason").unwrap_or_default(),
                        message: text("message").unwrap_or_default(),
                    })
                }
            }
        }
        Err(ViewerError::LoginSteps {
            url,
            steps: MAX_LOGIN_STEPS,
        })
    }

    /// One login request; returns the reply's members.
    async fn login_once(&self, url: &str, token: Option<&str>) -> Result<Rpc, ViewerError> {
        let passwd = format!("$1${:x}", md5::compute(&self.config.password));
        let mut members = vec![
            ("first".into(), Rpc::s(&self.config.first)),
            ("last".into(), Rpc::s(&self.config.last)),
            ("passwd".into(), Rpc::s(passwd)),
            ("start".into(), Rpc::s("last")),
            ("channel".into(), Rpc::s("capscope scripted viewer")),
            ("version".into(), Rpc::s("7.1.0.0")),
            ("platform".into(), Rpc::s("lnx")),
            ("mac".into(), Rpc::s("00:00:00:00:00:00")),
            ("id0".into(), Rpc::s(Uuid::nil().to_string())),
            ("agree_to_tos".into(), Rpc::s("true")),
            ("read_critical".into(), Rpc::s("true")),
            (
                "options".into(),
                Rpc::Array(
                    [
                        "inventory-root",
                        "inventory-skeleton",
                        "buddy-list",
                        "login-flags",
                    ]
                    .into_iter()
                    .map(Rpc::s)
                    .collect(),
                ),
            ),
        ];
        if let Some(token) = token {
            members.push(("token".into(), Rpc::s(token)));
            members.push(("mfa_hash".into(), Rpc::s("")));
        }
        let call = Rpc::Struct(members);
        let (content_type, body) = match self.config.login_form {
            LoginForm::XmlRpc => (
                "text/xml",
                lite::rpc_call("login_to_simulator", &call).into_bytes(),
            ),
            LoginForm::Llsd => (
                "application/llsd+xml",
                llsd::xml::to_vec(&lite::rpc_to_llsd(&call)),
            ),
        };
        let reply = self
            .send(Method::POST, url, Some(content_type), body)
            .await?;
        if !reply.status.is_success() {
            return Err(ViewerError::Status {
                what: "the login reply",
                url: url.to_owned(),
                status: reply.status,
            });
        }
        match self.config.login_form {
            // Decide by the bytes: Second Life labels this XML-RPC reply as LLSD XML.
            LoginForm::XmlRpc => lite::rpc_parse(&reply.body)
                .map(|(_, members)| members)
                .map_err(|source| ViewerError::LoginBody {
                    url: url.to_owned(),
                    source,
                }),
            LoginForm::Llsd => llsd::xml::from_slice(&reply.body)
                .map(|v| lite::llsd_to_rpc(&v))
                .map_err(|source| ViewerError::Body {
                    what: "the LLSD login reply",
                    url: url.to_owned(),
                    source,
                }),
        }
    }

    fn login_reply(&self, members: Rpc) -> Result<LoginReply, ViewerError> {
        let text = |k: &str| members.member(k).and_then(Rpc::as_str).map(str::to_owned);
        let missing = |field| ViewerError::Missing {
            what: "the login reply",
            field,
        };
        let seed_capability = text("seed_capability").ok_or(missing("seed_capability"))?;
        self.learn(&seed_capability);
        let inventory_root = match members.member("inventory-root") {
            Some(Rpc::Array(items)) => items
                .first()
                .and_then(|f| f.member("folder_id"))
                .and_then(Rpc::as_str)
                .and_then(|s| s.parse().ok()),
            _ => None,
        };
        Ok(LoginReply {
            seed_capability,
            agent_id: text("agent_id").ok_or(missing("agent_id"))?,
            session_id: text("session_id").ok_or(missing("session_id"))?,
            inventory_root,
            members,
        })
    }

    /// POSTs the seed with [`CAP_NAMES`] and returns the caps granted.
    pub async fn seed(&self, seed_url: &str) -> Result<BTreeMap<String, String>, ViewerError> {
        let names = Value::Array(
            CAP_NAMES
                .iter()
                .map(|n| Value::String((*n).into()))
                .collect(),
        );
        let reply = self.post_llsd(seed_url, &names).await?;
        let value = Self::llsd_body("the seed reply", seed_url, &reply)?;
        let map = value.as_map().ok_or(ViewerError::Unexpected {
            cap: "Seed",
            why: format!("a {} instead of a map", value.type_name()),
        })?;
        let mut caps = BTreeMap::new();
        for (name, url) in map.iter() {
            if let Some(url) = url.as_str() {
                self.learn(url);
                caps.insert(name.to_owned(), url.to_owned());
            }
        }
        Ok(caps)
    }

    /// One EventQueueGet poll with `ack`.
    pub async fn poll(&self, eq_url: &str, ack: Option<i32>) -> Result<PollResult, ViewerError> {
        let request = Value::Map(Map(vec![
            (
                "ack".into(),
                ack.map(Value::Integer).unwrap_or(Value::Undef),
            ),
            ("done".into(), Value::Boolean(false)),
        ]));
        let reply = match self.post_llsd(eq_url, &request).await {
            Ok(r) => r,
            // The viewer's own timeout on a held poll means "no events".
            Err(ViewerError::Http(ClientError::Timeout { .. })) => {
                return Ok(PollResult::Idle(StatusCode::GATEWAY_TIMEOUT))
            }
            Err(e) => return Err(e),
        };
        match reply.status {
            StatusCode::NOT_FOUND => return Ok(PollResult::Gone),
            s if !s.is_success() => return Ok(PollResult::Idle(s)),
            _ => {}
        }
        let value = Self::llsd_body("an event-queue answer", eq_url, &reply)?;
        let id = value
            .get("id")
            .and_then(Value::as_integer)
            .ok_or(ViewerError::Missing {
                what: "an event-queue answer",
                field: "id",
            })?;
        let events = value
            .get("events")
            .and_then(Value::as_array)
            .unwrap_or(&[])
            .iter()
            .filter_map(|e| {
                let message = e.get("message")?.as_str()?.to_owned();
                Some((message, e.get("body").cloned().unwrap_or_default()))
            })
            .collect();
        Ok(PollResult::Events { id, events })
    }

    /// Logs in, asks the seed, and starts the event-queue loop in its own task.
    pub async fn start(&self) -> Result<Running, ViewerError> {
        let login = self.login().await?;
        let caps = self.seed(&login.seed_capability).await?;
        self.update(|j| {
            j.current_seed = Some(login.seed_capability.clone());
            j.caps = caps;
        });
        let viewer = self.clone();
        let poller = tokio::spawn(async move { viewer.poll_loop().await });
        Ok(Running { login, poller })
    }

    /// Polls the current region's queue forever, following the seeds events carry.
    async fn poll_loop(&self) {
        let mut ack: Option<i32> = None;
        loop {
            let (seed, eq) = {
                let j = lock(&self.journal);
                (
                    j.current_seed.clone().unwrap_or_default(),
                    j.caps.get("EventQueueGet").cloned(),
                )
            };
            let Some(eq) = eq else {
                self.update(|j| {
                    j.errors
                        .push(format!("the region {seed} granted no EventQueueGet"))
                });
                return;
            };
            match self.poll(&eq, ack).await {
                Ok(PollResult::Events { id, events }) => {
                    ack = Some(id);
                    let mut switch_to = None;
                    for (message, body) in events {
                        self.update(|j| {
                            j.events.push(ReceivedEvent {
                                region_seed: seed.clone(),
                                queue_id: id,
                                message: message.clone(),
                                body: body.clone(),
                            })
                        });
                        if let Some(target) = self.follow(&message, &body).await {
                            switch_to = Some(target);
                        }
                    }
                    if let Some((new_seed, caps)) = switch_to {
                        ack = None;
                        self.update(|j| {
                            j.current_seed = Some(new_seed.clone());
                            j.caps = caps;
                            j.region_switches.push(new_seed);
                        });
                    }
                }
                Ok(PollResult::Idle(_)) => self.update(|j| j.idle_polls += 1),
                Ok(PollResult::Gone) => {
                    self.update(|j| j.errors.push(format!("{eq} answered 404: polling stops")));
                    return;
                }
                Err(e) => {
                    self.update(|j| j.errors.push(format!("poll: {e}")));
                    tokio::time::sleep(self.config.poll_retry_delay).await;
                }
            }
        }
    }

    /// Acts on an event that carries a seed: asks the new seed; returns it (and its caps) when the
    /// viewer moves there.
    async fn follow(
        &self,
        message: &str,
        body: &Value,
    ) -> Option<(String, BTreeMap<String, String>)> {
        let (seed, moves) = match message {
            "EstablishAgentCommunication" => {
                (body.get("seed-capability").and_then(Value::as_str)?, false)
            }
            "TeleportFinish" => (
                body.get("Info")?
                    .index(0)?
                    .get("SeedCapability")?
                    .as_str()?,
                true,
            ),
            "CrossedRegion" => (
                body.get("RegionData")?
                    .index(0)?
                    .get("SeedCapability")?
                    .as_str()?,
                true,
            ),
            _ => return None,
        };
        self.learn(seed);
        let known = lock(&self.journal).neighbours.get(seed).cloned();
        let caps = match known {
            Some(caps) => caps,
            None => match self.seed(seed).await {
                Ok(caps) => {
                    self.update(|j| {
                        j.neighbours.insert(seed.to_owned(), caps.clone());
                    });
                    caps
                }
                Err(e) => {
                    self.update(|j| j.errors.push(format!("seed {seed}: {e}")));
                    return None;
                }
            },
        };
        moves.then(|| (seed.to_owned(), caps))
    }

    fn cap(&self, name: &'static str) -> Result<String, ViewerError> {
        lock(&self.journal)
            .caps
            .get(name)
            .cloned()
            .ok_or(ViewerError::NoCap(name))
    }

    fn step_done(&self, step: &str) {
        self.update(|j| j.steps.push(step.to_owned()));
    }

    /// FetchInventoryDescendents2 on `folder`; returns how many items came back.
    pub async fn fetch_inventory(&self, folder: Uuid) -> Result<usize, ViewerError> {
        self.fetch_folder("FetchInventoryDescendents2", folder)
            .await
    }

    /// FetchLibDescendents2 (answered gzip-compressed) on `folder`; returns how many items came back.
    pub async fn fetch_library(&self, folder: Uuid) -> Result<usize, ViewerError> {
        self.fetch_folder("FetchLibDescendents2", folder).await
    }

    async fn fetch_folder(&self, name: &'static str, folder: Uuid) -> Result<usize, ViewerError> {
        let url = self.cap(name)?;
        let request = fetch_request(folder);
        let reply = self.post_llsd(&url, &request).await?;
        let value = Self::llsd_body(name, &url, &reply)?;
        let items = value
            .get("folders")
            .and_then(|f| f.index(0))
            .and_then(|f| f.get("items"))
            .and_then(Value::as_array)
            .map(<[Value]>::len)
            .ok_or(ViewerError::Unexpected {
                cap: name,
                why: "no folders[0].items".into(),
            })?;
        self.step_done(name);
        Ok(items)
    }

    /// GetDisplayNames for a few agents; returns the display names.
    pub async fn display_names(&self, ids: &[Uuid]) -> Result<Vec<String>, ViewerError> {
        let base = self.cap("GetDisplayNames")?;
        let query: Vec<String> = ids.iter().map(|id| format!("ids={id}")).collect();
        let url = format!("{base}?{}", query.join("&"));
        let reply = self.send(Method::GET, &url, None, Bytes::new()).await?;
        let value = Self::llsd_body("GetDisplayNames", &url, &reply)?;
        let names = value
            .get("agents")
            .and_then(Value::as_array)
            .unwrap_or(&[])
            .iter()
            .filter_map(|a| {
                a.get("display_name")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .collect();
        self.step_done("GetDisplayNames");
        Ok(names)
    }

    /// SimulatorFeatures; returns the map.
    pub async fn simulator_features(&self) -> Result<Value, ViewerError> {
        let url = self.cap("SimulatorFeatures")?;
        let reply = self.send(Method::GET, &url, None, Bytes::new()).await?;
        let value = Self::llsd_body("SimulatorFeatures", &url, &reply)?;
        self.step_done("SimulatorFeatures");
        Ok(value)
    }

    /// GetObjectCost (answered in binary LLSD); returns the body size.
    pub async fn object_cost(&self, ids: &[Uuid]) -> Result<usize, ViewerError> {
        let url = self.cap("GetObjectCost")?;
        let request = Value::Map(Map(vec![(
            "object_ids".into(),
            Value::Array(ids.iter().map(|id| Value::Uuid(*id)).collect()),
        )]));
        let reply = self.post_llsd(&url, &request).await?;
        if !reply.status.is_success() {
            return Err(ViewerError::Status {
                what: "GetObjectCost",
                url,
                status: reply.status,
            });
        }
        let header = reply.body.get(..lite::BINARY_HEADER.len());
        if header.map(|h| h.eq_ignore_ascii_case(lite::BINARY_HEADER)) != Some(true) {
            return Err(ViewerError::Unexpected {
                cap: "GetObjectCost",
                why: "the body is not binary LLSD".into(),
            });
        }
        self.step_done("GetObjectCost");
        Ok(reply.body.len())
    }

    /// ViewerAsset for a texture; returns the body.
    pub async fn asset(&self, texture: Uuid) -> Result<Bytes, ViewerError> {
        let base = self.cap("ViewerAsset")?;
        let url = format!("{base}?texture_id={texture}");
        let reply = self.send(Method::GET, &url, None, Bytes::new()).await?;
        if !reply.status.is_success() {
            return Err(ViewerError::Status {
                what: "ViewerAsset",
                url,
                status: reply.status,
            });
        }
        self.step_done("ViewerAsset");
        Ok(reply.body)
    }

    /// ViewerAsset asked to redirect (`&redirect=1`): the grid answers 302 with a `Location` elsewhere
    /// on its host, which the viewer follows as libcurl does. Returns the body.
    pub async fn asset_redirected(&self, texture: Uuid) -> Result<Bytes, ViewerError> {
        let base = self.cap("ViewerAsset")?;
        let url = format!("{base}?texture_id={texture}&redirect=1");
        let reply = self.send(Method::GET, &url, None, Bytes::new()).await?;
        if !reply.status.is_redirection() {
            return Err(ViewerError::Status {
                what: "ViewerAsset (redirect)",
                url,
                status: reply.status,
            });
        }
        let location = reply
            .header("location")
            .ok_or(ViewerError::Missing {
                what: "the ViewerAsset redirect",
                field: "Location",
            })?
            .to_owned();
        let next = resolve_against(&url, &location);
        self.learn(&next);
        let reply = self.send(Method::GET, &next, None, Bytes::new()).await?;
        if !reply.status.is_success() {
            return Err(ViewerError::Status {
                what: "ViewerAsset (redirected)",
                url: next,
                status: reply.status,
            });
        }
        self.step_done("ViewerAsset redirect");
        Ok(reply.body)
    }

    /// A web page's WebSocket: one text message echoed, then closed. Returns the echo.
    pub async fn web_page_socket(&self, url: &str) -> Result<String, ViewerError> {
        const TEXT: &str = "hello from the built-in browser";
        let result = self.client.websocket_echo(url, TEXT).await;
        let status = result.as_ref().ok().map(|_| 101);
        self.update(|j| {
            j.requests.push(Requested {
                method: "GET".to_owned(),
                url: url.to_owned(),
                status,
            })
        });
        let echoed = result?;
        if echoed != TEXT {
            return Err(ViewerError::Unexpected {
                cap: "WebSocket",
                why: format!("the echo was {echoed:?}"),
            });
        }
        self.step_done("WebSocket");
        Ok(echoed)
    }

    /// NewFileAgentInventory, then the uploader it hands out; returns the new asset id and the
    /// uploader URL used.
    pub async fn upload(&self) -> Result<(Uuid, String), ViewerError> {
        let url = self.cap("NewFileAgentInventory")?;
        let request = Value::Map(Map(vec![
            ("asset_type".into(), Value::String("texture".into())),
            ("inventory_type".into(), Value::String("texture".into())),
            ("name".into(), Value::String("capscope test upload".into())),
            ("description".into(), Value::String(String::new())),
            ("folder_id".into(), Value::Uuid(Uuid::nil())),
            ("everyone_mask".into(), Value::Integer(0)),
            ("group_mask".into(), Value::Integer(0)),
            ("next_owner_mask".into(), Value::Integer(0x0008_e000)),
            ("expected_upload_cost".into(), Value::Integer(10)),
        ]));
        let reply = self.post_llsd(&url, &request).await?;
        let offer = Self::llsd_body("NewFileAgentInventory", &url, &reply)?;
        if offer.get("state").and_then(Value::as_str) != Some("upload") {
            return Err(ViewerError::Unexpected {
                cap: "NewFileAgentInventory",
                why: "its state is not \"upload\"".into(),
            });
        }
        let uploader = offer
            .get("uploader")
            .and_then(Value::as_str)
            .ok_or(ViewerError::Missing {
                what: "the upload offer",
                field: "uploader",
            })?
            .to_owned();
        self.learn(&uploader);
        let data: Vec<u8> = (0..UPLOAD_SIZE).map(|i| (i % 251) as u8).collect();
        let reply = self
            .send(
                Method::POST,
                &uploader,
                Some("application/octet-stream"),
                data,
            )
            .await?;
        let done = Self::llsd_body("the uploader", &uploader, &reply)?;
        let asset = match done.get("new_asset") {
            Some(Value::Uuid(u)) => *u,
            _ => {
                return Err(ViewerError::Missing {
                    what: "the upload answer",
                    field: "new_asset",
                })
            }
        };
        self.step_done("upload");
        Ok((asset, uploader))
    }

    /// One round of everyday activity on the current region: inventory, library, display names,
    /// simulator features, object costs, a texture, an upload. Failures are journalled and the round
    /// goes on; returns how many steps failed.
    pub async fn activity_round(&self, inventory_root: Option<Uuid>) -> usize {
        let folder = inventory_root.unwrap_or_else(random_uuid);
        let ids = [random_uuid(), random_uuid()];
        let results: Vec<Result<(), ViewerError>> = vec![
            self.fetch_inventory(folder).await.map(drop),
            self.fetch_library(folder).await.map(drop),
            self.display_names(&ids).await.map(drop),
            self.simulator_features().await.map(drop),
            self.object_cost(&ids).await.map(drop),
            self.asset(random_uuid()).await.map(drop),
            self.asset_redirected(random_uuid()).await.map(drop),
            self.upload().await.map(drop),
        ];
        let mut results = results;
        if let Some(url) = self.config.web_socket.clone() {
            results.push(self.web_page_socket(&url).await.map(drop));
        }
        let mut failed = 0;
        for r in results {
            if let Err(e) = r {
                failed += 1;
                self.update(|j| j.errors.push(e.to_string()));
            }
        }
        failed
    }
}

/// A started viewer: its login and its event-queue task (stopped when this is dropped).
#[derive(Debug)]
pub struct Running {
    pub login: LoginReply,
    poller: JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.poller.abort();
    }
}

/// A `Location` made absolute against the URL that answered it (absolute or absolute-path forms).
fn resolve_against(url: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.to_owned();
    }
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    format!("{scheme}://{authority}{location}")
}

/// A FetchInventoryDescendents2 request body for one folder.
pub fn fetch_request(folder: Uuid) -> Value {
    Value::Map(Map(vec![(
        "folders".into(),
        Value::Array(vec![Value::Map(Map(vec![
            ("folder_id".into(), Value::Uuid(folder)),
            ("owner_id".into(), Value::Uuid(Uuid::nil())),
            ("fetch_folders".into(), Value::Boolean(true)),
            ("fetch_items".into(), Value::Boolean(true)),
            ("sort_order".into(), Value::Integer(1)),
        ]))]),
    )]))
}

/// The body with any gzip `Content-Encoding` undone.
fn decompress(reply: &Reply) -> std::io::Result<Bytes> {
    match reply.header("content-encoding") {
        Some(enc) if enc.eq_ignore_ascii_case("gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&reply.body[..])
                .take(MAX_RESPONSE_BODY as u64)
                .read_to_end(&mut out)?;
            Ok(Bytes::from(out))
        }
        _ => Ok(reply.body.clone()),
    }
}
