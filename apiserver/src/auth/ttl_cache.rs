//! A small time-to-live cache for the answers of delegated authentication and
//! authorization (TokenReview, SubjectAccessReview), so that a busy client does not turn
//! every request into a call to the cluster.
//!
//! Entries expire after the TTL given at insertion (allowed and denied answers may have
//! different TTLs). The cache is bounded: when it is full, expired entries are dropped,
//! and if it is still full the whole cache is cleared — simple, and at worst it costs one
//! extra review per key. Time comes from `tokio::time`, so tests can pause it.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// A bounded map whose entries expire.
#[derive(Debug)]
pub struct TtlCache<K, V> {
    entries: Mutex<HashMap<K, (Instant, V)>>,
    capacity: usize,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    /// An empty cache holding at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        TtlCache {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// The unexpired value for `key`.
    pub fn get(&self, key: &K) -> Option<V> {
        let now = Instant::now();
        let mut entries = self.lock();
        match entries.get(key) {
            Some((expires, value)) if *expires > now => Some(value.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Stores `value` for `ttl`; a zero TTL stores nothing.
    pub fn insert(&self, key: K, value: V, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, (expires, _)| *expires > now);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(key, (now + ttl, value));
    }

    /// How many entries are held (expired ones included until they are touched).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (Instant, V)>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn entries_expire_after_their_ttl() {
        let cache = TtlCache::new(10);
        cache.insert("a", 1, Duration::from_secs(10));
        cache.insert("b", 2, Duration::from_secs(1));
        cache.insert("zero", 3, Duration::ZERO);
        assert_eq!(cache.get(&"a"), Some(1));
        assert_eq!(cache.get(&"b"), Some(2));
        assert_eq!(cache.get(&"zero"), None);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(cache.get(&"a"), Some(1));
        assert_eq!(cache.get(&"b"), None);
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(cache.get(&"a"), None);
        assert!(cache.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn stays_bounded() {
        let cache = TtlCache::new(3);
        cache.insert(1, (), Duration::from_secs(1));
        cache.insert(2, (), Duration::from_secs(100));
        cache.insert(3, (), Duration::from_secs(100));
        tokio::time::advance(Duration::from_secs(2)).await;
        // Full: the expired entry makes room.
        cache.insert(4, (), Duration::from_secs(100));
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get(&2), Some(()));
        // Full of live entries: cleared, then the new one is kept.
        cache.insert(5, (), Duration::from_secs(100));
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get(&5), Some(()));
        // Replacing a key never evicts.
        cache.insert(5, (), Duration::from_secs(100));
        assert_eq!(cache.len(), 1);
    }
}
