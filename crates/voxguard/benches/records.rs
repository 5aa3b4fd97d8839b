//! Conversation-records benchmarks (issue 10, item 9): what keeping records costs, and whether
//! the retention purge disturbs the tool-call fast path.
//!
//! Everything runs against real SQLite databases (`SqliteRecordStore`, `SqliteAuditLog`,
//! `SqliteStore`) in a temporary directory, with a tokio multi-threaded runtime of one worker
//! per core, and prints one Markdown table on stdout (progress goes to stderr):
//!
//! 1. **Write path**: `Records::store` of a ≈ 20 KB `call_log` transcript (redact, encrypt,
//!    store), each record for a new call so each also makes the call's data key; sequential and
//!    with 8 concurrent writers. Then its parts on their own: redaction (+ JSON encoding), the
//!    data key of a new subject (lookup, generate, wrap, insert), sealing, and the insert.
//! 2. **Reads**: `Records::read` (fetch, unwrap the data key, open, parse, audit), sequential
//!    and with 8 concurrent readers.
//! 3. **Purge under load**: 100,000 expired records (10,000 old calls of 10 records each,
//!    written with `RecordStore::put_record` and pre-sealed bodies) purged by `Records::purge`
//!    while a bound `Runtime` serves SWAIG tool calls on an agent with records on over real
//!    HTTP, at a fixed rate from a separate client thread; tool-call latency before, during and
//!    after the purge, measured from each request's scheduled start (no coordinated omission).
//! 4. **Subject deletion**: `Records::delete_subject` of a subject with 10,000 records.
//!
//! The purge is `Records::purge` on a handle that shares the runtime's records database (the
//! same pool) and audit trail, the call the runtime's maintenance task makes. The runtime's own
//! purge cannot be started on demand, and moving the runtime's clock past retention would also
//! expire the calls' function tokens and sessions, so the old records are written with creation
//! dates 400 days in the past instead.
//!
//! Run with `cargo bench -p voxguard --bench records` (about 90 s once compiled);
//! `RECORDS_BENCH_QUICK=1` runs a smaller smoke version. Figures go to `BENCHMARKS.md`. This
//! bench must not assert on timings: it only checks that each step did what it claims.
#![forbid(unsafe_code)]

#[path = "records/data.rs"]
mod data;
#[path = "records/fast_path.rs"]
mod fast_path;
#[path = "records/stats.rs"]
mod stats;

use std::error::Error;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::runtime::Runtime as TokioRuntime;
use voxguard::guard::{
    seal, BasicCredentials, DataKey, KeyRing, RecordAad, RecordsKeyring, SecretKey, TokenKey,
};
use voxguard::prelude::*;
use voxguard::server::ServerConfig;
use voxguard::store::{
    AuditSink, Durability, RecordMeta, RecordStore, SqliteAuditLog, SqliteRecordStore, SqliteStore,
    StoredKey, StoredRecord, DEFAULT_SESSION_TTL,
};
use voxguard::{Compliance, RecordKind, Records, RecordsConfig};

use data::{actor, call_kinds, file_mib, filler, put_old_calls, record_id, transcript, OldCalls};
use fast_path::{agent, load, window, Inserts, Timed, Watched};
use stats::{count, measure, now_unix, show, Table};

/// Every step's error, shown at the end of a failed run.
pub(crate) type BenchResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// The records key (base64 of 32 bytes), as `VOXGUARD_RECORDS_KEY` would hold it.
const RECORDS_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const USER: &str = "bench";
const PASSWORD: &str = "a-long-benchmark-password-0123456789";
const AGENT: &str = "fast";
const ROUTE: &str = "/fast";
const TOOL: &str = "check_order";
/// Concurrent writers and readers in the concurrent cases.
const CONCURRENCY: usize = 8;
/// Records per old call in the purge and deletion data sets: 1 transcript, 1 summary and
/// 8 tool logs.
const RECORDS_PER_CALL: usize = 10;
/// Seconds in a day.
const DAY: u64 = 86_400;

/// How much work each part does.
struct Scale {
    writes: usize,
    parts: usize,
    reads: usize,
    purge_calls: usize,
    subject_calls: usize,
    rate_per_sec: u32,
    warm_up: Duration,
    before: Duration,
    after: Duration,
}

impl Scale {
    fn from_env() -> Self {
        if std::env::var_os("RECORDS_BENCH_QUICK").is_some() {
            Self {
                writes: 200,
                parts: 200,
                reads: 200,
                purge_calls: 500,
                subject_calls: 100,
                rate_per_sec: 100,
                warm_up: Duration::from_secs(1),
                before: Duration::from_secs(2),
                after: Duration::from_secs(1),
            }
        } else {
            Self {
                writes: 2_000,
                parts: 2_000,
                reads: 2_000,
                purge_calls: 10_000,
                subject_calls: 1_000,
                rate_per_sec: 250,
                warm_up: Duration::from_secs(2),
                before: Duration::from_secs(10),
                after: Duration::from_secs(5),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 1, 2 and 4: the records service on its own
// ---------------------------------------------------------------------------------------------

async fn records_service(scale: &Scale, table: &mut Table) -> BenchResult<()> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(SqliteRecordStore::open_in_dir(dir.path()).await?);
    let audit: Arc<dyn AuditSink> = Arc::new(
        SqliteAuditLog::open_in_dir(
            dir.path(),
            Durability::Normal,
            Some(SecretKey::from_bytes(vec![7; 32])?),
            100,
        )
        .await?,
    );
    let sessions = Arc::new(SqliteStore::open_in_dir(dir.path(), DEFAULT_SESSION_TTL).await?);
    let records = Records::open(
        RecordsConfig::new(store.clone(), RECORDS_KEY, None)?,
        Some(audit),
        Compliance::NONE,
    )
    .with_cleanup(
        sessions.clone(),
        sessions,
        Some(&voxguard::guard::KeyRing::new(SecretKey::from_bytes(
            vec![9; 32],
        )?)),
    );
    let transcript = Arc::new(transcript());
    let json_len = transcript.to_string().len();
    let redacted_len = serde_json::to_vec(&records.redact_json(&transcript))?.len();
    eprintln!("transcript: {json_len} bytes of JSON, {redacted_len} bytes once redacted");

    // 1. The write path, whole.
    let store_one = |tag: &'static str| {
        let (records, transcript) = (records.clone(), transcript.clone());
        move |i: usize| {
            let (records, transcript) = (records.clone(), transcript.clone());
            async move {
                let call_id = format!("call-{tag}-{i:06}");
                let meta = records
                    .store(AGENT, &call_id, None, RecordKind::Transcript, &transcript)
                    .await?;
                Ok(meta.id)
            }
        }
    };
    measure(50, 1, store_one("warm")).await?;
    eprintln!("1. Records::store, sequential");
    let (stat, ids) = measure(scale.writes, 1, store_one("seq")).await?;
    table.stat(
        &format!(
            "**`Records::store`**, {}-byte transcript, sequential",
            count(json_len as u64)
        ),
        &stat,
    );
    eprintln!("1. Records::store, {CONCURRENCY} writers");
    let (stat, _) = measure(scale.writes, CONCURRENCY, store_one("con")).await?;
    table.stat(
        &format!("**`Records::store`**, {CONCURRENCY} concurrent writers"),
        &stat,
    );

    // 1. Its parts.
    eprintln!("1. parts");
    let (stat, _) = measure(scale.parts, 1, {
        let (records, transcript) = (records.clone(), transcript.clone());
        move |_| {
            let body = serde_json::to_vec(&records.redact_json(&transcript));
            async move { Ok(body?.len()) }
        }
    })
    .await?;
    table.stat(
        "— redaction and JSON encoding (`redact_json`, `to_vec`)",
        &stat,
    );
    let keyring = Arc::new(RecordsKeyring::from_text(RECORDS_KEY, None)?);
    let (stat, _) = measure(scale.parts, 1, {
        let (store, keyring) = (store.clone(), keyring.clone());
        move |i| {
            let (store, keyring) = (store.clone(), keyring.clone());
            async move {
                let subject = format!("call:call-key-{i:06}");
                if store.subject_key(&subject).await?.is_some() {
                    return Err("a fresh subject already has a key".into());
                }
                let wrapped = keyring.wrap(&subject, &DataKey::generate());
                let stored = store
                    .put_subject_key_if_absent(&StoredKey {
                        subject: subject.clone(),
                        kek_id: wrapped.kek_id,
                        blob: wrapped.blob,
                    })
                    .await?;
                let wrapped = voxguard::guard::WrappedKey {
                    kek_id: stored.kek_id,
                    blob: stored.blob,
                };
                Ok(keyring.unwrap(&subject, &wrapped).is_ok())
            }
        }
    })
    .await?;
    table.stat(
        "— data key of a new call (lookup, generate, wrap, insert, unwrap)",
        &stat,
    );
    let body = Arc::new(serde_json::to_vec(&records.redact_json(&transcript))?);
    let key = Arc::new(DataKey::generate());
    let (stat, sealed) = measure(scale.parts, 1, {
        let (body, key) = (body.clone(), key.clone());
        move |i| {
            let id = record_id("seal", i);
            let aad = RecordAad {
                record_id: &id,
                subject: "call:call-seal",
                kind: "transcript",
            };
            // Only the first body is kept (for the insert below).
            let sealed = seal(&key, &aad, &body).map(|s| (i == 0).then_some(s));
            async move { Ok(sealed?) }
        }
    })
    .await?;
    table.stat("— sealing (XChaCha20-Poly1305)", &stat);
    let sealed = Arc::new(
        sealed
            .into_iter()
            .flatten()
            .next()
            .ok_or("nothing sealed")?,
    );
    let (stat, _) = measure(scale.parts, 1, {
        let (store, sealed) = (store.clone(), sealed.clone());
        move |i| {
            let (store, sealed) = (store.clone(), sealed.clone());
            async move {
                let now = now_unix();
                store
                    .put_record(&StoredRecord {
                        meta: RecordMeta {
                            id: record_id("put", i),
                            agent: AGENT.into(),
                            call_id: format!("call-put-{i:06}"),
                            subject: "call:call-put".into(),
                            kind: "transcript".into(),
                            created_at: now,
                            expires_at: now + 30 * DAY,
                            size: sealed.len() as u64,
                            key_id: "bench".into(),
                        },
                        body: sealed.to_vec(),
                    })
                    .await?;
                Ok(())
            }
        }
    })
    .await?;
    table.stat(
        "— insert (`RecordStore::put_record`, `synchronous=FULL`)",
        &stat,
    );

    // 2. Reads.
    eprintln!("2. Records::read");
    let ids = Arc::new(ids);
    let read_one = {
        let (records, ids) = (records.clone(), ids.clone());
        move |i: usize| {
            let (records, ids) = (records.clone(), ids.clone());
            async move {
                let (_, content) = records
                    .read(&actor(), &ids[i % ids.len()], "benchmark", false)
                    .await?;
                match content.as_array() {
                    Some(log) if !log.is_empty() => Ok(()),
                    _ => Err("a transcript read back empty".into()),
                }
            }
        }
    };
    let (stat, _) = measure(scale.reads, 1, read_one.clone()).await?;
    table.stat("**`Records::read`** (decrypt, audited), sequential", &stat);
    let (stat, _) = measure(scale.reads, CONCURRENCY, read_one).await?;
    table.stat(
        &format!("**`Records::read`**, {CONCURRENCY} concurrent readers"),
        &stat,
    );

    // 4. Deleting a subject with 10,000 records.
    eprintln!("4. Records::delete_subject");
    let subject = "pat_bench_0001";
    let n = scale.subject_calls * RECORDS_PER_CALL;
    // The first record through the service makes the subject's data key; the rest are
    // written directly, as old calls of the same subject (the first of them is the same call).
    records
        .store(
            AGENT,
            "call-subj-000000",
            Some(subject),
            RecordKind::Summary,
            &json!({"s": 1}),
        )
        .await?;
    let calls = Arc::new(OldCalls {
        prefix: "subj",
        subject: Some(subject),
        created_at: now_unix() - DAY,
        bodies: call_kinds(sealed.len())
            .iter()
            .enumerate()
            .map(|(k, (kind, len))| (*kind, filler(*len, k as u64 + 1)))
            .collect(),
    });
    put_old_calls(store.clone(), calls, n - 1).await?;
    let start = Instant::now();
    let report = records.delete_subject(&actor(), subject).await?;
    let took = start.elapsed();
    let deleted: u64 = report.records.values().sum();
    if deleted != n as u64 || report.keys != 1 {
        return Err(format!("deleted {deleted} records and {} keys", report.keys).into());
    }
    table.note(
        &format!(
            "**`Records::delete_subject`**: {} records of {} calls, its key, WAL scrubbed",
            count(n as u64),
            count(scale.subject_calls as u64)
        ),
        deleted,
        took,
        &format!(
            "{} records/s",
            count((deleted as f64 / took.as_secs_f64()) as u64)
        ),
    );
    Ok(())
}

fn purge_under_load(rt: &TokioRuntime, scale: &Scale) -> BenchResult<()> {
    let dir = tempfile::tempdir()?;
    let (store, audit, sessions) = rt.block_on(async {
        Ok::<_, Box<dyn Error + Send + Sync>>((
            Arc::new(SqliteRecordStore::open_in_dir(dir.path()).await?),
            Arc::new(
                SqliteAuditLog::open_in_dir(
                    dir.path(),
                    Durability::Normal,
                    Some(SecretKey::from_bytes(vec![7; 32])?),
                    100,
                )
                .await?,
            ),
            Arc::new(SqliteStore::open_in_dir(dir.path(), DEFAULT_SESSION_TTL).await?),
        ))
    })?;
    let purges = Arc::new(AtomicUsize::new(0));
    let watched = Arc::new(Watched {
        inner: audit.clone(),
        purges: purges.clone(),
    });
    // The runtime's records go through `Timed`, which times each tool-log insert.
    let inserts = Inserts::default();
    let timed = Arc::new(Timed {
        inner: store.clone(),
        inserts: inserts.clone(),
    });
    let keys = KeyRing::new(TokenKey::from_bytes(vec![0x42; 32])?);
    let runtime = Runtime::new(
        ServerConfig::new(BasicCredentials::new(USER, PASSWORD)),
        keys,
    )
    .store(sessions)
    .audit(watched)
    .records(RecordsConfig::new(timed, RECORDS_KEY, None)?)
    .swml_render_limit(None)
    .agent(agent()?);
    let running = rt.block_on(runtime.bind())?;
    let base = format!("http://{}", running.local_addr());
    rt.spawn(running.serve());
    // The runtime purges once at start; the old records go in after that.
    let waited = Instant::now();
    while purges.load(Ordering::SeqCst) == 0 {
        if waited.elapsed() > Duration::from_secs(30) {
            return Err("the runtime's start-up purge never ran".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }

    let n = scale.purge_calls * RECORDS_PER_CALL;
    eprintln!("3. writing {} expired records", count(n as u64));
    let transcript_len = rt.block_on(async {
        let records = Records::open(
            RecordsConfig::new(store.clone(), RECORDS_KEY, None)?,
            None,
            Compliance::NONE,
        );
        let body = serde_json::to_vec(&records.redact_json(&transcript()))?;
        Ok::<_, Box<dyn Error + Send + Sync>>(body.len() + 40)
    })?;
    let calls = Arc::new(OldCalls {
        prefix: "old",
        subject: None,
        created_at: now_unix() - 400 * DAY,
        bodies: call_kinds(transcript_len)
            .iter()
            .enumerate()
            .map(|(k, (kind, len))| (*kind, filler(*len, k as u64 + 11)))
            .collect(),
    });
    let wrote = rt.block_on(put_old_calls(store.clone(), calls, n))?;
    let expired: u64 = rt
        .block_on(store.count_expired_records(now_unix()))?
        .values()
        .sum();
    let size = file_mib(dir.path());
    eprintln!(
        "   {} expired records, {size:.0} MiB, written in {:.1} s",
        count(expired),
        wrote.as_secs_f64()
    );

    let purger = Records::open(
        RecordsConfig::new(store.clone(), RECORDS_KEY, None)?,
        Some(audit as Arc<dyn AuditSink>),
        Compliance::NONE,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let client = load(base, scale.rate_per_sec, stop.clone(), ready_tx);
    ready_rx.recv_timeout(Duration::from_secs(30))?;
    eprintln!("3. fast path at {} calls/s", scale.rate_per_sec);
    std::thread::sleep(scale.warm_up);
    let before = Instant::now();
    std::thread::sleep(scale.before);
    eprintln!("3. purging");
    // `RECORDS_BENCH_PURGE_BATCH=N` purges through the store with N rows per transaction
    // instead of `Records::purge` (`PURGE_BATCH`), to see what the batch size changes.
    let batch: Option<u32> = match std::env::var("RECORDS_BENCH_PURGE_BATCH") {
        Ok(v) => Some(v.parse()?),
        Err(_) => None,
    };
    let purge_start = Instant::now();
    let counts = match batch {
        None => rt.block_on(rt.spawn(async move { purger.purge(&actor(), false).await }))??,
        Some(batch) => {
            let store = store.clone();
            rt.block_on(
                rt.spawn(async move { store.purge_expired_records(now_unix(), batch).await }),
            )??
        }
    };
    let purge_end = Instant::now();
    std::thread::sleep(scale.after);
    stop.store(true, Ordering::SeqCst);
    let samples = client.join().map_err(|_| "the client thread panicked")??;
    let purged: u64 = counts.values().sum();
    if purged != expired {
        return Err(format!("purged {purged} of {expired} expired records").into());
    }
    let kept = rt.block_on(store.count_expired_records(u64::MAX))?;
    let tool_logs = kept.get("tool_log").copied().unwrap_or(0);
    let inserts = inserts.lock().map_err(|_| "poisoned")?.clone();

    let took = purge_end - purge_start;
    let (how, batch) = match batch {
        None => ("`Records::purge`", voxguard::records::PURGE_BATCH),
        Some(batch) => ("`RecordStore::purge_expired_records`", batch),
    };
    println!(
        "\n3. Purge: {} expired records ({size:.0} MiB of database) purged by {how} in **{:.2} s** ({} records/s, {} transactions of {batch}), {} tool calls/s of fast-path load",
        count(purged),
        took.as_secs_f64(),
        count((purged as f64 / took.as_secs_f64()) as u64),
        count(purged.div_ceil(u64::from(batch))),
        scale.rate_per_sec,
    );
    println!("\n| Fast path, `check_order` with records on | calls | not served | p50 | p90 | p99 | p99.9 | max | its tool-log insert: p50 / p99 / max |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut served = 0;
    for (label, from, to) in [
        (
            format!("before the purge ({} s)", scale.before.as_secs()),
            before,
            purge_start,
        ),
        (
            format!("**during the purge** ({:.1} s)", took.as_secs_f64()),
            purge_start,
            purge_end,
        ),
        (
            format!("after the purge ({} s)", scale.after.as_secs()),
            purge_end,
            purge_end + scale.after,
        ),
    ] {
        let (h, failed) = window(&samples, from, to)?;
        let (i, _) = window(
            &inserts
                .iter()
                .map(|&(at, took)| (at, took, true))
                .collect::<Vec<_>>(),
            from,
            to,
        )?;
        served += h.len() - failed;
        println!(
            "| {label} | {} | {} | {} | {} | {} | {} | {} | {} / {} / {} |",
            count(h.len()),
            count(failed),
            show(h.value_at_quantile(0.5)),
            show(h.value_at_quantile(0.9)),
            show(h.value_at_quantile(0.99)),
            show(h.value_at_quantile(0.999)),
            show(h.max()),
            show(i.value_at_quantile(0.5)),
            show(i.value_at_quantile(0.99)),
            show(i.max()),
        );
    }
    let all_served = samples.iter().filter(|s| s.2).count();
    println!(
        "\nTool logs stored by the fast path: {} for {} served calls ({} in the three windows).",
        count(tool_logs),
        count(all_served as u64),
        count(served),
    );
    Ok(())
}

fn main() -> BenchResult<()> {
    let scale = Scale::from_env();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    println!(
        "# Records benchmarks ({} cores, tokio workers: one per core)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut table = Table::default();
    rt.block_on(records_service(&scale, &mut table))?;
    table.print("1, 2, 4. The records service on SQLite (`records.db`, `synchronous=FULL`)");
    purge_under_load(&rt, &scale)?;
    eprintln!("done in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}
