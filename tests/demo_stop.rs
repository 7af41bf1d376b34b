//! `capscope demo --for` stops the scripted viewer before capscope, so a stop in the middle of a
//! round of requests fails none of them (before, such a stop reported failures and "Connection
//! refused" lines: capscope went away under the viewer's feet).

use std::io::Write;
use std::sync::{Arc, Mutex};

use capscope::cli::{demo, Cli, Command};
use clap::Parser;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_in_the_middle_of_a_round_fails_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    // Rounds back to back (--every 0): whenever --for ends, requests are in flight.
    let cli = Cli::parse_from([
        "capscope",
        "demo",
        "--ca-dir",
        ca_dir.to_str().unwrap(),
        "--no-save",
        "--listen",
        "127.0.0.1:0",
        "--every",
        "0",
        "--eq-hold",
        "2",
        "--for",
        "2.5",
    ]);
    let Command::Demo(args) = cli.command else {
        panic!("`capscope demo` parses as the demo command")
    };
    let out = Captured::default();
    let summary = demo::session(args, &cli.ca_dir, Box::new(out.clone()))
        .await
        .unwrap();
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    assert_eq!(summary.stopped_by, "--for", "{text}");
    assert!(summary.requests > 10, "the viewer was busy: {summary:?}");
    assert_eq!(summary.failed, 0, "{text}");
    assert!(!text.contains("Connection refused"), "{text}");
}
