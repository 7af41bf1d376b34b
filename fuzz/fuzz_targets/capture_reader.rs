//! Fuzz target: the capture reader must read any file (plain or zstd, any format version) to a
//! record, a warning or an error, never panic, and never hold more than a line's or a record's
//! limit. Version 2 seeds (tests/data/captures/v2.jsonl, a torn body, a hostile `{"raw": LEN}`, a
//! length that does not match the bytes after the line) come from fuzz/seed.py.
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
            match line {
                // Everything a record holds is looked at, raw bodies included.
                Ok(capscope::capture::Line::Record(r)) => {
                    std::hint::black_box(r.body_bytes());
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
});
