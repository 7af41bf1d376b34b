//! The simulated grid's state: sessions, the caps each region granted, and each region's event queue.
//!
//! Owns what the grid remembers between requests. Knows nothing of sockets or HTTP framing; the
//! handlers in `server.rs` read and change it under short locks (never held across an `.await`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use uuid::Uuid;

use super::bodies::random_uuid;

use super::bodies;
use super::{Breakage, MockGridConfig, RegionInfo};
use crate::llsd::Value;

/// What a cap URL does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CapKind {
    Seed,
    EventQueueGet,
    FetchInventoryDescendents2,
    /// Answered gzip-compressed.
    FetchLibDescendents2,
    GetDisplayNames,
    SimulatorFeatures,
    /// Answered in binary LLSD.
    GetObjectCost,
    /// A large body, streamed.
    ViewerAsset,
    NewFileAgentInventory,
    /// The one-time URL an upload cap hands out.
    Uploader,
}

impl CapKind {
    /// The caps a region's seed can grant, by the name a viewer asks for.
    pub const GRANTABLE: [CapKind; 8] = [
        CapKind::EventQueueGet,
        CapKind::FetchInventoryDescendents2,
        CapKind::FetchLibDescendents2,
        CapKind::GetDisplayNames,
        CapKind::SimulatorFeatures,
        CapKind::GetObjectCost,
        CapKind::ViewerAsset,
        CapKind::NewFileAgentInventory,
    ];

    /// The cap's name as a viewer asks for it.
    pub fn name(self) -> &'static str {
        match self {
            CapKind::Seed => "Seed",
            CapKind::EventQueueGet => "EventQueueGet",
            CapKind::FetchInventoryDescendents2 => "FetchInventoryDescendents2",
            CapKind::FetchLibDescendents2 => "FetchLibDescendents2",
            CapKind::GetDisplayNames => "GetDisplayNames",
            CapKind::SimulatorFeatures => "SimulatorFeatures",
            CapKind::GetObjectCost => "GetObjectCost",
            CapKind::ViewerAsset => "ViewerAsset",
            CapKind::NewFileAgentInventory => "NewFileAgentInventory",
            CapKind::Uploader => "Uploader",
        }
    }

    fn from_name(name: &str) -> Option<CapKind> {
        Self::GRANTABLE.into_iter().find(|k| k.name() == name)
    }
}

/// One granted cap: whose it is and what it does.
#[derive(Debug, Clone, Copy)]
pub struct CapEntry {
    pub session: usize,
    pub region: usize,
    pub kind: CapKind,
}

/// An event the grid delivered: which region's queue, the answer's `id`, the event's `message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub region: usize,
    pub queue_id: i32,
    pub message: String,
}

/// One region's event queue for one agent. Like OpenSim's, it forgets events as soon as an answer is
/// written, whatever the next poll's `ack` says.
#[derive(Debug, Default)]
pub struct EventQueue {
    inner: Mutex<QueueInner>,
    wake: Notify,
}

#[derive(Debug, Default)]
struct QueueInner {
    pending: Vec<(String, Value)>,
    last_id: i32,
    polls: u64,
}

/// What one poll gets.
#[derive(Debug)]
pub enum PollAnswer {
    /// Events, with the answer's id.
    Events(i32, Vec<(String, Value)>),
    /// Nothing arrived in time (or the poll was stale): an empty 502.
    Idle,
}

impl EventQueue {
    /// Queues an event and wakes a waiting poll.
    pub fn push(&self, message: impl Into<String>, body: Value) {
        lock(&self.inner).pending.push((message.into(), body));
        self.wake.notify_waiters();
    }

    /// Counts a poll and tells whether it is the queue's first.
    pub fn count_poll(&self) -> bool {
        let mut inner = lock(&self.inner);
        inner.polls += 1;
        inner.polls == 1
    }

    /// How many polls the queue received.
    pub fn polls(&self) -> u64 {
        lock(&self.inner).polls
    }

    /// Takes every pending event under a fresh id, or `None` when there are none.
    fn take(&self) -> Option<(i32, Vec<(String, Value)>)> {
        let mut inner = lock(&self.inner);
        if inner.pending.is_empty() {
            return None;
        }
        inner.last_id += 1;
        let events = std::mem::take(&mut inner.pending);
        Some((inner.last_id, events))
    }

    /// Takes an id for an answer that carries no decodable events (a broken body).
    pub fn take_id(&self) -> i32 {
        let mut inner = lock(&self.inner);
        inner.last_id += 1;
        inner.last_id
    }

    /// Waits up to `hold` for events, the way a long poll does.
    pub async fn poll(&self, hold: Duration) -> PollAnswer {
        let deadline = tokio::time::Instant::now() + hold;
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some((id, events)) = self.take() {
                return PollAnswer::Events(id, events);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return PollAnswer::Idle;
            }
        }
    }
}

/// One logged-in agent.
#[derive(Debug)]
pub struct Session {
    pub first: String,
    pub last: String,
    pub agent_id: Uuid,
    pub session_id: Uuid,
    pub secure_session_id: Uuid,
    pub circuit_code: i32,
    /// The region the agent is in.
    pub region: usize,
    /// Per region: the seed URL, once made.
    pub seeds: Vec<Option<String>>,
    /// Per region: cap name -> URL granted so far.
    pub granted: Vec<HashMap<String, String>>,
    /// Per region: the event queue.
    pub queues: Vec<Arc<EventQueue>>,
    /// Per region: whether the region's arrival events were queued.
    pub greeted: Vec<bool>,
}

/// Everything the grid remembers.
#[derive(Debug)]
pub struct Grid {
    pub config: MockGridConfig,
    pub regions: Vec<RegionInfo>,
    pub login_port: u16,
    state: Mutex<GridState>,
    broken: [AtomicBool; Breakage::COUNT],
    /// Woken whenever a poll arrives or events are written, for [`Grid::wait_until`].
    changed: Notify,
    /// Set once the test is done with the held polls: every poll held, and every later one, is
    /// answered idle at once.
    polls_released: AtomicBool,
    release: Notify,
}

#[derive(Debug, Default)]
struct GridState {
    sessions: Vec<Session>,
    /// (region, path key) -> cap.
    caps: HashMap<(usize, String), CapEntry>,
    /// Every cap or seed URL handed out, in order.
    issued: Vec<String>,
    /// Every event scripted, in order: (region, message).
    scripted: Vec<(usize, String)>,
    delivered: Vec<Delivered>,
    next_circuit: i32,
}

/// Why a script step could not run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScriptError {
    #[error("nobody is logged in to the mock grid yet")]
    NoSession,
    #[error("the mock grid has no region {0}")]
    NoRegion(usize),
    #[error("the agent is already in region {0}")]
    AlreadyThere(usize),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves plain data behind; keep serving it.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The key a cap path is registered under: `CAPS/<id>`, `CE/<id>` or `<id>`.
pub fn path_key(path: &str) -> String {
    let mut parts = path.trim_start_matches('/').split('/');
    match parts.next() {
        Some(first @ ("CAPS" | "CE")) => format!("{first}/{}", parts.next().unwrap_or("")),
        Some(first) => first.to_owned(),
        None => String::new(),
    }
}

impl Grid {
    pub fn new(config: MockGridConfig, regions: Vec<RegionInfo>, login_port: u16) -> Self {
        Self {
            config,
            regions,
            login_port,
            state: Mutex::new(GridState {
                next_circuit: 100_000,
                ..GridState::default()
            }),
            broken: Default::default(),
            changed: Notify::new(),
            polls_released: AtomicBool::new(false),
            release: Notify::new(),
        }
    }

    /// Answers every held event-queue poll idle now, and every later one at once.
    pub fn release_polls(&self) {
        self.polls_released.store(true, Ordering::SeqCst);
        self.release.notify_waiters();
    }

    /// Resolves once [`Grid::release_polls`] was called.
    pub async fn polls_released(&self) {
        loop {
            let notified = self.release.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.polls_released.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }

    /// Wakes everyone in [`Grid::wait_until`].
    pub fn note_change(&self) {
        self.changed.notify_waiters();
    }

    /// Waits until `pred` holds, or `limit` passes; returns whether it held.
    pub async fn wait_until(&self, limit: Duration, pred: impl Fn(&Grid) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if pred(self) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return pred(self);
            }
        }
    }

    /// Arms a breakage for the next matching reply.
    pub fn break_next(&self, what: Breakage) {
        self.broken[what as usize].store(true, Ordering::SeqCst);
    }

    /// Whether the next reply of this kind must be broken (and disarms it).
    pub fn take_breakage(&self, what: Breakage) -> bool {
        self.broken[what as usize].swap(false, Ordering::SeqCst)
    }

    fn new_cap_url(
        state: &mut GridState,
        region: &RegionInfo,
        idx: usize,
        entry: CapEntry,
    ) -> String {
        let id = random_uuid();
        let (key, path) = match entry.kind {
            CapKind::Seed => (format!("CAPS/{id}0000"), format!("/CAPS/{id}0000/")),
            CapKind::EventQueueGet => (format!("CE/{id}"), format!("/CE/{id}")),
            _ => (id.to_string(), format!("/{id}/")),
        };
        let url = format!("{}{}", region.base_url, path);
        state.caps.insert((idx, key), entry);
        state.issued.push(url.clone());
        url
    }

    /// Starts a session and returns its index; the agent starts in region 0.
    pub fn login(&self, first: &str, last: &str) -> usize {
        let mut state = lock(&self.state);
        let n = self.regions.len();
        state.next_circuit += 1;
        let session = Session {
            first: first.to_owned(),
            last: last.to_owned(),
            agent_id: random_uuid(),
            session_id: random_uuid(),
            secure_session_id: random_uuid(),
            circuit_code: state.next_circuit,
            region: 0,
            seeds: vec![None; n],
            granted: vec![HashMap::new(); n],
            queues: (0..n).map(|_| Arc::new(EventQueue::default())).collect(),
            greeted: vec![false; n],
        };
        state.sessions.push(session);
        let idx = state.sessions.len() - 1;
        drop(state);
        self.seed_url(idx, 0);
        idx
    }

    /// The seed URL of `region` for session `idx`, made on first use (one URL per session and region).
    pub fn seed_url(&self, idx: usize, region: usize) -> String {
        let mut state = lock(&self.state);
        if let Some(Some(url)) = state.sessions.get(idx).map(|s| s.seeds[region].clone()) {
            return url;
        }
        let entry = CapEntry {
            session: idx,
            region,
            kind: CapKind::Seed,
        };
        let url = Self::new_cap_url(&mut state, &self.regions[region], region, entry);
        if let Some(s) = state.sessions.get_mut(idx) {
            s.seeds[region] = Some(url.clone());
        }
        url
    }

    /// Runs `f` on session `idx`.
    pub fn with_session<R>(&self, idx: usize, f: impl FnOnce(&Session) -> R) -> Option<R> {
        lock(&self.state).sessions.get(idx).map(f)
    }

    /// The cap a request path on `region` names.
    pub fn cap(&self, region: usize, path: &str) -> Option<CapEntry> {
        lock(&self.state)
            .caps
            .get(&(region, path_key(path)))
            .copied()
    }

    /// Forgets a one-time cap.
    pub fn revoke(&self, region: usize, path: &str) {
        lock(&self.state).caps.remove(&(region, path_key(path)));
    }

    /// Grants the asked caps this grid knows (a subset, as real grids do) and returns name -> URL.
    /// Asking twice gives the same URLs.
    pub fn grant(&self, idx: usize, region: usize, asked: &[String]) -> Vec<(String, String)> {
        let mut state = lock(&self.state);
        let mut out = Vec::new();
        for name in asked {
            let Some(kind) = CapKind::from_name(name) else {
                continue;
            };
            let existing = state
                .sessions
                .get(idx)
                .and_then(|s| s.granted[region].get(name).cloned());
            let url = match existing {
                Some(url) => url,
                None => {
                    let entry = CapEntry {
                        session: idx,
                        region,
                        kind,
                    };
                    let url = Self::new_cap_url(&mut state, &self.regions[region], region, entry);
                    if let Some(s) = state.sessions.get_mut(idx) {
                        s.granted[region].insert(name.clone(), url.clone());
                    }
                    url
                }
            };
            out.push((name.clone(), url));
        }
        out
    }

    /// A one-time uploader URL on `region`.
    pub fn uploader(&self, idx: usize, region: usize) -> String {
        let mut state = lock(&self.state);
        let entry = CapEntry {
            session: idx,
            region,
            kind: CapKind::Uploader,
        };
        Self::new_cap_url(&mut state, &self.regions[region], region, entry)
    }

    /// Session `idx`'s event queue on `region`.
    pub fn queue(&self, idx: usize, region: usize) -> Option<Arc<EventQueue>> {
        lock(&self.state)
            .sessions
            .get(idx)
            .and_then(|s| s.queues.get(region).cloned())
    }

    fn script(&self, idx: usize, region: usize, message: &str, body: Value) {
        if let Some(q) = self.queue(idx, region) {
            lock(&self.state)
                .scripted
                .push((region, message.to_owned()));
            q.push(message, body);
        }
    }

    /// Notes that an answer carrying these events was written.
    pub fn delivered(&self, region: usize, queue_id: i32, events: &[(String, Value)]) {
        {
            let mut state = lock(&self.state);
            for (message, _) in events {
                state.delivered.push(Delivered {
                    region,
                    queue_id,
                    message: message.clone(),
                });
            }
        }
        self.note_change();
    }

    fn facts(&self, idx: usize, region: usize) -> (String, u32, u32, u16) {
        let seed = self.seed_url(idx, region);
        let r = &self.regions[region];
        (seed, r.grid_x, r.grid_y, r.port)
    }

    /// Queues what a region says when the agent arrives (its seed was asked for the first time): a
    /// neighbour's `EnableSimulator` and `EstablishAgentCommunication`, and a group chat session.
    pub fn greet(&self, idx: usize, region: usize) {
        {
            let mut state = lock(&self.state);
            let Some(s) = state.sessions.get_mut(idx) else {
                return;
            };
            if s.greeted[region] || s.region != region {
                return;
            }
            s.greeted[region] = true;
        }
        let Some(agent) = self.with_session(idx, |s| s.agent_id) else {
            return;
        };
        let neighbour = (region + 1) % self.regions.len();
        if neighbour != region {
            let (seed, gx, gy, port) = self.facts(idx, neighbour);
            let facts = bodies::RegionFacts {
                grid_x: gx,
                grid_y: gy,
                port,
                seed: &seed,
            };
            self.script(
                idx,
                region,
                "EnableSimulator",
                bodies::enable_simulator(&facts),
            );
            self.script(
                idx,
                region,
                "EstablishAgentCommunication",
                bodies::establish_agent_communication(agent, &facts),
            );
        }
        if region == 0 {
            let group = bodies::derived_uuid("group", 0);
            self.script(
                idx,
                region,
                "ChatterBoxSessionStartReply",
                bodies::session_start_reply(group, "capscope testers"),
            );
        }
    }

    fn latest(&self) -> Result<usize, ScriptError> {
        let state = lock(&self.state);
        state
            .sessions
            .len()
            .checked_sub(1)
            .ok_or(ScriptError::NoSession)
    }

    fn check_move(&self, idx: usize, to: usize) -> Result<usize, ScriptError> {
        if to >= self.regions.len() {
            return Err(ScriptError::NoRegion(to));
        }
        let from = self
            .with_session(idx, |s| s.region)
            .ok_or(ScriptError::NoSession)?;
        if from == to {
            return Err(ScriptError::AlreadyThere(to));
        }
        Ok(from)
    }

    fn move_to(&self, idx: usize, to: usize) {
        if let Some(s) = lock(&self.state).sessions.get_mut(idx) {
            s.region = to;
        }
    }

    /// Teleports the latest agent to `to`: `TeleportFinish` on the region it leaves.
    pub fn teleport(&self, to: usize) -> Result<(), ScriptError> {
        let idx = self.latest()?;
        let from = self.check_move(idx, to)?;
        let agent = self
            .with_session(idx, |s| s.agent_id)
            .ok_or(ScriptError::NoSession)?;
        let (seed, gx, gy, port) = self.facts(idx, to);
        let facts = bodies::RegionFacts {
            grid_x: gx,
            grid_y: gy,
            port,
            seed: &seed,
        };
        self.move_to(idx, to);
        self.script(
            idx,
            from,
            "TeleportFinish",
            bodies::teleport_finish(agent, &facts),
        );
        Ok(())
    }

    /// Walks the latest agent into `to`: `CrossedRegion` on the region it leaves.
    pub fn cross(&self, to: usize) -> Result<(), ScriptError> {
        let idx = self.latest()?;
        let from = self.check_move(idx, to)?;
        let (agent, session) = self
            .with_session(idx, |s| (s.agent_id, s.session_id))
            .ok_or(ScriptError::NoSession)?;
        let (seed, gx, gy, port) = self.facts(idx, to);
        let facts = bodies::RegionFacts {
            grid_x: gx,
            grid_y: gy,
            port,
            seed: &seed,
        };
        self.move_to(idx, to);
        self.script(
            idx,
            from,
            "CrossedRegion",
            bodies::crossed_region(agent, session, &facts),
        );
        Ok(())
    }

    /// A group chat line for the latest agent, on the region it is in.
    pub fn group_chat(&self, from_name: &str, text: &str) -> Result<(), ScriptError> {
        let idx = self.latest()?;
        let region = self
            .with_session(idx, |s| s.region)
            .ok_or(ScriptError::NoSession)?;
        let group = bodies::derived_uuid("group", 0);
        let body = bodies::chatterbox_invitation(
            group,
            "capscope testers",
            bodies::derived_uuid("chatter", 0),
            from_name,
            text,
            super::unix_now(),
        );
        self.script(idx, region, "ChatterBoxInvitation", body);
        Ok(())
    }

    /// Any event for the latest agent, on the region it is in.
    pub fn push_event(&self, message: &str, body: Value) -> Result<(), ScriptError> {
        let idx = self.latest()?;
        let region = self
            .with_session(idx, |s| s.region)
            .ok_or(ScriptError::NoSession)?;
        self.script(idx, region, message, body);
        Ok(())
    }

    /// The region the latest agent is in.
    pub fn current_region(&self) -> Option<usize> {
        let idx = self.latest().ok()?;
        self.with_session(idx, |s| s.region)
    }

    /// How many event-queue polls the latest agent's queues received, all regions together.
    pub fn polls_received(&self) -> u64 {
        let Ok(idx) = self.latest() else { return 0 };
        lock(&self.state)
            .sessions
            .get(idx)
            .map(|s| s.queues.iter().map(|q| q.polls()).sum())
            .unwrap_or(0)
    }

    /// Every cap or seed URL handed out so far.
    pub fn issued(&self) -> Vec<String> {
        lock(&self.state).issued.clone()
    }

    /// Every event scripted so far: (region, message).
    pub fn scripted(&self) -> Vec<(usize, String)> {
        lock(&self.state).scripted.clone()
    }

    /// Every event written in an answer so far.
    pub fn delivered_events(&self) -> Vec<Delivered> {
        lock(&self.state).delivered.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_keys_follow_opensim_shapes() {
        assert_eq!(path_key("/CAPS/abc0000/"), "CAPS/abc0000");
        assert_eq!(path_key("/CE/abc"), "CE/abc");
        assert_eq!(path_key("/abc/"), "abc");
        assert_eq!(path_key("/abc/?ids=1"), "abc");
    }

    #[tokio::test]
    async fn events_are_dropped_once_taken_whatever_the_ack() {
        let q = EventQueue::default();
        q.push("A", Value::Undef);
        q.push("B", Value::Undef);
        match q.poll(Duration::from_millis(1)).await {
            PollAnswer::Events(id, events) => {
                assert_eq!(id, 1);
                assert_eq!(events.len(), 2);
            }
            PollAnswer::Idle => panic!("events were pending"),
        }
        assert!(matches!(
            q.poll(Duration::from_millis(1)).await,
            PollAnswer::Idle
        ));
    }

    #[tokio::test]
    async fn a_waiting_poll_wakes_on_push() {
        let q = Arc::new(EventQueue::default());
        let waiter = {
            let q = q.clone();
            tokio::spawn(async move { q.poll(Duration::from_secs(60)).await })
        };
        tokio::task::yield_now().await;
        q.push("C", Value::Undef);
        match waiter.await.unwrap() {
            PollAnswer::Events(_, events) => assert_eq!(events[0].0, "C"),
            PollAnswer::Idle => panic!("the push should wake the poll"),
        }
    }
}
