//! What an audit append costs (issue 4's closing figures, issue 5's "audit append"
//! micro-benchmark), in events per second.
//!
//! Each benchmark opens a fresh sink in a temporary directory (under `$TMPDIR`, else `/tmp`) with
//! an [`AuditKey`] and a signed checkpoint every 100 records — the server's default — and
//! appends a typical redacted `tool_called` event:
//!
//! - `sequential`: one task awaits each append before starting the next, so every event pays
//!   a whole commit (and, in `fsync` mode, a whole sync to disk): the latency-bound rate.
//! - `concurrent64`: 64 tasks append at once, as 64 in-flight requests would; the single
//!   writer commits whatever is queued as one group (one transaction or write, at most one
//!   sync), so the rate is bounded by throughput, not latency.
//!
//! Backends and modes: [`SqliteAuditLog`] (the default sink) and [`JsonlAuditLog`], each in
//! [`Durability::Normal`] and [`Durability::Fsync`]. Run with
//! `cargo bench -p voxguard-store --bench audit_append`; figures go to `BENCHMARKS.md`.
#![forbid(unsafe_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::json;
use tokio::runtime::Runtime;
use voxguard_guard::audit::{AuditEvent, AuditKey, AuditKind, AuditRecord, Outcome};
use voxguard_store::{AuditSink, Durability, JsonlAuditLog, SqliteAuditLog, StoreError};

/// Tasks appending at once in the concurrent benchmarks.
const CONCURRENCY: u64 = 64;

/// Records between signed checkpoints (the server's default `VOXGUARD_AUDIT_CHECKPOINT_EVERY`).
const CHECKPOINT_EVERY: u64 = 100;

/// The two backends under test.
#[derive(Clone, Copy)]
enum Backend {
    Sqlite,
    Jsonl,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Jsonl => "jsonl",
        }
    }
}

fn mode_name(durability: Durability) -> &'static str {
    match durability {
        Durability::Normal => "normal",
        Durability::Fsync => "fsync",
    }
}

/// An open sink of either backend, so that it can be closed cleanly at the end.
enum Sink {
    Sqlite(SqliteAuditLog),
    Jsonl(JsonlAuditLog),
}

impl Sink {
    async fn open(backend: Backend, dir: &Path, durability: Durability) -> Self {
        let key = AuditKey::from_bytes(vec![0x5a; 32]).expect("a 32-byte audit key");
        match backend {
            Backend::Sqlite => Self::Sqlite(
                SqliteAuditLog::open(
                    dir.join("audit.db"),
                    durability,
                    Some(key),
                    CHECKPOINT_EVERY,
                )
                .await
                .expect("open the SQLite audit log"),
            ),
            Backend::Jsonl => Self::Jsonl(
                JsonlAuditLog::open(
                    dir.join("audit.jsonl"),
                    durability,
                    Some(key),
                    CHECKPOINT_EVERY,
                )
                .await
                .expect("open the JSON-lines audit log"),
            ),
        }
    }

    async fn append(&self, event: AuditEvent) -> Result<AuditRecord, StoreError> {
        match self {
            Self::Sqlite(log) => log.append(event).await,
            Self::Jsonl(log) => log.append(event).await,
        }
    }

    async fn close(self) {
        match self {
            Self::Sqlite(log) => log.close().await,
            Self::Jsonl(log) => log.close().await,
        }
        .expect("close the audit log");
    }
}

/// A typical event: a tool call with masked caller and redacted arguments.
fn event(i: u64) -> AuditEvent {
    AuditEvent {
        agent: Some("bank".into()),
        request_id: Some(format!("req-{i:016x}")),
        call_id: Some(format!("call-{}", i % 97)),
        caller: Some("***4567".into()),
        function: Some("transfer_funds".into()),
        arguments: Some(json!({"amount": "150.00", "to": "acct-9", "card": "****1111"})),
        outcome: Some(Outcome::Ok),
        source: Some("203.0.113.7".into()),
        ..AuditEvent::new(AuditKind::ToolCalled, 1_700_000_000_000 + i)
    }
}

/// The server's runtime shape: a multi-threaded runtime, one worker per core.
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn open(rt: &Runtime, backend: Backend, durability: Durability) -> (tempfile::TempDir, Sink) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let sink = rt.block_on(Sink::open(backend, dir.path(), durability));
    (dir, sink)
}

/// One task awaiting each append: every event pays a full commit.
fn sequential(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("audit_append/sequential");
    group.throughput(Throughput::Elements(1));
    for backend in [Backend::Sqlite, Backend::Jsonl] {
        for durability in [Durability::Normal, Durability::Fsync] {
            let (dir, sink) = open(&rt, backend, durability);
            let id = format!("{}/{}", backend.name(), mode_name(durability));
            let mut i = 0_u64;
            group.bench_function(id, |b| {
                b.to_async(&rt).iter(|| {
                    i += 1;
                    let event = event(i);
                    let sink = &sink;
                    async move { sink.append(event).await.expect("append") }
                });
            });
            rt.block_on(sink.close());
            drop(dir);
        }
    }
    group.finish();
}

/// `CONCURRENCY` tasks appending at once: the writer commits each queued group together.
/// Criterion's `iters` is the number of events, shared out among the tasks.
fn concurrent(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group(format!("audit_append/concurrent{CONCURRENCY}"));
    group.throughput(Throughput::Elements(1));
    for backend in [Backend::Sqlite, Backend::Jsonl] {
        for durability in [Durability::Normal, Durability::Fsync] {
            let (dir, sink) = open(&rt, backend, durability);
            let sink = Arc::new(sink);
            let id = format!("{}/{}", backend.name(), mode_name(durability));
            group.bench_function(id, |b| {
                b.to_async(&rt).iter_custom(|iters| {
                    let sink = Arc::clone(&sink);
                    async move { append_concurrently(sink, iters).await }
                });
            });
            let sink = Arc::into_inner(sink).expect("no task still holds the sink");
            rt.block_on(sink.close());
            drop(dir);
        }
    }
    group.finish();
}

/// Append `total` events from `CONCURRENCY` tasks and return the wall time.
async fn append_concurrently(sink: Arc<Sink>, total: u64) -> Duration {
    let start = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|task| {
            let sink = Arc::clone(&sink);
            // Task `task` appends events task, task + CONCURRENCY, ... below `total`.
            tokio::spawn(async move {
                for i in (task..total).step_by(CONCURRENCY as usize) {
                    sink.append(event(i)).await.expect("append");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("an appending task");
    }
    start.elapsed()
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = sequential, concurrent
}
criterion_main!(benches);
