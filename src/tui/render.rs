//! Drawing: the state in, a frame out. Reads [`App`] and never changes it; only the rows on screen
//! are formatted, so a frame costs the same with ten records or a million.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Tabs};
use ratatui::Frame;
use time::OffsetDateTime;

use super::keys::{self, Scope};
use super::state::{App, InputKind, Screen, Source, Tab};
use super::update::{FOOTER_ROWS, HEADER_ROWS};
use crate::record::{Kind, State};
use crate::store::Entry;

/// `HH:MM:SS.mmm` (UTC) of a microsecond timestamp.
pub fn clock(us: i64) -> String {
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

/// `877 B`, `1.2 kB`, `4.0 MB` (decimal, like the sketch).
pub fn size_text(bytes: u64) -> String {
    let b = bytes as f64;
    if bytes < 1000 {
        format!("{bytes} B")
    } else if b < 1e6 {
        format!("{:.1} kB", b / 1e3)
    } else if b < 1e9 {
        format!("{:.1} MB", b / 1e6)
    } else {
        format!("{:.1} GB", b / 1e9)
    }
}

/// `0.8 ms`, `14 ms`, `5.0 s`.
pub fn duration_text(us: u64) -> String {
    if us < 10_000 {
        format!("{:.1} ms", us as f64 / 1e3)
    } else if us < 1_000_000 {
        format!("{} ms", us / 1000)
    } else {
        format!("{:.1} s", us as f64 / 1e6)
    }
}

/// `1,204`.
fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The colour of a status code.
pub fn status_style(status: u16) -> Style {
    Style::default().fg(match status {
        200..=299 => Color::Green,
        300..=399 => Color::Cyan,
        400..=499 => Color::Yellow,
        _ => Color::Red,
    })
}

/// Draws the whole screen.
pub fn draw(f: &mut Frame, app: &App) {
    let area = f.area();
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(HEADER_ROWS),
        Constraint::Min(1),
        Constraint::Length(FOOTER_ROWS),
    ])
    .areas(area);
    draw_header(f, app, header);
    match app.screen {
        Screen::List => draw_list(f, app, body),
        Screen::Detail => draw_detail(f, app, body),
        Screen::Caps => draw_view(f, app, body, "caps by region", &app.caps_view),
        Screen::Timeline => draw_view(f, app, body, "event timeline", &app.timeline_view),
        Screen::Help => draw_help(f, body, app.view_scroll),
    }
    draw_footer(f, app, body, footer);
}

fn draw_header(f: &mut Frame, app: &App, area: Rect) {
    let bold = Style::default().add_modifier(Modifier::BOLD);
    let dim = Style::default().fg(Color::DarkGray);
    let mut first = vec![Span::styled("capscope", bold.fg(Color::Cyan))];
    match &app.source {
        Source::Live => {
            if let Some(l) = &app.info.listen {
                first.push(Span::raw(format!("  {l}")));
            }
            let modes = match (app.seen.login_mode, app.seen.proxy_mode) {
                (true, true) => "login+proxy",
                (true, false) => "login",
                (false, true) => "proxy",
                (false, false) => "no traffic yet",
            };
            first.push(Span::raw(format!("  {modes}")));
        }
        Source::File { path, follow } => {
            first.push(Span::raw(format!(
                "  view {}{}",
                path.display(),
                if *follow { " (following)" } else { "" }
            )));
        }
    }
    if let Some(g) = &app.info.grid {
        first.push(Span::raw(format!("  grid {g}")));
    }
    if !app.seen.agents.is_empty() {
        first.push(Span::styled(
            format!("  {}", app.seen.agents.join(", ")),
            Style::default().fg(Color::Yellow),
        ));
    }
    if let Some(r) = &app.seen.region {
        first.push(Span::raw(" @ "));
        first.push(Span::styled(r.clone(), Style::default().fg(Color::Green)));
    }
    let c = app.store.counts();
    let warn = Style::default().fg(Color::Red);
    let capture = &app.info.capture_state;
    let mut second = Vec::new();
    // A stopped capture first, so even a narrow terminal shows it: the cause (the last part of the
    // writer's message; the whole message is in the footer and the log).
    if let Some(why) = &capture.failure {
        let cause = why.rsplit(": ").next().unwrap_or(why);
        second.push(Span::styled(
            format!("capture stopped: {cause}  "),
            warn.add_modifier(Modifier::BOLD),
        ));
    }
    second.push(Span::raw(format!("{} records", count(c.records))));
    second.push(Span::raw(format!("  {} events", count(c.events))));
    // What went wrong comes right after the counts, so a narrow terminal still shows it.
    if c.lagged > 0 {
        second.push(Span::styled(
            format!("  {} lost (UI behind)", count(c.lagged)),
            warn,
        ));
    }
    if capture.dropped > 0 {
        second.push(Span::styled(
            format!("  {} lost by the capture", count(capture.dropped)),
            warn,
        ));
    }
    if c.lost_finals > 0 {
        second.push(Span::styled(
            format!("  {} closed without final", count(c.lost_finals)),
            warn,
        ));
    }
    let shed = c.bodies_shed_upstream.max(app.info.bus_shed);
    if shed > 0 {
        second.push(Span::styled(format!("  {} bodies shed", count(shed)), warn));
    }
    if !app.show_idle {
        second.push(Span::styled(
            format!("  {} idle polls hidden", count(c.idle_polls)),
            dim,
        ));
    }
    if let (Some(p), None) = (&app.info.capture, &capture.failure) {
        second.push(Span::raw(format!(
            "  capture {} {}",
            p.display(),
            size_text(app.info.capture_size)
        )));
    }
    if c.bodies_dropped > 0 || c.evicted > 0 {
        second.push(Span::styled(
            format!(
                "  history: {} oldest evicted, {} bodies dropped",
                count(c.evicted),
                count(c.bodies_dropped)
            ),
            dim,
        ));
    }
    // The rule: flags on the left, the latest log line on the right.
    let mut flags = Vec::new();
    if app.follow {
        flags.push("follow".to_owned());
    }
    if app.paused {
        flags.push("PAUSED".to_owned());
    }
    if app.show_idle {
        flags.push("idle polls shown".to_owned());
    }
    if app.ended {
        flags.push(
            if app.is_file() {
                "end of file"
            } else {
                "stream ended"
            }
            .to_owned(),
        );
    }
    if !app.filter_text.is_empty() {
        flags.push(format!(
            "filter {} ({} shown)",
            app.filter_text,
            count(app.visible.len() as u64)
        ));
    }
    let mut rule = String::from("─");
    for fl in &flags {
        rule.push_str(&format!(" {fl} ─"));
    }
    let last_log = app
        .log
        .lock()
        .ok()
        .and_then(|l| l.back().cloned())
        .unwrap_or_default();
    let width = usize::from(area.width);
    let used = rule.chars().count();
    let log_room = width.saturating_sub(used + 3);
    let log: String = last_log.chars().take(log_room).collect();
    let fill = width.saturating_sub(used + log.chars().count() + usize::from(!log.is_empty()) * 2);
    let rule_line = Line::from(vec![
        Span::styled(rule, dim),
        Span::styled("─".repeat(fill), dim),
        Span::styled(
            if log.is_empty() {
                String::new()
            } else {
                format!(" {log} ")
            },
            Style::default().fg(Color::Yellow),
        ),
    ]);
    f.render_widget(
        Paragraph::new(vec![Line::from(first), Line::from(second), rule_line]),
        area,
    );
}

/// Column widths of the list for a screen `width` wide: name and region share what is left.
fn columns(width: u16) -> (usize, usize) {
    const FIXED: usize = 12 + 1 + 6 + 1 + 1 + 3 + 1 + 9 + 1 + 8 + 1;
    const NAME_MAX: usize = 36;
    const NAME_WANTED: usize = 26; // FetchInventoryDescendents2
    let rest = usize::from(width).saturating_sub(FIXED);
    let name = (rest * 60 / 100)
        .max(NAME_WANTED.min(rest.saturating_sub(8)))
        .min(NAME_MAX);
    (name, rest - name)
}

fn fit(s: &str, w: usize) -> String {
    let n = s.chars().count();
    if n <= w {
        format!("{s:<w$}")
    } else if w == 0 {
        String::new()
    } else {
        let mut out: String = s.chars().take(w - 1).collect();
        out.push('…');
        out
    }
}

fn draw_list(f: &mut Frame, app: &App, area: Rect) {
    let (name_w, region_w) = columns(area.width);
    let titles = format!(
        "{:<12} {:<6} {} {:>3} {:>9} {:>8} {}",
        "time",
        "method",
        fit("cap / event", name_w),
        "st",
        "size",
        "took",
        fit("region", region_w)
    );
    let mut lines = vec![Line::from(Span::styled(
        titles,
        Style::default().add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
    ))];
    let rows = usize::from(area.height.saturating_sub(1));
    if app.visible.is_empty() {
        let why = if app.store.is_empty() {
            match &app.source {
                Source::Live => "waiting for traffic: point a viewer at capscope (see the log file for the addresses)",
                Source::File { .. } => "no records (yet)",
            }
        } else {
            "no record matches (Esc clears the filter, i shows idle polls)"
        };
        lines.push(Line::from(Span::styled(
            why,
            Style::default().fg(Color::DarkGray),
        )));
    }
    let end = (app.offset + rows).min(app.visible.len());
    for i in app.offset..end {
        let (top, _, seq) = app.visible[i];
        let Some(e) = app.store.get(seq) else {
            continue;
        };
        let last_child = app
            .visible
            .get(i + 1)
            .is_none_or(|&(next_top, depth, _)| next_top != top || depth == 0);
        let mut line = row(e, last_child, name_w, region_w);
        if i == app.selected {
            line = line.style(Style::default().add_modifier(Modifier::REVERSED));
        }
        lines.push(line);
    }
    f.render_widget(Paragraph::new(lines), area);
}

/// One list row.
fn row(e: &Entry, last_child: bool, name_w: usize, region_w: usize) -> Line<'static> {
    let r = &e.record;
    let dim = Style::default().fg(Color::DarkGray);
    let idle = r.notes.iter().any(|n| n.starts_with("idle poll")) && e.children.is_empty();
    let name = match (&r.event, &r.cap) {
        (Some(ev), _) if e.depth() > 0 => {
            format!("  {} {}", if last_child { "└" } else { "├" }, ev.message)
        }
        (Some(ev), _) => ev.message.clone(),
        (None, Some(cap)) => cap.clone(),
        (None, None) => match r.kind {
            Kind::Tunnel => r
                .tunnel
                .as_ref()
                .map_or("tunnel".into(), |t| format!("tunnel {}", t.target)),
            Kind::Login => "login".into(),
            Kind::Error => r.error.clone().unwrap_or_else(|| "error".into()),
            _ => r
                .request
                .as_ref()
                .map_or_else(String::new, |q| url_path(&q.url)),
        },
    };
    let replay = r.request.as_ref().is_some_and(|q| {
        q.headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case(super::REPLAY_HEADER))
    });
    let name = if replay { format!("↻ {name}") } else { name };
    let method = match r.kind {
        Kind::Event => String::new(),
        Kind::Tunnel => "TUNNEL".into(),
        Kind::Error => "ERROR".into(),
        _ => r
            .request
            .as_ref()
            .map_or("-".into(), |q| q.method.to_string()),
    };
    let (status, status_st) = match (r.state, &r.response) {
        (State::Open, _) if r.kind != Kind::Event => ("…".to_owned(), dim),
        (_, Some(p)) => (p.status.to_string(), status_style(p.status)),
        (State::Failed, None) => ("ERR".to_owned(), Style::default().fg(Color::Red)),
        _ => (String::new(), dim),
    };
    let size = match (&r.response, &r.event, &r.tunnel) {
        (Some(p), _, _) => size_text(p.body.size),
        (_, Some(ev), _) => size_text(ev.body.size),
        (_, _, Some(t)) => size_text(t.bytes_up + t.bytes_down),
        _ => String::new(),
    };
    let took = match (r.kind, r.timings.done_us) {
        (Kind::Event, _) | (_, None) => String::new(),
        (_, Some(d)) => duration_text(d),
    };
    let region = if r.kind == Kind::Event {
        r.notes.first().cloned().or_else(|| r.region.clone())
    } else {
        r.region.clone()
    }
    .unwrap_or_default();
    let name_style = if idle {
        dim
    } else {
        match r.kind {
            Kind::Event => Style::default().fg(Color::Magenta),
            Kind::Login => Style::default().fg(Color::Yellow),
            Kind::Tunnel => dim,
            Kind::Error => Style::default().fg(Color::Red),
            Kind::Http if r.state == State::Failed => Style::default().fg(Color::Red),
            Kind::Http => Style::default(),
        }
    };
    let time_text = if e.depth() > 0 {
        " ".repeat(12)
    } else {
        clock(r.started_us)
    };
    Line::from(vec![
        Span::styled(format!("{time_text} "), dim),
        Span::styled(format!("{method:<6} "), Style::default().fg(Color::Cyan)),
        Span::styled(fit(&name, name_w), name_style),
        Span::raw(" "),
        Span::styled(format!("{status:>3}"), status_st),
        Span::raw(format!(" {size:>9} {took:>8} ")),
        Span::styled(fit(&region, region_w), dim),
    ])
}

fn url_path(url: &str) -> String {
    match url.find("://") {
        Some(i) => url[i + 3..]
            .find('/')
            .map_or_else(|| url.to_owned(), |j| url[i + 3 + j..].to_owned()),
        None => url.to_owned(),
    }
}

fn draw_detail(f: &mut Frame, app: &App, area: Rect) {
    let Some(d) = &app.detail else {
        return;
    };
    let [tabs, title, body] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(0),
    ])
    .areas(area);
    let index = Tab::ALL.iter().position(|t| *t == app.tab).unwrap_or(0);
    f.render_widget(
        Tabs::new(Tab::ALL.iter().map(|t| t.title()))
            .select(index)
            .highlight_style(
                Style::default()
                    .fg(Color::Black)
                    .bg(Color::Cyan)
                    .add_modifier(Modifier::BOLD),
            ),
        tabs,
    );
    f.render_widget(Paragraph::new(d.title.clone()), title);
    let rows = usize::from(body.height);
    let lines: Vec<Line> = d
        .lines
        .iter()
        .enumerate()
        .skip(d.scroll)
        .take(rows)
        .map(|(i, l)| {
            if i == d.cursor {
                l.line
                    .clone()
                    .style(Style::default().add_modifier(Modifier::REVERSED))
            } else {
                l.line.clone()
            }
        })
        .collect();
    f.render_widget(Paragraph::new(lines), body);
}

fn draw_view(f: &mut Frame, app: &App, area: Rect, title: &str, lines: &[Line<'static>]) {
    let [head, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    f.render_widget(
        Paragraph::new(Line::from(Span::styled(
            format!("{title}  (1 flows, 2 caps, 3 timeline)"),
            Style::default().add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
        ))),
        head,
    );
    let shown: Vec<Line> = lines
        .iter()
        .skip(app.view_scroll)
        .take(usize::from(body.height))
        .cloned()
        .collect();
    f.render_widget(Paragraph::new(shown), body);
}

fn draw_help(f: &mut Frame, area: Rect, scroll: usize) {
    let mut lines = vec![Line::from(Span::styled(
        "keys (↑/↓ PgUp/PgDn scroll; any other key closes this help)",
        Style::default().add_modifier(Modifier::BOLD),
    ))];
    for (keys, scope, help) in keys::help_rows() {
        lines.push(Line::from(vec![
            Span::styled(format!("  {keys:<18}"), Style::default().fg(Color::Cyan)),
            Span::styled(format!("{scope:<7}"), Style::default().fg(Color::DarkGray)),
            Span::raw(help),
        ]));
    }
    lines.push(Line::from(
        "filter terms: cap:GLOB event:GLOB status:5xx method: host: region: body.PATH OP VALUE, \
         free text, ! & | ( ) (docs/filters.md)",
    ));
    f.render_widget(Clear, area);
    f.render_widget(
        Paragraph::new(lines)
            .wrap(ratatui::widgets::Wrap { trim: false })
            .scroll((u16::try_from(scroll).unwrap_or(u16::MAX), 0)),
        area,
    );
}

fn draw_footer(f: &mut Frame, app: &App, body: Rect, area: Rect) {
    if let Some(input) = &app.input {
        let prompt = match input.kind {
            InputKind::Filter => "/ ",
            InputKind::Search => "search: ",
        };
        let mut spans = vec![
            Span::styled(prompt, Style::default().fg(Color::Cyan)),
            Span::raw(input.text.clone()),
        ];
        if input.error.is_some() {
            spans.push(Span::styled(
                "  (Enter: error)",
                Style::default().fg(Color::Red),
            ));
        }
        f.render_widget(Paragraph::new(Line::from(spans)), area);
        f.set_cursor_position((
            area.x + (prompt.chars().count() + input.cursor) as u16,
            area.y,
        ));
        if let Some((column, message)) = &input.error {
            // The caret sits under the column the error is at, on the row above the bar.
            let pad = prompt.chars().count() + column.saturating_sub(1);
            let text = format!("{}^ {message}", " ".repeat(pad));
            if body.height > 0 {
                let at = Rect::new(area.x, area.y.saturating_sub(1), area.width, 1);
                f.render_widget(Clear, at);
                f.render_widget(
                    Paragraph::new(Span::styled(text, Style::default().fg(Color::Red))),
                    at,
                );
            }
        }
        return;
    }
    if let Some(s) = &app.status {
        let style = if s.error {
            Style::default().fg(Color::Red)
        } else {
            Style::default().fg(Color::Yellow)
        };
        f.render_widget(Paragraph::new(Span::styled(s.text.clone(), style)), area);
        return;
    }
    let scope = match app.screen {
        Screen::Detail => Scope::Detail,
        Screen::List => Scope::List,
        _ => Scope::Global,
    };
    let mut spans = Vec::new();
    // Help and quit first, so a narrow terminal still shows them.
    let (mut hints, rest): (Vec<_>, Vec<_>) = keys::hints(scope)
        .into_iter()
        .partition(|(_, name)| *name == "help" || *name == "quit");
    hints.extend(rest);
    for (key, name) in hints {
        spans.push(Span::styled(
            format!(" {key}"),
            Style::default().fg(Color::Cyan),
        ));
        spans.push(Span::raw(format!(" {name} ")));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}
