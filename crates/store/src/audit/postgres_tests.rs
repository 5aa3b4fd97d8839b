//! The PostgreSQL audit sink's tests, on the server named by `VOXGUARD_TEST_POSTGRES_URL`, each
//! in its own schema (skipped, saying so on stderr, when the variable is not set): the sink
//! behaviour the SQLite and JSON-lines sinks are held to, one chain appended to by three
//! replicas at once, tampering caught by verification, and failed commits that acknowledge
//! nothing.
//!
//! This module owns only tests; it must not be compiled outside `cfg(test)`.

use std::collections::BTreeSet;
use std::sync::Arc;

use voxguard_guard::audit::{
    canonical_event_string, chain_hash, parse_canonical_event, AuditRecord, ChainProblem, Outcome,
    VerifyReport,
};

use super::tests::{broken, event, key, ok};
use super::{AuditSink, Durability, PgAuditLog};
use crate::postgres::{testing, PgDatabase};

/// The test server's URL (only called after `testing::database` returned a database).
fn url() -> String {
    std::env::var(testing::URL_VAR).unwrap()
}

/// Another replica's pool on the same schema as `db`.
async fn replica(db: &PgDatabase) -> PgDatabase {
    PgDatabase::connect(&url(), db.schema(), 4).await.unwrap()
}

async fn open(
    db: &PgDatabase,
    durability: Durability,
    every: u64,
    with_key: bool,
) -> Arc<PgAuditLog> {
    Arc::new(
        PgAuditLog::open(db.clone(), durability, with_key.then(key), every)
            .await
            .unwrap(),
    )
}

async fn close(log: Arc<PgAuditLog>) {
    Arc::into_inner(log).unwrap().close().await.unwrap();
}

/// Run `sql` (with `seq` bound as `$1`) on `db`, asserting it changed something.
async fn exec(db: &PgDatabase, sql: &str, seq: i64) {
    let done = sqlx::query(sql).bind(seq).execute(db.pool()).await.unwrap();
    assert!(done.rows_affected() > 0, "{sql} changed nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_concurrent_appends_form_a_contiguous_chain() {
    for durability in [Durability::Normal, Durability::Fsync] {
        let Some(db) = testing::database("audit_concurrent").await else {
            return;
        };
        let log = open(&db, durability, 16, true).await;
        assert_eq!(log.durability(), durability);
        let tasks: Vec<_> = (0..50u64)
            .map(|task| {
                let log = log.clone();
                tokio::spawn(async move {
                    let mut records = Vec::new();
                    for i in 0..4 {
                        records.push(log.append(event(task * 100 + i)).await.unwrap());
                    }
                    records
                })
            })
            .collect();
        let mut acked = Vec::new();
        for task in tasks {
            acked.extend(task.await.unwrap());
        }
        let seqs: BTreeSet<u64> = acked.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, (1..=200).collect(), "{durability:?}");
        acked.sort_by_key(|r| r.seq);
        assert_eq!(log.records(0).await.unwrap(), acked, "{durability:?}");
        assert_eq!(
            log.verify(Some(&key()), 0).await.unwrap(),
            ok(200, 12),
            "{durability:?}"
        );
        close(log).await;
        db.drop_schema().await.unwrap();
    }
}

/// Three replicas (three pools, three writers) append 300 events at once: one chain, seqs
/// 1..=300 without a gap or a fork, and every replica reads the same records.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_three_replicas_append_to_one_chain() {
    let Some(db) = testing::database("audit_replicas").await else {
        return;
    };
    let pools = [db.clone(), replica(&db).await, replica(&db).await];
    let mut logs = Vec::new();
    for pool in &pools {
        logs.push(open(pool, Durability::Normal, 16, true).await);
    }
    let tasks: Vec<_> = (0..300u64)
        .map(|i| {
            let log = logs[(i % 3) as usize].clone();
            tokio::spawn(async move { log.append(event(i)).await.unwrap() })
        })
        .collect();
    let mut acked: Vec<AuditRecord> = Vec::new();
    for task in tasks {
        acked.push(task.await.unwrap());
    }
    let seqs: BTreeSet<u64> = acked.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=300).collect());
    acked.sort_by_key(|r| r.seq);
    for log in &logs {
        assert_eq!(log.records(0).await.unwrap(), acked);
        // Checkpoints at 16, 32, ..., 288, whichever replica wrote those records.
        assert_eq!(log.verify(Some(&key()), 0).await.unwrap(), ok(300, 18));
    }
    // Every replica flushes at shutdown: the head is checkpointed once.
    for log in &logs {
        log.flush().await.unwrap();
    }
    assert_eq!(logs[2].checkpoints().await.unwrap().len(), 19);
    assert_eq!(logs[1].verify(Some(&key()), 0).await.unwrap(), ok(300, 19));
    for log in logs {
        close(log).await;
    }
    db.drop_schema().await.unwrap();
}

/// A replica's idea of the head goes stale as soon as another one appends; it must continue
/// after the other's records, never fork.
#[tokio::test]
async fn pg_replicas_continue_each_others_records() {
    let Some(db) = testing::database("audit_interleave").await else {
        return;
    };
    let a = open(&db, Durability::Normal, 0, true).await;
    let b = open(&replica(&db).await, Durability::Fsync, 0, true).await;
    let mut previous: Option<AuditRecord> = None;
    for i in 0..10 {
        let log = if i % 3 == 0 { &b } else { &a };
        let record = log.append(event(i)).await.unwrap();
        assert_eq!(record.seq, i + 1);
        if let Some(previous) = &previous {
            assert_eq!(record.prev_hash, previous.hash);
        }
        previous = Some(record);
    }
    a.flush().await.unwrap();
    assert_eq!(b.verify(Some(&key()), 0).await.unwrap(), ok(10, 1));
    close(a).await;
    close(b).await;
    db.drop_schema().await.unwrap();
}

#[tokio::test]
async fn pg_reopening_resumes_the_chain() {
    let Some(db) = testing::database("audit_reopen").await else {
        return;
    };
    let first = open(&db, Durability::Normal, 4, true).await;
    let mut last = None;
    for i in 0..6 {
        last = Some(first.append(event(i)).await.unwrap());
    }
    close(first).await;
    let second = open(&db, Durability::Normal, 4, true).await;
    let next = second.append(event(6)).await.unwrap();
    assert_eq!(next.seq, 7);
    assert_eq!(next.prev_hash, last.unwrap().hash);
    for i in 7..10 {
        second.append(event(i)).await.unwrap();
    }
    // Checkpoints at 4 and 8.
    assert_eq!(second.verify(Some(&key()), 0).await.unwrap(), ok(10, 2));
    assert_eq!(
        second.verify(Some(&key()), 6).await.unwrap(),
        VerifyReport::Ok {
            records: 5,
            last_seq: Some(10),
            checkpoints_checked: 1
        }
    );
    close(second).await;
    db.drop_schema().await.unwrap();
}

#[tokio::test]
async fn pg_flush_checkpoints_the_head() {
    let Some(db) = testing::database("audit_flush").await else {
        return;
    };
    let log = open(&db, Durability::Normal, 100, true).await;
    let mut records = Vec::new();
    for i in 0..3 {
        records.push(log.append(event(i)).await.unwrap());
    }
    log.flush().await.unwrap();
    log.flush().await.unwrap();
    let checkpoints = log.checkpoints().await.unwrap();
    assert_eq!(checkpoints.len(), 1);
    assert_eq!(checkpoints[0].seq, 3);
    assert_eq!(checkpoints[0].hash, records[2].hash);
    assert!(checkpoints[0].verify(&key()));
    assert_eq!(log.verify(Some(&key()), 0).await.unwrap(), ok(3, 1));
    close(log).await;
    db.drop_schema().await.unwrap();
}

/// As for the other sinks: a checkpoint carries the time of the record it checkpoints, also
/// for a flush's checkpoint of a head stored by an earlier writer.
#[tokio::test]
async fn pg_checkpoints_carry_the_time_of_their_record() {
    let Some(db) = testing::database("audit_checkpoint_time").await else {
        return;
    };
    let first = open(&db, Durability::Normal, 3, true).await;
    for i in 0..5 {
        first.append(event(i)).await.unwrap();
    }
    close(first).await;
    let second = open(&db, Durability::Normal, 3, true).await;
    second.flush().await.unwrap();
    for i in 5..7 {
        second.append(event(i)).await.unwrap();
    }
    second.flush().await.unwrap();
    let records = second.records(0).await.unwrap();
    let checkpoints = second.checkpoints().await.unwrap();
    let stamped: Vec<(u64, u64)> = checkpoints.iter().map(|c| (c.seq, c.time_ms)).collect();
    let t = 1_700_000_000_000;
    assert_eq!(stamped, [(3, t + 2), (5, t + 4), (6, t + 5), (7, t + 6)]);
    for checkpoint in &checkpoints {
        let record = records.iter().find(|r| r.seq == checkpoint.seq).unwrap();
        assert_eq!(checkpoint.hash, record.hash);
        assert!(checkpoint.verify(&key()));
    }
    assert_eq!(second.verify(Some(&key()), 0).await.unwrap(), ok(7, 4));
    close(second).await;
    db.drop_schema().await.unwrap();
}

#[tokio::test]
async fn pg_no_key_means_no_checkpoints_and_pages_read_back() {
    let Some(db) = testing::database("audit_nokey").await else {
        return;
    };
    let log = open(&db, Durability::Normal, 2, false).await;
    let mut acked = Vec::new();
    for i in 0..5 {
        acked.push(log.append(event(i)).await.unwrap());
    }
    log.flush().await.unwrap();
    assert!(log.checkpoints().await.unwrap().is_empty());
    assert_eq!(log.verify(None, 0).await.unwrap(), ok(5, 0));
    assert_eq!(log.backend(), "postgres");
    let page = log.read_page(3, 2).await.unwrap().unwrap();
    assert_eq!(page, acked[2..4]);
    // A limit of 0 reads one record; past the end, nothing.
    assert_eq!(log.read_page(0, 0).await.unwrap().unwrap(), acked[..1]);
    assert!(log.read_page(6, 10).await.unwrap().unwrap().is_empty());
    close(log).await;
    db.drop_schema().await.unwrap();
}

/// A closed log of 25 records with checkpoints every 10, in a fresh schema.
async fn written(label: &str) -> Option<PgDatabase> {
    let db = testing::database(label).await?;
    let log = open(&db, Durability::Normal, 10, true).await;
    for i in 0..25 {
        log.append(event(i)).await.unwrap();
    }
    close(log).await;
    Some(db)
}

/// What `voxguard audit verify --database-url` would find, with the key.
async fn verdict(db: &PgDatabase) -> VerifyReport {
    PgAuditLog::verify_url(&url(), db.schema(), Some(&key()), 0)
        .await
        .unwrap()
}

#[tokio::test]
async fn pg_tampering_is_detected() {
    let Some(db) = written("audit_untouched").await else {
        return;
    };
    assert_eq!(verdict(&db).await, ok(25, 2));
    db.drop_schema().await.unwrap();

    // Each case: the statements (each with a seq bound as $1), and the verdict.
    let cases: Vec<(Vec<(&str, i64)>, VerifyReport)> = vec![
        // An edited event (its text changed, hash left alone).
        (
            vec![(
                r#"UPDATE audit_log SET event = replace(event, '"outcome":"ok"', '"outcome":"refused"') WHERE seq = $1"#,
                7,
            )],
            broken(7, ChainProblem::Modified),
        ),
        // Whitespace only, an extra field, a copied column that disagrees, garbage.
        (
            vec![(
                "UPDATE audit_log SET event = replace(event, ',', ', ') WHERE seq = $1",
                12,
            )],
            broken(12, ChainProblem::Modified),
        ),
        (
            vec![(
                r#"UPDATE audit_log SET event = replace(event, '{"arguments"', '{"x":1,"arguments"') WHERE seq = $1"#,
                12,
            )],
            broken(12, ChainProblem::Modified),
        ),
        (
            vec![("UPDATE audit_log SET kind = 'payment' WHERE seq = $1", 12)],
            broken(12, ChainProblem::Modified),
        ),
        (
            vec![("UPDATE audit_log SET event = 'garbage' WHERE seq = $1", 12)],
            broken(12, ChainProblem::Modified),
        ),
        // A deleted middle row.
        (
            vec![("DELETE FROM audit_log WHERE seq = $1", 5)],
            broken(5, ChainProblem::Missing),
        ),
        // The tail deleted after a checkpoint.
        (
            vec![("DELETE FROM audit_log WHERE seq > $1", 15)],
            broken(
                16,
                ChainProblem::TruncatedAfterCheckpoint { checkpoint_seq: 20 },
            ),
        ),
        // Two rows' storage positions exchanged.
        (
            vec![
                ("UPDATE audit_log SET seq = -1 WHERE seq = $1", 3),
                ("UPDATE audit_log SET seq = 3 WHERE seq = $1", 4),
                ("UPDATE audit_log SET seq = 4 WHERE seq = $1", -1),
            ],
            broken(3, ChainProblem::Reordered),
        ),
        // A forged checkpoint.
        (
            vec![(
                "UPDATE audit_checkpoints SET time_ms = time_ms + 1 WHERE seq = $1",
                10,
            )],
            broken(10, ChainProblem::CheckpointForged),
        ),
    ];
    for (statements, expected) in cases {
        let db = written("audit_tampered").await.unwrap();
        for (sql, seq) in &statements {
            exec(&db, sql, *seq).await;
        }
        assert_eq!(verdict(&db).await, expected, "{statements:?}");
        db.drop_schema().await.unwrap();
    }
}

#[tokio::test]
async fn pg_rewritten_tail_is_caught_by_a_checkpoint() {
    let Some(db) = written("audit_rewritten").await else {
        return;
    };
    // Rewrite record 14 and re-link everything after it, as an attacker without the key.
    let rows: Vec<(i64, String)> =
        sqlx::query_as("SELECT seq, event FROM audit_log WHERE seq >= 14 ORDER BY seq")
            .fetch_all(db.pool())
            .await
            .unwrap();
    let mut prev: String = sqlx::query_scalar("SELECT hash FROM audit_log WHERE seq = 13")
        .fetch_one(db.pool())
        .await
        .unwrap();
    for (seq, text) in rows {
        let (s, mut e) = parse_canonical_event(&text).unwrap();
        if s == 14 {
            e.outcome = Some(Outcome::Refused);
        }
        let hash = chain_hash(&prev, s, &e);
        sqlx::query("UPDATE audit_log SET event = $1, prev_hash = $2, hash = $3 WHERE seq = $4")
            .bind(canonical_event_string(s, &e))
            .bind(&prev)
            .bind(&hash)
            .bind(seq)
            .execute(db.pool())
            .await
            .unwrap();
        prev = hash;
    }
    assert_eq!(
        PgAuditLog::verify_url(&url(), db.schema(), None, 0)
            .await
            .unwrap(),
        ok(25, 0)
    );
    assert_eq!(
        verdict(&db).await,
        broken(20, ChainProblem::CheckpointMismatch)
    );
    db.drop_schema().await.unwrap();
}

/// A group whose COMMIT fails (a deferred trigger refuses it at commit time) acknowledges none
/// of its events, stores none of them, and the chain continues after the last committed record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_a_failed_commit_acknowledges_nothing() {
    let Some(db) = testing::database("audit_commit_fails").await else {
        return;
    };
    let log = open(&db, Durability::Normal, 0, true).await;
    let mut committed = Vec::new();
    for i in 0..3 {
        committed.push(log.append(event(i)).await.unwrap());
    }
    for sql in [
        "CREATE FUNCTION refuse_commit() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'audit commit refused by the test'; END $$",
        "CREATE CONSTRAINT TRIGGER refuse_commit AFTER INSERT ON audit_log
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_commit()",
    ] {
        sqlx::query(sql).execute(db.pool()).await.unwrap();
    }
    let tasks: Vec<_> = (3..43)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move { log.append(event(i)).await })
        })
        .collect();
    for task in tasks {
        let err = task.await.unwrap().unwrap_err();
        // The caller learns that the store failed, not why in SQL terms.
        let shown = err.to_string();
        assert!(
            !shown.contains("refused by the test") && !shown.contains("audit_log"),
            "{shown}"
        );
    }
    assert_eq!(log.records(0).await.unwrap(), committed);
    sqlx::query("DROP TRIGGER refuse_commit ON audit_log")
        .execute(db.pool())
        .await
        .unwrap();
    let next = log.append(event(43)).await.unwrap();
    assert_eq!(next.seq, 4);
    assert_eq!(next.prev_hash, committed[2].hash);
    log.flush().await.unwrap();
    assert_eq!(log.verify(Some(&key()), 0).await.unwrap(), ok(4, 1));
    close(log).await;
    db.drop_schema().await.unwrap();
}

/// With its pool closed (the database gone for this replica), every append fails and nothing
/// is stored.
#[tokio::test]
async fn pg_a_closed_pool_acknowledges_nothing() {
    let Some(db) = testing::database("audit_closed_pool").await else {
        return;
    };
    let other = replica(&db).await;
    let log = open(&other, Durability::Normal, 0, false).await;
    log.append(event(0)).await.unwrap();
    other.pool().close().await;
    for i in 1..4 {
        assert!(log.append(event(i)).await.is_err());
    }
    assert!(log.flush().await.is_err());
    close(log).await;
    let reader = open(&db, Durability::Normal, 0, false).await;
    assert_eq!(reader.records(0).await.unwrap().len(), 1);
    close(reader).await;
    db.drop_schema().await.unwrap();
}

/// Verifying never creates anything; an unmigrated or missing schema, a bad schema name or an
/// unreachable server is an error (never an empty OK) that shows no password.
#[tokio::test]
async fn pg_verify_url_refuses_what_is_not_an_audit_log() {
    let Some(db) = testing::database("audit_verify_url").await else {
        return;
    };
    let missing = testing::unique_schema("audit_missing");
    assert!(PgAuditLog::verify_url(&url(), &missing, None, 0)
        .await
        .is_err());
    let schemas: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.schemata WHERE schema_name = $1",
    )
    .bind(&missing)
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(schemas, 0, "verification created the schema");
    assert!(PgAuditLog::verify_url(&url(), "Bad; DROP", None, 0)
        .await
        .is_err());
    // A schema that exists but was never migrated: no writer either.
    let bare = PgDatabase::connect(&url(), &testing::unique_schema("audit_bare"), 1)
        .await
        .unwrap();
    assert!(PgAuditLog::verify_url(&url(), bare.schema(), None, 0)
        .await
        .is_err());
    assert!(PgAuditLog::open(bare.clone(), Durability::Normal, None, 0)
        .await
        .is_err());
    bare.drop_schema().await.unwrap();
    let err = PgAuditLog::verify_url(
        "postgres://voxguard:hunter2secret@127.0.0.1:1/db",
        "public",
        None,
        0,
    )
    .await
    .unwrap_err();
    assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");
    // An empty log verifies as empty.
    assert_eq!(
        PgAuditLog::verify_url(&url(), db.schema(), None, 0)
            .await
            .unwrap(),
        VerifyReport::Ok {
            records: 0,
            last_seq: None,
            checkpoints_checked: 0
        }
    );
    db.drop_schema().await.unwrap();
}

/// The writer keeps its connection between groups; after a pause it checks it (as the pool
/// checks the connections it hands out) and goes on chaining.
#[tokio::test]
async fn pg_the_writer_goes_on_after_a_pause() {
    let Some(db) = testing::database("audit_pause").await else {
        return;
    };
    let log = open(&db, Durability::Normal, 0, true).await;
    let first = log.append(event(0)).await.unwrap();
    let second = log.append(event(1)).await.unwrap();
    tokio::time::sleep(super::postgres::HELD_FOR + std::time::Duration::from_millis(200)).await;
    let third = log.append(event(2)).await.unwrap();
    assert_eq!((first.seq, second.seq, third.seq), (1, 2, 3));
    assert_eq!(third.prev_hash, second.hash);
    log.flush().await.unwrap();
    assert_eq!(log.verify(Some(&key()), 0).await.unwrap(), ok(3, 1));
    close(log).await;
    db.drop_schema().await.unwrap();
}

/// A TCP forwarder to the test server that can go silent: every socket stays open but nothing
/// more is forwarded (a partition or a frozen host, not a reset). Returns the URL through it.
async fn silent_proxy() -> (String, Arc<std::sync::atomic::AtomicBool>) {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let target = url();
    let options: sqlx::postgres::PgConnectOptions = target.parse().unwrap();
    let upstream = format!("{}:{}", options.get_host(), options.get_port());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = Arc::new(AtomicBool::new(false));
    let flag = silent.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(upstream.as_str()).await else {
                continue;
            };
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            for (mut from, mut to) in [
                (
                    Box::new(client_read) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
                    Box::new(server_write) as Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
                ),
                (Box::new(server_read), Box::new(client_write)),
            ] {
                let flag = flag.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let n = match from.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if flag.load(SeqCst) {
                            // Hold both ends open, move nothing.
                            std::future::pending::<()>().await;
                        }
                        if to.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        }
    });
    let through = target.replacen(
        &format!(":{}/", options.get_port()),
        &format!(":{port}/"),
        1,
    );
    (through, silent)
}

/// A network gone silent under the writer's held connection fails the group closed within
/// seconds, whether the connection was just used or sat through a pause; it never waits for
/// TCP to give up (minutes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_a_silent_network_fails_the_held_connection_closed() {
    for pause in [false, true] {
        let Some(db) = testing::database("audit_silent").await else {
            return;
        };
        let (through, silent) = silent_proxy().await;
        let via = PgDatabase::connect(&through, db.schema(), 4).await.unwrap();
        let log = open(&via, Durability::Normal, 0, false).await;
        log.append(event(0)).await.unwrap();
        // Chained onto the known head: the writer now holds a connection.
        log.append(event(1)).await.unwrap();
        if pause {
            tokio::time::sleep(super::postgres::HELD_FOR + std::time::Duration::from_millis(200))
                .await;
        }
        silent.store(true, std::sync::atomic::Ordering::SeqCst);
        let outcome =
            tokio::time::timeout(std::time::Duration::from_secs(15), log.append(event(2))).await;
        assert!(
            matches!(outcome, Ok(Err(_))),
            "pause {pause}: the append must fail closed within seconds"
        );
        db.drop_schema().await.unwrap();
    }
}
