//! Proof of deletion (issue 10, item 5) through the reference clinic agent as a child process:
//! after `DELETE /records/subjects/pat_001`, no file of the data directory — sessions, attempt
//! counters, audit trail, records, their WAL and shm files, anything else — holds the patient's
//! id, phone number, date of birth, name or a phrase of their transcript; the subject's wrapped
//! data key is gone; the audit trail keeps a tombstone without personal data and still
//! verifies; and another patient's records are untouched.
//!
//! It must not help the deletion along: the only write after the flow is the operator's
//! `DELETE`, and the scan reads raw bytes of every file rather than asking the stores.

use std::path::Path;

use crate::util::{clinic_operators, start_clinic_agent, ClinicCall, CLINIC_AUDIT_KEY};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use voxguard::guard::AuditKey;
use voxguard::store::{Durability, RecordStore, SqliteAuditLog, SqliteRecordStore};

const MARIA: &str = "+15557770001";
const AHMED: &str = "+15557770002";
/// Phrases only Maria's conversation contains.
const KNEE: &str = "my knee still clicks on the stairs";
const HERON: &str = "the blue heron entrance";
/// A phrase only Ahmed's conversation contains.
const AHMED_PHRASE: &str = "the inhaler with the green cap";

/// What must not be found anywhere once pat_001 is deleted.
const NEEDLES: &[&str] = &[
    "pat_001",
    MARIA,
    "15557770001",
    "5557770001",
    "1984-03-12",
    "Maria",
    KNEE,
    HERON,
];

/// Every file under `dir` (recursively) that contains `needle`, with the needle's offset.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                stack.extend(entries.filter_map(Result::ok).map(|e| e.path()));
            }
            continue;
        }
        // SQLite may remove a WAL or shm file between listing and reading.
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let needle = needle.as_bytes();
        if let Some(at) = bytes.windows(needle.len()).position(|w| w == needle) {
            found.push(format!("{} @{at}", path.display()));
        }
    }
    found
}

fn scan(dir: &Path, needles: &[&str]) -> Vec<String> {
    needles
        .iter()
        .flat_map(|needle| {
            files_containing(dir, needle)
                .into_iter()
                .map(move |file| format!("{needle:?} in {file}"))
        })
        .collect()
}

fn answers(dob: &str, last_four: &str) -> Value {
    json!({ "dob": dob, "last_four_ssn": last_four })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_deleting_a_patient_no_file_of_the_data_dir_holds_anything_of_theirs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = clinic_operators(
        dir.path(),
        &[
            ("cleo.compliance", "compliance"),
            ("ann.auditor", "auditor"),
        ],
    )
    .await;
    let (compliance, auditor) = (&tokens[0], &tokens[1]);
    let agent = start_clinic_agent(dir.path(), &[]).await;

    // Ahmed calls: his records must survive Maria's deletion.
    let ahmed = ClinicCall::start(&agent, "call-ahmed", AHMED).await;
    ahmed
        .say("verify_patient", answers("1990-11-02", "1234"))
        .await;
    ahmed.say("get_appointments", json!({})).await;
    let (status, _) = ahmed
        .summary(
            "Ahmed asked about his inhaler.",
            json!([{"role": "user", "content": format!("I need {AHMED_PHRASE}.")}]),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // Maria calls twice: a first call with a wrong answer and a hang-up, then a full call.
    let first = ClinicCall::start(&agent, "call-maria-0", MARIA).await;
    first
        .say("verify_patient", answers("1984-12-03", "6789"))
        .await;
    let call = ClinicCall::start(&agent, "call-maria-1", MARIA).await;
    assert_eq!(
        call.say("verify_patient", answers("1984-03-12", "6789"))
            .await,
        "Thank you, Maria. You're verified."
    );
    call.say("get_appointments", json!({})).await;
    // A read-back left pending in the session.
    let (_, reply) = call
        .invoke(
            "reschedule_appointment",
            json!({"appointment_id": "APT-1001", "new_date": "2027-02-01"}),
        )
        .await;
    assert_eq!(reply["error"], "confirmation_required", "{reply}");
    call.say(
        "request_prescription_refill",
        json!({"medication": "metformin"}),
    )
    .await;
    let (status, reply) = call
        .summary(
            &format!("Maria (born 1984-03-12, phone {MARIA}) said {KNEE}."),
            json!([
                {"role": "assistant", "content": "Thank you for calling Example Clinic."},
                {"role": "user", "content": format!("This is Maria. {KNEE}. I come in by {HERON}.")},
                {"role": "user", "content": format!("Call me back at {MARIA}, I was born 1984-03-12.")},
            ]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let (_, listed) = agent
        .records(Method::GET, "/records?subject=pat_001", auditor)
        .await;
    let maria_records: Vec<String> = listed["records"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["id"].as_str().map(str::to_string))
        .collect();
    assert!(maria_records.len() >= 5, "{listed}");

    // The scan can find things: before the deletion the patient id is on disk (record
    // metadata and session state are stored in clear).
    let before = scan(dir.path(), &["pat_001"]);
    assert!(
        !before.is_empty(),
        "the scanner finds the subject id before deletion"
    );

    let (status, deleted) = agent
        .records(Method::DELETE, "/records/subjects/pat_001", compliance)
        .await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    let report = &deleted["deleted"];
    let removed: u64 = report["records"]
        .as_object()
        .map(|kinds| kinds.values().filter_map(Value::as_u64).sum())
        .unwrap_or_default();
    assert!(
        removed >= maria_records.len() as u64,
        "every record of the patient's calls: {report}"
    );
    assert!(report["keys"].as_u64() >= Some(1), "{report}");
    assert!(report["sessions"].as_u64() >= Some(1), "{report}");
    assert!(report["attempt_counters"].as_u64() >= Some(1), "{report}");

    // While the agent runs: nothing left anywhere in the data directory.
    let leaks = scan(dir.path(), NEEDLES);
    assert!(
        leaks.is_empty(),
        "after deletion, while running: {leaks:#?}"
    );
    // The API agrees, and the other patient is untouched.
    let (_, listed) = agent
        .records(Method::GET, "/records?subject=pat_001", auditor)
        .await;
    assert_eq!(listed["records"], json!([]), "{listed}");
    for id in &maria_records {
        let (status, _) = agent
            .records(
                Method::GET,
                &format!("/records/{id}?purpose=check"),
                compliance,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{id}");
    }
    let (_, listed) = agent
        .records(Method::GET, "/records?subject=pat_002", auditor)
        .await;
    let ahmed_records = listed["records"].as_array().cloned().unwrap_or_default();
    assert!(ahmed_records.len() >= 3, "{listed}");
    let summary = ahmed_records
        .iter()
        .find(|r| r["kind"] == "transcript")
        .and_then(|r| r["id"].as_str())
        .expect("Ahmed's transcript");
    let (status, reply) = agent
        .records(
            Method::GET,
            &format!("/records/{summary}?purpose=check"),
            compliance,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert!(reply["content"].to_string().contains(AHMED_PHRASE));
    // Maria can still call and verify (her counters were reset, not her access).
    let again = ClinicCall::start(&agent, "call-maria-2", MARIA).await;
    let (status, reply) = again.invoke("get_appointments", json!({})).await;
    assert_eq!(reply["error"], "verification_required", "{status} {reply}");

    let (status, _) = agent.terminate().await;
    assert!(status.success(), "{status:?}");
    // After a clean shutdown (WAL checkpoints, final flushes): still nothing.
    let leaks = scan(dir.path(), NEEDLES);
    assert!(leaks.is_empty(), "after deletion and shutdown: {leaks:#?}");
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("data dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    for expected in ["voxguard.db", "audit.db", "records.db"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }

    // The wrapped data key is gone (crypto-shredding); Ahmed's is not.
    let store = SqliteRecordStore::open_in_dir(dir.path())
        .await
        .expect("records");
    assert!(store.subject_key("pat_001").await.expect("read").is_none());
    assert!(store
        .subject_key("call:call-maria-1")
        .await
        .expect("read")
        .is_none());
    assert!(store.subject_key("pat_002").await.expect("read").is_some());
    drop(store);

    // The audit trail: a tombstone with counts and a pseudonym, nothing personal, and the
    // chain and its signed checkpoints still verify.
    let key = AuditKey::from_base64(CLINIC_AUDIT_KEY).expect("key");
    let path = dir.path().join(voxguard::store::AUDIT_DB_FILE_NAME);
    let report = SqliteAuditLog::verify_path(&path, Some(&key), 1)
        .await
        .expect("verify");
    assert!(report.is_ok(), "{report}");
    let log = SqliteAuditLog::open(&path, Durability::Normal, None, 0)
        .await
        .expect("audit");
    let events: Vec<_> = log
        .records(1)
        .await
        .expect("records")
        .into_iter()
        .map(|r| r.event)
        .collect();
    let deletions: Vec<_> = events
        .iter()
        .filter(|e| e.kind.as_str() == "subject_deleted")
        .collect();
    // On record before it happens (`requested`), then the tombstone with the counts.
    assert_eq!(deletions.len(), 2, "{deletions:?}");
    assert_eq!(deletions[0].outcome.map(|o| o.as_str()), Some("requested"));
    let tombstones: Vec<_> = deletions
        .into_iter()
        .filter(|e| e.outcome.map(|o| o.as_str()) == Some("ok"))
        .collect();
    assert_eq!(tombstones.len(), 1, "{tombstones:?}");
    let tombstone = tombstones[0];
    assert_eq!(tombstone.operator.as_deref(), Some("cleo.compliance"));
    assert_eq!(tombstone.role.as_deref(), Some("compliance"));
    assert!(
        tombstone
            .subject
            .as_deref()
            .is_some_and(|s| s.starts_with("sub_")),
        "{tombstone:?}"
    );
    assert_eq!(tombstone.arguments.as_ref(), Some(report_of(&deleted)));
    let text = serde_json::to_string(tombstone).expect("json");
    for needle in NEEDLES {
        assert!(
            !text.contains(needle),
            "{needle:?} in the tombstone: {text}"
        );
    }
    log.close().await.expect("close");
}

/// The same flow, looking for what the PHI tools were asked: the medication and the new date
/// went into `tool_called` events as arguments, and the trail is append-only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_deleting_a_patient_the_audit_trail_holds_none_of_their_phi_arguments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = clinic_operators(dir.path(), &[("cleo.compliance", "compliance")]).await;
    let agent = start_clinic_agent(dir.path(), &[]).await;
    let call = ClinicCall::start(&agent, "call-maria-1", MARIA).await;
    call.say("verify_patient", answers("1984-03-12", "6789"))
        .await;
    let (_, reply) = call
        .invoke(
            "reschedule_appointment",
            json!({"appointment_id": "APT-1001", "new_date": "2027-02-01"}),
        )
        .await;
    assert_eq!(reply["error"], "confirmation_required", "{reply}");
    call.say(
        "request_prescription_refill",
        json!({"medication": "metformin"}),
    )
    .await;
    let (status, deleted) = agent
        .records(Method::DELETE, "/records/subjects/pat_001", &tokens[0])
        .await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    agent.terminate().await;
    let leaks = scan(dir.path(), &["metformin", "2027-02-01"]);
    assert!(
        leaks.is_empty(),
        "PHI arguments kept after deletion: {leaks:#?}"
    );
}

fn report_of(deleted: &Value) -> &Value {
    &deleted["deleted"]
}
