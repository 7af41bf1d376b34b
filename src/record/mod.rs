//! The record model and the record stream.
//!
//! A [`Record`] is plain data describing one thing capscope saw: an HTTP exchange, one event-queue
//! event, a login, a raw tunnel, or a failure. Producers (the proxy, the caps layer) publish records on
//! a [`Bus`]; consumers (the headless log, the capture writer, the terminal UI) each hold their own
//! [`Subscriber`]. Publishing never waits: a subscriber that falls behind loses the oldest records and
//! is told how many ([`Received::Lagged`]), so a slow disk or UI never slows forwarding.
//!
//! This module owns the shape of records and the stream. It must not know how records are produced,
//! shown, filtered or stored.

mod body;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// How many records the stream holds for a subscriber that has not caught up yet.
pub const DEFAULT_BUS_CAPACITY: usize = 16 * 1024;

/// How many bodies at the body limit (`--max-body`) the record stream holds by default for a
/// consumer that has not read them yet ([`body_budget_for`]). A consumer that keeps up (the capture
/// writer on a disk faster than the network) holds a few records at a time, far below it; one that
/// falls behind for longer than a burst fills any budget, and a larger one then only saves the
/// bodies of a burst that fits in it, at that cost in memory (docs/performance.md, "When the
/// capture's disk is slower than the network").
pub const BODY_BUDGET_PER_BODY_LIMIT: usize = 8;

/// The smallest default body budget, whatever the body limit: room for a burst of small bodies.
pub const MIN_BODY_BUDGET: usize = 16 * 1024 * 1024;

/// The record stream's default body budget for a body limit of `max_body` bytes:
/// [`BODY_BUDGET_PER_BODY_LIMIT`] bodies at the limit, at least [`MIN_BODY_BUDGET`].
pub const fn body_budget_for(max_body: usize) -> usize {
    let budget = max_body.saturating_mul(BODY_BUDGET_PER_BODY_LIMIT);
    if budget < MIN_BODY_BUDGET {
        MIN_BODY_BUDGET
    } else {
        budget
    }
}

/// How many bytes of tapped bodies published records may hold at once (while a slow subscriber has
/// not read them yet), for the default body limit of 4 MiB: 32 MiB. Past it, new records are
/// published without their bodies, and say so ([`SHED_NOTE`]).
pub const DEFAULT_BODY_BUDGET: usize = body_budget_for(4 * 1024 * 1024);

/// How the note on a record published without its bodies begins ([`Bus::publish`]).
pub const SHED_NOTE: &str = "bodies not kept";

/// What a record describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// One HTTP request and its response (a cap call, a seed, an event-queue poll, anything proxied).
    Http,
    /// One event taken out of an event-queue poll's response; `parent` is the poll's record.
    Event,
    /// An XML-RPC login exchange.
    Login,
    /// A CONNECT tunnel passed through as raw bytes (not TLS or HTTP, or a `--passthrough` host).
    Tunnel,
    /// A failure that belongs to no exchange (a TLS handshake that failed, a client sending garbage).
    Error,
}

/// Whether a record is still in flight. The same id is published again when it changes state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Request seen, response not finished.
    Open,
    /// Finished normally.
    Done,
    /// Finished with an error (see [`Record::error`]).
    Failed,
}

/// One header as seen on the wire. Values that are not UTF-8 are kept lossily (headers are for
/// reading; the wire itself is never altered through this copy).
///
/// Name and value are [`HeaderText`]: up to 24 bytes (nearly every header name and most values)
/// live inside the header itself, so copying a message's headers into its record, cloning the
/// open record to publish it and dropping records cost no allocation per header. As two `String`s
/// they were about half of the proxy's 70 allocations per small exchange (docs/performance.md,
/// "Small requests", "Third round, continued"). The same size as two `String`s; serialised as
/// plain strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub name: HeaderText,
    pub value: HeaderText,
}

/// A header's name or value (and other short texts of a record: a method, a version, the client's
/// address): a string kept inline up to 24 bytes ([`Header`]). It derefs to `str`, and
/// `"text".into()` or `String::into()` make one.
pub type HeaderText = compact_str::CompactString;

/// A tapped body: a bounded copy of what crossed the proxy, never the body itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Body {
    /// The bytes copied, up to the body limit, after undoing any `Content-Encoding` (the wire kept it).
    #[serde(with = "body::bytes_as_text_or_base64")]
    pub data: Bytes,
    /// The true size on the wire, in bytes, whether or not all of it was copied.
    pub size: u64,
    /// Whether `data` stops short of the whole body (the body limit was reached).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// The `Content-Encoding` that was undone to fill `data`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    /// When capscope rewrote the body, what the sender sent before the rewrite (`data` is what the
    /// receiver got).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "body::opt_bytes_as_text_or_base64"
    )]
    pub original: Option<Bytes>,
}

impl Body {
    /// A body copied whole.
    pub fn whole(data: impl Into<Bytes>) -> Self {
        let data = data.into();
        Self {
            size: data.len() as u64,
            data,
            ..Self::default()
        }
    }
}

/// The request side of an exchange.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub method: HeaderText,
    /// The absolute URL the request went to upstream (`https://host:port/path?query`).
    pub url: String,
    /// When capscope routed the request elsewhere (login mode), the URL the client asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_url: Option<String>,
    /// `HTTP/1.1`, `HTTP/2.0`, ...
    pub version: HeaderText,
    pub headers: Vec<Header>,
    pub body: Body,
}

/// The response side of an exchange.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub status: u16,
    pub version: HeaderText,
    pub headers: Vec<Header>,
    pub body: Body,
}

/// Microsecond offsets from [`Record::started_us`]; `None` where the step did not happen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timings {
    /// Request headers sent upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_sent_us: Option<u64>,
    /// Response headers received from upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_headers_us: Option<u64>,
    /// The last response byte passed to the client (or the failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_us: Option<u64>,
}

/// What an event record holds: one `{message, body}` of an event-queue response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventInfo {
    /// The event's `message` (`TeleportFinish`, `ChatterBoxSessionStartReply`, ...).
    pub message: String,
    /// The event's position in its poll's `events` array.
    pub index: usize,
    /// The poll response's `id`, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_id: Option<i64>,
    /// The event's `body`, written as LLSD XML so every body in a record decodes the same way.
    pub body: Body,
}

/// A raw tunnel's summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelInfo {
    /// The CONNECT target, `host:port`.
    pub target: String,
    pub bytes_up: u64,
    pub bytes_down: u64,
}

/// One thing capscope saw. Plain data: cheap to clone behind an `Arc`, easy to serialise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Unique within a session, increasing in the order records began.
    pub id: u64,
    pub kind: Kind,
    pub state: State,
    /// When the record began, microseconds since the Unix epoch (UTC).
    pub started_us: i64,
    /// The client's address (`127.0.0.1:53312`), when there was a client. A [`HeaderText`]: an IPv4
    /// address with its port is at most 21 bytes, kept inline, so neither building the record nor
    /// cloning it to publish it allocates for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<HeaderText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Request>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Response>,
    #[serde(default)]
    pub timings: Timings,
    /// What went wrong, in words a user can act on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The cap this request was made to (`EventQueueGet`, `Seed`, ...), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap: Option<String>,
    /// The region the cap belongs to (its name or sim host), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The agent the exchange belongs to (`First Last` from its login), when several may share one
    /// capscope. Absent in captures written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// For [`Kind::Event`]: the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<EventInfo>,
    /// The record this one belongs to (an event's poll).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<u64>,
    /// For [`Kind::Tunnel`]: the tunnel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<TunnelInfo>,
    /// Short flags worth a user's eye: `idle poll`, `ack gap 41 -> 43`, `rewritten`, decode errors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The stream's accounting of the body bytes this record holds; not part of the data.
    #[serde(skip)]
    charge: Option<Arc<Charge>>,
}

/// Body bytes a published record holds against the [`Bus`]'s budget, given back when the last copy
/// of the record is dropped.
#[derive(Debug)]
struct Charge {
    bytes: usize,
    held: Arc<AtomicUsize>,
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.held.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

impl PartialEq for Charge {
    /// Accounting is not data: two records are equal whatever their charges.
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Record {
    /// A new open record of `kind`, started now.
    pub fn new(id: u64, kind: Kind) -> Self {
        Self::started_at(id, kind, now_us())
    }

    /// A new open record of `kind` that began at `started_us` (microseconds since the Unix epoch):
    /// a record read back from a capture, without reading the clock.
    pub fn started_at(id: u64, kind: Kind, started_us: i64) -> Self {
        Self {
            id,
            kind,
            state: State::Open,
            started_us,
            client: None,
            request: None,
            response: None,
            timings: Timings::default(),
            error: None,
            cap: None,
            region: None,
            agent: None,
            event: None,
            parent: None,
            tunnel: None,
            notes: Vec::new(),
            charge: None,
        }
    }

    /// The tapped body bytes this record holds (request, response, original bodies, event body).
    pub fn body_bytes(&self) -> usize {
        let body = |b: &Body| b.data.len() + b.original.as_ref().map_or(0, Bytes::len);
        self.request.as_ref().map_or(0, |r| body(&r.body))
            + self.response.as_ref().map_or(0, |r| body(&r.body))
            + self.event.as_ref().map_or(0, |e| body(&e.body))
    }

    /// Drops the tapped bodies (keeping their true sizes), noting why.
    fn shed_bodies(&mut self, why: &str) {
        let shed = |b: &mut Body| {
            if !b.data.is_empty() || b.original.is_some() {
                b.data = Bytes::new();
                b.original = None;
                b.truncated = true;
            }
        };
        if let Some(r) = self.request.as_mut() {
            shed(&mut r.body);
        }
        if let Some(r) = self.response.as_mut() {
            shed(&mut r.body);
        }
        if let Some(e) = self.event.as_mut() {
            shed(&mut e.body);
        }
        self.notes.push(why.to_owned());
    }

    /// Whether the record stream published this record without its bodies ([`SHED_NOTE`]).
    pub fn bodies_were_shed(&self) -> bool {
        self.notes.iter().any(|n| n.starts_with(SHED_NOTE))
    }

    /// A copy that holds nothing against the [`Bus`]'s body budget. A consumer that keeps history
    /// (the UI's store) keeps this copy and accounts for its bodies itself, so the history never
    /// makes the capture writer lose bodies.
    pub fn detached(&self) -> Record {
        let mut copy = self.clone();
        copy.charge = None;
        copy
    }

    /// Whether the record will not change again.
    pub fn is_final(&self) -> bool {
        self.state != State::Open
    }

    /// Microseconds since this record started, for [`Timings`].
    pub fn elapsed_us(&self) -> u64 {
        u64::try_from(now_us().saturating_sub(self.started_us)).unwrap_or(0)
    }
}

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The record stream: many producers, many subscribers, never blocking a producer.
#[derive(Debug)]
pub struct Bus {
    tx: broadcast::Sender<Arc<Record>>,
    next_id: AtomicU64,
    /// Body bytes held by published records not yet dropped by every subscriber.
    held: Arc<AtomicUsize>,
    budget: usize,
    shed: AtomicU64,
}

impl Default for Bus {
    fn default() -> Self {
        Self::new(DEFAULT_BUS_CAPACITY)
    }
}

impl Bus {
    /// A stream that holds up to `capacity` records for each lagging subscriber, and at most
    /// [`DEFAULT_BODY_BUDGET`] bytes of their bodies.
    pub fn new(capacity: usize) -> Self {
        Self::with_body_budget(capacity, DEFAULT_BODY_BUDGET)
    }

    /// Like [`Bus::new`] with a body budget of `budget` bytes.
    pub fn with_body_budget(capacity: usize, budget: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Self {
            tx,
            next_id: AtomicU64::new(1),
            held: Arc::new(AtomicUsize::new(0)),
            budget,
            shed: AtomicU64::new(0),
        }
    }

    /// The most body bytes published records may hold at once.
    pub fn body_budget(&self) -> usize {
        self.budget
    }

    /// Body bytes that published records hold right now.
    pub fn body_bytes_held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// How many records were published without their bodies because the budget was spent.
    pub fn bodies_shed(&self) -> u64 {
        self.shed.load(Ordering::Relaxed)
    }

    /// A fresh record id.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Publishes a record (a new one, or a new state of one already published). Never waits; with no
    /// subscriber the record is simply not kept.
    ///
    /// A record's bodies count against the body budget until every subscriber has dropped it; a
    /// record that would overspend it is published without its bodies (sizes kept, a note says
    /// why), so a subscriber that falls behind on large bodies costs bounded memory.
    pub fn publish(&self, record: impl Into<Arc<Record>>) {
        let mut record = record.into();
        let bytes = record.body_bytes();
        if bytes > 0 && self.tx.receiver_count() > 0 {
            let r = Arc::make_mut(&mut record);
            let held = self.held.fetch_add(bytes, Ordering::Relaxed);
            if held.saturating_add(bytes) > self.budget {
                self.held.fetch_sub(bytes, Ordering::Relaxed);
                self.shed.fetch_add(1, Ordering::Relaxed);
                r.charge = None;
                r.shed_bodies(&format!(
                    "{SHED_NOTE}: earlier records still waiting for a slow consumer (capture \
                     writer or UI) held {} MiB of bodies, the record stream's budget is {} MiB \
                     (--body-budget)",
                    held >> 20,
                    self.budget >> 20
                ));
            } else {
                r.charge = Some(Arc::new(Charge {
                    bytes,
                    held: Arc::clone(&self.held),
                }));
            }
        }
        let _ = self.tx.send(record);
    }

    /// A new subscriber that sees every record published from now on. Its [`Subscriber::recv`]
    /// gathers records for [`DEFAULT_LINGER`] after the first one of a quiet spell.
    pub fn subscribe(&self) -> Subscriber {
        Subscriber {
            rx: self.tx.subscribe(),
            held: None,
            linger: DEFAULT_LINGER,
        }
    }
}

/// How long [`Subscriber::recv`] waits, once a record arrives after a quiet spell, before handing it
/// over: the records published meanwhile are then taken in the same wake-up (`try_recv` after `recv`).
/// Without it every record wakes every consumer (the headless log, the capture writer), and at a few
/// thousand requests a second on one core those wake-ups and their writes cost more than the
/// forwarding itself. A consumer is at most this late, and a killed process loses at most this much
/// more than the batch it was writing.
pub const DEFAULT_LINGER: Duration = Duration::from_millis(10);

/// What a [`Subscriber`] receives.
#[derive(Debug, Clone)]
pub enum Received {
    Record(Arc<Record>),
    /// This subscriber fell behind and lost this many records (the oldest ones).
    Lagged(u64),
}

/// One consumer's view of the stream.
#[derive(Debug)]
pub struct Subscriber {
    rx: broadcast::Receiver<Arc<Record>>,
    /// A record taken off the stream by a [`Subscriber::recv`] that was cancelled while it lingered;
    /// handed over first by the next call.
    held: Option<Received>,
    linger: Duration,
}

impl Subscriber {
    /// The same subscriber with another linger (`Duration::ZERO`: every record wakes it at once).
    pub fn with_linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// The next record, or `None` once every producer is gone and the stream is drained.
    ///
    /// When nothing is waiting, this waits for the next record and then for the subscriber's linger
    /// ([`DEFAULT_LINGER`]) before returning it, so that a consumer draining with
    /// [`Subscriber::try_recv`] afterwards takes a batch per wake-up. Cancel-safe: a record taken
    /// before a cancellation is returned by the next call.
    pub async fn recv(&mut self) -> Option<Received> {
        if let Some(ready) = self.try_recv() {
            return Some(ready);
        }
        let first = match self.rx.recv().await {
            Ok(r) => Received::Record(r),
            Err(broadcast::error::RecvError::Lagged(n)) => Received::Lagged(n),
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        if !self.linger.is_zero() {
            self.held = Some(first);
            tokio::time::sleep(self.linger).await;
            return self.held.take();
        }
        Some(first)
    }

    /// The next record if one is waiting, without waiting.
    pub fn try_recv(&mut self) -> Option<Received> {
        if let Some(held) = self.held.take() {
            return Some(held);
        }
        match self.rx.try_recv() {
            Ok(r) => Some(Received::Record(r)),
            Err(broadcast::error::TryRecvError::Lagged(n)) => Some(Received::Lagged(n)),
            Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_started_at_keeps_its_start() {
        let r = Record::started_at(7, Kind::Event, 1_138_804_193_000_001);
        assert_eq!(r.started_us, 1_138_804_193_000_001);
        assert_eq!((r.id, r.kind, r.state), (7, Kind::Event, State::Open));
        assert_eq!(r, {
            let mut n = Record::new(7, Kind::Event);
            n.started_us = 1_138_804_193_000_001;
            n
        });
    }

    #[tokio::test]
    async fn lagging_subscriber_is_told_how_many_it_lost() {
        let bus = Bus::new(2);
        let mut sub = bus.subscribe();
        for _ in 0..5 {
            bus.publish(Record::new(bus.next_id(), Kind::Http));
        }
        match sub.recv().await {
            Some(Received::Lagged(n)) => assert_eq!(n, 3),
            other => panic!("expected a lag notice, got {other:?}"),
        }
        match sub.recv().await {
            Some(Received::Record(r)) => assert_eq!(r.id, 4),
            other => panic!("expected record 4, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn records_published_while_a_subscriber_lingers_come_in_the_same_wake_up() {
        let bus = Bus::new(16);
        let mut sub = bus.subscribe().with_linger(Duration::from_millis(200));
        let published = AtomicUsize::new(0);
        let publisher = async {
            for _ in 0..3 {
                tokio::task::yield_now().await;
                bus.publish(Record::new(bus.next_id(), Kind::Http));
                published.fetch_add(1, Ordering::SeqCst);
            }
        };
        let receiver = async {
            let first = sub.recv().await;
            (first, published.load(Ordering::SeqCst))
        };
        let ((first, seen), ()) = tokio::join!(receiver, publisher);
        assert!(matches!(first, Some(Received::Record(r)) if r.id == 1));
        assert_eq!(
            seen, 3,
            "recv returned before the records published meanwhile"
        );
        let rest: Vec<u64> = std::iter::from_fn(|| match sub.try_recv() {
            Some(Received::Record(r)) => Some(r.id),
            _ => None,
        })
        .collect();
        assert_eq!(rest, [2, 3]);
    }

    #[tokio::test]
    async fn a_recv_cancelled_while_lingering_loses_nothing() {
        let bus = Bus::new(16);
        let mut sub = bus.subscribe().with_linger(Duration::from_secs(3600));
        let publisher = async {
            tokio::task::yield_now().await;
            bus.publish(Record::new(bus.next_id(), Kind::Http));
        };
        let (waited, ()) = tokio::join!(
            tokio::time::timeout(Duration::from_millis(50), sub.recv()),
            publisher
        );
        assert!(waited.is_err(), "recv cannot end before its linger");
        assert!(matches!(sub.try_recv(), Some(Received::Record(r)) if r.id == 1));
        assert!(sub.try_recv().is_none());
    }

    fn with_body(id: u64, n: usize) -> Record {
        let mut r = Record::new(id, Kind::Http);
        r.state = State::Done;
        r.response = Some(Response {
            status: 200,
            body: Body::whole(vec![7u8; n]),
            ..Response::default()
        });
        r
    }

    #[test]
    fn a_slow_subscriber_costs_at_most_the_body_budget() {
        let bus = Bus::with_body_budget(64, 1000);
        let mut slow = bus.subscribe();
        for id in 1..=5 {
            bus.publish(with_body(id, 400));
        }
        // Two records fit (800 bytes); the other three are published without their bodies.
        assert_eq!(bus.body_bytes_held(), 800);
        assert_eq!(bus.bodies_shed(), 3);
        let mut got = Vec::new();
        while let Some(Received::Record(r)) = slow.try_recv() {
            got.push(r);
        }
        assert_eq!(got.len(), 5, "no record is lost, only bodies");
        let kept: Vec<usize> = got.iter().map(|r| r.body_bytes()).collect();
        assert_eq!(kept, [400, 400, 0, 0, 0]);
        let shed = &got[4];
        assert_eq!(
            shed.response.as_ref().unwrap().body.size,
            400,
            "the true size stays"
        );
        assert!(shed.response.as_ref().unwrap().body.truncated);
        assert!(
            shed.notes.iter().any(|n| n.contains("slow consumer")),
            "{:?}",
            shed.notes
        );
        // Once the subscriber (and the channel) let go of the records, the budget is free again.
        drop(got);
        drop(slow);
        let mut fresh = bus.subscribe();
        for id in 6..=70 {
            bus.publish(with_body(id, 1)); // overwrite every slot of the ring
        }
        while fresh.try_recv().is_some() {}
        assert!(
            bus.body_bytes_held() <= 64,
            "held {}",
            bus.body_bytes_held()
        );
        assert_eq!(bus.bodies_shed(), 3);
    }

    /// The default budget follows the body limit: a consumer that stalls costs at most eight bodies
    /// at the limit (32 MiB with the default 4 MiB) before records are published without bodies,
    /// where it used to hold 256 MiB whatever the limit.
    #[test]
    fn a_stalled_subscriber_holds_at_most_eight_bodies_at_the_limit() {
        const MIB: usize = 1024 * 1024;
        assert_eq!(DEFAULT_BODY_BUDGET, 32 * MIB);
        assert_eq!(body_budget_for(64 * MIB), 512 * MIB);
        assert_eq!(body_budget_for(64 * 1024), MIN_BODY_BUDGET);
        assert_eq!(body_budget_for(usize::MAX), usize::MAX);

        let max_body = 4 * MIB;
        let bus = Bus::with_body_budget(64, body_budget_for(max_body));
        let _stalled = bus.subscribe();
        // One buffer shared by every record: the accounting counts each record's bodies.
        let body = Bytes::from(vec![5u8; max_body]);
        for id in 1..=20 {
            let mut r = with_body(id, 0);
            r.response.as_mut().unwrap().body = Body::whole(body.clone());
            bus.publish(r);
        }
        assert_eq!(bus.body_bytes_held(), 8 * max_body);
        assert_eq!(bus.bodies_shed(), 12);
    }

    #[test]
    fn a_shed_record_says_so() {
        let bus = Bus::with_body_budget(64, 10);
        let mut sub = bus.subscribe();
        bus.publish(with_body(1, 5));
        bus.publish(with_body(2, 20));
        let mut got = Vec::new();
        while let Some(Received::Record(r)) = sub.try_recv() {
            got.push(r);
        }
        assert!(!got[0].bodies_were_shed());
        assert!(got[1].bodies_were_shed(), "{:?}", got[1].notes);
        assert!(
            got[1].notes[0].contains("--body-budget"),
            "{:?}",
            got[1].notes
        );
    }

    #[test]
    fn record_round_trips_through_json_with_binary_and_text_bodies() {
        let mut r = Record::new(7, Kind::Http);
        r.request = Some(Request {
            method: "POST".into(),
            url: "https://sim.example:12043/cap/abc".into(),
            version: "HTTP/1.1".into(),
            body: Body::whole(&b"<llsd><undef /></llsd>"[..]),
            ..Request::default()
        });
        r.response = Some(Response {
            status: 200,
            body: Body {
                original: Some(Bytes::from_static(b"x")),
                ..Body::whole(vec![0u8, 159, 146, 150])
            },
            ..Response::default()
        });
        let json = serde_json::to_string(&r).unwrap();
        let back: Record = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
        assert!(
            json.contains("<llsd>"),
            "UTF-8 bodies are stored as text: {json}"
        );
    }

    #[test]
    fn the_agent_round_trips_and_older_records_read_without_it() {
        let mut r = Record::new(8, Kind::Login);
        r.agent = Some("Ann Resident".into());
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"agent\":\"Ann Resident\""), "{json}");
        assert_eq!(serde_json::from_str::<Record>(&json).unwrap(), r);
        let old = json.replace(",\"agent\":\"Ann Resident\"", "");
        assert!(!old.contains("agent"), "{old}");
        assert_eq!(serde_json::from_str::<Record>(&old).unwrap().agent, None);
    }
}
