//! One behavioural suite run against every backend, so that they provably behave alike.
//!
//! This module owns the crate's unit tests; it must not be compiled outside `cfg(test)`.

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::postgres::{testing, PgDatabase};
use crate::session::ttl_secs;
use crate::{
    AttemptLimits, AttemptStatus, AttemptStore, MemoryStore, PgStore, Reservation, SessionStore,
    SqliteStore, StoreError, DEFAULT_SESSION_TTL,
};

/// A store under test, with the temporary directory that must outlive it (file backend) or the
/// PostgreSQL schema to drop once the test is done.
struct Backend {
    store: Arc<dyn SessionStore>,
    _dir: Option<tempfile::TempDir>,
    pg: Option<PgDatabase>,
}

/// Drop the PostgreSQL schemas the backends created (the other backends clean up on drop).
async fn drop_schemas(schemas: impl IntoIterator<Item = Option<PgDatabase>>) {
    for db in schemas.into_iter().flatten() {
        db.drop_schema().await.expect("drop the test schema");
    }
}

/// The instant (unix seconds) the suites run at unless they move time themselves.
const T0: u64 = 1_700_000_000;

/// The three embedded backends, and PostgreSQL (in a fresh schema) when
/// `VOXGUARD_TEST_POSTGRES_URL` is set, all with the same TTL. None of them reads the time:
/// every test passes `now` explicitly, so time moves only when a test says so.
async fn backends(ttl: Duration) -> Vec<Backend> {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = SqliteStore::open(dir.path().join("test.db"), ttl)
        .await
        .expect("open file store");
    let in_memory = SqliteStore::open_in_memory(ttl)
        .await
        .expect("open in-memory store");
    let mut all = vec![
        Backend {
            store: Arc::new(MemoryStore::new(ttl)),
            _dir: None,
            pg: None,
        },
        Backend {
            store: Arc::new(in_memory),
            _dir: None,
            pg: None,
        },
        Backend {
            store: Arc::new(file),
            _dir: Some(dir),
            pg: None,
        },
    ];
    if let Some(db) = testing::database("sessions").await {
        all.push(Backend {
            store: Arc::new(PgStore::new(db.clone(), ttl)),
            _dir: None,
            pg: Some(db),
        });
    }
    // The same backend with the replicas' read cache, following notices on its own schema.
    if let Some(db) = testing::database("sessions_cached").await {
        let notifier = crate::PgNotifier::connect(&db).await.expect("notifier");
        all.push(Backend {
            store: Arc::new(PgStore::new(db.clone(), ttl).with_cache(Arc::new(notifier))),
            _dir: None,
            pg: Some(db),
        });
    }
    all
}

/// Basic reads and writes, with a TTL long enough that nothing expires.
async fn basic_suite(store: Arc<dyn SessionStore>) {
    let b = store.backend();
    store.ping().await.expect("ping");
    assert_eq!(store.get("a/1", "missing", T0).await.unwrap(), None, "{b}");

    // set / get / overwrite
    store
        .set("a/1", "verified", &json!(false), T0)
        .await
        .unwrap();
    assert_eq!(
        store.get("a/1", "verified", T0).await.unwrap(),
        Some(json!(false)),
        "{b}"
    );
    store
        .set("a/1", "verified", &json!(true), T0)
        .await
        .unwrap();
    assert_eq!(
        store.get("a/1", "verified", T0).await.unwrap(),
        Some(json!(true)),
        "{b}"
    );

    // scopes are isolated
    store
        .set("a/2", "verified", &json!("other"), T0)
        .await
        .unwrap();
    store.set("b/1", "verified", &json!(7), T0).await.unwrap();
    assert_eq!(
        store.get("a/1", "verified", T0).await.unwrap(),
        Some(json!(true)),
        "{b}"
    );
    assert_eq!(
        store.get("a/2", "verified", T0).await.unwrap(),
        Some(json!("other")),
        "{b}"
    );
    assert_eq!(
        store.get("b/1", "verified", T0).await.unwrap(),
        Some(json!(7)),
        "{b}"
    );
    assert_eq!(store.get("a/3", "verified", T0).await.unwrap(), None, "{b}");

    // remove touches one key of one scope; removing a missing key is fine
    store.set("a/1", "attempts", &json!(2), T0).await.unwrap();
    store.remove("a/1", "verified").await.unwrap();
    store.remove("a/1", "verified").await.unwrap();
    store.remove("nope", "nope").await.unwrap();
    assert_eq!(store.get("a/1", "verified", T0).await.unwrap(), None, "{b}");
    assert_eq!(
        store.get("a/1", "attempts", T0).await.unwrap(),
        Some(json!(2)),
        "{b}"
    );
    assert_eq!(
        store.get("a/2", "verified", T0).await.unwrap(),
        Some(json!("other")),
        "{b}"
    );

    // clear empties one scope only; clearing an empty scope is fine
    store
        .set("a/1", "pending", &json!({"op": "transfer"}), T0)
        .await
        .unwrap();
    store.clear("a/1").await.unwrap();
    store.clear("a/1").await.unwrap();
    assert_eq!(store.get("a/1", "attempts", T0).await.unwrap(), None, "{b}");
    assert_eq!(store.get("a/1", "pending", T0).await.unwrap(), None, "{b}");
    assert_eq!(
        store.get("a/2", "verified", T0).await.unwrap(),
        Some(json!("other")),
        "{b}"
    );
    assert_eq!(
        store.get("b/1", "verified", T0).await.unwrap(),
        Some(json!(7)),
        "{b}"
    );

    // a scope can be written again after clear
    store.set("a/1", "attempts", &json!(0), T0).await.unwrap();
    assert_eq!(
        store.get("a/1", "attempts", T0).await.unwrap(),
        Some(json!(0)),
        "{b}"
    );

    // scope and key are opaque: no prefix matching, no SQL meaning, any characters
    store.set("a/1%", "x", &json!(1), T0).await.unwrap();
    store
        .set("'; DROP TABLE session_entries; --", "k'\"\\", &json!(2), T0)
        .await
        .unwrap();
    store.clear("a/").await.unwrap();
    assert_eq!(
        store.get("a/1", "attempts", T0).await.unwrap(),
        Some(json!(0)),
        "{b}"
    );
    assert_eq!(
        store.get("a/1%", "x", T0).await.unwrap(),
        Some(json!(1)),
        "{b}"
    );
    assert_eq!(
        store
            .get("'; DROP TABLE session_entries; --", "k'\"\\", T0)
            .await
            .unwrap(),
        Some(json!(2)),
        "{b}"
    );
    store.set("", "", &json!("empty names"), T0).await.unwrap();
    assert_eq!(
        store.get("", "", T0).await.unwrap(),
        Some(json!("empty names")),
        "{b}"
    );
    store.set("ünï/☎", "ключ", &json!("🦀"), T0).await.unwrap();
    assert_eq!(
        store.get("ünï/☎", "ключ", T0).await.unwrap(),
        Some(json!("🦀")),
        "{b}"
    );

    // nothing has expired
    assert_eq!(store.purge_expired(T0).await.unwrap(), 0, "{b}");
    assert_eq!(
        store.get("b/1", "verified", T0).await.unwrap(),
        Some(json!(7)),
        "{b}"
    );
}

/// Values of every JSON type come back exactly as stored.
async fn json_types_suite(store: Arc<dyn SessionStore>) {
    let b = store.backend();
    let values: Vec<Value> = vec![
        Value::Null,
        json!(true),
        json!(false),
        json!(0),
        json!(-42),
        json!(i64::MIN),
        json!(u64::MAX),
        json!(1.5),
        json!(-0.25e-10),
        json!(""),
        json!("text with \"quotes\", \\ and \n newline, 日本語"),
        json!([]),
        json!([1, "two", null, [3.0], {"four": 4}]),
        json!({}),
        json!({"nested": {"deep": [true, {"x": null}]}, "n": 1}),
    ];
    for (i, value) in values.iter().enumerate() {
        let key = format!("k{i}");
        store.set("types", &key, value, T0).await.unwrap();
        assert_eq!(
            store.get("types", &key, T0).await.unwrap().as_ref(),
            Some(value),
            "{b}: {value}"
        );
    }
}

/// Many tasks writing distinct keys of one scope at once all succeed and are all readable.
async fn concurrency_suite(store: Arc<dyn SessionStore>) {
    let b = store.backend();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store
                .set("busy/call", &format!("key{i}"), &json!(i), T0)
                .await
        }));
    }
    for task in tasks {
        task.await.expect("task").expect("set");
    }
    for i in 0..50 {
        assert_eq!(
            store
                .get("busy/call", &format!("key{i}"), T0)
                .await
                .unwrap(),
            Some(json!(i)),
            "{b}"
        );
    }
    // Concurrent writers on one key: the last write wins, and it is one of the written values.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store.set("busy/call", "same", &json!(i), T0).await
        }));
    }
    for task in tasks {
        task.await.expect("task").expect("set");
    }
    let last = store
        .get("busy/call", "same", T0)
        .await
        .unwrap()
        .expect("value");
    assert!(
        last.as_i64().is_some_and(|n| (0..20).contains(&n)),
        "{b}: {last}"
    );
}

/// With a zero TTL every entry is expired the moment it is written (real clock).
async fn zero_ttl_suite(store: Arc<dyn SessionStore>) {
    let b = store.backend();
    assert_eq!(store.purge_expired(T0).await.unwrap(), 0, "{b}");
    store.set("z/1", "a", &json!(1), T0).await.unwrap();
    store.set("z/1", "b", &json!(2), T0).await.unwrap();
    store.set("z/2", "a", &json!(3), T0).await.unwrap();
    assert_eq!(store.get("z/1", "a", T0).await.unwrap(), None, "{b}");
    assert_eq!(store.get("z/1", "b", T0).await.unwrap(), None, "{b}");
    assert_eq!(store.get("z/2", "a", T0).await.unwrap(), None, "{b}");
    assert_eq!(store.purge_expired(T0).await.unwrap(), 3, "{b}");
    assert_eq!(store.purge_expired(T0).await.unwrap(), 0, "{b}");
}

/// Expiry, renewal and purging, with a 10 s TTL and time moved by hand.
async fn clock_suite(store: Arc<dyn SessionStore>) {
    let b = store.backend();

    let mut now = 1_000;
    store.set("c/1", "a", &json!("a"), now).await.unwrap(); // expires 1010
    store.set("c/2", "x", &json!("x"), now).await.unwrap(); // expires 1010, never renewed
    now = 1_005;
    store.set("c/1", "b", &json!("b"), now).await.unwrap(); // a and b now expire 1015
    now = 1_009;
    assert_eq!(
        store.get("c/2", "x", now).await.unwrap(),
        Some(json!("x")),
        "{b}"
    );
    now = 1_010; // now >= expires_at counts as expired
    assert_eq!(store.get("c/2", "x", now).await.unwrap(), None, "{b}");
    assert_eq!(
        store.get("c/1", "a", now).await.unwrap(),
        Some(json!("a")),
        "{b}: renewed by set"
    );
    assert_eq!(store.purge_expired(now).await.unwrap(), 1, "{b}");
    now = 1_014;
    assert_eq!(
        store.get("c/1", "a", now).await.unwrap(),
        Some(json!("a")),
        "{b}"
    );
    assert_eq!(
        store.get("c/1", "b", now).await.unwrap(),
        Some(json!("b")),
        "{b}"
    );
    now = 1_015;
    assert_eq!(store.get("c/1", "a", now).await.unwrap(), None, "{b}");
    assert_eq!(store.get("c/1", "b", now).await.unwrap(), None, "{b}");

    // A write does not resurrect entries that already expired, but re-setting a key does.
    store.set("c/1", "c", &json!("c"), now).await.unwrap(); // expires 1025
    assert_eq!(
        store.get("c/1", "a", now).await.unwrap(),
        None,
        "{b}: no resurrection"
    );
    store.set("c/1", "b", &json!("b2"), now).await.unwrap();
    assert_eq!(
        store.get("c/1", "b", now).await.unwrap(),
        Some(json!("b2")),
        "{b}"
    );
    assert_eq!(
        store.purge_expired(now).await.unwrap(),
        1,
        "{b}: only the stale a"
    );
    assert_eq!(store.purge_expired(now).await.unwrap(), 0, "{b}");
    now = 1_030;
    assert_eq!(store.purge_expired(now).await.unwrap(), 2, "{b}");
    assert_eq!(store.get("c/1", "c", now).await.unwrap(), None, "{b}");
}

/// Reads answered from a warm cache (the SQLite backend keeps one) see every later write:
/// renewals by writes to other keys, sets of absent keys, removals, takes and clears.
async fn warm_reads_suite(store: Arc<dyn SessionStore>) {
    let b = store.backend();
    let get = |key: &'static str, now: u64| {
        let store = store.clone();
        async move { store.get("w/1", key, now).await.unwrap() }
    };

    let mut now = 1_000;
    store.set("w/1", "a", &json!(1), now).await.unwrap(); // expires 1010
    store.set("w/1", "n", &Value::Null, now).await.unwrap();
    for _ in 0..2 {
        assert_eq!(get("a", now).await, Some(json!(1)), "{b}");
        assert_eq!(get("m", now).await, None, "{b}");
        assert_eq!(
            get("n", now).await,
            Some(Value::Null),
            "{b}: null is a value"
        );
    }
    now = 1_005;
    store.set("w/1", "b", &json!(2), now).await.unwrap(); // a renewed to 1015
    now = 1_012;
    assert_eq!(get("a", now).await, Some(json!(1)), "{b}: renewal seen");
    store.set("w/1", "m", &json!(5), now).await.unwrap();
    assert_eq!(
        get("m", now).await,
        Some(json!(5)),
        "{b}: absence forgotten"
    );
    store.remove("w/1", "a").await.unwrap();
    assert_eq!(get("a", now).await, None, "{b}: removal seen");
    store.set("w/1", "a", &json!(3), now).await.unwrap();
    assert_eq!(get("a", now).await, Some(json!(3)), "{b}");
    assert_eq!(
        store.take("w/1", "a", now).await.unwrap(),
        Some(json!(3)),
        "{b}"
    );
    assert_eq!(get("a", now).await, None, "{b}: take seen");
    store.set("w/1", "a", &json!(4), now).await.unwrap();
    assert_eq!(get("a", now).await, Some(json!(4)), "{b}");
    store.clear("w/1").await.unwrap();
    assert_eq!(get("a", now).await, None, "{b}: clear seen");
    assert_eq!(get("m", now).await, None, "{b}: clear seen");
    store.set("w/1", "a", &json!(5), now).await.unwrap(); // expires 1022
    assert_eq!(get("a", now).await, Some(json!(5)), "{b}");
    now = 1_022;
    assert_eq!(get("a", now).await, None, "{b}: expiry seen on a warm read");
}

/// `take` hands a value to exactly one of many concurrent takers, and never an expired one.
async fn take_suite(store: Arc<dyn SessionStore>) {
    let b = store.backend();
    store
        .set("t/1", "pending", &json!({"amount": 100}), T0)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store.take("t/1", "pending", T0).await.unwrap()
        }));
    }
    let mut winners = 0;
    for task in tasks {
        if let Some(value) = task.await.unwrap() {
            assert_eq!(value, json!({"amount": 100}), "{b}");
            winners += 1;
        }
    }
    assert_eq!(winners, 1, "{b}: exactly one concurrent take wins");
    assert_eq!(store.get("t/1", "pending", T0).await.unwrap(), None, "{b}");
    assert_eq!(store.take("t/1", "missing", T0).await.unwrap(), None, "{b}");
}

async fn run_on_all<F, Fut>(ttl: Duration, suite: F)
where
    F: Fn(Arc<dyn SessionStore>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let all = backends(ttl).await;
    let names: Vec<_> = all.iter().map(|b| b.store.backend()).collect();
    let postgres = all.iter().any(|b| b.pg.is_some());
    assert_eq!(names[..3], ["memory", "sqlite", "sqlite"]);
    assert_eq!(
        &names[3..],
        if postgres {
            &["postgres", "postgres"][..]
        } else {
            &[]
        }
    );
    for backend in &all {
        suite(Arc::clone(&backend.store)).await;
    }
    drop_schemas(all.into_iter().map(|b| b.pg)).await;
}

#[tokio::test]
async fn basic_operations_on_every_backend() {
    run_on_all(DEFAULT_SESSION_TTL, basic_suite).await;
}

#[tokio::test]
async fn every_json_type_round_trips_on_every_backend() {
    run_on_all(DEFAULT_SESSION_TTL, json_types_suite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_on_every_backend() {
    run_on_all(DEFAULT_SESSION_TTL, concurrency_suite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn take_is_atomic_on_every_backend() {
    run_on_all(DEFAULT_SESSION_TTL, take_suite).await;
}

#[tokio::test]
async fn zero_ttl_expires_at_once_on_every_backend() {
    run_on_all(Duration::ZERO, zero_ttl_suite).await;
}

#[tokio::test]
async fn expiry_renewal_and_purge_on_every_backend() {
    run_on_all(Duration::from_secs(10), clock_suite).await;
}

#[tokio::test]
async fn warm_reads_see_every_write_on_every_backend() {
    run_on_all(Duration::from_secs(10), warm_reads_suite).await;
}

/// The caller's `now` alone decides expiry, identically on every backend: an entry set at `T0`
/// with a 1 s TTL expires at `T0 + 1`. It is live at `T0` (also from the SQLite read cache) and
/// gone at `T0 + 1` for `get`, `take` and `purge_expired` — and a read at `T0 + 1` leaves
/// nothing behind that would hide the entry from a caller still passing `T0`.
#[tokio::test]
async fn every_backend_expires_at_the_callers_boundary() {
    let all = backends(Duration::from_secs(1)).await;
    let expires = T0 + 1;
    for backend in &all {
        let (store, b) = (&backend.store, backend.store.backend());
        store.set("r/1", "k", &json!(1), T0).await.unwrap();
        store.set("r/1", "t", &json!(2), T0).await.unwrap();
        for _ in 0..2 {
            assert_eq!(
                store.get("r/1", "k", expires - 1).await.unwrap(),
                Some(json!(1)),
                "{b}: live one second before the boundary"
            );
        }
        assert_eq!(store.purge_expired(expires - 1).await.unwrap(), 0, "{b}");
        for _ in 0..2 {
            assert_eq!(store.get("r/1", "k", expires).await.unwrap(), None, "{b}");
        }
        assert_eq!(
            store.get("r/1", "k", expires - 1).await.unwrap(),
            Some(json!(1)),
            "{b}: the store keeps no time of its own"
        );
        assert_eq!(store.take("r/1", "t", expires).await.unwrap(), None, "{b}");
        assert_eq!(store.purge_expired(expires).await.unwrap(), 1, "{b}");
        assert_eq!(
            store.get("r/1", "k", expires - 1).await.unwrap(),
            None,
            "{b}"
        );
    }
    drop_schemas(all.into_iter().map(|b| b.pg)).await;
}

/// A write whose caller stops waiting (a request timeout) still lands later; the read cache
/// must not keep the value from before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_write_that_lands_later_is_seen_by_reads() {
    use sqlx::{ConnectOptions as _, Connection as _};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cancel.db");
    let store = SqliteStore::open(&path, DEFAULT_SESSION_TTL).await.unwrap();
    store
        .set("c/1", "verified", &json!(true), T0)
        .await
        .unwrap();
    assert_eq!(
        store.get("c/1", "verified", T0).await.unwrap(),
        Some(json!(true))
    );

    // Another connection holds the write lock, so the removal waits in SQLite.
    let mut blocker = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .connect()
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut blocker)
        .await
        .unwrap();
    let removal =
        tokio::time::timeout(Duration::from_millis(100), store.remove("c/1", "verified")).await;
    assert!(removal.is_err(), "the removal waits for the lock");
    // Meanwhile a read sees the old value (the removal has not happened yet) and caches it.
    assert_eq!(
        store.get("c/1", "verified", T0).await.unwrap(),
        Some(json!(true))
    );
    sqlx::query("ROLLBACK").execute(&mut blocker).await.unwrap();
    blocker.close().await.unwrap();

    // The removal lands; from then on reads see it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.get("c/1", "verified", T0).await.unwrap().is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "the cache still serves a value the database no longer has"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let fresh = SqliteStore::open(&path, DEFAULT_SESSION_TTL).await.unwrap();
    assert_eq!(fresh.get("c/1", "verified", T0).await.unwrap(), None);
}

#[tokio::test]
async fn data_persists_across_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("persist.db");
    {
        let store = SqliteStore::open(&path, DEFAULT_SESSION_TTL).await.unwrap();
        store
            .set("p/1", "verified", &json!({"by": "pin"}), T0)
            .await
            .unwrap();
        store.set("p/1", "attempts", &json!(1), T0).await.unwrap();
        store.remove("p/1", "attempts").await.unwrap();
        store.close().await;
    }
    let store = SqliteStore::open(&path, DEFAULT_SESSION_TTL).await.unwrap();
    assert_eq!(
        store.get("p/1", "verified", T0).await.unwrap(),
        Some(json!({"by": "pin"}))
    );
    assert_eq!(store.get("p/1", "attempts", T0).await.unwrap(), None);

    // Also without an explicit close (process crash / plain drop).
    store.set("p/2", "k", &json!([1, 2]), T0).await.unwrap();
    drop(store);
    let store = SqliteStore::open(&path, DEFAULT_SESSION_TTL).await.unwrap();
    assert_eq!(
        store.get("p/2", "k", T0).await.unwrap(),
        Some(json!([1, 2]))
    );
}

#[tokio::test]
async fn file_database_uses_wal_journal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.db");
    let store = SqliteStore::open(&path, DEFAULT_SESSION_TTL).await.unwrap();
    store.set("w", "k", &json!(1), T0).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(sync, 1, "NORMAL");
}

#[cfg(unix)]
#[tokio::test]
async fn database_files_are_private_to_the_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_in_dir(dir.path(), DEFAULT_SESSION_TTL)
        .await
        .unwrap();
    store.set("p/1", "k", &json!(1), T0).await.unwrap();
    drop(store);
    let store = SqliteStore::open_in_dir(dir.path(), DEFAULT_SESSION_TTL)
        .await
        .unwrap();
    for name in ["voxguard.db", "voxguard.db-wal", "voxguard.db-shm"] {
        let path = dir.path().join(name);
        if let Ok(meta) = std::fs::metadata(&path) {
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
        } else {
            assert_ne!(name, "voxguard.db", "the database file exists");
        }
    }
    drop(store);
}

#[tokio::test]
async fn open_in_dir_creates_a_private_directory() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("state").join("voxguard");
    let store = SqliteStore::open_in_dir(&dir, DEFAULT_SESSION_TTL)
        .await
        .unwrap();
    store.set("d/1", "k", &json!("v"), T0).await.unwrap();
    store.ping().await.unwrap();
    assert!(dir.join("voxguard.db").is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "got {mode:o}");
    }
    store.close().await;

    // Opening again in the existing directory finds the data.
    let store = SqliteStore::open_in_dir(&dir, DEFAULT_SESSION_TTL)
        .await
        .unwrap();
    assert_eq!(store.get("d/1", "k", T0).await.unwrap(), Some(json!("v")));
}

#[tokio::test]
async fn errors_do_not_leak_paths_or_sql() {
    let dir = tempfile::tempdir().unwrap();
    let secret_path = dir.path().join("no-such-dir").join("secret-name.db");
    let err = SqliteStore::open(&secret_path, DEFAULT_SESSION_TTL)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert_eq!(err.to_string(), "session store is unavailable");
    assert!(err.source().is_some());

    // A file where the directory should be.
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, b"x").unwrap();
    let err = SqliteStore::open_in_dir(blocker.join("sub"), DEFAULT_SESSION_TTL)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Io { .. }), "{err:?}");
    assert!(!err.to_string().contains("blocker"), "{err}");

    // A closed store reports itself unavailable, generically.
    let store = SqliteStore::open_in_memory(DEFAULT_SESSION_TTL)
        .await
        .unwrap();
    store.close().await;
    let err = store.ping().await.unwrap_err();
    assert_eq!(err.to_string(), "session store is unavailable");
    let err = store.get("s", "k", T0).await.unwrap_err();
    assert!(!err.to_string().to_lowercase().contains("select"), "{err}");
}

#[tokio::test]
async fn corrupt_values_are_reported_without_their_content() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("c.db"), DEFAULT_SESSION_TTL)
        .await
        .unwrap();
    store.set("s", "k", &json!(1), T0).await.unwrap();
    sqlx::query("UPDATE session_entries SET value = ? WHERE scope = ? AND key = ?")
        .bind("{not json 4111111111111111")
        .bind("s")
        .bind("k")
        .execute(&store.pool)
        .await
        .unwrap();
    let err = store.get("s", "k", T0).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert_eq!(err.to_string(), "stored session value is corrupt");
}

#[tokio::test]
async fn debug_output_never_shows_values() {
    let memory = MemoryStore::default();
    memory
        .set("s", "pin", &json!("4242-secret"), T0)
        .await
        .unwrap();
    let sqlite = SqliteStore::open_in_memory(DEFAULT_SESSION_TTL)
        .await
        .unwrap();
    sqlite
        .set("s", "pin", &json!("4242-secret"), T0)
        .await
        .unwrap();
    for debug in [format!("{memory:?}"), format!("{sqlite:?}")] {
        assert!(!debug.contains("4242"), "{debug}");
    }
}

#[test]
fn defaults_and_ttl_rounding() {
    assert_eq!(DEFAULT_SESSION_TTL, Duration::from_secs(86_400));
    assert_eq!(MemoryStore::default().ttl(), DEFAULT_SESSION_TTL);
    assert_eq!(ttl_secs(Duration::ZERO), 0);
    assert_eq!(ttl_secs(Duration::from_millis(1)), 1);
    assert_eq!(ttl_secs(Duration::from_millis(1_500)), 2);
    assert_eq!(ttl_secs(Duration::from_secs(30)), 30);
    assert_eq!(ttl_secs(Duration::MAX), i64::MAX);
}

// ---------------------------------------------------------------------------------------------
// Verification-attempt counters
// ---------------------------------------------------------------------------------------------

/// An attempt store under test, named for assertion messages.
struct AttemptBackend {
    name: &'static str,
    store: Arc<dyn AttemptStore>,
    _dir: Option<tempfile::TempDir>,
    pg: Option<PgDatabase>,
}

/// The three embedded backends: memory, in-memory SQLite (one connection), file SQLite (a pool
/// of many); and PostgreSQL (a pool of several, in a fresh schema) when
/// `VOXGUARD_TEST_POSTGRES_URL` is set.
async fn attempt_backends() -> Vec<AttemptBackend> {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = SqliteStore::open(dir.path().join("attempts.db"), DEFAULT_SESSION_TTL)
        .await
        .expect("open file store");
    assert!(
        file.pool.options().get_max_connections() > 1,
        "the file store must exercise a multi-connection pool"
    );
    let in_memory = SqliteStore::open_in_memory(DEFAULT_SESSION_TTL)
        .await
        .expect("open in-memory store");
    let mut all = vec![
        AttemptBackend {
            name: "memory",
            store: Arc::new(MemoryStore::default()),
            _dir: None,
            pg: None,
        },
        AttemptBackend {
            name: "sqlite in memory",
            store: Arc::new(in_memory),
            _dir: None,
            pg: None,
        },
        AttemptBackend {
            name: "sqlite file",
            store: Arc::new(file),
            _dir: Some(dir),
            pg: None,
        },
    ];
    if let Some(db) = testing::database("attempts").await {
        assert!(db.pool().options().get_max_connections() > 1);
        all.push(AttemptBackend {
            name: "postgres",
            store: Arc::new(PgStore::new(db.clone(), DEFAULT_SESSION_TTL)),
            _dir: None,
            pg: Some(db),
        });
    }
    all
}

async fn run_attempts_on_all<F, Fut>(suite: F)
where
    F: Fn(&'static str, Arc<dyn AttemptStore>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let all = attempt_backends().await;
    for backend in &all {
        suite(backend.name, Arc::clone(&backend.store)).await;
    }
    drop_schemas(all.into_iter().map(|b| b.pg)).await;
}

const LOCKOUT: u64 = 900;

/// Fixed limits (no escalation, no window), as the counters behaved before escalation.
fn limits(max_failures: u32, lockout_secs: u64) -> AttemptLimits {
    AttemptLimits::fixed(max_failures, lockout_secs)
}

fn status(failures: u32, locked_until: Option<u64>) -> AttemptStatus {
    AttemptStatus {
        failures,
        locked_until,
    }
}

fn granted(attempt: u32) -> Reservation {
    Reservation::Granted { attempt }
}

/// Reserve and fail `n` times in a row at `now`, checking each grant.
async fn fail_times(store: &dyn AttemptStore, b: &str, subject: &str, n: u32, now: u64) {
    for _ in 0..n {
        let before = store.attempt_status(subject, now).await.unwrap().failures;
        assert_eq!(
            store
                .reserve(subject, &limits(3, LOCKOUT), now)
                .await
                .unwrap(),
            granted(before + 1),
            "{b}"
        );
        store
            .settle(subject, false, &limits(3, LOCKOUT), now)
            .await
            .unwrap();
    }
}

async fn limit_and_lockout_suite(b: &'static str, store: Arc<dyn AttemptStore>) {
    let s = "customer-1";
    assert_eq!(store.attempt_status(s, T0).await.unwrap(), status(0, None));

    for attempt in 1..=2 {
        assert_eq!(
            store.reserve(s, &limits(3, LOCKOUT), T0).await.unwrap(),
            granted(attempt),
            "{b}"
        );
        assert_eq!(
            store.attempt_status(s, T0).await.unwrap(),
            status(attempt, None),
            "{b}: a reserved attempt already counts"
        );
        assert_eq!(
            store
                .settle(s, false, &limits(3, LOCKOUT), T0)
                .await
                .unwrap(),
            status(attempt, None),
            "{b}: below the limit, no lockout"
        );
    }
    // The limit-th failure sets the lockout.
    assert_eq!(
        store.reserve(s, &limits(3, LOCKOUT), T0 + 1).await.unwrap(),
        granted(3),
        "{b}"
    );
    let until = T0 + 2 + LOCKOUT;
    assert_eq!(
        store
            .settle(s, false, &limits(3, LOCKOUT), T0 + 2)
            .await
            .unwrap(),
        status(3, Some(until)),
        "{b}"
    );
    assert_eq!(
        store.attempt_status(s, T0 + 3).await.unwrap(),
        status(3, Some(until)),
        "{b}"
    );
    // Locked: refused with the deadline, and refusals do not move it.
    for now in [T0 + 3, T0 + 500, until - 1] {
        assert_eq!(
            store.reserve(s, &limits(3, LOCKOUT), now).await.unwrap(),
            Reservation::Locked { until: Some(until) },
            "{b}"
        );
    }
    assert_eq!(
        store.attempt_status(s, until - 1).await.unwrap(),
        status(3, Some(until)),
        "{b}"
    );

    // Expiry: at the deadline the lock is over; attempt_status reports it so but writes nothing.
    assert_eq!(
        store.attempt_status(s, until).await.unwrap(),
        status(0, None),
        "{b}"
    );
    assert_eq!(
        store.attempt_status(s, until - 1).await.unwrap(),
        status(3, Some(until)),
        "{b}: attempt_status is read-only"
    );
    // The next reservation clears the expired lock and restarts the count.
    assert_eq!(
        store.reserve(s, &limits(3, LOCKOUT), until).await.unwrap(),
        granted(1),
        "{b}"
    );
    assert_eq!(
        store.attempt_status(s, until).await.unwrap(),
        status(1, None),
        "{b}"
    );
    assert_eq!(
        store
            .settle(s, false, &limits(3, LOCKOUT), until)
            .await
            .unwrap(),
        status(1, None),
        "{b}"
    );
}

async fn success_resets_suite(b: &'static str, store: Arc<dyn AttemptStore>) {
    let s = "customer-2";
    fail_times(&*store, b, s, 2, T0).await;
    assert_eq!(
        store.reserve(s, &limits(3, LOCKOUT), T0).await.unwrap(),
        granted(3),
        "{b}"
    );
    assert_eq!(
        store
            .settle(s, true, &limits(3, LOCKOUT), T0)
            .await
            .unwrap(),
        status(0, None),
        "{b}"
    );
    assert_eq!(
        store.attempt_status(s, T0).await.unwrap(),
        status(0, None),
        "{b}"
    );
    // A full fresh budget after the success.
    fail_times(&*store, b, s, 3, T0).await;
    assert_eq!(
        store.attempt_status(s, T0).await.unwrap(),
        status(3, Some(T0 + LOCKOUT)),
        "{b}"
    );
}

async fn independence_and_reset_suite(b: &'static str, store: Arc<dyn AttemptStore>) {
    let weird = "'; DROP TABLE verification_attempts; --";
    fail_times(&*store, b, "alice", 3, T0).await;
    fail_times(&*store, b, weird, 1, T0).await;
    assert_eq!(
        store
            .reserve("alice", &limits(3, LOCKOUT), T0)
            .await
            .unwrap(),
        Reservation::Locked {
            until: Some(T0 + LOCKOUT)
        },
        "{b}"
    );
    assert_eq!(
        store.reserve("bob", &limits(3, LOCKOUT), T0).await.unwrap(),
        granted(1),
        "{b}"
    );
    assert_eq!(
        store
            .reserve("alic", &limits(3, LOCKOUT), T0)
            .await
            .unwrap(),
        granted(1),
        "{b}"
    );
    assert_eq!(
        store.reserve("%", &limits(3, LOCKOUT), T0).await.unwrap(),
        granted(1),
        "{b}"
    );
    assert_eq!(
        store.attempt_status(weird, T0).await.unwrap(),
        status(1, None),
        "{b}"
    );

    // An operator unlocks alice; nobody else is touched.
    store.reset_attempts("alice").await.unwrap();
    store.reset_attempts("never-seen").await.unwrap();
    assert_eq!(
        store.attempt_status("alice", T0).await.unwrap(),
        status(0, None),
        "{b}"
    );
    assert_eq!(
        store
            .reserve("alice", &limits(3, LOCKOUT), T0)
            .await
            .unwrap(),
        granted(1),
        "{b}"
    );
    assert_eq!(
        store.attempt_status("bob", T0).await.unwrap(),
        status(1, None),
        "{b}"
    );
    assert_eq!(
        store.attempt_status(weird, T0).await.unwrap(),
        status(1, None),
        "{b}"
    );

    // Settling after a reset (the reservation was forgotten) changes nothing.
    store.reset_attempts("bob").await.unwrap();
    assert_eq!(
        store
            .settle("bob", false, &limits(1, LOCKOUT), T0)
            .await
            .unwrap(),
        status(0, None),
        "{b}"
    );
    assert_eq!(
        store.reserve("bob", &limits(1, LOCKOUT), T0).await.unwrap(),
        granted(1),
        "{b}"
    );
}

async fn crash_safety_suite(b: &'static str, store: Arc<dyn AttemptStore>) {
    let s = "crashy";
    // Three verifications start and the process dies before any is settled.
    for attempt in 1..=3 {
        assert_eq!(
            store.reserve(s, &limits(3, LOCKOUT), T0).await.unwrap(),
            granted(attempt),
            "{b}"
        );
    }
    assert_eq!(
        store.reserve(s, &limits(3, LOCKOUT), T0).await.unwrap(),
        Reservation::Locked { until: None },
        "{b}: unsettled attempts still count"
    );
    assert_eq!(
        store.attempt_status(s, T0).await.unwrap(),
        status(3, None),
        "{b}"
    );
    // Without a settled failure there is no deadline to expire: still refused much later.
    assert_eq!(
        store
            .reserve(s, &limits(3, LOCKOUT), T0 + 10 * LOCKOUT)
            .await
            .unwrap(),
        Reservation::Locked { until: None },
        "{b}"
    );
    // A late failure settlement sets the lockout, which then expires normally.
    assert_eq!(
        store
            .settle(s, false, &limits(3, LOCKOUT), T0 + 5)
            .await
            .unwrap(),
        status(3, Some(T0 + 5 + LOCKOUT)),
        "{b}"
    );
    assert_eq!(
        store
            .reserve(s, &limits(3, LOCKOUT), T0 + 5 + LOCKOUT)
            .await
            .unwrap(),
        granted(1),
        "{b}"
    );
}

async fn edge_cases_suite(b: &'static str, store: Arc<dyn AttemptStore>) {
    // A limit of 0 never grants and stores nothing.
    assert_eq!(
        store
            .reserve("zero", &limits(0, LOCKOUT), T0)
            .await
            .unwrap(),
        Reservation::Locked { until: None },
        "{b}"
    );
    assert_eq!(
        store.attempt_status("zero", T0).await.unwrap(),
        status(0, None),
        "{b}"
    );

    // A lockout of 0 seconds expires at once: the budget restarts.
    for attempt in 1..=2 {
        assert_eq!(
            store
                .reserve("nolock", &limits(2, LOCKOUT), T0)
                .await
                .unwrap(),
            granted(attempt),
            "{b}"
        );
        store
            .settle("nolock", false, &limits(2, 0), T0)
            .await
            .unwrap();
    }
    assert_eq!(
        store.attempt_status("nolock", T0).await.unwrap(),
        status(0, None),
        "{b}"
    );
    assert_eq!(
        store
            .reserve("nolock", &limits(2, LOCKOUT), T0)
            .await
            .unwrap(),
        granted(1),
        "{b}"
    );

    // A later, shorter lockout never shortens an active one.
    fail_times(&*store, b, "long", 3, T0).await;
    assert_eq!(
        store
            .settle("long", false, &limits(3, 10), T0 + 1)
            .await
            .unwrap(),
        status(3, Some(T0 + LOCKOUT)),
        "{b}"
    );

    // Instants near the top of the range saturate instead of wrapping.
    let late = u64::MAX - 5;
    assert_eq!(
        store
            .reserve("late", &limits(1, LOCKOUT), late)
            .await
            .unwrap(),
        granted(1),
        "{b}"
    );
    let max = i64::MAX.unsigned_abs();
    assert_eq!(
        store
            .settle("late", false, &limits(1, LOCKOUT), max - 10)
            .await
            .unwrap(),
        status(1, Some(max)),
        "{b}"
    );
    assert_eq!(
        store
            .reserve("late", &limits(1, LOCKOUT), max - 1)
            .await
            .unwrap(),
        Reservation::Locked { until: Some(max) },
        "{b}"
    );
    assert_eq!(
        store.attempt_status("late", late).await.unwrap(),
        status(0, None),
        "{b}: a deadline at the storable maximum has passed at u64::MAX - 5"
    );
}

/// 50 tasks reserve at once for one subject with a limit of 3: exactly 3 are granted.
async fn parallel_reservations(stores: &[Arc<dyn AttemptStore>], b: &str) {
    const TASKS: usize = 50;
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let mut tasks = Vec::new();
    for i in 0..TASKS {
        let store = Arc::clone(&stores[i % stores.len()]);
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store.reserve("contended", &limits(3, LOCKOUT), T0).await
        }));
    }
    let mut attempts = Vec::new();
    let mut refused = 0;
    for task in tasks {
        match task.await.expect("task").expect("reserve") {
            Reservation::Granted { attempt } => attempts.push(attempt),
            Reservation::Locked { until: None } => refused += 1,
            other => panic!("{b}: unexpected {other:?}"),
        }
    }
    attempts.sort_unstable();
    assert_eq!(attempts, [1, 2, 3], "{b}");
    assert_eq!(refused, TASKS - 3, "{b}");
    assert_eq!(
        stores[0].attempt_status("contended", T0).await.unwrap(),
        status(3, None),
        "{b}"
    );
}

#[tokio::test]
async fn attempts_limit_and_lockout_on_every_backend() {
    run_attempts_on_all(limit_and_lockout_suite).await;
}

#[tokio::test]
async fn attempts_success_resets_on_every_backend() {
    run_attempts_on_all(success_resets_suite).await;
}

#[tokio::test]
async fn attempts_subjects_are_independent_and_resettable_on_every_backend() {
    run_attempts_on_all(independence_and_reset_suite).await;
}

#[tokio::test]
async fn unsettled_attempts_still_count_on_every_backend() {
    run_attempts_on_all(crash_safety_suite).await;
}

#[tokio::test]
async fn attempts_edge_cases_on_every_backend() {
    run_attempts_on_all(edge_cases_suite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn parallel_reservations_never_exceed_the_limit_on_every_backend() {
    let all = attempt_backends().await;
    for backend in &all {
        parallel_reservations(&[Arc::clone(&backend.store)], backend.name).await;
    }
    drop_schemas(all.into_iter().map(|b| b.pg)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn parallel_reservations_across_two_stores_on_one_file() {
    // Two independently opened stores (two pools, as two replicas on one host would have).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let one: Arc<dyn AttemptStore> =
        Arc::new(SqliteStore::open(&path, DEFAULT_SESSION_TTL).await.unwrap());
    let two: Arc<dyn AttemptStore> =
        Arc::new(SqliteStore::open(&path, DEFAULT_SESSION_TTL).await.unwrap());
    parallel_reservations(&[one, Arc::clone(&two)], "two pools").await;
    assert_eq!(
        two.attempt_status("contended", T0).await.unwrap(),
        status(3, None)
    );
}

#[tokio::test]
async fn attempts_persist_across_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("attempts.db");
    {
        let store = SqliteStore::open(&path, DEFAULT_SESSION_TTL).await.unwrap();
        fail_times(&store, "file", "locked", 3, T0).await;
        fail_times(&store, "file", "counting", 1, T0).await;
        assert_eq!(
            store
                .reserve("pending", &limits(3, LOCKOUT), T0)
                .await
                .unwrap(),
            granted(1)
        );
        store.close().await;
    }
    let store = SqliteStore::open(&path, DEFAULT_SESSION_TTL).await.unwrap();
    assert_eq!(
        store
            .reserve("locked", &limits(3, LOCKOUT), T0 + 1)
            .await
            .unwrap(),
        Reservation::Locked {
            until: Some(T0 + LOCKOUT)
        }
    );
    assert_eq!(
        store.attempt_status("counting", T0).await.unwrap(),
        status(1, None)
    );
    assert_eq!(
        store.attempt_status("pending", T0).await.unwrap(),
        status(1, None),
        "a reservation made before the restart still counts"
    );

    // Also without an explicit close (process crash / plain drop).
    assert_eq!(
        store
            .reserve("pending", &limits(3, LOCKOUT), T0)
            .await
            .unwrap(),
        granted(2)
    );
    drop(store);
    let store = SqliteStore::open(&path, DEFAULT_SESSION_TTL).await.unwrap();
    assert_eq!(
        store.attempt_status("pending", T0).await.unwrap(),
        status(2, None)
    );
}

#[tokio::test]
async fn attempt_errors_are_generic() {
    let store = SqliteStore::open_in_memory(DEFAULT_SESSION_TTL)
        .await
        .unwrap();
    store.close().await;
    let err = store
        .reserve("s", &limits(3, LOCKOUT), T0)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert_eq!(err.to_string(), "session store is unavailable");
    let err = store
        .settle("s", false, &limits(3, LOCKOUT), T0)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "session store is unavailable");
    assert!(store.attempt_status("s", T0).await.is_err());
    assert!(store.reset_attempts("s").await.is_err());
}

// ---------------------------------------------------------------------------------------------
// Escalating lockouts, the window cap and the purge
// ---------------------------------------------------------------------------------------------

/// The defaults of the runtime's verification policy: 3 in a row lock for 15 minutes,
/// doubling up to 24 h, and at most 10 failures per 24 h.
const ESCALATING: AttemptLimits = AttemptLimits {
    max_failures: 3,
    lockout_secs: 900,
    max_lockout_secs: 86_400,
    window_cap: 10,
    window_secs: 86_400,
};

/// Fail `subject` until it is locked, starting at `now`; the lockout's deadline.
async fn lock_once(store: &dyn AttemptStore, b: &str, subject: &str, now: u64) -> u64 {
    loop {
        match store.reserve(subject, &ESCALATING, now).await.unwrap() {
            Reservation::Granted { .. } => {
                let status = store
                    .settle(subject, false, &ESCALATING, now)
                    .await
                    .unwrap();
                if let Some(until) = status.locked_until {
                    return until;
                }
            }
            other => panic!("{b}: {subject} refused at {now}: {other:?}"),
        }
    }
}

async fn escalation_suite(b: &'static str, store: Arc<dyn AttemptStore>) {
    let s = "escalating";
    // Lockouts 1, 2, 3 last 15, 30 and 60 minutes: each starts when the previous one ended.
    let mut now = T0;
    let mut lengths = Vec::new();
    for _ in 0..3 {
        let until = lock_once(&*store, b, s, now).await;
        lengths.push(until - now);
        assert_eq!(
            store.reserve(s, &ESCALATING, until - 1).await.unwrap(),
            Reservation::Locked { until: Some(until) },
            "{b}"
        );
        now = until;
    }
    assert_eq!(lengths, [900, 1_800, 3_600], "{b}");
    // Nine failures so far; the tenth of the day reaches the cap, however long until the next
    // escalated lockout would be: locked until the day's window ends (T0 + 24 h).
    assert_eq!(
        store.reserve(s, &ESCALATING, now).await.unwrap(),
        granted(1),
        "{b}"
    );
    assert_eq!(
        store.settle(s, false, &ESCALATING, now).await.unwrap(),
        status(1, Some(T0 + 86_400)),
        "{b}: the daily cap locks until the window ends"
    );
    assert_eq!(
        store.reserve(s, &ESCALATING, T0 + 86_399).await.unwrap(),
        Reservation::Locked {
            until: Some(T0 + 86_400)
        },
        "{b}"
    );
    // A new day: a fresh budget, and escalation starts over.
    let day2 = T0 + 86_400;
    assert_eq!(
        store.attempt_status(s, day2).await.unwrap(),
        status(0, None),
        "{b}"
    );
    assert_eq!(lock_once(&*store, b, s, day2).await, day2 + 900, "{b}");

    // A success resets escalation: the next lockout is 15 minutes again.
    let t = "recovers";
    let first = lock_once(&*store, b, t, T0).await;
    let second = lock_once(&*store, b, t, first).await;
    assert_eq!(second - first, 1_800, "{b}");
    assert_eq!(
        store.reserve(t, &ESCALATING, second).await.unwrap(),
        granted(1),
        "{b}"
    );
    store.settle(t, true, &ESCALATING, second).await.unwrap();
    assert_eq!(
        lock_once(&*store, b, t, second).await,
        second + 900,
        "{b}: escalation forgotten after a success"
    );
}

async fn cap_by_reservations_suite(b: &'static str, store: Arc<dyn AttemptStore>) {
    // Ten reservations that never settle reach the window cap (the in-a-row limit is raised
    // so that only the cap can refuse).
    let limits = AttemptLimits {
        max_failures: 20,
        ..ESCALATING
    };
    for attempt in 1..=10 {
        assert_eq!(
            store.reserve("capped", &limits, T0).await.unwrap(),
            granted(attempt),
            "{b}"
        );
    }
    assert_eq!(
        store.reserve("capped", &limits, T0 + 60).await.unwrap(),
        Reservation::Locked { until: None },
        "{b}: the cap counts reserved attempts"
    );
    // The runtime then settles a failure: locked until the window ends.
    assert_eq!(
        store
            .settle("capped", false, &limits, T0 + 60)
            .await
            .unwrap(),
        status(10, Some(T0 + 86_400)),
        "{b}"
    );
}

async fn purge_suite(b: &'static str, store: Arc<dyn AttemptStore>) {
    let day = ESCALATING.window_secs;
    // A caller who failed once at T0 and never came back.
    store.reserve("gone", &ESCALATING, T0).await.unwrap();
    store.settle("gone", false, &ESCALATING, T0).await.unwrap();
    // Locked at T0 + 10 (window until T0 + 10 + day), still failing later.
    let locked = lock_once(&*store, b, "locked", T0 + 10).await;
    // A lockout that outlasts its window: capped late in the window, escalated beyond it.
    let long = AttemptLimits {
        lockout_secs: 2 * day,
        max_lockout_secs: 2 * day,
        ..ESCALATING
    };
    for _ in 0..3 {
        store.reserve("long", &long, T0).await.unwrap();
        store.settle("long", false, &long, T0).await.unwrap();
    }
    assert_eq!(
        store.attempt_status("long", T0).await.unwrap(),
        status(3, Some(T0 + 2 * day)),
        "{b}"
    );

    // Nothing has ended yet.
    assert_eq!(store.purge_attempts(T0 + 100).await.unwrap(), 0, "{b}");
    assert_eq!(
        store.attempt_status("gone", T0 + 100).await.unwrap(),
        status(1, None),
        "{b}"
    );
    // At T0 + day the first window has ended: "gone" is purged, the others stay.
    assert_eq!(store.purge_attempts(T0 + day).await.unwrap(), 1, "{b}");
    assert_eq!(
        store.attempt_status("locked", T0 + day).await.unwrap(),
        status(0, None),
        "{b}: its lockout ({locked}) is over but its window is not"
    );
    // The window of "locked" still counts: after a purge its next lockout still escalates.
    assert_eq!(
        lock_once(&*store, b, "locked", T0 + day).await,
        T0 + day + 1_800,
        "{b}: a purge forgets nothing that still counts"
    );
    assert_eq!(
        store.reserve("long", &long, T0 + day).await.unwrap(),
        Reservation::Locked {
            until: Some(T0 + 2 * day)
        },
        "{b}: an active lockout survives the end of its window and the purge"
    );
    // Much later everything has ended: all rows go, and nothing reads differently.
    let later = T0 + 3 * day;
    assert_eq!(store.purge_attempts(later).await.unwrap(), 2, "{b}");
    assert_eq!(store.purge_attempts(later).await.unwrap(), 0, "{b}");
    for subject in ["gone", "locked", "long"] {
        assert_eq!(
            store.attempt_status(subject, later).await.unwrap(),
            status(0, None),
            "{b}: {subject}"
        );
    }
}

#[tokio::test]
async fn lockouts_escalate_and_the_daily_cap_holds_on_every_backend() {
    run_attempts_on_all(escalation_suite).await;
}

#[tokio::test]
async fn unsettled_reservations_count_toward_the_cap_on_every_backend() {
    run_attempts_on_all(cap_by_reservations_suite).await;
}

#[tokio::test]
async fn purge_removes_ended_windows_and_keeps_live_rows_on_every_backend() {
    run_attempts_on_all(purge_suite).await;
}

#[tokio::test]
async fn purged_rows_leave_the_sqlite_table() {
    let store = SqliteStore::open_in_memory(DEFAULT_SESSION_TTL)
        .await
        .unwrap();
    for i in 0..20 {
        let subject = format!("caller-{i}");
        store.reserve(&subject, &ESCALATING, T0).await.unwrap();
        store
            .settle(&subject, false, &ESCALATING, T0)
            .await
            .unwrap();
    }
    lock_once(&store, "sqlite", "live", T0 + 3_600).await;
    let rows = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM verification_attempts")
            .fetch_one(&store.pool)
            .await
            .unwrap()
    };
    assert_eq!(rows().await, 21);
    assert_eq!(store.purge_attempts(T0 + 86_400).await.unwrap(), 20);
    assert_eq!(rows().await, 1, "the live row stays");
}

#[tokio::test]
async fn an_attempt_table_from_before_windows_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        // The old shape, written by one connection as an earlier version would have.
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .unwrap();
        sqlx::query(
            "CREATE TABLE verification_attempts (subject TEXT PRIMARY KEY,
             failures INTEGER NOT NULL, locked_until INTEGER)",
        )
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query("INSERT INTO verification_attempts VALUES ('bank/+15551234567', 2, NULL)")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }
    let store = SqliteStore::open(&path, DEFAULT_SESSION_TTL).await.unwrap();
    assert_eq!(
        store.reserve("s", &ESCALATING, T0).await.unwrap(),
        granted(1)
    );
    let old: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM verification_attempts WHERE subject LIKE 'bank/%'",
    )
    .fetch_one(&store.pool)
    .await
    .unwrap();
    assert_eq!(old, 0, "rows keyed by numbers in clear are gone");
}

// ---------------------------------------------------------------------------------------------
// Clearing every scope under a prefix (a data subject's calls)
// ---------------------------------------------------------------------------------------------

/// `clear_prefix` deletes exactly the scopes that start with the prefix — no wildcard, no
/// neighbour that merely shares characters — and warm reads see it.
async fn clear_prefix_suite(store: Arc<dyn SessionStore>) {
    let b = store.backend();
    let scopes = [
        ("agent/call-1/swml", "a"),
        ("agent/call-1/swml", "b"),
        ("agent/call-1/other", "a"),
        ("agent/call-1x/swml", "a"),
        ("agent/call-10/swml", "a"),
        ("agent/call-1", "a"),
        ("agent/call-2/swml", "a"),
        ("other/call-1/swml", "a"),
        ("agent/é/swml", "a"),
        ("agent/ê/swml", "a"),
        ("agent/a\0b/swml", "a"),
    ];
    for (scope, key) in scopes {
        store.set(scope, key, &json!(scope), T0).await.unwrap();
    }
    // Warm the SQLite backend's cache for a scope about to be cleared.
    assert_eq!(
        store.get("agent/call-1/swml", "a", T0).await.unwrap(),
        Some(json!("agent/call-1/swml")),
        "{b}"
    );
    for pattern in [
        "agent/call_1/",
        "agent/call-%/",
        "agent/call-1/*",
        "agent/call-1/%",
    ] {
        assert_eq!(
            store.clear_prefix(pattern).await.unwrap(),
            0,
            "{b}: {pattern}"
        );
    }
    assert_eq!(store.clear_prefix("agent/call-1/").await.unwrap(), 3, "{b}");
    for (scope, key) in scopes {
        let value = store.get(scope, key, T0).await.unwrap();
        if scope.starts_with("agent/call-1/") {
            assert_eq!(value, None, "{b}: {scope}/{key} cleared");
        } else {
            assert_eq!(value, Some(json!(scope)), "{b}: {scope}/{key} kept");
        }
    }
    assert_eq!(store.clear_prefix("agent/call-1/").await.unwrap(), 0, "{b}");
    assert_eq!(store.clear_prefix("agent/é/").await.unwrap(), 1, "{b}");
    assert_eq!(
        store.get("agent/ê/swml", "a", T0).await.unwrap(),
        Some(json!("agent/ê/swml")),
        "{b}"
    );
    assert_eq!(store.clear_prefix("agent/a\0c").await.unwrap(), 0, "{b}");
    assert_eq!(store.clear_prefix("agent/a\0").await.unwrap(), 1, "{b}");
    // Expired entries are deleted (and counted) too.
    store.set("late/1/x", "k", &json!(1), 0).await.unwrap();
    assert_eq!(store.get("late/1/x", "k", T0).await.unwrap(), None, "{b}");
    assert_eq!(store.clear_prefix("late/").await.unwrap(), 1, "{b}");
    // The empty prefix matches every scope.
    assert_eq!(store.clear_prefix("").await.unwrap(), 6, "{b}");
    assert_eq!(
        store.purge_expired(u64::MAX).await.unwrap(),
        0,
        "{b}: nothing left"
    );
}

#[tokio::test]
async fn clear_prefix_deletes_exactly_the_prefixed_scopes_on_every_backend() {
    run_on_all(DEFAULT_SESSION_TTL, clear_prefix_suite).await;
}

#[test]
fn prefix_upper_bounds_follow_code_point_order() {
    use crate::sqlite::prefix_upper_bound;
    assert_eq!(
        prefix_upper_bound("agent/call-1/").as_deref(),
        Some("agent/call-10")
    );
    assert_eq!(prefix_upper_bound("aé").as_deref(), Some("aê"));
    assert_eq!(
        prefix_upper_bound("a\u{D7FF}").as_deref(),
        Some("a\u{E000}")
    );
    assert_eq!(prefix_upper_bound("a\u{10FFFF}").as_deref(), Some("b"));
    assert_eq!(prefix_upper_bound("\u{10FFFF}\u{10FFFF}"), None);
    assert_eq!(prefix_upper_bound(""), None);
    // Every string with the prefix sorts below the bound, byte-wise as SQLite compares.
    for prefix in ["a/", "aé", "a\u{D7FF}", "x\u{10FFFF}"] {
        let upper = prefix_upper_bound(prefix).unwrap();
        for tail in ["", "\0", "zz", "\u{10FFFF}\u{10FFFF}"] {
            let scope = format!("{prefix}{tail}");
            assert!(scope.as_bytes() < upper.as_bytes(), "{scope:?} < {upper:?}");
            assert!(scope.as_bytes() >= prefix.as_bytes());
        }
    }
}

/// Names of the files in `dir` whose bytes contain `needle` (files removed meanwhile are
/// skipped).
fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        match std::fs::read(&path) {
            Ok(bytes) if bytes.windows(needle.len()).any(|w| w == needle) => {
                found.push(path.file_name().unwrap().to_string_lossy().into_owned());
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("cannot read {}: {e}", path.display()),
        }
    }
    found
}

#[tokio::test]
async fn cleared_sessions_leave_no_copy_in_the_sqlite_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_in_dir(dir.path(), DEFAULT_SESSION_TTL)
        .await
        .unwrap();
    store
        .set(
            "clinic/call-9/swml",
            "subject",
            &json!("pat_QZX7SESSION"),
            T0,
        )
        .await
        .unwrap();
    store
        .set("clinic/call-8/swml", "subject", &json!("pat_STAYS5512"), T0)
        .await
        .unwrap();
    assert!(!files_containing(dir.path(), b"QZX7SESSION").is_empty());
    assert_eq!(store.clear_prefix("clinic/call-9/").await.unwrap(), 1);
    assert_eq!(
        files_containing(dir.path(), b"QZX7SESSION"),
        Vec::<String>::new()
    );
    assert_eq!(
        files_containing(dir.path(), b"pat_STAYS5512"),
        ["voxguard.db"]
    );
}

#[tokio::test]
async fn reset_attempts_deletes_the_sqlite_row() {
    let store = SqliteStore::open_in_memory(DEFAULT_SESSION_TTL)
        .await
        .unwrap();
    for subject in ["keyed-hash-1", "keyed-hash-2"] {
        store.reserve(subject, &ESCALATING, T0).await.unwrap();
        store.settle(subject, false, &ESCALATING, T0).await.unwrap();
    }
    let rows = |subject: &'static str| {
        let pool = store.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM verification_attempts WHERE subject = ?",
            )
            .bind(subject)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    assert_eq!(rows("keyed-hash-1").await, 1);
    store.reset_attempts("keyed-hash-1").await.unwrap();
    assert_eq!(rows("keyed-hash-1").await, 0, "the row is gone, not zeroed");
    assert_eq!(rows("keyed-hash-2").await, 1);
}
