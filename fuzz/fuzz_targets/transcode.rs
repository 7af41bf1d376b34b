//! Fuzz target: `llsd::transcode` (decoding any format straight to any format, without the tree)
//! must agree with decoding to the tree and writing that: the same bytes when the input decodes,
//! the same error (kind and offset) when it does not, and the output buffer as it was on an error.
//! The same for the human view (`llsd::transcode_pretty` against `llsd::pretty`) and typed JSON
//! (`llsd::typed_json::transcode` against serde_json's pretty printer over `to_json`).
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
        let mut pretty = b"kept".to_vec();
        let mut json = b"kept".to_vec();
        let got = (
            llsd::transcode_pretty(data, format, &mut pretty),
            llsd::typed_json::transcode(data, format, &mut json),
        );
        match (&tree, got) {
            (Ok(value), (Ok(()), Ok(()))) => {
                assert!(
                    pretty[4..] == *llsd::pretty(value).as_bytes(),
                    "{format} to pretty: text differs"
                );
                let mut expected = Vec::new();
                let written =
                    serde_json::to_writer_pretty(&mut expected, &llsd::typed_json::to_json(value));
                assert!(written.is_ok());
                assert!(json[4..] == expected[..], "{format} to typed JSON: text differs");
            }
            (Err(e), (Err(a), Err(b))) => {
                assert_eq!(e, &a, "{format} to pretty: errors differ");
                assert_eq!(e, &b, "{format} to typed JSON: errors differ");
                assert_eq!(pretty, b"kept", "{format} to pretty: output left on error");
                assert_eq!(json, b"kept", "{format} to typed JSON: output left on error");
            }
            (a, b) => panic!("{format} to views: tree {a:?}, transcode {b:?}"),
        }
    }
});
