//! The per-replica read cache of the PostgreSQL session backend, kept honest by notices.
//!
//! This module owns [`SharedCache`]: the same [`SessionCache`] the SQLite backend uses (values
//! with their expiry, generation-guarded fills), plus what makes it safe when several replicas
//! write the same rows:
//!
//! - every write through any replica announces the scope it wrote (a [`Notice::Session`]
//!   carrying a digest of the scope, never the scope itself, so no call id travels through
//!   Redis or `NOTIFY`), and every replica forgets that scope when the notice arrives;
//! - a notice that arrives while a read is in flight bumps the cache's generation, so that read
//!   is not cached (the same guard as for local writes);
//! - the cache is only used while the replica's subscription holds: when it is lost
//!   ([`Notice::Lost`]) every read goes to the database and the cache is emptied, and it is
//!   used again only after the re-subscription's [`Notice::Resync`] emptied it once more;
//! - only values are cached, never absences: the read that follows a verification on another
//!   replica always reaches the database;
//! - and as a backstop for a notice that never arrives (a publish that failed, a writer outside
//!   the runtime such as a hand-run SQL statement), no cached value is served for longer than
//!   [`MAX_AGE_SECS`].
//!
//! So a value another replica changed or removed can still be served for the time its notice
//! takes to arrive (milliseconds; at most [`MAX_AGE_SECS`]); a value this replica changed is
//! never served stale. Atomic operations (`take`) and the attempt counters always go to the
//! database. It must not read the time (callers pass `now`) and must not hold scopes in clear
//! beyond the map itself.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest as _, Sha256};
use tokio::sync::broadcast::error::RecvError;

use crate::cache::{Lookup, SessionCache};
use crate::shared::{Notice, Notifier};

/// The longest a cached value is served, in whole seconds of the caller's clock: a read at
/// `now` caches until at most `now + MAX_AGE_SECS` (so 1 to 2 seconds in practice).
pub const MAX_AGE_SECS: i64 = 2;

/// A scope's name in notices and in the cache: the hex of the first 16 bytes of its SHA-256.
pub(crate) fn scope_digest(scope: &[u8]) -> String {
    voxguard_guard::canonical::to_hex(&Sha256::digest(scope)[..16])
}

/// See the module documentation.
pub(crate) struct SharedCache {
    cache: SessionCache,
    live: AtomicBool,
    notifier: Arc<dyn Notifier>,
    follower: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl SharedCache {
    /// A cache that follows `notifier`'s notices from now on. Its subscription is assumed to
    /// hold at this point (the notifiers subscribe before they are returned); a later loss is
    /// reported by [`Notice::Lost`].
    pub(crate) fn follow(notifier: Arc<dyn Notifier>) -> Arc<Self> {
        let mut notices = notifier.subscribe();
        let shared = Arc::new(Self {
            cache: SessionCache::default(),
            live: AtomicBool::new(true),
            notifier,
            follower: std::sync::Mutex::new(None),
        });
        let weak = Arc::downgrade(&shared);
        let task = tokio::spawn(async move {
            loop {
                let notice = notices.recv().await;
                let Some(shared) = weak.upgrade() else { return };
                match notice {
                    Ok(Notice::Session(digest)) => shared.cache.invalidate(&digest),
                    Ok(Notice::Sessions) | Err(RecvError::Lagged(_)) => {
                        shared.cache.invalidate_all()
                    }
                    Ok(Notice::Lost) => {
                        shared.live.store(false, Ordering::SeqCst);
                        shared.cache.invalidate_all();
                    }
                    Ok(Notice::Resync) => {
                        shared.cache.invalidate_all();
                        shared.live.store(true, Ordering::SeqCst);
                    }
                    Ok(Notice::Emergency) => {}
                    Err(RecvError::Closed) => {
                        shared.live.store(false, Ordering::SeqCst);
                        shared.cache.invalidate_all();
                        return;
                    }
                }
            }
        });
        *shared
            .follower
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(task);
        shared
    }

    /// Whether reads may be answered from the cache now.
    pub(crate) fn is_live(&self) -> bool {
        self.live.load(Ordering::SeqCst)
    }

    /// A cached value of `digest`/`key` at `now`, or the generation a database read must fill
    /// with (`None`: the cache is not in use, read without filling).
    pub(crate) fn lookup(&self, digest: &str, key: &str, now: i64) -> Result<Value, Option<u64>> {
        if !self.is_live() {
            return Err(None);
        }
        match self.cache.lookup(digest, key, now) {
            Lookup::Hit(Some(value)) => Ok(value),
            // Absences are never filled; a hit on one would be a bug, so read the database.
            Lookup::Hit(None) => Err(None),
            Lookup::Miss(generation) => Err(Some(generation)),
        }
    }

    /// Cache `value`, read from the database at `now` with the row's `expires_at`, unless a
    /// write or notice came since `generation` or the subscription is lost.
    pub(crate) fn fill(
        &self,
        generation: u64,
        digest: &str,
        key: &str,
        value: Value,
        expires_at: i64,
        now: i64,
    ) {
        if self.is_live() {
            let until = expires_at.min(now.saturating_add(MAX_AGE_SECS));
            self.cache.fill(generation, digest, key, Some(value), until);
        }
    }

    /// After a write to the scope `digest` (`None`: to many scopes): forget it here at once,
    /// and tell every replica. A one-scope write is announced in the background, so that a
    /// slow or unreachable notifier never delays a tool call; an erasure of many scopes (rare:
    /// a subject's deletion, often from a short-lived CLI process) is announced before this
    /// returns. A failed announcement is logged; the other replicas then serve their copy for
    /// at most [`MAX_AGE_SECS`].
    pub(crate) async fn written(&self, digest: Option<String>) {
        let background = digest.is_some();
        let notice = match digest {
            Some(digest) => {
                self.cache.invalidate(&digest);
                Notice::Session(digest)
            }
            None => {
                self.cache.invalidate_all();
                Notice::Sessions
            }
        };
        let notifier = Arc::clone(&self.notifier);
        let announce = async move {
            if let Err(error) = notifier.publish(notice).await {
                tracing::warn!(%error, "a session write could not be announced to the other replicas; their cached copies expire within seconds");
            }
        };
        if background {
            tokio::spawn(announce);
        } else {
            announce.await;
        }
    }
}

impl Drop for SharedCache {
    fn drop(&mut self) {
        if let Some(task) = self
            .follower
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_fixed_length_hex_and_differ_per_scope() {
        let a = scope_digest(b"bank/call-1/r1");
        let b = scope_digest(b"bank/call-1/r2");
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert_eq!(a, scope_digest(b"bank/call-1/r1"));
    }
}
