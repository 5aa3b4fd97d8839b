//! The in-process read cache of the SQLite session backend.
//!
//! This module owns [`SessionCache`]: the answers of recent `get`s (values and absences, with
//! their expiry), so that a tool call that checks a session flag does not pay a round trip to
//! a SQLite worker thread each time — under load those hops, not SQLite, were the cost. It is
//! deliberately simple so that it cannot serve a stale answer:
//!
//! - every write to a scope (set, remove, take, clear — successful or not) drops the whole
//!   scope from the cache once the write is over, because a `set` also extends the expiry of
//!   the scope's other keys; writes run to the end in their own task even when the caller
//!   stops waiting, so the scope is never forgotten before a late write lands;
//! - a `get` fills the cache only if no write happened anywhere since it started reading
//!   (a global generation number), so a read that raced a write never caches the old value;
//! - a cached value is served only before its expiry, judged by the caller's `now` (the cache
//!   never reads the time either);
//! - when it holds [`MAX_SCOPES`] scopes, it is emptied.
//!
//! It assumes that this process is the only writer of the database's sessions, which is how the
//! embedded backend is used (one agent process per data directory); the attempt counters are
//! never cached and stay safe across processes.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value;

/// Scopes (call sessions) held before the cache is emptied.
pub(crate) const MAX_SCOPES: usize = 16_384;

/// A cached answer: the value (or its absence) and until when it holds (exclusive).
#[derive(Clone)]
struct Entry {
    value: Option<Value>,
    expires_at: i64,
}

#[derive(Default)]
struct Inner {
    generation: u64,
    scopes: HashMap<String, HashMap<String, Entry>>,
}

/// See the module documentation.
#[derive(Default)]
pub(crate) struct SessionCache {
    inner: Mutex<Inner>,
}

/// What a lookup found.
pub(crate) enum Lookup {
    /// A cached answer, current at `now`.
    Hit(Option<Value>),
    /// Not cached: read the database, then [`SessionCache::fill`] with this generation.
    Miss(u64),
}

impl SessionCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The map is only ever left consistent; a panic elsewhere cannot corrupt it.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The cached answer for `scope`/`key` at `now`, or the generation to fill it with.
    pub(crate) fn lookup(&self, scope: &str, key: &str, now: i64) -> Lookup {
        let inner = self.lock();
        match inner.scopes.get(scope).and_then(|keys| keys.get(key)) {
            Some(entry) if entry.expires_at > now => Lookup::Hit(entry.value.clone()),
            _ => Lookup::Miss(inner.generation),
        }
    }

    /// Cache what the database answered (`expires_at`: the row's, or `i64::MAX` for an
    /// absence), unless a write happened since `generation` was read.
    pub(crate) fn fill(
        &self,
        generation: u64,
        scope: &str,
        key: &str,
        value: Option<Value>,
        expires_at: i64,
    ) {
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        if inner.scopes.len() >= MAX_SCOPES && !inner.scopes.contains_key(scope) {
            inner.scopes.clear();
        }
        inner
            .scopes
            .entry(scope.to_owned())
            .or_default()
            .insert(key.to_owned(), Entry { value, expires_at });
    }

    /// A write to `scope` happened (or may have): forget the scope.
    pub(crate) fn invalidate(&self, scope: &str) {
        let mut inner = self.lock();
        inner.generation = inner.generation.wrapping_add(1);
        inner.scopes.remove(scope);
    }

    /// Writes to many scopes happened (a purge): forget everything.
    pub(crate) fn invalidate_all(&self) {
        let mut inner = self.lock();
        inner.generation = inner.generation.wrapping_add(1);
        inner.scopes.clear();
    }

    /// Scopes held (for tests).
    #[cfg(test)]
    pub(crate) fn scopes(&self) -> usize {
        self.lock().scopes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn miss(cache: &SessionCache, scope: &str, key: &str, now: i64) -> u64 {
        match cache.lookup(scope, key, now) {
            Lookup::Miss(generation) => generation,
            Lookup::Hit(value) => panic!("unexpected hit {value:?}"),
        }
    }

    fn hit(cache: &SessionCache, scope: &str, key: &str, now: i64) -> Option<Value> {
        match cache.lookup(scope, key, now) {
            Lookup::Hit(value) => value,
            Lookup::Miss(_) => panic!("unexpected miss for {scope}/{key}"),
        }
    }

    #[test]
    fn fills_serve_until_expiry_and_absences_until_a_write() {
        let cache = SessionCache::default();
        let generation = miss(&cache, "s", "flag", 100);
        cache.fill(generation, "s", "flag", Some(json!(true)), 200);
        assert_eq!(hit(&cache, "s", "flag", 199), Some(json!(true)));
        miss(&cache, "s", "flag", 200);
        let generation = miss(&cache, "s", "role", 100);
        cache.fill(generation, "s", "role", None, i64::MAX);
        assert_eq!(hit(&cache, "s", "role", 1_000_000), None);
        cache.invalidate("s");
        miss(&cache, "s", "role", 100);
        miss(&cache, "s", "flag", 100);
    }

    #[test]
    fn a_read_that_raced_a_write_is_not_cached() {
        let cache = SessionCache::default();
        let generation = miss(&cache, "s", "flag", 100);
        // A write (to any scope) lands between the read's start and its fill.
        cache.invalidate("other");
        cache.fill(generation, "s", "flag", None, i64::MAX);
        miss(&cache, "s", "flag", 100);
        let generation = miss(&cache, "s", "flag", 100);
        cache.invalidate_all();
        cache.fill(generation, "s", "flag", Some(json!(1)), 200);
        miss(&cache, "s", "flag", 100);
    }

    #[test]
    fn writes_forget_the_whole_scope_only() {
        let cache = SessionCache::default();
        for (scope, key) in [("a", "x"), ("a", "y"), ("b", "x")] {
            let generation = miss(&cache, scope, key, 0);
            cache.fill(generation, scope, key, Some(json!(key)), 10);
        }
        cache.invalidate("a");
        miss(&cache, "a", "x", 0);
        miss(&cache, "a", "y", 0);
        assert_eq!(hit(&cache, "b", "x", 0), Some(json!("x")));
    }

    #[test]
    fn it_is_emptied_when_full() {
        let cache = SessionCache::default();
        for i in 0..MAX_SCOPES {
            let scope = format!("s{i}");
            let generation = miss(&cache, &scope, "k", 0);
            cache.fill(generation, &scope, "k", None, i64::MAX);
        }
        assert_eq!(cache.scopes(), MAX_SCOPES);
        // Another key of a held scope fits; a new scope empties the cache first.
        let generation = miss(&cache, "s0", "k2", 0);
        cache.fill(generation, "s0", "k2", None, i64::MAX);
        assert_eq!(cache.scopes(), MAX_SCOPES);
        let generation = miss(&cache, "new", "k", 0);
        cache.fill(generation, "new", "k", None, i64::MAX);
        assert_eq!(cache.scopes(), 1);
        assert_eq!(hit(&cache, "new", "k", 0), None);
    }
}
