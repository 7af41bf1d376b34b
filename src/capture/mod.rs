//! Capture files (being built).
