//! The record store: the history the terminal UI and `capscope view` show.
//!
//! The record stream ([`crate::record::Bus`]) keeps nothing; the store keeps what was seen. It merges a
//! record's open and final versions by id, links each event to the poll that carried it, holds at most
//! [`Limits::records`] records and [`Limits::body_bytes`] bytes of bodies (its own budget: it keeps
//! [`Record::detached`] copies, so history never holds the bus's body budget and never makes the
//! capture writer lose bodies), closes records whose final version was lost to a lag (and says so),
//! and decodes LLSD bodies on demand, at most once per body while the result is cached.
//!
//! Rows are kept in tree order: every record in the order it began (its id: the record stream numbers
//! records as they begin, so a capture file, which holds them in the order they finished, lists the
//! same as the live session did), each event right under its poll. A row is addressed by its sequence
//! number (`seq`), which grows by one per record taken in and never repeats; evicted rows simply stop
//! resolving.
//!
//! This module owns history and its limits. It must not touch the terminal, the network or files,
//! and never changes the records it is given (it keeps copies).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;

use crate::llsd::{self, Value};
use crate::record::{Body, Kind, Record, State};

/// The most records a store keeps by default (the oldest go first, in batches).
pub const DEFAULT_MAX_RECORDS: usize = 100_000;

/// The most body bytes a store keeps by default; past it the oldest records lose their bodies (sizes
/// and everything else stay).
pub const DEFAULT_MAX_BODY_BYTES: usize = 128 * 1024 * 1024;

/// The most bytes a store's records may hold besides their bodies' bytes (headers, URLs, notes,
/// the record itself and its room in the store's lists, as [`record_bytes`] reckons them with the
/// allocator's rounding), by default; past it the oldest records are evicted as past
/// [`DEFAULT_MAX_RECORDS`]. A viewer's records carry a dozen headers or more, about 2 KiB each, so
/// the record count alone let the history grow to several hundred MiB under load.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 128 * 1024 * 1024;

/// How many decoded bodies stay cached.
pub const DECODE_CACHE: usize = 64;

/// How long a record still open after a lag waits for its final version before the store closes it
/// as lost (event-queue polls are held up to ~30 s by grids, so well past that).
pub const LOST_FINAL_AFTER_US: i64 = 90_000_000;

/// The note a record closed by the store carries.
pub const LOST_FINAL_NOTE: &str = "final version lost: the UI fell behind the record stream";

/// How many events whose poll has not arrived yet the store remembers, to put them under it when it
/// does (a capture file holds records in the order they finished: a poll's events come before it).
pub const ORPHANS_REMEMBERED: usize = 4096;

/// A row's place in tree order: `(top, depth, seq)`, `top` being the poll's record id for an event
/// under its poll (depth 1) and the record's own id otherwise (depth 0). Sorting keys sorts rows:
/// records in the order they began, each poll's events right under it in the order they came.
pub type RowKey = (u64, u64, u64);

/// The note a record whose bodies the store dropped carries.
pub const BODY_DROPPED_NOTE: &str =
    "bodies dropped from the UI's history (its body budget is spent)";

/// What a store may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub records: usize,
    pub body_bytes: usize,
    /// What the records may hold besides bodies ([`record_bytes`] each).
    pub record_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            records: DEFAULT_MAX_RECORDS,
            body_bytes: DEFAULT_MAX_BODY_BYTES,
            record_bytes: DEFAULT_MAX_RECORD_BYTES,
        }
    }
}

/// Which body of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Which {
    Request,
    Response,
    /// The response as the sender sent it, before capscope rewrote it.
    Original,
    Event,
}

/// A body decoded (or not) as LLSD.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// No bytes (or none kept).
    Empty,
    Llsd(Value),
    /// Not LLSD, or broken LLSD: the decoder's error, for showing beside the raw bytes.
    NotLlsd(String),
}

/// One kept record.
#[derive(Debug, Clone)]
pub struct Entry {
    pub seq: u64,
    /// The latest version seen (a detached copy), boxed: a `Record` is most of a kilobyte inline,
    /// and the entry list keeps room for up to twice its length, so an inline record would cost
    /// that much again in empty slots.
    pub record: Box<Record>,
    /// For a poll: the `seq` of each event it carried, in arrival order.
    pub children: Vec<u64>,
    /// For an event: the `seq` of its poll, when the poll is in the store.
    pub parent: Option<u64>,
    /// The store closed this record itself because its final version was lost to a lag.
    pub lost_final: bool,
    /// When a lag happened while this record was open (its final may be among what was lost).
    suspect_since_us: Option<i64>,
    /// [`record_bytes`] of the record as held.
    meta: usize,
}

impl Entry {
    /// The row's depth in the tree (0 for top level, 1 for an event under its poll).
    pub fn depth(&self) -> usize {
        usize::from(self.parent.is_some())
    }

    /// The body bytes this entry holds.
    fn body_bytes(&self) -> usize {
        self.record.body_bytes()
    }
}

/// Counters a header shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Records seen (each id once).
    pub records: u64,
    pub events: u64,
    /// Polls that carried no events (the grid's idle 502/504, or an empty list).
    pub idle_polls: u64,
    /// Records lost because the store fell behind the stream.
    pub lagged: u64,
    /// Records evicted to stay under [`Limits::records`].
    pub evicted: u64,
    /// Records whose bodies were dropped to stay under [`Limits::body_bytes`].
    pub bodies_dropped: u64,
    /// Records the store closed because their final version was lost.
    pub lost_finals: u64,
    /// Records the bus published without bodies (a slow consumer elsewhere); noted on the record.
    pub bodies_shed_upstream: u64,
}

/// The history of one session or capture.
#[derive(Debug)]
pub struct Store {
    limits: Limits,
    /// Entries by `seq - first_seq`.
    entries: VecDeque<Entry>,
    first_seq: u64,
    by_id: HashMap<u64, u64>,
    /// Row order: every row's key, sorted.
    rows: Vec<RowKey>,
    /// Events whose poll is not in the store (yet), by the poll's record id.
    orphans: HashMap<u64, Vec<u64>>,
    /// Events just put under their newly arrived poll: their seqs and former row keys.
    adopted: Vec<(u64, RowKey)>,
    body_bytes: usize,
    /// What the held records hold besides bodies ([`record_bytes`] of each).
    record_bytes: usize,
    /// Entries below this seq hold no bodies any more (where body shedding resumes).
    shed_from: u64,
    counts: Counts,
    cache: VecDeque<((u64, Which), Arc<Decoded>)>,
    /// Bumped when everything is cleared: views holding seqs must rebuild.
    generation: u64,
    /// What evictions removed since [`Store::take_evicted`] was last called.
    evicted: Option<Evicted>,
}

/// What the oldest records' eviction removed, for a view that keeps its own rows to follow without
/// rebuilding them (which would cost a filter evaluation per held record every eviction).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evicted {
    /// Every row below this seq is gone.
    pub below: u64,
    /// Events whose poll was evicted, now top-level rows: their seqs and the row keys they had.
    pub unparented: Vec<(u64, RowKey)>,
}

/// What [`Store::apply`] did with one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// A new row at this seq.
    Added(u64),
    /// A new version of the row at this seq.
    Updated(u64),
}

impl Applied {
    pub fn seq(self) -> u64 {
        match self {
            Applied::Added(s) | Applied::Updated(s) => s,
        }
    }
}

impl Default for Store {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl Store {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits: Limits {
                records: limits.records.max(1),
                body_bytes: limits.body_bytes,
                record_bytes: limits.record_bytes,
            },
            entries: VecDeque::new(),
            first_seq: 0,
            by_id: HashMap::new(),
            rows: Vec::new(),
            orphans: HashMap::new(),
            adopted: Vec::new(),
            body_bytes: 0,
            record_bytes: 0,
            shed_from: 0,
            counts: Counts::default(),
            cache: VecDeque::new(),
            generation: 0,
            evicted: None,
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// Body bytes held now.
    pub fn body_bytes(&self) -> usize {
        self.body_bytes
    }

    /// What the held records hold besides their bodies, as [`record_bytes`] reckons it.
    pub fn record_bytes(&self) -> usize {
        self.record_bytes
    }

    /// How many records are held now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Changes when the store is cleared (so a view of seqs knows to rebuild).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// What evictions removed since the last call (`None`: nothing was evicted).
    pub fn take_evicted(&mut self) -> Option<Evicted> {
        self.evicted.take()
    }

    /// The entry at `seq`, if still held.
    pub fn get(&self, seq: u64) -> Option<&Entry> {
        let i = seq.checked_sub(self.first_seq)?;
        self.entries.get(usize::try_from(i).ok()?)
    }

    fn get_mut(&mut self, seq: u64) -> Option<&mut Entry> {
        let i = seq.checked_sub(self.first_seq)?;
        self.entries.get_mut(usize::try_from(i).ok()?)
    }

    /// The seq of the record with this id, if held.
    pub fn seq_of(&self, id: u64) -> Option<u64> {
        self.by_id.get(&id).copied()
    }

    /// Every row's seq in tree order.
    pub fn rows(&self) -> impl DoubleEndedIterator<Item = u64> + ExactSizeIterator + '_ {
        self.rows.iter().map(|&(_, _, s)| s)
    }

    /// The sort key of a row, for views that keep their own sorted subsets.
    pub fn row_key(&self, seq: u64) -> Option<RowKey> {
        let e = self.get(seq)?;
        Some(key_of(e))
    }

    /// The events the last [`Store::apply`] put under their newly arrived poll, each with the row
    /// key it had before (their row keys changed: a view holding the old keys must move them).
    pub fn take_adopted(&mut self) -> Vec<(u64, RowKey)> {
        std::mem::take(&mut self.adopted)
    }

    /// Takes in one record version from the stream or a file.
    pub fn apply(&mut self, record: &Record) -> Applied {
        let mut record = record.detached();
        if record.bodies_were_shed() {
            self.counts.bodies_shed_upstream += 1;
        }
        let applied = if let Some(seq) = self.by_id.get(&record.id).copied() {
            let idx = usize::try_from(seq - self.first_seq).unwrap_or(usize::MAX);
            let Some(entry) = self.entries.get_mut(idx) else {
                return Applied::Updated(seq);
            };
            let before = entry.body_bytes();
            let meta_before = entry.meta;
            let was_open = entry.record.state == State::Open;
            if entry.lost_final {
                // The final arrived after all: it replaces the store's guess.
                entry.lost_final = false;
                record.notes.retain(|n| n != LOST_FINAL_NOTE);
                self.counts.lost_finals = self.counts.lost_finals.saturating_sub(1);
            }
            entry.meta = record_bytes(&record);
            *entry.record = record;
            entry.suspect_since_us = None;
            let after = entry.body_bytes();
            self.record_bytes = self.record_bytes - meta_before + entry.meta;
            let is_final = entry.record.is_final();
            let idle = is_final && was_open && is_idle_poll(&entry.record, &entry.children);
            self.body_bytes = self.body_bytes - before + after;
            if idle {
                self.counts.idle_polls += 1;
            }
            self.cache.retain(|((s, _), _)| *s != seq);
            if seq < self.shed_from {
                self.shed_from = seq;
            }
            Applied::Updated(seq)
        } else {
            let seq = self.first_seq + self.entries.len() as u64;
            let parent = record.parent.and_then(|p| self.by_id.get(&p).copied());
            if record.kind == Kind::Event {
                self.counts.events += 1;
            }
            self.counts.records += 1;
            let idle = record.is_final() && is_idle_poll(&record, &[]);
            if idle {
                self.counts.idle_polls += 1;
            }
            let top = match (parent, record.parent) {
                (Some(_), Some(poll_id)) => poll_id,
                _ => record.id,
            };
            self.body_bytes += record.body_bytes();
            let meta = record_bytes(&record);
            self.record_bytes += meta;
            self.by_id.insert(record.id, seq);
            self.entries.push_back(Entry {
                seq,
                record: Box::new(record),
                children: Vec::new(),
                parent,
                lost_final: false,
                suspect_since_us: None,
                meta,
            });
            if record_kind_is_orphan(&self.entries, parent) {
                // Remember it, to put it under its poll when that arrives.
                if let Some(pid) = self.entries.back().and_then(|e| e.record.parent) {
                    if self.orphans.len() >= ORPHANS_REMEMBERED {
                        self.orphans.clear();
                    }
                    self.orphans.entry(pid).or_default().push(seq);
                }
            }
            if let Some(p) = parent {
                if let Some(poll) = self.get_mut(p) {
                    let was_idle = poll.children.is_empty()
                        && poll.record.is_final()
                        && is_idle_poll(&poll.record, &[]);
                    poll.children.push(seq);
                    if was_idle {
                        self.counts.idle_polls = self.counts.idle_polls.saturating_sub(1);
                    }
                }
                let at = self.rows.partition_point(|&k| k < (top, 1, seq));
                self.rows.insert(at, (top, 1, seq));
            } else {
                // Live, records come in about the order they began (this is then a push); from a
                // file, in the order they finished, so a long poll goes back to where it began.
                let at = self.rows.partition_point(|&k| k < (top, 0, seq));
                self.rows.insert(at, (top, 0, seq));
                self.adopt(seq);
            }
            Applied::Added(seq)
        };
        self.enforce_limits();
        applied
    }

    /// Notes that `lost` records were lost to a lag at time `now_us`: every record open now may have
    /// lost its final version. [`Store::close_lost`] closes those still open later.
    pub fn lagged(&mut self, lost: u64, now_us: i64) {
        self.counts.lagged += lost;
        for e in self.entries.iter_mut() {
            if e.record.state == State::Open && e.suspect_since_us.is_none() {
                e.suspect_since_us = Some(now_us);
            }
        }
    }

    /// Closes records that were open at a lag and are still open [`LOST_FINAL_AFTER_US`] later
    /// (or all of them, with `all`, when the stream has ended). Returns their seqs.
    pub fn close_lost(&mut self, now_us: i64, all: bool) -> Vec<u64> {
        let mut closed = Vec::new();
        for e in self.entries.iter_mut() {
            let Some(since) = e.suspect_since_us else {
                continue;
            };
            if e.record.state != State::Open {
                e.suspect_since_us = None;
                continue;
            }
            if all || now_us.saturating_sub(since) >= LOST_FINAL_AFTER_US {
                e.record.state = State::Failed;
                e.record.notes.push(LOST_FINAL_NOTE.to_owned());
                e.lost_final = true;
                e.suspect_since_us = None;
                closed.push(e.seq);
            }
        }
        self.counts.lost_finals += closed.len() as u64;
        closed
    }

    /// Puts the events that arrived before the poll at `seq` under it.
    fn adopt(&mut self, seq: u64) {
        let Some(id) = self.get(seq).map(|e| e.record.id) else {
            return;
        };
        let Some(kids) = self.orphans.remove(&id) else {
            return;
        };
        for kid in kids {
            let Some(old) = self.row_key(kid) else {
                continue;
            };
            let Some(new) = self.get(kid).map(|e| (id, 1, e.seq)) else {
                continue;
            };
            if let Ok(at) = self.rows.binary_search(&old) {
                self.rows.remove(at);
            }
            if let Some(e) = self.get_mut(kid) {
                e.parent = Some(seq);
            }
            if let Some(poll) = self.get_mut(seq) {
                poll.children.push(kid);
            }
            let at = self.rows.partition_point(|&k| k < new);
            self.rows.insert(at, new);
            self.adopted.push((kid, old));
        }
    }

    /// Forgets everything (counters too, except what was lost).
    pub fn clear(&mut self) {
        self.first_seq += self.entries.len() as u64;
        self.shed_from = self.first_seq;
        self.entries.clear();
        self.by_id.clear();
        self.rows.clear();
        self.orphans.clear();
        self.adopted.clear();
        self.cache.clear();
        self.body_bytes = 0;
        self.record_bytes = 0;
        self.evicted = None;
        self.generation += 1;
        let lagged = self.counts.lagged;
        self.counts = Counts {
            lagged,
            ..Counts::default()
        };
    }

    fn enforce_limits(&mut self) {
        if self.entries.len() > self.limits.records || self.record_bytes > self.limits.record_bytes
        {
            // Evict a tenth at once (of the count, or of the bytes, whichever is over), so eviction
            // (which rebuilds the row order) is amortised.
            let count_target = if self.entries.len() > self.limits.records {
                self.limits.records - self.limits.records / 10
            } else {
                self.entries.len()
            };
            let byte_target = if self.record_bytes > self.limits.record_bytes {
                self.limits.record_bytes - self.limits.record_bytes / 10
            } else {
                usize::MAX
            };
            let mut drop = 0usize;
            // The newest record always stays, however large.
            while self.entries.len() > count_target
                || (self.record_bytes > byte_target && self.entries.len() > 1)
            {
                let Some(e) = self.entries.pop_front() else {
                    break;
                };
                self.body_bytes -= e.body_bytes();
                self.record_bytes -= e.meta;
                self.by_id.remove(&e.record.id);
                self.first_seq += 1;
                drop += 1;
            }
            self.counts.evicted += drop as u64;
            let first = self.first_seq;
            let evicted = self.evicted.get_or_insert_with(Evicted::default);
            evicted.below = first;
            // Events whose poll was evicted stay, now without a poll.
            for e in self.entries.iter_mut() {
                if e.parent.is_some_and(|p| p < first) {
                    evicted.unparented.push((e.seq, key_of(e)));
                    e.parent = None;
                }
            }
            evicted.unparented.retain(|&(s, _)| s >= first);
            self.rows = self.entries.iter().map(key_of).collect();
            for kids in self.orphans.values_mut() {
                kids.retain(|&s| s >= first);
            }
            self.orphans.retain(|_, kids| !kids.is_empty());
            self.rows.sort_unstable();
            self.shed_from = self.shed_from.max(first);
            self.cache.retain(|((s, _), _)| *s >= first);
        }
        while self.body_bytes > self.limits.body_bytes {
            let seq = self.shed_from.max(self.first_seq);
            let Some(e) = self.get_mut(seq) else {
                break;
            };
            let freed = e.body_bytes();
            if freed > 0 {
                drop_bodies(&mut e.record);
                // The note it gains and the body blocks it loses change its reckoning too.
                let (before, after) = (e.meta, record_bytes(&e.record));
                e.meta = after;
                self.record_bytes = self.record_bytes - before + after;
                self.body_bytes -= freed;
                self.counts.bodies_dropped += 1;
                self.cache.retain(|((s, _), _)| *s != seq);
            }
            self.shed_from = seq + 1;
        }
    }

    /// The body `which` of the row at `seq`, decoded as LLSD, cached.
    pub fn decoded(&mut self, seq: u64, which: Which) -> Option<Arc<Decoded>> {
        if let Some((_, d)) = self.cache.iter().find(|(k, _)| *k == (seq, which)) {
            return Some(Arc::clone(d));
        }
        let body = body_of(&self.get(seq)?.record, which)?;
        let decoded = Arc::new(decode(body));
        if self.cache.len() >= DECODE_CACHE {
            self.cache.pop_front();
        }
        self.cache.push_back(((seq, which), Arc::clone(&decoded)));
        Some(decoded)
    }

    /// How many bodies are cached decoded (for tests of "once per body").
    pub fn cached_decodes(&self) -> usize {
        self.cache.len()
    }
}

fn key_of(e: &Entry) -> RowKey {
    match (e.parent, e.record.parent) {
        (Some(_), Some(poll_id)) => (poll_id, 1, e.seq),
        _ => (e.record.id, 0, e.seq),
    }
}

/// Whether the entry just pushed is an event whose poll is not in the store.
fn record_kind_is_orphan(entries: &VecDeque<Entry>, parent: Option<u64>) -> bool {
    parent.is_none()
        && entries
            .back()
            .is_some_and(|e| e.record.kind == Kind::Event && e.record.parent.is_some())
}

/// The body `which` of `record`, if it has one.
pub fn body_of(record: &Record, which: Which) -> Option<&Body> {
    match which {
        Which::Request => record.request.as_ref().map(|r| &r.body),
        Which::Response => record.response.as_ref().map(|r| &r.body),
        Which::Event => record.event.as_ref().map(|e| &e.body),
        Which::Original => None,
    }
}

/// Decodes a body as LLSD (whatever its Content-Type says: grids mislabel).
pub fn decode(body: &Body) -> Decoded {
    decode_bytes(&body.data, body.truncated)
}

fn decode_bytes(data: &Bytes, truncated: bool) -> Decoded {
    if data.is_empty() {
        return Decoded::Empty;
    }
    match llsd::from_slice(data) {
        Ok(v) => Decoded::Llsd(v),
        Err(e) if truncated => Decoded::NotLlsd(format!(
            "{e} (the body was cut at the body limit, so it cannot decode whole)"
        )),
        Err(e) => Decoded::NotLlsd(e.to_string()),
    }
}

/// The original (pre-rewrite) response body, decoded.
pub fn decode_original(record: &Record) -> Option<Decoded> {
    let body = &record.response.as_ref()?.body;
    body.original.as_ref().map(|o| decode_bytes(o, false))
}

/// Whether a finished record is an event-queue poll that carried no event.
fn is_idle_poll(record: &Record, children: &[u64]) -> bool {
    children.is_empty() && record.notes.iter().any(|n| n.starts_with("idle poll"))
}

fn drop_bodies(record: &mut Record) {
    let shed = |b: &mut Body| {
        if !b.data.is_empty() || b.original.is_some() {
            b.data = Bytes::new();
            b.original = None;
            b.truncated = true;
        }
    };
    if let Some(r) = record.request.as_mut() {
        shed(&mut r.body);
    }
    if let Some(r) = record.response.as_mut() {
        shed(&mut r.body);
    }
    if let Some(e) = record.event.as_mut() {
        shed(&mut e.body);
    }
    record.notes.push(BODY_DROPPED_NOTE.to_owned());
}

/// What the allocator takes for a block of `n` bytes: glibc's malloc on a 64-bit system adds an
/// 8-byte header, rounds up to 16 bytes and never gives less than 32 (other allocators differ by a
/// few bytes a block). Zero for nothing allocated.
pub fn heap_block(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        (n + 8).next_multiple_of(16).max(32)
    }
}

/// What a shared body buffer (`Bytes`) costs beyond its bytes: its reference-counted header block.
const BYTES_HEADER: usize = 32;

/// The room each held record takes in the store's own lists: its slot in the entry list, its row
/// key, its entry in the id index (with the table's control byte) and its place in its poll's list
/// of events. Counted twice: the lists grow by doubling and keep their room after evictions.
const SLOT_BYTES: usize = 2
    * (std::mem::size_of::<Entry>()
        + std::mem::size_of::<RowKey>()
        + std::mem::size_of::<(u64, u64)>()
        + 1
        + std::mem::size_of::<u64>());

/// What a record held in a store costs besides its bodies' bytes, as the allocator counts it: the
/// record's own block, its room in the store's lists ([`SLOT_BYTES`]), each string and list it owns
/// by its capacity rounded as the allocator rounds it ([`heap_block`]), and each body buffer's
/// header and rounding. Checked against the allocations a store really makes (tests/store_memory.rs),
/// so a budget of bytes is a budget of memory, bar the allocator's own fragmentation.
pub fn record_bytes(record: &Record) -> usize {
    // A header's text (and a method or version) lives inline up to 24 bytes; a longer one has a
    // heap block.
    let header_text = |s: &crate::record::HeaderText| {
        if s.is_heap_allocated() {
            heap_block(s.capacity())
        } else {
            0
        }
    };
    let string = |s: &String| heap_block(s.capacity());
    let opt = |s: &Option<String>| s.as_ref().map_or(0, string);
    let bytes = |b: &Bytes| {
        if b.is_empty() {
            0
        } else {
            heap_block(b.len()) - b.len() + BYTES_HEADER
        }
    };
    let body =
        |b: &Body| bytes(&b.data) + b.original.as_ref().map_or(0, bytes) + opt(&b.content_encoding);
    let headers = |h: &Vec<crate::record::Header>| {
        heap_block(h.capacity() * std::mem::size_of::<crate::record::Header>())
            + h.iter()
                .map(|h| header_text(&h.name) + header_text(&h.value))
                .sum::<usize>()
    };
    let mut total = heap_block(std::mem::size_of::<Record>())
        + SLOT_BYTES
        + record.client.as_ref().map_or(0, header_text)
        + opt(&record.error)
        + opt(&record.cap)
        + opt(&record.region)
        + opt(&record.agent)
        + heap_block(record.notes.capacity() * std::mem::size_of::<String>())
        + record.notes.iter().map(string).sum::<usize>();
    if let Some(r) = &record.request {
        total +=
            header_text(&r.method) + string(&r.url) + opt(&r.client_url) + header_text(&r.version);
        total += headers(&r.headers) + body(&r.body);
    }
    if let Some(r) = &record.response {
        total += header_text(&r.version) + headers(&r.headers) + body(&r.body);
    }
    if let Some(e) = &record.event {
        total += string(&e.message) + body(&e.body);
    }
    if let Some(t) = &record.tunnel {
        total += string(&t.target);
    }
    total
}

#[cfg(test)]
mod tests;
