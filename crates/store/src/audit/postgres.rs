//! The PostgreSQL audit backend: one hash chain shared by every replica.
//!
//! This module owns [`PgAuditLog`]: the `audit_log` and `audit_checkpoints` tables (migration
//! `0002_audit.sql`, in the [`PgDatabase`]'s schema), the per-replica writer task that commits
//! each group of queued events in one transaction, and the reads that list and verify what is
//! stored. Several replicas — several `PgAuditLog`s on separate pools of one schema — append to
//! ONE chain: inside its transaction a writer first takes a transaction-scoped advisory lock
//! that serializes every appender of the schema, then reads the newest stored record (another
//! replica may have appended since), chains its group onto it, inserts the rows and the due
//! checkpoints, and commits; only then are the events acknowledged. The `seq` primary key is
//! the last guard: two writers that somehow chained onto the same head cannot both commit.
//!
//! The common case takes one round trip instead of five: a writer remembers the head it last
//! committed and chains the next group onto it optimistically, in ONE statement that takes the
//! same advisory lock and inserts the rows (autocommit). If another replica appended meanwhile,
//! the first `seq` collides with its row, the statement fails as a whole (nothing stored), and
//! the group goes through the locked path above. Groups that must be sealed or synced to disk,
//! or that are due a checkpoint, always take the locked path. This
//! module must never build SQL from event data (every value is a bound parameter), must not
//! create or migrate tables (the runtime migrates the [`PgDatabase`]), and its errors must not
//! show SQL, URLs, passwords or event content through `Display`.

use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPool, PgRow};
use sqlx::{ConnectOptions as _, Connection as _, PgConnection, Row as _};
use tokio::sync::mpsc;
use voxguard_guard::audit::{
    canonical_event_string, AuditEvent, AuditKey, AuditRecord, Checkpoint, Verifier, VerifyReport,
};

use super::{
    checked_checkpoint, checkpoint_due, decode_checkpoint, decode_stored, AuditSink, Batch,
    Command, Durability, Handle, Tail, MAX_BATCH, QUEUE_CAPACITY,
};
use crate::postgres::{check_schema, PgDatabase};
use crate::session::to_i64;
use crate::StoreError;

/// Rows read per query when verifying or listing the log.
const PAGE: i64 = 1000;

/// The first key of the advisory lock that serializes appenders (`pg_advisory_xact_lock(int,
/// int)`); the second is derived from the schema name, so deployments (and tests) in other
/// schemas of the same database do not wait for each other. The value spells "VGAU".
const LOCK_CLASS: i32 = 0x5647_4155;

/// How long `verify_url` waits for the server to accept its connection.
const VERIFY_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The newest stored record.
const SELECT_HEAD: &str = "SELECT seq, hash, time_ms FROM audit_log ORDER BY seq DESC LIMIT 1";

/// Up to `$2` records from sequence number `$1` on, in order.
const SELECT_PAGE: &str = "SELECT seq, time_ms, kind, event, prev_hash, hash FROM audit_log
     WHERE seq >= $1 ORDER BY seq LIMIT $2";

/// The second advisory-lock key for `schema`: its 32-bit FNV-1a hash. The same in every build
/// and on every replica (a collision between two schemas only makes them take turns).
fn schema_lock_key(schema: &str) -> i32 {
    let hash = schema.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    i32::from_ne_bytes(hash.to_ne_bytes())
}

/// The audit trail in PostgreSQL, shared by every replica of a deployment.
///
/// Records live in `audit_log`, checkpoints in `audit_checkpoints`, in the schema of the
/// [`PgDatabase`] it was opened on. Each replica runs its own writer; each group commit is one
/// transaction that takes the schema's advisory lock and re-reads the newest record first, so
/// the chain never forks however many replicas append at once (they only take turns).
pub struct PgAuditLog {
    handle: Handle,
    pool: PgPool,
    writer: tokio::task::JoinHandle<()>,
    durability: Durability,
    /// The checkpoint key (a copy of the writer's), for verifying what is stored.
    key: Option<AuditKey>,
}

impl PgAuditLog {
    /// Start the writer of an audit log in `db`'s schema, which must be migrated (the
    /// runtime's [`PgDatabase::migrate`]). The writer continues the chain after the newest
    /// stored record, whoever stored it.
    ///
    /// With a `key`, a signed checkpoint is stored every `checkpoint_every` records (0: only at
    /// [`flush`](AuditSink::flush)); every replica must use the same key and interval.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when the database cannot be reached or holds no audit tables.
    pub async fn open(
        db: PgDatabase,
        durability: Durability,
        key: Option<AuditKey>,
        checkpoint_every: u64,
    ) -> Result<Self, StoreError> {
        let pool = db.pool().clone();
        // Fail at start, not at the first event, when the schema was not migrated.
        sqlx::query("SELECT 1 FROM audit_log, audit_checkpoints LIMIT 0")
            .execute(&pool)
            .await
            .map_err(StoreError::unavailable)?;
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let writer = PgWriter {
            pool: pool.clone(),
            lock_key: schema_lock_key(db.schema()),
            durability,
            key: key.clone(),
            checkpoint_every,
            known_head: None,
            held: None,
        };
        Ok(Self {
            handle: Handle { tx },
            pool,
            writer: tokio::spawn(writer.run(rx)),
            durability,
            key,
        })
    }

    /// This sink's durability mode.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Every stored record with a sequence number of at least `from`, in order (loads them
    /// all; use [`PgAuditLog::verify`] to check a large log).
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] when a stored event is not canonical JSON,
    /// [`StoreError::Unavailable`] when the database fails or a row disagrees with its event.
    pub async fn records(&self, from: u64) -> Result<Vec<AuditRecord>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(StoreError::unavailable)?;
        let mut records = Vec::new();
        let mut next = to_i64(from);
        loop {
            let rows = record_page(&mut conn, next, PAGE).await?;
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
    /// [`StoreError::Unavailable`] when the database fails.
    pub async fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(StoreError::unavailable)?;
        read_checkpoints(&mut conn).await
    }

    /// Verify the stored chain from sequence number `from` in one consistent snapshot (see
    /// [`voxguard_guard::audit::verify`]); checkpoints are only checked with the `key`.
    /// Records appended by any replica while it runs are simply not seen.
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
        let mut conn = self.pool.acquire().await.map_err(StoreError::unavailable)?;
        verify_conn(&mut conn, key, from).await
    }

    /// Verify the audit log in `schema` of the database at `url` without starting a writer
    /// (for `voxguard audit verify --database-url`). Nothing is created or written: the
    /// session is read-only, and a schema without the audit tables is an error, never an empty
    /// OK.
    ///
    /// # Errors
    ///
    /// As [`PgAuditLog::verify`], and [`StoreError::Unavailable`] when the URL or schema name
    /// is refused, the server cannot be reached, or the schema holds no audit tables.
    pub async fn verify_url(
        url: &str,
        schema: &str,
        key: Option<&AuditKey>,
        from: u64,
    ) -> Result<VerifyReport, StoreError> {
        check_schema(schema)?;
        let options: PgConnectOptions = url.parse().map_err(StoreError::unavailable)?;
        let options = options.options([
            ("search_path", schema),
            ("default_transaction_read_only", "on"),
        ]);
        // One plain connection, not a pool: an unreachable server is reported at once, not
        // retried until a timeout.
        let mut conn = tokio::time::timeout(VERIFY_CONNECT_TIMEOUT, options.connect())
            .await
            .map_err(StoreError::unavailable)?
            .map_err(StoreError::unavailable)?;
        let report = async {
            let tables: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM information_schema.tables
                 WHERE table_schema = $1 AND table_name IN ('audit_log', 'audit_checkpoints')",
            )
            .bind(schema)
            .fetch_one(&mut conn)
            .await
            .map_err(StoreError::unavailable)?;
            if tables != 2 {
                return Err(StoreError::unavailable(std::io::Error::other(
                    "the schema holds no voxguard audit tables (wrong schema, or never migrated)",
                )));
            }
            verify_conn(&mut conn, key, from).await
        }
        .await;
        let _ = conn.close().await;
        report
    }

    /// Stop accepting events and wait for the writer to store everything queued. The pool
    /// belongs to the [`PgDatabase`] and stays open.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when the writer failed.
    pub async fn close(self) -> Result<(), StoreError> {
        let Self { handle, writer, .. } = self;
        drop(handle);
        writer.await.map_err(StoreError::unavailable)
    }
}

impl std::fmt::Debug for PgAuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgAuditLog")
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl AuditSink for PgAuditLog {
    async fn append(&self, event: AuditEvent) -> Result<AuditRecord, StoreError> {
        self.handle.append(event).await
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.handle.flush().await
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn read_page(
        &self,
        from: u64,
        limit: u32,
    ) -> Result<Option<Vec<AuditRecord>>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(StoreError::unavailable)?;
        let rows = record_page(&mut conn, to_i64(from), i64::from(limit.clamp(1, 1000))).await?;
        rows.iter()
            .map(decode_record)
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    async fn verify_stored(&self, from: u64) -> Result<Option<VerifyReport>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(StoreError::unavailable)?;
        verify_conn(&mut conn, self.key.as_ref(), from)
            .await
            .map(Some)
    }

    async fn last_checkpoint(&self) -> Result<Option<(Checkpoint, bool)>, StoreError> {
        let row: Option<(i64, String, i64, String)> = sqlx::query_as(
            "SELECT seq, hash, time_ms, mac FROM audit_checkpoints ORDER BY seq DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::unavailable)?;
        Ok(row.map(|row| checked_checkpoint(row, self.key.as_ref())))
    }
}

/// The task that commits one replica's events.
struct PgWriter {
    pool: PgPool,
    lock_key: i32,
    durability: Durability,
    key: Option<AuditKey>,
    checkpoint_every: u64,
    /// The head this writer last committed (`seq`, hash, `time_ms`): the next group is
    /// chained onto it optimistically. `None` after any failure, and at start.
    known_head: Option<(u64, String, u64)>,
    /// The connection the optimistic path keeps between groups (taken out of the pool, so
    /// that closing the pool never waits for it), and when it last answered.
    held: Option<Held>,
}

/// How long the writer keeps using its connection without the pool's liveness check.
///
/// The pool pings a connection each time it hands one out, so that a connection broken by a
/// server restart is replaced before it fails a request. For the writer under load that ping
/// was a second round trip in every group commit, and group commits run one after another:
/// the writer keeps its connection while groups follow each other within this time, and
/// pings it itself after a pause. It takes a fresh one from the pool after any error but
/// another replica's `seq`, after [`HELD_WAIT`] without an answer, and after
/// [`HELD_AT_MOST`]. A closed pool fails the group before the held connection is used, as it
/// does for every other path.
pub(super) const HELD_FOR: Duration = Duration::from_secs(1);

/// The longest a held connection is kept at all, so that it follows the pool's recycling
/// (and a moved server) like every other connection.
const HELD_AT_MOST: Duration = Duration::from_secs(300);

/// The longest the writer waits on its held connection (the ping after a pause, or a group's
/// statement) before it gives the connection up and fails the group closed: the pool's own
/// checks give up after the same time, and a silent network must not stall the audit trail.
const HELD_WAIT: Duration = Duration::from_secs(3);

/// The writer's own connection, when it was taken from the pool and when it last answered.
struct Held {
    conn: PgConnection,
    taken: Instant,
    answered: Instant,
}

/// PostgreSQL's code for a unique violation: an optimistic group collided with another
/// replica's rows.
const UNIQUE_VIOLATION: &str = "23505";

impl PgWriter {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut commands = Vec::with_capacity(MAX_BATCH);
        while rx.recv_many(&mut commands, MAX_BATCH).await > 0 {
            let batch = Batch::new(std::mem::take(&mut commands));
            self.commit(batch).await;
        }
        // Say goodbye, so that the server does not log a lost client.
        if let Some(held) = self.held.take() {
            let _ = tokio::time::timeout(HELD_WAIT, held.conn.close()).await;
        }
    }

    /// Store one batch in one transaction, then acknowledge it: every event gets its record
    /// once the commit succeeded, or an error (and was not stored, unless the connection broke
    /// during the commit itself) when anything failed.
    async fn commit(&mut self, mut batch: Batch) {
        let seal = batch.seal();
        let events = std::mem::take(&mut batch.events);
        let outcome = self.store(events, seal).await;
        self.known_head = match &outcome {
            Ok(records) => records
                .last()
                .map(|record| (record.seq, record.hash.clone(), record.event.time_ms)),
            Err(_) => None,
        };
        match outcome {
            Ok(records) => batch.acknowledge(Ok(records), Ok(())),
            Err(err) => {
                let err: &dyn std::error::Error = &err;
                batch.acknowledge(Err(err), Err(err));
            }
        }
    }

    /// Store `events`: in one round trip onto the known head when that is allowed and works,
    /// else through the locked transaction.
    async fn store(
        &mut self,
        events: Vec<AuditEvent>,
        seal: bool,
    ) -> Result<Vec<AuditRecord>, sqlx::Error> {
        let plain = self.durability != Durability::Fsync && !seal && !events.is_empty();
        let Some(head) = self.known_head.clone().filter(|_| plain) else {
            return self.write(events, seal).await;
        };
        let mut tail = Tail::resume(Some(head));
        let records: Vec<AuditRecord> = events.into_iter().map(|e| tail.append(e)).collect();
        let checkpoint = records
            .iter()
            .any(|r| checkpoint_due(self.key.as_ref(), self.checkpoint_every, r.seq));
        if !checkpoint {
            match self.append_onto_known_head(&records).await {
                Ok(()) => return Ok(records),
                Err(err) if !is_unique_violation(&err) => return Err(err),
                // Another replica appended since: chain onto the stored head instead.
                Err(_) => {}
            }
        }
        let events = records.into_iter().map(|record| record.event).collect();
        self.write(events, seal).await
    }

    /// One autocommit statement: take the appenders' advisory lock, then insert `records`
    /// (chained onto the head this writer last committed). It fails as a whole on a `seq`
    /// another replica already stored.
    async fn append_onto_known_head(&mut self, records: &[AuditRecord]) -> sqlx::Result<()> {
        if self.pool.is_closed() {
            self.held = None;
            return Err(sqlx::Error::PoolClosed);
        }
        let fresh = |pool: PgPool| async move {
            let conn = pool.acquire().await?.detach();
            Ok::<_, sqlx::Error>((conn, Instant::now()))
        };
        let (mut conn, taken) = match self.held.take() {
            Some(held) if held.taken.elapsed() >= HELD_AT_MOST => fresh(self.pool.clone()).await?,
            Some(held) if held.answered.elapsed() < HELD_FOR => (held.conn, held.taken),
            // After a pause, checked as the pool checks the connections it hands out.
            Some(mut held) => match tokio::time::timeout(HELD_WAIT, held.conn.ping()).await {
                Ok(Ok(())) => (held.conn, held.taken),
                _ => fresh(self.pool.clone()).await?,
            },
            None => fresh(self.pool.clone()).await?,
        };
        let outcome = tokio::time::timeout(
            HELD_WAIT,
            Self::insert_onto_known_head(&mut conn, self.lock_key, records),
        )
        .await
        .unwrap_or(Err(sqlx::Error::PoolTimedOut));
        // Kept only after a success or another replica's `seq`: any other error (a server
        // that ended the session sends a FATAL database error first) may mean a connection
        // that is broken or pinned to the wrong server.
        if outcome.is_ok() || outcome.as_ref().is_err_and(is_unique_violation) {
            self.held = Some(Held {
                conn,
                taken,
                answered: Instant::now(),
            });
        }
        outcome
    }

    async fn insert_onto_known_head(
        conn: &mut PgConnection,
        lock_key: i32,
        records: &[AuditRecord],
    ) -> sqlx::Result<()> {
        let columns = RecordColumns::new(records);
        let query = sqlx::query(
            "WITH appenders AS MATERIALIZED (SELECT pg_advisory_xact_lock($7, $8))
             INSERT INTO audit_log (seq, time_ms, kind, event, prev_hash, hash)
             SELECT r.* FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::TEXT[],
                                    $5::TEXT[], $6::TEXT[]) AS r, appenders",
        );
        columns
            .bind(query)
            .bind(LOCK_CLASS)
            .bind(lock_key)
            .execute(conn)
            .await
            .map(drop)
    }

    async fn write(
        &self,
        events: Vec<AuditEvent>,
        seal: bool,
    ) -> Result<Vec<AuditRecord>, sqlx::Error> {
        // Dropped without a commit (any `?` below), the transaction rolls back.
        let mut tx = self.pool.begin().await?;
        // One round trip (a simple-protocol batch: its text holds only this module's constants
        // and two integers, never event data) for what must precede the chaining:
        // - with fsync durability (or a seal), this transaction's commit waits for the disk;
        // - every appender of this schema, on any replica, waits on the advisory lock until the
        //   previous group is committed (the lock is released by COMMIT or ROLLBACK) ...
        // - ... so the head read after it (READ COMMITTED: a fresh snapshot per statement) is
        //   the newest committed record, whichever replica wrote it.
        let sync = if self.durability == Durability::Fsync || seal {
            "SET LOCAL synchronous_commit = on; "
        } else {
            ""
        };
        let prelude = format!(
            "{sync}SELECT pg_advisory_xact_lock({LOCK_CLASS}, {}); {SELECT_HEAD}",
            self.lock_key
        );
        // A plain string with no arguments runs as one simple-protocol query (several
        // statements allowed).
        let rows = sqlx::Executor::fetch_all(&mut *tx, prelude.as_str()).await?;
        // The lock's row has one column, the head's three.
        let head = match rows.iter().rev().find(|row| row.len() == 3) {
            Some(row) => Some((
                row.try_get::<i64, _>(0)?,
                row.try_get::<String, _>(1)?,
                row.try_get::<i64, _>(2)?,
            )),
            None => None,
        };
        let mut tail = Tail::resume(head.map(|(seq, hash, time_ms)| {
            let decode = |value: i64| u64::try_from(value).unwrap_or(0);
            (decode(seq), hash, decode(time_ms))
        }));
        let mut records = Vec::with_capacity(events.len());
        let mut due = Vec::new();
        for event in events {
            let record = tail.append(event);
            if checkpoint_due(self.key.as_ref(), self.checkpoint_every, record.seq) {
                due.push((record.seq, record.hash.clone(), record.event.time_ms));
            }
            records.push(record);
        }
        if !records.is_empty() {
            insert_records(&mut tx, &records).await?;
        }
        let (head_seq, head_hash, head_time_ms) = tail.head();
        if seal
            && self.key.is_some()
            && head_seq > 0
            && due.last().map(|(seq, _, _)| *seq) != Some(head_seq)
        {
            due.push((head_seq, head_hash.to_string(), head_time_ms));
        }
        if let (Some(key), false) = (&self.key, due.is_empty()) {
            let checkpoints: Vec<Checkpoint> = due
                .into_iter()
                .map(|(seq, hash, time_ms)| Checkpoint::sign(key, seq, &hash, time_ms))
                .collect();
            insert_checkpoints(&mut tx, &checkpoints).await?;
        }
        tx.commit().await?;
        Ok(records)
    }
}

/// Whether `err` is a unique violation (another replica's row has the same `seq`).
fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .and_then(|db| db.code())
        .is_some_and(|code| code == UNIQUE_VIOLATION)
}

/// A group's rows as one array per `audit_log` column.
struct RecordColumns<'a> {
    seq: Vec<i64>,
    time_ms: Vec<i64>,
    kind: Vec<&'a str>,
    event: Vec<String>,
    prev_hash: Vec<&'a str>,
    hash: Vec<&'a str>,
}

impl<'a> RecordColumns<'a> {
    fn new(records: &'a [AuditRecord]) -> Self {
        let mut columns = Self {
            seq: Vec::with_capacity(records.len()),
            time_ms: Vec::with_capacity(records.len()),
            kind: Vec::with_capacity(records.len()),
            event: Vec::with_capacity(records.len()),
            prev_hash: Vec::with_capacity(records.len()),
            hash: Vec::with_capacity(records.len()),
        };
        for record in records {
            columns.seq.push(to_i64(record.seq));
            columns.time_ms.push(to_i64(record.event.time_ms));
            columns.kind.push(record.event.kind.as_str());
            columns
                .event
                .push(canonical_event_string(record.seq, &record.event));
            columns.prev_hash.push(record.prev_hash.as_str());
            columns.hash.push(record.hash.as_str());
        }
        columns
    }

    /// `query` with the columns bound as `$1`..`$6`, in `audit_log`'s column order.
    fn bind<'q>(
        self,
        query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>
    where
        'a: 'q,
    {
        query
            .bind(self.seq)
            .bind(self.time_ms)
            .bind(self.kind)
            .bind(self.event)
            .bind(self.prev_hash)
            .bind(self.hash)
    }
}

/// The whole group in one statement with one array parameter per column (a fixed statement
/// text, prepared once per connection, whatever the group's size).
async fn insert_records(conn: &mut PgConnection, records: &[AuditRecord]) -> sqlx::Result<()> {
    let query = sqlx::query(
        "INSERT INTO audit_log (seq, time_ms, kind, event, prev_hash, hash)
         SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::TEXT[], $5::TEXT[],
                              $6::TEXT[])",
    );
    RecordColumns::new(records)
        .bind(query)
        .execute(conn)
        .await
        .map(drop)
}

/// Store signed checkpoints; one already stored for a `seq` (a flush of an unchanged head) is
/// kept.
async fn insert_checkpoints(
    conn: &mut PgConnection,
    checkpoints: &[Checkpoint],
) -> sqlx::Result<()> {
    let seqs: Vec<i64> = checkpoints.iter().map(|c| to_i64(c.seq)).collect();
    let hashes: Vec<&str> = checkpoints.iter().map(|c| c.hash.as_str()).collect();
    let times: Vec<i64> = checkpoints.iter().map(|c| to_i64(c.time_ms)).collect();
    let macs: Vec<&str> = checkpoints.iter().map(|c| c.mac.as_str()).collect();
    sqlx::query(
        "INSERT INTO audit_checkpoints (seq, hash, time_ms, mac)
         SELECT * FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::BIGINT[], $4::TEXT[])
         ON CONFLICT (seq) DO NOTHING",
    )
    .bind(seqs)
    .bind(hashes)
    .bind(times)
    .bind(macs)
    .execute(conn)
    .await
    .map(drop)
}

/// Up to `limit` rows of `audit_log` from storage position `from` on.
async fn record_page(
    conn: &mut PgConnection,
    from: i64,
    limit: i64,
) -> Result<Vec<PgRow>, StoreError> {
    sqlx::query(SELECT_PAGE)
        .bind(from)
        .bind(limit)
        .fetch_all(conn)
        .await
        .map_err(StoreError::unavailable)
}

/// The storage position of a row (`seq` is the primary key, never null).
fn row_seq(row: &PgRow) -> i64 {
    row.try_get::<i64, _>("seq").unwrap_or(i64::MAX)
}

/// Decode a row, strictly (see [`decode_stored`]).
fn decode_record(row: &PgRow) -> Result<AuditRecord, StoreError> {
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

async fn read_checkpoints(conn: &mut PgConnection) -> Result<Vec<Checkpoint>, StoreError> {
    let rows: Vec<(i64, String, i64, String)> =
        sqlx::query_as("SELECT seq, hash, time_ms, mac FROM audit_checkpoints ORDER BY seq")
            .fetch_all(conn)
            .await
            .map_err(StoreError::unavailable)?;
    Ok(rows.into_iter().map(decode_checkpoint).collect())
}

/// Verify in one read-only, repeatable-read transaction: the checkpoints and every page of
/// records come from the same snapshot, so replicas appending meanwhile cannot make a
/// checkpoint point past the records read.
async fn verify_conn(
    conn: &mut PgConnection,
    key: Option<&AuditKey>,
    from: u64,
) -> Result<VerifyReport, StoreError> {
    let mut tx = conn.begin().await.map_err(StoreError::unavailable)?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(StoreError::unavailable)?;
    let checkpoints = read_checkpoints(&mut tx).await?;
    let mut verifier = Verifier::new(&checkpoints, key, from);
    let mut next = to_i64(from);
    while !verifier.is_settled() {
        let rows = record_page(&mut tx, next, PAGE).await?;
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
    // Read-only: ending it either way changes nothing.
    let _ = tx.rollback().await;
    Ok(verifier.finish())
}

#[cfg(test)]
mod unit {
    use super::schema_lock_key;

    #[test]
    fn the_lock_key_depends_only_on_the_schema() {
        // FNV-1a test vectors (32-bit): "" and "a".
        assert_eq!(schema_lock_key(""), 0x811c_9dc5_u32 as i32);
        assert_eq!(schema_lock_key("a"), 0xe40c_292c_u32 as i32);
        assert_eq!(schema_lock_key("public"), schema_lock_key("public"));
        assert_ne!(schema_lock_key("public"), schema_lock_key("tenant_b"));
    }
}
