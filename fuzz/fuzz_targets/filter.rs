//! Fuzz target: the filter parser must accept or refuse any text with an error, never panic; a
//! filter it accepts prints back to text that parses to the same filter, and evaluates on a record.
#![no_main]

use capscope::filter::Filter;
use capscope::record::{Kind, Record};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(filter) = Filter::parse(text) else {
        return;
    };
    let printed = filter.to_string();
    let again = Filter::parse(&printed)
        .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which does not parse: {e}"));
    assert_eq!(again.to_string(), printed, "printing is stable");
    let _ = filter.matches(&Record::new(1, Kind::Http));
});
