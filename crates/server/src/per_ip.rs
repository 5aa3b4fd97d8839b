//! The per-address cap on *waiting* connections.
//!
//! Owns one count per peer address: its connections that have not finished sending a request
//! head, or sit idle between requests ([`Waiting`], one [`Slot`] per connection). A connection
//! whose request is being handled is not counted, so a busy client — a reverse proxy, the
//! platform's egress address — can have as many requests in progress as the global connection
//! cap allows, while idle and slow clients from one address are held to the cap. A new
//! connection over the cap waits for a slot — no longer than any connection has to send its
//! request head (the header-read timeout) — and is closed if none frees: a burst's connections
//! free theirs as soon as their request heads arrive, a silent host's never do. It is not read
//! from while it waits, so it cannot start a request, and it holds no slot of the global
//! connection cap while it waits (so one address cannot fill the server with queued
//! connections); the queue itself is bounded, and a connection that finds it full is closed at
//! once. A request to a route that authenticates only after its body (the records API, the
//! console) counts as waiting until its body is read ([`BodyPending`]). It must not read from or
//! write to connections, and it does not know about HTTP: `serve` tells it when a request
//! starts and when its response is ready.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

/// The waiting connections of every address, capped per address.
pub(crate) struct Waiting {
    counts: Mutex<HashMap<IpAddr, usize>>,
    freed: Notify,
    cap: usize,
    /// Connections queued for a slot (over their address's cap), across all addresses.
    queued: std::sync::atomic::AtomicUsize,
    /// The most connections that may queue at once.
    queue_cap: usize,
}

/// A queued connection's place in the bounded queue; leaves it when dropped.
pub(crate) struct Queued(Arc<Waiting>);

impl Drop for Queued {
    fn drop(&mut self) {
        self.0.queued.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Waiting {
    /// At most `cap` waiting connections per address, and at most `queue_cap` connections
    /// queued for a slot at once.
    pub(crate) fn new(cap: usize, queue_cap: usize) -> Arc<Self> {
        Arc::new(Self {
            counts: Mutex::new(HashMap::new()),
            freed: Notify::new(),
            cap,
            queued: std::sync::atomic::AtomicUsize::new(0),
            queue_cap,
        })
    }

    /// A slot for `ip` now, without waiting.
    pub(crate) fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        self.try_count(ip).then(|| Slot {
            waiting: self.clone(),
            ip,
            counted: AtomicBool::new(true),
        })
    }

    /// A place in the queue of connections waiting for a slot; `None` when the queue is full
    /// (the connection is then closed at once).
    pub(crate) fn enqueue(self: &Arc<Self>) -> Option<Queued> {
        let mut current = self.queued.load(Ordering::SeqCst);
        loop {
            if current >= self.queue_cap {
                return None;
            }
            match self.queued.compare_exchange(
                current,
                current + 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return Some(Queued(self.clone())),
                Err(actual) => current = actual,
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Count one more waiting connection of `ip`, unless it is at the cap.
    fn try_count(&self, ip: IpAddr) -> bool {
        let mut map = self.lock();
        if map.get(&ip).copied().unwrap_or(0) >= self.cap {
            return false;
        }
        *map.entry(ip).or_insert(0) += 1;
        true
    }

    fn uncount(&self, ip: IpAddr) {
        let mut map = self.lock();
        if let Some(open) = map.get_mut(&ip) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                map.remove(&ip);
            }
        }
        drop(map);
        self.freed.notify_waiters();
    }

    /// A slot for a new connection of `ip`, waiting up to `grace` for one to free; `None`
    /// when the address stays at its cap.
    pub(crate) async fn acquire(self: &Arc<Self>, ip: IpAddr, grace: Duration) -> Option<Slot> {
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            // Register before checking, so a slot freed in between is not missed.
            freed.as_mut().enable();
            if self.try_count(ip) {
                return Some(Slot {
                    waiting: self.clone(),
                    ip,
                    counted: AtomicBool::new(true),
                });
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return None;
            }
        }
    }

    #[cfg(test)]
    fn count(&self, ip: IpAddr) -> usize {
        self.lock().get(&ip).copied().unwrap_or(0)
    }
}

/// The slot of a connection whose request is not authenticated before its body is read (the
/// records API and the console check who is calling themselves, after the body): put in the
/// request's extensions instead of marking the connection busy at its head, so that while its
/// body arrives it still counts against its address's cap, like a request head.
#[derive(Clone)]
pub(crate) struct BodyPending(pub(crate) Arc<Slot>);

impl BodyPending {
    /// The body was read (or refused): the connection is working now.
    pub(crate) fn body_read(&self) {
        self.0.busy();
    }
}

/// One connection's place in its address's count; uncounted when dropped.
pub(crate) struct Slot {
    waiting: Arc<Waiting>,
    ip: IpAddr,
    counted: AtomicBool,
}

impl Slot {
    /// A request head arrived: the connection is working, no longer waiting.
    pub(crate) fn busy(&self) {
        if self.counted.swap(false, Ordering::SeqCst) {
            self.waiting.uncount(self.ip);
        }
    }

    /// The response is ready: the connection waits for its next request again. `false` when
    /// its address already has `cap` waiting connections — the caller then closes this one
    /// after the response instead of keeping it alive.
    pub(crate) fn idle(&self) -> bool {
        if self.counted.load(Ordering::SeqCst) {
            return true;
        }
        let counted = self.waiting.try_count(self.ip);
        self.counted.store(counted, Ordering::SeqCst);
        counted
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.counted.swap(false, Ordering::SeqCst) {
            self.waiting.uncount(self.ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const NOW: Duration = Duration::ZERO;

    #[tokio::test]
    async fn only_waiting_connections_count() {
        let waiting = Waiting::new(2, 1024);
        let a = waiting.acquire(IP, NOW).await.expect("first");
        let b = waiting.acquire(IP, NOW).await.expect("second");
        assert!(waiting.acquire(IP, NOW).await.is_none(), "cap of 2 waiting");
        // Requests in progress do not count: many connections can be busy at once.
        a.busy();
        b.busy();
        let mut busy = Vec::new();
        for _ in 0..50 {
            let slot = waiting.acquire(IP, NOW).await.expect("a free slot");
            slot.busy();
            busy.push(slot);
        }
        assert_eq!(waiting.count(IP), 0);
        // Back to waiting: only `cap` of them may stay; the rest are told to close.
        let kept = busy.iter().filter(|slot| slot.idle()).count();
        assert_eq!(kept, 2);
        assert!(!a.idle(), "the cap is full of waiting connections");
        assert_eq!(waiting.count(IP), 2);
        drop(busy);
        assert_eq!(waiting.count(IP), 0, "dropping uncounts");
        drop((a, b));
        assert!(waiting.lock().is_empty());
    }

    #[tokio::test]
    async fn a_connection_over_the_cap_gets_a_slot_that_frees_within_the_grace() {
        let waiting = Waiting::new(1, 1024);
        let first = waiting.acquire(IP, NOW).await.expect("first");
        let other = waiting.clone();
        let second =
            tokio::spawn(async move { other.acquire(IP, Duration::from_secs(30)).await.is_some() });
        tokio::time::sleep(Duration::from_millis(20)).await;
        first.busy();
        assert!(second.await.expect("task"), "the freed slot was handed on");
        // Addresses are counted apart.
        let elsewhere = IpAddr::from([10, 0, 0, 1]);
        assert!(waiting.acquire(elsewhere, NOW).await.is_some());
    }

    #[tokio::test]
    async fn without_a_free_slot_the_grace_runs_out() {
        let waiting = Waiting::new(1, 1024);
        let _held = waiting.acquire(IP, NOW).await.expect("first");
        assert!(waiting
            .acquire(IP, Duration::from_millis(30))
            .await
            .is_none());
    }
}
