//! The in-process session backend.
//!
//! This module owns [`MemoryStore`], a [`SessionStore`] and [`AttemptStore`] kept in
//! mutex-guarded maps inside the process: fast, dependency-free, and lost on restart. It suits tests, development and
//! single-replica deployments. It must behave exactly like the SQLite backend (same expiry rules,
//! same renewal on write, same attempt transitions, each attempt operation one critical section)
//! and must never print stored values, not even through `Debug`.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::Value;

use crate::attempts::{
    purgeable, reserve_step, settle_step, view, AttemptLimits, AttemptStatus, AttemptStore,
    Reservation, Row, Write,
};
use crate::session::{to_i64, ttl_secs, SessionStore, StoreError, DEFAULT_SESSION_TTL};

/// One stored value and the unix second at which it expires.
#[derive(Clone)]
struct Entry {
    value: Value,
    expires_at: i64,
}

/// Scope name → key → entry.
type Scopes = HashMap<String, HashMap<String, Entry>>;

/// Subject → stored attempt row (rows that read as fresh are kept until the next purge).
type Attempts = HashMap<String, Row>;

/// A [`SessionStore`] held in process memory.
///
/// State is lost when the process exits and is not shared between replicas. Expired entries are
/// invisible at once and freed by [`SessionStore::purge_expired`].
pub struct MemoryStore {
    scopes: Mutex<Scopes>,
    attempts: Mutex<Attempts>,
    ttl: Duration,
    ttl_secs: i64,
}

impl MemoryStore {
    /// An empty store whose scopes expire `ttl` after their last write (whole seconds; a
    /// sub-second remainder rounds up; zero expires entries at once).
    pub fn new(ttl: Duration) -> Self {
        Self {
            scopes: Mutex::new(HashMap::new()),
            attempts: Mutex::new(HashMap::new()),
            ttl,
            ttl_secs: ttl_secs(ttl),
        }
    }

    /// The time-to-live this store applies on every write.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Lock the map. A panic while holding the lock cannot leave it structurally invalid (every
    /// mutation is a single map operation), so a poisoned lock is simply recovered.
    fn lock(&self) -> MutexGuard<'_, Scopes> {
        self.scopes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Lock the attempt counters. Every mutation is a single map operation after a pure
    /// computation, so a poisoned lock is simply recovered.
    fn lock_attempts(&self) -> MutexGuard<'_, Attempts> {
        self.attempts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for MemoryStore {
    /// A store using [`DEFAULT_SESSION_TTL`].
    fn default() -> Self {
        Self::new(DEFAULT_SESSION_TTL)
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl SessionStore for MemoryStore {
    async fn get(&self, scope: &str, key: &str, now: u64) -> Result<Option<Value>, StoreError> {
        let now = to_i64(now);
        let scopes = self.lock();
        Ok(scopes
            .get(scope)
            .and_then(|entries| entries.get(key))
            .filter(|entry| now < entry.expires_at)
            .map(|entry| entry.value.clone()))
    }

    async fn set(&self, scope: &str, key: &str, value: &Value, now: u64) -> Result<(), StoreError> {
        let now = to_i64(now);
        let expires_at = now.saturating_add(self.ttl_secs);
        let mut scopes = self.lock();
        let entries = scopes.entry(scope.to_owned()).or_default();
        for entry in entries.values_mut() {
            if now < entry.expires_at {
                entry.expires_at = expires_at;
            }
        }
        entries.insert(
            key.to_owned(),
            Entry {
                value: value.clone(),
                expires_at,
            },
        );
        Ok(())
    }

    async fn remove(&self, scope: &str, key: &str) -> Result<(), StoreError> {
        let mut scopes = self.lock();
        if let Some(entries) = scopes.get_mut(scope) {
            entries.remove(key);
            if entries.is_empty() {
                scopes.remove(scope);
            }
        }
        Ok(())
    }

    async fn take(&self, scope: &str, key: &str, now: u64) -> Result<Option<Value>, StoreError> {
        let now = to_i64(now);
        let mut scopes = self.lock();
        let Some(entries) = scopes.get_mut(scope) else {
            return Ok(None);
        };
        let taken = entries.remove(key).filter(|entry| now < entry.expires_at);
        if entries.is_empty() {
            scopes.remove(scope);
        }
        Ok(taken.map(|entry| entry.value))
    }

    async fn clear(&self, scope: &str) -> Result<(), StoreError> {
        self.lock().remove(scope);
        Ok(())
    }

    async fn clear_prefix(&self, prefix: &str) -> Result<u64, StoreError> {
        let mut scopes = self.lock();
        let mut cleared: u64 = 0;
        scopes.retain(|scope, entries| {
            let keep = !scope.starts_with(prefix);
            if !keep {
                let removed = u64::try_from(entries.len()).unwrap_or(u64::MAX);
                cleared = cleared.saturating_add(removed);
            }
            keep
        });
        Ok(cleared)
    }

    async fn purge_expired(&self, now: u64) -> Result<u64, StoreError> {
        let now = to_i64(now);
        let mut scopes = self.lock();
        let mut purged: u64 = 0;
        scopes.retain(|_, entries| {
            let before = entries.len();
            entries.retain(|_, entry| now < entry.expires_at);
            let removed = before.saturating_sub(entries.len());
            purged = purged.saturating_add(u64::try_from(removed).unwrap_or(u64::MAX));
            !entries.is_empty()
        });
        Ok(purged)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}

impl MemoryStore {
    /// Apply one attempt transition to `subject` in a single critical section.
    fn transition<T>(&self, subject: &str, step: impl FnOnce(Option<Row>) -> (Write, T)) -> T {
        let mut attempts = self.lock_attempts();
        let (write, answer) = step(attempts.get(subject).copied());
        match write {
            Write::Keep => {}
            Write::Put(row) => {
                attempts.insert(subject.to_owned(), row);
            }
            Write::Delete => {
                attempts.remove(subject);
            }
        }
        answer
    }
}

#[async_trait::async_trait]
impl AttemptStore for MemoryStore {
    async fn reserve(
        &self,
        subject: &str,
        limits: &AttemptLimits,
        now: u64,
    ) -> Result<Reservation, StoreError> {
        Ok(self.transition(subject, |row| reserve_step(row, limits, now)))
    }

    async fn settle(
        &self,
        subject: &str,
        success: bool,
        limits: &AttemptLimits,
        now: u64,
    ) -> Result<AttemptStatus, StoreError> {
        Ok(self.transition(subject, |row| settle_step(row, success, limits, now)))
    }

    async fn attempt_status(&self, subject: &str, now: u64) -> Result<AttemptStatus, StoreError> {
        let attempts = self.lock_attempts();
        let row = attempts.get(subject).copied().unwrap_or_default();
        Ok(view(row, now))
    }

    async fn reset_attempts(&self, subject: &str) -> Result<(), StoreError> {
        self.lock_attempts().remove(subject);
        Ok(())
    }

    async fn purge_attempts(&self, now: u64) -> Result<u64, StoreError> {
        let mut attempts = self.lock_attempts();
        let before = attempts.len();
        attempts.retain(|_, row| !purgeable(*row, now));
        let purged = before.saturating_sub(attempts.len());
        Ok(u64::try_from(purged).unwrap_or(u64::MAX))
    }
}
