//! Fuzz target: the event-queue readers and rewriter must read any body to a result or an error,
//! never panic; a rewritten answer still decodes as LLSD.
#![no_main]

use capscope::caps::{event_queue, Action, Registry};
use capscope::llsd;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = event_queue::parse_poll_request(data);
    for action in [Action::Learn, Action::Rewrite] {
        let mut registry = Registry::new("http://127.0.0.1:8080");
        let region = registry.add_region("https://sim.example:12043/cap/seed", None, None);
        if let Ok(rewritten) =
            event_queue::rewrite_events(data, Some(region), &mut registry, action)
        {
            if let Some(body) = rewritten.body {
                assert!(
                    llsd::from_slice(&body).is_ok(),
                    "a rewritten event-queue answer no longer decodes"
                );
            }
        }
    }
});
