//! The XML-RPC `login_to_simulator` exchange: who logs in (from the request), where they land and the
//! first seed capability (from the reply), and in login mode the reply's `seed_capability` rewritten
//! in place to a capscope cap URL.
//!
//! Owns the reading and rewriting of login bodies. Never puts `passwd`, `secure_session_id` or any
//! other secret into its output. Must not touch `sim_ip`/`sim_port` (UDP is not proxied).

use super::registry::{CapKind, RegionId, Registry};
use super::xmlrpc::{self, escape_text, Element};
use super::{Action, CapsError, Rewritten};
use crate::caps::fields::{describe_handle, handle_from_metres};

/// How deep the login's XML-RPC is read: the top struct's scalar members sit at level 8
/// (`methodResponse/params/param/value/struct/member/value/string`); deeper content (the inventory
/// skeleton) is checked but not kept.
const LOGIN_XML_DEPTH: usize = 8;

/// The cap name login exchanges are recorded under.
pub const LOGIN_CAP: &str = "login";

/// What capscope shows of a login request (never the password or other secrets).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoginRequest {
    pub first: Option<String>,
    pub last: Option<String>,
    pub username: Option<String>,
    pub start: Option<String>,
    pub channel: Option<String>,
    pub version: Option<String>,
}

impl LoginRequest {
    /// The account in words: `First Last`, or the username.
    pub fn who(&self) -> String {
        match (&self.first, &self.last, &self.username) {
            (Some(f), Some(l), _) => format!("{f} {l}"),
            (Some(f), None, _) => f.clone(),
            (_, _, Some(u)) => u.clone(),
            _ => "an unnamed account".to_owned(),
        }
    }
}

/// What capscope learnt from a login reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoginReply {
    /// The reply's `login` member: `true`, `false`, `indeterminate` (MFA or redirect).
    pub login: Option<String>,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub seed_capability: Option<String>,
    pub region_x: Option<u32>,
    pub region_y: Option<u32>,
    pub sim_ip: Option<String>,
    pub sim_port: Option<u16>,
    pub agent_id: Option<String>,
    /// The login region as registered, when the reply carried a seed.
    pub region: Option<RegionId>,
    /// An XML-RPC fault (`faultCode: faultString`) instead of a reply.
    pub fault: Option<String>,
    /// With `login` = `indeterminate`: where the viewer logs in next (secondlife/viewer
    /// indra/viewer_components/login/lllogin.cpp retries at `next_url` with `next_method`).
    pub next_url: Option<String>,
    /// The first name, last name (as the grid writes them, maybe quoted) and agent id, for naming
    /// the agent in records.
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

impl LoginReply {
    /// Whether the grid let the avatar in.
    pub fn succeeded(&self) -> bool {
        self.login.as_deref() == Some("true")
    }

    /// The region handle from `region_x`/`region_y` (metres).
    pub fn handle(&self) -> Option<u64> {
        Some(handle_from_metres(self.region_x?, self.region_y?))
    }

    /// The agent in words, for records: `First Last` as the reply names them (Second Life and
    /// OpenSim quote the first name), else the agent id.
    pub fn agent(&self) -> Option<String> {
        let unquote = |s: &String| s.trim().trim_matches('"').trim().to_owned();
        match (&self.first_name, &self.last_name) {
            (Some(f), Some(l)) => Some(format!("{} {}", unquote(f), unquote(l))),
            (Some(f), None) => Some(unquote(f)),
            _ => self.agent_id.clone(),
        }
    }

    /// The simulator's UDP address, `ip:port`.
    pub fn sim_udp(&self) -> Option<String> {
        Some(format!("{}:{}", self.sim_ip.as_ref()?, self.sim_port?))
    }
}

/// Whether a body is an XML-RPC document (decided by its bytes, never by its Content-Type).
pub fn is_xml_rpc(body: &[u8]) -> bool {
    matches!(
        xmlrpc::root_name(body).as_deref(),
        Some("methodCall") | Some("methodResponse")
    )
}

/// Reads the non-secret members of a `login_to_simulator` request.
pub fn parse_login_request(body: &[u8]) -> Result<LoginRequest, CapsError> {
    const WHAT: &str = "login request";
    let root = xmlrpc::parse_to_depth(body, WHAT, LOGIN_XML_DEPTH)?;
    let st = top_struct(&root, "methodCall", WHAT)?;
    let mut req = LoginRequest::default();
    for (name, value) in xmlrpc::members(st) {
        let Some(s) = xmlrpc::scalar(value) else {
            continue;
        };
        let slot = match name.as_str() {
            "first" => &mut req.first,
            "last" => &mut req.last,
            "username" => &mut req.username,
            "start" => &mut req.start,
            "channel" => &mut req.channel,
            "version" => &mut req.version,
            _ => continue, // passwd, mac, id0, token, mfa_hash...: never read
        };
        *slot = Some(s.text);
    }
    Ok(req)
}

/// Learns the login region and seed from a login reply and, with [`Action::Rewrite`], points its
/// `seed_capability` at capscope. Everything else stays byte-identical.
pub fn rewrite_login_reply(
    body: &[u8],
    registry: &mut Registry,
    action: Action,
) -> Result<(Rewritten, LoginReply), CapsError> {
    const WHAT: &str = "login reply";
    let root = xmlrpc::parse_to_depth(body, WHAT, LOGIN_XML_DEPTH)?;
    if root.name != "methodResponse" {
        return Err(CapsError::NotXmlRpc {
            what: WHAT,
            expected: "methodResponse",
            found: format!("root element <{}>", root.name),
        });
    }
    let mut reply = LoginReply::default();
    if let Some(fault) = root.path(&["fault", "value", "struct"]) {
        let mut code = String::new();
        let mut text = String::new();
        for (name, value) in xmlrpc::members(fault) {
            let s = xmlrpc::scalar(value).map(|s| s.text).unwrap_or_default();
            match name.as_str() {
                "faultCode" => code = s,
                "faultString" => text = s,
                _ => {}
            }
        }
        reply.fault = Some(format!("{code}: {text}"));
        return Ok((Rewritten::default(), reply));
    }
    let st = top_struct(&root, "methodResponse", WHAT)?;
    let mut seed_span = None;
    let mut next_span = None;
    for (name, value) in xmlrpc::members(st) {
        let Some(s) = xmlrpc::scalar(value) else {
            continue;
        };
        match name.as_str() {
            "login" => reply.login = Some(s.text),
            "reason" => reply.reason = Some(s.text),
            "message" => reply.message = Some(s.text),
            "seed_capability" => {
                seed_span = Some(s.span);
                reply.seed_capability = Some(s.text);
            }
            "region_x" => reply.region_x = s.text.trim().parse().ok(),
            "region_y" => reply.region_y = s.text.trim().parse().ok(),
            "sim_ip" => reply.sim_ip = Some(s.text),
            "sim_port" => reply.sim_port = s.text.trim().parse().ok(),
            "agent_id" => reply.agent_id = Some(s.text),
            "next_url" => {
                next_span = Some(s.span);
                reply.next_url = Some(s.text);
            }
            "first_name" => reply.first_name = Some(s.text),
            "last_name" => reply.last_name = Some(s.text),
            _ => {} // session ids and the rest: not read
        }
    }
    let mut out = Rewritten::default();
    let proxied = learn_reply(&mut reply, registry, action, &mut out.notes);
    let mut spans: Vec<(std::ops::Range<usize>, String)> = Vec::new();
    if let (Some(url), Some(span)) = (proxied.seed, seed_span) {
        spans.push((span, url));
    }
    if let (Some(url), Some(span)) = (proxied.next_url, next_span) {
        spans.push((span, url));
    }
    if !spans.is_empty() {
        spans.sort_by_key(|(span, _)| span.start);
        let mut bytes = Vec::with_capacity(body.len() + 256);
        let mut at = 0;
        for (span, url) in spans {
            bytes.extend_from_slice(&body[at..span.start]);
            bytes.extend_from_slice(escape_text(&url).as_bytes());
            at = span.end;
        }
        bytes.extend_from_slice(&body[at..]);
        out.body = Some(bytes.into());
    }
    Ok((out, reply))
}

/// The capscope URLs a login reply's URLs become (login mode).
#[derive(Debug, Default)]
pub(crate) struct Proxied {
    pub seed: Option<String>,
    pub next_url: Option<String>,
}

/// Registers what a login reply tells (the first region and its seed; a redirect's `next_url`) and,
/// with [`Action::Rewrite`], mints the capscope URLs they become. Shared by the XML-RPC and the LLSD
/// login.
pub(crate) fn learn_reply(
    reply: &mut LoginReply,
    registry: &mut Registry,
    action: Action,
    notes: &mut Vec<String>,
) -> Proxied {
    let mut proxied = Proxied::default();
    let seed = reply.seed_capability.clone().filter(|s| !s.is_empty());
    if let Some(seed) = seed {
        let udp = reply.sim_udp();
        let region = registry.add_region(&seed, reply.handle(), udp.as_deref());
        registry.set_region_agent(region, reply.agent().as_deref());
        registry.enter_region(region);
        reply.region = Some(region);
        notes.push(format!(
            "seed of {}: {seed}",
            region_words(registry, region)
        ));
        if action == Action::Rewrite {
            let cap = registry.grant(
                super::registry::SEED_CAP,
                &seed,
                Some(region),
                CapKind::Normal,
            );
            let proxy = registry.proxy_url(cap);
            notes.push(format!("rewrote seed_capability -> {proxy}"));
            proxied.seed = Some(proxy);
        }
    }
    let next = reply
        .next_url
        .clone()
        .filter(|u| super::seed::is_http_url(u));
    if let Some(next) = next {
        if action == Action::Rewrite {
            // The retry is a login too: the hook routes this cap's requests as logins.
            let proxy = registry.grant_proxied(LOGIN_CAP, &next, None, CapKind::Normal);
            notes.push(format!(
                "rewrote next_url {next} -> {proxy} (the retry comes back through capscope)"
            ));
            proxied.next_url = Some(proxy);
        } else {
            registry.grant(LOGIN_CAP, &next, None, CapKind::Normal);
            notes.push(format!("next_url {next} (the retry is read as a login)"));
        }
    }
    proxied
}

fn region_words(registry: &Registry, region: RegionId) -> String {
    registry
        .region_label(region)
        .unwrap_or_else(|| format!("region #{}", region.0))
}

/// The record's notes for a login: who, which grid, where they landed, or why they were refused.
pub fn login_notes(request: Option<&LoginRequest>, grid: &str, reply: &LoginReply) -> Vec<String> {
    let who = request
        .map(LoginRequest::who)
        .unwrap_or_else(|| "someone".to_owned());
    let mut notes = Vec::new();
    if let Some(fault) = &reply.fault {
        notes.push(format!(
            "login of {who} on {grid} failed: XML-RPC fault {fault}"
        ));
        return notes;
    }
    match reply.login.as_deref() {
        Some("true") => {
            let mut s = format!("login of {who} on {grid} succeeded");
            if let Some(h) = reply.handle() {
                s.push_str(&format!(", region {}", describe_handle(h)));
            }
            if let Some(udp) = reply.sim_udp() {
                s.push_str(&format!(", sim {udp} (UDP, not proxied)"));
            }
            notes.push(s);
        }
        Some(other) => {
            let reason = reply.reason.as_deref().unwrap_or("no reason given");
            let mut s = format!("login of {who} on {grid} answered login={other}: {reason}");
            if let Some(m) = &reply.message {
                s.push_str(&format!(" ({})", m.trim()));
            }
            notes.push(s);
        }
        None => notes.push(format!(
            "login reply for {who} on {grid} has no `login` member"
        )),
    }
    notes
}

fn top_struct<'a>(
    root: &'a Element,
    expected_root: &'static str,
    what: &'static str,
) -> Result<&'a Element, CapsError> {
    if root.name != expected_root {
        return Err(CapsError::NotXmlRpc {
            what,
            expected: expected_root,
            found: format!("root element <{}>", root.name),
        });
    }
    root.path(&["params", "param", "value", "struct"])
        .ok_or(CapsError::NotXmlRpc {
            what,
            expected: "params/param/value/struct",
            found: "no struct in the first param".to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SL_SEED: &str =
        "https://simhost-0123456789abcdef.agni.secondlife.io:12043/cap/8d8e1f1a-1b2c-4d5e-8f90-a1b2c3d4e5f6";

    fn sl_reply() -> String {
        format!(
            "<?xml version=\"1.0\"?><methodResponse><params><param><value><struct>\
<member><name>last_name</name><value><string>\"Resident\"</string></value></member>\
<member><name>sim_port</name><value><i4>13005</i4></value></member>\
<member><name>sim_ip</name><value><string>216.82.1.2</string></value></member>\
<member><name>secure_session_id</name><value><string>11111111-2222-3333-4444-555555555555</string></value></member>\
<member><name>look_at</name><value><string>[r0.99,r0.1,r0]</string></value></member>\
<member><name>seed_capability</name><value><string>{SL_SEED}</string></value></member>\
<member><name>region_x</name><value><i4>256000</i4></value></member>\
<member><name>region_y</name><value><i4>256256</i4></value></member>\
<member><name>inventory-skeleton</name><value><array><data><value><struct>\
<member><name>name</name><value><string>My Inventory</string></value></member></struct></value></data></array></value></member>\
<member><name>login</name><value><string>true</string></value></member>\
</struct></value></param></params></methodResponse>\n"
        )
    }

    fn opensim_reply() -> &'static str {
        // OpenSim: untyped values, an &amp; in a URL, http_port and map-server-url extras.
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<methodResponse>\n  <params>\n    <param>\n      <value>\n        <struct>\n\
          <member><name>seed_capability</name><value>http://127.0.0.1:9000/CAPS/6a7b8c9d-0000-1111-2222-333344445555a&amp;b0000/</value></member>\n\
          <member><name>http_port</name><value><i4>9000</i4></value></member>\n\
          <member><name>map-server-url</name><value><string>http://127.0.0.1:9000/</string></value></member>\n\
          <member><name>region_x</name><value><i4>256000</i4></value></member>\n\
          <member><name>region_y</name><value><i4>256000</i4></value></member>\n\
          <member><name>sim_ip</name><value><string>127.0.0.1</string></value></member>\n\
          <member><name>sim_port</name><value><i4>9000</i4></value></member>\n\
          <member><name>login</name><value><string>true</string></value></member>\n\
        </struct>\n      </value>\n    </param>\n  </params>\n</methodResponse>"
    }

    #[test]
    fn second_life_reply_seed_is_rewritten_in_place() {
        let body = sl_reply();
        let mut reg = Registry::new("http://127.0.0.1:8080");
        let (out, reply) = rewrite_login_reply(body.as_bytes(), &mut reg, Action::Rewrite).unwrap();
        let new = String::from_utf8(out.body.unwrap().to_vec()).unwrap();
        let cap = reg.lookup_url(SL_SEED).unwrap();
        let proxy = reg.cap(cap.cap).unwrap().proxy_url.clone().unwrap();
        assert!(proxy.starts_with("http://127.0.0.1:8080/cap/"));
        assert_eq!(new, body.replace(SL_SEED, &proxy), "only the seed changed");
        assert!(
            new.contains("<string>216.82.1.2</string>"),
            "sim_ip untouched"
        );
        assert!(reply.succeeded());
        assert_eq!(reply.handle(), Some((256_000u64 << 32) | 256_256));
        assert_eq!(reply.sim_udp().as_deref(), Some("216.82.1.2:13005"));
        let region = reg.region(reply.region.unwrap()).unwrap();
        assert_eq!(region.sim_udp.as_deref(), Some("216.82.1.2:13005"));
        assert_eq!(reg.current_region(), reply.region);
        assert_eq!(cap.name, "Seed");
        let notes = out.notes.join("\n");
        assert!(!notes.contains("11111111-2222"), "no secrets in notes");
    }

    #[test]
    fn opensim_reply_with_untyped_value_and_escapes_is_rewritten_in_place() {
        let body = opensim_reply();
        let seed = "http://127.0.0.1:9000/CAPS/6a7b8c9d-0000-1111-2222-333344445555a&b0000/";
        let mut reg = Registry::new("http://127.0.0.1:8080");
        let (out, reply) = rewrite_login_reply(body.as_bytes(), &mut reg, Action::Rewrite).unwrap();
        assert_eq!(reply.seed_capability.as_deref(), Some(seed));
        let proxy = reg
            .cap(reg.lookup_url(seed).unwrap().cap)
            .unwrap()
            .proxy_url
            .clone()
            .unwrap();
        assert!(proxy.ends_with('/'));
        let escaped = seed.replace('&', "&amp;");
        assert_eq!(
            String::from_utf8(out.body.unwrap().to_vec()).unwrap(),
            body.replace(&escaped, &proxy)
        );
    }

    #[test]
    fn learning_only_changes_nothing_but_registers_the_seed() {
        let body = sl_reply();
        let mut reg = Registry::new("http://127.0.0.1:8080");
        let (out, _) = rewrite_login_reply(body.as_bytes(), &mut reg, Action::Learn).unwrap();
        assert_eq!(out.body, None);
        let found = reg.lookup_url(SL_SEED).unwrap();
        assert_eq!(found.name, "Seed");
        assert_eq!(reg.cap(found.cap).unwrap().token, None, "no token minted");
    }

    #[test]
    fn failed_login_and_fault_are_explained() {
        let body = "<?xml version=\"1.0\"?><methodResponse><params><param><value><struct>\
<member><name>login</name><value><string>false</string></value></member>\
<member><name>reason</name><value><string>key</string></value></member>\
<member><name>message</name><value><string>Sorry! We couldn't log you in.</string></value></member>\
</struct></value></param></params></methodResponse>";
        let mut reg = Registry::new("http://p");
        let (out, reply) = rewrite_login_reply(body.as_bytes(), &mut reg, Action::Rewrite).unwrap();
        assert_eq!(out.body, None);
        assert!(!reply.succeeded());
        let req = LoginRequest {
            first: Some("Ann".into()),
            last: Some("Resident".into()),
            ..LoginRequest::default()
        };
        let notes = login_notes(Some(&req), "agni", &reply);
        assert_eq!(
            notes,
            vec!["login of Ann Resident on agni answered login=false: key (Sorry! We couldn't log you in.)"]
        );

        let fault = "<methodResponse><fault><value><struct>\
<member><name>faultCode</name><value><int>4</int></value></member>\
<member><name>faultString</name><value><string>Too many parameters.</string></value></member>\
</struct></value></fault></methodResponse>";
        let (_, reply) = rewrite_login_reply(fault.as_bytes(), &mut reg, Action::Rewrite).unwrap();
        assert_eq!(reply.fault.as_deref(), Some("4: Too many parameters."));
        assert!(login_notes(None, "aditi", &reply)[0].contains("fault 4"));
        assert_eq!(reg.region_count(), 0);
    }

    #[test]
    fn malformed_or_llsd_replies_are_errors_not_panics() {
        let mut reg = Registry::new("http://p");
        for bad in [
            &b"<methodResponse><params>"[..],
            b"<llsd><map><key>login</key><string>true</string></map></llsd>",
            b"\x00\x01",
            b"<methodResponse><params/></methodResponse>",
        ] {
            assert!(rewrite_login_reply(bad, &mut reg, Action::Rewrite).is_err());
        }
    }

    #[test]
    fn login_request_reads_names_but_never_secrets() {
        let body = b"<?xml version=\"1.0\"?><methodCall><methodName>login_to_simulator</methodName>\
<params><param><value><struct>\
<member><name>first</name><value><string>Ann</string></value></member>\
<member><name>last</name><value><string>Resident</string></value></member>\
<member><name>passwd</name><value><string>$1$5f4dcc3b5aa765d61d8327deb882cf99</string></value></member>\
<member><name>start</name><value><string>last</string></value></member>\
<member><name>options</name><value><array><data><value><string>inventory-root</string></value></data></array></value></member>\
</struct></value></param></params></methodCall>";
        let req = parse_login_request(body).unwrap();
        assert_eq!(req.who(), "Ann Resident");
        assert_eq!(req.start.as_deref(), Some("last"));
        assert!(!format!("{req:?}").contains("5f4dcc3b"));
        assert!(is_xml_rpc(body));
        let user = b"<methodCall><params><param><value><struct>\
<member><name>username</name><value>ann.resident</value></member></struct></value></param></params></methodCall>";
        assert_eq!(parse_login_request(user).unwrap().who(), "ann.resident");
    }

    #[test]
    fn an_indeterminate_reply_sends_the_retry_back_through_capscope() {
        let next = "https://login.agni.lindenlab.com/cgi-bin/login.cgi?a=1&b=2";
        let body = format!(
            "<methodResponse><params><param><value><struct>\
<member><name>login</name><value><string>indeterminate</string></value></member>\
<member><name>next_url</name><value><string>{}</string></value></member>\
<member><name>next_method</name><value><string>login_to_simulator</string></value></member>\
<member><name>next_duration</name><value><i4>3</i4></value></member>\
</struct></value></param></params></methodResponse>",
            next.replace('&', "&amp;")
        );
        let mut reg = Registry::new("http://127.0.0.1:8080");
        let (out, reply) = rewrite_login_reply(body.as_bytes(), &mut reg, Action::Rewrite).unwrap();
        assert_eq!(reply.next_url.as_deref(), Some(next));
        let found = reg.lookup_url(next).unwrap();
        assert_eq!(found.name, LOGIN_CAP);
        let proxy = reg.cap(found.cap).unwrap().proxy_url.clone().unwrap();
        assert_eq!(
            String::from_utf8(out.body.unwrap().to_vec()).unwrap(),
            body.replace(&next.replace('&', "&amp;"), &proxy)
        );
        let notes = login_notes(None, "agni", &reply).join(" ");
        assert!(notes.contains("login=indeterminate"), "{notes}");
    }
}
