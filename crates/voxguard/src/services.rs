//! What the runtime lends to every call: the one clock, the attempt store, the PIN vault, the
//! argon2 workers and the auditor, in [`Services`].
//!
//! Owns nothing per agent or per call: a [`Services`] is built once by the runtime and shared by
//! every agent's pipeline and every [`CallContext`](crate::CallContext). The clock here is the
//! only one the facade reads — audit timestamps, session expiry, confirmations, lockouts and
//! rate limits all take their time from it, so a test's `ManualClock` moves them all. It must
//! not make policy decisions (that is the pipeline's and the verification kit's job).

use std::sync::Arc;

use voxguard_guard::{Clock, HashMemory, PinVault, SecretHash, SecretKey, SystemClock};
use voxguard_store::{AttemptStore, MemoryStore};

use crate::audit::Auditor;

/// The shared services of one runtime.
pub(crate) struct Services {
    /// The one clock.
    pub(crate) clock: Arc<dyn Clock>,
    /// Verification attempts and lockouts, per subject, across calls.
    pub(crate) attempts: Arc<dyn AttemptStore>,
    /// The key attempt counters are stored under when a policy sets none (derived from the
    /// token key by the runtime).
    pub(crate) subject_key: SecretKey,
    /// argon2id hashing and checking of secrets.
    pub(crate) vault: PinVault,
    /// The argon2 checks that may run at once.
    pub(crate) hashers: Arc<Hashers>,
    /// The audit trail.
    pub(crate) auditor: Auditor,
}

impl Default for Services {
    /// In-memory attempts, the system clock and no audit sink: what a handler unit test needs.
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            attempts: Arc::new(MemoryStore::default()),
            subject_key: SecretKey::generate(),
            vault: PinVault::default(),
            hashers: Hashers::per_core(),
            auditor: Auditor::default(),
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

/// The argon2 checks that may run at once (one per core: each takes a core and, with the
/// default cost, 19 MiB), each with working memory kept for reuse so that the process's
/// resident size stays fixed under load (see [`HashMemory`]).
pub(crate) struct Hashers {
    permits: Arc<tokio::sync::Semaphore>,
    memory: std::sync::Mutex<Vec<HashMemory>>,
    /// Checked against when the subject has no secret on file, so that the answer costs the
    /// same; made on first need with the vault's parameters.
    decoy: std::sync::OnceLock<Option<SecretHash>>,
}

impl Hashers {
    /// One permit per core.
    pub(crate) fn per_core() -> Arc<Self> {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Arc::new(Self {
            permits: Arc::new(tokio::sync::Semaphore::new(cores)),
            memory: std::sync::Mutex::new(Vec::new()),
            decoy: std::sync::OnceLock::new(),
        })
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
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| HashError::Unavailable(e.to_string()))?;
        let mut memory = self
            .memory
            .lock()
            .map_err(|_| HashError::Unavailable("hash memory pool poisoned".into()))?
            .pop()
            .unwrap_or_default();
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
            if let Ok(mut pool) = hashers.memory.lock() {
                pool.push(memory);
            }
            drop(permit);
            all
        })
        .await
        .map_err(|e| HashError::Unavailable(e.to_string()))
    }
}
