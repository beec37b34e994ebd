//! The in-memory cache of successful credential lookups (API tokens, session cookies) that
//! spares every API request a database round trip, with the invalidation rule both rely on.
//!
//! Entries live [`LOOKUP_TTL_MS`] (by the [`crate::Access`] clock), which bounds how late a
//! change made by another process (`vigil token revoke`, `vigil user disable` on the command
//! line) is noticed. A change made through this process empties the cache at once, and a
//! generation counter keeps a lookup that read the database before that change from caching
//! what it read. Failures are never cached, so every bad credential still reaches intrusion
//! detection. Numbers: docs/BENCHMARKS.md (HTTPS API; management API with PostgreSQL).

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// How long a successful lookup is reused.
pub const LOOKUP_TTL_MS: i64 = 1_000;
/// Entries kept at most; a full cache is emptied rather than grown.
const MAX_ENTRIES: usize = 4096;

struct Entry<V> {
    value: V,
    fetched_ms: i64,
}

/// Successful lookups keyed by the SHA-256 of the credential.
pub(crate) struct LookupCache<V> {
    /// Bumped by every invalidation; a lookup started under an older generation is not kept.
    generation: AtomicU64,
    entries: RwLock<HashMap<[u8; 32], Entry<V>>>,
}

impl<V> Default for LookupCache<V> {
    fn default() -> Self {
        LookupCache {
            generation: AtomicU64::new(0),
            entries: RwLock::new(HashMap::new()),
        }
    }
}

impl<V: Clone> LookupCache<V> {
    /// The value cached for `key` if it was fetched less than [`LOOKUP_TTL_MS`] ago.
    pub(crate) fn get(&self, key: &[u8; 32], now_ms: i64) -> Option<V> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let e = entries.get(key)?;
        (0..LOOKUP_TTL_MS)
            .contains(&(now_ms - e.fetched_ms))
            .then(|| e.value.clone())
    }

    /// Read before the database lookup whose result is then given to [`LookupCache::insert`].
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(crate) fn insert(&self, key: [u8; 32], value: V, fetched_ms: i64, generation: u64) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        // Checked under the write lock that `invalidate` also takes: a change that committed
        // after this lookup read the database has bumped the generation.
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key, Entry { value, fetched_ms });
    }

    /// Forgets one entry (its credential was just used up, e.g. an expired session deleted).
    pub(crate) fn remove(&self, key: &[u8; 32]) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.remove(key);
    }

    pub(crate) fn invalidate(&self) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }

    /// Empties the cache when the returned guard is dropped: taken at the start of a change,
    /// so the cache is emptied after it whichever way the change ends (committed, failed
    /// half-way, or an error after the commit).
    pub(crate) fn invalidate_after(&self) -> InvalidateOnDrop<'_, V> {
        InvalidateOnDrop(self)
    }
}

pub(crate) struct InvalidateOnDrop<'a, V: Clone>(&'a LookupCache<V>);

impl<V: Clone> Drop for InvalidateOnDrop<'_, V> {
    fn drop(&mut self) {
        self.0.invalidate();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_after_the_ttl() {
        let c = LookupCache::default();
        c.insert([1; 32], "a", 1_000, c.generation());
        assert_eq!(c.get(&[1; 32], 1_000), Some("a"));
        assert_eq!(c.get(&[1; 32], 1_000 + LOOKUP_TTL_MS - 1), Some("a"));
        assert_eq!(c.get(&[1; 32], 1_000 + LOOKUP_TTL_MS), None);
        // A clock that went back does not make an entry live longer.
        assert_eq!(c.get(&[1; 32], 999), None);
        assert_eq!(c.get(&[2; 32], 1_000), None);
    }

    #[test]
    fn a_lookup_that_raced_with_a_change_is_not_kept() {
        let c = LookupCache::default();
        let before = c.generation();
        // The change commits and invalidates while the lookup is reading the old row.
        drop(c.invalidate_after());
        c.insert([1; 32], "stale", 0, before);
        assert_eq!(c.get(&[1; 32], 0), None);
        c.insert([1; 32], "fresh", 0, c.generation());
        assert_eq!(c.get(&[1; 32], 0), Some("fresh"));
        c.remove(&[1; 32]);
        assert_eq!(c.get(&[1; 32], 0), None);
    }
}
