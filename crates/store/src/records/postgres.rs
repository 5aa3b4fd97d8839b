//! The PostgreSQL backend of records, wrapped keys and operators: shared by every replica.
//!
//! This module owns [`PgRecordStore`] and every query of [`RecordStore`] and [`OperatorStore`]
//! on the tables of migration `0003_records_operators` (through sqlx with bound parameters
//! only), with exactly the semantics of [`SqliteRecordStore`](crate::SqliteRecordStore): the
//! conformance suite in `records/tests.rs` runs against both. Where SQLite serializes writers
//! with `BEGIN IMMEDIATE`, this backend makes each operation safe between replicas by itself:
//! single statements that decide and act at once (`INSERT … ON CONFLICT DO NOTHING`,
//! `DELETE … RETURNING`, compare-and-swap `UPDATE`s), purge batches that skip rows another
//! replica is already deleting, and operator removals and role changes that first lock the
//! rows of the role to keep (`SELECT … FOR UPDATE`), so the last one is kept. It must never build SQL from caller data (listing filters
//! choose among constant fragments), never look inside bodies or key blobs, and never put SQL,
//! URLs, subjects or bodies into an error's `Display`.
//!
//! # What a deletion leaves behind
//!
//! SQLite zeroes deleted rows in place and empties its write-ahead log. PostgreSQL cannot: a
//! deleted row stays in its table file as a dead tuple until `VACUUM` (autovacuum) reclaims the
//! space, and the write-ahead log, its archive, replicas and base backups keep copies for as
//! long as they are retained. None of those copies is readable, though: bodies are encrypted
//! with the subject's data key and the key is stored only wrapped. Deleting the subject's
//! wrapped key (which [`RecordStore::delete_subject`] does in the same transaction as its
//! records) is what makes the deletion final, backups included (crypto-shredding). So this
//! backend never returns [`StoreError::ScrubIncomplete`].

use std::collections::{BTreeMap, BTreeSet};

use sqlx::{PgPool, Postgres, QueryBuilder, Transaction};

use crate::operators::{Operator, OperatorChange, OperatorStore, OperatorStoreError};
use crate::postgres::PgDatabase;
use crate::records::rows::{
    meta_from_row, operator_from_row, record_from_row, tally, unsigned, MetaRow, OperatorRow,
    RecordRow, MAX_PURGE_BATCH, META_COLUMNS, OPERATOR_COLUMNS,
};
use crate::records::{
    RecordFilter, RecordMeta, RecordStore, StoredKey, StoredRecord, SubjectDeletion,
    CALL_SUBJECT_PREFIX,
};
use crate::session::to_i64;
use crate::StoreError;

/// How many times [`RecordStore::put_subject_key_if_absent`] tries again when the key it lost
/// the race to was deleted before it could read it (a subject deletion running at that very
/// moment). Each retry needs another deletion to land in the same instant.
const KEY_INSERT_ATTEMPTS: u32 = 5;

/// How many times a subject deletion or a purge batch runs when PostgreSQL keeps aborting it
/// to break deadlocks with concurrent deletions (each abort rolls the attempt back entirely).
const DEADLOCK_ATTEMPTS: u32 = 3;

/// Conversation records, subjects' wrapped keys and operators in PostgreSQL, shared by every
/// replica that connects to the same database and schema.
///
/// Clones share the pool. The tables come from the migrations: run
/// [`PgDatabase::migrate`] before use (the runtime and `voxguard migrate` do).
/// Deletions are final through crypto-shredding, not by scrubbing files (see the module
/// documentation).
#[derive(Clone)]
pub struct PgRecordStore {
    database: PgDatabase,
}

impl std::fmt::Debug for PgRecordStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgRecordStore")
            .field("schema", &self.database.schema())
            .finish_non_exhaustive()
    }
}

impl PgRecordStore {
    /// A store on `database`'s pool and schema (migrated beforehand).
    pub fn new(database: PgDatabase) -> Self {
        Self { database }
    }

    /// The database the store uses.
    pub fn database(&self) -> &PgDatabase {
        &self.database
    }

    /// Cheap health check, meant for a `/ready` endpoint.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when the database does not answer.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.database.ping().await
    }

    fn pool(&self) -> &PgPool {
        self.database.pool()
    }

    /// Remove operator `name` (`role` is `None`) or give it `role`, unless that would leave no
    /// operator with role `keep_one` (see [`OperatorStore::remove_operator`]); again if
    /// PostgreSQL broke a deadlock by aborting the attempt.
    async fn change_operator(
        &self,
        name: &str,
        role: Option<&str>,
        keep_one: Option<&str>,
    ) -> Result<OperatorChange, StoreError> {
        let mut attempt = 1;
        loop {
            match self.change_operator_once(name, role, keep_one).await {
                Err(err) if is_deadlock(&err) && attempt < DEADLOCK_ATTEMPTS => attempt += 1,
                done => return done.map_err(StoreError::unavailable),
            }
        }
    }

    /// One attempt of [`change_operator`](Self::change_operator), in one READ COMMITTED
    /// transaction.
    ///
    /// A conditional `UPDATE`/`DELETE` alone would not be safe here: under READ COMMITTED two
    /// replicas demoting admins `a1` and `a2` at once both count two admins in their snapshots,
    /// change different rows (so neither waits for the other) and leave none. Instead the
    /// transaction first locks every row that has the role to keep (`FOR UPDATE`, in name
    /// order so that two such transactions queue instead of deadlocking), then locks and reads
    /// the operator to change, and makes the change only if a locked keeper other than that
    /// operator exists. A keeper locked here cannot be removed or given another role by anyone
    /// until this transaction ends, so it still has the role afterwards: the rule holds.
    ///
    /// What the other replica does meanwhile: a transaction that waits for a row lock in the
    /// first statement sees, once it has the lock, the row as the winner committed it — a row
    /// that lost the role or was deleted is no longer returned (PostgreSQL re-checks the
    /// `WHERE` on the newest version) — so the loser finds no other keeper and changes
    /// nothing. A row that gained the role after the statement began is not locked nor
    /// counted: that can only refuse a change that would have been allowed, never allow one
    /// that leaves no keeper.
    async fn change_operator_once(
        &self,
        name: &str,
        role: Option<&str>,
        keep_one: Option<&str>,
    ) -> Result<OperatorChange, sqlx::Error> {
        // The reasoning above is READ COMMITTED's, whatever the server's default level.
        let mut tx = self
            .pool()
            .begin_with("BEGIN ISOLATION LEVEL READ COMMITTED")
            .await?;
        let keepers: Vec<String> = match keep_one {
            Some(keep) => {
                sqlx::query_scalar(
                    "SELECT name FROM operators WHERE role = $1 ORDER BY name FOR UPDATE",
                )
                .bind(keep)
                .fetch_all(&mut *tx)
                .await?
            }
            None => Vec::new(),
        };
        let current: Option<String> =
            sqlx::query_scalar("SELECT role FROM operators WHERE name = $1 FOR UPDATE")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(current) = current else {
            return Ok(OperatorChange::NotFound);
        };
        if let Some(keep) = keep_one {
            if current == keep && role != Some(keep) && !keepers.iter().any(|k| k != name) {
                return Ok(OperatorChange::LastOfRole);
            }
        }
        let change = match role {
            Some(role) => sqlx::query("UPDATE operators SET role = $2 WHERE name = $1")
                .bind(name)
                .bind(role),
            None => sqlx::query("DELETE FROM operators WHERE name = $1").bind(name),
        };
        change.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(OperatorChange::Done)
    }

    /// Delete the subject in one transaction (see [`RecordStore::delete_subject`]), again if
    /// PostgreSQL broke a deadlock with a concurrent deletion by aborting this one.
    async fn delete_subject_now(&self, subject: &str) -> Result<SubjectDeletion, StoreError> {
        let mut attempt = 1;
        loop {
            match self.delete_subject_once(subject).await {
                Err(err) if is_deadlock(&err) && attempt < DEADLOCK_ATTEMPTS => attempt += 1,
                done => return done.map_err(StoreError::unavailable),
            }
        }
    }

    async fn delete_subject_once(&self, subject: &str) -> Result<SubjectDeletion, sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        // One statement chooses and deletes the rows, so a record another replica adds to one
        // of the subject's calls meanwhile is either seen and deleted or added afterwards.
        let deleted: Vec<(String, String, String)> = sqlx::query_as(
            "DELETE FROM records
             WHERE subject = $1
                OR call_id IN (SELECT call_id FROM records WHERE subject = $1)
             RETURNING kind, subject, call_id",
        )
        .bind(subject)
        .fetch_all(&mut *tx)
        .await?;
        let mut deletion = SubjectDeletion::default();
        let mut call_ids = BTreeSet::new();
        let mut call_subjects = BTreeSet::new();
        for (kind, owner, call_id) in deleted {
            tally(&mut deletion.records, kind);
            if owner == subject {
                // The calls' call-subjects: named after the call, or found among the rows.
                call_subjects.insert(format!("{CALL_SUBJECT_PREFIX}{call_id}"));
                call_ids.insert(call_id);
            }
            if owner.starts_with(CALL_SUBJECT_PREFIX) {
                call_subjects.insert(owner);
            }
        }
        call_subjects.remove(subject);
        let own = sqlx::query("DELETE FROM subject_keys WHERE subject = $1")
            .bind(subject)
            .execute(&mut *tx)
            .await?;
        let orphans = delete_orphan_keys(&mut tx, call_subjects).await?;
        tx.commit().await?;
        deletion.keys = own.rows_affected().saturating_add(orphans);
        deletion.call_ids = call_ids.into_iter().collect();
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
        let mut attempt = 1;
        loop {
            let deleted = match self.purge_batch(now, batch).await {
                Ok(deleted) => deleted,
                // A deadlock with a subject deletion aborted the batch: nothing of it was
                // committed, so running it again is safe.
                Err(err) if is_deadlock(&err) && attempt < DEADLOCK_ATTEMPTS => {
                    attempt += 1;
                    continue;
                }
                Err(err) => return Err(StoreError::unavailable(err)),
            };
            let full = deleted.len() >= usize::try_from(batch).unwrap_or(usize::MAX);
            for kind in deleted {
                tally(&mut counts, kind);
            }
            transactions = transactions.saturating_add(1);
            if !full {
                break;
            }
        }
        Ok((counts, transactions))
    }

    /// Delete one purge batch in its own transaction and commit; the kinds of the rows.
    async fn purge_batch(&self, now: i64, batch: u32) -> Result<Vec<String>, sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        // SKIP LOCKED: replicas purging at the same time share the work instead of queueing
        // behind each other's batches.
        let deleted: Vec<(String, String)> = sqlx::query_as(
            "DELETE FROM records WHERE id IN (
                 SELECT id FROM records WHERE expires_at <= $1
                 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)
             RETURNING kind, subject",
        )
        .bind(now)
        .bind(i64::from(batch))
        .fetch_all(&mut *tx)
        .await?;
        let call_subjects: BTreeSet<String> = deleted
            .iter()
            .filter(|(_, subject)| subject.starts_with(CALL_SUBJECT_PREFIX))
            .map(|(_, subject)| subject.clone())
            .collect();
        delete_orphan_keys(&mut tx, call_subjects).await?;
        tx.commit().await?;
        Ok(deleted.into_iter().map(|(kind, _)| kind).collect())
    }
}

/// Whether PostgreSQL aborted the transaction to break a deadlock (SQLSTATE `40P01`).
fn is_deadlock(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some("40P01"))
}

/// Delete the keys of those `subjects` that have no record left; how many were deleted.
async fn delete_orphan_keys(
    tx: &mut Transaction<'static, Postgres>,
    subjects: BTreeSet<String>,
) -> Result<u64, sqlx::Error> {
    if subjects.is_empty() {
        return Ok(0);
    }
    let subjects: Vec<String> = subjects.into_iter().collect();
    let done = sqlx::query(
        "DELETE FROM subject_keys
         WHERE subject = ANY($1)
           AND NOT EXISTS (SELECT 1 FROM records WHERE records.subject = subject_keys.subject)",
    )
    .bind(&subjects)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected())
}

#[async_trait::async_trait]
impl RecordStore for PgRecordStore {
    async fn put_record(&self, record: &StoredRecord) -> Result<(), StoreError> {
        let meta = &record.meta;
        let done = sqlx::query(
            "INSERT INTO records
                 (id, agent, call_id, subject, kind, created_at, expires_at, size, key_id, body)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
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
        .execute(self.pool())
        .await
        .map_err(StoreError::unavailable)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::DuplicateRecord);
        }
        Ok(())
    }

    async fn get_record(&self, id: &str) -> Result<Option<StoredRecord>, StoreError> {
        let row: Option<RecordRow> = sqlx::query_as(&format!(
            "SELECT {META_COLUMNS}, body FROM records WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await
        .map_err(StoreError::unavailable)?;
        Ok(row.map(record_from_row))
    }

    async fn list_records(&self, filter: &RecordFilter) -> Result<Vec<RecordMeta>, StoreError> {
        let cursor = match &filter.after {
            None => None,
            Some(after) => {
                let created_at: Option<i64> =
                    sqlx::query_scalar("SELECT created_at FROM records WHERE id = $1")
                        .bind(after)
                        .fetch_optional(self.pool())
                        .await
                        .map_err(StoreError::unavailable)?;
                Some((created_at.ok_or(StoreError::UnknownCursor)?, after))
            }
        };
        // Only constant fragments are pushed; every value is bound.
        let mut query: QueryBuilder<'_, Postgres> = QueryBuilder::new("SELECT ");
        query.push(META_COLUMNS).push(" FROM records WHERE TRUE");
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
            .fetch_all(self.pool())
            .await
            .map_err(StoreError::unavailable)?;
        Ok(rows.into_iter().map(meta_from_row).collect())
    }

    async fn delete_record(&self, id: &str) -> Result<Option<RecordMeta>, StoreError> {
        let row: Option<MetaRow> = sqlx::query_as(&format!(
            "DELETE FROM records WHERE id = $1 RETURNING {META_COLUMNS}"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await
        .map_err(StoreError::unavailable)?;
        Ok(row.map(meta_from_row))
    }

    async fn subject_key(&self, subject: &str) -> Result<Option<StoredKey>, StoreError> {
        let row: Option<(String, Vec<u8>)> =
            sqlx::query_as("SELECT kek_id, blob FROM subject_keys WHERE subject = $1")
                .bind(subject)
                .fetch_optional(self.pool())
                .await
                .map_err(StoreError::unavailable)?;
        Ok(row.map(|(kek_id, blob)| StoredKey {
            subject: subject.to_owned(),
            kek_id,
            blob,
        }))
    }

    async fn put_subject_key_if_absent(&self, key: &StoredKey) -> Result<StoredKey, StoreError> {
        // Two statements, not one: the INSERT waits for a racing replica's uncommitted insert
        // of the same subject and then does nothing, and only a statement started after that
        // (a new snapshot under READ COMMITTED) sees the winner's row.
        for _ in 0..KEY_INSERT_ATTEMPTS {
            sqlx::query(
                "INSERT INTO subject_keys (subject, kek_id, blob) VALUES ($1, $2, $3)
                 ON CONFLICT (subject) DO NOTHING",
            )
            .bind(&key.subject)
            .bind(&key.kek_id)
            .bind(&key.blob)
            .execute(self.pool())
            .await
            .map_err(StoreError::unavailable)?;
            if let Some(stored) = self.subject_key(&key.subject).await? {
                return Ok(stored);
            }
            // The stored key was deleted in between: insert again.
        }
        Err(StoreError::unavailable(std::io::Error::other(
            "the subject's key kept being deleted while it was being stored",
        )))
    }

    async fn keys_not_under(
        &self,
        current_kek_id: &str,
        limit: u32,
    ) -> Result<Vec<StoredKey>, StoreError> {
        let rows: Vec<(String, String, Vec<u8>)> = sqlx::query_as(
            "SELECT subject, kek_id, blob FROM subject_keys WHERE kek_id <> $1
             ORDER BY subject LIMIT $2",
        )
        .bind(current_kek_id)
        .bind(i64::from(limit.max(1)))
        .fetch_all(self.pool())
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
        let done = sqlx::query(
            "UPDATE subject_keys SET kek_id = $1, blob = $2 WHERE subject = $3 AND kek_id = $4",
        )
        .bind(&key.kek_id)
        .bind(&key.blob)
        .bind(&key.subject)
        .bind(old_kek_id)
        .execute(self.pool())
        .await
        .map_err(StoreError::unavailable)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_subject(&self, subject: &str) -> Result<SubjectDeletion, StoreError> {
        // In its own task: a caller that stops waiting cannot roll an erasure back.
        let (store, subject) = (self.clone(), subject.to_owned());
        tokio::spawn(async move { store.delete_subject_now(&subject).await })
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
            "SELECT kind, COUNT(*) FROM records WHERE expires_at <= $1 GROUP BY kind",
        )
        .bind(to_i64(now))
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::unavailable)?;
        Ok(rows
            .into_iter()
            .map(|(kind, count)| (kind, unsigned(count)))
            .collect())
    }
}

#[async_trait::async_trait]
impl OperatorStore for PgRecordStore {
    async fn add_operator(&self, op: &Operator) -> Result<(), OperatorStoreError> {
        // Without a conflict target, DO NOTHING covers both unique columns (waiting for a
        // racing replica's insert to commit or roll back first).
        let done = sqlx::query(
            "INSERT INTO operators (name, role, created_at, password_hash, token_hash)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(&op.name)
        .bind(&op.role)
        .bind(to_i64(op.created_at))
        .bind(&op.password_hash)
        .bind(&op.token_hash)
        .execute(self.pool())
        .await
        .map_err(StoreError::unavailable)?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        // Nothing was written: say which unique column refused it.
        let taken: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM operators WHERE name = $1)")
                .bind(&op.name)
                .fetch_one(self.pool())
                .await
                .map_err(StoreError::unavailable)?;
        if taken {
            Err(OperatorStoreError::Exists {
                name: op.name.clone(),
            })
        } else {
            Err(OperatorStoreError::TokenInUse)
        }
    }

    async fn operator(&self, name: &str) -> Result<Option<Operator>, StoreError> {
        let row: Option<OperatorRow> = sqlx::query_as(&format!(
            "SELECT {OPERATOR_COLUMNS} FROM operators WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(self.pool())
        .await
        .map_err(StoreError::unavailable)?;
        Ok(row.map(operator_from_row))
    }

    async fn operator_by_token_hash(&self, hash: &str) -> Result<Option<Operator>, StoreError> {
        let row: Option<OperatorRow> = sqlx::query_as(&format!(
            "SELECT {OPERATOR_COLUMNS} FROM operators WHERE token_hash = $1"
        ))
        .bind(hash)
        .fetch_optional(self.pool())
        .await
        .map_err(StoreError::unavailable)?;
        Ok(row.map(operator_from_row))
    }

    async fn list_operators(&self) -> Result<Vec<Operator>, StoreError> {
        let rows: Vec<OperatorRow> = sqlx::query_as(&format!(
            "SELECT {OPERATOR_COLUMNS} FROM operators ORDER BY name"
        ))
        .fetch_all(self.pool())
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
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM operators WHERE role = $1")
            .bind(role)
            .fetch_one(self.pool())
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
        let sql = if password {
            "UPDATE operators SET password_hash = $1 WHERE name = $2"
        } else {
            "UPDATE operators SET token_hash = $1 WHERE name = $2"
        };
        match sqlx::query(sql)
            .bind(hash)
            .bind(name)
            .execute(self.pool())
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
