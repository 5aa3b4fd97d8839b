//! The one audit wrapper of every agent endpoint: [`Pipeline::audited`] counts the metrics and
//! writes the audit event of a request's [`Verdict`] *before* the answer goes out.
//!
//! It must not make decisions: the steps decide, `verdict` maps, this records. An endpoint
//! added later (payments, records) gets its audit record by returning a `Verdict` with its own
//! `Endpoint`. When an event cannot be stored the answer is `audit_unavailable`: nothing is
//! acknowledged that is not on record. A refusal before the request's token was verified is
//! counted per source and reason and written aggregated (`AuthEvents`), so that a sender without
//! a token cannot grow the trail at request rate.

use voxguard_guard::{AuditKind, Outcome, Reason, Refusal};
use voxguard_server::{Reply, RequestInfo};

use super::verdict::{Trail, Verdict};
use super::Pipeline;
use crate::audit::mask;
use crate::context::SUBJECT_KEY;
use crate::records::RecordKind;

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
            let mut event = stamp(AuditKind::PaymentRequested, Outcome::Requested);
            event.arguments = Some(payment.clone());
            if auditor.record(event).await.is_err() {
                return audit_unavailable();
            }
        }
        let mut event = stamp(kind, outcome);
        event.arguments = trail.arguments.clone();
        event.reason = reason.clone();
        if let (false, Verdict::Refused(refusal)) = (trail.verified, &verdict) {
            // Refused before its token was verified (no token, a wrong one, an unknown
            // function, not a SWAIG call): anyone with the webhook credentials can send these at
            // request rate, so they are counted per source and reason, not written one by one.
            if self
                .services
                .failures
                .refused_unverified(info.client, refusal.reason(), &event)
                .await
                .is_err()
            {
                return audit_unavailable();
            }
            return verdict.into_reply().with_call_id(trail.call_id);
        }
        if auditor.record(event).await.is_err() {
            return audit_unavailable();
        }
        self.store_tool_log(&trail, outcome, reason.as_deref())
            .await;
        verdict.into_reply().with_call_id(trail.call_id)
    }

    /// Keep a token-verified tool call in the call's tool log (a record of kind `tool_log`:
    /// declared arguments, already redacted and bounded, and the outcome), under the call's
    /// data subject once the agent has named one. Rate-limited calls are only audited. A
    /// records failure is logged; the call's answer does not depend on it.
    async fn store_tool_log(&self, trail: &Trail, outcome: Outcome, reason: Option<&str>) {
        let (Some(records), Some(scope), Some(call_id)) =
            (&self.services.records, &trail.session, &trail.call_id)
        else {
            return;
        };
        if reason == Some(Reason::RateLimited.as_str()) {
            return;
        }
        let now = self.services.clock.now_unix();
        let subject = match self.store.get(scope, SUBJECT_KEY, now).await {
            Ok(value) => value.and_then(|v| v.as_str().map(str::to_string)),
            Err(error) => {
                tracing::error!(%error, "tool log not stored: the session could not be read");
                return;
            }
        };
        let content = serde_json::json!({
            "function": trail.function,
            "arguments": trail.arguments,
            "outcome": outcome.as_str(),
            "reason": reason,
        });
        if let Err(error) = records
            .store(
                self.agent.name(),
                call_id,
                subject.as_deref(),
                RecordKind::ToolLog,
                &content,
            )
            .await
        {
            tracing::error!(target: "voxguard::security", %error, "tool log record could not be stored");
        }
    }
}
