//! Redis as the shared state of several replicas: GCRA rate limits and notices.
//!
//! This module owns [`RedisState`]: one multiplexed connection (redis' `ConnectionManager`,
//! which reconnects by itself) on which rate-limit decisions are atomic Lua scripts (sent by
//! `EVALSHA`, loaded on first use), and one pub/sub connection kept by a background task that
//! re-subscribes forever with backoff and forwards [`Notice`]s into a broadcast channel. The
//! script follows governor's GCRA exactly (a bucket is its "theoretical arrival time", `tat`):
//! with emission interval `t` and tolerance `tau = t * (burst - 1)`, a call at `now` passes
//! when `now >= tat - tau` and moves `tat` to `max(tat, now) + t`; a refused call changes
//! nothing and must wait `tat - tau - now`. Each bucket expires (`PX`) when it has fully
//! refilled, since a missing bucket means the same thing, so idle callers cost no memory.
//!
//! Calls are decided in batches: a background task (the batcher) takes every call queued
//! while its previous script was running — up to [`MAX_CALLS_PER_SCRIPT`] — and decides them
//! in ONE script, in the order they were queued, each exactly as if it had been sent alone
//! (the script carries each bucket's `tat` from one call to the next and writes each bucket
//! once at the end). Under load that is one round trip, one Lua invocation and one read and
//! write per bucket for a whole group instead of per call; alone, a call goes out at once. A
//! call whose caller stopped waiting before its batch left is not counted. A batch fails as a
//! whole (every call in it is refused as unavailable, nothing of it is stored) when Redis
//! fails it, e.g. on a bucket key that holds something else than a number. A caller waits for
//! at most the script running when it queued and its own (2 × [`COMMAND_TIMEOUT`]).
//! Every key starts with the prefix given to [`RedisState::connect`]. Time always comes from
//! the caller (`now_ms`), never from Redis `TIME`, so replicas and the in-process limiter agree.
//! Every command is bounded by [`COMMAND_TIMEOUT`] and a failure is
//! [`StoreError::Unavailable`] so callers fail closed. It must not decide limits, must not
//! panic or spin when Redis goes away, and its errors must not show URLs or keys through
//! `Display`. One script touches every key of its batch, so a Redis Cluster would need all
//! bucket keys in one hash slot; a single server (or a primary with replicas) is assumed.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSubSink, PubSubStream};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::shared::{GcraLimit, LimitCheck, LimitDecision, LimitStore, Notice, Notifier};
use crate::StoreError;

/// How long one Redis command (or connecting) may take before it counts as unavailable.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// The first wait before re-subscribing after the pub/sub connection was lost.
const MIN_BACKOFF: Duration = Duration::from_millis(100);

/// The longest wait between two re-subscription attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// How often the pub/sub connection is pinged, so that a silently dead connection is noticed.
const PING_EVERY: Duration = Duration::from_secs(15);

/// Notices buffered per subscriber; a slower subscriber sees `Lagged` and should resync.
const NOTICE_CAPACITY: usize = 1024;

/// The largest time value (milliseconds) the script computes with: Lua numbers are doubles,
/// exact to 2^53; this bound (some 35,000 years) keeps every sum well inside.
const MAX_MS: u64 = 1 << 50;

/// The GCRA of a batch of calls, in one atomic step. `ARGV[1]` is the number of calls; then
/// each call gives its now (ms), its number of checks `n`, and `n` triples (bucket index into
/// `KEYS`, emission interval, tolerance; ms). A bucket shared by several calls is read once
/// and its `tat` carried from call to call, so each call sees what the calls before it in the
/// batch did. Answers two numbers per call: `0, 0` when every check of the call passed (each
/// counted one call), or `i, wait` for its first check `i` (1-based) that refused, the ones
/// before it having counted. Every bucket that changed is written once, at the end.
const GCRA_SCRIPT: &str = r"
local tats, since, answer = {}, {}, {}
local at = 2
for c = 1, tonumber(ARGV[1]) do
  local now = tonumber(ARGV[at])
  local n = tonumber(ARGV[at + 1])
  at = at + 2
  local refused, wait = 0, 0
  for i = 1, n do
    if refused == 0 then
      local k = tonumber(ARGV[at])
      local t = tonumber(ARGV[at + 1])
      local tau = tonumber(ARGV[at + 2])
      local tat = tats[k]
      if tat == nil then
        local stored = redis.call('GET', KEYS[k])
        if stored then
          tat = tonumber(stored)
          tats[k] = tat
        else
          tat = now
        end
      end
      local earliest = tat - tau
      if now < earliest then
        refused, wait = i, earliest - now
      else
        tats[k] = math.max(tat, now) + t
        since[k] = now
      end
    end
    at = at + 3
  end
  answer[2 * c - 1] = refused
  answer[2 * c] = wait
end
for k = 1, #KEYS do
  if since[k] then
    redis.call('SET', KEYS[k], string.format('%d', tats[k]),
      'PX', string.format('%d', tats[k] - since[k]))
  end
end
return answer
";

/// The most calls one script decides; more queued calls wait for the next script.
pub const MAX_CALLS_PER_SCRIPT: usize = 128;

/// Calls that may wait for the batcher; a caller that finds the queue full waits for room
/// (within its whole bound, 2 × [`COMMAND_TIMEOUT`]).
const LIMIT_QUEUE: usize = 4096;

/// The key suffix of notices: they are published on `<prefix>notices`.
const NOTICES_CHANNEL: &str = "notices";

/// The key infix of rate-limit buckets: bucket `b` is `<prefix>rl:<b>`.
const LIMIT_INFIX: &str = "rl:";

/// The error of a command that did not answer within [`COMMAND_TIMEOUT`].
fn timed_out() -> StoreError {
    StoreError::unavailable(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "redis did not answer in time",
    ))
}

/// `operation`, bounded by [`COMMAND_TIMEOUT`], with Redis errors as unavailability.
async fn bounded<T>(
    operation: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(COMMAND_TIMEOUT, operation).await {
        Ok(result) => result.map_err(StoreError::unavailable),
        Err(_) => Err(timed_out()),
    }
}

/// Rate limits and notices shared through one Redis server (cheap to clone: clones share the
/// connections and the subscription, which ends when the last clone is dropped).
#[derive(Clone)]
pub struct RedisState {
    inner: Arc<Inner>,
}

struct Inner {
    prefix: String,
    connection: ConnectionManager,
    /// The batcher's queue of calls to decide.
    limits: mpsc::Sender<QueuedCall>,
    /// Scripts the batcher has sent (for tests and diagnostics).
    scripts: Arc<std::sync::atomic::AtomicU64>,
    notices: broadcast::Sender<Notice>,
    subscriber: tokio::task::JoinHandle<()>,
    batcher: tokio::task::JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.subscriber.abort();
        self.batcher.abort();
    }
}

/// One call waiting for the batcher: its checks as (Redis key, emission interval, tolerance),
/// its now, and where its answer goes (the refusing check's 1-based index or 0, and the wait).
struct QueuedCall {
    now_ms: u64,
    checks: Vec<(String, u64, u64)>,
    reply: oneshot::Sender<Result<(u64, u64), StoreError>>,
}

/// Why a whole batch failed, handed to each of its callers.
enum BatchFailure {
    /// The script did not answer within [`COMMAND_TIMEOUT`].
    TimedOut,
    /// Redis answered with an error, or the connection failed.
    Redis(Arc<redis::RedisError>),
    /// The script answered something it never answers.
    Impossible,
}

impl BatchFailure {
    fn error(&self) -> StoreError {
        match self {
            BatchFailure::TimedOut => timed_out(),
            BatchFailure::Redis(error) => StoreError::unavailable(Arc::clone(error)),
            BatchFailure::Impossible => impossible_answer(),
        }
    }
}

/// The error of a script answer that cannot be right; a server that gives it is not trusted.
fn impossible_answer() -> StoreError {
    StoreError::unavailable(std::io::Error::other(
        "the rate-limit script answered an impossible index",
    ))
}

/// The error of a batcher that is gone (it ended or was aborted; every limit check fails
/// closed, and [`LimitStore::ping`] says so, so `/ready` does too).
fn batcher_gone() -> StoreError {
    StoreError::unavailable(std::io::Error::other("the rate-limit batcher has stopped"))
}

/// Decide every queued call, in batches of at most [`MAX_CALLS_PER_SCRIPT`], until the queue
/// closes (the last clone of the state was dropped).
async fn decide_forever(
    mut connection: ConnectionManager,
    mut queue: mpsc::Receiver<QueuedCall>,
    scripts: Arc<std::sync::atomic::AtomicU64>,
) {
    let script = redis::Script::new(GCRA_SCRIPT);
    let mut calls = Vec::with_capacity(MAX_CALLS_PER_SCRIPT);
    while queue.recv_many(&mut calls, MAX_CALLS_PER_SCRIPT).await > 0 {
        // A caller that stopped waiting is not counted.
        calls.retain(|call| !call.reply.is_closed());
        if !calls.is_empty() {
            scripts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let answers = decide(&mut connection, &script, &calls).await;
            for (index, call) in calls.drain(..).enumerate() {
                let answer = match &answers {
                    Ok(answers) => Ok((answers[2 * index], answers[2 * index + 1])),
                    Err(failure) => Err(failure.error()),
                };
                // A caller that stopped waiting meanwhile has nobody to tell.
                let _ = call.reply.send(answer);
            }
        }
        calls.clear();
    }
}

/// One script for `calls`: two numbers per call, checked to be possible answers.
async fn decide(
    connection: &mut ConnectionManager,
    script: &redis::Script,
    calls: &[QueuedCall],
) -> Result<Vec<u64>, BatchFailure> {
    let mut invocation = script.prepare_invoke();
    let mut buckets: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    invocation.arg(calls.len());
    for call in calls {
        invocation.arg(call.now_ms).arg(call.checks.len());
        for (key, t, tau) in &call.checks {
            let next = buckets.len() + 1;
            let bucket = *buckets.entry(key.as_str()).or_insert_with(|| {
                invocation.key(key.as_str());
                next
            });
            invocation.arg(bucket).arg(*t).arg(*tau);
        }
    }
    let answers: Vec<u64> =
        match tokio::time::timeout(COMMAND_TIMEOUT, invocation.invoke_async(connection)).await {
            Ok(Ok(answers)) => answers,
            Ok(Err(error)) => return Err(BatchFailure::Redis(Arc::new(error))),
            Err(_) => return Err(BatchFailure::TimedOut),
        };
    let possible = answers.len() == 2 * calls.len()
        && calls.iter().enumerate().all(|(index, call)| {
            usize::try_from(answers[2 * index]).is_ok_and(|refused| refused <= call.checks.len())
        });
    if possible {
        Ok(answers)
    } else {
        Err(BatchFailure::Impossible)
    }
}

impl std::fmt::Debug for RedisState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it may hold a password.
        f.debug_struct("RedisState")
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisState {
    /// Connect to `url` (`redis://[:password@]host:port/[db]`, or `rediss://` for TLS when
    /// the redis crate is built with it) and subscribe to `<prefix>notices`. Every key this
    /// state writes starts with `prefix` (e.g. `"voxguard:"`), so deployments can share a
    /// server. Fails with [`StoreError::Unavailable`] when the server cannot be reached within
    /// a few [`COMMAND_TIMEOUT`]s; afterwards both connections are re-established by themselves.
    /// Must be called within a Tokio runtime (the subscription runs on a task of it).
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StoreError> {
        Self::connect_pinging(url, prefix, PING_EVERY).await
    }

    /// [`RedisState::connect`], pinging the pub/sub connection every `ping_every`.
    async fn connect_pinging(
        url: &str,
        prefix: &str,
        ping_every: Duration,
    ) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(StoreError::unavailable)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(COMMAND_TIMEOUT)
            .set_response_timeout(COMMAND_TIMEOUT)
            .set_number_of_retries(1)
            .set_max_delay(1_000);
        let connection = match tokio::time::timeout(
            COMMAND_TIMEOUT * 2,
            ConnectionManager::new_with_config(client.clone(), config),
        )
        .await
        {
            Ok(connection) => connection.map_err(StoreError::unavailable)?,
            Err(_) => return Err(timed_out()),
        };
        let channel = format!("{prefix}{NOTICES_CHANNEL}");
        let (sink, stream) = open_subscription(&client, &channel).await?;
        let (notices, _) = broadcast::channel(NOTICE_CAPACITY);
        let subscriber = tokio::spawn(subscribe_forever(
            client,
            channel,
            notices.clone(),
            (sink, stream),
            ping_every,
        ));
        let (limits, queue) = mpsc::channel(LIMIT_QUEUE);
        let scripts = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let batcher = tokio::spawn(decide_forever(
            connection.clone(),
            queue,
            Arc::clone(&scripts),
        ));
        Ok(Self {
            inner: Arc::new(Inner {
                prefix: prefix.to_string(),
                connection,
                limits,
                scripts,
                notices,
                subscriber,
                batcher,
            }),
        })
    }

    /// How many rate-limit scripts this state has sent (each decides a batch of calls).
    pub fn scripts_sent(&self) -> u64 {
        self.inner
            .scripts
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The prefix every key of this state starts with.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The Redis key of rate-limit bucket `bucket` (`<prefix>rl:<bucket>`).
    pub fn limit_key(&self, bucket: &str) -> String {
        format!("{}{LIMIT_INFIX}{bucket}", self.inner.prefix)
    }

    /// The channel notices are published on (`<prefix>notices`).
    pub fn notice_channel(&self) -> String {
        format!("{}{NOTICES_CHANNEL}", self.inner.prefix)
    }
}

/// A limit as the script reads it: (emission interval, tolerance) in milliseconds. A burst of
/// 0 is read as 1 and an emission interval of 0 as 1 ms (as governor does), never as "no limit".
fn script_limit(limit: GcraLimit) -> (u64, u64) {
    let t = limit.emission_ms.clamp(1, MAX_MS);
    let tau = t
        .saturating_mul(u64::from(limit.burst.max(1) - 1))
        .min(MAX_MS);
    (t, tau)
}

#[async_trait::async_trait]
impl LimitStore for RedisState {
    async fn check(
        &self,
        checks: &[LimitCheck<'_>],
        now_ms: u64,
    ) -> Result<LimitDecision, StoreError> {
        if checks.is_empty() {
            return Ok(LimitDecision::Allowed);
        }
        let (reply, answer) = oneshot::channel();
        let call = QueuedCall {
            now_ms: now_ms.min(MAX_MS),
            checks: checks
                .iter()
                .map(|check| {
                    let (t, tau) = script_limit(check.limit);
                    (self.limit_key(check.key), t, tau)
                })
                .collect(),
            reply,
        };
        // The script running when this call queued and this call's own are each bounded by
        // COMMAND_TIMEOUT in the batcher; a caller that gives up before its batch leaves is
        // not counted.
        let queued = async {
            self.inner
                .limits
                .send(call)
                .await
                .map_err(|_| batcher_gone())?;
            answer.await.map_err(|_| batcher_gone())?
        };
        let (index, wait) = match tokio::time::timeout(COMMAND_TIMEOUT * 2, queued).await {
            Ok(answer) => answer?,
            Err(_) => return Err(timed_out()),
        };
        match usize::try_from(index) {
            Ok(0) => Ok(LimitDecision::Allowed),
            Ok(one_based) if one_based <= checks.len() => Ok(LimitDecision::Denied {
                index: one_based - 1,
                retry_after_ms: wait,
            }),
            // `decide` lets no such answer through.
            _ => Err(impossible_answer()),
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        // Without its batcher this state refuses every limited call: not ready.
        if self.inner.batcher.is_finished() || self.inner.limits.is_closed() {
            return Err(batcher_gone());
        }
        let mut connection = self.inner.connection.clone();
        bounded(redis::cmd("PING").query_async::<String>(&mut connection))
            .await
            .map(|_| ())
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}

#[async_trait::async_trait]
impl Notifier for RedisState {
    async fn publish(&self, notice: Notice) -> Result<(), StoreError> {
        let payload = notice.payload()?;
        let mut connection = self.inner.connection.clone();
        bounded(
            redis::cmd("PUBLISH")
                .arg(self.notice_channel())
                .arg(payload.as_ref())
                .query_async::<u64>(&mut connection),
        )
        .await
        .map(|_| ())
    }

    fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.inner.notices.subscribe()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        LimitStore::ping(self).await
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}

/// A fresh pub/sub connection subscribed to `channel`, within [`COMMAND_TIMEOUT`].
async fn open_subscription(
    client: &redis::Client,
    channel: &str,
) -> Result<(PubSubSink, PubSubStream), StoreError> {
    bounded(async {
        let (mut sink, stream) = client.get_async_pubsub().await?.split();
        sink.subscribe(channel).await?;
        Ok((sink, stream))
    })
    .await
}

/// Forward notices from `subscription`, and from every later re-subscription, into `notices`,
/// until the task is aborted. Each lost connection is followed by waits that double from
/// [`MIN_BACKOFF`] to [`MAX_BACKOFF`] until a new subscription holds; then [`Notice::Resync`]
/// tells every subscriber that notices may have been missed.
async fn subscribe_forever(
    client: redis::Client,
    channel: String,
    notices: broadcast::Sender<Notice>,
    subscription: (PubSubSink, PubSubStream),
    ping_every: Duration,
) {
    let mut subscription = Some(subscription);
    let mut backoff = MIN_BACKOFF;
    loop {
        if let Some((sink, stream)) = subscription.take() {
            forward(sink, stream, &notices, ping_every).await;
            // Notices published from now until the next subscription are missed.
            let _ = notices.send(Notice::Lost);
            backoff = MIN_BACKOFF;
        }
        tokio::time::sleep(backoff).await;
        match open_subscription(&client, &channel).await {
            Ok(fresh) => {
                subscription = Some(fresh);
                // No receiver is not an error: nobody is listening yet.
                let _ = notices.send(Notice::Resync);
            }
            Err(_) => backoff = (backoff * 2).min(MAX_BACKOFF),
        }
    }
}

/// Forward notices from one subscription until its connection is lost (the stream ends or a
/// periodic ping fails).
async fn forward(
    mut sink: PubSubSink,
    mut stream: PubSubStream,
    notices: &broadcast::Sender<Notice>,
    ping_every: Duration,
) {
    let mut pings = tokio::time::interval(ping_every);
    pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate; the connection was just made.
    pings.tick().await;
    loop {
        tokio::select! {
            message = stream.next() => {
                let Some(message) = message else { return };
                let notice = message
                    .get_payload::<String>()
                    .ok()
                    .and_then(|payload| Notice::from_payload(&payload));
                if let Some(notice) = notice {
                    let _ = notices.send(notice);
                }
            }
            _ = pings.tick() => {
                if bounded(sink.ping::<redis::Value>()).await.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
