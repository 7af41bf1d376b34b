//! Fuzz target: the XML-RPC login reader and rewriter must read any body to a result or an error,
//! never panic; a rewritten reply is still XML-RPC.
#![no_main]

use capscope::caps::{login, xmlrpc, Action, Registry};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = xmlrpc::parse(data, "fuzz input");
    let _ = login::parse_login_request(data);
    let _ = login::is_xml_rpc(data);
    for action in [Action::Learn, Action::Rewrite] {
        let mut registry = Registry::new("http://127.0.0.1:8080");
        if let Ok((rewritten, _reply)) = login::rewrite_login_reply(data, &mut registry, action) {
            if let Some(body) = rewritten.body {
                assert!(
                    xmlrpc::parse(&body, "rewritten reply").is_ok(),
                    "a rewritten login reply no longer parses"
                );
            }
        }
    }
});
