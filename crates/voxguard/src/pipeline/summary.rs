//! The end-of-call summary endpoint, `POST {route}/post_prompt`: token-checked like a secure
//! tool, handed to the agent's `on_summary` handler, and audited like every endpoint.
//!
//! Owns the steps of a summary request: a handler or records configured (404
//! `summary_not_configured`) → parse (`invalid_request`) → function token bound to the summary
//! (403 `token_*`) → call id → redact the summary and transcript → with records on, store both
//! (encrypted, under the call's data subject) → the handler, given the **redacted** summary, in
//! its own task (`tool_failed` on error or panic). Redaction and encryption themselves belong to
//! `records`; this module only decides what is stored when.

use serde_json::{json, Value};
use voxguard_guard::{Reason, Refusal};
use voxguard_server::{Reply, RequestInfo};
use voxguard_swml::PostPromptRequest;

use super::verdict::{Endpoint, Trail, Verdict};
use super::{
    check_call_id, check_token, failed, token_refusal, AbortOnDrop, Pipeline, MAX_CALL_ID_LEN,
};
use crate::agent::POST_PROMPT_FUNCTION;
use crate::records::RecordKind;

/// Session key marking that this render's summary was received (runtime-internal).
const SUMMARY_TAKEN_KEY: &str = "__vg.summary_taken";

impl Pipeline {
    /// Handle `POST {route}/post_prompt`.
    pub(crate) async fn summary(&self, info: &RequestInfo, body: Value) -> Reply {
        let mut trail = Trail::new(Endpoint::Summary);
        trail.function = Some(POST_PROMPT_FUNCTION.to_string());
        let verdict = self
            .summary_steps(info, body, &mut trail)
            .await
            .unwrap_or_else(Verdict::from);
        self.audited(info, trail, verdict).await
    }

    async fn summary_steps(
        &self,
        info: &RequestInfo,
        body: Value,
        trail: &mut Trail,
    ) -> Result<Verdict, Refusal> {
        let agent = &self.agent;
        let handler = agent.inner.on_summary.clone();
        if handler.is_none() && self.services.records.is_none() {
            return Err(Refusal::new(
                Reason::SummaryNotConfigured,
                "This agent does not accept summaries.",
            ));
        }
        let request: PostPromptRequest = serde_json::from_value(body).map_err(|_| {
            Refusal::new(
                Reason::InvalidRequest,
                "The request is not a post-prompt summary.",
            )
        })?;
        let call_id = request.call_id.clone().unwrap_or_default();
        trail.call_id = Some(call_id.chars().take(MAX_CALL_ID_LEN).collect());
        let caller =
            super::bounds::caller_number(request.caller_id_num.as_deref()).map(str::to_string);
        trail.caller = caller.clone();
        let render = check_token(
            &self.keys,
            info,
            &call_id,
            POST_PROMPT_FUNCTION,
            self.now_unix(),
        )
        .map_err(|error| token_refusal(agent.name(), POST_PROMPT_FUNCTION, info, error))?;
        trail.verified = true;
        check_call_id(&call_id)?;
        let ctx = self
            .context(info, &call_id, &render)
            .with_caller(caller, None)
            .with_global_data(request.global_data.clone().unwrap_or_default());
        let fail = |error: String| failed(agent.name(), POST_PROMPT_FUNCTION, &call_id, &error);
        // One summary per render: a replay of the render's post-prompt URL (its token is valid
        // for the token's lifetime) is acknowledged but neither stored nor handed on. Two
        // posts racing within the same instant can both pass; a replay later cannot.
        let session = ctx.session();
        if session
            .flag(SUMMARY_TAKEN_KEY)
            .await
            .map_err(|e| fail(e.to_string()))?
        {
            return Ok(Verdict::Answered(
                json!({ "response": "Summary already received." }),
            ));
        }
        session
            .set(SUMMARY_TAKEN_KEY, &true)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let request = self.redacted_summary(request);
        if let Some(records) = &self.services.records {
            let subject = ctx.subject().await.map_err(|e| fail(e.to_string()))?;
            let summary = request.post_prompt_data.clone().map(Value::Object);
            let transcript = request.call_log.clone().map(Value::Array);
            for (kind, content) in [
                (RecordKind::Summary, summary),
                (RecordKind::Transcript, transcript),
            ] {
                let Some(content) = content else { continue };
                records
                    .store(agent.name(), &call_id, subject.as_deref(), kind, &content)
                    .await
                    .map_err(|e| fail(e.to_string()))?;
            }
        }
        let Some(handler) = handler else {
            return Ok(Verdict::Answered(
                json!({ "response": "Summary received." }),
            ));
        };
        // `handler_ran` stays false: the summary is not a tool call, so it is not counted as one.
        match AbortOnDrop(tokio::spawn(async move { handler(request, ctx).await }))
            .join()
            .await
        {
            Ok(Ok(())) => Ok(Verdict::Answered(
                json!({ "response": "Summary received." }),
            )),
            Ok(Err(error)) => Err(failed(
                agent.name(),
                POST_PROMPT_FUNCTION,
                &call_id,
                &error.to_string(),
            )),
            Err(_) => Err(failed(
                agent.name(),
                POST_PROMPT_FUNCTION,
                &call_id,
                "summary handler panicked",
            )),
        }
    }

    /// The summary as the handler and the records store see it: `post_prompt_data` and every
    /// `call_log` entry redacted (card data, PINs, SSNs, secrets, contact details, dates of
    /// birth; every date under HIPAA).
    fn redacted_summary(&self, mut request: PostPromptRequest) -> PostPromptRequest {
        let redact = |value: Value| -> Value {
            match &self.services.records {
                Some(records) => records.redact_json(&value),
                None => {
                    let mut copy = value;
                    self.services.auditor.redactor.redact_json(&mut copy);
                    copy
                }
            }
        };
        if let Some(data) = request.post_prompt_data.take() {
            if let Value::Object(map) = redact(Value::Object(data)) {
                request.post_prompt_data = Some(map);
            }
        }
        if let Some(log) = request.call_log.take() {
            if let Value::Array(items) = redact(Value::Array(log)) {
                request.call_log = Some(items);
            }
        }
        request
    }
}
