//! Unit tests of the audit event model, chain, checkpoints and verifier.

use super::*;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::json;

use crate::canonical::canonical_json;

fn key() -> AuditKey {
    AuditKey::from_bytes(vec![9u8; 32]).unwrap()
}

fn event(i: u64) -> AuditEvent {
    AuditEvent {
        agent: Some("bank".into()),
        call_id: Some(format!("call-{}", i % 7)),
        caller: Some("***4567".into()),
        function: Some("transfer_funds".into()),
        arguments: Some(json!({"to": "acct-1", "amount": i, "memo": "q\"\\\n\u{1}é"})),
        outcome: Some(Outcome::Ok),
        ..AuditEvent::new(AuditKind::ToolCalled, 1_700_000_000_000 + i)
    }
}

fn chain_of(n: u64) -> Vec<AuditRecord> {
    let mut chain = Chain::genesis();
    (0..n).map(|i| chain.append(event(i))).collect()
}

/// Re-link every record from `start` (an index) on, as an attacker who knows the scheme
/// (but not the key) would after rewriting a record.
fn rehash_from(records: &mut [AuditRecord], start: usize) {
    for i in start..records.len() {
        if i > 0 {
            records[i].prev_hash = records[i - 1].hash.clone();
        }
        records[i].hash = chain_hash(&records[i].prev_hash, records[i].seq, &records[i].event);
    }
}

fn broken(seq: u64, problem: ChainProblem) -> VerifyReport {
    VerifyReport::Broken { seq, problem }
}

/// `append_canonical` hands back exactly the text that was hashed and that sinks store, and
/// links the chain exactly as `append` does.
#[test]
fn append_canonical_returns_the_hashed_text() {
    let mut plain = Chain::genesis();
    let mut with_text = Chain::genesis();
    for i in 0..5 {
        let expected = plain.append(event(i));
        let (record, canonical) = with_text.append_canonical(event(i));
        assert_eq!(record, expected);
        assert_eq!(canonical, canonical_event_string(record.seq, &record.event));
        assert_eq!(
            chain_hash(&record.prev_hash, record.seq, &record.event),
            record.hash
        );
    }
}

#[test]
fn clean_chain_of_1000_verifies() {
    let records = chain_of(1000);
    assert_eq!(records[0].seq, 1);
    assert_eq!(records[0].prev_hash, GENESIS_HASH);
    assert_eq!(records[999].seq, 1000);
    let k = key();
    let checkpoints: Vec<_> = records
        .iter()
        .filter(|r| r.seq % 100 == 0)
        .map(|r| Checkpoint::sign(&k, r.seq, &r.hash, 1))
        .collect();
    assert_eq!(
        verify(records.clone(), &checkpoints, Some(&k), 0),
        VerifyReport::Ok {
            records: 1000,
            last_seq: Some(1000),
            checkpoints_checked: 10
        }
    );
    // Without the key, checkpoints cannot be authenticated and are not used.
    assert_eq!(
        verify(records, &checkpoints, None, 1),
        VerifyReport::Ok {
            records: 1000,
            last_seq: Some(1000),
            checkpoints_checked: 0
        }
    );
    assert_eq!(
        verify(Vec::new(), &[], None, 0),
        VerifyReport::Ok {
            records: 0,
            last_seq: None,
            checkpoints_checked: 0
        }
    );
}

#[test]
fn hash_matches_its_definition() {
    let e = event(3);
    let canonical = canonical_event(7, &e);
    let mut h = Sha256::new();
    h.update(GENESIS_HASH.as_bytes());
    h.update(&canonical);
    assert_eq!(chain_hash(GENESIS_HASH, 7, &e), to_hex(&h.finalize()));
    assert_eq!(chain_hash(GENESIS_HASH, 7, &e).len(), 64);
    // The sequence number and the previous hash are both bound.
    assert_ne!(
        chain_hash(GENESIS_HASH, 8, &e),
        chain_hash(GENESIS_HASH, 7, &e)
    );
    let other_prev = "1".repeat(64);
    assert_ne!(
        chain_hash(&other_prev, 7, &e),
        chain_hash(GENESIS_HASH, 7, &e)
    );
}

#[test]
fn canonical_form_is_sorted_and_stable() {
    let mut e = AuditEvent::new(AuditKind::AuthFailed, 5);
    e.source = Some("10.0.0.1".into());
    e.arguments = Some(json!({"b": [1, {"z": 1, "a": null}], "a": "x\ty"}));
    let text = canonical_event_string(2, &e);
    assert_eq!(
        text,
        r#"{"arguments":{"a":"x\ty","b":[1,{"a":null,"z":1}]},"kind":"auth_failed","seq":2,"source":"10.0.0.1","time_ms":5}"#
    );
    // Null arguments count as absent, so what is stored reads back identically.
    let mut null_args = AuditEvent::new(AuditKind::Lockout, 1);
    null_args.arguments = Some(Value::Null);
    assert_eq!(
        canonical_event(1, &null_args),
        canonical_event(1, &AuditEvent::new(AuditKind::Lockout, 1))
    );
    let mut chain = Chain::genesis();
    assert_eq!(chain.append(null_args).event.arguments, None);
    // canonical_json sorts any value.
    assert_eq!(
        canonical_json(&json!({"b": 1, "a": {"d": "\u{7f}", "c": "\u{1f}"}})),
        "{\"a\":{\"c\":\"\\u001f\",\"d\":\"\u{7f}\"},\"b\":1}"
    );
}

#[test]
fn canonical_round_trips_exactly() {
    for record in chain_of(20) {
        let text = canonical_event_string(record.seq, &record.event);
        // Same bytes whatever order serde_json would use for maps.
        let reparsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(canonical_json(&reparsed), text);
        let (seq, back) = parse_canonical_event(&text).unwrap();
        assert_eq!((seq, &back), (record.seq, &record.event));

        let line = record.to_json_line();
        assert!(!line.contains('\n'));
        assert_eq!(AuditRecord::from_json_line(&line).unwrap(), record);
        let reparsed: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(canonical_json(&reparsed), line);
    }
    let cp = Checkpoint::sign(&key(), 4, &"a".repeat(64), 99);
    assert_eq!(Checkpoint::from_json_line(&cp.to_json_line()).unwrap(), cp);
}

#[test]
fn awkward_numbers_and_text_round_trip() {
    let mut e = AuditEvent::new(AuditKind::Payment, u64::MAX);
    e.arguments = Some(json!({
        "floats": [0.1 + 0.2, 1e300, -0.0, 5e-324, 150.0, -1.5e-7],
        "ints": [u64::MAX, i64::MIN, 0],
        "text": "\u{2028}\u{7f}\u{0}\u{1b}😀 \\ \"",
        "": {"": null},
    }));
    let mut chain = Chain::new(u64::MAX - 1, GENESIS_HASH);
    let record = chain.append(e);
    let text = canonical_event_string(record.seq, &record.event);
    let (seq, back) = parse_canonical_event(&text).unwrap();
    assert_eq!(seq, record.seq);
    assert_eq!(canonical_event_string(seq, &back), text);
    assert_eq!(chain_hash(&record.prev_hash, seq, &back), record.hash);
    let line = record.to_json_line();
    let back = AuditRecord::from_json_line(&line).unwrap();
    assert_eq!(back.to_json_line(), line);
    assert!(verify([back], &[], None, record.seq).is_ok());
}

#[test]
fn non_canonical_text_is_refused() {
    let record = chain_of(1).remove(0);
    let text = canonical_event_string(1, &record.event);
    let line = record.to_json_line();
    for bad in [
        text.replacen(':', ": ", 1),
        text.replacen("{", "{\"agent\":null,", 1)
            .replacen(",\"agent\":\"bank\"", "", 1),
        format!("{text} "),
        text.replacen("\"seq\":1,", "", 1),
        text.replacen("\"kind\"", "\"extra\":1,\"kind\"", 1),
        "[]".to_owned(),
        "not json".to_owned(),
    ] {
        assert!(parse_canonical_event(&bad).is_err(), "{bad}");
    }
    for bad in [
        line.replacen(':', ": ", 1),
        format!("{line}\n"),
        line.replacen("\"seq\":1", "\"seq\":1,\"x\":2", 1),
        line.replacen("}", ",\"outcome\":\"ok\"}", 1),
    ] {
        assert!(AuditRecord::from_json_line(&bad).is_err(), "{bad}");
    }
    let cp = Checkpoint::sign(&key(), 4, &"a".repeat(64), 99).to_json_line();
    assert!(Checkpoint::from_json_line(&cp.replacen(',', " ,", 1)).is_err());
}

#[test]
fn edited_field_is_modified_at_its_seq() {
    let clean = chain_of(50);
    let edits: [fn(&mut AuditEvent); 10] = [
        |e| e.outcome = Some(Outcome::Refused),
        |e| e.time_ms += 1,
        |e| e.kind = AuditKind::Payment,
        |e| e.caller = None,
        |e| e.arguments = Some(json!({"to": "acct-666"})),
        // The records-access fields are hashed like every other field.
        |e| e.operator = Some("mallory".into()),
        |e| e.role = Some("admin".into()),
        |e| e.record = Some("rec_x".into()),
        |e| e.subject = Some("sub_0".into()),
        |e| e.purpose = Some("curiosity".into()),
    ];
    for edit in edits {
        let mut records = clean.clone();
        edit(&mut records[19].event);
        assert_eq!(
            verify(records, &[], None, 0),
            broken(20, ChainProblem::Modified)
        );
    }
    // Editing the stored hash or the sequence number is caught too.
    let mut records = clean.clone();
    records[9].hash = "f".repeat(64);
    assert_eq!(
        verify(records, &[], None, 0),
        broken(10, ChainProblem::Modified)
    );
    let mut records = clean.clone();
    records[9].seq = 40;
    assert_eq!(
        verify(records, &[], None, 0),
        broken(10, ChainProblem::Modified)
    );
    let mut records = clean;
    records[0].event.agent = None;
    assert_eq!(
        verify(records, &[], None, 0),
        broken(1, ChainProblem::Modified)
    );
}

#[test]
fn deleted_record_is_missing() {
    let mut records = chain_of(30);
    records.remove(11);
    assert_eq!(
        verify(records, &[], None, 0),
        broken(12, ChainProblem::Missing)
    );
    let mut records = chain_of(30);
    records.remove(0);
    assert_eq!(
        verify(records, &[], None, 0),
        broken(1, ChainProblem::Missing)
    );
    // Deleting and re-linking the next record is no better: the seq gap remains.
    let mut records = chain_of(30);
    records.remove(11);
    rehash_from(&mut records, 11);
    assert_eq!(
        verify(records, &[], None, 0),
        broken(12, ChainProblem::Missing)
    );
}

#[test]
fn swapped_records_are_reordered() {
    let mut records = chain_of(30);
    records.swap(14, 15);
    assert_eq!(
        verify(records, &[], None, 0),
        broken(15, ChainProblem::Reordered)
    );
    let mut records = chain_of(30);
    records.swap(3, 20);
    assert_eq!(
        verify(records, &[], None, 0),
        broken(4, ChainProblem::Reordered)
    );
    // A duplicated record makes the sequence go backwards.
    let mut records = chain_of(30);
    let dup = records[6].clone();
    records.insert(7, dup);
    assert_eq!(
        verify(records, &[], None, 0),
        broken(7, ChainProblem::Reordered)
    );
    // A rewritten and re-hashed record breaks its successor's link.
    let mut records = chain_of(30);
    records[5].event.outcome = Some(Outcome::Refused);
    rehash_from(&mut records[5..6], 0);
    assert_eq!(
        verify(records, &[], None, 0),
        broken(7, ChainProblem::Reordered)
    );
    // Record 1 must link to the genesis hash.
    let mut records = chain_of(3);
    records[0].prev_hash = "1".repeat(64);
    rehash_from(&mut records, 0);
    records[0].hash = chain_hash(&records[0].prev_hash, 1, &records[0].event);
    rehash_from(&mut records, 1);
    assert_eq!(
        verify(records, &[], None, 0),
        broken(1, ChainProblem::Reordered)
    );
}

#[test]
fn truncated_tail_after_checkpoint() {
    let k = key();
    let mut records = chain_of(30);
    let checkpoints: Vec<_> = [10, 20]
        .iter()
        .map(|&s: &u64| Checkpoint::sign(&k, s, &records[s as usize - 1].hash, 1))
        .collect();
    records.truncate(15);
    assert_eq!(
        verify(records.clone(), &checkpoints, Some(&k), 0),
        broken(
            16,
            ChainProblem::TruncatedAfterCheckpoint { checkpoint_seq: 20 }
        )
    );
    // Everything gone.
    assert_eq!(
        verify(Vec::new(), &checkpoints, Some(&k), 0),
        broken(
            1,
            ChainProblem::TruncatedAfterCheckpoint { checkpoint_seq: 20 }
        )
    );
    // Records after the last checkpoint are beyond what checkpoints can attest.
    let mut records = chain_of(30);
    records.truncate(20);
    assert!(verify(records, &checkpoints, Some(&k), 0).is_ok());
}

#[test]
fn forged_checkpoint_is_detected() {
    let k = key();
    let records = chain_of(30);
    let mut cp = Checkpoint::sign(&k, 10, &records[9].hash, 1);
    cp.mac = cp.mac.replacen(
        &cp.mac[..2],
        if &cp.mac[..2] == "00" { "01" } else { "00" },
        1,
    );
    assert_eq!(
        verify(records.clone(), &[cp], Some(&k), 0),
        broken(10, ChainProblem::CheckpointForged)
    );
    // Signed by another key.
    let other = Checkpoint::sign(&AuditKey::generate(), 10, &records[9].hash, 1);
    assert_eq!(
        verify(records.clone(), &[other], Some(&k), 0),
        broken(10, ChainProblem::CheckpointForged)
    );
    // Altered time or hash; garbage MAC.
    let mut altered = Checkpoint::sign(&k, 10, &records[9].hash, 1);
    altered.time_ms = 2;
    assert_eq!(
        verify(records.clone(), &[altered], Some(&k), 0),
        broken(10, ChainProblem::CheckpointForged)
    );
    let mut garbage = Checkpoint::sign(&k, 10, &records[9].hash, 1);
    garbage.mac = "zz".into();
    assert_eq!(
        verify(records.clone(), &[garbage], Some(&k), 0),
        broken(10, ChainProblem::CheckpointForged)
    );
    // A forged checkpoint beyond the end is forged, not a truncation.
    let beyond = Checkpoint::sign(&AuditKey::generate(), 40, &"a".repeat(64), 1);
    assert_eq!(
        verify(records, &[beyond], Some(&k), 0),
        broken(40, ChainProblem::CheckpointForged)
    );
}

#[test]
fn rewritten_and_rehashed_chain_is_caught_by_checkpoint() {
    let k = key();
    let clean = chain_of(30);
    let checkpoints: Vec<_> = [10, 20, 30]
        .iter()
        .map(|&s: &u64| Checkpoint::sign(&k, s, &clean[s as usize - 1].hash, 1))
        .collect();
    let mut records = clean.clone();
    records[13].event.outcome = Some(Outcome::Refused);
    rehash_from(&mut records, 13);
    // Without the key the rewrite is consistent...
    assert!(verify(records.clone(), &checkpoints, None, 0).is_ok());
    // ...the next signed checkpoint catches it.
    assert_eq!(
        verify(records, &checkpoints, Some(&k), 0),
        broken(20, ChainProblem::CheckpointMismatch)
    );
    // Rewriting the checkpointed record itself.
    let mut records = clean;
    records[9].event.reason = Some("x".into());
    rehash_from(&mut records, 9);
    assert_eq!(
        verify(records, &checkpoints, Some(&k), 0),
        broken(10, ChainProblem::CheckpointMismatch)
    );
}

#[test]
fn from_starts_in_the_middle() {
    let k = key();
    let records = chain_of(40);
    let cp10 = Checkpoint::sign(&k, 10, &records[9].hash, 1);
    let cp30 = Checkpoint::sign(&k, 30, &records[29].hash, 1);
    let all = [cp10.clone(), cp30.clone()];
    assert_eq!(
        verify(records.clone(), &all, Some(&k), 11),
        VerifyReport::Ok {
            records: 30,
            last_seq: Some(40),
            checkpoints_checked: 2
        }
    );
    // Only the records from `from` on need to be given.
    assert_eq!(
        verify(records[20..].to_vec(), &all, Some(&k), 21),
        VerifyReport::Ok {
            records: 20,
            last_seq: Some(40),
            checkpoints_checked: 1
        }
    );
    // Problems before `from` are out of range.
    let mut early = records.clone();
    early[3].event.kind = AuditKind::Payment;
    assert!(verify(early.clone(), &[], None, 5).is_ok());
    assert_eq!(
        verify(early, &[], None, 4),
        broken(4, ChainProblem::Modified)
    );
    // The anchor checkpoint at from-1 binds the first record's link.
    let mut rewritten = records.clone();
    rewritten[10].prev_hash = "e".repeat(64);
    rehash_from(&mut rewritten[10..11], 0);
    rehash_from(&mut rewritten, 11);
    assert_eq!(
        verify(
            rewritten[10..].to_vec(),
            std::slice::from_ref(&cp10),
            Some(&k),
            11
        ),
        broken(11, ChainProblem::CheckpointMismatch)
    );
    // Without an anchor checkpoint the first link is trusted.
    assert!(verify(rewritten[10..].to_vec(), &[], Some(&k), 11).is_ok());
    // A forged anchor.
    let mut forged = cp10;
    forged.time_ms += 1;
    assert_eq!(
        verify(records[10..].to_vec(), &[forged], Some(&k), 11),
        broken(10, ChainProblem::CheckpointForged)
    );
    // Missing first record of the range.
    assert_eq!(
        verify(records[12..].to_vec(), &[], None, 12),
        broken(12, ChainProblem::Missing)
    );
    // Beyond the end: nothing to check, unless a checkpoint says otherwise.
    assert!(verify(records.clone(), &[], Some(&k), 100).is_ok());
    assert_eq!(
        verify(records[..25].to_vec(), &[cp30], Some(&k), 21),
        broken(
            26,
            ChainProblem::TruncatedAfterCheckpoint { checkpoint_seq: 30 }
        )
    );
}

#[test]
fn unreadable_record_is_modified() {
    let records = chain_of(5);
    let mut v = Verifier::new(&[], None, 0);
    v.push(&records[0]);
    v.push(&records[1]);
    v.push_unreadable(None);
    assert!(v.is_settled());
    v.push(&records[3]);
    assert_eq!(v.finish(), broken(3, ChainProblem::Modified));
    // Before the range, an unreadable record is out of scope; inside it, it is modified.
    let mut v = Verifier::new(&[], None, 3);
    v.push_unreadable(Some(2));
    v.push_unreadable(None);
    v.push(&records[2]);
    v.push_unreadable(None);
    assert_eq!(v.finish(), broken(4, ChainProblem::Modified));
    let mut v = Verifier::new(&[], None, 3);
    v.push_unreadable(Some(3));
    assert_eq!(v.finish(), broken(3, ChainProblem::Modified));
}

#[test]
fn chain_resumes() {
    let records = chain_of(10);
    let mut chain = Chain::resume(Some((5, records[4].hash.clone())));
    assert_eq!(chain.next_seq(), 6);
    assert_eq!(chain.last_hash(), records[4].hash);
    assert_eq!(chain.append(event(5)), records[5]);
    assert_eq!(Chain::resume(None), Chain::default());
    assert_eq!(Chain::new(0, GENESIS_HASH), Chain::genesis());
}

#[test]
fn problem_names_and_sentences() {
    let all = [
        (ChainProblem::Modified, "modified"),
        (ChainProblem::Missing, "missing"),
        (ChainProblem::Reordered, "reordered"),
        (
            ChainProblem::TruncatedAfterCheckpoint { checkpoint_seq: 7 },
            "truncated",
        ),
        (ChainProblem::CheckpointForged, "checkpoint_forged"),
        (ChainProblem::CheckpointMismatch, "checkpoint_mismatch"),
    ];
    for (problem, name) in all {
        assert_eq!(problem.as_str(), name);
        assert!(problem.to_string().len() > 20);
    }
    assert!(ChainProblem::TruncatedAfterCheckpoint { checkpoint_seq: 7 }
        .to_string()
        .contains('7'));
    let report = broken(12, ChainProblem::Missing).to_string();
    assert!(report.contains("12") && report.contains("missing"));
    assert!(verify(chain_of(3), &[], None, 0)
        .to_string()
        .starts_with("OK: 3 records"));
}

#[test]
fn keys() {
    assert_eq!(
        AuditKey::from_bytes(vec![1; 31]).unwrap_err(),
        AuditKeyError::TooShort { len: 31 }
    );
    assert_eq!(
        AuditKey::from_base64("not base64!").unwrap_err(),
        AuditKeyError::NotBase64
    );
    assert_eq!(
        AuditKey::from_base64(&STANDARD.encode([0u8; 16])).unwrap_err(),
        AuditKeyError::TooShort { len: 16 }
    );
    let bytes = vec![0xABu8; 48];
    let a = AuditKey::from_base64(&format!(" {}\n", STANDARD.encode(&bytes))).unwrap();
    let b = AuditKey::from_base64(&URL_SAFE_NO_PAD.encode(&bytes)).unwrap();
    let cp = Checkpoint::sign(&a, 3, "abc", 4);
    assert_eq!(cp.mac.len(), 64);
    assert!(cp.verify(&b));
    assert!(!cp.verify(&AuditKey::generate()));
    assert_ne!(
        Checkpoint::sign(&AuditKey::generate(), 3, "abc", 4),
        Checkpoint::sign(&AuditKey::generate(), 3, "abc", 4)
    );
    let dbg = format!("{a:?}");
    assert!(
        !dbg.contains("171") && !dbg.to_lowercase().contains("abab"),
        "{dbg}"
    );
    assert!(AuditKeyError::TooShort { len: 3 }
        .to_string()
        .contains("openssl rand"));
}

/// A record line and checkpoint written by the code before kinds and outcomes were typed (and
/// before keys and canonical JSON were unified), checked independently with Python's `json`,
/// `hashlib` and `hmac`. Audit files written then must keep verifying, byte for byte.
#[test]
fn records_and_checkpoints_written_before_still_verify() {
    const LINE: &str = concat!(
        r#"{"event":{"agent":"bank","arguments":{"amount":12.5,"memo":"q\"\\\n\u0001é","n":[1,null,true],"to":"acct-1"},"#,
        r#""call_id":"call-7","caller":"***4567","function":"transfer_funds","kind":"tool_called","outcome":"failed","#,
        r#""reason":"handler_error","request_id":"req-1","source":"10.0.0.1","time_ms":1700000000123},"#,
        r#""hash":"81ad95d8800dddeb5b6d85883d0b547aac51abd42eda708a29b2f1f03b9f5920","#,
        r#""prev_hash":"abababababababababababababababababababababababababababababababab","seq":42}"#,
    );
    const CHECKPOINT: &str = concat!(
        r#"{"hash":"81ad95d8800dddeb5b6d85883d0b547aac51abd42eda708a29b2f1f03b9f5920","#,
        r#""mac":"3a97eb67c47efd8f3675ef9a6ea904edb1ea428805069c02baf078f3f7ba89dc","#,
        r#""seq":42,"time_ms":1700000000999}"#,
    );
    let record = AuditRecord::from_json_line(LINE).unwrap();
    assert_eq!(record.event.kind, AuditKind::ToolCalled);
    assert_eq!(record.event.outcome, Some(Outcome::Failed));
    assert_eq!(record.to_json_line(), LINE);
    assert_eq!(
        chain_hash(&record.prev_hash, record.seq, &record.event),
        "81ad95d8800dddeb5b6d85883d0b547aac51abd42eda708a29b2f1f03b9f5920"
    );
    // The same event built with the typed API chains to the same hash.
    let mut chain = Chain::new(42, "ab".repeat(32));
    let rebuilt = chain.append(AuditEvent {
        agent: Some("bank".into()),
        request_id: Some("req-1".into()),
        call_id: Some("call-7".into()),
        caller: Some("***4567".into()),
        function: Some("transfer_funds".into()),
        arguments: Some(
            json!({"to": "acct-1", "amount": 12.5, "memo": "q\"\\\n\u{1}é", "n": [1, null, true]}),
        ),
        outcome: Some(Outcome::Failed),
        reason: Some("handler_error".into()),
        source: Some("10.0.0.1".into()),
        ..AuditEvent::new(AuditKind::ToolCalled, 1_700_000_000_123)
    });
    assert_eq!(rebuilt, record);

    // The checkpoint MAC, pinned for the key bytes 0..32.
    let key = AuditKey::from_bytes((0u8..32).collect()).unwrap();
    let checkpoint = Checkpoint::from_json_line(CHECKPOINT).unwrap();
    assert!(checkpoint.verify(&key));
    assert_eq!(
        Checkpoint::sign(&key, 42, &record.hash, 1_700_000_000_999),
        checkpoint
    );
    assert!(!checkpoint.verify(&AuditKey::from_bytes(vec![0; 32]).unwrap()));
    assert_eq!(
        verify([record], &[checkpoint], Some(&key), 42),
        VerifyReport::Ok {
            records: 1,
            last_seq: Some(42),
            checkpoints_checked: 1
        }
    );
}

#[test]
fn oversized_arguments_keep_a_prefix_and_the_hash_of_the_whole() {
    let small = serde_json::json!({"note": "hi"});
    assert_eq!(bounded_arguments(small.clone(), 64), small);
    let big = serde_json::json!({"note": "é".repeat(10_000)});
    let whole = crate::canonical::canonical_json(&big);
    let bounded = bounded_arguments(big, 2_048);
    assert_eq!(bounded["truncated"], true);
    assert_eq!(bounded["bytes"], whole.len());
    let prefix = bounded["prefix"].as_str().expect("prefix");
    assert!(prefix.len() <= 512 && whole.starts_with(prefix), "{prefix}");
    let digest = Sha256::digest(whole.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(bounded["sha256"], hex);
    assert!(crate::canonical::canonical_json(&bounded).len() < 2_048);
}
