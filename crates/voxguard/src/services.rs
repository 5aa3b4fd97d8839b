//! What the runtime lends to every call: the one clock, the attempt store, the PIN vault, the
//! argon2 workers and the auditor, in [`Services`].
//!
//! Owns nothing per agent or per call: a [`Services`] is built once by the runtime and shared by
//! every agent's pipeline and every [`CallContext`](crate::CallContext). The clock here is the
//! only one the facade reads — audit timestamps, session expiry, confirmations, lockouts and
//! rate limits all take their time from it, so a test's `ManualClock` moves them all. It must
//! not make policy decisions (that is the pipeline's and the verification kit's job).

use std::sync::Arc;

use voxguard_guard::{Clock, PinVault, SecretKey, SystemClock};
use voxguard_store::{AttemptStore, MemoryStore};

use crate::audit::{Auditor, AuthEvents};
pub(crate) use crate::hashers::Hashers;
use crate::records::Records;

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
    /// Where refusals before a token was verified are counted and written (aggregated per
    /// source and reason, like refused authentications).
    pub(crate) failures: Arc<AuthEvents>,
    /// Conversation records, when the runtime keeps them.
    pub(crate) records: Option<Records>,
}

impl Default for Services {
    /// In-memory attempts, the system clock and no audit sink: what a handler unit test needs.
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            attempts: Arc::new(MemoryStore::default()),
            subject_key: SecretKey::generate(),
            vault: PinVault::default(),
            hashers: Hashers::new(Hashers::default_permits()),
            failures: Arc::new(AuthEvents::new(Auditor::default())),
            auditor: Auditor::default(),
            records: None,
        }
    }
}
