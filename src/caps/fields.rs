//! Decoders for the well-known binary fields of event-queue events: RegionHandle, SimIP and
//! TeleportFlags. Pure functions on bytes and values; they never fail loudly (a field of the wrong
//! size is simply not decoded).
//!
//! Owns the meaning of these fields only; it must not touch event rewriting or the registry.

use std::net::Ipv4Addr;

use crate::llsd::{Map, Value};

/// Metres per region side on the grid (region handles are in metres; grid coordinates are regions).
pub const REGION_WIDTH_METRES: u64 = 256;

/// How deep [`describe_known_fields`] looks into an event body.
pub const MAX_FIELD_DEPTH: usize = 16;

/// A region handle's two halves, in metres.
pub fn split_handle(handle: u64) -> (u32, u32) {
    ((handle >> 32) as u32, (handle & 0xffff_ffff) as u32)
}

/// A region handle from metre coordinates.
pub fn handle_from_metres(x: u32, y: u32) -> u64 {
    (u64::from(x) << 32) | u64::from(y)
}

/// A region handle's grid coordinates (metres / 256).
pub fn handle_to_grid(handle: u64) -> (u64, u64) {
    let (x, y) = split_handle(handle);
    (
        u64::from(x) / REGION_WIDTH_METRES,
        u64::from(y) / REGION_WIDTH_METRES,
    )
}

/// A RegionHandle sent as 8 bytes, big-endian.
pub fn region_handle(bytes: &[u8]) -> Option<u64> {
    let arr: [u8; 8] = bytes.try_into().ok()?;
    Some(u64::from_be_bytes(arr))
}

/// A RegionHandle as it appears in an LLSD body: 8 binary bytes (the usual form), or a real holding
/// the number (some writers).
pub fn region_handle_value(value: &Value) -> Option<u64> {
    match value {
        Value::Binary(b) => region_handle(b),
        Value::Real(r) if *r >= 0.0 && r.fract() == 0.0 && *r < u64::MAX as f64 => Some(*r as u64),
        _ => None,
    }
}

/// A SimIP sent as 4 bytes in network order.
pub fn sim_ip(bytes: &[u8]) -> Option<Ipv4Addr> {
    let arr: [u8; 4] = bytes.try_into().ok()?;
    Some(Ipv4Addr::from(arr))
}

/// A SimIP as it appears in an LLSD body: 4 binary bytes, or text already dotted.
pub fn sim_ip_value(value: &Value) -> Option<Ipv4Addr> {
    match value {
        Value::Binary(b) => sim_ip(b),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// The teleport flag bits with names (the viewer's `llteleportflags.h`; libopenmetaverse's names).
pub const TELEPORT_FLAG_NAMES: &[(u32, &str)] = &[
    (1 << 0, "SetHomeToTarget"),
    (1 << 1, "SetLastToTarget"),
    (1 << 2, "ViaLure"),
    (1 << 3, "ViaLandmark"),
    (1 << 4, "ViaLocation"),
    (1 << 5, "ViaHome"),
    (1 << 6, "ViaTelehub"),
    (1 << 7, "ViaLogin"),
    (1 << 8, "ViaGodlikeLure"),
    (1 << 9, "Godlike"),
    (1 << 10, "NineOneOne"),
    (1 << 11, "DisableCancel"),
    (1 << 12, "ViaRegionID"),
    (1 << 13, "IsFlying"),
    (1 << 14, "ResetHome"),
    (1 << 15, "ForceRedirect"),
    (1 << 26, "FinishedViaLure"),
    (1 << 28, "FinishedViaNewSim"),
    (1 << 29, "FinishedViaSameSim"),
];

/// TeleportFlags sent as 4 (or, from some writers, 8) bytes big-endian.
pub fn teleport_flags(bytes: &[u8]) -> Option<u64> {
    match bytes.len() {
        4 => Some(u64::from(u32::from_be_bytes(bytes.try_into().ok()?))),
        8 => Some(u64::from_be_bytes(bytes.try_into().ok()?)),
        _ => None,
    }
}

/// TeleportFlags from an LLSD value: binary (the usual form) or an integer.
pub fn teleport_flags_value(value: &Value) -> Option<u64> {
    match value {
        Value::Binary(b) => teleport_flags(b),
        Value::Integer(i) => Some(u64::from(*i as u32)),
        _ => None,
    }
}

/// Teleport flags in words: known bits by name joined with `|`, unknown bits as one hex remainder,
/// then the whole value in hex (`ViaLandmark|IsFlying (0x2008)`; `none (0x0)`).
pub fn teleport_flags_names(flags: u64) -> String {
    let mut names: Vec<String> = Vec::new();
    let mut rest = flags;
    for &(bit, name) in TELEPORT_FLAG_NAMES {
        if flags & u64::from(bit) != 0 {
            names.push(name.to_owned());
            rest &= !u64::from(bit);
        }
    }
    if rest != 0 {
        names.push(format!("0x{rest:x}"));
    }
    if names.is_empty() {
        names.push("none".to_owned());
    }
    format!("{} (0x{flags:x})", names.join("|"))
}

/// Describes a region handle: `(1000, 1000) [256000, 256000 m]`.
pub fn describe_handle(handle: u64) -> String {
    let (x, y) = handle_to_grid(handle);
    let (mx, my) = split_handle(handle);
    format!("({x}, {y}) [{mx}, {my} m]")
}

/// Notes decoding every well-known binary field found anywhere in an event body
/// (`Info[0].RegionHandle = (1000, 1000) [256000, 256000 m]`, `SimIP = 10.0.0.1`, ...), in wire order.
pub fn describe_known_fields(body: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(body, &mut String::new(), 0, &mut out);
    out
}

fn walk(value: &Value, path: &mut String, depth: usize, out: &mut Vec<String>) {
    if depth > MAX_FIELD_DEPTH {
        return;
    }
    match value {
        Value::Map(map) => walk_map(map, path, depth, out),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                walk(item, path, depth + 1, out);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

fn walk_map(map: &Map, path: &mut String, depth: usize, out: &mut Vec<String>) {
    for (key, value) in map.iter() {
        let len = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
        let described = match (key, value) {
            ("RegionHandle" | "Handle", Value::Binary(_)) => {
                region_handle_value(value).map(describe_handle)
            }
            ("SimIP" | "IP", Value::Binary(_)) => sim_ip_value(value).map(|ip| ip.to_string()),
            ("TeleportFlags", _) => teleport_flags_value(value).map(teleport_flags_names),
            _ => None,
        };
        match described {
            Some(text) => out.push(format!("{path} = {text}")),
            None => walk(value, path, depth + 1, out),
        }
        path.truncate(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_handles_decode_big_endian_metres() {
        let cases: &[(&[u8], Option<u64>)] = &[
            (
                &[0, 0, 0x03, 0xe8, 0, 0, 0x03, 0xe8],
                Some((1000u64 << 32) | 1000),
            ),
            (
                &[0, 0x03, 0xe8, 0, 0, 0x03, 0xe8, 0],
                Some((256_000u64 << 32) | 256_000),
            ),
            (&[1, 2, 3], None),
            (&[0; 9], None),
        ];
        for (bytes, want) in cases {
            assert_eq!(region_handle(bytes), *want, "{bytes:?}");
        }
        let h = handle_from_metres(256_000, 256_256);
        assert_eq!(handle_to_grid(h), (1000, 1001));
        assert_eq!(describe_handle(h), "(1000, 1001) [256000, 256256 m]");
        assert_eq!(
            region_handle_value(&Value::Binary(h.to_be_bytes().to_vec())),
            Some(h)
        );
        assert_eq!(region_handle_value(&Value::String("x".into())), None);
    }

    #[test]
    fn sim_ips_decode_in_network_order() {
        assert_eq!(sim_ip(&[127, 0, 0, 1]), Some(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(sim_ip(&[216, 82, 1, 2]).unwrap().to_string(), "216.82.1.2");
        assert_eq!(sim_ip(&[1, 2, 3]), None);
        assert_eq!(
            sim_ip_value(&Value::String("10.1.2.3".into())),
            Some(Ipv4Addr::new(10, 1, 2, 3))
        );
    }

    #[test]
    fn teleport_flags_name_known_bits_and_keep_the_rest_in_hex() {
        let cases = [
            (0u64, "none (0x0)"),
            (1 << 3, "ViaLandmark (0x8)"),
            ((1 << 3) | (1 << 13), "ViaLandmark|IsFlying (0x2008)"),
            ((1 << 7) | (1 << 30), "ViaLogin|0x40000000 (0x40000080)"),
            (
                (1 << 4) | (1 << 28),
                "ViaLocation|FinishedViaNewSim (0x10000010)",
            ),
        ];
        for (flags, want) in cases {
            assert_eq!(teleport_flags_names(flags), want);
        }
        assert_eq!(teleport_flags(&[0, 0, 0x20, 0x08]), Some(0x2008));
        assert_eq!(teleport_flags(&0x10u64.to_be_bytes()), Some(0x10));
        assert_eq!(teleport_flags(&[1, 2]), None);
        assert_eq!(teleport_flags_value(&Value::Integer(16)), Some(16));
    }

    #[test]
    fn known_fields_are_found_anywhere_in_a_body() {
        let h = handle_from_metres(256_000, 256_000);
        let info = Map(vec![
            (
                "RegionHandle".into(),
                Value::Binary(h.to_be_bytes().to_vec()),
            ),
            ("SimIP".into(), Value::Binary(vec![10, 0, 0, 7])),
            ("SimPort".into(), Value::Integer(9000)),
            ("TeleportFlags".into(), Value::Binary(vec![0, 0, 0, 0x10])),
        ]);
        let body = Value::Map(Map(vec![(
            "Info".into(),
            Value::Array(vec![Value::Map(info)]),
        )]));
        assert_eq!(
            describe_known_fields(&body),
            vec![
                "Info[0].RegionHandle = (1000, 1000) [256000, 256000 m]".to_owned(),
                "Info[0].SimIP = 10.0.0.7".to_owned(),
                "Info[0].TeleportFlags = ViaLocation (0x10)".to_owned(),
            ]
        );
    }
}
