//! Caps: login, seed and event-queue rewriting and the cap registry (being built).
