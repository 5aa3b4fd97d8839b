//! Tests of the records and operators backends against real SQLite and PostgreSQL databases.
//!
//! This module owns the unit tests of [`SqliteRecordStore`] and [`PgRecordStore`]; it must
//! not be compiled outside `cfg(test)`. The behavioural tests run against every backend: an
//! SQLite database (in memory or in a temporary directory) and, when
//! `VOXGUARD_TEST_POSTGRES_URL` is set, a fresh PostgreSQL schema dropped at the end (a
//! `skipped on PostgreSQL` line on stderr says when it is not). The proof-of-deletion tests
//! are about SQLite's files and run on SQLite only; the cross-replica tests run on PostgreSQL
//! only, except the race between two handles removing or demoting the last admins, which runs
//! on two pools of one SQLite file as well.

use std::collections::BTreeMap;
use std::error::Error as _;
use std::path::Path;
use std::sync::Arc;

use crate::postgres::{testing, PgDatabase};
use crate::{
    Operator, OperatorChange, OperatorStore, OperatorStoreError, PgRecordStore, RecordFilter,
    RecordMeta, RecordStore, SqliteRecordStore, StoreError, StoredKey, StoredRecord,
    SubjectDeletion, DEFAULT_RECORD_PAGE, MAX_RECORD_PAGE, RECORDS_DB_FILE_NAME,
};

/// Records and operators in one store, as every backend provides them.
trait Backend: RecordStore + OperatorStore {}

impl<T: RecordStore + OperatorStore> Backend for T {}

/// Which SQLite database a test runs on.
enum Sqlite {
    /// In memory (one connection): fast, for tests that write many rows.
    Memory,
    /// A file in a temporary directory (a pool of connections): for races and scrubs.
    File,
}

/// One backend under test.
enum Concrete {
    Sqlite {
        store: SqliteRecordStore,
        /// The file database's directory, removed when the test ends.
        _dir: Option<tempfile::TempDir>,
    },
    Pg(PgRecordStore),
}

/// A store under test; [`Under::finish`] drops what the test created.
struct Under(Concrete);

impl Under {
    /// The backend's name, said on stderr when a test starts on it (so that a failing test's
    /// output names the backend that failed).
    fn announce(&self) {
        let name = match self.0 {
            Concrete::Sqlite { .. } => "SQLite",
            Concrete::Pg(_) => "PostgreSQL",
        };
        eprintln!("running on {name}");
    }

    fn store(&self) -> &dyn Backend {
        self.announce();
        match &self.0 {
            Concrete::Sqlite { store, .. } => store,
            Concrete::Pg(store) => store,
        }
    }

    fn shared(&self) -> Arc<dyn Backend> {
        self.announce();
        match &self.0 {
            Concrete::Sqlite { store, .. } => Arc::new(store.clone()),
            Concrete::Pg(store) => Arc::new(store.clone()),
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        match &self.0 {
            Concrete::Sqlite { store, .. } => store.ping().await,
            Concrete::Pg(store) => store.ping().await,
        }
    }

    async fn purge_now(
        &self,
        now: i64,
        batch: u32,
    ) -> Result<(BTreeMap<String, u64>, u32), StoreError> {
        match &self.0 {
            Concrete::Sqlite { store, .. } => store.purge_now(now, batch).await,
            Concrete::Pg(store) => store.purge_now(now, batch).await,
        }
    }

    async fn finish(self) {
        if let Concrete::Pg(store) = self.0 {
            store.database().drop_schema().await.unwrap();
        }
    }
}

/// Every backend: SQLite as `sqlite` says, then PostgreSQL in a fresh schema named after
/// `label` when `VOXGUARD_TEST_POSTGRES_URL` is set.
async fn backends(label: &str, sqlite: Sqlite) -> Vec<Under> {
    let sqlite = match sqlite {
        Sqlite::Memory => Concrete::Sqlite {
            store: SqliteRecordStore::open_in_memory().await.unwrap(),
            _dir: None,
        },
        Sqlite::File => {
            let (store, dir) = file_store().await;
            Concrete::Sqlite {
                store,
                _dir: Some(dir),
            }
        }
    };
    let mut all = vec![Under(sqlite)];
    if let Some(database) = testing::database(label).await {
        all.push(Under(Concrete::Pg(PgRecordStore::new(database))));
    }
    all
}

/// The instant (unix seconds) the tests run at.
const T0: u64 = 1_700_000_000;

fn meta(id: &str, call_id: &str, subject: &str, kind: &str, created_at: u64) -> RecordMeta {
    RecordMeta {
        id: id.to_owned(),
        agent: "clinic".to_owned(),
        call_id: call_id.to_owned(),
        subject: subject.to_owned(),
        kind: kind.to_owned(),
        created_at,
        expires_at: created_at + 30 * 86_400,
        size: 42,
        key_id: format!("dk-{subject}"),
    }
}

fn record(id: &str, call_id: &str, subject: &str, kind: &str, created_at: u64) -> StoredRecord {
    StoredRecord {
        meta: meta(id, call_id, subject, kind, created_at),
        body: format!("ciphertext of {id}").into_bytes(),
    }
}

fn key(subject: &str, kek_id: &str, blob: &[u8]) -> StoredKey {
    StoredKey {
        subject: subject.to_owned(),
        kek_id: kek_id.to_owned(),
        blob: blob.to_vec(),
    }
}

fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
}

fn ids(metas: &[RecordMeta]) -> Vec<&str> {
    metas.iter().map(|m| m.id.as_str()).collect()
}

async fn file_store() -> (SqliteRecordStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteRecordStore::open_in_dir(dir.path()).await.unwrap();
    (store, dir)
}

async fn list(store: &dyn Backend, filter: RecordFilter) -> Vec<RecordMeta> {
    store.list_records(&filter).await.unwrap()
}

/// Names of the files in `dir` whose bytes contain `needle`. Files SQLite removes while the
/// scan runs are skipped.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("cannot read {}: {e}", path.display()),
        };
        if bytes.windows(needle.len()).any(|window| window == needle) {
            found.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    found
}

// ---------------------------------------------------------------------------------------------
// Records: put, get, list, delete
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn records_round_trip_and_duplicate_ids_are_refused() {
    for under in backends("records_round_trip_and_dupli", Sqlite::File).await {
        let store = under.store();
        under.ping().await.unwrap();
        assert!(store.get_record("r1").await.unwrap().is_none());

        let mut first = record("r1", "c1", "pat_001", "transcript", T0);
        first.body = vec![0, 1, 2, 255, 254];
        first.meta.size = 5;
        store.put_record(&first).await.unwrap();
        let got = store.get_record("r1").await.unwrap().expect("stored");
        assert_eq!(got.meta, first.meta);
        assert_eq!(got.body, first.body);

        let mut again = record("r1", "c9", "pat_999", "summary", T0 + 5);
        again.body = b"other".to_vec();
        let err = store.put_record(&again).await.unwrap_err();
        assert!(matches!(err, StoreError::DuplicateRecord), "{err:?}");
        assert!(!err.to_string().contains("r1"), "{err}");
        let kept = store.get_record("r1").await.unwrap().unwrap();
        assert_eq!(kept.meta, first.meta, "the first record is unchanged");
        assert_eq!(kept.body, first.body);
        under.finish().await;
    }
}

#[tokio::test]
async fn stored_record_and_key_debug_never_show_bytes() {
    let mut rec = record("r1", "c1", "pat_001", "transcript", T0);
    rec.body = b"SECRET-BODY-BYTES".to_vec();
    let shown = format!("{rec:?}");
    assert!(!shown.contains("SECRET"), "{shown}");
    assert!(!shown.contains("83, 69, 67"), "{shown}");
    assert!(shown.contains("body_len: 17"), "{shown}");
    let k = key("pat_001", "kek-1", b"WRAPPED-KEY");
    let shown = format!("{k:?}");
    assert!(
        !shown.contains("WRAPPED") && !shown.contains("87, 82"),
        "{shown}"
    );
    assert!(shown.contains("kek-1"), "{shown}");
}

#[tokio::test]
async fn list_filters_each_field_and_orders_by_creation_then_id() {
    for under in backends("list_filters_each_field_and_", Sqlite::Memory).await {
        let store = under.store();
        // Inserted in reverse, so the order must come from the query.
        let rows = [
            record("r5", "c3", "call:c3", "transcript", T0 + 30),
            record("r4", "c3", "pat_a", "tool_log", T0 + 20),
            record("r3", "c2", "pat_b", "transcript", T0 + 10),
            record("r2", "c1", "pat_a", "summary", T0 + 10),
            record("r1", "c1", "pat_a", "transcript", T0),
        ];
        for row in &rows {
            store.put_record(row).await.unwrap();
        }
        let all = list(store, RecordFilter::default()).await;
        assert_eq!(ids(&all), ["r1", "r2", "r3", "r4", "r5"]);
        assert_eq!(all[4], rows[0].meta);

        let cases: Vec<(RecordFilter, Vec<&str>)> = vec![
            (
                RecordFilter {
                    subject: Some("pat_a".into()),
                    ..Default::default()
                },
                vec!["r1", "r2", "r4"],
            ),
            (
                RecordFilter {
                    call_id: Some("c3".into()),
                    ..Default::default()
                },
                vec!["r4", "r5"],
            ),
            (
                RecordFilter {
                    kind: Some("transcript".into()),
                    ..Default::default()
                },
                vec!["r1", "r3", "r5"],
            ),
            (
                RecordFilter {
                    from: Some(T0 + 10),
                    ..Default::default()
                },
                vec!["r2", "r3", "r4", "r5"],
            ),
            (
                RecordFilter {
                    to: Some(T0 + 10),
                    ..Default::default()
                },
                vec!["r1", "r2", "r3"],
            ),
            (
                RecordFilter {
                    from: Some(T0 + 10),
                    to: Some(T0 + 10),
                    ..Default::default()
                },
                vec!["r2", "r3"],
            ),
            (
                RecordFilter {
                    subject: Some("pat_a".into()),
                    kind: Some("transcript".into()),
                    ..Default::default()
                },
                vec!["r1"],
            ),
            (
                RecordFilter {
                    subject: Some("pat_a".into()),
                    call_id: Some("c2".into()),
                    ..Default::default()
                },
                vec![],
            ),
            (
                // Values are bound, never matched as patterns.
                RecordFilter {
                    subject: Some("pat_%".into()),
                    ..Default::default()
                },
                vec![],
            ),
        ];
        for (filter, expected) in cases {
            let got = list(store, filter.clone()).await;
            assert_eq!(ids(&got), expected, "{filter:?}");
        }
        under.finish().await;
    }
}

#[tokio::test]
async fn paging_with_the_cursor_visits_every_record_once_in_order() {
    for under in backends("paging_with_the_cursor_visit", Sqlite::Memory).await {
        let store = under.store();
        let mut expected = Vec::new();
        for i in 0..25u64 {
            // Ties on created_at (three per second) and ids out of insertion order.
            let id = format!("id-{:02}", (i * 7) % 25);
            let created_at = T0 + i / 3;
            store
                .put_record(&record(&id, "c1", "pat_a", "transcript", created_at))
                .await
                .unwrap();
            expected.push((created_at, id));
        }
        expected.sort();
        let expected: Vec<String> = expected.into_iter().map(|(_, id)| id).collect();

        let mut seen = Vec::new();
        let mut after = None;
        let mut pages = 0;
        loop {
            let filter = RecordFilter {
                limit: Some(4),
                after: after.clone(),
                ..Default::default()
            };
            let page = list(store, filter.clone()).await;
            pages += 1;
            assert!(page.len() <= 4);
            seen.extend(page.iter().map(|m| m.id.clone()));
            if page.len() < usize::try_from(filter.page_size()).unwrap() {
                break;
            }
            after = page.last().map(|m| m.id.clone());
        }
        assert_eq!(seen, expected);
        assert_eq!(pages, 7);

        // The cursor combines with the filters.
        let filter = RecordFilter {
            to: Some(T0 + 1),
            after: Some(expected[2].clone()),
            ..Default::default()
        };
        assert_eq!(
            list(store, filter)
                .await
                .iter()
                .map(|m| &m.id)
                .collect::<Vec<_>>(),
            expected[3..6].iter().collect::<Vec<_>>()
        );

        let err = store
            .list_records(&RecordFilter {
                after: Some("no-such-record".into()),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::UnknownCursor), "{err:?}");
        under.finish().await;
    }
}

#[tokio::test]
async fn the_page_size_is_clamped() {
    for under in backends("the_page_size_is_clamped", Sqlite::Memory).await {
        let store = under.store();
        for i in 0..1001u64 {
            store
                .put_record(&record(&format!("r{i:04}"), "c", "s", "summary", T0 + i))
                .await
                .unwrap();
        }
        let page = |limit| RecordFilter {
            limit,
            ..Default::default()
        };
        assert_eq!(list(store, page(None)).await.len(), 100);
        assert_eq!(DEFAULT_RECORD_PAGE, 100);
        assert_eq!(list(store, page(Some(0))).await.len(), 1);
        assert_eq!(list(store, page(Some(7))).await.len(), 7);
        assert_eq!(list(store, page(Some(5000))).await.len(), 1000);
        assert_eq!(page(Some(u32::MAX)).page_size(), MAX_RECORD_PAGE);
        assert_eq!(ids(&list(store, page(Some(1))).await), ["r0000"]);
        under.finish().await;
    }
}

#[tokio::test]
async fn delete_record_returns_what_it_deleted() {
    for under in backends("delete_record_returns_what_i", Sqlite::Memory).await {
        let store = under.store();
        let kept = record("r1", "c1", "pat_a", "summary", T0);
        let gone = record("r2", "c1", "pat_a", "transcript", T0 + 1);
        store.put_record(&kept).await.unwrap();
        store.put_record(&gone).await.unwrap();
        assert_eq!(store.delete_record("r2").await.unwrap(), Some(gone.meta));
        assert!(store.get_record("r2").await.unwrap().is_none());
        assert_eq!(store.delete_record("r2").await.unwrap(), None);
        assert_eq!(store.delete_record("nope").await.unwrap(), None);
        assert_eq!(ids(&list(store, RecordFilter::default()).await), ["r1"]);
        under.finish().await;
    }
}

// ---------------------------------------------------------------------------------------------
// Wrapped keys
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_key_inserts_both_get_the_stored_key() {
    for under in backends("racing_key_inserts_both_get_", Sqlite::File).await {
        let store = under.shared();
        for i in 0..40 {
            let subject = format!("pat_{i}");
            let a = key(&subject, "kek-1", format!("blob-a-{i}").as_bytes());
            let b = key(&subject, "kek-1", format!("blob-b-{i}").as_bytes());
            let (sa, sb) = (store.clone(), store.clone());
            let ta = tokio::spawn(async move { sa.put_subject_key_if_absent(&a).await });
            let tb = tokio::spawn(async move { sb.put_subject_key_if_absent(&b).await });
            let (ra, rb) = (ta.await.unwrap().unwrap(), tb.await.unwrap().unwrap());
            assert_eq!(ra, rb, "both writers get the same key for {subject}");
            assert_eq!(store.subject_key(&subject).await.unwrap(), Some(ra));
        }
        // An existing key always wins over a later one.
        let stored = store.subject_key("pat_0").await.unwrap().unwrap();
        let later = store
            .put_subject_key_if_absent(&key("pat_0", "kek-2", b"later"))
            .await
            .unwrap();
        assert_eq!(later, stored);
        assert_eq!(store.subject_key("nobody").await.unwrap(), None);
        under.finish().await;
    }
}

#[tokio::test]
async fn rotation_finds_old_keys_and_rewraps_with_compare_and_swap() {
    for under in backends("rotation_finds_old_keys_and_", Sqlite::Memory).await {
        let store = under.store();
        for (subject, kek) in [
            ("s1", "kek-1"),
            ("s2", "kek-new"),
            ("s3", "kek-1"),
            ("s4", "kek-0"),
        ] {
            store
                .put_subject_key_if_absent(&key(subject, kek, subject.as_bytes()))
                .await
                .unwrap();
        }
        let old = store.keys_not_under("kek-new", 2).await.unwrap();
        let subjects: Vec<&str> = old.iter().map(|k| k.subject.as_str()).collect();
        assert_eq!(subjects, ["s1", "s3"], "subject order, at most `limit`");
        assert_eq!(old[0], key("s1", "kek-1", b"s1"));
        assert_eq!(store.keys_not_under("kek-new", 0).await.unwrap().len(), 1);

        // The compare-and-swap: only from the KEK the key is still under.
        let rewrapped = key("s1", "kek-new", b"s1-under-new");
        assert!(!store.rewrap_subject_key("kek-0", &rewrapped).await.unwrap());
        assert_eq!(
            store.subject_key("s1").await.unwrap(),
            Some(key("s1", "kek-1", b"s1"))
        );
        assert!(store.rewrap_subject_key("kek-1", &rewrapped).await.unwrap());
        assert_eq!(store.subject_key("s1").await.unwrap(), Some(rewrapped));
        // A second rotator that read the same old key loses.
        let stale = key("s1", "kek-new", b"other-wrapping");
        assert!(!store.rewrap_subject_key("kek-1", &stale).await.unwrap());
        assert_eq!(
            store.subject_key("s1").await.unwrap().unwrap().blob,
            b"s1-under-new"
        );
        // A key that is gone is not created.
        assert!(!store
            .rewrap_subject_key("kek-1", &key("gone", "kek-new", b"x"))
            .await
            .unwrap());
        assert_eq!(store.subject_key("gone").await.unwrap(), None);

        // A rotation loop ends once every key is under the current KEK.
        let mut rounds = 0;
        loop {
            let batch = store.keys_not_under("kek-new", 1).await.unwrap();
            if batch.is_empty() {
                break;
            }
            rounds += 1;
            for old in batch {
                let new = key(&old.subject, "kek-new", b"rewrapped");
                assert!(store.rewrap_subject_key(&old.kek_id, &new).await.unwrap());
            }
        }
        assert_eq!(rounds, 2, "s3 and s4 were left");
        under.finish().await;
    }
}

// ---------------------------------------------------------------------------------------------
// Deleting a subject
// ---------------------------------------------------------------------------------------------

/// Call c1: pre-verification records under `call:c1`, then pat_001's summary. Call c2:
/// pat_001 only, and a key for `call:c2` that never got a record. Call c3: pat_002. Call c4:
/// `call:c4` only.
async fn seed_subjects(store: &dyn Backend) {
    let rows = [
        record("a1", "c1", "call:c1", "transcript", T0),
        record("a2", "c1", "call:c1", "tool_log", T0 + 1),
        record("a3", "c1", "pat_001", "summary", T0 + 2),
        record("b1", "c2", "pat_001", "transcript", T0 + 3),
        record("b2", "c2", "pat_001", "summary", T0 + 4),
        record("d1", "c3", "pat_002", "transcript", T0 + 5),
        record("e1", "c4", "call:c4", "transcript", T0 + 6),
    ];
    for row in &rows {
        store.put_record(row).await.unwrap();
    }
    for subject in ["pat_001", "call:c1", "call:c2", "pat_002", "call:c4"] {
        store
            .put_subject_key_if_absent(&key(subject, "kek-1", subject.as_bytes()))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn delete_subject_removes_its_calls_records_and_keys() {
    for under in backends("delete_subject_removes_its_c", Sqlite::File).await {
        let store = under.store();
        seed_subjects(store).await;
        let deletion = store.delete_subject("pat_001").await.unwrap();
        assert_eq!(
            deletion,
            SubjectDeletion {
                records: counts(&[("summary", 2), ("tool_log", 1), ("transcript", 2)]),
                keys: 3,
                call_ids: vec!["c1".into(), "c2".into()],
            }
        );
        assert_eq!(
            ids(&list(store, RecordFilter::default()).await),
            ["d1", "e1"]
        );
        for gone in ["pat_001", "call:c1", "call:c2"] {
            assert_eq!(store.subject_key(gone).await.unwrap(), None, "{gone}");
        }
        for kept in ["pat_002", "call:c4"] {
            assert!(store.subject_key(kept).await.unwrap().is_some(), "{kept}");
        }
        // Idempotent: nothing is left to delete.
        assert_eq!(
            store.delete_subject("pat_001").await.unwrap(),
            SubjectDeletion::default()
        );
        // A subject with a key but no records loses its key.
        store
            .put_subject_key_if_absent(&key("pat_003", "kek-1", b"k"))
            .await
            .unwrap();
        let deletion = store.delete_subject("pat_003").await.unwrap();
        assert_eq!(deletion.keys, 1);
        assert!(deletion.records.is_empty() && deletion.call_ids.is_empty());
        assert_eq!(
            ids(&list(store, RecordFilter::default()).await),
            ["d1", "e1"]
        );
        under.finish().await;
    }
}

#[tokio::test]
async fn a_deleted_subject_leaves_no_trace_in_any_file() {
    let (store, dir) = file_store().await;
    let subject = "pat_QZX7SUBJ";
    let call = "call-QZX7CALL";
    let phrase = "QZX7PHRASE Maria born 1984-03-12 says hello";
    let small = record("r-small", call, subject, "summary", T0);
    // A 20 KB body spills into overflow pages.
    let mut large = record("r-large", call, subject, "transcript", T0 + 1);
    large.body = phrase.repeat(500).into_bytes();
    let mut small = small;
    small.body = phrase.as_bytes().to_vec();
    let mut before = record("r-before", call, &format!("call:{call}"), "transcript", T0);
    before.body = b"QZX7BEFORE verification chatter".to_vec();
    let mut other = record("r-other", "call-2", "pat_OTHER", "summary", T0 + 2);
    other.body = b"STAYS-4471 another patient".to_vec();
    for row in [&small, &large, &before, &other] {
        store.put_record(row).await.unwrap();
    }
    for subject in [subject, &format!("call:{call}")] {
        store
            .put_subject_key_if_absent(&key(subject, "kek-1", b"QZX7WRAPPEDKEY"))
            .await
            .unwrap();
    }
    store
        .put_subject_key_if_absent(&key("pat_OTHER", "kek-1", b"STAYS-KEY-9183"))
        .await
        .unwrap();
    let needles: [&[u8]; 5] = [
        b"QZX7PHRASE",
        b"QZX7SUBJ",
        b"QZX7CALL",
        b"QZX7BEFORE",
        b"QZX7WRAPPEDKEY",
    ];
    // The scan sees the data while it exists (WAL and/or database file).
    for needle in needles {
        assert!(
            !files_containing(dir.path(), needle).is_empty(),
            "{} must be findable before the deletion",
            String::from_utf8_lossy(needle)
        );
    }

    let deletion = store.delete_subject(subject).await.unwrap();
    assert_eq!(deletion.call_ids, [call]);
    assert_eq!(deletion.keys, 2);

    for needle in needles {
        assert_eq!(
            files_containing(dir.path(), needle),
            Vec::<String>::new(),
            "{} survived the deletion",
            String::from_utf8_lossy(needle)
        );
    }
    // Other subjects' data is kept, and the scan does read it in the files.
    for kept in [&b"STAYS-4471"[..], b"STAYS-KEY-9183"] {
        assert_eq!(
            files_containing(dir.path(), kept),
            [RECORDS_DB_FILE_NAME],
            "{}",
            String::from_utf8_lossy(kept)
        );
    }
    assert!(store.get_record("r-other").await.unwrap().is_some());
}

/// The same scan finds a deleted row's bytes when SQLite runs without `secure_delete`: the
/// proof above holds because of the store's settings, not because the scan is blind.
#[tokio::test]
async fn without_secure_delete_the_scan_finds_deleted_bytes() {
    use sqlx::ConnectOptions as _;
    let dir = tempfile::tempdir().unwrap();
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.path().join("plain.db"))
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .pragma("secure_delete", "OFF")
        .connect()
        .await
        .unwrap();
    for statement in [
        "CREATE TABLE t (body BLOB)",
        "INSERT INTO t VALUES (CAST('QZX7LEFTOVER' AS BLOB))",
        "INSERT INTO t VALUES (CAST('filler' AS BLOB))",
        "PRAGMA wal_checkpoint(TRUNCATE)",
        "DELETE FROM t WHERE body = CAST('QZX7LEFTOVER' AS BLOB)",
        "PRAGMA wal_checkpoint(TRUNCATE)",
    ] {
        sqlx::query(statement).execute(&mut conn).await.unwrap();
    }
    assert_eq!(files_containing(dir.path(), b"QZX7LEFTOVER"), ["plain.db"]);
}

// ---------------------------------------------------------------------------------------------
// Retention purge
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn purge_deletes_expired_records_in_batches_and_is_idempotent() {
    for under in backends("purge_deletes_expired_record", Sqlite::File).await {
        let store = under.store();
        let now = T0 + 1_000;
        let kinds = [("transcript", 40), ("summary", 35), ("tool_log", 25)];
        let mut n = 0u64;
        for (kind, count) in kinds {
            for _ in 0..count {
                // Call-subjects: a-calls have only expired records; "call:mixed" has one of each.
                let (call, subject) = match n % 3 {
                    0 => (format!("a{n}"), format!("call:a{n}")),
                    1 => ("mixed".to_owned(), "call:mixed".to_owned()),
                    _ => (format!("p{n}"), "pat_1".to_owned()),
                };
                let mut row = record(&format!("x{n:03}"), &call, &subject, kind, T0);
                // Up to and including `now`.
                row.meta.expires_at = now - (n % 50);
                store.put_record(&row).await.unwrap();
                n += 1;
            }
        }
        let mut live_ids = Vec::new();
        for i in 0..10u64 {
            let subject = if i == 0 { "call:mixed" } else { "pat_2" };
            let mut row = record(&format!("live{i}"), "mixed", subject, "transcript", T0);
            row.meta.expires_at = now + 1 + i;
            store.put_record(&row).await.unwrap();
            live_ids.push(row.meta.id);
        }
        for subject in ["call:a0", "call:a3", "call:mixed", "pat_1", "pat_2"] {
            store
                .put_subject_key_if_absent(&key(subject, "kek-1", b"k"))
                .await
                .unwrap();
        }

        let expected = counts(&[("summary", 35), ("tool_log", 25), ("transcript", 40)]);
        assert_eq!(store.count_expired_records(now).await.unwrap(), expected);
        assert_eq!(
            store.count_expired_records(now - 50).await.unwrap(),
            BTreeMap::new()
        );
        assert_eq!(store.purge_expired_records(now, 7).await.unwrap(), expected);

        let left = list(
            store,
            RecordFilter {
                limit: Some(1000),
                ..Default::default()
            },
        )
        .await;
        let mut left_ids: Vec<String> = left.into_iter().map(|m| m.id).collect();
        left_ids.sort();
        assert_eq!(left_ids, live_ids);
        // Keys of call-subjects with no record left go; the others stay.
        assert_eq!(store.subject_key("call:a0").await.unwrap(), None);
        assert_eq!(store.subject_key("call:a3").await.unwrap(), None);
        for kept in ["call:mixed", "pat_1", "pat_2"] {
            assert!(store.subject_key(kept).await.unwrap().is_some(), "{kept}");
        }

        assert_eq!(
            store.purge_expired_records(now, 7).await.unwrap(),
            BTreeMap::new()
        );
        assert_eq!(
            store.count_expired_records(now).await.unwrap(),
            BTreeMap::new()
        );
        // A batch of 0 counts as 1 and still finishes.
        assert_eq!(
            store.purge_expired_records(now + 5, 0).await.unwrap(),
            counts(&[("transcript", 5)])
        );
        assert_eq!(
            store.purge_expired_records(now + 100, 3).await.unwrap(),
            counts(&[("transcript", 5)])
        );
        assert!(list(store, RecordFilter::default()).await.is_empty());
        assert_eq!(store.subject_key("call:mixed").await.unwrap(), None);
        under.finish().await;
    }
}

#[tokio::test]
async fn each_purge_batch_is_its_own_transaction() {
    for under in backends("each_purge_batch_is_its_own_", Sqlite::Memory).await {
        let store = under.store();
        let now = T0 + 1_000;
        let expire = |n: u64| {
            let mut row = record(&format!("x{n:03}"), "c", "s", "summary", T0);
            row.meta.expires_at = now;
            row
        };
        for n in 0..20 {
            store.put_record(&expire(n)).await.unwrap();
        }
        // 7 + 7 + 6: the short third batch shows nothing is left.
        let (purged, transactions) = under
            .purge_now(crate::session::to_i64(now), 7)
            .await
            .unwrap();
        assert_eq!((purged, transactions), (counts(&[("summary", 20)]), 3));
        for n in 0..21 {
            store.put_record(&expire(n)).await.unwrap();
        }
        // 7 + 7 + 7 + an empty one.
        let (purged, transactions) = under
            .purge_now(crate::session::to_i64(now), 7)
            .await
            .unwrap();
        assert_eq!((purged, transactions), (counts(&[("summary", 21)]), 4));
        // Nothing expired: one empty batch.
        let (purged, transactions) = under
            .purge_now(crate::session::to_i64(now), 7)
            .await
            .unwrap();
        assert_eq!((purged, transactions), (BTreeMap::new(), 1));
        under.finish().await;
    }
}

// ---------------------------------------------------------------------------------------------
// Operators
// ---------------------------------------------------------------------------------------------

fn operator(name: &str, role: &str, token_hash: Option<&str>) -> Operator {
    Operator {
        name: name.to_owned(),
        role: role.to_owned(),
        created_at: T0,
        password_hash: Some(format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA${name}")),
        token_hash: token_hash.map(str::to_owned),
    }
}

#[tokio::test]
async fn operators_crud_and_lookups() {
    for under in backends("operators_crud_and_lookups", Sqlite::File).await {
        let store = under.store();
        let alice = operator("alice", "admin", None);
        let bob = operator("bob", "auditor", Some("ab12"));
        let carol = operator("carol", "admin", Some("cd34"));
        for op in [&carol, &alice, &bob] {
            store.add_operator(op).await.unwrap();
        }
        assert_eq!(store.operator("alice").await.unwrap(), Some(alice.clone()));
        assert_eq!(store.operator("nobody").await.unwrap(), None);
        assert_eq!(
            store.operator_by_token_hash("ab12").await.unwrap(),
            Some(bob.clone())
        );
        assert_eq!(store.operator_by_token_hash("ffff").await.unwrap(), None);
        let names: Vec<String> = store
            .list_operators()
            .await
            .unwrap()
            .into_iter()
            .map(|op| op.name)
            .collect();
        assert_eq!(names, ["alice", "bob", "carol"]);

        let err = store
            .add_operator(&operator("alice", "auditor", Some("new")))
            .await
            .unwrap_err();
        assert!(matches!(&err, OperatorStoreError::Exists { name } if name == "alice"));
        assert_eq!(err.to_string(), "an operator named alice already exists");
        let err = store
            .add_operator(&operator("dave", "auditor", Some("ab12")))
            .await
            .unwrap_err();
        assert!(matches!(err, OperatorStoreError::TokenInUse), "{err:?}");
        assert!(!err.to_string().contains("ab12"));
        assert_eq!(store.operator("dave").await.unwrap(), None);
        assert_eq!(store.operator("alice").await.unwrap(), Some(alice.clone()));

        assert_eq!(store.count_operators_with_role("admin").await.unwrap(), 2);
        assert_eq!(
            store
                .set_operator_role("carol", "compliance", Some("admin"))
                .await
                .unwrap(),
            OperatorChange::Done
        );
        assert_eq!(
            store
                .set_operator_role("nobody", "admin", Some("admin"))
                .await
                .unwrap(),
            OperatorChange::NotFound
        );
        assert_eq!(store.count_operators_with_role("admin").await.unwrap(), 1);
        assert_eq!(
            store.operator("carol").await.unwrap().unwrap().role,
            "compliance"
        );
        assert_eq!(
            store.remove_operator("bob", Some("admin")).await.unwrap(),
            OperatorChange::Done
        );
        assert_eq!(
            store.remove_operator("bob", Some("admin")).await.unwrap(),
            OperatorChange::NotFound
        );
        assert_eq!(store.operator_by_token_hash("ab12").await.unwrap(), None);
        assert_eq!(store.count_operators_with_role("auditor").await.unwrap(), 0);
        // Operators without a token do not collide with each other.
        store
            .add_operator(&operator("erin", "auditor", None))
            .await
            .unwrap();
        under.finish().await;
    }
}

#[tokio::test]
async fn the_last_operator_of_the_role_to_keep_stays() {
    for under in backends("last_of_role", Sqlite::Memory).await {
        let store = under.store();
        for op in [
            operator("ada", "admin", None),
            operator("bo", "auditor", None),
        ] {
            store.add_operator(&op).await.unwrap();
        }
        // The last admin is neither removed nor given another role...
        assert_eq!(
            store.remove_operator("ada", Some("admin")).await.unwrap(),
            OperatorChange::LastOfRole
        );
        assert_eq!(
            store
                .set_operator_role("ada", "auditor", Some("admin"))
                .await
                .unwrap(),
            OperatorChange::LastOfRole
        );
        assert_eq!(
            store.operator("ada").await.unwrap(),
            Some(operator("ada", "admin", None)),
            "nothing changed"
        );
        // ...but may be given the role it has, and others change freely.
        assert_eq!(
            store
                .set_operator_role("ada", "admin", Some("admin"))
                .await
                .unwrap(),
            OperatorChange::Done
        );
        assert_eq!(
            store
                .set_operator_role("bo", "compliance", Some("admin"))
                .await
                .unwrap(),
            OperatorChange::Done
        );
        // With a second admin, either may go; then the other is the last one.
        assert_eq!(
            store
                .set_operator_role("bo", "admin", Some("admin"))
                .await
                .unwrap(),
            OperatorChange::Done
        );
        assert_eq!(
            store
                .set_operator_role("ada", "auditor", Some("admin"))
                .await
                .unwrap(),
            OperatorChange::Done
        );
        assert_eq!(
            store.remove_operator("bo", Some("admin")).await.unwrap(),
            OperatorChange::LastOfRole
        );
        // Without a role to keep, nothing is protected.
        assert_eq!(
            store.remove_operator("bo", None).await.unwrap(),
            OperatorChange::Done
        );
        assert_eq!(store.count_operators_with_role("admin").await.unwrap(), 0);
        assert_eq!(
            store.remove_operator("bo", None).await.unwrap(),
            OperatorChange::NotFound
        );
        under.finish().await;
    }
}

/// Two handles on one database, `one` and `two`, in many rounds removing (even rounds) or
/// demoting (odd rounds) the only two admins at the same moment, each handle one of them:
/// exactly one change is made and one admin is left every time. (Checking and changing in
/// separate steps lost both admins in most rounds.)
async fn two_handles_racing_keep_one_admin(
    one: Arc<dyn Backend>,
    two: Arc<dyn Backend>,
    rounds: usize,
) {
    one.add_operator(&operator("aud", "auditor", None))
        .await
        .unwrap();
    for round in 0..rounds {
        let (a, b) = (format!("a{round}"), format!("b{round}"));
        for name in [&a, &b] {
            one.add_operator(&operator(name, "admin", None))
                .await
                .unwrap();
        }
        let remove = round % 2 == 0;
        let race = |store: Arc<dyn Backend>, name: String| {
            tokio::spawn(async move {
                if remove {
                    store.remove_operator(&name, Some("admin")).await
                } else {
                    store
                        .set_operator_role(&name, "auditor", Some("admin"))
                        .await
                }
            })
        };
        let (ta, tb) = (race(one.clone(), a.clone()), race(two.clone(), b.clone()));
        let results = [ta.await.unwrap().unwrap(), tb.await.unwrap().unwrap()];
        let mut sorted = results;
        sorted.sort_by_key(|r| *r == OperatorChange::Done);
        assert_eq!(
            sorted,
            [OperatorChange::LastOfRole, OperatorChange::Done],
            "round {round}: {results:?}"
        );
        for store in [&one, &two] {
            assert_eq!(
                store.count_operators_with_role("admin").await.unwrap(),
                1,
                "round {round}: {results:?}"
            );
        }
        for name in [&a, &b] {
            let _ = one.remove_operator(name, None).await.unwrap();
        }
    }
    // Only the admins changed.
    assert_eq!(
        two.operator("aud").await.unwrap(),
        Some(operator("aud", "auditor", None))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_on_one_sqlite_file_racing_keep_one_admin() {
    let (first, dir) = file_store().await;
    // Another pool on the same file, as the CLI opens it while the runtime runs.
    let second = SqliteRecordStore::open_in_dir(dir.path()).await.unwrap();
    two_handles_racing_keep_one_admin(Arc::new(first), Arc::new(second), 40).await;
}

#[tokio::test]
async fn an_operator_secret_is_replaced_alone() {
    for under in backends("an_operator_secret_is_replaced_alone", Sqlite::File).await {
        let store = under.store();
        let alice = operator("alice", "admin", Some("aa11"));
        let bob = operator("bob", "auditor", Some("bb22"));
        for op in [&alice, &bob] {
            store.add_operator(op).await.unwrap();
        }
        // A new password hash: the token stays.
        assert!(store
            .set_operator_secret("alice", true, "$argon2id$new")
            .await
            .unwrap());
        let now = store.operator("alice").await.unwrap().unwrap();
        assert_eq!(now.password_hash.as_deref(), Some("$argon2id$new"));
        assert_eq!(now.token_hash.as_deref(), Some("aa11"));
        // A new token hash: the old one finds nobody, the password stays.
        assert!(store
            .set_operator_secret("alice", false, "cc33")
            .await
            .unwrap());
        assert_eq!(store.operator_by_token_hash("aa11").await.unwrap(), None);
        let now = store.operator_by_token_hash("cc33").await.unwrap().unwrap();
        assert_eq!(now.name, "alice");
        assert_eq!(now.password_hash.as_deref(), Some("$argon2id$new"));
        assert_eq!(now.created_at, alice.created_at);
        // Another operator's token hash is refused and changes nothing.
        let err = store
            .set_operator_secret("alice", false, "bb22")
            .await
            .unwrap_err();
        assert!(matches!(err, OperatorStoreError::TokenInUse), "{err:?}");
        assert_eq!(
            store
                .operator("alice")
                .await
                .unwrap()
                .unwrap()
                .token_hash
                .as_deref(),
            Some("cc33")
        );
        assert!(!store
            .set_operator_secret("nobody", true, "$argon2id$x")
            .await
            .unwrap());
        under.finish().await;
    }
}

/// Listings order text by bytes, as SQLite does, whatever the PostgreSQL database's locale
/// (uppercase before lowercase; a locale would put `alice` first).
#[tokio::test]
async fn listings_order_text_by_bytes() {
    for under in backends("listings_order_by_bytes", Sqlite::Memory).await {
        let store = under.store();
        for id in ["b-1", "B-2", "a-3", "Z-4"] {
            store
                .put_record(&record(id, "c", "s", "summary", T0))
                .await
                .unwrap();
        }
        assert_eq!(
            ids(&list(store, RecordFilter::default()).await),
            ["B-2", "Z-4", "a-3", "b-1"]
        );
        for name in ["alice", "Zed", "bob"] {
            store
                .add_operator(&operator(name, "auditor", None))
                .await
                .unwrap();
            store
                .put_subject_key_if_absent(&key(name, "kek-0", b"k"))
                .await
                .unwrap();
        }
        let names: Vec<String> = store
            .list_operators()
            .await
            .unwrap()
            .into_iter()
            .map(|op| op.name)
            .collect();
        assert_eq!(names, ["Zed", "alice", "bob"]);
        let subjects: Vec<String> = store
            .keys_not_under("kek-1", 10)
            .await
            .unwrap()
            .into_iter()
            .map(|k| k.subject)
            .collect();
        assert_eq!(subjects, ["Zed", "alice", "bob"]);
        under.finish().await;
    }
}

#[test]
fn operators_never_show_their_hashes() {
    let op = operator("alice", "admin", Some("deadbeef"));
    let json = serde_json::to_value(&op).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"name": "alice", "role": "admin", "created_at": T0})
    );
    let shown = format!("{op:?}");
    assert!(
        !shown.contains("argon2") && !shown.contains("deadbeef"),
        "{shown}"
    );
    assert!(shown.contains("has_token: true"), "{shown}");
}

// ---------------------------------------------------------------------------------------------
// The database itself
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_database_is_durable_private_and_secure_deleting() {
    let (store, dir) = file_store().await;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    for (pragma, expected) in [("PRAGMA synchronous", 2), ("PRAGMA secure_delete", 1)] {
        let value: i64 = sqlx::query_scalar(pragma)
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(value, expected, "{pragma} (FULL = 2, ON = 1)");
    }
    store
        .put_record(&record("r1", "c1", "s", "summary", T0))
        .await
        .unwrap();
    store.close().await;

    let store = SqliteRecordStore::open_in_dir(dir.path()).await.unwrap();
    assert!(store.get_record("r1").await.unwrap().is_some(), "persisted");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(RECORDS_DB_FILE_NAME))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test]
async fn errors_are_generic() {
    let dir = tempfile::tempdir().unwrap();
    let err = SqliteRecordStore::open(dir.path().join("missing").join("secret-name.db"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert!(!err.to_string().contains("secret-name"), "{err}");
    assert!(err.source().is_some());

    let store = SqliteRecordStore::open_in_memory().await.unwrap();
    store.close().await;
    assert!(store.ping().await.is_err());
    let err = store.get_record("r1").await.unwrap_err();
    assert!(!err.to_string().to_lowercase().contains("select"), "{err}");
    let err = store
        .add_operator(&operator("a", "admin", None))
        .await
        .unwrap_err();
    assert!(matches!(err, OperatorStoreError::Store(_)), "{err:?}");
    assert!(!err.to_string().to_lowercase().contains("insert"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL: replicas sharing one schema
// ---------------------------------------------------------------------------------------------

/// Two stores on two pools of one fresh schema, as two replicas see it, or `None` when
/// `VOXGUARD_TEST_POSTGRES_URL` is not set.
async fn replicas(label: &str) -> Option<(PgRecordStore, PgRecordStore)> {
    let first = testing::database(label).await?;
    let url = std::env::var(testing::URL_VAR).unwrap();
    let second = PgDatabase::connect(&url, first.schema(), 4).await.unwrap();
    Some((PgRecordStore::new(first), PgRecordStore::new(second)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_racing_for_a_subject_key_all_get_the_winner() {
    let Some((a, b)) = replicas("replicas_key_race").await else {
        return;
    };
    for i in 0..30 {
        let subject = format!("pat_{i}");
        let ka = key(&subject, "kek-1", format!("blob-a-{i}").as_bytes());
        let kb = key(&subject, "kek-1", format!("blob-b-{i}").as_bytes());
        let (sa, sb) = (a.clone(), b.clone());
        let ta = tokio::spawn(async move { sa.put_subject_key_if_absent(&ka).await });
        let tb = tokio::spawn(async move { sb.put_subject_key_if_absent(&kb).await });
        let (ra, rb) = (ta.await.unwrap().unwrap(), tb.await.unwrap().unwrap());
        assert_eq!(ra, rb, "both replicas get the same key for {subject}");
        assert!(
            ra.blob == format!("blob-a-{i}").as_bytes()
                || ra.blob == format!("blob-b-{i}").as_bytes(),
            "{ra:?}"
        );
        assert_eq!(a.subject_key(&subject).await.unwrap(), Some(ra.clone()));
        assert_eq!(b.subject_key(&subject).await.unwrap(), Some(ra));
    }
    a.database().drop_schema().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_records_operators_deletions_and_purges() {
    let Some((a, b)) = replicas("replicas_share").await else {
        return;
    };
    // What one replica writes, the other reads.
    let row = record("r1", "c1", "pat_001", "summary", T0);
    a.put_record(&row).await.unwrap();
    assert_eq!(b.get_record("r1").await.unwrap().unwrap().meta, row.meta);
    let err = b.put_record(&row).await.unwrap_err();
    assert!(matches!(err, StoreError::DuplicateRecord), "{err:?}");

    // Two replicas adding the same operator: exactly one wins.
    let (sa, sb) = (a.clone(), b.clone());
    let ta = tokio::spawn(async move { sa.add_operator(&operator("ops", "admin", None)).await });
    let tb = tokio::spawn(async move {
        sb.add_operator(&operator("ops", "auditor", Some("t1")))
            .await
    });
    let results = [ta.await.unwrap(), tb.await.unwrap()];
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(
        results
            .iter()
            .any(|r| matches!(r, Err(OperatorStoreError::Exists { name }) if name == "ops")),
        "{results:?}"
    );
    assert_eq!(
        a.list_operators().await.unwrap(),
        b.list_operators().await.unwrap()
    );

    // A subject deleted on one replica is gone on the other.
    a.put_subject_key_if_absent(&key("pat_001", "kek-1", b"k"))
        .await
        .unwrap();
    let deletion = b.delete_subject("pat_001").await.unwrap();
    assert_eq!(deletion.call_ids, ["c1"]);
    assert_eq!(deletion.keys, 1);
    assert!(a.get_record("r1").await.unwrap().is_none());
    assert_eq!(a.subject_key("pat_001").await.unwrap(), None);

    // Both replicas purging at once delete every expired record exactly once between them.
    let now = T0 + 1_000;
    for n in 0..300u64 {
        let mut row = record(&format!("x{n:03}"), &format!("c{n}"), "s", "transcript", T0);
        row.meta.expires_at = now - n % 10;
        a.put_record(&row).await.unwrap();
    }
    let (sa, sb) = (a.clone(), b.clone());
    let ta = tokio::spawn(async move { sa.purge_expired_records(now, 7).await });
    let tb = tokio::spawn(async move { sb.purge_expired_records(now, 7).await });
    let (pa, pb) = (ta.await.unwrap().unwrap(), tb.await.unwrap().unwrap());
    let total =
        pa.get("transcript").copied().unwrap_or(0) + pb.get("transcript").copied().unwrap_or(0);
    assert_eq!(total, 300, "{pa:?} {pb:?}");
    assert_eq!(a.count_expired_records(now).await.unwrap(), BTreeMap::new());
    a.database().drop_schema().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_racing_to_remove_or_demote_admins_keep_one() {
    let Some((a, b)) = replicas("replicas_last_admin").await else {
        return;
    };
    two_handles_racing_keep_one_admin(Arc::new(a.clone()), Arc::new(b), 40).await;
    a.database().drop_schema().await.unwrap();
}

#[tokio::test]
async fn postgres_errors_are_generic() {
    let Some(database) = testing::database("pg_errors_generic").await else {
        return;
    };
    let store = PgRecordStore::new(database.clone());
    store.ping().await.unwrap();
    // Deletions are final by crypto-shredding: never a scrub to retry.
    assert_eq!(
        store.delete_subject("nobody").await.unwrap(),
        SubjectDeletion::default()
    );
    database.drop_schema().await.unwrap();
    // The tables are gone: every operation fails without showing SQL.
    let err = store.get_record("r1").await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert!(!err.to_string().to_lowercase().contains("select"), "{err}");
    assert!(err.source().is_some());
    let err = store
        .add_operator(&operator("a", "admin", None))
        .await
        .unwrap_err();
    assert!(matches!(err, OperatorStoreError::Store(_)), "{err:?}");
    assert!(!err.to_string().to_lowercase().contains("insert"), "{err}");
    database.pool().close().await;
    assert!(store.ping().await.is_err());
    let shown = format!("{store:?}");
    assert!(shown.contains(database.schema()), "{shown}");
}

/// `read_operators` lists what `open` wrote without touching the files: no mode change, no
/// new file, even for a database readable by others (which `open` would have chmod-ed).
#[tokio::test]
async fn read_operators_changes_nothing() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(RECORDS_DB_FILE_NAME);
    let store = SqliteRecordStore::open(&path).await.unwrap();
    store
        .add_operator(&operator("alice", "admin", None))
        .await
        .unwrap();
    // While the runtime holds it open (its -wal/-shm exist), it is read through them.
    let open_files = std::fs::read_dir(dir.path()).unwrap().count();
    let ops = SqliteRecordStore::read_operators(&path).await.unwrap();
    assert_eq!(ops.len(), 1);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), open_files);
    store.close().await;
    drop(store);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let listing = |dir: &Path| -> Vec<(String, u32)> {
        let mut all: Vec<(String, u32)> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| {
                let mode = e.metadata().unwrap().permissions().mode() & 0o777;
                (e.file_name().to_string_lossy().into_owned(), mode)
            })
            .collect();
        all.sort();
        all
    };
    let before = listing(dir.path());
    let bytes = std::fs::read(&path).unwrap();
    let ops = SqliteRecordStore::read_operators(&path).await.unwrap();
    assert_eq!(ops, [operator("alice", "admin", None)]);
    assert_eq!(listing(dir.path()), before);
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    // Nothing is created for a missing file, and a file without the table is an error.
    let missing = dir.path().join("missing.db");
    assert!(SqliteRecordStore::read_operators(&missing).await.is_err());
    assert!(!missing.exists());
    let other = dir.path().join("other.db");
    std::fs::write(&other, b"").unwrap();
    assert!(SqliteRecordStore::read_operators(&other).await.is_err());
}
