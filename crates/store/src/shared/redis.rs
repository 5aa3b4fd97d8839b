//! Redis as the shared state of several replicas: GCRA rate limits and notices.
//!
//! This module owns [`RedisState`]: one multiplexed connection (redis' `ConnectionManager`,
//! which reconnects by itself) on which every rate-limit decision is one atomic Lua script
//! (sent by `EVALSHA`, loaded on first use), and one pub/sub connection kept by a background
//! task that re-subscribes forever with backoff and forwards [`Notice`]s into a broadcast
//! channel. The script follows governor's GCRA exactly (a bucket is its "theoretical arrival
//! time", `tat`): with emission interval `t` and tolerance `tau = t * (burst - 1)`, a call at
//! `now` passes when `now >= tat - tau` and moves `tat` to `max(tat, now) + t`; a refused call
//! changes nothing and must wait `tat - tau - now`. Each bucket expires (`PX`) when it has fully
//! refilled, since a missing bucket means the same thing, so idle callers cost no memory.
//! Every key starts with the prefix given to [`RedisState::connect`]. Time always comes from
//! the caller (`now_ms`), never from Redis `TIME`, so replicas and the in-process limiter agree.
//! Every command is bounded by [`COMMAND_TIMEOUT`] and a failure is
//! [`StoreError::Unavailable`] so callers fail closed. It must not decide limits, must not
//! panic or spin when Redis goes away, and its errors must not show URLs or keys through
//! `Display`. The script touches several keys, so a Redis Cluster would need all of one
//! call's keys in one hash slot; a single server (or a primary with replicas) is assumed.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSubSink, PubSubStream};
use tokio::sync::broadcast;

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

/// The GCRA of every bucket, in one atomic step. `KEYS[i]` is bucket `i`; `ARGV[1]` is now
/// (ms); `ARGV[2i]` and `ARGV[2i+1]` are bucket `i`'s emission interval and tolerance (ms).
/// Answers `{0, 0}` when every bucket passed (each counted one call), or `{i, wait}` for the
/// first bucket `i` (1-based) that refused, the ones before it having counted their call.
const GCRA_SCRIPT: &str = r"
local now = tonumber(ARGV[1])
for i = 1, #KEYS do
  local t = tonumber(ARGV[2 * i])
  local tau = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  local earliest = tat - tau
  if now < earliest then
    return {i, earliest - now}
  end
  local next_tat = math.max(tat, now) + t
  redis.call('SET', KEYS[i], string.format('%d', next_tat),
    'PX', string.format('%d', next_tat - now))
end
return {0, 0}
";

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
    script: redis::Script,
    notices: broadcast::Sender<Notice>,
    subscriber: tokio::task::JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.subscriber.abort();
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
        Ok(Self {
            inner: Arc::new(Inner {
                prefix: prefix.to_string(),
                connection,
                script: redis::Script::new(GCRA_SCRIPT),
                notices,
                subscriber,
            }),
        })
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
        let mut invocation = self.inner.script.prepare_invoke();
        invocation.arg(now_ms.min(MAX_MS));
        for check in checks {
            let (t, tau) = script_limit(check.limit);
            invocation.key(self.limit_key(check.key)).arg(t).arg(tau);
        }
        let mut connection = self.inner.connection.clone();
        let (index, wait): (u64, u64) = bounded(invocation.invoke_async(&mut connection)).await?;
        match usize::try_from(index) {
            Ok(0) => Ok(LimitDecision::Allowed),
            Ok(one_based) if one_based <= checks.len() => Ok(LimitDecision::Denied {
                index: one_based - 1,
                retry_after_ms: wait,
            }),
            // The script never answers this; a server that does is not to be trusted.
            _ => Err(StoreError::unavailable(std::io::Error::other(
                "the rate-limit script answered an impossible index",
            ))),
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
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
