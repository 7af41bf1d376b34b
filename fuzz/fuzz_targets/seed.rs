//! Fuzz target: the seed-response and upload-cap rewriters must read any body to a result or an
//! error, never panic; a rewritten body still decodes as LLSD.
#![no_main]

use capscope::caps::{seed, Action, Registry};
use capscope::llsd;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = seed::seed_request_names(data);
    for action in [Action::Learn, Action::Rewrite] {
        let mut registry = Registry::new("http://127.0.0.1:8080");
        let region = registry.add_region("https://sim.example:12043/cap/seed", None, None);
        if let Ok(rewritten) = seed::rewrite_seed(data, region, &mut registry, action) {
            if let Some(body) = rewritten.body {
                assert!(
                    llsd::from_slice(&body).is_ok(),
                    "a rewritten seed no longer decodes"
                );
            }
        }
        let _ = seed::rewrite_uploader(
            data,
            "UploadBakedTexture",
            Some(region),
            &mut registry,
            action,
        );
    }
});
