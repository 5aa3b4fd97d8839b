//! Rate limits: global, per caller, and per caller per tool, with the GCRA from `governor`.
//!
//! Owns the limits and the decision "may this caller call this tool now, and if not, how long
//! until they may". It never hand-rolls rate-limit math. It does not decide HTTP statuses or
//! log; the runtime turns a [`Limited`] into HTTP 429 with `Retry-After`. Caller numbers are
//! spoofable, which is why the global limit exists.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::Quota;

/// `max` calls per `per`, refilling continuously (a burst of `max` is allowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    max: NonZeroU32,
    per: Duration,
}

/// A rate limit that cannot exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a rate limit needs at least 1 call per a non-zero period (got {max} per {per:?})")]
pub struct InvalidRateLimit {
    /// Requested calls.
    pub max: u32,
    /// Requested period.
    pub per: Duration,
}

impl RateLimit {
    /// `max` calls per `per`.
    pub fn new(max: u32, per: Duration) -> Result<Self, InvalidRateLimit> {
        match NonZeroU32::new(max) {
            Some(nz) if !per.is_zero() && per / max > Duration::ZERO => Ok(Self { max: nz, per }),
            _ => Err(InvalidRateLimit { max, per }),
        }
    }

    /// Calls allowed per period.
    pub fn max(&self) -> u32 {
        self.max.get()
    }

    /// The period.
    pub fn per(&self) -> Duration {
        self.per
    }

    fn quota(&self) -> Quota {
        // `new` guarantees per / max > 0, so with_period succeeds; fall back to one per second.
        Quota::with_period(self.per / self.max.get())
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(self.max)
    }
}

/// Which limit refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitScope {
    /// The limit for all callers together.
    Global,
    /// The limit for one caller across tools.
    Caller,
    /// The limit for one caller on one tool.
    Tool,
}

impl LimitScope {
    /// `global`, `caller` or `tool`.
    pub fn as_str(&self) -> &'static str {
        match self {
            LimitScope::Global => "global",
            LimitScope::Caller => "caller",
            LimitScope::Tool => "tool",
        }
    }
}

/// A refused call: which limit, and how long until a call would be allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// The limit that refused.
    pub scope: LimitScope,
    /// Time until the next call would pass.
    pub retry_after: Duration,
}

impl Limited {
    /// `retry_after` rounded up to whole seconds (at least 1), for `Retry-After`.
    pub fn retry_after_secs(&self) -> u64 {
        let secs = self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0);
        secs.max(1)
    }
}

type Direct<C> =
    governor::RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;
type Keyed<C> = governor::RateLimiter<
    String,
    DashMapStateStore<String>,
    C,
    NoOpMiddleware<<C as Clock>::Instant>,
>;

/// The limits of one agent. Checks go from the most specific (tool) to the most general
/// (global), so a caller hammering one tool is refused before spending the shared budget.
pub struct RateLimiter<C: Clock = DefaultClock> {
    clock: C,
    global: Option<Direct<C>>,
    per_caller: Option<Keyed<C>>,
    per_tool: HashMap<String, Keyed<C>>,
}

impl Default for RateLimiter<DefaultClock> {
    fn default() -> Self {
        Self::with_clock(DefaultClock::default())
    }
}

impl<C: Clock> std::fmt::Debug for RateLimiter<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("global", &self.global.is_some())
            .field("per_caller", &self.per_caller.is_some())
            .field("tools", &self.per_tool.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl<C: Clock + Clone> RateLimiter<C> {
    /// No limits yet, measured with `clock` (tests use governor's `FakeRelativeClock`).
    pub fn with_clock(clock: C) -> Self {
        Self {
            clock,
            global: None,
            per_caller: None,
            per_tool: HashMap::new(),
        }
    }

    /// Limit all calls together.
    pub fn global(mut self, limit: RateLimit) -> Self {
        self.global = Some(governor::RateLimiter::direct_with_clock(
            limit.quota(),
            self.clock.clone(),
        ));
        self
    }

    /// Limit each caller across all tools.
    pub fn per_caller(mut self, limit: RateLimit) -> Self {
        self.per_caller = Some(governor::RateLimiter::dashmap_with_clock(
            limit.quota(),
            self.clock.clone(),
        ));
        self
    }

    /// Limit each caller on `tool`.
    pub fn tool(mut self, tool: &str, limit: RateLimit) -> Self {
        self.per_tool.insert(
            tool.to_string(),
            governor::RateLimiter::dashmap_with_clock(limit.quota(), self.clock.clone()),
        );
        self
    }

    /// Whether any limit is configured.
    pub fn is_empty(&self) -> bool {
        self.global.is_none() && self.per_caller.is_none() && self.per_tool.is_empty()
    }

    /// Count one call of `tool` by `caller`, or say which limit refuses it and for how long.
    pub fn check(&self, tool: &str, caller: &str) -> Result<(), Limited> {
        let refused = |scope, not_until: governor::NotUntil<C::Instant>| Limited {
            scope,
            retry_after: not_until.wait_time_from(self.clock.now()),
        };
        if let Some(limiter) = self.per_tool.get(tool) {
            limiter
                .check_key(&caller.to_string())
                .map_err(|n| refused(LimitScope::Tool, n))?;
        }
        if let Some(limiter) = &self.per_caller {
            limiter
                .check_key(&caller.to_string())
                .map_err(|n| refused(LimitScope::Caller, n))?;
        }
        if let Some(limiter) = &self.global {
            limiter
                .check()
                .map_err(|n| refused(LimitScope::Global, n))?;
        }
        Ok(())
    }

    /// Drop per-caller state that has fully refilled (bounded memory under many callers).
    pub fn retain_recent(&self) {
        if let Some(limiter) = &self.per_caller {
            limiter.retain_recent();
        }
        for limiter in self.per_tool.values() {
            limiter.retain_recent();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn per_minute(n: u32) -> RateLimit {
        RateLimit::new(n, Duration::from_secs(60)).unwrap()
    }

    #[test]
    fn invalid_limits_are_refused() {
        assert!(RateLimit::new(0, Duration::from_secs(1)).is_err());
        assert!(RateLimit::new(1, Duration::ZERO).is_err());
    }

    #[test]
    fn tool_limit_is_per_caller_and_refills() {
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::with_clock(clock.clone()).tool("transfer", per_minute(2));
        assert!(limiter.check("transfer", "+1555").is_ok());
        assert!(limiter.check("transfer", "+1555").is_ok());
        let refused = limiter.check("transfer", "+1555").unwrap_err();
        assert_eq!(refused.scope, LimitScope::Tool);
        assert_eq!(refused.retry_after_secs(), 30);
        // Another caller and another tool are unaffected.
        assert!(limiter.check("transfer", "+1666").is_ok());
        assert!(limiter.check("balance", "+1555").is_ok());
        // One cell refills after 30 s.
        clock.advance(Duration::from_secs(30));
        assert!(limiter.check("transfer", "+1555").is_ok());
        assert!(limiter.check("transfer", "+1555").is_err());
    }

    #[test]
    fn caller_and_global_limits_apply_across_tools() {
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::with_clock(clock.clone())
            .per_caller(per_minute(3))
            .global(per_minute(4));
        assert!(limiter.check("a", "x").is_ok());
        assert!(limiter.check("b", "x").is_ok());
        assert!(limiter.check("c", "x").is_ok());
        assert_eq!(
            limiter.check("d", "x").unwrap_err().scope,
            LimitScope::Caller
        );
        assert!(limiter.check("a", "y").is_ok());
        assert_eq!(
            limiter.check("a", "z").unwrap_err().scope,
            LimitScope::Global
        );
        clock.advance(Duration::from_secs(60));
        assert!(limiter.check("a", "z").is_ok());
    }
}
