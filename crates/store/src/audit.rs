//! Durable, tamper-evident audit sinks: SQLite (the default) and JSON lines for log shippers.
//!
//! This module owns the [`AuditSink`] trait and its two backends, [`SqliteAuditLog`] and
//! [`JsonlAuditLog`]. Each sink has a single writer — a background task (SQLite) or thread
//! (JSON lines) that owns the connection or file and the [`Chain`] — fed through a channel.
//! [`append`](AuditSink::append) returns only after the writer has made the event durable per
//! the sink's [`Durability`]; the writer commits whatever is queued as one group (one
//! transaction, one write and at most one `fsync`), then acknowledges each event. With an
//! [`AuditKey`], signed [`Checkpoint`]s are written every `checkpoint_every` records (and at each
//! [`flush`](AuditSink::flush)), so that cutting off the tail is detectable. Both sinks verify
//! what they stored with [`voxguard_guard::audit::verify`]. This module must not decide what is
//! audited, must not redact (events arrive already masked and redacted), must never build SQL
//! from event data, and its errors must not show paths, SQL or event content through `Display`.

use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{ConnectOptions as _, Connection as _, Row as _};
use tokio::sync::{mpsc, oneshot};
use voxguard_guard::audit::{
    canonical_event_string, parse_canonical_event, AuditEvent, AuditKey, AuditRecord, Chain,
    Checkpoint, Verifier, VerifyReport,
};

use crate::sqlite::{create_private_dir, restrict_permissions};
use crate::StoreError;

/// File name of the audit database inside the directory given to
/// [`SqliteAuditLog::open_in_dir`]. It is separate from the session database, so the audit
/// log's durability settings never slow session reads and writes.
pub const AUDIT_DB_FILE_NAME: &str = "audit.db";

/// How many queued commands the writer takes into one group commit at most.
const MAX_BATCH: usize = 512;

/// How many commands may wait for the writer before `append` waits for room.
const QUEUE_CAPACITY: usize = 4096;

/// Rows read per query when verifying or listing a SQLite log.
const PAGE: i64 = 1000;

/// How long a connection waits for another writer's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Reader connections of a live [`SqliteAuditLog`].
const READERS: u32 = 2;

/// Audit schema, applied on every open; each statement is idempotent. `event` holds exactly
/// the canonical bytes that are hashed (`canonical_event(seq, event)`), so a record can be
/// re-hashed with standard tools; `time_ms` and `kind` are copies for querying.
const SCHEMA: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS audit_log (
        seq       INTEGER PRIMARY KEY,
        time_ms   INTEGER NOT NULL,
        kind      TEXT    NOT NULL,
        event     TEXT    NOT NULL,
        prev_hash TEXT    NOT NULL,
        hash      TEXT    NOT NULL
    ) STRICT",
    "CREATE TABLE IF NOT EXISTS audit_checkpoints (
        seq     INTEGER PRIMARY KEY,
        hash    TEXT    NOT NULL,
        time_ms INTEGER NOT NULL,
        mac     TEXT    NOT NULL
    ) STRICT",
];

/// How hard a sink works to keep an acknowledged event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Written to the operating system before the acknowledgement (SQLite: WAL with
    /// `synchronous=NORMAL`): survives a crash or `kill -9` of the process, not a power loss.
    #[default]
    Normal,
    /// Also forced to stable storage before the acknowledgement (SQLite: `synchronous=FULL`;
    /// JSON lines: `fsync`), once per group of queued events: survives a power loss.
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

    /// The backend's name: `"sqlite"` or `"jsonl"`.
    fn backend(&self) -> &'static str;
}

/// A request to a sink's writer.
enum Command {
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
struct Batch {
    events: Vec<AuditEvent>,
    append_acks: Vec<oneshot::Sender<Result<AuditRecord, StoreError>>>,
    flush_acks: Vec<oneshot::Sender<Result<(), StoreError>>>,
}

impl Batch {
    fn new(commands: Vec<Command>) -> Self {
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

    fn seal(&self) -> bool {
        !self.flush_acks.is_empty()
    }

    /// Acknowledge every command: appends get their records (or `failed`), flushes get
    /// `flushed`. A caller that stopped waiting is ignored.
    fn acknowledge(
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

/// A [`StoreError::Unavailable`] carrying the text of `err` (each waiting caller gets its own).
fn copy_error(err: &dyn std::error::Error) -> StoreError {
    StoreError::unavailable(std::io::Error::other(err.to_string()))
}

fn writer_stopped() -> StoreError {
    StoreError::unavailable(std::io::Error::other("the audit writer has stopped"))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

/// Whether the record at `seq` gets a periodic checkpoint.
fn checkpoint_due(key: Option<&AuditKey>, every: u64, seq: u64) -> bool {
    key.is_some() && every > 0 && seq % every == 0
}

/// A value as a SQLite integer, saturating at `i64::MAX`.
fn to_sql(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The sending half every sink keeps.
struct Handle {
    tx: mpsc::Sender<Command>,
}

impl Handle {
    async fn append(&self, event: AuditEvent) -> Result<AuditRecord, StoreError> {
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

    async fn flush(&self) -> Result<(), StoreError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Command::Flush { ack })
            .await
            .map_err(|_| writer_stopped())?;
        done.await.map_err(|_| writer_stopped())?
    }
}

// ---------------------------------------------------------------------------------------------
// SQLite
// ---------------------------------------------------------------------------------------------

/// The audit trail in its own SQLite database (WAL), the default sink.
///
/// Records live in `audit_log`, checkpoints in `audit_checkpoints`. Each group commit is one
/// `BEGIN IMMEDIATE` transaction that first re-reads the newest record, so even another process
/// appending to the same file can never fork the chain (it can only make this writer continue
/// after its records).
pub struct SqliteAuditLog {
    handle: Handle,
    readers: SqlitePool,
    writer: tokio::task::JoinHandle<()>,
    durability: Durability,
    /// The checkpointer stops once this is dropped.
    _alive: Arc<()>,
}

impl SqliteAuditLog {
    /// Open (or create) the audit database at `path` and start its writer, which resumes the
    /// chain after the last stored record.
    ///
    /// With a `key`, a signed checkpoint is stored every `checkpoint_every` records (0: only at
    /// [`flush`](AuditSink::flush)). The parent directory must exist; the file gets mode `0600`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when the database cannot be opened or set up.
    pub async fn open(
        path: impl AsRef<Path>,
        durability: Durability,
        key: Option<AuditKey>,
        checkpoint_every: u64,
    ) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let synchronous = match durability {
            Durability::Normal => SqliteSynchronous::Normal,
            Durability::Fsync => SqliteSynchronous::Full,
        };
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous)
            .busy_timeout(BUSY_TIMEOUT);
        // The writer never checkpoints the WAL itself (SQLite's automatic checkpoint would copy
        // the WAL into the database and sync it inside a commit, stalling every request waiting
        // for its event: the 99th-percentile latency under load); a checkpointer with its own
        // connection does it beside the writer.
        let mut conn = options
            .clone()
            .pragma("wal_autocheckpoint", "0")
            // When the WAL starts over, its file is cut back to this size (bytes).
            .pragma("journal_size_limit", "33554432")
            .connect()
            .await
            .map_err(StoreError::unavailable)?;
        for statement in SCHEMA {
            sqlx::query(statement)
                .execute(&mut conn)
                .await
                .map_err(StoreError::unavailable)?;
        }
        restrict_permissions(path).await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(READERS)
            .acquire_timeout(BUSY_TIMEOUT * 2)
            .connect_with(reader_options(path))
            .await
            .map_err(StoreError::unavailable)?;
        // A short busy timeout: a RESTART checkpoint waits for readers while holding the
        // writer back; better to give up and try again at the next tick.
        let checkpointer = options
            .busy_timeout(Duration::from_millis(50))
            .connect()
            .await
            .map_err(StoreError::unavailable)?;
        let alive = Arc::new(());
        tokio::spawn(checkpoint_wal(checkpointer, Arc::downgrade(&alive)));
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let writer = SqliteWriter {
            conn,
            key,
            checkpoint_every,
        };
        Ok(Self {
            handle: Handle { tx },
            readers,
            writer: tokio::spawn(writer.run(rx)),
            durability,
            _alive: alive,
        })
    }

    /// Create `dir` if missing (mode `0700` on unix) and open `dir/audit.db` as
    /// [`SqliteAuditLog::open`] does.
    ///
    /// # Errors
    ///
    /// [`StoreError::Io`] when the directory cannot be created, else as
    /// [`SqliteAuditLog::open`].
    pub async fn open_in_dir(
        dir: impl AsRef<Path>,
        durability: Durability,
        key: Option<AuditKey>,
        checkpoint_every: u64,
    ) -> Result<Self, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        let path = dir.join(AUDIT_DB_FILE_NAME);
        tokio::task::spawn_blocking(move || create_private_dir(&dir))
            .await
            .map_err(|join| StoreError::Io {
                source: std::io::Error::other(join),
            })?
            .map_err(|source| StoreError::Io { source })?;
        Self::open(path, durability, key, checkpoint_every).await
    }

    /// This sink's durability mode.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Every stored record with a sequence number of at least `from`, in order (loads them
    /// all; use [`SqliteAuditLog::verify`] to check a large log).
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] when a stored event is not canonical JSON,
    /// [`StoreError::Unavailable`] when the database fails or a row has the wrong types.
    pub async fn records(&self, from: u64) -> Result<Vec<AuditRecord>, StoreError> {
        let mut records = Vec::new();
        let mut next = to_sql(from);
        loop {
            let rows = record_page(&self.readers, next).await?;
            let Some(last) = rows.last() else {
                return Ok(records);
            };
            next = row_seq(last).saturating_add(1);
            for row in &rows {
                records.push(decode_record(row)?);
            }
        }
    }

    /// Every stored checkpoint, by sequence number.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when the database fails or a row has the wrong types.
    pub async fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        read_checkpoints(&self.readers).await
    }

    /// Verify the stored chain from sequence number `from` (see
    /// [`voxguard_guard::audit::verify`]); checkpoints are only checked with the `key`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when the database cannot be read; damage to the records
    /// themselves is a [`VerifyReport::Broken`], not an error.
    pub async fn verify(
        &self,
        key: Option<&AuditKey>,
        from: u64,
    ) -> Result<VerifyReport, StoreError> {
        verify_pool(&self.readers, key, from).await
    }

    /// Verify the audit database at `path` without starting a writer (for `voxguard audit
    /// verify`). The file must exist; it is not created.
    ///
    /// # Errors
    ///
    /// As [`SqliteAuditLog::verify`], and [`StoreError::Unavailable`] when the file cannot be
    /// opened.
    pub async fn verify_path(
        path: impl AsRef<Path>,
        key: Option<&AuditKey>,
        from: u64,
    ) -> Result<VerifyReport, StoreError> {
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                SqliteConnectOptions::new()
                    .filename(path.as_ref())
                    .create_if_missing(false)
                    .busy_timeout(BUSY_TIMEOUT),
            )
            .await
            .map_err(StoreError::unavailable)?;
        let report = verify_pool(&pool, key, from).await;
        pool.close().await;
        report
    }

    /// Stop accepting events, wait for the writer to store everything queued, and close the
    /// database.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when the writer failed.
    pub async fn close(self) -> Result<(), StoreError> {
        let Self {
            handle,
            readers,
            writer,
            ..
        } = self;
        drop(handle);
        let stopped = writer.await.map_err(StoreError::unavailable);
        readers.close().await;
        stopped
    }
}

impl std::fmt::Debug for SqliteAuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteAuditLog")
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl AuditSink for SqliteAuditLog {
    async fn append(&self, event: AuditEvent) -> Result<AuditRecord, StoreError> {
        self.handle.append(event).await
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.handle.flush().await
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }
}

/// Options of a reader connection: read-only, never creating anything.
/// How often the checkpointer moves the WAL into the database file.
const WAL_CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// WAL frames (pages, 4 KiB each) past which the checkpointer makes the WAL start over.
const WAL_RESTART_FRAMES: i64 = 4096;

/// Move the audit WAL into the database every [`WAL_CHECKPOINT_EVERY`] (a PASSIVE checkpoint:
/// it never waits for, nor blocks, the writer) until the log is dropped.
async fn checkpoint_wal(mut conn: SqliteConnection, alive: std::sync::Weak<()>) {
    let mut tick = tokio::time::interval(WAL_CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if alive.strong_count() == 0 {
            break;
        }
        // A failed checkpoint leaves the WAL to grow until the next one succeeds; every
        // committed event is already in the WAL, so nothing is lost either way.
        let passive: Result<(i64, i64, i64), _> = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&mut conn)
            .await;
        // Under a steady stream of commits a passive checkpoint rarely catches up completely,
        // and the WAL only starts over after one that did. Past the limit, a RESTART checkpoint
        // finishes the little that is left, holding the writer back only for that.
        if matches!(passive, Ok((_, frames, _)) if frames > WAL_RESTART_FRAMES) {
            let _ = sqlx::query("PRAGMA wal_checkpoint(RESTART)")
                .fetch_all(&mut conn)
                .await;
        }
    }
    let _ = conn.close().await;
}

fn reader_options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .busy_timeout(BUSY_TIMEOUT)
}

/// The task that owns the write connection.
struct SqliteWriter {
    conn: SqliteConnection,
    key: Option<AuditKey>,
    checkpoint_every: u64,
}

impl SqliteWriter {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut commands = Vec::with_capacity(MAX_BATCH);
        while rx.recv_many(&mut commands, MAX_BATCH).await > 0 {
            let batch = Batch::new(std::mem::take(&mut commands));
            self.commit(batch).await;
        }
        let _ = self.conn.close().await;
    }

    /// Store one batch in one transaction, then acknowledge it.
    async fn commit(&mut self, mut batch: Batch) {
        let seal = batch.seal();
        let events = std::mem::take(&mut batch.events);
        match self.write(events, seal).await {
            Ok(records) => {
                let flushed = if seal { self.sync_wal().await } else { Ok(()) };
                let flushed: Result<(), &dyn std::error::Error> = match &flushed {
                    Ok(()) => Ok(()),
                    Err(err) => Err(err),
                };
                batch.acknowledge(Ok(records), flushed);
            }
            Err(err) => {
                let err: &dyn std::error::Error = &err;
                batch.acknowledge(Err(err), Err(err));
            }
        }
    }

    /// Make every committed record durable, even in `synchronous=NORMAL` mode.
    ///
    /// A checkpoint syncs the WAL before it copies frames into the database, so once a
    /// checkpoint reports every frame copied (now, or by the checkpointer earlier), every
    /// record is on stable storage. A checkpoint that is busy (the checkpointer holds the
    /// lock) or held back by a reader's snapshot is retried for up to [`BUSY_TIMEOUT`].
    async fn sync_wal(&mut self) -> Result<(), sqlx::Error> {
        let deadline = tokio::time::Instant::now() + BUSY_TIMEOUT;
        loop {
            let (busy, frames, copied): (i64, i64, i64) =
                sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
                    .fetch_one(&mut self.conn)
                    .await?;
            if busy == 0 && copied >= frames {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(sqlx::Error::Protocol(
                    "the audit WAL could not be checkpointed to stable storage in time".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn write(
        &mut self,
        events: Vec<AuditEvent>,
        seal: bool,
    ) -> Result<Vec<AuditRecord>, sqlx::Error> {
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut self.conn)
            .await?;
        let written = self.write_in_transaction(events, seal).await;
        let outcome = match written {
            Ok(records) => sqlx::query("COMMIT")
                .execute(&mut self.conn)
                .await
                .map(|_| records),
            Err(err) => Err(err),
        };
        if outcome.is_err() {
            // Best effort: a failed COMMIT may already have rolled back.
            let _ = sqlx::query("ROLLBACK").execute(&mut self.conn).await;
        }
        outcome
    }

    async fn write_in_transaction(
        &mut self,
        events: Vec<AuditEvent>,
        seal: bool,
    ) -> Result<Vec<AuditRecord>, sqlx::Error> {
        // Resume from what is stored, under the write lock.
        let head: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut self.conn)
                .await?;
        let mut chain =
            Chain::resume(head.map(|(seq, hash)| (u64::try_from(seq).unwrap_or(0), hash)));
        let mut records = Vec::with_capacity(events.len());
        let mut due = Vec::new();
        for event in events {
            let record = chain.append(event);
            if checkpoint_due(self.key.as_ref(), self.checkpoint_every, record.seq) {
                due.push((record.seq, record.hash.clone()));
            }
            records.push(record);
        }
        // The whole group in one statement: every statement is a round trip to the
        // connection's worker thread, and those hops, not SQLite, were the cost under load.
        // 6 parameters a row × MAX_BATCH stays far below SQLite's limit of 32766.
        if !records.is_empty() {
            let mut insert = sqlx::QueryBuilder::new(
                "INSERT INTO audit_log (seq, time_ms, kind, event, prev_hash, hash) ",
            );
            insert.push_values(&records, |mut row, record| {
                row.push_bind(to_sql(record.seq))
                    .push_bind(to_sql(record.event.time_ms))
                    .push_bind(record.event.kind.as_str())
                    .push_bind(canonical_event_string(record.seq, &record.event))
                    .push_bind(record.prev_hash.clone())
                    .push_bind(record.hash.clone());
            });
            insert.build().execute(&mut self.conn).await?;
        }
        let head_seq = chain.next_seq() - 1;
        if seal
            && self.key.is_some()
            && head_seq > 0
            && due.last().map(|(seq, _)| *seq) != Some(head_seq)
        {
            due.push((head_seq, chain.last_hash().to_string()));
        }
        for (seq, hash) in due {
            self.store_checkpoint(seq, &hash).await?;
        }
        Ok(records)
    }

    async fn store_checkpoint(&mut self, seq: u64, hash: &str) -> Result<(), sqlx::Error> {
        let Some(key) = &self.key else {
            return Ok(());
        };
        let checkpoint = Checkpoint::sign(key, seq, hash, now_ms());
        sqlx::query(
            "INSERT OR IGNORE INTO audit_checkpoints (seq, hash, time_ms, mac) VALUES (?, ?, ?, ?)",
        )
        .bind(to_sql(checkpoint.seq))
        .bind(&checkpoint.hash)
        .bind(to_sql(checkpoint.time_ms))
        .bind(&checkpoint.mac)
        .execute(&mut self.conn)
        .await?;
        Ok(())
    }
}

/// Up to [`PAGE`] rows of `audit_log` from storage position `from` on.
async fn record_page(pool: &SqlitePool, from: i64) -> Result<Vec<SqliteRow>, StoreError> {
    sqlx::query(
        "SELECT seq, time_ms, kind, event, prev_hash, hash FROM audit_log
         WHERE seq >= ? ORDER BY seq LIMIT ?",
    )
    .bind(from)
    .bind(PAGE)
    .fetch_all(pool)
    .await
    .map_err(StoreError::unavailable)
}

/// The storage position of a row (`seq` is the rowid, always an integer).
fn row_seq(row: &SqliteRow) -> i64 {
    row.try_get::<i64, _>("seq").unwrap_or(i64::MAX)
}

/// Decode a row, strictly: the event must be in canonical form and agree with the copied
/// `time_ms` and `kind` columns. The record's sequence number is the one inside the hashed
/// event (the row position is only the storage order the verifier checks it against).
fn decode_record(row: &SqliteRow) -> Result<AuditRecord, StoreError> {
    let column = |name: &str| {
        row.try_get::<String, _>(name)
            .map_err(StoreError::unavailable)
    };
    let (event_text, prev_hash, hash, kind) = (
        column("event")?,
        column("prev_hash")?,
        column("hash")?,
        column("kind")?,
    );
    let time_ms: i64 = row.try_get("time_ms").map_err(StoreError::unavailable)?;
    let (seq, event) =
        parse_canonical_event(&event_text).map_err(|source| StoreError::Corrupt { source })?;
    if event.kind.as_str() != kind || to_sql(event.time_ms) != time_ms {
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

async fn read_checkpoints(pool: &SqlitePool) -> Result<Vec<Checkpoint>, StoreError> {
    let rows: Vec<(i64, String, i64, String)> =
        sqlx::query_as("SELECT seq, hash, time_ms, mac FROM audit_checkpoints ORDER BY seq")
            .fetch_all(pool)
            .await
            .map_err(StoreError::unavailable)?;
    Ok(rows
        .into_iter()
        .map(|(seq, hash, time_ms, mac)| Checkpoint {
            seq: u64::try_from(seq).unwrap_or(0),
            hash,
            time_ms: u64::try_from(time_ms).unwrap_or(0),
            mac,
        })
        .collect())
}

async fn verify_pool(
    pool: &SqlitePool,
    key: Option<&AuditKey>,
    from: u64,
) -> Result<VerifyReport, StoreError> {
    // Checkpoints first: they are committed with their records, so every checkpoint read here
    // has its records visible to the reads below.
    let checkpoints = read_checkpoints(pool).await?;
    let mut verifier = Verifier::new(&checkpoints, key, from);
    let mut next = to_sql(from);
    while !verifier.is_settled() {
        let rows = record_page(pool, next).await?;
        let Some(last) = rows.last() else {
            break;
        };
        next = row_seq(last).saturating_add(1);
        for row in &rows {
            match decode_record(row) {
                Ok(record) => verifier.push(&record),
                Err(_) => verifier.push_unreadable(u64::try_from(row_seq(row)).ok()),
            }
            if verifier.is_settled() {
                break;
            }
        }
    }
    Ok(verifier.finish())
}

// ---------------------------------------------------------------------------------------------
// JSON lines
// ---------------------------------------------------------------------------------------------

/// The audit trail as a JSON-lines file, for log shippers: one canonical JSON
/// [`AuditRecord`] per line ([`AuditRecord::to_json_line`]), and signed checkpoints in a
/// sidecar file `<file>.checkpoints` (one [`Checkpoint`] per line).
///
/// One writer per file: do not open the same file from two sinks or processes at once. Bytes
/// after the last newline are an unacknowledged partial write (the process died mid-write); they
/// are cut off when the file is opened and ignored when it is read.
pub struct JsonlAuditLog {
    handle: Handle,
    path: PathBuf,
    stopped: oneshot::Receiver<()>,
    durability: Durability,
}

impl JsonlAuditLog {
    /// Open (or create, mode `0600`) the file at `path` and start its writer thread, which
    /// resumes the chain after the last line. With a `key`, a signed checkpoint is appended to
    /// `<path>.checkpoints` every `checkpoint_every` records (0: only at
    /// [`flush`](AuditSink::flush)).
    ///
    /// # Errors
    ///
    /// [`StoreError::Io`] when a file cannot be opened, [`StoreError::Corrupt`] when its last
    /// line is not a valid record (run `voxguard audit verify`).
    pub async fn open(
        path: impl AsRef<Path>,
        durability: Durability,
        key: Option<AuditKey>,
        checkpoint_every: u64,
    ) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let writer_path = path.clone();
        let writer = tokio::task::spawn_blocking(move || {
            JsonlWriter::open(&writer_path, durability, key, checkpoint_every)
        })
        .await
        .map_err(|join| StoreError::Io {
            source: std::io::Error::other(join),
        })??;
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let (done, stopped) = oneshot::channel();
        std::thread::Builder::new()
            .name("voxguard-audit".into())
            .spawn(move || {
                writer.run(rx);
                let _ = done.send(());
            })
            .map_err(|source| StoreError::Io { source })?;
        Ok(Self {
            handle: Handle { tx },
            path,
            stopped,
            durability,
        })
    }

    /// This sink's durability mode.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// The sidecar file holding the checkpoints of the log at `path`: `<path>.checkpoints`.
    pub fn checkpoints_path(path: &Path) -> PathBuf {
        let mut name = path.as_os_str().to_owned();
        name.push(".checkpoints");
        PathBuf::from(name)
    }

    /// Every complete record in the file at `path`, in file order.
    ///
    /// # Errors
    ///
    /// [`StoreError::Io`] when the file cannot be read, [`StoreError::Corrupt`] when a line is
    /// not a canonical record.
    pub async fn read_all(path: impl AsRef<Path>) -> Result<Vec<AuditRecord>, StoreError> {
        let path = path.as_ref().to_path_buf();
        blocking(move || {
            let mut records = Vec::new();
            for line in complete_lines(&path)? {
                let line = line?;
                records.push(
                    AuditRecord::from_json_line(&line)
                        .map_err(|source| StoreError::Corrupt { source })?,
                );
            }
            Ok(records)
        })
        .await
    }

    /// Every checkpoint in the sidecar of the log at `path` (none if it does not exist).
    ///
    /// # Errors
    ///
    /// As [`JsonlAuditLog::read_all`].
    pub async fn read_checkpoints(path: impl AsRef<Path>) -> Result<Vec<Checkpoint>, StoreError> {
        let path = Self::checkpoints_path(path.as_ref());
        blocking(move || read_checkpoint_file(&path)).await
    }

    /// Verify the file at `path` and its checkpoints from sequence number `from` (see
    /// [`voxguard_guard::audit::verify`]). A line that is not a canonical record counts as
    /// modified.
    ///
    /// # Errors
    ///
    /// [`StoreError::Io`] when a file cannot be read.
    pub async fn verify_path(
        path: impl AsRef<Path>,
        key: Option<&AuditKey>,
        from: u64,
    ) -> Result<VerifyReport, StoreError> {
        let path = path.as_ref().to_path_buf();
        let key = key.cloned();
        blocking(move || {
            // Checkpoints first: the writer appends them after their records.
            let checkpoints = read_checkpoint_file(&Self::checkpoints_path(&path))?;
            let mut verifier = Verifier::new(&checkpoints, key.as_ref(), from);
            for line in complete_lines(&path)? {
                let line = line?;
                match AuditRecord::from_json_line(&line) {
                    Ok(record) => verifier.push(&record),
                    Err(_) => verifier.push_unreadable(seq_hint(&line)),
                }
                if verifier.is_settled() {
                    break;
                }
            }
            Ok(verifier.finish())
        })
        .await
    }

    /// Verify this sink's file, as [`JsonlAuditLog::verify_path`].
    ///
    /// # Errors
    ///
    /// As [`JsonlAuditLog::verify_path`].
    pub async fn verify(
        &self,
        key: Option<&AuditKey>,
        from: u64,
    ) -> Result<VerifyReport, StoreError> {
        Self::verify_path(&self.path, key, from).await
    }

    /// Stop accepting events and wait for the writer to store everything queued and close the
    /// files.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when the writer thread died.
    pub async fn close(self) -> Result<(), StoreError> {
        let Self {
            handle, stopped, ..
        } = self;
        drop(handle);
        stopped.await.map_err(|_| writer_stopped())
    }
}

impl std::fmt::Debug for JsonlAuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonlAuditLog")
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl AuditSink for JsonlAuditLog {
    async fn append(&self, event: AuditEvent) -> Result<AuditRecord, StoreError> {
        self.handle.append(event).await
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.handle.flush().await
    }

    fn backend(&self) -> &'static str {
        "jsonl"
    }
}

/// Run blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|join| StoreError::Io {
            source: std::io::Error::other(join),
        })?
}

/// The sequence number a damaged line claims, if any can be read from it.
fn seq_hint(line: &str) -> Option<u64> {
    serde_json::from_str::<serde_json::Value>(line)
        .ok()?
        .get("seq")?
        .as_u64()
}

/// The newline-terminated lines of the file at `path` (a trailing partial line is left out).
fn complete_lines(
    path: &Path,
) -> Result<impl Iterator<Item = Result<String, StoreError>>, StoreError> {
    let file = File::open(path).map_err(|source| StoreError::Io { source })?;
    let mut reader = BufReader::new(file);
    Ok(std::iter::from_fn(move || {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => line.strip_suffix('\n').map(|line| Ok(line.to_owned())),
            Err(source) => Some(Err(StoreError::Io { source })),
        }
    }))
}

fn read_checkpoint_file(path: &Path) -> Result<Vec<Checkpoint>, StoreError> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let mut checkpoints = Vec::new();
    for line in complete_lines(path)? {
        let line = line?;
        checkpoints.push(
            Checkpoint::from_json_line(&line).map_err(|source| StoreError::Corrupt { source })?,
        );
    }
    Ok(checkpoints)
}

/// Open `path` for appending (creating it with mode `0600`), cut off a trailing partial line,
/// and return the file, its length and its last complete line.
fn open_append(path: &Path) -> std::io::Result<(File, u64, Option<String>)> {
    let mut options = OpenOptions::new();
    options.read(true).append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    let (valid_len, last_line) = last_complete_line(&mut file)?;
    if file.metadata()?.len() > valid_len {
        file.set_len(valid_len)?;
    }
    Ok((file, valid_len, last_line))
}

/// The length of the file up to and including its last newline, and the line before it.
fn last_complete_line(file: &mut File) -> std::io::Result<(u64, Option<String>)> {
    const CHUNK: u64 = 8192;
    let len = file.metadata()?.len();
    let mut start = len;
    let mut tail: Vec<u8> = Vec::new();
    loop {
        if let Some(end) = tail.iter().rposition(|&b| b == b'\n') {
            let begin = tail[..end].iter().rposition(|&b| b == b'\n');
            if begin.is_some() || start == 0 {
                let line_start = begin.map_or(0, |b| b + 1);
                let line = String::from_utf8_lossy(&tail[line_start..end]).into_owned();
                return Ok((start + end as u64 + 1, Some(line)));
            }
        } else if start == 0 {
            return Ok((0, None));
        }
        let step = CHUNK.min(start);
        start -= step;
        let mut chunk = vec![0u8; usize::try_from(step).unwrap_or(0)];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&tail);
        tail = chunk;
    }
}

/// Make a new directory entry durable (the file's name, not only its bytes).
fn sync_parent_dir(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let parent = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        File::open(parent)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// An open append-only file and how much of it is committed.
struct LogFile {
    file: File,
    len: u64,
}

/// The thread that owns the files.
struct JsonlWriter {
    log: LogFile,
    /// The checkpoint sidecar, when there is a key.
    sidecar: Option<LogFile>,
    chain: Chain,
    last_checkpoint: u64,
    key: Option<AuditKey>,
    checkpoint_every: u64,
    durability: Durability,
    /// Set when a failed write could not be rolled back: the file's state is unknown, so
    /// nothing more is written.
    poisoned: bool,
}

impl JsonlWriter {
    fn open(
        path: &Path,
        durability: Durability,
        key: Option<AuditKey>,
        checkpoint_every: u64,
    ) -> Result<Self, StoreError> {
        let io = |source| StoreError::Io { source };
        let (file, len, last) = open_append(path).map_err(io)?;
        let chain = match last {
            Some(line) => {
                let record = AuditRecord::from_json_line(&line)
                    .map_err(|source| StoreError::Corrupt { source })?;
                Chain::resume(Some((record.seq, record.hash)))
            }
            None => Chain::genesis(),
        };
        let mut last_checkpoint = 0;
        let sidecar = match key {
            Some(_) => {
                let sidecar_path = JsonlAuditLog::checkpoints_path(path);
                let (file, len, last) = open_append(&sidecar_path).map_err(io)?;
                if let Some(line) = last {
                    last_checkpoint = Checkpoint::from_json_line(&line)
                        .map_err(|source| StoreError::Corrupt { source })?
                        .seq;
                }
                if durability == Durability::Fsync {
                    file.sync_all().map_err(io)?;
                }
                Some(LogFile { file, len })
            }
            None => None,
        };
        if durability == Durability::Fsync {
            file.sync_all().map_err(io)?;
            sync_parent_dir(path).map_err(io)?;
        }
        Ok(Self {
            log: LogFile { file, len },
            sidecar,
            chain,
            last_checkpoint,
            key,
            checkpoint_every,
            durability,
            poisoned: false,
        })
    }

    fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut commands = Vec::with_capacity(MAX_BATCH);
        while let Some(first) = rx.blocking_recv() {
            commands.push(first);
            while commands.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(command) => commands.push(command),
                    Err(_) => break,
                }
            }
            let batch = Batch::new(std::mem::take(&mut commands));
            self.commit(batch);
        }
    }

    /// Write one batch with one write per file (and one sync each when asked), then
    /// acknowledge it.
    fn commit(&mut self, mut batch: Batch) {
        let seal = batch.seal();
        let events = std::mem::take(&mut batch.events);
        let saved = (self.chain.clone(), self.last_checkpoint);
        let mut lines = String::new();
        let mut checkpoints = String::new();
        let mut records = Vec::with_capacity(events.len());
        for event in events {
            let record = self.chain.append(event);
            lines.push_str(&record.to_json_line());
            lines.push('\n');
            if checkpoint_due(self.key.as_ref(), self.checkpoint_every, record.seq) {
                self.checkpoint(&mut checkpoints, record.seq, &record.hash);
            }
            records.push(record);
        }
        let head_seq = self.chain.next_seq() - 1;
        if seal && head_seq > self.last_checkpoint {
            let head_hash = self.chain.last_hash().to_owned();
            self.checkpoint(&mut checkpoints, head_seq, &head_hash);
        }
        let sync = seal || self.durability == Durability::Fsync;
        match self.persist(&lines, &checkpoints, sync) {
            Ok(()) => batch.acknowledge(Ok(records), Ok(())),
            Err(err) => {
                (self.chain, self.last_checkpoint) = saved;
                let err: &dyn std::error::Error = &err;
                batch.acknowledge(Err(err), Err(err));
            }
        }
    }

    /// Sign a checkpoint (when there is a key) and add its line to `out`.
    fn checkpoint(&mut self, out: &mut String, seq: u64, hash: &str) {
        if let Some(key) = &self.key {
            out.push_str(&Checkpoint::sign(key, seq, hash, now_ms()).to_json_line());
            out.push('\n');
            self.last_checkpoint = seq;
        }
    }

    /// Append both texts (and sync when asked); on failure, cut both files back.
    fn persist(&mut self, lines: &str, checkpoints: &str, sync: bool) -> std::io::Result<()> {
        if self.poisoned {
            return Err(std::io::Error::other(
                "an earlier audit write failed and could not be undone",
            ));
        }
        let result =
            Self::append_to(&mut self.log, lines, sync).and_then(|()| match &mut self.sidecar {
                Some(sidecar) => Self::append_to(sidecar, checkpoints, sync),
                None => Ok(()),
            });
        match result {
            Ok(()) => {
                self.log.len += lines.len() as u64;
                if let Some(sidecar) = &mut self.sidecar {
                    sidecar.len += checkpoints.len() as u64;
                }
                Ok(())
            }
            Err(err) => {
                let mut undone = self.log.file.set_len(self.log.len).is_ok();
                if let Some(sidecar) = &self.sidecar {
                    undone &= sidecar.file.set_len(sidecar.len).is_ok();
                }
                self.poisoned = !undone;
                Err(err)
            }
        }
    }

    fn append_to(target: &mut LogFile, text: &str, sync: bool) -> std::io::Result<()> {
        if !text.is_empty() {
            target.file.write_all(text.as_bytes())?;
        }
        if sync {
            target.file.sync_data()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use serde_json::json;
    use voxguard_guard::audit::{AuditKind, ChainProblem, Outcome, GENESIS_HASH};

    fn key() -> AuditKey {
        AuditKey::from_bytes(vec![5u8; 32]).unwrap()
    }

    fn event(i: u64) -> AuditEvent {
        AuditEvent {
            call_id: Some(format!("call-{}", i % 5)),
            caller: Some("***4567".into()),
            function: Some("transfer_funds".into()),
            arguments: Some(json!({"amount": i, "to": "acct-9", "card": "****1111"})),
            outcome: Some(Outcome::Ok),
            ..AuditEvent::new(AuditKind::ToolCalled, 1_700_000_000_000 + i)
        }
    }

    fn broken(seq: u64, problem: ChainProblem) -> VerifyReport {
        VerifyReport::Broken { seq, problem }
    }

    fn ok(records: u64, checkpoints_checked: u64) -> VerifyReport {
        VerifyReport::Ok {
            records,
            last_seq: Some(records),
            checkpoints_checked,
        }
    }

    #[derive(Clone, Copy, Debug)]
    enum Kind {
        Sqlite,
        Jsonl,
    }

    /// A sink under test, opened on a file that outlives it.
    struct Opened {
        sink: Arc<dyn AuditSink>,
        sqlite: Option<Arc<SqliteAuditLog>>,
        jsonl: Option<Arc<JsonlAuditLog>>,
    }

    impl Opened {
        async fn verify(&self, key: Option<&AuditKey>, from: u64) -> VerifyReport {
            match (&self.sqlite, &self.jsonl) {
                (Some(s), _) => s.verify(key, from).await.unwrap(),
                (_, Some(j)) => j.verify(key, from).await.unwrap(),
                _ => unreachable!(),
            }
        }

        async fn close(self) {
            drop(self.sink);
            if let Some(s) = self.sqlite {
                Arc::into_inner(s).unwrap().close().await.unwrap();
            }
            if let Some(j) = self.jsonl {
                Arc::into_inner(j).unwrap().close().await.unwrap();
            }
        }
    }

    async fn open(
        kind: Kind,
        path: &Path,
        durability: Durability,
        key: Option<AuditKey>,
        every: u64,
    ) -> Opened {
        match kind {
            Kind::Sqlite => {
                let log = Arc::new(
                    SqliteAuditLog::open(path, durability, key, every)
                        .await
                        .unwrap(),
                );
                Opened {
                    sink: log.clone(),
                    sqlite: Some(log),
                    jsonl: None,
                }
            }
            Kind::Jsonl => {
                let log = Arc::new(
                    JsonlAuditLog::open(path, durability, key, every)
                        .await
                        .unwrap(),
                );
                Opened {
                    sink: log.clone(),
                    sqlite: None,
                    jsonl: Some(log),
                }
            }
        }
    }

    const MATRIX: [(Kind, Durability); 4] = [
        (Kind::Sqlite, Durability::Normal),
        (Kind::Sqlite, Durability::Fsync),
        (Kind::Jsonl, Durability::Normal),
        (Kind::Jsonl, Durability::Fsync),
    ];

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_appends_form_a_contiguous_chain() {
        for (kind, durability) in MATRIX {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("audit.log");
            let opened = open(kind, &path, durability, Some(key()), 16).await;
            let mut tasks = Vec::new();
            for task in 0..50u64 {
                let sink = opened.sink.clone();
                tasks.push(tokio::spawn(async move {
                    let mut records = Vec::new();
                    for i in 0..4 {
                        records.push(sink.append(event(task * 100 + i)).await.unwrap());
                    }
                    records
                }));
            }
            let mut acked = Vec::new();
            for task in tasks {
                acked.extend(task.await.unwrap());
            }
            let seqs: BTreeSet<u64> = acked.iter().map(|r| r.seq).collect();
            assert_eq!(seqs, (1..=200).collect(), "{kind:?} {durability:?}");
            // Every acknowledged record is stored exactly as acknowledged.
            acked.sort_by_key(|r| r.seq);
            let stored = match (&opened.sqlite, &opened.jsonl) {
                (Some(s), _) => s.records(0).await.unwrap(),
                (_, Some(_)) => JsonlAuditLog::read_all(&path).await.unwrap(),
                _ => unreachable!(),
            };
            assert_eq!(stored, acked, "{kind:?} {durability:?}");
            assert_eq!(
                opened.verify(Some(&key()), 0).await,
                ok(200, 12),
                "{kind:?} {durability:?}"
            );
            opened.close().await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_writers_on_one_sqlite_file_never_fork_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        let a = SqliteAuditLog::open(&path, Durability::Normal, Some(key()), 0)
            .await
            .unwrap();
        let b = SqliteAuditLog::open(&path, Durability::Normal, Some(key()), 0)
            .await
            .unwrap();
        // Each writer's remembered head goes stale as soon as the other one appends.
        let mut seqs = Vec::new();
        for i in 0..10 {
            let log = if i % 3 == 0 { &b } else { &a };
            seqs.push(log.append(event(i)).await.unwrap().seq);
        }
        assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
        // And concurrently.
        let (a, b) = (Arc::new(a), Arc::new(b));
        let tasks: Vec<_> = (10..60)
            .map(|i| {
                let log = if i % 2 == 0 { a.clone() } else { b.clone() };
                tokio::spawn(async move { log.append(event(i)).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        a.flush().await.unwrap();
        assert_eq!(a.verify(Some(&key()), 0).await.unwrap(), ok(60, 1));
        Arc::into_inner(a).unwrap().close().await.unwrap();
        Arc::into_inner(b).unwrap().close().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_checkpointer_moves_the_wal_into_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        let log = SqliteAuditLog::open(&path, Durability::Normal, None, 0)
            .await
            .unwrap();
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let empty = size(&path);
        let log = Arc::new(log);
        let appends: Vec<_> = (0..400)
            .map(|i| {
                let log = log.clone();
                tokio::spawn(async move { log.append(event(i)).await })
            })
            .collect();
        for appended in appends {
            appended.await.unwrap().unwrap();
        }
        // The writer never checkpoints (wal_autocheckpoint=0): the records reach the database
        // file only through the checkpointer.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while size(&path) <= empty {
            assert!(
                std::time::Instant::now() < deadline,
                "no checkpoint within 20 s: database {} bytes, WAL {} bytes",
                size(&path),
                size(&path.with_extension("db-wal"))
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(log.verify(None, 0).await.unwrap(), ok(400, 0));
        Arc::into_inner(log).unwrap().close().await.unwrap();
    }

    #[tokio::test]
    async fn reopening_resumes_the_chain() {
        for (kind, durability) in MATRIX {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("audit.log");
            let first = open(kind, &path, durability, Some(key()), 4).await;
            let mut last = None;
            for i in 0..6 {
                last = Some(first.sink.append(event(i)).await.unwrap());
            }
            first.close().await;

            let second = open(kind, &path, durability, Some(key()), 4).await;
            let next = second.sink.append(event(6)).await.unwrap();
            let last = last.unwrap();
            assert_eq!(next.seq, 7, "{kind:?}");
            assert_eq!(next.prev_hash, last.hash, "{kind:?}");
            for i in 7..10 {
                second.sink.append(event(i)).await.unwrap();
            }
            // Checkpoints at 4 and 8.
            assert_eq!(second.verify(Some(&key()), 0).await, ok(10, 2), "{kind:?}");
            assert_eq!(
                second.verify(Some(&key()), 6).await,
                VerifyReport::Ok {
                    records: 5,
                    last_seq: Some(10),
                    checkpoints_checked: 1
                },
                "{kind:?}"
            );
            second.close().await;
        }
    }

    #[tokio::test]
    async fn flush_checkpoints_the_head() {
        for kind in [Kind::Sqlite, Kind::Jsonl] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("audit.log");
            let opened = open(kind, &path, Durability::Normal, Some(key()), 100).await;
            let mut records = Vec::new();
            for i in 0..3 {
                records.push(opened.sink.append(event(i)).await.unwrap());
            }
            opened.sink.flush().await.unwrap();
            opened.sink.flush().await.unwrap();
            let checkpoints = match (&opened.sqlite, &opened.jsonl) {
                (Some(s), _) => s.checkpoints().await.unwrap(),
                (_, Some(_)) => JsonlAuditLog::read_checkpoints(&path).await.unwrap(),
                _ => unreachable!(),
            };
            assert_eq!(checkpoints.len(), 1, "{kind:?}");
            assert_eq!(checkpoints[0].seq, 3);
            assert_eq!(checkpoints[0].hash, records[2].hash);
            assert!(checkpoints[0].verify(&key()));
            assert_eq!(opened.verify(Some(&key()), 0).await, ok(3, 1), "{kind:?}");
            opened.close().await;
        }
    }

    #[tokio::test]
    async fn no_key_means_no_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let log =
            SqliteAuditLog::open_in_dir(dir.path().join("state"), Durability::Normal, None, 2)
                .await
                .unwrap();
        for i in 0..5 {
            log.append(event(i)).await.unwrap();
        }
        log.flush().await.unwrap();
        assert!(log.checkpoints().await.unwrap().is_empty());
        assert_eq!(log.verify(None, 0).await.unwrap(), ok(5, 0));
        assert_eq!(log.backend(), "sqlite");
        log.close().await.unwrap();
        assert!(dir.path().join("state").join(AUDIT_DB_FILE_NAME).exists());

        let path = dir.path().join("plain.jsonl");
        let log = JsonlAuditLog::open(&path, Durability::Normal, None, 2)
            .await
            .unwrap();
        log.append(event(0)).await.unwrap();
        log.flush().await.unwrap();
        assert_eq!(log.backend(), "jsonl");
        log.close().await.unwrap();
        assert!(!JsonlAuditLog::checkpoints_path(&path).exists());
    }

    /// A SQLite log of `n` records with checkpoints every 10, closed, plus a connection for
    /// tampering with it.
    async fn tampered_sqlite(n: u64) -> (tempfile::TempDir, PathBuf, SqliteConnection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(AUDIT_DB_FILE_NAME);
        let log = SqliteAuditLog::open(&path, Durability::Normal, Some(key()), 10)
            .await
            .unwrap();
        for i in 0..n {
            log.append(event(i)).await.unwrap();
        }
        log.close().await.unwrap();
        let conn = SqliteConnectOptions::new()
            .filename(&path)
            .connect()
            .await
            .unwrap();
        (dir, path, conn)
    }

    async fn exec(conn: &mut SqliteConnection, sql: &str, seq: i64) {
        sqlx::query(sql)
            .bind(seq)
            .execute(&mut *conn)
            .await
            .unwrap();
    }

    async fn sqlite_verdict(path: &Path) -> VerifyReport {
        SqliteAuditLog::verify_path(path, Some(&key()), 0)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn sqlite_tampering_is_detected() {
        // Untouched.
        let (_dir, path, _conn) = tampered_sqlite(25).await;
        assert_eq!(sqlite_verdict(&path).await, ok(25, 2));

        // An edited event (its text changed, hash left alone).
        let (_dir, path, mut conn) = tampered_sqlite(25).await;
        exec(
            &mut conn,
            "UPDATE audit_log SET event = replace(event, '\"outcome\":\"ok\"', '\"outcome\":\"refused\"') WHERE seq = ?",
            7,
        )
        .await;
        assert_eq!(
            sqlite_verdict(&path).await,
            broken(7, ChainProblem::Modified)
        );

        // Whitespace only, an extra field, and a copied column that disagrees.
        for sql in [
            "UPDATE audit_log SET event = replace(event, ',', ', ') WHERE seq = ?",
            "UPDATE audit_log SET event = replace(event, '{\"arguments\"', '{\"x\":1,\"arguments\"') WHERE seq = ?",
            "UPDATE audit_log SET kind = 'payment' WHERE seq = ?",
            "UPDATE audit_log SET event = 'garbage' WHERE seq = ?",
        ] {
            let (_dir, path, mut conn) = tampered_sqlite(25).await;
            exec(&mut conn, sql, 12).await;
            assert_eq!(sqlite_verdict(&path).await, broken(12, ChainProblem::Modified), "{sql}");
        }

        // A deleted middle row.
        let (_dir, path, mut conn) = tampered_sqlite(25).await;
        exec(&mut conn, "DELETE FROM audit_log WHERE seq = ?", 5).await;
        assert_eq!(
            sqlite_verdict(&path).await,
            broken(5, ChainProblem::Missing)
        );

        // The tail deleted after a checkpoint.
        let (_dir, path, mut conn) = tampered_sqlite(25).await;
        exec(&mut conn, "DELETE FROM audit_log WHERE seq > ?", 15).await;
        assert_eq!(
            sqlite_verdict(&path).await,
            broken(
                16,
                ChainProblem::TruncatedAfterCheckpoint { checkpoint_seq: 20 }
            )
        );

        // Two rows' contents swapped.
        let (_dir, path, mut conn) = tampered_sqlite(25).await;
        exec(&mut conn, "UPDATE audit_log SET seq = -1 WHERE seq = ?", 3).await;
        exec(&mut conn, "UPDATE audit_log SET seq = 3 WHERE seq = ?", 4).await;
        exec(&mut conn, "UPDATE audit_log SET seq = 4 WHERE seq = ?", -1).await;
        assert_eq!(
            sqlite_verdict(&path).await,
            broken(3, ChainProblem::Reordered)
        );

        // A forged checkpoint.
        let (_dir, path, mut conn) = tampered_sqlite(25).await;
        exec(
            &mut conn,
            "UPDATE audit_checkpoints SET time_ms = time_ms + 1 WHERE seq = ?",
            10,
        )
        .await;
        assert_eq!(
            sqlite_verdict(&path).await,
            broken(10, ChainProblem::CheckpointForged)
        );

        // Verifying a file that does not exist fails without creating it.
        let missing = path.with_file_name("missing.db");
        assert!(SqliteAuditLog::verify_path(&missing, None, 0)
            .await
            .is_err());
        assert!(!missing.exists());
    }

    #[tokio::test]
    async fn sqlite_rewritten_tail_is_caught_by_a_checkpoint() {
        let (_dir, path, mut conn) = tampered_sqlite(25).await;
        // Rewrite record 14 and re-link everything after it, as an attacker without the key.
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT seq, event FROM audit_log WHERE seq >= 14 ORDER BY seq")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        let mut prev: String = sqlx::query_scalar("SELECT hash FROM audit_log WHERE seq = 13")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        for (seq, text) in rows {
            let (s, mut e) = parse_canonical_event(&text).unwrap();
            if s == 14 {
                e.outcome = Some(Outcome::Refused);
            }
            let hash = voxguard_guard::audit::chain_hash(&prev, s, &e);
            sqlx::query("UPDATE audit_log SET event = ?, prev_hash = ?, hash = ? WHERE seq = ?")
                .bind(canonical_event_string(s, &e))
                .bind(&prev)
                .bind(&hash)
                .bind(seq)
                .execute(&mut conn)
                .await
                .unwrap();
            prev = hash;
        }
        assert_eq!(
            SqliteAuditLog::verify_path(&path, None, 0).await.unwrap(),
            ok(25, 0)
        );
        assert_eq!(
            sqlite_verdict(&path).await,
            broken(20, ChainProblem::CheckpointMismatch)
        );
    }

    /// A JSON-lines log of `n` records with checkpoints every 10, closed; returns its lines.
    async fn jsonl_log(n: u64) -> (tempfile::TempDir, PathBuf, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = JsonlAuditLog::open(&path, Durability::Normal, Some(key()), 10)
            .await
            .unwrap();
        for i in 0..n {
            log.append(event(i)).await.unwrap();
        }
        log.close().await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines = text.lines().map(str::to_owned).collect();
        (dir, path, lines)
    }

    fn rewrite(path: &Path, lines: &[String]) {
        let mut text = lines.join("\n");
        text.push('\n');
        std::fs::write(path, text).unwrap();
    }

    async fn jsonl_verdict(path: &Path) -> VerifyReport {
        JsonlAuditLog::verify_path(path, Some(&key()), 0)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn jsonl_round_trips_and_detects_tampering() {
        let (_dir, path, lines) = jsonl_log(25).await;
        assert_eq!(lines.len(), 25);
        let records = JsonlAuditLog::read_all(&path).await.unwrap();
        assert_eq!(records.len(), 25);
        assert_eq!(records[0].prev_hash, GENESIS_HASH);
        for (i, record) in records.iter().enumerate() {
            assert_eq!(record.seq, i as u64 + 1);
            assert_eq!(record.event, event(i as u64));
            assert_eq!(record.to_json_line(), lines[i]);
        }
        assert_eq!(jsonl_verdict(&path).await, ok(25, 2));

        // An edited line.
        let mut edited = lines.clone();
        edited[8] = edited[8].replace("\"outcome\":\"ok\"", "\"outcome\":\"refused\"");
        rewrite(&path, &edited);
        assert_eq!(
            jsonl_verdict(&path).await,
            broken(9, ChainProblem::Modified)
        );
        assert!(JsonlAuditLog::read_all(&path).await.is_ok());
        // A line that is no longer canonical, or no longer JSON.
        for damage in [" ", "x"] {
            let mut edited = lines.clone();
            edited[8].push_str(damage);
            rewrite(&path, &edited);
            assert_eq!(
                jsonl_verdict(&path).await,
                broken(9, ChainProblem::Modified)
            );
        }
        assert!(matches!(
            JsonlAuditLog::read_all(&path).await,
            Err(StoreError::Corrupt { .. })
        ));
        // A deleted line.
        let mut edited = lines.clone();
        edited.remove(4);
        rewrite(&path, &edited);
        assert_eq!(jsonl_verdict(&path).await, broken(5, ChainProblem::Missing));
        // Swapped lines.
        let mut edited = lines.clone();
        edited.swap(14, 15);
        rewrite(&path, &edited);
        assert_eq!(
            jsonl_verdict(&path).await,
            broken(15, ChainProblem::Reordered)
        );
        // The tail cut off after a checkpoint.
        rewrite(&path, &lines[..13]);
        assert_eq!(
            jsonl_verdict(&path).await,
            broken(
                14,
                ChainProblem::TruncatedAfterCheckpoint { checkpoint_seq: 20 }
            )
        );
        // Without the key the truncation cannot be told from a shorter log.
        assert_eq!(
            JsonlAuditLog::verify_path(&path, None, 0).await.unwrap(),
            ok(13, 0)
        );
    }

    #[tokio::test]
    async fn jsonl_partial_last_line_is_dropped_on_open() {
        let (_dir, path, lines) = jsonl_log(5).await;
        // The process died in the middle of writing record 6.
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"event\":{\"kind\":\"tool_ca");
        std::fs::write(&path, &text).unwrap();
        assert_eq!(jsonl_verdict(&path).await, ok(5, 0));
        assert_eq!(JsonlAuditLog::read_all(&path).await.unwrap().len(), 5);

        let log = JsonlAuditLog::open(&path, Durability::Fsync, Some(key()), 10)
            .await
            .unwrap();
        let record = log.append(event(5)).await.unwrap();
        assert_eq!(record.seq, 6);
        assert_eq!(
            record.prev_hash,
            AuditRecord::from_json_line(&lines[4]).unwrap().hash
        );
        log.close().await.unwrap();
        assert_eq!(jsonl_verdict(&path).await, ok(6, 0));

        // A damaged last line refuses to open rather than fork the chain.
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.insert(text.len() - 2, ' ');
        std::fs::write(&path, &text).unwrap();
        let err = JsonlAuditLog::open(&path, Durability::Normal, None, 0)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }));
    }

    #[tokio::test]
    async fn long_last_line_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.jsonl");
        let log = JsonlAuditLog::open(&path, Durability::Normal, None, 0)
            .await
            .unwrap();
        let mut big = event(0);
        big.arguments = Some(json!({"blob": "x".repeat(20_000)}));
        log.append(event(1)).await.unwrap();
        let last = log.append(big).await.unwrap();
        log.close().await.unwrap();
        let log = JsonlAuditLog::open(&path, Durability::Normal, None, 0)
            .await
            .unwrap();
        assert_eq!(log.append(event(2)).await.unwrap().prev_hash, last.hash);
        log.close().await.unwrap();
    }

    #[tokio::test]
    async fn errors_do_not_show_paths() {
        let dir = tempfile::tempdir().unwrap();
        let secret_dir = dir.path().join("no-such-dir-secret");
        let err = SqliteAuditLog::open(secret_dir.join("audit.db"), Durability::Normal, None, 0)
            .await
            .unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
        let err = JsonlAuditLog::open(secret_dir.join("a.jsonl"), Durability::Normal, None, 0)
            .await
            .unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
        let err = JsonlAuditLog::verify_path(secret_dir.join("a.jsonl"), None, 0)
            .await
            .unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("audit.db");
        let log = SqliteAuditLog::open(&db, Durability::Normal, None, 0)
            .await
            .unwrap();
        log.append(event(0)).await.unwrap();
        log.close().await.unwrap();
        let jsonl = dir.path().join("audit.jsonl");
        let log = JsonlAuditLog::open(&jsonl, Durability::Normal, Some(key()), 1)
            .await
            .unwrap();
        log.append(event(0)).await.unwrap();
        log.close().await.unwrap();
        for file in [db, jsonl.clone(), JsonlAuditLog::checkpoints_path(&jsonl)] {
            let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", file.display());
        }
    }
}
