//! Fuzz target: the lean upstream client's response reader (`proxy::upstream::whole`: head,
//! framing, sized, chunked and until-close bodies) must read any bytes to an answer or an error,
//! never panic, and never hand back more body than its limit.
#![no_main]

use capscope::proxy::upstream::read_response_for_fuzzing;
use libfuzzer_sys::fuzz_target;

/// Small, so the limit is reached often.
const LIMIT: usize = 4096;

fuzz_target!(|data: &[u8]| {
    // The first byte picks a HEAD request (no body whatever the head says) or any other.
    let Some((&first, answer)) = data.split_first() else {
        return;
    };
    if let Ok((status, body)) = read_response_for_fuzzing(answer, first & 1 == 1, LIMIT) {
        assert!((100..1000).contains(&status), "status {status}");
        assert!(body <= LIMIT, "a body of {body} bytes passed the {LIMIT}-byte limit");
    }
});
