//! Failed-verification counters that survive hang-ups, restarts and parallel calls.
//!
//! This module owns the [`AttemptStore`] trait, its result types ([`Reservation`],
//! [`AttemptStatus`]) and the pure state transitions that every backend must follow. The counter
//! is keyed by a *subject* — a customer id, an account number — rather than by call, so an
//! attacker who hangs up and calls back keeps the count; consecutive lockouts grow longer and a
//! window caps the failures per subject ([`AttemptLimits`]). The protocol is pessimistic: an attempt
//! is counted as a failure when it is *reserved*, before the secret is checked, and only a
//! successful [`settle`](AttemptStore::settle) gives it back. Parallel attempts therefore can never
//! exceed the limit, and a crash between reservation and settlement counts as a failure. This
//! module must not decide what the limits are (that is policy, in the runtime's
//! `VerificationPolicy`), must not read the clock (callers pass `now`, so expiry is testable), and
//! must never store or see the secret being verified.

use crate::StoreError;

/// Server-side failed-attempt counters per subject, shared by every call and replica that uses
/// the same backend.
///
/// Time is whole unix seconds passed in by the caller. A lockout is *active* while
/// `locked_until > now` and *expired* once `locked_until <= now`. Instants are stored as signed
/// 64-bit integers, so deadlines saturate at `i64::MAX`. What the limits are is the caller's
/// to say, in [`AttemptLimits`]: consecutive lockouts escalate, and a window caps the failures
/// per subject (see there).
///
/// Subjects are opaque keys: the store keeps them as given, so callers pass a keyed hash when
/// the subject is personal data (the runtime does).
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
/// settled, its window ends, or an operator calls
/// [`reset_attempts`](AttemptStore::reset_attempts).
///
/// # Example
///
/// ```
/// use voxguard_store::{AttemptLimits, AttemptStore, MemoryStore, Reservation};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryStore::default();
/// let limits = AttemptLimits::fixed(3, 900);
/// let now = 1_700_000_000;
/// let reservation = store.reserve("customer-42", &limits, now).await?;
/// assert_eq!(reservation, Reservation::Granted { attempt: 1 });
/// // ... the PIN was wrong:
/// let status = store.settle("customer-42", false, &limits, now).await?;
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
    /// [`Reservation::Locked`] with that deadline. An expired lockout is cleared and the
    /// failures reset to 0 first (the escalation level stays); an ended window forgets the
    /// subject. Then, if the failures reach `limits.max_failures` or the window's failures
    /// reach `limits.window_cap`, the answer is `Locked { until: None }` (used up by attempts
    /// not yet settled); otherwise both counts are incremented (opening a window if none is
    /// open) and the answer is [`Reservation::Granted`] with the new failure count. A
    /// `max_failures` of 0 never grants anything.
    async fn reserve(
        &self,
        subject: &str,
        limits: &AttemptLimits,
        now: u64,
    ) -> Result<Reservation, StoreError>;

    /// Record the outcome of a granted attempt and return the resulting status.
    ///
    /// Success forgets the subject: no failures, no lockout, no escalation. Failure leaves the
    /// counts as reserved and, if either limit is reached, locks the subject: for the escalated
    /// lockout of [`AttemptLimits::lockout_for`] (one level more than before, unless a lockout
    /// is still active), and at least until the window ends if the window cap was reached. An
    /// existing later deadline is never shortened. Settling a subject that has no counter (it
    /// was reset in the meantime) changes nothing. The returned status is reported as
    /// [`attempt_status`](AttemptStore::attempt_status) would report it, so a lockout of 0
    /// seconds is already expired and reported as unlocked with 0 failures.
    async fn settle(
        &self,
        subject: &str,
        success: bool,
        limits: &AttemptLimits,
        now: u64,
    ) -> Result<AttemptStatus, StoreError>;

    /// The current status of `subject`, read-only. An expired lockout is reported as unlocked
    /// with 0 failures; an unknown subject, or one whose window has ended with no lockout
    /// active, as [`AttemptStatus::default`].
    async fn attempt_status(&self, subject: &str, now: u64) -> Result<AttemptStatus, StoreError>;

    /// Forget `subject` entirely, e.g. when an operator unlocks a customer. Resetting an unknown
    /// subject is not an error.
    async fn reset_attempts(&self, subject: &str) -> Result<(), StoreError>;

    /// Delete every subject that already reads as fresh at `now` (no active lockout, window
    /// ended) and return how many were deleted. It changes no answer of this trait, only what
    /// is kept: the runtime's maintenance task calls it so that callers who never come back
    /// leave nothing behind.
    async fn purge_attempts(&self, now: u64) -> Result<u64, StoreError>;
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

/// The rules one verification attempt is counted under; the runtime builds them from its
/// verification policy, the store only applies them.
///
/// * `max_failures` failed attempts in a row lock the subject. The *n*-th consecutive lockout
///   lasts `lockout_secs × 2^(n-1)`, capped at `max_lockout_secs` (never shorter than
///   `lockout_secs`); only a success, an operator reset or the end of the window forgets how
///   many lockouts there were.
/// * At most `window_cap` attempts fail within a window of `window_secs` that opens at the
///   first counted failure; the failure that reaches the cap locks the subject until the window
///   ends (or longer, if the escalated lockout is). When a window ends with no lockout active,
///   the subject starts afresh: its counts are forgotten and its row may be purged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptLimits {
    /// Failed attempts in a row before a lockout. 0 never grants an attempt.
    pub max_failures: u32,
    /// How long the first lockout lasts, in seconds.
    pub lockout_secs: u64,
    /// The longest an escalated lockout lasts, in seconds.
    pub max_lockout_secs: u64,
    /// Failed attempts allowed per window.
    pub window_cap: u32,
    /// The length of the failure window, in seconds.
    pub window_secs: u64,
}

impl AttemptLimits {
    /// `max_failures` in a row lock for `lockout_secs`, every time: no escalation, no window
    /// cap, and failures below the limit are kept until a success or a reset.
    pub const fn fixed(max_failures: u32, lockout_secs: u64) -> Self {
        Self {
            max_failures,
            lockout_secs,
            max_lockout_secs: lockout_secs,
            window_cap: u32::MAX,
            window_secs: u64::MAX,
        }
    }

    /// How long the `nth` consecutive lockout lasts (1-based; 0 counts as 1): `lockout_secs`
    /// doubled `nth - 1` times, saturating, capped at `max_lockout_secs` but never shorter than
    /// `lockout_secs`.
    pub fn lockout_for(&self, nth: u32) -> u64 {
        let doublings = nth.saturating_sub(1);
        let factor = 1u64.checked_shl(doublings).unwrap_or(u64::MAX);
        let cap = self.max_lockout_secs.max(self.lockout_secs);
        self.lockout_secs.saturating_mul(factor).min(cap)
    }
}

/// The largest instant a backend can store (SQLite integers are signed 64-bit).
pub(crate) const MAX_INSTANT: u64 = i64::MAX.unsigned_abs();

/// `now + secs`, saturating at [`MAX_INSTANT`].
pub(crate) fn deadline(now: u64, secs: u64) -> u64 {
    now.saturating_add(secs).min(MAX_INSTANT)
}

/// One subject's stored state. Every backend stores exactly these fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Row {
    /// Failures counted toward the next lockout (reserved ones included).
    pub(crate) failures: u32,
    /// The lockout deadline, active while `> now`.
    pub(crate) locked_until: Option<u64>,
    /// Lockouts since the last success, reset or window end: the escalation level.
    pub(crate) lockouts: u32,
    /// Failures counted in the current window (reserved ones included).
    pub(crate) window_failures: u32,
    /// When the current window ends; `<= now` means no window is open.
    pub(crate) window_until: u64,
}

/// What a transition does to the stored row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Write {
    /// Leave the row as it is (or absent).
    Keep,
    /// Store this row.
    Put(Row),
    /// Delete the row.
    Delete,
}

/// The row as it reads at `now`: an active lockout keeps everything; otherwise an ended window
/// forgets the subject, and an expired lockout restarts the failure count (the escalation level
/// and the window's count stay).
pub(crate) fn normalize(row: Row, now: u64) -> Row {
    if row.locked_until.is_some_and(|until| until > now) {
        return row;
    }
    if row.window_until <= now {
        return Row::default();
    }
    if row.locked_until.is_some() {
        return Row {
            failures: 0,
            locked_until: None,
            ..row
        };
    }
    row
}

/// How a stored row looks to readers at `now`.
pub(crate) fn view(row: Row, now: u64) -> AttemptStatus {
    let row = normalize(row, now);
    AttemptStatus {
        failures: row.failures,
        locked_until: row.locked_until,
    }
}

/// Whether the purge may delete `row` at `now`: it already reads as a fresh subject.
pub(crate) fn purgeable(row: Row, now: u64) -> bool {
    normalize(row, now) == Row::default()
}

/// The reserve transition: what to store and the answer.
pub(crate) fn reserve_step(
    stored: Option<Row>,
    limits: &AttemptLimits,
    now: u64,
) -> (Write, Reservation) {
    let stored = stored.unwrap_or_default();
    if let Some(until) = stored.locked_until.filter(|until| *until > now) {
        return (Write::Keep, Reservation::Locked { until: Some(until) });
    }
    let mut row = normalize(stored, now);
    if row.failures >= limits.max_failures || row.window_failures >= limits.window_cap {
        return (Write::Keep, Reservation::Locked { until: None });
    }
    row.failures = row.failures.saturating_add(1);
    row.window_failures = row.window_failures.saturating_add(1);
    if row.window_until <= now {
        row.window_until = deadline(now, limits.window_secs);
    }
    (
        Write::Put(row),
        Reservation::Granted {
            attempt: row.failures,
        },
    )
}

/// The settle transition: what to store and the resulting status.
///
/// A failure over either limit sets (or extends, never shortens) the lockout; it starts a new,
/// longer lockout level only when no lockout is active, so the settlements of parallel
/// attempts escalate once.
pub(crate) fn settle_step(
    stored: Option<Row>,
    success: bool,
    limits: &AttemptLimits,
    now: u64,
) -> (Write, AttemptStatus) {
    if success {
        return (Write::Delete, AttemptStatus::default());
    }
    let Some(mut row) = stored else {
        return (Write::Keep, AttemptStatus::default());
    };
    let capped = row.window_failures >= limits.window_cap;
    if row.failures >= limits.max_failures || capped {
        if row.locked_until.is_none_or(|until| until <= now) {
            row.lockouts = row.lockouts.saturating_add(1);
        }
        let mut until = deadline(now, limits.lockout_for(row.lockouts));
        if capped {
            until = until.max(row.window_until);
        }
        row.locked_until = Some(row.locked_until.map_or(until, |old| old.max(until)));
    }
    (Write::Put(row), view(row, now))
}

#[cfg(test)]
mod tests;
