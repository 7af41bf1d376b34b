//! Fuzz target: the capture reader must read any file (plain or zstd) to a record, a warning or an
//! error, never panic, and never hold more than a line's limit.
#![no_main]

use capscope::capture::Reader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks plain or zstd, so both paths are explored from one corpus.
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let compressed = mode & 1 == 1;
    let input = std::io::Cursor::new(rest.to_vec());
    if let Ok(lines) = Reader::from_reader("fuzz.jsonl", input, compressed) {
        for line in lines {
            if line.is_err() {
                break;
            }
        }
    }
});
