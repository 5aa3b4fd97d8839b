//! Conversation records: what a call leaves behind, redacted, encrypted, kept only for its
//! retention, and read only by operators whose role allows it.
//!
//! **Where a record is encrypted:** [`Records::store`] — redact (card data always, identifiers
//! too under HIPAA), then seal the body with the subject's data key (XChaCha20-Poly1305, bound
//! to record id, subject and kind), the data key itself wrapped by the records key
//! (`VOXGUARD_RECORDS_KEY`). Deleting a subject deletes its wrapped key: every copy of its
//! records, backups included, becomes unreadable (crypto-shredding).
//!
//! This module owns the records service ([`Records`]) shared by the runtime (summaries,
//! transcripts, tool logs), the operator API (`api`), the security console and the CLI:
//! storing, listing, reading, exporting, deleting, the retention purge and key rotation, each
//! access written to the audit trail with the operator, role, record, masked subject and
//! purpose (reading the trail itself is in `trail`). It must not decide who may do what (the
//! API and the console check roles; the CLI is the local administrator), must not hold a
//! record's plaintext longer than a call (it is zeroized), and never writes a subject id, a
//! transcript phrase or a key to a log line or an audit event.

pub(crate) mod api;
pub mod compliance;
mod kind;
mod operators;
mod trail;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use voxguard_guard::records::{
    open, seal, subject_ref, DataKey, RecordAad, RecordCryptoError, RecordsKeyError,
    RecordsKeyring, Roles, WrappedKey,
};
use voxguard_guard::{AuditKind, Clock, Outcome, Redactor, SecretKey, SystemClock};
use voxguard_store::{
    AttemptStore, AuditSink, OperatorStore, RecordFilter, RecordMeta, RecordStore, SessionStore,
    StoreError, StoredKey, StoredRecord,
};
use zeroize::Zeroizing;

use crate::audit::Auditor;
pub use api::subject_export;
pub use compliance::{Compliance, ComplianceError};
pub use kind::{RecordKind, Retention, RetentionError};
pub use operators::{OperatorProblem, ADMIN_ROLE};
pub(crate) use trail::TrailReader;

/// A store that keeps both conversation records and operator accounts (the SQLite records
/// database does both).
pub trait RecordsBackend: RecordStore + OperatorStore {}
impl<T: RecordStore + OperatorStore> RecordsBackend for T {}

/// The prefix of the subject a record is stored under before the agent names one: the call.
pub const CALL_SUBJECT_PREFIX: &str = "call:";

/// The longest subject id accepted (`ctx.set_subject`, API paths).
pub const MAX_SUBJECT_LEN: usize = 128;

/// How often the retention purge runs by default (it also runs at start).
pub const DEFAULT_PURGE_EVERY: Duration = Duration::from_secs(60 * 60);

/// The audit reason of an access that failed because a record did not decrypt.
const UNREADABLE: &str = "record_unreadable";

/// Rows deleted per purge transaction, so a large purge never holds the write lock long: with
/// the store's write queue, the call path's writes wait at most one batch (BENCHMARKS.md).
pub const PURGE_BATCH: u32 = 100;

/// Whether `id` has the shape of a record id (`rec_` + 26 lowercase letters). What an operator
/// types where a record id belongs is written to the audit trail only when it has this shape:
/// anything else (a card number, a patient's id, kilobytes of text) is no record.
pub fn valid_record_id(id: &str) -> bool {
    id.strip_prefix("rec_").is_some_and(|tail| {
        tail.len() == RECORD_ID_LETTERS && tail.bytes().all(|b| b.is_ascii_lowercase())
    })
}

/// Whether `subject` is a usable subject id: 1–128 characters, no control characters.
pub fn valid_subject(subject: &str) -> bool {
    !subject.is_empty()
        && subject.chars().count() <= MAX_SUBJECT_LEN
        && !subject.chars().any(char::is_control)
}

/// How conversation records are kept: where, under which key, for how long, and which roles
/// exist. Give it to [`Runtime::records`](crate::Runtime::records).
#[derive(Clone)]
pub struct RecordsConfig {
    pub(crate) store: Arc<dyn RecordsBackend>,
    pub(crate) keyring: RecordsKeyring,
    pub(crate) pseudonyms: SecretKey,
    pub(crate) retention: Retention,
    pub(crate) roles: Roles,
    pub(crate) purge_every: Duration,
    pub(crate) dev_key: bool,
}

impl std::fmt::Debug for RecordsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordsConfig")
            .field("key_ids", &self.keyring.ids())
            .field("retention", &self.retention)
            .field("purge_every", &self.purge_every)
            .finish_non_exhaustive()
    }
}

/// Why records could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum RecordsConfigError {
    /// A records key is not usable.
    #[error("{name}: {source}")]
    Key {
        /// The variable (or `code`).
        name: &'static str,
        /// What is wrong.
        source: RecordsKeyError,
    },
    /// Production mode with records on and no key.
    #[error("VOXGUARD_ENV=production with conversation records requires VOXGUARD_RECORDS_KEY (base64, at least 32 bytes; e.g. `openssl rand -base64 32`), or VOXGUARD_RECORDS=off")]
    MissingKeyInProduction,
    /// Records on a shared (PostgreSQL) store without `VOXGUARD_RECORDS_KEY`.
    #[error("conversation records on PostgreSQL require VOXGUARD_RECORDS_KEY (base64, at least 32 bytes), the same on every replica; there is no development key in shared mode. Or set VOXGUARD_RECORDS=off")]
    SharedNeedsKey,
    /// The development key file could not be read or written.
    #[error("the development records key ({DEV_KEY_FILE}) could not be made in the data directory ({0}); set VOXGUARD_RECORDS_KEY")]
    DevKey(String),
    /// A retention variable is not valid.
    #[error(transparent)]
    Retention(#[from] RetentionError),
    /// `VOXGUARD_RECORDS` holds something else than on/off.
    #[error("VOXGUARD_RECORDS={0:?} is not valid: on or off")]
    Switch(String),
    /// `VOXGUARD_RECORDS_PURGE_EVERY_SECS` is not valid.
    #[error("VOXGUARD_RECORDS_PURGE_EVERY_SECS={0:?} is not valid: a whole number of seconds from 60 to 86400")]
    PurgeEvery(String),
    /// The records database could not be opened.
    #[error("the records database cannot be opened: {0}")]
    Store(#[from] StoreError),
}

impl RecordsConfig {
    /// Records in `store`, encrypted under `key` (base64, ≥ 32 bytes), with `previous` keys
    /// (comma-separated) still accepted during a rotation; default retention and roles.
    pub fn new(
        store: Arc<dyn RecordsBackend>,
        key: &str,
        previous: Option<&str>,
    ) -> Result<Self, RecordsConfigError> {
        let keyring =
            RecordsKeyring::from_text(key, previous).map_err(|source| RecordsConfigError::Key {
                name: "VOXGUARD_RECORDS_KEY",
                source,
            })?;
        // Subject pseudonyms in the audit trail: keyed by the records key, so that nobody
        // without it can test a guessed patient id against the trail.
        let pseudonyms = SecretKey::from_base64(key)
            .map_err(|_| RecordsConfigError::Key {
                name: "VOXGUARD_RECORDS_KEY",
                source: RecordsKeyError::NotBase64,
            })?
            .derive("voxguard-records-subject-pseudonym");
        Ok(Self {
            store,
            keyring,
            pseudonyms,
            retention: Retention::default(),
            roles: Roles::default(),
            purge_every: DEFAULT_PURGE_EVERY,
            dev_key: false,
        })
    }

    /// Keep records for these numbers of days.
    pub fn retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// Use this role table (the built-ins plus custom roles, see `Roles::with_role`).
    pub fn roles(mut self, roles: Roles) -> Self {
        self.roles = roles;
        self
    }

    /// Run the retention purge this often (and once at start).
    pub fn purge_every(mut self, every: Duration) -> Self {
        self.purge_every = every;
        self
    }

    /// The role table.
    pub fn role_table(&self) -> &Roles {
        &self.roles
    }

    /// Records from the environment, in `dir/records.db`:
    /// - `VOXGUARD_RECORDS` — `on` (default) or `off` (returns `Ok(None)`);
    /// - `VOXGUARD_RECORDS_KEY` — base64, ≥ 32 bytes; required in production; elsewhere a
    ///   development key is kept in `dir/records-dev.key` with a warning (it protects nothing
    ///   at rest; HIPAA mode refuses it);
    /// - `VOXGUARD_RECORDS_KEYS_PREVIOUS` — earlier keys during a rotation;
    /// - `VOXGUARD_RETENTION_<KIND>_DAYS`, `VOXGUARD_RECORDS_PURGE_EVERY_SECS`.
    pub async fn open_from_env(
        dir: impl AsRef<std::path::Path>,
        production: bool,
    ) -> Result<Option<Self>, RecordsConfigError> {
        Self::open_from_lookup(dir, production, |name| std::env::var(name).ok()).await
    }

    /// [`open_from_env`](Self::open_from_env) reading variables through `lookup`.
    pub async fn open_from_lookup(
        dir: impl AsRef<std::path::Path>,
        production: bool,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, RecordsConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let Some(RecordsSettings {
            retention,
            purge_every,
        }) = RecordsSettings::from_lookup(&lookup)?
        else {
            return Ok(None);
        };
        let (key, dev_key) = match get("VOXGUARD_RECORDS_KEY") {
            Some(key) => (Zeroizing::new(key), false),
            None if production => return Err(RecordsConfigError::MissingKeyInProduction),
            None => (dev_key(dir.as_ref())?, true),
        };
        let store = voxguard_store::SqliteRecordStore::open_in_dir(dir.as_ref()).await?;
        let previous = get("VOXGUARD_RECORDS_KEYS_PREVIOUS");
        let mut config = Self::new(Arc::new(store), &key, previous.as_deref())?
            .retention(retention)
            .purge_every(purge_every);
        config.dev_key = dev_key;
        Ok(Some(config))
    }

    /// Records in a `store` shared by several replicas (PostgreSQL), from the environment like
    /// [`open_from_env`](Self::open_from_env), except that there is no development key: every
    /// replica must use the same `VOXGUARD_RECORDS_KEY`, so it is required. `Ok(None)` when
    /// `VOXGUARD_RECORDS=off`.
    pub fn open_shared_from_env(
        store: Arc<dyn RecordsBackend>,
        production: bool,
    ) -> Result<Option<Self>, RecordsConfigError> {
        Self::open_shared_from_lookup(store, production, |name| std::env::var(name).ok())
    }

    /// [`open_shared_from_env`](Self::open_shared_from_env) reading variables through `lookup`.
    pub fn open_shared_from_lookup(
        store: Arc<dyn RecordsBackend>,
        production: bool,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, RecordsConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let Some(settings) = RecordsSettings::from_lookup(&lookup)? else {
            return Ok(None);
        };
        let Some(key) = get("VOXGUARD_RECORDS_KEY").map(Zeroizing::new) else {
            return Err(if production {
                RecordsConfigError::MissingKeyInProduction
            } else {
                RecordsConfigError::SharedNeedsKey
            });
        };
        let previous = get("VOXGUARD_RECORDS_KEYS_PREVIOUS");
        Ok(Some(
            Self::new(store, &key, previous.as_deref())?
                .retention(settings.retention)
                .purge_every(settings.purge_every),
        ))
    }

    /// Whether the key is the development key kept beside the data (no `VOXGUARD_RECORDS_KEY`
    /// outside production). HIPAA mode refuses it.
    pub fn uses_dev_key(&self) -> bool {
        self.dev_key
    }
}

/// `VOXGUARD_RECORDS`, the retention and the purge interval, read once for either backend.
struct RecordsSettings {
    retention: Retention,
    purge_every: Duration,
}

impl RecordsSettings {
    /// `Ok(None)` when records are off.
    fn from_lookup(
        lookup: &impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, RecordsConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        match get("VOXGUARD_RECORDS")
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("on") | Some("true") | Some("1") => {}
            Some("off") | Some("false") | Some("0") => return Ok(None),
            Some(other) => return Err(RecordsConfigError::Switch(other.to_string())),
        }
        let retention = Retention::from_lookup(lookup)?;
        let purge_every = match get("VOXGUARD_RECORDS_PURGE_EVERY_SECS") {
            None => DEFAULT_PURGE_EVERY,
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|s| (60..=86_400).contains(s))
                .map(Duration::from_secs)
                .ok_or(RecordsConfigError::PurgeEvery(v))?,
        };
        Ok(Some(Self {
            retention,
            purge_every,
        }))
    }
}

/// The development records key file in the data directory (used only when
/// `VOXGUARD_RECORDS_KEY` is unset outside production).
pub const DEV_KEY_FILE: &str = "records-dev.key";

/// Read the development key from `dir`, or make one (mode 0600). A key kept next to the data
/// protects nothing at rest: it only lets a development setup read its records after a
/// restart. Production refuses to run without `VOXGUARD_RECORDS_KEY`; HIPAA mode refuses this.
fn dev_key(dir: &std::path::Path) -> Result<Zeroizing<String>, RecordsConfigError> {
    let path = dir.join(DEV_KEY_FILE);
    let io = |source: std::io::Error| RecordsConfigError::DevKey(source.kind().to_string());
    if let Ok(text) = std::fs::read_to_string(&path) {
        tracing::warn!("VOXGUARD_RECORDS_KEY is not set: using the development records key in the data directory ({DEV_KEY_FILE}); records are NOT protected at rest. Set VOXGUARD_RECORDS_KEY for anything but development.");
        return Ok(Zeroizing::new(text.trim().to_string()));
    }
    std::fs::create_dir_all(dir).map_err(io)?;
    let (_, text) = voxguard_guard::records::RecordsKey::generate();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(&path).map_err(io)?;
    std::io::Write::write_all(&mut file, text.as_bytes()).map_err(io)?;
    tracing::warn!("VOXGUARD_RECORDS_KEY is not set: generated a development records key in the data directory ({DEV_KEY_FILE}); records are NOT protected at rest. Set VOXGUARD_RECORDS_KEY for anything but development.");
    Ok(text)
}

/// Who is accessing records, as audit events name them.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The operator's name (`cli:<user>` for the command line).
    pub operator: String,
    /// The operator's role (`local-admin` for the command line).
    pub role: String,
    /// The source address, when the access came over HTTP.
    pub source: Option<String>,
    /// The HTTP request id, when there was one.
    pub request_id: Option<String>,
}

impl Actor {
    /// The local administrator running the CLI as `user`.
    pub fn cli(user: &str) -> Self {
        Self {
            operator: format!("cli:{user}"),
            role: "local-admin".into(),
            source: None,
            request_id: None,
        }
    }
}

/// Why a records operation failed. `Display` never shows content, subject ids or SQL.
#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    /// No such record (or it expired, or its subject was deleted).
    #[error("no record with that id")]
    NotFound,
    /// The subject id is empty, too long or holds control characters.
    #[error("the subject id must be 1 to 128 characters without control characters")]
    InvalidSubject,
    /// The record did not decrypt.
    #[error("{0}")]
    Crypto(#[from] RecordCryptoError),
    /// The record's data key is gone (its subject was deleted): it can never be read.
    #[error("the record's data key was deleted; it cannot be decrypted")]
    KeyShredded,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The audit trail could not be written, so the access was not performed.
    #[error("the audit trail could not be written; nothing was done")]
    AuditUnavailable,
    /// A record body is not valid UTF-8 JSON (never written by voxguard).
    #[error("the record's content is corrupt")]
    Corrupt,
    /// An operator change was refused.
    #[error(transparent)]
    Operator(#[from] OperatorProblem),
}

/// What a subject deletion removed, as the API and CLI report it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeletionReport {
    /// Records deleted per kind.
    pub records: BTreeMap<String, u64>,
    /// Data keys deleted (crypto-shredded).
    pub keys: u64,
    /// Call sessions cleared.
    pub sessions: u64,
    /// Verification attempt counters reset (per agent).
    pub attempt_counters: u64,
}

/// What the runtime clears besides the records when a subject is deleted.
pub(crate) struct Cleanup {
    pub(crate) sessions: Arc<dyn SessionStore>,
    pub(crate) attempts: Arc<dyn AttemptStore>,
    /// (agent name, key its attempt counters are stored under).
    pub(crate) attempt_keys: Vec<(String, SecretKey)>,
    /// The key for agents not listed above that appear in the subject's records (the default
    /// one, derived from the token keys).
    pub(crate) default_key: Option<SecretKey>,
}

/// The records service: one per runtime (and one per CLI command).
#[derive(Clone)]
pub struct Records {
    inner: Arc<Inner>,
}

struct Inner {
    config: RecordsConfig,
    auditor: Auditor,
    clock: Arc<dyn Clock>,
    compliance: Compliance,
    redactor: Redactor,
    cleanup: Option<Cleanup>,
}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Records")
            .field("config", &self.inner.config)
            .field("compliance", &self.inner.compliance)
            .finish_non_exhaustive()
    }
}

impl Records {
    /// A records service outside a runtime (the CLI): accesses are audited to `audit`.
    pub fn open(
        config: RecordsConfig,
        audit: Option<Arc<dyn AuditSink>>,
        compliance: Compliance,
    ) -> Self {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let auditor = Auditor::new(
            audit,
            clock.clone(),
            voxguard_server::Metrics::new(),
            None,
            None,
        );
        Self::with_auditor(config, auditor, compliance, None)
    }

    /// Also clear sessions and attempt counters of deleted subjects (the CLI, working on the
    /// data directory directly). Attempt counters are found with the key the runtime derives
    /// from `token_keys` (`VOXGUARD_TOKEN_KEY`), for every agent in the subject's records;
    /// without token keys only the sessions are cleared (the counters hold a keyed hash of the
    /// subject, never the id, and expire with their window).
    pub fn with_cleanup(
        self,
        sessions: Arc<dyn SessionStore>,
        attempts: Arc<dyn AttemptStore>,
        token_keys: Option<&voxguard_guard::KeyRing>,
    ) -> Self {
        let default_key =
            token_keys.map(|keys| keys.derive(crate::verify_policy::SUBJECT_KEY_PURPOSE));
        let inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Inner {
            config: shared.config.clone(),
            auditor: shared.auditor.clone(),
            clock: shared.clock.clone(),
            compliance: shared.compliance,
            redactor: shared.redactor.clone(),
            cleanup: None,
        });
        Self {
            inner: Arc::new(Inner {
                cleanup: Some(Cleanup {
                    sessions,
                    attempts,
                    attempt_keys: Vec::new(),
                    default_key,
                }),
                ..inner
            }),
        }
    }

    pub(crate) fn with_auditor(
        config: RecordsConfig,
        auditor: Auditor,
        compliance: Compliance,
        cleanup: Option<Cleanup>,
    ) -> Self {
        let clock = auditor.clock.clone();
        Self {
            inner: Arc::new(Inner {
                config,
                auditor,
                clock,
                compliance,
                redactor: Redactor::new(),
                cleanup,
            }),
        }
    }

    /// The role table.
    pub fn roles(&self) -> &Roles {
        &self.inner.config.roles
    }

    /// The records database (operators live there too).
    pub fn backend(&self) -> &Arc<dyn RecordsBackend> {
        &self.inner.config.store
    }

    /// The compliance modes records are kept under.
    pub fn compliance(&self) -> Compliance {
        self.inner.compliance
    }

    /// How often the runtime purges.
    pub(crate) fn purge_every(&self) -> Duration {
        self.inner.config.purge_every
    }

    /// The masked form of `subject` written to audit events: `sub_` + a keyed pseudonym.
    pub fn subject_ref(&self, subject: &str) -> String {
        subject_ref(&self.inner.config.pseudonyms, subject)
    }

    /// `text` as it may be stored: card data, PINs, SSNs, secrets, emails, phone numbers and
    /// dates of birth masked; under HIPAA every date as well.
    pub fn redact_text(&self, text: &str) -> String {
        let redacted = self.inner.redactor.redact_text(text);
        if self.inner.compliance.hipaa() {
            redact_dates(&redacted)
        } else {
            redacted.into_owned()
        }
    }

    /// `value` with every sensitive field and every string redacted like
    /// [`redact_text`](Self::redact_text).
    pub fn redact_json(&self, value: &Value) -> Value {
        let mut copy = value.clone();
        self.inner.redactor.redact_json(&mut copy);
        if self.inner.compliance.hipaa() {
            redact_all_dates(&mut copy);
        }
        copy
    }

    /// **Where a record is encrypted.** Redact `content`, encrypt it under `subject`'s data key
    /// (the call's own subject when `None`) and store it with its kind's retention.
    pub async fn store(
        &self,
        agent: &str,
        call_id: &str,
        subject: Option<&str>,
        kind: RecordKind,
        content: &Value,
    ) -> Result<RecordMeta, RecordsError> {
        let call_subject;
        let subject = match subject {
            Some(subject) => subject,
            None => {
                call_subject = format!("{CALL_SUBJECT_PREFIX}{call_id}");
                &call_subject
            }
        };
        if !valid_subject(subject) {
            return Err(RecordsError::InvalidSubject);
        }
        let body = Zeroizing::new(
            serde_json::to_vec(&self.redact_json(content)).map_err(|_| RecordsError::Corrupt)?,
        );
        let id = new_record_id();
        let key = self.data_key(subject).await?;
        let sealed = seal(
            &key,
            &RecordAad {
                record_id: &id,
                subject,
                kind: kind.as_str(),
            },
            &body,
        )?;
        let now = self.inner.clock.now_unix();
        let meta = RecordMeta {
            id,
            agent: agent.to_string(),
            call_id: call_id.to_string(),
            subject: subject.to_string(),
            kind: kind.as_str().to_string(),
            created_at: now,
            expires_at: self.inner.config.retention.expires_at(kind, now),
            size: body.len() as u64,
            key_id: self.inner.config.keyring.current().id().to_string(),
        };
        self.inner
            .config
            .store
            .put_record(&StoredRecord {
                meta: meta.clone(),
                body: sealed,
            })
            .await?;
        Ok(meta)
    }

    /// The subject's data key, made and stored (wrapped) on first use. Of two writers racing
    /// to make it, both end up with the one that was stored first.
    async fn data_key(&self, subject: &str) -> Result<DataKey, RecordsError> {
        let store = &self.inner.config.store;
        let keyring = &self.inner.config.keyring;
        let stored = match store.subject_key(subject).await? {
            Some(stored) => stored,
            None => {
                let fresh = keyring.wrap(subject, &DataKey::generate());
                store
                    .put_subject_key_if_absent(&StoredKey {
                        subject: subject.to_string(),
                        kek_id: fresh.kek_id,
                        blob: fresh.blob,
                    })
                    .await?
            }
        };
        Ok(keyring.unwrap(
            subject,
            &WrappedKey {
                kek_id: stored.kek_id,
                blob: stored.blob,
            },
        )?)
    }

    /// Decrypt a stored record.
    async fn decrypt(&self, record: &StoredRecord) -> Result<Value, RecordsError> {
        let meta = &record.meta;
        let stored = self
            .inner
            .config
            .store
            .subject_key(&meta.subject)
            .await?
            .ok_or(RecordsError::KeyShredded)?;
        let key = self.inner.config.keyring.unwrap(
            &meta.subject,
            &WrappedKey {
                kek_id: stored.kek_id,
                blob: stored.blob,
            },
        )?;
        let plain = open(
            &key,
            &RecordAad {
                record_id: &meta.id,
                subject: &meta.subject,
                kind: &meta.kind,
            },
            &record.body,
        )?;
        serde_json::from_slice(&plain).map_err(|_| RecordsError::Corrupt)
    }

    /// An audit event about records, by `actor`.
    fn event(
        &self,
        kind: AuditKind,
        outcome: Outcome,
        actor: &Actor,
    ) -> voxguard_guard::AuditEvent {
        let mut event = self.inner.auditor.event(kind, outcome);
        event.operator = Some(actor.operator.clone());
        event.role = Some(actor.role.clone());
        event.source = actor.source.clone();
        event.request_id = actor.request_id.clone();
        event
    }

    async fn write(&self, event: voxguard_guard::AuditEvent) -> Result<(), RecordsError> {
        self.inner
            .auditor
            .record(event)
            .await
            .map_err(|_| RecordsError::AuditUnavailable)
    }

    /// A `console_session` event for `actor`, `function` naming what happened
    /// (`console_sign_in`, `console_sign_out`).
    pub(crate) fn console_event(
        &self,
        actor: &Actor,
        outcome: Outcome,
        function: &str,
    ) -> voxguard_guard::AuditEvent {
        let mut event = self.event(AuditKind::ConsoleSession, outcome, actor);
        event.function = Some(function.to_string());
        event
    }

    /// Write a console event; `Err` when it could not be recorded.
    pub(crate) async fn console_write(
        &self,
        event: voxguard_guard::AuditEvent,
    ) -> Result<(), RecordsError> {
        self.write(event).await
    }

    /// Write an `access_denied` event for `actor` (who may be unauthenticated: then `operator`
    /// is what they claimed, truncated) with a stable `reason`.
    pub(crate) async fn denied(
        &self,
        actor: &Actor,
        reason: &str,
        record: Option<&str>,
        subject: Option<&str>,
    ) {
        let mut event = self.event(AuditKind::AccessDenied, Outcome::Refused, actor);
        event.reason = Some(reason.to_string());
        event.record = record.map(str::to_string);
        event.subject = subject.map(|s| self.subject_ref(s));
        let _ = self.write(event).await;
    }

    /// List record metadata (no content), audited as one `record_accessed` event.
    pub async fn list(
        &self,
        actor: &Actor,
        filter: &RecordFilter,
    ) -> Result<Vec<RecordMeta>, RecordsError> {
        if let Some(subject) = &filter.subject {
            if !valid_subject(subject) {
                return Err(RecordsError::InvalidSubject);
            }
        }
        let mut event = self.event(AuditKind::RecordAccessed, Outcome::Ok, actor);
        event.subject = filter.subject.as_deref().map(|s| self.subject_ref(s));
        event.function = Some("list".into());
        event.arguments = Some(json!({
            "call_id": filter.call_id.as_deref().map(|c| c.chars().take(128).collect::<String>()),
            "kind": filter.kind,
            "from": filter.from,
            "to": filter.to,
        }));
        // Audited before the data leaves: an access that cannot be recorded does not happen.
        self.write(event).await?;
        // Past retention is as good as purged, whether or not the purge has run yet.
        let live = RecordFilter {
            live_at: Some(self.inner.clock.now_unix()),
            ..filter.clone()
        };
        Ok(self.inner.config.store.list_records(&live).await?)
    }

    async fn fetch(&self, id: &str) -> Result<StoredRecord, RecordsError> {
        let record = self
            .inner
            .config
            .store
            .get_record(id)
            .await?
            .ok_or(RecordsError::NotFound)?;
        if record.meta.expires_at <= self.inner.clock.now_unix() {
            // Past its retention: as good as purged, whether or not the purge has run yet.
            return Err(RecordsError::NotFound);
        }
        Ok(record)
    }

    /// Read one record's content for `purpose`, audited as `record_accessed` (or
    /// `record_exported` when `export`).
    pub async fn read(
        &self,
        actor: &Actor,
        id: &str,
        purpose: &str,
        export: bool,
    ) -> Result<(RecordMeta, Value), RecordsError> {
        let record = self.fetch(id).await?;
        let kind = if export {
            AuditKind::RecordExported
        } else {
            AuditKind::RecordAccessed
        };
        let mut event = self.event(kind, Outcome::Ok, actor);
        event.record = Some(record.meta.id.clone());
        event.subject = Some(self.subject_ref(&record.meta.subject));
        event.call_id = Some(record.meta.call_id.clone());
        event.purpose = Some(self.audited_purpose(purpose));
        event.function = Some(record.meta.kind.clone());
        let content = match self.decrypt(&record).await {
            Ok(content) => content,
            Err(error) => return Err(self.unreadable(event, error).await),
        };
        self.write(event).await?;
        Ok((record.meta, content))
    }

    /// One record's metadata, no content (the security console's record page), audited as
    /// `record_accessed` with function `metadata`, the record and its masked subject; no
    /// purpose is needed, as for [`list`](Self::list).
    pub async fn describe(&self, actor: &Actor, id: &str) -> Result<RecordMeta, RecordsError> {
        let record = self.fetch(id).await?;
        let mut event = self.event(AuditKind::RecordAccessed, Outcome::Ok, actor);
        event.record = Some(record.meta.id.clone());
        event.subject = Some(self.subject_ref(&record.meta.subject));
        event.call_id = Some(record.meta.call_id.clone());
        event.function = Some("metadata".into());
        self.write(event).await?;
        Ok(record.meta)
    }

    /// The metadata of every record of `subject`, all pages.
    async fn subject_records(&self, subject: &str) -> Result<Vec<RecordMeta>, RecordsError> {
        let mut all = Vec::new();
        loop {
            let page = self
                .inner
                .config
                .store
                .list_records(&RecordFilter {
                    subject: Some(subject.to_string()),
                    limit: Some(1000),
                    after: all.last().map(|m: &RecordMeta| m.id.clone()),
                    ..RecordFilter::default()
                })
                .await?;
            if page.is_empty() {
                return Ok(all);
            }
            all.extend(page);
        }
    }

    /// Put an access that failed because a record did not decrypt (tampered, swapped, its key
    /// shredded or not configured) on record — a sign of tampering belongs in the trail, not
    /// only in a log line — and hand back the error.
    async fn unreadable(
        &self,
        mut event: voxguard_guard::AuditEvent,
        error: RecordsError,
    ) -> RecordsError {
        event.outcome = Some(Outcome::Failed);
        event.reason = Some(UNREADABLE.into());
        match self.write(event).await {
            Ok(()) => error,
            Err(unavailable) => unavailable,
        }
    }

    /// Every record of `subject` with its content (a data-subject access export), audited as
    /// one `record_exported` event.
    pub async fn export_subject(
        &self,
        actor: &Actor,
        subject: &str,
        purpose: &str,
    ) -> Result<Vec<(RecordMeta, Value)>, RecordsError> {
        if !valid_subject(subject) {
            return Err(RecordsError::InvalidSubject);
        }
        let store = &self.inner.config.store;
        let now = self.inner.clock.now_unix();
        let mut out = Vec::new();
        for meta in self.subject_records(subject).await? {
            if meta.expires_at <= now {
                continue;
            }
            if let Some(record) = store.get_record(&meta.id).await? {
                let content = match self.decrypt(&record).await {
                    Ok(content) => content,
                    Err(error) => {
                        let mut event = self.event(AuditKind::RecordExported, Outcome::Ok, actor);
                        event.record = Some(record.meta.id.clone());
                        event.subject = Some(self.subject_ref(subject));
                        event.purpose = Some(self.audited_purpose(purpose));
                        event.function = Some("subject_export".into());
                        return Err(self.unreadable(event, error).await);
                    }
                };
                out.push((record.meta, content));
            }
        }
        let mut event = self.event(AuditKind::RecordExported, Outcome::Ok, actor);
        event.subject = Some(self.subject_ref(subject));
        event.purpose = Some(self.audited_purpose(purpose));
        event.function = Some("subject_export".into());
        event.arguments = Some(json!({ "records": out.len() }));
        self.write(event).await?;
        Ok(out)
    }

    /// Delete one record, audited as `record_deleted` — before the deletion, so that nothing is
    /// ever deleted without a trace (an audit failure deletes nothing).
    pub async fn delete(&self, actor: &Actor, id: &str) -> Result<RecordMeta, RecordsError> {
        let store = &self.inner.config.store;
        let meta = store
            .get_record(id)
            .await?
            .ok_or(RecordsError::NotFound)?
            .meta;
        let mut event = self.event(AuditKind::RecordDeleted, Outcome::Ok, actor);
        event.record = Some(meta.id.clone());
        event.subject = Some(self.subject_ref(&meta.subject));
        event.function = Some(meta.kind.clone());
        self.write(event).await?;
        store.delete_record(id).await?.ok_or(RecordsError::NotFound)
    }

    /// Delete everything of `subject`: its records (and those of the calls it took part in),
    /// its data key (crypto-shredding), the sessions of those calls and its attempt counters.
    /// The `subject_deleted` event is the tombstone: counts and a pseudonym, no personal data.
    pub async fn delete_subject(
        &self,
        actor: &Actor,
        subject: &str,
    ) -> Result<DeletionReport, RecordsError> {
        if !valid_subject(subject) {
            return Err(RecordsError::InvalidSubject);
        }
        let store = &self.inner.config.store;
        // The agents of the subject's calls, to find the calls' sessions.
        let mut calls: Vec<(String, String)> = Vec::new();
        for meta in self.subject_records(subject).await? {
            let pair = (meta.agent, meta.call_id);
            if !calls.contains(&pair) {
                calls.push(pair);
            }
        }
        // On record before anything is deleted (an audit failure deletes nothing); the
        // tombstone with the counts follows.
        let mut requested = self.event(AuditKind::SubjectDeleted, Outcome::Requested, actor);
        requested.subject = Some(self.subject_ref(subject));
        self.write(requested).await?;
        let mut deleted = store.delete_subject(subject).await;
        for _ in 0..3 {
            // The rows are gone but readers kept the WAL from being truncated: the deletion is
            // idempotent, so run it again until the file holds no copy (counts of a retry are
            // what remained, usually none; the first attempt's are in its error-free runs).
            if !matches!(deleted, Err(StoreError::ScrubIncomplete)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            deleted = store.delete_subject(subject).await;
        }
        let deleted = deleted?;
        let mut report = DeletionReport {
            records: deleted.records,
            keys: deleted.keys,
            ..DeletionReport::default()
        };
        if let Some(cleanup) = &self.inner.cleanup {
            // Counters first: clearing the sessions afterwards also truncates the session
            // database's WAL, which would otherwise still hold the counter rows' old copies.
            let mut keyed: Vec<(&str, &SecretKey)> = cleanup
                .attempt_keys
                .iter()
                .map(|(agent, key)| (agent.as_str(), key))
                .collect();
            if let Some(default) = &cleanup.default_key {
                for (agent, _) in &calls {
                    if !keyed.iter().any(|(known, _)| known == agent) {
                        keyed.push((agent.as_str(), default));
                    }
                }
            }
            for (agent, key) in keyed {
                if let Some(row) = crate::verify_policy::attempt_row_key(key, agent, subject) {
                    cleanup.attempts.reset_attempts(&row).await?;
                    report.attempt_counters += 1;
                }
            }
            for (agent, call_id) in &calls {
                report.sessions += cleanup
                    .sessions
                    .clear_prefix(&format!("{agent}/{call_id}/"))
                    .await?;
            }
        }
        let mut event = self.event(AuditKind::SubjectDeleted, Outcome::Ok, actor);
        event.subject = Some(self.subject_ref(subject));
        event.arguments = Some(serde_json::to_value(&report).unwrap_or(Value::Null));
        self.write(event).await?;
        Ok(report)
    }

    /// Delete every record past its retention (or, with `dry_run`, count them). A real run
    /// writes one `records_purged` event with the counts per kind, never content.
    pub async fn purge(
        &self,
        actor: &Actor,
        dry_run: bool,
    ) -> Result<BTreeMap<String, u64>, RecordsError> {
        let now = self.inner.clock.now_unix();
        let store = &self.inner.config.store;
        if dry_run {
            return Ok(store.count_expired_records(now).await?);
        }
        let counts = store.purge_expired_records(now, PURGE_BATCH).await?;
        let mut event = self.event(AuditKind::RecordsPurged, Outcome::Ok, actor);
        event.arguments = Some(serde_json::to_value(&counts).unwrap_or(Value::Null));
        self.write(event).await?;
        Ok(counts)
    }

    /// Re-wrap every data key still under a previous records key with the current one
    /// (bodies are not re-encrypted). Returns how many keys were re-wrapped; audited as
    /// `records_key_rotated`.
    pub async fn rotate(&self, actor: &Actor) -> Result<u64, RecordsError> {
        let store = &self.inner.config.store;
        let keyring = &self.inner.config.keyring;
        let current = keyring.current().id().to_string();
        let mut rewrapped = 0u64;
        loop {
            let page = store.keys_not_under(&current, 500).await?;
            if page.is_empty() {
                break;
            }
            let mut progressed = false;
            for stored in page {
                let wrapped = WrappedKey {
                    kek_id: stored.kek_id.clone(),
                    blob: stored.blob.clone(),
                };
                let Some(fresh) = keyring.rewrap(&stored.subject, &wrapped)? else {
                    continue;
                };
                if store
                    .rewrap_subject_key(
                        &stored.kek_id,
                        &StoredKey {
                            subject: stored.subject.clone(),
                            kek_id: fresh.kek_id,
                            blob: fresh.blob,
                        },
                    )
                    .await?
                {
                    rewrapped += 1;
                    progressed = true;
                }
            }
            if !progressed {
                break;
            }
        }
        let mut event = self.event(AuditKind::RecordsKeyRotated, Outcome::Ok, actor);
        event.arguments = Some(json!({ "rewrapped": rewrapped, "key_id": current }));
        self.write(event).await?;
        Ok(rewrapped)
    }

    /// The purpose as audited: free text an operator typed, so redacted like a stored record
    /// (card data, SSNs, phone numbers, dates of birth; every date under HIPAA), then trimmed to
    /// at most 200 characters without control characters.
    fn audited_purpose(&self, purpose: &str) -> String {
        self.redact_text(purpose)
            .trim()
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect()
    }

    /// The runtime's own actor for automatic work (the retention purge).
    pub(crate) fn runtime_actor() -> Actor {
        Actor {
            operator: "voxguard".into(),
            role: "runtime".into(),
            source: None,
            request_id: None,
        }
    }
}

/// Lowercase letters after `rec_` in a record id.
const RECORD_ID_LETTERS: usize = 26;

/// A random record id: `rec_` + 26 lowercase letters (~122 bits; letters only, so the log
/// redactor never takes an id for a card number).
fn new_record_id() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::thread_rng();
    let tail: String = (0..RECORD_ID_LETTERS)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect();
    format!("rec_{tail}")
}

/// Every date-shaped run and identifier remnant in every string of `value` masked — object
/// keys included (`{"visits": {"2026-12-03": …}}`): a key that changes is renamed, numbered
/// when two would collide.
fn redact_all_dates(value: &mut Value) {
    match value {
        Value::String(text) => *text = redact_dates(text),
        Value::Array(items) => items.iter_mut().for_each(redact_all_dates),
        Value::Object(map) => {
            let entries = std::mem::take(map);
            for (key, mut child) in entries {
                redact_all_dates(&mut child);
                let mut key = redact_dates(&key);
                let mut n = 2;
                while map.contains_key(&key) {
                    key = format!("{} {n}", redact_dates(&key));
                    n += 1;
                }
                map.insert(key, child);
            }
        }
        _ => {}
    }
}

/// The month names of written-out dates.
const MONTHS: &str = "jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?";

/// HIPAA's extra masking of free text:
/// - every date, in any of `1984-03-12`, `2026-12-03T10:30:00Z`, `03/12/1984`, `12.03.84`,
///   `19840312`, `March 12, 1984`, `12 March 1984`, `12-Mar-1984`;
/// - the last four digits the default redaction keeps of an SSN or a phone number
///   (`***-**-6789`, `***-***-4567`): an SSN's last four is often the verification answer;
/// - four digits said after "SSN", "social (security)" or "last four" ("the last four of my
///   social are 6789").
fn redact_dates(text: &str) -> String {
    static PATTERNS: std::sync::OnceLock<Option<(regex::Regex, regex::Regex)>> =
        std::sync::OnceLock::new();
    let patterns = PATTERNS.get_or_init(|| {
        let dates = regex::Regex::new(&format!(
            r"(?ix)
            \b\d{{4}}[-/.]\d{{1,2}}[-/.]\d{{1,2}}(?:[t\ ]\d{{1,2}}:\d{{2}}(?::\d{{2}}(?:\.\d+)?)?(?:z|[+-]\d{{2}}:?\d{{2}})?)?
          | \b\d{{1,2}}[-/.]\d{{1,2}}[-/.]\d{{2,4}}\b
          | \b(?:19|20)\d{{2}}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\b
          | \b(?:{MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{2,4}}\b
          | \b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:{MONTHS})\.?,?\s+\d{{2,4}}\b
          | \b\d{{1,2}}[-/.\ ](?:{MONTHS})\.?[-/.\ ]\d{{2,4}}\b
          | \*{{3}}-\*{{2,3}}-\d{{4}}\b"
        ))
        .ok()?;
        let said = regex::Regex::new(
            r"(?i)\b(ssn|social(?:\s+security)?(?:\s+number)?|last\s+(?:four|4)(?:\s+digits)?)\b([^\d
]{0,40}?)\b\d{4}\b",
        )
        .ok()?;
        Some((dates, said))
    });
    match patterns {
        Some((dates, said)) => {
            let spoken = said.replace_all(text, "${1}${2}[REDACTED]");
            dates
                .replace_all(&spoken, voxguard_guard::REDACTED)
                .into_owned()
        }
        // Fail closed: patterns that did not compile mask the whole text.
        None => voxguard_guard::REDACTED.to_string(),
    }
}

#[cfg(test)]
mod tests;
