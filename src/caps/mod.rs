//! Caps: what makes capscope a caps debugger rather than a generic proxy.
//!
//! - [`login`]: the XML-RPC `login_to_simulator` exchange (who logged in, where, the first seed).
//! - [`login_llsd`]: the same exchange as an LLSD map (LibreMetaverse), rewritten in place.
//! - [`seed`]: seed responses (cap name -> URL maps) and upload caps' one-time `uploader` URLs.
//! - [`event_queue`]: EventQueueGet polls and their events, seeds carried by events, the store that
//!   keeps an upstream answer until the viewer has it.
//! - [`registry`]: every cap known, per region, with longest-prefix lookup and the proxy tokens of login
//!   mode.
//! - [`grid_info`]: `get_grid_info`, rewritten so a grid manager logs in through capscope.
//! - [`fields`]: decoders for the well-known binary event fields (RegionHandle, SimIP, TeleportFlags).
//! - [`xmlrpc`]: a small XML-RPC reader that keeps byte positions, for in-place rewriting.
//! - [`splice`]: in-place replacement of URL strings inside LLSD bytes of any format.
//! - [`hook`]: [`CapsHook`], the [`crate::proxy::hook::Hook`] the proxy calls.
//!
//! Owns the understanding and rewriting of login, seed and event-queue bodies and the cap registry. It
//! must not hold proxy machinery (sockets, TLS, the upstream client: it gets a
//! [`crate::proxy::hook::Upstream`]) nor LLSD codec internals (it uses [`crate::llsd`]'s public API).

pub mod body;
pub mod event_queue;
pub mod fields;
pub mod grid_info;
pub mod hook;
pub mod login;
pub mod login_llsd;
pub mod registry;
pub mod seed;
pub mod splice;
pub mod xmlrpc;

pub use hook::{CapsHook, CapsStats, Mode};
pub use registry::{Cap, CapKind, RegionId, Registry};

/// Why a body could not be understood or rewritten. The body then goes on unchanged and the record
/// carries this message.
#[derive(Debug, thiserror::Error)]
pub enum CapsError {
    /// The XML-RPC login body is not well-formed XML.
    #[error("the {what} is not well-formed XML at byte {offset}: {reason}")]
    Xml {
        what: &'static str,
        offset: u64,
        reason: String,
    },
    /// The XML is fine but not the XML-RPC shape expected.
    #[error("the {what} is not an XML-RPC {expected}: {found}")]
    NotXmlRpc {
        what: &'static str,
        expected: &'static str,
        found: String,
    },
    /// An LLSD body did not decode.
    #[error("the {what} is not LLSD: {reason}")]
    Llsd { what: &'static str, reason: String },
    /// An LLSD body decoded but has the wrong shape.
    #[error("the {what} is not {expected} (found {found})")]
    Shape {
        what: &'static str,
        expected: &'static str,
        found: String,
    },
    /// A compressed body could not be decompressed.
    #[error("the {what} could not be decoded from Content-Encoding {encoding}: {reason}")]
    ContentEncoding {
        what: &'static str,
        encoding: String,
        reason: String,
    },
    /// A body is larger than capscope rewrites.
    #[error("the {what} is over {limit} bytes")]
    TooLarge { what: &'static str, limit: usize },
    /// A `--grid` argument that is not agni, aditi or a usable login URL.
    #[error("the grid {grid:?} is not usable: {reason}")]
    BadGrid { grid: String, reason: String },
    /// Too deeply nested to walk.
    #[error("the {what} nests deeper than {limit} levels")]
    TooDeep { what: &'static str, limit: usize },
}

/// What a rewriter produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rewritten {
    /// The new body, or `None` when nothing needed to change (send the original bytes).
    pub body: Option<bytes::Bytes>,
    /// What was learnt or rewritten, for the record.
    pub notes: Vec<String>,
}

/// Whether a body is rewritten to point at capscope or only read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Learn caps, change nothing (HTTP proxy mode).
    Learn,
    /// Learn caps and rewrite their URLs to capscope's `/cap/<token>` URLs (login mode).
    Rewrite,
}
