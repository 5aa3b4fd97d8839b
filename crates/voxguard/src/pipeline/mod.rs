//! The SWAIG pipeline: one function call from the platform, from parsed JSON to answer.
//!
//! Order — each step returns `Result<_, Refusal>` and a refusal ends the call without running
//! the handler: parse the SWAIG request (`invalid_request`) → find the tool (404
//! `unknown_function`) → **check the function token** for secure tools (403 `token_*`,
//! [`check_token`]) → call id (`invalid_call_id`) → emergency switch (`emergency_disabled`) →
//! rate limits (429 `rate_limited`, per tool, per caller, global) → `requires` session flags
//! (`verification_required`) → `requires_role` (`forbidden`) → input guards on string arguments
//! (`input_rejected`) → argument validation against the full schema (`invalid_argument`) →
//! confirmation (`confirmation_*`; after validation, because the read-back must describe valid
//! arguments) → the handler in its own task (panics contained, cancelled if the request times
//! out) → transfer allow-list on the result (`transfer_blocked`). Handler errors become a
//! generic sentence (`tool_failed`) and a logged reason. Every ending, refusals included, goes
//! through the one audit wrapper ([`Pipeline::audited`]) before it is answered.
//!
//! A [`Pipeline`] is one agent bound to the runtime's keys, store and services; it implements
//! the server's `AgentService`. It must not know about HTTP beyond `RequestInfo` and `Reply`.

mod audited;
mod bounds;
mod confirm;
mod gateway;
pub(crate) mod limiter;
mod pay;
mod summary;
#[cfg(test)]
mod tests;
mod verdict;

use std::sync::Arc;

use serde_json::{json, Value};
use voxguard_guard::{
    EmergencySwitch, InputGuard, KeyRing, RateLimiter, Reason, Refusal, TokenError,
};
use voxguard_server::{AgentService, Reply, RequestInfo};
use voxguard_store::{SessionStore, StoreError};
use voxguard_swml::SwaigRequest;

use crate::agent::Agent;
use crate::audit::mask;
use crate::context::{CallContext, SessionError, ROLE_KEY};
use crate::records::Compliance;
use crate::render;
use crate::services::Services;
use crate::tool::{HandlerFailure, Tool, ToolError};
use crate::verify_policy::VerificationPolicy;

pub use confirm::CONFIRMATION_WINDOW_SECS;
use verdict::{Endpoint, Trail, Verdict};

/// The `field` reported for an argument the schema does not declare.
pub const UNDECLARED_FIELD: &str = "<undeclared>";

const SENTENCE_UNAVAILABLE: &str = "I'm sorry, I can't do that right now.";
const SENTENCE_FAILED: &str =
    "I'm sorry, something went wrong on our side and I couldn't complete that. Please try again later.";
const SENTENCE_TOKEN: &str =
    "I'm sorry, I can't complete that request right now. Is there anything else I can help with?";

/// Longest call id accepted; the platform's ids are UUIDs.
const MAX_CALL_ID_LEN: usize = 128;

/// The session namespace of tools that take no token.
const PUBLIC_SCOPE: &str = "public";

/// One agent bound to the runtime: what every request to its endpoints needs.
pub(crate) struct Pipeline {
    pub(crate) agent: Agent,
    pub(crate) keys: KeyRing,
    pub(crate) store: Arc<dyn SessionStore>,
    pub(crate) services: Arc<Services>,
    pub(crate) policy: Arc<VerificationPolicy>,
    pub(crate) emergency: Arc<EmergencySwitch>,
    pub(crate) input_guard: InputGuard,
    pub(crate) limiter: limiter::Limiter,
    /// SWML renders per source address (`None`: unlimited).
    pub(crate) render_limiter: Option<RateLimiter>,
    /// The agent's SWML document, cut where each render's tokens go.
    pub(crate) templates: render::Templates,
    /// The compliance modes in force for this agent (its own plus the runtime's).
    pub(crate) compliance: Compliance,
    /// Where the payment connector runs when not on this host.
    pub(crate) connector_base: Option<url::Url>,
    /// The last readiness check, reused for [`READY_FOR`].
    pub(crate) ready: ReadyCache,
    /// Gateway mode: the upstream agent this pipeline stands in front of (`crate::gateway`).
    pub(crate) gateway: Option<Arc<crate::gateway::Gate>>,
}

/// How long a readiness answer is reused.
const READY_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// The last readiness answer and when it was found.
#[derive(Default)]
pub(crate) struct ReadyCache(std::sync::Mutex<Option<(std::time::Instant, Result<(), String>)>>);

impl ReadyCache {
    fn recent(&self) -> Option<Result<(), String>> {
        let last = self.0.lock().unwrap_or_else(|p| p.into_inner());
        last.as_ref()
            .filter(|(at, _)| at.elapsed() < READY_FOR)
            .map(|(_, answer)| answer.clone())
    }

    fn keep(&self, answer: Result<(), String>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((std::time::Instant::now(), answer));
    }
}

/// Whether `id` is a plausible call id: 1–128 visible ASCII characters.
pub(crate) fn valid_call_id(id: &str) -> bool {
    (1..=MAX_CALL_ID_LEN).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

/// The call id step: refuse a missing or malformed one.
fn check_call_id(call_id: &str) -> Result<(), Refusal> {
    if valid_call_id(call_id) {
        Ok(())
    } else {
        Err(Refusal::new(
            Reason::InvalidCallId,
            "The request carries no valid call id.",
        ))
    }
}

/// **Where a function token is checked.** The token comes from the query string (`__token`
/// or `token`); it must be bound to this call and this function and be unexpired at `now_unix`
/// (the runtime clock's reading). Returns the
/// id of the SWML render that minted it, which scopes the call's server-side session.
pub(crate) fn check_token(
    keys: &KeyRing,
    info: &RequestInfo,
    call_id: &str,
    function: &str,
    now_unix: u64,
) -> Result<String, TokenError> {
    match info.token.as_deref() {
        None | Some("") => Err(TokenError::Missing),
        Some(token) => keys.verify_with_session_at(token, call_id, function, now_unix),
    }
}

/// Session key holding the `record_call` a handler started in this call (PCI mode).
const RECORDING_KEY: &str = "__vg.recording";

impl Pipeline {
    /// The recording a handler started earlier in this call, if it is still running.
    async fn recording_started(&self, scope: &str) -> Option<voxguard_swml::RecordCall> {
        let now = self.services.clock.now_unix();
        let value = self.store.get(scope, RECORDING_KEY, now).await.ok()??;
        serde_json::from_value(value).ok()
    }

    /// Remember a recording `result` starts (or forget one it stops), so a later payment in
    /// the call pauses it.
    async fn track_recording(&self, scope: &str, result: &voxguard_swml::FunctionResult) {
        let now = self.services.clock.now_unix();
        for verb in result.swml_verbs() {
            match verb {
                voxguard_swml::Verb::RecordCall(record) => {
                    if let Ok(value) = serde_json::to_value(record) {
                        let _ = self.store.set(scope, RECORDING_KEY, &value, now).await;
                    }
                }
                voxguard_swml::Verb::StopRecordCall(_) => {
                    let _ = self.store.remove(scope, RECORDING_KEY).await;
                }
                _ => {}
            }
        }
    }
}

/// Server-side sessions are scoped by agent, call and SWML render: fetching SWML again for a
/// call (which anyone holding the Basic credentials can do) yields tokens for a fresh, empty
/// session, never for the verified session of the original render.
pub(crate) fn session_scope(agent: &str, call_id: &str, render: &str) -> String {
    // Concatenated, not `format!`: the formatting machinery cost ten times as much, and this
    // runs two or three times on every call.
    [agent, "/", call_id, "/", render].concat()
}

/// A handler task that is cancelled (at its next `.await`) when the request that started it
/// is dropped — e.g. by the request timeout — so work never continues after the caller was
/// told it failed.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> AbortOnDrop<T> {
    async fn join(mut self) -> Result<T, tokio::task::JoinError> {
        (&mut self.0).await
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Who a refusal concerns, for the security log.
struct Event<'a> {
    agent: &'a str,
    function: &'a str,
    call_id: &'a str,
    caller: &'a str,
    info: &'a RequestInfo,
}

impl Event<'_> {
    fn log(&self, reason: &str, detail: &str) {
        tracing::warn!(
            target: "voxguard::security",
            event = "policy_refused",
            reason,
            detail,
            agent = self.agent,
            function = self.function,
            call_id = self.call_id,
            caller = %mask(self.caller),
            client = %self.info.client,
            request_id = %self.info.request_id,
            "tool call refused"
        );
    }

    /// Log `refusal` as a security event and hand it back.
    fn refuse(&self, refusal: Refusal) -> Refusal {
        self.log(refusal.reason().as_str(), "");
        refusal
    }
}

/// The refusal when shared state cannot be reached: 503, and nothing was decided.
pub(crate) fn store_unavailable() -> Refusal {
    Refusal::new(
        Reason::StoreUnavailable,
        "The service is temporarily unavailable. Please try again in a moment.",
    )
}

/// Log a handler or store failure for operators and refuse with the generic sentence.
fn failed(agent: &str, function: &str, call_id: &str, internal: &str) -> Refusal {
    tracing::error!(agent, function, call_id, reason = internal, "tool failed");
    Refusal::new(Reason::ToolFailed, SENTENCE_FAILED)
}

/// Log a token refusal as a security event and refuse.
fn token_refusal(agent: &str, function: &str, info: &RequestInfo, error: TokenError) -> Refusal {
    tracing::warn!(
        target: "voxguard::security",
        event = "token_refused",
        agent,
        function,
        reason = error.reason(),
        client = %info.client,
        request_id = %info.request_id,
        "function token refused"
    );
    Refusal::new(Reason::from(error), SENTENCE_TOKEN)
}

/// The field name safe to report: schema-declared paths as they are, anything else masked.
fn safe_field(tool: &Tool, field: &str) -> String {
    if tool.declares_path(field) {
        field.to_string()
    } else {
        UNDECLARED_FIELD.to_string()
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(64).collect()
}

/// Whether a handler's result carries a SWML action with a verb voxguard does not model (and so
/// cannot check against the transfer allow-list).
fn unmodeled_verbs(result: &voxguard_swml::FunctionResult) -> bool {
    result
        .swml_verbs()
        .any(|verb| matches!(verb, voxguard_swml::Verb::Other(_)))
}

/// The amount and currency of every `pay` verb in a handler's result.
fn payments_in(result: &voxguard_swml::FunctionResult) -> Vec<Value> {
    result
        .swml_verbs()
        .filter_map(|verb| match verb {
            voxguard_swml::Verb::Pay(pay) => Some(json!({
                "charge_amount": pay.charge_amount,
                "currency": pay.currency,
                "description": pay.description,
            })),
            _ => None,
        })
        .collect()
}

impl Pipeline {
    /// `POST {route}/swaig` with `body` sent as JSON, through the same parse as the server's.
    #[cfg(test)]
    pub(crate) async fn swaig(&self, info: &RequestInfo, body: Value) -> Reply {
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        self.swaig_raw(info, &bytes).await
    }

    /// Handle `POST {route}/swaig`: a SWAIG call from its raw body, parsed once, straight into
    /// [`SwaigRequest`] (see [`parse_swaig`]). A body that is not JSON is refused
    /// `malformed_json` before anything is recorded, as the server refuses one for the other
    /// endpoints; JSON that is not a SWAIG call goes through the steps and is refused
    /// `invalid_request`.
    pub(crate) async fn swaig_raw(&self, info: &RequestInfo, body: &[u8]) -> Reply {
        match parse_swaig(body) {
            Ok(request) => self.swaig_request(info, request, body).await,
            Err(refusal) => Reply::from(refusal),
        }
    }

    /// Run the steps on `request` (`None`: the body was not a SWAIG call) and audit the verdict.
    async fn swaig_request(
        &self,
        info: &RequestInfo,
        request: Option<SwaigRequest>,
        raw: &[u8],
    ) -> Reply {
        let mut trail = Trail::new(Endpoint::Swaig);
        let verdict = self
            .swaig_steps(info, request, raw, &mut trail)
            .await
            .unwrap_or_else(Verdict::from);
        self.audited(info, trail, verdict).await
    }

    /// The runtime clock's reading in whole seconds.
    fn now_unix(&self) -> u64 {
        self.services.clock.now_unix()
    }

    /// A context for a call whose session belongs to the SWML render `render`.
    fn context(&self, info: &RequestInfo, call_id: &str, render: &str) -> CallContext {
        let ctx = CallContext::with_services(
            self.agent.name(),
            call_id,
            session_scope(self.agent.name(), call_id, render),
            self.store.clone(),
            self.services.clone(),
            self.policy.clone(),
        )
        .with_request_id(info.request_id.clone());
        if render == PUBLIC_SCOPE || self.agent.inner.payments.is_none() {
            // A payment belongs to a token-verified render, never to the public namespace; an
            // agent without a gateway pays nothing for the link on its fast path.
            return ctx;
        }
        ctx.with_pay_link(crate::context::PayLink {
            keys: self.keys.clone(),
            info: info.clone(),
            render: render.to_string(),
            routes: voxguard_server::AgentRoutes::new(self.agent.route()),
            connector_base: self.connector_base.clone(),
        })
    }

    /// The steps of a SWAIG call, in order; see the module doc.
    async fn swaig_steps(
        &self,
        info: &RequestInfo,
        request: Option<SwaigRequest>,
        raw: &[u8],
        trail: &mut Trail,
    ) -> Result<Verdict, Refusal> {
        let agent = &self.agent;
        let mut request = request.ok_or_else(|| {
            Refusal::new(
                Reason::InvalidRequest,
                "The request is not a SWAIG function call.",
            )
        })?;
        if request.function.is_empty() {
            return Err(Refusal::new(
                Reason::InvalidRequest,
                "The request names no function.",
            ));
        }
        // Moved out (no copy; read only past the token check below).
        let argument = request.argument.take();
        let global_data = request.global_data.take().unwrap_or_default();
        let call_id = request.call_id().unwrap_or("");
        let caller = bounds::caller_number(request.caller_id_num.as_deref());
        // Gateway mode: the function comes from the render the token names, so the token is
        // checked first (and the bounded name and call id are on record if it is refused).
        let forwarded: (Arc<Tool>, gateway::Forwarding);
        let (tool, forwarding) = if self.gateway.is_some() {
            trail.function = Some(truncate(&request.function));
            trail.call_id = Some(call_id.chars().take(MAX_CALL_ID_LEN).collect());
            forwarded = self
                .gateway_tool(info, &request.function, call_id, &mut trail.verified)
                .await?;
            (&*forwarded.0, Some(&forwarded.1))
        } else {
            let Some(tool) = agent.tool(&request.function) else {
                tracing::info!(agent = agent.name(), function = ?truncate(&request.function), "unknown function");
                return Err(Refusal::new(Reason::UnknownFunction, SENTENCE_UNAVAILABLE));
            };
            (tool, None)
        };
        trail.function = Some(tool.name.clone());
        trail.call_id = Some(call_id.chars().take(MAX_CALL_ID_LEN).collect());
        trail.caller = caller.map(str::to_string);
        // The session a secure call may touch is the one of the SWML render its token came
        // from; insecure tools get a separate namespace and can never read verification state.
        let render = match forwarding {
            Some(forwarding) => forwarding.render.clone(),
            None if tool.secure => {
                check_token(&self.keys, info, call_id, &tool.name, self.now_unix())
                    .map_err(|error| token_refusal(agent.name(), &tool.name, info, error))?
            }
            None => PUBLIC_SCOPE.to_string(),
        };
        // A secure tool's call is on record call by call from its token on; a public tool's
        // (no token) only once its rate limits admit it, below.
        trail.verified = tool.secure || forwarding.is_some();
        // Per-argument work starts only now: a token-refused request is recorded in O(1).
        // Under HIPAA every argument of a PHI tool is masked: the trail is append-only and
        // outlives a patient's deletion, so it keeps the argument names, never their values.
        let phi_fields: Vec<String>;
        let sensitive = if tool.policy.phi && self.compliance.hipaa() {
            phi_fields = tool
                .schema
                .get("properties")
                .and_then(Value::as_object)
                .map(|props| props.keys().cloned().collect())
                .unwrap_or_default();
            &phi_fields
        } else {
            &tool.policy.sensitive_args
        };
        let arguments = argument.map_or_else(
            || Value::Object(serde_json::Map::new()),
            voxguard_swml::SwaigArgument::into_arguments,
        );
        trail.arguments = Some(bounds::audited_arguments(
            &self.services.auditor,
            &|path| tool.declares_path(path),
            &arguments,
            sensitive,
        ));
        check_call_id(call_id)?;
        if tool.secure {
            trail.session = Some(session_scope(agent.name(), call_id, &render));
        }
        let Ok(compiled) = &tool.compiled else {
            // Agent::build refuses tools whose schema does not compile; unreachable in practice.
            return Err(failed(
                agent.name(),
                &tool.name,
                call_id,
                "schema not compiled",
            ));
        };
        let event = Event {
            agent: agent.name(),
            function: &tool.name,
            call_id,
            caller: caller.unwrap_or(""),
            info,
        };

        // Policy, in a fixed order. Each refusal is final and the handler never runs.
        if self.emergency.blocks(&tool.name, tool.is_sensitive()) {
            return Err(event.refuse(Refusal::new(
                Reason::EmergencyDisabled,
                "This service is temporarily unavailable.",
            )));
        }
        // Limits answer for the call's SWML render (from the token, which the caller cannot
        // change) *and* the caller's number, so varying a spoofed number buys nothing; the
        // render first, so that a call its render's budget refuses takes nothing from the
        // number's (which anyone can claim: a spent render cannot drain a victim's budget).
        // An insecure tool has no token: its calls answer for their source address (an IPv6
        // /64, through which one host could otherwise rotate) instead of the call id, which
        // the caller chooses.
        let source;
        let render_key = if tool.secure {
            render.as_str()
        } else {
            source = voxguard_guard::source_network(info.client.ip(), 64).to_string();
            source.as_str()
        };
        let keys: &[&str] = match caller {
            Some(caller) => &[render_key, caller],
            None => &[render_key],
        };
        match self.limiter.check_keys(&tool.name, keys).await {
            Ok(()) => trail.verified = true,
            Err(limiter::LimitError::Limited(limited)) => {
                event.log(Reason::RateLimited.as_str(), limited.scope.as_str());
                return Err(Refusal::new(
                    Reason::RateLimited,
                    "I'm sorry, there have been too many requests. Please try again in a little while.",
                )
                .with_retry_after(limited.retry_after_secs()));
            }
            Err(limiter::LimitError::Unavailable(error)) => {
                tracing::error!(agent = event.agent, function = event.function, %error, "the shared rate-limit server did not answer; refused (limits fail closed)");
                return Err(store_unavailable());
            }
        }
        let ctx = self
            .context(info, call_id, &render)
            .with_caller(
                caller.map(str::to_string),
                bounds::caller_name(request.caller_id_name.as_deref()),
            )
            .with_global_data(global_data);
        self.check_session_policy(tool, &ctx, &event).await?;

        // Arguments: the confirmation flag belongs to the runtime only for tools that use
        // confirmation.
        // Gateway mode forwards the platform's body as it came when the checks below change
        // nothing in the arguments, so it keeps them as they came to compare.
        let as_sent = forwarding.is_some().then(|| arguments.clone());
        let mut args = arguments;
        let confirmed = tool.policy.confirm.is_some() && confirm::take_confirmed(&mut args);
        if !tool.policy.skip_input_guard {
            // A length the schema declares is enforced (and reported as `maxLength`) by the
            // validator; the guard's own cap covers strings the schema leaves unbounded.
            let max_len = |path: &str| tool.max_length_at(path).map(|_| usize::MAX);
            if let Err((field, rejection)) = self.input_guard.screen(&mut args, &max_len) {
                event.log(Reason::InputRejected.as_str(), rejection.reason());
                return Err(Refusal::new(
                    Reason::InputRejected,
                    "I'm sorry, I can't accept that input. Please ask the caller to rephrase.",
                )
                .with_field(safe_field(tool, &field), rejection.reason()));
            }
        }
        if let Err(error) = compiled.validator.validate(&args) {
            let field = safe_field(tool, &error.field);
            tracing::info!(
                agent = agent.name(), function = %tool.name, call_id, field = %field, rule = %error.rule,
                "arguments refused"
            );
            let sentence = if tool.declares(&field) {
                format!(
                    "The {} provided isn't valid. Please ask the caller for it again.",
                    field.replace('_', " ")
                )
            } else {
                "Some of the details provided aren't valid. Please ask the caller for them again."
                    .to_string()
            };
            return Err(
                Refusal::new(Reason::InvalidArgument, sentence).with_field(field, error.rule)
            );
        }
        if let Some(summary) = &tool.policy.confirm {
            match confirm::confirm(&ctx, &tool.name, &args, confirmed, summary).await {
                Ok(Ok(())) => {}
                Ok(Err(refusal)) => {
                    event.log(refusal.reason().as_str(), "confirmation");
                    return Err(refusal);
                }
                Err(confirm::ConfirmError::SummaryArguments) => {
                    // As when the handler's own arguments do not deserialize: the caller's
                    // details are the problem, not the server.
                    tracing::warn!(agent = agent.name(), function = %tool.name, call_id, "arguments passed the schema but not the read-back's deserialization");
                    return Err(Refusal::new(
                        Reason::InvalidArgument,
                        "Some of the details provided aren't valid. Please ask the caller for them again.",
                    )
                    .with_field("", "type"));
                }
                Err(error) => {
                    return Err(failed(
                        agent.name(),
                        &tool.name,
                        call_id,
                        &error.to_string(),
                    ))
                }
            }
        }

        trail.handler_ran = true;
        match forwarding {
            Some(forwarding) => {
                let unchanged = as_sent.as_ref() == Some(&args);
                self.forward(tool, args, raw, unchanged, forwarding, &event, trail)
                    .await
            }
            None => self.run_handler(tool, args, ctx, &event, trail).await,
        }
    }

    /// The `requires` flags, then `requires_role`, from the server-side session.
    async fn check_session_policy(
        &self,
        tool: &Tool,
        ctx: &CallContext,
        event: &Event<'_>,
    ) -> Result<(), Refusal> {
        let store_failed = |error: &SessionError| match error {
            SessionError::Store(StoreError::Unavailable { .. }) => {
                tracing::error!(agent = event.agent, function = event.function, call_id = event.call_id, %error, "the session store did not answer; refused");
                store_unavailable()
            }
            _ => failed(
                event.agent,
                event.function,
                event.call_id,
                &error.to_string(),
            ),
        };
        for flag in &tool.policy.requires {
            if !ctx
                .session()
                .flag(flag)
                .await
                .map_err(|e| store_failed(&e))?
            {
                return Err(event.refuse(Refusal::new(
                    Reason::VerificationRequired,
                    "I need to verify the caller's identity before I can do that. Please ask for their PIN first.",
                )));
            }
        }
        if !tool.policy.roles.is_empty() {
            let role = ctx
                .session()
                .get::<String>(ROLE_KEY)
                .await
                .map_err(|e| store_failed(&e))?;
            if !role.is_some_and(|role| tool.policy.roles.contains(&role)) {
                return Err(event.refuse(Refusal::new(
                    Reason::Forbidden,
                    "I'm sorry, I can't do that for this caller.",
                )));
            }
        }
        Ok(())
    }

    /// Run the handler in its own task, then check its result against the transfer allow-list.
    async fn run_handler(
        &self,
        tool: &Tool,
        args: Value,
        ctx: CallContext,
        event: &Event<'_>,
        trail: &mut Trail,
    ) -> Result<Verdict, Refusal> {
        let (agent, call_id) = (self.agent.name(), event.call_id);
        let handler = tool.handler.clone();
        let outcome = AbortOnDrop(tokio::spawn(async move { handler.call(args, ctx).await }))
            .join()
            .await;
        let mut result = match outcome {
            Ok(Ok(result)) => result,
            Ok(Err(HandlerFailure::Arguments(error))) => {
                // The serde message can quote the value: log only that it happened.
                drop(error);
                tracing::warn!(agent, function = %tool.name, call_id, "arguments passed the schema but not deserialization");
                return Err(Refusal::new(
                    Reason::InvalidArgument,
                    "Some of the details provided aren't valid. Please ask the caller for them again.",
                )
                .with_field("", "type"));
            }
            Ok(Err(HandlerFailure::Tool(ToolError::Refused { reason, sentence }))) => {
                event.log("handler_refused", &reason);
                return Ok(Verdict::HandlerRefused { reason, sentence });
            }
            Ok(Err(HandlerFailure::Tool(ToolError::Session(SessionError::Store(
                error @ StoreError::Unavailable { .. },
            ))))) => {
                tracing::error!(agent, function = %tool.name, call_id, %error, "shared state did not answer during the handler; refused");
                return Err(store_unavailable());
            }
            Ok(Err(HandlerFailure::Tool(error))) => {
                return Err(failed(agent, &tool.name, call_id, &error.to_string()))
            }
            Err(join) if join.is_panic() => {
                return Err(failed(agent, &tool.name, call_id, "handler panicked"))
            }
            Err(_) => return Err(failed(agent, &tool.name, call_id, "handler was cancelled")),
        };
        self.screen_result(&tool.name, call_id, &result)?;
        if self.compliance.pci() {
            // PCI mode: the card digits keyed in during `pay` are never recorded — whether the
            // agent records every call or a handler started a recording earlier in this call.
            let started = match &trail.session {
                Some(scope) => self.recording_started(scope).await,
                None => None,
            };
            let running = self.agent.inner.record_call.clone().or(started);
            result.pause_recording_around_pay(running.as_ref());
            if let Some(scope) = &trail.session {
                self.track_recording(scope, &result).await;
            }
        }
        trail.payments = payments_in(&result);
        serde_json::to_value(&result)
            .map(Verdict::Answered)
            .map_err(|error| {
                failed(
                    agent,
                    &tool.name,
                    call_id,
                    &format!("result not serializable: {error}"),
                )
            })
    }
    /// The checks on what a tool answered (a handler's result, or the SWML actions of an
    /// upstream's answer in gateway mode): no verb voxguard does not model, no recording under
    /// HIPAA, every connect/transfer destination on the allow-list.
    fn screen_result(
        &self,
        function: &str,
        call_id: &str,
        result: &voxguard_swml::FunctionResult,
    ) -> Result<(), Refusal> {
        let agent = self.agent.name();
        if unmodeled_verbs(result) {
            // A verb voxguard does not model (sip_refer, execute, …) could route the call
            // where the allow-list cannot see: refuse it like a transfer off the list.
            tracing::warn!(
                target: "voxguard::security",
                event = "transfer_blocked",
                agent,
                function = %function,
                call_id,
                "a handler produced a SWML action with a verb voxguard does not check; refused"
            );
            return Err(Refusal::new(
                Reason::TransferBlocked,
                "I'm sorry, I can't transfer the call to that destination.",
            ));
        }
        if self.compliance.hipaa()
            && result
                .swml_verbs()
                .any(|verb| matches!(verb, voxguard_swml::Verb::RecordCall(_)))
        {
            // HIPAA mode never records a call (docs/compliance.md).
            tracing::warn!(
                target: "voxguard::security",
                event = "recording_blocked",
                agent,
                function = %function,
                call_id,
                "a handler asked to record the call in HIPAA mode; refused"
            );
            return Err(Refusal::new(
                Reason::RecordingBlocked,
                "I'm sorry, this call can't be recorded.",
            ));
        }
        if let Some(blocked) = result
            .destinations()
            .into_iter()
            .find(|d| !self.agent.inner.transfers.allows(d))
        {
            tracing::warn!(
                target: "voxguard::security",
                event = "transfer_blocked",
                agent,
                function = %function,
                call_id,
                destination = %mask(blocked),
                "a handler produced a transfer outside the allow-list; refused"
            );
            return Err(Refusal::new(
                Reason::TransferBlocked,
                "I'm sorry, I can't transfer the call to that destination.",
            ));
        }
        Ok(())
    }
}

/// A SWAIG body as a [`SwaigRequest`]: `Ok(None)` for JSON that is not a SWAIG call (not an
/// object, a key given twice, a field of the wrong type), a `malformed_json` refusal for
/// anything that is not JSON.
///
/// One pass in the common case. The body must be UTF-8 and an object; keys the runtime does
/// not read are skipped by syntax (their values are never read, stored or audited), so a
/// number out of range or nesting deeper than serde_json's 128 levels *inside such a key* is
/// not refused. Only when the typed parse fails is the body parsed again, as a `Value`, to
/// tell malformed JSON from JSON of the wrong shape: a type error before a syntax error is
/// still `malformed_json`.
fn parse_swaig(body: &[u8]) -> Result<Option<SwaigRequest>, Refusal> {
    let malformed = voxguard_server::malformed_json;
    let text = std::str::from_utf8(body).map_err(|_| malformed())?;
    let is_object = text.trim_start().starts_with('{');
    if is_object {
        match serde_json::from_str::<SwaigRequest>(text) {
            Ok(request) => return Ok(Some(request)),
            Err(error) if !error.is_data() => return Err(malformed()),
            Err(_) => {}
        }
    }
    // Not an object (serde would read an array positionally), or the wrong shape: either
    // way not a SWAIG call, if it is JSON at all.
    match serde_json::from_str::<Value>(text) {
        Ok(_) => Ok(None),
        Err(_) => Err(malformed()),
    }
}

#[async_trait::async_trait]
impl AgentService for Pipeline {
    fn name(&self) -> &str {
        self.agent.name()
    }

    fn route(&self) -> &str {
        self.agent.route()
    }

    async fn swml(&self, request: &RequestInfo, body: Option<Value>) -> Reply {
        if body.as_ref().is_some_and(|b| !b.is_object()) {
            return Reply::from(Refusal::new(
                Reason::InvalidRequest,
                "The SWML request body must be a JSON object.",
            ));
        }
        if let Some(limiter) = &self.render_limiter {
            // Per address, an IPv6 /64 as one (a host could otherwise rotate through it).
            let source = voxguard_guard::source_network(request.client.ip(), 64).to_string();
            if let Err(limited) = limiter.check("swml", &source) {
                tracing::warn!(
                    target: "voxguard::security",
                    event = "swml_rate_limited",
                    agent = self.agent.name(),
                    client = %request.client,
                    request_id = %request.request_id,
                    "SWML renders from this address over the limit; refused"
                );
                return Reply::from(
                    Refusal::new(
                        Reason::RateLimited,
                        "Too many call documents were requested from this address. Please try again in a little while.",
                    )
                    .with_retry_after(limited.retry_after_secs()),
                );
            }
        }
        let call_id = render::call_id_for(body.as_ref());
        if !valid_call_id(&call_id) {
            return Reply::from(Refusal::new(
                Reason::InvalidCallId,
                "The call id is not valid.",
            ));
        }
        if self.gateway.is_some() {
            return match self.gateway_render(request, body, &call_id).await {
                Ok(document) => Reply::ok(document).with_call_id(Some(call_id)),
                Err(refusal) => Reply::from(refusal).with_call_id(Some(call_id)),
            };
        }
        let rendered = self.templates.render(
            &self.agent,
            &self.keys,
            request,
            &call_id,
            self.now_unix(),
            render::RenderOptions {
                records: self.services.records.is_some(),
                hipaa: self.compliance.hipaa(),
            },
        );
        match rendered {
            Ok(body) => Reply::ok_serialized(body).with_call_id(Some(call_id)),
            Err(error) => {
                tracing::error!(agent = self.agent.name(), %error, "SWML could not be serialized");
                Reply::from(Refusal::new(
                    Reason::InternalError,
                    "Something went wrong on our side.",
                ))
            }
        }
    }

    async fn swaig(&self, request: &RequestInfo, body: voxguard_server::Bytes) -> Reply {
        Pipeline::swaig_raw(self, request, &body).await
    }

    async fn post_prompt(&self, request: &RequestInfo, body: Value) -> Reply {
        self.summary(request, body).await
    }

    async fn pay(&self, request: &RequestInfo, body: voxguard_server::Bytes) -> Reply {
        if self.gateway.is_some() {
            return self.gateway_pay(request, body.to_vec(), false).await;
        }
        Pipeline::pay(self, request, body).await
    }

    async fn pay_status(&self, request: &RequestInfo, body: Value) -> Reply {
        if self.gateway.is_some() {
            let bytes = serde_json::to_vec(&body).unwrap_or_default();
            return self.gateway_pay(request, bytes, true).await;
        }
        Pipeline::pay_status(self, request, body).await
    }

    async fn ready(&self) -> Result<(), String> {
        // `/ready` needs no credentials: answer from the last check for a moment, so that a
        // flood of probes costs the database and Redis one round trip a second, not one each.
        if let Some(answer) = self.ready.recent() {
            return answer;
        }
        let answer = async {
            self.store.ping().await.map_err(|e| e.to_string())?;
            self.limiter
                .ping()
                .await
                .map_err(|e| format!("rate limits: {e}"))?;
            match &self.gateway {
                Some(gate) => gate
                    .upstream
                    .ping()
                    .await
                    .map_err(|e| format!("upstream: {e}")),
                None => Ok(()),
            }
        }
        .await;
        self.ready.keep(answer.clone());
        answer
    }
}
