//! Conversation records at rest: the storage contract for encrypted records and wrapped keys.
//!
//! This module owns the [`RecordStore`] trait and the shapes it stores: a record's metadata
//! ([`RecordMeta`]), a record with its encrypted body ([`StoredRecord`]), a listing query
//! ([`RecordFilter`]), a subject's wrapped data key ([`StoredKey`]) and what a subject deletion
//! removed ([`SubjectDeletion`]). Bodies and key blobs are opaque bytes to this module: it must
//! never encrypt, decrypt, wrap or unwrap anything (that is `voxguard-guard`), must never decide
//! who may read what (the caller checks roles and audits), and must never read the clock (every
//! time-dependent operation takes the caller's `now`). Its errors must not show SQL, paths,
//! bodies or subjects through `Display`. The SQLite backend lives in [`sqlite`], the PostgreSQL
//! one (shared by replicas) in [`postgres`]; [`rows`] decodes both backends' rows alike.

use std::collections::BTreeMap;

use crate::StoreError;

pub(crate) mod postgres;
mod rows;
pub(crate) mod sqlite;

#[cfg(test)]
mod tests;

/// The page size of a listing whose [`RecordFilter::limit`] is not set.
pub const DEFAULT_RECORD_PAGE: u32 = 100;

/// The largest page a listing returns, whatever [`RecordFilter::limit`] asks for.
pub const MAX_RECORD_PAGE: u32 = 1000;

/// Metadata of one stored record (everything but the body). Times are unix seconds.
///
/// `subject` is the customer or patient id the record belongs to (before verification, the
/// call's own subject `"call:<call_id>"`), in clear so that it can be queried and deleted;
/// `key_id` names the data key the body is encrypted with. The store keeps every field as
/// given and interprets only `subject`, `call_id`, `kind`, `created_at` and `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RecordMeta {
    /// Unique record id (chosen by the caller).
    pub id: String,
    /// Name of the agent whose call produced the record.
    pub agent: String,
    /// The call the record belongs to.
    pub call_id: String,
    /// The data subject the record belongs to.
    pub subject: String,
    /// What the record is (`summary`, `transcript`, `tool_log`, …); retention is per kind.
    pub kind: String,
    /// When the record was stored (unix seconds).
    pub created_at: u64,
    /// When the record is due for deletion (unix seconds; deleted once `expires_at <= now`).
    pub expires_at: u64,
    /// Size of the record's content in bytes, as the caller counts it.
    pub size: u64,
    /// Id of the key the body is encrypted with.
    pub key_id: String,
}

/// A record with its encrypted body.
///
/// `Debug` shows the metadata and the body's length, never its bytes.
#[derive(Clone)]
pub struct StoredRecord {
    /// Everything but the body.
    pub meta: RecordMeta,
    /// The encrypted body (opaque to the store).
    pub body: Vec<u8>,
}

impl std::fmt::Debug for StoredRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredRecord")
            .field("meta", &self.meta)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// A query over record metadata. Every field is optional; an empty filter lists everything.
///
/// Results are ordered by `(created_at, id)`. `from` and `to` bound `created_at`, both
/// inclusive. `limit` is clamped to `1..=`[`MAX_RECORD_PAGE`] (default
/// [`DEFAULT_RECORD_PAGE`]). `after` is a paging cursor: the id of the last record of the
/// previous page; only records strictly after it in the order are returned, and a cursor that
/// names no stored record is refused with [`StoreError::UnknownCursor`].
#[derive(Debug, Clone, Default)]
pub struct RecordFilter {
    /// Only records of this subject.
    pub subject: Option<String>,
    /// Only records of this call.
    pub call_id: Option<String>,
    /// Only records of this kind.
    pub kind: Option<String>,
    /// Only records created at or after this instant (unix seconds).
    pub from: Option<u64>,
    /// Only records created at or before this instant (unix seconds).
    pub to: Option<u64>,
    /// Page size (clamped; see the type's documentation).
    pub limit: Option<u32>,
    /// Paging cursor: the id of the last record already seen.
    pub after: Option<String>,
    /// Only records still within their retention at this instant (`expires_at` after it):
    /// what a reader sees, whether or not the purge has run yet.
    pub live_at: Option<u64>,
}

impl RecordFilter {
    /// The number of records a listing with this filter returns at most: `limit` clamped to
    /// `1..=`[`MAX_RECORD_PAGE`], or [`DEFAULT_RECORD_PAGE`] when unset. A page this long may
    /// have a successor; a shorter one is the last.
    pub fn page_size(&self) -> u32 {
        self.limit
            .unwrap_or(DEFAULT_RECORD_PAGE)
            .clamp(1, MAX_RECORD_PAGE)
    }
}

/// A subject's data key as stored: wrapped by a key-encryption key (opaque bytes).
///
/// `Debug` shows the subject, the KEK id and the blob's length, never the blob.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// The data subject the key belongs to.
    pub subject: String,
    /// Id of the key-encryption key that wrapped `blob`.
    pub kek_id: String,
    /// The wrapped data key.
    pub blob: Vec<u8>,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("subject", &self.subject)
            .field("kek_id", &self.kek_id)
            .field("blob_len", &self.blob.len())
            .finish()
    }
}

/// What a subject deletion removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SubjectDeletion {
    /// Records deleted, per kind (kinds with no deleted record are absent).
    pub records: BTreeMap<String, u64>,
    /// Wrapped data keys deleted (the subject's and its calls' call-subjects').
    pub keys: u64,
    /// The calls whose records were deleted, sorted: the caller clears their sessions.
    pub call_ids: Vec<String>,
}

/// The subject under which a call's records are kept before the caller is verified.
///
/// Keys of such subjects are removed with their last record by
/// [`RecordStore::delete_subject`] and [`RecordStore::purge_expired_records`].
pub const CALL_SUBJECT_PREFIX: &str = "call:";

/// Where conversation records and the subjects' wrapped data keys live.
///
/// Bodies and key blobs are opaque: the caller encrypts, decrypts, wraps and unwraps, checks
/// permissions and audits every access. Methods whose answer depends on time take `now` (unix
/// seconds) from the caller's clock.
///
/// # Example
///
/// ```
/// use voxguard_store::{RecordFilter, RecordMeta, RecordStore, SqliteRecordStore, StoredRecord};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let store = SqliteRecordStore::open_in_memory().await?;
/// let now = 1_700_000_000;
/// let meta = RecordMeta {
///     id: "rec_1".into(),
///     agent: "clinic".into(),
///     call_id: "call-1".into(),
///     subject: "pat_001".into(),
///     kind: "summary".into(),
///     created_at: now,
///     expires_at: now + 365 * 86_400,
///     size: 11,
///     key_id: "dk-pat_001".into(),
/// };
/// // The body is whatever the caller encrypted; the store never looks inside.
/// let body = b"ciphertext".to_vec();
/// store.put_record(&StoredRecord { meta: meta.clone(), body }).await?;
///
/// let filter = RecordFilter { subject: Some("pat_001".into()), ..Default::default() };
/// assert_eq!(store.list_records(&filter).await?, vec![meta]);
///
/// let deletion = store.delete_subject("pat_001").await?;
/// assert_eq!(deletion.records["summary"], 1);
/// assert_eq!(deletion.call_ids, ["call-1"]);
/// # Ok::<(), voxguard_store::StoreError>(())
/// # }).unwrap();
/// ```
#[async_trait::async_trait]
pub trait RecordStore: Send + Sync + 'static {
    /// Store a new record. Ids are unique: a record whose id is already stored is refused with
    /// [`StoreError::DuplicateRecord`] and nothing changes.
    async fn put_record(&self, record: &StoredRecord) -> Result<(), StoreError>;

    /// The record with this id, with its body, or `None`.
    async fn get_record(&self, id: &str) -> Result<Option<StoredRecord>, StoreError>;

    /// Metadata of the records matching `filter`, in `(created_at, id)` order, one page long
    /// at most (see [`RecordFilter`]).
    async fn list_records(&self, filter: &RecordFilter) -> Result<Vec<RecordMeta>, StoreError>;

    /// Delete one record and return its metadata, or `None` if no record has this id.
    async fn delete_record(&self, id: &str) -> Result<Option<RecordMeta>, StoreError>;

    /// The stored data key of `subject`, or `None`.
    async fn subject_key(&self, subject: &str) -> Result<Option<StoredKey>, StoreError>;

    /// Insert `key` unless its subject already has one, and return the key that is stored:
    /// of two racing writers, both get the first one's key.
    async fn put_subject_key_if_absent(&self, key: &StoredKey) -> Result<StoredKey, StoreError>;

    /// Keys wrapped by a KEK other than `current_kek_id`, at most `limit` of them (a `limit`
    /// of 0 counts as 1), in subject order. A rotation re-wraps them with
    /// [`rewrap_subject_key`](RecordStore::rewrap_subject_key) and calls again until the answer
    /// is empty; a key it cannot re-wrap comes back on every call, so it must stop on its own
    /// then.
    async fn keys_not_under(
        &self,
        current_kek_id: &str,
        limit: u32,
    ) -> Result<Vec<StoredKey>, StoreError>;

    /// Replace `key.subject`'s stored wrapping with `key` only if it is still wrapped by
    /// `old_kek_id` (compare-and-swap on the KEK id). `false` when the key changed KEK or is
    /// gone. Writers must wrap new keys under the current KEK, so that a key deleted and
    /// created again during a rotation never carries the old KEK id.
    async fn rewrap_subject_key(
        &self,
        old_kek_id: &str,
        key: &StoredKey,
    ) -> Result<bool, StoreError>;

    /// Delete, in one transaction: every record of `subject`; every record of any call in
    /// which `subject` had records (the call's pre-verification records, kept under its
    /// call-subject `"call:<call_id>"`, and anything else stored for that call, which may
    /// mention the subject); the subject's key; and the keys of those calls' call-subjects
    /// that are left with no records. Returns the counts and the call ids touched (the caller
    /// clears those calls' sessions). Deleting an unknown subject deletes nothing and is not
    /// an error.
    ///
    /// The SQLite backend's files then keep none of the deleted bytes (it zeroes deleted
    /// content and empties its write-ahead log); if the log could not be emptied, the deletion
    /// is committed and [`StoreError::ScrubIncomplete`] is returned: call again. PostgreSQL
    /// keeps deleted rows as dead tuples until `VACUUM` and in its write-ahead log and backups
    /// for as long as they are retained; they are unreadable once the subject's key is gone
    /// (crypto-shredding), so that backend never returns `ScrubIncomplete`.
    async fn delete_subject(&self, subject: &str) -> Result<SubjectDeletion, StoreError>;

    /// Delete every record with `expires_at <= now`, at most `batch` rows per transaction (a
    /// `batch` of 0 counts as 1; the backends cap it at 10,000), until none is left, so that a
    /// big purge never holds the write lock for long. Each batch commits on its own: a crash
    /// loses no finished batch and the next run continues. Also deletes the keys of
    /// call-subjects (`"call:…"`) whose last record it deleted. Returns the records deleted per kind (empty when nothing
    /// expired).
    async fn purge_expired_records(
        &self,
        now: u64,
        batch: u32,
    ) -> Result<BTreeMap<String, u64>, StoreError>;

    /// What [`purge_expired_records`](RecordStore::purge_expired_records) would delete at
    /// `now`, per kind, without deleting anything.
    async fn count_expired_records(&self, now: u64) -> Result<BTreeMap<String, u64>, StoreError>;
}
