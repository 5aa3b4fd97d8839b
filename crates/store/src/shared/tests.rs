//! The shared limit stores decide exactly as the in-process limiter (governor) does.

use std::sync::Arc;
use std::time::Duration;

use voxguard_guard::{Clock, LimitScope, ManualClock, RateLimit, RateLimiter};

use super::redis::tests::{cleanup, redis_url, unique_prefix};
use super::{GcraLimit, LimitCheck, LimitDecision, LimitStore};
use crate::postgres::{testing, PgLimits};
use crate::RedisState;

/// A limit both as governor's `RateLimit` and as the store's `GcraLimit`.
fn limit(burst: u32, emission_ms: u64) -> (RateLimit, GcraLimit) {
    let per = Duration::from_millis(emission_ms * u64::from(burst));
    (
        RateLimit::new(burst, per).expect("valid limit"),
        GcraLimit { burst, emission_ms },
    )
}

/// One request of the replay: at `advance_ms` after the previous one, a call of `tool` by
/// `caller` (checked against the tool, caller and global limits), or a call on the separate
/// "solo" limiter keyed by `caller`.
#[derive(Debug, Clone, Copy)]
struct Step {
    advance_ms: u64,
    tool: &'static str,
    caller: &'static str,
    solo: bool,
}

/// A fixed, varied sequence: hand-written bursts and refills first, then a seeded
/// pseudo-random walk over gaps (zero, sub-emission, exactly one emission, one off, long).
fn steps() -> Vec<Step> {
    let call = |advance_ms, tool, caller, solo| Step {
        advance_ms,
        tool,
        caller,
        solo,
    };
    let mut steps = Vec::new();
    // A burst on one caller until the tool limit refuses, then sub-emission retries.
    for _ in 0..5 {
        steps.push(call(0, "t", "alice", false));
    }
    steps.push(call(999, "t", "alice", false));
    steps.push(call(1, "t", "alice", false));
    steps.push(call(1, "t", "alice", false));
    // Other callers drain the global limit, which then refuses a caller within its limits.
    for caller in ["bob", "carol", "bob", "carol", "bob", "carol", "bob"] {
        steps.push(call(0, "u", caller, false));
    }
    steps.push(call(250, "u", "carol", false));
    steps.push(call(0, "t", "dave", false));
    steps.push(call(0, "t", "dave", false));
    // The solo limiter: a burst of 2, then exactly one emission later.
    for advance in [0, 0, 0, 29_999, 1, 0, 0] {
        steps.push(call(advance, "any", "alice", true));
    }
    let gaps = [
        0, 0, 0, 0, 0, 0, 0, 0, 1, 10, 50, 120, 199, 200, 201, 249, 250, 251, 600, 999, 1_000,
        1_001, 2_500, 40_000,
    ];
    let tools = ["t", "t", "u"];
    let callers = ["alice", "bob", "carol"];
    let mut seed: u64 = 0x5eed_1234_abcd_ef01;
    let mut next = |n: usize| {
        // xorshift64*: fixed and good enough to vary the walk.
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        let value = seed.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33;
        usize::try_from(value).unwrap_or(0) % n
    };
    for _ in 0..400 {
        let advance = gaps[next(gaps.len())];
        let solo = next(5) == 0;
        steps.push(call(advance, tools[next(3)], callers[next(3)], solo));
    }
    steps
}

/// What governor decided for each step: `None` for allowed, `Some((index, retry_ms))`.
type Expected = Vec<Option<(usize, u64)>>;

/// The limits of the replay: (tool "t", per caller, global, solo).
fn limits() -> [(RateLimit, GcraLimit); 4] {
    [
        limit(3, 1_000),
        limit(5, 200),
        limit(6, 250),
        limit(2, 30_000),
    ]
}

/// The checks the store gets for `step`, in the in-process limiter's order.
fn checks_of(step: &Step) -> Vec<(String, GcraLimit)> {
    let [tool, caller, global, solo] = limits().map(|(_, g)| g);
    if step.solo {
        return vec![(format!("solo/{}", step.caller), solo)];
    }
    let mut checks = Vec::new();
    if step.tool == "t" {
        checks.push((format!("tool/t/{}", step.caller), tool));
    }
    checks.push((format!("caller/{}", step.caller), caller));
    checks.push(("global".to_string(), global));
    checks
}

/// Replay `steps` on governor (through `voxguard_guard::RateLimiter` and a manual clock).
fn governor_decisions(steps: &[Step], start_ms: u64) -> (Expected, Vec<u64>) {
    let clock = ManualClock::new(start_ms / 1_000);
    let shared: Arc<dyn Clock> = Arc::new(clock.clone());
    let [tool, caller, global, solo] = limits().map(|(r, _)| r);
    let limiter = RateLimiter::with_clock(shared.clone())
        .tool("t", tool)
        .per_caller(caller)
        .global(global);
    let solo_limiter = RateLimiter::with_clock(shared.clone()).per_caller(solo);
    let mut expected = Vec::new();
    let mut times = Vec::new();
    for step in steps {
        clock.advance(Duration::from_millis(step.advance_ms));
        times.push(shared.now_ms());
        let result = if step.solo {
            solo_limiter.check("any", step.caller)
        } else {
            limiter.check(step.tool, step.caller)
        };
        // The checks are [tool (for "t"), caller, global], or [solo]: the index of a scope.
        let offset = usize::from(!step.solo && step.tool == "t");
        expected.push(result.err().map(|limited| {
            let index = match limited.scope {
                LimitScope::Tool => 0,
                LimitScope::Caller => offset,
                LimitScope::Global => offset + 1,
            };
            let retry = u64::try_from(limited.retry_after.as_millis()).unwrap_or(u64::MAX);
            (index, retry)
        }));
    }
    (expected, times)
}

/// Replay `steps` on `store` at `times` and compare with `expected`, step by step.
async fn replay_on(store: &dyn LimitStore, steps: &[Step], times: &[u64], expected: &Expected) {
    for (number, ((step, now), want)) in steps.iter().zip(times).zip(expected).enumerate() {
        let owned = checks_of(step);
        let checks: Vec<LimitCheck<'_>> = owned
            .iter()
            .map(|(key, limit)| LimitCheck { key, limit: *limit })
            .collect();
        let got = store.check(&checks, *now).await.expect("the store answers");
        match (got, want) {
            (LimitDecision::Allowed, None) => {}
            (
                LimitDecision::Denied {
                    index,
                    retry_after_ms,
                },
                Some((want_index, want_retry)),
            ) if index == *want_index && retry_after_ms.abs_diff(*want_retry) <= 1 => {}
            _ => panic!(
                "{}: step {number} {step:?} decided {got:?}, governor decided {want:?}",
                store.backend()
            ),
        }
    }
}

#[tokio::test]
async fn shared_limit_stores_replay_governor_decisions() {
    let steps = steps();
    let start_ms = 1_700_000_000_000;
    let (expected, times) = governor_decisions(&steps, start_ms);
    // The sequence is varied: every check position both passes and refuses somewhere.
    let denied: std::collections::BTreeSet<usize> =
        expected.iter().flatten().map(|(i, _)| *i).collect();
    assert_eq!(denied, [0, 1, 2].into(), "{expected:?}");
    let allowed = expected.iter().filter(|d| d.is_none()).count();
    assert!(allowed > 50 && allowed < steps.len() - 50, "{allowed}");

    if let Some(url) = redis_url("replay") {
        let prefix = unique_prefix("replay");
        let state = RedisState::connect(&url, &prefix).await.unwrap();
        replay_on(&state, &steps, &times, &expected).await;
        cleanup(&url, &prefix).await;
    }
    if let Some(database) = testing::database("replay").await {
        let limits = PgLimits::new(&database);
        replay_on(&limits, &steps, &times, &expected).await;
        database.drop_schema().await.unwrap();
    }
}
