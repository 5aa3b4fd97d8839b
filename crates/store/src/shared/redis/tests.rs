//! RedisState against a real Redis (`VOXGUARD_TEST_REDIS_URL`), each test under its own prefix.

use std::time::Duration;

use tokio::sync::broadcast;

use super::*;

/// The variable naming the test server.
const URL_VAR: &str = "VOXGUARD_TEST_REDIS_URL";

/// A generous bound for anything that should happen "soon" on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(30);

/// The test server's URL, or `None` (after saying so on stderr) when it is not configured.
pub(crate) fn redis_url(label: &str) -> Option<String> {
    let url = std::env::var(URL_VAR).ok().filter(|u| !u.is_empty());
    if url.is_none() {
        eprintln!("skipped on Redis ({label}): {URL_VAR} is not set");
    }
    url
}

/// A key prefix no other test (or test run) uses.
pub(crate) fn unique_prefix(label: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "voxguard-test:{label}:{}:{}:{nanos}:",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A plain connection to the test server, for looking behind the state's back.
async fn plain(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Delete every key under `prefix` (prefixes are plain: no glob characters).
pub(crate) async fn cleanup(url: &str, prefix: &str) {
    let mut connection = plain(url).await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut connection)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: u64 = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut connection)
            .await
            .unwrap();
    }
}

/// The next notice other than `Resync`, within [`PATIENCE`].
async fn next_notice(receiver: &mut broadcast::Receiver<Notice>, skip_resync: bool) -> Notice {
    loop {
        let notice = tokio::time::timeout(PATIENCE, receiver.recv())
            .await
            .expect("a notice arrives")
            .expect("the channel stays open");
        if !(skip_resync && notice == Notice::Resync) {
            return notice;
        }
    }
}

const NOW: u64 = 1_700_000_000_000;

#[tokio::test]
async fn redis_checks_are_atomic_across_connections() {
    let Some(url) = redis_url("atomic") else {
        return;
    };
    let prefix = unique_prefix("atomic");
    let mut states = Vec::new();
    for _ in 0..4 {
        states.push(RedisState::connect(&url, &prefix).await.unwrap());
    }
    let limit = GcraLimit {
        burst: 50,
        emission_ms: 60_000,
    };
    let mut tasks = Vec::new();
    for i in 0..200 {
        let state = states[i % 4].clone();
        tasks.push(tokio::spawn(async move {
            let checks = [LimitCheck { key: "hot", limit }];
            state.check(&checks, NOW).await.unwrap()
        }));
    }
    let mut allowed = 0;
    for task in tasks {
        if task.await.unwrap() == LimitDecision::Allowed {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 50);
    cleanup(&url, &prefix).await;
}

/// Call `i` of the batching tests: its now and its checks (key, limit). One of five callers
/// (20 at once, one more a minute) and the global bucket (70 at once), 1 s apart so buckets
/// refill as they go; every 7th call's clock is 5 s behind the others, every 11th names its
/// caller's bucket twice, every 13th has a stricter global limit, so that every case of the
/// script meets every other in one batch.
fn batch_call(i: usize) -> (u64, Vec<(String, GcraLimit)>) {
    let caller = GcraLimit {
        burst: 20,
        emission_ms: 60_000,
    };
    let global = GcraLimit {
        burst: if i % 13 == 0 { 60 } else { 70 },
        emission_ms: 60_000,
    };
    let now = NOW + 1_000 * i as u64 - if i % 7 == 0 { 5_000 } else { 0 };
    let mut checks = vec![(format!("caller-{}", i % 5), caller)];
    if i % 11 == 0 {
        checks.push((format!("caller-{}", i % 5), caller));
    }
    checks.push(("global".to_string(), global));
    (now, checks)
}

/// Decide call `i` of [`batch_call`] on `state`.
async fn decide_call(state: &RedisState, i: usize) -> Result<LimitDecision, StoreError> {
    let (now, checks) = batch_call(i);
    let checks: Vec<LimitCheck<'_>> = checks
        .iter()
        .map(|(key, limit)| LimitCheck { key, limit: *limit })
        .collect();
    state.check(&checks, now).await
}

/// Calls queued together are decided by one script, each exactly as if it had been sent
/// alone and in the order queued: the same decisions (which check refused, how long to wait)
/// and the same stored buckets and expiries as the same calls sent one at a time. The test
/// runtime has one thread, so all 300 calls are queued before the batcher runs.
#[tokio::test]
async fn redis_batched_calls_decide_as_sent_one_at_a_time() {
    let Some(url) = redis_url("batched") else {
        return;
    };
    let batched_prefix = unique_prefix("batched");
    let alone_prefix = unique_prefix("alone");
    let batched = RedisState::connect(&url, &batched_prefix).await.unwrap();
    let alone = RedisState::connect(&url, &alone_prefix).await.unwrap();
    const CALLS: usize = 300;
    let mut tasks = Vec::new();
    for i in 0..CALLS {
        let state = batched.clone();
        tasks.push(tokio::spawn(async move {
            decide_call(&state, i).await.unwrap()
        }));
    }
    let mut together = Vec::new();
    for task in tasks {
        together.push(task.await.unwrap());
    }
    let mut one_at_a_time = Vec::new();
    for i in 0..CALLS {
        one_at_a_time.push(decide_call(&alone, i).await.unwrap());
    }
    assert_eq!(together, one_at_a_time);
    let count = |wanted: fn(&LimitDecision) -> bool| together.iter().filter(|d| wanted(d)).count();
    assert!(count(|d| *d == LimitDecision::Allowed) > 70, "{together:?}");
    assert!(count(|d| matches!(d, LimitDecision::Denied { index: 0, .. })) > 0);
    assert!(count(|d| matches!(d, LimitDecision::Denied { index: 1 | 2, .. })) > 0);
    // Batched for real: a few scripts for 300 calls, against one per call alone.
    assert_eq!(alone.scripts_sent(), CALLS as u64);
    assert!(batched.scripts_sent() <= 4, "{}", batched.scripts_sent());
    // And the buckets are left as the calls one at a time left them: the same `tat`, and the
    // same expiry (measured from each SET, so the two differ by the seconds between them; a
    // wrong expiry would be off by up to the 300 s the calls span).
    let mut connection = plain(&url).await;
    for key in [
        "caller-0", "caller-1", "caller-2", "caller-3", "caller-4", "global",
    ] {
        let get = |command: &str, state: &RedisState| {
            redis::cmd(command).arg(state.limit_key(key)).clone()
        };
        let stored: Option<u64> = get("GET", &batched)
            .query_async(&mut connection)
            .await
            .unwrap();
        let expected: Option<u64> = get("GET", &alone)
            .query_async(&mut connection)
            .await
            .unwrap();
        assert!(stored.is_some(), "{key}");
        assert_eq!(stored, expected, "{key}");
        let ttl: i64 = get("PTTL", &batched)
            .query_async(&mut connection)
            .await
            .unwrap();
        let expected: i64 = get("PTTL", &alone)
            .query_async(&mut connection)
            .await
            .unwrap();
        assert!(
            ttl > 0 && (ttl - expected).abs() < 60_000,
            "{key}: {ttl} against {expected}"
        );
    }
    cleanup(&url, &batched_prefix).await;
    cleanup(&url, &alone_prefix).await;
}

/// A bucket two calls of one batch passed expires when it has refilled after the LATER one:
/// `tat - now` of the last passing call, as the same calls one at a time leave it.
#[tokio::test]
async fn redis_a_batch_leaves_each_bucket_expiring_when_refilled() {
    let Some(url) = redis_url("batch-expiry") else {
        return;
    };
    let prefix = unique_prefix("batch-expiry");
    let state = RedisState::connect(&url, &prefix).await.unwrap();
    let limit = GcraLimit {
        burst: 5,
        emission_ms: 60_000,
    };
    let mut tasks = Vec::new();
    for now in [NOW, NOW + 10_000] {
        let state = state.clone();
        tasks.push(tokio::spawn(async move {
            state.check(&[LimitCheck { key: "two", limit }], now).await
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), LimitDecision::Allowed);
    }
    assert_eq!(state.scripts_sent(), 1);
    let mut connection = plain(&url).await;
    // tat: NOW + 60 s after the first, NOW + 120 s after the second; refilled 110 s after the
    // second's now (120 s would be counted from the first's).
    let tat: u64 = redis::cmd("GET")
        .arg(state.limit_key("two"))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(tat, NOW + 120_000);
    let ttl: i64 = redis::cmd("PTTL")
        .arg(state.limit_key("two"))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!(ttl > 80_000 && ttl <= 110_000, "{ttl}");
    cleanup(&url, &prefix).await;
}

/// A batch Redis fails (here: one bucket holds text) refuses every call in it as unavailable
/// and stores nothing of it; the next batch is decided normally.
#[tokio::test]
async fn redis_a_failed_batch_refuses_all_its_calls_and_stores_nothing() {
    let Some(url) = redis_url("failed-batch") else {
        return;
    };
    let prefix = unique_prefix("failed-batch");
    let state = RedisState::connect(&url, &prefix).await.unwrap();
    let mut connection = plain(&url).await;
    let _: () = redis::cmd("SET")
        .arg(state.limit_key("poisoned"))
        .arg("not a number")
        .query_async(&mut connection)
        .await
        .unwrap();
    let one = GcraLimit {
        burst: 1,
        emission_ms: 60_000,
    };
    let mut tasks = Vec::new();
    for key in ["fine", "poisoned", "fine"] {
        let state = state.clone();
        tasks.push(tokio::spawn(async move {
            state.check(&[LimitCheck { key, limit: one }], NOW).await
        }));
    }
    for task in tasks {
        let outcome = task.await.unwrap();
        assert!(
            matches!(outcome, Err(StoreError::Unavailable { .. })),
            "{outcome:?}"
        );
    }
    assert_eq!(state.scripts_sent(), 1);
    // Nothing of the failed batch was counted: "fine" still has its one call.
    let fine = [LimitCheck {
        key: "fine",
        limit: one,
    }];
    assert_eq!(
        state.check(&fine, NOW).await.unwrap(),
        LimitDecision::Allowed
    );
    cleanup(&url, &prefix).await;
}

/// Without its batcher a state refuses every call as unavailable and is not ready.
#[tokio::test]
async fn redis_without_its_batcher_fails_closed_and_is_not_ready() {
    let Some(url) = redis_url("no-batcher") else {
        return;
    };
    let prefix = unique_prefix("no-batcher");
    let state = RedisState::connect(&url, &prefix).await.unwrap();
    LimitStore::ping(&state).await.unwrap();
    state.inner.batcher.abort();
    while !state.inner.batcher.is_finished() {
        tokio::task::yield_now().await;
    }
    let checks = [LimitCheck {
        key: "any",
        limit: GcraLimit {
            burst: 5,
            emission_ms: 1_000,
        },
    }];
    let outcome = state.check(&checks, NOW).await;
    assert!(
        matches!(outcome, Err(StoreError::Unavailable { .. })),
        "{outcome:?}"
    );
    assert!(LimitStore::ping(&state).await.is_err());
    cleanup(&url, &prefix).await;
}

/// A caller that stopped waiting before its batch left is not counted: with a burst of one,
/// the next call still passes.
#[tokio::test]
async fn redis_a_call_given_up_before_its_batch_is_not_counted() {
    use futures_util::FutureExt as _;
    let Some(url) = redis_url("given-up") else {
        return;
    };
    let prefix = unique_prefix("given-up");
    let state = RedisState::connect(&url, &prefix).await.unwrap();
    let checks = [LimitCheck {
        key: "one",
        limit: GcraLimit {
            burst: 1,
            emission_ms: 60_000,
        },
    }];
    // Polled once (so queued), then dropped before the batcher ran.
    assert!(state.check(&checks, NOW).now_or_never().is_none());
    assert_eq!(
        state.check(&checks, NOW).await.unwrap(),
        LimitDecision::Allowed
    );
    assert_eq!(
        state.check(&checks, NOW).await.unwrap(),
        LimitDecision::Denied {
            index: 0,
            retry_after_ms: 60_000
        }
    );
    assert_eq!(state.scripts_sent(), 2);
    cleanup(&url, &prefix).await;
}

#[tokio::test]
async fn redis_buckets_expire_once_refilled() {
    let Some(url) = redis_url("expire") else {
        return;
    };
    let prefix = unique_prefix("expire");
    let state = RedisState::connect(&url, &prefix).await.unwrap();
    let slow = GcraLimit {
        burst: 3,
        emission_ms: 60_000,
    };
    for _ in 0..3 {
        let checks = [LimitCheck {
            key: "slow",
            limit: slow,
        }];
        assert_eq!(
            state.check(&checks, NOW).await.unwrap(),
            LimitDecision::Allowed
        );
    }
    let mut connection = plain(&url).await;
    // Three calls: the bucket refills (and vanishes) 3 emissions from now.
    let ttl: i64 = redis::cmd("PTTL")
        .arg(state.limit_key("slow"))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!(ttl > 120_000 && ttl <= 180_000, "{ttl}");
    // A refused call does not extend it.
    let checks = [LimitCheck {
        key: "slow",
        limit: slow,
    }];
    assert_eq!(
        state.check(&checks, NOW).await.unwrap(),
        LimitDecision::Denied {
            index: 0,
            retry_after_ms: 60_000
        }
    );
    // A fast bucket is gone once refilled (its `now` is the caller's, its TTL Redis' own).
    let fast = [LimitCheck {
        key: "fast",
        limit: GcraLimit {
            burst: 1,
            emission_ms: 20,
        },
    }];
    state.check(&fast, NOW).await.unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let exists: u64 = redis::cmd("EXISTS")
            .arg(state.limit_key("fast"))
            .query_async(&mut connection)
            .await
            .unwrap();
        if exists == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the bucket stays");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Every key this state wrote starts with the prefix.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(keys, vec![state.limit_key("slow")]);
    cleanup(&url, &prefix).await;
}

#[tokio::test]
async fn redis_notices_reach_every_replica_and_survive_a_killed_subscription() {
    let Some(url) = redis_url("notices") else {
        return;
    };
    let prefix = unique_prefix("notices");
    // The states connect as a user of their own, so that cutting "their" pub/sub connections
    // leaves those of every other test (and every other user of the server) alone.
    let mut admin = plain(&url).await;
    let user = prefix.replace(':', "-");
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg(&user)
        .arg("on")
        .arg(">notices-test")
        .arg("~*")
        .arg("&*")
        .arg("+@all")
        .query_async(&mut admin)
        .await
        .unwrap();
    let address = redis::IntoConnectionInfo::into_connection_info(url.as_str())
        .unwrap()
        .addr;
    let user_url = format!("redis://{user}:notices-test@{address}/");
    let one = RedisState::connect(&user_url, &prefix).await.unwrap();
    let two = RedisState::connect(&user_url, &prefix).await.unwrap();
    let mut on_one = one.subscribe();
    let mut on_two = two.subscribe();
    one.publish(Notice::Emergency).await.unwrap();
    assert_eq!(next_notice(&mut on_one, true).await, Notice::Emergency);
    assert_eq!(next_notice(&mut on_two, true).await, Notice::Emergency);

    // Their pub/sub connections are cut: both re-subscribe and say so.
    let killed: u64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .arg("USER")
        .arg(&user)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(killed, 2);
    // First the loss (local: caches stop trusting themselves), then the new subscription.
    for on in [&mut on_one, &mut on_two] {
        assert_eq!(next_notice(on, false).await, Notice::Lost);
        assert_eq!(next_notice(on, false).await, Notice::Resync);
    }
    two.publish(Notice::Emergency).await.unwrap();
    assert_eq!(next_notice(&mut on_one, true).await, Notice::Emergency);
    assert_eq!(next_notice(&mut on_two, true).await, Notice::Emergency);
    // A clone shares the subscription.
    let mut on_clone = one.clone().subscribe();
    two.publish(Notice::Resync).await.unwrap();
    assert_eq!(next_notice(&mut on_clone, false).await, Notice::Resync);
    // Session notices carry a digest; the local-only notice is never sent.
    let digest = "0123456789abcdef0123456789abcdef".to_string();
    one.publish(Notice::Session(digest.clone())).await.unwrap();
    assert_eq!(
        next_notice(&mut on_two, true).await,
        Notice::Session(digest)
    );
    assert!(one.publish(Notice::Lost).await.is_err());
    assert_eq!(Notifier::backend(&one), "redis");
    Notifier::ping(&one).await.unwrap();
    drop((one, two));
    let _: u64 = redis::cmd("ACL")
        .arg("DELUSER")
        .arg(&user)
        .query_async(&mut admin)
        .await
        .unwrap();
}

#[tokio::test]
async fn redis_pings_keep_a_healthy_subscription() {
    let Some(url) = redis_url("pings") else {
        return;
    };
    let prefix = unique_prefix("pings");
    let state = RedisState::connect_pinging(&url, &prefix, Duration::from_millis(50))
        .await
        .unwrap();
    let mut notices = state.subscribe();
    // Many pings answered: the subscription is kept (no Resync), and notices still arrive.
    tokio::time::sleep(Duration::from_millis(600)).await;
    state.publish(Notice::Emergency).await.unwrap();
    assert_eq!(next_notice(&mut notices, false).await, Notice::Emergency);
}

#[tokio::test]
async fn unreachable_redis_is_unavailable_not_a_panic() {
    // Nothing listens on port 1.
    let refused = tokio::time::timeout(
        PATIENCE,
        RedisState::connect("redis://127.0.0.1:1/", "voxguard-test:unreachable:"),
    )
    .await
    .expect("connecting gives up by itself");
    let error = refused.expect_err("nothing listens there");
    assert!(matches!(error, StoreError::Unavailable { .. }), "{error:?}");
    assert!(!error.to_string().contains("127.0.0.1"), "{error}");

    // A server that accepts connections and never answers: each command times out.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = silent.local_addr().unwrap();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let url = format!("redis://{address}/");
    let outcome = tokio::time::timeout(PATIENCE, async {
        let state = RedisState::connect(&url, "voxguard-test:silent:").await?;
        let checks = [LimitCheck {
            key: "k",
            limit: GcraLimit {
                burst: 1,
                emission_ms: 1_000,
            },
        }];
        state.check(&checks, NOW).await
    })
    .await
    .expect("a silent server is given up on");
    assert!(
        matches!(outcome, Err(StoreError::Unavailable { .. })),
        "{outcome:?}"
    );
    holder.abort();
}

#[test]
fn limits_as_the_script_reads_them() {
    // governor: t = emission, tau = t * (burst - 1); nonsense limits are read as the tightest.
    let read = |burst, emission_ms| script_limit(GcraLimit { burst, emission_ms });
    assert_eq!(read(5, 200), (200, 800));
    assert_eq!(read(1, 1_000), (1_000, 0));
    assert_eq!(read(0, 0), (1, 0));
    assert_eq!(read(u32::MAX, u64::MAX), (MAX_MS, MAX_MS));
}
