//! Fuzz target: whatever decodes (any format, auto-detected) must encode in every format and decode
//! back to the same value (XML: to a value that encodes to the same bytes, since XML drops the
//! control characters it cannot carry).
#![no_main]

use capscope::llsd::{self, Format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = llsd::from_slice(data) else {
        return;
    };
    for format in [Format::Binary, Format::Notation] {
        let bytes = llsd::to_vec(&value, format);
        let back = llsd::from_slice_as(&bytes, format)
            .unwrap_or_else(|e| panic!("{format} output does not decode: {e}"));
        assert!(back.same(&value), "{format} round trip changed the value");
    }
    let xml = llsd::to_vec(&value, Format::Xml);
    let back = llsd::from_slice_as(&xml, Format::Xml)
        .unwrap_or_else(|e| panic!("xml output does not decode: {e}"));
    assert_eq!(
        llsd::to_vec(&back, Format::Xml),
        xml,
        "xml round trip is not stable"
    );
    let json = llsd::typed_json::to_json(&back);
    assert!(llsd::typed_json::from_json(&json).is_ok());
});
