//! The pipeline in gateway mode: the same steps as for an agent's own tools, with the tool
//! found from the call's render and the handler replaced by the upstream.
//!
//! Owns the four places gateway mode differs: the SWML render (fetch the upstream's, check it
//! against the official schema, rewrite its webhooks, keep the originals in the call's
//! session — [`Pipeline::gateway_render`]); finding a call's function (the token first, since
//! the render it names holds the function — [`Pipeline::gateway_tool`]); forwarding a call that
//! passed every step and screening the upstream's answer like a handler's
//! ([`Pipeline::forward`]); and relaying the payment connector ([`Pipeline::gateway_pay`]).
//! It must not skip a step of `swaig_steps` or audit anything itself but the payment relay,
//! which has no `Verdict` of its own.

use std::sync::Arc;

use serde_json::{json, Value};
use voxguard_guard::{AuditKind, Outcome, Reason, Refusal, TokenError};
use voxguard_server::{AgentRoutes, Reply, RequestInfo};
use voxguard_store::StoreError;
use voxguard_swml::{Action, Document, FunctionResult};

use super::verdict::{Trail, Verdict};
use super::{
    check_token, failed, payments_in, session_scope, store_unavailable, token_refusal, Event,
    Pipeline,
};
use crate::gateway::rewrite::{
    self, Minter, Notes, RenderEntry, ENTRY_KEY, PAY_FUNCTION, PAY_STATUS_FUNCTION,
};
use crate::gateway::{Gate, Prepared};
use crate::tool::Tool;

/// The SWAIG action keys an upstream's answer may carry (anything else is refused
/// `transfer_blocked`: the gateway cannot tell whether it moves the call). `SWML` is parsed and
/// checked; `transfer` is the SDKs' flag beside it.
const PASSED_ACTIONS: &[&str] = &[
    "SWML",
    "transfer",
    "say",
    "stop",
    "hangup",
    "set_global_data",
    "unset_global_data",
    "set_meta_data",
    "unset_meta_data",
    "toggle_functions",
    "user_input",
    "back_to_back_functions",
    "playback_bg",
    "stop_playback_bg",
    "hold",
    "end_of_speech_timeout",
    "speech_event_timeout",
    "extensive_data",
    "context_switch",
    "change_context",
    "change_step",
];

/// The refusal of a render the upstream did not make possible.
fn upstream_failed(sentence: &'static str) -> Refusal {
    Refusal::new(Reason::UpstreamFailed, sentence)
}

/// A store failure as the refusal the runtime gives for one.
fn store_refusal(agent: &str, error: &StoreError) -> Refusal {
    match error {
        StoreError::Unavailable { .. } => {
            tracing::error!(agent, %error, "the session store did not answer; refused");
            store_unavailable()
        }
        _ => failed(agent, "", "", &error.to_string()),
    }
}

/// Whether the body's `argument` holds `args` and nothing else an upstream could read instead:
/// exactly one `parsed` entry equal to `args`, a `raw` and a `substituted` (the platform sends
/// both) each absent, blank or the same arguments, and no other key. The checks read `parsed`
/// first, so a `raw` or `substituted` saying something else would otherwise reach an upstream
/// that prefers it unchecked.
fn forms_agree(body: &[u8], args: &Value) -> bool {
    #[derive(serde::Deserialize)]
    struct Body {
        argument: Option<Forms>,
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Forms {
        parsed: Option<Vec<Value>>,
        raw: Option<String>,
        substituted: Option<String>,
    }
    let Ok(Body {
        argument: Some(forms),
    }) = serde_json::from_slice::<Body>(body)
    else {
        return false;
    };
    let same = |text: Option<&str>| match text.map(str::trim) {
        None | Some("") => true,
        Some(text) => serde_json::from_str::<Value>(text).is_ok_and(|v| &v == args),
    };
    matches!(forms.parsed.as_deref(), Some([only]) if only == args)
        && same(forms.raw.as_deref())
        && same(forms.substituted.as_deref())
}

/// A call to the upstream function found for it.
pub(super) struct Forwarding {
    /// The render id from the token.
    pub(crate) render: String,
    /// The render as its calls need it (the function's URL, the upstream's secrets).
    pub(crate) prepared: Arc<Prepared>,
    /// The function called.
    pub(crate) function: String,
}

impl Pipeline {
    fn gate(&self) -> &Gate {
        self.gateway
            .as_deref()
            .expect("gateway steps run only on a gateway pipeline")
    }

    /// The SWML of `call_id` in gateway mode: the upstream's document, webhooks rewritten.
    pub(super) async fn gateway_render(
        &self,
        info: &RequestInfo,
        body: Option<Value>,
        call_id: &str,
    ) -> Result<Value, Refusal> {
        let gate = self.gate();
        let agent = self.agent.name();
        let platform_body = body.unwrap_or_else(|| json!({}));
        let mut document = gate
            .upstream
            .fetch_swml(&platform_body)
            .await
            .map_err(|error| {
                tracing::error!(agent, %error, "gateway: the upstream's SWML could not be fetched");
                upstream_failed("The agent behind this gateway did not answer.")
            })?;
        if !document.get("sections").is_some_and(Value::is_object) {
            tracing::error!(
                agent,
                "gateway: the upstream answered JSON without `sections`, not an SWML document"
            );
            return Err(upstream_failed(
                "The agent behind this gateway did not answer with an SWML document.",
            ));
        }
        // Paths only: the validator's messages quote values, which can hold credentials. The
        // paths hold keys the upstream chose: logged once the leak check has passed.
        let problems = gate
            .checker
            .as_ref()
            .map(|checker| checker.document_problem_paths(&document))
            .unwrap_or_default();
        let render_id = {
            use rand::Rng;
            format!("{:032x}", rand::thread_rng().gen::<u128>())
        };
        let now = self.now_unix();
        let minter = Minter {
            keys: &self.keys,
            info,
            routes: AgentRoutes::new(self.agent.route()),
            call_id,
            render_id: &render_id,
            now_unix: now,
        };
        let mut entry = RenderEntry::default();
        let mut notes = Notes::default();
        let check = |schema: &Value| gate.compiled(schema).map(drop);
        rewrite::rewrite_document(&mut document, &minter, &mut entry, &check, &mut notes);
        if !notes.dropped.is_empty() {
            // Logged before the document's leak check: a name holding a secret is not shown.
            let secrets = gate.secrets(&entry);
            for (function, why) in &notes.dropped {
                tracing::warn!(agent, function = %secrets.loggable(function), why = %why, "gateway: an upstream function was left out of the document");
            }
            if notes.dropped_total > notes.dropped.len() {
                let more = notes.dropped_total - notes.dropped.len();
                tracing::warn!(agent, more, "gateway: more upstream functions were left out of the document (not named one by one)");
            }
        }
        if let Some(why) = notes.unrewritten {
            tracing::error!(target: "voxguard::security", event = "upstream_swml_unrewritten", agent, call_id, why, "gateway: the upstream's SWML holds webhooks the gateway did not rewrite; refused (fail closed)");
            return Err(upstream_failed(
                "The agent behind this gateway answered a document that cannot be served safely.",
            ));
        }
        if notes.includes_removed > 0 {
            tracing::warn!(agent, removed = notes.includes_removed, "gateway: SWAIG.includes removed (remote function lists are not proxied; declare the functions in the document)");
        }
        // A render that fails here is no tool's: an HTTP error, never `tool_failed` (200).
        let render_failed = |why: &str| {
            tracing::error!(agent, call_id, reason = why, "gateway: the render failed");
            Refusal::new(Reason::InternalError, "The agent could not be rendered.")
        };
        // One preparation serves the leak check now and the render's calls later.
        let prepared = gate.assemble(entry).map_err(|why| render_failed(&why))?;
        if let Some(path) = prepared.secrets.find(&document) {
            tracing::error!(target: "voxguard::security", event = "upstream_secret_in_swml", agent, path = %path, "gateway: the upstream's SWML carries its credentials or a token where the gateway does not rewrite them; refused (fail closed)");
            return Err(upstream_failed(
                "The agent behind this gateway answered a document that cannot be served safely.",
            ));
        }
        // After the leak check, so that the path it logs (keys the upstream chose) holds none
        // of the upstream's secrets; cut short all the same.
        if let Some(path) = rewrite::url_on_origin(&document, &gate.upstream.origin()) {
            let path: String = path.chars().take(256).collect();
            tracing::error!(target: "voxguard::security", event = "upstream_swml_unrewritten", agent, call_id, path = %path, "gateway: the upstream's SWML holds a URL on the upstream's origin that the gateway does not proxy (the platform would reach the upstream around the gateway); refused (fail closed)");
            return Err(upstream_failed(
                "The agent behind this gateway answered a document that cannot be served safely.",
            ));
        }
        if !problems.is_empty() {
            tracing::warn!(agent, call_id, problems = %problems.join("; "), "gateway: the upstream's SWML does not validate against the official schema");
        }
        if prepared.entry != RenderEntry::default() {
            let scope = session_scope(agent, call_id, &render_id);
            let value =
                serde_json::to_value(&prepared.entry).map_err(|e| render_failed(&e.to_string()))?;
            self.store
                .set(&scope, ENTRY_KEY, &value, now)
                .await
                .map_err(|e| match e {
                    StoreError::Unavailable { .. } => store_refusal(agent, &e),
                    _ => render_failed(&e.to_string()),
                })?;
            gate.keep(&scope, prepared);
        }
        Ok(document)
    }

    /// The tool a gateway call is checked as. The token comes first: it names the render,
    /// and the render holds the function. A function the render did not declare — or a render
    /// whose session expired — is `unknown_function`.
    pub(super) async fn gateway_tool(
        &self,
        info: &RequestInfo,
        function: &str,
        call_id: &str,
        verified: &mut bool,
    ) -> Result<(Arc<Tool>, Forwarding), Refusal> {
        let agent = self.agent.name();
        // The body's name, whatever its length, until a render declares it: logged cut short.
        let shown = super::truncate(function);
        let render = check_token(&self.keys, info, call_id, function, self.now_unix())
            .map_err(|error| token_refusal(agent, &shown, info, error))?;
        // Past the token: what follows (the store, the render's entry) is on record call by call.
        *verified = true;
        let scope = session_scope(agent, call_id, &render);
        let gate = self.gate();
        let prepared = match gate.prepared(&scope) {
            Some(prepared) => Some(prepared),
            None => {
                let since = gate.generation();
                let stored = self
                    .store
                    .get(&scope, ENTRY_KEY, self.now_unix())
                    .await
                    .map_err(|e| store_refusal(agent, &e))?;
                match stored.and_then(|v| serde_json::from_value::<RenderEntry>(v).ok()) {
                    Some(entry) => Some(
                        gate.prepare(&scope, entry, since)
                            .map_err(|why| failed(agent, function, call_id, &why))?,
                    ),
                    None => None,
                }
            }
        };
        let Some((prepared, tool)) = prepared.and_then(|p| {
            let tool = p.tools.get(function)?.clone();
            Some((p, tool))
        }) else {
            tracing::info!(
                agent,
                function = %shown,
                "gateway: the call's render holds no such function (expired session?)"
            );
            return Err(Refusal::new(
                Reason::UnknownFunction,
                super::SENTENCE_UNAVAILABLE,
            ));
        };
        Ok((
            tool,
            Forwarding {
                render,
                prepared,
                function: function.to_string(),
            },
        ))
    }

    /// Forward a call that passed every step to the upstream — the platform's body with the
    /// checked, normalized arguments — and screen its answer as a handler's result.
    /// `unchanged`: the checks changed nothing in the arguments `raw` carries.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn forward(
        &self,
        tool: &Tool,
        args: Value,
        raw: &[u8],
        unchanged: bool,
        forwarding: &Forwarding,
        event: &Event<'_>,
        trail: &mut Trail,
    ) -> Result<Verdict, Refusal> {
        let (agent, call_id, info) = (self.agent.name(), event.call_id, event.info);
        // The platform's body as it came when the checks changed nothing in the arguments and
        // every form of them in it says the same (the common case: no re-encoding); else with
        // `argument` replaced by the checked, normalized arguments alone, so that an upstream
        // reading `raw`, or any other key of `argument`, reads what was checked.
        let bytes = if unchanged && forms_agree(raw, &args) {
            raw.to_vec()
        } else {
            let mut body: Value = serde_json::from_slice(raw)
                .map_err(|_| failed(agent, &tool.name, call_id, "the body no longer parses"))?;
            if let Some(object) = body.as_object_mut() {
                object.insert(
                    "argument".to_string(),
                    json!({"parsed": [args], "raw": args.to_string()}),
                );
            }
            serde_json::to_vec(&body).unwrap_or_default()
        };
        let upstream = &self.gate().upstream;
        let target = forwarding
            .prepared
            .target(&forwarding.function, upstream)
            .map_err(|why| failed(agent, &tool.name, call_id, &why))?;
        let mut answer = upstream
            .call_target(target, bytes)
            .await
            .map_err(|error| failed(agent, &tool.name, call_id, &error.to_string()))?;
        let Some(object) = answer.as_object_mut() else {
            return Err(failed(
                agent,
                &tool.name,
                call_id,
                "the upstream's answer is not a JSON object",
            ));
        };
        // A function result is `response` (text), `action` (a list) and `post_process` (a
        // flag): an answer with an `error` (the official Python SDK answers a handler's
        // exception with 200 and `{"error": "<the exception's text>"}`), with a `response` that
        // is not text, or with neither a response nor actions, is a failure — its text goes to
        // the operators' log (redacted like every line), never to the platform.
        if let Some(error) = object.get("error").filter(|error| !error.is_null()) {
            let text: String = match error {
                Value::String(text) => text.chars().take(256).collect(),
                other => other.to_string().chars().take(256).collect(),
            };
            return Err(failed(
                agent,
                &tool.name,
                call_id,
                &format!("the upstream's function reported an error: {text}"),
            ));
        }
        let readable = match object.get("response") {
            Some(Value::String(_)) => true,
            Some(_) => false,
            None => object.contains_key("action"),
        };
        if !readable {
            return Err(failed(
                agent,
                &tool.name,
                call_id,
                "the upstream's answer holds no `response` text and no `action`",
            ));
        }
        // The actions: only the kinds voxguard knows are passed on, and each SWML action is
        // parsed for the same checks as a handler's result and passed on *as checked* (fields
        // the model does not read, such as a `connect`'s `parallel` list, never reach the
        // platform unchecked).
        let blocked = |why: &str| {
            event.log(Reason::TransferBlocked.as_str(), why);
            Refusal::new(
                Reason::TransferBlocked,
                "I'm sorry, I can't transfer the call to that destination.",
            )
        };
        let mut checked = FunctionResult::default();
        let mut pays = false;
        if let Some(actions) = object.get_mut("action") {
            let Some(actions) = actions.as_array_mut() else {
                return Err(failed(
                    agent,
                    &tool.name,
                    call_id,
                    "the upstream's `action` is not a list",
                ));
            };
            for action in actions.iter_mut() {
                let Some(action) = action.as_object_mut() else {
                    return Err(blocked("an action that is not an object"));
                };
                if let Some(key) = action
                    .keys()
                    .find(|k| !PASSED_ACTIONS.contains(&k.as_str()))
                {
                    tracing::warn!(target: "voxguard::security", event = "transfer_blocked", agent, function = %tool.name, call_id, action = %forwarding.prepared.secrets.loggable(key), "gateway: the upstream's answer holds an action voxguard does not check; refused");
                    return Err(blocked("unknown action"));
                }
                let Some(swml) = action.get_mut("SWML") else {
                    continue;
                };
                if let Value::String(text) = swml {
                    // The SDKs may send the document as a JSON string.
                    *swml = serde_json::from_str(text).unwrap_or(Value::Null);
                }
                let document: Document = serde_json::from_value(swml.take())
                    .map_err(|_| blocked("unreadable SWML action"))?;
                if document
                    .verbs()
                    .any(|v| matches!(v, voxguard_swml::Verb::Ai(_)))
                {
                    // Its webhooks would lead the platform straight to the upstream.
                    return Err(blocked("an ai verb in a function result"));
                }
                pays |= document
                    .verbs()
                    .any(|v| matches!(v, voxguard_swml::Verb::Pay(_)));
                *swml = serde_json::to_value(&document)
                    .map_err(|e| failed(agent, &tool.name, call_id, &e.to_string()))?;
                checked.action.push(Action::Swml(document));
            }
        }
        self.screen_result(&tool.name, call_id, &checked)?;
        // The answer's `pay` verbs point at the gateway from here on; the render's entry with
        // their connector URLs is kept only once the answer is known to be served.
        let grown = if pays {
            let entry = self
                .rewrite_result_pay(info, object, call_id, &forwarding.render)
                .await?;
            let secrets = self.gate().secrets(&entry);
            Some((entry, secrets))
        } else {
            None
        };
        let secrets = grown
            .as_ref()
            .map_or(&forwarding.prepared.secrets, |(_, secrets)| secrets);
        if let Some(path) = secrets.find(&answer) {
            tracing::error!(target: "voxguard::security", event = "upstream_secret_in_answer", agent, function = %tool.name, call_id, path = %path, "gateway: the upstream's answer carries its credentials or a token; refused (fail closed)");
            return Err(failed(
                agent,
                &tool.name,
                call_id,
                "the upstream's answer carries an upstream secret",
            ));
        }
        // After the leak check, as for a render (the path holds keys the upstream chose): an
        // action left with a URL on the upstream's origin — a `playback_bg` file, a `pay`
        // prompt's audio, a `play` — would have the platform reach the upstream around the
        // gateway. The answer's `response` text is the model's to read, not fetched.
        let on_origin = answer
            .get("action")
            .and_then(|actions| rewrite::url_on_origin(actions, &self.gate().upstream.origin()));
        if let Some(path) = on_origin {
            let path: String = path.chars().take(256).collect();
            tracing::error!(target: "voxguard::security", event = "upstream_swml_unrewritten", agent, function = %tool.name, call_id, path = %path, "gateway: the upstream's answer holds a URL on the upstream's origin (the platform would reach the upstream around the gateway); refused (fail closed)");
            return Err(failed(
                agent,
                &tool.name,
                call_id,
                "the upstream's answer holds a URL on the upstream's origin",
            ));
        }
        if let Some((entry, _)) = grown {
            self.keep_entry(&entry, call_id, &forwarding.render).await?;
        }
        // Audited as requested only once the answer is known to be served: a refused answer's
        // `pay` (its description may hold the secret that refused it) never reaches the trail.
        trail.payments = payments_in(&checked);
        Ok(Verdict::Answered(function_result(answer)))
    }

    /// Store a render's grown entry; its prepared form is made again at the next call.
    async fn keep_entry(
        &self,
        entry: &RenderEntry,
        call_id: &str,
        render: &str,
    ) -> Result<(), Refusal> {
        let agent = self.agent.name();
        let scope = session_scope(agent, call_id, render);
        let value =
            serde_json::to_value(entry).map_err(|e| failed(agent, "", call_id, &e.to_string()))?;
        let stored = self
            .store
            .set(&scope, ENTRY_KEY, &value, self.now_unix())
            .await;
        // After the write: a call that read the old entry (without the new connectors'
        // secrets) before this forget does not keep its render (`Gate::generation`).
        self.gate().forget(&scope);
        stored.map_err(|e| store_refusal(agent, &e))
    }

    /// Point the `pay` verbs of a result's SWML actions at the gateway; the render's entry
    /// with their connector URLs added (not stored). A render holds at most
    /// [`rewrite::MAX_PAY`] connectors; an answer that would add more is refused.
    async fn rewrite_result_pay(
        &self,
        info: &RequestInfo,
        answer: &mut serde_json::Map<String, Value>,
        call_id: &str,
        render: &str,
    ) -> Result<RenderEntry, Refusal> {
        let agent = self.agent.name();
        let scope = session_scope(agent, call_id, render);
        let now = self.now_unix();
        let stored = self
            .store
            .get(&scope, ENTRY_KEY, now)
            .await
            .map_err(|e| store_refusal(agent, &e))?;
        let mut entry: RenderEntry = stored
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        let minter = Minter {
            keys: &self.keys,
            info,
            routes: AgentRoutes::new(self.agent.route()),
            call_id,
            render_id: render,
            now_unix: now,
        };
        for action in answer
            .get_mut("action")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let Some(sections) = action
                .get_mut("SWML")
                .and_then(|s| s.get_mut("sections"))
                .and_then(Value::as_object_mut)
            else {
                continue;
            };
            for verb in sections
                .values_mut()
                .filter_map(Value::as_array_mut)
                .flatten()
            {
                if let Some(pay) = verb.get_mut("pay").and_then(Value::as_object_mut) {
                    if !rewrite::rewrite_pay(pay, &minter, &mut entry) {
                        return Err(failed(
                            agent,
                            "",
                            call_id,
                            "the upstream's answers name more payment connectors than a render keeps, or a connector URL over 8 KiB",
                        ));
                    }
                }
            }
        }
        Ok(entry)
    }

    /// `POST {route}/pay` (`status`: `/pay/status`) in gateway mode: the token names the call,
    /// render and `pay` verb; the platform's body goes to the upstream's connector as it came
    /// (never parsed, logged or stored here), and its answer back. Audited with the outcome
    /// only.
    pub(super) async fn gateway_pay(
        &self,
        info: &RequestInfo,
        body: Vec<u8>,
        status: bool,
    ) -> Reply {
        let function = if status {
            PAY_STATUS_FUNCTION
        } else {
            PAY_FUNCTION
        };
        let now = self.now_unix();
        let claims = info
            .token
            .as_deref()
            .ok_or(TokenError::Missing)
            .and_then(|token| self.keys.claims_at(token, function, now));
        let claims = match claims {
            Ok(claims) => claims,
            Err(error) => {
                self.pay_token_refused(info, function, error).await;
                return super::pay::refused(
                    403,
                    "payment_token_invalid",
                    "The payment link is not valid.",
                );
            }
        };
        let Some((render, named)) = claims.session.split_once('|') else {
            return super::pay::refused(
                403,
                "payment_token_invalid",
                "The payment link is not valid.",
            );
        };
        if !status {
            if let Some(stopped) = self.payments_stopped(info, &claims.call_id, function).await {
                return stopped;
            }
        }
        let scope = session_scope(self.agent.name(), &claims.call_id, render);
        let stored = match self.store.get(&scope, ENTRY_KEY, now).await {
            Ok(stored) => stored,
            Err(error) => {
                tracing::error!(agent = self.agent.name(), %error, "gateway: the session store did not answer a payment; refused");
                return super::pay::refused(
                    503,
                    "store_unavailable",
                    "The payment could not be processed. Please try again.",
                );
            }
        };
        let found = stored
            .and_then(|v| serde_json::from_value::<RenderEntry>(v).ok())
            .and_then(|entry| {
                let pay = entry.pay_named(named)?;
                let url = if status {
                    pay.status.clone()
                } else {
                    pay.connector.clone()
                }?;
                Some((url, entry))
            });
        let Some((url, entry)) = found else {
            return super::pay::refused(404, "payment_not_found", "This payment is not known.");
        };
        let secrets = self.gate().secrets(&entry);
        let (reply, outcome) = match self.gate().upstream.relay(&url, body).await {
            Ok((_, answer)) if secrets.find(&answer).is_some() => {
                tracing::error!(target: "voxguard::security", event = "upstream_secret_in_answer", agent = self.agent.name(), function, "gateway: the upstream's payment connector answered with its credentials or a token; refused (fail closed)");
                (
                    super::pay::refused(
                        502,
                        "gateway_upstream_failed",
                        "The payment could not be processed. Please try again.",
                    ),
                    Outcome::Failed,
                )
            }
            Ok((code, answer)) => {
                let outcome = if (200..300).contains(&code) {
                    Outcome::Ok
                } else {
                    Outcome::Failed
                };
                (
                    Reply {
                        status: code,
                        ..Reply::ok(answer)
                    },
                    outcome,
                )
            }
            Err(error) => {
                tracing::error!(agent = self.agent.name(), %error, "gateway: the upstream's payment connector did not answer");
                (
                    super::pay::refused(
                        502,
                        "gateway_upstream_failed",
                        "The payment could not be processed. Please try again.",
                    ),
                    Outcome::Failed,
                )
            }
        };
        let mut event = self.pay_event(AuditKind::Payment, outcome, info, Some(&claims.call_id));
        event.function = Some(function.into());
        if self.services.auditor.record(event).await.is_err() {
            return Reply::from(Refusal::new(
                Reason::AuditUnavailable,
                "I'm sorry, I can't complete that request right now. Please try again later.",
            ));
        }
        reply.with_call_id(Some(claims.call_id))
    }
}

/// What the platform gets of an upstream's checked answer: the members of a function result
/// (`response`, the checked `action` list, `post_process` when it is a flag) and nothing else,
/// so that no other member the upstream wrote (a traceback, an internal id) reaches it.
fn function_result(answer: Value) -> Value {
    let Value::Object(mut object) = answer else {
        return answer;
    };
    let mut result = serde_json::Map::new();
    for key in ["response", "action"] {
        if let Some(value) = object.remove(key) {
            result.insert(key.to_string(), value);
        }
    }
    if let Some(flag @ Value::Bool(_)) = object.remove("post_process") {
        result.insert("post_process".to_string(), flag);
    }
    Value::Object(result)
}
