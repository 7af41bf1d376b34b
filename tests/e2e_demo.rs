//! `capscope demo` as a newcomer runs it, stopped by itself after a few rounds, in both modes: capscope
//! records the login, the seeds and the caps by name and every scripted event (a teleport and a
//! crossing among them), and the viewer sees no failure.

use std::io::Write;
use std::sync::{Arc, Mutex};

use capscope::cli::{demo, Cli, Command};
use clap::Parser;

/// A `Write` that keeps what the demo printed.
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

async fn run_demo(mode: &str, login: &str) -> (demo::Summary, String) {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    let cli = Cli::parse_from([
        "capscope",
        "demo",
        "--ca-dir",
        ca_dir.to_str().unwrap(),
        "--no-save",
        "--listen",
        "127.0.0.1:0",
        "--mode",
        mode,
        "--steps",
        "4",
        "--every",
        "0",
        "--eq-hold",
        "2",
        "--login",
        login,
    ]);
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

fn check(summary: &demo::Summary, text: &str) {
    assert_eq!(summary.stopped_by, "the last step", "{text}");
    assert_eq!(summary.failed, 0, "{text}");
    assert_eq!(
        summary.region_switches, 2,
        "a teleport and a crossing: {text}"
    );
    for cap in [
        "get_grid_info",
        "login",
        "Seed",
        "EventQueueGet",
        "FetchInventoryDescendents2",
        "FetchLibDescendents2",
        "GetDisplayNames",
        "SimulatorFeatures",
        "GetObjectCost",
        "ViewerAsset",
        "NewFileAgentInventory",
        "NewFileAgentInventoryUploader",
    ] {
        assert!(
            summary.records_by_cap.contains_key(cap),
            "no {cap} record: {summary:?}"
        );
    }
    assert!(
        !summary.records_by_cap.contains_key("-"),
        "unnamed: {summary:?}"
    );
    for event in [
        "EstablishAgentCommunication",
        "TeleportFinish",
        "CrossedRegion",
        "ChatterBoxInvitation",
    ] {
        assert!(
            summary.events_by_message.contains_key(event),
            "no {event} event record: {summary:?}"
        );
    }
    assert!(text.contains("capscope demo: a simulated grid"), "{text}");
    assert!(text.contains("the grid teleports the avatar"), "{text}");
    assert!(
        text.contains("capscope demo stopped (the last step)"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_in_login_mode_shows_a_whole_session() {
    let (summary, text) = run_demo("login", "xmlrpc").await;
    check(&summary, &text);
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_in_login_mode_with_an_llsd_login_shows_a_whole_session() {
    let (summary, text) = run_demo("login", "llsd").await;
    check(&summary, &text);
    // The redirect, the MFA challenge and the way in.
    assert_eq!(summary.records_by_cap.get("login"), Some(&3), "{summary:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_in_http_proxy_mode_shows_a_whole_session() {
    let (summary, text) = run_demo("proxy", "llsd").await;
    check(&summary, &text);
    // The built-in browser's page opened a WebSocket through capscope each round.
    assert_eq!(
        summary.records_by_cap.get(demo::WEBSOCKET_TALLY),
        Some(&4),
        "{summary:?}"
    );
}
