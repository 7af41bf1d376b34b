//! Seed responses (the map of cap name -> URL a region grants) and upload caps' `uploader` answers:
//! the caps they grant are registered, and in login mode every URL is rewritten in place to a capscope
//! cap URL.
//!
//! Owns the reading and rewriting of these two kinds of body. Must not touch anything but URL values.

use bytes::Bytes;

use super::registry::{CapKind, RegionId, Registry};
use super::splice::{self, Edit, Outcome};
use super::{Action, CapsError, Rewritten};
use crate::llsd::{self, Format, Map, Value};

/// The names of caps that answer a first POST with `{"state": "upload", "uploader": URL}`. Names not
/// listed are still treated as upload caps when [`is_upload_cap`]'s patterns match.
pub const UPLOAD_CAPS: &[&str] = &[
    "NewFileAgentInventory",
    "NewFileAgentInventoryVariablePrice",
    "UploadBakedTexture",
    "UpdateNotecardAgentInventory",
    "UpdateNotecardTaskInventory",
    "UpdateScriptAgent",
    "UpdateScriptAgentInventory",
    "UpdateScriptTask",
    "UpdateScriptTaskInventory",
    "UpdateGestureAgentInventory",
    "UpdateGestureTaskInventory",
    "UpdateSettingsAgentInventory",
    "UpdateSettingsTaskInventory",
    "UpdateMaterialAgentInventory",
    "UpdateMaterialTaskInventory",
    "UploadAgentProfileImage",
];

/// Whether a cap may hand out an `uploader` URL (its responses are then read, and rewritten in login
/// mode).
pub fn is_upload_cap(name: &str) -> bool {
    UPLOAD_CAPS.contains(&name)
        || name.starts_with("Upload")
        || name.starts_with("NewFileAgentInventory")
        || (name.starts_with("Update")
            && (name.ends_with("AgentInventory") || name.ends_with("TaskInventory")))
}

/// The name a temporary uploader cap is registered under.
pub fn uploader_name(cap: &str) -> String {
    format!("{cap}Uploader")
}

/// The cap names a seed request asks for (an LLSD array of strings); empty when unreadable.
pub fn seed_request_names(body: &[u8]) -> Vec<String> {
    match llsd::from_slice(body) {
        Ok(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// Decodes an LLSD body, deciding the format by its bytes.
pub(crate) fn decode(body: &[u8], what: &'static str) -> Result<(Value, Format), CapsError> {
    let format = llsd::detect(None, body).ok_or_else(|| CapsError::Llsd {
        what,
        reason: "the bytes are not recognisably LLSD XML, binary or notation".to_owned(),
    })?;
    let value = llsd::from_slice_as(body, format).map_err(|e| CapsError::Llsd {
        what,
        reason: e.to_string(),
    })?;
    Ok((value, format))
}

/// Whether text is an http(s) URL (the only values rewritten).
pub fn is_http_url(text: &str) -> bool {
    let lower = text.get(..8).unwrap_or(text).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// Registers every cap a seed response grants to `region` and, with [`Action::Rewrite`], rewrites
/// each URL to its capscope URL in place.
pub fn rewrite_seed(
    body: &[u8],
    region: RegionId,
    registry: &mut Registry,
    action: Action,
) -> Result<Rewritten, CapsError> {
    const WHAT: &str = "seed response";
    let (value, format) = decode(body, WHAT)?;
    let Value::Map(map) = &value else {
        return Err(CapsError::Shape {
            what: WHAT,
            expected: "an LLSD map of cap names to URLs",
            found: value.type_name().to_owned(),
        });
    };
    let mut edits = Vec::new();
    let mut expected = Map::new();
    let mut granted = 0usize;
    for (name, v) in map.iter() {
        let mut new_value = v.clone();
        if let Some(url) = v.as_str().filter(|u| is_http_url(u)) {
            granted += 1;
            match action {
                Action::Learn => {
                    registry.grant(name, url, Some(region), CapKind::Normal);
                }
                Action::Rewrite => {
                    let edit = Edit {
                        old: url.to_owned(),
                        new: registry.grant_proxied(name, url, Some(region), CapKind::Normal),
                        uri: matches!(v, Value::Uri(_)),
                    };
                    new_value = edit.new_value();
                    edits.push(edit);
                }
            }
        }
        expected.push(name, new_value);
    }
    let label = registry
        .region_label(region)
        .unwrap_or_else(|| format!("region #{}", region.0));
    let mut out = Rewritten {
        body: None,
        notes: vec![format!("{granted} caps granted to {label}")],
    };
    if !edits.is_empty() {
        let (bytes, how) = splice::splice(body, format, &edits, &Value::Map(expected));
        out.notes.push(match how {
            Outcome::InPlace => format!("rewrote {} cap URLs in place ({format})", edits.len()),
            Outcome::ReEncoded(why) => {
                format!(
                    "rewrote {} cap URLs by re-encoding the {format} body: {why}",
                    edits.len()
                )
            }
        });
        out.body = Some(Bytes::from(bytes));
    }
    Ok(out)
}

/// Reads an upload cap's answer: a `{"state": "upload", "uploader": URL}` registers the uploader as a
/// temporary cap of `region` (named `<cap>Uploader`) and, with [`Action::Rewrite`], points it at
/// capscope. Any other answer (`complete`, an error) is left alone.
pub fn rewrite_uploader(
    body: &[u8],
    cap: &str,
    region: Option<RegionId>,
    registry: &mut Registry,
    action: Action,
) -> Result<Rewritten, CapsError> {
    const WHAT: &str = "upload cap response";
    let (value, format) = decode(body, WHAT)?;
    let Some(url_value) = value.get("uploader") else {
        return Ok(Rewritten::default());
    };
    let Some(url) = url_value.as_str().filter(|u| is_http_url(u)) else {
        return Ok(Rewritten {
            body: None,
            notes: vec![format!("uploader is not a URL: {url_value}")],
        });
    };
    let name = uploader_name(cap);
    let mut out = Rewritten {
        body: None,
        notes: vec![format!("temporary cap {name} granted")],
    };
    if action == Action::Learn {
        registry.grant(&name, url, region, CapKind::Temporary);
        return Ok(out);
    }
    let proxy = registry.grant_proxied(&name, url, region, CapKind::Temporary);
    let edit = Edit {
        old: url.to_owned(),
        new: proxy.clone(),
        uri: matches!(url_value, Value::Uri(_)),
    };
    let mut expected = value.clone();
    if let Value::Map(m) = &mut expected {
        m.insert("uploader", edit.new_value());
    }
    let (bytes, how) = splice::splice(body, format, &[edit], &expected);
    out.notes.push(match how {
        Outcome::InPlace => format!("rewrote uploader -> {proxy}"),
        Outcome::ReEncoded(why) => format!("rewrote uploader -> {proxy} by re-encoding: {why}"),
    });
    out.body = Some(Bytes::from(bytes));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "http://127.0.0.1:8080";
    const SEED: &str = "http://127.0.0.1:9000/CAPS/11111111-2222-3333-4444-5555555555550000/";

    fn opensim_seed_xml() -> &'static str {
        // As OpenSim writes it (served as text/html), with one value as <uri>.
        "<llsd><map><key>EventQueueGet</key><string>http://127.0.0.1:9000/CE/aaaaaaaa-0000-0000-0000-000000000001</string>\
<key>FetchInventoryDescendents2</key><string>http://127.0.0.1:9000/bbbbbbbb-0000-0000-0000-000000000002/</string>\
<key>SimulatorFeatures</key><uri>http://127.0.0.1:9000/cccccccc-0000-0000-0000-000000000003/</uri>\
<key>Flag</key><boolean>1</boolean></map></llsd>"
    }

    #[test]
    fn xml_seed_urls_rewritten_in_place_keeping_string_and_uri() {
        let body = opensim_seed_xml();
        let mut reg = Registry::new(BASE);
        let region = reg.add_region(SEED, None, None);
        let out = rewrite_seed(body.as_bytes(), region, &mut reg, Action::Rewrite).unwrap();
        let new = String::from_utf8(out.body.unwrap().to_vec()).unwrap();
        let mut want = body.to_owned();
        for (name, url) in [
            (
                "EventQueueGet",
                "http://127.0.0.1:9000/CE/aaaaaaaa-0000-0000-0000-000000000001",
            ),
            (
                "FetchInventoryDescendents2",
                "http://127.0.0.1:9000/bbbbbbbb-0000-0000-0000-000000000002/",
            ),
            (
                "SimulatorFeatures",
                "http://127.0.0.1:9000/cccccccc-0000-0000-0000-000000000003/",
            ),
        ] {
            let found = reg.lookup_url(url).unwrap();
            assert_eq!(found.name, name);
            assert_eq!(found.region, Some(region));
            let proxy = reg.cap(found.cap).unwrap().proxy_url.clone().unwrap();
            want = want.replace(url, &proxy);
        }
        assert_eq!(new, want, "only the URLs changed, <uri> kept");
        assert!(new.contains("<uri>http://127.0.0.1:8080/cap/"));
        assert!(
            out.notes.iter().any(|n| n.contains("in place")),
            "{:?}",
            out.notes
        );
        assert!(out.notes[0].starts_with("3 caps granted"));
    }

    #[test]
    fn binary_and_notation_seeds_are_rewritten_in_place() {
        let value = Value::Map(Map(vec![
            (
                "EventQueueGet".into(),
                Value::String("https://sim.example:12043/cap/e".into()),
            ),
            (
                "GetMesh".into(),
                Value::Uri("https://sim.example:12043/cap/m".into()),
            ),
            ("Count".into(), Value::Integer(3)),
        ]));
        for format in [Format::Binary, Format::Notation] {
            let body = llsd::to_vec(&value, format);
            let mut reg = Registry::new(BASE);
            let region = reg.add_region("https://sim.example:12043/cap/seed", None, None);
            let out = rewrite_seed(&body, region, &mut reg, Action::Rewrite).unwrap();
            let new = out.body.unwrap();
            let decoded = llsd::from_slice_as(&new, format).unwrap();
            let eq = reg.lookup_url("https://sim.example:12043/cap/e").unwrap();
            let proxy = reg.cap(eq.cap).unwrap().proxy_url.clone().unwrap();
            assert_eq!(
                decoded.get("EventQueueGet"),
                Some(&Value::String(proxy.clone()))
            );
            assert!(matches!(decoded.get("GetMesh"), Some(Value::Uri(u)) if u.starts_with(BASE)));
            assert_eq!(decoded.get("Count"), Some(&Value::Integer(3)));
            // Everything before the first URL is byte-identical, and the growth is exactly the URLs'.
            let grow =
                2 * (proxy.len() as isize - "https://sim.example:12043/cap/e".len() as isize);
            assert_eq!(new.len() as isize, body.len() as isize + grow, "{format}");
            assert!(
                out.notes.iter().any(|n| n.contains("in place")),
                "{format}: {:?}",
                out.notes
            );
        }
    }

    #[test]
    fn learning_mode_registers_without_rewriting() {
        let mut reg = Registry::new(BASE);
        let region = reg.add_region(SEED, None, None);
        let out = rewrite_seed(
            opensim_seed_xml().as_bytes(),
            region,
            &mut reg,
            Action::Learn,
        )
        .unwrap();
        assert_eq!(out.body, None);
        let f = reg
            .lookup_url("http://127.0.0.1:9000/CE/aaaaaaaa-0000-0000-0000-000000000001")
            .unwrap();
        assert_eq!(f.name, "EventQueueGet");
        assert_eq!(reg.cap(f.cap).unwrap().proxy_url, None);
    }

    #[test]
    fn malformed_seeds_are_errors() {
        let mut reg = Registry::new(BASE);
        let region = reg.add_region(SEED, None, None);
        for bad in [
            &b"<html>oops</html>"[..],
            b"<llsd><array/></llsd>",
            b"<llsd><map><key>a</key>",
        ] {
            assert!(rewrite_seed(bad, region, &mut reg, Action::Rewrite).is_err());
        }
    }

    #[test]
    fn uploader_becomes_a_temporary_cap() {
        let body = b"<?xml version=\"1.0\" ?><llsd><map><key>state</key><string>upload</string>\
<key>uploader</key><string>https://sim.example:12043/cap/up-1</string></map></llsd>";
        let mut reg = Registry::new(BASE);
        let out = rewrite_uploader(
            body,
            "NewFileAgentInventory",
            None,
            &mut reg,
            Action::Rewrite,
        )
        .unwrap();
        let f = reg
            .lookup_url("https://sim.example:12043/cap/up-1")
            .unwrap();
        assert_eq!(f.name, "NewFileAgentInventoryUploader");
        assert_eq!(f.kind, CapKind::Temporary);
        let proxy = reg.cap(f.cap).unwrap().proxy_url.clone().unwrap();
        let want =
            String::from_utf8_lossy(body).replace("https://sim.example:12043/cap/up-1", &proxy);
        assert_eq!(String::from_utf8(out.body.unwrap().to_vec()).unwrap(), want);

        let done = b"<llsd><map><key>state</key><string>complete</string></map></llsd>";
        assert_eq!(
            rewrite_uploader(
                done,
                "NewFileAgentInventory",
                None,
                &mut reg,
                Action::Rewrite
            )
            .unwrap(),
            Rewritten::default()
        );
        assert!(is_upload_cap("UploadBakedTexture"));
        assert!(is_upload_cap("UpdateNotecardAgentInventory"));
        assert!(!is_upload_cap("EventQueueGet"));
        assert!(!is_upload_cap("FetchInventoryDescendents2"));
    }

    #[test]
    fn seed_request_names_are_read() {
        let body =
            b"<llsd><array><string>EventQueueGet</string><string>GetMesh</string></array></llsd>";
        assert_eq!(seed_request_names(body), vec!["EventQueueGet", "GetMesh"]);
        assert!(seed_request_names(b"garbage").is_empty());
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    fn url() -> impl Strategy<Value = String> {
        // URLs with the characters every format escapes somewhere: & < > ' " \
        "https?://[a-z0-9.]{1,12}(:[0-9]{2,5})?/[A-Za-z0-9/&<>'\"\\\\?=._-]{0,40}"
    }

    proptest! {
        /// Any seed map, in any format, with string or uri values: the rewrite keeps every other
        /// value, turns every URL into its proxy URL of the same type, and needs no re-encoding.
        #[test]
        fn any_seed_is_rewritten_in_place(
            entries in proptest::collection::vec(("[A-Za-z0-9]{1,20}", url(), any::<bool>()), 1..20),
            format_index in 0usize..3,
        ) {
            let format = Format::ALL[format_index];
            let map: Map = entries.iter().map(|(k, u, is_uri)| {
                (k.clone(), if *is_uri { Value::Uri(u.clone()) } else { Value::String(u.clone()) })
            }).collect();
            let body = llsd::to_vec(&Value::Map(map.clone()), format);
            let mut reg = Registry::new("http://127.0.0.1:8080");
            let region = reg.add_region("http://sim.example/seed", None, None);
            let out = rewrite_seed(&body, region, &mut reg, Action::Rewrite).unwrap();
            let new = llsd::from_slice_as(&out.body.unwrap(), format).unwrap();
            let new_map = new.as_map().unwrap();
            prop_assert_eq!(new_map.len(), map.len());
            for ((k, old), (k2, v)) in map.iter().zip(new_map.iter()) {
                prop_assert_eq!(k, k2);
                let proxy = reg.cap(reg.lookup_url(old.as_str().unwrap()).unwrap().cap).unwrap().proxy_url.clone().unwrap();
                let want = match old { Value::Uri(_) => Value::Uri(proxy), _ => Value::String(proxy) };
                prop_assert_eq!(v, &want);
            }
            prop_assert!(out.notes.iter().any(|n| n.contains("in place")), "{:?}", out.notes);
        }

        /// Whatever the bytes, the body readers answer (an error at worst) and never panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut reg = Registry::new("http://127.0.0.1:8080");
            let region = reg.add_region("http://sim.example/seed", None, None);
            let _ = rewrite_seed(&bytes, region, &mut reg, Action::Rewrite);
            let _ = rewrite_uploader(&bytes, "NewFileAgentInventory", None, &mut reg, Action::Rewrite);
            let _ = crate::caps::event_queue::rewrite_events(&bytes, Some(region), &mut reg, Action::Rewrite);
            let _ = crate::caps::event_queue::parse_poll_request(&bytes);
            let _ = crate::caps::login::rewrite_login_reply(&bytes, &mut reg, Action::Rewrite);
            let _ = crate::caps::login::parse_login_request(&bytes);
        }
    }
}
