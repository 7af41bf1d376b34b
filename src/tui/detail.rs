//! The detail of one record, prepared as styled lines: the summary (with what a rewrite changed and
//! the decoded binary fields), each body as a foldable LLSD tree, the headers, and a hex dump.
//!
//! Pure functions of a record (bodies are decoded through the store's cache); no terminal here.

use std::collections::HashSet;

use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};

use super::state::{Detail, DetailLine, Tab};
use crate::caps::fields;
use crate::llsd::Value;
use crate::record::{Body, Header, Kind, Record, State};
use crate::store::{self, Decoded, Store, Which};

/// The most body bytes the raw tab dumps.
pub const RAW_MAX: usize = 64 * 1024;
/// The most characters of one string value shown in a tree line.
const VALUE_MAX: usize = 400;

fn style(fg: Color) -> Style {
    Style::default().fg(fg)
}

fn dim() -> Style {
    Style::default().fg(Color::DarkGray)
}

fn plain(text: impl Into<String>) -> DetailLine {
    DetailLine {
        line: Line::from(text.into()),
        fold: None,
    }
}

fn styled(spans: Vec<Span<'static>>) -> DetailLine {
    DetailLine {
        line: Line::from(spans),
        fold: None,
    }
}

fn heading(text: &str) -> DetailLine {
    styled(vec![Span::styled(
        text.to_owned(),
        Style::default().add_modifier(Modifier::BOLD),
    )])
}

/// Builds the detail of the row at `seq` for `tab`.
pub fn build(
    store: &mut Store,
    seq: u64,
    tab: Tab,
    folded: &HashSet<String>,
    search: Option<&str>,
) -> Detail {
    let Some(record) = store.get(seq).map(|e| e.record.clone()) else {
        return Detail {
            seq,
            title: Line::from("(this record is no longer held)"),
            lines: Vec::new(),
            cursor: 0,
            scroll: 0,
            matches: Vec::new(),
        };
    };
    let mut lines = Vec::new();
    match tab {
        Tab::Summary => summary(store, seq, &record, &mut lines),
        Tab::Request => match &record.request {
            Some(q) => body_lines(
                store,
                seq,
                Which::Request,
                &q.body,
                folded,
                "request",
                &mut lines,
            ),
            None => lines.push(plain("no request")),
        },
        Tab::Response => {
            if let Some(ev) = &record.event {
                body_lines(
                    store,
                    seq,
                    Which::Event,
                    &ev.body,
                    folded,
                    "event",
                    &mut lines,
                );
            } else if let Some(p) = &record.response {
                body_lines(
                    store,
                    seq,
                    Which::Response,
                    &p.body,
                    folded,
                    "response",
                    &mut lines,
                );
            } else {
                lines.push(plain("no response"));
            }
        }
        Tab::Headers => headers(&record, &mut lines),
        Tab::Raw => raw(&record, &mut lines),
    }
    let mut matches = Vec::new();
    if let Some(needle) = search.filter(|s| !s.is_empty()) {
        let needle = needle.to_lowercase();
        for (i, l) in lines.iter_mut().enumerate() {
            if let Some(h) = highlight(&l.line, &needle) {
                l.line = h;
                matches.push(i);
            }
        }
    }
    Detail {
        seq,
        title: title(&record),
        lines,
        cursor: 0,
        scroll: 0,
        matches,
    }
}

/// The one-line title: method, name, URL, status, size, time.
pub fn title(r: &Record) -> Line<'static> {
    let mut spans = Vec::new();
    if let Some(ev) = &r.event {
        spans.push(Span::styled("EVENT ", style(Color::Magenta)));
        spans.push(Span::styled(
            ev.message.clone(),
            Style::default().add_modifier(Modifier::BOLD),
        ));
        if let Some(id) = ev.queue_id {
            spans.push(Span::raw(format!("  queue id {id}, #{}", ev.index)));
        }
        return Line::from(spans);
    }
    if let Some(q) = &r.request {
        spans.push(Span::styled(format!("{} ", q.method), style(Color::Cyan)));
    }
    if let Some(cap) = &r.cap {
        spans.push(Span::styled(
            format!("{cap} "),
            Style::default().add_modifier(Modifier::BOLD),
        ));
    }
    if let Some(q) = &r.request {
        spans.push(Span::raw(q.url.clone()));
    }
    if let Some(p) = &r.response {
        spans.push(Span::styled(
            format!("  {}", p.status),
            super::render::status_style(p.status),
        ));
        spans.push(Span::raw(format!(
            "  {}",
            super::render::size_text(p.body.size)
        )));
    }
    if let Some(d) = r.timings.done_us {
        spans.push(Span::raw(format!("  {}", super::render::duration_text(d))));
    }
    Line::from(spans)
}

fn field(name: &str, value: impl Into<String>) -> DetailLine {
    styled(vec![
        Span::styled(format!("{name:<12} "), style(Color::Cyan)),
        Span::raw(value.into()),
    ])
}

fn summary(store: &mut Store, seq: u64, r: &Record, out: &mut Vec<DetailLine>) {
    let kind = match r.kind {
        Kind::Http => "HTTP exchange",
        Kind::Event => "event-queue event",
        Kind::Login => "XML-RPC login",
        Kind::Tunnel => "raw tunnel",
        Kind::Error => "error",
    };
    let state = match r.state {
        State::Open => "in flight",
        State::Done => "done",
        State::Failed => "failed",
    };
    out.push(field("record", format!("#{} {kind}, {state}", r.id)));
    out.push(field(
        "started",
        crate::util::time::iso8601_millis(r.started_us).to_string(),
    ));
    if let Some(c) = &r.client {
        out.push(field("client", c.as_str()));
    }
    if let Some(cap) = &r.cap {
        out.push(field("cap", cap.clone()));
    }
    if let Some(region) = &r.region {
        out.push(field("region", region.clone()));
    }
    if let Some(q) = &r.request {
        out.push(field(
            "request",
            format!("{} {} {}", q.method, q.url, q.version),
        ));
        if let Some(asked) = &q.client_url {
            out.push(styled(vec![
                Span::styled(format!("{:<13}", "rewritten"), style(Color::Cyan)),
                Span::raw("the viewer asked for "),
                Span::styled(asked.clone(), style(Color::Yellow)),
            ]));
            out.push(styled(vec![
                Span::raw(" ".repeat(13)),
                Span::raw("capscope sent it to  "),
                Span::styled(q.url.clone(), style(Color::Green)),
            ]));
        }
        out.push(field("request body", body_size(&q.body)));
    }
    if let Some(p) = &r.response {
        out.push(styled(vec![
            Span::styled(format!("{:<13}", "status"), style(Color::Cyan)),
            Span::styled(p.status.to_string(), super::render::status_style(p.status)),
            Span::raw(format!(" {}", p.version)),
        ]));
        out.push(field("response", body_size(&p.body)));
    }
    let t = r.timings;
    let steps: Vec<String> = [
        ("sent", t.request_sent_us),
        ("headers", t.response_headers_us),
        ("done", t.done_us),
    ]
    .iter()
    .filter_map(|(n, v)| v.map(|us| format!("{n} {}", super::render::duration_text(us))))
    .collect();
    if !steps.is_empty() {
        out.push(field("timings", steps.join(", ")));
    }
    if let Some(t) = &r.tunnel {
        out.push(field(
            "tunnel",
            format!("{} up {} down {}", t.target, t.bytes_up, t.bytes_down),
        ));
    }
    if let Some(ev) = &r.event {
        out.push(field("event", ev.message.clone()));
        if let Some(p) = r.parent {
            out.push(field("poll", format!("record #{p}")));
        }
    }
    if let Some(e) = &r.error {
        out.push(styled(vec![
            Span::styled(format!("{:<13}", "error"), style(Color::Red)),
            Span::styled(e.clone(), style(Color::Red)),
        ]));
    }
    if !r.notes.is_empty() {
        out.push(plain(""));
        out.push(heading("notes"));
        for n in &r.notes {
            out.push(styled(vec![
                Span::raw("  "),
                Span::styled(n.clone(), style(Color::Yellow)),
            ]));
        }
    }
    // What a rewrite changed: every URL (or other text) that differs between the body the sender
    // sent and the one the receiver got.
    if let Some(Decoded::Llsd(before)) = store::decode_original(r) {
        if let Some(after) = store.decoded(seq, Which::Response) {
            if let Decoded::Llsd(after) = &*after {
                let mut changes = Vec::new();
                diff(&before, after, &mut String::new(), &mut changes);
                out.push(plain(""));
                out.push(heading(&format!(
                    "rewritten ({} values changed)",
                    changes.len()
                )));
                for (path, was, now) in changes {
                    out.push(styled(vec![
                        Span::raw("  "),
                        Span::styled(path, style(Color::Cyan)),
                    ]));
                    out.push(styled(vec![
                        Span::styled("    was ", dim()),
                        Span::styled(was, style(Color::Yellow)),
                    ]));
                    out.push(styled(vec![
                        Span::styled("    now ", dim()),
                        Span::styled(now, style(Color::Green)),
                    ]));
                }
            }
        }
    }
    // Decoded binary fields of whichever body carries them.
    let which = if r.event.is_some() {
        Which::Event
    } else {
        Which::Response
    };
    if let Some(decoded) = store.decoded(seq, which) {
        if let Decoded::Llsd(v) = &*decoded {
            let known = fields::describe_known_fields(v);
            if !known.is_empty() {
                out.push(plain(""));
                out.push(heading("decoded fields"));
                for k in known {
                    out.push(styled(vec![
                        Span::raw("  "),
                        Span::styled(k, style(Color::Magenta)),
                    ]));
                }
            }
        }
    }
}

fn body_size(b: &Body) -> String {
    let mut s = super::render::size_text(b.size);
    if let Some(enc) = &b.content_encoding {
        s.push_str(&format!(" ({enc} undone)"));
    }
    if b.truncated {
        s.push_str(&format!(
            ", {} kept",
            super::render::size_text(b.data.len() as u64)
        ));
    }
    s
}

/// Differences between two decoded bodies: `(path, before, after)` for each changed leaf.
fn diff(a: &Value, b: &Value, path: &mut String, out: &mut Vec<(String, String, String)>) {
    match (a, b) {
        (Value::Map(ma), Value::Map(mb)) => {
            for (k, va) in ma.iter() {
                if let Some(vb) = mb.get(k) {
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(k);
                    diff(va, vb, path, out);
                    path.truncate(len);
                }
            }
        }
        (Value::Array(xa), Value::Array(xb)) => {
            for (i, (va, vb)) in xa.iter().zip(xb).enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                diff(va, vb, path, out);
                path.truncate(len);
            }
        }
        _ if !a.same(b) => out.push((path.clone(), scalar_text(a), scalar_text(b))),
        _ => {}
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::Undef => "undef".into(),
        Value::Boolean(b) => b.to_string(),
        Value::Integer(i) => i.to_string(),
        Value::Real(r) => r.to_string(),
        Value::String(s) | Value::Uri(s) => clip(s),
        Value::Uuid(u) => u.to_string(),
        Value::Date(d) => crate::util::time::iso8601_millis((d.0 * 1e6) as i64),
        Value::Binary(b) => hex_inline(b),
        Value::Array(a) => format!("array ({})", a.len()),
        Value::Map(m) => format!("map ({})", m.len()),
    }
}

fn clip(s: &str) -> String {
    if s.chars().count() > VALUE_MAX {
        let cut: String = s.chars().take(VALUE_MAX).collect();
        format!("{cut}…")
    } else {
        s.to_owned()
    }
}

fn hex_inline(b: &[u8]) -> String {
    let shown: Vec<String> = b.iter().take(32).map(|x| format!("{x:02x}")).collect();
    let more = if b.len() > 32 { "…" } else { "" };
    format!("{}{more}", shown.join(" "))
}

#[allow(clippy::too_many_arguments)]
fn body_lines(
    store: &mut Store,
    seq: u64,
    which: Which,
    body: &Body,
    folded: &HashSet<String>,
    what: &str,
    out: &mut Vec<DetailLine>,
) {
    out.push(styled(vec![Span::styled(
        format!("{what} body: {}", body_size(body)),
        dim(),
    )]));
    let Some(decoded) = store.decoded(seq, which) else {
        return;
    };
    match &*decoded {
        Decoded::Empty if body.size > 0 => out.push(plain(
            "(the body was not kept: see the notes in the summary)",
        )),
        Decoded::Empty => out.push(plain("(empty)")),
        Decoded::Llsd(v) => tree(v, None, String::new(), 0, folded, out),
        Decoded::NotLlsd(err) => {
            let text = String::from_utf8_lossy(&body.data);
            if looks_textual(&body.data) {
                if body.data.first().is_some_and(|b| *b == b'<') || text.contains("llsd") {
                    out.push(styled(vec![Span::styled(
                        format!("not decodable as LLSD: {err}"),
                        style(Color::Red),
                    )]));
                }
                for l in text.lines().take(RAW_MAX / 16) {
                    out.push(plain(l.to_owned()));
                }
            } else {
                out.push(styled(vec![Span::styled(
                    format!("not decodable as LLSD: {err}"),
                    style(Color::Red),
                )]));
                hex_dump(&body.data, out);
            }
        }
    }
}

fn looks_textual(b: &[u8]) -> bool {
    std::str::from_utf8(b).is_ok() && !b.contains(&0)
}

/// Flattens an LLSD value into indented, coloured, foldable lines.
fn tree(
    v: &Value,
    key: Option<&str>,
    path: String,
    depth: usize,
    folded: &HashSet<String>,
    out: &mut Vec<DetailLine>,
) {
    let indent = "  ".repeat(depth);
    let mut spans = vec![Span::raw(indent)];
    let container = matches!(v, Value::Map(_) | Value::Array(_));
    let is_folded = container && folded.contains(&path);
    if container {
        spans.push(Span::styled(if is_folded { "▸ " } else { "▾ " }, dim()));
    }
    if let Some(k) = key {
        spans.push(Span::styled(k.to_owned(), style(Color::Cyan)));
        spans.push(Span::raw(": "));
    }
    match v {
        Value::Map(m) => {
            spans.push(Span::styled(format!("map ({})", m.len()), dim()));
            out.push(DetailLine {
                line: Line::from(spans),
                fold: Some(path.clone()),
            });
            if !is_folded {
                for (k, child) in m.iter() {
                    let p = if path.is_empty() {
                        k.to_owned()
                    } else {
                        format!("{path}.{k}")
                    };
                    tree(child, Some(k), p, depth + 1, folded, out);
                }
            }
        }
        Value::Array(items) => {
            spans.push(Span::styled(format!("array ({})", items.len()), dim()));
            out.push(DetailLine {
                line: Line::from(spans),
                fold: Some(path.clone()),
            });
            if !is_folded {
                for (i, child) in items.iter().enumerate() {
                    let label = format!("[{i}]");
                    tree(
                        child,
                        Some(&label),
                        format!("{path}{label}"),
                        depth + 1,
                        folded,
                        out,
                    );
                }
            }
        }
        scalar => {
            let (text, color) = match scalar {
                Value::Undef => ("undef".to_owned(), Color::DarkGray),
                Value::Boolean(b) => (b.to_string(), Color::Yellow),
                Value::Integer(i) => (i.to_string(), Color::Yellow),
                Value::Real(r) => (r.to_string(), Color::Yellow),
                Value::String(s) => (format!("{:?}", clip(s)), Color::Green),
                Value::Uri(s) => (clip(s), Color::Blue),
                Value::Uuid(u) => (u.to_string(), Color::Magenta),
                Value::Date(_) => (scalar_text(scalar), Color::Yellow),
                Value::Binary(b) => (format!("binary {}", hex_inline(b)), Color::LightRed),
                _ => (String::new(), Color::Reset),
            };
            spans.push(Span::styled(text, style(color)));
            if let Some(meaning) = key.and_then(|k| field_meaning(k, scalar)) {
                spans.push(Span::styled(
                    format!("  = {meaning}"),
                    style(Color::Magenta),
                ));
            }
            out.push(styled(spans));
        }
    }
}

/// What a well-known binary field means (RegionHandle, SimIP, TeleportFlags).
fn field_meaning(key: &str, v: &Value) -> Option<String> {
    match (key, v) {
        ("RegionHandle" | "Handle", Value::Binary(_)) => {
            fields::region_handle_value(v).map(fields::describe_handle)
        }
        ("SimIP" | "IP", Value::Binary(_)) => fields::sim_ip_value(v).map(|ip| ip.to_string()),
        ("TeleportFlags", _) => fields::teleport_flags_value(v).map(fields::teleport_flags_names),
        _ => None,
    }
}

fn headers(r: &Record, out: &mut Vec<DetailLine>) {
    let mut section = |title: &str, hs: &[Header]| {
        out.push(heading(title));
        if hs.is_empty() {
            out.push(plain("  (none)"));
        }
        for h in hs {
            out.push(styled(vec![
                Span::raw("  "),
                Span::styled(h.name.clone(), style(Color::Cyan)),
                Span::raw(": "),
                Span::raw(clip(&h.value)),
            ]));
        }
    };
    if let Some(q) = &r.request {
        section("request headers", &q.headers);
    }
    if let Some(p) = &r.response {
        section("response headers", &p.headers);
    }
    if r.request.is_none() && r.response.is_none() {
        out.push(plain("no headers"));
    }
}

fn raw(r: &Record, out: &mut Vec<DetailLine>) {
    let mut dump = |title: &str, b: &Body| {
        out.push(heading(&format!("{title} ({})", body_size(b))));
        hex_dump(&b.data, out);
    };
    if let Some(q) = &r.request {
        dump("request body", &q.body);
    }
    if let Some(p) = &r.response {
        dump("response body", &p.body);
        if let Some(orig) = &p.body.original {
            dump(
                "response body before the rewrite",
                &Body::whole(orig.clone()),
            );
        }
    }
    if let Some(e) = &r.event {
        dump("event body", &e.body);
    }
}

fn hex_dump(data: &[u8], out: &mut Vec<DetailLine>) {
    for (i, chunk) in data.chunks(16).take(RAW_MAX / 16).enumerate() {
        let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
        let text: String = chunk
            .iter()
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        out.push(styled(vec![
            Span::styled(format!("{:08x}  ", i * 16), dim()),
            Span::raw(format!("{:<48} ", hex.join(" "))),
            Span::styled(text, style(Color::Green)),
        ]));
    }
    if data.len() > RAW_MAX {
        out.push(plain(format!("… {} more bytes", data.len() - RAW_MAX)));
    }
}

/// `line` with every occurrence of `needle` (lower case) highlighted, or `None` when it has none.
fn highlight(line: &Line<'static>, needle: &str) -> Option<Line<'static>> {
    let plain: String = line.spans.iter().map(|s| s.content.as_ref()).collect();
    if !plain.to_lowercase().contains(needle) {
        return None;
    }
    let hit = Style::default()
        .fg(Color::Black)
        .bg(Color::Yellow)
        .add_modifier(Modifier::BOLD);
    let mut spans = Vec::new();
    for s in &line.spans {
        let text = s.content.as_ref();
        let lower = text.to_ascii_lowercase();
        let mut at = 0;
        while let Some(found) = lower[at..].find(needle) {
            let start = at + found;
            let end = start + needle.len();
            if !text.is_char_boundary(start) || !text.is_char_boundary(end) {
                break;
            }
            if start > at {
                spans.push(Span::styled(text[at..start].to_owned(), s.style));
            }
            spans.push(Span::styled(text[start..end].to_owned(), hit));
            at = end;
        }
        if at < text.len() {
            spans.push(Span::styled(text[at..].to_owned(), s.style));
        }
    }
    Some(Line::from(spans))
}

/// Whether the record's URL, names, notes or bodies hold `needle` (lower case).
pub fn record_contains(r: &Record, needle: &str) -> bool {
    let has = |s: &str| s.to_lowercase().contains(needle);
    let body =
        |b: &Body| memchr::memmem::find(&b.data.to_ascii_lowercase(), needle.as_bytes()).is_some();
    r.request
        .as_ref()
        .is_some_and(|q| has(&q.url) || body(&q.body))
        || r.response.as_ref().is_some_and(|p| body(&p.body))
        || r.event
            .as_ref()
            .is_some_and(|e| has(&e.message) || body(&e.body))
        || r.cap.as_deref().is_some_and(has)
        || r.notes.iter().any(|n| has(n))
}

/// The request as a curl command (through capscope's own URL where the viewer used one; `base`,
/// `http://ADDR`, completes a URL the viewer gave as a path).
pub fn curl(r: &Record, base: Option<&str>) -> Option<String> {
    let q = r.request.as_ref()?;
    let url = match (q.client_url.as_deref(), base) {
        (Some(path), Some(base)) if path.starts_with('/') => format!("{base}{path}"),
        (Some(u), _) => u.to_owned(),
        (None, _) => q.url.clone(),
    };
    let mut cmd = format!("curl -X {} {}", q.method, shell_quote(&url));
    for h in &q.headers {
        let name = h.name.to_ascii_lowercase();
        if matches!(
            name.as_str(),
            "host" | "content-length" | "connection" | "accept-encoding"
        ) {
            continue;
        }
        cmd.push_str(&format!(
            " -H {}",
            shell_quote(&format!("{}: {}", h.name, h.value))
        ));
    }
    if !q.body.data.is_empty() {
        match std::str::from_utf8(&q.body.data) {
            Ok(text) => cmd.push_str(&format!(" --data-binary {}", shell_quote(text))),
            Err(_) => cmd.push_str(" --data-binary @body.bin"),
        }
    }
    Some(cmd)
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The request as editable text: `METHOD URL`, one `Name: value` line per header, a blank line, the
/// body. The URL is capscope's own where the viewer used one (that is where a replay goes).
pub fn request_text(r: &Record) -> Option<String> {
    let q = r.request.as_ref()?;
    let url = q.client_url.as_deref().unwrap_or(&q.url);
    let mut out = format!("{} {url}\n", q.method);
    for h in &q.headers {
        out.push_str(&format!("{}: {}\n", h.name, h.value));
    }
    out.push('\n');
    out.push_str(&String::from_utf8_lossy(&q.body.data));
    Some(out)
}

/// A copy of `r` whose request is what [`request_text`] became after editing.
pub fn request_from_text(r: &Record, text: &str) -> Result<Record, String> {
    let (head, body) = match text.find("\n\n") {
        Some(i) => (&text[..i], &text[i + 2..]),
        None => (text.trim_end_matches('\n'), ""),
    };
    let mut lines = head.lines();
    let first = lines.next().ok_or("the request is empty")?;
    let (method, url) = first
        .trim()
        .split_once(' ')
        .ok_or("the first line must be METHOD URL")?;
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("not a header (Name: value): {line}"))?;
        headers.push(Header {
            name: name.trim().into(),
            value: value.trim().into(),
        });
    }
    let mut copy = r.clone();
    let q = copy.request.get_or_insert_with(Default::default);
    q.method = method.trim().into();
    q.client_url = Some(url.trim().to_owned());
    q.headers = headers;
    q.body = Body::whole(body.as_bytes().to_vec());
    Ok(copy)
}
