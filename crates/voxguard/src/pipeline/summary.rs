//! The end-of-call summary endpoint, `POST {route}/post_prompt`: token-checked like a secure
//! tool, handed to the agent's `on_summary` handler, and audited like every endpoint.
//!
//! Owns the steps of a summary request: handler configured (404 `summary_not_configured`) →
//! parse (`invalid_request`) → function token bound to the summary (403 `token_*`) → call id →
//! the handler in its own task (`tool_failed` on error or panic). It must not store or redact the
//! summary itself: that is the handler's (and, later, the records store's) job.

use serde_json::{json, Value};
use voxguard_guard::{Reason, Refusal};
use voxguard_server::{Reply, RequestInfo};
use voxguard_swml::PostPromptRequest;

use super::verdict::{Endpoint, Trail, Verdict};
use super::{
    check_call_id, check_token, failed, token_refusal, AbortOnDrop, Pipeline, MAX_CALL_ID_LEN,
};
use crate::agent::POST_PROMPT_FUNCTION;

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
        let Some(handler) = agent.inner.on_summary.clone() else {
            return Err(Refusal::new(
                Reason::SummaryNotConfigured,
                "This agent does not accept summaries.",
            ));
        };
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
        check_call_id(&call_id)?;
        let ctx = self
            .context(info, &call_id, &render)
            .with_caller(caller, None)
            .with_global_data(request.global_data.clone().unwrap_or_default());
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
}
