//! The bodies the simulated grid sends: the login reply, cap replies and event-queue events, shaped like
//! OpenSimulator's and Second Life's (see the project's wire notes).
//!
//! Pure functions from a little state to LLSD values or XML-RPC; no I/O, no locking.

use std::net::Ipv4Addr;

use uuid::Uuid;

use super::lite::Rpc;
use crate::llsd::{Date, Value};

/// A map from `(key, value)` pairs, in order.
pub fn map<const N: usize>(entries: [(&str, Value); N]) -> Value {
    Value::Map(entries.into_iter().collect())
}

fn s(text: impl Into<String>) -> Value {
    Value::String(text.into())
}

fn i(n: i32) -> Value {
    Value::Integer(n)
}

fn u(id: Uuid) -> Value {
    Value::Uuid(id)
}

fn vec3(x: f64, y: f64, z: f64) -> Value {
    Value::Array(vec![Value::Real(x), Value::Real(y), Value::Real(z)])
}

/// A stable UUID derived from a label and a number (so replies are the same on every run).
pub fn derived_uuid(label: &str, n: u64) -> Uuid {
    let digest = md5::compute(format!("{label}/{n}"));
    uuid::Builder::from_md5_bytes(digest.0).into_uuid()
}

/// A fresh random (version 4) UUID.
pub fn random_uuid() -> Uuid {
    uuid::Builder::from_random_bytes(rand::random()).into_uuid()
}

/// What the login reply needs to know.
pub struct LoginFacts<'a> {
    pub first: &'a str,
    pub last: &'a str,
    pub agent_id: Uuid,
    pub session_id: Uuid,
    pub secure_session_id: Uuid,
    pub circuit_code: i32,
    pub sim_port: u16,
    pub region_x: u32,
    pub region_y: u32,
    pub seed_capability: &'a str,
    pub http_port: u16,
    pub now: i64,
}

/// A successful `login_to_simulator` reply, with the members a viewer reads.
pub fn login_ok(f: &LoginFacts<'_>) -> Rpc {
    let inventory_root = derived_uuid("inventory-root", 0);
    let folder = |name: &str, n: u64, type_default: i32| {
        Rpc::Struct(vec![
            (
                "folder_id".into(),
                Rpc::s(derived_uuid("folder", n).to_string()),
            ),
            ("parent_id".into(), Rpc::s(inventory_root.to_string())),
            ("name".into(), Rpc::s(name)),
            ("type_default".into(), Rpc::Int(type_default)),
            ("version".into(), Rpc::Int(1)),
        ])
    };
    Rpc::Struct(vec![
        ("login".into(), Rpc::s("true")),
        (
            "message".into(),
            Rpc::s("Welcome to the capscope mock grid"),
        ),
        ("first_name".into(), Rpc::s(format!("\"{}\"", f.first))),
        ("last_name".into(), Rpc::s(f.last)),
        ("agent_id".into(), Rpc::s(f.agent_id.to_string())),
        ("session_id".into(), Rpc::s(f.session_id.to_string())),
        (
            "secure_session_id".into(),
            Rpc::s(f.secure_session_id.to_string()),
        ),
        ("circuit_code".into(), Rpc::Int(f.circuit_code)),
        ("sim_ip".into(), Rpc::s("127.0.0.1")),
        ("sim_port".into(), Rpc::Int(i32::from(f.sim_port))),
        ("http_port".into(), Rpc::Int(i32::from(f.http_port))),
        (
            "region_x".into(),
            Rpc::Int(i32::try_from(f.region_x).unwrap_or(0)),
        ),
        (
            "region_y".into(),
            Rpc::Int(i32::try_from(f.region_y).unwrap_or(0)),
        ),
        ("region_size_x".into(), Rpc::Int(256)),
        ("region_size_y".into(), Rpc::Int(256)),
        ("seed_capability".into(), Rpc::s(f.seed_capability)),
        (
            "seconds_since_epoch".into(),
            Rpc::Int(i32::try_from(f.now).unwrap_or(i32::MAX)),
        ),
        ("look_at".into(), Rpc::s("[r0.99,r0.13,r0]")),
        (
            "home".into(),
            Rpc::s(format!(
                "{{'region_handle':[r{},r{}], 'position':[r128,r128,r25], 'look_at':[r1,r0,r0]}}",
                f.region_x, f.region_y
            )),
        ),
        ("start_location".into(), Rpc::s("last")),
        ("agent_access".into(), Rpc::s("M")),
        ("agent_access_max".into(), Rpc::s("A")),
        ("agent_region_access".into(), Rpc::s("A")),
        ("max-agent-groups".into(), Rpc::Int(42)),
        (
            "map-server-url".into(),
            Rpc::s(format!("http://127.0.0.1:{}/", f.http_port)),
        ),
        (
            "inventory-root".into(),
            Rpc::Array(vec![Rpc::Struct(vec![(
                "folder_id".into(),
                Rpc::s(inventory_root.to_string()),
            )])]),
        ),
        (
            "inventory-skeleton".into(),
            Rpc::Array(vec![
                folder("Textures", 0, 0),
                folder("Notecards", 1, 7),
                folder("Objects", 2, 6),
                folder("Landmarks", 3, 3),
            ]),
        ),
        (
            "inventory-lib-owner".into(),
            Rpc::Array(vec![Rpc::Struct(vec![(
                "agent_id".into(),
                Rpc::s(derived_uuid("library-owner", 0).to_string()),
            )])]),
        ),
        (
            "login-flags".into(),
            Rpc::Array(vec![Rpc::Struct(vec![
                ("stipend_since_login".into(), Rpc::s("N")),
                ("ever_logged_in".into(), Rpc::s("Y")),
                ("gendered".into(), Rpc::s("Y")),
                ("daylight_savings".into(), Rpc::s("N")),
            ])]),
        ),
        ("buddy-list".into(), Rpc::Array(Vec::new())),
        (
            "ui-config".into(),
            Rpc::Array(vec![Rpc::Struct(vec![(
                "allow_first_life".into(),
                Rpc::s("Y"),
            )])]),
        ),
        ("currency".into(), Rpc::s("OS$")),
    ])
}

/// A failed login: `login` "false" with `reason` and `message`, as OpenSim and Second Life answer.
pub fn login_failed() -> Rpc {
    Rpc::Struct(vec![
        ("login".into(), Rpc::s("false")),
        ("reason".into(), Rpc::s("key")),
        (
            "message".into(),
            Rpc::s("Could not authenticate your avatar. Please check your username and password, and check the grid if problems persist."),
        ),
    ])
}

/// Second Life's MFA challenge: the viewer asks for the code and logs in again with `token`
/// (secondlife/viewer indra/newview/lllogininstance.cpp, `reason` "mfa_challenge").
pub fn mfa_challenge() -> Rpc {
    Rpc::Struct(vec![
        ("login".into(), Rpc::s("false")),
        ("reason".into(), Rpc::s("mfa_challenge")),
        ("message_id".into(), Rpc::s("MFA_CHALLENGE")),
        (
            "message".into(),
            Rpc::s("Multifactor authentication required: enter the code from your authenticator"),
        ),
    ])
}

/// A login redirect: `login` = `indeterminate`; the viewer logs in again at `next_url` with
/// `next_method` (secondlife/viewer indra/viewer_components/login/lllogin.cpp).
pub fn login_redirect(next_url: &str) -> Rpc {
    Rpc::Struct(vec![
        ("login".into(), Rpc::s("indeterminate")),
        ("next_url".into(), Rpc::s(next_url)),
        ("next_method".into(), Rpc::s("login_to_simulator")),
        ("next_duration".into(), Rpc::Int(0)),
        ("message".into(), Rpc::s("Redirecting to the login service")),
    ])
}

/// A region's handle: its south-west corner in metres, x in the high 32 bits.
pub fn region_handle(grid_x: u32, grid_y: u32) -> u64 {
    ((u64::from(grid_x) * 256) << 32) | (u64::from(grid_y) * 256)
}

/// Where an event says a region is.
pub struct RegionFacts<'a> {
    pub grid_x: u32,
    pub grid_y: u32,
    pub port: u16,
    pub seed: &'a str,
}

fn sim_ip() -> Value {
    Value::Binary(Ipv4Addr::LOCALHOST.octets().to_vec())
}

fn handle_binary(r: &RegionFacts<'_>) -> Value {
    Value::Binary(region_handle(r.grid_x, r.grid_y).to_be_bytes().to_vec())
}

/// `EnableSimulator` for a neighbour.
pub fn enable_simulator(r: &RegionFacts<'_>) -> Value {
    map([(
        "SimulatorInfo",
        Value::Array(vec![map([
            ("Handle", handle_binary(r)),
            ("IP", sim_ip()),
            ("Port", i(i32::from(r.port))),
        ])]),
    )])
}

/// `EstablishAgentCommunication` for a neighbour: its seed as a string, as OpenSim writes it.
pub fn establish_agent_communication(agent: Uuid, r: &RegionFacts<'_>) -> Value {
    map([
        ("agent-id", u(agent)),
        ("sim-ip-and-port", s(format!("127.0.0.1:{}", r.port))),
        ("seed-capability", s(r.seed)),
    ])
}

/// `TeleportFinish` to a region: the seed as a `uri`, the address and handle as binary.
pub fn teleport_finish(agent: Uuid, r: &RegionFacts<'_>) -> Value {
    const TELEPORT_FLAGS_VIA_LOCATION: u32 = 1 << 4;
    const SIM_ACCESS_MATURE: i32 = 21;
    map([(
        "Info",
        Value::Array(vec![map([
            ("AgentID", u(agent)),
            ("LocationID", i(4)),
            ("SimIP", sim_ip()),
            ("SimPort", i(i32::from(r.port))),
            ("RegionHandle", handle_binary(r)),
            ("SeedCapability", Value::Uri(r.seed.to_owned())),
            ("SimAccess", i(SIM_ACCESS_MATURE)),
            (
                "TeleportFlags",
                Value::Binary(TELEPORT_FLAGS_VIA_LOCATION.to_be_bytes().to_vec()),
            ),
            ("RegionSizeX", i(256)),
            ("RegionSizeY", i(256)),
        ])]),
    )])
}

/// `CrossedRegion` into a neighbour: the seed as a string.
pub fn crossed_region(agent: Uuid, session: Uuid, r: &RegionFacts<'_>) -> Value {
    map([
        (
            "AgentData",
            Value::Array(vec![map([
                ("AgentID", u(agent)),
                ("SessionID", u(session)),
            ])]),
        ),
        (
            "Info",
            Value::Array(vec![map([
                ("Position", vec3(2.5, 128.0, 23.2)),
                ("LookAt", vec3(1.0, 0.0, 0.0)),
            ])]),
        ),
        (
            "RegionData",
            Value::Array(vec![map([
                ("RegionHandle", handle_binary(r)),
                ("SeedCapability", s(r.seed)),
                ("SimIP", sim_ip()),
                ("SimPort", i(i32::from(r.port))),
                ("RegionSizeX", i(256)),
                ("RegionSizeY", i(256)),
            ])]),
        ),
    ])
}

/// `ChatterBoxSessionStartReply` for a group chat session.
pub fn session_start_reply(group: Uuid, group_name: &str) -> Value {
    map([
        ("session_id", u(group)),
        ("temp_session_id", u(group)),
        ("success", Value::Boolean(true)),
        (
            "session_info",
            map([
                ("session_name", s(group_name)),
                ("type", i(0)),
                ("moderated_mode", map([("voice", Value::Boolean(false))])),
                ("session_id", u(group)),
            ]),
        ),
    ])
}

/// `ChatterBoxInvitation` carrying one group chat line.
pub fn chatterbox_invitation(
    group: Uuid,
    group_name: &str,
    from: Uuid,
    from_name: &str,
    text: &str,
    now: i64,
) -> Value {
    map([
        ("session_id", u(group)),
        ("session_name", s(group_name)),
        ("from_id", u(from)),
        ("from_name", s(from_name)),
        (
            "instantmessage",
            map([(
                "message_params",
                map([
                    ("type", i(17)),
                    ("from_id", u(from)),
                    ("from_name", s(from_name)),
                    ("from_group", Value::Boolean(false)),
                    ("to_id", u(group)),
                    ("id", u(group)),
                    ("message", s(text)),
                    ("timestamp", i(i32::try_from(now).unwrap_or(0))),
                    ("offline", i(0)),
                    ("parent_estate_id", i(1)),
                    ("region_id", u(Uuid::nil())),
                    ("position", vec3(0.0, 0.0, 0.0)),
                    ("ttl", i(0)),
                    ("data", map([("binary_bucket", Value::Binary(vec![0]))])),
                ]),
            )]),
        ),
    ])
}

/// An event-queue answer: `{events: [{message, body}], id}`.
pub fn event_queue_reply(id: i32, events: &[(String, Value)]) -> Value {
    map([
        (
            "events",
            Value::Array(
                events
                    .iter()
                    .map(|(message, body)| {
                        map([("message", s(message.clone())), ("body", body.clone())])
                    })
                    .collect(),
            ),
        ),
        ("id", i(id)),
    ])
}

/// A FetchInventoryDescendents2 / FetchLibDescendents2 answer for the folders asked about.
pub fn inventory_descendents(owner: Uuid, folder_ids: &[Uuid]) -> Value {
    let folders = folder_ids
        .iter()
        .enumerate()
        .map(|(fi, folder)| {
            let categories = (0..3u64)
                .map(|n| {
                    map([
                        ("category_id", u(derived_uuid(&format!("{folder}/cat"), n))),
                        ("parent_id", u(*folder)),
                        ("name", s(format!("Folder {n}"))),
                        ("type_default", i(-1)),
                        ("version", i(1)),
                    ])
                })
                .collect();
            let items = (0..5u64)
                .map(|n| {
                    map([
                        ("item_id", u(derived_uuid(&format!("{folder}/item"), n))),
                        ("parent_id", u(*folder)),
                        ("asset_id", u(derived_uuid("asset", n))),
                        ("name", s(format!("Notecard #{n}"))),
                        ("desc", s("(No Description)")),
                        ("type", i(7)),
                        ("inv_type", i(7)),
                        ("flags", i(0)),
                        ("created_at", i(1_700_000_000 + n as i32)),
                        (
                            "sale_info",
                            map([("sale_price", i(10)), ("sale_type", i(0))]),
                        ),
                        (
                            "permissions",
                            map([
                                ("owner_id", u(owner)),
                                ("creator_id", u(owner)),
                                ("group_id", u(Uuid::nil())),
                                ("last_owner_id", u(owner)),
                                ("base_mask", i(0x7fff_ffff)),
                                ("owner_mask", i(0x7fff_ffff)),
                                ("group_mask", i(0)),
                                ("everyone_mask", i(0)),
                                ("next_owner_mask", i(0x0008_e000)),
                                ("is_owner_group", Value::Boolean(false)),
                            ]),
                        ),
                    ])
                })
                .collect();
            map([
                ("folder_id", u(*folder)),
                ("owner_id", u(owner)),
                ("agent_id", u(owner)),
                ("version", i(3 + fi as i32)),
                ("descendents", i(8)),
                ("categories", Value::Array(categories)),
                ("items", Value::Array(items)),
            ])
        })
        .collect();
    map([("folders", Value::Array(folders))])
}

/// A GetDisplayNames answer.
pub fn display_names(ids: &[Uuid], now: i64) -> Value {
    let agents = ids
        .iter()
        .enumerate()
        .map(|(n, id)| {
            map([
                ("id", u(*id)),
                ("username", s(format!("resident{n}.example"))),
                ("display_name", s(format!("Resident {n} ✨"))),
                ("legacy_first_name", s(format!("Resident{n}"))),
                ("legacy_last_name", s("Example")),
                ("is_display_name_default", Value::Boolean(n == 0)),
                (
                    "display_name_next_update",
                    Value::Date(Date((now + 86_400) as f64)),
                ),
            ])
        })
        .collect();
    map([
        ("agents", Value::Array(agents)),
        ("bad_ids", Value::Array(Vec::new())),
    ])
}

/// SimulatorFeatures, with the OpenSim extras block.
pub fn simulator_features(region_name: &str) -> Value {
    map([
        ("MeshRezEnabled", Value::Boolean(true)),
        ("MeshUploadEnabled", Value::Boolean(true)),
        ("MeshXferEnabled", Value::Boolean(true)),
        ("PhysicsMaterialsEnabled", Value::Boolean(true)),
        (
            "AnimatedObjects",
            map([
                ("AnimatedObjectMaxTris", i(150_000)),
                ("MaxAgentAnimatedObjectAttachments", i(2)),
            ]),
        ),
        ("MaxAgentAttachments", i(38)),
        ("MaxAgentGroupsBasic", i(42)),
        ("MaxMaterialsPerTransaction", i(50)),
        ("MaxEstateAccessIds", i(500)),
        ("LSLSyntaxId", u(derived_uuid("lsl-syntax", 0))),
        (
            "OpenSimExtras",
            map([
                ("AvatarSkeleton", Value::Boolean(true)),
                ("AnimationSet", Value::Boolean(true)),
                ("ExportSupported", Value::Boolean(true)),
                ("map-server-url", s("http://127.0.0.1/")),
                ("search-server-url", s("http://127.0.0.1/search")),
                ("region-name", s(region_name)),
                ("whisper-range", Value::Real(10.0)),
                ("say-range", Value::Real(20.0)),
                ("shout-range", Value::Real(100.0)),
            ]),
        ),
    ])
}

/// A GetObjectCost answer (sent as binary LLSD).
pub fn object_cost(ids: &[Uuid]) -> Value {
    Value::Map(
        ids.iter()
            .enumerate()
            .map(|(n, id)| {
                (
                    id.to_string(),
                    map([
                        ("linked_set_resource_cost", Value::Real(1.0 + n as f64)),
                        ("resource_cost", Value::Real(0.5 + n as f64)),
                        ("physics_cost", Value::Real(0.25)),
                        ("linked_set_physics_cost", Value::Real(0.75)),
                        ("resource_limiting_type", s("legacy")),
                    ]),
                )
            })
            .collect(),
    )
}

/// The first answer of an upload cap.
pub fn upload_offer(uploader: &str) -> Value {
    map([
        ("state", s("upload")),
        ("uploader", Value::Uri(uploader.to_owned())),
    ])
}

/// The uploader's answer once the data arrived.
pub fn upload_complete(asset: Uuid, item: Uuid) -> Value {
    map([
        ("state", s("complete")),
        ("new_asset", u(asset)),
        ("new_inventory_item", u(item)),
    ])
}
