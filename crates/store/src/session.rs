//! The session-state contract shared by every backend.
//!
//! This module owns the [`SessionStore`] trait, its error type [`StoreError`], the default
//! time-to-live and the whole-second expiry arithmetic both backends share, so that the memory
//! and SQLite stores behave identically. It must not know about any concrete backend, must not
//! read the time (the caller's clock decides), and nothing it renders for display may contain
//! SQL text, file paths or stored values.

use std::time::Duration;

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
/// The caller's clock decides; stores never read the time. Every method whose answer depends on
/// time takes `now`, the current unix time in whole seconds, read once by the caller from its
/// injected clock (`voxguard_guard::Clock::now_unix`), so that the same `now` gives the same
/// answer on every backend and tests need no sleeping.
///
/// Expiry has whole-second resolution: every entry records the unix second at which it expires
/// (`now` of its last renewal + TTL), and an entry counts as expired once `now` is at or past
/// that instant. A TTL of zero therefore makes entries expire at once. Every
/// [`set`](SessionStore::set) renews the whole scope (all of its live entries), so a session
/// stays alive as long as it is written to.
#[async_trait::async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Read the value stored under `key` in `scope` that is live at `now`, or `None` if it is
    /// absent or expired.
    async fn get(
        &self,
        scope: &str,
        key: &str,
        now: u64,
    ) -> Result<Option<serde_json::Value>, StoreError>;

    /// Store `value` under `key` in `scope` at `now`, replacing any previous value.
    ///
    /// Also refreshes the expiry of every entry of the scope still live at `now` to `now` + TTL.
    /// Entries that had already expired stay expired.
    async fn set(
        &self,
        scope: &str,
        key: &str,
        value: &serde_json::Value,
        now: u64,
    ) -> Result<(), StoreError>;

    /// Delete `key` from `scope`. Deleting a missing key is not an error.
    async fn remove(&self, scope: &str, key: &str) -> Result<(), StoreError>;

    /// Delete `key` from `scope` and return the value it held if it was live at `now`,
    /// atomically: when several callers take the same key concurrently, exactly one receives the
    /// value (one-shot tokens such as pending confirmations rely on this).
    async fn take(
        &self,
        scope: &str,
        key: &str,
        now: u64,
    ) -> Result<Option<serde_json::Value>, StoreError>;

    /// Delete every entry of `scope`. Clearing an empty scope is not an error.
    async fn clear(&self, scope: &str) -> Result<(), StoreError>;

    /// Delete every entry of every scope that starts with `prefix` (an exact string prefix:
    /// no character of it is a wildcard) and return how many entries were deleted, expired
    /// ones included. An empty prefix matches every scope.
    ///
    /// It serves a data subject's erasure: voxguard scopes are `"<agent>/<call_id>/<render>"`,
    /// so clearing `"<agent>/<call_id>/"` forgets a call. The SQLite backend therefore also
    /// empties its write-ahead log afterwards, so that no copy of the deleted values is left in
    /// its files (which makes it costlier than [`clear`](SessionStore::clear): it is not meant
    /// for routine cleanup); if the log could not be emptied, the deletion is committed and
    /// [`StoreError::ScrubIncomplete`] is returned. The PostgreSQL backend has no such scrub:
    /// deleted rows may linger in dead tuples until autovacuum and in backups.
    async fn clear_prefix(&self, prefix: &str) -> Result<u64, StoreError>;

    /// Delete every entry expired at `now` and return how many entries were deleted.
    async fn purge_expired(&self, now: u64) -> Result<u64, StoreError>;

    /// Cheap health check, meant for a `/ready` endpoint.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The backend's name: `"memory"`, `"sqlite"` or `"postgres"`.
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
    /// A record with the same id is already stored; nothing was written.
    #[error("a record with this id already exists")]
    DuplicateRecord,
    /// A listing's paging cursor names no stored record (it may have been deleted or purged
    /// since the previous page): start the listing again.
    #[error("the paging cursor does not name a stored record")]
    UnknownCursor,
    /// A deletion was committed, but the database's write-ahead log still holds copies of the
    /// deleted rows because other connections kept using it. Running the same deletion again
    /// (it is idempotent) retries the scrub.
    #[error("the deletion was committed but the write-ahead log could not be emptied yet")]
    ScrubIncomplete,
}

impl StoreError {
    /// The generic sentence followed by each underlying cause (`": "`-separated), for an
    /// operator's console or a start-up error. The causes are the backend's own messages: they
    /// can name a host, a file or SQL state, never a password (URLs are parsed before use and
    /// not quoted back).
    pub fn describe(&self) -> String {
        let mut out = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            out.push_str(": ");
            out.push_str(&cause.to_string());
            source = cause.source();
        }
        out
    }

    /// Wrap a backend error as [`StoreError::Unavailable`].
    pub(crate) fn unavailable(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Unavailable {
            source: Box::new(err),
        }
    }
}

/// Convert a TTL to whole seconds, rounding a non-zero sub-second remainder up.
pub(crate) fn ttl_secs(ttl: Duration) -> i64 {
    to_i64(
        ttl.as_secs()
            .saturating_add(u64::from(ttl.subsec_nanos() > 0)),
    )
}

/// A unix time or limit as the signed integer the backends store, saturating at `i64::MAX`.
pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
