//! Screens drawn with ratatui's test backend at 80x24 and compared with checked-in text snapshots in
//! `tests/snapshots/tui/` (times, ports and cap tokens redacted). `UPDATE_SNAPSHOTS=1 cargo test`
//! rewrites them; review the diff before committing.

use std::path::PathBuf;

use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;

use super::fixture;
use super::render;
use super::state::{App, Source};
use crate::store::Limits;

const WIDTH: u16 = 80;
const HEIGHT: u16 = 24;

fn app() -> App {
    let mut app = App::new(Source::Live, Limits::default());
    app.resize(WIDTH, HEIGHT);
    app.info.listen = Some("127.0.0.1:8080".into());
    app.info.grid = Some("agni".into());
    for r in fixture::session() {
        app.take(&r);
    }
    app
}

fn keys(app: &mut App, codes: &[KeyCode]) {
    for &c in codes {
        app.key(KeyEvent::new(c, KeyModifiers::NONE));
    }
}

/// The screen as text, one line per row, trailing spaces removed.
pub fn screen(app: &App, width: u16, height: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(width, height)).expect("a test terminal");
    t.draw(|f| render::draw(f, app)).expect("drawn");
    let buf = t.backend().buffer();
    let mut out = String::new();
    for y in 0..height {
        let mut line = String::new();
        for x in 0..width {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Replaces clock times, ports after 127.0.0.1 and cap tokens with fixed text.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let is_d = |c: Option<&char>| c.is_some_and(|c| c.is_ascii_digit());
    while i < chars.len() {
        // HH:MM:SS.mmm
        let time = (0..12).all(|k| match k {
            2 | 5 => chars.get(i + k) == Some(&':'),
            8 => chars.get(i + k) == Some(&'.'),
            _ => is_d(chars.get(i + k)),
        });
        if time {
            out.push_str("hh:mm:ss.mmm");
            i += 12;
            continue;
        }
        let rest: String = chars[i..chars.len().min(i + 10)].iter().collect();
        if rest.starts_with("127.0.0.1:") && is_d(chars.get(i + 10)) {
            out.push_str("127.0.0.1:PORT");
            i += 10;
            while is_d(chars.get(i)) {
                i += 1;
            }
            continue;
        }
        if rest.starts_with("/cap/") && chars.get(i + 5).is_some_and(|c| c.is_ascii_hexdigit()) {
            out.push_str("/cap/TOKEN");
            i += 5;
            while chars.get(i).is_some_and(|c| c.is_ascii_hexdigit()) {
                i += 1;
            }
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

fn check(name: &str, text: &str) {
    let text = redact(text);
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots/tui")
        .join(format!("{name}.txt"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().expect("a directory")).expect("snapshot dir");
        std::fs::write(&path, &text).expect("snapshot written");
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "no snapshot {} ({e}); run with UPDATE_SNAPSHOTS=1 and review it:\n{text}",
            path.display()
        )
    });
    assert_eq!(text, want, "screen {name} changed; got:\n{text}");
}

#[test]
fn redaction_hides_times_ports_and_tokens() {
    assert_eq!(
        redact("12:04:01.112 http://127.0.0.1:39027/cap/3b50aa x"),
        "hh:mm:ss.mmm http://127.0.0.1:PORT/cap/TOKEN x"
    );
}

#[test]
fn snapshot_list() {
    check("list", &screen(&app(), WIDTH, HEIGHT));
}

#[test]
fn snapshot_detail_with_an_llsd_tree() {
    let mut app = app();
    keys(
        &mut app,
        &[KeyCode::Char('g'), KeyCode::Down, KeyCode::Enter],
    );
    check("detail_summary", &screen(&app, WIDTH, HEIGHT));
    keys(&mut app, &[KeyCode::Tab, KeyCode::Tab]);
    check("detail_response_tree", &screen(&app, WIDTH, HEIGHT));
}

#[test]
fn snapshot_event_detail_with_decoded_fields() {
    let mut app = app();
    keys(
        &mut app,
        &[
            KeyCode::Char('g'),
            KeyCode::Down,
            KeyCode::Down,
            KeyCode::Down,
            KeyCode::Enter,
            KeyCode::Tab,
            KeyCode::Tab,
        ],
    );
    check("detail_event_tree", &screen(&app, WIDTH, HEIGHT));
}

#[test]
fn snapshot_filter_error() {
    let mut app = app();
    keys(&mut app, &[KeyCode::Char('/')]);
    for c in "status:>>".chars() {
        keys(&mut app, &[KeyCode::Char(c)]);
    }
    check("filter_error", &screen(&app, WIDTH, HEIGHT));
}

#[test]
fn snapshot_help() {
    let mut app = app();
    keys(&mut app, &[KeyCode::Char('?')]);
    check("help", &screen(&app, WIDTH, 40));
}

#[test]
fn snapshot_caps_by_region_and_timeline() {
    let mut app = app();
    keys(&mut app, &[KeyCode::Char('2')]);
    check("caps_by_region", &screen(&app, WIDTH, HEIGHT));
    keys(&mut app, &[KeyCode::Char('3')]);
    check("timeline", &screen(&app, WIDTH, HEIGHT));
}

#[test]
fn a_narrow_or_tiny_terminal_still_draws() {
    let app = app();
    for (w, h) in [(40, 10), (20, 5), (1, 1)] {
        let _ = screen(&app, w, h);
    }
}

#[test]
fn view_follow_reads_what_is_appended_to_a_capture() {
    follow("live.jsonl");
}

#[test]
fn view_follow_reads_what_is_appended_to_a_compressed_capture() {
    follow("live.jsonl.zst");
}

fn follow(name: &str) {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::{read_file, FileMsg};
    use crate::capture::{Header, Writer};

    /// How long to wait for the reader thread (it looks for new bytes every FOLLOW_POLL).
    const PATIENCE: Duration = Duration::from_secs(20);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    let mut writer =
        Writer::create(&path, Header::new(None, None, Some("agni".into())), false).unwrap();
    let records = fixture::session();
    let finals: Vec<_> = records.iter().filter(|r| r.is_final()).collect();
    let (first, rest) = finals.split_at(3);
    for r in first {
        writer.write_record(r).unwrap();
    }
    writer.flush().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (header, rx) = read_file(&path, true, stop.clone()).unwrap();
    assert_eq!(header.grid.as_deref(), Some("agni"));
    let mut got = 0;
    let mut take_until = |want: usize| {
        let deadline = Instant::now() + PATIENCE;
        while got < want {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(FileMsg::Records(b)) => got += b.len(),
                Ok(FileMsg::End) => panic!("a followed file does not end"),
                Ok(_) => {}
                Err(e) => panic!("waited for {want} records, got {got}: {e}"),
            }
        }
        got
    };
    assert_eq!(take_until(3), 3);
    for r in rest {
        writer.write_record(r).unwrap();
    }
    writer.flush().unwrap();
    assert_eq!(take_until(finals.len()), finals.len());
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
}
