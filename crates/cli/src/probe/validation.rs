//! Argument validation against each function's *declared* schema, sent with the valid token
//! the SWML gave it: by default `{}` and each declared argument alone with a value of no usable
//! type ([`super::schema`]); with `--allow-calls` only, also values outside a declared enum,
//! pattern, length or range next to valid arguments, and an undeclared argument.
//!
//! It owns those requests and their verdicts: a handler that runs (no refusal, or any answer
//! with actions) on arguments its own schema rejects is a finding, one per case. A refusal for another reason
//! (a policy checked before the arguments, a rate limit, the token) makes the case
//! inconclusive: a note, never a finding. It must not send a case the declared schema accepts
//! ([`super::schema`] guarantees it) except the undeclared case under `--allow-calls`.

use super::schema::Declared;
use super::surface::leak;
use super::token::{evidence, location, reply_text};
use super::{refused, Ctx, Severity};
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
        let cases = declared.invalid_cases(ctx.allow_calls);
        if cases.is_empty() {
            ctx.note(format!(
                "{}: it declares no typed parameters, so there is no invalid argument to send",
                function.name
            ));
        }
        let mut inconclusive: Vec<String> = Vec::new();
        for case in cases {
            let reply = match ctx.invoke(function, &case.args, &state).await {
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
            if !refused(&reply) {
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
    let Ok(reply) = ctx.invoke(function, &args, state).await else {
        return;
    };
    scan_leak(ctx, function, &args, &reply);
    if !refused(&reply) {
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

/// A refusal reason that is not about the arguments (the case then proves nothing): a
/// token or credentials refusal (401, 403, a reason naming the token or authorization), a
/// rate limit, a policy. Only `invalid_argument`-like and `validation…` reasons, or a bare
/// 400/422, are argument refusals.
fn other_reason(reply: &Reply) -> Option<String> {
    let reason = reply
        .refusal
        .as_ref()
        .map(|r| r.reason.to_ascii_lowercase());
    if matches!(reply.status, 401 | 403) {
        return Some(match reason {
            Some(reason) => format!("HTTP {} {reason}", reply.status),
            None => format!("HTTP {}", reply.status),
        });
    }
    match reason {
        Some(reason)
            if ["token", "auth", "credential", "signature"]
                .iter()
                .any(|word| reason.contains(word)) =>
        {
            Some(reason)
        }
        Some(reason) if reason.contains("argument") || reason.starts_with("validation") => None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::swaig::Refusal;
    use serde_json::Value;

    fn reply(status: u16, reason: Option<&str>) -> Reply {
        Reply {
            status,
            body: Value::Null,
            text: None,
            refusal: reason.map(|reason| Refusal {
                reason: reason.into(),
                sentence: None,
            }),
            response: None,
            actions: Vec::new(),
        }
    }

    #[test]
    fn only_argument_reasons_count_as_argument_refusals() {
        for (status, reason) in [
            (200, Some("invalid_argument")),
            (200, Some("validation_failed")),
            (400, None),
            (422, None),
        ] {
            assert_eq!(other_reason(&reply(status, reason)), None, "{reason:?}");
        }
        for (status, reason) in [
            (200, Some("invalid_token")),
            (200, Some("token_invalid")),
            (403, Some("invalid_argument")),
            (401, None),
            (200, Some("unauthorized")),
            (429, None),
            (200, Some("forbidden")),
        ] {
            assert!(other_reason(&reply(status, reason)).is_some(), "{reason:?}");
        }
    }
}
