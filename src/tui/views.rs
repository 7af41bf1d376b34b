//! The two summary views built from the whole store: caps by region (`2`) and the event timeline
//! (`3`). Pure functions of the store, rebuilt on ticks while shown.

use std::collections::BTreeMap;

use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};

use super::render::{clock, duration_text, size_text};
use crate::caps::registry::SEED_CAP;
use crate::record::{Kind, State};
use crate::store::Store;

#[derive(Default)]
struct CapUse {
    calls: u64,
    bytes: u64,
    durations: Vec<u64>,
}

#[derive(Default)]
struct RegionUse {
    granted: Option<usize>,
    first_us: i64,
    last_us: i64,
    caps: BTreeMap<String, CapUse>,
}

/// What each region granted and how each cap was used: calls, bytes, median latency.
pub fn caps_by_region(store: &Store) -> Vec<Line<'static>> {
    let mut regions: BTreeMap<String, RegionUse> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for seq in store.rows() {
        let Some(e) = store.get(seq) else { continue };
        let r = &e.record;
        if r.kind != Kind::Http || r.state == State::Open {
            continue;
        }
        let (Some(cap), Some(region)) = (&r.cap, &r.region) else {
            continue;
        };
        let ru = regions.entry(region.clone()).or_insert_with(|| {
            order.push(region.clone());
            RegionUse {
                first_us: r.started_us,
                ..RegionUse::default()
            }
        });
        ru.last_us = ru.last_us.max(r.started_us);
        let u = ru.caps.entry(cap.clone()).or_default();
        u.calls += 1;
        u.bytes += r.response.as_ref().map_or(0, |p| p.body.size);
        if let Some(d) = r.timings.done_us {
            u.durations.push(d);
        }
        if cap == SEED_CAP {
            if let Some(p) = &r.response {
                if let Ok(v) = crate::llsd::from_slice(&p.body.data) {
                    ru.granted = v.as_map().map(|m| m.len());
                }
            }
        }
    }
    let mut out = Vec::new();
    if order.is_empty() {
        out.push(Line::from(
            "no cap calls with a known region yet (they appear once a viewer uses a seed's caps)",
        ));
    }
    for name in order {
        let Some(ru) = regions.get_mut(&name) else {
            continue;
        };
        let granted = ru.granted.map_or_else(
            || "seed not seen".to_owned(),
            |n| format!("granted {n} caps"),
        );
        out.push(Line::from(vec![
            Span::styled(name.clone(), Style::default().add_modifier(Modifier::BOLD)),
            Span::styled(
                format!(
                    "   {granted}   {} to {}",
                    clock(ru.first_us),
                    clock(ru.last_us)
                ),
                Style::default().fg(Color::DarkGray),
            ),
        ]));
        for (cap, u) in ru.caps.iter_mut() {
            u.durations.sort_unstable();
            let p50 = u
                .durations
                .get(u.durations.len() / 2)
                .map_or_else(|| "-".to_owned(), |d| duration_text(*d));
            out.push(Line::from(vec![
                Span::raw("  "),
                Span::styled(format!("{cap:<32}"), Style::default().fg(Color::Cyan)),
                Span::raw(format!(
                    "{:>6} calls {:>9}  p50 {:>8}",
                    u.calls,
                    size_text(u.bytes),
                    p50
                )),
            ]));
        }
    }
    out
}

/// Teleports, crossings, region changes, idle polls and id gaps, in time order.
pub fn timeline(store: &Store) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    let mut region: Option<String> = None;
    let mut idle = 0u64;
    let flush_idle = |idle: &mut u64, out: &mut Vec<Line<'static>>| {
        if *idle > 0 {
            out.push(Line::from(Span::styled(
                format!(
                    "              … {idle} idle poll{}",
                    if *idle == 1 { "" } else { "s" }
                ),
                Style::default().fg(Color::DarkGray),
            )));
            *idle = 0;
        }
    };
    for seq in store.rows() {
        let Some(e) = store.get(seq) else { continue };
        let r = &e.record;
        if r.kind == Kind::Http && r.cap.as_deref() == Some("EventQueueGet") {
            if r.region.is_some() && r.region != region {
                flush_idle(&mut idle, &mut out);
                out.push(Line::from(vec![
                    Span::raw(format!("{}  ", clock(r.started_us))),
                    Span::styled(
                        format!("region {}", r.region.clone().unwrap_or_default()),
                        Style::default()
                            .fg(Color::Green)
                            .add_modifier(Modifier::BOLD),
                    ),
                ]));
                region = r.region.clone();
            }
            if e.children.is_empty() && r.notes.iter().any(|n| n.starts_with("idle poll")) {
                idle += 1;
            }
            for n in r
                .notes
                .iter()
                .filter(|n| n.contains("gap") || n.contains("repeat"))
            {
                flush_idle(&mut idle, &mut out);
                out.push(Line::from(vec![
                    Span::raw(format!("{}  ", clock(r.started_us))),
                    Span::styled(n.clone(), Style::default().fg(Color::Red)),
                ]));
            }
        }
        if let Some(ev) = &r.event {
            flush_idle(&mut idle, &mut out);
            let color = match ev.message.as_str() {
                "TeleportFinish" | "CrossedRegion" => Color::Yellow,
                "EnableSimulator" | "EstablishAgentCommunication" => Color::Blue,
                _ => Color::Magenta,
            };
            let mut spans = vec![
                Span::raw(format!("{}  ", clock(r.started_us))),
                Span::styled(format!("{:<32}", ev.message), Style::default().fg(color)),
            ];
            if let Some(id) = ev.queue_id {
                spans.push(Span::styled(
                    format!(" id {id}"),
                    Style::default().fg(Color::DarkGray),
                ));
            }
            if let Some(n) = r.notes.first() {
                spans.push(Span::raw(format!("  {n}")));
            }
            out.push(Line::from(spans));
        }
    }
    flush_idle(&mut idle, &mut out);
    if out.is_empty() {
        out.push(Line::from("no events yet"));
    }
    out
}
