//! `capscope demo --for` stops the scripted viewer before capscope, so a stop in the middle of a
//! round of requests fails none of them (before, such a stop reported failures and "Connection
//! refused" lines: capscope went away under the viewer's feet).

mod common;

use common::demo::run_demo;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_in_the_middle_of_a_round_fails_no_request() {
    // Rounds back to back (--every 0): whenever --for ends, requests are in flight.
    let (summary, text) = run_demo(&["--every", "0", "--eq-hold", "2", "--for", "2.5"]).await;
    assert_eq!(summary.stopped_by, "--for", "{text}");
    assert!(summary.requests > 10, "the viewer was busy: {summary:?}");
    assert_eq!(summary.failed, 0, "{text}");
    assert!(!text.contains("Connection refused"), "{text}");
}
