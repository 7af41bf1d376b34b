//! A small bounded map from host to TLS server configuration, evicting the least recently used
//! entry when full. Owns only the bookkeeping; minting happens outside its lock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rustls::ServerConfig;

use crate::host::Host;

/// How many hosts keep a ready `ServerConfig` by default. A viewer talks to one login server, a
/// handful of simulators and a few CDN hosts, so this is generous; each entry is a few KiB.
pub const DEFAULT_CACHE_CAPACITY: usize = 1024;

struct Entry {
    config: Arc<ServerConfig>,
    last_used: u64,
}

struct State {
    entries: HashMap<Host, Entry>,
    clock: u64,
}

/// Host → `Arc<ServerConfig>`, at most `capacity` entries.
pub(crate) struct ConfigCache {
    capacity: usize,
    state: Mutex<State>,
}

impl ConfigCache {
    /// A cache holding at most `capacity` hosts (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        ConfigCache {
            capacity: capacity.max(1),
            state: Mutex::new(State {
                entries: HashMap::new(),
                clock: 0,
            }),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    // A panic while holding the lock leaves the map consistent (every update is a single insert
    // or remove), so a poisoned lock is safe to keep using.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached configuration for `host`, marking it recently used.
    pub(crate) fn get(&self, host: &Host) -> Option<Arc<ServerConfig>> {
        let mut state = self.lock();
        state.clock += 1;
        let now = state.clock;
        state.entries.get_mut(host).map(|entry| {
            entry.last_used = now;
            Arc::clone(&entry.config)
        })
    }

    /// Stores `config` for `host` unless another thread stored one first; returns the one kept, so
    /// that every caller for a host shares one `Arc`.
    pub(crate) fn insert(&self, host: Host, config: Arc<ServerConfig>) -> Arc<ServerConfig> {
        let mut state = self.lock();
        state.clock += 1;
        let now = state.clock;
        if let Some(entry) = state.entries.get_mut(&host) {
            entry.last_used = now;
            return Arc::clone(&entry.config);
        }
        if state.entries.len() >= self.capacity {
            // A linear scan: it runs only on a miss at capacity, next to a ~50 µs mint.
            let oldest = state
                .entries
                .iter()
                .min_by_key(|(_, entry)| entry.last_used)
                .map(|(host, _)| host.clone());
            if let Some(oldest) = oldest {
                tracing::debug!(host = %oldest, "evicting the least recently used TLS config");
                state.entries.remove(&oldest);
            }
        }
        state.entries.insert(
            host,
            Entry {
                config: Arc::clone(&config),
                last_used: now,
            },
        );
        config
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().entries.len()
    }
}
