use super::*;
use crate::record::{Bus, EventInfo, Received, Response};

fn http(id: u64, state: State) -> Record {
    let mut r = Record::new(id, Kind::Http);
    r.state = state;
    r.cap = Some("EventQueueGet".into());
    r
}

fn event(id: u64, parent: u64, name: &str) -> Record {
    let mut r = Record::new(id, Kind::Event);
    r.state = State::Done;
    r.parent = Some(parent);
    r.event = Some(EventInfo {
        message: name.into(),
        body: Body::whole(&b"<llsd><map><key>a</key><integer>1</integer></map></llsd>"[..]),
        ..EventInfo::default()
    });
    r
}

fn with_body(id: u64, n: usize) -> Record {
    let mut r = http(id, State::Done);
    r.response = Some(Response {
        status: 200,
        body: Body::whole(vec![b'x'; n]),
        ..Response::default()
    });
    r
}

fn order(store: &Store) -> Vec<u64> {
    store
        .rows()
        .map(|s| store.get(s).unwrap().record.id)
        .collect()
}

#[test]
fn open_and_final_versions_merge_into_one_row() {
    let mut store = Store::default();
    assert_eq!(store.apply(&http(1, State::Open)), Applied::Added(0));
    assert_eq!(store.apply(&http(2, State::Open)), Applied::Added(1));
    assert_eq!(store.apply(&http(1, State::Done)), Applied::Updated(0));
    assert_eq!(store.len(), 2);
    assert_eq!(store.counts().records, 2);
    assert_eq!(store.get(0).unwrap().record.state, State::Done);
    assert_eq!(order(&store), [1, 2]);
}

#[test]
fn events_sit_under_their_poll_even_when_other_records_came_between() {
    let mut store = Store::default();
    store.apply(&http(1, State::Open)); // the poll
    store.apply(&http(2, State::Done)); // something else, later
    store.apply(&event(3, 1, "TeleportFinish"));
    store.apply(&event(4, 1, "EstablishAgentCommunication"));
    store.apply(&http(1, State::Done)); // the poll's final version comes after its events
    assert_eq!(order(&store), [1, 3, 4, 2]);
    let poll = store.get(0).unwrap();
    assert_eq!(poll.children, [2, 3]);
    assert_eq!(store.get(2).unwrap().parent, Some(0));
    assert_eq!(store.get(2).unwrap().depth(), 1);
    assert_eq!(store.counts().events, 2);
}

fn drain_into(store: &mut Store, bus: &Bus, sub: &mut crate::record::Subscriber, n: usize) {
    for id in 1..=n as u64 {
        bus.publish(with_body(id, 100));
        // The store drains each record as it comes, like the UI does every frame.
        while let Some(Received::Record(r)) = sub.try_recv() {
            store.apply(&r);
        }
    }
}

#[test]
fn history_never_holds_the_bus_body_budget() {
    // The bus holds 250 bytes of bodies: two records of 100. The store keeps all four.
    let bus = Bus::with_body_budget(64, 250);
    let mut sub = bus.subscribe();
    let mut store = Store::default();
    drain_into(&mut store, &bus, &mut sub, 4);
    assert_eq!(bus.bodies_shed(), 0, "history made the bus shed bodies");
    assert_eq!(store.body_bytes(), 400);
}

#[test]
fn the_store_has_its_own_body_budget() {
    let bus = Bus::with_body_budget(64, 1000);
    let mut sub = bus.subscribe();
    let mut store = Store::new(Limits {
        records: 100,
        body_bytes: 250,
        record_bytes: usize::MAX,
    });
    drain_into(&mut store, &bus, &mut sub, 4);
    // 250 bytes hold two bodies; the oldest lost theirs, and say so.
    assert_eq!(store.body_bytes(), 200);
    assert_eq!(store.counts().bodies_dropped, 2);
    let oldest = &store.get(0).unwrap().record;
    let body = &oldest.response.as_ref().unwrap().body;
    assert!(body.data.is_empty() && body.truncated);
    assert_eq!(body.size, 100, "the true size stays");
    assert!(oldest.notes.iter().any(|n| n == BODY_DROPPED_NOTE));
    assert_eq!(store.get(3).unwrap().record.body_bytes(), 100);
}

#[test]
fn holding_records_without_detaching_would_exhaust_the_bus_budget() {
    // The failure the store's detached copies avoid: a consumer keeping the Arcs it receives.
    let bus = Bus::with_body_budget(64, 1000);
    let mut sub = bus.subscribe();
    let mut kept = Vec::new();
    for id in 1..=20 {
        bus.publish(with_body(id, 100));
        while let Some(Received::Record(r)) = sub.try_recv() {
            kept.push(r);
        }
    }
    assert!(bus.bodies_shed() > 0);
}

fn with_headers(id: u64, headers: usize) -> Record {
    let mut r = http(id, State::Done);
    r.request = Some(crate::record::Request {
        method: "POST".into(),
        url: format!("https://sim.example/cap/{id:032x}"),
        headers: (0..headers)
            .map(|i| crate::record::Header {
                name: format!("X-Header-{i}").into(),
                value: "v".repeat(64).into(),
            })
            .collect(),
        ..Default::default()
    });
    r
}

#[test]
fn the_oldest_records_go_when_the_records_bytes_are_spent() {
    let one = record_bytes(&with_headers(1, 20));
    assert!(one > 20 * 64, "headers are counted: {one}");
    // Room for ten such records by bytes, a thousand by count.
    let mut store = Store::new(Limits {
        records: 1000,
        body_bytes: usize::MAX,
        record_bytes: 10 * one,
    });
    for id in 1..=11 {
        store.apply(&with_headers(id, 20));
        assert!(store.record_bytes() <= 10 * one);
    }
    assert_eq!(store.len(), 9, "a tenth of the bytes is freed at once");
    assert_eq!(store.counts().evicted, 2);
    assert_eq!(order(&store), (3..=11).collect::<Vec<_>>());
    // A record's final version replaces its open one in the reckoning, not on top of it.
    let held = store.record_bytes();
    store.apply(&with_headers(11, 20));
    assert_eq!(store.record_bytes(), held);
    store.clear();
    assert_eq!(store.record_bytes(), 0);
}

#[test]
fn the_oldest_records_go_when_the_record_limit_is_reached() {
    let mut store = Store::new(Limits {
        records: 10,
        body_bytes: usize::MAX,
        record_bytes: usize::MAX,
    });
    for id in 1..=11 {
        store.apply(&http(id, State::Done));
    }
    assert_eq!(store.len(), 9, "a tenth is evicted at once");
    assert_eq!(store.counts().evicted, 2);
    assert!(store.get(0).is_none());
    assert_eq!(order(&store), (3..=11).collect::<Vec<_>>());
    assert_eq!(
        store.take_evicted(),
        Some(Evicted {
            below: 2,
            unparented: Vec::new()
        })
    );
    assert_eq!(store.take_evicted(), None);
    assert_eq!(store.counts().records, 11);
}

#[test]
fn records_whose_final_was_lost_to_a_lag_are_closed_and_say_so() {
    let mut store = Store::default();
    store.apply(&http(1, State::Open));
    store.apply(&http(2, State::Open));
    store.lagged(5, 1_000);
    store.apply(&http(2, State::Done)); // this one's final came after all
    assert!(store
        .close_lost(1_000 + LOST_FINAL_AFTER_US - 1, false)
        .is_empty());
    assert_eq!(store.close_lost(1_000 + LOST_FINAL_AFTER_US, false), [0]);
    let lost = store.get(0).unwrap();
    assert!(lost.lost_final);
    assert_eq!(lost.record.state, State::Failed);
    assert!(lost.record.notes.iter().any(|n| n == LOST_FINAL_NOTE));
    assert_eq!(store.get(1).unwrap().record.state, State::Done);
    assert_eq!(store.counts().lagged, 5);
    assert_eq!(store.counts().lost_finals, 1);
    // A record opened after the lag is not suspect.
    store.apply(&http(3, State::Open));
    assert!(store.close_lost(i64::MAX, true).is_empty());
}

#[test]
fn a_body_is_decoded_once_and_a_broken_body_keeps_its_error() {
    let mut store = Store::default();
    store.apply(&event(1, 99, "X"));
    let mut bad = with_body(2, 0);
    bad.response.as_mut().unwrap().body = Body::whole(&b"<llsd><map><key>a</key>"[..]);
    store.apply(&bad);
    let first = store.decoded(0, Which::Event).unwrap();
    let again = store.decoded(0, Which::Event).unwrap();
    assert!(Arc::ptr_eq(&first, &again), "decoded twice");
    assert!(matches!(*first, Decoded::Llsd(_)));
    match &*store.decoded(1, Which::Response).unwrap() {
        Decoded::NotLlsd(e) => assert!(!e.is_empty()),
        other => panic!("expected an error, got {other:?}"),
    }
    assert_eq!(store.cached_decodes(), 2);
    // A new version of the record drops its cached decodes.
    store.apply(&bad);
    assert_eq!(store.cached_decodes(), 1);
}

#[test]
fn idle_polls_are_counted() {
    let mut store = Store::default();
    let mut idle = http(1, State::Open);
    store.apply(&idle);
    idle.state = State::Done;
    idle.notes.push("idle poll (502)".into());
    store.apply(&idle);
    assert_eq!(store.counts().idle_polls, 1);
}

#[test]
fn events_read_before_their_poll_move_under_it_when_it_arrives() {
    // A capture file holds records in the order they finished: the events, then their poll.
    let mut store = Store::default();
    store.apply(&http(9, State::Done));
    store.apply(&event(11, 10, "EnableSimulator"));
    store.apply(&event(12, 10, "EstablishAgentCommunication"));
    assert_eq!(store.get(1).unwrap().depth(), 0, "no poll yet");
    store.apply(&http(10, State::Done));
    assert_eq!(order(&store), [9, 10, 11, 12]);
    assert_eq!(store.take_adopted(), [(1, (11, 0, 1)), (2, (12, 0, 2))]);
    assert_eq!(store.get(3).unwrap().children, [1, 2]);
    assert_eq!(store.get(1).unwrap().parent, Some(3));
}

#[test]
fn rows_are_in_the_order_records_began_whatever_order_they_come_in() {
    // A capture file holds records in the order they finished: a long poll (1) after the quick
    // requests that began during it. Its row goes back to where it began, its events under it.
    let mut store = Store::default();
    store.apply(&http(2, State::Done));
    store.apply(&event(4, 1, "TeleportFinish"));
    store.apply(&http(3, State::Done));
    store.apply(&http(1, State::Done));
    store.apply(&http(5, State::Done));
    assert_eq!(order(&store), [1, 4, 2, 3, 5]);
    assert_eq!(store.get(1).unwrap().depth(), 1);
    // Eviction rebuilds the row order the same way.
    let mut small = Store::new(Limits {
        records: 4,
        body_bytes: usize::MAX,
        record_bytes: usize::MAX,
    });
    for id in [3, 2, 5, 1, 4] {
        small.apply(&http(id, State::Done));
    }
    assert_eq!(
        order(&small),
        [1, 2, 4, 5],
        "3 came first, so it went first"
    );
}

#[test]
fn an_event_whose_poll_is_evicted_is_reported_with_its_former_row() {
    let mut store = Store::new(Limits {
        records: 10,
        body_bytes: usize::MAX,
        record_bytes: usize::MAX,
    });
    store.apply(&http(1, State::Open)); // the poll, seq 0
    store.apply(&event(2, 1, "TeleportFinish")); // seq 1, under it
    for id in 3..=11 {
        store.apply(&http(id, State::Done));
    }
    // The two oldest go at once: the poll and its event.
    let evicted = store.take_evicted().unwrap();
    assert_eq!(evicted.below, 2);
    assert!(
        evicted.unparented.is_empty(),
        "the event went too: {evicted:?}"
    );

    let mut store = Store::new(Limits {
        records: 10,
        body_bytes: usize::MAX,
        record_bytes: usize::MAX,
    });
    store.apply(&http(1, State::Open)); // seq 0: evicted alone below
    store.apply(&http(2, State::Open)); // seq 1: the poll
    store.apply(&event(3, 2, "TeleportFinish")); // seq 2, under seq 1
    for id in 4..=11 {
        store.apply(&http(id, State::Done));
    }
    let evicted = store.take_evicted().unwrap();
    assert_eq!(evicted.below, 2, "records 1 and 2 went");
    assert_eq!(evicted.unparented, [(2, (2, 1, 2))]);
    assert_eq!(store.get(2).unwrap().depth(), 0);
    assert_eq!(order(&store)[0], 3);
}
