//! The cap registry: every cap capscope holds, the region (seed) each came from, and in login mode
//! the random token that stands for its upstream URL.
//!
//! Owns cap and region bookkeeping only: longest-prefix lookup of request URLs, token minting and
//! resolution, the "left" mark on regions the avatar moved away from, and the registry's lifetime
//! policy (what it forgets, and remembering why, so a request to a forgotten token gets an answer
//! that says so). It does no I/O and knows no wire format; callers hold it behind a lock for short
//! critical sections.
//!
//! What is forgotten, after what grids and viewers do (docs/caps.md, "How long caps are held"):
//! - a TEMPORARY cap (an upload cap's `uploader`, a redirect target) once the grid answered it with
//!   a 2xx (OpenSim removes an uploader at its first POST), or [`TEMPORARY_CAP_TTL_US`] after it was
//!   granted unused, or when more than [`MAX_TEMPORARY_CAPS`] are held (the oldest first);
//! - a region no agent is in (a region left, a neighbour) with the caps only it granted, when more
//!   than [`MAX_OTHER_REGIONS`] such regions are held: the one whose caps were used least recently
//!   first. A region an agent is in is never forgotten.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;

use http::Uri;

use crate::record::now_us;

/// How many random bits a proxy token carries (written as hex, 4 bits a digit).
pub const TOKEN_BITS: usize = 128;

/// The path prefix of capscope's own cap URLs: `http://<listen>/cap/<token>`.
pub const CAP_PATH_PREFIX: &str = "/cap/";

/// The most TEMPORARY caps (uploaders, redirect targets) held at once; past it the oldest is
/// forgotten. A viewer uses an uploader at once and one at a time per upload; this is far more than
/// uploads in flight.
pub const MAX_TEMPORARY_CAPS: usize = 256;

/// How long a TEMPORARY cap nobody used is held: 10 minutes. OpenSim drops an unused asset
/// uploader after 120 s and an item updater after 30 s (BunchOfCaps.cs, UpdateItemAsset.cs);
/// capscope holds them longer, so it never forgets one a grid still honours. Expired caps are
/// forgotten when the next cap is granted.
pub const TEMPORARY_CAP_TTL_US: i64 = 10 * 60 * 1_000_000;

/// The most regions no agent is in (regions left, neighbours) held with their caps; past it the one
/// whose caps were used least recently is forgotten. A viewer keeps a region's caps while the region
/// is its neighbour, and a grid closes an agent's caps on a region it teleported far from (OpenSim:
/// EntityTransferModule.cs closes the agent 2 s after a teleport out of view range), so regions
/// long out of use are gone upstream too.
pub const MAX_OTHER_REGIONS: usize = 64;

/// How many forgotten tokens are remembered, so that a request to one is told why it is gone (past
/// this, the oldest are answered as unknown tokens).
pub const FORGOTTEN_REMEMBERED: usize = 4096;

/// The most simulator UDP addresses remembered (EnableSimulator hints); past it they are dropped
/// and learnt again.
pub const MAX_SIMS: usize = 1024;

/// Names a region in the registry (a number given in the order regions are first seen; never
/// reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegionId(pub usize);

/// Names a cap in the registry (a number given in the order caps are granted; never reused, so an
/// id of a forgotten cap resolves to nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CapId(pub usize);

/// What sort of cap this is (after Hippolyzer's cap kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapKind {
    /// Granted by a seed (or the seed itself); lives as long as the region's session.
    Normal,
    /// A one-time URL handed out in a response (an upload cap's `uploader`).
    Temporary,
}

impl fmt::Display for CapKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CapKind::Normal => "NORMAL",
            CapKind::Temporary => "TEMPORARY",
        })
    }
}

/// The name every seed capability is registered under.
pub const SEED_CAP: &str = "Seed";

/// One region the avatar had caps for: one seed capability.
#[derive(Debug, Clone, PartialEq)]
pub struct Region {
    pub id: RegionId,
    /// The upstream seed URL as the grid sent it.
    pub seed_url: String,
    /// `host:port` of the seed URL (the simulator's HTTP side).
    pub sim_host: String,
    /// The region handle (`x << 32 | y` in metres), when learnt.
    pub handle: Option<u64>,
    /// The region's name, when learnt.
    pub name: Option<String>,
    /// The simulator's UDP `ip:port`, when learnt (never proxied; shown only).
    pub sim_udp: Option<String>,
    /// When the seed was first seen, microseconds since the Unix epoch.
    pub granted_us: i64,
    /// Whether the avatar left this region (teleport or crossing away). Its caps are kept (up to
    /// [`MAX_OTHER_REGIONS`] such regions).
    pub left: bool,
    /// The agent whose seed this is (`First Last` from the login), when known. Seeds are per agent,
    /// so two viewers on one capscope never share a region entry.
    pub agent: Option<String>,
    /// When a request last went to one of its caps (or it was granted, entered or left), as the
    /// registry's use count then: the region with the lowest is the first forgotten.
    pub last_use: u64,
}

impl Region {
    /// A short name for records: the region's name if learnt, else its sim host with what tells it
    /// apart from other regions on that host (OpenSim serves all its regions' caps on one port): grid
    /// coordinates when the handle is known, else the simulator's UDP address, else the seed's number.
    pub fn label(&self) -> String {
        if let Some(name) = &self.name {
            return name.clone();
        }
        match (self.handle, &self.sim_udp) {
            (Some(h), _) => {
                let (x, y) = crate::caps::fields::handle_to_grid(h);
                format!("{} ({x}, {y})", self.sim_host)
            }
            (None, Some(udp)) => format!("{} (sim {udp})", self.sim_host),
            (None, None) if self.id.0 == 0 => self.sim_host.clone(),
            (None, None) => format!("{} (seed #{})", self.sim_host, self.id.0 + 1),
        }
    }
}

/// One cap.
#[derive(Debug, Clone, PartialEq)]
pub struct Cap {
    pub id: CapId,
    /// The cap's name (`EventQueueGet`, `Seed`, `NewFileAgentInventoryUploader`, ...).
    pub name: String,
    /// The region whose seed (or event queue) granted it, latest grant first.
    pub region: Option<RegionId>,
    /// Every region that granted it (the same URL may come from several seeds), in grant order: the
    /// cap is forgotten with the last of them.
    pub granted_by: Vec<RegionId>,
    /// The upstream URL as the grid sent it.
    pub upstream: String,
    /// Login mode: the token standing for `upstream` (`/cap/<token>`), once one was minted.
    pub token: Option<String>,
    /// Login mode: the URL the viewer was given instead of `upstream`.
    pub proxy_url: Option<String>,
    pub kind: CapKind,
    /// When first granted, microseconds since the Unix epoch.
    pub granted_us: i64,
}

/// The cap a URL or token lookup matched: what a request to it needs of the cap (id, name, kind,
/// upstream URL) and of its region (label, whether the avatar left it, its agent).
#[derive(Debug, Clone, PartialEq)]
pub struct MatchedCap {
    pub cap: CapId,
    pub name: String,
    pub kind: CapKind,
    pub region: Option<RegionId>,
    /// The region's label, for records.
    pub region_label: Option<String>,
    /// Whether the avatar left the cap's region.
    pub region_left: bool,
    /// The agent the cap's region belongs to.
    pub agent: Option<String>,
    /// The upstream URL of the cap itself (a request may extend it with a path or query).
    pub upstream: String,
}

/// A cap the registry forgot, remembered by its token so a request to it is told why.
#[derive(Debug, Clone, PartialEq)]
pub struct Forgotten {
    pub name: String,
    pub kind: CapKind,
    /// The label of its region when it was forgotten.
    pub region_label: Option<String>,
    pub agent: Option<String>,
    /// Why, in words for the answer and the record ("one-time URL already used: ...").
    pub why: String,
    /// When, microseconds since the Unix epoch.
    pub at_us: i64,
}

/// How many caps and regions the registry holds and has forgotten.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegistryCounts {
    pub caps: usize,
    pub regions: usize,
    pub temporary: usize,
    pub forgotten_caps: u64,
    pub forgotten_regions: u64,
}

/// Every cap and region of the session.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    proxy_base: String,
    regions: BTreeMap<RegionId, Region>,
    caps: BTreeMap<CapId, Cap>,
    next_region: usize,
    next_cap: usize,
    region_by_seed: HashMap<String, RegionId>,
    cap_by_url: HashMap<String, CapId>,
    /// Per `host[:port]`: each cap's normalised URL, for prefix matching.
    caps_by_authority: HashMap<String, Vec<(String, CapId)>>,
    cap_by_token: HashMap<String, CapId>,
    /// The TEMPORARY caps held, in the order granted.
    temporaries: VecDeque<CapId>,
    /// Forgotten tokens, oldest first (at most [`FORGOTTEN_REMEMBERED`]).
    forgotten: HashMap<String, Forgotten>,
    forgotten_order: VecDeque<String>,
    forgotten_caps: u64,
    forgotten_regions: u64,
    /// Simulator UDP `ip:port` -> region handle, from EnableSimulator and the login reply.
    sims: HashMap<String, u64>,
    /// The region each agent is in (`None`: an agent capscope could not name).
    current: HashMap<Option<String>, RegionId>,
    /// The region entered last, by any agent.
    last_entered: Option<RegionId>,
    /// Counts uses of regions (see [`Region::last_use`]).
    uses: u64,
}

impl Registry {
    /// An empty registry whose proxy URLs start with `proxy_base` (`http://127.0.0.1:8080`).
    pub fn new(proxy_base: impl Into<String>) -> Self {
        let mut base: String = proxy_base.into();
        while base.ends_with('/') {
            base.pop();
        }
        Self {
            proxy_base: base,
            ..Self::default()
        }
    }

    /// The base of proxy URLs.
    pub fn proxy_base(&self) -> &str {
        &self.proxy_base
    }

    /// Registers (or finds) the region of a seed URL, filling in what is newly known, and registers
    /// the seed itself as its `Seed` cap. A region seen again is no longer marked left.
    pub fn add_region(
        &mut self,
        seed_url: &str,
        handle: Option<u64>,
        sim_udp: Option<&str>,
    ) -> RegionId {
        let now = now_us();
        let key = normalize_url(seed_url);
        let handle = handle.or_else(|| sim_udp.and_then(|u| self.sims.get(u).copied()));
        let (id, new) = match self.region_by_seed.get(&key) {
            Some(&id) => (id, false),
            None => {
                let id = RegionId(self.next_region);
                self.next_region += 1;
                self.regions.insert(
                    id,
                    Region {
                        id,
                        seed_url: seed_url.to_owned(),
                        sim_host: authority_of(&key).to_owned(),
                        handle: None,
                        name: None,
                        sim_udp: None,
                        granted_us: now,
                        left: false,
                        agent: None,
                        last_use: 0,
                    },
                );
                self.region_by_seed.insert(key, id);
                (id, true)
            }
        };
        let mut learnt = None;
        let use_now = self.next_use();
        if let Some(region) = self.regions.get_mut(&id) {
            if handle.is_some() {
                region.handle = handle;
            }
            if let Some(udp) = sim_udp {
                region.sim_udp = Some(udp.to_owned());
            }
            region.last_use = use_now;
            if let (Some(h), Some(udp)) = (region.handle, region.sim_udp.clone()) {
                learnt = Some((udp, h));
            }
        }
        if let Some((udp, h)) = learnt {
            self.remember_sim(udp, h);
        }
        self.grant(SEED_CAP, seed_url, Some(id), CapKind::Normal);
        if new {
            self.enforce_region_limit(now);
        }
        id
    }

    fn next_use(&mut self) -> u64 {
        self.uses += 1;
        self.uses
    }

    fn remember_sim(&mut self, sim_udp: String, handle: u64) {
        if self.sims.len() >= MAX_SIMS && !self.sims.contains_key(&sim_udp) {
            self.sims.clear();
        }
        self.sims.insert(sim_udp, handle);
    }

    /// Records that a simulator's UDP address belongs to a region handle (EnableSimulator), and fills
    /// the handle in on any region already known by that address.
    pub fn learn_sim(&mut self, sim_udp: &str, handle: u64) {
        self.remember_sim(sim_udp.to_owned(), handle);
        for region in self.regions.values_mut() {
            if region.sim_udp.as_deref() == Some(sim_udp) && region.handle.is_none() {
                region.handle = Some(handle);
            }
        }
    }

    /// Sets a region's name.
    pub fn set_region_name(&mut self, region: RegionId, name: impl Into<String>) {
        if let Some(r) = self.regions.get_mut(&region) {
            r.name = Some(name.into());
        }
    }

    /// Names the agent a region's seed belongs to (the login's, or inherited by a seed an event of
    /// that agent's queue carried). A region already named keeps its agent.
    pub fn set_region_agent(&mut self, region: RegionId, agent: Option<&str>) {
        if let (Some(r), Some(agent)) = (self.regions.get_mut(&region), agent) {
            if r.agent.is_none() {
                r.agent = Some(agent.to_owned());
            }
        }
    }

    /// The agent a region belongs to.
    pub fn region_agent(&self, region: RegionId) -> Option<&str> {
        self.regions.get(&region).and_then(|r| r.agent.as_deref())
    }

    /// The avatar of `region`'s agent is now in `region` (login, teleport, crossing): the region that
    /// agent was in before, if any and different, is marked left. Other agents' regions are not
    /// touched.
    pub fn enter_region(&mut self, region: RegionId) {
        let now = now_us();
        let use_now = self.next_use();
        let agent = self.regions.get(&region).and_then(|r| r.agent.clone());
        if let Some(&previous) = self.current.get(&agent) {
            if previous != region {
                if let Some(r) = self.regions.get_mut(&previous) {
                    r.left = true;
                    r.last_use = use_now;
                }
            }
        }
        if let Some(r) = self.regions.get_mut(&region) {
            r.left = false;
            r.last_use = use_now;
        }
        self.current.insert(agent, region);
        self.last_entered = Some(region);
        self.enforce_region_limit(now);
    }

    /// Marks a region left (the avatar moved away from it); its caps are kept.
    pub fn mark_left(&mut self, region: RegionId) {
        let now = now_us();
        let use_now = self.next_use();
        if let Some(r) = self.regions.get_mut(&region) {
            r.left = true;
            r.last_use = use_now;
        }
        self.current.retain(|_, r| *r != region);
        if self.last_entered == Some(region) {
            self.last_entered = None;
        }
        self.enforce_region_limit(now);
    }

    /// The region the avatar entered last (with one agent: the region it is in), as far as capscope
    /// knows.
    pub fn current_region(&self) -> Option<RegionId> {
        self.last_entered
    }

    /// The region `agent` is in, as far as capscope knows.
    pub fn current_region_of(&self, agent: Option<&str>) -> Option<RegionId> {
        self.current.get(&agent.map(str::to_owned)).copied()
    }

    /// Registers a cap granted to `region` (or updates it: the same upstream URL is one cap, and the
    /// latest grant names it and its region).
    pub fn grant(
        &mut self,
        name: &str,
        upstream: &str,
        region: Option<RegionId>,
        kind: CapKind,
    ) -> CapId {
        self.grant_at(name, upstream, region, kind, now_us())
    }

    /// [`Registry::grant`] at a given time (tests of expiry).
    pub fn grant_at(
        &mut self,
        name: &str,
        upstream: &str,
        region: Option<RegionId>,
        kind: CapKind,
        now: i64,
    ) -> CapId {
        self.expire_temporaries(now);
        let key = normalize_url(upstream);
        if let Some(&id) = self.cap_by_url.get(&key) {
            if let Some(cap) = self.caps.get_mut(&id) {
                // A seed also granted under another name keeps the name "Seed" visible: it is the
                // stronger fact.
                if cap.name != SEED_CAP {
                    cap.name = name.to_owned();
                }
                if let Some(r) = region {
                    cap.region = Some(r);
                    cap.granted_by.retain(|g| *g != r);
                    cap.granted_by.push(r);
                }
                return id;
            }
        }
        let id = CapId(self.next_cap);
        self.next_cap += 1;
        self.caps.insert(
            id,
            Cap {
                id,
                name: name.to_owned(),
                region,
                granted_by: region.into_iter().collect(),
                upstream: upstream.to_owned(),
                token: None,
                proxy_url: None,
                kind,
                granted_us: now,
            },
        );
        self.caps_by_authority
            .entry(authority_of(&key).to_owned())
            .or_default()
            .push((key.clone(), id));
        self.cap_by_url.insert(key, id);
        if kind == CapKind::Temporary {
            self.temporaries.push_back(id);
            self.enforce_temporary_limit(now);
        }
        id
    }

    /// The proxy URL standing for a cap (minting its token the first time). A cap whose upstream path
    /// ends in `/` gets a proxy URL ending in `/`, so a viewer appending to it builds a valid path.
    pub fn proxy_url(&mut self, cap: CapId) -> String {
        let Some(c) = self.caps.get(&cap) else {
            return String::new();
        };
        if let Some(url) = &c.proxy_url {
            return url.clone();
        }
        let slash = if upstream_path_ends_with_slash(&c.upstream) {
            "/"
        } else {
            ""
        };
        let token = loop {
            let t = new_token();
            if !self.cap_by_token.contains_key(&t) && !self.forgotten.contains_key(&t) {
                break t;
            }
        };
        let url = format!("{}{CAP_PATH_PREFIX}{token}{slash}", self.proxy_base);
        self.cap_by_token.insert(token.clone(), cap);
        if let Some(c) = self.caps.get_mut(&cap) {
            c.token = Some(token);
            c.proxy_url = Some(url.clone());
        }
        url
    }

    /// Grants a cap and returns its proxy URL in one step (login mode).
    pub fn grant_proxied(
        &mut self,
        name: &str,
        upstream: &str,
        region: Option<RegionId>,
        kind: CapKind,
    ) -> String {
        let id = self.grant(name, upstream, region, kind);
        self.proxy_url(id)
    }

    /// The cap with this id (`None` once forgotten).
    pub fn cap(&self, id: CapId) -> Option<&Cap> {
        self.caps.get(&id)
    }

    /// The region with this id (`None` once forgotten).
    pub fn region(&self, id: RegionId) -> Option<&Region> {
        self.regions.get(&id)
    }

    /// The region of a seed URL, when known.
    pub fn region_of_seed(&self, seed_url: &str) -> Option<RegionId> {
        self.region_by_seed.get(&normalize_url(seed_url)).copied()
    }

    /// The label of a region, for records.
    pub fn region_label(&self, id: RegionId) -> Option<String> {
        self.region(id).map(Region::label)
    }

    /// Every cap held, in the order first granted.
    pub fn caps(&self) -> impl ExactSizeIterator<Item = &Cap> + '_ {
        self.caps.values()
    }

    /// Every region held, in the order first seen.
    pub fn regions(&self) -> impl ExactSizeIterator<Item = &Region> + '_ {
        self.regions.values()
    }

    /// How many caps the registry holds.
    pub fn cap_count(&self) -> usize {
        self.caps.len()
    }

    /// How many regions the registry holds.
    pub fn region_count(&self) -> usize {
        self.regions.len()
    }

    /// What the registry holds and has forgotten.
    pub fn counts(&self) -> RegistryCounts {
        RegistryCounts {
            caps: self.caps.len(),
            regions: self.regions.len(),
            temporary: self.temporaries.len(),
            forgotten_caps: self.forgotten_caps,
            forgotten_regions: self.forgotten_regions,
        }
    }

    /// Whether any TEMPORARY cap is held (so a response may retire one).
    pub fn holds_temporary(&self) -> bool {
        !self.temporaries.is_empty()
    }

    /// The cap a request URL was made to: the known cap URL that is the longest prefix of `url`
    /// ending at a path boundary (`/`, `?`, or the end).
    pub fn lookup_url(&self, url: &str) -> Option<MatchedCap> {
        let key = normalize_url(url);
        let candidates = self.caps_by_authority.get(authority_of(&key))?;
        let mut best: Option<(usize, CapId)> = None;
        for (cap_key, id) in candidates {
            let id = *id;
            if is_prefix_at_boundary(cap_key, &key)
                && best.is_none_or(|(len, _)| cap_key.len() > len)
            {
                best = Some((cap_key.len(), id));
            }
        }
        best.and_then(|(_, id)| self.found(id))
    }

    /// [`Registry::lookup_url`] for a request's parsed URI, with the same answer, and the URL as the
    /// text it was looked up by (the caller records it). A request to a host where no cap lives
    /// (most traffic through a plain proxy) is answered from the `host[:port]` alone, without
    /// writing the URL out: this runs for every request, on the forwarding path.
    pub fn lookup_uri(&self, uri: &Uri) -> Option<(MatchedCap, String)> {
        if let Some(authority) = normalized_authority(uri) {
            if !self.caps_by_authority.contains_key(authority.as_ref()) {
                return None;
            }
        }
        let url = uri.to_string();
        self.lookup_url(&url).map(|found| (found, url))
    }

    /// Whether any cap lives on this URL's `host[:port]` (a host capscope knows as the grid's).
    pub fn knows_host_of(&self, url: &str) -> bool {
        self.caps_by_authority
            .contains_key(authority_of(&normalize_url(url)))
    }

    /// Login mode: the capscope URL a redirect's target becomes, when it is on a host the registry
    /// knows. A URL under a known cap becomes that cap's proxy URL plus the rest of the path and query
    /// (so the follow-up is recorded under that cap); any other URL on a known host becomes a
    /// temporary cap named `name`. `None` for a host capscope does not know (the redirect leaves the
    /// grid and goes on as sent).
    pub fn proxy_for_redirect(
        &mut self,
        url: &str,
        name: &str,
        region: Option<RegionId>,
    ) -> Option<String> {
        if !self.knows_host_of(url) {
            return None;
        }
        let key = normalize_url(url);
        if let Some(found) = self.lookup_url(url) {
            let cap_key = normalize_url(&found.upstream);
            if !found.upstream.contains('?') && key.starts_with(&cap_key) {
                let rest = &key[cap_key.len()..];
                let proxy = self.proxy_url(found.cap);
                let rest = if proxy.ends_with('/') {
                    rest.strip_prefix('/').unwrap_or(rest)
                } else {
                    rest
                };
                return Some(format!("{proxy}{rest}"));
            }
        }
        Some(self.grant_proxied(name, url, region, CapKind::Temporary))
    }

    /// The cap a token stands for.
    pub fn lookup_token(&self, token: &str) -> Option<MatchedCap> {
        self.cap_by_token.get(token).and_then(|&id| self.found(id))
    }

    /// A token the registry forgot (while it is still remembered), and why.
    pub fn forgotten_token(&self, token: &str) -> Option<&Forgotten> {
        self.forgotten.get(token)
    }

    /// A request went to this cap: its region counts as in use (the region whose caps were used
    /// least recently is the first forgotten).
    pub fn touch(&mut self, cap: CapId) {
        let Some(region) = self.caps.get(&cap).and_then(|c| c.region) else {
            return;
        };
        let use_now = self.next_use();
        if let Some(r) = self.regions.get_mut(&region) {
            r.last_use = use_now;
        }
    }

    /// A TEMPORARY cap was used (the grid answered it with `status`, a 2xx): forgotten, as the grid
    /// forgets it. A NORMAL cap is left alone. Returns whether it was forgotten.
    pub fn retire_used(&mut self, cap: CapId, status: http::StatusCode) -> bool {
        if self.caps.get(&cap).map(|c| c.kind) != Some(CapKind::Temporary) {
            return false;
        }
        self.forget_cap(
            cap,
            format!("a one-time URL, already used (the grid answered it {status})"),
            now_us(),
        );
        true
    }

    /// Forgets TEMPORARY caps granted more than [`TEMPORARY_CAP_TTL_US`] before `now` (called on
    /// every grant; public for tests and for a caller with a clock of its own).
    pub fn expire_temporaries(&mut self, now: i64) {
        while let Some(&id) = self.temporaries.front() {
            let Some(cap) = self.caps.get(&id) else {
                self.temporaries.pop_front();
                continue;
            };
            if now.saturating_sub(cap.granted_us) < TEMPORARY_CAP_TTL_US {
                break;
            }
            self.temporaries.pop_front();
            self.forget_cap(
                id,
                format!(
                    "a one-time URL, unused for {} minutes",
                    TEMPORARY_CAP_TTL_US / 60_000_000
                ),
                now,
            );
        }
    }

    fn enforce_temporary_limit(&mut self, now: i64) {
        while self.temporaries.len() > MAX_TEMPORARY_CAPS {
            let Some(id) = self.temporaries.pop_front() else {
                break;
            };
            self.forget_cap(
                id,
                format!("a one-time URL, among the oldest of over {MAX_TEMPORARY_CAPS} held"),
                now,
            );
        }
    }

    /// Forgets the regions no agent is in beyond [`MAX_OTHER_REGIONS`], least recently used first.
    fn enforce_region_limit(&mut self, now: i64) {
        loop {
            let mut others = self
                .regions
                .values()
                .filter(|r| !self.current.values().any(|c| *c == r.id));
            let count = others.clone().count();
            if count <= MAX_OTHER_REGIONS {
                return;
            }
            let Some(oldest) = others
                .by_ref()
                .min_by_key(|r| (r.last_use, r.id))
                .map(|r| r.id)
            else {
                return;
            };
            self.forget_region(oldest, now);
        }
    }

    /// Forgets a region and every cap only it granted (a cap also granted by a region still held is
    /// kept, and attributed to that region).
    fn forget_region(&mut self, id: RegionId, now: i64) {
        let Some(region) = self.regions.remove(&id) else {
            return;
        };
        self.forgotten_regions += 1;
        let label = region.label();
        self.region_by_seed.remove(&normalize_url(&region.seed_url));
        self.current.retain(|_, r| *r != id);
        if self.last_entered == Some(id) {
            self.last_entered = None;
        }
        let why = if region.left {
            format!(
                "its region {label} was left and is among the least recently used of over \
                 {MAX_OTHER_REGIONS} regions no agent is in"
            )
        } else {
            format!(
                "its region {label} (a neighbour no agent entered) is among the least recently \
                 used of over {MAX_OTHER_REGIONS} regions no agent is in"
            )
        };
        let mut gone = Vec::new();
        for cap in self.caps.values_mut() {
            if !cap.granted_by.contains(&id) && cap.region != Some(id) {
                continue;
            }
            cap.granted_by.retain(|g| *g != id);
            match cap.granted_by.last() {
                Some(&other) => cap.region = Some(other),
                None => gone.push(cap.id),
            }
        }
        for cap in gone {
            let place = (Some(label.clone()), region.agent.clone());
            self.forget_cap_with_region(cap, why.clone(), place, now);
        }
    }

    fn forget_cap(&mut self, id: CapId, why: String, now: i64) {
        let region = self
            .caps
            .get(&id)
            .and_then(|c| c.region)
            .and_then(|r| self.region(r));
        let place = (
            region.map(Region::label),
            region.and_then(|r| r.agent.clone()),
        );
        self.forget_cap_with_region(id, why, place, now);
    }

    fn forget_cap_with_region(
        &mut self,
        id: CapId,
        why: String,
        (region_label, agent): (Option<String>, Option<String>),
        now: i64,
    ) {
        let Some(cap) = self.caps.remove(&id) else {
            return;
        };
        self.forgotten_caps += 1;
        if cap.kind == CapKind::Temporary {
            // At most MAX_TEMPORARY_CAPS ids: so that `holds_temporary` stays exact.
            self.temporaries.retain(|t| *t != id);
        }
        let key = normalize_url(&cap.upstream);
        if self.cap_by_url.get(&key) == Some(&id) {
            self.cap_by_url.remove(&key);
        }
        let authority = authority_of(&key);
        if let Some(list) = self.caps_by_authority.get_mut(authority) {
            list.retain(|(_, c)| *c != id);
            if list.is_empty() {
                self.caps_by_authority.remove(authority);
            }
        }
        let Some(token) = cap.token else {
            return;
        };
        self.cap_by_token.remove(&token);
        while self.forgotten_order.len() >= FORGOTTEN_REMEMBERED {
            if let Some(old) = self.forgotten_order.pop_front() {
                self.forgotten.remove(&old);
            }
        }
        self.forgotten_order.push_back(token.clone());
        self.forgotten.insert(
            token,
            Forgotten {
                name: cap.name,
                kind: cap.kind,
                region_label,
                agent,
                why,
                at_us: now,
            },
        );
    }

    fn found(&self, id: CapId) -> Option<MatchedCap> {
        let cap = self.caps.get(&id)?;
        let region = cap.region.and_then(|r| self.region(r));
        Some(MatchedCap {
            cap: id,
            name: cap.name.clone(),
            kind: cap.kind,
            region: cap.region,
            region_label: region.map(Region::label),
            region_left: region.is_some_and(|r| r.left),
            agent: region.and_then(|r| r.agent.clone()),
            upstream: cap.upstream.clone(),
        })
    }
}

/// A fresh token of [`TOKEN_BITS`] random bits from the thread-local, OS-seeded CSPRNG, as lowercase
/// hex.
pub fn new_token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Splits a capscope cap path `/cap/<token>[/rest][?query]` into token, rest (with its leading `/`)
/// and query. `None` when the path is not a cap path or the token is empty.
pub fn split_cap_path(path_and_query: &str) -> Option<(&str, &str, Option<&str>)> {
    let tail = path_and_query.strip_prefix(CAP_PATH_PREFIX)?;
    let (path, query) = match tail.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (tail, None),
    };
    let (token, rest) = match path.find('/') {
        Some(i) => (&path[..i], &path[i..]),
        None => (path, ""),
    };
    if token.is_empty() {
        return None;
    }
    Some((token, rest, query))
}

/// The upstream URL a `/cap/<token>` request goes to: the cap's URL with the request's extra path and
/// query appended (one `/` where both have one, `&` where both have a query).
pub fn join_upstream(upstream: &str, rest: &str, query: Option<&str>) -> String {
    let (base, base_query) = match upstream.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (upstream, None),
    };
    let mut url = String::with_capacity(upstream.len() + rest.len() + 16);
    url.push_str(base);
    if base.ends_with('/') {
        url.push_str(rest.strip_prefix('/').unwrap_or(rest));
    } else {
        url.push_str(rest);
    }
    match (base_query, query) {
        (Some(a), Some(b)) => {
            url.push('?');
            url.push_str(a);
            url.push('&');
            url.push_str(b);
        }
        (Some(q), None) | (None, Some(q)) => {
            url.push('?');
            url.push_str(q);
        }
        (None, None) => {}
    }
    url
}

/// A URL in the form used for matching: scheme and host lowercased, the default port dropped. Text
/// that does not parse as an absolute URL is returned as is.
pub fn normalize_url(url: &str) -> String {
    let Ok(uri) = url.parse::<Uri>() else {
        return url.to_owned();
    };
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return url.to_owned();
    };
    let scheme = scheme.to_ascii_lowercase();
    let host = authority.host().to_ascii_lowercase();
    let port = match (scheme.as_str(), authority.port_u16()) {
        ("http", Some(80)) | ("https", Some(443)) | (_, None) => String::new(),
        (_, Some(p)) => format!(":{p}"),
    };
    let pq = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    format!("{scheme}://{host}{port}{pq}")
}

/// The `host[:port]` that [`normalize_url`] would give `uri` (lower-case host, no default port),
/// borrowed from the URI when it is already written that way; `None` for a URI `normalize_url` keeps
/// as it is (no scheme or no authority).
fn normalized_authority(uri: &Uri) -> Option<std::borrow::Cow<'_, str>> {
    let (scheme, authority) = (uri.scheme_str()?, uri.authority()?);
    let host = authority.host();
    let default = match authority.port_u16() {
        None => true,
        Some(p) => {
            (p == 80 && scheme.eq_ignore_ascii_case("http"))
                || (p == 443 && scheme.eq_ignore_ascii_case("https"))
        }
    };
    let lower = !host.bytes().any(|b| b.is_ascii_uppercase());
    let text = authority.as_str();
    if lower && default && text == host {
        return Some(std::borrow::Cow::Borrowed(host));
    }
    if lower && !default && text.len() > host.len() && text.starts_with(host) {
        // `host:port` exactly as the port is printed (no user info, no leading zeros).
        let digits = text[host.len()..].strip_prefix(':').unwrap_or("");
        let printed = !digits.starts_with('0') && digits.bytes().all(|b| b.is_ascii_digit());
        if printed && digits.parse::<u16>().ok() == authority.port_u16() {
            return Some(std::borrow::Cow::Borrowed(text));
        }
    }
    let host = host.to_ascii_lowercase();
    Some(std::borrow::Cow::Owned(match authority.port_u16() {
        Some(p) if !default => format!("{host}:{p}"),
        _ => host,
    }))
}

/// The `host[:port]` of a normalised URL (empty when it has none).
fn authority_of(normalized: &str) -> &str {
    let after = normalized
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or("");
    let end = after.find(['/', '?']).unwrap_or(after.len());
    &after[..end]
}

fn is_prefix_at_boundary(prefix: &str, url: &str) -> bool {
    if !url.starts_with(prefix) {
        return false;
    }
    if url.len() == prefix.len() || prefix.ends_with('/') {
        return true;
    }
    matches!(url.as_bytes()[prefix.len()], b'/' | b'?')
}

fn upstream_path_ends_with_slash(upstream: &str) -> bool {
    upstream
        .split_once('?')
        .map(|(p, _)| p)
        .unwrap_or(upstream)
        .ends_with('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = "http://127.0.0.1:9000/CAPS/0f9b1a2e-1111-2222-3333-4444555566660000/";
    const EQ: &str = "http://127.0.0.1:9000/CE/8a1c2b3d-aaaa-bbbb-cccc-ddddeeeeffff";
    const FETCH: &str = "http://127.0.0.1:9000/9e8d7c6b-aaaa-bbbb-cccc-ddddeeeeffff/";

    fn opensim() -> (Registry, RegionId) {
        let mut reg = Registry::new("http://127.0.0.1:8080/");
        let r = reg.add_region(SEED, Some((256_000u64 << 32) | 256_000), None);
        reg.grant("EventQueueGet", EQ, Some(r), CapKind::Normal);
        reg.grant(
            "FetchInventoryDescendents2",
            FETCH,
            Some(r),
            CapKind::Normal,
        );
        (reg, r)
    }

    #[test]
    fn longest_prefix_names_opensim_paths() {
        let (reg, r) = opensim();
        let cases = [
            (SEED, Some("Seed")),
            (EQ, Some("EventQueueGet")),
            (
                "http://127.0.0.1:9000/9e8d7c6b-aaaa-bbbb-cccc-ddddeeeeffff/?x=1",
                Some("FetchInventoryDescendents2"),
            ),
            // Another uuid that merely starts like the event queue's is not it.
            (
                "http://127.0.0.1:9000/CE/8a1c2b3d-aaaa-bbbb-cccc-ddddeeeeffff0",
                None,
            ),
            ("http://127.0.0.1:9000/", None),
            ("http://127.0.0.1:9001/CE/8a1c2b3d", None),
            // Matching ignores scheme/host case and the default port.
            (
                "HTTP://127.0.0.1:9000/CE/8a1c2b3d-aaaa-bbbb-cccc-ddddeeeeffff?q",
                Some("EventQueueGet"),
            ),
        ];
        for (url, want) in cases {
            let got = reg.lookup_url(url);
            assert_eq!(got.as_ref().map(|f| f.name.as_str()), want, "{url}");
            if let Some(f) = got {
                assert_eq!(f.region, Some(r));
                assert_eq!(
                    f.region_label.as_deref(),
                    Some("127.0.0.1:9000 (1000, 1000)")
                );
            }
        }
    }

    #[test]
    fn lookup_by_uri_agrees_with_lookup_by_url() {
        let (mut reg, _) = opensim();
        reg.grant("Sl", "https://sim.example/cap/abc", None, CapKind::Normal);
        reg.grant("V6", "http://[::1]:9000/cap/v6", None, CapKind::Normal);
        let cases = [
            (EQ, Some("EventQueueGet")),
            (
                "HTTP://127.0.0.1:9000/CE/8a1c2b3d-aaaa-bbbb-cccc-ddddeeeeffff?q",
                Some("EventQueueGet"),
            ),
            (
                "http://127.0.0.1:09000/CE/8a1c2b3d-aaaa-bbbb-cccc-ddddeeeeffff",
                Some("EventQueueGet"),
            ),
            (
                "http://user@127.0.0.1:9000/CE/8a1c2b3d-aaaa-bbbb-cccc-ddddeeeeffff",
                Some("EventQueueGet"),
            ),
            ("https://SIM.Example:443/cap/abc/x", Some("Sl")),
            ("https://sim.example/cap/abc", Some("Sl")),
            ("https://sim.example:8443/cap/abc", None),
            ("http://sim.example/cap/abc", None),
            ("http://[::1]:9000/cap/v6?x", Some("V6")),
            ("http://127.0.0.1:9001/CE/8a1c2b3d", None),
            ("https://elsewhere.example/", None),
        ];
        for (url, want) in cases {
            let uri: Uri = url.parse().unwrap();
            let by_url = reg.lookup_url(url).map(|f| f.name);
            let by_uri = reg.lookup_uri(&uri).map(|(f, text)| {
                assert_eq!(text, uri.to_string());
                f.name
            });
            assert_eq!(by_uri, by_url, "{url}");
            assert_eq!(by_uri.as_deref(), want, "{url}");
        }
    }

    #[test]
    fn longer_prefix_wins_over_shorter() {
        let mut reg = Registry::new("http://p");
        reg.grant("Short", "https://h.example/cap/", None, CapKind::Normal);
        reg.grant(
            "Long",
            "https://h.example:443/cap/abc",
            None,
            CapKind::Normal,
        );
        let f = reg.lookup_url("https://h.example/cap/abc/more").unwrap();
        assert_eq!(f.name, "Long");
        let f = reg.lookup_url("https://h.example/cap/xyz").unwrap();
        assert_eq!(f.name, "Short");
    }

    #[test]
    fn tokens_are_128_bit_hex_unique_and_stable_per_url() {
        let (mut reg, r) = opensim();
        let seed_cap = reg.lookup_url(SEED).unwrap().cap;
        let eq_cap = reg.lookup_url(EQ).unwrap().cap;
        let a = reg.proxy_url(seed_cap);
        let b = reg.proxy_url(eq_cap);
        assert_ne!(a, b);
        assert_eq!(a, reg.proxy_url(seed_cap), "same cap, same URL");
        // The same upstream URL granted again maps to the same proxy URL.
        assert_eq!(
            reg.grant_proxied("EventQueueGet", EQ, Some(r), CapKind::Normal),
            b
        );
        let token = b.strip_prefix("http://127.0.0.1:8080/cap/").unwrap();
        assert_eq!(token.len(), TOKEN_BITS / 4);
        assert!(token.bytes().all(|c| c.is_ascii_hexdigit()));
        assert!(
            a.ends_with('/'),
            "seed path ends in / so the proxy URL does"
        );
        assert!(!b.ends_with('/'));
        assert_eq!(reg.lookup_token(token).unwrap().upstream, EQ);
        assert!(reg.lookup_token("0000").is_none());

        let many: std::collections::HashSet<String> = (0..1000).map(|_| new_token()).collect();
        assert_eq!(many.len(), 1000);
    }

    #[test]
    fn cap_paths_split_and_join() {
        assert_eq!(split_cap_path("/cap/abc"), Some(("abc", "", None)));
        assert_eq!(
            split_cap_path("/cap/abc/x/y?q=1"),
            Some(("abc", "/x/y", Some("q=1")))
        );
        assert_eq!(split_cap_path("/cap/"), None);
        assert_eq!(split_cap_path("/login"), None);
        assert_eq!(join_upstream(SEED, "/", None), SEED);
        assert_eq!(
            join_upstream("https://h/c/", "/x", Some("a=1")),
            "https://h/c/x?a=1"
        );
        assert_eq!(
            join_upstream("https://h/c?k=v", "", Some("a=1")),
            "https://h/c?k=v&a=1"
        );
        assert_eq!(join_upstream("https://h/c", "/x", None), "https://h/c/x");
    }

    #[test]
    fn leaving_a_region_marks_it_and_keeps_its_caps() {
        let (mut reg, a) = opensim();
        reg.enter_region(a);
        let b = reg.add_region(
            "http://127.0.0.1:9001/CAPS/b0000/",
            None,
            Some("127.0.0.1:9001"),
        );
        reg.learn_sim("127.0.0.1:9001", (256_256u64 << 32) | 256_000);
        assert_eq!(
            reg.region(b).unwrap().handle,
            Some((256_256u64 << 32) | 256_000)
        );
        reg.enter_region(b);
        assert!(reg.region(a).unwrap().left);
        assert!(!reg.region(b).unwrap().left);
        assert_eq!(reg.lookup_url(EQ).unwrap().region, Some(a), "caps kept");
        // Seeing a region's seed again (teleport back) clears the mark once entered.
        reg.enter_region(a);
        assert!(!reg.region(a).unwrap().left);
        assert!(reg.region(b).unwrap().left);
        let c = reg.add_region("http://127.0.0.1:9000/CAPS/c0000/", None, None);
        let d = reg.add_region(
            "http://127.0.0.1:9000/CAPS/d0000/",
            None,
            Some("127.0.0.1:9005"),
        );
        assert_eq!(
            reg.region_label(c).as_deref(),
            Some("127.0.0.1:9000 (seed #3)")
        );
        assert_eq!(
            reg.region_label(d).as_deref(),
            Some("127.0.0.1:9000 (sim 127.0.0.1:9005)")
        );
        reg.set_region_name(b, "Sandbox");
        assert_eq!(reg.region_label(b).as_deref(), Some("Sandbox"));
    }

    const UPLOADER: &str =
        "http://127.0.0.1:9000/CAPS/upload/ffffffff-0000-0000-0000-000000000001/";

    #[test]
    fn a_used_temporary_cap_is_forgotten_and_its_token_says_why() {
        let (mut reg, r) = opensim();
        let before = reg.cap_count();
        let url = reg.grant_proxied(
            "NewFileAgentInventoryUploader",
            UPLOADER,
            Some(r),
            CapKind::Temporary,
        );
        let token = url
            .strip_prefix("http://127.0.0.1:8080/cap/")
            .unwrap()
            .trim_end_matches('/')
            .to_owned();
        let cap = reg.lookup_token(&token).unwrap().cap;
        assert_eq!(reg.cap_count(), before + 1);
        assert!(reg.holds_temporary());

        // A NORMAL cap is never retired by use.
        let eq = reg.lookup_url(EQ).unwrap().cap;
        assert!(!reg.retire_used(eq, http::StatusCode::OK));
        assert!(reg.lookup_url(EQ).is_some());

        assert!(reg.retire_used(cap, http::StatusCode::OK));
        assert_eq!(reg.cap_count(), before, "the uploader is no longer held");
        assert!(!reg.holds_temporary(), "responses no longer look for one");
        assert!(reg.lookup_token(&token).is_none());
        assert!(reg.lookup_url(UPLOADER).is_none());
        assert!(reg.cap(cap).is_none());
        let gone = reg
            .forgotten_token(&token)
            .expect("remembered as forgotten");
        assert_eq!(gone.name, "NewFileAgentInventoryUploader");
        assert!(gone.why.contains("already used"), "{}", gone.why);
        assert_eq!(
            gone.region_label.as_deref(),
            Some("127.0.0.1:9000 (1000, 1000)")
        );
        assert_eq!(reg.counts().forgotten_caps, 1);
        // Granted again (a grid reusing the URL), it is a new cap with a new token.
        let again = reg.grant_proxied("X", UPLOADER, Some(r), CapKind::Temporary);
        assert_ne!(again, url);
    }

    #[test]
    fn temporary_caps_are_bounded_and_expire_unused() {
        let (mut reg, r) = opensim();
        let normal = reg.cap_count();
        let t0 = now_us();
        let mut tokens = Vec::new();
        for i in 0..MAX_TEMPORARY_CAPS + 10 {
            let id = reg.grant_at(
                "Uploader",
                &format!("http://127.0.0.1:9000/up/{i}"),
                Some(r),
                CapKind::Temporary,
                t0,
            );
            reg.proxy_url(id);
            tokens.push(reg.cap(id).unwrap().token.clone().unwrap());
        }
        assert_eq!(reg.counts().temporary, MAX_TEMPORARY_CAPS);
        assert_eq!(reg.cap_count(), normal + MAX_TEMPORARY_CAPS);
        // The oldest went first, and say why.
        assert!(reg.lookup_url("http://127.0.0.1:9000/up/0").is_none());
        assert!(reg.lookup_url("http://127.0.0.1:9000/up/10").is_some());
        assert!(reg
            .forgotten_token(&tokens[0])
            .unwrap()
            .why
            .contains("oldest"));

        // Unused past the TTL: forgotten at the next grant; NORMAL caps stay.
        reg.expire_temporaries(t0 + TEMPORARY_CAP_TTL_US - 1);
        assert_eq!(reg.counts().temporary, MAX_TEMPORARY_CAPS);
        reg.expire_temporaries(t0 + TEMPORARY_CAP_TTL_US);
        assert_eq!(reg.counts().temporary, 0);
        assert_eq!(reg.cap_count(), normal);
        assert!(reg
            .forgotten_token(tokens.last().unwrap())
            .unwrap()
            .why
            .contains("unused"));
        assert!(reg.lookup_url(EQ).is_some());
        assert!(!reg.holds_temporary());
    }

    #[test]
    fn regions_no_agent_is_in_are_bounded_least_recently_used_first() {
        let mut reg = Registry::new("http://127.0.0.1:8080");
        let seed = |i: usize| format!("http://127.0.0.1:9000/CAPS/{i:08x}-0000/");
        let shared = "https://assets.example/shared/";
        let first = reg.add_region(&seed(0), None, None);
        reg.set_region_agent(first, Some("Ann Resident"));
        reg.enter_region(first);
        let first_eq = reg.grant_proxied(
            "EventQueueGet",
            "http://127.0.0.1:9000/CE/first",
            Some(first),
            CapKind::Normal,
        );
        reg.grant("ViewerAsset", shared, Some(first), CapKind::Normal);
        // Another agent stays in its region all along: never forgotten, however old.
        let bob = reg.add_region("http://127.0.0.1:9100/CAPS/bob/", None, None);
        reg.set_region_agent(bob, Some("Bob Resident"));
        reg.enter_region(bob);
        // Ann teleports on and on; the second region stays in use (a neighbour she keeps polling).
        let mut kept_in_use = None;
        let mut last = first;
        for i in 1..=MAX_OTHER_REGIONS + 20 {
            let r = reg.add_region(&seed(i), None, None);
            reg.set_region_agent(r, Some("Ann Resident"));
            reg.enter_region(r);
            if i == 1 {
                kept_in_use = Some(reg.grant(
                    "EventQueueGet",
                    "http://127.0.0.1:9000/CE/second",
                    Some(r),
                    CapKind::Normal,
                ));
            }
            if i == MAX_OTHER_REGIONS {
                // The newest grant of the shared cap.
                reg.grant("ViewerAsset", shared, Some(r), CapKind::Normal);
            }
            if let Some(cap) = kept_in_use {
                reg.touch(cap);
            }
            last = r;
        }
        // Ann's region and Bob's, plus at most MAX_OTHER_REGIONS others.
        assert_eq!(reg.region_count(), MAX_OTHER_REGIONS + 2);
        assert_eq!(reg.counts().forgotten_regions, 20);
        assert!(reg.region(last).is_some());
        assert!(reg.region(bob).is_some(), "an agent is in it");
        assert!(reg.region(RegionId(2)).is_some(), "used all along");
        assert!(reg.lookup_url("http://127.0.0.1:9000/CE/second").is_some());
        // The first region (left long ago, not used since) went, with its caps and seed.
        assert!(reg.region(first).is_none());
        assert!(reg.region_of_seed(&seed(0)).is_none());
        assert!(reg.lookup_url("http://127.0.0.1:9000/CE/first").is_none());
        let token = first_eq.strip_prefix("http://127.0.0.1:8080/cap/").unwrap();
        let gone = reg.forgotten_token(token).unwrap();
        assert_eq!(gone.agent.as_deref(), Some("Ann Resident"));
        assert!(gone.why.contains("was left"), "{}", gone.why);
        // A cap another held region also granted stays, attributed to it.
        let f = reg
            .lookup_url(shared)
            .expect("still granted by a held region");
        assert!(f.region.is_some_and(|r| reg.region(r).is_some()));
        // A region seen again after it was forgotten is simply a new region.
        let back = reg.add_region(&seed(0), None, None);
        assert_ne!(back, first);
    }

    #[test]
    fn redirects_on_known_hosts_come_back_through_capscope() {
        let mut reg = Registry::new("http://127.0.0.1:8080");
        let seed = "https://127.0.0.1:9000/CAPS/11111111-2222-3333-4444-5555555555550000/";
        let r = reg.add_region(seed, None, None);
        let slash = reg.grant_proxied(
            "ViewerAsset",
            "https://127.0.0.1:9000/aaaa/",
            Some(r),
            CapKind::Normal,
        );
        let bare = reg.grant_proxied(
            "GetMesh",
            "https://127.0.0.1:9000/mesh",
            Some(r),
            CapKind::Normal,
        );
        // Under a known cap: that cap's URL plus the rest, which routes back to the same upstream.
        for (target, proxy) in [
            ("https://127.0.0.1:9000/aaaa/?texture_id=1", &slash),
            ("https://127.0.0.1:9000/aaaa/sub/x?y=1", &slash),
            ("https://127.0.0.1:9000/mesh/2?z", &bare),
        ] {
            let got = reg.proxy_for_redirect(target, "R", Some(r)).unwrap();
            assert!(got.starts_with(proxy.as_str()), "{got} under {proxy}");
            let pq = got.strip_prefix("http://127.0.0.1:8080").unwrap();
            let (token, rest, query) = split_cap_path(pq).unwrap();
            let found = reg.lookup_token(token).unwrap();
            assert_eq!(join_upstream(&found.upstream, rest, query), target);
        }
        // Elsewhere on a known host: a temporary cap of its own.
        let got = reg
            .proxy_for_redirect(
                "https://127.0.0.1:9000/other",
                "ViewerAsset redirect",
                Some(r),
            )
            .unwrap();
        let found = reg.lookup_url("https://127.0.0.1:9000/other").unwrap();
        assert_eq!(
            (found.name.as_str(), found.kind),
            ("ViewerAsset redirect", CapKind::Temporary)
        );
        assert_eq!(
            reg.cap(found.cap).unwrap().proxy_url.as_deref(),
            Some(got.as_str())
        );
        // Off the grid: left alone.
        assert_eq!(
            reg.proxy_for_redirect("https://example.org/x", "R", None),
            None
        );
    }
}
