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
    use crate::capture::{FileHeader, Writer};

    /// How long to wait for the reader thread (it looks for new bytes every FOLLOW_POLL).
    const PATIENCE: Duration = Duration::from_secs(20);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    let mut writer = Writer::create(
        &path,
        FileHeader::new(None, None, Some("agni".into())),
        false,
    )
    .unwrap();
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

#[test]
fn view_lists_records_in_the_order_they_began_not_the_order_the_file_holds() {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::{drain, read_file, Feed};
    use crate::capture::{FileHeader, Writer};
    use crate::record::Kind;

    /// How long to wait for the reader thread to reach the end of the file.
    const PATIENCE: Duration = Duration::from_secs(20);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("finished.jsonl");
    let mut writer = Writer::create(&path, FileHeader::new(None, None, None), false).unwrap();
    // A capture holds records in the order they finished: a long poll after what began during it.
    let mut finals: Vec<_> = fixture::session()
        .into_iter()
        .filter(|r| r.is_final())
        .collect();
    let finished_at = |r: &crate::record::Record| {
        r.started_us + i64::try_from(r.timings.done_us.unwrap_or(0)).unwrap()
    };
    finals.sort_by_key(finished_at);
    let file_ids: Vec<u64> = finals
        .iter()
        .filter(|r| r.kind != Kind::Event)
        .map(|r| r.id)
        .collect();
    assert!(
        !file_ids.is_sorted(),
        "the fixture has a record that finished after one that began later: {file_ids:?}"
    );
    for r in &finals {
        writer.write_record(r).unwrap();
    }
    writer.finish().unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let (_, rx) = read_file(&path, false, stop).unwrap();
    let mut app = App::new(
        Source::File {
            path: path.clone(),
            follow: false,
        },
        Limits::default(),
    );
    app.resize(WIDTH, HEIGHT);
    app.show_idle = true;
    app.rebuild_visible();
    let mut feed = Feed::File(rx);
    let deadline = Instant::now() + PATIENCE;
    while !app.ended {
        assert!(Instant::now() < deadline, "the file never ended");
        if drain(&mut app, &mut feed) == 0 {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let shown: Vec<(u64, usize)> = app
        .visible
        .iter()
        .filter_map(|&(_, _, s)| app.store.get(s))
        .map(|e| (e.record.id, e.depth()))
        .collect();
    let top: Vec<u64> = shown.iter().filter(|s| s.1 == 0).map(|s| s.0).collect();
    let mut sorted = top.clone();
    sorted.sort_unstable();
    assert_eq!(top, sorted, "rows by id: {shown:?}");
    assert_eq!(
        top.len(),
        file_ids.len(),
        "every record is listed: {shown:?}"
    );
    // Each event sits right under its poll.
    for (i, &(id, depth)) in shown.iter().enumerate() {
        if depth == 1 {
            let event = app.store.get(app.store.seq_of(id).unwrap()).unwrap();
            let above = shown[..i].iter().rev().find(|s| s.1 == 0).unwrap().0;
            assert_eq!(event.record.parent, Some(above), "{shown:?}");
        }
    }
}

#[test]
fn a_stopped_capture_and_lost_records_show_in_the_header_at_80_columns() {
    let mut app = app();
    app.info.capture = Some(PathBuf::from(
        "/home/someone/.local/share/capscope/captures/capscope-20261130-120401-000.jsonl",
    ));
    let before = screen(&app, WIDTH, HEIGHT);
    assert!(!before.contains("capture stopped"), "{before}");
    // The writer fails: the next poll changes the header, and the footer says it too.
    let failed = crate::tui::CaptureState {
        failure: Some(
            "cannot write /home/someone/.local/share/capscope/captures/capscope-20261130-120401-000\
             .jsonl: No space left on device (os error 28)"
                .into(),
        ),
        dropped: 0,
    };
    assert!(app.capture_state(Some(failed.clone())));
    let text = screen(&app, WIDTH, HEIGHT);
    let header = text.lines().nth(1).unwrap();
    assert!(
        header.starts_with("capture stopped: No space left on device (os error 28)"),
        "{text}"
    );
    let footer = text.lines().last().unwrap();
    assert!(
        footer.starts_with("capture stopped: cannot write /home/someone/"),
        "the whole message: {text}"
    );
    // The same state again changes nothing; the writer gone (None) keeps what was seen.
    assert!(!app.capture_state(Some(failed)));
    assert!(!app.capture_state(None));
    assert!(app.info.capture_state.failure.is_some());

    // Records lost by the capture writer and by the UI itself come before the capture's name.
    let mut app = self::app();
    app.info.capture = Some(PathBuf::from(
        "/home/someone/.local/share/capscope/captures/capscope-20261130-120401-000.jsonl",
    ));
    app.capture_state(Some(crate::tui::CaptureState {
        failure: None,
        dropped: 12,
    }));
    app.lagged(345);
    let text = screen(&app, WIDTH, HEIGHT);
    let header = text.lines().nth(1).unwrap();
    assert!(header.contains("12 lost by the capture"), "{text}");
    assert!(header.contains("345 lost (UI behind)"), "{text}");
}
