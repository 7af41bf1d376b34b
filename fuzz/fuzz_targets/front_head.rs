//! Fuzz target: the head reader of the proxy's HTTP/1 front (`proxy::front`), which reads every
//! client connection's first request head before hyper does: any bytes give a whole plain head, a
//! partial one or "not mine" (hyper's then), never a panic, and a plain head is no longer than the
//! bytes or the limit.
#![no_main]

use capscope::proxy::read_front_head_for_fuzzing;
use libfuzzer_sys::fuzz_target;

/// Small, so heads over the limit are seen often.
const MAX_HEAD: usize = 512;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the limit: small, or large enough for any input.
    let Some((&first, head)) = data.split_first() else {
        return;
    };
    let limit = if first & 1 == 1 { MAX_HEAD } else { usize::MAX };
    if let Some((len, _body)) = read_front_head_for_fuzzing(head, limit) {
        assert!(len <= head.len() && len <= limit);
    }
});
