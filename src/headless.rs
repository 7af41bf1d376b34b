//! The headless log: one line per finished record, mitmdump-style (time, client, method, URL or cap,
//! status, size, duration), written to standard output so that `capscope run > flows.log` and pipes
//! get the records alone (the `tracing` log, on standard error, carries only diagnostics).
//!
//! A [`Bus`](crate::record::Bus) subscriber like any other consumer. It owns only the line format and
//! its loop; it must not touch the proxy or change records.

use std::io::Write;

use time::OffsetDateTime;

use crate::filter::Filter;
use crate::record::{Kind, Received, Record, State, Subscriber};

/// The `tracing` target of the log's own diagnostics (a lag, a closed output).
pub const TARGET: &str = "capscope::headless";

/// Writes every finished record (every one that `filter` matches, when there is one) to standard
/// output until the stream ends.
pub async fn run(records: Subscriber, filter: Option<Filter>) {
    run_to(records, filter, std::io::stdout()).await;
}

/// [`run`] with the output passed in. Each line is flushed as it is written (so `tail -f` on a
/// redirected log keeps up). When the output fails (a closed pipe: `capscope run | head`), the log
/// says so once on standard error and stops writing; the proxy goes on.
pub async fn run_to(mut records: Subscriber, filter: Option<Filter>, mut out: impl Write) {
    let mut writable = true;
    while let Some(received) = records.recv().await {
        match received {
            Received::Record(r) => {
                if !writable || filter.as_ref().is_some_and(|f| !f.matches(&r)) {
                    continue;
                }
                if let Some(line) = line(&r) {
                    if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush()) {
                        tracing::warn!(
                            target: TARGET,
                            "cannot write records to the output any more ({e}); the proxy goes on \
                             and the capture still gets them"
                        );
                        writable = false;
                    }
                }
            }
            Received::Lagged(n) => {
                tracing::warn!(target: TARGET, "the log fell behind: {n} records not shown")
            }
        }
    }
}

/// The line for a record; `None` while it is still open.
pub fn line(r: &Record) -> Option<String> {
    if r.state == State::Open {
        return None;
    }
    let time = clock(r.started_us);
    let client = r.client.as_deref().unwrap_or("-");
    let took = r.timings.done_us.map(duration).unwrap_or_default();
    let failed = match (&r.state, &r.error) {
        (State::Failed, Some(e)) => format!(" FAILED: {e}"),
        (State::Failed, None) => " FAILED".into(),
        _ => String::new(),
    };
    let body = match r.kind {
        Kind::Http | Kind::Login => {
            let (method, target) = match &r.request {
                Some(req) => (req.method.as_str(), req.url.as_str()),
                None => ("-", "-"),
            };
            let target = match &r.cap {
                Some(cap) => format!("[{cap}] {target}"),
                None => target.to_owned(),
            };
            let status = r
                .response
                .as_ref()
                .map_or_else(|| "-".into(), |resp| resp.status.to_string());
            let size = r.response.as_ref().map_or(0, |resp| resp.body.size);
            format!("{method} {target} {status} {} {took}", size_text(size))
        }
        Kind::Event => {
            let name = r.event.as_ref().map_or("-", |e| e.message.as_str());
            format!("EVENT {name}")
        }
        Kind::Tunnel => match &r.tunnel {
            Some(t) => format!(
                "TUNNEL {} up {} down {} {took}",
                t.target,
                size_text(t.bytes_up),
                size_text(t.bytes_down)
            ),
            None => "TUNNEL".into(),
        },
        Kind::Error => "ERROR".into(),
    };
    let notes = if r.notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", r.notes.join("; "))
    };
    Some(format!("{time} {client} {body}{failed}{notes}"))
}

fn clock(us: i64) -> String {
    match OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000) {
        Ok(t) => format!(
            "{:02}:{:02}:{:02}.{:03}",
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        ),
        Err(_) => "--:--:--.---".into(),
    }
}

fn duration(us: u64) -> String {
    if us < 1000 {
        format!("{us}us")
    } else if us < 10_000_000 {
        format!("{}ms", us / 1000)
    } else {
        format!("{:.1}s", us as f64 / 1e6)
    }
}

fn size_text(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if bytes < 1024 {
        format!("{bytes}b")
    } else if b < KIB * KIB {
        format!("{:.1}k", b / KIB)
    } else {
        format!("{:.1}M", b / KIB / KIB)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Body, Request, Response, TunnelInfo};

    #[test]
    fn an_http_record_makes_one_line_with_the_essentials() {
        let mut r = Record::new(1, Kind::Http);
        assert!(line(&r).is_none(), "open records make no line");
        r.started_us = 3_600_000_000 + 61_500_000; // 01:01:01.500 UTC on 1970-01-01
        r.state = State::Done;
        r.client = Some("127.0.0.1:5000".into());
        r.request = Some(Request {
            method: "POST".into(),
            url: "https://sim.example:12043/cap/abc".into(),
            ..Request::default()
        });
        r.response = Some(Response {
            status: 200,
            body: Body::whole(vec![0u8; 2048]),
            ..Response::default()
        });
        r.timings.done_us = Some(35_000);
        r.cap = Some("EventQueueGet".into());
        assert_eq!(
            line(&r).unwrap(),
            "01:01:01.500 127.0.0.1:5000 POST [EventQueueGet] https://sim.example:12043/cap/abc 200 2.0k 35ms"
        );
    }

    #[test]
    fn failures_and_tunnels_say_what_happened() {
        let mut r = Record::new(2, Kind::Tunnel);
        r.started_us = 0;
        r.state = State::Failed;
        r.error = Some("could not connect".into());
        r.tunnel = Some(TunnelInfo {
            target: "h:22".into(),
            bytes_up: 10,
            bytes_down: 3 * 1024 * 1024,
        });
        r.timings.done_us = Some(12_000_000);
        assert_eq!(
            line(&r).unwrap(),
            "00:00:00.000 - TUNNEL h:22 up 10b down 3.0M 12.0s FAILED: could not connect"
        );
    }
}
