//! The intercepting proxy: listener, CONNECT and TLS termination, routing, the upstream client and the
//! body tap.
//!
//! Owns the data path from the client's socket to the upstream's and back. Knows nothing of caps beyond
//! the [`hook::Hook`] it calls.

pub mod hook;
