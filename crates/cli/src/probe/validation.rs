//! Argument validation against each function's *declared* schema, sent with the valid token
//! the SWML gave it: a wrong type, a missing required argument, a value outside a declared
//! enum, pattern, length or range — and, with `--allow-calls` only, an undeclared argument
//! next to valid ones.
//!
//! It owns those requests and their verdicts: a handler that runs (2xx without a refusal
//! reason) on arguments its own schema rejects is a finding. A refusal for another reason
//! (a policy checked before the arguments, a rate limit, the token) makes the case
//! inconclusive: a note, never a finding. It must not send a case the declared schema accepts
//! ([`super::schema`] guarantees it) except the undeclared case under `--allow-calls`.

use super::schema::Declared;
use super::surface::leak;
use super::token::{evidence, location, reply_text};
use super::{Ctx, Severity};
use crate::agent::{CallState, Function, Reply};

/// Every invalid case of every function with a webhook.
pub async fn check(ctx: &mut Ctx) {
    let functions = ctx.rendered.functions.clone();
    let state = CallState::new(ctx.call.clone(), &ctx.rendered, None);
    for function in functions.iter().filter(|f| f.webhook.is_none()) {
        let why = if function.definition.get("data_map").is_some() {
            "a data_map function runs on the platform"
        } else {
            "no web_hook_url, and no SWAIG.defaults.web_hook_url"
        };
        ctx.note(format!("{}: not probed ({why})", function.name));
    }
    for function in functions.iter().filter(|f| f.webhook.is_some()) {
        let Some(declared) = Declared::of(function) else {
            ctx.note(format!(
                "{}: its parameters are not a usable JSON schema: validation was not checked",
                function.name
            ));
            continue;
        };
        let cases = declared.invalid_cases();
        if cases.is_empty() {
            ctx.note(format!(
                "{}: it declares no typed parameters, so there is no invalid argument to send",
                function.name
            ));
        }
        let mut inconclusive: Vec<String> = Vec::new();
        for case in cases {
            ctx.report.requests += 1;
            let reply = match ctx.target.invoke(function, &case.args, &state).await {
                Ok(reply) => reply,
                Err(err) => {
                    ctx.note(format!(
                        "{}: the {} case got no answer: {err}",
                        function.name,
                        case.describe()
                    ));
                    continue;
                }
            };
            scan_leak(ctx, function, &case.args, &reply);
            if !reply.refused() {
                let evidence = evidence(ctx, function, &case.args, &reply);
                ctx.finding(
                    case.kind.id(),
                    Severity::High,
                    format!("{} runs with {}", function.name, case.describe()),
                    &location(function),
                    &evidence,
                );
            } else if let Some(reason) = other_reason(&reply) {
                if !inconclusive.contains(&reason) {
                    inconclusive.push(reason);
                }
            }
        }
        if !inconclusive.is_empty() {
            ctx.note(format!(
                "{}: some validation cases were refused for another reason first ({}), so \
                 they do not show whether its arguments are validated",
                function.name,
                inconclusive.join(", ")
            ));
        }
        if ctx.allow_calls {
            undeclared(ctx, function, &declared, &state).await;
        }
    }
    if !ctx.allow_calls && !functions.is_empty() {
        ctx.note(
            "undeclared arguments were not checked: that call carries valid arguments and the \
             valid token, so it is sent only with --allow-calls"
                .into(),
        );
    }
}

/// The undeclared-argument case (only with `--allow-calls`).
async fn undeclared(ctx: &mut Ctx, function: &Function, declared: &Declared, state: &CallState) {
    let Some(args) = declared.undeclared() else {
        ctx.note(format!(
            "{}: no valid arguments could be built, so undeclared arguments were not checked",
            function.name
        ));
        return;
    };
    ctx.report.requests += 1;
    let Ok(reply) = ctx.target.invoke(function, &args, state).await else {
        return;
    };
    scan_leak(ctx, function, &args, &reply);
    if !reply.refused() {
        let evidence = evidence(ctx, function, &args, &reply);
        ctx.finding(
            "validation.undeclared",
            Severity::Low,
            format!("{} runs with an undeclared argument", function.name),
            &location(function),
            &evidence,
        );
    }
}

/// A refusal reason that is not about the arguments (the case then proves nothing).
fn other_reason(reply: &Reply) -> Option<String> {
    let reason = reply.refusal.as_ref().map(|r| r.reason.clone());
    match reason {
        Some(reason)
            if reason.contains("argument")
                || reason.contains("invalid")
                || reason.contains("validation") =>
        {
            None
        }
        Some(reason) => Some(reason),
        None if reply.status == 400 || reply.status == 422 => None,
        None => Some(format!("HTTP {}", reply.status)),
    }
}

/// An `errors.leak` finding when the answer shows internals.
fn scan_leak(ctx: &mut Ctx, function: &Function, args: &serde_json::Value, reply: &Reply) {
    if let Some(what) = leak(&reply_text(reply)) {
        let evidence = evidence(ctx, function, args, reply);
        ctx.finding(
            "errors.leak",
            Severity::Medium,
            format!("an answer to invalid arguments shows {what}"),
            &location(function),
            &evidence,
        );
    }
}
