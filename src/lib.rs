//! capscope: a man-in-the-middle debugging proxy for Second Life and OpenSimulator capabilities.
//!
//! The data path, module by module (see docs/architecture.md):
//! - [`llsd`]: the LLSD value and its codecs; knows nothing of the network.
//! - [`proxy`]: listener, CONNECT and TLS, routing, upstream client, body tap; knows nothing of caps
//!   beyond the hook it calls.
//! - [`caps`]: login, seed and event-queue understanding and rewriting, the cap registry.
//! - [`record`]: the record model and the stream every consumer subscribes to.
//! - [`capture`]: capture files; [`filter`]: the filter language.
//! - [`mockgrid`]: a simulated grid and a scripted viewer, for `capscope demo` and the tests.
//! - [`headless`]: the one-line-per-record log `capscope run` prints.
//! - [`paths`]: where capscope keeps its data (the CA, captures).
//! - [`util`]: time as text and wildcard patterns, shared by every layer.
//! - [`cli`]: the command line, the binary's edge.
//!
//! No `unsafe` anywhere in it: every parser that sees the network is safe Rust (the fuzz targets in
//! fuzz/ rely on that; docs/fuzzing.md).

#![forbid(unsafe_code)]

pub mod caps;
pub mod capture;
pub mod cli;
pub mod filter;
pub mod headless;
pub mod llsd;
pub mod mockgrid;
pub mod paths;
pub mod proxy;
pub mod record;
pub mod store;
pub mod tui;
pub mod util;
