//! The UI store's byte budget against what it really allocates.
//!
//! `store::record_bytes` reckons what a held record costs besides its bodies' bytes; the store's
//! record budget is only a memory budget if that reckoning covers what the store really asks the
//! allocator for. This test binary counts every allocation (its own global allocator), feeds a store
//! records shaped like a viewer's, and compares. It is a file of its own because a global allocator
//! is per binary.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use capscope::record::{Body, EventInfo, Header, Kind, Record, Request, Response, State};
use capscope::store::{heap_block, Limits, Store};

/// Bytes live now, each block counted as the allocator takes it (`heap_block`), so the figure is
/// comparable with the store's reckoning.
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: every call is passed to `System` unchanged; only a counter is updated beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(heap_block(layout.size()) as isize, Ordering::Relaxed);
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(heap_block(layout.size()) as isize, Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            heap_block(new_size) as isize - heap_block(layout.size()) as isize,
            Ordering::Relaxed,
        );
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// The counter is process-wide: tests that read it take turns.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

fn header(name: &str, value: &str) -> Header {
    Header {
        name: name.into(),
        value: value.into(),
    }
}

/// A viewer's cap request as capscope records it: a dozen request headers, a handful of response
/// headers, notes, cap, region, agent, small bodies; every fifth an event under a poll.
fn viewer_record(id: u64, version: State) -> Record {
    let mut r = Record::new(id, Kind::Http);
    r.state = version;
    r.client = Some("127.0.0.1:50123".into());
    r.cap = Some("FetchInventoryDescendents2".to_owned());
    r.region = Some("127.0.0.1:9000 (1000, 1000)".to_owned());
    r.agent = Some("Ann Resident".to_owned());
    r.request = Some(Request {
        method: "POST".into(),
        url: format!("https://127.0.0.1:9000/{id:08x}-aaaa-bbbb-cccc-ddddeeeeffff/"),
        client_url: Some(format!("/cap/{id:032x}/")),
        version: "HTTP/1.1".into(),
        headers: vec![
            header("host", "127.0.0.1:9000"),
            header(
                "user-agent",
                "SecondLife/7.1.11.123456 (Second Life Release; default skin)",
            ),
            header("accept", "application/llsd+xml"),
            header("accept-encoding", "deflate, gzip"),
            header("content-type", "application/llsd+xml"),
            header("content-length", "321"),
            header("connection", "keep-alive"),
            header("keep-alive", "timeout=300"),
            header("x-secondlife-udp-listen-port", "13000"),
            header("pragma", "no-cache"),
            header("cache-control", "no-cache"),
            header("x-capscope-trace", &format!("{id}")),
        ],
        body: Body::whole(vec![b'<'; 321]),
    });
    if version != State::Open {
        r.response = Some(Response {
            status: 200,
            version: "HTTP/1.1".into(),
            headers: vec![
                header("content-type", "application/llsd+xml"),
                header("content-length", "2048"),
                header("date", "Mon, 30 Nov 2026 23:50:00 GMT"),
                header("server", "OpenSim"),
                header("connection", "keep-alive"),
            ],
            body: Body::whole(vec![b'x'; 2048]),
        });
        r.notes = vec![
            "response body: gzip undone".to_owned(),
            format!("rewrote {} URLs", id % 7),
        ];
    }
    r
}

fn event_record(id: u64, poll: u64) -> Record {
    let mut r = Record::new(id, Kind::Event);
    r.state = State::Done;
    r.parent = Some(poll);
    r.cap = Some("EventQueueGet".to_owned());
    r.event = Some(EventInfo {
        message: "EstablishAgentCommunication".to_owned(),
        index: 0,
        queue_id: Some(id as i64),
        body: Body::whole(vec![b'e'; 600]),
    });
    r.notes = vec!["seed of 127.0.0.1:9000 (1000, 1001)".to_owned()];
    r
}

/// Feeds `n` exchanges (an open and a final version each, an event under every fifth) and returns
/// what the store allocated (live bytes before and after, the records fed already dropped).
fn feed(store: &mut Store, n: u64) -> isize {
    let before = live();
    for id in 1..=n {
        let open = viewer_record(id * 2, State::Open);
        store.apply(&open);
        drop(open);
        let done = viewer_record(id * 2, State::Done);
        store.apply(&done);
        drop(done);
        if id % 5 == 0 {
            let e = event_record(id * 2 + 1, id * 2);
            store.apply(&e);
        }
    }
    live() - before
}

/// The store's reckoning (records plus bodies) covers what it really holds, and is not far above
/// it. Before the reckoning counted the allocator's rounding and the store's own lists, a store of
/// 5,000 such records held about a third more than it reckoned (its entry list alone, inline
/// records in slots that double, was up to twice the count it assumed).
#[test]
fn the_store_reckons_at_least_what_it_allocates() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    for n in [700u64, 4_100, 5_000] {
        let mut store = Store::new(Limits {
            records: usize::MAX,
            body_bytes: usize::MAX,
            record_bytes: usize::MAX,
        });
        let real = feed(&mut store, n) as usize;
        let reckoned = store.record_bytes() + store.body_bytes();
        println!(
            "{n} exchanges, {} records: the store allocated {real} bytes and reckons {reckoned} \
             ({:.2}x)",
            store.len(),
            reckoned as f64 / real as f64
        );
        assert!(
            reckoned >= real,
            "{n} exchanges: reckoned {reckoned} bytes, allocated {real}"
        );
        assert!(
            reckoned <= real * 3 / 2,
            "{n} exchanges: reckoned {reckoned} bytes, far above the {real} allocated"
        );
    }
}

/// Past its record budget the store stays within it, as the allocator counts it, for hours of
/// traffic (here: many times the budget's worth of records).
#[test]
fn a_store_at_its_budget_holds_no_more_than_the_budget() {
    const BUDGET: usize = 4 * 1024 * 1024;
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut store = Store::new(Limits {
        records: usize::MAX,
        body_bytes: BUDGET,
        record_bytes: BUDGET,
    });
    let mut peak = 0isize;
    let before = live();
    for round in 0..20u64 {
        for id in 1..=1_000 {
            let id = round * 10_000 + id;
            store.apply(&viewer_record(id * 2, State::Open));
            store.apply(&viewer_record(id * 2, State::Done));
            if id % 5 == 0 {
                store.apply(&event_record(id * 2 + 1, id * 2));
            }
        }
        peak = peak.max(live() - before);
    }
    assert!(store.counts().evicted > 0, "the budget was reached");
    let peak = peak as usize;
    println!(
        "held {} records; peak {peak} bytes for a budget of 2 x {BUDGET}",
        store.len()
    );
    assert!(
        peak <= 2 * BUDGET,
        "the store held {peak} bytes for a budget of {} bytes",
        2 * BUDGET
    );
}
