//! A small bounded map from host to TLS server configuration, evicting the least recently used
//! entry when full (the `lru` crate). Owns only the bookkeeping; minting happens outside its lock.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use lru::LruCache;
use rustls::ServerConfig;

use crate::host::Host;

/// How many hosts keep a ready `ServerConfig` by default. A viewer talks to one login server, a
/// handful of simulators and a few CDN hosts, so this is generous; each entry is a few KiB.
pub const DEFAULT_CACHE_CAPACITY: usize = 1024;

/// Host → `Arc<ServerConfig>`, at most `capacity` entries.
pub(crate) struct ConfigCache {
    entries: Mutex<LruCache<Host, Arc<ServerConfig>>>,
}

impl ConfigCache {
    /// A cache holding at most `capacity` hosts (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        ConfigCache {
            entries: Mutex::new(LruCache::new(capacity)),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.lock().cap().get()
    }

    // A panic while holding the lock leaves the map consistent (every update is a single call into
    // the cache), so a poisoned lock is safe to keep using.
    fn lock(&self) -> MutexGuard<'_, LruCache<Host, Arc<ServerConfig>>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached configuration for `host`, marking it recently used.
    pub(crate) fn get(&self, host: &Host) -> Option<Arc<ServerConfig>> {
        self.lock().get(host).map(Arc::clone)
    }

    /// Stores `config` for `host` unless another thread stored one first; returns the one kept, so
    /// that every caller for a host shares one `Arc`. At capacity, the least recently used host
    /// goes.
    pub(crate) fn insert(&self, host: Host, config: Arc<ServerConfig>) -> Arc<ServerConfig> {
        let mut entries = self.lock();
        if let Some(kept) = entries.get(&host) {
            return Arc::clone(kept);
        }
        if let Some((evicted, _)) = entries.push(host, Arc::clone(&config)) {
            tracing::debug!(host = %evicted, "evicting the least recently used TLS config");
        }
        config
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}
