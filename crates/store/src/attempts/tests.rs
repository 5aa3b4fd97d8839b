//! Unit tests of the pure attempt transitions that both backends follow.

use super::*;

const FIXED: AttemptLimits = AttemptLimits::fixed(3, 60);

/// A row with `failures` counted in a window that ends at `window_until`.
fn row(failures: u32, locked_until: Option<u64>, window_until: u64) -> Row {
    Row {
        failures,
        locked_until,
        lockouts: u32::from(locked_until.is_some()),
        window_failures: failures,
        window_until,
    }
}

fn put(write: Write) -> Row {
    match write {
        Write::Put(row) => row,
        other => panic!("expected a row to store, got {other:?}"),
    }
}

#[test]
fn reserve_step_follows_the_rules() {
    let (write, answer) = reserve_step(None, &FIXED, 10);
    assert_eq!(answer, Reservation::Granted { attempt: 1 });
    let stored = put(write);
    assert_eq!((stored.failures, stored.locked_until), (1, None));
    assert_eq!(
        stored.window_until, MAX_INSTANT,
        "a fixed window never ends"
    );

    let full = row(3, None, MAX_INSTANT);
    assert_eq!(
        reserve_step(Some(full), &FIXED, 10),
        (Write::Keep, Reservation::Locked { until: None })
    );
    let locked = row(3, Some(20), MAX_INSTANT);
    assert_eq!(
        reserve_step(Some(locked), &FIXED, 19),
        (Write::Keep, Reservation::Locked { until: Some(20) })
    );
    let (write, answer) = reserve_step(Some(locked), &FIXED, 20);
    assert_eq!(
        answer,
        Reservation::Granted { attempt: 1 },
        "a lockout expires at its deadline"
    );
    let stored = put(write);
    assert_eq!((stored.failures, stored.locked_until), (1, None));
    assert_eq!(stored.lockouts, 1, "the escalation level survives expiry");
    assert_eq!(
        reserve_step(None, &AttemptLimits::fixed(0, 60), 10),
        (Write::Keep, Reservation::Locked { until: None }),
        "limit 0 never grants"
    );
}

#[test]
fn settle_failure_locks_at_the_limit_and_never_shortens() {
    let below = row(2, None, MAX_INSTANT);
    assert_eq!(
        settle_step(Some(below), false, &FIXED, 100),
        (Write::Put(below), view(below, 100))
    );
    let at = row(3, None, MAX_INSTANT);
    assert_eq!(
        put(settle_step(Some(at), false, &FIXED, 100).0).locked_until,
        Some(160)
    );
    let long = row(3, Some(1_000), MAX_INSTANT);
    assert_eq!(
        put(settle_step(Some(long), false, &FIXED, 100).0).locked_until,
        Some(1_000)
    );
    assert_eq!(deadline(u64::MAX - 1, 60), MAX_INSTANT);
    assert_eq!(MAX_INSTANT, 9_223_372_036_854_775_807);
    // Success forgets; settling an unknown subject stores nothing.
    assert_eq!(
        settle_step(Some(long), true, &FIXED, 100),
        (Write::Delete, AttemptStatus::default())
    );
    assert_eq!(
        settle_step(None, false, &FIXED, 100),
        (Write::Keep, AttemptStatus::default())
    );
}

#[test]
fn expired_lockouts_read_as_fresh() {
    let locked = row(3, Some(50), 1_000);
    let status = AttemptStatus {
        failures: 3,
        locked_until: Some(50),
    };
    assert_eq!(view(locked, 49), status);
    assert_eq!(view(locked, 50), AttemptStatus::default());
    let counting = row(2, None, 1_000);
    let counting_status = AttemptStatus {
        failures: 2,
        locked_until: None,
    };
    assert_eq!(view(counting, 999), counting_status);
    // New with the window: failures below the limit are forgotten when it ends.
    assert_eq!(view(counting, 1_000), AttemptStatus::default());
    // A fixed window (saturated at the storable maximum) outlives any `now` a clock gives.
    assert_eq!(
        view(row(2, None, MAX_INSTANT), MAX_INSTANT - 1),
        counting_status
    );
}

#[test]
fn lockouts_double_up_to_the_cap() {
    let limits = AttemptLimits {
        max_failures: 3,
        lockout_secs: 900,
        max_lockout_secs: 4 * 3600,
        window_cap: 10,
        window_secs: 86_400,
    };
    let lengths: Vec<u64> = (0..=7).map(|n| limits.lockout_for(n)).collect();
    assert_eq!(
        lengths,
        [900, 900, 1_800, 3_600, 7_200, 14_400, 14_400, 14_400]
    );
    assert_eq!(limits.lockout_for(u32::MAX), 14_400, "no overflow");
    // A cap below the first lockout never shortens it; fixed limits never escalate.
    let odd = AttemptLimits {
        max_lockout_secs: 10,
        ..limits
    };
    assert_eq!(odd.lockout_for(5), 900);
    assert_eq!(FIXED.lockout_for(9), 60);
}

#[test]
fn consecutive_lockouts_escalate_once_per_lockout() {
    let limits = AttemptLimits {
        max_failures: 1,
        lockout_secs: 100,
        max_lockout_secs: 1_000,
        window_cap: 50,
        window_secs: 10_000,
    };
    let mut now = 0;
    let mut stored = None;
    let mut seen = Vec::new();
    for _ in 0..5 {
        let (write, answer) = reserve_step(stored, &limits, now);
        assert_eq!(answer, Reservation::Granted { attempt: 1 });
        stored = Some(put(write));
        let (write, status) = settle_step(stored, false, &limits, now);
        let row = put(write);
        // A second failure settling while the lockout is active (a parallel attempt) neither
        // escalates nor shortens.
        let (again, _) = settle_step(Some(row), false, &limits, now + 1);
        assert_eq!(put(again).lockouts, row.lockouts);
        let until = status.locked_until.expect("locked");
        seen.push(until - now);
        stored = Some(row);
        now = until;
    }
    assert_eq!(seen, [100, 200, 400, 800, 1_000]);
}

#[test]
fn the_window_cap_locks_until_the_window_ends() {
    let limits = AttemptLimits {
        max_failures: 3,
        lockout_secs: 10,
        max_lockout_secs: 10,
        window_cap: 4,
        window_secs: 1_000,
    };
    let mut stored = None;
    let mut now = 0;
    let mut status = AttemptStatus::default();
    for _ in 0..4 {
        let (write, answer) = reserve_step(stored, &limits, now);
        assert!(matches!(answer, Reservation::Granted { .. }), "{answer:?}");
        let (write, settled) = settle_step(Some(put(write)), false, &limits, now);
        stored = Some(put(write));
        status = settled;
        now = status.locked_until.unwrap_or(now);
    }
    // Failures 1-3 locked for 10 s; the 4th reached the cap: locked to the window's end.
    assert_eq!(status.locked_until, Some(1_000));
    assert_eq!(
        reserve_step(stored, &limits, 999).1,
        Reservation::Locked { until: Some(1_000) }
    );
    // Reservations that reach the cap before anything settles are refused without a deadline.
    let pending = Row {
        failures: 1,
        window_failures: 4,
        window_until: 1_000,
        ..Row::default()
    };
    assert_eq!(
        reserve_step(Some(pending), &limits, 5),
        (Write::Keep, Reservation::Locked { until: None })
    );
    assert_eq!(
        put(settle_step(Some(pending), false, &limits, 5).0).locked_until,
        Some(1_000)
    );
    // When the window ends the subject starts afresh, escalation included.
    let (write, answer) = reserve_step(stored, &limits, 1_000);
    assert_eq!(answer, Reservation::Granted { attempt: 1 });
    let fresh = put(write);
    assert_eq!((fresh.lockouts, fresh.window_failures), (0, 1));
    assert_eq!(fresh.window_until, 2_000);
}

#[test]
fn only_rows_that_read_as_fresh_are_purgeable() {
    assert!(purgeable(Row::default(), 0));
    assert!(!purgeable(row(1, None, 100), 99), "window open");
    assert!(purgeable(row(1, None, 100), 100), "window ended");
    assert!(!purgeable(row(3, Some(200), 100), 150), "still locked");
    assert!(purgeable(row(3, Some(200), 100), 200));
    assert!(
        !purgeable(row(3, Some(50), 100), 60),
        "expired lock, window open"
    );
}
