//! Fuzz target: `llsd::transcode` (decoding any format straight to any format, without the tree)
//! must agree with decoding to the tree and writing that: the same bytes when the input decodes,
//! the same error (kind and offset) when it does not, and the output buffer as it was on an error.
#![no_main]

use capscope::llsd::{self, Format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for format in Format::ALL {
        let tree = llsd::from_slice_as(data, format);
        for to in Format::ALL {
            let mut out = b"kept".to_vec();
            let direct = llsd::transcode(data, format, to, &mut out);
            match (&tree, direct) {
                (Ok(value), Ok(())) => {
                    assert!(
                        out[4..] == llsd::to_vec(value, to)[..],
                        "{format} to {to}: bytes differ"
                    )
                }
                (Err(a), Err(b)) => {
                    assert_eq!(a, &b, "{format} to {to}: errors differ");
                    assert_eq!(out, b"kept", "{format} to {to}: output left on error");
                }
                (a, b) => panic!("{format} to {to}: tree {a:?}, transcode {b:?}"),
            }
        }
    }
});
