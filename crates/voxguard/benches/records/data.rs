//! The data of the records benchmark: a realistic ≈ 20 KB `call_log` transcript with things
//! to redact, and old calls' records (10 per call) written straight into the store.
//!
//! It owns what the records look like; it must not time anything (the callers do), and its
//! bodies stand in for sealed records that nobody reads back.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use voxguard::guard::{DataKey, RecordsKeyring};
use voxguard::store::{RecordMeta, RecordStore, SqliteRecordStore, StoredKey, StoredRecord};
use voxguard::{Actor, RecordKind, Retention};

use crate::stats::measure;
use crate::{BenchResult, AGENT, CONCURRENCY, RECORDS_KEY, RECORDS_PER_CALL};

/// A bank call's `call_log` as the platform posts it, ≈ 20 KB of JSON, with card numbers,
/// phone numbers, dates, an e-mail address and a PIN for the redactor to find.
pub(crate) fn transcript() -> Value {
    const TURNS: [(&str, &str); 12] = [
        ("assistant", "Thank you for calling Example Bank. My name is Ava. How can I help you today?"),
        ("user", "Hi, yes, I'm calling because there's a charge on my card I don't recognise. The card number is 4111 1111 1111 1111."),
        ("assistant", "I'm sorry to hear that. Before we look at the charge I need to verify your identity. Could you tell me your date of birth and the PIN on your account?"),
        ("user", "Sure, my date of birth is March 12, 1984, and my PIN is 4321. Actually, wait, it might be written as 03/12/1984 on the account."),
        ("assistant", "Thank you, you're verified. I can see a charge of $249.99 on 2026-11-02 at an online electronics store. Is that the one?"),
        ("user", "Yes, that's it. I never ordered anything there. Can you call me back at +1 (555) 867-5309 if you need anything, or my work number 555-123-4567?"),
        ("assistant", "Of course. I will open a dispute for this charge and block the card ending in 1111. A new card will be sent to the address on file. Shall I also send a confirmation to your e-mail address?"),
        ("user", "Yes please, it's jane.doe@example.com. And can you tell me when the new card will arrive? My other card, 5500 0000 0000 0004, still works, right?"),
        ("assistant", "Your other card is not affected. The new card should arrive within five to seven business days, by November 14, 2026 at the latest. Is there anything else I can help you with?"),
        ("user", "My account number is 0012345678 and my social security number is 078-05-1120, in case you need them for the dispute form."),
        ("assistant", "Thank you, I don't need those for the dispute. Please never share your full social security number on a call. The dispute reference is DSP-884213."),
        ("user", "Great, thank you so much for your help. Have a nice day."),
    ];
    let mut log = Vec::new();
    let mut size = 0;
    let mut at: u64 = 1_795_000_000_000_000;
    let mut i = 0;
    while size < 20_000 {
        let (role, content) = TURNS[i % TURNS.len()];
        let entry = json!({
            "role": role,
            "content": content,
            "start_timestamp": at,
            "end_timestamp": at + 3_200_000,
            "latency": 412,
            "utterance_latency": 388,
        });
        size += entry.to_string().len() + 1;
        at += 4_000_000;
        log.push(entry);
        i += 1;
    }
    Value::Array(log)
}

/// An old call's records as the store holds them: (kind, body size), 10 per call.
pub(crate) fn call_kinds(transcript_len: usize) -> [(RecordKind, usize); RECORDS_PER_CALL] {
    let mut kinds = [(RecordKind::ToolLog, 400); RECORDS_PER_CALL];
    kinds[0] = (RecordKind::Transcript, transcript_len);
    kinds[1] = (RecordKind::Summary, 1_000);
    kinds
}

/// `len` pseudo-random bytes: bodies that stand in for sealed records nobody reads back.
pub(crate) fn filler(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}

/// The `n`th record id with `prefix`.
pub(crate) fn record_id(prefix: &str, n: usize) -> String {
    // Letters only, like the records service's own ids.
    let mut tail = String::new();
    let mut v = n;
    for _ in 0..10 {
        tail.push(char::from(b'a' + (v % 26) as u8));
        v /= 26;
    }
    format!("rec_{prefix}{tail}")
}

/// Old calls' records, 10 per call, all created at `created_at` and kept for their kinds'
/// default retention (at most 365 days): created 400 days ago, every one has expired. Without
/// a `subject`, each call's records belong to its call-subject (`call:<call id>`).
pub(crate) struct OldCalls<'a> {
    pub(crate) prefix: &'a str,
    pub(crate) subject: Option<&'a str>,
    pub(crate) created_at: u64,
    pub(crate) bodies: Vec<(RecordKind, Vec<u8>)>,
}

impl OldCalls<'_> {
    /// The `n`th record: call `n / 10`, kind by `n % 10`.
    pub(crate) fn record(&self, n: usize) -> StoredRecord {
        let call = n / RECORDS_PER_CALL;
        let (kind, body) = &self.bodies[n % RECORDS_PER_CALL];
        let call_id = format!("call-{}-{call:06}", self.prefix);
        let subject = match self.subject {
            Some(subject) => subject.to_string(),
            None => format!("call:{call_id}"),
        };
        let retention = Retention::default();
        StoredRecord {
            meta: RecordMeta {
                id: record_id(self.prefix, n),
                agent: AGENT.to_string(),
                call_id,
                subject,
                kind: kind.as_str().to_string(),
                created_at: self.created_at,
                expires_at: retention.expires_at(*kind, self.created_at),
                size: body.len() as u64,
                key_id: "bench".to_string(),
            },
            body: body.clone(),
        }
    }
}

/// Write `n` records of `calls` (and each call subject's wrapped key) with `put_record`,
/// 8 writers at a time.
pub(crate) async fn put_old_calls(
    store: Arc<SqliteRecordStore>,
    calls: Arc<OldCalls<'static>>,
    n: usize,
) -> BenchResult<Duration> {
    let keyring = Arc::new(RecordsKeyring::from_text(RECORDS_KEY, None)?);
    let (stat, _) = measure(n, CONCURRENCY, move |i| {
        let (store, calls, keyring) = (store.clone(), calls.clone(), keyring.clone());
        async move {
            let record = calls.record(i);
            if i % RECORDS_PER_CALL == 0 && calls.subject.is_none() {
                let wrapped = keyring.wrap(&record.meta.subject, &DataKey::generate());
                store
                    .put_subject_key_if_absent(&StoredKey {
                        subject: record.meta.subject.clone(),
                        kek_id: wrapped.kek_id,
                        blob: wrapped.blob,
                    })
                    .await?;
            }
            store.put_record(&record).await?;
            Ok(())
        }
    })
    .await?;
    Ok(stat.elapsed)
}

/// The operator the benchmark reads and deletes as.
pub(crate) fn actor() -> Actor {
    Actor {
        operator: "bench".into(),
        role: "compliance".into(),
        source: None,
        request_id: None,
    }
}

/// The size of the records database and its write-ahead log in `dir`, in MiB.
pub(crate) fn file_mib(dir: &std::path::Path) -> f64 {
    ["records.db", "records.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len() as f64)
        .sum::<f64>()
        / (1024.0 * 1024.0)
}
