//! Failed-verification counters that survive hang-ups, restarts and parallel calls.
//!
//! This module owns the [`AttemptStore`] trait, its result types ([`Reservation`],
//! [`AttemptStatus`]) and the pure state transitions that every backend must follow. The counter
//! is keyed by a *subject* — a customer id, an account number — rather than by call, so an
//! attacker who hangs up and calls back keeps the count. The protocol is pessimistic: an attempt
//! is counted as a failure when it is *reserved*, before the secret is checked, and only a
//! successful [`settle`](AttemptStore::settle) gives it back. Parallel attempts therefore can never
//! exceed the limit, and a crash between reservation and settlement counts as a failure. This
//! module must not decide what the limit or the lockout is (that is policy, in `voxguard-guard`
//! and the runtime), must not read the clock (callers pass `now`, so expiry is testable), and
//! must never store or see the secret being verified.

use crate::StoreError;

/// Server-side failed-attempt counters per subject, shared by every call and replica that uses
/// the same backend.
///
/// Time is whole unix seconds passed in by the caller. A lockout is *active* while
/// `locked_until > now` and *expired* once `locked_until <= now`. Instants are stored as signed
/// 64-bit integers, so lockout deadlines saturate at `i64::MAX`.
///
/// The intended flow for one verification attempt is:
///
/// 1. [`reserve`](AttemptStore::reserve) — if it returns [`Reservation::Locked`], refuse without
///    checking the secret;
/// 2. check the secret;
/// 3. [`settle`](AttemptStore::settle) with the outcome.
///
/// A reservation that is never settled stays counted as a failure. Note that such failures do
/// not set a lockout deadline on their own: a subject whose every allowed attempt was reserved
/// but never settled stays refused (with `Locked { until: None }`) until a later failure is
/// settled or an operator calls [`reset_attempts`](AttemptStore::reset_attempts).
///
/// # Example
///
/// ```
/// use voxguard_store::{AttemptStore, MemoryStore, Reservation};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryStore::default();
/// let now = 1_700_000_000;
/// let reservation = store.reserve("customer-42", 3, now).await?;
/// assert_eq!(reservation, Reservation::Granted { attempt: 1 });
/// // ... the PIN was wrong:
/// let status = store.settle("customer-42", false, 3, 900, now).await?;
/// assert_eq!(status.failures, 1);
/// assert_eq!(status.locked_until, None);
/// # Ok::<(), voxguard_store::StoreError>(())
/// # }).unwrap();
/// ```
#[async_trait::async_trait]
pub trait AttemptStore: Send + Sync + 'static {
    /// Reserve one verification attempt for `subject`, counting it as a failure up front.
    ///
    /// Atomically: if the subject is locked (`locked_until > now`) the answer is
    /// [`Reservation::Locked`] with that deadline. An expired lockout (`locked_until <= now`) is
    /// cleared and the failures reset to 0 first. Then, if `failures >= limit`, the answer is
    /// `Locked { until: None }` (the limit is used up by attempts not yet settled); otherwise
    /// `failures` is incremented and the answer is [`Reservation::Granted`] with the new count.
    /// A `limit` of 0 never grants anything.
    async fn reserve(&self, subject: &str, limit: u32, now: u64)
        -> Result<Reservation, StoreError>;

    /// Record the outcome of a granted attempt and return the resulting status.
    ///
    /// Success forgets the subject: no failures, no lockout. Failure leaves the count as
    /// reserved and, if `failures >= limit`, sets `locked_until` to `now + lockout_secs` (an
    /// existing later deadline is never shortened). Settling a subject that has no counter (it
    /// was reset in the meantime) changes nothing. The returned status is reported as
    /// [`attempt_status`](AttemptStore::attempt_status) would report it, so a `lockout_secs` of
    /// 0 yields an already-expired lockout, reported as unlocked with 0 failures.
    async fn settle(
        &self,
        subject: &str,
        success: bool,
        limit: u32,
        lockout_secs: u64,
        now: u64,
    ) -> Result<AttemptStatus, StoreError>;

    /// The current status of `subject`, read-only. An expired lockout is reported as unlocked
    /// with 0 failures; an unknown subject as [`AttemptStatus::default`].
    async fn attempt_status(&self, subject: &str, now: u64) -> Result<AttemptStatus, StoreError>;

    /// Forget `subject` entirely, e.g. when an operator unlocks a customer. Resetting an unknown
    /// subject is not an error.
    async fn reset_attempts(&self, subject: &str) -> Result<(), StoreError>;
}

/// The answer to [`AttemptStore::reserve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// The attempt may proceed; it is already counted as a failure until settled.
    Granted {
        /// The 1-based number of this attempt since the last reset.
        attempt: u32,
    },
    /// No attempt may be made now.
    Locked {
        /// When the lockout expires (unix seconds), or `None` when the limit is used up by
        /// reserved attempts that have not been settled yet.
        until: Option<u64>,
    },
}

/// A subject's failed-attempt state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AttemptStatus {
    /// Attempts counted as failed since the last success or reset, including reserved attempts
    /// that have not been settled yet.
    pub failures: u32,
    /// When the active lockout expires (unix seconds), if there is one.
    pub locked_until: Option<u64>,
}

/// The largest instant a backend can store (SQLite integers are signed 64-bit).
pub(crate) const MAX_INSTANT: u64 = i64::MAX.unsigned_abs();

/// The lockout deadline for a failure settled at `now`, saturating at [`MAX_INSTANT`].
pub(crate) fn lock_deadline(now: u64, lockout_secs: u64) -> u64 {
    now.saturating_add(lockout_secs).min(MAX_INSTANT)
}

/// How a stored row looks to readers at `now`: an expired lockout reads as a fresh subject.
pub(crate) fn view(row: AttemptStatus, now: u64) -> AttemptStatus {
    match row.locked_until {
        Some(until) if until <= now => AttemptStatus::default(),
        _ => row,
    }
}

/// The reserve transition: the row to store (`None`: leave it as it is) and the answer.
///
/// The SQLite backend implements exactly this in SQL; the memory backend calls it directly.
pub(crate) fn reserve_step(
    row: AttemptStatus,
    limit: u32,
    now: u64,
) -> (Option<AttemptStatus>, Reservation) {
    let failures = match row.locked_until {
        Some(until) if until > now => {
            return (None, Reservation::Locked { until: Some(until) });
        }
        // An expired lockout starts the count afresh.
        Some(_) => 0,
        None => row.failures,
    };
    if failures >= limit {
        return (None, Reservation::Locked { until: None });
    }
    let attempt = failures.saturating_add(1);
    (
        Some(AttemptStatus {
            failures: attempt,
            locked_until: None,
        }),
        Reservation::Granted { attempt },
    )
}

/// The settle transition for a failure on an existing row: the row to store.
pub(crate) fn settle_failure_step(
    mut row: AttemptStatus,
    limit: u32,
    lockout_secs: u64,
    now: u64,
) -> AttemptStatus {
    if row.failures >= limit {
        let deadline = lock_deadline(now, lockout_secs);
        row.locked_until = Some(row.locked_until.map_or(deadline, |old| old.max(deadline)));
    }
    row
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn reserve_step_follows_the_rules() {
        let fresh = AttemptStatus::default();
        assert_eq!(
            reserve_step(fresh, 3, 10),
            (
                Some(AttemptStatus {
                    failures: 1,
                    locked_until: None
                }),
                Reservation::Granted { attempt: 1 }
            )
        );
        let full = AttemptStatus {
            failures: 3,
            locked_until: None,
        };
        assert_eq!(
            reserve_step(full, 3, 10),
            (None, Reservation::Locked { until: None })
        );
        let locked = AttemptStatus {
            failures: 3,
            locked_until: Some(20),
        };
        assert_eq!(
            reserve_step(locked, 3, 19),
            (None, Reservation::Locked { until: Some(20) })
        );
        assert_eq!(
            reserve_step(locked, 3, 20),
            (
                Some(AttemptStatus {
                    failures: 1,
                    locked_until: None
                }),
                Reservation::Granted { attempt: 1 }
            ),
            "a lockout expires at its deadline"
        );
        assert_eq!(
            reserve_step(fresh, 0, 10),
            (None, Reservation::Locked { until: None }),
            "limit 0 never grants"
        );
    }

    #[test]
    fn settle_failure_locks_at_the_limit_and_never_shortens() {
        let below = AttemptStatus {
            failures: 2,
            locked_until: None,
        };
        assert_eq!(settle_failure_step(below, 3, 60, 100), below);
        let at = AttemptStatus {
            failures: 3,
            locked_until: None,
        };
        assert_eq!(settle_failure_step(at, 3, 60, 100).locked_until, Some(160));
        let long = AttemptStatus {
            failures: 3,
            locked_until: Some(1_000),
        };
        assert_eq!(
            settle_failure_step(long, 3, 60, 100).locked_until,
            Some(1_000)
        );
        assert_eq!(lock_deadline(u64::MAX - 1, 60), MAX_INSTANT);
        assert_eq!(MAX_INSTANT, 9_223_372_036_854_775_807);
    }

    #[test]
    fn expired_lockouts_read_as_fresh() {
        let locked = AttemptStatus {
            failures: 3,
            locked_until: Some(50),
        };
        assert_eq!(view(locked, 49), locked);
        assert_eq!(view(locked, 50), AttemptStatus::default());
        let counting = AttemptStatus {
            failures: 2,
            locked_until: None,
        };
        assert_eq!(view(counting, u64::MAX), counting);
    }
}
