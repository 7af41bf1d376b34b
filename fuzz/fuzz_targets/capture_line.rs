//! Fuzz target: the capture writer's hand-written record line (`capture::line::write_record`) must
//! be byte for byte what serde_json writes for the same record, for any strings in every string
//! field (control characters, quotes, backslashes, any Unicode, a header value that was not UTF-8
//! on the wire as the proxy records it), any numbers and any optional part present or absent.
//!
//! The input: 8 bytes choose which optional parts are present and the numbers; the rest, split at
//! the byte 0xFE (never part of UTF-8), gives the strings, each read lossily as the proxy reads a
//! header value.
#![no_main]

use bytes::Bytes;
use capscope::capture::record_lines_for_fuzzing;
use capscope::record::{
    Body, EventInfo, Header, Kind, Record, Request, Response, State, Timings, TunnelInfo,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((head, rest)) = data.split_first_chunk::<8>() else {
        return;
    };
    let bits = u64::from_le_bytes(*head);
    let on = |bit: u32| bits & (1 << bit) != 0;
    let number = |shift: u32| bits.rotate_left(shift);
    let mut strings = rest
        .split(|&b| b == 0xfe)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .cycle();
    let mut text = || strings.next().unwrap_or_default();
    let body = |text: &mut dyn FnMut() -> String, seed: u64| Body {
        data: Bytes::from(vec![b'x'; (seed % 3) as usize]),
        size: seed,
        truncated: seed & 4 != 0,
        content_encoding: (seed & 8 != 0).then(|| text()),
        original: (seed & 16 != 0).then(|| Bytes::from(vec![0; (seed % 2) as usize])),
    };
    let kinds = [
        Kind::Http,
        Kind::Event,
        Kind::Login,
        Kind::Tunnel,
        Kind::Error,
    ];
    let states = [State::Open, State::Done, State::Failed];
    let mut r = Record::started_at(number(7), kinds[(bits % 5) as usize], number(13) as i64);
    r.state = states[(bits % 3) as usize];
    r.client = on(0).then(|| text().into());
    if on(1) {
        let headers = (0..bits % 4)
            .map(|_| Header {
                name: text().into(),
                value: text().into(),
            })
            .collect();
        r.request = Some(Request {
            method: text().into(),
            url: text(),
            client_url: on(2).then(|| text()),
            version: text().into(),
            headers,
            body: body(&mut text, number(19)),
        });
    }
    if on(3) {
        let headers = (0..(bits >> 8) % 4)
            .map(|_| Header {
                name: text().into(),
                value: text().into(),
            })
            .collect();
        r.response = Some(Response {
            status: number(23) as u16,
            version: text().into(),
            headers,
            body: body(&mut text, number(29)),
        });
    }
    r.timings = Timings {
        request_sent_us: on(4).then(|| number(31)),
        response_headers_us: on(5).then(|| number(37)),
        done_us: on(6).then(|| number(41)),
    };
    r.error = on(7).then(|| text());
    r.cap = on(8).then(|| text());
    r.region = on(9).then(|| text());
    r.agent = on(10).then(|| text());
    if on(11) {
        r.event = Some(EventInfo {
            message: text(),
            index: number(43) as usize,
            queue_id: on(12).then(|| number(47) as i64),
            body: body(&mut text, number(53)),
        });
    }
    r.parent = on(13).then(|| number(59));
    if on(14) {
        r.tunnel = Some(TunnelInfo {
            target: text(),
            bytes_up: number(61),
            bytes_down: number(3),
        });
    }
    r.notes = (0..(bits >> 16) % 3).map(|_| text()).collect();
    let (written, reference) = record_lines_for_fuzzing(&r);
    assert!(
        written == reference,
        "the capture line differs from serde_json's:\n{}\n{}",
        String::from_utf8_lossy(&written),
        String::from_utf8_lossy(&reference)
    );
});
