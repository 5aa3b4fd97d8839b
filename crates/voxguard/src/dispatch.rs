//! The SWAIG pipeline: one function call from the platform, from parsed JSON to answer.
//!
//! Order — each step refuses without running the handler, with a stable reason:
//! parse the SWAIG request → find the tool (404 `unknown_function`) → **check the function
//! token** for secure tools (403 `token_*`, [`check_token`]) → call id → emergency switch
//! (`emergency_disabled`) → rate limits (429 `rate_limited`, per tool, per caller, global) →
//! `requires` session flags (`verification_required`) → `requires_role` (`forbidden`) → input
//! guards on string arguments (`input_rejected`) → argument validation against the full schema
//! (`invalid_argument`) → confirmation (`confirmation_*`; after validation, because the
//! read-back must describe valid arguments) → the handler in its own task (panics contained,
//! cancelled if the request times out) → transfer allow-list on the result
//! (`transfer_blocked`). Handler errors become a generic sentence and a logged reason.

use serde_json::{json, Value};
use voxguard_guard::{KeyRing, TokenError};
use voxguard_server::{Reply, RequestInfo};
use voxguard_swml::{PostPromptRequest, SwaigRequest};

use crate::agent::POST_PROMPT_FUNCTION;
use crate::audit::{mask, Auditor};
use crate::context::CallContext;
use crate::runtime::AgentRuntime;
use crate::tool::{HandlerFailure, ToolError};
use crate::verification::ROLE_KEY;
use voxguard_guard::{max_length_at, ConfirmationCheck, PendingConfirmation, CONFIRMED_ARG};

/// Stable refusal reasons and the sentences the AI hears. HTTP status per reason is part of
/// the contract documented in `docs/refusals.md`.
pub mod reasons {
    /// The body is JSON but not a SWAIG call (not an object, no `function`).
    pub const INVALID_REQUEST: &str = "invalid_request";
    /// The call id is missing or malformed.
    pub const INVALID_CALL_ID: &str = "invalid_call_id";
    /// No tool of that name.
    pub const UNKNOWN_FUNCTION: &str = "unknown_function";
    /// Arguments do not match the tool's schema.
    pub const INVALID_ARGUMENT: &str = "invalid_argument";
    /// The handler failed or panicked.
    pub const TOOL_FAILED: &str = "tool_failed";
    /// No summary handler is configured.
    pub const NO_SUMMARY_HANDLER: &str = "summary_not_configured";
    /// The emergency switch disables this tool.
    pub const EMERGENCY_DISABLED: &str = "emergency_disabled";
    /// A rate limit refused the call (HTTP 429 with `Retry-After`).
    pub const RATE_LIMITED: &str = "rate_limited";
    /// A required session flag (e.g. `pin_verified`) is not set for this call.
    pub const VERIFICATION_REQUIRED: &str = "verification_required";
    /// The verified caller lacks the required role.
    pub const FORBIDDEN: &str = "forbidden";
    /// A string argument was refused by the input guards (too long, prompt injection).
    pub const INPUT_REJECTED: &str = "input_rejected";
    /// The action was read back; the caller must confirm it.
    pub const CONFIRMATION_REQUIRED: &str = "confirmation_required";
    /// The confirming call's arguments differ from what was read back.
    pub const CONFIRMATION_MISMATCH: &str = "confirmation_mismatch";
    /// The read-back is older than the confirmation window.
    pub const CONFIRMATION_EXPIRED: &str = "confirmation_expired";
    /// A handler produced a transfer outside the allow-list.
    pub const TRANSFER_BLOCKED: &str = "transfer_blocked";
    /// The audit trail could not be written, so the request is not acknowledged (HTTP 503).
    pub const AUDIT_UNAVAILABLE: &str = "audit_unavailable";
}

const SENTENCE_UNAVAILABLE: &str = "I'm sorry, I can't do that right now.";
const SENTENCE_FAILED: &str =
    "I'm sorry, something went wrong on our side and I couldn't complete that. Please try again later.";
const SENTENCE_TOKEN: &str =
    "I'm sorry, I can't complete that request right now. Is there anything else I can help with?";

/// Longest call id accepted; the platform's ids are UUIDs.
const MAX_CALL_ID_LEN: usize = 128;

/// Whether `id` is a plausible call id: 1–128 visible ASCII characters.
pub(crate) fn valid_call_id(id: &str) -> bool {
    (1..=MAX_CALL_ID_LEN).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
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

/// The `field` reported for an argument the schema does not declare.
pub const UNDECLARED_FIELD: &str = "<undeclared>";

/// Whether every segment of `path` (`a/b/0/c`) names a property the schema declares along the
/// way (array indexes, `$ref`s into `$defs` and schemars' `anyOf [T, null]` are followed). The
/// root (`""`) counts as declared.
fn declared_path(schema: &Value, path: &str) -> bool {
    let defs = schema.get("$defs").or_else(|| schema.get("definitions"));
    fn resolve<'a>(defs: Option<&'a Value>, mut node: &'a Value) -> &'a Value {
        for _ in 0..16 {
            let target = node
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.rsplit('/').next())
                .and_then(|name| defs.and_then(|d| d.get(name)));
            match target {
                Some(target) => node = target,
                None => break,
            }
        }
        node
    }
    let mut node = resolve(defs, schema);
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        let next = if segment.bytes().all(|b| b.is_ascii_digit()) {
            node.get("items")
        } else {
            node.get("properties")
                .and_then(|p| p.get(segment))
                .or_else(|| {
                    node.get("anyOf")
                        .and_then(Value::as_array)
                        .and_then(|alts| {
                            alts.iter()
                                .map(|alt| resolve(defs, alt))
                                .find_map(|alt| alt.get("properties").and_then(|p| p.get(segment)))
                        })
                })
        };
        match next {
            Some(next) => node = resolve(defs, next),
            None => return false,
        }
    }
    true
}

/// Handle `POST {route}/swaig`.
pub(crate) async fn swaig(rt: &AgentRuntime, info: &RequestInfo, body: Value) -> Reply {
    let mut trail = Trail::default();
    let reply = swaig_inner(rt, info, body, &mut trail).await;
    audited(rt, info, trail, reply).await
}

/// What the audit record of a SWAIG call needs to know, filled in as the pipeline goes.
#[derive(Default)]
struct Trail {
    function: Option<String>,
    call_id: Option<String>,
    caller: Option<String>,
    arguments: Option<Value>,
    handler_ran: bool,
    /// `pay` verbs the handler's result asked the platform to run (amount and currency only;
    /// the card itself never passes through voxguard).
    payments: Vec<Value>,
}

/// Write the call's audit event, then hand back the reply — or, when the event cannot be
/// stored, refuse: nothing is acknowledged that is not on record.
async fn audited(rt: &AgentRuntime, info: &RequestInfo, trail: Trail, reply: Reply) -> Reply {
    let reason = reply
        .body
        .get("error")
        .and_then(Value::as_str)
        .map(str::to_string);
    let (kind, outcome) = match reason.as_deref() {
        None => ("tool_called", "ok"),
        Some(r) if r.starts_with("token_") => ("token_refused", "refused"),
        Some(reasons::TRANSFER_BLOCKED) => ("transfer_blocked", "refused"),
        Some(reasons::RATE_LIMITED) => ("rate_limited", "refused"),
        Some(reasons::TOOL_FAILED) => ("tool_called", "failed"),
        Some(_) if trail.handler_ran => ("tool_called", "refused"),
        Some(_) => ("policy_refused", "refused"),
    };
    if trail.handler_ran {
        if let Some(function) = &trail.function {
            rt.auditor.metrics.tool_call(function, outcome);
        }
    }
    if let Some(reason) = &reason {
        // Stable reasons only: a handler's own refusal reasons are the agent's bounded set.
        rt.auditor.metrics.refusal(reason);
    }
    for payment in &trail.payments {
        let mut event = Auditor::event("payment");
        event.agent = Some(rt.agent.name().to_string());
        event.request_id = Some(info.request_id.clone());
        event.call_id = trail.call_id.clone();
        event.caller = trail.caller.as_deref().filter(|c| !c.is_empty()).map(mask);
        event.function = trail.function.clone();
        event.arguments = Some(payment.clone());
        event.outcome = Some("requested".into());
        event.source = Some(info.client.ip().to_string());
        if rt.auditor.record(event).await.is_err() {
            return Reply::refusal(
                503,
                reasons::AUDIT_UNAVAILABLE,
                "I'm sorry, I can't complete that request right now. Please try again later.",
            );
        }
    }
    let mut event = Auditor::event(kind);
    event.agent = Some(rt.agent.name().to_string());
    event.request_id = Some(info.request_id.clone());
    event.call_id = trail.call_id;
    event.caller = trail.caller.filter(|c| !c.is_empty()).map(|c| mask(&c));
    event.function = trail.function;
    event.arguments = trail.arguments;
    event.outcome = Some(outcome.to_string());
    event.reason = reason;
    event.source = Some(info.client.ip().to_string());
    let call_id = event.call_id.clone();
    match rt.auditor.record(event).await {
        Ok(()) => reply.with_call_id(call_id),
        Err(_) => Reply::refusal(
            503,
            reasons::AUDIT_UNAVAILABLE,
            "I'm sorry, I can't complete that request right now. Please try again later.",
        ),
    }
}

async fn swaig_inner(
    rt: &AgentRuntime,
    info: &RequestInfo,
    body: Value,
    trail: &mut Trail,
) -> Reply {
    let agent = &rt.agent;
    let request: SwaigRequest = match serde_json::from_value(body) {
        Ok(request) => request,
        Err(_) => {
            return Reply::refusal(
                400,
                reasons::INVALID_REQUEST,
                "The request is not a SWAIG function call.",
            )
        }
    };
    if request.function.is_empty() {
        return Reply::refusal(
            400,
            reasons::INVALID_REQUEST,
            "The request names no function.",
        );
    }
    let Some(tool) = agent.tool(&request.function) else {
        tracing::info!(agent = agent.name(), function = ?truncate(&request.function), "unknown function");
        return Reply::refusal(404, reasons::UNKNOWN_FUNCTION, SENTENCE_UNAVAILABLE);
    };
    let call_id = request.call_id().unwrap_or("");
    trail.function = Some(tool.name.clone());
    trail.call_id = Some(call_id.chars().take(128).collect());
    trail.caller = request.caller_id_num.clone();
    trail.arguments = Some(
        rt.auditor
            .redact_args(&request.arguments(), &tool.policy.sensitive_args),
    );
    // The session a secure call may touch is the one of the SWML render its token came from;
    // insecure tools get a separate namespace and can never read verification state.
    let render = if tool.secure {
        match check_token(&rt.keys, info, call_id, &tool.name) {
            Ok(render) => render,
            Err(error) => return token_refusal(agent.name(), &tool.name, info, error),
        }
    } else {
        PUBLIC_SCOPE.to_string()
    };
    if !valid_call_id(call_id) {
        return Reply::refusal(
            400,
            reasons::INVALID_CALL_ID,
            "The request carries no valid call id.",
        );
    }
    let Ok(compiled) = &tool.compiled else {
        // Agent::build refuses tools whose schema does not compile; unreachable in practice.
        return Reply::refusal(500, reasons::TOOL_FAILED, SENTENCE_FAILED);
    };
    let caller = request.caller_id_num.as_deref().unwrap_or("");
    let event = Event {
        agent: agent.name(),
        function: &tool.name,
        call_id,
        caller,
        info,
    };

    // Policy, in a fixed order. Each refusal is final and the handler never runs.
    if rt.emergency.blocks(&tool.name, tool.is_sensitive()) {
        return event.refuse(
            200,
            reasons::EMERGENCY_DISABLED,
            "This service is temporarily unavailable.",
        );
    }
    if let Err(limited) = agent
        .inner
        .limiter
        .check(&tool.name, rate_key(caller, call_id))
    {
        let secs = limited.retry_after_secs();
        event.log(reasons::RATE_LIMITED, limited.scope.as_str());
        return Reply::refusal(
            429,
            reasons::RATE_LIMITED,
            "I'm sorry, there have been too many requests. Please try again in a little while.",
        )
        .with_header("retry-after", secs.to_string());
    }
    let ctx = CallContext::with_services(
        agent.name(),
        call_id,
        session_scope(agent.name(), call_id, &render),
        rt.store.clone(),
        rt.services.clone(),
    )
    .with_caller(
        request.caller_id_num.clone(),
        request.caller_id_name.clone(),
    )
    .with_global_data(request.global_data.clone().unwrap_or_default())
    .with_request_id(info.request_id.clone());
    for flag in &tool.policy.requires {
        match ctx.session().flag(flag).await {
            Ok(true) => {}
            Ok(false) => {
                return event.refuse(
                    200,
                    reasons::VERIFICATION_REQUIRED,
                    "I need to verify the caller's identity before I can do that. Please ask for their PIN first.",
                )
            }
            Err(error) => return failed(agent.name(), &tool.name, call_id, &error.to_string()),
        }
    }
    if !tool.policy.roles.is_empty() {
        match ctx.session().get::<String>(ROLE_KEY).await {
            Ok(Some(role)) if tool.policy.roles.contains(&role) => {}
            Ok(_) => {
                return event.refuse(
                    200,
                    reasons::FORBIDDEN,
                    "I'm sorry, I can't do that for this caller.",
                )
            }
            Err(error) => return failed(agent.name(), &tool.name, call_id, &error.to_string()),
        }
    }

    // Arguments: the confirmation flag is the runtime's, not the tool's.
    let mut args = request.arguments();
    // The confirmation flag belongs to the runtime only for tools that use confirmation.
    let confirmed = tool.policy.confirm.is_some() && take_confirmed(&mut args);
    if !tool.policy.skip_input_guard {
        // A length the schema declares is enforced (and reported as `maxLength`) by the
        // validator; the guard's own cap covers strings the schema leaves unbounded.
        let max_len = |path: &str| max_length_at(&tool.schema, path).map(|_| usize::MAX);
        if let Err((field, rejection)) = rt.input_guard.screen(&mut args, &max_len) {
            let field = safe_field(tool, &field);
            event.log(reasons::INPUT_REJECTED, rejection.reason());
            return Reply::ok(json!({
                "response": "I'm sorry, I can't accept that input. Please ask the caller to rephrase.",
                "error": reasons::INPUT_REJECTED,
                "field": field,
                "rule": rejection.reason(),
            }));
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
        return Reply::ok(json!({
            "response": sentence,
            "error": reasons::INVALID_ARGUMENT,
            "field": field,
            "rule": error.rule,
        }));
    }
    if let Some(summary) = &tool.policy.confirm {
        match confirm(rt, &ctx, &tool.name, &args, confirmed, summary).await {
            Ok(Confirm::Proceed) => {}
            Ok(Confirm::Ask(reason, sentence)) => {
                event.log(reason, "confirmation");
                return Reply::ok(json!({ "response": sentence, "error": reason }));
            }
            Err(error) => return failed(agent.name(), &tool.name, call_id, &error.to_string()),
        }
    }

    let handler = tool.handler.clone();
    trail.handler_ran = true;
    let outcome = AbortOnDrop(tokio::spawn(async move { handler.call(args, ctx).await }))
        .join()
        .await;
    match outcome {
        Ok(Ok(result)) => {
            if let Some(blocked) = result
                .destinations()
                .into_iter()
                .find(|d| !agent.inner.transfers.allows(d))
            {
                tracing::warn!(
                    target: "voxguard::security",
                    event = "transfer_blocked",
                    agent = agent.name(),
                    function = %tool.name,
                    call_id,
                    destination = %mask(blocked),
                    "a handler produced a transfer outside the allow-list; refused"
                );
                return Reply::ok(json!({
                    "response": "I'm sorry, I can't transfer the call to that destination.",
                    "error": reasons::TRANSFER_BLOCKED,
                }));
            }
            trail.payments = payments_in(&result);
            match serde_json::to_value(&result) {
                Ok(body) => Reply::ok(body),
                Err(error) => failed(
                    agent.name(),
                    &tool.name,
                    call_id,
                    &format!("result not serializable: {error}"),
                ),
            }
        }
        Ok(Err(HandlerFailure::Arguments(error))) => {
            // The serde message can quote the value: log only that it happened.
            drop(error);
            tracing::warn!(agent = agent.name(), function = %tool.name, call_id, "arguments passed the schema but not deserialization");
            Reply::ok(json!({
                "response": "Some of the details provided aren't valid. Please ask the caller for them again.",
                "error": reasons::INVALID_ARGUMENT,
                "field": "",
                "rule": "type",
            }))
        }
        Ok(Err(HandlerFailure::Tool(ToolError::Refused { reason, sentence }))) => {
            event.log("handler_refused", &reason);
            Reply::ok(json!({ "response": sentence, "error": reason }))
        }
        Ok(Err(HandlerFailure::Tool(error))) => {
            failed(agent.name(), &tool.name, call_id, &error.to_string())
        }
        Err(join) if join.is_panic() => {
            failed(agent.name(), &tool.name, call_id, "handler panicked")
        }
        Err(_) => failed(agent.name(), &tool.name, call_id, "handler was cancelled"),
    }
}

/// The amount and currency of every `pay` verb in a handler's result.
fn payments_in(result: &voxguard_swml::FunctionResult) -> Vec<Value> {
    result
        .action
        .iter()
        .filter_map(|action| match action {
            voxguard_swml::Action::Swml(document) => Some(document),
            _ => None,
        })
        .flat_map(voxguard_swml::Document::verbs)
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

    fn refuse(&self, status: u16, reason: &str, sentence: &str) -> Reply {
        self.log(reason, "");
        Reply::refusal(status, reason, sentence)
    }
}

/// Rate-limit key: the caller's number, or the call when the platform sent none.
fn rate_key<'a>(caller: &'a str, call_id: &'a str) -> &'a str {
    if caller.is_empty() {
        call_id
    } else {
        caller
    }
}

/// Remove the top-level `confirmed` flag from `args`; true only for a JSON `true`.
fn take_confirmed(args: &mut Value) -> bool {
    match args {
        Value::Object(map) => map
            .remove(CONFIRMED_ARG)
            .is_some_and(|v| v == Value::Bool(true)),
        _ => false,
    }
}

/// The field name safe to report: schema-declared paths as they are, anything else masked.
fn safe_field(tool: &crate::tool::Tool, field: &str) -> String {
    if declared_path(&tool.schema, field) {
        field.to_string()
    } else {
        UNDECLARED_FIELD.to_string()
    }
}

enum Confirm {
    Proceed,
    Ask(&'static str, String),
}

/// Pending confirmations live in the server-side session, one per function.
fn confirm_key(function: &str) -> String {
    format!("__vg.confirm.{function}")
}

/// The confirmation protocol. Only a call *without* `confirmed: true` records a pending action
/// (and answers the read-back). A confirming call atomically *takes* the pending action, so of
/// any number of concurrent or replayed confirmations exactly one runs the handler; a
/// confirming call that finds nothing usable records nothing — otherwise replayed
/// confirmations could feed each other.
async fn confirm(
    rt: &AgentRuntime,
    ctx: &CallContext,
    function: &str,
    args: &Value,
    confirmed: bool,
    summary: &crate::tool::ConfirmSummary,
) -> Result<Confirm, ToolError> {
    let key = confirm_key(function);
    let now = rt.services.clock.now_unix();
    if !confirmed {
        ctx.session()
            .set(&key, &PendingConfirmation::new(function, args, now))
            .await?;
        return Ok(Confirm::Ask(reasons::CONFIRMATION_REQUIRED, summary(args)));
    }
    let pending = match ctx.session().take(&key).await? {
        Some(value) => serde_json::from_value::<PendingConfirmation>(value).ok(),
        None => None,
    };
    let check = match &pending {
        Some(pending) => pending.check(function, args, now, CONFIRMATION_WINDOW_SECS),
        None => ConfirmationCheck::NothingPending,
    };
    Ok(match check {
        ConfirmationCheck::Proceed => Confirm::Proceed,
        ConfirmationCheck::NothingPending => Confirm::Ask(
            reasons::CONFIRMATION_REQUIRED,
            "Nothing is waiting for confirmation. Call the function again without confirmed to get the summary, read it back to the caller, and confirm only after they agree.".into(),
        ),
        ConfirmationCheck::Mismatch => Confirm::Ask(
            reasons::CONFIRMATION_MISMATCH,
            "The details differ from what was read back, so nothing was done. Call the function again without confirmed to read the new details back to the caller.".into(),
        ),
        ConfirmationCheck::Expired => Confirm::Ask(
            reasons::CONFIRMATION_EXPIRED,
            "The confirmation took too long, so nothing was done. Call the function again without confirmed to read the details back to the caller.".into(),
        ),
    })
}

/// How long a read-back stays confirmable.
pub const CONFIRMATION_WINDOW_SECS: u64 = 5 * 60;

/// Handle `POST {route}/post_prompt`: token-checked like a secure tool.
pub(crate) async fn post_prompt(rt: &AgentRuntime, info: &RequestInfo, body: Value) -> Reply {
    let agent = &rt.agent;
    let Some(handler) = agent.inner.on_summary.clone() else {
        return Reply::refusal(
            404,
            reasons::NO_SUMMARY_HANDLER,
            "This agent does not accept summaries.",
        );
    };
    let request: PostPromptRequest = match serde_json::from_value(body) {
        Ok(request) => request,
        Err(_) => {
            return Reply::refusal(
                400,
                reasons::INVALID_REQUEST,
                "The request is not a post-prompt summary.",
            )
        }
    };
    let call_id = request.call_id.clone().unwrap_or_default();
    let render = match check_token(&rt.keys, info, &call_id, POST_PROMPT_FUNCTION) {
        Ok(render) => render,
        Err(error) => return token_refusal(agent.name(), POST_PROMPT_FUNCTION, info, error),
    };
    if !valid_call_id(&call_id) {
        return Reply::refusal(
            400,
            reasons::INVALID_CALL_ID,
            "The request carries no valid call id.",
        );
    }
    let ctx = CallContext::with_services(
        agent.name(),
        call_id.clone(),
        session_scope(agent.name(), &call_id, &render),
        rt.store.clone(),
        rt.services.clone(),
    )
    .with_caller(request.caller_id_num.clone(), None)
    .with_global_data(request.global_data.clone().unwrap_or_default())
    .with_request_id(info.request_id.clone());
    match AbortOnDrop(tokio::spawn(async move { handler(request, ctx).await }))
        .join()
        .await
    {
        Ok(Ok(())) => Reply::ok(json!({ "response": "Summary received." })),
        Ok(Err(error)) => failed(
            agent.name(),
            POST_PROMPT_FUNCTION,
            &call_id,
            &error.to_string(),
        ),
        Err(_) => failed(
            agent.name(),
            POST_PROMPT_FUNCTION,
            &call_id,
            "summary handler panicked",
        ),
    }
}

/// **Where a function token is checked.** The token comes from the query string (`__token`
/// or `token`); it must be bound to this call and this function and be unexpired. Returns the
/// id of the SWML render that minted it, which scopes the call's server-side session.
pub(crate) fn check_token(
    keys: &KeyRing,
    info: &RequestInfo,
    call_id: &str,
    function: &str,
) -> Result<String, TokenError> {
    match info.token.as_deref() {
        None | Some("") => Err(TokenError::Missing),
        Some(token) => keys.verify_with_session(token, call_id, function),
    }
}

/// The session namespace of tools that take no token.
const PUBLIC_SCOPE: &str = "public";

/// Server-side sessions are scoped by agent, call and SWML render: fetching SWML again for a
/// call (which anyone holding the Basic credentials can do) yields tokens for a fresh, empty
/// session, never for the verified session of the original render.
pub(crate) fn session_scope(agent: &str, call_id: &str, render: &str) -> String {
    format!("{agent}/{call_id}/{render}")
}

fn token_refusal(agent: &str, function: &str, info: &RequestInfo, error: TokenError) -> Reply {
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
    Reply::refusal(403, error.reason(), SENTENCE_TOKEN)
}

fn failed(agent: &str, function: &str, call_id: &str, internal: &str) -> Reply {
    tracing::error!(agent, function, call_id, reason = internal, "tool failed");
    Reply::ok(json!({ "response": SENTENCE_FAILED, "error": reasons::TOOL_FAILED }))
}

fn truncate(text: &str) -> String {
    text.chars().take(64).collect()
}
