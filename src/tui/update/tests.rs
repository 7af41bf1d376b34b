//! The UI's state and update logic without a terminal: records in, keys in, explicit ticks.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::super::fixture;
use super::super::state::{App, InputKind, Screen, Source, Tab};
use crate::record::{Kind, Record, State};
use crate::store::{Limits, LOST_FINAL_AFTER_US, LOST_FINAL_NOTE};

fn app() -> App {
    let mut app = App::new(Source::Live, Limits::default());
    app.resize(80, 24);
    for r in fixture::session() {
        app.take(&r);
    }
    app
}

fn key(app: &mut App, code: KeyCode) {
    app.key(KeyEvent::new(code, KeyModifiers::NONE));
}

fn typed(app: &mut App, text: &str) {
    for c in text.chars() {
        key(app, KeyCode::Char(c));
    }
}

/// The names the list shows, top to bottom.
/// The open detail view's lines, as text.
fn detail_text(app: &App) -> Vec<String> {
    app.detail
        .as_ref()
        .unwrap()
        .lines
        .iter()
        .map(|l| l.line.to_string())
        .collect()
}

fn names(app: &App) -> Vec<String> {
    app.visible
        .iter()
        .filter_map(|&(_, _, s)| app.store.get(s))
        .map(|e| match (&e.record.event, &e.record.cap) {
            (Some(ev), _) => format!("  {}", ev.message),
            (None, Some(c)) => c.clone(),
            _ => format!("{:?}", e.record.kind),
        })
        .collect()
}

#[test]
fn events_sit_under_their_poll_and_idle_polls_are_hidden_until_asked() {
    let mut app = app();
    assert_eq!(
        names(&app),
        [
            "Login",
            "Seed",
            "EventQueueGet",
            "  TeleportFinish",
            "FetchInventoryDescendents2",
            "ViewerAsset",
            "GetObjectCost"
        ]
    );
    assert_eq!(app.store.counts().idle_polls, 1);
    key(&mut app, KeyCode::Char('i'));
    assert!(names(&app).iter().filter(|n| *n == "EventQueueGet").count() == 2);
    assert_eq!(app.seen.agents, ["Demo Resident"]);
    assert!(app.seen.login_mode);
}

#[test]
fn follow_keeps_the_newest_selected_until_the_user_moves() {
    let mut app = app();
    assert!(app.follow);
    assert_eq!(app.selected, app.visible.len() - 1);
    key(&mut app, KeyCode::Up);
    assert!(!app.follow, "moving up stops following");
    let before = app.selected_seq();
    let mut r = Record::new(100, Kind::Http);
    r.state = State::Done;
    app.take(&r);
    assert_eq!(
        app.selected_seq(),
        before,
        "a new record does not move the selection"
    );
    key(&mut app, KeyCode::Char('G'));
    assert!(app.follow);
    let mut r = Record::new(101, Kind::Http);
    r.state = State::Done;
    app.take(&r);
    assert_eq!(app.selected, app.visible.len() - 1);
}

#[test]
fn an_event_arriving_above_the_selection_keeps_the_same_row_selected() {
    let mut app = App::new(Source::Live, Limits::default());
    app.resize(80, 24);
    let mut poll = Record::new(1, Kind::Http);
    poll.cap = Some("EventQueueGet".into());
    app.take(&poll);
    let mut other = Record::new(2, Kind::Http);
    other.state = State::Done;
    app.take(&other);
    key(&mut app, KeyCode::Char('f')); // follow off, row 2 selected
    assert_eq!(app.selected_seq(), Some(1));
    let mut ev = Record::new(3, Kind::Event);
    ev.state = State::Done;
    ev.parent = Some(1);
    app.take(&ev);
    assert_eq!(
        app.selected_seq(),
        Some(1),
        "the selection moved with the insert"
    );
}

#[test]
fn a_filter_error_shows_at_its_column_and_a_good_filter_applies_with_history() {
    let mut app = app();
    key(&mut app, KeyCode::Char('/'));
    typed(&mut app, "status:>>");
    let input = app.input.as_ref().expect("the filter bar is open");
    assert_eq!(input.kind, InputKind::Filter);
    let (column, _) = input.error.clone().expect("an error as typed");
    assert_eq!(column, 8, "{:?}", input.error);
    key(&mut app, KeyCode::Enter);
    assert!(app.input.is_some(), "Enter on an error keeps the bar open");
    assert!(app.filter.is_none());
    for _ in 0..9 {
        key(&mut app, KeyCode::Backspace);
    }
    typed(&mut app, "cap:EventQueueGet");
    assert!(app.input.as_ref().unwrap().error.is_none());
    key(&mut app, KeyCode::Enter);
    assert!(app.input.is_none());
    // The poll and, by the shared rule, the event it carried.
    assert_eq!(names(&app), ["EventQueueGet", "  TeleportFinish"]);
    // Esc clears it; the history brings it back.
    key(&mut app, KeyCode::Esc);
    assert!(app.filter.is_none());
    key(&mut app, KeyCode::Char('/'));
    for _ in 0..20 {
        key(&mut app, KeyCode::Backspace);
    }
    key(&mut app, KeyCode::Up);
    assert_eq!(app.input.as_ref().unwrap().text, "cap:EventQueueGet");
}

#[test]
fn the_detail_opens_switches_tabs_folds_and_searches() {
    let mut app = app();
    key(&mut app, KeyCode::Char('g'));
    key(&mut app, KeyCode::Down); // the seed
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.screen, Screen::Detail);
    let text = detail_text;
    let summary = text(&app).join("\n");
    assert!(
        summary.contains("was https://sim1.example:12043/CE/3b50"),
        "{summary}"
    );
    assert!(
        summary.contains("now http://127.0.0.1:8080/cap/aaaa"),
        "{summary}"
    );
    key(&mut app, KeyCode::Tab);
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.tab, Tab::Response);
    let tree = text(&app);
    assert!(tree.iter().any(|l| l.contains("▾ map (2)")), "{tree:?}");
    let unfolded = tree.len();
    key(&mut app, KeyCode::Down); // the map line
    key(&mut app, KeyCode::Enter);
    assert!(
        text(&app).len() < unfolded,
        "folding hides the map's entries"
    );
    key(&mut app, KeyCode::Enter);
    assert_eq!(text(&app).len(), unfolded);
    key(&mut app, KeyCode::Char('/'));
    typed(&mut app, "cap/bbbb");
    key(&mut app, KeyCode::Enter);
    let d = app.detail.as_ref().unwrap();
    assert_eq!(d.matches.len(), 1);
    assert_eq!(d.cursor, d.matches[0], "the first match is selected");
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.screen, Screen::List);
}

#[test]
fn binary_fields_are_decoded_beside_their_bytes() {
    let mut app = app();
    let seq = app.store.seq_of(5).unwrap();
    app.selected = app.visible.iter().position(|&(_, _, s)| s == seq).unwrap();
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Tab);
    key(&mut app, KeyCode::Tab);
    let text = detail_text(&app);
    let all = text.join("\n");
    assert!(
        all.contains("RegionHandle: binary 00 03 e9 00 00 03 e8 00  = (1001, 1000)"),
        "{all}"
    );
    assert!(
        all.contains("SimIP: binary 7f 00 00 01  = 127.0.0.1"),
        "{all}"
    );
    assert!(all.contains("ViaLandmark|IsFlying (0x2008)"), "{all}");
}

#[test]
fn a_body_that_does_not_decode_is_shown_raw_with_the_error() {
    let mut app = app();
    key(&mut app, KeyCode::Char('G'));
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Tab);
    key(&mut app, KeyCode::Tab);
    let text = detail_text(&app);
    assert!(
        text.iter().any(|l| l.starts_with("not decodable as LLSD:")),
        "{text:?}"
    );
    assert!(
        text.iter().any(|l| l.contains("<llsd><map><key>error")),
        "{text:?}"
    );
}

#[test]
fn a_record_open_at_a_lag_is_closed_after_an_explicit_tick() {
    let mut app = App::new(Source::Live, Limits::default());
    app.tick(1_000);
    let open = Record::new(1, Kind::Http);
    app.take(&open);
    app.lagged(3);
    app.tick(1_000 + LOST_FINAL_AFTER_US - 1);
    assert_eq!(app.store.get(0).unwrap().record.state, State::Open);
    app.tick(1_000 + LOST_FINAL_AFTER_US);
    let e = app.store.get(0).unwrap();
    assert_eq!(e.record.state, State::Failed);
    assert!(e.record.notes.iter().any(|n| n == LOST_FINAL_NOTE));
    assert_eq!(app.store.counts().lagged, 3);
}

#[test]
fn pause_freezes_the_list_and_clear_empties_it() {
    let mut app = app();
    let shown = app.visible.len();
    key(&mut app, KeyCode::Char('p'));
    let mut r = Record::new(200, Kind::Http);
    r.state = State::Done;
    app.take(&r);
    assert_eq!(app.visible.len(), shown, "paused");
    key(&mut app, KeyCode::Char('p'));
    assert_eq!(app.visible.len(), shown + 1, "resumed");
    key(&mut app, KeyCode::Char('c'));
    assert!(app.visible.is_empty() && app.store.is_empty());
}

#[test]
fn help_lists_every_key_and_q_quits_from_anywhere() {
    let mut app = app();
    key(&mut app, KeyCode::Char('?'));
    assert_eq!(app.screen, Screen::Help);
    key(&mut app, KeyCode::Down);
    assert_eq!(
        (app.screen, app.view_scroll),
        (Screen::Help, 1),
        "arrows scroll the help"
    );
    key(&mut app, KeyCode::Char('x'));
    assert_eq!(app.screen, Screen::List, "any key leaves the help");
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Char('q'));
    assert!(app.quit);
}

#[test]
fn y_copies_the_request_as_curl_through_capscope() {
    let mut app = app();
    key(&mut app, KeyCode::Char('y'));
    let copied = app.clipboard.clone().expect("copied");
    assert!(
        copied.starts_with("curl -X POST 'http://127.0.0.1:8080/cap/"),
        "{copied}"
    );
    assert!(app.status.as_ref().unwrap().text.contains("curl"));
}

#[test]
fn the_other_views_summarise_caps_by_region_and_the_timeline() {
    let mut app = app();
    key(&mut app, KeyCode::Char('2'));
    assert_eq!(app.screen, Screen::Caps);
    let caps: Vec<String> = app.caps_view.iter().map(|l| l.to_string()).collect();
    assert!(
        caps.iter()
            .any(|l| l.starts_with("Capscope Plaza") && l.contains("granted 2 caps")),
        "{caps:?}"
    );
    key(&mut app, KeyCode::Char('3'));
    let tl: Vec<String> = app.timeline_view.iter().map(|l| l.to_string()).collect();
    assert!(tl.iter().any(|l| l.contains("TeleportFinish")), "{tl:?}");
    assert!(tl.iter().any(|l| l.contains("1 idle poll")), "{tl:?}");
    key(&mut app, KeyCode::Char('1'));
    assert_eq!(app.screen, Screen::List);
}

#[test]
fn r_asks_the_loop_to_replay_the_selected_request_and_a_file_cannot() {
    let mut app = app();
    key(&mut app, KeyCode::Char('g'));
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Char('r'));
    assert_eq!(app.replay_wanted, app.selected_seq());
    let mut view = App::new(
        Source::File {
            path: "x.jsonl".into(),
            follow: false,
        },
        Limits::default(),
    );
    for r in fixture::session() {
        view.take(&r);
    }
    key(&mut view, KeyCode::Char('r'));
    assert!(view.replay_wanted.is_none());
    assert!(view.status.as_ref().unwrap().error);
}

#[test]
fn an_edited_request_reads_back_with_its_changes() {
    use super::super::detail::{request_from_text, request_text};
    let seed = fixture::session()
        .into_iter()
        .find(|r| r.cap.as_deref() == Some("Seed"))
        .unwrap();
    let text = request_text(&seed).unwrap();
    assert!(
        text.starts_with("POST http://127.0.0.1:8080/cap/"),
        "{text}"
    );
    let same = request_from_text(&seed, &text).unwrap();
    assert_eq!(
        same.request.as_ref().unwrap().headers,
        seed.request.as_ref().unwrap().headers
    );
    let edited = text.replacen("POST", "PUT", 1) + "<llsd><undef /></llsd>";
    let back = request_from_text(&seed, &edited).unwrap();
    let q = back.request.unwrap();
    assert_eq!(q.method, "PUT");
    assert_eq!(&q.body.data[..], b"<llsd><undef /></llsd>");
    assert!(request_from_text(&seed, "POST\nno header line").is_err());
}

#[test]
fn a_curl_command_completes_a_path_with_capscopes_address() {
    let mut r = Record::new(1, Kind::Http);
    r.request = Some(crate::record::Request {
        method: "GET".into(),
        url: "https://sim.example/cap/x".into(),
        client_url: Some("/cap/abcd".into()),
        ..Default::default()
    });
    let cmd = super::super::detail::curl(&r, Some("http://127.0.0.1:8080")).unwrap();
    assert_eq!(cmd, "curl -X GET 'http://127.0.0.1:8080/cap/abcd'");
    r.request.as_mut().unwrap().client_url = None;
    let cmd = super::super::detail::curl(&r, Some("http://127.0.0.1:8080")).unwrap();
    assert_eq!(cmd, "curl -X GET 'https://sim.example/cap/x'");
}

#[test]
fn the_header_learns_the_modes_from_finished_records() {
    let mut app = app();
    assert!(app.seen.login_mode && !app.seen.proxy_mode);
    let mut cut = Record::new(50, Kind::Http);
    cut.state = State::Failed;
    cut.request = Some(crate::record::Request {
        method: "POST".into(),
        url: "/cap/abcd".into(),
        ..Default::default()
    });
    app.take(&cut);
    assert!(
        !app.seen.proxy_mode,
        "a login-mode request cut off before routing"
    );
    let mut proxied = cut.clone();
    proxied.id = 51;
    proxied.request.as_mut().unwrap().url = "https://sim.example:12043/cap/x".into();
    app.take(&proxied);
    assert!(app.seen.proxy_mode);
}

#[test]
fn in_a_file_events_before_their_poll_end_up_under_it_in_the_list() {
    let mut app = App::new(
        Source::File {
            path: "x.jsonl".into(),
            follow: false,
        },
        Limits::default(),
    );
    app.resize(80, 24);
    // File order: finished records, so the poll's event comes before the poll.
    let finals: Vec<Record> = fixture::session()
        .into_iter()
        .filter(|r| r.is_final())
        .collect();
    let mut ordered: Vec<Record> = finals
        .iter()
        .filter(|r| r.kind == Kind::Event)
        .cloned()
        .collect();
    ordered.extend(finals.iter().filter(|r| r.kind != Kind::Event).cloned());
    for r in &ordered {
        app.take(r);
    }
    let names = names(&app);
    let poll = names.iter().position(|n| n == "EventQueueGet").unwrap();
    assert_eq!(names[poll + 1], "  TeleportFinish", "{names:?}");
    assert_eq!(
        names
            .iter()
            .filter(|n| n.contains("TeleportFinish"))
            .count(),
        1
    );
}

#[test]
fn eviction_keeps_the_list_as_a_rebuild_would_without_judging_every_row_again() {
    // A small history, a filter, polls whose events outlive them: after every record the list is
    // what rebuilding it from the store gives, and the selection stays on its row.
    let mut app = App::new(
        Source::Live,
        Limits {
            records: 20,
            body_bytes: usize::MAX,
            record_bytes: usize::MAX,
        },
    );
    app.resize(80, 24);
    app.show_idle = true;
    app.set_filter("cap:EventQueueGet | cap:Seed".into());
    let mut evictions = 0;
    for round in 0..30u64 {
        let id = round * 4 + 1;
        let mut poll = Record::new(id, Kind::Http);
        poll.cap = Some("EventQueueGet".into());
        app.take(&poll);
        let mut ev = Record::new(id + 1, Kind::Event);
        ev.state = State::Done;
        ev.parent = Some(id);
        ev.event = Some(crate::record::EventInfo {
            message: "TeleportFinish".into(),
            ..Default::default()
        });
        app.take(&ev);
        for (k, cap) in [(2, "Seed"), (3, "GetTexture")] {
            let mut r = Record::new(id + k, Kind::Http);
            r.state = State::Done;
            r.cap = Some(cap.into());
            app.take(&r);
        }
        poll.state = State::Done;
        app.take(&poll);
        if round == 10 {
            // Stop following: the selection must stay on its row through evictions.
            app.follow = false;
            app.selected = app.visible.len() - 2;
        }
        let selected = app.selected_seq();
        let incremental = app.visible.clone();
        evictions = app.store.counts().evicted;
        app.rebuild_visible();
        assert_eq!(incremental, app.visible, "round {round}");
        assert_eq!(app.selected_seq(), selected, "round {round}");
    }
    assert!(
        evictions > 40,
        "the history was evicted many times: {evictions}"
    );
}
