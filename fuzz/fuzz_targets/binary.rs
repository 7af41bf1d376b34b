//! Fuzz target: the binary LLSD decoder must return a value or an error for any input, never panic,
//! overflow the stack or allocate from an unbacked length.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = capscope::llsd::binary::from_slice(data) {
        // Offsets always point into (or just past) the input.
        assert!(e.offset() <= data.len(), "{e}");
    }
});
