//! The embedded SQLite session backend.
//!
//! This module owns [`SqliteStore`]: opening (or creating) the database file with safe defaults
//! (WAL journal, `synchronous=NORMAL`, a busy timeout), creating its tables, and running the
//! session and attempt-counter queries through sqlx with bound parameters only. Each attempt
//! transition is one `BEGIN IMMEDIATE` transaction that reads the row, applies the pure step of
//! `attempts` (the same code the memory backend runs) and writes the result, so SQLite
//! serializes it against every other connection and process using the file. Session reads go through an
//! in-process cache ([`crate::cache`]) that every write of this store invalidates, so one
//! process must own a database's sessions (attempt counters are never cached). Every connection
//! runs with `secure_delete=ON`, and `clear_prefix` (a data subject's erasure) also empties the
//! write-ahead log, so cleared values leave no copy in the files. It must never
//! build SQL from caller data, never put SQL text or paths into an error's `Display`, and must
//! behave exactly like the memory backend.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::attempts::{
    reserve_step, settle_step, view, AttemptLimits, AttemptStatus, AttemptStore, Reservation, Row,
    Write, MAX_INSTANT,
};
use crate::cache::{Lookup, SessionCache};
use crate::session::{to_i64, ttl_secs, SessionStore, StoreError};

/// File name of the database inside the directory given to [`SqliteStore::open_in_dir`].
const DB_FILE_NAME: &str = "voxguard.db";

/// How long a connection waits for another writer's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an operation waits for a free pooled connection before giving up.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections in the pool of a file-backed database (WAL: many readers, one writer).
const MAX_FILE_CONNECTIONS: u32 = 8;

/// Schema, applied on every open; each statement is idempotent.
const SCHEMA: [&str; 3] = [
    "CREATE TABLE IF NOT EXISTS session_entries (
        scope      TEXT    NOT NULL,
        key        TEXT    NOT NULL,
        value      TEXT    NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (scope, key)
    ) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS session_entries_expires_at ON session_entries (expires_at)",
    "CREATE TABLE IF NOT EXISTS verification_attempts (
        subject         TEXT    PRIMARY KEY,
        failures        INTEGER NOT NULL,
        locked_until    INTEGER,
        lockouts        INTEGER NOT NULL,
        window_failures INTEGER NOT NULL,
        window_until    INTEGER NOT NULL
    )",
];

/// Whether an attempt table from before windows and escalation exists (it also keyed rows by
/// subjects in clear). Such a table is dropped on open: its counters are lost once.
const OLD_ATTEMPTS_SQL: &str = "SELECT COUNT(*) FROM sqlite_master
    WHERE type = 'table' AND name = 'verification_attempts'
      AND NOT EXISTS (SELECT 1 FROM pragma_table_info('verification_attempts')
                      WHERE name = 'window_until')";

/// One stored attempt row as SQLite (and PostgreSQL) returns it.
pub(crate) type AttemptRow = (i64, Option<i64>, i64, i64, i64);

const SELECT_ATTEMPT_SQL: &str = "SELECT failures, locked_until, lockouts, window_failures,
    window_until FROM verification_attempts WHERE subject = ?";

const PUT_ATTEMPT_SQL: &str = "INSERT INTO verification_attempts
    (subject, failures, locked_until, lockouts, window_failures, window_until)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6)
    ON CONFLICT (subject) DO UPDATE SET failures = ?2, locked_until = ?3, lockouts = ?4,
        window_failures = ?5, window_until = ?6";

/// `attempts::purgeable` in SQL: no active lockout and the window has ended.
const PURGE_ATTEMPTS_SQL: &str = "DELETE FROM verification_attempts
    WHERE (locked_until IS NULL OR locked_until <= ?1) AND window_until <= ?1";

/// Decode a stored row. Out-of-range values (never written by this crate) decode
/// pessimistically: counts as "limit used up", a lockout deadline as "in the past" and a window
/// end as "never".
pub(crate) fn from_sql(
    (failures, locked_until, lockouts, window_failures, window_until): AttemptRow,
) -> Row {
    let count = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
    Row {
        failures: count(failures),
        locked_until: locked_until.map(|until| u64::try_from(until).unwrap_or(0)),
        lockouts: count(lockouts),
        window_failures: count(window_failures),
        window_until: u64::try_from(window_until).unwrap_or(MAX_INSTANT),
    }
}

/// A pool on the database file at `path`, created if missing: WAL journal, `synchronous`,
/// `secure_delete=ON` (deleted rows — expired sessions, purged counters, deleted records — are
/// overwritten, not left readable in free pages), a busy timeout, and no ping before each
/// checkout (a local file has no network link to go stale; the ping doubled the round trips
/// to the connection's worker thread per query). Shared by the session and records stores.
pub(crate) async fn open_file_pool(
    path: &Path,
    synchronous: SqliteSynchronous,
) -> Result<SqlitePool, StoreError> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(synchronous)
        .pragma("secure_delete", "ON")
        .busy_timeout(BUSY_TIMEOUT);
    SqlitePoolOptions::new()
        .max_connections(MAX_FILE_CONNECTIONS)
        .test_before_acquire(false)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(StoreError::unavailable)
}

/// A pool on a private in-memory database: one connection that is never recycled (closing
/// it would drop the database), `secure_delete=ON` like the file pools. For tests.
pub(crate) async fn open_memory_pool() -> Result<SqlitePool, StoreError> {
    let options = SqliteConnectOptions::new()
        .in_memory(true)
        .pragma("secure_delete", "ON")
        .busy_timeout(BUSY_TIMEOUT);
    SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(StoreError::unavailable)
}

/// A [`SessionStore`] in an embedded SQLite database.
///
/// Durable across restarts and safe for concurrent use from many tasks; clones share the
/// database and the read cache. One process owns a database's sessions: repeated reads are
/// answered from an in-process cache that only this process's writes invalidate (attempt
/// counters are never cached and stay safe across processes). Replicas need a networked
/// backend.
#[derive(Clone)]
pub struct SqliteStore {
    pub(crate) pool: SqlitePool,
    ttl: Duration,
    ttl_secs: i64,
    cache: Arc<SessionCache>,
}

impl SqliteStore {
    /// Open the database file at `path`, creating it if missing, with a WAL journal,
    /// `synchronous=NORMAL` and a busy timeout, and create the tables if missing.
    ///
    /// The parent directory must exist; see [`SqliteStore::open_in_dir`] to create it.
    /// Scopes expire `ttl` after their last write (whole seconds; a sub-second remainder rounds
    /// up; zero expires entries at once).
    pub async fn open(path: impl AsRef<Path>, ttl: Duration) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let pool = open_file_pool(path, SqliteSynchronous::Normal).await?;
        let store = Self::with_pool(pool, ttl).await?;
        restrict_permissions(path).await?;
        Ok(store)
    }

    /// Create `dir` if missing (mode `0700` on unix; an existing directory is left as it is)
    /// and open `dir/voxguard.db` as [`SqliteStore::open`] does.
    pub async fn open_in_dir(dir: impl AsRef<Path>, ttl: Duration) -> Result<Self, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        let path = dir.join(DB_FILE_NAME);
        tokio::task::spawn_blocking(move || create_private_dir(&dir))
            .await
            .map_err(|join| StoreError::Io {
                source: std::io::Error::other(join),
            })?
            .map_err(|source| StoreError::Io { source })?;
        Self::open(path, ttl).await
    }

    /// An in-memory SQLite database behind a single-connection pool, for tests.
    ///
    /// The data lives as long as the store and is not shared with any other store.
    pub async fn open_in_memory(ttl: Duration) -> Result<Self, StoreError> {
        Self::with_pool(open_memory_pool().await?, ttl).await
    }

    /// Close every pooled connection, waiting for running operations to finish. Operations
    /// after `close` fail with [`StoreError::Unavailable`].
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The time-to-live this store applies on every write.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    async fn with_pool(pool: SqlitePool, ttl: Duration) -> Result<Self, StoreError> {
        let old: i64 = sqlx::query_scalar(OLD_ATTEMPTS_SQL)
            .fetch_one(&pool)
            .await
            .map_err(StoreError::unavailable)?;
        if old > 0 {
            sqlx::query("DROP TABLE verification_attempts")
                .execute(&pool)
                .await
                .map_err(StoreError::unavailable)?;
        }
        for statement in SCHEMA {
            sqlx::query(statement)
                .execute(&pool)
                .await
                .map_err(StoreError::unavailable)?;
        }
        Ok(Self {
            pool,
            ttl,
            ttl_secs: ttl_secs(ttl),
            cache: Arc::default(),
        })
    }
}

/// Create `dir` and any missing parents; on unix new directories get mode `0700`.
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Run a session write to the end in its own task, then drop the written scope (`None`:
    /// everything) from the read cache. The caller may stop waiting (a request timeout), but
    /// the write cannot be cut short: sqlx's connection thread would finish the statement
    /// anyway, and forgetting the scope before that could let a read cache the old value.
    async fn write<T: Send + 'static>(
        &self,
        scope: Option<String>,
        write: impl std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        let cache = self.cache.clone();
        tokio::spawn(async move {
            let outcome = write.await;
            match scope {
                Some(scope) => cache.invalidate(&scope),
                None => cache.invalidate_all(),
            }
            outcome
        })
        .await
        .map_err(StoreError::unavailable)?
    }
}

impl SqliteStore {
    async fn set_now(
        &self,
        scope: &str,
        key: &str,
        value: &Value,
        now: i64,
    ) -> Result<(), StoreError> {
        let text = serde_json::to_string(value).map_err(|source| StoreError::Encode { source })?;
        let expires_at = now.saturating_add(self.ttl_secs);
        let mut tx = self.pool.begin().await.map_err(StoreError::unavailable)?;
        // Writes first, so the transaction takes the write lock up front (no upgrade deadlock).
        sqlx::query(
            "INSERT INTO session_entries (scope, key, value, expires_at) VALUES (?, ?, ?, ?)
             ON CONFLICT(scope, key) DO UPDATE
             SET value = excluded.value, expires_at = excluded.expires_at",
        )
        .bind(scope)
        .bind(key)
        .bind(&text)
        .bind(expires_at)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::unavailable)?;
        sqlx::query("UPDATE session_entries SET expires_at = ? WHERE scope = ? AND expires_at > ?")
            .bind(expires_at)
            .bind(scope)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::unavailable)?;
        tx.commit().await.map_err(StoreError::unavailable)
    }

    async fn remove_now(&self, scope: &str, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM session_entries WHERE scope = ? AND key = ?")
            .bind(scope)
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(StoreError::unavailable)?;
        Ok(())
    }

    async fn take_now(
        &self,
        scope: &str,
        key: &str,
        now: i64,
    ) -> Result<Option<Value>, StoreError> {
        // One statement: SQLite serializes writers, so only one DELETE can return the row.
        let row: Option<(String, i64)> = sqlx::query_as(
            "DELETE FROM session_entries WHERE scope = ? AND key = ? RETURNING value, expires_at",
        )
        .bind(scope)
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::unavailable)?;
        match row {
            Some((text, expires_at)) if expires_at > now => serde_json::from_str(&text)
                .map(Some)
                .map_err(|source| StoreError::Corrupt { source }),
            _ => Ok(None),
        }
    }

    async fn clear_now(&self, scope: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM session_entries WHERE scope = ?")
            .bind(scope)
            .execute(&self.pool)
            .await
            .map_err(StoreError::unavailable)?;
        Ok(())
    }

    async fn clear_prefix_now(&self, prefix: &str) -> Result<u64, StoreError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(StoreError::unavailable)?;
        // The bounds only narrow the index range to read; which scopes match is decided below
        // by `starts_with`, so no character of the prefix can act as a wildcard.
        let candidates: Vec<String> = match prefix_upper_bound(prefix) {
            Some(upper) => {
                sqlx::query_scalar(
                    "SELECT DISTINCT scope FROM session_entries WHERE scope >= ? AND scope < ?",
                )
                .bind(prefix)
                .bind(upper)
                .fetch_all(&mut *tx)
                .await
            }
            None => {
                sqlx::query_scalar("SELECT DISTINCT scope FROM session_entries WHERE scope >= ?")
                    .bind(prefix)
                    .fetch_all(&mut *tx)
                    .await
            }
        }
        .map_err(StoreError::unavailable)?;
        let mut cleared: u64 = 0;
        for scope in candidates.iter().filter(|scope| scope.starts_with(prefix)) {
            let done = sqlx::query("DELETE FROM session_entries WHERE scope = ?")
                .bind(scope)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::unavailable)?;
            cleared = cleared.saturating_add(done.rows_affected());
        }
        tx.commit().await.map_err(StoreError::unavailable)?;
        if scrub_wal(&self.pool).await? {
            Ok(cleared)
        } else {
            Err(StoreError::ScrubIncomplete)
        }
    }

    async fn purge_expired_now(&self, now: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM session_entries WHERE expires_at <= ?")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(StoreError::unavailable)?;
        Ok(done.rows_affected())
    }
}

#[async_trait::async_trait]
impl SessionStore for SqliteStore {
    async fn get(&self, scope: &str, key: &str, now: u64) -> Result<Option<Value>, StoreError> {
        let now = to_i64(now);
        let generation = match self.cache.lookup(scope, key, now) {
            Lookup::Hit(value) => return Ok(value),
            Lookup::Miss(generation) => generation,
        };
        let row: Option<(String, i64)> = sqlx::query_as(
            "SELECT value, expires_at FROM session_entries WHERE scope = ? AND key = ?",
        )
        .bind(scope)
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::unavailable)?;
        let Some((text, expires_at)) = row else {
            self.cache.fill(generation, scope, key, None, i64::MAX);
            return Ok(None);
        };
        if expires_at <= now {
            // Expired at this `now`, yet live for an earlier `now` another caller may still
            // pass: the absence is not cached (the purge deletes the row soon).
            return Ok(None);
        }
        let value = serde_json::from_str::<Value>(&text)
            .map_err(|source| StoreError::Corrupt { source })?;
        self.cache
            .fill(generation, scope, key, Some(value.clone()), expires_at);
        Ok(Some(value))
    }

    async fn set(&self, scope: &str, key: &str, value: &Value, now: u64) -> Result<(), StoreError> {
        let now = to_i64(now);
        let (store, scope, key, value) = (
            self.clone(),
            scope.to_owned(),
            key.to_owned(),
            value.clone(),
        );
        self.write(Some(scope.clone()), async move {
            store.set_now(&scope, &key, &value, now).await
        })
        .await
    }

    async fn remove(&self, scope: &str, key: &str) -> Result<(), StoreError> {
        let (store, scope, key) = (self.clone(), scope.to_owned(), key.to_owned());
        self.write(Some(scope.clone()), async move {
            store.remove_now(&scope, &key).await
        })
        .await
    }

    async fn take(&self, scope: &str, key: &str, now: u64) -> Result<Option<Value>, StoreError> {
        let now = to_i64(now);
        let (store, scope, key) = (self.clone(), scope.to_owned(), key.to_owned());
        self.write(Some(scope.clone()), async move {
            store.take_now(&scope, &key, now).await
        })
        .await
    }

    async fn clear(&self, scope: &str) -> Result<(), StoreError> {
        let (store, scope) = (self.clone(), scope.to_owned());
        self.write(
            Some(scope.clone()),
            async move { store.clear_now(&scope).await },
        )
        .await
    }

    async fn clear_prefix(&self, prefix: &str) -> Result<u64, StoreError> {
        let (store, prefix) = (self.clone(), prefix.to_owned());
        // The cleared scopes are not known up front: forget every cached scope afterwards.
        self.write(None, async move { store.clear_prefix_now(&prefix).await })
            .await
    }

    async fn purge_expired(&self, now: u64) -> Result<u64, StoreError> {
        let (store, now) = (self.clone(), to_i64(now));
        self.write(None, async move { store.purge_expired_now(now).await })
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let one: i64 = sqlx::query_scalar("SELECT 1")
            .fetch_one(&self.pool)
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
        "sqlite"
    }
}

impl SqliteStore {
    /// Apply one attempt transition to `subject` in a write transaction taken up front
    /// (`BEGIN IMMEDIATE`), so no other connection or process can interleave between the read
    /// and the write. Dropped before the commit, the transaction rolls back.
    async fn transition<T>(
        &self,
        subject: &str,
        step: impl FnOnce(Option<Row>) -> (Write, T),
    ) -> Result<T, StoreError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(StoreError::unavailable)?;
        let row: Option<AttemptRow> = sqlx::query_as(SELECT_ATTEMPT_SQL)
            .bind(subject)
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::unavailable)?;
        let (write, answer) = step(row.map(from_sql));
        match write {
            Write::Keep => {}
            Write::Put(row) => {
                sqlx::query(PUT_ATTEMPT_SQL)
                    .bind(subject)
                    .bind(i64::from(row.failures))
                    .bind(row.locked_until.map(to_i64))
                    .bind(i64::from(row.lockouts))
                    .bind(i64::from(row.window_failures))
                    .bind(to_i64(row.window_until))
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::unavailable)?;
            }
            Write::Delete => {
                sqlx::query("DELETE FROM verification_attempts WHERE subject = ?")
                    .bind(subject)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::unavailable)?;
            }
        }
        tx.commit().await.map_err(StoreError::unavailable)?;
        Ok(answer)
    }
}

#[async_trait::async_trait]
impl AttemptStore for SqliteStore {
    async fn reserve(
        &self,
        subject: &str,
        limits: &AttemptLimits,
        now: u64,
    ) -> Result<Reservation, StoreError> {
        self.transition(subject, |row| reserve_step(row, limits, now))
            .await
    }

    async fn settle(
        &self,
        subject: &str,
        success: bool,
        limits: &AttemptLimits,
        now: u64,
    ) -> Result<AttemptStatus, StoreError> {
        self.transition(subject, |row| settle_step(row, success, limits, now))
            .await
    }

    async fn attempt_status(&self, subject: &str, now: u64) -> Result<AttemptStatus, StoreError> {
        let row: Option<AttemptRow> = sqlx::query_as(SELECT_ATTEMPT_SQL)
            .bind(subject)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::unavailable)?;
        Ok(view(row.map(from_sql).unwrap_or_default(), now))
    }

    async fn reset_attempts(&self, subject: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM verification_attempts WHERE subject = ?")
            .bind(subject)
            .execute(&self.pool)
            .await
            .map_err(StoreError::unavailable)?;
        Ok(())
    }

    async fn purge_attempts(&self, now: u64) -> Result<u64, StoreError> {
        let done = sqlx::query(PURGE_ATTEMPTS_SQL)
            .bind(to_i64(now))
            .execute(&self.pool)
            .await
            .map_err(StoreError::unavailable)?;
        Ok(done.rows_affected())
    }
}

/// The least string greater than every string that starts with `prefix` (in SQLite's binary
/// order, which for UTF-8 text is code-point order), or `None` when there is none (an empty
/// prefix, or one made only of `char::MAX`).
pub(crate) fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last {
            '\u{D7FF}' => Some('\u{E000}'),
            other => char::from_u32(u32::from(other).saturating_add(1)),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// How many times a deletion that must leave no copy tries to empty the write-ahead log; each
/// try waits up to the busy timeout for readers still using it.
const SCRUB_TRIES: u32 = 3;

/// Copy the write-ahead log into the database and truncate it to zero bytes, so that rows
/// deleted before (overwritten in the database by `secure_delete`) leave no copy in the log.
/// Tried up to [`SCRUB_TRIES`] times; `false` when readers kept using the log and it could
/// not be emptied. (An in-memory database has no log: always `true`.)
pub(crate) async fn scrub_wal(pool: &SqlitePool) -> Result<bool, StoreError> {
    for _ in 0..SCRUB_TRIES {
        if truncate_wal(pool).await? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// One `PRAGMA wal_checkpoint(TRUNCATE)`; `true` when it completed.
pub(crate) async fn truncate_wal(pool: &SqlitePool) -> Result<bool, StoreError> {
    let (busy, _frames, _copied): (i64, i64, i64) =
        sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(pool)
            .await
            .map_err(StoreError::unavailable)?;
    Ok(busy == 0)
}

/// Make the database and its WAL/shared-memory files readable by the owner only (they hold
/// session state: verification flags, customer ids). Files that do not exist yet are skipped.
pub(crate) async fn restrict_permissions(path: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut files = vec![path.to_path_buf()];
        for suffix in ["-wal", "-shm"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            files.push(name.into());
        }
        for file in files {
            match tokio::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(StoreError::Io { source }),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}
