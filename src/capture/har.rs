//! HAR 1.2 export of a capture (for browsers' and other tools' HAR viewers).
//!
//! Every HTTP and login record with a request becomes an entry. Event records are folded into their
//! poll's entry as an `_events` array (`{message, index, body}`, the body as LLSD typed JSON).
//! Tunnels and connection errors have no HTTP exchange and are not entries; `log._capscope` counts
//! them, lists lag markers, and keeps events whose poll is not in the capture. Each entry carries a
//! `_capscope` object (record id, kind, cap, region, notes, error). Underscore fields are the HAR
//! spec's custom-field convention.
//!
//! This module owns the mapping from records to HAR; it must not read or write files.

use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::{Capture, LagMarker};
use crate::filter::decode_body;
use crate::record::{Body, Header as RecHeader, Kind, Record};
use crate::util::time::iso8601_millis;

/// The HAR version written.
pub const HAR_VERSION: &str = "1.2";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Har {
    pub log: Log,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Log {
    pub version: String,
    pub creator: Creator,
    pub entries: Vec<Entry>,
    #[serde(rename = "_capscope")]
    pub capscope: LogExtra,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Creator {
    pub name: String,
    pub version: String,
}

/// What the capture held beyond HAR entries.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LogExtra {
    pub format_version: u32,
    pub secrets_kept: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grid: Option<String>,
    /// Records with no HTTP exchange, by kind (`tunnel`, `error`), not exported as entries.
    pub skipped: std::collections::BTreeMap<String, u64>,
    /// Where the writer lost records.
    pub lagged: Vec<LagMarker>,
    /// Event records whose poll is not in the capture.
    pub unattached_events: Vec<HarEvent>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub started_date_time: String,
    /// Total milliseconds (the sum of `send`, `wait` and `receive`).
    pub time: f64,
    pub request: HarRequest,
    pub response: HarResponse,
    pub cache: Cache,
    pub timings: Timings,
    #[serde(rename = "_capscope")]
    pub capscope: EntryExtra,
    #[serde(rename = "_events", default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<HarEvent>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NameValue {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HarRequest {
    pub method: String,
    pub url: String,
    pub http_version: String,
    pub cookies: Vec<NameValue>,
    pub headers: Vec<NameValue>,
    pub query_string: Vec<NameValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_data: Option<PostData>,
    pub headers_size: i64,
    pub body_size: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostData {
    pub mime_type: String,
    /// HAR 1.2 makes `params` and `text` mutually exclusive: capscope writes `text`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<NameValue>,
    pub text: String,
    /// `base64` when `text` holds base64 of a body that is not UTF-8 (a common HAR extension).
    #[serde(rename = "_encoding", default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HarResponse {
    pub status: u16,
    pub status_text: String,
    pub http_version: String,
    pub cookies: Vec<NameValue>,
    pub headers: Vec<NameValue>,
    pub content: Content,
    #[serde(rename = "redirectURL")]
    pub redirect_url: String,
    pub headers_size: i64,
    pub body_size: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Content {
    /// Bytes of the body after undoing any content encoding (the wire size when cut short).
    pub size: i64,
    pub mime_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Cache {}

/// Milliseconds; `-1` where capscope does not measure the step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Timings {
    pub blocked: f64,
    pub dns: f64,
    pub connect: f64,
    pub send: f64,
    pub wait: f64,
    pub receive: f64,
    pub ssl: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntryExtra {
    pub id: u64,
    pub kind: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The agent the exchange belongs to (several viewers on one capscope).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Whether capscope rewrote the response body (the capture keeps what the grid sent too).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rewritten: bool,
}

/// One event of a poll's response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HarEvent {
    pub id: u64,
    pub message: String,
    pub index: usize,
    /// The event body as LLSD typed JSON, or as text when it does not decode.
    pub body: serde_json::Value,
}

/// The HAR document for a capture.
pub fn to_har(capture: &Capture) -> Har {
    let mut events: HashMap<u64, Vec<&Record>> = HashMap::new();
    let ids: std::collections::HashSet<u64> = capture
        .records
        .iter()
        .filter(|r| r.kind != Kind::Event)
        .map(|r| r.id)
        .collect();
    let mut extra = LogExtra {
        format_version: capture.header.format_version,
        secrets_kept: capture.header.secrets_kept,
        grid: capture.header.grid.clone(),
        lagged: capture.lags.clone(),
        ..LogExtra::default()
    };
    for r in &capture.records {
        if r.kind == Kind::Event {
            match r.parent.filter(|p| ids.contains(p)) {
                Some(p) => events.entry(p).or_default().push(r),
                None => extra.unattached_events.extend(har_event(r)),
            }
        }
    }
    let base = base_url(capture.header.listen.as_deref());
    let mut entries = Vec::new();
    for r in &capture.records {
        match (r.kind, &r.request) {
            (Kind::Event, _) => {}
            (Kind::Http | Kind::Login, Some(_)) => {
                let mut e = entry(r, &base);
                if let Some(evs) = events.get_mut(&r.id) {
                    evs.sort_by_key(|e| e.event.as_ref().map_or(0, |i| i.index));
                    e.events = evs.iter().filter_map(|e| har_event(e)).collect();
                }
                entries.push(e);
            }
            (kind, _) => {
                let name = match kind {
                    Kind::Tunnel => "tunnel",
                    Kind::Error => "error",
                    _ => "no_request",
                };
                *extra.skipped.entry(name.to_owned()).or_default() += 1;
            }
        }
    }
    Har {
        log: Log {
            version: HAR_VERSION.to_owned(),
            creator: Creator {
                name: "capscope".to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
            },
            entries,
            capscope: extra,
        },
    }
}

fn har_event(r: &Record) -> Option<HarEvent> {
    let ev = r.event.as_ref()?;
    Some(HarEvent {
        id: r.id,
        message: ev.message.clone(),
        index: ev.index,
        body: body_json(&ev.body),
    })
}

/// A body for reading: LLSD as typed JSON, else text (or base64 text).
fn body_json(b: &Body) -> serde_json::Value {
    match decode_body(b) {
        Some(v) => crate::llsd::typed_json::to_json(&v),
        None => match std::str::from_utf8(&b.data) {
            Ok(s) => serde_json::Value::String(s.to_owned()),
            Err(_) => serde_json::json!({ "base64": STANDARD.encode(&b.data) }),
        },
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Where capscope listened, as the base of the URLs of requests made to capscope itself.
fn base_url(listen: Option<&str>) -> String {
    format!("http://{}", listen.unwrap_or(UNKNOWN_LISTEN))
}

/// The host named when a capture does not say where capscope listened.
const UNKNOWN_LISTEN: &str = "localhost";

/// `url` made absolute: HAR requires it, and a request addressed to capscope itself keeps its
/// origin-form target (`/cap/<token>`) when it was cut off before capscope knew where it would go.
fn absolute(url: &str, base: &str) -> String {
    if url.contains("://") {
        url.to_owned()
    } else if url.starts_with('/') {
        format!("{base}{url}")
    } else {
        format!("{base}/{url}")
    }
}

fn entry(r: &Record, base: &str) -> Entry {
    let t = r.timings;
    let send = t.request_sent_us.unwrap_or(0);
    let headers = t.response_headers_us.unwrap_or(send).max(send);
    let done = t.done_us.unwrap_or(headers).max(headers);
    let timings = Timings {
        blocked: -1.0,
        dns: -1.0,
        connect: -1.0,
        send: ms(send),
        wait: ms(headers - send),
        receive: ms(done - headers),
        ssl: -1.0,
    };
    let time = timings.send + timings.wait + timings.receive;
    let req = r.request.clone().unwrap_or_default();
    let request = HarRequest {
        method: req.method.to_string(),
        url: absolute(&req.url, base),
        http_version: version_or_default(&req.version),
        cookies: request_cookies(&req.headers),
        headers: name_values(&req.headers),
        query_string: query_string(&req.url),
        post_data: (req.body.size > 0 || !req.body.data.is_empty()).then(|| {
            let (text, encoding) = text_or_base64(&req.body);
            PostData {
                mime_type: header(&req.headers, "content-type").unwrap_or_default(),
                params: Vec::new(),
                text,
                encoding,
                comment: truncation_note(&req.body),
            }
        }),
        headers_size: -1,
        body_size: i64::try_from(req.body.size).unwrap_or(i64::MAX),
    };
    let response = match &r.response {
        Some(resp) => {
            let (text, encoding) = text_or_base64(&resp.body);
            HarResponse {
                status: resp.status,
                status_text: http::StatusCode::from_u16(resp.status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("")
                    .to_owned(),
                http_version: version_or_default(&resp.version),
                cookies: response_cookies(&resp.headers),
                headers: name_values(&resp.headers),
                content: Content {
                    size: content_size(&resp.body),
                    mime_type: header(&resp.headers, "content-type")
                        .unwrap_or_else(|| "x-unknown".to_owned()),
                    text: Some(text),
                    encoding,
                    comment: truncation_note(&resp.body),
                },
                redirect_url: header(&resp.headers, "location").unwrap_or_default(),
                headers_size: -1,
                body_size: i64::try_from(resp.body.size).unwrap_or(i64::MAX),
            }
        }
        // No response (the exchange failed): status 0, as browsers export failed requests.
        None => HarResponse {
            status: 0,
            status_text: String::new(),
            http_version: version_or_default(&req.version),
            cookies: Vec::new(),
            headers: Vec::new(),
            content: Content {
                size: 0,
                mime_type: "x-unknown".to_owned(),
                text: None,
                encoding: None,
                comment: r.error.clone(),
            },
            redirect_url: String::new(),
            headers_size: -1,
            body_size: -1,
        },
    };
    Entry {
        started_date_time: iso8601_millis(r.started_us),
        time,
        request,
        response,
        cache: Cache {},
        timings,
        capscope: EntryExtra {
            id: r.id,
            kind: r.kind,
            cap: r.cap.clone(),
            region: r.region.clone(),
            agent: r.agent.clone(),
            client_url: req.client_url.as_deref().map(|u| absolute(u, base)),
            error: r.error.clone(),
            notes: r.notes.clone(),
            rewritten: r
                .response
                .as_ref()
                .is_some_and(|s| s.body.original.is_some()),
        },
        events: Vec::new(),
    }
}

fn version_or_default(v: &str) -> String {
    if v.is_empty() {
        "HTTP/1.1".to_owned()
    } else {
        v.to_owned()
    }
}

fn content_size(b: &Body) -> i64 {
    let n = if b.truncated {
        b.size
    } else {
        b.data.len() as u64
    };
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn truncation_note(b: &Body) -> Option<String> {
    b.truncated.then(|| {
        format!(
            "body cut at the capture limit: {} of {} bytes kept",
            b.data.len(),
            b.size
        )
    })
}

fn text_or_base64(b: &Body) -> (String, Option<String>) {
    match std::str::from_utf8(&b.data) {
        Ok(s) => (s.to_owned(), None),
        Err(_) => (STANDARD.encode(&b.data), Some("base64".to_owned())),
    }
}

fn header(headers: &[RecHeader], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.to_string())
}

fn name_values(headers: &[RecHeader]) -> Vec<NameValue> {
    headers
        .iter()
        .map(|h| NameValue {
            name: h.name.to_string(),
            value: h.value.to_string(),
        })
        .collect()
}

fn pair(s: &str) -> Option<NameValue> {
    let (n, v) = s.split_once('=')?;
    Some(NameValue {
        name: n.trim().to_owned(),
        value: v.trim().to_owned(),
    })
}

fn request_cookies(headers: &[RecHeader]) -> Vec<NameValue> {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("cookie"))
        .flat_map(|h| h.value.split(';').filter_map(pair).collect::<Vec<_>>())
        .collect()
}

fn response_cookies(headers: &[RecHeader]) -> Vec<NameValue> {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("set-cookie"))
        .filter_map(|h| h.value.split(';').next().and_then(pair))
        .collect()
}

fn query_string(url: &str) -> Vec<NameValue> {
    let Some((_, q)) = url.split_once('?') else {
        return Vec::new();
    };
    let q = q.split('#').next().unwrap_or(q);
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (n, v) = p.split_once('=').unwrap_or((p, ""));
            NameValue {
                name: percent_decode(n),
                value: percent_decode(v),
            }
        })
        .collect()
}

/// Form decoding of one query component: `+` is a space, then `%XX` escapes (percent-encoding),
/// lossy on bad UTF-8; a malformed escape (`%zz`, a lone `%`) is kept as it is.
fn percent_decode(s: &str) -> String {
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_form_targets_become_absolute_and_absolute_urls_stay() {
        let base = base_url(Some("127.0.0.1:8080"));
        assert_eq!(absolute("/cap/abc", &base), "http://127.0.0.1:8080/cap/abc");
        assert_eq!(absolute("cap", &base), "http://127.0.0.1:8080/cap");
        assert_eq!(absolute("https://h:1/p?q", &base), "https://h:1/p?q");
        assert_eq!(base_url(None), "http://localhost");
    }

    #[test]
    fn query_strings_are_split_and_percent_decoded() {
        let q =
            query_string("https://h/p?a=1%202&b=%zz&c=x+y&d&%2b=%+1&e=%4&f=%&g=%E2%82%AC%ff#frag");
        let pairs: Vec<(&str, &str)> = q
            .iter()
            .map(|p| (p.name.as_str(), p.value.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("a", "1 2"),
                ("b", "%zz"),
                ("c", "x y"),
                ("d", ""),
                ("+", "% 1"),
                ("e", "%4"),
                ("f", "%"),
                ("g", "€\u{fffd}"),
            ]
        );
        assert!(query_string("https://h/p").is_empty());
    }
}
