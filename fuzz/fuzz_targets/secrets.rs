//! Fuzz target: the capture's secret masker must never panic, and a body that is LLSD must still
//! decode, in the same format, once masked.
#![no_main]

use capscope::capture::secrets;
use capscope::llsd;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(masked) = secrets::mask_bytes(data) else {
        return;
    };
    if let Some(format) = llsd::detect(None, data) {
        if llsd::from_slice_as(data, format).is_ok() {
            assert!(
                llsd::from_slice_as(&masked, format).is_ok(),
                "a {format} body no longer decodes once masked"
            );
        }
    }
});
