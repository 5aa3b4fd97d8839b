//! PgLimits against a real PostgreSQL (`VOXGUARD_TEST_POSTGRES_URL`), one schema per test.

use super::*;
use crate::postgres::testing;

const NOW: u64 = 1_700_000_000_000;

/// How many buckets the table holds.
async fn rows(database: &PgDatabase) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM rate_limits")
        .fetch_one(database.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn postgres_limit_checks_are_atomic_across_connections() {
    let Some(database) = testing::database("limits_atomic").await else {
        return;
    };
    // The test database's pool has 4 connections; 200 calls share them.
    let limits = PgLimits::new(&database);
    let limit = GcraLimit {
        burst: 50,
        emission_ms: 60_000,
    };
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let limits = limits.clone();
        tasks.push(tokio::spawn(async move {
            let checks = [LimitCheck { key: "hot", limit }];
            limits.check(&checks, NOW).await.unwrap()
        }));
    }
    let mut allowed = 0;
    for task in tasks {
        if task.await.unwrap() == LimitDecision::Allowed {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 50);
    database.drop_schema().await.unwrap();
}

#[tokio::test]
async fn postgres_limit_checks_in_opposite_orders_do_not_deadlock() {
    let Some(database) = testing::database("limits_order").await else {
        return;
    };
    let limits = PgLimits::new(&database);
    let limit = GcraLimit {
        burst: 1_000,
        emission_ms: 1,
    };
    let mut tasks = Vec::new();
    for i in 0..100 {
        let limits = limits.clone();
        tasks.push(tokio::spawn(async move {
            let (first, second) = if i % 2 == 0 { ("a", "b") } else { ("b", "a") };
            let checks = [
                LimitCheck { key: first, limit },
                LimitCheck { key: second, limit },
            ];
            limits.check(&checks, NOW).await
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), LimitDecision::Allowed);
    }
    database.drop_schema().await.unwrap();
}

#[tokio::test]
async fn postgres_purge_removes_refilled_buckets() {
    let Some(database) = testing::database("limits_purge").await else {
        return;
    };
    let limits = PgLimits::new(&database);
    let short = GcraLimit {
        burst: 2,
        emission_ms: 1_000,
    };
    let long = GcraLimit {
        burst: 2,
        emission_ms: 60_000,
    };
    let checks = [
        LimitCheck {
            key: "short",
            limit: short,
        },
        LimitCheck {
            key: "long",
            limit: long,
        },
    ];
    assert_eq!(
        limits.check(&checks, NOW).await.unwrap(),
        LimitDecision::Allowed
    );
    assert_eq!(rows(&database).await, 2);
    // Nothing has refilled yet.
    assert_eq!(limits.purge(NOW).await.unwrap(), 0);
    // One emission later the short bucket is as good as new; the long one is not.
    assert_eq!(limits.purge(NOW + 1_000).await.unwrap(), 1);
    assert_eq!(rows(&database).await, 1);
    // A purged bucket behaves as it did: a full burst again.
    let short_only = [LimitCheck {
        key: "short",
        limit: short,
    }];
    for _ in 0..2 {
        assert_eq!(
            limits.check(&short_only, NOW + 1_000).await.unwrap(),
            LimitDecision::Allowed
        );
    }
    assert_eq!(
        limits.check(&short_only, NOW + 1_000).await.unwrap(),
        LimitDecision::Denied {
            index: 0,
            retry_after_ms: 1_000
        }
    );
    assert_eq!(limits.purge(NOW + 60_000).await.unwrap(), 2);
    assert_eq!(rows(&database).await, 0);
    assert_eq!(LimitStore::backend(&limits), "postgres");
    LimitStore::ping(&limits).await.unwrap();
    database.drop_schema().await.unwrap();
}

#[tokio::test]
async fn postgres_denial_stops_at_the_first_refusing_check() {
    let Some(database) = testing::database("limits_stop").await else {
        return;
    };
    let limits = PgLimits::new(&database);
    let one = GcraLimit {
        burst: 1,
        emission_ms: 10_000,
    };
    let a = [LimitCheck {
        key: "a",
        limit: one,
    }];
    limits.check(&a, NOW).await.unwrap();
    // "x" counts, "a" refuses, "y" is not looked at.
    let checks = [
        LimitCheck {
            key: "x",
            limit: one,
        },
        LimitCheck {
            key: "a",
            limit: one,
        },
        LimitCheck {
            key: "y",
            limit: one,
        },
    ];
    assert_eq!(
        limits.check(&checks, NOW + 4_000).await.unwrap(),
        LimitDecision::Denied {
            index: 1,
            retry_after_ms: 6_000
        }
    );
    let x = [LimitCheck {
        key: "x",
        limit: one,
    }];
    let y = [LimitCheck {
        key: "y",
        limit: one,
    }];
    assert!(matches!(
        limits.check(&x, NOW + 4_000).await.unwrap(),
        LimitDecision::Denied { .. }
    ));
    assert_eq!(
        limits.check(&y, NOW + 4_000).await.unwrap(),
        LimitDecision::Allowed
    );
    database.drop_schema().await.unwrap();
}
