//! `capscope demo` run in-process as a user starts it (no capture, any free port), with what it
//! printed kept. Shared by tests/e2e_demo.rs and tests/demo_stop.rs.

use std::io::Write;
use std::sync::{Arc, Mutex};

use capscope::cli::{demo, Cli, Command};
use clap::Parser;

/// A `Write` that keeps what the demo printed.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `capscope demo --ca-dir <temp> --no-save --listen 127.0.0.1:0 ARGS` until it stops by itself:
/// its summary and everything it printed.
pub async fn run_demo(args: &[&str]) -> (demo::Summary, String) {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    let mut line = vec![
        "capscope",
        "demo",
        "--ca-dir",
        ca_dir.to_str().unwrap(),
        "--no-save",
        "--listen",
        "127.0.0.1:0",
    ];
    line.extend_from_slice(args);
    let cli = Cli::parse_from(line);
    let Command::Demo(args) = cli.command else {
        panic!("`capscope demo` parses as the demo command")
    };
    let out = Captured::default();
    let summary = demo::session(args, &cli.ca_dir, Box::new(out.clone()))
        .await
        .unwrap();
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    (summary, text)
}
