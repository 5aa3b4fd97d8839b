//! Rows as the SQL backends of records and operators return them, and their decoding.
//!
//! This module owns the column lists and row shapes shared by the SQLite and PostgreSQL
//! backends ([`super::sqlite`], [`super::postgres`]), so that both decode a stored row into
//! exactly the same [`RecordMeta`], [`StoredRecord`] or [`Operator`]. It must never run a
//! query, and never build SQL from caller data (its column lists are constants).

use std::collections::BTreeMap;

use crate::operators::Operator;
use crate::records::{RecordMeta, StoredRecord};

/// The largest purge batch, whatever the caller asks for: one batch is one write transaction,
/// and other writers wait for it.
pub(super) const MAX_PURGE_BATCH: u32 = 10_000;

/// The metadata columns, in the order of [`MetaRow`].
pub(super) const META_COLUMNS: &str =
    "id, agent, call_id, subject, kind, created_at, expires_at, size, key_id";

/// The operator columns, in the order of [`OperatorRow`].
pub(super) const OPERATOR_COLUMNS: &str = "name, role, created_at, password_hash, token_hash";

/// One record's metadata as the database returns it.
pub(super) type MetaRow = (
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    String,
);

/// One record with its body as the database returns it.
pub(super) type RecordRow = (
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    String,
    Vec<u8>,
);

/// One operator as the database returns it.
pub(super) type OperatorRow = (String, String, i64, Option<String>, Option<String>);

/// Decode a stored instant or size. Negative values are never written by this crate; they
/// decode as 0 (for `expires_at`: already expired, so the purge removes the row).
pub(super) fn unsigned(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// The metadata of a [`MetaRow`].
pub(super) fn meta_from_row(row: MetaRow) -> RecordMeta {
    let (id, agent, call_id, subject, kind, created_at, expires_at, size, key_id) = row;
    RecordMeta {
        id,
        agent,
        call_id,
        subject,
        kind,
        created_at: unsigned(created_at),
        expires_at: unsigned(expires_at),
        size: unsigned(size),
        key_id,
    }
}

/// The record of a [`RecordRow`].
pub(super) fn record_from_row(row: RecordRow) -> StoredRecord {
    let (id, agent, call_id, subject, kind, created_at, expires_at, size, key_id, body) = row;
    StoredRecord {
        meta: meta_from_row((
            id, agent, call_id, subject, kind, created_at, expires_at, size, key_id,
        )),
        body,
    }
}

/// The operator of an [`OperatorRow`].
pub(super) fn operator_from_row(
    (name, role, created_at, password_hash, token_hash): OperatorRow,
) -> Operator {
    Operator {
        name,
        role,
        created_at: unsigned(created_at),
        password_hash,
        token_hash,
    }
}

/// Add one to the count of `kind`.
pub(super) fn tally(counts: &mut BTreeMap<String, u64>, kind: String) {
    let count = counts.entry(kind).or_default();
    *count = count.saturating_add(1);
}
