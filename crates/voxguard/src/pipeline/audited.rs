//! The one audit wrapper of every agent endpoint: how a request ended ([`Verdict`]), what the
//! record needs to know about it ([`Trail`]), and [`Pipeline::audited`], which writes the audit
//! event (and counts the metrics) *before* the answer goes out.
//!
//! Owns the mapping from a typed verdict to the audit kind and outcome; nothing here reads a
//! reply back to find out what happened. It must not make decisions: the steps decide, this
//! records. An endpoint added later (payments, records) gets its audit record by returning a
//! `Verdict` with its own [`Endpoint`].

use serde_json::{json, Value};
use voxguard_guard::{AuditKind, Outcome, Reason, Refusal};
use voxguard_server::{Reply, RequestInfo};

use super::Pipeline;
use crate::audit::mask;

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
    fn into_reply(self) -> Reply {
        match self {
            Verdict::Answered(body) => Reply::ok(body),
            Verdict::Refused(refusal) => Reply::from(refusal),
            Verdict::HandlerRefused { reason, sentence } => {
                Reply::ok(json!({ "response": sentence, "error": reason }))
            }
        }
    }
}

/// The answer when the audit trail cannot be written: nothing is acknowledged that is not on
/// record.
fn audit_unavailable() -> Reply {
    Reply::from(Refusal::new(
        Reason::AuditUnavailable,
        "I'm sorry, I can't complete that request right now. Please try again later.",
    ))
}

impl Pipeline {
    /// **The audit wrapper of every endpoint.** Count the metrics, write the request's audit
    /// event (and one per requested payment), then hand back the answer — or, when an event
    /// cannot be stored, refuse with `audit_unavailable`.
    pub(crate) async fn audited(
        &self,
        info: &RequestInfo,
        trail: Trail,
        verdict: Verdict,
    ) -> Reply {
        let auditor = &self.services.auditor;
        let (kind, outcome, reason) = trail.classify(&verdict);
        if trail.handler_ran {
            if let Some(function) = &trail.function {
                auditor.metrics.tool_call(function, outcome.as_str());
            }
        }
        if let Some(reason) = &reason {
            // Stable reasons only: a handler's own refusal reasons are the agent's bounded set.
            auditor.metrics.refusal(reason);
        }
        let caller = trail.caller.as_deref().filter(|c| !c.is_empty()).map(mask);
        let stamp = |kind, outcome| {
            let mut event = auditor.event(kind, outcome);
            event.agent = Some(self.agent.name().to_string());
            event.request_id = Some(info.request_id.clone());
            event.call_id = trail.call_id.clone();
            event.caller = caller.clone();
            event.function = trail.function.clone();
            event.source = Some(info.client.ip().to_string());
            event
        };
        for payment in &trail.payments {
            let mut event = stamp(AuditKind::Payment, Outcome::Requested);
            event.arguments = Some(payment.clone());
            if auditor.record(event).await.is_err() {
                return audit_unavailable();
            }
        }
        let mut event = stamp(kind, outcome);
        event.arguments = trail.arguments;
        event.reason = reason;
        match auditor.record(event).await {
            Ok(()) => verdict.into_reply().with_call_id(trail.call_id),
            Err(_) => audit_unavailable(),
        }
    }
}
