//! Fuzz target: `llsd::transcode_to_binary` (decoding binary or notation straight to binary LLSD,
//! without the tree) must agree with decoding to the tree and writing that: the same bytes when the
//! input decodes, the same error (kind and offset) when it does not, and the output buffer as it was
//! on an error.
#![no_main]

use capscope::llsd::{self, Format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for format in Format::ALL {
        let tree = llsd::from_slice_as(data, format).map(|v| llsd::to_vec(&v, Format::Binary));
        let mut out = b"kept".to_vec();
        let direct = llsd::transcode_to_binary(data, format, &mut out);
        match (tree, direct) {
            (Ok(expected), Ok(())) => assert!(out[4..] == expected[..], "{format}: bytes differ"),
            (Err(a), Err(b)) => {
                assert_eq!(a, b, "{format}: errors differ");
                assert_eq!(out, b"kept", "{format}: output left on error");
            }
            (a, b) => panic!("{format}: tree {a:?}, transcode {b:?}"),
        }
    }
});
