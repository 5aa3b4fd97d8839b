//! The records service against a real SQLite records database and audit trail in a temporary
//! directory, with a manual clock; the race of two replicas over the last admin also runs on
//! PostgreSQL when `VOXGUARD_TEST_POSTGRES_URL` is set (skipped, saying so, otherwise).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use voxguard_guard::{AuditKind, AuditRecord, Clock, ManualClock, Outcome};
use voxguard_store::{
    AuditSink, Durability, OperatorChange, OperatorStore, RecordStore, SqliteAuditLog,
    SqliteRecordStore, StoredRecord,
};

use super::*;
use crate::audit::Auditor;

const KEY_A: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const KEY_B: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

struct Harness {
    dir: tempfile::TempDir,
    clock: ManualClock,
    audit: Arc<SqliteAuditLog>,
    store: Arc<SqliteRecordStore>,
}

impl Harness {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let audit = Arc::new(
            SqliteAuditLog::open_in_dir(dir.path(), Durability::Normal, None, 100)
                .await
                .expect("audit"),
        );
        let store = Arc::new(
            SqliteRecordStore::open_in_dir(dir.path())
                .await
                .expect("records store"),
        );
        Self {
            dir,
            clock: ManualClock::new(1_800_000_000),
            audit,
            store,
        }
    }

    fn records_with(&self, key: &str, previous: Option<&str>, modes: Compliance) -> Records {
        self.records_on(self.store.clone(), key, previous, modes)
    }

    /// A records service on `store`, auditing to the harness's trail.
    fn records_on(
        &self,
        store: Arc<dyn RecordsBackend>,
        key: &str,
        previous: Option<&str>,
        modes: Compliance,
    ) -> Records {
        let config = RecordsConfig::new(store, key, previous).expect("config");
        let clock: Arc<dyn Clock> = Arc::new(self.clock.clone());
        let auditor = Auditor::new(
            Some(self.audit.clone() as Arc<dyn AuditSink>),
            clock,
            voxguard_server::Metrics::new(),
            None,
            None,
        );
        Records::with_auditor(config, auditor, modes, None)
    }

    fn records(&self) -> Records {
        self.records_with(KEY_A, None, Compliance::NONE)
    }

    async fn audit(&self) -> Vec<AuditRecord> {
        self.audit.records(0).await.expect("audit read back")
    }
}

fn actor() -> Actor {
    Actor {
        operator: "dana".into(),
        role: "compliance".into(),
        source: Some("127.0.0.1".into()),
        request_id: None,
    }
}

#[tokio::test]
async fn a_record_is_redacted_then_encrypted_and_reads_back_audited() {
    let h = Harness::new().await;
    let records = h.records();
    let transcript = json!([
        {"role": "user", "content": "my card is 4111 1111 1111 1111 and my pin is 4321"},
        {"role": "assistant", "content": "Thanks, Maria."}
    ]);
    let meta = records
        .store(
            "clinic",
            "call-1",
            Some("pat_001"),
            RecordKind::Transcript,
            &transcript,
        )
        .await
        .expect("stored");
    assert_eq!(
        (meta.subject.as_str(), meta.kind.as_str()),
        ("pat_001", "transcript")
    );
    assert_eq!(meta.expires_at, 1_800_000_000 + 30 * 86_400);
    // At rest: neither the card, the PIN nor the plain phrase is in the stored bytes.
    let stored = h.store.get_record(&meta.id).await.unwrap().unwrap();
    let raw = String::from_utf8_lossy(&stored.body);
    assert!(!raw.contains("Maria") && !raw.contains("4111"), "{raw}");
    let (_, content) = records
        .read(&actor(), &meta.id, "continuity of care", false)
        .await
        .expect("read");
    let text = content.to_string();
    assert!(text.contains("Thanks, Maria."), "{text}");
    assert!(
        !text.contains("4111 1111") && !text.contains("4321"),
        "PCI data is never stored: {text}"
    );
    let audit = h.audit().await;
    let read = audit.last().expect("an event").event.clone();
    assert_eq!(read.kind, AuditKind::RecordAccessed);
    assert_eq!(read.operator.as_deref(), Some("dana"));
    assert_eq!(read.purpose.as_deref(), Some("continuity of care"));
    assert_eq!(read.record.as_deref(), Some(meta.id.as_str()));
    let subject = read.subject.expect("masked subject");
    assert!(subject.starts_with("sub_") && !subject.contains("pat_001"));
}

#[tokio::test]
async fn swapped_and_tampered_ciphertexts_are_refused() {
    let h = Harness::new().await;
    let records = h.records();
    let a = records
        .store(
            "a",
            "call-1",
            Some("pat_001"),
            RecordKind::Summary,
            &json!("alpha"),
        )
        .await
        .unwrap();
    let b = records
        .store(
            "a",
            "call-1",
            Some("pat_001"),
            RecordKind::Summary,
            &json!("bravo"),
        )
        .await
        .unwrap();
    let body_b = h.store.get_record(&b.id).await.unwrap().unwrap().body;
    // Row a now holds b's ciphertext: same subject and kind, other record id.
    h.store.delete_record(&a.id).await.unwrap();
    h.store
        .put_record(&StoredRecord {
            meta: a.clone(),
            body: body_b.clone(),
        })
        .await
        .unwrap();
    let swapped = records.read(&actor(), &a.id, "audit", false).await;
    assert!(
        matches!(swapped, Err(RecordsError::Crypto(_))),
        "{swapped:?}"
    );
    // A flipped byte in b's own row.
    let mut flipped = body_b;
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    h.store.delete_record(&b.id).await.unwrap();
    h.store
        .put_record(&StoredRecord {
            meta: b.clone(),
            body: flipped,
        })
        .await
        .unwrap();
    let tampered = records.read(&actor(), &b.id, "audit", false).await;
    let error = tampered.unwrap_err();
    assert!(matches!(error, RecordsError::Crypto(_)));
    assert!(
        error.to_string().contains("did not decrypt"),
        "a clear error: {error}"
    );
}

#[tokio::test]
async fn hipaa_mode_also_masks_every_date() {
    let h = Harness::new().await;
    let plain = h.records();
    let hipaa = h.records_with(KEY_A, None, Compliance::HIPAA);
    let text = "Born 1984-03-12, seen on March 12, 1984 and 03/12/1984; SSN 123-45-6789, phone (555) 123-4567; balance $150.00.";
    assert!(plain.redact_text(text).contains("March 12, 1984"));
    let strict = hipaa.redact_text(text);
    for date in ["1984-03-12", "March 12, 1984", "03/12/1984", "6789", "4567"] {
        assert!(!strict.contains(date), "{strict}");
    }
    assert!(
        plain.redact_text(text).contains("***-**-6789"),
        "the default keeps the last four"
    );
    assert!(strict.contains("$150.00"), "amounts stay: {strict}");
}

#[tokio::test]
async fn deleting_a_subject_shreds_its_key_and_leaves_a_tombstone_without_personal_data() {
    let h = Harness::new().await;
    let records = h.records();
    let kept = records
        .store(
            "a",
            "call-9",
            Some("pat_002"),
            RecordKind::Summary,
            &json!("other patient"),
        )
        .await
        .unwrap();
    let gone = records
        .store(
            "a",
            "call-1",
            Some("pat_001"),
            RecordKind::Summary,
            &json!("zebra phrase"),
        )
        .await
        .unwrap();
    records
        .store(
            "a",
            "call-1",
            None,
            RecordKind::ToolLog,
            &json!({"function": "verify_patient"}),
        )
        .await
        .unwrap();
    let report = records.delete_subject(&actor(), "pat_001").await.unwrap();
    assert_eq!(report.records.get("summary"), Some(&1));
    assert_eq!(
        report.records.get("tool_log"),
        Some(&1),
        "the call's own records go too"
    );
    assert!(report.keys >= 1);
    assert!(matches!(
        records.read(&actor(), &gone.id, "x", false).await,
        Err(RecordsError::NotFound)
    ));
    assert!(h.store.subject_key("pat_001").await.unwrap().is_none());
    assert!(records.read(&actor(), &kept.id, "x", false).await.is_ok());
    let tombstone = h
        .audit()
        .await
        .into_iter()
        .find(|r| r.event.kind == AuditKind::SubjectDeleted)
        .expect("tombstone");
    let text = serde_json::to_string(&tombstone.event).unwrap();
    assert!(
        !text.contains("pat_001") && !text.contains("zebra"),
        "{text}"
    );
}

#[tokio::test]
async fn retention_purges_by_kind_with_the_clock_and_is_audited_with_counts_only() {
    let h = Harness::new().await;
    let records = h.records();
    for kind in [RecordKind::Transcript, RecordKind::Summary] {
        records
            .store("a", "call-1", Some("pat_001"), kind, &json!("text"))
            .await
            .unwrap();
    }
    h.clock.advance(Duration::from_secs(31 * 86_400));
    let dry = records.purge(&actor(), true).await.unwrap();
    assert_eq!(dry.get("transcript"), Some(&1));
    let counts = records.purge(&actor(), false).await.unwrap();
    assert_eq!(counts.get("transcript"), Some(&1));
    assert_eq!(counts.get("summary"), None, "summaries are kept a year");
    let again = records.purge(&actor(), false).await.unwrap();
    assert!(again.values().all(|n| *n == 0), "idempotent: {again:?}");
    let purged: Vec<_> = h
        .audit()
        .await
        .into_iter()
        .filter(|r| r.event.kind == AuditKind::RecordsPurged)
        .collect();
    assert_eq!(purged.len(), 2);
    assert_eq!(
        purged[0].event.arguments.as_ref().unwrap()["transcript"],
        Value::from(1)
    );
}

#[tokio::test]
async fn rotating_the_records_key_rewraps_keys_and_old_records_still_read() {
    let h = Harness::new().await;
    let old = h.records_with(KEY_A, None, Compliance::NONE);
    let meta = old
        .store(
            "a",
            "call-1",
            Some("pat_001"),
            RecordKind::Summary,
            &json!("kept across rotation"),
        )
        .await
        .unwrap();
    let body_before = h.store.get_record(&meta.id).await.unwrap().unwrap().body;
    let rotating = h.records_with(KEY_B, Some(KEY_A), Compliance::NONE);
    assert!(rotating.read(&actor(), &meta.id, "x", false).await.is_ok());
    assert_eq!(rotating.rotate(&actor()).await.unwrap(), 1);
    assert_eq!(rotating.rotate(&actor()).await.unwrap(), 0, "nothing left");
    let body_after = h.store.get_record(&meta.id).await.unwrap().unwrap().body;
    assert_eq!(body_before, body_after, "bodies are not re-encrypted");
    let only_new = h.records_with(KEY_B, None, Compliance::NONE);
    let (_, content) = only_new.read(&actor(), &meta.id, "x", false).await.unwrap();
    assert_eq!(content, json!("kept across rotation"));
    let only_old = h.records_with(KEY_A, None, Compliance::NONE);
    assert!(only_old.read(&actor(), &meta.id, "x", false).await.is_err());
    drop(h.dir);
}

#[tokio::test]
async fn a_purpose_is_redacted_before_it_is_audited() {
    let h = Harness::new().await;
    let records = h.records();
    let meta = records
        .store(
            "clinic",
            "call-1",
            Some("pat_001"),
            RecordKind::Summary,
            &json!("alpha"),
        )
        .await
        .expect("stored");
    // Free text typed by an operator: staff paste what they have at hand.
    let purpose = "dispute on card 4111 1111 1111 1111, DOB 1984-03-12, callback 555-867-5309";
    records
        .read(&actor(), &meta.id, purpose, false)
        .await
        .expect("read");
    records
        .export_subject(&actor(), "pat_001", purpose)
        .await
        .expect("export");
    let audit = h.audit().await;
    let purposes: Vec<String> = audit
        .iter()
        .filter_map(|r| r.event.purpose.clone())
        .collect();
    assert_eq!(purposes.len(), 2, "{purposes:?}");
    for audited in &purposes {
        assert!(audited.starts_with("dispute on card"), "{audited}");
        for secret in ["4111 1111 1111", "1984-03-12", "867-5309"] {
            assert!(!audited.contains(secret), "{secret} audited: {audited}");
        }
    }
}

#[tokio::test]
async fn two_admins_removing_or_demoting_each_other_at_once_leave_one_admin() {
    let h = Harness::new().await;
    let records = h.records();
    let cli = Actor::cli("test");
    for round in 0..10 {
        let (a, b) = (format!("a{round}"), format!("b{round}"));
        for name in [&a, &b] {
            records
                .add_operator(&cli, name, ADMIN_ROLE, false)
                .await
                .expect("admin added");
        }
        // Each is the other's second admin: checked one by one, both changes are allowed.
        if round % 2 == 0 {
            let _ = tokio::join!(
                records.remove_operator(&cli, &a),
                records.remove_operator(&cli, &b)
            );
        } else {
            let _ = tokio::join!(
                records.set_operator_role(&cli, &a, "auditor"),
                records.set_operator_role(&cli, &b, "auditor")
            );
        }
        let admins = h
            .store
            .count_operators_with_role(ADMIN_ROLE)
            .await
            .expect("count");
        assert_eq!(admins, 1, "round {round}: the last admin is kept");
        // Back to no admin for the next round.
        for name in [&a, &b] {
            let _ = h.store.remove_operator(name, None).await;
        }
    }
}

/// Two records services on one store share no lock in memory — two replicas on PostgreSQL, or
/// the runtime and the `voxguard users` CLI on one SQLite file — so the last-admin rule must
/// hold in the store: in every round, two admins removing (even rounds) or demoting (odd
/// rounds) each other through different handles leave exactly one admin, and the loser is
/// told it was the last admin.
async fn two_handles_keep_the_last_admin(one: Records, two: Records) {
    let cli = Actor::cli("test");
    for round in 0..20 {
        let (a, b) = (format!("a{round}"), format!("b{round}"));
        for name in [&a, &b] {
            one.add_operator(&cli, name, ADMIN_ROLE, false)
                .await
                .expect("admin added");
        }
        let (first, second, cli_a, cli_b) = (one.clone(), two.clone(), cli.clone(), cli.clone());
        let (name_a, name_b) = (a.clone(), b.clone());
        let (ra, rb) = if round % 2 == 0 {
            let ta = tokio::spawn(async move { first.remove_operator(&cli_a, &name_a).await });
            let tb = tokio::spawn(async move { second.remove_operator(&cli_b, &name_b).await });
            (ta.await.unwrap(), tb.await.unwrap())
        } else {
            let ta = tokio::spawn(async move {
                first
                    .set_operator_role(&cli_a, &name_a, "auditor")
                    .await
                    .map(drop)
            });
            let tb = tokio::spawn(async move {
                second
                    .set_operator_role(&cli_b, &name_b, "auditor")
                    .await
                    .map(drop)
            });
            (ta.await.unwrap(), tb.await.unwrap())
        };
        let admins = one
            .backend()
            .count_operators_with_role(ADMIN_ROLE)
            .await
            .expect("count");
        assert_eq!(admins, 1, "round {round}: {ra:?} {rb:?}");
        let refused = [&ra, &rb]
            .iter()
            .filter(|r| matches!(r, Err(RecordsError::Operator(OperatorProblem::LastAdmin))))
            .count();
        assert!(
            refused == 1 && (ra.is_ok() || rb.is_ok()),
            "round {round}: one change is made, the other refused: {ra:?} {rb:?}"
        );
        // Back to no admin for the next round (the store's own rule is not asked for).
        for name in [&a, &b] {
            let _ = one.backend().remove_operator(name, None).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runtime_and_the_cli_on_one_sqlite_file_keep_the_last_admin() {
    let h = Harness::new().await;
    // A second handle on the same file, as `voxguard users` opens it from another process.
    let cli_store = Arc::new(
        SqliteRecordStore::open_in_dir(h.dir.path())
            .await
            .expect("second handle"),
    );
    let runtime = h.records();
    let cli = h.records_on(cli_store, KEY_A, None, Compliance::NONE);
    two_handles_keep_the_last_admin(runtime, cli).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_postgres_keep_the_last_admin() {
    let Some(first) = voxguard_store::postgres::testing::database("records_last_admin").await
    else {
        return;
    };
    let url = std::env::var(voxguard_store::postgres::testing::URL_VAR).expect("url");
    let second = voxguard_store::postgres::PgDatabase::connect(&url, first.schema(), 4)
        .await
        .expect("second pool");
    let h = Harness::new().await;
    let one = h.records_on(
        Arc::new(voxguard_store::PgRecordStore::new(first.clone())),
        KEY_A,
        None,
        Compliance::NONE,
    );
    let two = h.records_on(
        Arc::new(voxguard_store::PgRecordStore::new(second)),
        KEY_A,
        None,
        Compliance::NONE,
    );
    two_handles_keep_the_last_admin(one, two).await;
    first.drop_schema().await.expect("schema dropped");
}

/// An audit sink that, when an operator change is put on record as about to happen, first
/// has "another replica" demote the admin it is armed with: the moment between the records
/// service's own last-admin check and the store's change.
struct Interfering {
    inner: Arc<SqliteAuditLog>,
    other_replica: Arc<SqliteRecordStore>,
    armed: std::sync::Mutex<Option<String>>,
}

#[async_trait::async_trait]
impl AuditSink for Interfering {
    async fn append(
        &self,
        event: voxguard_guard::AuditEvent,
    ) -> Result<AuditRecord, voxguard_store::StoreError> {
        let about_to_change =
            event.kind == AuditKind::OperatorChanged && event.outcome == Some(Outcome::Ok);
        let victim = self.armed.lock().unwrap().take_if(|_| about_to_change);
        if let Some(victim) = victim {
            let change = self
                .other_replica
                .set_operator_role(&victim, "auditor", Some(ADMIN_ROLE))
                .await?;
            assert_eq!(change, OperatorChange::Done, "the other admin is demoted");
        }
        self.inner.append(event).await
    }

    async fn flush(&self) -> Result<(), voxguard_store::StoreError> {
        self.inner.flush().await
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }
}

#[tokio::test]
async fn a_change_the_store_refuses_after_it_was_audited_is_on_record_as_refused() {
    let h = Harness::new().await;
    let sink = Arc::new(Interfering {
        inner: h.audit.clone(),
        other_replica: Arc::new(
            SqliteRecordStore::open_in_dir(h.dir.path())
                .await
                .expect("second handle"),
        ),
        armed: std::sync::Mutex::new(None),
    });
    let config = RecordsConfig::new(h.store.clone(), KEY_A, None).expect("config");
    let clock: Arc<dyn Clock> = Arc::new(h.clock.clone());
    let auditor = Auditor::new(
        Some(sink.clone() as Arc<dyn AuditSink>),
        clock,
        voxguard_server::Metrics::new(),
        None,
        None,
    );
    let records = Records::with_auditor(config, auditor, Compliance::NONE, None);
    let cli = Actor::cli("test");
    for name in ["ada", "bo", "cy"] {
        records
            .add_operator(&cli, name, ADMIN_ROLE, false)
            .await
            .expect("admin added");
    }
    records
        .set_operator_role(&cli, "cy", "auditor")
        .await
        .expect("three admins: one may go");

    // Two admins when checked; bo is demoted elsewhere before ada's demotion reaches the store.
    *sink.armed.lock().unwrap() = Some("bo".into());
    let err = records
        .set_operator_role(&cli, "ada", "auditor")
        .await
        .expect_err("ada is the last admin by then");
    assert!(
        matches!(err, RecordsError::Operator(OperatorProblem::LastAdmin)),
        "{err:?}"
    );
    assert_eq!(err.to_string(), OperatorProblem::LastAdmin.to_string());
    // The same for a removal: cy is promoted again, then demoted elsewhere meanwhile.
    records
        .set_operator_role(&cli, "cy", ADMIN_ROLE)
        .await
        .expect("promoted");
    *sink.armed.lock().unwrap() = Some("cy".into());
    let err = records
        .remove_operator(&cli, "ada")
        .await
        .expect_err("ada is the last admin by then");
    assert!(
        matches!(err, RecordsError::Operator(OperatorProblem::LastAdmin)),
        "{err:?}"
    );
    let roles: Vec<(String, String)> = h
        .store
        .list_operators()
        .await
        .expect("listed")
        .into_iter()
        .map(|op| (op.name, op.role))
        .collect();
    assert_eq!(
        roles,
        [("ada", "admin"), ("bo", "auditor"), ("cy", "auditor")]
            .map(|(n, r)| (n.to_string(), r.to_string()))
    );

    // The trail says each refused change was about to happen, then that it was refused.
    let changes: Vec<(String, Option<Outcome>, Option<String>)> = h
        .audit()
        .await
        .into_iter()
        .map(|r| r.event)
        .filter(|e| e.kind == AuditKind::OperatorChanged)
        .map(|e| {
            let operator = e.arguments.as_ref().expect("arguments")["operator"].clone();
            (
                format!("{} {}", e.function.unwrap_or_default(), operator),
                e.outcome,
                e.reason,
            )
        })
        .collect();
    let refused = |what: &str| {
        [
            (what.to_string(), Some(Outcome::Ok), None),
            (
                what.to_string(),
                Some(Outcome::Refused),
                Some("last_admin".to_string()),
            ),
        ]
    };
    assert_eq!(
        changes[changes.len() - 5..changes.len() - 3],
        refused("set_role \"ada\"")
    );
    assert_eq!(changes[changes.len() - 2..], refused("remove \"ada\""));
}

#[tokio::test]
async fn a_read_that_does_not_decrypt_is_on_record_too() {
    let h = Harness::new().await;
    let records = h.records();
    let meta = records
        .store(
            "clinic",
            "call-1",
            Some("pat_001"),
            RecordKind::Summary,
            &json!("alpha"),
        )
        .await
        .expect("stored");
    // Someone with write access to records.db flips a byte of the body.
    let mut body = h.store.get_record(&meta.id).await.unwrap().unwrap().body;
    body[30] ^= 1;
    h.store.delete_record(&meta.id).await.unwrap();
    h.store
        .put_record(&StoredRecord {
            meta: meta.clone(),
            body,
        })
        .await
        .unwrap();
    let before = h.audit().await.len();
    let read = records.read(&actor(), &meta.id, "audit", false).await;
    assert!(matches!(read, Err(RecordsError::Crypto(_))), "{read:?}");
    let export = records.export_subject(&actor(), "pat_001", "audit").await;
    assert!(matches!(export, Err(RecordsError::Crypto(_))), "{export:?}");
    let audit = h.audit().await;
    let attempts: Vec<_> = audit[before..].iter().map(|r| &r.event).collect();
    assert_eq!(attempts.len(), 2, "both attempts are audited: {attempts:?}");
    for (event, kind) in attempts
        .iter()
        .zip([AuditKind::RecordAccessed, AuditKind::RecordExported])
    {
        assert_eq!(event.kind, kind);
        assert_eq!(event.outcome, Some(voxguard_guard::Outcome::Failed));
        assert_eq!(event.reason.as_deref(), Some("record_unreadable"));
        assert_eq!(event.record.as_deref(), Some(meta.id.as_str()));
        assert_eq!(event.operator.as_deref(), Some("dana"));
    }
}

#[tokio::test]
async fn the_trail_is_read_from_its_end_or_from_a_time_and_not_from_a_json_lines_file() {
    let h = Harness::new().await;
    let (records, dana) = (h.records(), actor());
    let view = || records.audit_reader(&dana, "test_view", json!({}));
    // Record n (1 to 9) is a view opened n seconds after the start.
    for _ in 0..9 {
        h.clock.advance(Duration::from_secs(1));
        assert!(view().await.expect("on record").is_some());
    }
    let reader = view().await.expect("on record").expect("readable");
    assert_eq!(
        reader.end().await.expect("end"),
        10,
        "the view is on record first"
    );
    let seqs = |read: Vec<AuditRecord>| read.iter().map(|r| r.seq).collect::<Vec<_>>();
    assert_eq!(seqs(reader.read(4, 3).await.expect("read")), [4, 5, 6]);
    assert_eq!(seqs(reader.read(9, 1_500).await.expect("read")), [9, 10]);
    let since = |secs: u64| records.audit_since(&dana, (1_800_000_000 + secs) * 1000, 3);
    assert_eq!(
        seqs(since(5).await.expect("read").expect("readable")),
        [5, 6, 7]
    );
    assert_eq!(since(60).await.expect("read"), Some(Vec::new()));

    let file: Arc<dyn AuditSink> = Arc::new(
        voxguard_store::JsonlAuditLog::open(
            h.dir.path().join("audit.jsonl"),
            Durability::Normal,
            None,
            0,
        )
        .await
        .expect("jsonl"),
    );
    let clock: Arc<dyn Clock> = Arc::new(h.clock.clone());
    let auditor = Auditor::new(
        Some(file),
        clock,
        voxguard_server::Metrics::new(),
        None,
        None,
    );
    let config = RecordsConfig::new(h.store.clone(), KEY_A, None).expect("config");
    let on_file = Records::with_auditor(config, auditor, Compliance::NONE, None);
    assert!(on_file
        .audit_reader(&actor(), "console_live", json!({}))
        .await
        .expect("on record")
        .is_none());
    assert_eq!(
        on_file
            .audit_since(&actor(), 0, 10)
            .await
            .expect("on record"),
        None
    );
    assert_eq!(
        on_file
            .audit_page(&actor(), 1, 10)
            .await
            .expect("on record"),
        None
    );
}

#[tokio::test]
async fn without_a_key_a_development_key_is_kept_beside_the_data_and_production_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let none = |_: &str| None::<String>;
    let first = RecordsConfig::open_from_lookup(dir.path(), false, none)
        .await
        .unwrap()
        .expect("records on by default");
    assert!(first.uses_dev_key());
    let records = Records::open(first, None, Compliance::NONE);
    let meta = records
        .store(
            "a",
            "call-1",
            Some("pat_001"),
            RecordKind::Summary,
            &json!("survives"),
        )
        .await
        .unwrap();
    // A restart reads what the last run wrote.
    let again = RecordsConfig::open_from_lookup(dir.path(), false, none)
        .await
        .unwrap()
        .unwrap();
    let (_, content) = Records::open(again, None, Compliance::NONE)
        .read(&actor(), &meta.id, "x", false)
        .await
        .unwrap();
    assert_eq!(content, json!("survives"));
    let production =
        RecordsConfig::open_from_lookup(tempfile::tempdir().unwrap().path(), true, none).await;
    assert!(matches!(
        production,
        Err(RecordsConfigError::MissingKeyInProduction)
    ));
    let off = RecordsConfig::open_from_lookup(dir.path(), false, |name| {
        (name == "VOXGUARD_RECORDS").then(|| "off".to_string())
    })
    .await
    .unwrap();
    assert!(off.is_none());
}

#[tokio::test]
async fn hipaa_refuses_to_start_without_records_or_on_the_development_key() {
    use voxguard_guard::{BasicCredentials, KeyRing, TokenKey};
    use voxguard_server::ServerConfig;
    let agent = || {
        crate::Agent::builder("clinic")
            .prompt_text("You help patients.")
            .compliance(Compliance::HIPAA)
            .build()
            .unwrap()
    };
    let runtime = || {
        let mut config = ServerConfig::new(BasicCredentials::new(
            "user",
            "a-password-long-enough-for-tests",
        ));
        config.port = 0;
        crate::Runtime::new(config, KeyRing::new(TokenKey::generate())).agent(agent())
    };
    let error = runtime().bind().await.err().expect("no records");
    assert!(
        error.to_string().contains("VOXGUARD_RECORDS_KEY"),
        "{error}"
    );
    let dir = tempfile::tempdir().unwrap();
    let dev = RecordsConfig::open_from_lookup(dir.path(), false, |_| None)
        .await
        .unwrap()
        .unwrap();
    let error = runtime().records(dev).bind().await.err().expect("dev key");
    assert!(
        matches!(
            error,
            crate::RuntimeError::Compliance(ComplianceError::DevKey)
        ),
        "{error}"
    );
    let keyed = RecordsConfig::open_from_lookup(dir.path(), false, |name| {
        (name == "VOXGUARD_RECORDS_KEY").then(|| KEY_A.to_string())
    })
    .await
    .unwrap()
    .unwrap();
    assert!(runtime().records(keyed).bind().await.is_ok());
}
