//! Playing one scripted call against the agent the way the platform would: render the SWML
//! once for the call, then call each step's function on the webhook URL (and with the
//! token) that render gave it, applying each answer's actions so global data and toggled
//! functions evolve as in a real call, and comparing each answer with the step's
//! expectations.
//!
//! It owns the order of a call (a failed step stops the call; the rest are skipped) and the
//! masking of what it records (the target's password, the rendered tokens, URL
//! credentials) unless `--show-secrets`. It must not print anything or choose the exit code.

use std::time::Instant;

use serde_json::Value;

use super::check::{self, Mismatch};
use super::outcome::{ActionSeen, CallOutcome, StepOutcome, Verdict};
use super::script::CallScript;
use crate::agent::mask::{self, Secrets};
use crate::agent::render::fresh_call_id;
use crate::agent::swaig::decode_actions;
use crate::agent::{CallSpec, CallState, Rendered, Reply, Target};

/// The number called when a script does not say.
pub use crate::agent::render::DEFAULT_TO;

/// One call to play: its script and the file it came from.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The file, as given on the command line.
    pub file: String,
    /// The call.
    pub script: CallScript,
}

impl Plan {
    /// The call's steps, none played, all marked skipped; the call id is the script's or a
    /// fresh one. The arguments are masked with `secrets` (`None`: `--show-secrets`).
    fn unplayed(&self, secrets: Option<&Secrets>) -> CallOutcome {
        let steps = self
            .script
            .steps
            .iter()
            .enumerate()
            .map(|(index, step)| {
                let arguments = Value::Object(step.args.clone());
                StepOutcome::skipped(
                    index + 1,
                    step.name.clone().unwrap_or_else(|| step.call.clone()),
                    step.call.clone(),
                    match secrets {
                        Some(secrets) => mask::document(&arguments, secrets),
                        None => arguments,
                    },
                )
            })
            .collect();
        CallOutcome {
            file: self.file.clone(),
            name: self.script.name.clone(),
            call_id: self.script.call_id.clone().unwrap_or_else(fresh_call_id),
            caller: self.script.caller.clone(),
            steps,
            error: None,
            agent_error: None,
            seconds: 0.0,
        }
    }

    /// The call, not run because of `why`; arguments masked with `secrets` (`None`:
    /// `--show-secrets`).
    pub fn not_run(&self, why: &str, secrets: Option<&Secrets>) -> CallOutcome {
        let mut outcome = self.unplayed(secrets);
        outcome.error = Some(why.to_string());
        outcome
    }
}

/// The secrets of a call: the target's password, and every secret the render carries
/// (webhook passwords, percent-decoded and as rendered; tokens; values under credential-like
/// keys such as `meta_data_token`).
fn secrets_of(target: &Target, rendered: &Rendered) -> Secrets {
    let mut secrets = target.secrets();
    secrets.add_document(&rendered.document);
    secrets
}

/// `body` with every `SWML` action given as JSON text parsed, so that masking sees its
/// strings unescaped.
fn swml_parsed(body: &Value) -> Value {
    let mut body = body.clone();
    let actions = match body.get_mut("action") {
        Some(Value::Array(actions)) => actions.iter_mut().collect(),
        Some(action @ Value::Object(_)) => vec![action],
        _ => Vec::new(),
    };
    for action in actions {
        if let Some(swml) = action.get_mut("SWML") {
            if let Value::String(text) = swml {
                if let Ok(parsed) = serde_json::from_str::<Value>(text) {
                    *swml = parsed;
                }
            }
        }
    }
    body
}

/// The actions of `reply` as shown: decoded from the masked body (`None`: as they came).
fn actions_seen(reply: &Reply, secrets: Option<&Secrets>) -> Vec<ActionSeen> {
    let decoded = match secrets {
        Some(secrets) => decode_actions(&mask::document(&swml_parsed(&reply.body), secrets)),
        None => reply.actions.clone(),
    };
    decoded
        .into_iter()
        .map(|action| {
            let detail = if check::takes_effect(&action.raw) {
                action.detail
            } else {
                format!("{}: false (no effect)", action.kind)
            };
            ActionSeen {
                detail: match secrets {
                    Some(secrets) => secrets.mask(&detail),
                    None => detail,
                },
                kind: action.kind,
            }
        })
        .collect()
}

/// Play `plan` against `target`.
pub async fn play(target: &Target, plan: &Plan, show_secrets: bool) -> CallOutcome {
    let started = Instant::now();
    let early = (!show_secrets).then(|| target.secrets());
    let mut outcome = plan.unplayed(early.as_ref());
    let script = &plan.script;
    let call = CallSpec {
        call_id: outcome.call_id.clone(),
        from: script.caller.clone(),
        to: script.to.clone().unwrap_or_else(|| DEFAULT_TO.to_string()),
        call_type: "phone".into(),
        get: false,
    };
    let rendered = match target.render(&call).await {
        Ok(rendered) => rendered,
        Err(err) => {
            outcome.error = Some(format!("rendering the SWML failed: {err}"));
            outcome.agent_error = Some(err);
            outcome.seconds = started.elapsed().as_secs_f64();
            return outcome;
        }
    };
    let secrets = secrets_of(target, &rendered);
    let masking = (!show_secrets).then_some(&secrets);
    if let Some(secrets) = masking {
        for (recorded, step) in outcome.steps.iter_mut().zip(&script.steps) {
            recorded.arguments = mask::document(&Value::Object(step.args.clone()), secrets);
        }
    }
    let hide = |text: &str| {
        if show_secrets {
            text.to_string()
        } else {
            secrets.mask(text)
        }
    };
    let mut state = CallState::new(call, &rendered, script.global_data.as_ref());
    for (index, step) in script.steps.iter().enumerate() {
        let arguments = Value::Object(step.args.clone());
        let recorded = &mut outcome.steps[index];
        let stop = |recorded: &mut StepOutcome, mismatch: Mismatch| {
            recorded.verdict = Verdict::Failed;
            recorded.mismatches.push(mismatch);
        };
        let Some(function) = rendered.function(&step.call) else {
            let names: Vec<&str> = rendered.functions.iter().map(|f| f.name.as_str()).collect();
            stop(
                recorded,
                Mismatch {
                    expectation: "function".into(),
                    expected: format!("a function {:?} in the SWML", step.call),
                    actual: if names.is_empty() {
                        "the SWML renders no function at all".into()
                    } else {
                        hide(&format!("the SWML renders: {}", names.join(", ")))
                    },
                },
            );
            break;
        };
        if function.webhook.is_none() {
            stop(
                recorded,
                Mismatch {
                    expectation: "function".into(),
                    expected: format!("{} with a webhook URL to call", step.call),
                    actual: "no webhook URL (a data_map function runs on the platform)".into(),
                },
            );
            break;
        }
        if !function.active && state.toggled.get(&step.call) != Some(&true) {
            recorded.note = Some(
                "rendered inactive and not toggled on: the platform would not offer it to the AI"
                    .into(),
            );
        }
        let sent = Instant::now();
        let reply = match target.invoke(function, &arguments, &state).await {
            Ok(reply) => reply,
            Err(err) => {
                outcome.error = Some(format!("step {} ({}): {err}", index + 1, step.call));
                outcome.agent_error = Some(err);
                break;
            }
        };
        recorded.seconds = sent.elapsed().as_secs_f64();
        state.apply(&reply);
        recorded.status = Some(reply.status);
        // Every agent text is masked before it is quoted, cut or described.
        recorded.refusal = check::refusal_seen(&reply, &hide);
        recorded.response = check::shown_response(&reply, &hide);
        recorded.body = check::body_note(&reply);
        recorded.actions = actions_seen(&reply, masking);
        recorded.mismatches = check::compare(&step.expect, &reply, &hide)
            .into_iter()
            .map(|m| Mismatch {
                expected: hide(&m.expected),
                actual: hide(&m.actual),
                ..m
            })
            .collect();
        if recorded.mismatches.is_empty() {
            recorded.verdict = Verdict::Passed;
        } else {
            recorded.verdict = Verdict::Failed;
            break;
        }
    }
    if !show_secrets {
        // A rendered URL may be in an error sentence; AgentError masks its own, this is
        // belt and braces.
        outcome.error = outcome.error.as_deref().map(|e| secrets.mask(e));
    }
    outcome.seconds = started.elapsed().as_secs_f64();
    outcome
}
