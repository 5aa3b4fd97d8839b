//! The SQLite audit backend, the default sink.
//!
//! This module owns [`SqliteAuditLog`]: its own database file (WAL, separate from the session
//! database), the single writer thread that commits each group of queued events in one
//! `BEGIN IMMEDIATE` transaction (re-reading the stored head first, so the chain never forks),
//! the background WAL checkpointer, and the strict reads that list and verify what is stored.
//!
//! The writer is a plain thread with its own synchronous connection (rusqlite), not a task on
//! an sqlx connection: sqlx runs every statement on a worker thread of its own and hands each
//! one over and back through a channel, and under load those hand-offs — four per group, each
//! a futex wake-up each way — cost more than SQLite itself (BENCHMARKS.md, issue 13). The
//! thread wakes once per group, runs the transaction in place and acknowledges every event of
//! the group. Reads, verification and the WAL checkpointer stay on sqlx.
//! It must never build SQL from event data, and its errors must not show paths, SQL or event
//! content through `Display`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::OptionalExtension as _;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{ConnectOptions as _, Connection as _, Row as _};
use tokio::sync::mpsc;
use voxguard_guard::audit::{
    AuditEvent, AuditKey, AuditRecord, Checkpoint, Verifier, VerifyReport,
};

use super::{
    checked_checkpoint, checkpoint_due, decode_checkpoint, decode_stored, each_batch_blocking,
    AuditSink, Batch, Command, Durability, Handle, Tail, QUEUE_CAPACITY,
};
use crate::session::to_i64;
use crate::sqlite::{create_private_dir, restrict_permissions};
use crate::StoreError;

/// File name of the audit database inside the directory given to
/// [`SqliteAuditLog::open_in_dir`]. It is separate from the session database, so the audit
/// log's durability settings never slow session reads and writes.
pub const AUDIT_DB_FILE_NAME: &str = "audit.db";

/// Rows read per query when verifying or listing a SQLite log.
const PAGE: i64 = 1000;

/// How long a connection waits for another writer's lock before giving up.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

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

/// The audit trail in its own SQLite database (WAL), the default sink.
///
/// Records live in `audit_log`, checkpoints in `audit_checkpoints`. Each group commit is one
/// `BEGIN IMMEDIATE` transaction that first re-reads the newest record, so even another process
/// appending to the same file can never fork the chain (it can only make this writer continue
/// after its records).
pub struct SqliteAuditLog {
    handle: Handle,
    readers: SqlitePool,
    writer: std::thread::JoinHandle<()>,
    durability: Durability,
    /// The checkpoint key (a copy of the writer's), for verifying what is stored.
    key: Option<AuditKey>,
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
        let conn = {
            let path = path.to_path_buf();
            tokio::task::spawn_blocking(move || open_writer(&path, durability))
                .await
                .map_err(StoreError::unavailable)?
                .map_err(|err| StoreError::unavailable(std::io::Error::other(err)))?
        };
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
            key: key.clone(),
            checkpoint_every,
        };
        let writer = std::thread::Builder::new()
            .name("voxguard-audit".into())
            .spawn(move || writer.run(rx))
            .map_err(StoreError::unavailable)?;
        Ok(Self {
            handle: Handle { tx },
            readers,
            writer,
            durability,
            key,
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
        let mut next = to_i64(from);
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
        let stopped = tokio::task::spawn_blocking(move || writer.join())
            .await
            .map_err(StoreError::unavailable)
            .and_then(|joined| {
                joined.map_err(|_| {
                    StoreError::unavailable(std::io::Error::other("the audit writer panicked"))
                })
            });
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

    async fn read_page(
        &self,
        from: u64,
        limit: u32,
    ) -> Result<Option<Vec<AuditRecord>>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, time_ms, kind, event, prev_hash, hash FROM audit_log
             WHERE seq >= ? ORDER BY seq LIMIT ?",
        )
        .bind(to_i64(from))
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(&self.readers)
        .await
        .map_err(StoreError::unavailable)?;
        rows.iter()
            .map(decode_record)
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    async fn verify_stored(&self, from: u64) -> Result<Option<VerifyReport>, StoreError> {
        verify_pool(&self.readers, self.key.as_ref(), from)
            .await
            .map(Some)
    }

    async fn last_checkpoint(&self) -> Result<Option<(Checkpoint, bool)>, StoreError> {
        let row: Option<(i64, String, i64, String)> = sqlx::query_as(
            "SELECT seq, hash, time_ms, mac FROM audit_checkpoints ORDER BY seq DESC LIMIT 1",
        )
        .fetch_optional(&self.readers)
        .await
        .map_err(StoreError::unavailable)?;
        Ok(row.map(|row| checked_checkpoint(row, self.key.as_ref())))
    }
}

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

/// Options of a reader connection: read-only, never creating anything.
fn reader_options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .busy_timeout(BUSY_TIMEOUT)
}

/// Open the writer's connection: WAL, the durability's `synchronous`, the schema.
///
/// The writer never checkpoints the WAL itself (SQLite's automatic checkpoint would copy the
/// WAL into the database and sync it inside a commit, stalling every request waiting for its
/// event: the 99th-percentile latency under load); a checkpointer with its own connection does
/// it beside the writer.
fn open_writer(path: &Path, durability: Durability) -> Result<rusqlite::Connection, WriteError> {
    let conn = rusqlite::Connection::open(path)?;
    conn.busy_handler(Some(writer_busy))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err("the audit database could not be put in WAL mode".into());
    }
    let synchronous = match durability {
        Durability::Normal => "NORMAL",
        Durability::Fsync => "FULL",
    };
    conn.pragma_update(None, "synchronous", synchronous)?;
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    // When the WAL starts over, its file is cut back to this size (bytes).
    conn.pragma_update(None, "journal_size_limit", 33_554_432)?;
    for statement in SCHEMA {
        conn.execute(statement, [])?;
    }
    Ok(conn)
}

/// Busy-handler calls the writer waits [`WRITER_BUSY_STEP`] each before it waits a millisecond
/// each (together at least 20 ms; about twice that with Linux's default 50 µs timer slack).
pub(super) const WRITER_BUSY_SHORT: i32 = 400;

/// The writer's first waits for a lock.
const WRITER_BUSY_STEP: Duration = Duration::from_micros(50);

/// Busy-handler calls after which the writer gives up: the short ones, then one per
/// millisecond of [`BUSY_TIMEOUT`] — so it waits at least that long in all.
pub(super) const WRITER_BUSY_CALLS: i32 = WRITER_BUSY_SHORT + BUSY_TIMEOUT.as_millis() as i32;
const _: () = assert!(
    BUSY_TIMEOUT.as_millis() < 1_000_000_000,
    "the cast above stays exact"
);

/// How the writer waits for a lock another connection holds — in practice the checkpointer's
/// RESTART, about once a second under load, which holds the write lock while it copies the
/// last frames and syncs the files (1–25 ms, the disk's `fsync`). SQLite's own
/// `busy_timeout` sleeps 1, 2, 5, 10 … ms between tries, so the writer (and every request
/// waiting for its event) went on waiting up to several milliseconds after the lock was
/// free; this one tries again every [`WRITER_BUSY_STEP`] for the first 20 ms, then every
/// millisecond, and gives up after at least [`BUSY_TIMEOUT`] as before (BENCHMARKS.md,
/// issue 13, fourth round).
fn writer_busy(attempt: i32) -> bool {
    #[cfg(test)]
    WRITER_BUSY_CALLED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    writer_wait(attempt).map(std::thread::sleep).is_some()
}

/// Calls of [`writer_busy`] in this test process: shows a test that the writer's own handler,
/// not SQLite's default, waited.
#[cfg(test)]
pub(super) static WRITER_BUSY_CALLED: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

/// The writer's wait before its `attempt`th retry (counting from 0), or `None` to give up.
pub(super) fn writer_wait(attempt: i32) -> Option<Duration> {
    if attempt >= WRITER_BUSY_CALLS {
        None
    } else if attempt < WRITER_BUSY_SHORT {
        Some(WRITER_BUSY_STEP)
    } else {
        Some(Duration::from_millis(1))
    }
}

/// What the writer's steps fail with: SQLite's error, or one of this module's sentences.
type WriteError = Box<dyn std::error::Error + Send + Sync>;

/// The thread that owns the write connection.
struct SqliteWriter {
    conn: rusqlite::Connection,
    key: Option<AuditKey>,
    checkpoint_every: u64,
}

impl SqliteWriter {
    /// Commit whatever is queued as one group, until every sender is gone.
    fn run(mut self, rx: mpsc::Receiver<Command>) {
        each_batch_blocking(rx, |batch| self.commit(batch));
    }

    /// Store one batch in one transaction, then acknowledge it.
    fn commit(&mut self, mut batch: Batch) {
        let seal = batch.seal();
        let events = std::mem::take(&mut batch.events);
        match self.write(events, seal) {
            Ok(records) => {
                let flushed = if seal { self.sync_wal() } else { Ok(()) };
                let flushed: Result<(), &dyn std::error::Error> = match &flushed {
                    Ok(()) => Ok(()),
                    Err(err) => Err(err.as_ref()),
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
    fn sync_wal(&mut self) -> Result<(), WriteError> {
        let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
        loop {
            let (busy, frames, copied): (i64, i64, i64) =
                self.conn
                    .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                    })?;
            if busy == 0 && copied >= frames {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                return Err(
                    "the audit WAL could not be checkpointed to stable storage in time".into(),
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The group in one `BEGIN IMMEDIATE` transaction, rolled back on any failure.
    fn write(&mut self, events: Vec<AuditEvent>, seal: bool) -> rusqlite::Result<Vec<AuditRecord>> {
        let group = Group::begin(&self.conn)?;
        let records = write_in_transaction(
            &self.conn,
            self.key.as_ref(),
            self.checkpoint_every,
            events,
            seal,
        )?;
        group.commit()?;
        Ok(records)
    }
}

/// One group's transaction on the writer's connection: `BEGIN IMMEDIATE` and `COMMIT` from
/// the statement cache (rusqlite's `Transaction` parses both again for every group, a fifth of
/// the writer's work at low load), rolled back when dropped uncommitted.
pub(super) struct Group<'c> {
    conn: &'c rusqlite::Connection,
    committed: bool,
}

impl<'c> Group<'c> {
    pub(super) fn begin(conn: &'c rusqlite::Connection) -> rusqlite::Result<Self> {
        conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        Ok(Self {
            conn,
            committed: false,
        })
    }

    pub(super) fn commit(mut self) -> rusqlite::Result<()> {
        self.conn.prepare_cached("COMMIT")?.execute([])?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for Group<'_> {
    fn drop(&mut self) {
        // A failed step or COMMIT leaves the transaction open (unless SQLite already rolled
        // it back): nothing of the group stays, and the next group starts clean.
        if !self.committed && !self.conn.is_autocommit() {
            if let Err(error) = self.conn.execute_batch("ROLLBACK") {
                tracing::error!(%error, "the audit writer could not roll a failed group back");
            }
        }
    }
}

/// Chain `events` onto the stored head (read under the write lock) and insert them, with the
/// checkpoints that fall due.
fn write_in_transaction(
    tx: &rusqlite::Connection,
    key: Option<&AuditKey>,
    checkpoint_every: u64,
    events: Vec<AuditEvent>,
    seal: bool,
) -> rusqlite::Result<Vec<AuditRecord>> {
    // Resume from what is stored, under the write lock.
    let head: Option<(i64, String, i64)> = tx
        .prepare_cached("SELECT seq, hash, time_ms FROM audit_log ORDER BY seq DESC LIMIT 1")?
        .query_row([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .optional()?;
    let mut tail = Tail::resume(head.map(|(seq, hash, time_ms)| {
        let decode = |value: i64| u64::try_from(value).unwrap_or(0);
        (decode(seq), hash, decode(time_ms))
    }));
    let mut records = Vec::with_capacity(events.len());
    let mut due = Vec::new();
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO audit_log (seq, time_ms, kind, event, prev_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for event in events {
            let (record, canonical) = tail.append_canonical(event);
            if checkpoint_due(key, checkpoint_every, record.seq) {
                due.push((record.seq, record.hash.clone(), record.event.time_ms));
            }
            insert.execute(rusqlite::params![
                to_i64(record.seq),
                to_i64(record.event.time_ms),
                record.event.kind.as_str(),
                canonical,
                record.prev_hash,
                record.hash,
            ])?;
            records.push(record);
        }
    }
    let (head_seq, head_hash, head_time_ms) = tail.head();
    if seal && key.is_some() && head_seq > 0 && due.last().map(|(seq, _, _)| *seq) != Some(head_seq)
    {
        due.push((head_seq, head_hash.to_string(), head_time_ms));
    }
    if let Some(key) = key {
        for (seq, hash, time_ms) in due {
            let checkpoint = Checkpoint::sign(key, seq, &hash, time_ms);
            tx.prepare_cached(
                "INSERT OR IGNORE INTO audit_checkpoints (seq, hash, time_ms, mac)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(rusqlite::params![
                to_i64(checkpoint.seq),
                checkpoint.hash,
                to_i64(checkpoint.time_ms),
                checkpoint.mac,
            ])?;
        }
    }
    Ok(records)
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

/// Decode a row, strictly (see [`decode_stored`]).
fn decode_record(row: &SqliteRow) -> Result<AuditRecord, StoreError> {
    let column = |name: &str| {
        row.try_get::<String, _>(name)
            .map_err(StoreError::unavailable)
    };
    let time_ms: i64 = row.try_get("time_ms").map_err(StoreError::unavailable)?;
    decode_stored(
        time_ms,
        &column("kind")?,
        &column("event")?,
        column("prev_hash")?,
        column("hash")?,
    )
}

async fn read_checkpoints(pool: &SqlitePool) -> Result<Vec<Checkpoint>, StoreError> {
    let rows: Vec<(i64, String, i64, String)> =
        sqlx::query_as("SELECT seq, hash, time_ms, mac FROM audit_checkpoints ORDER BY seq")
            .fetch_all(pool)
            .await
            .map_err(StoreError::unavailable)?;
    Ok(rows.into_iter().map(decode_checkpoint).collect())
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
    let mut next = to_i64(from);
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
