//! PINs and passphrases at rest: argon2id hashes, checked in constant time.
//!
//! This module owns [`PinVault`], which turns a caller's secret (a telephone-banking PIN, a
//! passphrase) into a salted argon2id hash in the standard PHC string format and later checks a
//! candidate against it, and [`SecretHash`], the stored form. Hashing uses the `argon2` crate's
//! recommended defaults unless configured, a fresh random salt from the operating system for every
//! hash, and a constant-time comparison of the derived output (`subtle`). It also owns
//! [`HashMemory`], argon2's working memory kept for reuse so that a busy server's resident size
//! stays bounded (see its documentation). This module must never log a secret or a hash, never
//! show either through `Debug` or an error message, and does not count attempts: lockout after
//! repeated failures is the job of the attempt store (`voxguard_store::AttemptStore`), which
//! callers consult *before* calling [`PinVault::verify`].

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroize;

/// argon2's working memory, kept between checks.
///
/// Every argon2 computation needs `m_cost` KiB of scratch memory (19 MiB with the defaults).
/// Allocating and freeing that much for each check makes glibc's `malloc` raise its mmap
/// threshold to the block's size, after which every thread arena may keep up to twice that much
/// freed memory: a server checking PINs on tokio's blocking-thread pool grew to about 480 MiB
/// resident under a load test. Holding one `HashMemory` per check that may run at once and
/// passing it to [`PinVault::verify_with`] bounds the memory at that many areas. (The voxguard
/// runtime keeps one per check allowed at once while checks overlap, and with jemalloc frees
/// them once none runs.)
///
/// It grows on first use to the size the parameters need and never shrinks.
#[derive(Default)]
pub struct HashMemory {
    blocks: Vec<Block>,
}

impl HashMemory {
    /// Empty; allocated on first use.
    pub fn new() -> Self {
        Self::default()
    }

    /// At least as many blocks as `params` need.
    fn for_params(&mut self, params: &Params) -> &mut [Block] {
        let needed = params.block_count();
        if self.blocks.len() < needed {
            self.blocks.resize(needed, Block::default());
        }
        &mut self.blocks
    }

    /// Bytes held.
    pub fn size(&self) -> usize {
        self.blocks.len() * Block::SIZE
    }
}

impl std::fmt::Debug for HashMemory {
    /// The size only: the contents are derived from secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashMemory")
            .field("bytes", &self.size())
            .finish()
    }
}

/// Hashes and verifies PINs and passphrases with argon2id.
///
/// Cheap to share: hold one per process (it is `Send + Sync`) and call it from any task. Each
/// [`hash`](Self::hash) and [`verify`](Self::verify) is deliberately slow and memory-hard (with
/// the defaults: 19 MiB, 2 passes), so run them off the async executor, e.g. with
/// `tokio::task::spawn_blocking`.
///
/// ```
/// use voxguard_guard::PinVault;
///
/// let vault = PinVault::with_params(8, 1, 1)?; // tiny parameters, for this example only
/// let stored = vault.hash("4921")?;
/// assert!(stored.as_phc().starts_with("$argon2id$"));
/// assert!(vault.verify(&stored, "4921"));
/// assert!(!vault.verify(&stored, "4922"));
/// # Ok::<(), voxguard_guard::PinError>(())
/// ```
#[derive(Clone)]
pub struct PinVault {
    argon2: Argon2<'static>,
    params: Params,
}

impl PinVault {
    /// A vault with the `argon2` crate's default argon2id parameters (OWASP's recommendation:
    /// 19 MiB of memory, 2 passes, 1 lane).
    pub fn new() -> Self {
        Self::from_params(Params::default())
    }

    /// A vault with explicit argon2id parameters: memory in KiB, number of passes and degree of
    /// parallelism. Rejects values the algorithm does not allow (for example memory below
    /// 8 KiB per lane, or zero passes).
    ///
    /// Hashes already stored keep the parameters they were made with, and still verify. But a
    /// subject with no hash on file is checked against a decoy made with the vault's own
    /// parameters (so that the answer costs the same): change them only together with every
    /// stored hash, or the time of an answer tells known subjects from unknown ones.
    pub fn with_params(m_cost_kib: u32, t_cost: u32, p_cost: u32) -> Result<Self, PinError> {
        let params = Params::new(m_cost_kib, t_cost, p_cost, None)
            .map_err(|source| PinError::InvalidParams { source })?;
        Ok(Self::from_params(params))
    }

    fn from_params(params: Params) -> Self {
        Self {
            argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone()),
            params,
        }
    }

    /// Hash `secret` with a fresh random salt from the operating system's generator.
    ///
    /// Two hashes of the same secret differ. An empty secret is refused.
    pub fn hash(&self, secret: &str) -> Result<SecretHash, PinError> {
        if secret.is_empty() {
            return Err(PinError::EmptySecret);
        }
        let salt = SaltString::generate(&mut OsRng);
        let hash = self
            .argon2
            .hash_password(secret.as_bytes(), &salt)
            .map_err(|source| PinError::Hash { source })?;
        Ok(SecretHash(hash.to_string()))
    }

    /// Whether `candidate` is the secret behind `hash`, compared in constant time.
    ///
    /// The hash's own parameters are used, so hashes made with older parameters still verify.
    /// Returns `false` (never an error) for a wrong candidate and for a hash that cannot be
    /// checked. Allocates the working memory for this one check; see
    /// [`verify_with`](Self::verify_with) to reuse it.
    pub fn verify(&self, hash: &SecretHash, candidate: &str) -> bool {
        self.verify_with(&mut HashMemory::new(), hash, candidate)
    }

    /// [`verify`](Self::verify) with reusable working memory.
    pub fn verify_with(&self, memory: &mut HashMemory, hash: &SecretHash, candidate: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(hash.as_phc()) else {
            return false;
        };
        let (Some(expected), Some(salt)) = (parsed.hash, parsed.salt) else {
            return false;
        };
        let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
            return false;
        };
        let version = match parsed.version.map(Version::try_from).transpose() {
            Ok(version) => version.unwrap_or_default(),
            Err(_) => return false,
        };
        // Carries the output length of the stored hash.
        let Ok(params) = Params::try_from(&parsed) else {
            return false;
        };
        let mut salt_bytes = [0u8; 64];
        let Ok(raw_salt) = salt.decode_b64(&mut salt_bytes) else {
            return false;
        };
        let mut output = [0u8; argon2::password_hash::Output::MAX_LENGTH];
        let output = &mut output[..expected.len()];
        let argon2 = Argon2::new(algorithm, version, params.clone());
        let computed = argon2.hash_password_into_with_memory(
            candidate.as_bytes(),
            raw_salt,
            output,
            memory.for_params(&params),
        );
        let matched = computed.is_ok() && bool::from(output.ct_eq(expected.as_bytes()));
        output.zeroize();
        matched
    }
}

impl Default for PinVault {
    /// Same as [`PinVault::new`].
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for PinVault {
    /// Shows the (public) cost parameters only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinVault")
            .field("m_cost_kib", &self.params.m_cost())
            .field("t_cost", &self.params.t_cost())
            .field("p_cost", &self.params.p_cost())
            .finish()
    }
}

/// A stored PIN or passphrase hash: an argon2 PHC string such as `$argon2id$v=19$m=…`.
///
/// A hash of a short PIN can be brute-forced offline, so it is treated as sensitive: `Debug`
/// prints `SecretHash([redacted])`, there is no `Display`, no equality (compare with
/// [`PinVault::verify`]), and the text is wiped from memory on drop. Persist it with
/// [`as_phc`](Self::as_phc) and load it with [`from_phc`](Self::from_phc).
#[derive(Clone)]
pub struct SecretHash(String);

impl SecretHash {
    /// The PHC string, for storing.
    pub fn as_phc(&self) -> &str {
        &self.0
    }

    /// Load a stored PHC string, rejecting anything that is not a well-formed argon2 hash
    /// (argon2id, argon2i or argon2d) with a salt, an output and valid parameters.
    ///
    /// The rejected text is never echoed in the error: it might be a secret pasted by mistake.
    pub fn from_phc(phc: String) -> Result<Self, PinError> {
        if !is_argon2_phc(&phc) {
            let mut phc = phc;
            phc.zeroize();
            return Err(PinError::MalformedHash);
        }
        Ok(Self(phc))
    }
}

/// Whether `phc` parses as an argon2 PHC hash that [`PinVault::verify`] can check.
fn is_argon2_phc(phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    Algorithm::try_from(parsed.algorithm).is_ok()
        && parsed.salt.is_some()
        && parsed.hash.is_some()
        && Params::try_from(&parsed).is_ok()
}

impl std::fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretHash([redacted])")
    }
}

impl Drop for SecretHash {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// Why hashing a secret or loading a stored hash failed. Messages never contain secrets or
/// hashes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PinError {
    /// The configured argon2 cost parameters are not allowed.
    #[error("invalid argon2 parameters")]
    InvalidParams {
        /// The argon2 crate's reason.
        #[source]
        source: argon2::Error,
    },
    /// An empty PIN or passphrase was given to [`PinVault::hash`].
    #[error("refusing to hash an empty secret")]
    EmptySecret,
    /// The hash computation itself failed.
    #[error("could not hash the secret")]
    Hash {
        /// The password-hash crate's reason (never contains the secret).
        #[source]
        source: argon2::password_hash::Error,
    },
    /// A stored hash is not a well-formed argon2 PHC string.
    #[error("stored secret hash is malformed")]
    MalformedHash,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small parameters so the tests stay fast; one test covers the defaults.
    fn vault() -> PinVault {
        PinVault::with_params(Params::MIN_M_COST, 1, 1).expect("valid params")
    }

    #[test]
    fn default_vault_hashes_with_argon2id_and_verifies() {
        let vault = PinVault::default();
        let stored = vault.hash("4921").unwrap();
        assert!(stored
            .as_phc()
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(vault.verify(&stored, "4921"));
        assert!(!vault.verify(&stored, "4922"));
    }

    #[test]
    fn round_trip_and_wrong_candidates() {
        let vault = vault();
        let stored = vault.hash("correct horse battery staple").unwrap();
        assert!(stored.as_phc().starts_with("$argon2id$"));
        assert!(vault.verify(&stored, "correct horse battery staple"));
        for wrong in [
            "",
            "correct horse battery stapl",
            "Correct horse battery staple",
        ] {
            assert!(!vault.verify(&stored, wrong), "{wrong:?}");
        }
    }

    #[test]
    fn salts_make_equal_secrets_hash_differently() {
        let vault = vault();
        let one = vault.hash("1234").unwrap();
        let two = vault.hash("1234").unwrap();
        assert_ne!(one.as_phc(), two.as_phc());
        assert!(vault.verify(&one, "1234"));
        assert!(vault.verify(&two, "1234"));
    }

    #[test]
    fn stored_hashes_load_and_verify_with_their_own_parameters() {
        let stored = vault().hash("2468").unwrap();
        let loaded = SecretHash::from_phc(stored.as_phc().to_owned()).unwrap();
        // A vault with different parameters still checks it (the hash carries its own).
        let other = PinVault::with_params(Params::MIN_M_COST * 2, 2, 1).unwrap();
        assert!(other.verify(&loaded, "2468"));
        assert!(!other.verify(&loaded, "2469"));
    }

    #[test]
    fn reused_memory_gives_the_same_verdicts_and_stays_one_size() {
        let vault = vault();
        let mut memory = HashMemory::new();
        assert_eq!(memory.size(), 0);
        let stored = vault.hash("5150").unwrap();
        // Hashes made by other argon2 variants, costs and output lengths, by the crate itself.
        let variants = [
            Argon2::new(
                Algorithm::Argon2i,
                Version::V0x13,
                Params::new(16, 2, 1, Some(16)).unwrap(),
            ),
            Argon2::new(
                Algorithm::Argon2d,
                Version::V0x10,
                Params::new(24, 1, 2, Some(64)).unwrap(),
            ),
        ]
        .map(|argon2| {
            let salt = SaltString::generate(&mut OsRng);
            SecretHash::from_phc(argon2.hash_password(b"5150", &salt).unwrap().to_string()).unwrap()
        });
        for _ in 0..3 {
            for hash in std::iter::once(&stored).chain(&variants) {
                assert!(vault.verify_with(&mut memory, hash, "5150"));
                assert!(!vault.verify_with(&mut memory, hash, "5151"));
                assert!(!vault.verify_with(&mut memory, hash, ""));
            }
        }
        // Sized for the largest (24 KiB), never shrunk or regrown.
        assert_eq!(memory.size(), 24 * 1024);
        assert_eq!(format!("{memory:?}"), "HashMemory { bytes: 24576 }");
        // A hash whose output was cut short does not verify.
        let phc = stored.as_phc();
        let (head, output) = phc.rsplit_once('$').unwrap();
        let short = SecretHash::from_phc(format!("{head}${}", &output[..32])).unwrap();
        assert!(!vault.verify_with(&mut memory, &short, "5150"));
    }

    #[test]
    fn debug_never_shows_secrets_or_hashes() {
        let vault = vault();
        let stored = vault.hash("8642").unwrap();
        let debug = format!("{stored:?}");
        assert_eq!(debug, "SecretHash([redacted])");
        assert!(!debug.contains("argon2"));
        assert_eq!(
            format!("{vault:?}"),
            "PinVault { m_cost_kib: 8, t_cost: 1, p_cost: 1 }"
        );
    }

    #[test]
    fn from_phc_rejects_garbage_without_echoing_it() {
        let good = vault().hash("1357").unwrap();
        let phc = good.as_phc();
        let no_output = phc.rsplit_once('$').unwrap().0.to_owned();
        let garbage = [
            String::new(),
            "1357".to_owned(),
            "not a hash".to_owned(),
            "$argon2id$".to_owned(),
            "$argon2id$v=19$m=8,t=1,p=1$$".to_owned(),
            phc.replacen("argon2id", "scrypt", 1),
            phc.replacen("m=8", "m=1", 1),
            no_output,
        ];
        for text in garbage {
            let err = SecretHash::from_phc(text.clone()).unwrap_err();
            assert!(matches!(err, PinError::MalformedHash), "{text:?}: {err:?}");
            assert_eq!(err.to_string(), "stored secret hash is malformed");
        }
    }

    #[test]
    fn bad_inputs_are_refused() {
        assert!(matches!(
            PinVault::with_params(1, 1, 1),
            Err(PinError::InvalidParams { .. })
        ));
        assert!(matches!(
            PinVault::with_params(Params::MIN_M_COST, 0, 1),
            Err(PinError::InvalidParams { .. })
        ));
        assert!(matches!(vault().hash(""), Err(PinError::EmptySecret)));
    }

    #[test]
    fn vault_and_hash_can_be_shared_across_tasks() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<PinVault>();
        assert_send_sync::<SecretHash>();
        assert_send_sync::<PinError>();
    }
}
