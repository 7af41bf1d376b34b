//! The real binary's terminal UI in a pseudo-terminal, against the simulated grid (`capscope demo`):
//! the cap and event names appear, a filter applies, the detail of a Seed response opens with its
//! rewritten cap URLs, `r` replays it through capscope, and `q` exits with status 0 leaving the terminal restored.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{native_pty_system, CommandBuilder, PtySize};

const ROWS: u16 = 40;
const COLS: u16 = 120;
/// How long to wait for something to appear on screen (a loaded CI machine is slow; the demo's
/// first rounds take a few seconds).
const PATIENCE: Duration = Duration::from_secs(60);
/// How often the screen is looked at while waiting.
const LOOK_EVERY: Duration = Duration::from_millis(50);

struct Screen {
    parser: Arc<Mutex<vt100::Parser>>,
}

impl Screen {
    fn text(&self) -> String {
        self.parser.lock().unwrap().screen().contents()
    }

    /// Waits until `pred` holds for the screen's text, failing with the screen otherwise. The text
    /// must be the same on two looks in a row, so a frame caught half-drawn does not count.
    fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        let mut last = String::new();
        loop {
            let text = self.text();
            if pred(&text) && text == last {
                return text;
            }
            last = text.clone();
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; the screen:\n{text}"
            );
            std::thread::sleep(LOOK_EVERY);
        }
    }
}

#[test]
fn demo_in_a_terminal_shows_caps_filters_opens_a_seed_and_quits_with_0() {
    let dir = tempfile::tempdir().unwrap();
    let pty = native_pty_system();
    let pair = pty
        .openpty(PtySize {
            rows: ROWS,
            cols: COLS,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap();
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_capscope"));
    cmd.args([
        "demo",
        "--listen",
        "127.0.0.1:0",
        "--every",
        "0.5",
        "--eq-hold",
        "2",
        "--no-save",
    ]);
    cmd.env("CAPSCOPE_HOME", dir.path());
    cmd.env("TERM", "xterm-256color");
    cmd.env_remove("RUST_LOG");
    cmd.env_remove("VISUAL");
    // `R` opens the request in this "editor", which changes nothing: the replay is the original.
    cmd.env("EDITOR", "true");
    cmd.cwd(dir.path());
    let mut child = pair.slave.spawn_command(cmd).unwrap();
    drop(pair.slave);
    let mut reader = pair.master.try_clone_reader().unwrap();
    let mut keys = pair.master.take_writer().unwrap();
    let parser = Arc::new(Mutex::new(vt100::Parser::new(ROWS, COLS, 0)));
    let raw = Arc::new(Mutex::new(Vec::new()));
    {
        let (parser, raw) = (parser.clone(), raw.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                parser.lock().unwrap().process(&buf[..n]);
                raw.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
    }
    let screen = Screen { parser };

    // The list: caps by name, events under their polls, the agent in the header.
    let text = screen.wait_for("caps and events", |t| {
        t.contains("Seed")
            && t.contains("EventQueueGet")
            && t.contains("FetchInventoryDescendents2")
            && (t.contains("EnableSimulator") || t.contains("EstablishAgentCommunication"))
    });
    assert!(text.contains("Demo Resident"), "{text}");
    assert!(
        text.contains("time") && text.contains("cap / event"),
        "{text}"
    );

    // A filter: only seeds stay.
    keys.write_all(b"/cap:Seed\r").unwrap();
    let text = screen.wait_for("the filter applied", |t| {
        t.contains("filter cap:Seed") && !t.contains("FetchInventoryDescendents2")
    });
    assert!(text.contains("Seed"), "{text}");

    // The detail of the (selected, newest) Seed: its response is a tree of rewritten cap URLs.
    keys.write_all(b"\r").unwrap();
    screen.wait_for("the detail", |t| {
        t.contains("summary") && t.contains("rewrote")
    });
    keys.write_all(b"\t\t").unwrap();
    let text = screen.wait_for("the seed's response tree", |t| {
        t.contains("response body") && t.contains("map (") && t.contains("EventQueueGet:")
    });
    assert!(
        text.contains("EventQueueGet: \"http://127.0.0.1:")
            || text.contains("EventQueueGet: http://127.0.0.1:"),
        "the viewer sees capscope's URLs: {text}"
    );

    // r replays the selected Seed through capscope: a new row, recorded and marked as a replay.
    keys.write_all(b"\x1b").unwrap();
    screen.wait_for("the list again", |t| t.contains("cap / event"));
    keys.write_all(b"r").unwrap();
    let text = screen.wait_for("the replayed seed", |t| t.contains("↻ Seed"));
    assert!(text.contains("200"), "{text}");
    keys.write_all(b"R").unwrap();
    screen.wait_for("a second replay, after the editor", |t| {
        t.matches("↻ Seed").count() == 2
    });

    // q quits at once, with status 0, and the terminal is given back.
    keys.write_all(b"q").unwrap();
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "capscope did not exit after q:\n{}",
            screen.text()
        );
        std::thread::sleep(LOOK_EVERY);
    };
    assert!(status.success(), "exit status {status:?}");
    // Drain what is left of the output (the reader ends when the pty closes).
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let raw = raw.lock().unwrap();
        if raw.windows(8).any(|w| w == b"\x1b[?1049l") {
            break;
        }
        drop(raw);
        std::thread::sleep(LOOK_EVERY);
    }
    let raw = raw.lock().unwrap().clone();
    let out = String::from_utf8_lossy(&raw);
    assert!(
        out.contains("\u{1b}[?1049l"),
        "the alternate screen was not left"
    );
    assert!(out.contains("capscope demo stopped (q)"), "{out}");
    assert!(out.contains("(0 failed)"), "{out}");
}
