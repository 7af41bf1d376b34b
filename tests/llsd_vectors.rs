//! The LLSD codecs against the reference implementation's vectors (tests/data/llsd/, see SOURCE.md)
//! and against random values.

use base64::Engine as _;
use capscope::llsd::{self, typed_json, Date, Format, Map, Value};
use proptest::prelude::*;
use serde_json::Value as Json;

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("vector base64")
}

fn load(name: &str) -> Json {
    let path = format!("{}/tests/data/llsd/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(&path).expect("vector file")).expect("vector JSON")
}

fn curated() -> Vec<Json> {
    load("llsd-curated.json")["vectors"]
        .as_array()
        .expect("vectors")
        .clone()
}

#[test]
fn curated_vectors_decode_in_every_format() {
    let mut checked = 0;
    for case in curated() {
        let name = case["name"].as_str().unwrap();
        let value = typed_json::from_json(&case["value"]).unwrap();
        for format in Format::ALL {
            let Some(bytes) = case[format.to_string()].as_str() else {
                continue;
            };
            let bytes = b64(bytes);
            let expected = match case.get(format!("{format}_value")) {
                Some(v) => typed_json::from_json(v).unwrap(),
                None => value.clone(),
            };
            let explicit = llsd::from_slice_as(&bytes, format)
                .unwrap_or_else(|e| panic!("{name} ({format}): {e}"));
            assert!(
                explicit.same(&expected),
                "{name} ({format}): {explicit:?} != {expected:?}"
            );
            let auto = llsd::from_slice(&bytes).unwrap_or_else(|e| panic!("{name} auto: {e}"));
            assert!(auto.same(&expected), "{name} ({format}, detected)");
            assert_eq!(llsd::detect(None, &bytes), Some(format), "{name}");
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} decodings checked");
}

#[test]
fn curated_values_round_trip_through_every_format() {
    for case in curated() {
        let name = case["name"].as_str().unwrap();
        let value = typed_json::from_json(&case["value"]).unwrap();
        for format in Format::ALL {
            // XML cannot carry some control characters: the reference has no XML bytes for those.
            if format == Format::Xml && case.get("xml").is_none() {
                continue;
            }
            let bytes = llsd::to_vec(&value, format);
            let back = llsd::from_slice_as(&bytes, format)
                .unwrap_or_else(|e| panic!("{name} ({format}): {e}"));
            assert!(back.same(&value), "{name} ({format}): {back:?}");
        }
        let json = typed_json::to_json(&value);
        assert!(typed_json::from_json(&json).unwrap().same(&value), "{name}");
    }
}

#[test]
fn our_output_matches_the_reference_bytes_where_the_spelling_is_shared() {
    // The reference's XML and notation writers are what the viewer ecosystem reads; we write the
    // same bytes for every curated value (binary differs only for uris, which keep their 'l' tag).
    for case in curated() {
        let name = case["name"].as_str().unwrap();
        let value = typed_json::from_json(&case["value"]).unwrap();
        for format in Format::ALL {
            let Some(bytes) = case[format.to_string()].as_str() else {
                continue;
            };
            if format == Format::Binary && case.get("binary_value").is_some() {
                continue;
            }
            let ours = llsd::to_vec(&value, format);
            assert_eq!(
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&b64(bytes)),
                "{name} ({format})"
            );
        }
    }
}

fn invalid_inputs() -> Vec<(String, Vec<u8>)> {
    let file = load("llsd-invalid.json");
    let mut out = Vec::new();
    for case in file["vectors"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap().to_string();
        let bytes = if let Some(b) = case["bytes"].as_str() {
            b64(b)
        } else {
            let mut v = Vec::new();
            for run in case["pattern"].as_array().unwrap() {
                let chunk = b64(run[0].as_str().unwrap());
                for _ in 0..run[1].as_u64().unwrap() {
                    v.extend_from_slice(&chunk);
                }
            }
            v
        };
        out.push((name, bytes));
    }
    out
}

#[test]
fn invalid_vectors_are_errors_in_every_decoder() {
    let cases = invalid_inputs();
    assert!(cases.len() >= 10);
    for (name, bytes) in &cases {
        let e = llsd::from_slice(bytes).expect_err(name);
        assert!(e.offset() <= bytes.len(), "{name}: offset past the end");
        assert!(e.to_string().ends_with(&format!("at byte {}", e.offset())));
        // Every decoder must survive every input (most of these are not in its format at all).
        for format in Format::ALL {
            let _ = llsd::from_slice_as(bytes, format);
        }
    }
}

#[test]
fn truncations_of_valid_bodies_never_panic() {
    for case in curated() {
        for format in Format::ALL {
            let Some(bytes) = case[format.to_string()].as_str() else {
                continue;
            };
            let bytes = b64(bytes);
            for cut in 0..bytes.len() {
                let _ = llsd::from_slice_as(&bytes[..cut], format);
                let _ = llsd::from_slice(&bytes[..cut]);
            }
        }
    }
}

// ---- random values -------------------------------------------------------------------------

/// Strings XML 1.0 can carry: no C0 controls other than tab, LF and CR, no U+FFFE / U+FFFF (the XML
/// writer drops those, as the reference does; see docs/llsd.md).
fn xml_string() -> impl Strategy<Value = String> {
    "[^\u{0}-\u{8}\u{b}\u{c}\u{e}-\u{1f}\u{fffe}\u{ffff}]{0,12}"
}

fn any_string() -> impl Strategy<Value = String> {
    ".{0,12}"
}

fn real() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-0.0),
        -1e6f64..1e6,
    ]
}

fn date() -> impl Strategy<Value = f64> {
    prop_oneof![
        (-62_135_596_800i64..253_402_300_799).prop_map(|s| s as f64),
        -62_135_596_800f64..253_402_300_799.0,
        real(),
    ]
}

fn value(strings: BoxedStrategy<String>) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Undef),
        any::<bool>().prop_map(Value::Boolean),
        any::<i32>().prop_map(Value::Integer),
        real().prop_map(Value::Real),
        strings.clone().prop_map(Value::String),
        any::<u128>().prop_map(|u| Value::Uuid(uuid::Uuid::from_u128(u))),
        Just(Value::Uuid(uuid::Uuid::nil())),
        date().prop_map(|d| Value::Date(Date(d))),
        strings.clone().prop_map(Value::Uri),
        proptest::collection::vec(any::<u8>(), 0..20).prop_map(Value::Binary),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((strings.clone(), inner), 0..6)
                .prop_map(|entries| Value::Map(entries.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_values_round_trip_binary_and_notation(v in value(any_string().boxed())) {
        for format in [Format::Binary, Format::Notation] {
            let bytes = llsd::to_vec(&v, format);
            let back = llsd::from_slice_as(&bytes, format);
            prop_assert!(back.as_ref().is_ok_and(|b| b.same(&v)), "{format}: {back:?}");
            let auto = llsd::from_slice(&bytes);
            prop_assert!(auto.as_ref().is_ok_and(|b| b.same(&v)), "{format} auto: {auto:?}");
        }
    }

    #[test]
    fn random_values_round_trip_xml(v in value(xml_string().boxed())) {
        let bytes = llsd::to_vec(&v, Format::Xml);
        let back = llsd::from_slice_as(&bytes, Format::Xml);
        prop_assert!(back.as_ref().is_ok_and(|b| b.same(&v)), "{back:?}\n{}", String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn random_values_round_trip_typed_json(v in value(any_string().boxed())) {
        // Typed JSON maps are JSON objects: duplicate keys cannot survive, so dedupe first.
        let v = dedupe(v);
        let text = typed_json::to_json(&v).to_string();
        let back = typed_json::from_json(&serde_json::from_str(&text).unwrap());
        prop_assert!(back.as_ref().is_ok_and(|b| b.same(&v)), "{back:?}");
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        for format in Format::ALL {
            let _ = llsd::from_slice_as(&bytes, format);
        }
        let _ = llsd::from_slice(&bytes);
    }
}

fn dedupe(v: Value) -> Value {
    match v {
        Value::Array(items) => Value::Array(items.into_iter().map(dedupe).collect()),
        Value::Map(map) => {
            let mut out = Map::new();
            for (k, v) in map.0 {
                if out.get(&k).is_none() {
                    out.push(k, dedupe(v));
                }
            }
            Value::Map(out)
        }
        other => other,
    }
}

/// The deepest accepted nesting, in every format, decodes on a thread with a small stack (tokio's
/// worker threads have 2 MiB; this checks a quarter of that, even in debug builds).
#[test]
fn max_depth_fits_a_small_stack() {
    const STACK: usize = 512 * 1024;
    let n = llsd::MAX_DEPTH;
    let xml = format!(
        "<llsd>{}{}</llsd>",
        "<array>".repeat(n),
        "</array>".repeat(n)
    );
    let notation = format!("{}{}", "[".repeat(n), "]".repeat(n));
    let mut binary = b"[\0\0\0\x01".repeat(n - 1);
    binary.extend_from_slice(b"[\0\0\0\0]");
    binary.extend(std::iter::repeat_n(b']', n - 1));
    let inputs = [
        (Format::Xml, xml.into_bytes()),
        (Format::Notation, notation.into_bytes()),
        (Format::Binary, binary),
    ];
    for (format, bytes) in inputs {
        let handle = std::thread::Builder::new()
            .stack_size(STACK)
            .spawn(move || {
                let v = llsd::from_slice_as(&bytes, format).map_err(|e| e.to_string())?;
                let out = llsd::to_vec(&v, format);
                let _ = llsd::pretty(&v);
                let _ = typed_json::to_json(&v);
                llsd::from_slice_as(&out, format).map_err(|e| e.to_string())
            })
            .unwrap();
        let result = handle.join().expect("decoder thread");
        assert!(result.is_ok(), "{format}: {result:?}");
    }
}

// ---- transcoding without the tree ----------------------------------------------------------

/// `transcode` must give exactly what decoding to the tree and writing it gives, to every format:
/// the same bytes for a body that decodes, the same error (kind and offset) for one that does not,
/// and `out` untouched on an error.
fn assert_transcode_matches_tree(label: &str, bytes: &[u8], format: Format) {
    let tree = llsd::from_slice_as(bytes, format);
    for to in Format::ALL {
        let mut out = b"kept".to_vec();
        let direct = llsd::transcode(bytes, format, to, &mut out);
        match (&tree, direct) {
            (Ok(value), Ok(())) => {
                assert_eq!(&out[..4], b"kept", "{label} ({format} to {to})");
                let expected = llsd::to_vec(value, to);
                assert!(
                    out[4..] == expected[..],
                    "{label} ({format} to {to}): bytes differ"
                );
            }
            (Err(a), Err(b)) => {
                assert_eq!(a, &b, "{label} ({format} to {to})");
                assert_eq!(
                    out, b"kept",
                    "{label} ({format} to {to}): output left on error"
                );
            }
            (a, b) => panic!("{label} ({format} to {to}): tree {a:?}, transcode {b:?}"),
        }
    }
    // The binary shorthand is the same call.
    let mut a = Vec::new();
    let mut b = Vec::new();
    assert_eq!(
        llsd::transcode_to_binary(bytes, format, &mut a),
        llsd::transcode(bytes, format, Format::Binary, &mut b)
    );
    assert_eq!(a, b, "{label} ({format})");
    assert_views_match_tree(label, bytes, format, &tree);
}

/// The human view and typed JSON written as the body is read: the text `llsd::pretty` and
/// serde_json's pretty printer give for the tree, or the tree's error with `out` untouched.
fn assert_views_match_tree(
    label: &str,
    bytes: &[u8],
    format: Format,
    tree: &Result<Value, llsd::Error>,
) {
    let mut pretty = b"kept".to_vec();
    let mut json = b"kept".to_vec();
    let got = (
        llsd::transcode_pretty(bytes, format, &mut pretty),
        llsd::typed_json::transcode(bytes, format, &mut json),
    );
    match (tree, got) {
        (Ok(value), (Ok(()), Ok(()))) => {
            assert!(
                pretty[4..] == *llsd::pretty(value).as_bytes(),
                "{label} ({format} to pretty): text differs"
            );
            let expected = serde_json::to_vec_pretty(&llsd::typed_json::to_json(value)).unwrap();
            assert!(
                json[4..] == expected[..],
                "{label} ({format} to typed JSON): text differs:\n{}\n{}",
                String::from_utf8_lossy(&json[4..]),
                String::from_utf8_lossy(&expected)
            );
        }
        (Err(e), (Err(a), Err(b))) => {
            assert_eq!(e, &a, "{label} ({format} to pretty)");
            assert_eq!(e, &b, "{label} ({format} to typed JSON)");
            assert_eq!(pretty, b"kept", "{label} ({format} to pretty): output left");
            assert_eq!(
                json, b"kept",
                "{label} ({format} to typed JSON): output left"
            );
        }
        (a, b) => panic!("{label} ({format} to views): tree {a:?}, transcode {b:?}"),
    }
}

/// Typed JSON keeps one entry per key (the first position, the last value), which a writer that
/// has written the first value cannot give: such a body, and a map too large to check as it is
/// written, go through the tree and still give its text.
#[test]
fn typed_json_of_duplicate_keys_and_large_maps_is_the_trees() {
    let mut large = String::from("{");
    for i in 0..200 {
        large.push_str(&format!("'k{}':i{i},", i % 150));
    }
    large.push('}');
    for body in [
        "{'a':i1,'b':[{'x':i1,'x':'two'}],'a':i3}".to_string(),
        "[{'a':i1},{'a':i2}]".to_string(),
        large,
    ] {
        let tree = llsd::from_slice_as(body.as_bytes(), Format::Notation);
        assert!(tree.is_ok(), "{body}");
        assert_views_match_tree(&body, body.as_bytes(), Format::Notation, &tree);
    }
}

/// Every input the suite knows of, in every format: the curated vectors (and every truncation of
/// them, which reaches the error paths), the invalid vectors and the fuzz corpus.
#[test]
fn transcoding_matches_the_tree_on_vectors_and_the_fuzz_corpus() {
    let mut checked = 0;
    for case in curated() {
        let name = case["name"].as_str().unwrap();
        for format in Format::ALL {
            if let Some(bytes) = case[format.to_string()].as_str() {
                let bytes = b64(bytes);
                for cut in 0..=bytes.len() {
                    assert_transcode_matches_tree(name, &bytes[..cut], format);
                }
                checked += 1;
            }
        }
    }
    let mut inputs = invalid_inputs();
    let corpus = format!("{}/fuzz/corpus", env!("CARGO_MANIFEST_DIR"));
    let mut corpus_files = 0;
    for dir in std::fs::read_dir(&corpus).expect("fuzz corpus") {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&dir).unwrap() {
            let path = file.unwrap().path();
            inputs.push((path.display().to_string(), std::fs::read(&path).unwrap()));
            corpus_files += 1;
        }
    }
    assert!(corpus_files > 100, "only {corpus_files} corpus files");
    for (label, bytes) in &inputs {
        for format in Format::ALL {
            assert_transcode_matches_tree(label, bytes, format);
            checked += 1;
        }
    }
    assert!(checked > 500, "only {checked} inputs checked");
}

/// The nesting limit holds on the transcoding path too (it is the decoder's check, not the tree's).
#[test]
fn transcoding_keeps_the_depth_limit() {
    for n in [llsd::MAX_DEPTH, llsd::MAX_DEPTH + 1] {
        let notation = format!("{}{}", "[".repeat(n), "]".repeat(n));
        let mut binary = b"[\0\0\0\x01".repeat(n - 1);
        binary.extend_from_slice(b"[\0\0\0\0]");
        binary.extend(std::iter::repeat_n(b']', n - 1));
        let xml = format!(
            "<llsd>{}{}</llsd>",
            "<array>".repeat(n),
            "</array>".repeat(n)
        );
        for (format, bytes) in [
            (Format::Notation, notation.into_bytes()),
            (Format::Binary, binary),
            (Format::Xml, xml.into_bytes()),
        ] {
            let mut out = Vec::new();
            let got = llsd::transcode_to_binary(&bytes, format, &mut out);
            if n > llsd::MAX_DEPTH {
                let e = got.expect_err("too deep");
                assert_eq!(
                    e.kind(),
                    &llsd::ErrorKind::TooDeep {
                        limit: llsd::MAX_DEPTH
                    }
                );
            } else {
                assert!(got.is_ok(), "{format}: {got:?}");
            }
            assert_transcode_matches_tree("nesting", &bytes, format);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_values_transcode_like_the_tree(v in value(any_string().boxed())) {
        // Compared with the tree the bytes decode to, not with `v`: notation does not keep
        // everything (a date of -0.0 reads back as 0.0).
        for format in [Format::Binary, Format::Notation] {
            let bytes = llsd::to_vec(&v, format);
            for to in Format::ALL {
                let mut out = Vec::new();
                prop_assert!(llsd::transcode(&bytes, format, to, &mut out).is_ok());
            }
            assert_transcode_matches_tree("random value", &bytes, format);
        }
    }

    #[test]
    fn random_bytes_transcode_like_the_tree(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        for format in Format::ALL {
            assert_transcode_matches_tree("random", &bytes, format);
        }
    }
}
