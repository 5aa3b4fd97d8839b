//! Durable, tamper-evident audit sinks: SQLite (the default), PostgreSQL (one chain shared by
//! several replicas) and JSON lines for log shippers.
//!
//! This module owns the [`AuditSink`] trait and its backends, [`SqliteAuditLog`],
//! [`PgAuditLog`] and [`JsonlAuditLog`]. Each sink has a single writer — a background task
//! (SQLite, PostgreSQL) or thread (JSON lines) that owns the connection or file and the
//! [`Chain`] — fed through a channel. [`append`](AuditSink::append) returns only after the
//! writer has made the event durable per the sink's [`Durability`]; the writer commits whatever
//! is queued as one group (one transaction, one write and at most one `fsync`), then
//! acknowledges each event. With an [`AuditKey`], signed
//! [`Checkpoint`](voxguard_guard::audit::Checkpoint)s are written every `checkpoint_every`
//! records (and at each [`flush`](AuditSink::flush)), so that cutting off the tail is
//! detectable. Every sink verifies what it stored with [`voxguard_guard::audit::verify`]. This
//! module must not decide what is audited, must not redact (events arrive already masked and
//! redacted), must never build SQL from event data, and its errors must not show paths, SQL or
//! event content through `Display`.
//!
//! This file holds what the backends share: the trait, [`Durability`], the writer's command
//! channel and group-commit batch, the chain's [`Tail`], the checkpoint schedule and the strict
//! decoding of a stored row (and of a stored checkpoint). No sink reads the wall clock: a checkpoint carries the `time_ms`
//! of the record it checkpoints, which the runtime's clock stamped on the event. Each backend
//! lives in its own file ([`sqlite`], [`postgres`], [`jsonl`]); nothing here may know a
//! backend's storage format.

use tokio::sync::{mpsc, oneshot};
use voxguard_guard::audit::{
    parse_canonical_event, AuditEvent, AuditKey, AuditRecord, Chain, Checkpoint, VerifyReport,
};

use crate::StoreError;

mod jsonl;
mod postgres;
mod sqlite;

pub use jsonl::JsonlAuditLog;
pub use postgres::PgAuditLog;
pub use sqlite::{SqliteAuditLog, AUDIT_DB_FILE_NAME};

#[cfg(test)]
mod postgres_tests;
#[cfg(test)]
mod tests;

/// How many queued commands the writer takes into one group commit at most.
const MAX_BATCH: usize = 512;

/// How many commands may wait for the writer before `append` waits for room.
const QUEUE_CAPACITY: usize = 4096;

/// How hard a sink works to keep an acknowledged event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Written to the operating system before the acknowledgement (SQLite: WAL with
    /// `synchronous=NORMAL`): survives a crash or `kill -9` of the process, not a power loss.
    /// PostgreSQL: committed with the server's own `synchronous_commit` setting (its default,
    /// `on`, makes an acknowledged commit durable on the server, power loss included).
    #[default]
    Normal,
    /// Also forced to stable storage before the acknowledgement (SQLite: `synchronous=FULL`;
    /// JSON lines: `fsync`), once per group of queued events: survives a power loss.
    /// PostgreSQL: each group's transaction sets `synchronous_commit = on`, so the commit waits
    /// for the server's WAL flush (and for synchronous standbys, if the server has any) even
    /// where the server's default is weaker; the server's own settings (`fsync`, replication)
    /// govern the rest.
    Fsync,
}

/// Where audit records go.
///
/// Sinks are shared by every request (behind an `Arc`) and keep the chain contiguous however
/// many tasks append at once.
#[async_trait::async_trait]
pub trait AuditSink: Send + Sync + 'static {
    /// Append `event` and return the stored record, only once it is durable per the sink's
    /// [`Durability`]: an acknowledged event is never lost to a process kill. Send the response
    /// that depends on the event only after this returns `Ok`. If the caller stops waiting, the
    /// event may still be stored.
    async fn append(&self, event: AuditEvent) -> Result<AuditRecord, StoreError>;

    /// Wait until every event appended before this call is stored, sign a checkpoint of the
    /// newest record (when the sink has a key) and ask the storage to sync to disk, whatever
    /// the [`Durability`]. Call it at shutdown.
    async fn flush(&self) -> Result<(), StoreError>;

    /// The backend's name: `"sqlite"`, `"postgres"` or `"jsonl"`.
    fn backend(&self) -> &'static str;

    /// Up to `limit` stored records with a sequence number of at least `from`, in order, for
    /// reading the trail over the records API (role `auditor`). `Ok(None)` when the sink cannot
    /// be read back this way (the JSON-lines sink: read its file).
    async fn read_page(
        &self,
        from: u64,
        limit: u32,
    ) -> Result<Option<Vec<AuditRecord>>, StoreError> {
        let _ = (from, limit);
        Ok(None)
    }

    /// Verify the stored chain from sequence number `from` with the key this sink signs its
    /// checkpoints with (checkpoints unchecked without one): the very check `voxguard audit
    /// verify` runs on the same storage (`SqliteAuditLog::verify_path`,
    /// `PgAuditLog::verify_url`), reading the records in pages. `Ok(None)` when the sink cannot
    /// be verified this way (the JSON-lines sink: run the command on its file).
    async fn verify_stored(&self, from: u64) -> Result<Option<VerifyReport>, StoreError> {
        let _ = from;
        Ok(None)
    }

    /// The newest stored checkpoint and whether its signature is valid under this sink's key
    /// (`false` without a key). `Ok(None)` when there is none, or when the sink cannot be read
    /// back this way (the JSON-lines sink).
    async fn last_checkpoint(&self) -> Result<Option<(Checkpoint, bool)>, StoreError> {
        Ok(None)
    }
}

/// A request to a sink's writer.
pub(super) enum Command {
    Append {
        event: Box<AuditEvent>,
        ack: oneshot::Sender<Result<AuditRecord, StoreError>>,
    },
    Flush {
        ack: oneshot::Sender<Result<(), StoreError>>,
    },
}

/// One group commit's worth of commands, split by kind (appends keep their order).
#[derive(Default)]
pub(super) struct Batch {
    pub(super) events: Vec<AuditEvent>,
    append_acks: Vec<oneshot::Sender<Result<AuditRecord, StoreError>>>,
    flush_acks: Vec<oneshot::Sender<Result<(), StoreError>>>,
}

impl Batch {
    pub(super) fn new(commands: Vec<Command>) -> Self {
        let mut batch = Self::default();
        for command in commands {
            match command {
                Command::Append { event, ack } => {
                    batch.events.push(*event);
                    batch.append_acks.push(ack);
                }
                Command::Flush { ack } => batch.flush_acks.push(ack),
            }
        }
        batch
    }

    /// Whether a flush asked for this group to be sealed with a checkpoint and a sync.
    pub(super) fn seal(&self) -> bool {
        !self.flush_acks.is_empty()
    }

    /// Acknowledge every command: appends get their records (or `failed`), flushes get
    /// `flushed`. A caller that stopped waiting is ignored.
    pub(super) fn acknowledge(
        self,
        stored: Result<Vec<AuditRecord>, &dyn std::error::Error>,
        flushed: Result<(), &dyn std::error::Error>,
    ) {
        match stored {
            Ok(records) => {
                for (ack, record) in self.append_acks.into_iter().zip(records) {
                    let _ = ack.send(Ok(record));
                }
            }
            Err(err) => {
                for ack in self.append_acks {
                    let _ = ack.send(Err(copy_error(err)));
                }
            }
        }
        for ack in self.flush_acks {
            let _ = ack.send(flushed.map_err(copy_error));
        }
    }
}

/// On a writer thread: wait for commands, hand each group of queued ones (at most
/// [`MAX_BATCH`]) to `commit`, until every sender is gone.
pub(super) fn each_batch_blocking(mut rx: mpsc::Receiver<Command>, mut commit: impl FnMut(Batch)) {
    let mut commands = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        commands.push(first);
        while commands.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(command) => commands.push(command),
                Err(_) => break,
            }
        }
        commit(Batch::new(std::mem::take(&mut commands)));
    }
}

/// A [`StoreError::Unavailable`] carrying the text of `err` (each waiting caller gets its own).
fn copy_error(err: &dyn std::error::Error) -> StoreError {
    StoreError::unavailable(std::io::Error::other(err.to_string()))
}

/// The error every caller gets once the writer is gone.
pub(super) fn writer_stopped() -> StoreError {
    StoreError::unavailable(std::io::Error::other("the audit writer has stopped"))
}

/// A writer's [`Chain`] and the time of its newest record.
///
/// A checkpoint is stamped with the `time_ms` of the record it checkpoints, never with a read of
/// the wall clock, so a checkpoint of the head (at a flush, possibly of a record stored by an
/// earlier run) needs that record's time at hand.
#[derive(Clone)]
pub(super) struct Tail {
    chain: Chain,
    time_ms: u64,
}

impl Tail {
    /// Continue after the stored record `(seq, hash, time_ms)`, or from the genesis.
    pub(super) fn resume(last: Option<(u64, String, u64)>) -> Self {
        let time_ms = last.as_ref().map_or(0, |(_, _, time_ms)| *time_ms);
        Self {
            chain: Chain::resume(last.map(|(seq, hash, _)| (seq, hash))),
            time_ms,
        }
    }

    /// Chain `event` as the next record.
    pub(super) fn append(&mut self, event: AuditEvent) -> AuditRecord {
        self.append_canonical(event).0
    }

    /// [`append`](Self::append), with the record's canonical event text (what is stored).
    pub(super) fn append_canonical(&mut self, event: AuditEvent) -> (AuditRecord, String) {
        let (record, canonical) = self.chain.append_canonical(event);
        self.time_ms = record.event.time_ms;
        (record, canonical)
    }

    /// The newest record's sequence number (0 for an empty chain), hash and `time_ms`.
    pub(super) fn head(&self) -> (u64, &str, u64) {
        (
            self.chain.next_seq().saturating_sub(1),
            self.chain.last_hash(),
            self.time_ms,
        )
    }
}

/// Whether the record at `seq` gets a periodic checkpoint.
pub(super) fn checkpoint_due(key: Option<&AuditKey>, every: u64, seq: u64) -> bool {
    key.is_some() && every > 0 && seq % every == 0
}

/// Decode a stored record from its columns, strictly: the event must be in canonical form and
/// agree with the copied `time_ms` and `kind` columns. The record's sequence number is the one
/// inside the hashed event (the row's position is only the storage order the verifier checks
/// it against).
pub(super) fn decode_stored(
    time_ms: i64,
    kind: &str,
    event_text: &str,
    prev_hash: String,
    hash: String,
) -> Result<AuditRecord, StoreError> {
    let (seq, event) =
        parse_canonical_event(event_text).map_err(|source| StoreError::Corrupt { source })?;
    if event.kind.as_str() != kind || i64::try_from(event.time_ms).ok() != Some(time_ms) {
        return Err(StoreError::unavailable(std::io::Error::other(
            "an audit row's columns disagree with its event",
        )));
    }
    Ok(AuditRecord {
        seq,
        event,
        prev_hash,
        hash,
    })
}

/// A stored checkpoint from its columns (`seq, hash, time_ms, mac`).
pub(super) fn decode_checkpoint(
    (seq, hash, time_ms, mac): (i64, String, i64, String),
) -> Checkpoint {
    Checkpoint {
        seq: u64::try_from(seq).unwrap_or(0),
        hash,
        time_ms: u64::try_from(time_ms).unwrap_or(0),
        mac,
    }
}

/// The newest stored checkpoint's row decoded, and whether its signature is valid under `key`
/// (`false` without one): what [`AuditSink::last_checkpoint`] answers.
pub(super) fn checked_checkpoint(
    row: (i64, String, i64, String),
    key: Option<&AuditKey>,
) -> (Checkpoint, bool) {
    let checkpoint = decode_checkpoint(row);
    let valid = key.is_some_and(|key| checkpoint.verify(key));
    (checkpoint, valid)
}

/// The sending half every sink keeps.
pub(super) struct Handle {
    pub(super) tx: mpsc::Sender<Command>,
}

impl Handle {
    pub(super) async fn append(&self, event: AuditEvent) -> Result<AuditRecord, StoreError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Command::Append {
                event: Box::new(event),
                ack,
            })
            .await
            .map_err(|_| writer_stopped())?;
        done.await.map_err(|_| writer_stopped())?
    }

    pub(super) async fn flush(&self) -> Result<(), StoreError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Command::Flush { ack })
            .await
            .map_err(|_| writer_stopped())?;
        done.await.map_err(|_| writer_stopped())?
    }
}
