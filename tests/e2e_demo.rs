//! `capscope demo` as a newcomer runs it, stopped by itself after a few rounds, in both modes: capscope
//! records the login, the seeds and the caps by name and every scripted event (a teleport and a
//! crossing among them), and the viewer sees no failure.

mod common;

use capscope::cli::demo;

async fn run_demo(mode: &str, login: &str) -> (demo::Summary, String) {
    common::demo::run_demo(&[
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
    ])
    .await
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
