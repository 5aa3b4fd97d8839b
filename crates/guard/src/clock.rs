//! Wall-clock time in unix milliseconds and seconds, behind a trait so every time-based decision
//! (audit timestamps, session expiry, confirmations, lockouts, rate limits) is testable.
//!
//! This module owns [`Clock`] and its two implementations: [`SystemClock`], which reads the
//! operating system's clock, and [`ManualClock`], which tests (and simulations) set and advance
//! by hand so lockout and token expiry can be checked without sleeping. It must not sleep, spawn
//! timers or decide what any deadline means; callers read `now` once and pass it to the logic and
//! stores that compare instants.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time, injected so that every expiry decision is testable. The runtime
/// holds one and hands it to everything that reads the time.
pub trait Clock: Send + Sync + 'static {
    /// The current time in milliseconds since the unix epoch.
    fn now_ms(&self) -> u64;

    /// The current time in whole seconds since the unix epoch (rounded down).
    fn now_unix(&self) -> u64 {
        self.now_ms() / 1_000
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now_ms(&self) -> u64 {
        (**self).now_ms()
    }
}

impl<C: Clock + ?Sized> Clock for Box<C> {
    fn now_ms(&self) -> u64 {
        (**self).now_ms()
    }
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    /// Milliseconds since the unix epoch; 0 if the system clock is set before 1970.
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            })
    }
}

/// A clock that only moves when told to.
///
/// Clones share the same time: advance one and every clone (and every component holding one)
/// sees the new time. Time is kept in milliseconds, so sub-second [`advance`](Self::advance)s add
/// up; [`Clock::now_unix`] reports whole seconds, rounded down. Arithmetic saturates instead of
/// wrapping. [`ManualClock::default`] starts at the epoch.
///
/// ```
/// use std::time::Duration;
/// use voxguard_guard::{Clock, ManualClock};
///
/// let clock = ManualClock::new(1_700_000_000);
/// let shared = clock.clone();
/// clock.advance(Duration::from_secs(90));
/// assert_eq!(shared.now_unix(), 1_700_000_090);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    millis: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock reading `start_unix` seconds.
    pub fn new(start_unix: u64) -> Self {
        let clock = Self::default();
        clock.set(start_unix);
        clock
    }

    /// Move the clock forward by `by` (saturating at the largest representable time).
    pub fn advance(&self, by: Duration) {
        let step = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        // `fetch_update` with a closure that always returns `Some` cannot fail.
        let _ = self
            .millis
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |millis| {
                Some(millis.saturating_add(step))
            });
    }

    /// Jump to exactly `unix` seconds (forwards or backwards). Times past `u64::MAX / 1000`
    /// seconds (some 584 million years from now) saturate there.
    pub fn set(&self, unix: u64) {
        self.millis
            .store(unix.saturating_mul(1_000), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.millis.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_reads_the_present() {
        // 2020-01-01T00:00:00Z: any working system clock is past it.
        assert!(SystemClock.now_unix() > 1_577_836_800);
    }

    #[test]
    fn manual_clock_is_set_and_advanced_by_hand() {
        let clock = ManualClock::new(1_000);
        assert_eq!(clock.now_unix(), 1_000);
        clock.advance(Duration::from_secs(60));
        assert_eq!(clock.now_unix(), 1_060);
        clock.set(5);
        assert_eq!(clock.now_unix(), 5, "set may move backwards");
        assert_eq!(ManualClock::default().now_unix(), 0);
    }

    #[test]
    fn sub_second_advances_add_up() {
        let clock = ManualClock::new(10);
        clock.advance(Duration::from_millis(600));
        assert_eq!(clock.now_unix(), 10);
        clock.advance(Duration::from_millis(600));
        assert_eq!(clock.now_unix(), 11);
    }

    #[test]
    fn clones_and_trait_objects_share_the_time() {
        let clock = ManualClock::new(100);
        let clone = clock.clone();
        let shared: Arc<dyn Clock> = Arc::new(clock.clone());
        let boxed: Box<dyn Clock> = Box::new(clock.clone());
        clock.advance(Duration::from_secs(1));
        assert_eq!(clone.now_unix(), 101);
        assert_eq!(shared.now_unix(), 101);
        assert_eq!(boxed.now_unix(), 101);
    }

    #[test]
    fn manual_clock_saturates() {
        let clock = ManualClock::new(u64::MAX);
        assert_eq!(clock.now_unix(), u64::MAX / 1_000);
        clock.advance(Duration::MAX);
        assert_eq!(clock.now_unix(), u64::MAX / 1_000);
    }
}
