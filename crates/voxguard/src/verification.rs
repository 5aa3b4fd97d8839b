//! The verification kit: PINs, passphrases and knowledge-based answers checked against
//! argon2id hashes, with failed attempts counted per customer *across calls* and a lockout.
//!
//! Owns the sequence reserve-attempt → verify → settle → update the server-side session. The
//! attempt is reserved before the (slow) hash comparison, atomically in the `AttemptStore`,
//! so parallel guesses can never exceed the limit and a crash mid-check counts as a failure.
//! Consecutive lockouts escalate and a daily cap bounds the failures per subject (the policy's
//! `AttemptLimits`). Counters are stored under an HMAC of agent and subject, never the subject
//! itself (agents pass unknown callers' numbers as subjects), and verification audit events
//! carry only a short prefix of that HMAC (`arguments.subject`), so repeated lockouts of one
//! subject can be told apart without naming it.
//! On success the session flag is set (never `global_data`), the counter is reset, a role from
//! the caller allow-list is recorded, and optionally tools rendered inactive are switched on.
//!
//! Caller ID alone never unlocks anything: `caller_id_num` is whatever the calling network
//! claims and is trivially spoofed. The allow-list maps numbers to names and roles, but a role
//! only takes effect after a secret was verified on this call.

use voxguard_guard::{AuditKind, Outcome, SecretHash};
use voxguard_store::Reservation;
use voxguard_swml::FunctionResult;

use crate::audit::mask;
use crate::context::{CallContext, SessionError, ROLE_KEY, SUBJECT_KEY};
use crate::tool::ToolError;
use crate::verify_policy::{attempt_row_key, LockoutAction};

/// Hex characters of the counter key that audit events carry as the subject's pseudonym.
const SUBJECT_REF_CHARS: usize = 16;

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
        let services = self.services();
        let policy = self.verification_policy();
        let limits = policy.limits();
        let subject_key = policy.subject_key.as_ref().unwrap_or(&services.subject_key);
        let key = attempt_row_key(subject_key, self.agent_name(), subject)
            .ok_or_else(|| ToolError::internal("attempt key unavailable"))?;
        let subject_ref = key.get(..SUBJECT_REF_CHARS).unwrap_or(&key);
        let now = services.clock.now_unix();
        let attempt = match services
            .attempts
            .reserve(&key, &limits, now)
            .await
            .map_err(SessionError::from)?
        {
            Reservation::Locked { until: Some(until) } => {
                self.security_event(Event::Locked, subject_ref).await?;
                return Ok(self.locked(Some(until)));
            }
            Reservation::Locked { until: None } => {
                // The budget is used up by attempts not settled yet (in flight, or lost in a
                // crash). Start the lockout now so it cannot last forever; a success still
                // settling will lift it.
                let status = services
                    .attempts
                    .settle(&key, false, &limits, now)
                    .await
                    .map_err(SessionError::from)?;
                self.security_event(Event::Locked, subject_ref).await?;
                return Ok(self.locked(status.locked_until));
            }
            Reservation::Granted { attempt } => attempt,
        };
        let pairs: Vec<(String, Option<SecretHash>)> = answers
            .iter()
            .map(|(answer, hash)| (answer.trim().to_string(), hash.cloned()))
            .collect();
        let matched = services
            .hashers
            .check(&services.vault, pairs)
            .await
            .map_err(ToolError::internal)?;
        let now = services.clock.now_unix();
        let status = services
            .attempts
            .settle(&key, matched, &limits, now)
            .await
            .map_err(SessionError::from)?;
        if !matched {
            if status.locked_until.is_some() {
                self.security_event(Event::Lockout, subject_ref).await?;
                return Ok(self.locked(status.locked_until));
            }
            self.security_event(Event::Failed, subject_ref).await?;
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
        self.security_event(Event::Succeeded, subject_ref).await?;
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
        let result = match &self.verification_policy().on_lockout {
            LockoutAction::Hangup => result.hangup(),
            LockoutAction::Transfer(line) => result.connect(line.clone()),
        };
        Verification {
            outcome: VerifyOutcome::Locked { until },
            result: result.post_process(true),
        }
    }

    /// Log and audit a verification event; the audit write completes before the answer.
    /// `subject_ref` is the subject's pseudonym (a prefix of its counter key), never the subject.
    async fn security_event(&self, event: Event, subject_ref: &str) -> Result<(), ToolError> {
        let (kind, outcome) = event.audit();
        if event == Event::Succeeded {
            tracing::info!(target: "voxguard::security", event = outcome.as_str(), agent = self.agent_name(), call_id = self.call_id(), "caller verified");
        } else {
            tracing::warn!(
                target: "voxguard::security",
                event = outcome.as_str(),
                agent = self.agent_name(),
                call_id = self.call_id(),
                subject = subject_ref,
                "verification event"
            );
        }
        let auditor = &self.services().auditor;
        let mut record = auditor.event(kind, outcome);
        record.agent = Some(self.agent_name().to_string());
        record.call_id = Some(self.call_id().to_string());
        record.request_id = Some(self.request_id().to_string());
        record.caller = self.caller_number().map(mask);
        record.arguments = Some(serde_json::json!({ "subject": subject_ref }));
        auditor
            .record(record)
            .await
            .map_err(|_| ToolError::internal("audit trail unavailable"))
    }
}

/// The verification events that are logged and audited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    /// The secret matched.
    Succeeded,
    /// It did not match; attempts remain.
    Failed,
    /// This failure started a lockout.
    Lockout,
    /// An attempt while locked out.
    Locked,
}

impl Event {
    /// The audit kind and outcome of the event.
    fn audit(self) -> (AuditKind, Outcome) {
        match self {
            Event::Succeeded => (
                AuditKind::VerificationSucceeded,
                Outcome::VerificationSucceeded,
            ),
            Event::Failed => (AuditKind::VerificationFailed, Outcome::VerificationFailed),
            Event::Lockout => (AuditKind::Lockout, Outcome::VerificationLockout),
            Event::Locked => (AuditKind::Lockout, Outcome::VerificationLocked),
        }
    }
}
