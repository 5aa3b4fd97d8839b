//! Rate limits: global, per caller, and per caller per tool, with the GCRA from `governor`.
//!
//! Owns the limits and the decision "may this caller call this tool now, and if not, how long
//! until they may". It never hand-rolls rate-limit math: governor does it, reading time from the
//! one injected [`Clock`] (so tests drive limits with a [`ManualClock`](crate::ManualClock)
//! instead of sleeping) through an adapter that only lets time move forward. It does not decide
//! HTTP statuses or log; the runtime turns a [`Limited`] into HTTP 429 with `Retry-After`.
//! Caller numbers are spoofable, which is why the global limit exists.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use dashmap::DashMap;
use governor::clock::Clock as GovernorClock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed, StateStore};
use governor::Quota;

use crate::clock::{Clock, SystemClock};

/// The network a source address is counted under by limits, locks and aggregated records: an
/// IPv4 (or IPv4-mapped) address as it is, an IPv6 address by its first `v6_prefix` bits (one
/// host commonly holds a /64 and often a /48 or /56: counted per address, it could rotate
/// through them).
pub fn source_network(ip: std::net::IpAddr, v6_prefix: u8) -> std::net::IpAddr {
    match ip.to_canonical() {
        std::net::IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let keep = u32::from(v6_prefix.min(128));
            let mask = u128::MAX.checked_shl(128 - keep).unwrap_or(0);
            std::net::IpAddr::V6(std::net::Ipv6Addr::from(bits & mask))
        }
        v4 => v4,
    }
}

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

/// The injected clock as governor reads it: milliseconds elapsed since the limiter was made,
/// counting only forward steps of the wall clock. A wall clock set back (an NTP correction)
/// counts as no time passing instead of pushing every caller's next allowed call into the
/// future; clones share one timeline, so every limit and every `retry_after` agree.
#[derive(Clone)]
struct Ticks(Arc<Forward>);

struct Forward {
    clock: Arc<dyn Clock>,
    /// (last wall-clock reading, milliseconds counted so far).
    state: Mutex<(u64, u64)>,
}

impl Ticks {
    fn new(clock: Arc<dyn Clock>) -> Self {
        let wall = clock.now_ms();
        Self(Arc::new(Forward {
            clock,
            state: Mutex::new((wall, 0)),
        }))
    }
}

impl GovernorClock for Ticks {
    type Instant = Duration;

    fn now(&self) -> Duration {
        let wall = self.0.clock.now_ms();
        // The state is two integers always written together; a poisoned lock still holds a
        // consistent pair.
        let mut state = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (last, elapsed) = *state;
        let elapsed = elapsed.saturating_add(wall.saturating_sub(last));
        *state = (wall, elapsed);
        Duration::from_millis(elapsed)
    }
}

type Direct = governor::RateLimiter<NotKeyed, InMemoryState, Ticks, NoOpMiddleware<Duration>>;

/// governor's per-key cells, in a map this module can also ask "is this key here?" without
/// creating it (governor's own DashMap store offers no such question). The limiter holds one
/// handle and [`PerKey`] another; governor still does every measurement.
#[derive(Clone, Default)]
struct Cells(Arc<DashMap<String, InMemoryState>>);

impl StateStore for Cells {
    type Key = String;

    fn measure_and_replace<T, F, E>(&self, key: &String, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        if let Some(cell) = self.0.get(key) {
            return cell.measure_and_replace(&NotKeyed::NonKey, f);
        }
        let cell = self.0.entry(key.clone()).or_default();
        cell.measure_and_replace(&NotKeyed::NonKey, f)
    }
}

impl ShrinkableKeyedStateStore<String> for Cells {
    fn retain_recent(&self, drop_below: Nanos) {
        // Reading a cell's arrival time through a closure that refuses leaves it unchanged.
        self.0.retain(|_, cell| {
            let tat = cell
                .measure_and_replace(&NotKeyed::NonKey, Err::<((), Nanos), _>)
                .err()
                .flatten();
            tat.is_some_and(|tat| tat > drop_below)
        });
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One per-key limit: governor's limiter over [`Cells`], and a handle on the same cells.
struct PerKey {
    limiter: governor::RateLimiter<String, Cells, Ticks, NoOpMiddleware<Duration>>,
    cells: Cells,
}

impl PerKey {
    fn new(limit: RateLimit, clock: Ticks) -> Self {
        let cells = Cells::default();
        Self {
            limiter: governor::RateLimiter::new(limit.quota(), cells.clone(), clock),
            cells,
        }
    }

    fn len(&self) -> usize {
        self.limiter.len()
    }

    fn retain_recent(&self) {
        self.limiter.retain_recent();
    }
}

/// The most keys one per-key limit keeps. Past it, state that has refilled is dropped, and if
/// the map is still full every new key shares [`OVERFLOW_KEY`]: memory stays bounded under a
/// flood of distinct callers, at the price of those callers sharing one budget.
pub const MAX_KEYS: usize = 100_000;

/// The shared key of callers that arrive while a per-key map is full.
pub const OVERFLOW_KEY: &str = "~overflow";

/// `key` as the limiter stores it: itself while there is room, [`OVERFLOW_KEY`] when full.
/// A full map is swept of refilled state at most once per [`SWEEP_EVERY`] (the sweep walks every
/// key: on every call it would make a flood cost quadratic time).
fn bounded_key(limiter: &PerKey, key: &str, sweeps: &Sweeps) -> String {
    if limiter.len() >= MAX_KEYS {
        if sweeps.due() {
            limiter.retain_recent();
        }
        if limiter.len() >= MAX_KEYS {
            return OVERFLOW_KEY.to_string();
        }
    }
    key.to_string()
}

/// How often a full per-key map may be swept.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// When a full map was last swept, by the limiter's own clock.
struct Sweeps {
    clock: Ticks,
    last_ms: std::sync::atomic::AtomicU64,
}

impl Sweeps {
    fn new(clock: Ticks) -> Self {
        Self {
            clock,
            last_ms: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Whether a sweep may run now (and, if so, record it).
    fn due(&self) -> bool {
        use std::sync::atomic::Ordering;
        let now = u64::try_from(self.clock.now().as_millis()).unwrap_or(u64::MAX);
        let last = self.last_ms.load(Ordering::Relaxed);
        let every = u64::try_from(SWEEP_EVERY.as_millis()).unwrap_or(u64::MAX);
        (last == 0 || now.saturating_sub(last) >= every)
            && self
                .last_ms
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

/// The limits of one agent, checked in three steps:
/// 1. the tool's and the caller's limits for keys that already have state, most specific
///    first, so a caller over their own limit is refused before spending the shared budget;
/// 2. the global limit;
/// 3. only then the keys seen for the first time, whose state is created here. A fresh key
///    always has its first call, so this order changes no decision, but while the global limit
///    refuses, a flood of new callers creates no state at all.
///
/// [`RateLimiter::check_local`] skips step 2, so its new keys get their state at once: use it
/// only for callers the caller of the limiter has already bounded. Per-key maps are also
/// capped at [`MAX_KEYS`].
///
/// Time comes from an injected [`Clock`] ([`RateLimiter::with_clock`]); the default reads the
/// system clock.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use voxguard_guard::{LimitScope, ManualClock, RateLimit, RateLimiter};
///
/// let clock = ManualClock::new(1_700_000_000);
/// let limiter = RateLimiter::with_clock(Arc::new(clock.clone()))
///     .per_caller(RateLimit::new(1, Duration::from_secs(10))?);
/// assert!(limiter.check("balance", "+15551234567").is_ok());
/// let refused = limiter.check("balance", "+15551234567").unwrap_err();
/// assert_eq!((refused.scope, refused.retry_after_secs()), (LimitScope::Caller, 10));
/// clock.advance(Duration::from_secs(10));
/// assert!(limiter.check("balance", "+15551234567").is_ok());
/// # Ok::<(), voxguard_guard::InvalidRateLimit>(())
/// ```
pub struct RateLimiter {
    clock: Ticks,
    sweeps: Sweeps,
    global: Option<Direct>,
    per_caller: Option<PerKey>,
    per_tool: HashMap<String, PerKey>,
}

impl Default for RateLimiter {
    /// No limits yet, measured with the [`SystemClock`].
    fn default() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("global", &self.global.is_some())
            .field("per_caller", &self.per_caller.is_some())
            .field("tools", &self.per_tool.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl RateLimiter {
    /// No limits yet, measured with `clock`: the runtime's one clock, or a
    /// [`ManualClock`](crate::ManualClock) in tests.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        let clock = Ticks::new(clock);
        Self {
            sweeps: Sweeps::new(clock.clone()),
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
        self.per_caller = Some(PerKey::new(limit, self.clock.clone()));
        self
    }

    /// Limit each caller on `tool`.
    pub fn tool(mut self, tool: &str, limit: RateLimit) -> Self {
        self.per_tool
            .insert(tool.to_string(), PerKey::new(limit, self.clock.clone()));
        self
    }

    /// Whether any limit is configured.
    pub fn is_empty(&self) -> bool {
        self.global.is_none() && self.per_caller.is_none() && self.per_tool.is_empty()
    }

    /// Count one call of `tool` by `caller`, or say which limit refuses it and for how long.
    pub fn check(&self, tool: &str, caller: &str) -> Result<(), Limited> {
        self.check_keys(tool, &[caller])
    }

    /// Count one call of `tool` that every key in `keys` answers for (e.g. the call's SWML
    /// render, which the caller cannot change, *and* the caller's number), or say which limit
    /// refuses it. The keys are checked in order, each in every scope before the next: a call
    /// refused on an earlier key (its render's budget spent) takes nothing from a later one's
    /// (a number anyone can claim). Keys new to a limit get their state only after the global
    /// limit has let the call through, and each per-key map holds at most [`MAX_KEYS`] keys,
    /// beyond which new keys share one bucket: a flood of distinct keys costs bounded memory.
    pub fn check_keys(&self, tool: &str, keys: &[&str]) -> Result<(), Limited> {
        self.check_keys_in(tool, keys, true)
    }

    /// [`check`](Self::check) by the per-tool and per-caller limits only, the global limit
    /// neither asked nor counted: for callers a global budget must not keep out (an operator
    /// at an address they signed in from before, while others spend the budget). A new key
    /// gets its state here whatever the global limit says, so the callers given to it must be
    /// bounded by other means.
    pub fn check_local(&self, tool: &str, caller: &str) -> Result<(), Limited> {
        self.check_keys_in(tool, &[caller], false)
    }

    fn check_keys_in(&self, tool: &str, keys: &[&str], global: bool) -> Result<(), Limited> {
        let refused = |scope, not_until: governor::NotUntil<Duration>| Limited {
            scope,
            retry_after: not_until.wait_time_from(self.clock.now()),
        };
        let mut fresh = Vec::new();
        let keyed = [
            self.per_tool.get(tool).map(|l| (LimitScope::Tool, l)),
            self.per_caller.as_ref().map(|l| (LimitScope::Caller, l)),
        ];
        for key in keys {
            for (scope, limit) in keyed.iter().flatten().copied() {
                let key = bounded_key(limit, key, &self.sweeps);
                if limit.cells.0.contains_key(&key) {
                    limit
                        .limiter
                        .check_key(&key)
                        .map_err(|n| refused(scope, n))?;
                } else {
                    fresh.push((scope, limit, key));
                }
            }
        }
        if let Some(limiter) = self.global.as_ref().filter(|_| global) {
            limiter
                .check()
                .map_err(|n| refused(LimitScope::Global, n))?;
        }
        for (scope, limit, key) in fresh {
            // Normally the first call of a fresh bucket; a concurrent call may have made it
            // first, and then it counts like any other.
            limit
                .limiter
                .check_key(&key)
                .map_err(|n| refused(scope, n))?;
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
    use crate::ManualClock;

    #[test]
    fn sources_are_counted_per_ipv4_address_and_per_ipv6_network() {
        let net = |ip: &str, prefix| source_network(ip.parse().expect("ip"), prefix).to_string();
        assert_eq!(net("198.51.100.7", 64), "198.51.100.7");
        assert_eq!(net("::ffff:198.51.100.7", 48), "198.51.100.7");
        assert_eq!(net("2001:db8:1:2:aaaa::1", 64), "2001:db8:1:2::");
        assert_eq!(net("2001:db8:1:2:aaaa::1", 48), "2001:db8:1::");
        assert_eq!(net("2001:db8:1:ffff::9", 48), "2001:db8:1::");
        assert_eq!(net("2001:db8::1", 128), "2001:db8::1");
        assert_eq!(net("2001:db8::1", 0), "::");
    }

    #[test]
    fn a_local_check_neither_asks_nor_spends_the_global_budget() {
        let (_clock, clock) = manual();
        let limiter = RateLimiter::with_clock(clock)
            .per_caller(RateLimit::new(3, Duration::from_secs(60)).expect("limit"))
            .global(RateLimit::new(2, Duration::from_secs(60)).expect("limit"));
        assert!(limiter.check("login", "a").is_ok());
        // Local checks leave the one global call left untouched...
        assert!(limiter.check_local("login", "b").is_ok());
        assert!(limiter.check_local("login", "b").is_ok());
        assert!(limiter.check("login", "c").is_ok());
        let refused = limiter
            .check("login", "d")
            .expect_err("the global budget is spent");
        assert_eq!(refused.scope, LimitScope::Global);
        // ...pass while it is spent, and still answer to the caller's own limit.
        assert!(limiter.check_local("login", "a").is_ok());
        assert!(limiter.check_local("login", "a").is_ok());
        let refused = limiter
            .check_local("login", "a")
            .expect_err("a's own budget is spent");
        assert_eq!(refused.scope, LimitScope::Caller);
    }

    fn manual() -> (ManualClock, Arc<dyn Clock>) {
        let clock = ManualClock::new(1_700_000_000);
        (clock.clone(), Arc::new(clock))
    }

    fn per_minute(n: u32) -> RateLimit {
        RateLimit::new(n, Duration::from_secs(60)).unwrap()
    }

    #[test]
    fn every_key_answers_and_the_maps_stay_bounded() {
        let (_clock, shared) = manual();
        let limiter = RateLimiter::with_clock(shared).per_caller(per_minute(2));
        // A spoofer varying the caller number within one render is caught by the render key.
        assert!(limiter.check_keys("t", &["+1001", "render-1"]).is_ok());
        assert!(limiter.check_keys("t", &["+1002", "render-1"]).is_ok());
        let refused = limiter.check_keys("t", &["+1003", "render-1"]).unwrap_err();
        assert_eq!(refused.scope, LimitScope::Caller);
        assert!(limiter.check_keys("t", &["+1003", "render-2"]).is_ok());
        // A flood of distinct keys never holds more than MAX_KEYS of them.
        for i in 0..(MAX_KEYS + 500) {
            let _ = limiter.check("t", &format!("k{i}"));
        }
        let map = limiter.per_caller.as_ref().expect("per-caller limit");
        assert!(map.len() <= MAX_KEYS + 1, "{} keys", map.len());
    }

    /// Issue 9: while the global limit refuses, new callers create no per-key state, and a
    /// caller over their own limit does not spend the global budget.
    #[test]
    fn the_global_limit_is_asked_before_new_keys_are_created() {
        let (clock, shared) = manual();
        let limiter = RateLimiter::with_clock(shared)
            .tool("t", per_minute(1))
            .per_caller(per_minute(1))
            .global(per_minute(3));
        assert!(limiter.check("t", "a").is_ok());
        // "a" is over its own limit: refused by the tool limit, the global budget untouched.
        for _ in 0..10 {
            assert_eq!(limiter.check("t", "a").unwrap_err().scope, LimitScope::Tool);
        }
        assert!(limiter.check("t", "b").is_ok());
        assert!(limiter.check("t", "c").is_ok());
        let keys = |l: &RateLimiter| {
            (
                l.per_tool.get("t").map_or(0, PerKey::len),
                l.per_caller.as_ref().map_or(0, PerKey::len),
            )
        };
        assert_eq!(keys(&limiter), (3, 3));
        // The global budget is spent: 1,000 new callers are refused and leave no state.
        for i in 0..1_000 {
            let refused = limiter.check("t", &format!("+1555{i:07}")).unwrap_err();
            assert_eq!(refused.scope, LimitScope::Global);
        }
        assert_eq!(keys(&limiter), (3, 3));
        // Refilled state is swept as before.
        clock.advance(Duration::from_secs(120));
        limiter.retain_recent();
        assert_eq!(keys(&limiter), (0, 0));
        assert!(limiter.check("t", "a").is_ok());
    }

    #[test]
    fn invalid_limits_are_refused() {
        assert!(RateLimit::new(0, Duration::from_secs(1)).is_err());
        assert!(RateLimit::new(1, Duration::ZERO).is_err());
    }

    #[test]
    fn tool_limit_is_per_caller_and_refills() {
        let (clock, shared) = manual();
        let limiter = RateLimiter::with_clock(shared).tool("transfer", per_minute(2));
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
        let (clock, shared) = manual();
        let limiter = RateLimiter::with_clock(shared)
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

    #[test]
    fn a_refused_call_is_allowed_again_after_the_period() {
        let (clock, shared) = manual();
        let limiter = RateLimiter::with_clock(shared).global(per_minute(3));
        for _ in 0..3 {
            assert!(limiter.check("a", "x").is_ok());
        }
        let refused = limiter.check("a", "x").unwrap_err();
        assert_eq!(refused.scope, LimitScope::Global);
        assert_eq!(refused.retry_after, Duration::from_secs(20));
        clock.advance(Duration::from_millis(19_999));
        assert!(limiter.check("a", "x").is_err(), "not a millisecond early");
        clock.advance(Duration::from_secs(41));
        for _ in 0..3 {
            assert!(limiter.check("a", "x").is_ok());
        }
        assert!(limiter.check("a", "x").is_err());
    }

    #[test]
    fn a_wall_clock_set_back_does_not_lock_callers_out() {
        let (clock, shared) = manual();
        let limiter = RateLimiter::with_clock(shared).per_caller(per_minute(1));
        assert!(limiter.check("a", "x").is_ok());
        clock.set(1_700_000_000 - 3_600);
        // The hour going back counts as no time: one minute still refills the caller.
        let refused = limiter.check("a", "x").unwrap_err();
        assert_eq!(refused.retry_after_secs(), 60);
        clock.advance(Duration::from_secs(60));
        assert!(limiter.check("a", "x").is_ok());
    }
}
