//! Refusals as a type: every "no" voxguard says, with its HTTP status, its stable machine reason
//! and the sentence the AI (or a client) hears.
//!
//! This module owns [`Reason`] — the closed set of stable reasons, serialized as the snake_case
//! strings documented in `docs/refusals.md` (a test fails when the two disagree) — and
//! [`Refusal`], one concrete refusal: a reason, its sentence, and the details some reasons carry
//! (the offending `field` and `rule` of an argument refusal, the `Retry-After` of a rate limit).
//! The HTTP status belongs to the reason, so no call site can pair a reason with the wrong status.
//! It must not decide *whether* to refuse, log, or audit: callers decide and record; this is the
//! shape of the answer. A handler's own business refusal (`ToolError::refuse`) is not a
//! `Reason`: its reason string is the agent's, not voxguard's.

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;
use serde_json::{json, Value};

/// Generates [`Reason`] with its string form, HTTP status and the list of every variant.
macro_rules! reasons {
    ($($(#[$doc:meta])* $variant:ident = ($text:literal, $status:literal),)+) => {
        /// A stable, machine-readable reason for a refusal. The string form (`as_str`, serde) is
        /// a public contract: dashboards, alerts and the platform's logs key on it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        pub enum Reason {
            $($(#[$doc])* #[serde(rename = $text)] $variant,)+
        }

        impl Reason {
            /// Every reason, in documentation order.
            pub const ALL: &'static [Reason] = &[$(Reason::$variant,)+];

            /// The stable string, e.g. `token_expired`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$variant => $text,)+
                }
            }

            /// The HTTP status a refusal for this reason is answered with.
            pub const fn status(self) -> u16 {
                match self {
                    $(Reason::$variant => $status,)+
                }
            }
        }
    };
}

reasons! {
    /// No `Authorization` header.
    AuthRequired = ("auth_required", 401),
    /// Not `Basic base64(user:password)`.
    AuthMalformed = ("auth_malformed", 401),
    /// Wrong user or password.
    AuthInvalid = ("auth_invalid", 401),
    /// The request could not be understood at the HTTP level.
    BadRequest = ("bad_request", 400),
    /// The request line's target is longer than the server reads.
    UriTooLong = ("uri_too_long", 414),
    /// The request's headers are larger (or more numerous) than the server reads.
    HeadersTooLarge = ("headers_too_large", 431),
    /// The webhook signature (`X-SignalWire-Signature`) is missing where required, or wrong.
    SignatureInvalid = ("signature_invalid", 403),
    /// No such route.
    NotFound = ("not_found", 404),
    /// The route exists, the method does not.
    MethodNotAllowed = ("method_not_allowed", 405),
    /// The body is not JSON.
    MalformedJson = ("malformed_json", 400),
    /// A SWAIG or post-prompt call without a body.
    EmptyBody = ("empty_body", 400),
    /// The body could not be read (the client stopped sending, or sent a broken encoding).
    BodyUnreadable = ("body_unreadable", 400),
    /// The body is over the configured limit.
    BodyTooLarge = ("body_too_large", 413),
    /// The body is not of a media type the endpoint accepts.
    UnsupportedMediaType = ("unsupported_media_type", 415),
    /// The request took longer than the configured timeout.
    RequestTimeout = ("request_timeout", 503),
    /// Something failed on the server's side; nothing about it is disclosed.
    InternalError = ("internal_error", 500),
    /// Any other HTTP-level refusal.
    RequestRefused = ("request_refused", 400),
    /// JSON, but not the call the endpoint expects (not an object, no `function`).
    InvalidRequest = ("invalid_request", 400),
    /// The call id is missing or malformed.
    InvalidCallId = ("invalid_call_id", 400),
    /// The agent has no tool of that name.
    UnknownFunction = ("unknown_function", 404),
    /// A secure tool was called without a function token.
    TokenMissing = ("token_missing", 403),
    /// The token is malformed, tampered with, or signed by an unknown key.
    TokenInvalid = ("token_invalid", 403),
    /// The token is past its expiry.
    TokenExpired = ("token_expired", 403),
    /// The token was minted for another call.
    TokenWrongCall = ("token_wrong_call", 403),
    /// The token was minted for another function.
    TokenWrongFunction = ("token_wrong_function", 403),
    /// The arguments violate the tool's schema.
    InvalidArgument = ("invalid_argument", 200),
    /// The handler failed or panicked.
    ToolFailed = ("tool_failed", 200),
    /// A summary was posted to an agent without a summary handler.
    SummaryNotConfigured = ("summary_not_configured", 404),
    /// The emergency switch disables this tool.
    EmergencyDisabled = ("emergency_disabled", 200),
    /// A rate limit refused the call.
    RateLimited = ("rate_limited", 429),
    /// A required session flag (e.g. `pin_verified`) is not set for this call.
    VerificationRequired = ("verification_required", 200),
    /// The verified caller lacks the required role.
    Forbidden = ("forbidden", 200),
    /// A string argument was refused by the input guards.
    InputRejected = ("input_rejected", 200),
    /// The action was read back; the caller must confirm it.
    ConfirmationRequired = ("confirmation_required", 200),
    /// The confirming call's arguments differ from what was read back.
    ConfirmationMismatch = ("confirmation_mismatch", 200),
    /// The read-back is older than the confirmation window.
    ConfirmationExpired = ("confirmation_expired", 200),
    /// A handler produced a transfer outside the allow-list.
    TransferBlocked = ("transfer_blocked", 200),
    /// The audit trail could not be written, so nothing is acknowledged.
    AuditUnavailable = ("audit_unavailable", 503),
    /// Shared state (the session store, the database or the rate-limit server) could not be
    /// reached, so the request is refused rather than decided without it.
    StoreUnavailable = ("store_unavailable", 503),
    /// A handler result would record the call, which HIPAA mode forbids.
    RecordingBlocked = ("recording_blocked", 200),
    /// A records API request without operator credentials (or with the platform's).
    OperatorAuthRequired = ("operator_auth_required", 401),
    /// Unknown operator, wrong password or unknown token on the records API.
    OperatorAuthInvalid = ("operator_auth_invalid", 401),
    /// The operator's role lacks the permission the records request needs.
    AccessDenied = ("access_denied", 403),
    /// A records content read without a `purpose`.
    PurposeRequired = ("purpose_required", 400),
    /// No such record (never stored, purged, expired or deleted).
    RecordNotFound = ("record_not_found", 404),
    /// A records API query parameter or path segment is not valid.
    InvalidQuery = ("invalid_query", 400),
    /// The operator change conflicts with existing state.
    OperatorConflict = ("operator_conflict", 409),
    /// Gateway mode: the upstream agent did not answer a SWML fetch, or answered something the
    /// gateway cannot serve safely (not SWML, or its credentials where the gateway cannot
    /// replace them).
    UpstreamFailed = ("upstream_failed", 502),
}

impl Reason {
    /// Whether this is one of the function-token reasons (`token_*`).
    pub const fn is_token(self) -> bool {
        matches!(
            self,
            Reason::TokenMissing
                | Reason::TokenInvalid
                | Reason::TokenExpired
                | Reason::TokenWrongCall
                | Reason::TokenWrongFunction
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One refusal: a [`Reason`] (which fixes the HTTP status), the sentence to answer with, and the
/// details some reasons carry. Build it with [`Refusal::new`] and the `with_*` methods; render it
/// with [`Refusal::body`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    reason: Reason,
    sentence: Cow<'static, str>,
    field: Option<String>,
    rule: Option<String>,
    retry_after_secs: Option<u64>,
}

impl Refusal {
    /// A refusal for `reason` answered with `sentence`.
    pub fn new(reason: Reason, sentence: impl Into<Cow<'static, str>>) -> Self {
        Self {
            reason,
            sentence: sentence.into(),
            field: None,
            rule: None,
            retry_after_secs: None,
        }
    }

    /// Name the offending argument path and the rule it broke (`invalid_argument`,
    /// `input_rejected`). The caller must pass a field name that is safe to show.
    pub fn with_field(mut self, field: impl Into<String>, rule: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self.rule = Some(rule.into());
        self
    }

    /// Seconds after which a retry may succeed (`Retry-After`, for `rate_limited`).
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// The reason.
    pub fn reason(&self) -> Reason {
        self.reason
    }

    /// The HTTP status (the reason's).
    pub fn status(&self) -> u16 {
        self.reason.status()
    }

    /// The sentence.
    pub fn sentence(&self) -> &str {
        &self.sentence
    }

    /// The offending field, if the reason names one.
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }

    /// The `Retry-After` seconds, if any.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after_secs
    }

    /// The JSON body: `{"response": sentence, "error": reason}`, plus `field` and `rule` when set.
    pub fn body(&self) -> Value {
        let mut body = json!({ "response": self.sentence, "error": self.reason.as_str() });
        if let (Some(field), Some(rule), Some(map)) =
            (&self.field, &self.rule, body.as_object_mut())
        {
            map.insert("field".into(), Value::String(field.clone()));
            map.insert("rule".into(), Value::String(rule.clone()));
        }
        body
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.reason, self.reason.status())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// The `| reason | HTTP | when |` rows of docs/refusals.md.
    fn documented() -> BTreeMap<String, u16> {
        let doc = include_str!("../../../docs/refusals.md");
        doc.lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let reason = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
                if !reason.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                    return None;
                }
                let status = cells.get(2)?.parse::<u16>().ok()?;
                Some((reason.to_string(), status))
            })
            .collect()
    }

    #[test]
    fn docs_and_enum_agree_on_every_reason_and_status() {
        let documented = documented();
        let code: BTreeMap<String, u16> = Reason::ALL
            .iter()
            .map(|r| (r.as_str().to_string(), r.status()))
            .collect();
        assert_eq!(
            documented, code,
            "docs/refusals.md and Reason disagree (left: docs, right: code)"
        );
    }

    #[test]
    fn strings_round_trip_and_serialize_as_documented() {
        let strings: std::collections::BTreeSet<&str> =
            Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(strings.len(), Reason::ALL.len(), "every string is distinct");
        for reason in Reason::ALL {
            assert_eq!(
                serde_json::to_value(reason).ok(),
                Some(Value::String(reason.as_str().to_string()))
            );
        }
    }

    #[test]
    fn body_carries_field_and_rule_only_when_set() {
        let plain = Refusal::new(Reason::Forbidden, "No.");
        assert_eq!(plain.status(), 200);
        assert_eq!(
            plain.body(),
            json!({"response": "No.", "error": "forbidden"})
        );
        let detailed = Refusal::new(Reason::InvalidArgument, "Again.").with_field("pin", "pattern");
        assert_eq!(
            detailed.body(),
            json!({"response": "Again.", "error": "invalid_argument", "field": "pin", "rule": "pattern"})
        );
        assert!(Reason::TokenExpired.is_token());
        for error in [
            crate::token::TokenError::Missing,
            crate::token::TokenError::Invalid,
            crate::token::TokenError::Expired,
            crate::token::TokenError::WrongCall,
            crate::token::TokenError::WrongFunction,
        ] {
            assert_eq!(Reason::from(error).as_str(), error.reason());
            assert!(Reason::from(error).is_token());
        }
        assert_eq!(
            crate::credentials::AuthError::Malformed.reason(),
            "auth_malformed"
        );
        assert!(!Reason::RateLimited.is_token());
    }
}
