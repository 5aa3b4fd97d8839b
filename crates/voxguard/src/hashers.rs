//! The argon2 workers: how many secret checks may run at once, and the memory they reuse.
//!
//! Owns [`Hashers`] — a bounded number of permits (half the cores by default,
//! `VOXGUARD_SECRET_CHECKS`), pooled argon2 working memory, and the decoy hash an unknown
//! subject or operator is checked against so that the answer costs the same. Shared by caller
//! verification and operator logins. It must not decide what a match means.
//!
//! Why half the cores: a check is deliberately expensive (about 20 ms of a core and 19 MiB
//! with the default cost), so a flood of PIN or login attempts could otherwise take every core
//! and starve every other call's requests; with half (on more than one core, unless
//! `VOXGUARD_SECRET_CHECKS` raises it), the rest of the traffic keeps the other half, and the
//! working memory resident at once is bounded by the same number. Hashing a new operator
//! password (an administrator's action, `records::operators`) does not go through this pool.
//!
//! The pool holds memory only while checks overlap. With jemalloc (the default global
//! allocator) the last check of a burst frees its area (19 MiB by default), which jemalloc
//! hands back to the system at once: allocations of 8 MiB or more (its default
//! `oversize_threshold`) go to its own arena, which does not cache freed pages; smaller areas
//! (from `PinVault::with_params`) go back after its dirty-page decay, 10 s by default. So a
//! server that is not checking secrets does not keep one working area per permit resident.
//! Without jemalloc the pool keeps its areas for the life of the process: glibc's `malloc`
//! would otherwise keep freed areas per thread arena (see `HashMemory`).

use std::sync::Arc;

use voxguard_guard::{HashMemory, PinVault, SecretHash};

/// Whether working memory is freed when no other check wants it (see the module's
/// documentation): only where the allocator gives it back to the system.
const RELEASE_WHEN_IDLE: bool = cfg!(all(feature = "jemalloc", not(target_env = "msvc")));

/// One check counted in [`Hashers::wanted`] from the moment it is asked for until it finishes
/// ([`Wanted::finish`]) or ends any other way — its caller gave up before it got a permit, the
/// pool was poisoned, the blocking task panicked or never ran (dropped).
struct Wanted(Option<Arc<Hashers>>);

impl Wanted {
    fn new(hashers: Arc<Hashers>) -> Self {
        hashers
            .wanted
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Self(Some(hashers))
    }

    /// The check is over: its memory goes back to the pool if another check wants one.
    fn finish(mut self, memory: HashMemory) {
        if let Some(hashers) = self.0.take() {
            hashers.give_back(Some(memory));
        }
    }
}

impl Drop for Wanted {
    fn drop(&mut self) {
        if let Some(hashers) = self.0.take() {
            hashers.give_back(None);
        }
    }
}

/// Why a secret check could not run (not whether it matched).
#[derive(Debug, thiserror::Error)]
pub(crate) enum HashError {
    /// The worker pool is closed or poisoned, or the blocking task died.
    #[error("the secret check could not run: {0}")]
    Unavailable(String),
}

/// The argon2 checks that may run at once (half the cores by default: each takes a core and,
/// with the default cost, 19 MiB), each with working memory kept for reuse while checks
/// overlap, so that the process's resident size stays bounded under load (see [`HashMemory`]).
pub(crate) struct Hashers {
    permits: Arc<tokio::sync::Semaphore>,
    /// Checks asked for and not yet finished (waiting for a permit or running).
    wanted: std::sync::atomic::AtomicUsize,
    memory: std::sync::Mutex<Vec<HashMemory>>,
    /// Checked against when the subject has no secret on file, so that the answer costs the
    /// same; made on first need with the vault's parameters.
    decoy: std::sync::OnceLock<Option<SecretHash>>,
    /// Areas made so far (a check that found the pool empty).
    #[cfg(test)]
    made: std::sync::atomic::AtomicUsize,
}

impl Hashers {
    /// The default number of checks at once: half the cores this process may use, at least
    /// one (see the module's documentation).
    pub(crate) fn default_permits() -> usize {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        (cores / 2).max(1)
    }

    /// A pool running at most `permits` checks at once (at least one).
    pub(crate) fn new(permits: usize) -> Arc<Self> {
        Arc::new(Self {
            permits: Arc::new(tokio::sync::Semaphore::new(permits.max(1))),
            wanted: std::sync::atomic::AtomicUsize::new(0),
            memory: std::sync::Mutex::new(Vec::new()),
            decoy: std::sync::OnceLock::new(),
            #[cfg(test)]
            made: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// Checks that could start now (all of them in a pool nothing is using).
    #[cfg(test)]
    pub(crate) fn free_permits(&self) -> usize {
        self.permits.available_permits()
    }

    /// One check is over (`memory`: the area it used, if it ran). Decided under the pool's
    /// lock, so that of checks finishing together exactly the last lets the pool go.
    fn give_back(&self, memory: Option<HashMemory>) {
        let mut pool = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        let before = self
            .wanted
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        debug_assert!(before > 0, "a check given back twice");
        let others = before.saturating_sub(1);
        let freed = if !RELEASE_WHEN_IDLE || others > 0 {
            pool.extend(memory);
            Vec::new()
        } else {
            // Nobody wants an area now: this one and any kept (freed below, outside the lock).
            std::mem::take(&mut *pool)
                .into_iter()
                .chain(memory)
                .collect()
        };
        drop(pool);
        drop(freed);
    }

    /// Whether every `(answer, hash)` pair matches, checked on a blocking thread with pooled
    /// memory. Every pair is checked (no early exit), unknown ones against the decoy hash.
    pub(crate) async fn check(
        self: &Arc<Self>,
        vault: &PinVault,
        pairs: Vec<(String, Option<SecretHash>)>,
    ) -> Result<bool, HashError> {
        // The permit and the memory go with the blocking task: if the caller stops waiting,
        // the check still runs to the end, and only then frees its core and its memory.
        let wanted = Wanted::new(self.clone());
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| HashError::Unavailable(e.to_string()))?;
        let pooled = self
            .memory
            .lock()
            .map_err(|_| HashError::Unavailable("hash memory pool poisoned".into()))?
            .pop();
        #[cfg(test)]
        if pooled.is_none() {
            self.made.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        let mut memory = pooled.unwrap_or_default();
        let hashers = self.clone();
        let vault = vault.clone();
        tokio::task::spawn_blocking(move || {
            let mut all = !pairs.is_empty();
            for (answer, hash) in &pairs {
                let ok = match hash {
                    Some(hash) => vault.verify_with(&mut memory, hash, answer),
                    None => {
                        let decoy = hashers.decoy.get_or_init(|| {
                            use rand::Rng as _;
                            let filler: String = rand::thread_rng()
                                .sample_iter(rand::distributions::Alphanumeric)
                                .take(24)
                                .map(char::from)
                                .collect();
                            vault.hash(&filler).ok()
                        });
                        if let Some(decoy) = decoy {
                            let _ = vault.verify_with(&mut memory, decoy, answer);
                        }
                        false
                    }
                };
                all &= ok;
            }
            wanted.finish(memory);
            drop(permit);
            all
        })
        .await
        .map_err(|e| HashError::Unavailable(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    //! The pool against real argon2 checks: what it keeps once the checks are over.

    use super::*;

    fn pooled(hashers: &Hashers) -> usize {
        hashers.memory.lock().unwrap().len()
    }

    fn wanted(hashers: &Hashers) -> usize {
        hashers.wanted.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Every permit, so that no check runs until they are dropped.
    async fn hold_every_permit(hashers: &Hashers) -> tokio::sync::OwnedSemaphorePermit {
        let cores = hashers.permits.available_permits();
        hashers
            .permits
            .clone()
            .acquire_many_owned(cores as u32)
            .await
            .unwrap()
    }

    #[test]
    fn by_default_checks_never_take_every_core() {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let permits = Hashers::default_permits();
        assert!(permits >= 1);
        assert!(permits < cores || cores == 1, "{permits} of {cores} cores");
        assert_eq!(Hashers::new(0).permits.available_permits(), 1);
        assert_eq!(Hashers::new(3).permits.available_permits(), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn working_memory_is_let_go_once_no_check_wants_it() {
        let vault = PinVault::with_params(1024, 1, 1).unwrap();
        let stored = vault.hash("4321").unwrap();
        let hashers = Hashers::new(2);

        assert!(hashers
            .check(&vault, vec![("4321".into(), Some(stored.clone()))])
            .await
            .unwrap());
        let kept = usize::from(!RELEASE_WHEN_IDLE);
        assert_eq!(pooled(&hashers), kept, "after one check alone");

        // A burst: more checks than permits, all asked for before any runs (the permits held
        // until then); wrong answers and unknown subjects (the decoy) among them.
        let cores = hashers.permits.available_permits();
        let all = hold_every_permit(&hashers).await;
        let checks: Vec<_> = (0..16)
            .map(|i| {
                let (hashers, vault, stored) = (hashers.clone(), vault.clone(), stored.clone());
                tokio::spawn(async move {
                    let pair = match i % 3 {
                        0 => ("4321".to_string(), Some(stored)),
                        1 => ("0000".to_string(), Some(stored)),
                        _ => ("4321".to_string(), None),
                    };
                    hashers.check(&vault, vec![pair]).await.unwrap() == (i % 3 == 0)
                })
            })
            .collect();
        while wanted(&hashers) < 16 {
            tokio::task::yield_now().await;
        }
        drop(all);
        for check in futures_util::future::join_all(checks).await {
            assert!(check.unwrap(), "every check answers as before");
        }
        assert_eq!(wanted(&hashers), 0);
        // While the checks overlapped they shared areas: never more than one per permit.
        let made = hashers.made.load(std::sync::atomic::Ordering::SeqCst);
        assert!(made <= 1 + cores, "areas made for 17 checks: {made}");
        // Without jemalloc the pool keeps at most one area per permit for good.
        let after = pooled(&hashers);
        if RELEASE_WHEN_IDLE {
            assert_eq!(after, 0, "the last check of the burst lets go");
        } else {
            assert!((1..=cores).contains(&after), "areas kept: {after}");
        }
    }

    /// A check whose caller gives up while it waits for a permit is no longer counted, and the
    /// areas go when the last check ends.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_check_given_up_while_waiting_is_no_longer_wanted() {
        let vault = PinVault::with_params(1024, 1, 1).unwrap();
        let stored = vault.hash("4321").unwrap();
        let hashers = Hashers::new(2);
        let all = hold_every_permit(&hashers).await;
        let waiting = {
            let (hashers, vault, stored) = (hashers.clone(), vault.clone(), stored.clone());
            tokio::spawn(async move {
                hashers
                    .check(&vault, vec![("4321".into(), Some(stored))])
                    .await
            })
        };
        while wanted(&hashers) == 0 {
            tokio::task::yield_now().await;
        }
        waiting.abort();
        assert!(waiting.await.unwrap_err().is_cancelled());
        assert_eq!(wanted(&hashers), 0);
        drop(all);
        assert!(hashers
            .check(&vault, vec![("4321".into(), Some(stored))])
            .await
            .unwrap());
        assert_eq!(wanted(&hashers), 0);
        assert_eq!(pooled(&hashers), usize::from(!RELEASE_WHEN_IDLE));
    }
}
