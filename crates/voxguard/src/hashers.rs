//! The argon2 workers: how many secret checks may run at once, and the memory they reuse.
//!
//! Owns [`Hashers`] — one permit per core, pooled argon2 working memory, and the decoy hash an
//! unknown subject or operator is checked against so that the answer costs the same. Shared by
//! caller verification and operator logins. It must not decide what a match means.

use std::sync::Arc;

use voxguard_guard::{HashMemory, PinVault, SecretHash};

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
