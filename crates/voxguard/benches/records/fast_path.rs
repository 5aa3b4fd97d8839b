//! The fast path of the records benchmark: the agent with records on, the audit and store
//! wrappers that observe the runtime (purge events, tool-log insert times), and the open-loop
//! HTTP client that sends tool calls at a fixed rate.
//!
//! It owns the load and what it observes; it must not change what the runtime does: the
//! wrappers only pass calls through, timing or counting them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};
use voxguard::guard::{AuditEvent, AuditKind, AuditRecord};
use voxguard::prelude::*;
use voxguard::store::{
    AuditSink, Operator, OperatorChange, OperatorStore, OperatorStoreError, RecordFilter,
    RecordMeta, RecordStore, SqliteAuditLog, SqliteRecordStore, StoreError, StoredKey,
    StoredRecord, SubjectDeletion,
};

use crate::stats::{histogram, micros};
use crate::{BenchResult, AGENT, PASSWORD, ROUTE, TOOL, USER};

#[derive(Deserialize, JsonSchema)]
pub(crate) struct CheckOrder {
    /// Order number, e.g. ORD-12345.
    #[schemars(regex(pattern = r"^ORD-[0-9]{5,10}$"))]
    pub(crate) order_number: String,
    /// Order amount in dollars, more than 0, at most two decimal places.
    #[schemars(extend("exclusiveMinimum" = 0, "x-currency" = true))]
    pub(crate) amount: f64,
    /// What the caller said about the order, at most 200 characters.
    #[schemars(length(max = 200))]
    pub(crate) note: String,
}

/// The bench agent's `check_order` (token, validation, input guard, rate limits, audit) on an
/// agent with records on, so every answered call also stores an encrypted tool log; without
/// the `requires` flag, so that no PIN verification is needed first.
pub(crate) fn agent() -> BenchResult<Agent> {
    let builder = Agent::builder(AGENT)
        .route(ROUTE)
        .prompt_section("Role", "You are the order desk of Example Shop.");
    let limits = voxguard::AgentLimits {
        per_caller_per_min: 6_000_000,
        global_per_min: 6_000_000,
    };
    Ok(limits
        .apply(builder)
        .tool(Tool::typed(
            TOOL,
            "Tell a caller where their order is",
            |args: CheckOrder, _ctx: CallContext| async move {
                Ok(FunctionResult::new(format!(
                    "Order {} for ${:.2} is on its way. {}",
                    args.order_number,
                    args.amount,
                    args.note.len()
                )))
            },
        ))
        .build()?)
}

/// The audit trail, counting the `records_purged` events that go through it.
pub(crate) struct Watched {
    pub(crate) inner: Arc<SqliteAuditLog>,
    pub(crate) purges: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl AuditSink for Watched {
    async fn append(&self, event: AuditEvent) -> Result<AuditRecord, StoreError> {
        let purge = event.kind == AuditKind::RecordsPurged;
        let stored = self.inner.append(event).await;
        if purge {
            self.purges.fetch_add(1, Ordering::SeqCst);
        }
        stored
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush().await
    }

    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
}

/// When each of the runtime's record inserts started and how long it took.
pub(crate) type Inserts = Arc<Mutex<Vec<(Instant, Duration)>>>;

/// The runtime's records database, timing its `put_record` calls (in this part, the tool logs
/// of the fast path) and passing everything else through.
pub(crate) struct Timed {
    pub(crate) inner: Arc<SqliteRecordStore>,
    pub(crate) inserts: Inserts,
}

#[async_trait::async_trait]
impl RecordStore for Timed {
    async fn put_record(&self, record: &StoredRecord) -> Result<(), StoreError> {
        let start = Instant::now();
        let done = self.inner.put_record(record).await;
        if let Ok(mut inserts) = self.inserts.lock() {
            inserts.push((start, start.elapsed()));
        }
        done
    }
    async fn get_record(&self, id: &str) -> Result<Option<StoredRecord>, StoreError> {
        self.inner.get_record(id).await
    }
    async fn list_records(&self, filter: &RecordFilter) -> Result<Vec<RecordMeta>, StoreError> {
        self.inner.list_records(filter).await
    }
    async fn delete_record(&self, id: &str) -> Result<Option<RecordMeta>, StoreError> {
        self.inner.delete_record(id).await
    }
    async fn subject_key(&self, subject: &str) -> Result<Option<StoredKey>, StoreError> {
        self.inner.subject_key(subject).await
    }
    async fn put_subject_key_if_absent(&self, key: &StoredKey) -> Result<StoredKey, StoreError> {
        self.inner.put_subject_key_if_absent(key).await
    }
    async fn keys_not_under(&self, kek: &str, limit: u32) -> Result<Vec<StoredKey>, StoreError> {
        self.inner.keys_not_under(kek, limit).await
    }
    async fn rewrap_subject_key(&self, old: &str, key: &StoredKey) -> Result<bool, StoreError> {
        self.inner.rewrap_subject_key(old, key).await
    }
    async fn delete_subject(&self, subject: &str) -> Result<SubjectDeletion, StoreError> {
        self.inner.delete_subject(subject).await
    }
    async fn purge_expired_records(
        &self,
        now: u64,
        batch: u32,
    ) -> Result<BTreeMap<String, u64>, StoreError> {
        self.inner.purge_expired_records(now, batch).await
    }
    async fn count_expired_records(&self, now: u64) -> Result<BTreeMap<String, u64>, StoreError> {
        self.inner.count_expired_records(now).await
    }
}

#[async_trait::async_trait]
impl OperatorStore for Timed {
    async fn add_operator(&self, op: &Operator) -> Result<(), OperatorStoreError> {
        self.inner.add_operator(op).await
    }
    async fn operator(&self, name: &str) -> Result<Option<Operator>, StoreError> {
        self.inner.operator(name).await
    }
    async fn operator_by_token_hash(&self, hash: &str) -> Result<Option<Operator>, StoreError> {
        self.inner.operator_by_token_hash(hash).await
    }
    async fn list_operators(&self) -> Result<Vec<Operator>, StoreError> {
        self.inner.list_operators().await
    }
    async fn remove_operator(
        &self,
        name: &str,
        keep_one: Option<&str>,
    ) -> Result<OperatorChange, StoreError> {
        self.inner.remove_operator(name, keep_one).await
    }
    async fn set_operator_role(
        &self,
        name: &str,
        role: &str,
        keep_one: Option<&str>,
    ) -> Result<OperatorChange, StoreError> {
        self.inner.set_operator_role(name, role, keep_one).await
    }
    async fn count_operators_with_role(&self, role: &str) -> Result<u64, StoreError> {
        self.inner.count_operators_with_role(role).await
    }
    async fn set_operator_secret(
        &self,
        name: &str,
        password: bool,
        hash: &str,
    ) -> Result<bool, OperatorStoreError> {
        self.inner.set_operator_secret(name, password, hash).await
    }
}

/// One tool call: when it was due, how long until its answer, whether it was served.
pub(crate) type Sample = (Instant, Duration, bool);

/// The token rendered into the tool's `web_hook_url` of a SWML document.
pub(crate) fn token_for(swml: &Value) -> Option<String> {
    let functions = swml["sections"]["main"]
        .as_array()?
        .iter()
        .find_map(|verb| verb.get("ai"))?["SWAIG"]["functions"]
        .as_array()?
        .clone();
    let url = functions
        .iter()
        .find(|f| f["function"] == TOOL)?
        .get("web_hook_url")?
        .as_str()?;
    let url = reqwest::Url::parse(url).ok()?;
    let token = url.query_pairs().find(|(k, _)| k == "__token")?.1;
    Some(token.into_owned())
}

/// The client: renders SWML for 32 calls, then sends `rate` tool calls a second, spread over
/// them, each on its own task, until `stop`; on its own thread and current-thread runtime so
/// that its scheduling does not depend on the server's workers.
pub(crate) fn load(
    base: String,
    rate: u32,
    stop: Arc<AtomicBool>,
    ready: std::sync::mpsc::Sender<()>,
) -> std::thread::JoinHandle<BenchResult<Vec<Sample>>> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let client = reqwest::Client::new();
            let mut calls = Vec::new();
            for k in 0..32u32 {
                let call_id = format!("call-live-{k:04}");
                let caller = format!("+1555123{k:04}");
                let swml: Value = client
                    .post(format!("{base}{ROUTE}"))
                    .basic_auth(USER, Some(PASSWORD))
                    .json(&json!({"call": {"call_id": call_id, "from": caller}}))
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                let token = token_for(&swml).ok_or("no token rendered")?;
                let url = format!("{base}{ROUTE}/swaig?__token={token}");
                let args = json!({"order_number": "ORD-12345", "amount": 25.5, "note": "where is my parcel"});
                let body = json!({
                    "function": TOOL, "call_id": call_id, "caller_id_num": caller,
                    "ai_session_id": format!("session-{k}"),
                    "argument": {"parsed": [args], "raw": args.to_string()},
                });
                calls.push(Arc::new((url, body.to_string())));
            }
            let _ = ready.send(());
            let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
            let mut tasks = tokio::task::JoinSet::new();
            let interval = Duration::from_secs(1) / rate;
            let start = tokio::time::Instant::now();
            let mut i: u32 = 0;
            while !stop.load(Ordering::SeqCst) {
                let due = start + interval * i;
                tokio::time::sleep_until(due).await;
                let (client, call, samples) =
                    (client.clone(), calls[i as usize % calls.len()].clone(), samples.clone());
                tasks.spawn(async move {
                    let answer = client
                        .post(&call.0)
                        .basic_auth(USER, Some(PASSWORD))
                        .header("content-type", "application/json")
                        .body(call.1.clone())
                        .send()
                        .await;
                    let served = match answer {
                        Ok(response) if response.status().is_success() => response
                            .json::<Value>()
                            .await
                            .is_ok_and(|v| v.get("error").is_none()),
                        _ => false,
                    };
                    let due = due.into_std();
                    if let Ok(mut samples) = samples.lock() {
                        samples.push((due, due.elapsed(), served));
                    }
                });
                i = i.wrapping_add(1);
                while tasks.try_join_next().is_some() {}
            }
            while tasks.join_next().await.is_some() {}
            let samples = samples.lock().map_err(|_| "poisoned")?.clone();
            Ok(samples)
        })
    })
}

/// The fast path's latencies of the calls due in `[from, to)`.
pub(crate) fn window(
    samples: &[Sample],
    from: Instant,
    to: Instant,
) -> BenchResult<(Histogram<u64>, u64)> {
    let mut hist = histogram();
    let mut failed = 0;
    for (_, took, served) in samples.iter().filter(|s| s.0 >= from && s.0 < to) {
        hist.record(micros(*took))?;
        if !served {
            failed += 1;
        }
    }
    Ok((hist, failed))
}
