//! The audit sinks' unit tests: one matrix of backends and durability modes, plus tampering,
//! partial-write and privacy checks per backend.
//!
//! This module owns only tests; it must not be compiled outside `cfg(test)`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::ConnectOptions as _;
use voxguard_guard::audit::{
    canonical_event_string, parse_canonical_event, AuditEvent, AuditKey, AuditKind, AuditRecord,
    ChainProblem, Outcome, VerifyReport, GENESIS_HASH,
};

use super::{AuditSink, Durability, JsonlAuditLog, SqliteAuditLog, AUDIT_DB_FILE_NAME};
use crate::StoreError;

/// The audit key of every test (the PostgreSQL tests share it).
pub(super) fn key() -> AuditKey {
    AuditKey::from_bytes(vec![5u8; 32]).unwrap()
}

/// The `i`th test event, stamped `1_700_000_000_000 + i`.
pub(super) fn event(i: u64) -> AuditEvent {
    AuditEvent {
        call_id: Some(format!("call-{}", i % 5)),
        caller: Some("***4567".into()),
        function: Some("transfer_funds".into()),
        arguments: Some(json!({"amount": i, "to": "acct-9", "card": "****1111"})),
        outcome: Some(Outcome::Ok),
        ..AuditEvent::new(AuditKind::ToolCalled, 1_700_000_000_000 + i)
    }
}

pub(super) fn broken(seq: u64, problem: ChainProblem) -> VerifyReport {
    VerifyReport::Broken { seq, problem }
}

pub(super) fn ok(records: u64, checkpoints_checked: u64) -> VerifyReport {
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
async fn an_append_waits_out_another_connections_write_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let log = Arc::new(
        SqliteAuditLog::open(&path, Durability::Normal, None, 0)
            .await
            .unwrap(),
    );
    log.append(event(0)).await.unwrap();
    // Another connection takes the write lock, as the checkpointer's RESTART does.
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let called = || super::sqlite::WRITER_BUSY_CALLED.load(std::sync::atomic::Ordering::Relaxed);
    let before = called();
    let waiting = tokio::spawn({
        let log = log.clone();
        async move { log.append(event(1)).await }
    });
    // The writer's own handler does the waiting (with rusqlite's default, SQLite's 1, 2, 5 …
    // ms steps, it would never be called).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while called() == before && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        called() > before,
        "the writer's busy handler was never called"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !waiting.is_finished(),
        "the append cannot commit while another connection holds the write lock"
    );
    other.execute_batch("ROLLBACK").unwrap();
    // Once the lock is free the append goes through: the writer waited rather than failed.
    let record = waiting.await.unwrap().unwrap();
    assert_eq!(record.seq, 2);
    drop(other);
    assert_eq!(log.verify(None, 0).await.unwrap(), ok(2, 0));
    Arc::into_inner(log).unwrap().close().await.unwrap();
}

#[test]
fn the_writer_retries_a_lock_briefly_at_first_and_gives_up_after_the_busy_timeout() {
    use super::sqlite::{writer_wait, BUSY_TIMEOUT, WRITER_BUSY_CALLS, WRITER_BUSY_SHORT};
    // A lock held for a fraction of a millisecond costs the writer about that, not SQLite's
    // 1, 2, 5 ms steps.
    for attempt in 0..WRITER_BUSY_SHORT {
        assert!(writer_wait(attempt).unwrap() <= Duration::from_micros(100));
    }
    let total: Duration = (0..WRITER_BUSY_CALLS)
        .map(|a| writer_wait(a).unwrap())
        .sum();
    assert!(total >= BUSY_TIMEOUT, "gives up after {total:?}");
    assert!(total <= BUSY_TIMEOUT + Duration::from_millis(100));
    assert_eq!(writer_wait(WRITER_BUSY_CALLS), None);
    assert_eq!(writer_wait(i32::MAX), None);
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

/// Through the trait, a SQLite sink verifies itself with its own key (as `voxguard audit verify`
/// does with the same key) and names its newest checkpoint; a JSON-lines sink declines both.
#[tokio::test]
async fn a_sink_verifies_itself_and_names_its_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let opened = open(Kind::Sqlite, &path, Durability::Normal, Some(key()), 2).await;
    assert_eq!(opened.sink.last_checkpoint().await.unwrap(), None);
    let mut records = Vec::new();
    for i in 0..5 {
        records.push(opened.sink.append(event(i)).await.unwrap());
    }
    let (checkpoint, valid) = opened.sink.last_checkpoint().await.unwrap().unwrap();
    assert_eq!(checkpoint.seq, 4);
    assert_eq!(checkpoint.hash, records[3].hash);
    assert!(valid);
    assert_eq!(opened.sink.verify_stored(1).await.unwrap(), Some(ok(5, 2)));
    opened.close().await;
    // The same file under another key: the checkpoint's signature is not valid, and the
    // chain no longer verifies.
    let other = AuditKey::from_bytes(vec![6u8; 32]).unwrap();
    let reopened = open(Kind::Sqlite, &path, Durability::Normal, Some(other), 100).await;
    let (_, valid) = reopened.sink.last_checkpoint().await.unwrap().unwrap();
    assert!(!valid);
    assert_eq!(
        reopened.sink.verify_stored(1).await.unwrap(),
        Some(broken(2, ChainProblem::CheckpointForged))
    );
    reopened.close().await;

    let jsonl = open(
        Kind::Jsonl,
        &dir.path().join("audit.jsonl"),
        Durability::Normal,
        Some(key()),
        2,
    )
    .await;
    jsonl.sink.append(event(0)).await.unwrap();
    assert_eq!(jsonl.sink.verify_stored(1).await.unwrap(), None);
    assert_eq!(jsonl.sink.last_checkpoint().await.unwrap(), None);
    jsonl.close().await;
}

/// A checkpoint carries the time of the record it checkpoints (stamped on the event by the
/// runtime's clock), never a read of the wall clock: periodic checkpoints, a flush's checkpoint
/// of a head stored by an earlier run, and one of a head written in the same group.
#[tokio::test]
async fn checkpoints_carry_the_time_of_their_record() {
    for kind in [Kind::Sqlite, Kind::Jsonl] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let first = open(kind, &path, Durability::Normal, Some(key()), 3).await;
        for i in 0..5 {
            first.sink.append(event(i)).await.unwrap();
        }
        // Closed without a flush: only record 3 is checkpointed, the head (5) is not.
        first.close().await;
        let second = open(kind, &path, Durability::Normal, Some(key()), 3).await;
        second.sink.flush().await.unwrap();
        for i in 5..7 {
            second.sink.append(event(i)).await.unwrap();
        }
        second.sink.flush().await.unwrap();
        let (records, checkpoints) = match (&second.sqlite, &second.jsonl) {
            (Some(s), _) => (s.records(0).await.unwrap(), s.checkpoints().await.unwrap()),
            (_, Some(_)) => (
                JsonlAuditLog::read_all(&path).await.unwrap(),
                JsonlAuditLog::read_checkpoints(&path).await.unwrap(),
            ),
            _ => unreachable!(),
        };
        let stamped: Vec<(u64, u64)> = checkpoints.iter().map(|c| (c.seq, c.time_ms)).collect();
        let t = 1_700_000_000_000;
        assert_eq!(
            stamped,
            [(3, t + 2), (5, t + 4), (6, t + 5), (7, t + 6)],
            "{kind:?}"
        );
        for checkpoint in &checkpoints {
            let record = records.iter().find(|r| r.seq == checkpoint.seq).unwrap();
            assert_eq!(checkpoint.time_ms, record.event.time_ms, "{kind:?}");
            assert_eq!(checkpoint.hash, record.hash, "{kind:?}");
            assert!(checkpoint.verify(&key()), "{kind:?}");
        }
        assert_eq!(second.verify(Some(&key()), 0).await, ok(7, 4), "{kind:?}");
        second.close().await;
    }
}

#[tokio::test]
async fn no_key_means_no_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let log = SqliteAuditLog::open_in_dir(dir.path().join("state"), Durability::Normal, None, 2)
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

/// The writer's group transaction: dropped uncommitted (a step failed) nothing of it stays and
/// the connection is ready for the next group; committed, all of it stays. A failure halfway
/// through a group (here a duplicate key after a good row) takes the good row back with it.
#[test]
fn a_writer_group_is_all_or_nothing() {
    use super::sqlite::Group;
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    conn.execute_batch("CREATE TABLE t (x INTEGER PRIMARY KEY)")
        .unwrap();
    let count = |conn: &rusqlite::Connection| -> i64 {
        conn.query_row("SELECT count(*) FROM t", [], |row| row.get(0))
            .unwrap()
    };
    let failed = (|| -> rusqlite::Result<()> {
        let group = Group::begin(&conn)?;
        conn.execute("INSERT INTO t (x) VALUES (1)", [])?;
        conn.execute("INSERT INTO t (x) VALUES (1)", [])?;
        group.commit()
    })();
    assert!(failed.is_err(), "the duplicate key fails the group");
    assert!(conn.is_autocommit(), "the failed group was rolled back");
    assert_eq!(count(&conn), 0, "nothing of the failed group stays");
    for round in 0..3 {
        let group = Group::begin(&conn).unwrap();
        conn.execute("INSERT INTO t (x) VALUES (?1)", [10 + round])
            .unwrap();
        group.commit().unwrap();
        assert!(conn.is_autocommit());
    }
    assert_eq!(count(&conn), 3, "each committed group stays");
    let group = Group::begin(&conn).unwrap();
    conn.execute("INSERT INTO t (x) VALUES (99)", []).unwrap();
    drop(group);
    assert_eq!(
        count(&conn),
        3,
        "a group dropped before COMMIT leaves nothing"
    );
    // A COMMIT that fails (a deferred foreign key, checked only then) leaves SQLite's
    // transaction open: the group rolls it back, and the next group commits.
    conn.execute_batch(
        "PRAGMA foreign_keys = ON;
         CREATE TABLE child (x INTEGER REFERENCES t (x) DEFERRABLE INITIALLY DEFERRED)",
    )
    .unwrap();
    let group = Group::begin(&conn).unwrap();
    conn.execute("INSERT INTO t (x) VALUES (50)", []).unwrap();
    conn.execute("INSERT INTO child (x) VALUES (12345)", [])
        .unwrap();
    assert!(group.commit().is_err(), "the COMMIT itself fails");
    assert!(conn.is_autocommit(), "the failed COMMIT was rolled back");
    assert_eq!(
        count(&conn),
        3,
        "nothing of the group whose COMMIT failed stays"
    );
    let group = Group::begin(&conn).unwrap();
    conn.execute("INSERT INTO t (x) VALUES (51)", []).unwrap();
    group.commit().unwrap();
    assert_eq!(count(&conn), 4);
}
