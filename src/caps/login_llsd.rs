//! The LLSD login: the same exchange as XML-RPC `login_to_simulator`, but the request is an LLSD map
//! POSTed as `application/llsd+xml` and the reply an LLSD map with the same member names.
//!
//! LibreMetaverse logs in this way (cinderblocks/libremetaverse LibreMetaverse/Login.cs builds an
//! `OSDMap` with `first`, `last`, `passwd`, `start`, `channel`, `version`, ..., `options` and reads the
//! reply map's `login`, `seed_capability`, `next_url`); OpenSimulator answers it at the login port's
//! default LLSD handler (opensim/opensim OpenSim/Server/Handlers/Login/LLLoginServiceInConnector.cs
//! `SetDefaultLLSDHandler`, LLLoginHandlers.cs `HandleLLSDLogin` → `LoginResponse.ToOSDMap()`).
//!
//! Owns reading and rewriting LLSD login bodies, in place and in the format they came in (via
//! [`super::splice`]). Never reads `passwd`, `secure_session_id` or other secrets into its output.

use bytes::Bytes;

use super::login::{learn_reply, LoginReply, LoginRequest};
use super::registry::Registry;
use super::seed::decode;
use super::splice::{self, Edit, Outcome};
use super::{Action, CapsError, Rewritten};
use crate::llsd::{Map, Value};

/// Whether a decoded LLSD value is a login reply: a map with a `login` member.
pub fn is_login_reply(value: &Value) -> bool {
    value.as_map().is_some_and(|m| m.get("login").is_some())
}

/// Reads the non-secret members of an LLSD login request.
pub fn parse_login_request(body: &[u8]) -> Result<LoginRequest, CapsError> {
    const WHAT: &str = "LLSD login request";
    let (value, _) = decode(body, WHAT)?;
    let map = as_map(&value, WHAT)?;
    let text = |k: &str| map.get(k).and_then(scalar_text);
    Ok(LoginRequest {
        first: text("first"),
        last: text("last"),
        username: text("username"),
        start: text("start"),
        channel: text("channel"),
        version: text("version"),
    })
}

/// Learns the login region, seed and any redirect from an LLSD login reply and, with
/// [`Action::Rewrite`], points `seed_capability` and `next_url` at capscope, in place (each value's
/// format and type kept). `Ok(None)` when the body is LLSD but not a login reply.
pub fn rewrite_login_reply(
    body: &[u8],
    registry: &mut Registry,
    action: Action,
) -> Result<Option<(Rewritten, LoginReply)>, CapsError> {
    const WHAT: &str = "LLSD login reply";
    let (value, format) = decode(body, WHAT)?;
    if !is_login_reply(&value) {
        return Ok(None);
    }
    let map = as_map(&value, WHAT)?;
    let text = |k: &str| map.get(k).and_then(scalar_text);
    let number = |k: &str| text(k).and_then(|t| t.trim().parse::<f64>().ok());
    let mut reply = LoginReply {
        login: text("login"),
        reason: text("reason"),
        message: text("message"),
        seed_capability: text("seed_capability"),
        region_x: number("region_x").map(|v| v as u32),
        region_y: number("region_y").map(|v| v as u32),
        sim_ip: text("sim_ip"),
        sim_port: number("sim_port").map(|v| v as u16),
        agent_id: text("agent_id"),
        next_url: text("next_url"),
        first_name: text("first_name"),
        last_name: text("last_name"),
        ..LoginReply::default()
    };
    let mut out = Rewritten::default();
    let proxied = learn_reply(&mut reply, registry, action, &mut out.notes);
    let mut edits = Vec::new();
    let mut expected = Map::new();
    for (key, v) in map.iter() {
        let new = match key {
            "seed_capability" => proxied.seed.as_ref(),
            "next_url" => proxied.next_url.as_ref(),
            _ => None,
        };
        match (new, v.as_str()) {
            (Some(new), Some(old)) => {
                let edit = Edit {
                    old: old.to_owned(),
                    new: new.clone(),
                    uri: matches!(v, Value::Uri(_)),
                };
                expected.push(key, edit.new_value());
                edits.push(edit);
            }
            _ => expected.push(key, v.clone()),
        }
    }
    if !edits.is_empty() {
        let (bytes, how) = splice::splice(body, format, &edits, &Value::Map(expected));
        if let Outcome::ReEncoded(why) = how {
            out.notes
                .push(format!("re-encoded the {format} login reply: {why}"));
        }
        out.body = Some(Bytes::from(bytes));
    }
    Ok(Some((out, reply)))
}

fn as_map<'a>(value: &'a Value, what: &'static str) -> Result<&'a Map, CapsError> {
    value.as_map().ok_or_else(|| CapsError::Shape {
        what,
        expected: "an LLSD map",
        found: value.type_name().to_owned(),
    })
}

/// A scalar as text: strings and URIs as they are, booleans as `true`/`false`, numbers in decimal.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) | Value::Uri(s) => Some(s.clone()),
        Value::Boolean(b) => Some(b.to_string()),
        Value::Integer(i) => Some(i.to_string()),
        Value::Real(r) => Some(r.to_string()),
        Value::Uuid(u) => Some(u.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llsd::{self, Format};

    const SEED: &str = "http://127.0.0.1:9000/CAPS/6a7b8c9d-0000-1111-2222-3333444455550000/";

    fn reply(format: Format, seed_as_uri: bool) -> Vec<u8> {
        let seed = if seed_as_uri {
            Value::Uri(SEED.into())
        } else {
            Value::String(SEED.into())
        };
        let v = Value::Map(Map(vec![
            ("login".into(), Value::String("true".into())),
            ("first_name".into(), Value::String("\"Ann\"".into())),
            ("last_name".into(), Value::String("Resident".into())),
            (
                "secure_session_id".into(),
                Value::String("99999999-8888-7777-6666-555555555555".into()),
            ),
            ("seed_capability".into(), seed),
            ("region_x".into(), Value::Integer(256_000)),
            ("region_y".into(), Value::Integer(256_256)),
            ("sim_ip".into(), Value::String("127.0.0.1".into())),
            ("sim_port".into(), Value::Integer(9001)),
            (
                "map-server-url".into(),
                Value::String("http://127.0.0.1:9000/".into()),
            ),
        ]));
        llsd::to_vec(&v, format)
    }

    #[test]
    fn the_seed_is_rewritten_in_place_in_every_format_keeping_its_type() {
        for format in [Format::Xml, Format::Binary, Format::Notation] {
            for uri in [false, true] {
                let body = reply(format, uri);
                let mut reg = Registry::new("http://127.0.0.1:8080");
                let (out, r) = rewrite_login_reply(&body, &mut reg, Action::Rewrite)
                    .unwrap()
                    .unwrap();
                assert!(r.succeeded());
                assert_eq!(r.handle(), Some((256_000u64 << 32) | 256_256));
                let new = out.body.unwrap();
                let v = llsd::from_slice_as(&new, format).unwrap();
                let got = v.get("seed_capability").unwrap();
                assert_eq!(matches!(got, Value::Uri(_)), uri, "{format}: type kept");
                let proxy = got.as_str().unwrap();
                assert!(proxy.starts_with("http://127.0.0.1:8080/cap/"), "{proxy}");
                assert_eq!(reg.lookup_url(SEED).unwrap().name, "Seed");
                assert_eq!(
                    v.get("map-server-url").and_then(Value::as_str),
                    Some("http://127.0.0.1:9000/"),
                    "other URLs are left alone"
                );
                assert!(
                    !out.notes.iter().any(|n| n.contains("re-encoded")),
                    "{format}: in place: {:?}",
                    out.notes
                );
                assert!(
                    !out.notes.join(" ").contains("99999999"),
                    "no secrets in notes"
                );
                if format == Format::Xml {
                    let old = String::from_utf8(body.clone()).unwrap();
                    let new = String::from_utf8(new.to_vec()).unwrap();
                    assert_eq!(new, old.replace(SEED, proxy), "only the seed changed");
                }
            }
        }
    }

    #[test]
    fn learning_changes_nothing_and_other_llsd_is_not_a_login() {
        let body = reply(Format::Xml, false);
        let mut reg = Registry::new("http://127.0.0.1:8080");
        let (out, _) = rewrite_login_reply(&body, &mut reg, Action::Learn)
            .unwrap()
            .unwrap();
        assert_eq!(out.body, None);
        assert!(reg.lookup_url(SEED).is_some());
        let seed_answer = llsd::to_vec(
            &Value::Map(Map(vec![(
                "EventQueueGet".into(),
                Value::String(SEED.into()),
            )])),
            Format::Xml,
        );
        assert!(rewrite_login_reply(&seed_answer, &mut reg, Action::Rewrite)
            .unwrap()
            .is_none());
        assert!(rewrite_login_reply(b"<llsd><map>", &mut reg, Action::Rewrite).is_err());
        assert!(rewrite_login_reply(b"\x00\x01", &mut reg, Action::Rewrite).is_err());
    }

    #[test]
    fn an_indeterminate_reply_sends_the_retry_back_through_capscope() {
        let next = "https://login.agni.lindenlab.com/cgi-bin/login.cgi?retry=1";
        let v = Value::Map(Map(vec![
            ("login".into(), Value::String("indeterminate".into())),
            ("next_url".into(), Value::String(next.into())),
            (
                "next_method".into(),
                Value::String("login_to_simulator".into()),
            ),
            ("next_duration".into(), Value::Integer(2)),
            ("message".into(), Value::String("Redirecting".into())),
        ]));
        let body = llsd::to_vec(&v, Format::Xml);
        let mut reg = Registry::new("http://127.0.0.1:8080");
        let (out, r) = rewrite_login_reply(&body, &mut reg, Action::Rewrite)
            .unwrap()
            .unwrap();
        assert_eq!(r.login.as_deref(), Some("indeterminate"));
        let v = llsd::from_slice(&out.body.unwrap()).unwrap();
        let proxy = v
            .get("next_url")
            .and_then(Value::as_str)
            .unwrap()
            .to_owned();
        assert!(proxy.starts_with("http://127.0.0.1:8080/cap/"), "{proxy}");
        let found = reg.lookup_url(next).unwrap();
        assert_eq!(found.name, super::super::login::LOGIN_CAP);
    }

    #[test]
    fn the_request_is_read_without_secrets() {
        let v = Value::Map(Map(vec![
            ("first".into(), Value::String("Ann".into())),
            ("last".into(), Value::String("Resident".into())),
            (
                "passwd".into(),
                Value::String("$1$5f4dcc3b5aa765d61d8327deb882cf99".into()),
            ),
            ("start".into(), Value::String("last".into())),
            ("agree_to_tos".into(), Value::Boolean(true)),
        ]));
        let req = parse_login_request(&llsd::to_vec(&v, Format::Xml)).unwrap();
        assert_eq!(req.who(), "Ann Resident");
        assert!(!format!("{req:?}").contains("5f4dcc3b"));
        assert!(parse_login_request(b"<llsd><array /></llsd>").is_err());
    }

    /// The capture writer masks an LLSD login's secrets as it does XML-RPC's (src/capture/secrets.rs).
    #[test]
    fn an_llsd_logins_secrets_are_masked_in_captures() {
        use crate::capture::secrets::{mask_bytes, MASK};
        let passwd = "$1$5f4dcc3b5aa765d61d8327deb882cf99";
        let request = Value::Map(Map(vec![
            ("first".into(), Value::String("Ann".into())),
            ("passwd".into(), Value::String(passwd.into())),
            ("mfa_hash".into(), Value::String("abcdef0123".into())),
        ]));
        for format in [Format::Xml, Format::Binary, Format::Notation] {
            let masked = mask_bytes(&llsd::to_vec(&request, format)).unwrap();
            let v = llsd::from_slice_as(&masked, format).unwrap();
            // Binary keeps each string's length (the mask is as long as the secret).
            let masked_as = |k: &str| {
                let s = v.get(k).and_then(Value::as_str).unwrap_or_default();
                s == MASK
                    || (format == Format::Binary && !s.is_empty() && s.bytes().all(|b| b == b'*'))
            };
            assert!(masked_as("passwd"), "{format}: {v:?}");
            assert!(masked_as("mfa_hash"), "{format}: {v:?}");
            assert_eq!(v.get("first").and_then(Value::as_str), Some("Ann"));
        }
        let masked = mask_bytes(&reply(Format::Xml, false)).unwrap();
        assert!(!String::from_utf8_lossy(&masked).contains("99999999-8888"));
    }
}
