//! Tests of what only PostgreSQL promises: several replicas (separate pools on one schema) see
//! each other's writes at once and share atomic attempt counters, and migrations can run
//! concurrently. The behaviour every backend shares is tested in `crate::tests`.
//!
//! Each test uses its own schema and skips (saying so on stderr) when
//! `VOXGUARD_TEST_POSTGRES_URL` is not set.

use std::error::Error as _;
use std::sync::Arc;

use serde_json::json;

use super::{testing, PgDatabase, PgStore};
use crate::{
    AttemptLimits, AttemptStatus, AttemptStore, Reservation, SessionStore, StoreError,
    DEFAULT_SESSION_TTL,
};

const T0: u64 = 1_700_000_000;

/// The test database's URL (only called after `testing::database` returned a database).
fn url() -> String {
    std::env::var(testing::URL_VAR).expect("the test database URL")
}

/// A migrated fresh schema and two stores on it with separate pools, as two replicas have.
async fn two_replicas(label: &str) -> Option<(PgDatabase, PgStore, PgStore)> {
    let one = testing::database(label).await?;
    let two = PgDatabase::connect(&url(), one.schema(), 8)
        .await
        .expect("second pool");
    let stores = (
        PgStore::new(one.clone(), DEFAULT_SESSION_TTL),
        PgStore::new(two, DEFAULT_SESSION_TTL),
    );
    Some((one, stores.0, stores.1))
}

#[tokio::test]
async fn a_write_through_one_replica_is_read_through_the_other_at_once() {
    let Some((db, a, b)) = two_replicas("replica_rw").await else {
        return;
    };
    // Warm both sides first: a cache anywhere would now answer from stale state.
    assert_eq!(a.get("agent/c1/r", "verified", T0).await.unwrap(), None);
    assert_eq!(b.get("agent/c1/r", "verified", T0).await.unwrap(), None);
    a.set("agent/c1/r", "verified", &json!(true), T0)
        .await
        .unwrap();
    assert_eq!(
        b.get("agent/c1/r", "verified", T0).await.unwrap(),
        Some(json!(true))
    );
    b.set("agent/c1/r", "verified", &json!(false), T0)
        .await
        .unwrap();
    assert_eq!(
        a.get("agent/c1/r", "verified", T0).await.unwrap(),
        Some(json!(false))
    );
    // A renewal by one replica is seen by the other.
    b.set("agent/c1/r", "other", &json!(1), T0 + 100)
        .await
        .unwrap();
    let renewed = T0 + DEFAULT_SESSION_TTL.as_secs() + 50;
    assert_eq!(
        a.get("agent/c1/r", "verified", renewed).await.unwrap(),
        Some(json!(false))
    );
    // A one-shot value taken on one side is gone on the other.
    a.set("agent/c1/r", "pending", &json!({"amount": 5}), T0)
        .await
        .unwrap();
    assert_eq!(
        b.take("agent/c1/r", "pending", T0).await.unwrap(),
        Some(json!({"amount": 5}))
    );
    assert_eq!(a.take("agent/c1/r", "pending", T0).await.unwrap(), None);
    // Keys and scopes are opaque: NUL and non-ASCII round-trip.
    a.set("agent/\0é", "k\0", &json!("v\0"), T0).await.unwrap();
    assert_eq!(
        b.get("agent/\0é", "k\0", T0).await.unwrap(),
        Some(json!("v\0"))
    );
    assert_eq!(b.get("agent/\0é", "k", T0).await.unwrap(), None);
    // Erasure through one replica is seen by the other.
    assert_eq!(b.clear_prefix("agent/").await.unwrap(), 3);
    assert_eq!(a.get("agent/c1/r", "verified", T0).await.unwrap(), None);
    // Attempt counters are shared.
    let limits = AttemptLimits::fixed(3, 900);
    assert_eq!(
        a.reserve("subject\0x", &limits, T0).await.unwrap(),
        Reservation::Granted { attempt: 1 }
    );
    assert_eq!(
        b.attempt_status("subject\0x", T0).await.unwrap().failures,
        1
    );
    assert_eq!(b.attempt_status("subject", T0).await.unwrap().failures, 0);
    b.settle("subject\0x", true, &limits, T0).await.unwrap();
    assert_eq!(
        a.attempt_status("subject\0x", T0).await.unwrap(),
        AttemptStatus::default()
    );
    assert_eq!(a.backend(), "postgres");
    a.ping().await.unwrap();
    b.database().pool().close().await;
    db.drop_schema().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reservations_across_two_replicas_grant_exactly_the_limit() {
    const TASKS: usize = 30;
    const MAX: u32 = 4;
    let Some((db, a, b)) = two_replicas("replica_reserve").await else {
        return;
    };
    let stores: [Arc<dyn AttemptStore>; 2] = [Arc::new(a.clone()), Arc::new(b.clone())];
    let limits = AttemptLimits::fixed(MAX, 900);
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let mut tasks = Vec::new();
    for i in 0..TASKS {
        let store = Arc::clone(&stores[i % 2]);
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store.reserve("shared-subject", &limits, T0).await
        }));
    }
    let mut granted = Vec::new();
    for task in tasks {
        match task.await.expect("task").expect("reserve") {
            Reservation::Granted { attempt } => granted.push(attempt),
            Reservation::Locked { until: None } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    granted.sort_unstable();
    assert_eq!(granted, (1..=MAX).collect::<Vec<_>>());
    for store in &stores {
        assert_eq!(
            store.attempt_status("shared-subject", T0).await.unwrap(),
            AttemptStatus {
                failures: MAX,
                locked_until: None
            }
        );
    }
    // The settlements, split across the replicas too, lock the subject once.
    let mut settles = Vec::new();
    for i in 0..MAX as usize {
        let store = Arc::clone(&stores[i % 2]);
        settles.push(tokio::spawn(async move {
            store.settle("shared-subject", false, &limits, T0).await
        }));
    }
    for settle in settles {
        settle.await.expect("task").expect("settle");
    }
    assert_eq!(
        b.attempt_status("shared-subject", T0).await.unwrap(),
        AttemptStatus {
            failures: MAX,
            locked_until: Some(T0 + 900)
        }
    );
    b.database().pool().close().await;
    db.drop_schema().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_take_across_two_replicas_has_exactly_one_winner() {
    let Some((db, a, b)) = two_replicas("replica_take").await else {
        return;
    };
    a.set("t/1", "pending", &json!(42), T0).await.unwrap();
    let stores: [Arc<dyn SessionStore>; 2] = [Arc::new(a), Arc::new(b.clone())];
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = Arc::clone(&stores[i % 2]);
        tasks.push(tokio::spawn(async move {
            store.take("t/1", "pending", T0).await
        }));
    }
    let mut winners = 0;
    for task in tasks {
        if let Some(value) = task.await.expect("task").expect("take") {
            assert_eq!(value, json!(42));
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
    b.database().pool().close().await;
    db.drop_schema().await.unwrap();
}

#[tokio::test]
async fn migrate_is_idempotent() {
    let Some(db) = testing::database("migrate_twice").await else {
        return;
    };
    let known: Vec<i64> = PgDatabase::known_migrations()
        .into_iter()
        .map(|(version, _)| version)
        .collect();
    assert!(!known.is_empty());
    assert_eq!(db.applied_migrations().await.unwrap(), known);
    db.migrate().await.unwrap();
    db.migrate().await.unwrap();
    assert_eq!(db.applied_migrations().await.unwrap(), known);
    db.drop_schema().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_migrations_of_a_fresh_schema_both_succeed() {
    let Some(probe) = std::env::var(testing::URL_VAR)
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!(
            "skipped on PostgreSQL (concurrent migrate): {} is not set",
            testing::URL_VAR
        );
        return;
    };
    let schema = testing::unique_schema("migrate_race");
    let one = PgDatabase::connect(&probe, &schema, 2).await.unwrap();
    let two = PgDatabase::connect(&probe, &schema, 2).await.unwrap();
    assert_eq!(one.applied_migrations().await.unwrap(), Vec::<i64>::new());
    let (first, second) = tokio::join!(one.migrate(), two.migrate());
    first.unwrap();
    second.unwrap();
    let known: Vec<i64> = PgDatabase::known_migrations()
        .into_iter()
        .map(|(version, _)| version)
        .collect();
    assert_eq!(two.applied_migrations().await.unwrap(), known);
    // Both pools can use the tables.
    let store = PgStore::new(two.clone(), DEFAULT_SESSION_TTL);
    store.set("m/1", "k", &json!(1), T0).await.unwrap();
    assert_eq!(
        PgStore::new(one.clone(), DEFAULT_SESSION_TTL)
            .get("m/1", "k", T0)
            .await
            .unwrap(),
        Some(json!(1))
    );
    two.pool().close().await;
    one.drop_schema().await.unwrap();
}

#[tokio::test]
async fn errors_and_debug_never_show_sql_urls_or_values() {
    let Some(db) = testing::database("pg_errors").await else {
        return;
    };
    let store = PgStore::new(db.clone(), DEFAULT_SESSION_TTL);
    store
        .set("secret-scope", "pin", &json!("4321"), T0)
        .await
        .unwrap();
    let debug = format!("{store:?}");
    assert!(debug.contains("PgStore"), "{debug}");
    for secret in ["4321", "secret-scope", "postgres://", "127.0.0.1"] {
        assert!(!debug.contains(secret), "{debug}");
    }
    // A stored value that is not JSON is reported without its content.
    sqlx::query("UPDATE session_entries SET value = 'not json 4321'")
        .execute(db.pool())
        .await
        .unwrap();
    let err = store.get("secret-scope", "pin", T0).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(!err.to_string().contains("4321"));
    db.drop_schema().await.unwrap();
    // With the tables gone, every operation fails with a generic message; the detail (which
    // names SQL objects) is only the source.
    let limits = AttemptLimits::fixed(3, 900);
    let failures = [
        store.get("secret-scope", "pin", T0).await.map(|_| ()),
        store.set("s", "k", &json!(1), T0).await,
        store.take("s", "k", T0).await.map(|_| ()),
        store.clear_prefix("s").await.map(|_| ()),
        store.reserve("subject", &limits, T0).await.map(|_| ()),
        store
            .settle("subject", false, &limits, T0)
            .await
            .map(|_| ()),
    ];
    for failure in failures {
        let err = failure.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
        assert_eq!(err.to_string(), "session store is unavailable");
        assert!(err.source().is_some());
    }
    db.pool().close().await;
    assert!(store.ping().await.is_err());
}

/// Replicas of a new deployment start at once: each connects (creating the schema) and
/// migrates. `CREATE SCHEMA IF NOT EXISTS` is not safe against a concurrent creation of the
/// same schema (PostgreSQL can report a unique violation on `pg_namespace`), and a replica must
/// not fail to start because another one created the schema a moment earlier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_connecting_at_once_to_a_fresh_schema_all_start() {
    let Some(url) = std::env::var(testing::URL_VAR)
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!(
            "skipped on PostgreSQL (concurrent connect): {} is not set",
            testing::URL_VAR
        );
        return;
    };
    // Several rounds, each on its own fresh schema: the race needs two creations to overlap.
    for _ in 0..10 {
        let schema = testing::unique_schema("connect_race");
        let starts = (0..6).map(|_| {
            let (url, schema) = (url.clone(), schema.clone());
            tokio::spawn(async move {
                let db = PgDatabase::connect(&url, &schema, 1).await?;
                db.migrate().await?;
                db.pool().close().await;
                Ok::<_, StoreError>(())
            })
        });
        let results = futures_util::future::join_all(starts).await;
        let cleanup = PgDatabase::connect(&url, &schema, 1).await.unwrap();
        cleanup.drop_schema().await.unwrap();
        cleanup.pool().close().await;
        for result in results {
            let started = result.expect("no panic");
            assert!(
                started.is_ok(),
                "a replica failed to start: {:?}",
                started.map_err(|e| e.source().map(ToString::to_string))
            );
        }
    }
}

/// Two replicas with the read cache, each following its own notifier on the shared schema, and
/// a plain pool for writing behind their backs.
async fn two_cached_replicas(label: &str) -> Option<(PgDatabase, PgStore, PgStore)> {
    let one = testing::database(label).await?;
    let two = PgDatabase::connect(&url(), one.schema(), 8)
        .await
        .expect("second pool");
    let cached = |db: PgDatabase| async move {
        let notifier = super::PgNotifier::connect(&db).await.expect("notifier");
        PgStore::new(db, DEFAULT_SESSION_TTL).with_cache(Arc::new(notifier))
    };
    let a = cached(PgDatabase::connect(&url(), one.schema(), 8).await.unwrap()).await;
    let b = cached(two).await;
    Some((one, a, b))
}

/// Change a stored value with plain SQL, as nothing in voxguard does: no notice is sent.
async fn write_behind_the_back(db: &PgDatabase, scope: &str, key: &str, value: &str) {
    sqlx::query("UPDATE session_entries SET value = $3 WHERE scope = $1 AND key = $2")
        .bind(scope.as_bytes())
        .bind(key.as_bytes())
        .bind(value)
        .execute(db.pool())
        .await
        .unwrap();
}

/// Wait until `store` answers `scope`/`key` from memory: the database holds `cached` (JSON
/// text) while it reads, then `behind` is written behind its back, and it must still answer
/// `cached` (a notice of an earlier write may arrive in between and empty the cache: then try
/// again). Returns with `cached` in the cache and `behind` in the database, and the `now` the
/// cache was filled at: each try reads at a later `now` than any earlier try's entry lives.
async fn until_cached(
    db: &PgDatabase,
    store: &PgStore,
    scope: &str,
    key: &str,
    cached: &str,
    behind: &str,
) -> u64 {
    let want: serde_json::Value = serde_json::from_str(cached).unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut now = T0;
    loop {
        write_behind_the_back(db, scope, key, cached).await;
        assert_eq!(
            store.get(scope, key, now).await.unwrap(),
            Some(want.clone())
        );
        write_behind_the_back(db, scope, key, behind).await;
        if store.get(scope, key, now).await.unwrap() == Some(want.clone()) {
            return now;
        }
        now += super::MAX_AGE_SECS as u64 + 1;
        assert!(
            tokio::time::Instant::now() < deadline,
            "never answered from memory"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// Read `scope`/`key` on `store` at `now` until it answers `want`, within 30 s.
async fn eventually(
    store: &PgStore,
    scope: &str,
    key: &str,
    now: u64,
    want: Option<serde_json::Value>,
) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let got = store.get(scope, key, now).await.unwrap();
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{scope}/{key}: still {got:?}, want {want:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn cached_replicas_see_each_others_writes_once_the_notice_arrives() {
    let Some((db, a, b)) = two_cached_replicas("replica_cache").await else {
        return;
    };
    let scope = "agent/c1/r";
    assert!(a.cache_is_live() && b.cache_is_live());
    // An absence is never cached: a verification on A is seen by B's very next read.
    assert_eq!(b.get(scope, "verified", T0).await.unwrap(), None);
    a.set(scope, "verified", &json!(true), T0).await.unwrap();
    assert_eq!(
        b.get(scope, "verified", T0).await.unwrap(),
        Some(json!(true))
    );

    // B answers from memory once A's notice has come: a change that sends none is not seen...
    let filled = until_cached(&db, &b, scope, "verified", "true", "false").await;
    assert_eq!(
        b.get(scope, "verified", filled).await.unwrap(),
        Some(json!(true))
    );
    // ... for at most MAX_AGE_SECS of the caller's clock.
    let later = filled + super::MAX_AGE_SECS as u64;
    assert_eq!(
        b.get(scope, "verified", later).await.unwrap(),
        Some(json!(false))
    );

    // A write through A is announced: B forgets its copy when the notice arrives.
    a.set(scope, "verified", &json!("again"), later)
        .await
        .unwrap();
    eventually(&b, scope, "verified", later, Some(json!("again"))).await;
    // A's own writes are never served stale to A.
    a.remove(scope, "verified").await.unwrap();
    assert_eq!(a.get(scope, "verified", later).await.unwrap(), None);
    eventually(&b, scope, "verified", later, None).await;
    // A clear and an erasure by prefix reach B as well.
    a.set(scope, "k", &json!(1), later).await.unwrap();
    assert_eq!(b.get(scope, "k", later).await.unwrap(), Some(json!(1)));
    a.clear(scope).await.unwrap();
    eventually(&b, scope, "k", later, None).await;
    a.set(scope, "k", &json!(2), later).await.unwrap();
    assert_eq!(b.get(scope, "k", later).await.unwrap(), Some(json!(2)));
    assert_eq!(a.clear_prefix("agent/").await.unwrap(), 1);
    eventually(&b, scope, "k", later, None).await;
    // take is atomic on the database whatever is cached.
    a.set(scope, "pending", &json!(5), later).await.unwrap();
    assert_eq!(
        b.get(scope, "pending", later).await.unwrap(),
        Some(json!(5))
    );
    assert_eq!(
        a.take(scope, "pending", later).await.unwrap(),
        Some(json!(5))
    );
    assert_eq!(b.take(scope, "pending", later).await.unwrap(), None);
    eventually(&b, scope, "pending", later, None).await;
    db.drop_schema().await.unwrap();
}

#[tokio::test]
async fn a_cache_whose_subscription_is_lost_reads_the_database() {
    let Some((db, a, b)) = two_cached_replicas("replica_cache_lost").await else {
        return;
    };
    let scope = "agent/c2/r";
    a.set(scope, "verified", &json!(true), T0).await.unwrap();
    until_cached(&db, &b, scope, "verified", "true", "1").await;
    // Every listening connection of this schema is cut. Until each replica listens again, it
    // may miss notices, so it must not answer from memory at all.
    let channel = super::channel_for_schema(db.schema());
    let terminated: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE pid <> pg_backend_pid() AND position($1 in query) > 0",
    )
    .bind(&channel)
    .fetch_all(db.pool())
    .await
    .unwrap();
    assert_eq!(terminated.len(), 2);
    // Either the loss was noticed (the cache is bypassed and was emptied) or the replica has
    // already listened again (and emptied it on the resync): both read the database.
    eventually(&b, scope, "verified", T0, Some(json!(1))).await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while !b.cache_is_live() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cache came back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Back in use, and kept honest by notices again.
    assert_eq!(b.get(scope, "verified", T0).await.unwrap(), Some(json!(1)));
    a.set(scope, "verified", &json!(2), T0).await.unwrap();
    eventually(&b, scope, "verified", T0, Some(json!(2))).await;
    db.drop_schema().await.unwrap();
}
