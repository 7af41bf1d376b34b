//! EventQueueGet: the long poll through which a region sends events to the viewer.
//!
//! Pure parts: reading a poll request (`{ack, done}`), reading and rewriting a poll response
//! (`{events: [{message, body}], id}`), learning the seeds and simulators events announce
//! ([`learn_seeds`]), checking response ids for gaps and repeats, and telling an idle poll from a
//! failure. The per-queue store that keeps an upstream answer until the viewer has it is
//! [`QueueState`]; [`crate::caps::hook`] runs the polls.
//!
//! We never filter events. Should a filter ever drop events, an `events` array left empty must be
//! sent as `undef`, not `[]` (the viewer treats an empty array differently; Hippolyzer does this).
//!
//! Owns the meaning of event-queue bodies. Must not do I/O or touch anything but seed URLs.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;

use super::fields::{self, describe_known_fields};
use super::registry::{RegionId, Registry};
use super::seed::{decode, is_http_url};
use super::splice::{self, Edit, Outcome};
use super::{Action, CapsError};
use crate::llsd::{Map, Value};

/// The cap name of the event queue.
pub const EVENT_QUEUE_CAP: &str = "EventQueueGet";

/// How many answered polls a queue keeps waiting for the viewer to acknowledge.
pub const MAX_STORED_POLLS: usize = 8;

/// The events that carry a seed, and where.
pub const SEED_EVENTS: &[(&str, SeedPath)] = &[
    (
        "TeleportFinish",
        SeedPath::FirstOf("Info", "SeedCapability"),
    ),
    (
        "CrossedRegion",
        SeedPath::FirstOf("RegionData", "SeedCapability"),
    ),
    (
        "EstablishAgentCommunication",
        SeedPath::Key("seed-capability"),
    ),
];

/// Where in an event body a seed lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedPath {
    /// `body[key]`
    Key(&'static str),
    /// `body[array][0][key]`
    FirstOf(&'static str, &'static str),
}

impl SeedPath {
    fn get<'a>(&self, body: &'a Value) -> Option<&'a Value> {
        match self {
            SeedPath::Key(k) => body.get(k),
            SeedPath::FirstOf(a, k) => body.get(a)?.index(0)?.get(k),
        }
    }

    fn get_mut<'a>(&self, body: &'a mut Value) -> Option<&'a mut Value> {
        let map = match self {
            SeedPath::Key(_) => map_mut(body)?,
            SeedPath::FirstOf(a, _) => match map_mut(body)?.get_mut(a)? {
                Value::Array(items) => map_mut(items.first_mut()?)?,
                _ => return None,
            },
        };
        let key = match self {
            SeedPath::Key(k) | SeedPath::FirstOf(_, k) => k,
        };
        map.get_mut(key)
    }
}

fn map_mut(v: &mut Value) -> Option<&mut Map> {
    match v {
        Value::Map(m) => Some(m),
        _ => None,
    }
}

/// A poll request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PollRequest {
    /// The id of the last response the viewer got (`None`: undef, its first poll).
    pub ack: Option<i64>,
    /// The viewer is done with this queue (leaving the region or logging out).
    pub done: bool,
}

/// Reads a poll request. An empty body is a first poll.
pub fn parse_poll_request(body: &[u8]) -> Result<PollRequest, CapsError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(PollRequest::default());
    }
    let (value, _) = decode(body, "event-queue poll request")?;
    let ack = match value.get("ack") {
        Some(Value::Integer(i)) => Some(i64::from(*i)),
        Some(Value::Real(r)) if r.fract() == 0.0 => Some(*r as i64),
        _ => None,
    };
    let done = matches!(value.get("done"), Some(Value::Boolean(true)));
    Ok(PollRequest { ack, done })
}

/// A seed announced by an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedGrant {
    /// The event's position in its response.
    pub event_index: usize,
    pub message: String,
    pub url: String,
    /// Sent as an LLSD `uri` (else a `string`).
    pub uri: bool,
    pub handle: Option<u64>,
    /// The simulator's UDP `ip:port`, when the event says.
    pub sim_udp: Option<String>,
    /// Whether the avatar moves into this region (TeleportFinish, CrossedRegion) rather than only
    /// seeing it as a neighbour (EstablishAgentCommunication).
    pub moves_agent: bool,
}

/// A simulator announced by EnableSimulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimAnnounce {
    pub handle: u64,
    pub sim_udp: String,
}

/// What a list of events teaches about regions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Learned {
    pub seeds: Vec<SeedGrant>,
    pub sims: Vec<SimAnnounce>,
}

/// Learns the seeds and simulators a list of `(message, body)` events announces.
pub fn learn_seeds(events: &[(String, Value)]) -> Learned {
    let mut learned = Learned::default();
    for (index, (message, body)) in events.iter().enumerate() {
        if message == "EnableSimulator" {
            for info in body
                .get("SimulatorInfo")
                .and_then(Value::as_array)
                .unwrap_or(&[])
            {
                let handle = info.get("Handle").and_then(fields::region_handle_value);
                let ip = info.get("IP").and_then(fields::sim_ip_value);
                let port = info.get("Port").and_then(Value::as_integer);
                if let (Some(handle), Some(ip), Some(port)) = (handle, ip, port) {
                    learned.sims.push(SimAnnounce {
                        handle,
                        sim_udp: format!("{ip}:{port}"),
                    });
                }
            }
            continue;
        }
        let Some((_, path)) = SEED_EVENTS.iter().find(|(m, _)| m == message) else {
            continue;
        };
        let Some(seed) = path.get(body) else { continue };
        let Some(url) = seed.as_str().filter(|u| is_http_url(u)) else {
            continue;
        };
        let (handle, sim_udp) = match path {
            SeedPath::Key(_) => (
                None,
                body.get("sim-ip-and-port")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            ),
            SeedPath::FirstOf(block, _) => {
                let b = body.get(block).and_then(|v| v.index(0));
                let handle = b
                    .and_then(|b| b.get("RegionHandle"))
                    .and_then(fields::region_handle_value);
                let ip = b
                    .and_then(|b| b.get("SimIP"))
                    .and_then(fields::sim_ip_value);
                let port = b.and_then(|b| b.get("SimPort")).and_then(Value::as_integer);
                let udp = match (ip, port) {
                    (Some(ip), Some(port)) => Some(format!("{ip}:{port}")),
                    _ => None,
                };
                (handle, udp)
            }
        };
        learned.seeds.push(SeedGrant {
            event_index: index,
            message: message.clone(),
            url: url.to_owned(),
            uri: matches!(seed, Value::Uri(_)),
            handle,
            sim_udp,
            moves_agent: message != "EstablishAgentCommunication",
        });
    }
    learned
}

/// One event of a poll response, ready to become a record.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub message: String,
    /// As upstream sent it (before any rewrite).
    pub body: Value,
    /// Decoded binary fields and what was learnt or rewritten.
    pub notes: Vec<String>,
}

/// A poll response read (and maybe rewritten).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventsRewritten {
    /// The new body, or `None` to send the original.
    pub body: Option<Bytes>,
    pub id: Option<i64>,
    pub events: Vec<Event>,
    pub notes: Vec<String>,
}

/// Reads a 200 poll response from the queue of `eq_region`: registers the seeds and simulators its
/// events announce, marks the region left when the avatar moves away, and with [`Action::Rewrite`]
/// points every announced seed at capscope (in place).
pub fn rewrite_events(
    body: &[u8],
    eq_region: Option<RegionId>,
    registry: &mut Registry,
    action: Action,
) -> Result<EventsRewritten, CapsError> {
    const WHAT: &str = "event-queue response";
    let (value, format) = decode(body, WHAT)?;
    if value.as_map().is_none() {
        return Err(CapsError::Shape {
            what: WHAT,
            expected: "an LLSD map with events and id",
            found: value.type_name().to_owned(),
        });
    }
    let id = match value.get("id") {
        Some(Value::Integer(i)) => Some(i64::from(*i)),
        _ => None,
    };
    let raw_events: Vec<(String, Value)> = match value.get("events") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|e| {
                let message = e
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("(no message)")
                    .to_owned();
                (message, e.get("body").cloned().unwrap_or_default())
            })
            .collect(),
        Some(Value::Undef) | None => Vec::new(),
        Some(other) => {
            return Err(CapsError::Shape {
                what: WHAT,
                expected: "an events array",
                found: other.type_name().to_owned(),
            })
        }
    };
    let mut events: Vec<Event> = raw_events
        .iter()
        .map(|(message, body)| Event {
            message: message.clone(),
            body: body.clone(),
            notes: describe_known_fields(body),
        })
        .collect();

    let learned = learn_seeds(&raw_events);
    for sim in &learned.sims {
        registry.learn_sim(&sim.sim_udp, sim.handle);
    }
    let mut expected = value.clone();
    let mut edits = Vec::new();
    for grant in &learned.seeds {
        let region = registry.add_region(&grant.url, grant.handle, grant.sim_udp.as_deref());
        // A seed on an agent's queue is that agent's.
        let agent = eq_region.and_then(|r| registry.region_agent(r).map(str::to_owned));
        registry.set_region_agent(region, agent.as_deref());
        let label = registry
            .region_label(region)
            .unwrap_or_else(|| format!("region #{}", region.0));
        let notes = &mut events[grant.event_index].notes;
        notes.push(format!("seed of {label}: {}", grant.url));
        if grant.moves_agent {
            if let Some(from) = eq_region.filter(|r| *r != region) {
                registry.mark_left(from);
                if let Some(l) = registry.region_label(from) {
                    notes.push(format!("left {l}"));
                }
            }
            registry.enter_region(region);
        }
        if action == Action::Rewrite {
            let cap = registry.grant(
                super::registry::SEED_CAP,
                &grant.url,
                Some(region),
                super::CapKind::Normal,
            );
            let edit = Edit {
                old: grant.url.clone(),
                new: registry.proxy_url(cap),
                uri: grant.uri,
            };
            if let Some(slot) = events_slot(&mut expected, grant) {
                *slot = edit.new_value();
            }
            notes.push(format!("rewrote seed -> {}", edit.new));
            edits.push(edit);
        }
    }
    let mut out = EventsRewritten {
        body: None,
        id,
        events,
        notes: Vec::new(),
    };
    if !edits.is_empty() {
        let (bytes, how) = splice::splice(body, format, &edits, &expected);
        if let Outcome::ReEncoded(why) = how {
            out.notes.push(format!(
                "rewrote event seeds by re-encoding the {format} body: {why}"
            ));
        }
        out.body = Some(Bytes::from(bytes));
    }
    Ok(out)
}

fn events_slot<'a>(response: &'a mut Value, grant: &SeedGrant) -> Option<&'a mut Value> {
    let path = SEED_EVENTS.iter().find(|(m, _)| *m == grant.message)?.1;
    let event = match map_mut(response)?.get_mut("events")? {
        Value::Array(items) => items.get_mut(grant.event_index)?,
        _ => return None,
    };
    path.get_mut(map_mut(event)?.get_mut("body")?)
}

/// Compares a response id with the last one seen on the queue: a note for a repeat, a gap or a step
/// back; `None` when it follows on (or is the first).
pub fn check_id(last: Option<i64>, id: i64) -> Option<String> {
    let last = last?;
    if id == last {
        Some(format!("id repeated {id}"))
    } else if id > last.saturating_add(1) {
        Some(format!("id gap {last} -> {id}"))
    } else if id < last {
        Some(format!("id went back {last} -> {id}"))
    } else {
        None
    }
}

/// Whether an answer means "no events this time" rather than a failure: 502 (OpenSim's empty body,
/// older OpenSim's `text/plain` "Upstream error:"), 504, or a timeout.
pub fn is_idle(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::BAD_GATEWAY | StatusCode::GATEWAY_TIMEOUT
    )
}

/// An answered poll, kept until the viewer acknowledges it.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    /// What the viewer gets.
    pub body: Bytes,
    /// What upstream sent, when the body was rewritten.
    pub original_body: Option<Bytes>,
    /// The response id, for a 200 with events.
    pub id: Option<i64>,
    /// Whether the answer carries events (only those are worth replaying).
    pub has_events: bool,
    pub notes: Vec<String>,
    /// The record of the poll that started the upstream exchange.
    pub first_record: u64,
}

/// A poll slot: `None` while upstream has not answered.
pub type Slot = tokio::sync::watch::Receiver<Option<Arc<Answer>>>;

/// One event queue's state: the last id seen and the upstream polls in flight or answered, keyed by
/// the `ack` of the viewer poll that started them.
#[derive(Debug, Default)]
pub struct QueueState {
    pub last_id: Option<i64>,
    polls: HashMap<Option<i64>, Slot>,
}

/// What a new viewer poll should do.
#[derive(Debug)]
pub enum PollPlan {
    /// An upstream poll with the same `ack` is running or has answered: wait on it.
    Join { slot: Slot, answered: bool },
    /// Start an upstream poll and keep its slot.
    Start,
}

impl QueueState {
    /// Plans a viewer poll with `ack`: drops answers the viewer has acknowledged (or that carry no
    /// events: those are never replayed, so idle timing passes through), then joins a poll for the same
    /// `ack` if there is one.
    pub fn plan(&mut self, ack: Option<i64>) -> PollPlan {
        self.polls.retain(|key, slot| match slot.borrow().as_ref() {
            None => true,
            Some(answer) => *key == ack && answer.has_events && answer.id != ack,
        });
        match self.polls.get(&ack) {
            Some(slot) => PollPlan::Join {
                answered: slot.borrow().is_some(),
                slot: slot.clone(),
            },
            None => PollPlan::Start,
        }
    }

    /// Keeps the slot of an upstream poll started for `ack`.
    pub fn started(&mut self, ack: Option<i64>, slot: Slot) {
        if self.polls.len() >= MAX_STORED_POLLS {
            // Drop answered slots first; polls in flight keep running either way.
            self.polls.retain(|_, s| s.borrow().is_none());
        }
        self.polls.insert(ack, slot);
    }

    /// How many polls are kept (in flight or answered).
    pub fn kept(&self) -> usize {
        self.polls.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caps::fields::handle_from_metres;
    use crate::llsd::{self, Format};

    const BASE: &str = "http://127.0.0.1:8080";
    const SEED_A: &str = "http://127.0.0.1:9000/CAPS/aaaa0000/";
    const SEED_B: &str = "http://127.0.0.1:9001/CAPS/bbbb0000/";

    fn handle_b() -> u64 {
        handle_from_metres(256_256, 256_000)
    }

    fn response(events: Vec<(&str, Value)>, id: i32) -> Value {
        Value::Map(Map(vec![
            (
                "events".into(),
                Value::Array(
                    events
                        .into_iter()
                        .map(|(m, b)| {
                            Value::Map(Map(vec![
                                ("message".into(), Value::String(m.into())),
                                ("body".into(), b),
                            ]))
                        })
                        .collect(),
                ),
            ),
            ("id".into(), Value::Integer(id)),
        ]))
    }

    fn map(entries: Vec<(&str, Value)>) -> Value {
        Value::Map(entries.into_iter().collect())
    }

    fn teleport_finish(seed: Value) -> Value {
        map(vec![(
            "Info",
            Value::Array(vec![map(vec![
                ("AgentID", Value::Uuid(uuid::Uuid::nil())),
                (
                    "RegionHandle",
                    Value::Binary(handle_b().to_be_bytes().to_vec()),
                ),
                ("SeedCapability", seed),
                ("SimIP", Value::Binary(vec![127, 0, 0, 1])),
                ("SimPort", Value::Integer(9001)),
                ("TeleportFlags", Value::Binary(vec![0, 0, 0, 0x10])),
            ])]),
        )])
    }

    fn crossed_region(seed: Value) -> Value {
        map(vec![
            (
                "Info",
                Value::Array(vec![map(vec![("Position", Value::Array(vec![]))])]),
            ),
            (
                "RegionData",
                Value::Array(vec![map(vec![
                    (
                        "RegionHandle",
                        Value::Binary(handle_b().to_be_bytes().to_vec()),
                    ),
                    ("SeedCapability", seed),
                    ("SimIP", Value::Binary(vec![127, 0, 0, 1])),
                    ("SimPort", Value::Integer(9001)),
                ])]),
            ),
        ])
    }

    fn establish(seed: Value) -> Value {
        map(vec![
            ("agent-id", Value::Uuid(uuid::Uuid::nil())),
            ("seed-capability", seed),
            ("sim-ip-and-port", Value::String("127.0.0.1:9001".into())),
        ])
    }

    fn enable_simulator() -> Value {
        map(vec![(
            "SimulatorInfo",
            Value::Array(vec![map(vec![
                ("Handle", Value::Binary(handle_b().to_be_bytes().to_vec())),
                ("IP", Value::Binary(vec![127, 0, 0, 1])),
                ("Port", Value::Integer(9001)),
            ])]),
        )])
    }

    /// Each seed-carrying event, in each format, with the seed as string and as uri: the seed is
    /// rewritten in place, the region registered with its handle, and the rest kept.
    #[test]
    fn seed_carrying_events_are_rewritten_in_place() {
        type Make = fn(Value) -> Value;
        let cases: [(&str, Make, bool); 3] = [
            ("TeleportFinish", teleport_finish, true),
            ("CrossedRegion", crossed_region, true),
            ("EstablishAgentCommunication", establish, false),
        ];
        for (message, make, moves) in cases {
            for uri in [false, true] {
                for format in Format::ALL {
                    let seed = if uri {
                        Value::Uri(SEED_B.into())
                    } else {
                        Value::String(SEED_B.into())
                    };
                    let body = llsd::to_vec(
                        &response(
                            vec![
                                ("EnableSimulator", enable_simulator()),
                                (message, make(seed)),
                            ],
                            7,
                        ),
                        format,
                    );
                    let mut reg = Registry::new(BASE);
                    let a = reg.add_region(SEED_A, None, None);
                    reg.enter_region(a);
                    let out = rewrite_events(&body, Some(a), &mut reg, Action::Rewrite).unwrap();
                    let ctx = format!("{message} {format} uri={uri}");
                    assert_eq!(out.id, Some(7), "{ctx}");
                    assert_eq!(out.events.len(), 2);
                    assert_eq!(out.events[1].message, message);
                    let b = reg.region_of_seed(SEED_B).expect("seed registered");
                    assert_eq!(reg.region(b).unwrap().handle, Some(handle_b()), "{ctx}");
                    assert_eq!(reg.region(a).unwrap().left, moves, "{ctx}");
                    let proxy = reg
                        .cap(reg.lookup_url(SEED_B).unwrap().cap)
                        .unwrap()
                        .proxy_url
                        .clone()
                        .unwrap();
                    let new_body = out.body.expect("rewritten");
                    let decoded = llsd::from_slice_as(&new_body, format).unwrap();
                    let new_seed = decoded
                        .get("events")
                        .and_then(|e| e.index(1))
                        .and_then(|e| e.get("body"))
                        .and_then(|b| {
                            SEED_EVENTS
                                .iter()
                                .find(|(m, _)| *m == message)
                                .unwrap()
                                .1
                                .get(b)
                        })
                        .cloned();
                    let want = if uri {
                        Value::Uri(proxy.clone())
                    } else {
                        Value::String(proxy.clone())
                    };
                    assert_eq!(new_seed, Some(want), "{ctx}");
                    assert_eq!(
                        new_body.len(),
                        body.len() + proxy.len() - SEED_B.len(),
                        "{ctx}: only the seed changed"
                    );
                    assert!(out.notes.is_empty(), "{ctx}: in place, {:?}", out.notes);
                    // Events keep the body upstream sent.
                    assert!(out.events[1]
                        .notes
                        .iter()
                        .any(|n| n.contains("rewrote seed")));
                }
            }
        }
    }

    #[test]
    fn learning_mode_learns_without_rewriting_and_fields_are_described() {
        let body = llsd::to_vec(
            &response(
                vec![(
                    "TeleportFinish",
                    teleport_finish(Value::String(SEED_B.into())),
                )],
                3,
            ),
            Format::Xml,
        );
        let mut reg = Registry::new(BASE);
        let a = reg.add_region(SEED_A, None, None);
        reg.enter_region(a);
        let out = rewrite_events(&body, Some(a), &mut reg, Action::Learn).unwrap();
        assert_eq!(out.body, None);
        assert!(reg.region(a).unwrap().left);
        let b = reg.region_of_seed(SEED_B).unwrap();
        assert_eq!(reg.current_region(), Some(b));
        let notes = out.events[0].notes.join("\n");
        assert!(
            notes.contains("Info[0].RegionHandle = (1001, 1000)"),
            "{notes}"
        );
        assert!(notes.contains("Info[0].SimIP = 127.0.0.1"), "{notes}");
        assert!(
            notes.contains("Info[0].TeleportFlags = ViaLocation (0x10)"),
            "{notes}"
        );
    }

    #[test]
    fn the_same_seed_twice_maps_to_one_proxy_url() {
        let body = llsd::to_vec(
            &response(
                vec![
                    (
                        "EstablishAgentCommunication",
                        establish(Value::String(SEED_B.into())),
                    ),
                    (
                        "TeleportFinish",
                        teleport_finish(Value::String(SEED_B.into())),
                    ),
                ],
                1,
            ),
            Format::Xml,
        );
        let mut reg = Registry::new(BASE);
        let out = rewrite_events(&body, None, &mut reg, Action::Rewrite).unwrap();
        let decoded = llsd::from_slice(&out.body.unwrap()).unwrap();
        let events = decoded.get("events").unwrap();
        let s1 = events
            .index(0)
            .unwrap()
            .get("body")
            .unwrap()
            .get("seed-capability")
            .unwrap();
        let s2 = SeedPath::FirstOf("Info", "SeedCapability")
            .get(events.index(1).unwrap().get("body").unwrap())
            .unwrap();
        assert_eq!(s1, s2);
        assert_eq!(reg.regions().len(), 1);
    }

    #[test]
    fn learn_seeds_reads_the_three_events_and_enable_simulator() {
        let events = vec![
            ("EnableSimulator".to_owned(), enable_simulator()),
            (
                "EstablishAgentCommunication".to_owned(),
                establish(Value::Uri(SEED_B.into())),
            ),
            ("ChatFromSimulator".to_owned(), map(vec![])),
            (
                "CrossedRegion".to_owned(),
                crossed_region(Value::String(SEED_A.into())),
            ),
        ];
        let learned = learn_seeds(&events);
        assert_eq!(
            learned.sims,
            vec![SimAnnounce {
                handle: handle_b(),
                sim_udp: "127.0.0.1:9001".into()
            }]
        );
        assert_eq!(learned.seeds.len(), 2);
        assert_eq!(learned.seeds[0].event_index, 1);
        assert!(learned.seeds[0].uri && !learned.seeds[0].moves_agent);
        assert_eq!(learned.seeds[0].sim_udp.as_deref(), Some("127.0.0.1:9001"));
        assert_eq!(learned.seeds[1].url, SEED_A);
        assert_eq!(learned.seeds[1].handle, Some(handle_b()));
        assert!(learned.seeds[1].moves_agent);
    }

    #[test]
    fn ids_are_checked_for_gaps_and_repeats() {
        let cases = [
            (None, 1, None),
            (Some(41), 42, None),
            (Some(41), 43, Some("id gap 41 -> 43")),
            (Some(41), 41, Some("id repeated 41")),
            (Some(41), 2, Some("id went back 41 -> 2")),
        ];
        for (last, id, want) in cases {
            assert_eq!(check_id(last, id).as_deref(), want);
        }
    }

    #[test]
    fn poll_requests_and_odd_responses() {
        assert_eq!(parse_poll_request(b"").unwrap(), PollRequest::default());
        let req = llsd::to_vec(
            &map(vec![
                ("ack", Value::Integer(41)),
                ("done", Value::Boolean(false)),
            ]),
            Format::Xml,
        );
        assert_eq!(
            parse_poll_request(&req).unwrap(),
            PollRequest {
                ack: Some(41),
                done: false
            }
        );
        let first = b"<llsd><map><key>ack</key><undef /><key>done</key><boolean>true</boolean></map></llsd>";
        assert_eq!(
            parse_poll_request(first).unwrap(),
            PollRequest {
                ack: None,
                done: true
            }
        );
        assert!(parse_poll_request(b"<html/>").is_err());

        let mut reg = Registry::new(BASE);
        let undef_events =
            b"<llsd><map><key>events</key><undef /><key>id</key><integer>4</integer></map></llsd>";
        let out = rewrite_events(undef_events, None, &mut reg, Action::Rewrite).unwrap();
        assert!(out.events.is_empty());
        assert_eq!(out.id, Some(4));
        assert!(rewrite_events(b"<llsd><array/></llsd>", None, &mut reg, Action::Rewrite).is_err());
        assert!(rewrite_events(b"Upstream error: ", None, &mut reg, Action::Rewrite).is_err());
        assert!(is_idle(StatusCode::BAD_GATEWAY) && is_idle(StatusCode::GATEWAY_TIMEOUT));
        assert!(!is_idle(StatusCode::NOT_FOUND));
    }
}
