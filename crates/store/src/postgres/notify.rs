//! Notices between replicas through PostgreSQL `LISTEN`/`NOTIFY`, for deployments without Redis.
//!
//! This module owns [`PgNotifier`]: publishing is `pg_notify(channel, payload)` on the shared
//! pool; receiving is one dedicated connection (its own one-connection pool, so the shared pool
//! keeps its size) that a background task keeps listening forever. When that connection is lost
//! the task reconnects (waits doubling up to a bound, never spinning), listens again, and sends
//! [`Notice::Resync`] because notices may have been missed meanwhile. The channel is derived
//! from the schema, so deployments sharing a database do not hear each other. It must not
//! panic when the database goes away, and its errors must not show SQL or URLs through
//! `Display`.

use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use tokio::sync::broadcast;

use crate::postgres::PgDatabase;
use crate::shared::{Notice, Notifier};
use crate::StoreError;

/// How long connecting the listener may take before it counts as unavailable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The first wait before listening again after the connection was lost.
const MIN_BACKOFF: Duration = Duration::from_millis(100);

/// The longest wait between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Notices buffered per subscriber (session writes announce themselves, so they come in
/// bursts); a slower subscriber sees `Lagged` and should resync.
const NOTICE_CAPACITY: usize = 1024;

/// How often each replica sends a heartbeat on its channel, so that a listening connection
/// that silently died (a half-open TCP connection) is noticed: one that hears nothing, not
/// even heartbeats, for [`SILENCE`] is given up.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

/// See [`HEARTBEAT_EVERY`].
const SILENCE: Duration = Duration::from_secs(16);

/// The heartbeat's payload (not a notice: receivers only take it as a sign of life).
const HEARTBEAT: &str = "heartbeat";

/// PostgreSQL's longest identifier (channel names are identifiers).
const MAX_CHANNEL_LEN: usize = 63;

/// The channel of `schema`: `voxguard_<schema>`, or, when that is longer than an identifier
/// may be, its first letters and a stable hash (FNV-1a) of the whole schema name.
pub fn channel_for_schema(schema: &str) -> String {
    let channel = format!("voxguard_{schema}");
    if channel.len() <= MAX_CHANNEL_LEN {
        return channel;
    }
    let hash = schema
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    let suffix = format!("_{hash:016x}");
    // Schema names are ASCII (PgDatabase checks), so byte slicing is on char boundaries.
    let keep = MAX_CHANNEL_LEN - suffix.len();
    format!("{}{suffix}", &channel[..keep])
}

/// Notices through PostgreSQL for every replica using the same schema (cheap to clone: clones
/// share the listener, which stops when the last clone is dropped).
#[derive(Clone)]
pub struct PgNotifier {
    inner: std::sync::Arc<Inner>,
}

struct Inner {
    database: PgDatabase,
    channel: String,
    notices: broadcast::Sender<Notice>,
    listener: tokio::task::JoinHandle<()>,
    heartbeat: tokio::task::JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.listener.abort();
        self.heartbeat.abort();
    }
}

impl std::fmt::Debug for PgNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgNotifier")
            .field("channel", &self.inner.channel)
            .finish_non_exhaustive()
    }
}

impl PgNotifier {
    /// Listen on the schema's channel of `database` ([`channel_for_schema`]); when this returns,
    /// notices published from now on arrive. Fails with [`StoreError::Unavailable`] if the
    /// first listening connection cannot be made; later losses are repaired in the background.
    /// Must be called within a Tokio runtime.
    pub async fn connect(database: &PgDatabase) -> Result<Self, StoreError> {
        let channel = channel_for_schema(database.schema());
        // One connection of its own, made like the shared pool's, so LISTEN never holds one
        // of the pool's connections.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(CONNECT_TIMEOUT)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy_with((*database.pool().connect_options()).clone());
        let listener = listen(&pool, &channel).await?;
        let (notices, _) = broadcast::channel(NOTICE_CAPACITY);
        let task = tokio::spawn(listen_forever(
            pool,
            channel.clone(),
            notices.clone(),
            listener,
        ));
        let heartbeat = tokio::spawn(heartbeat_forever(database.clone(), channel.clone()));
        Ok(Self {
            inner: std::sync::Arc::new(Inner {
                database: database.clone(),
                channel,
                notices,
                listener: task,
                heartbeat,
            }),
        })
    }

    /// The channel notices travel on.
    pub fn channel(&self) -> &str {
        &self.inner.channel
    }
}

/// A listener on `channel`, within [`CONNECT_TIMEOUT`].
async fn listen(pool: &PgPool, channel: &str) -> Result<PgListener, StoreError> {
    let attempt = async {
        let mut listener = PgListener::connect_with(pool).await?;
        // A lost connection ends the listener's life here; `listen_forever` makes the next one.
        listener.eager_reconnect(false);
        listener.listen(channel).await?;
        Ok::<_, sqlx::Error>(listener)
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
        Ok(listener) => listener.map_err(StoreError::unavailable),
        Err(_) => Err(StoreError::unavailable(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the database did not answer in time",
        ))),
    }
}

/// Forward notifications into `notices` until the task is aborted, listening again (with
/// doubling waits) whenever the connection is lost, and then sending [`Notice::Resync`].
async fn listen_forever(
    pool: PgPool,
    channel: String,
    notices: broadcast::Sender<Notice>,
    listener: PgListener,
) {
    let mut listener = Some(listener);
    let mut backoff = MIN_BACKOFF;
    loop {
        if let Some(mut current) = listener.take() {
            backoff = MIN_BACKOFF;
            // Until the connection is lost (`Ok(None)`) or fails; then a fresh listener is
            // made after a wait, so that a connection that keeps dying is not retried in a loop.
            // A connection that hears nothing for SILENCE (not even the replicas' heartbeats)
            // is given up like a lost one; it is dropped, never read again.
            while let Ok(Ok(Some(notification))) =
                tokio::time::timeout(SILENCE, current.try_recv()).await
            {
                if let Some(notice) = Notice::from_payload(notification.payload()) {
                    let _ = notices.send(notice);
                }
            }
            // Notices sent from now until the next `LISTEN` are missed.
            let _ = notices.send(Notice::Lost);
        }
        tokio::time::sleep(backoff).await;
        match listen(&pool, &channel).await {
            Ok(fresh) => {
                listener = Some(fresh);
                let _ = notices.send(Notice::Resync);
            }
            Err(_) => backoff = (backoff * 2).min(MAX_BACKOFF),
        }
    }
}

/// Send a heartbeat on `channel` every [`HEARTBEAT_EVERY`] until the task is aborted (a failed
/// one is not retried early: the next tick tries again).
async fn heartbeat_forever(database: PgDatabase, channel: String) {
    let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let _ = notify(&database, &channel, HEARTBEAT).await;
    }
}

/// `pg_notify(channel, payload)` in its own transaction, committed without waiting for the
/// WAL flush: PostgreSQL holds a cluster-wide lock from queueing a notification until after
/// the commit, and a notice is worth nothing after a crash anyway.
async fn notify(database: &PgDatabase, channel: &str, payload: &str) -> Result<(), StoreError> {
    sqlx::query("SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, $2)")
        .bind(channel)
        .bind(payload)
        .execute(database.pool())
        .await
        .map(|_| ())
        .map_err(StoreError::unavailable)
}

#[async_trait::async_trait]
impl Notifier for PgNotifier {
    async fn publish(&self, notice: Notice) -> Result<(), StoreError> {
        let payload = notice.payload()?;
        notify(&self.inner.database, &self.inner.channel, payload.as_ref()).await
    }

    fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.inner.notices.subscribe()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.database.ping().await
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }
}

#[cfg(test)]
mod tests;
