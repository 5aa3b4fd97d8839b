//! The verification kit: PINs, passphrases and knowledge-based answers checked against
//! argon2id hashes, with failed attempts counted per customer *across calls* and a lockout.
//!
//! Owns the sequence reserve-attempt → verify → settle → update the server-side session. The
//! attempt is reserved before the (slow) hash comparison, atomically in the [`AttemptStore`],
//! so parallel guesses can never exceed the limit and a crash mid-check counts as a failure.
//! On success the session flag is set (never `global_data`), the counter is reset, a role from
//! the caller allow-list is recorded, and optionally tools rendered inactive are switched on.
//!
//! Caller ID alone never unlocks anything: `caller_id_num` is whatever the calling network
//! claims and is trivially spoofed. The allow-list maps numbers to names and roles, but a role
//! only takes effect after a secret was verified on this call.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use voxguard_guard::{Clock, HashMemory, PinVault, SecretHash, SystemClock};
use voxguard_store::{AttemptStore, MemoryStore, Reservation};
use voxguard_swml::FunctionResult;

use crate::audit::{mask, Auditor};
use crate::context::CallContext;
use crate::tool::ToolError;

/// Session key holding the role granted by a verification (runtime-internal).
pub(crate) const ROLE_KEY: &str = "__vg.role";
/// Session key holding the verified subject (runtime-internal).
pub(crate) const SUBJECT_KEY: &str = "__vg.subject";

/// What happens when a subject is locked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockoutAction {
    /// End the call after the AI says the lockout sentence.
    Hangup,
    /// Transfer the caller to a security line (added to the transfer allow-list).
    Transfer(String),
}

/// A caller on the allow-list: who they are and which role verification grants them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerEntry {
    /// The verification subject (e.g. customer id) that must be verified for the role.
    pub subject: String,
    /// Display name.
    pub name: String,
    /// Role granted after a successful verification on a call from this number.
    pub role: String,
}

/// Caller numbers mapped to names and roles.
#[derive(Debug, Clone, Default)]
pub struct CallerAllowList {
    entries: HashMap<String, CallerEntry>,
}

impl CallerAllowList {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add `number` (any punctuation is ignored): a call from it whose verified subject is
    /// `subject` gets `role`. Both must hold — the number alone is spoofable, and a secret
    /// verified for someone else must not borrow this number's role.
    pub fn caller(
        mut self,
        number: &str,
        subject: impl Into<String>,
        name: impl Into<String>,
        role: impl Into<String>,
    ) -> Self {
        self.entries.insert(
            canonical_number(number),
            CallerEntry {
                subject: subject.into(),
                name: name.into(),
                role: role.into(),
            },
        );
        self
    }

    /// The entry for `number`, if listed.
    pub fn get(&self, number: &str) -> Option<&CallerEntry> {
        self.entries.get(&canonical_number(number))
    }
}

fn canonical_number(number: &str) -> String {
    number
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '+')
        .collect()
}

/// How verification behaves for an agent.
#[derive(Debug, Clone)]
pub struct VerificationPolicy {
    pub(crate) max_attempts: u32,
    pub(crate) lockout: Duration,
    pub(crate) flag: String,
    pub(crate) activate: Vec<String>,
    pub(crate) on_lockout: LockoutAction,
    pub(crate) callers: CallerAllowList,
}

impl Default for VerificationPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            lockout: Duration::from_secs(15 * 60),
            flag: "pin_verified".into(),
            activate: Vec::new(),
            on_lockout: LockoutAction::Hangup,
            callers: CallerAllowList::default(),
        }
    }
}

impl VerificationPolicy {
    /// Defaults: 3 attempts, 15-minute lockout, flag `pin_verified`, hang up on lockout.
    pub fn new() -> Self {
        Self::default()
    }

    /// Failed attempts allowed before the lockout (at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// How long a lockout lasts.
    pub fn lockout(mut self, lockout: Duration) -> Self {
        self.lockout = lockout;
        self
    }

    /// The session flag a success sets (what `Tool::requires` checks).
    pub fn flag(mut self, flag: impl Into<String>) -> Self {
        self.flag = flag.into();
        self
    }

    /// Tools to switch on (`toggle_functions`) after a success; render them with
    /// `Tool::inactive()`.
    pub fn activate<I, S>(mut self, tools: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.activate.extend(tools.into_iter().map(Into::into));
        self
    }

    /// What a lockout does to the call.
    pub fn on_lockout(mut self, action: LockoutAction) -> Self {
        self.on_lockout = action;
        self
    }

    /// Callers whose successful verification grants a role.
    pub fn callers(mut self, callers: CallerAllowList) -> Self {
        self.callers = callers;
        self
    }
}

/// The result of one verification attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyOutcome {
    /// The secret matched; the session is verified.
    Verified,
    /// It did not match; `remaining` attempts are left before the lockout.
    Failed {
        /// Attempts left.
        remaining: u32,
    },
    /// Too many failures: the subject is locked until `until` (unix seconds) if known.
    Locked {
        /// End of the lockout.
        until: Option<u64>,
    },
}

/// A verification's outcome with the standard answer for the AI (sentence plus actions).
#[derive(Debug, Clone)]
pub struct Verification {
    outcome: VerifyOutcome,
    result: FunctionResult,
}

impl Verification {
    /// What happened.
    pub fn outcome(&self) -> VerifyOutcome {
        self.outcome
    }

    /// Whether the secret matched.
    pub fn is_verified(&self) -> bool {
        self.outcome == VerifyOutcome::Verified
    }

    /// The standard answer.
    pub fn into_result(self) -> FunctionResult {
        self.result
    }

    /// The standard actions with your own sentence.
    pub fn with_sentence(self, sentence: impl Into<String>) -> FunctionResult {
        let mut result = self.result;
        result.response = sentence.into();
        result
    }
}

/// What verification needs from the runtime.
pub(crate) struct VerifyServices {
    pub(crate) attempts: Arc<dyn AttemptStore>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) vault: PinVault,
    pub(crate) policy: VerificationPolicy,
    pub(crate) hashers: Arc<Hashers>,
    pub(crate) auditor: Auditor,
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
    async fn check(
        self: &Arc<Self>,
        vault: &PinVault,
        pairs: Vec<(String, Option<SecretHash>)>,
    ) -> Result<bool, ToolError> {
        // The permit and the memory go with the blocking task: if the caller stops waiting,
        // the check still runs to the end, and only then frees its core and its memory.
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(ToolError::internal)?;
        let mut memory = self
            .memory
            .lock()
            .map_err(|_| ToolError::internal("hash memory pool poisoned"))?
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
        .map_err(ToolError::internal)
    }
}

impl Default for VerifyServices {
    fn default() -> Self {
        Self {
            attempts: Arc::new(MemoryStore::default()),
            clock: Arc::new(SystemClock),
            vault: PinVault::default(),
            policy: VerificationPolicy::default(),
            hashers: Hashers::per_core(),
            auditor: Auditor::default(),
        }
    }
}

const SENTENCE_VERIFIED: &str = "Thank you. Your identity is verified.";
const SENTENCE_LOCKED: &str =
    "For your security, verification is temporarily locked after too many attempts. Please try again later.";

impl CallContext {
    /// Verify `candidate` against `hash` for `subject` (e.g. a customer id). Pass `None` when
    /// the subject has no secret on file (unknown customer): the attempt is counted and a hash
    /// is still computed, so the answer and its timing do not reveal whether the customer
    /// exists.
    pub async fn verify_secret(
        &self,
        subject: &str,
        candidate: &str,
        hash: Option<&SecretHash>,
    ) -> Result<Verification, ToolError> {
        self.verify_secrets(subject, &[(candidate, hash)]).await
    }

    /// Knowledge-based verification: every `(answer, hash)` pair must match (e.g. date of birth
    /// and last four of the SSN). One attempt is counted for the whole set.
    pub async fn verify_secrets(
        &self,
        subject: &str,
        answers: &[(&str, Option<&SecretHash>)],
    ) -> Result<Verification, ToolError> {
        let services = self.verify_services();
        let policy = &services.policy;
        let key = format!("{}/{}", self.agent_name(), subject);
        let now = services.clock.now_unix();
        let attempt = match services
            .attempts
            .reserve(&key, policy.max_attempts, now)
            .await?
        {
            Reservation::Locked { until: Some(until) } => {
                self.security_event("verification_locked", subject).await?;
                return Ok(self.locked(Some(until)));
            }
            Reservation::Locked { until: None } => {
                // The budget is used up by attempts not settled yet (in flight, or lost in a
                // crash). Start the lockout now so it cannot last forever; a success still
                // settling will lift it.
                let status = services
                    .attempts
                    .settle(
                        &key,
                        false,
                        policy.max_attempts,
                        policy.lockout.as_secs(),
                        now,
                    )
                    .await?;
                self.security_event("verification_locked", subject).await?;
                return Ok(self.locked(status.locked_until));
            }
            Reservation::Granted { attempt } => attempt,
        };
        let pairs: Vec<(String, Option<SecretHash>)> = answers
            .iter()
            .map(|(answer, hash)| (answer.trim().to_string(), hash.cloned()))
            .collect();
        let matched = services.hashers.check(&services.vault, pairs).await?;
        let now = services.clock.now_unix();
        let status = services
            .attempts
            .settle(
                &key,
                matched,
                policy.max_attempts,
                policy.lockout.as_secs(),
                now,
            )
            .await?;
        if !matched {
            if status.locked_until.is_some() {
                self.security_event("verification_lockout", subject).await?;
                return Ok(self.locked(status.locked_until));
            }
            self.security_event("verification_failed", subject).await?;
            // Counted from this attempt's own reservation: guesses settling concurrently
            // would otherwise all hear the same figure.
            let remaining = policy.max_attempts.saturating_sub(attempt);
            let sentence = match remaining {
                1 => "That didn't match our records. You have one attempt left.".to_string(),
                n => format!("That didn't match our records. You have {n} attempts left."),
            };
            return Ok(Verification {
                outcome: VerifyOutcome::Failed { remaining },
                result: FunctionResult::new(sentence),
            });
        }
        let session = self.session();
        session.set(&policy.flag, &true).await?;
        session.set(SUBJECT_KEY, subject).await?;
        let role = self
            .caller_number()
            .and_then(|n| policy.callers.get(n))
            .filter(|entry| entry.subject == subject)
            .map(|entry| entry.role.clone());
        match &role {
            Some(role) => session.set(ROLE_KEY, role).await?,
            None => session.remove(ROLE_KEY).await?,
        }
        self.security_event("verification_succeeded", subject)
            .await?;
        let mut result = FunctionResult::new(SENTENCE_VERIFIED)
            .set_global_data(serde_json::json!({ "verified": true }));
        if !policy.activate.is_empty() {
            result = result.toggle_functions(policy.activate.iter().map(|t| (t.clone(), true)));
        }
        Ok(Verification {
            outcome: VerifyOutcome::Verified,
            result,
        })
    }

    fn locked(&self, until: Option<u64>) -> Verification {
        let result = FunctionResult::new(SENTENCE_LOCKED);
        let result = match &self.verify_services().policy.on_lockout {
            LockoutAction::Hangup => result.hangup(),
            LockoutAction::Transfer(line) => result.connect(line.clone()),
        };
        Verification {
            outcome: VerifyOutcome::Locked { until },
            result: result.post_process(true),
        }
    }

    /// Log and audit a verification event; the audit write completes before the answer.
    async fn security_event(&self, event: &'static str, subject: &str) -> Result<(), ToolError> {
        if event == "verification_succeeded" {
            tracing::info!(target: "voxguard::security", event, agent = self.agent_name(), call_id = self.call_id(), "caller verified");
        } else {
            tracing::warn!(
                target: "voxguard::security",
                event,
                agent = self.agent_name(),
                call_id = self.call_id(),
                subject_len = subject.len(),
                "verification event"
            );
        }
        let kind = match event {
            "verification_locked" | "verification_lockout" => "lockout",
            other => other,
        };
        let mut record = Auditor::event(kind);
        record.agent = Some(self.agent_name().to_string());
        record.call_id = Some(self.call_id().to_string());
        record.request_id = Some(self.request_id().to_string());
        record.caller = self.caller_number().map(mask);
        record.outcome = Some(event.to_string());
        self.verify_services()
            .auditor
            .record(record)
            .await
            .map_err(|_| ToolError::internal("audit trail unavailable"))
    }
}
