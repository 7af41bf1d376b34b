//! The filter language (being built).
