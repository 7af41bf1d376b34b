//! Small helpers that several layers share, each built on a kept crate: time as text ([`time`], on
//! the `time` crate) and wildcard patterns ([`glob`], on `wildmatch`). They sit at the bottom of
//! the house: they import nothing from capscope, and every layer may import them.

pub mod glob;
pub mod time;
