//! How a request to an agent endpoint ended, as types: [`Verdict`] (answered, refused by the
//! runtime, refused by the handler), the [`Trail`] of what the audit record needs to know, and
//! the mapping from both to an audit kind and outcome.
//!
//! Owns that mapping; nothing reads a reply back to find out what happened. It must not write
//! anything: `audited` records, the steps decide. A handler's own refusal is always audited as
//! `tool_called`/`refused` under its reason, whatever that reason's text: a handler cannot make
//! its refusal look like a token, rate-limit or transfer refusal of the runtime.

use serde_json::{json, Value};
use voxguard_guard::{AuditKind, Outcome, Reason, Refusal};
use voxguard_server::Reply;

/// Which endpoint a request came to; decides the audit kind of a success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `POST {route}/swaig`: a tool call.
    Swaig,
    /// `POST {route}/post_prompt`: the end-of-call summary.
    Summary,
}

impl Endpoint {
    /// The audit kind of a request that reached its handler.
    fn handled_kind(self) -> AuditKind {
        match self {
            Endpoint::Swaig => AuditKind::ToolCalled,
            Endpoint::Summary => AuditKind::SummaryReceived,
        }
    }
}

/// How a request ended, before it is audited and answered.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// The handler answered: the JSON body.
    Answered(Value),
    /// The runtime refused (before the handler, or after it for `transfer_blocked`).
    Refused(Refusal),
    /// The handler refused on purpose, with its own reason and sentence.
    HandlerRefused {
        /// The agent's reason.
        reason: String,
        /// The sentence for the AI.
        sentence: String,
    },
}

impl From<Refusal> for Verdict {
    fn from(refusal: Refusal) -> Self {
        Verdict::Refused(refusal)
    }
}

/// What the audit record of a request needs to know, filled in as the steps go.
#[derive(Debug)]
pub(crate) struct Trail {
    pub(crate) endpoint: Endpoint,
    pub(crate) function: Option<String>,
    pub(crate) call_id: Option<String>,
    pub(crate) caller: Option<String>,
    pub(crate) arguments: Option<Value>,
    pub(crate) handler_ran: bool,
    /// `pay` verbs the handler's result asked the platform to run (amount and currency only;
    /// the card itself never passes through voxguard).
    pub(crate) payments: Vec<Value>,
    /// The session scope of a token-verified call (secure tools only): where the call's data
    /// subject is found when its tool log is stored as a record.
    pub(crate) session: Option<String>,
    /// Whether the request got past its token (or, for a public tool, which has none, past its
    /// rate limits): until then a refusal is counted per source, reason and function rather than
    /// written one record per request.
    pub(crate) verified: bool,
}

impl Trail {
    pub(crate) fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            function: None,
            call_id: None,
            caller: None,
            arguments: None,
            handler_ran: false,
            payments: Vec::new(),
            session: None,
            verified: false,
        }
    }

    /// The audit kind, outcome and reason of `verdict`.
    pub(crate) fn classify(&self, verdict: &Verdict) -> (AuditKind, Outcome, Option<String>) {
        let handled = self.endpoint.handled_kind();
        match verdict {
            Verdict::Answered(_) => (handled, Outcome::Ok, None),
            Verdict::HandlerRefused { reason, .. } => {
                (handled, Outcome::Refused, Some(reason.clone()))
            }
            Verdict::Refused(refusal) => {
                let reason = refusal.reason();
                let (kind, outcome) = match reason {
                    r if r.is_token() => (AuditKind::TokenRefused, Outcome::Refused),
                    Reason::TransferBlocked => (AuditKind::TransferBlocked, Outcome::Refused),
                    Reason::RateLimited => (AuditKind::RateLimited, Outcome::Refused),
                    Reason::ToolFailed => (handled, Outcome::Failed),
                    _ if self.handler_ran => (handled, Outcome::Refused),
                    _ => (AuditKind::PolicyRefused, Outcome::Refused),
                };
                (kind, outcome, Some(reason.as_str().to_string()))
            }
        }
    }
}

impl Verdict {
    /// The answer to send.
    pub(crate) fn into_reply(self) -> Reply {
        match self {
            Verdict::Answered(body) => Reply::ok(body),
            Verdict::Refused(refusal) => Reply::from(refusal),
            Verdict::HandlerRefused { reason, sentence } => {
                Reply::ok(json!({ "response": sentence, "error": reason }))
            }
        }
    }
}
