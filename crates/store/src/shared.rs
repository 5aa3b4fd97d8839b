//! State that several replicas share beyond sessions: rate-limit buckets and notifications.
//!
//! This module owns two small contracts. [`LimitStore`] decides GCRA rate limits atomically on
//! a shared server (Redis, or PostgreSQL when there is no Redis) with exactly the semantics of
//! the in-process `voxguard_guard::RateLimiter` (governor), so a limit of N per minute holds
//! across replicas. [`Notifier`] carries [`Notice`]s between replicas (the emergency switch
//! changed; a replica's subscription was re-established and it should reload what it caches).
//! The backends live beside it. It must not decide what the limits are (the agent's policy
//! does), must not read the clock (callers pass `now_ms`), and a store that cannot answer must
//! say so ([`StoreError::Unavailable`]) so that the caller fails closed.

use crate::StoreError;

mod redis;

pub use self::redis::{RedisState, COMMAND_TIMEOUT as REDIS_COMMAND_TIMEOUT};

/// One GCRA limit: `burst` calls at once, refilling one call every `emission_ms`
/// (`voxguard_guard::RateLimit` of `max` per `per` is `burst = max`,
/// `emission_ms = per / max`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcraLimit {
    /// Calls allowed at once.
    pub burst: u32,
    /// Milliseconds for one call to refill (at least 1).
    pub emission_ms: u64,
}

/// One key checked against one limit.
#[derive(Debug, Clone, Copy)]
pub struct LimitCheck<'a> {
    /// The bucket (e.g. `"<agent>/caller/<hash>"`); opaque to the store.
    pub key: &'a str,
    /// Its limit.
    pub limit: GcraLimit,
}

/// What a [`LimitStore`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitDecision {
    /// Every check passed, and each counted one call.
    Allowed,
    /// The check at `index` refused; the checks before it counted their call (as the
    /// in-process limiter does), the ones after it were not looked at.
    Denied {
        /// Index into the checks.
        index: usize,
        /// Milliseconds until that bucket would allow a call.
        retry_after_ms: u64,
    },
}

/// Rate-limit buckets shared by every replica.
#[async_trait::async_trait]
pub trait LimitStore: Send + Sync + 'static {
    /// Check `checks` in order at `now_ms` (unix milliseconds), atomically on the server: each
    /// passing check counts one call, the first refusing one stops.
    async fn check(
        &self,
        checks: &[LimitCheck<'_>],
        now_ms: u64,
    ) -> Result<LimitDecision, StoreError>;

    /// Cheap health check, meant for `/ready`.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Delete the buckets that have fully refilled at `now_ms` (they mean what a missing
    /// bucket means) and return how many; the runtime's maintenance calls it so that callers
    /// who went quiet leave nothing behind. A store whose buckets expire by themselves (Redis)
    /// keeps this default, which does nothing.
    async fn purge(&self, now_ms: u64) -> Result<u64, StoreError> {
        let _ = now_ms;
        Ok(0)
    }

    /// The backend's name: `"redis"` or `"postgres"`.
    fn backend(&self) -> &'static str;
}

/// A message from one replica to all (itself included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The emergency switch changed: reload it from the store.
    Emergency,
    /// The subscription was (re-)established and notices may have been missed: reload
    /// everything that is cached from shared state.
    Resync,
    /// A session scope was written: forget what is cached of it. It carries the scope's
    /// digest (32 hex digits), never the scope, so no call id travels between replicas.
    Session(String),
    /// Many session scopes were written (a subject's deletion): forget every cached session.
    Sessions,
    /// Local only, never sent: this replica's subscription was lost, so notices may be missed
    /// until the [`Notice::Resync`] that follows the next subscription.
    Lost,
}

/// The wire prefix of [`Notice::Session`].
const SESSION_PREFIX: &str = "session:";

impl Notice {
    /// The notice as it travels between replicas (`None` for the local-only [`Notice::Lost`]).
    pub(crate) fn as_payload(&self) -> Option<std::borrow::Cow<'static, str>> {
        Some(match self {
            Notice::Emergency => "emergency".into(),
            Notice::Resync => "resync".into(),
            Notice::Sessions => "sessions".into(),
            Notice::Session(digest) => format!("{SESSION_PREFIX}{digest}").into(),
            Notice::Lost => return None,
        })
    }

    /// A notice read from the wire; unknown payloads (e.g. from a newer replica) are `None`
    /// and ignored, and so is anything that claims to be local-only.
    pub(crate) fn from_payload(payload: &str) -> Option<Self> {
        match payload {
            "emergency" => Some(Notice::Emergency),
            "resync" => Some(Notice::Resync),
            "sessions" => Some(Notice::Sessions),
            _ => payload
                .strip_prefix(SESSION_PREFIX)
                .filter(|digest| {
                    digest.len() == 32 && digest.bytes().all(|b| b.is_ascii_hexdigit())
                })
                .map(|digest| Notice::Session(digest.to_string())),
        }
    }

    /// [`Self::as_payload`], or the error a publisher returns for a local-only notice.
    pub(crate) fn payload(&self) -> Result<std::borrow::Cow<'static, str>, StoreError> {
        self.as_payload().ok_or_else(|| {
            StoreError::unavailable(std::io::Error::other("a local-only notice is never sent"))
        })
    }
}

/// Notices between replicas.
#[async_trait::async_trait]
pub trait Notifier: Send + Sync + 'static {
    /// Send `notice` to every replica subscribed.
    async fn publish(&self, notice: Notice) -> Result<(), StoreError>;

    /// Notices from now on (a [`Notice::Resync`] arrives after every reconnection).
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Notice>;

    /// Cheap health check, meant for `/ready`.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The backend's name: `"redis"` or `"postgres"`.
    fn backend(&self) -> &'static str;
}

#[cfg(test)]
mod tests;
