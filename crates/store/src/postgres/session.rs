//! Call sessions on PostgreSQL, shared by every replica.
//!
//! This module owns [`PgStore`] and its [`SessionStore`] half (the attempt counters are in the
//! sibling `attempts` module): the session queries, run through sqlx with bound parameters
//! only, on the pool of a [`PgDatabase`]. By default every `get` reads the database, so a write
//! made through replica B is seen by replica A at once. [`PgStore::with_cache`] adds a
//! per-replica read cache kept honest by notices between replicas (see `session_cache`: a
//! value another replica changed may be served until its notice arrives, at most
//! [`MAX_AGE_SECS`](super::MAX_AGE_SECS)); every write then runs to the end in its own task and
//! announces its scope. `set` stores the value and renews the scope's live
//! entries in one transaction that first takes an advisory lock on the scope (so concurrent
//! writers of one scope queue instead of deadlocking on each other's rows; the rare deadlock
//! PostgreSQL may still break against a concurrent bulk delete is retried); `take` is a single
//! `DELETE ... RETURNING`, so exactly one caller — on any connection or replica — receives
//! the value. Scopes and keys are stored as their UTF-8 bytes (`BYTEA`, see the migration),
//! so every string the other backends accept, NUL included, works here too and ordering is
//! code-point order. `clear_prefix` matches an exact byte prefix (no character is a wildcard).
//! PostgreSQL has no write-ahead-log scrub to do: deleted rows may linger in dead tuples until
//! autovacuum reclaims them, in the server's WAL archive and in backups; what protects such
//! copies is that session state holds no record content and that records are crypto-shredded.
//! This module must behave exactly like the memory and SQLite backends, must never build SQL
//! from caller data, and must never put SQL text or stored values into an error's `Display`.

use std::time::Duration;

use serde_json::Value;
use sqlx::{Postgres, Transaction};

use std::sync::Arc;

use super::session_cache::{scope_digest, SharedCache};
use super::PgDatabase;
use crate::session::{to_i64, ttl_secs, SessionStore, StoreError};
use crate::shared::Notifier;

/// How many times an operation is tried when PostgreSQL aborts it to break a deadlock or a
/// serialization conflict (both safe to retry: the transaction was rolled back).
pub(super) const TRIES: u32 = 5;

/// Whether `err` is a transient conflict PostgreSQL asks the client to retry: a detected
/// deadlock (`40P01`) or a serialization failure (`40001`).
pub(super) fn is_retryable(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .and_then(|db| db.code())
        .is_some_and(|code| code == "40P01" || code == "40001")
}

/// A [`SessionStore`] and [`AttemptStore`](crate::AttemptStore) in PostgreSQL, for several
/// replicas sharing one database.
///
/// Cheap to clone (clones share the pool and the cache). Without [`PgStore::with_cache`] every
/// read goes to the database, so what one replica writes every other replica reads at once.
/// The tables come from [`PgDatabase::migrate`], which must have run before the store is used.
#[derive(Clone)]
pub struct PgStore {
    pub(super) db: PgDatabase,
    ttl: Duration,
    ttl_secs: i64,
    cache: Option<Arc<SharedCache>>,
}

impl PgStore {
    /// A store on `db` whose scopes expire `ttl` after their last write (whole seconds; a
    /// sub-second remainder rounds up; zero expires entries at once). Nothing is migrated or
    /// queried here: run [`PgDatabase::migrate`] first (the runtime does at start).
    pub fn new(db: PgDatabase, ttl: Duration) -> Self {
        Self {
            db,
            ttl,
            ttl_secs: ttl_secs(ttl),
            cache: None,
        }
    }

    /// The same store with a per-replica read cache that follows `notifier` (every replica
    /// of the deployment must use the same notifier, and every replica that writes sessions
    /// must have a cache, so that its writes are announced). Session values read again are
    /// then answered from memory; a value another replica changed or removed can be served
    /// until that replica's notice arrives (milliseconds), and never for longer than
    /// [`MAX_AGE_SECS`](super::MAX_AGE_SECS) seconds. While the notifier's subscription is lost
    /// the cache is not used. Absences, `take` and the attempt counters are never cached.
    ///
    /// Must be called inside a tokio runtime (it starts the task that follows the notices).
    pub fn with_cache(mut self, notifier: Arc<dyn Notifier>) -> Self {
        self.cache = Some(SharedCache::follow(notifier));
        self
    }

    /// Whether reads are being answered from the cache now (for `/ready/detail` and tests).
    pub fn cache_is_live(&self) -> bool {
        self.cache.as_ref().is_some_and(|cache| cache.is_live())
    }

    /// Run a session write; with a cache, run it to the end in its own task, then forget the
    /// written scope (`None`: many scopes) and announce it (see `SharedCache::written`), so
    /// that a caller who stops waiting (a request timeout) cannot leave a committed write
    /// unannounced.
    async fn write<T, F, Fut>(&self, scope: Option<&str>, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(PgStore) -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let Some(cache) = self.cache.clone() else {
            return op(self.clone()).await;
        };
        let digest = scope.map(|scope| scope_digest(scope.as_bytes()));
        let write = op(self.clone());
        tokio::spawn(async move {
            let outcome = write.await;
            // Forgotten here and announced whatever the outcome: a write that failed may still
            // have committed.
            cache.written(digest).await;
            outcome
        })
        .await
        .map_err(StoreError::unavailable)?
    }

    /// The time-to-live this store applies on every write.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The database this store uses.
    pub fn database(&self) -> &PgDatabase {
        &self.db
    }

    /// Begin a transaction on the pool.
    pub(super) async fn begin(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.db.pool().begin().await
    }

    /// One try of `set`: queue behind the scope's other writers, upsert, renew the live ones.
    async fn set_once(
        &self,
        scope: &[u8],
        key: &[u8],
        text: &str,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        let expires_at = now.saturating_add(self.ttl_secs);
        let mut tx = self.begin().await?;
        // Writers of one scope take turns on a transaction-scoped advisory lock named after
        // the schema and the scope, before touching any row: each renews rows the others
        // write, and without the queue their row locks could be taken in crossing orders.
        sqlx::query(
            "SELECT pg_advisory_xact_lock(hashtext(current_schema()), hashtext(encode($1, 'hex')))",
        )
        .bind(scope)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO session_entries (scope, key, value, expires_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (scope, key) DO UPDATE
             SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at",
        )
        .bind(scope)
        .bind(key)
        .bind(text)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE session_entries SET expires_at = $1
             WHERE scope = $2 AND expires_at > $3 AND expires_at <> $1",
        )
        .bind(expires_at)
        .bind(scope)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// One try of `clear_prefix`: delete every row whose scope starts with `prefix`.
    async fn clear_prefix_once(&self, prefix: &[u8]) -> Result<u64, sqlx::Error> {
        // The range only lets PostgreSQL read the primary key's index; which scopes match is
        // decided by the byte comparison of the scope's first bytes with the prefix, so no
        // byte of the prefix can act as a wildcard.
        let done = sqlx::query(
            "DELETE FROM session_entries
             WHERE scope >= $1 AND ($2::bytea IS NULL OR scope < $2)
               AND substring(scope FROM 1 FOR octet_length($1)) = $1",
        )
        .bind(prefix)
        .bind(prefix_upper_bound_bytes(prefix))
        .execute(self.db.pool())
        .await?;
        Ok(done.rows_affected())
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("schema", &self.db.schema())
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// Run `op` until it succeeds, fails for good, or has hit a retryable conflict [`TRIES`]
/// times.
pub(super) async fn retry<T, F, Fut>(mut op: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    let mut tries = 1;
    loop {
        match op().await {
            Err(err) if tries < TRIES && is_retryable(&err) => tries += 1,
            outcome => return outcome.map_err(StoreError::unavailable),
        }
    }
}

/// The least byte string greater than every byte string that starts with `prefix`, or `None`
/// when there is none (an empty prefix, or one made only of `0xFF` bytes).
fn prefix_upper_bound_bytes(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut bytes = prefix.to_vec();
    while let Some(last) = bytes.pop() {
        if last < u8::MAX {
            bytes.push(last + 1);
            return Some(bytes);
        }
    }
    None
}

/// Decode a stored value that was live at the caller's `now`.
fn live_value(row: Option<(String, i64)>, now: i64) -> Result<Option<Value>, StoreError> {
    match row {
        Some((text, expires_at)) if expires_at > now => serde_json::from_str(&text)
            .map(Some)
            .map_err(|source| StoreError::Corrupt { source }),
        _ => Ok(None),
    }
}

#[async_trait::async_trait]
impl SessionStore for PgStore {
    async fn get(&self, scope: &str, key: &str, now: u64) -> Result<Option<Value>, StoreError> {
        let now = to_i64(now);
        let cached = self.cache.as_ref().map(|cache| {
            let digest = scope_digest(scope.as_bytes());
            let lookup = cache.lookup(&digest, key, now);
            (cache, digest, lookup)
        });
        let fill = match cached {
            Some((_, _, Ok(value))) => return Ok(Some(value)),
            Some((cache, digest, Err(Some(generation)))) => Some((cache, digest, generation)),
            Some((_, _, Err(None))) | None => None,
        };
        let row: Option<(String, i64)> = sqlx::query_as(
            "SELECT value, expires_at FROM session_entries WHERE scope = $1 AND key = $2",
        )
        .bind(scope.as_bytes())
        .bind(key.as_bytes())
        .fetch_optional(self.db.pool())
        .await
        .map_err(StoreError::unavailable)?;
        let expires_at = row.as_ref().map(|(_, expires_at)| *expires_at);
        let value = live_value(row, now)?;
        if let (Some((cache, digest, generation)), Some(value), Some(expires_at)) =
            (fill, &value, expires_at)
        {
            cache.fill(generation, &digest, key, value.clone(), expires_at, now);
        }
        Ok(value)
    }

    async fn set(&self, scope: &str, key: &str, value: &Value, now: u64) -> Result<(), StoreError> {
        let text = serde_json::to_string(value).map_err(|source| StoreError::Encode { source })?;
        let now = to_i64(now);
        let (scope_bytes, key) = (scope.as_bytes().to_vec(), key.as_bytes().to_vec());
        self.write(Some(scope), move |store| async move {
            retry(|| store.set_once(&scope_bytes, &key, &text, now)).await
        })
        .await
    }

    async fn remove(&self, scope: &str, key: &str) -> Result<(), StoreError> {
        let (scope_bytes, key) = (scope.as_bytes().to_vec(), key.as_bytes().to_vec());
        self.write(Some(scope), move |store| async move {
            sqlx::query("DELETE FROM session_entries WHERE scope = $1 AND key = $2")
                .bind(scope_bytes)
                .bind(key)
                .execute(store.db.pool())
                .await
                .map_err(StoreError::unavailable)?;
            Ok(())
        })
        .await
    }

    async fn take(&self, scope: &str, key: &str, now: u64) -> Result<Option<Value>, StoreError> {
        let (scope_bytes, key) = (scope.as_bytes().to_vec(), key.as_bytes().to_vec());
        let row = self
            .write(Some(scope), move |store| async move {
                // One statement: PostgreSQL lets only one DELETE remove the row; a concurrent
                // one waits for it and then finds nothing to return.
                sqlx::query_as::<_, (String, i64)>(
                    "DELETE FROM session_entries WHERE scope = $1 AND key = $2
                     RETURNING value, expires_at",
                )
                .bind(scope_bytes)
                .bind(key)
                .fetch_optional(store.db.pool())
                .await
                .map_err(StoreError::unavailable)
            })
            .await?;
        live_value(row, to_i64(now))
    }

    async fn clear(&self, scope: &str) -> Result<(), StoreError> {
        let scope_bytes = scope.as_bytes().to_vec();
        self.write(Some(scope), move |store| async move {
            retry(|| {
                sqlx::query("DELETE FROM session_entries WHERE scope = $1")
                    .bind(scope_bytes.as_slice())
                    .execute(store.db.pool())
            })
            .await?;
            Ok(())
        })
        .await
    }

    async fn clear_prefix(&self, prefix: &str) -> Result<u64, StoreError> {
        let prefix = prefix.as_bytes().to_vec();
        self.write(None, move |store| async move {
            retry(|| store.clear_prefix_once(&prefix)).await
        })
        .await
    }

    async fn purge_expired(&self, now: u64) -> Result<u64, StoreError> {
        let now = to_i64(now);
        let done = retry(|| {
            sqlx::query("DELETE FROM session_entries WHERE expires_at <= $1")
                .bind(now)
                .execute(self.db.pool())
        })
        .await?;
        Ok(done.rows_affected())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let one: i32 = sqlx::query_scalar("SELECT 1")
            .fetch_one(self.db.pool())
            .await
            .map_err(StoreError::unavailable)?;
        if one == 1 {
            Ok(())
        } else {
            Err(StoreError::unavailable(std::io::Error::other(
                "health check returned an unexpected value",
            )))
        }
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }
}
