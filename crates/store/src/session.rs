//! The session-state contract shared by every backend.
//!
//! This module owns the [`SessionStore`] trait, its error type [`StoreError`], the default
//! time-to-live and the whole-second clock both backends use to decide expiry, so that the
//! memory and SQLite stores behave identically. It must not know about any concrete backend,
//! and nothing it renders for display may contain SQL text, file paths or stored values.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a session scope lives after its last write: 24 hours.
///
/// A phone call never lasts longer. Expired entries are invisible to [`SessionStore::get`] and
/// are deleted by [`SessionStore::purge_expired`].
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Server-side per-call session state.
///
/// `scope` is an opaque string chosen by the caller (voxguard uses `"<agent>/<call_id>"`); keys
/// are short names; values are JSON. Authorization state (verification flags, attempt counters,
/// pending confirmations) lives here, never in data the caller or the LLM controls.
///
/// Expiry has whole-second resolution: every entry records the unix second at which it expires,
/// and an entry counts as expired once the current unix second is at or past that instant. A TTL
/// of zero therefore makes entries expire at once. Every [`set`](SessionStore::set) renews the
/// whole scope (all of its live entries), so a session stays alive as long as it is written to.
#[async_trait::async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Read the live value stored under `key` in `scope`, or `None` if it is absent or expired.
    async fn get(&self, scope: &str, key: &str) -> Result<Option<serde_json::Value>, StoreError>;

    /// Store `value` under `key` in `scope`, replacing any previous value.
    ///
    /// Also refreshes the expiry of every live entry of the scope to now + TTL. Entries that had
    /// already expired stay expired.
    async fn set(
        &self,
        scope: &str,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<(), StoreError>;

    /// Delete `key` from `scope`. Deleting a missing key is not an error.
    async fn remove(&self, scope: &str, key: &str) -> Result<(), StoreError>;

    /// Delete `key` from `scope` and return the live value it held, atomically: when several
    /// callers take the same key concurrently, exactly one receives the value (one-shot
    /// tokens such as pending confirmations rely on this).
    async fn take(&self, scope: &str, key: &str) -> Result<Option<serde_json::Value>, StoreError>;

    /// Delete every entry of `scope`. Clearing an empty scope is not an error.
    async fn clear(&self, scope: &str) -> Result<(), StoreError>;

    /// Delete every expired entry and return how many entries were deleted.
    async fn purge_expired(&self) -> Result<u64, StoreError>;

    /// Cheap health check, meant for a `/ready` endpoint.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The backend's name: `"memory"` or `"sqlite"`.
    fn backend(&self) -> &'static str;
}

/// Why a session store operation failed.
///
/// The `Display` text is generic and safe to show to operators: it never contains SQL, file
/// paths or stored values. Details, where available, are only reachable through
/// [`std::error::Error::source`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend could not be reached or failed while executing the operation.
    #[error("session store is unavailable")]
    Unavailable {
        /// The backend's own error (may mention SQL or paths; never display it to callers).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A stored value is not valid JSON.
    #[error("stored session value is corrupt")]
    Corrupt {
        /// The JSON parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// A value could not be encoded as JSON text.
    #[error("session value could not be encoded")]
    Encode {
        /// The JSON serializer's error.
        #[source]
        source: serde_json::Error,
    },
    /// The directory that holds the store could not be created.
    #[error("could not prepare the session store directory")]
    Io {
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    /// Wrap a backend error as [`StoreError::Unavailable`].
    pub(crate) fn unavailable(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Unavailable {
            source: Box::new(err),
        }
    }
}

/// Convert a TTL to whole seconds, rounding a non-zero sub-second remainder up.
pub(crate) fn ttl_secs(ttl: Duration) -> i64 {
    let secs = ttl
        .as_secs()
        .saturating_add(u64::from(ttl.subsec_nanos() > 0));
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// The source of "now" for expiry decisions, in whole unix seconds.
///
/// Production code always reads the system clock; tests can drive a manual clock to check
/// expiry deterministically without sleeping.
#[derive(Clone, Debug, Default)]
pub(crate) struct Clock {
    #[cfg(test)]
    manual: Option<std::sync::Arc<std::sync::atomic::AtomicI64>>,
}

impl Clock {
    /// The current unix time in whole seconds (0 if the system clock is before 1970).
    pub(crate) fn now(&self) -> i64 {
        #[cfg(test)]
        if let Some(manual) = &self.manual {
            return manual.load(std::sync::atomic::Ordering::SeqCst);
        }
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }

    /// A clock that reads `time` instead of the system clock.
    #[cfg(test)]
    pub(crate) fn manual(time: std::sync::Arc<std::sync::atomic::AtomicI64>) -> Self {
        Self { manual: Some(time) }
    }
}
