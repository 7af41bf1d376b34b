//! The intercepting proxy (being built).
