//! What an audit event says happened ([`AuditKind`]) and how it ended ([`Outcome`]).
//!
//! Owns the closed vocabulary of the audit trail and its stored spelling: each variant is
//! stored as its snake_case name, exactly the strings events carried before they were typed,
//! so stored records and their chain hashes are unchanged. Renaming a variant's stored name
//! would break every existing audit file; this module must not do that, nor know anything of
//! hashing, storage or the runtime that writes the events.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What happened, as recorded in [`AuditEvent::kind`](super::AuditEvent::kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    /// A request to an agent was refused at the HTTP layer: wrong or missing Basic credentials
    /// (`auth_failed`).
    AuthFailed,
    /// A `secure` tool was called with a missing, invalid, expired or misbound function token
    /// (`token_refused`).
    TokenRefused,
    /// A tool call reached its handler; the [`Outcome`] says whether it succeeded, failed or
    /// the handler refused (`tool_called`).
    ToolCalled,
    /// A call policy (emergency switch, verification required, confirmation, argument or
    /// input checks) refused a tool call before its handler ran (`policy_refused`).
    PolicyRefused,
    /// A tool call was refused by a rate limit (`rate_limited`).
    RateLimited,
    /// A handler asked to transfer or connect the call to a destination that is not on the
    /// agent's allow-list (`transfer_blocked`).
    TransferBlocked,
    /// The caller passed identity verification (`verification_succeeded`).
    VerificationSucceeded,
    /// The caller failed an identity verification attempt (`verification_failed`).
    VerificationFailed,
    /// Identity verification is locked for the caller, or this attempt locked it
    /// (`lockout`; the [`Outcome`] says which).
    Lockout,
    /// The emergency switch was turned on or off (`emergency_toggled`).
    EmergencyToggled,
    /// A handler requested a payment; the arguments hold the (redacted) payment details
    /// (`payment`).
    Payment,
    /// The platform posted its end-of-call summary for the agent (`summary_received`).
    SummaryReceived,
    /// An operator listed record metadata or read a record's content (`record_accessed`).
    RecordAccessed,
    /// An operator exported a record or a data subject's records (`record_exported`).
    RecordExported,
    /// An operator deleted one record (`record_deleted`).
    RecordDeleted,
    /// An operator deleted every record, key, session and counter of a data subject; the event is the tombstone and holds no personal data (`subject_deleted`).
    SubjectDeleted,
    /// An operator request to the records API was refused: unknown or wrong credentials, the platform's credentials, a role without the permission, or no purpose given (`access_denied`).
    AccessDenied,
    /// A retention purge ran; the arguments hold the deleted counts per kind, never content (`records_purged`).
    RecordsPurged,
    /// The records key was rotated: subject data keys were re-wrapped under the new key (`records_key_rotated`).
    RecordsKeyRotated,
    /// An operator account was added, removed or given another role (`operator_changed`).
    OperatorChanged,
    /// A handler asked the platform to collect a payment for an amount held in server state (`payment_requested`).
    PaymentRequested,
    /// The payment connector charged (or tokenized) a card; the arguments hold brand, last four, expiry and the gateway's id, never the card (`payment_charged`).
    PaymentCharged,
    /// The card was refused: by the connector's checks (Luhn, expiry, CVV) or by the gateway (`payment_declined`).
    PaymentDeclined,
    /// The gateway could not be reached or answered in time; nothing was charged that a retry would charge again (`payment_error`).
    PaymentError,
    /// The platform's connector request named another amount or currency than the pending payment: a security event (`payment_amount_mismatch`).
    PaymentAmountMismatch,
    /// An operator signed in to or out of the security console, or verified the audit chain from it; `function` says which (`console_sign_in`, `console_sign_out`, `console_audit_verify`) (`console_session`).
    ConsoleSession,
}

impl AuditKind {
    /// Every kind, in declaration order (e.g. the choices of a filter).
    pub const ALL: [AuditKind; 26] = [
        AuditKind::AuthFailed,
        AuditKind::TokenRefused,
        AuditKind::ToolCalled,
        AuditKind::PolicyRefused,
        AuditKind::RateLimited,
        AuditKind::TransferBlocked,
        AuditKind::VerificationSucceeded,
        AuditKind::VerificationFailed,
        AuditKind::Lockout,
        AuditKind::EmergencyToggled,
        AuditKind::Payment,
        AuditKind::SummaryReceived,
        AuditKind::RecordAccessed,
        AuditKind::RecordExported,
        AuditKind::RecordDeleted,
        AuditKind::SubjectDeleted,
        AuditKind::AccessDenied,
        AuditKind::RecordsPurged,
        AuditKind::RecordsKeyRotated,
        AuditKind::OperatorChanged,
        AuditKind::PaymentRequested,
        AuditKind::PaymentCharged,
        AuditKind::PaymentDeclined,
        AuditKind::PaymentError,
        AuditKind::PaymentAmountMismatch,
        AuditKind::ConsoleSession,
    ];

    /// The kind stored as `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// The stored snake_case name, e.g. `tool_called` (the same text serde writes).
    pub fn as_str(&self) -> &'static str {
        match self {
            AuditKind::AuthFailed => "auth_failed",
            AuditKind::TokenRefused => "token_refused",
            AuditKind::ToolCalled => "tool_called",
            AuditKind::PolicyRefused => "policy_refused",
            AuditKind::RateLimited => "rate_limited",
            AuditKind::TransferBlocked => "transfer_blocked",
            AuditKind::VerificationSucceeded => "verification_succeeded",
            AuditKind::VerificationFailed => "verification_failed",
            AuditKind::Lockout => "lockout",
            AuditKind::EmergencyToggled => "emergency_toggled",
            AuditKind::Payment => "payment",
            AuditKind::SummaryReceived => "summary_received",
            AuditKind::RecordAccessed => "record_accessed",
            AuditKind::RecordExported => "record_exported",
            AuditKind::RecordDeleted => "record_deleted",
            AuditKind::SubjectDeleted => "subject_deleted",
            AuditKind::AccessDenied => "access_denied",
            AuditKind::RecordsPurged => "records_purged",
            AuditKind::RecordsKeyRotated => "records_key_rotated",
            AuditKind::OperatorChanged => "operator_changed",
            AuditKind::PaymentRequested => "payment_requested",
            AuditKind::PaymentCharged => "payment_charged",
            AuditKind::PaymentDeclined => "payment_declined",
            AuditKind::PaymentError => "payment_error",
            AuditKind::PaymentAmountMismatch => "payment_amount_mismatch",
            AuditKind::ConsoleSession => "console_session",
        }
    }
}

impl fmt::Display for AuditKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the recorded thing ended, as recorded in
/// [`AuditEvent::outcome`](super::AuditEvent::outcome).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It succeeded (`ok`), e.g. a handler returned normally.
    Ok,
    /// It was refused (`refused`): by authentication, a token check, a policy, a rate limit,
    /// the transfer allow-list or the handler itself; `reason` says why.
    Refused,
    /// It was attempted and failed (`failed`), e.g. a handler returned an error.
    Failed,
    /// It was asked for and is not done yet (`requested`), e.g. a payment handed to the
    /// platform.
    Requested,
    /// The emergency switch was turned on (`enabled`).
    Enabled,
    /// The emergency switch was turned off (`disabled`).
    Disabled,
    /// The verification attempt succeeded (`verification_succeeded`).
    VerificationSucceeded,
    /// The verification attempt failed (`verification_failed`).
    VerificationFailed,
    /// The attempt was refused because verification is already locked for the caller
    /// (`verification_locked`).
    VerificationLocked,
    /// This failed attempt used up the allowed attempts and locked verification
    /// (`verification_lockout`).
    VerificationLockout,
}

impl Outcome {
    /// Every outcome, in declaration order (e.g. the choices of a filter).
    pub const ALL: [Outcome; 10] = [
        Outcome::Ok,
        Outcome::Refused,
        Outcome::Failed,
        Outcome::Requested,
        Outcome::Enabled,
        Outcome::Disabled,
        Outcome::VerificationSucceeded,
        Outcome::VerificationFailed,
        Outcome::VerificationLocked,
        Outcome::VerificationLockout,
    ];

    /// The outcome stored as `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|outcome| outcome.as_str() == name)
    }

    /// The stored snake_case name, e.g. `refused` (the same text serde writes).
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
            Outcome::Requested => "requested",
            Outcome::Enabled => "enabled",
            Outcome::Disabled => "disabled",
            Outcome::VerificationSucceeded => "verification_succeeded",
            Outcome::VerificationFailed => "verification_failed",
            Outcome::VerificationLocked => "verification_locked",
            Outcome::VerificationLockout => "verification_lockout",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    const KINDS: [(AuditKind, &str); 26] = [
        (AuditKind::AuthFailed, "auth_failed"),
        (AuditKind::TokenRefused, "token_refused"),
        (AuditKind::ToolCalled, "tool_called"),
        (AuditKind::PolicyRefused, "policy_refused"),
        (AuditKind::RateLimited, "rate_limited"),
        (AuditKind::TransferBlocked, "transfer_blocked"),
        (AuditKind::VerificationSucceeded, "verification_succeeded"),
        (AuditKind::VerificationFailed, "verification_failed"),
        (AuditKind::Lockout, "lockout"),
        (AuditKind::EmergencyToggled, "emergency_toggled"),
        (AuditKind::Payment, "payment"),
        (AuditKind::SummaryReceived, "summary_received"),
        (AuditKind::RecordAccessed, "record_accessed"),
        (AuditKind::RecordExported, "record_exported"),
        (AuditKind::RecordDeleted, "record_deleted"),
        (AuditKind::SubjectDeleted, "subject_deleted"),
        (AuditKind::AccessDenied, "access_denied"),
        (AuditKind::RecordsPurged, "records_purged"),
        (AuditKind::RecordsKeyRotated, "records_key_rotated"),
        (AuditKind::OperatorChanged, "operator_changed"),
        (AuditKind::PaymentRequested, "payment_requested"),
        (AuditKind::PaymentCharged, "payment_charged"),
        (AuditKind::PaymentDeclined, "payment_declined"),
        (AuditKind::PaymentError, "payment_error"),
        (AuditKind::PaymentAmountMismatch, "payment_amount_mismatch"),
        (AuditKind::ConsoleSession, "console_session"),
    ];

    const OUTCOMES: [(Outcome, &str); 10] = [
        (Outcome::Ok, "ok"),
        (Outcome::Refused, "refused"),
        (Outcome::Failed, "failed"),
        (Outcome::Requested, "requested"),
        (Outcome::Enabled, "enabled"),
        (Outcome::Disabled, "disabled"),
        (Outcome::VerificationSucceeded, "verification_succeeded"),
        (Outcome::VerificationFailed, "verification_failed"),
        (Outcome::VerificationLocked, "verification_locked"),
        (Outcome::VerificationLockout, "verification_lockout"),
    ];

    #[test]
    fn stored_names_are_the_old_strings() {
        for (kind, name) in KINDS {
            assert_eq!(kind.as_str(), name);
            assert_eq!(kind.to_string(), name);
            assert_eq!(serde_json::to_value(kind).unwrap(), json!(name));
            assert_eq!(
                serde_json::from_value::<AuditKind>(json!(name)).unwrap(),
                kind
            );
        }
        for (outcome, name) in OUTCOMES {
            assert_eq!(outcome.as_str(), name);
            assert_eq!(outcome.to_string(), name);
            assert_eq!(serde_json::to_value(outcome).unwrap(), json!(name));
            assert_eq!(
                serde_json::from_value::<Outcome>(json!(name)).unwrap(),
                outcome
            );
        }
    }

    #[test]
    fn all_lists_every_kind_and_outcome_once() {
        assert_eq!(
            AuditKind::ALL.to_vec(),
            KINDS.map(|(kind, _)| kind).to_vec()
        );
        assert_eq!(
            Outcome::ALL.to_vec(),
            OUTCOMES.map(|(outcome, _)| outcome).to_vec()
        );
        for (kind, name) in KINDS {
            assert_eq!(AuditKind::parse(name), Some(kind));
        }
        for (outcome, name) in OUTCOMES {
            assert_eq!(Outcome::parse(name), Some(outcome));
        }
        assert_eq!(AuditKind::parse("Tool_Called"), None);
        assert_eq!(Outcome::parse(""), None);
    }

    #[test]
    fn unknown_names_are_refused() {
        for bad in ["", "Tool_Called", "toolCalled", "record_read", "error"] {
            assert!(serde_json::from_value::<AuditKind>(Value::from(bad)).is_err());
            assert!(serde_json::from_value::<Outcome>(Value::from(bad)).is_err());
        }
    }
}
