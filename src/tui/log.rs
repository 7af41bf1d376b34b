//! Where log output goes while the UI owns the terminal: every line to a log file, and the latest
//! lines to a small ring the header shows. Nothing is written to the terminal while the UI is up.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tracing_subscriber::fmt::MakeWriter;

use super::state::LogLines;

/// How many log lines the ring keeps.
pub const RING_LINES: usize = 200;

/// The log file's name in the data directory.
pub const LOG_FILE: &str = "capscope.log";

/// The log file for a UI session: `capscope.log` in capscope's data directory.
pub fn log_path(data_dir: &Path) -> PathBuf {
    data_dir.join(LOG_FILE)
}

/// A sink for log lines: the file and the ring; or, once the UI is down again, standard output.
#[derive(Clone)]
pub struct Sink {
    lines: LogLines,
    file: Arc<Mutex<Option<File>>>,
    ui_up: Arc<AtomicBool>,
}

impl Sink {
    /// A sink appending to `path` (created with mode 0600: lines may name hosts and cap paths).
    pub fn open(path: &Path) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut options = OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options.open(path)?;
        Ok(Self {
            lines: LogLines::default(),
            file: Arc::new(Mutex::new(Some(file))),
            ui_up: Arc::new(AtomicBool::new(true)),
        })
    }

    /// The ring the header reads.
    pub fn lines(&self) -> LogLines {
        Arc::clone(&self.lines)
    }

    /// Says whether the UI owns the terminal (lines go to the file and the ring) or not (lines go
    /// to standard output as well as the file).
    pub fn set_ui_up(&self, up: bool) {
        self.ui_up.store(up, Ordering::SeqCst);
    }

    /// Takes one line (without its newline).
    pub fn line(&self, text: &str) {
        if let Ok(mut f) = self.file.lock() {
            if let Some(f) = f.as_mut() {
                let _ = writeln!(f, "{text}");
            }
        }
        if self.ui_up.load(Ordering::SeqCst) {
            if let Ok(mut ring) = self.lines.lock() {
                if ring.len() >= RING_LINES {
                    ring.pop_front();
                }
                ring.push_back(text.trim().to_owned());
            }
        } else {
            println!("{text}");
        }
    }
}

/// A writer that hands complete lines to a [`Sink`] (what `demo` prints, and `tracing`'s output).
pub struct LineWriter {
    sink: Sink,
    buf: Vec<u8>,
}

impl LineWriter {
    pub fn new(sink: Sink) -> Self {
        Self {
            sink,
            buf: Vec::new(),
        }
    }
}

impl Write for LineWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        while let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=i).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]);
            self.sink.line(&text);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            let text = String::from_utf8_lossy(&self.buf).into_owned();
            self.sink.line(&text);
        }
    }
}

impl<'a> MakeWriter<'a> for Sink {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter::new(self.clone())
    }
}

/// Sends `tracing` output to `sink` instead of the terminal (called instead of the CLI's own setup
/// when the UI runs).
pub fn init_tracing(sink: &Sink, verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_target(false)
        .with_writer(sink.clone())
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_go_to_the_file_and_the_ring_while_the_ui_is_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_path(dir.path());
        let sink = Sink::open(&path).unwrap();
        let mut w = LineWriter::new(sink.clone());
        w.write_all(b"first\nsec").unwrap();
        w.write_all(b"ond\n").unwrap();
        drop(w);
        let ring: Vec<String> = sink.lines().lock().unwrap().iter().cloned().collect();
        assert_eq!(ring, ["first", "second"]);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "first\nsecond\n");
    }
}
