//! Where voxguard keeps server-side state.
//!
//! This crate owns per-call session state behind the small async [`SessionStore`] trait,
//! per-subject failed-verification counters behind [`AttemptStore`], and their
//! backends: [`MemoryStore`] (in process), [`SqliteStore`] (embedded, durable; the default) and
//! [`PgStore`] (PostgreSQL, shared by several replicas).
//! It also keeps the audit trail ([`AuditSink`]), conversation records with the subjects'
//! wrapped data keys ([`RecordStore`]) and the records API's operators ([`OperatorStore`]),
//! the last two in [`SqliteRecordStore`] or [`PgRecordStore`]. For several replicas, rate limits ([`LimitStore`]) and
//! notices between replicas ([`Notifier`]) are shared through Redis ([`RedisState`]) or
//! PostgreSQL ([`PgLimits`], [`PgNotifier`]), and so is the emergency switch ([`PgEmergency`]).
//! Record bodies and key blobs are opaque bytes here: this crate never encrypts or decrypts,
//! and never reads the clock (callers pass `now`).
//! Authorization state — verification flags, attempt counters, pending confirmations — lives
//! here, never in data the caller or the LLM controls. This crate must not decide whether
//! anything is allowed (that is `voxguard-guard`), must not speak HTTP (that is
//! `voxguard-server`), and its errors must never expose SQL text, file paths or stored values
//! through `Display`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod attempts;
mod audit;
mod cache;
mod memory;
mod operators;
pub mod postgres;
mod records;
mod session;
mod shared;
mod sqlite;

pub use attempts::{AttemptLimits, AttemptStatus, AttemptStore, Reservation};
pub use audit::{
    AuditSink, Durability, JsonlAuditLog, PgAuditLog, SqliteAuditLog, AUDIT_DB_FILE_NAME,
};
pub use memory::MemoryStore;
pub use operators::{Operator, OperatorChange, OperatorStore, OperatorStoreError};
pub use postgres::{PgEmergency, PgLimits, PgNotifier};
pub use postgres::{PgStore, MAX_AGE_SECS as PG_SESSION_CACHE_MAX_AGE_SECS};
pub use records::postgres::PgRecordStore;
pub use records::sqlite::{SqliteRecordStore, RECORDS_DB_FILE_NAME};
pub use records::{
    RecordFilter, RecordMeta, RecordStore, StoredKey, StoredRecord, SubjectDeletion,
    CALL_SUBJECT_PREFIX, DEFAULT_RECORD_PAGE, MAX_RECORD_PAGE,
};
pub use session::{SessionStore, StoreError, DEFAULT_SESSION_TTL};
pub use shared::{
    GcraLimit, LimitCheck, LimitDecision, LimitStore, Notice, Notifier, RedisState,
    REDIS_COMMAND_TIMEOUT,
};
pub use sqlite::SqliteStore;

#[cfg(test)]
mod tests;
