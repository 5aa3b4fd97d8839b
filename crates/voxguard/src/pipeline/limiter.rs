//! Who decides a tool call's rate limits: this process, or the server every replica shares.
//!
//! Owns [`Limiter`]: the in-process `RateLimiter` (governor) when the runtime runs alone, or a
//! [`LimitStore`] (Redis, or PostgreSQL without Redis) when it runs as one of several replicas,
//! so that a limit of N per minute is N for the whole deployment, not N per replica. Both
//! check the same buckets in the same order — the tool's limit for each key, the per-caller
//! limit for each key, then the agent's global limit — with the same GCRA arithmetic. Keys
//! sent to the shared server are HMAC pseudonyms under a key derived from the token key (which
//! every replica shares), so the server never holds a caller's number in clear. A shared
//! server that cannot answer refuses the call (`store_unavailable`): limits fail closed. It
//! must not decide what the limits are (the agent declares them).

use std::sync::Arc;
use std::time::Duration;

use voxguard_guard::{Clock, LimitScope, Limited, RateLimit, RateLimiter, SecretKey};
use voxguard_store::{GcraLimit, LimitCheck, LimitDecision, LimitStore, StoreError};

use crate::agent::Limits;

/// The key purpose of the shared limiter's pseudonyms.
pub(crate) const LIMIT_KEY_PURPOSE: &str = "voxguard-shared-rate-limit-keys";

/// Why a call was not let through.
#[derive(Debug)]
pub(crate) enum LimitError {
    /// A limit refused it.
    Limited(Limited),
    /// The shared limit server could not answer.
    Unavailable(StoreError),
}

/// The rate limits of one agent, decided locally or on the shared server.
pub(crate) enum Limiter {
    /// In this process only.
    Local(RateLimiter),
    /// On the server every replica shares.
    Shared(SharedLimiter),
}

/// The shared half of [`Limiter`].
pub(crate) struct SharedLimiter {
    store: Arc<dyn LimitStore>,
    agent: String,
    limits: Limits,
    pseudonyms: SecretKey,
    clock: Arc<dyn Clock>,
    /// The agent's global bucket key, derived once (it never changes).
    global: Option<String>,
}

impl SharedLimiter {
    /// `agent`'s `limits` on `store`; bucket keys are pseudonyms under `pseudonyms` (derived
    /// with [`LIMIT_KEY_PURPOSE`] from the token key, the same on every replica).
    pub(crate) fn new(
        store: Arc<dyn LimitStore>,
        agent: &str,
        limits: Limits,
        pseudonyms: SecretKey,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let mut limiter = Self {
            store,
            agent: agent.to_string(),
            limits,
            pseudonyms,
            clock,
            global: None,
        };
        limiter.global = limiter.bucket(&["global"]);
        limiter
    }

    /// The bucket key of `parts` under this agent.
    fn bucket(&self, parts: &[&str]) -> Option<String> {
        let mut message = Vec::new();
        for part in std::iter::once(self.agent.as_str()).chain(parts.iter().copied()) {
            // Length-prefixed so that no two different part lists give the same message.
            message.extend_from_slice(&(part.len() as u64).to_be_bytes());
            message.extend_from_slice(part.as_bytes());
        }
        let mac = self.pseudonyms.mac_hex(&message)?;
        Some(format!("rl:{}", &mac[..32]))
    }

    async fn check_keys(&self, tool: &str, keys: &[&str]) -> Result<(), LimitError> {
        let mut planned: Vec<(LimitScope, String, GcraLimit)> = Vec::new();
        let fail = || {
            LimitError::Unavailable(StoreError::Unavailable {
                source: Box::new(std::io::Error::other("a limit key could not be derived")),
            })
        };
        // Key by key, each in every scope, as the local limiter checks them: a call refused on
        // an earlier key takes nothing from a later one's buckets.
        let tool_limit = self.limits.tools.iter().find(|(name, _)| name == tool);
        for key in keys {
            if let Some((_, limit)) = tool_limit {
                let bucket = self.bucket(&["tool", tool, key]).ok_or_else(fail)?;
                planned.push((LimitScope::Tool, bucket, gcra(limit)));
            }
            if let Some(limit) = &self.limits.caller {
                let bucket = self.bucket(&["caller", key]).ok_or_else(fail)?;
                planned.push((LimitScope::Caller, bucket, gcra(limit)));
            }
        }
        if let Some(limit) = &self.limits.global {
            let bucket = self.global.clone().ok_or_else(fail)?;
            planned.push((LimitScope::Global, bucket, gcra(limit)));
        }
        if planned.is_empty() {
            return Ok(());
        }
        let checks: Vec<LimitCheck<'_>> = planned
            .iter()
            .map(|(_, key, limit)| LimitCheck { key, limit: *limit })
            .collect();
        match self.store.check(&checks, self.clock.now_ms()).await {
            Ok(LimitDecision::Allowed) => Ok(()),
            Ok(LimitDecision::Denied {
                index,
                retry_after_ms,
            }) => Err(LimitError::Limited(Limited {
                scope: planned
                    .get(index)
                    .map_or(LimitScope::Global, |(scope, _, _)| *scope),
                retry_after: Duration::from_millis(retry_after_ms),
            })),
            Err(error) => Err(LimitError::Unavailable(error)),
        }
    }
}

/// A `RateLimit` of `max` per `per` as GCRA parameters (as governor builds its quota). The
/// store counts whole milliseconds, so the emission interval is rounded up (a little stricter
/// than declared), never down (which could let through far more than declared).
pub(crate) fn gcra(limit: &RateLimit) -> GcraLimit {
    let emission = limit.per() / limit.max();
    let millis = emission.as_nanos().div_ceil(1_000_000);
    GcraLimit {
        burst: limit.max(),
        emission_ms: u64::try_from(millis).unwrap_or(u64::MAX).max(1),
    }
}

impl Limiter {
    /// Count one call of `tool` that every key in `keys` answers for, or say why not.
    pub(crate) async fn check_keys(&self, tool: &str, keys: &[&str]) -> Result<(), LimitError> {
        match self {
            Limiter::Local(limiter) => limiter.check_keys(tool, keys).map_err(LimitError::Limited),
            Limiter::Shared(shared) => shared.check_keys(tool, keys).await,
        }
    }

    /// Drop the state of callers that went quiet: in this process, or the refilled buckets on
    /// the shared server (PostgreSQL keeps them until deleted; Redis expires its own).
    pub(crate) async fn retain_recent(&self) {
        match self {
            Limiter::Local(limiter) => limiter.retain_recent(),
            Limiter::Shared(shared) => match shared.store.purge(shared.clock.now_ms()).await {
                Ok(0) => {}
                Ok(purged) => tracing::debug!(purged, "refilled rate-limit buckets purged"),
                Err(error) => {
                    tracing::warn!(%error, "purging refilled rate-limit buckets failed")
                }
            },
        }
    }

    /// Whether the shared server answers (always for the local limiter).
    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Limiter::Local(_) => Ok(()),
            Limiter::Shared(shared) => shared.store.ping().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shared limiter counts in whole milliseconds. A limit whose emission interval is not
    /// a whole number of milliseconds must round it up (stricter), never down: 600 per second
    /// is one call every 1.67 ms, and rounding to 1 ms would let 1,000 per second through on
    /// every replica set, while the in-process limiter (nanoseconds) holds 600.
    #[test]
    fn gcra_never_allows_more_than_the_declared_rate() {
        for (max, per_ms) in [
            (600, 1_000),
            (7, 1_000),
            (3, 10),
            (1_500, 1_000),
            (30, 60_000),
        ] {
            let limit = RateLimit::new(max, Duration::from_millis(per_ms)).unwrap();
            let gcra = gcra(&limit);
            assert_eq!(gcra.burst, max);
            // Sustained rate: one call per emission_ms; it must not exceed max per per_ms.
            assert!(
                gcra.emission_ms * u64::from(max) >= per_ms,
                "{max} per {per_ms} ms became one call every {} ms",
                gcra.emission_ms
            );
        }
    }
}
