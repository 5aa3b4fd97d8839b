//! The SQLite backend of records, wrapped keys and operators.
//!
//! This module owns [`SqliteRecordStore`]: its own database file ([`RECORDS_DB_FILE_NAME`],
//! separate from the session and audit databases), opened with a WAL journal,
//! `synchronous=FULL`, a busy timeout and `secure_delete=ON`, its tables, and every query of
//! [`RecordStore`] and [`OperatorStore`] through sqlx with bound parameters only. Operations
//! of several statements run in one `BEGIN IMMEDIATE` transaction; deletions that promise the
//! bytes are gone (a subject's erasure) also empty the write-ahead log once committed. It must
//! never build SQL from caller data (listing filters choose among constant fragments), never
//! look inside bodies or key blobs, and never put SQL, paths, subjects or bodies into an
//! error's `Display`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use sqlx::sqlite::{SqlitePool, SqliteSynchronous};
use sqlx::{QueryBuilder, Sqlite, Transaction};

use crate::operators::{Operator, OperatorChange, OperatorStore, OperatorStoreError};
use crate::records::rows::{
    meta_from_row, operator_from_row, record_from_row, tally, unsigned, MetaRow, OperatorRow,
    RecordRow, MAX_PURGE_BATCH, META_COLUMNS, OPERATOR_COLUMNS,
};
use crate::records::{
    RecordFilter, RecordMeta, RecordStore, StoredKey, StoredRecord, SubjectDeletion,
    CALL_SUBJECT_PREFIX,
};
use crate::session::to_i64;
use crate::sqlite::{
    create_private_dir, open_file_pool, open_memory_pool, restrict_permissions, scrub_wal,
    truncate_wal,
};
use crate::StoreError;

/// File name of the records database inside the directory given to
/// [`SqliteRecordStore::open_in_dir`].
pub const RECORDS_DB_FILE_NAME: &str = "records.db";

/// Schema, applied on every open; each statement is idempotent.
const SCHEMA: [&str; 7] = [
    "CREATE TABLE IF NOT EXISTS records (
        id         TEXT    PRIMARY KEY,
        agent      TEXT    NOT NULL,
        call_id    TEXT    NOT NULL,
        subject    TEXT    NOT NULL,
        kind       TEXT    NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        size       INTEGER NOT NULL,
        key_id     TEXT    NOT NULL,
        body       BLOB    NOT NULL
    ) STRICT",
    "CREATE INDEX IF NOT EXISTS records_subject ON records (subject)",
    "CREATE INDEX IF NOT EXISTS records_call_id ON records (call_id)",
    "CREATE INDEX IF NOT EXISTS records_expires_at ON records (expires_at)",
    "CREATE INDEX IF NOT EXISTS records_created ON records (created_at, id)",
    "CREATE TABLE IF NOT EXISTS subject_keys (
        subject TEXT PRIMARY KEY,
        kek_id  TEXT NOT NULL,
        blob    BLOB NOT NULL
    ) STRICT",
    "CREATE TABLE IF NOT EXISTS operators (
        name          TEXT    PRIMARY KEY,
        role          TEXT    NOT NULL,
        created_at    INTEGER NOT NULL,
        password_hash TEXT,
        token_hash    TEXT    UNIQUE
    ) STRICT",
];

/// `values` as a JSON array of strings, for `json_each(?)`: a set bound as one parameter.
fn json_list<'a>(values: impl IntoIterator<Item = &'a String>) -> Result<String, StoreError> {
    let values: Vec<&String> = values.into_iter().collect();
    serde_json::to_string(&values).map_err(|source| StoreError::Encode { source })
}

/// Conversation records, subjects' wrapped keys and operators in an embedded SQLite database.
///
/// Clones share the connection pool. Every connection runs with `secure_delete=ON`, so deleted
/// rows are overwritten in the database file, and `synchronous=FULL`, so an acknowledged
/// record or deletion survives a power loss (records are written once per call, not per
/// request, so the extra sync costs little; a deletion that came back after a crash would
/// contradict the audit trail that reported it). Deletions empty the write-ahead log once
/// committed: [`RecordStore::delete_subject`] insists (or fails with
/// [`StoreError::ScrubIncomplete`]), `delete_record` and the purge try once.
#[derive(Clone)]
pub struct SqliteRecordStore {
    pub(crate) pool: SqlitePool,
    /// Every write of this process takes this first-come-first-served lock, so writers queue
    /// in order instead of racing for SQLite's write lock in its sleeping retry loop: a purge
    /// lets the call path's writes in between its batches (see BENCHMARKS.md, "Records").
    /// Other processes on the file still meet SQLite's own lock and busy timeout.
    writes: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for SqliteRecordStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteRecordStore").finish_non_exhaustive()
    }
}

impl SqliteRecordStore {
    /// Open the database file at `path`, creating it if missing (mode `0600` on unix), with a
    /// WAL journal, `synchronous=FULL`, `secure_delete=ON` and a busy timeout, and create the
    /// tables if missing.
    ///
    /// The parent directory must exist; see [`SqliteRecordStore::open_in_dir`] to create it.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when the database cannot be opened or set up,
    /// [`StoreError::Io`] when its permissions cannot be restricted.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        // FULL: a deletion that came back after a power loss would contradict the trail.
        let pool = open_file_pool(path, SqliteSynchronous::Full).await?;
        let store = Self::with_pool(pool).await?;
        restrict_permissions(path).await?;
        Ok(store)
    }

    /// Create `dir` if missing (mode `0700` on unix; an existing directory is left as it is)
    /// and open `dir/records.db` as [`SqliteRecordStore::open`] does.
    ///
    /// # Errors
    ///
    /// [`StoreError::Io`] when the directory cannot be created, else as
    /// [`SqliteRecordStore::open`].
    pub async fn open_in_dir(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        let path = dir.join(RECORDS_DB_FILE_NAME);
        tokio::task::spawn_blocking(move || create_private_dir(&dir))
            .await
            .map_err(|join| StoreError::Io {
                source: std::io::Error::other(join),
            })?
            .map_err(|source| StoreError::Io { source })?;
        Self::open(path).await
    }

    /// The operators kept in the database file at `path`, read without changing anything:
    /// one read-only connection (`mode=ro`), no schema statement, no permission change, and
    /// nothing created (a missing file is an error). When no `-wal`/`-shm` file sits next to
    /// the database (no process has it open), it is opened `immutable` so SQLite does not
    /// create a `-shm` file either. For inspection tools (`voxguard check`); the runtime uses
    /// [`SqliteRecordStore::open`].
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when the file cannot be opened read-only or holds no
    /// operators table.
    pub async fn read_operators(path: impl AsRef<Path>) -> Result<Vec<Operator>, StoreError> {
        use sqlx::{ConnectOptions as _, Connection as _};
        let path = path.as_ref();
        let sibling = |suffix: &str| {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            std::path::PathBuf::from(name)
        };
        let idle = !sibling("-wal").exists() && !sibling("-shm").exists();
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .create_if_missing(false)
            .immutable(idle)
            .connect()
            .await
            .map_err(StoreError::unavailable)?;
        let rows: Result<Vec<OperatorRow>, _> = sqlx::query_as(&format!(
            "SELECT {OPERATOR_COLUMNS} FROM operators ORDER BY name"
        ))
        .fetch_all(&mut conn)
        .await;
        let _ = conn.close().await;
        Ok(rows
            .map_err(StoreError::unavailable)?
            .into_iter()
            .map(operator_from_row)
            .collect())
    }

    /// An in-memory database behind a single-connection pool, for tests. The data lives as
    /// long as the store and is not shared with any other store.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when SQLite cannot be set up.
    pub async fn open_in_memory() -> Result<Self, StoreError> {
        Self::with_pool(open_memory_pool().await?).await
    }

    async fn with_pool(pool: SqlitePool) -> Result<Self, StoreError> {
        for statement in SCHEMA {
            sqlx::query(statement)
                .execute(&pool)
                .await
                .map_err(StoreError::unavailable)?;
        }
        Ok(Self {
            pool,
            writes: Default::default(),
        })
    }

    /// Cheap health check, meant for a `/ready` endpoint.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when the database does not answer.
    pub async fn ping(&self) -> Result<(), StoreError> {
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

    /// Close every pooled connection, waiting for running operations to finish. Operations
    /// after `close` fail with [`StoreError::Unavailable`].
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A write transaction that holds the write lock from its first statement, so no other
    /// connection or process interleaves. Dropped before the commit, it rolls back.
    async fn immediate(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(StoreError::unavailable)
    }

    /// Remove operator `name` (`role` is `None`) or give it `role`, unless that would leave no
    /// operator with role `keep_one` (see [`OperatorStore::remove_operator`]).
    ///
    /// `BEGIN IMMEDIATE` takes the database's write lock before the first read, and every
    /// connection of every process needs that lock to write: between reading the operator's
    /// role and the other keepers and making the change, nobody else can change an operator.
    /// So two handles demoting or removing the last two admins at once are serialized here,
    /// and the second one sees the first one's change.
    async fn change_operator(
        &self,
        name: &str,
        role: Option<&str>,
        keep_one: Option<&str>,
    ) -> Result<OperatorChange, StoreError> {
        let _gate = self.writes.lock().await;
        let mut tx = self.immediate().await?;
        let current: Option<String> =
            sqlx::query_scalar("SELECT role FROM operators WHERE name = ?")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await
                .map_err(StoreError::unavailable)?;
        let Some(current) = current else {
            return Ok(OperatorChange::NotFound);
        };
        if let Some(keep) = keep_one {
            if current == keep && role != Some(keep) {
                let others: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM operators WHERE role = ? AND name <> ?",
                )
                .bind(keep)
                .bind(name)
                .fetch_one(&mut *tx)
                .await
                .map_err(StoreError::unavailable)?;
                if others == 0 {
                    return Ok(OperatorChange::LastOfRole);
                }
            }
        }
        let change = match role {
            Some(role) => sqlx::query("UPDATE operators SET role = ? WHERE name = ?").bind(role),
            None => sqlx::query("DELETE FROM operators WHERE name = ?"),
        };
        change
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::unavailable)?;
        tx.commit().await.map_err(StoreError::unavailable)?;
        Ok(OperatorChange::Done)
    }

    /// Delete the subject in one transaction (see [`RecordStore::delete_subject`]).
    async fn delete_subject_now(&self, subject: &str) -> Result<SubjectDeletion, StoreError> {
        let _gate = self.writes.lock().await;
        let mut tx = self.immediate().await?;
        let call_ids: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT call_id FROM records WHERE subject = ? ORDER BY call_id",
        )
        .bind(subject)
        .fetch_all(&mut *tx)
        .await
        .map_err(StoreError::unavailable)?;
        let calls = json_list(&call_ids)?;
        let deleted: Vec<(String, String)> = sqlx::query_as(
            "DELETE FROM records
             WHERE subject = ?1 OR call_id IN (SELECT value FROM json_each(?2))
             RETURNING kind, subject",
        )
        .bind(subject)
        .bind(&calls)
        .fetch_all(&mut *tx)
        .await
        .map_err(StoreError::unavailable)?;
        let mut deletion = SubjectDeletion::default();
        // The calls' call-subjects: named after the call, or found among the deleted rows.
        let mut call_subjects: BTreeSet<String> = call_ids
            .iter()
            .map(|call_id| format!("{CALL_SUBJECT_PREFIX}{call_id}"))
            .collect();
        for (kind, owner) in deleted {
            tally(&mut deletion.records, kind);
            if owner.starts_with(CALL_SUBJECT_PREFIX) {
                call_subjects.insert(owner);
            }
        }
        call_subjects.remove(subject);
        let own = sqlx::query("DELETE FROM subject_keys WHERE subject = ?")
            .bind(subject)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::unavailable)?;
        let orphans = delete_orphan_keys(&mut tx, &call_subjects).await?;
        tx.commit().await.map_err(StoreError::unavailable)?;
        deletion.keys = own.rows_affected().saturating_add(orphans);
        deletion.call_ids = call_ids;
        Ok(deletion)
    }

    /// Purge expired records batch by batch (see [`RecordStore::purge_expired_records`]);
    /// also returns how many transactions it committed.
    pub(crate) async fn purge_now(
        &self,
        now: i64,
        batch: u32,
    ) -> Result<(BTreeMap<String, u64>, u32), StoreError> {
        let batch = batch.clamp(1, MAX_PURGE_BATCH);
        let mut counts = BTreeMap::new();
        let mut transactions: u32 = 0;
        loop {
            let gate = self.writes.lock().await;
            let mut tx = self.immediate().await?;
            let deleted: Vec<(String, String)> = sqlx::query_as(
                "DELETE FROM records WHERE id IN (
                     SELECT id FROM records WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2)
                 RETURNING kind, subject",
            )
            .bind(now)
            .bind(i64::from(batch))
            .fetch_all(&mut *tx)
            .await
            .map_err(StoreError::unavailable)?;
            let full = deleted.len() >= usize::try_from(batch).unwrap_or(usize::MAX);
            let mut call_subjects = BTreeSet::new();
            for (kind, subject) in deleted {
                tally(&mut counts, kind);
                if subject.starts_with(CALL_SUBJECT_PREFIX) {
                    call_subjects.insert(subject);
                }
            }
            delete_orphan_keys(&mut tx, &call_subjects).await?;
            tx.commit().await.map_err(StoreError::unavailable)?;
            drop(gate);
            transactions = transactions.saturating_add(1);
            if !full {
                break;
            }
        }
        if !counts.is_empty() {
            // Best effort: expired rows are zeroed in the database already; the log's copies
            // go now if no reader holds it, else at a later checkpoint.
            truncate_wal(&self.pool).await?;
        }
        Ok((counts, transactions))
    }
}

/// Delete the keys of those `subjects` that have no record left; how many were deleted.
async fn delete_orphan_keys(
    tx: &mut Transaction<'static, Sqlite>,
    subjects: &BTreeSet<String>,
) -> Result<u64, StoreError> {
    if subjects.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query(
        "DELETE FROM subject_keys
         WHERE subject IN (SELECT value FROM json_each(?1))
           AND NOT EXISTS (SELECT 1 FROM records WHERE records.subject = subject_keys.subject)",
    )
    .bind(json_list(subjects)?)
    .execute(&mut **tx)
    .await
    .map_err(StoreError::unavailable)?;
    Ok(done.rows_affected())
}

#[async_trait::async_trait]
impl RecordStore for SqliteRecordStore {
    async fn put_record(&self, record: &StoredRecord) -> Result<(), StoreError> {
        let _gate = self.writes.lock().await;
        let meta = &record.meta;
        let done = sqlx::query(
            "INSERT INTO records
                 (id, agent, call_id, subject, kind, created_at, expires_at, size, key_id, body)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&meta.id)
        .bind(&meta.agent)
        .bind(&meta.call_id)
        .bind(&meta.subject)
        .bind(&meta.kind)
        .bind(to_i64(meta.created_at))
        .bind(to_i64(meta.expires_at))
        .bind(to_i64(meta.size))
        .bind(&meta.key_id)
        .bind(&record.body)
        .execute(&self.pool)
        .await
        .map_err(StoreError::unavailable)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::DuplicateRecord);
        }
        Ok(())
    }

    async fn get_record(&self, id: &str) -> Result<Option<StoredRecord>, StoreError> {
        let row: Option<RecordRow> = sqlx::query_as(&format!(
            "SELECT {META_COLUMNS}, body FROM records WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::unavailable)?;
        Ok(row.map(record_from_row))
    }

    async fn list_records(&self, filter: &RecordFilter) -> Result<Vec<RecordMeta>, StoreError> {
        let cursor = match &filter.after {
            None => None,
            Some(after) => {
                let created_at: Option<i64> =
                    sqlx::query_scalar("SELECT created_at FROM records WHERE id = ?")
                        .bind(after)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(StoreError::unavailable)?;
                Some((created_at.ok_or(StoreError::UnknownCursor)?, after))
            }
        };
        // Only constant fragments are pushed; every value is bound.
        let mut query: QueryBuilder<'_, Sqlite> = QueryBuilder::new("SELECT ");
        query.push(META_COLUMNS).push(" FROM records WHERE 1 = 1");
        if let Some(subject) = &filter.subject {
            query.push(" AND subject = ").push_bind(subject);
        }
        if let Some(call_id) = &filter.call_id {
            query.push(" AND call_id = ").push_bind(call_id);
        }
        if let Some(kind) = &filter.kind {
            query.push(" AND kind = ").push_bind(kind);
        }
        if let Some(from) = filter.from {
            query.push(" AND created_at >= ").push_bind(to_i64(from));
        }
        if let Some(to) = filter.to {
            query.push(" AND created_at <= ").push_bind(to_i64(to));
        }
        if let Some(live_at) = filter.live_at {
            query.push(" AND expires_at > ").push_bind(to_i64(live_at));
        }
        if let Some((created_at, id)) = cursor {
            query
                .push(" AND (created_at, id) > (")
                .push_bind(created_at)
                .push(", ")
                .push_bind(id)
                .push(")");
        }
        query
            .push(" ORDER BY created_at, id LIMIT ")
            .push_bind(i64::from(filter.page_size()));
        let rows: Vec<MetaRow> = query
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::unavailable)?;
        Ok(rows.into_iter().map(meta_from_row).collect())
    }

    async fn delete_record(&self, id: &str) -> Result<Option<RecordMeta>, StoreError> {
        let _gate = self.writes.lock().await;
        let row: Option<MetaRow> = sqlx::query_as(&format!(
            "DELETE FROM records WHERE id = ? RETURNING {META_COLUMNS}"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::unavailable)?;
        if row.is_some() {
            // Best effort: the row is zeroed in the database already; the log's copies go
            // now if no reader holds it, else at a later checkpoint.
            truncate_wal(&self.pool).await?;
        }
        Ok(row.map(meta_from_row))
    }

    async fn subject_key(&self, subject: &str) -> Result<Option<StoredKey>, StoreError> {
        let row: Option<(String, Vec<u8>)> =
            sqlx::query_as("SELECT kek_id, blob FROM subject_keys WHERE subject = ?")
                .bind(subject)
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::unavailable)?;
        Ok(row.map(|(kek_id, blob)| StoredKey {
            subject: subject.to_owned(),
            kek_id,
            blob,
        }))
    }

    async fn put_subject_key_if_absent(&self, key: &StoredKey) -> Result<StoredKey, StoreError> {
        let _gate = self.writes.lock().await;
        let mut tx = self.immediate().await?;
        sqlx::query(
            "INSERT INTO subject_keys (subject, kek_id, blob) VALUES (?, ?, ?)
             ON CONFLICT (subject) DO NOTHING",
        )
        .bind(&key.subject)
        .bind(&key.kek_id)
        .bind(&key.blob)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::unavailable)?;
        let (kek_id, blob): (String, Vec<u8>) =
            sqlx::query_as("SELECT kek_id, blob FROM subject_keys WHERE subject = ?")
                .bind(&key.subject)
                .fetch_one(&mut *tx)
                .await
                .map_err(StoreError::unavailable)?;
        tx.commit().await.map_err(StoreError::unavailable)?;
        Ok(StoredKey {
            subject: key.subject.clone(),
            kek_id,
            blob,
        })
    }

    async fn keys_not_under(
        &self,
        current_kek_id: &str,
        limit: u32,
    ) -> Result<Vec<StoredKey>, StoreError> {
        let rows: Vec<(String, String, Vec<u8>)> = sqlx::query_as(
            "SELECT subject, kek_id, blob FROM subject_keys WHERE kek_id <> ?
             ORDER BY subject LIMIT ?",
        )
        .bind(current_kek_id)
        .bind(i64::from(limit.max(1)))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::unavailable)?;
        Ok(rows
            .into_iter()
            .map(|(subject, kek_id, blob)| StoredKey {
                subject,
                kek_id,
                blob,
            })
            .collect())
    }

    async fn rewrap_subject_key(
        &self,
        old_kek_id: &str,
        key: &StoredKey,
    ) -> Result<bool, StoreError> {
        let _gate = self.writes.lock().await;
        let done = sqlx::query(
            "UPDATE subject_keys SET kek_id = ?, blob = ? WHERE subject = ? AND kek_id = ?",
        )
        .bind(&key.kek_id)
        .bind(&key.blob)
        .bind(&key.subject)
        .bind(old_kek_id)
        .execute(&self.pool)
        .await
        .map_err(StoreError::unavailable)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_subject(&self, subject: &str) -> Result<SubjectDeletion, StoreError> {
        // In its own task: a caller that stops waiting cannot cut the scrub short.
        let (store, subject) = (self.clone(), subject.to_owned());
        tokio::spawn(async move {
            let deletion = store.delete_subject_now(&subject).await?;
            if scrub_wal(&store.pool).await? {
                Ok(deletion)
            } else {
                Err(StoreError::ScrubIncomplete)
            }
        })
        .await
        .map_err(StoreError::unavailable)?
    }

    async fn purge_expired_records(
        &self,
        now: u64,
        batch: u32,
    ) -> Result<BTreeMap<String, u64>, StoreError> {
        let store = self.clone();
        let (counts, _transactions) =
            tokio::spawn(async move { store.purge_now(to_i64(now), batch).await })
                .await
                .map_err(StoreError::unavailable)??;
        Ok(counts)
    }

    async fn count_expired_records(&self, now: u64) -> Result<BTreeMap<String, u64>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT kind, COUNT(*) FROM records WHERE expires_at <= ? GROUP BY kind",
        )
        .bind(to_i64(now))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::unavailable)?;
        Ok(rows
            .into_iter()
            .map(|(kind, count)| (kind, unsigned(count)))
            .collect())
    }
}

#[async_trait::async_trait]
impl OperatorStore for SqliteRecordStore {
    async fn add_operator(&self, op: &Operator) -> Result<(), OperatorStoreError> {
        let _gate = self.writes.lock().await;
        let mut tx = self.immediate().await?;
        let done = sqlx::query(
            "INSERT INTO operators (name, role, created_at, password_hash, token_hash)
             VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(&op.name)
        .bind(&op.role)
        .bind(to_i64(op.created_at))
        .bind(&op.password_hash)
        .bind(&op.token_hash)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::unavailable)?;
        if done.rows_affected() == 1 {
            tx.commit().await.map_err(StoreError::unavailable)?;
            return Ok(());
        }
        // Nothing was written: say which unique column refused it.
        let taken: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM operators WHERE name = ?")
            .bind(&op.name)
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::unavailable)?;
        if taken > 0 {
            Err(OperatorStoreError::Exists {
                name: op.name.clone(),
            })
        } else {
            Err(OperatorStoreError::TokenInUse)
        }
    }

    async fn operator(&self, name: &str) -> Result<Option<Operator>, StoreError> {
        let row: Option<OperatorRow> = sqlx::query_as(&format!(
            "SELECT {OPERATOR_COLUMNS} FROM operators WHERE name = ?"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::unavailable)?;
        Ok(row.map(operator_from_row))
    }

    async fn operator_by_token_hash(&self, hash: &str) -> Result<Option<Operator>, StoreError> {
        let row: Option<OperatorRow> = sqlx::query_as(&format!(
            "SELECT {OPERATOR_COLUMNS} FROM operators WHERE token_hash = ?"
        ))
        .bind(hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::unavailable)?;
        Ok(row.map(operator_from_row))
    }

    async fn list_operators(&self) -> Result<Vec<Operator>, StoreError> {
        let rows: Vec<OperatorRow> = sqlx::query_as(&format!(
            "SELECT {OPERATOR_COLUMNS} FROM operators ORDER BY name"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::unavailable)?;
        Ok(rows.into_iter().map(operator_from_row).collect())
    }

    async fn remove_operator(
        &self,
        name: &str,
        keep_one: Option<&str>,
    ) -> Result<OperatorChange, StoreError> {
        self.change_operator(name, None, keep_one).await
    }

    async fn set_operator_role(
        &self,
        name: &str,
        role: &str,
        keep_one: Option<&str>,
    ) -> Result<OperatorChange, StoreError> {
        self.change_operator(name, Some(role), keep_one).await
    }

    async fn count_operators_with_role(&self, role: &str) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM operators WHERE role = ?")
            .bind(role)
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::unavailable)?;
        Ok(unsigned(count))
    }

    async fn set_operator_secret(
        &self,
        name: &str,
        password: bool,
        hash: &str,
    ) -> Result<bool, OperatorStoreError> {
        let _gate = self.writes.lock().await;
        let sql = if password {
            "UPDATE operators SET password_hash = ? WHERE name = ?"
        } else {
            "UPDATE operators SET token_hash = ? WHERE name = ?"
        };
        match sqlx::query(sql)
            .bind(hash)
            .bind(name)
            .execute(&self.pool)
            .await
        {
            Ok(done) => Ok(done.rows_affected() > 0),
            Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
                Err(OperatorStoreError::TokenInUse)
            }
            Err(error) => Err(StoreError::unavailable(error).into()),
        }
    }
}
